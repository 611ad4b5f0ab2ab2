//! A stream on its connection, with no I/O: asking its source for items,
//! how the connection's thread waits after each fill (woken, or gathering
//! a fast producer's run), a cancel or a frame in progress behind it, its
//! end frame, and letting go of its source.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};
use std::time::Instant;

use anyd_wire::codec::{decode_head, encode_reply_error, encode_reply_ok};
use anyd_wire::message::Head;
use anyd_wire::{frame, Codec};

use crate::error::{panic_message, RemoteError};
use crate::items::{Detached, Fill, Sink, Source};
use crate::throttle::throttled;

use super::{Connection, End, FLUSH_AT};

/// How many bytes one fill of a stream fed by its own thread must take for
/// the connection to gather the next ones for [`GATHER_FOR`] rather than
/// be woken by the first: a producer that fast is in the middle of a run,
/// and waking the connection for every few items would cost more system
/// calls than the items' writes. A fill that took less (one event, a few)
/// is followed by a wait that the next item ends at once.
pub(in crate::server) const GATHER_FROM: usize = 1024;

/// How long the connection gathers a fast producer's items before it
/// writes them (a cancel, the client leaving or a shutdown end the wait at
/// once): what an item of such a run waits beyond its write, plus the
/// kernel's timer slack on the wait's timeout (50 µs by default).
pub(in crate::server) const GATHER_FOR: std::time::Duration = std::time::Duration::from_micros(50);

/// What the connection's thread does after asking a stream for items.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::server) enum StreamNext {
    /// Items fill the output: write them, then look for a cancel without
    /// waiting ([`Connection::stream_wait`]) and ask again.
    Write,
    /// Nothing more is ready: write what is there, then wait for the
    /// source's waker or what [`Connection::stream_wait`] says.
    Wait,
    /// Nothing more is ready, but the source's own thread is in the middle
    /// of a run (the fill took [`GATHER_FROM`] bytes or more): write what
    /// is there, then wait [`GATHER_FOR`] (or for what
    /// [`Connection::stream_wait`] says), not woken by the source, and ask
    /// again.
    Gather,
    /// The stream is over, its end frame in the output: write it, and the
    /// session goes on.
    Done,
    /// The session is over.
    End(End),
}

/// What to wait for while a stream waits for its items.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::server) enum StreamWait {
    /// The socket's readable side (a cancel may come) if `read`, else only
    /// its closing; a frame in progress is due by `due`.
    Wait { read: bool, due: Option<Instant> },
    /// A cancel was buffered: the stream is over, its end frame in the
    /// output. Consume the frame, write, and the session goes on.
    Cancelled,
    /// The rest of a frame behind the stream did not come by its
    /// deadline: write what the socket takes at once (the end frame
    /// saying so is in the output), and close.
    Overdue,
}

/// A stream being sent.
pub(super) struct Streaming {
    pub(super) source: Box<dyn Source>,
    pub(super) codec: Codec,
    /// Items may carry descriptors (the caller asked, over a socket that
    /// carries them).
    pub(super) fds: bool,
    /// Whether the socket is read for a cancel. A frame that is not a
    /// cancel (a request pipelined behind the stream) stops that: it
    /// waits, unread, for the stream to end, and only the socket closing
    /// is watched for.
    pub(super) watching: bool,
    /// When the rest of the frame in progress behind the stream is due
    /// (read while watching for a cancel): every byte a client sends is
    /// due within the idle timeout, stream or not. `None`: no frame in
    /// progress, or no idle timeout.
    pub(super) frame_due: Option<Instant>,
}

impl Connection<'_> {
    /// After a stream is over and its end frame written, the session
    /// going on: lets go of its source. `Ready` once nothing of it runs
    /// any more; `Pending` while an iterator's thread is still in its
    /// `next` (`cx`'s waker is called when it leaves), so that a
    /// connection runs at most one such thread beside its own.
    pub(in crate::server) fn poll_stream_stopped(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(source) = self.finished.as_mut() else {
            return Poll::Ready(());
        };
        let stopped = source.poll_stop(cx);
        if stopped.is_ready() {
            self.finished = None;
        }
        stopped
    }

    /// The session is over: what still runs of a stream's source (an
    /// iterator's thread in its `next`) is left to end on its own, and
    /// handed back to be counted against the caller's share until then.
    pub(in crate::server) fn detach_source(&mut self) -> Option<Detached> {
        let mut source = self
            .finished
            .take()
            .or_else(|| self.stream.take().map(|s| s.source))?;
        source.detach()
    }

    /// Asks the stream's source for what it has ready, with `cx`'s waker
    /// to call when it has more; a panicking source ends the stream with
    /// a `RuntimeError`.
    pub(in crate::server) fn fill_stream(&mut self, cx: &mut Context<'_>) -> StreamNext {
        let Some(stream) = self.stream.as_mut() else {
            return StreamNext::Done;
        };
        let (mark, fds_mark) = (self.out.len(), self.attached.len());
        let mut sink = Sink::new(
            stream.codec,
            &mut self.out,
            FLUSH_AT,
            stream.fds.then_some(&mut self.attached),
        );
        let fill = catch_unwind(AssertUnwindSafe(|| stream.source.fill(cx, &mut sink)));
        let fill = fill.unwrap_or_else(|panic| {
            // An item's `Serialize` may have panicked half way through its
            // frame; what came before it is whole, but which items did is
            // not known: none of this fill goes out, nor its descriptors.
            self.out.truncate(mark);
            self.attached.truncate(fds_mark);
            let what = panic_message(&*panic);
            tracing::error!(panic = %what, "a stream's source panicked");
            let message = if self.shared.registry.panic_details {
                format!("the stream failed: {what}")
            } else {
                "the stream failed: internal error (see the daemon's log)".to_owned()
            };
            Fill::Done(Err(RemoteError::new("RuntimeError", message)))
        });
        if !self.charge("stream items") {
            return StreamNext::End(End::OverBudget);
        }
        match fill {
            Fill::Full => StreamNext::Write,
            // Asked only of a fill that took enough to gather after.
            Fill::Pending
                if self.out.len() - mark >= GATHER_FROM
                    && self.stream.as_ref().is_some_and(|s| s.source.runs_apart()) =>
            {
                StreamNext::Gather
            }
            Fill::Pending => StreamNext::Wait,
            Fill::Done(end) => {
                self.finish_stream(end);
                StreamNext::Done
            }
        }
    }

    /// Ends the stream with `err` before it started (its driver could not
    /// set up its wait).
    pub(in crate::server) fn end_stream(&mut self, err: RemoteError) {
        self.finish_stream(Err(err));
    }

    /// Ends the stream: its end frame after what the output holds.
    fn finish_stream(&mut self, end: Result<(), RemoteError>) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let out = &mut self.out;
        let mark = frame::begin(out);
        match &end {
            Ok(()) => encode_reply_ok(stream.codec, &(), out).expect("nil always encodes"),
            Err(e) => encode_reply_error(stream.codec, e, out),
        }
        frame::finish(out, mark);
        self.finished = Some(stream.source);
        tracing::debug!(end = ?end.as_ref().err(), "stream over");
    }

    /// What a stream's wait watches for, given what the read buffer holds
    /// behind it: the next whole frame (`frame`), if one is buffered, else
    /// whether part of one is (`partial`). A cancel ends the stream; any
    /// other frame stops the reading until the stream is over; part of a
    /// frame is due within the idle timeout of `now`, the first time it
    /// is seen.
    pub(in crate::server) fn stream_wait(
        &mut self,
        frame: Option<&[u8]>,
        partial: bool,
        now: Instant,
    ) -> StreamWait {
        let idle = self.shared.config.idle_timeout;
        let limits = &self.shared.config.decode_limits;
        let Some(stream) = self.stream.as_mut() else {
            return StreamWait::Cancelled;
        };
        if let (true, Some(payload)) = (stream.watching, frame) {
            if matches!(decode_head(payload, limits), Ok(Head::Cancel(_))) {
                self.finish_stream(Err(RemoteError::new(
                    "Cancelled",
                    "the client cancelled the stream",
                )));
                return StreamWait::Cancelled;
            }
            stream.watching = false;
        }
        match idle {
            Some(idle) if stream.watching && partial => {
                let due = *stream.frame_due.get_or_insert(now + idle);
                if now >= due {
                    return self.frame_overdue();
                }
            }
            _ => stream.frame_due = None,
        }
        StreamWait::Wait {
            read: stream.watching,
            due: stream.frame_due,
        }
    }

    /// The rest of a frame did not come within the idle timeout: the
    /// stream ends with an error saying so, and the connection is cut.
    fn frame_overdue(&mut self) -> StreamWait {
        throttled!(
            self.shared.logs.bad_input,
            info,
            peer = self.peer.address(),
            "the rest of a request behind a stream did not come within the idle timeout; closing"
        );
        self.finish_stream(Err(RemoteError::new(
            "TimeoutError",
            "the rest of the next request did not come within the idle timeout; closing",
        )));
        StreamWait::Overdue
    }

    /// The socket's reading side closed while a stream was sent: the
    /// daemon is shutting down (`stopping`: the client gets a last error,
    /// if it is still there), or the client is gone (nobody to tell).
    pub(in crate::server) fn stream_gone(&mut self, stopping: bool) -> End {
        if !stopping {
            // Nobody to tell; what the source runs is let go of with the
            // session (`detach_source`).
            self.finished = self.stream.take().map(|s| s.source);
            return End::ClosedByClient;
        }
        self.finish_stream(Err(RemoteError::new(
            "Shutdown",
            "the daemon is shutting down",
        )));
        End::ShuttingDown
    }
}
