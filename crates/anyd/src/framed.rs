//! Frames over a blocking stream, and the handshake driven over them:
//! [`Framed`] is a [`Stream`] with a [`FrameBuffer`], read with deadlines.
//! Shared by the server's connection loop and the blocking client.
//!
//! It owns the blocking reads and their timeouts, and writes with a
//! deadline for the whole ([`write_all_within`]). The buffer's growth, its
//! limit and its memory budget are `frame_buffer`'s; what the handshake
//! sends and what its failures mean are `handshake`'s.

use std::io::{self, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use anyd_wire::frame::FrameError;
use anyd_wire::handshake::{Handshake, MAX_HANDSHAKE_FRAME};

use crate::error::Error;
use crate::frame_buffer::{FrameBuffer, ReadError};
use crate::handshake::{self, HandshakeRun};
use crate::transport::fds::{self, FdError, OutFd};
use crate::transport::Stream;
use rustix::net::RecvFlags;
use std::os::fd::{AsFd, OwnedFd};
// The daemon's: budgets, and the writes of replies with deadlines.
#[cfg(feature = "server")]
use {crate::budget::Charge, crate::fd_budget::FdCharge, crate::transport::fds::Attached};

/// A stream with a read buffer that yields whole frames.
///
/// Its `Debug` shows the socket and how much the buffer holds, never the
/// bytes in it.
pub(crate) struct Framed {
    pub(crate) stream: Stream,
    buf: FrameBuffer,
    /// A Unix socket: reads take the descriptors that come with the bytes.
    fds: bool,
}

impl std::fmt::Debug for Framed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // By hand, so that a field added later is not shown unread.
        let Framed { stream, buf, fds } = self;
        f.debug_struct("Framed")
            .field("stream", stream)
            .field("buf", buf)
            .field("fds", fds)
            .finish()
    }
}

/// Who is told when a read waits for a new frame (see
/// [`Framed::read_frame_idle`]): the daemon's idle timeout keeper; nobody
/// on a client's side (`()`).
pub(crate) trait Wait {
    /// The read is about to wait for a new frame's first bytes.
    fn start(&self) {}
    /// The wait is over; false if it was cut meanwhile.
    fn stop(&self) -> bool {
        true
    }
}

impl Wait for () {}

impl Framed {
    #[cfg(feature = "server")]
    pub(crate) fn new(stream: Stream, max_frame: usize) -> Self {
        Framed {
            fds: stream.carries_fds(),
            stream,
            buf: FrameBuffer::new(max_frame),
        }
    }

    /// As [`new`](Self::new), with a client's buffer
    /// ([`FrameBuffer::for_client`]).
    #[cfg(feature = "client")]
    pub(crate) fn for_client(stream: Stream, max_frame: usize) -> Self {
        Framed {
            fds: stream.carries_fds(),
            stream,
            buf: FrameBuffer::for_client(max_frame),
        }
    }

    /// Counts the buffer against a memory budget: a read that would grow it
    /// past what the budget has left fails with `ErrorKind::OutOfMemory`
    /// instead.
    #[cfg(feature = "server")]
    pub(crate) fn charge_to(&mut self, charge: Charge) {
        self.buf.charge_to(charge);
    }

    /// Counts the descriptors held for frames in progress against the
    /// daemon's descriptor budget (see [`FrameBuffer::charge_fds_to`]).
    #[cfg(feature = "server")]
    pub(crate) fn charge_fds_to(&mut self, charge: FdCharge) {
        self.buf.charge_fds_to(charge);
    }

    pub(crate) fn set_max_frame(&mut self, max: usize) {
        self.buf.set_max_frame(max);
    }

    /// Whether part of a frame is buffered (see
    /// [`FrameBuffer::has_pending_bytes`]).
    #[cfg(feature = "server")]
    pub(crate) fn has_pending_bytes(&self) -> bool {
        self.buf.has_pending_bytes()
    }

    /// The bytes buffered that are not yet handed out as frames (see
    /// [`FrameBuffer::pending`]).
    #[cfg(feature = "server")]
    pub(crate) fn pending(&self) -> &[u8] {
        self.buf.pending()
    }

    /// The next frame if it is already buffered; its payload is
    /// `self.payload(range)` until the next call that reads.
    #[inline]
    pub(crate) fn buffered_frame(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        self.buf.next_frame()
    }

    /// Whether this connection's reads take descriptors: a Unix socket,
    /// on a side that takes them.
    pub(crate) fn takes_fds(&self) -> bool {
        self.fds
    }

    /// Whether the reads from here on make room for descriptors
    /// (`recvmsg`) or not (`recv`, the kernel closing any that come): a
    /// client's, per exchange, by what its reply may hold.
    #[cfg(feature = "client")]
    pub(crate) fn read_fds(&mut self, on: bool) {
        self.fds = on;
    }

    /// Reads with plain `recv` from here on (the kernel closes any
    /// descriptor that comes): for a side that takes none.
    pub(crate) fn refuse_fds(&mut self) {
        self.fds = false;
    }

    /// The descriptors that came with the frame handed out last (see
    /// [`FrameBuffer::take_frame_fds`]).
    pub(crate) fn take_frame_fds(&mut self) -> Result<Vec<OwnedFd>, FdError> {
        self.buf.take_frame_fds()
    }

    /// The read buffer, for a client's fast path over frames already
    /// buffered ([`FrameBuffer::plain_frame`]).
    #[cfg(feature = "client")]
    pub(crate) fn buffer_mut(&mut self) -> &mut FrameBuffer {
        &mut self.buf
    }

    /// The next frame if it is already buffered, left in place (see
    /// [`FrameBuffer::peek_frame`]).
    #[cfg(feature = "server")]
    pub(crate) fn peeked_frame(&self) -> Result<Option<Range<usize>>, FrameError> {
        self.buf.peek_frame()
    }

    /// Reads what the socket has now, without waiting: `Ok(false)` at the
    /// end of the stream, `Ok(true)` otherwise (having read or not).
    #[cfg(feature = "server")]
    pub(crate) fn fill_now(&mut self) -> Result<bool, ReadError> {
        match self.read_once(RecvFlags::DONTWAIT) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// One read into the buffer (with the descriptors that come, on a
    /// Unix socket): how many bytes, 0 at the end of the stream.
    #[inline]
    fn read_once(&mut self, flags: RecvFlags) -> io::Result<usize> {
        let spare = self.buf.spare()?;
        if self.fds {
            let (n, arrival) = fds::recv_with_fds(self.stream.as_fd(), spare, flags)?;
            self.buf.filled_with(n, arrival)?;
            return Ok(n);
        }
        let n = fds::recv(self.stream.as_fd(), spare, flags)?;
        self.buf.filled(n);
        Ok(n)
    }

    /// The next frame, reading as needed, with the whole frame due by
    /// `deadline` if there is one; `Ok(None)` is a clean end of stream
    /// between frames. The read timeout is set to what is left of the
    /// deadline before each read, so that a peer trickling a byte at a time
    /// gets no more time than a silent one. A deadline that passes is a
    /// `TimedOut` error.
    pub(crate) fn read_frame_by(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Range<usize>>, ReadError> {
        loop {
            if let Some(r) = self.buffered_frame().map_err(ReadError::Frame)? {
                return Ok(Some(r));
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ReadError::Io(io::ErrorKind::TimedOut.into()));
                }
                self.stream
                    .set_read_timeout(Some(left))
                    .map_err(ReadError::Io)?;
            }
            if !self.fill_some()? {
                return self.clean_end();
            }
        }
    }

    /// The next frame, its first bytes waited for as long as the socket's
    /// read timeout says (it rests at `rest`), the rest of it due within
    /// `idle` of them however it trickles in (so a frame takes at most
    /// twice `idle` where the socket's timeout is `idle`). A frame already
    /// buffered or arriving in one read (the steady state) costs no clock
    /// read and no system call for timeouts; one that takes more reads
    /// gets what is left, and the read timeout is put back at `rest` after.
    ///
    /// `wait` is told when the read waits for a new frame's first bytes
    /// ([`Wait::start`]) and when that wait is over ([`Wait::stop`]); a
    /// wait it says was cut meanwhile is a `TimedOut` error, whatever the
    /// read got.
    pub(crate) fn read_frame_idle(
        &mut self,
        idle: Option<Duration>,
        rest: Option<Duration>,
        wait: &impl Wait,
    ) -> Result<Option<Range<usize>>, ReadError> {
        if let Some(r) = self.buffered_frame().map_err(ReadError::Frame)? {
            return Ok(Some(r));
        }
        wait.start();
        let filled = self.fill_some();
        if !wait.stop() {
            return Err(ReadError::Io(io::ErrorKind::TimedOut.into()));
        }
        if !filled? {
            return self.clean_end();
        }
        if let Some(r) = self.buffered_frame().map_err(ReadError::Frame)? {
            return Ok(Some(r));
        }
        let Some(idle) = idle else {
            return self.read_frame_by(None);
        };
        let result = self.read_frame_by(Some(Instant::now() + idle));
        self.stream.set_read_timeout(rest).map_err(ReadError::Io)?;
        result
    }

    /// One read into the buffer; false at the end of the stream. Fails
    /// with `ErrorKind::OutOfMemory` if the room needed is more than the
    /// memory budget has left.
    #[inline]
    fn fill_some(&mut self) -> Result<bool, ReadError> {
        self.read_once(RecvFlags::empty())
            .map(|n| n > 0)
            .map_err(ReadError::Io)
    }

    /// The end of the stream: clean between frames, an error inside one.
    fn clean_end(&self) -> Result<Option<Range<usize>>, ReadError> {
        self.buf
            .check_eof()
            .map(|()| None)
            .map_err(ReadError::Frame)
    }

    #[inline]
    pub(crate) fn payload(&self, range: Range<usize>) -> &[u8] {
        self.buf.payload(range)
    }

    /// Sends what a handshake has to send, if anything.
    fn send_pending(&mut self, run: &mut HandshakeRun<'_, impl Handshake>) -> io::Result<()> {
        if !run.to_send().is_empty() {
            self.stream.write_all(run.to_send())?;
            run.sent();
        }
        Ok(())
    }
}

/// Writes all of `bytes`, the whole due within `within` of the start
/// however slowly the peer reads (`None`: blocks as long as it takes). A
/// deadline that passes is a `TimedOut` error.
///
/// A socket's send timeout cannot do this: a blocking `send` waits afresh
/// for each chunk of buffer space the peer frees, so a peer that reads a
/// little before each timeout could hold one write (and the bytes it
/// sends) for hours. Here every `send` takes what fits without waiting,
/// and the waits between them get what is left of the deadline. A write
/// the socket takes at once (the steady state: a reply smaller than the
/// socket buffer) is one `send`, with no clock read.
#[cfg(feature = "server")]
#[inline]
pub(crate) fn write_all_within(
    stream: &mut Stream,
    bytes: &[u8],
    within: Option<Duration>,
) -> io::Result<()> {
    let Some(within) = within else {
        return stream.write_all(bytes);
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let sent = send_now(stream, bytes, fds::NO_FDS)?;
    if sent == bytes.len() {
        return Ok(());
    }
    let mut due = Due {
        within: Some(within),
        by: None,
    };
    write_part(stream, &bytes[sent..], &[], &mut due)
}

/// Writes one frame, blocking (within the socket's send timeout), with
/// `fds` attached to its first bytes.
#[cfg(feature = "client")]
pub(crate) fn write_frame(stream: &mut Stream, bytes: &[u8], fds: &[OutFd]) -> io::Result<()> {
    if fds.is_empty() {
        return stream.write_all(bytes);
    }
    let sent = fds::send_with_fds(stream.as_fd(), bytes, fds, rustix::net::SendFlags::empty())?;
    stream.write_all(&bytes[sent..])
}

/// Writes all of `out` as [`write_all_within`] does, each frame of
/// `attached` in a `sendmsg` of its own bytes that carries its descriptors
/// (so that the reader hands them to that frame: `transport::fds`).
/// `attached` is emptied whatever happens, letting go of its descriptors.
#[cfg(feature = "server")]
#[inline]
pub(crate) fn write_out(
    stream: &mut Stream,
    out: &[u8],
    attached: &mut Attached,
    within: Option<Duration>,
) -> io::Result<()> {
    if attached.is_empty() {
        return write_all_within(stream, out, within);
    }
    let mut due = Due { within, by: None };
    let mut at = 0;
    for (frame, fds) in attached.drain(..) {
        if at < frame.start {
            write_part(stream, &out[at..frame.start], &[], &mut due)?;
        }
        write_part(stream, &out[frame.clone()], &fds, &mut due)?;
        at = frame.end;
    }
    if at == out.len() {
        return Ok(());
    }
    write_part(stream, &out[at..], &[], &mut due)
}

/// The deadline of one [`write_out`], from the first send that leaves
/// bytes behind: writes the socket takes at once read no clock.
#[cfg(feature = "server")]
struct Due {
    within: Option<Duration>,
    by: Option<Instant>,
}

#[cfg(feature = "server")]
impl Due {
    /// What is left of the deadline (`None`: no deadline), started now if
    /// it was not.
    ///
    /// # Errors
    ///
    /// `TimedOut` once it has passed.
    fn left(&mut self) -> io::Result<Option<Duration>> {
        let Some(within) = self.within else {
            return Ok(None);
        };
        let now = Instant::now();
        let by = *self.by.get_or_insert(now + within);
        match by.saturating_duration_since(now) {
            left if left.is_zero() => Err(io::ErrorKind::TimedOut.into()),
            left => Ok(Some(left)),
        }
    }
}

/// Writes all of `bytes` with `fds` attached to the first of them that
/// the socket takes, within what is left of `due`: each `send` takes what
/// fits without waiting, and the waits between them get what is left.
#[cfg(feature = "server")]
fn write_part(stream: &Stream, mut bytes: &[u8], fds: &[OutFd], due: &mut Due) -> io::Result<()> {
    let mut fds = fds;
    loop {
        let sent = send_now(stream, bytes, fds)?;
        if sent > 0 {
            // The descriptors went with these bytes.
            fds = &[];
            bytes = &bytes[sent..];
        }
        if bytes.is_empty() {
            return Ok(());
        }
        wait_writable(stream, due.left()?)?;
    }
}

/// One `send` of what the socket takes now without waiting (0 if none),
/// never raising SIGPIPE; `fds` go with its bytes if any are taken.
#[cfg(feature = "server")]
#[inline]
fn send_now<F: AsFd>(stream: &Stream, bytes: &[u8], fds: &[F]) -> io::Result<usize> {
    use rustix::net::SendFlags;
    match fds::send_with_fds(stream.as_fd(), bytes, fds, SendFlags::DONTWAIT) {
        Ok(n) => Ok(n),
        Err(rustix::io::Errno::AGAIN) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Waits up to `timeout` (`None`: as long as it takes) for room in the
/// socket's send buffer, or for the socket to fail (the next `send` then
/// says how).
#[cfg(feature = "server")]
fn wait_writable(stream: &Stream, timeout: Option<Duration>) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = timeout
        .map(Timespec::try_from)
        .transpose()
        .map_err(io::Error::other)?;
    let mut fds = [PollFd::new(stream, PollFlags::OUT)];
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs a handshake to completion within `timeout` overall (a peer
/// trickling bytes gets no more time than a silent one). Frames are capped
/// at [`MAX_HANDSHAKE_FRAME`] for its duration.
pub(crate) fn handshake(
    conn: &mut Framed,
    side: &mut impl Handshake,
    timeout: Option<Duration>,
    max_frame_after: usize,
) -> Result<(), Error> {
    let deadline = timeout.map(|t| Instant::now() + t);
    conn.set_max_frame(MAX_HANDSHAKE_FRAME);
    let mut run = HandshakeRun::start(side);
    conn.send_pending(&mut run)?;
    if deadline.is_none() {
        conn.stream.set_read_timeout(None)?;
    }
    loop {
        // The deadline is for the whole handshake, and for each frame
        // within it however its bytes arrive.
        let range = handshake::frame_read(conn.read_frame_by(deadline))?;
        if let Err(e) = run.receive(conn.payload(range)) {
            let _ = conn.send_pending(&mut run);
            return Err(e);
        }
        conn.send_pending(&mut run)?;
        if run.is_done() {
            conn.set_max_frame(max_frame_after);
            conn.stream.set_read_timeout(None)?;
            return Ok(());
        }
    }
}

#[cfg(all(test, feature = "server"))]
mod tests;
