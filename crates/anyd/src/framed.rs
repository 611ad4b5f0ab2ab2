//! Frames over a blocking stream, and the handshake driven over them.
//! Shared by the server's connection loop and the blocking client.
//!
//! A read buffer grows with the frame in progress; on the server it draws
//! what it grows beyond [`GROWTH_STEP`] from the daemon's memory budget
//! (see `budget`). Writes with a deadline for the whole
//! ([`write_all_within`]) are here too.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use anyd_wire::frame::{self, FrameError};
use anyd_wire::handshake::{
    ClientHandshake, Handshake, HandshakeOptions, ServerHandshake, CHALLENGE_RANDOM_LEN,
    MAX_HANDSHAKE_FRAME,
};

use crate::budget::Charge;
use crate::error::Error;
use crate::transport::Stream;

/// Where a read buffer starts, and what it shrinks back to after a large
/// message: small, because an idle connection keeps it.
const INITIAL_BUFFER: usize = 4096;

/// The most a read buffer grows by before the bytes to fill it have
/// arrived; also what it may hold without drawing on a memory budget
/// (every frame up to this size, the small calls of the steady state).
pub(crate) const GROWTH_STEP: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The socket failed, or a read timeout fired (`WouldBlock`/`TimedOut`).
    Io(io::Error),
    /// A bad header, or end of stream inside a frame.
    Frame(FrameError),
}

impl ReadError {
    pub(crate) fn into_error(self, waiting_for: &'static str) -> Error {
        match self {
            ReadError::Io(e) => Error::from_io(e, waiting_for),
            ReadError::Frame(e) => Error::Protocol(e.to_string()),
        }
    }
}

/// A stream with a read buffer that yields whole frames.
#[derive(Debug)]
pub(crate) struct Framed {
    pub(crate) stream: Stream,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`; `buf.len()` is the capacity
    /// reads may fill.
    start: usize,
    end: usize,
    max_frame: usize,
    /// What the buffer draws from the daemon's memory budget (none on the
    /// client's side).
    charge: Option<Charge>,
}

impl Framed {
    pub(crate) fn new(stream: Stream, max_frame: usize) -> Self {
        Framed {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
            charge: None,
        }
    }

    /// Counts the buffer against a memory budget: a read that would grow it
    /// past what the budget has left fails with `ErrorKind::OutOfMemory`
    /// instead.
    pub(crate) fn charge_to(&mut self, charge: Charge) {
        self.charge = Some(charge);
    }

    pub(crate) fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// The next frame if it is already buffered; its payload is
    /// `self.payload(range)` until the next call that reads.
    pub(crate) fn buffered_frame(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        match frame::decode(&self.buf[self.start..self.end], self.max_frame)? {
            Some(f) => {
                let range = self.start + f.payload.start..self.start + f.payload.end;
                self.start += f.consumed;
                Ok(Some(range))
            }
            None => Ok(None),
        }
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

    /// The next frame on a socket whose read timeout rests at `idle`: the
    /// wait for the frame's first bytes is the socket's, and the rest of
    /// the frame is due within `idle` of them however it trickles in (so
    /// a frame takes at most twice `idle`). A frame already buffered or
    /// arriving in one read (the steady state) costs no clock read and no
    /// system call for timeouts; one that takes more reads gets what is
    /// left, and the resting timeout is put back after.
    pub(crate) fn read_frame_idle(
        &mut self,
        idle: Option<Duration>,
    ) -> Result<Option<Range<usize>>, ReadError> {
        if let Some(r) = self.buffered_frame().map_err(ReadError::Frame)? {
            return Ok(Some(r));
        }
        if !self.fill_some()? {
            return self.clean_end();
        }
        if let Some(r) = self.buffered_frame().map_err(ReadError::Frame)? {
            return Ok(Some(r));
        }
        let Some(idle) = idle else {
            return self.read_frame_by(None);
        };
        let result = self.read_frame_by(Some(Instant::now() + idle));
        self.stream
            .set_read_timeout(Some(idle))
            .map_err(ReadError::Io)?;
        result
    }

    /// One read; false at the end of the stream.
    fn fill_some(&mut self) -> Result<bool, ReadError> {
        self.fill().map(|n| n > 0).map_err(ReadError::Io)
    }

    /// The end of the stream: clean between frames, an error inside one.
    fn clean_end(&self) -> Result<Option<Range<usize>>, ReadError> {
        frame::check_eof(self.end - self.start)
            .map(|()| None)
            .map_err(ReadError::Frame)
    }

    pub(crate) fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// One read into the buffer, making room first: returns the bytes read.
    /// Fails with `ErrorKind::OutOfMemory` if the room needed is more than
    /// the memory budget has left.
    fn fill(&mut self) -> io::Result<usize> {
        let pending = self.end - self.start;
        // How much room the frame in progress needs (the header was already
        // checked against the limit by `buffered_frame`).
        let need = match frame::decode_header(&self.buf[self.start..self.end], usize::MAX) {
            Ok(Some(h)) => h.header_len + h.payload_len,
            _ => frame::LONG_HEADER_LEN,
        };
        // Room for the frame in progress, but no more than twice what has
        // arrived of it: a header alone, claiming a frame at the size
        // limit, then costs its sender the bytes, not the daemon the
        // memory. The buffer doubles as the payload comes.
        let want = need
            .min(pending.saturating_mul(2).max(GROWTH_STEP))
            .max(INITIAL_BUFFER);
        // Give back what a large message took once it is done: an idle
        // connection keeps its buffer.
        let shrink = self.buf.len() > 16 * INITIAL_BUFFER && want.max(pending) <= INITIAL_BUFFER;
        if self.start > 0 && (pending == 0 || shrink || self.start + want > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if shrink {
            self.buf.truncate(INITIAL_BUFFER);
            self.buf.shrink_to_fit();
            if let Some(charge) = &mut self.charge {
                charge.hold(self.buf.len());
            }
        }
        let len = self.start + want;
        if self.buf.len() < len {
            // Frames up to `GROWTH_STEP` never get here once the buffer
            // has grown for the first one: the steady state does not touch
            // the budget.
            if let Some(charge) = &mut self.charge {
                if !charge.hold(len) {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "a frame in progress would take the daemon over its memory budget",
                    ));
                }
            }
            // Exactly what is asked for, not the doubling of `resize`: the
            // budget counts what the buffer holds.
            self.buf.reserve_exact(len - self.buf.len());
            self.buf.resize(len, 0);
        }
        let n = loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.end += n;
        Ok(n)
    }

    /// Sends one payload in one frame.
    pub(crate) fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + frame::HEADER_LEN);
        frame::encode(payload, &mut out);
        self.stream.write_all(&out)
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
    let sent = send_now(stream, bytes)?;
    if sent == bytes.len() {
        return Ok(());
    }
    write_rest_within(stream, &bytes[sent..], within)
}

/// The rest of [`write_all_within`], once the socket has not taken all
/// at once.
#[inline(never)]
fn write_rest_within(stream: &Stream, mut bytes: &[u8], within: Duration) -> io::Result<()> {
    let deadline = Instant::now() + within;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        wait_writable(stream, left)?;
        bytes = &bytes[send_now(stream, bytes)?..];
    }
    Ok(())
}

/// One `send` of what the socket takes now without waiting (0 if none),
/// never raising SIGPIPE.
#[inline]
fn send_now(stream: &Stream, bytes: &[u8]) -> io::Result<usize> {
    use rustix::net::SendFlags;
    loop {
        match rustix::net::send(stream, bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits up to `timeout` for room in the socket's send buffer, or for the
/// socket to fail (the next `send` then says how).
fn wait_writable(stream: &Stream, timeout: Duration) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec::try_from(timeout).map_err(io::Error::other)?;
    let mut fds = [PollFd::new(stream, PollFlags::OUT)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Fresh challenge bytes from the OS.
pub(crate) fn challenge_random() -> io::Result<[u8; CHALLENGE_RANDOM_LEN]> {
    let mut random = [0u8; CHALLENGE_RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(random)
}

pub(crate) fn server_side(
    authkey: &[u8],
    options: HandshakeOptions,
) -> io::Result<ServerHandshake> {
    Ok(ServerHandshake::new(authkey, options, challenge_random()?))
}

pub(crate) fn client_side(
    authkey: &[u8],
    options: HandshakeOptions,
) -> io::Result<ClientHandshake> {
    Ok(ClientHandshake::new(authkey, options, challenge_random()?))
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
    if let Some(first) = side.start() {
        conn.send(&first)?;
    }
    if deadline.is_none() {
        conn.stream.set_read_timeout(None)?;
    }
    loop {
        // The deadline is for the whole handshake, and for each frame
        // within it however its bytes arrive.
        let range = match conn.read_frame_by(deadline) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Error::Protocol(
                "the peer closed the connection during the handshake (a wrong or missing authkey?)"
                    .into(),
            )),
            Err(ReadError::Frame(FrameError::TooLarge { len, .. })) => {
                return Err(Error::Protocol(format!(
                    "a {len}-byte frame during the handshake (a peer without an authkey?)"
                )))
            }
            Err(e) => return Err(e.into_error("during the handshake")),
        };
        let payload = conn.payload(range).to_vec();
        match side.receive(&payload) {
            Ok(step) => {
                if let Some(send) = step.send {
                    conn.send(&send)?;
                }
                if step.done {
                    conn.set_max_frame(max_frame_after);
                    conn.stream.set_read_timeout(None)?;
                    return Ok(());
                }
            }
            Err(e) => {
                if let Some(last) = e.send_before_close() {
                    let _ = conn.send(last);
                }
                return Err(Error::Auth(e));
            }
        }
    }
}
