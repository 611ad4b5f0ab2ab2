//! The read buffer of a connection: bytes in, whole frames out. Runtime
//! free and socket free: the blocking `Framed` (server and blocking
//! client) and the async client fill it with their own reads.
//!
//! It owns the growth policy (grow with the frame in progress, never more
//! than twice what has arrived of it, shrink back after a large message),
//! the frame size limit (checked on the header, before any allocation) and
//! what the buffer draws from a memory budget when it has one (the
//! server's). Not having a whole frame yet is `Ok(None)`, a normal outcome.
//!
//! It does not read, wait or time anything (the callers do), and it does
//! not decide what a full budget or a bad frame means for the connection.
//!
//! A read goes in two steps, [`FrameBuffer::spare`] then
//! [`FrameBuffer::filled`]: a read cancelled between them (an async one
//! whose future is dropped) leaves the buffer as it was.

use std::io;
use std::ops::Range;

use anyd_wire::frame::{self, FrameError};

#[cfg(feature = "server")]
use crate::budget::Charge;
use crate::error::Error;
#[cfg(feature = "server")]
use crate::fd_budget::FdCharge;
use crate::transport::fds::{Arrival, FdError, FdQueue};
use std::os::fd::OwnedFd;

/// Where a read buffer starts, and what it shrinks back to after a large
/// message: small, because an idle connection keeps it. A kibibyte holds
/// the usual call whole; a larger frame grows the buffer to its size, kept
/// up to 16 times this. (At 4 KiB, an idle daemon connection, its thread's
/// stack included, cost 18.6 KiB of the daemon's memory; at 1 KiB, 15.6.)
const INITIAL_BUFFER: usize = 1024;

/// The most a read buffer grows by before the bytes to fill it have
/// arrived; also what it may hold without drawing on a memory budget
/// (every frame up to this size, the small calls of the steady state).
pub(crate) const GROWTH_STEP: usize = 64 * 1024;

/// Why no frame could be read from a stream into a [`FrameBuffer`]; a
/// clean end of the stream between frames is not an error but `Ok(None)`.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The socket failed, a read timeout fired (`WouldBlock`/`TimedOut`),
    /// or the buffer could not grow (`OutOfMemory`).
    Io(io::Error),
    /// A bad header, or end of stream inside a frame.
    Frame(FrameError),
}

impl ReadError {
    pub(crate) fn into_error(self, waiting_for: &'static str) -> Error {
        match self {
            ReadError::Io(e) => Error::from_io(e, waiting_for),
            ReadError::Frame(e) => Error::from_frame(e, waiting_for),
        }
    }
}

/// Bytes read from a stream, not yet handed out as frames.
///
/// Its `Debug` says how much it holds, never what: the bytes are a peer's
/// (a handshake's MAC, a reply's payload).
pub(crate) struct FrameBuffer {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`; `buf.len()` is the capacity
    /// reads may fill.
    start: usize,
    end: usize,
    /// The largest payload accepted, checked on each header.
    max_frame: usize,
    /// What the buffer draws from the daemon's memory budget (none on the
    /// clients' side).
    #[cfg(feature = "server")]
    charge: Option<Charge>,
    /// The least room a read is offered, and what the buffer shrinks back
    /// to: small on the daemon's side, where idle connections keep their
    /// buffers; larger on a client's, where a stream's small frames then
    /// come many to a read.
    min_room: usize,
    /// The stream offset of `buf[0]`: descriptors are placed by offset.
    base: u64,
    /// Descriptors that came with bytes not yet handed out as frames.
    fds: FdQueue,
    /// The descriptors of the frame handed out last, until taken (those
    /// not taken are closed with the next frame).
    frame_fds: Result<Vec<OwnedFd>, FdError>,
    /// Whether `fds` or `frame_fds` may hold something: the next frame
    /// must then be handed its own (and the last one's closed).
    fds_pending: bool,
}

impl std::fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("FrameBuffer");
        f.field("buffered", &(self.end - self.start))
            .field("capacity", &self.buf.len())
            .field("max_frame", &self.max_frame);
        #[cfg(feature = "server")]
        f.field("budgeted", &self.charge.is_some());
        f.field("fds_pending", &self.fds_pending)
            .finish_non_exhaustive()
    }
}

impl FrameBuffer {
    /// An empty buffer accepting payloads up to `max_frame` bytes; it
    /// allocates on the first read.
    pub(crate) fn new(max_frame: usize) -> Self {
        FrameBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
            #[cfg(feature = "server")]
            charge: None,
            min_room: INITIAL_BUFFER,
            base: 0,
            fds: FdQueue::default(),
            frame_fds: Ok(Vec::new()),
            fds_pending: false,
        }
    }

    /// A client's buffer: reads of at least [`GROWTH_STEP`] bytes, so
    /// that a stream of small items costs one read per many of them.
    #[cfg(feature = "client")]
    pub(crate) fn for_client(max_frame: usize) -> Self {
        FrameBuffer {
            min_room: GROWTH_STEP,
            ..FrameBuffer::new(max_frame)
        }
    }

    /// Counts the buffer against a memory budget: growing it past what the
    /// budget has left fails with `ErrorKind::OutOfMemory` instead.
    #[cfg(feature = "server")]
    pub(crate) fn charge_to(&mut self, charge: Charge) {
        self.charge = Some(charge);
    }

    /// Counts the descriptors held for frames in progress against the
    /// daemon's descriptor budget: past the caller's share, a read fails
    /// with [`FdError::OverShare`].
    #[cfg(feature = "server")]
    pub(crate) fn charge_fds_to(&mut self, charge: FdCharge) {
        self.fds.charge_to(charge);
    }

    pub(crate) fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// Whether bytes are buffered that are not yet handed out as frames:
    /// after [`next_frame`](Self::next_frame) said `Ok(None)`, a frame in
    /// progress.
    #[cfg(feature = "server")]
    pub(crate) fn has_pending_bytes(&self) -> bool {
        self.end > self.start
    }

    /// The bytes buffered that are not yet handed out as frames: what came
    /// behind the last frame.
    #[cfg(feature = "server")]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The next whole frame if it is buffered, consumed: its payload is
    /// [`payload(range)`](Self::payload) until the next
    /// [`spare`](Self::spare). `Ok(None)`: not enough bytes yet.
    ///
    /// # Errors
    ///
    /// A header over the size limit, or malformed.
    #[inline]
    pub(crate) fn next_frame(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        match frame::decode(&self.buf[self.start..self.end], self.max_frame)? {
            Some(f) => {
                let range = self.start + f.payload.start..self.start + f.payload.end;
                // The common case, no descriptor on the way, costs a test.
                if self.fds_pending {
                    self.hand_out_fds(f.consumed);
                }
                self.start += f.consumed;
                Ok(Some(range))
            }
            None => Ok(None),
        }
    }

    /// The payload of the next whole frame, if it is buffered and no
    /// descriptor came with it or is on its way, and how many bytes to
    /// [`skip`](Self::skip) to take it; left in place until then. Anything
    /// else (no whole frame, a bad header, descriptors) is `None`, and
    /// [`next_frame`](Self::next_frame) then hands the frame out as usual.
    /// A stream client's common case: an item decoded straight to the
    /// caller, with none of the general case's steps between (and no
    /// closure: a value moved out of one more call costs a stall).
    #[cfg(feature = "client")]
    #[inline(always)]
    pub(crate) fn plain_frame(&self) -> Option<(&[u8], usize)> {
        if self.fds_pending {
            return None;
        }
        let f = frame::decode(&self.buf[self.start..self.end], self.max_frame).ok()??;
        Some((&self.buf[self.start..][f.payload], f.consumed))
    }

    /// Takes the frame [`plain_frame`](Self::plain_frame) gave, of
    /// `consumed` bytes.
    #[cfg(feature = "client")]
    #[inline(always)]
    pub(crate) fn skip(&mut self, consumed: usize) {
        self.start += consumed;
    }

    /// The next whole frame if it is buffered, left in place: the next
    /// [`next_frame`](Self::next_frame) returns it again.
    ///
    /// # Errors
    ///
    /// As [`next_frame`](Self::next_frame).
    #[cfg(feature = "server")]
    pub(crate) fn peek_frame(&self) -> Result<Option<Range<usize>>, FrameError> {
        Ok(
            frame::decode(&self.buf[self.start..self.end], self.max_frame)?
                .map(|f| self.start + f.payload.start..self.start + f.payload.end),
        )
    }

    /// Hands the frame of `len` bytes at `start` the descriptors that came
    /// with it (closing those of the frame before, if not taken).
    #[cold]
    fn hand_out_fds(&mut self, len: usize) {
        let at = self.base + self.start as u64;
        self.frame_fds = self.fds.take(at..at + len as u64);
        self.fds_pending =
            !self.fds.is_empty() || !matches!(&self.frame_fds, Ok(v) if v.is_empty());
    }

    /// The descriptors that came with the frame [`next_frame`](Self::next_frame)
    /// returned last (each frame's once; those not taken are closed when
    /// the next frame is handed out, or with the buffer).
    ///
    /// # Errors
    ///
    /// [`FdError::TooMany`]: more came than a frame may carry, all closed.
    pub(crate) fn take_frame_fds(&mut self) -> Result<Vec<OwnedFd>, FdError> {
        std::mem::replace(&mut self.frame_fds, Ok(Vec::new()))
    }

    /// Counts `n` bytes just read into [`spare`](Self::spare)'s room, with
    /// what came with them.
    ///
    /// # Errors
    ///
    /// `InvalidData` when descriptors flood in ([`FdError::Flood`]): the
    /// connection must end.
    pub(crate) fn filled_with(&mut self, n: usize, arrival: Arrival) -> io::Result<()> {
        self.filled(n);
        if n > 0 {
            let last = self.base + (self.end - 1) as u64;
            self.fds.arrived(last, arrival)?;
            self.fds_pending |= !self.fds.is_empty();
        }
        Ok(())
    }

    /// The payload of a frame [`next_frame`](Self::next_frame) returned.
    #[inline]
    pub(crate) fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// What the end of the stream means now: clean between frames
    /// (`Ok(())`), an error inside one.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] with the bytes of the frame in progress.
    pub(crate) fn check_eof(&self) -> Result<(), FrameError> {
        frame::check_eof(self.end - self.start)
    }

    /// Room for the next read, made first: at least one byte, at most what
    /// the frame in progress still needs up to the growth policy's bound.
    /// Whatever is read into it counts once [`filled`](Self::filled) says
    /// how much. Call [`next_frame`](Self::next_frame) until `Ok(None)`
    /// first: payloads handed out before may move.
    ///
    /// # Errors
    ///
    /// `ErrorKind::OutOfMemory` if the room needed is more than the memory
    /// budget has left.
    #[inline]
    pub(crate) fn spare(&mut self) -> io::Result<&mut [u8]> {
        self.make_room()?;
        Ok(&mut self.buf[self.end..])
    }

    /// Counts `n` bytes just read into [`spare`](Self::spare)'s room.
    #[inline]
    pub(crate) fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Makes room for a read, growing or shrinking the buffer.
    #[inline]
    fn make_room(&mut self) -> io::Result<()> {
        // The steady state of small calls: every frame handed out, and a
        // buffer of the usual size, which the next read starts at the
        // beginning of. Nothing to decode or move.
        if self.start == self.end
            && self.buf.len() >= self.min_room
            && self.buf.len() <= 16 * self.min_room
        {
            self.base += self.start as u64;
            self.start = 0;
            self.end = 0;
            return Ok(());
        }
        self.make_room_for_frame()
    }

    /// [`make_room`](Self::make_room) with a frame in progress, a buffer
    /// to grow, or one to shrink.
    fn make_room_for_frame(&mut self) -> io::Result<()> {
        let pending = self.end - self.start;
        // How much room the frame in progress needs (the header was already
        // checked against the limit by `next_frame`).
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
            .max(self.min_room);
        // Give back what a large message took once it is done: an idle
        // connection keeps its buffer.
        let shrink = self.buf.len() > 16 * self.min_room && want.max(pending) <= self.min_room;
        if self.start > 0 && (pending == 0 || shrink || self.start + want > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.start = 0;
            self.end = pending;
        }
        if shrink {
            self.buf.truncate(self.min_room);
            self.buf.shrink_to_fit();
            #[cfg(feature = "server")]
            if let Some(charge) = &mut self.charge {
                charge.hold(self.buf.len());
            }
        }
        let len = self.start + want;
        if self.buf.len() < len {
            // Frames up to `GROWTH_STEP` never get here once the buffer
            // has grown for the first one: the steady state does not touch
            // the budget.
            #[cfg(feature = "server")]
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::budget::Budget;

    /// Copies `bytes` in as reads of whatever room the buffer offers.
    fn feed(buf: &mut FrameBuffer, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let spare = buf.spare()?;
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            buf.filled(n);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    #[test]
    fn not_enough_bytes_yet_is_none() {
        let mut buf = FrameBuffer::new(100);
        assert_eq!(buf.next_frame(), Ok(None));
        feed(&mut buf, b"\x00\x00").unwrap();
        assert_eq!(buf.next_frame(), Ok(None));
        feed(&mut buf, b"\x00\x02h").unwrap();
        assert_eq!(buf.next_frame(), Ok(None));
        feed(&mut buf, b"i\x00\x00\x00\x00").unwrap();
        let r = buf.next_frame().unwrap().unwrap();
        assert_eq!(buf.payload(r), b"hi");
        // The empty frame right behind it, then nothing.
        let r = buf.next_frame().unwrap().unwrap();
        assert_eq!(buf.payload(r), b"");
        assert_eq!(buf.next_frame(), Ok(None));
        assert_eq!(buf.check_eof(), Ok(()));
    }

    #[cfg(feature = "client")]
    #[test]
    fn the_fast_path_takes_only_whole_frames_without_descriptors_it_decodes() {
        // What a client's fast path does: decode (here: copy), then take.
        fn next_frame_as<R>(
            buf: &mut FrameBuffer,
            decode: impl FnOnce(&[u8]) -> Option<R>,
        ) -> Option<R> {
            let (payload, consumed) = buf.plain_frame()?;
            let value = decode(payload)?;
            buf.skip(consumed);
            Some(value)
        }
        let as_vec = |p: &[u8]| Some(p.to_vec());
        let mut buf = FrameBuffer::new(100);
        assert_eq!(next_frame_as(&mut buf, as_vec), None);
        let mut bytes = Vec::new();
        frame::encode(b"a", &mut bytes);
        frame::encode(b"bb", &mut bytes);
        feed(&mut buf, &bytes).unwrap();
        assert_eq!(next_frame_as(&mut buf, as_vec).as_deref(), Some(&b"a"[..]));
        // Declined: left for the general path, which hands it out.
        assert_eq!(next_frame_as(&mut buf, |_| None::<()>), None);
        let r = buf.next_frame().unwrap().unwrap();
        assert_eq!(buf.payload(r), b"bb");

        // A frame that came with a descriptor is the general path's, and
        // so are those behind it until the descriptor is handed out.
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let mut bytes = Vec::new();
        frame::encode(b"fd", &mut bytes);
        let room = buf.spare().unwrap();
        room[..bytes.len()].copy_from_slice(&bytes);
        buf.filled_with(bytes.len(), Arrival::Fds(vec![fd]))
            .unwrap();
        let mut after = Vec::new();
        frame::encode(b"after", &mut after);
        feed(&mut buf, &after).unwrap();
        assert_eq!(next_frame_as(&mut buf, as_vec), None);
        let r = buf.next_frame().unwrap().unwrap();
        assert_eq!(buf.payload(r), b"fd");
        assert_eq!(buf.take_frame_fds().map(|v| v.len()), Ok(1));
        assert_eq!(next_frame_as(&mut buf, as_vec), None);
        let r = buf.next_frame().unwrap().unwrap();
        assert_eq!(buf.payload(r), b"after");
        assert_eq!(buf.take_frame_fds().map(|v| v.len()), Ok(0));
        // Handed out, its descriptor taken: the fast path again.
        feed(&mut buf, b"\x00\x00\x00\x01c\x00\x00").unwrap();
        assert_eq!(next_frame_as(&mut buf, as_vec).as_deref(), Some(&b"c"[..]));
        // Half a frame, then a header over the limit: nothing taken.
        assert_eq!(next_frame_as(&mut buf, as_vec), None);
        feed(&mut buf, b"\x01\x00").unwrap();
        assert_eq!(next_frame_as(&mut buf, as_vec), None);
        assert!(buf.next_frame().is_err());
    }

    #[test]
    fn the_end_inside_a_frame_is_truncated() {
        let mut buf = FrameBuffer::new(100);
        feed(&mut buf, b"\x00\x00\x00\x05abc").unwrap();
        assert_eq!(buf.next_frame(), Ok(None));
        assert_eq!(buf.check_eof(), Err(FrameError::Truncated(7)));
    }

    #[test]
    fn the_limit_is_checked_on_the_header_before_any_growth() {
        let mut buf = FrameBuffer::new(100);
        feed(&mut buf, b"\x00\x00\x00\x65").unwrap();
        assert_eq!(
            buf.next_frame(),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
        assert_eq!(buf.buf.len(), INITIAL_BUFFER);
    }

    #[test]
    fn a_bare_header_gets_room_for_what_came_not_what_it_claims() {
        let mut buf = FrameBuffer::new(frame::DEFAULT_MAX_FRAME);
        let mut header = Vec::new();
        frame::encode_header(frame::DEFAULT_MAX_FRAME, &mut header);
        feed(&mut buf, &header).unwrap();
        assert_eq!(buf.next_frame(), Ok(None));
        assert_eq!(buf.end + buf.spare().unwrap().len(), GROWTH_STEP);
    }

    #[test]
    fn growth_beyond_the_allowance_draws_on_the_budget() {
        let mut buf = FrameBuffer::new(frame::DEFAULT_MAX_FRAME);
        buf.charge_to(Charge::new(Arc::new(Budget::new(0)), GROWTH_STEP));
        let mut big = Vec::new();
        frame::encode(&vec![7; 2 * GROWTH_STEP], &mut big);
        let e = feed(&mut buf, &big).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
    }

    #[test]
    fn a_large_message_is_given_back_once_done() {
        let mut buf = FrameBuffer::new(frame::DEFAULT_MAX_FRAME);
        let mut big = Vec::new();
        frame::encode(&vec![7; 4 * GROWTH_STEP], &mut big);
        feed(&mut buf, &big).unwrap();
        let r = buf.next_frame().unwrap().unwrap();
        assert_eq!(buf.payload(r).len(), 4 * GROWTH_STEP);
        assert!(buf.buf.len() > 4 * GROWTH_STEP);
        assert_eq!(buf.next_frame(), Ok(None));
        buf.spare().unwrap();
        assert_eq!(buf.buf.len(), INITIAL_BUFFER);
    }
}
