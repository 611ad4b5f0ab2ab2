//! A channel a producer feeds a stream through: [`channel`] gives the
//! [`ItemSender`] and the [`Items`] to return from the handler.
//!
//! Items are encoded as they are sent, into one buffer of framed bytes
//! that the connection takes whole: a producer faster than the socket
//! fills it to its bound and then waits, a slow one has each item written
//! as soon as the connection wakes. So the bound is in bytes (what the
//! daemon holds for the stream), not in items. A fast run (a kilobyte or
//! more taken at once) is gathered for 50 µs before its next write rather
//! than wake the connection for every few items (`server::stream`).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use anyd_wire::Codec;
use serde::Serialize;

use super::{Fill, Items, Sink, Source};
use crate::api_error::ApiError;
use crate::error::RemoteError;

/// How many bytes of encoded items a channel holds before its senders
/// wait: what the connection writes at once.
const CAPACITY: usize = 64 * 1024;

/// A channel for a stream's items: send into the [`ItemSender`] (from a
/// thread or a task), return the [`Items`] from the handler.
///
/// The stream ends when every sender is dropped (well: the client gets the
/// end), or with [`ItemSender::fail`] (the client gets that error). A
/// sender dropped while its thread panics ends the stream with a
/// `RuntimeError`.
///
/// Sending waits while the channel holds 64 KiB of items the client has
/// not taken yet, and fails with [`StreamClosed`] once the stream is over
/// (the client cancelled or went away, or the daemon is shutting down):
/// the producer's cue to stop.
///
/// An item sent after a quiet moment is written as soon as the connection
/// wakes. Items sent in a fast run (the connection took a kilobyte or more
/// at once) are gathered for 50 µs before the next write, so that the run
/// goes out in a few large writes: an item of such a run, the last one
/// too, waits that long beyond its write, plus the kernel's timer slack
/// (another 50 µs by default).
///
/// ```
/// use anyd::{Appd, Items};
///
/// let appd = Appd::new().api("progress()", || {
///     let (tx, items) = anyd::channel();
///     std::thread::spawn(move || {
///         for percent in (0..=100).step_by(20) {
///             // ... a step of the work ...
///             if tx.send(percent).is_err() {
///                 return; // nobody is listening any more
///             }
///         }
///     });
///     items
/// });
/// # let _ = appd;
/// ```
pub fn channel<T: Serialize + Send + 'static>() -> (ItemSender<T>, Items<T>) {
    // Made in a handler, the call's codec is known already: items sent
    // before the handler returns are encoded and kept for the stream.
    let codec = crate::frame_context::call_codec();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            codec,
            buf: Vec::new(),
            end: None,
            closed: false,
            senders: 1,
            consumer: None,
            producers: Vec::new(),
            blocked: 0,
            started: false,
        }),
        room: Condvar::new(),
        over: AtomicBool::new(false),
        codec: codec.map_or_else(OnceLock::new, OnceLock::from),
        handler: codec.map(|_| std::thread::current().id()),
    });
    let sender = ItemSender {
        shared: shared.clone(),
        _item: PhantomData,
    };
    (sender, Items::from_source(Box::new(Receiver { shared })))
}

/// The stream is over: the client cancelled it or went away, or the
/// daemon is shutting down. Stop producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream is closed")]
pub struct StreamClosed;

/// The sending side of a [`channel`]. Clone it to send from several
/// producers; the stream ends when the last one is dropped.
pub struct ItemSender<T> {
    shared: Arc<Shared>,
    _item: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for ItemSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemSender").finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// The call's codec, once known: read without the lock by senders, to
    /// encode before taking it.
    codec: OnceLock<Codec>,
    /// The connection thread whose handler made the channel: it cannot
    /// wait for room, since only it would make room, once the handler has
    /// returned.
    handler: Option<std::thread::ThreadId>,
    /// Signalled when the buffer has room again or the stream closes, for
    /// blocking senders.
    room: Condvar,
    /// Whether the stream is over (`State::is_over`), readable without
    /// the lock: a producer asks before each item
    /// ([`ItemSender::is_closed`]), and a lock there would be a second
    /// one an item, taken turn about with the connection's.
    over: AtomicBool,
}

struct State {
    /// The codec of the call, known once the stream starts: items are
    /// encoded in it. Senders wait until then.
    codec: Option<Codec>,
    /// Framed items not yet taken by the connection.
    buf: Vec<u8>,
    /// How the producers ended the stream, once they have.
    end: Option<Result<(), RemoteError>>,
    /// The stream is over for the client: nothing more is taken.
    closed: bool,
    /// Live senders; the last one to go ends the stream.
    senders: usize,
    /// The connection, waiting for items.
    consumer: Option<Waker>,
    /// Async senders waiting for room.
    producers: Vec<Waker>,
    /// Blocking senders waiting for room (notifying a condition variable
    /// costs a system call even when nobody waits).
    blocked: usize,
    /// The connection has asked for items: the handler has returned.
    started: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes note of `state` being over, if it is (it stays so): called,
    /// lock held, wherever the stream may have ended.
    fn note_over(&self, state: &State) {
        if state.is_over() {
            self.over.store(true, Ordering::Release);
        }
    }
}

impl State {
    /// Closed by the connection, or ended by a sender: sending fails.
    fn is_over(&self) -> bool {
        self.closed || self.end.is_some()
    }

    /// Whether a sender may encode an item now.
    fn has_room(&self) -> bool {
        self.codec.is_some() && self.buf.len() < CAPACITY
    }

    /// Appends an item framed by [`encode`] (the caller checked for room)
    /// and says whom to wake.
    fn push(&mut self, item: Result<&[u8], RemoteError>) -> Option<Waker> {
        if self.closed {
            // Closed since the sender looked: nobody will read it.
            return None;
        }
        match item {
            Ok(bytes) => self.buf.extend_from_slice(bytes),
            Err(e) => {
                self.end.get_or_insert(Err(e));
            }
        }
        self.consumer.take()
    }

    /// Ends the stream from the producers' side, if not ended already.
    fn finish(&mut self, end: Result<(), RemoteError>) -> Option<Waker> {
        self.end.get_or_insert(end);
        self.consumer.take()
    }
}

/// Frames `item` into `scratch` in `codec`, outside the channel's lock:
/// the connection takes the buffer meanwhile.
fn encode<'s, T: Serialize>(
    codec: Codec,
    item: &T,
    scratch: &'s mut Vec<u8>,
) -> Result<&'s [u8], RemoteError> {
    scratch.clear();
    // Made here for whichever connection sends the stream: it can carry
    // no descriptor (the connection frames none of its own for it).
    Sink::new(codec, scratch, usize::MAX, None).push(item)?;
    Ok(scratch)
}

impl<T: Serialize> ItemSender<T> {
    /// Sends one item, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`StreamClosed`] once the stream is over: stop producing.
    pub fn send(&self, item: T) -> Result<(), StreamClosed> {
        crate::frame_context::with_scratch(|scratch| {
            // Encoded before the lock once the codec is known (the steady
            // state): one lock an item, held only to append.
            let framed = self
                .shared
                .codec
                .get()
                .map(|&codec| encode(codec, &item, scratch).map(|b| b.len()));
            let mut state = self.shared.lock();
            loop {
                if state.is_over() {
                    return Err(StreamClosed);
                }
                if let (true, Some(codec)) = (state.has_room(), state.codec) {
                    let framed = match framed {
                        Some(f) => f,
                        None => encode(codec, &item, scratch).map(|b| b.len()),
                    };
                    let wake = state.push(framed.map(|n| &scratch[..n]));
                    self.shared.note_over(&state);
                    drop(state);
                    if let Some(w) = wake {
                        w.wake();
                    }
                    return Ok(());
                }
                if !state.started && self.shared.handler == Some(std::thread::current().id()) {
                    panic!(
                        "anyd: a handler sent more than 64 KiB of items into its channel before \
                         returning the stream, which cannot be sent before it returns: send from \
                         a thread or task of its own"
                    );
                }
                state.blocked += 1;
                state = self
                    .shared
                    .room
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
                state.blocked -= 1;
            }
        })
    }

    /// Sends one item from async code, waiting (without blocking the
    /// thread) while the channel is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_async(&self, item: T) -> Result<(), StreamClosed> {
        std::future::poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.is_over() {
                return Poll::Ready(Err(StreamClosed));
            }
            let (true, Some(codec)) = (state.has_room(), state.codec) else {
                if !state.started && self.shared.handler == Some(std::thread::current().id()) {
                    panic!(
                        "anyd: a handler sent more than 64 KiB of items into its channel before \
                         returning the stream, which cannot be sent before it returns: send from \
                         a thread or task of its own"
                    );
                }
                if !state.producers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.producers.push(cx.waker().clone());
                }
                return Poll::Pending;
            };
            drop(state);
            let wake = crate::frame_context::with_scratch(|scratch| {
                let framed = encode(codec, &item, scratch);
                let mut state = self.shared.lock();
                let wake = state.push(framed);
                self.shared.note_over(&state);
                wake
            });
            if let Some(w) = wake {
                w.wake();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Whether the stream is over (sending would fail): a producer that
    /// waits for events between items can check this to stop early.
    pub fn is_closed(&self) -> bool {
        self.shared.over.load(Ordering::Acquire)
    }

    /// Ends the stream with `error`, which the client gets after the items
    /// sent before it.
    pub fn fail(self, error: impl ApiError) {
        let mut state = self.shared.lock();
        let wake = state.finish(Err(error.into_remote()));
        self.shared.note_over(&state);
        drop(state);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<T> Clone for ItemSender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        ItemSender {
            shared: self.shared.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> Drop for ItemSender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let wake = if std::thread::panicking() {
            state.finish(Err(RemoteError::new(
                "RuntimeError",
                "the stream's producer failed: internal error (see the daemon's log)",
            )))
        } else if state.senders == 0 {
            state.finish(Ok(()))
        } else {
            None
        };
        self.shared.note_over(&state);
        drop(state);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// The connection's side.
struct Receiver {
    shared: Arc<Shared>,
}

impl Source for Receiver {
    fn runs_apart(&self) -> bool {
        true
    }

    fn fill(&mut self, cx: &mut Context<'_>, sink: &mut Sink<'_>) -> Fill {
        let codec = sink.codec();
        let out = sink.out();
        let _ = self.shared.codec.set(codec);
        let mut state = self.shared.lock();
        state.codec = Some(codec);
        state.started = true;
        if !state.buf.is_empty() {
            if out.is_empty() {
                // The common case: take the buffer whole, and give the
                // senders the connection's (empty) one to fill next.
                std::mem::swap(out, &mut state.buf);
            } else {
                out.extend_from_slice(&state.buf);
                state.buf.clear();
            }
        }
        let end = state.end.take();
        if end.is_some() {
            // Over: further sends fail, rather than vanish while the end
            // frame is written.
            state.closed = true;
            self.shared.note_over(&state);
        }
        // Room was made (or the codec became known): wake who waits for it.
        let producers = std::mem::take(&mut state.producers);
        let blocked = state.blocked > 0;
        if end.is_none() {
            state.consumer = Some(cx.waker().clone());
        }
        drop(state);
        if blocked {
            self.shared.room.notify_all();
        }
        for w in producers {
            w.wake();
        }
        match end {
            Some(end) => Fill::Done(end),
            None => Fill::Pending,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.note_over(&state);
        state.buf = Vec::new();
        let producers = std::mem::take(&mut state.producers);
        // The connection's waker: senders that outlive the stream must not
        // keep what it holds.
        let consumer = state.consumer.take();
        drop(state);
        drop(consumer);
        self.shared.room.notify_all();
        for w in producers {
            w.wake();
        }
    }
}
