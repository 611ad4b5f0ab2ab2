//! File descriptors that travel with frames over a Unix socket, as
//! `SCM_RIGHTS` ancillary data ([protocol section 8.2](crate::protocol#82-descriptors)).
//!
//! On a stream socket the kernel keeps the descriptors of one `sendmsg`
//! with the bytes that call wrote, and a `recvmsg` that meets them ends
//! with them: it returns at most one `sendmsg`'s descriptors, and its last
//! byte is one of that `sendmsg`'s bytes (bytes written before without
//! descriptors may come first in the same read). So a writer that sends a
//! frame carrying descriptors with a `sendmsg` of that frame's bytes alone,
//! and a reader that notes the stream offset of the last byte of each read
//! that brought descriptors, agree on which frame owns them ([`FdQueue`]).
//!
//! Every received descriptor is close-on-exec from the moment it arrives
//! (`MSG_CMSG_CLOEXEC`), and owned (`OwnedFd`): whatever path drops it
//! closes it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

#[cfg(feature = "server")]
use crate::fd_budget::FdCharge;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// The most descriptors one frame may carry.
pub(crate) const MAX_FDS_PER_FRAME: usize = 16;

/// The most descriptors a connection holds for frames not yet handled (a
/// client may pipeline requests behind a stream): past it, those that come
/// are closed and their frame is refused as carrying too many.
pub(crate) const MAX_QUEUED: usize = 4 * MAX_FDS_PER_FRAME;

/// The most reads with descriptors noted for frames not yet handled. An
/// honest peer sends a frame's descriptors with one write, and frames are
/// handled between reads, so a few are ever pending; a peer that sends a
/// large frame a byte at a time, each byte with a descriptor, would
/// otherwise have the daemon note (and close) one per byte, in memory no
/// budget counts.
const MAX_ARRIVALS: usize = MAX_QUEUED;

/// What came with one read.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// These descriptors (maybe none).
    Fds(Vec<OwnedFd>),
    /// More than a frame may carry: all of them already closed.
    TooMany(usize),
}

/// Why descriptors could not be read or handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdError {
    /// More descriptors came with one frame than a frame may carry: all
    /// are closed.
    TooMany(usize),
    /// Descriptors came with more reads than frames could account for:
    /// the connection cannot go on.
    Flood,
    /// The kernel cut the ancillary data short (`MSG_CTRUNC`): some
    /// descriptors were lost, so which frame owns what is unknown. The
    /// connection cannot go on.
    Truncated,
    /// Holding what came would take the caller past its share of the
    /// daemon's descriptors for frames in progress (`fd_budget`): what
    /// came is closed, and the connection cannot go on.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    OverShare,
}

impl std::error::Error for FdError {}

impl std::fmt::Display for FdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FdError::TooMany(n) => write!(
                f,
                "{n} descriptors came with one message; at most {MAX_FDS_PER_FRAME} may (all closed)"
            ),
            FdError::Truncated => f.write_str(
                "the descriptors that came with a message were cut short (MSG_CTRUNC)",
            ),
            FdError::Flood => write!(
                f,
                "descriptors came with more than {MAX_ARRIVALS} writes of frames not yet handled"
            ),
            FdError::OverShare => f.write_str(
                "descriptors for frames not yet complete past this user's share of the daemon's",
            ),
        }
    }
}

impl From<FdError> for io::Error {
    fn from(e: FdError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

impl FdError {
    /// The descriptor error an I/O error carries, if it is one.
    #[cfg(feature = "server")]
    pub(crate) fn of(e: &io::Error) -> Option<FdError> {
        e.get_ref()?.downcast_ref::<FdError>().copied()
    }
}

/// The descriptors that came with one frame, or why they were refused.
pub(crate) type FrameFds = Result<Vec<OwnedFd>, FdError>;

/// Room for one more descriptor than a frame may carry, so that one too
/// many is seen as such rather than as a truncation.
const SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME + 1));

/// One `recvmsg` into `buf`: how many bytes came (`0` at the end of the
/// stream) and the descriptors that came with them.
///
/// # Errors
///
/// The socket's, and [`FdError::Truncated`] (as `InvalidData`, every
/// descriptor that did come closed) when the kernel cut the ancillary data
/// short: the connection cannot go on.
pub(crate) fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: RecvFlags,
) -> io::Result<(usize, Arrival)> {
    let mut space = [MaybeUninit::<u8>::uninit(); SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = retry_on_intr(|| {
        recvmsg(
            socket,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            flags | RecvFlags::CMSG_CLOEXEC,
        )
    })?;
    // Owned from here: any early return closes them.
    let mut received = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            received.extend(rights);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(FdError::Truncated.into());
    }
    if received.len() > MAX_FDS_PER_FRAME {
        return Ok((got.bytes, Arrival::TooMany(received.len())));
    }
    Ok((got.bytes, Arrival::Fds(received)))
}

/// Writes what the socket takes of `bytes` with `fds` attached (never
/// raising SIGPIPE, and trying again when a signal interrupts it); the
/// descriptors go only if at least one byte does. Without descriptors, a
/// plain `send`.
#[inline]
pub(crate) fn send_with_fds<F: AsFd>(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[F],
    flags: SendFlags,
) -> rustix::io::Result<usize> {
    let flags = flags | SendFlags::NOSIGNAL;
    if fds.is_empty() {
        return retry_on_intr(|| rustix::net::send(socket, bytes, flags));
    }
    // The callers never gather more than a frame may carry; a kernel-side
    // refusal would be the same error.
    if fds.len() > MAX_FDS_PER_FRAME {
        return Err(rustix::io::Errno::TOOMANYREFS);
    }
    // Borrowed on the stack, with no allocation: the slots past `fds`
    // hold the socket itself as a filler and are not sent.
    let mut rights = [socket; MAX_FDS_PER_FRAME];
    for (slot, fd) in rights.iter_mut().zip(fds) {
        *slot = fd.as_fd();
    }
    let mut space = [MaybeUninit::<u8>::uninit(); SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&rights[..fds.len()])) {
        return Err(rustix::io::Errno::TOOMANYREFS);
    }
    retry_on_intr(|| sendmsg(socket, &[IoSlice::new(bytes)], &mut control, flags))
}

/// No descriptors, for [`send_with_fds`]'s callers that send none.
#[cfg(any(feature = "server", feature = "async-client"))]
pub(crate) const NO_FDS: &[BorrowedFd<'static>] = &[];

/// One plain read (no room for descriptors: the kernel closes any that
/// come), trying again when a signal interrupts it: how many bytes.
#[inline]
pub(crate) fn recv(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: RecvFlags,
) -> rustix::io::Result<usize> {
    retry_on_intr(|| rustix::net::recv(socket, &mut *buf, flags).map(|(n, _)| n))
}

/// Runs `call` again for as long as a signal interrupts it.
#[inline]
fn retry_on_intr<T>(mut call: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match call() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// A descriptor on its way out: a share of the [`Fd`](crate::Fd) it was
/// serialized from, which keeps its number open until the frame is written
/// (or dropped), whatever becomes of the `Fd` meanwhile. So sending costs
/// no copy of the descriptor, and the number sent is always the one
/// serialized.
pub(crate) type OutFd = std::sync::Arc<OwnedFd>;

/// Descriptors that go with some of the frames gathered for one write,
/// each with the byte range of its frame.
pub(crate) type Attached = Vec<(Range<usize>, Vec<OutFd>)>;

/// Descriptors received and not yet handed to a frame, by the stream
/// offset of the last byte of the read that brought them.
#[derive(Debug, Default)]
pub(crate) struct FdQueue {
    arrived: VecDeque<(u64, Arrival)>,
    /// How many descriptors `arrived` holds open.
    held: usize,
    /// What `held` draws from the daemon's descriptor budget (none on a
    /// client's side).
    #[cfg(feature = "server")]
    charge: Option<FdCharge>,
}

impl FdQueue {
    /// Notes what came with a read whose last byte is at stream offset
    /// `last`.
    ///
    /// # Errors
    ///
    /// [`FdError::Flood`] (what came closed) past [`MAX_ARRIVALS`] reads
    /// with descriptors pending, [`FdError::OverShare`] (what came closed)
    /// past the caller's share of the daemon's budget: the connection must
    /// end.
    pub(crate) fn arrived(&mut self, last: u64, arrival: Arrival) -> Result<(), FdError> {
        let empty = matches!(&arrival, Arrival::Fds(fds) if fds.is_empty());
        if !empty && self.arrived.len() >= MAX_ARRIVALS {
            return Err(FdError::Flood);
        }
        match arrival {
            Arrival::Fds(fds) if fds.is_empty() => {}
            Arrival::Fds(fds) if self.held + fds.len() > MAX_QUEUED => {
                self.arrived.push_back((last, Arrival::TooMany(fds.len())));
            }
            Arrival::Fds(fds) => {
                let held = self.held + fds.len();
                #[cfg(feature = "server")]
                if let Some(charge) = &mut self.charge {
                    if !charge.hold(held) {
                        return Err(FdError::OverShare);
                    }
                }
                self.held = held;
                self.arrived.push_back((last, Arrival::Fds(fds)));
            }
            too_many => self.arrived.push_back((last, too_many)),
        }
        Ok(())
    }

    /// The descriptors of the frame whose bytes are at stream offsets
    /// `frame`: those that came with one of its bytes. Those that came
    /// before it belonged to no frame that took them, and are closed.
    ///
    /// # Errors
    ///
    /// [`FdError::TooMany`] (all of them closed) if they are more than a
    /// frame may carry.
    pub(crate) fn take(&mut self, frame: Range<u64>) -> Result<Vec<OwnedFd>, FdError> {
        let mut taken = Vec::new();
        let mut too_many = 0;
        while let Some((at, _)) = self.arrived.front() {
            if *at >= frame.end {
                break;
            }
            let (at, arrival) = self.arrived.pop_front().expect("looked at");
            if let Arrival::Fds(fds) = &arrival {
                self.held -= fds.len();
            }
            match arrival {
                // The common case, one read's descriptors for the frame:
                // their vector is the frame's.
                Arrival::Fds(fds) if at >= frame.start && taken.is_empty() => taken = fds,
                Arrival::Fds(fds) if at >= frame.start => taken.extend(fds),
                Arrival::TooMany(n) if at >= frame.start => too_many += n,
                _ => {}
            }
        }
        #[cfg(feature = "server")]
        if let Some(charge) = &mut self.charge {
            // Fewer held: always within the budget.
            charge.hold(self.held);
        }
        if too_many > 0 || taken.len() > MAX_FDS_PER_FRAME {
            return Err(FdError::TooMany(too_many + taken.len()));
        }
        Ok(taken)
    }

    /// Counts what the queue holds against the daemon's descriptor
    /// budget, as a connection of `charge`'s caller.
    #[cfg(feature = "server")]
    pub(crate) fn charge_to(&mut self, charge: FdCharge) {
        self.charge = Some(charge);
    }

    /// Whether descriptors are waiting for a frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.arrived.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    /// `n` pipes: the read ends to send, and the write ends kept to tell
    /// whether every copy of a read end is closed (a write then fails with
    /// EPIPE; Rust programs ignore SIGPIPE). Counting `/proc/self/fd`
    /// would race with the other tests of this process.
    fn pipes(n: usize) -> (Vec<OwnedFd>, Vec<OwnedFd>) {
        (0..n).map(|_| rustix::pipe::pipe().unwrap()).unzip()
    }

    fn all_closed(writers: &[OwnedFd]) -> bool {
        writers
            .iter()
            .all(|w| rustix::io::write(w, b"?") == Err(rustix::io::Errno::PIPE))
    }

    fn inode(fd: BorrowedFd<'_>) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    /// Sends `readers` with one byte, however many, bypassing
    /// [`send_with_fds`]'s own cap: a peer may send up to the kernel's
    /// limit of 253 at once.
    fn send_raw(socket: &UnixStream, readers: Vec<OwnedFd>) {
        let mut space =
            vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(readers.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let rights: Vec<_> = readers.iter().map(AsFd::as_fd).collect();
        assert!(control.push(SendAncillaryMessage::ScmRights(&rights)));
        sendmsg(
            socket,
            &[IoSlice::new(b"x")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
    }

    #[test]
    fn descriptors_arrive_close_on_exec_and_are_the_same_files() {
        let (a, b) = UnixStream::pair().unwrap();
        let (sent, _writers) = pipes(3);
        let n = send_with_fds(a.as_fd(), b"frame", &sent, SendFlags::empty()).unwrap();
        assert_eq!(n, 5);
        let mut buf = [0u8; 64];
        let (got, arrival) = recv_with_fds(b.as_fd(), &mut buf, RecvFlags::empty()).unwrap();
        let Arrival::Fds(fds) = arrival else {
            panic!("{arrival:?}")
        };
        assert_eq!(&buf[..got], b"frame");
        assert_eq!(fds.len(), 3);
        for (s, r) in sent.iter().zip(&fds) {
            assert_eq!(inode(s.as_fd()), inode(r.as_fd()));
            let flags = rustix::io::fcntl_getfd(r).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
    }

    #[test]
    fn too_many_descriptors_are_refused_and_closed() {
        let (a, b) = UnixStream::pair().unwrap();
        let (readers, writers) = pipes(MAX_FDS_PER_FRAME + 1);
        // The sending side refuses to build such a frame...
        assert!(send_with_fds(a.as_fd(), b"x", &readers, SendFlags::empty()).is_err());
        // ... and the receiving side refuses one that comes anyway.
        send_raw(&a, readers);
        let mut buf = [0u8; 8];
        let (got, arrival) = recv_with_fds(b.as_fd(), &mut buf, RecvFlags::empty()).unwrap();
        // The byte is read (the frame goes on, to be refused), the
        // descriptors are not.
        assert_eq!(got, 1);
        assert!(matches!(arrival, Arrival::TooMany(17)), "{arrival:?}");
        assert!(all_closed(&writers), "every descriptor closed");
    }

    #[test]
    fn truncated_ancillary_data_is_an_error_and_leaks_nothing() {
        let (a, b) = UnixStream::pair().unwrap();
        let (readers, writers) = pipes(40);
        send_raw(&a, readers);
        let mut buf = [0u8; 8];
        let e = recv_with_fds(b.as_fd(), &mut buf, RecvFlags::empty()).unwrap_err();
        assert!(e.to_string().contains("MSG_CTRUNC"), "{e:?}");
        // The kernel closes what did not fit, and this side what did.
        assert!(all_closed(&writers));
    }

    #[test]
    fn each_frame_gets_the_descriptors_that_came_with_its_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (first, _w1) = pipes(1);
        let (second, _w2) = pipes(2);
        // Two frames of 4 bytes each, written back to back.
        send_with_fds(a.as_fd(), b"aaaa", &first, SendFlags::empty()).unwrap();
        send_with_fds(a.as_fd(), b"bbbb", &second, SendFlags::empty()).unwrap();
        let mut queue = FdQueue::default();
        let mut offset = 0u64;
        let mut buf = [0u8; 64];
        let mut data = Vec::new();
        while data.len() < 8 {
            let (n, arrival) = recv_with_fds(b.as_fd(), &mut buf, RecvFlags::empty()).unwrap();
            queue.arrived(offset + n as u64 - 1, arrival).unwrap();
            offset += n as u64;
            data.extend_from_slice(&buf[..n]);
        }
        assert_eq!(data, b"aaaabbbb");
        let one = queue.take(0..4).unwrap();
        let two = queue.take(4..8).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        assert_eq!(inode(one[0].as_fd()), inode(first[0].as_fd()));
        assert_eq!(inode(two[1].as_fd()), inode(second[1].as_fd()));
        assert!(queue.is_empty());
    }

    #[test]
    fn descriptors_no_frame_took_are_closed() {
        let mut queue = FdQueue::default();
        let (early, early_writers) = pipes(2);
        let (own, _own_writers) = pipes(1);
        queue.arrived(3, Arrival::Fds(early)).unwrap();
        queue.arrived(12, Arrival::Fds(own)).unwrap();
        // The frame at 10..20 takes its own; those at 0 had a frame that
        // did not take them.
        assert_eq!(queue.take(10..20).unwrap().len(), 1);
        assert!(all_closed(&early_writers));
    }

    #[test]
    fn a_read_may_bring_plain_bytes_before_the_descriptors_of_a_later_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        let (fds, _writers) = pipes(1);
        // A frame without descriptors, then one with: the kernel may hand
        // both over in one read, the descriptors with it.
        rustix::net::send(&a, b"aaaa", SendFlags::empty()).unwrap();
        send_with_fds(a.as_fd(), b"bbbb", &fds, SendFlags::empty()).unwrap();
        let mut buf = [0u8; 64];
        let (n, arrival) = recv_with_fds(b.as_fd(), &mut buf, RecvFlags::empty()).unwrap();
        assert_eq!(&buf[..n], b"aaaabbbb", "one read");
        let mut queue = FdQueue::default();
        queue.arrived(n as u64 - 1, arrival).unwrap();
        assert!(
            queue.take(0..4).unwrap().is_empty(),
            "not the first frame's"
        );
        assert_eq!(queue.take(4..8).unwrap().len(), 1, "the second frame's");
    }

    #[test]
    fn a_frame_over_the_cap_across_reads_is_refused_and_closes_all() {
        let mut queue = FdQueue::default();
        let (first, w1) = pipes(10);
        let (second, w2) = pipes(10);
        queue.arrived(3, Arrival::Fds(first)).unwrap();
        queue.arrived(7, Arrival::Fds(second)).unwrap();
        assert_eq!(queue.take(0..8).unwrap_err(), FdError::TooMany(20));
        assert!(all_closed(&w1) && all_closed(&w2));
        assert!(queue.is_empty());
    }

    #[test]
    fn a_connection_holds_a_bounded_number_of_descriptors_for_frames_to_come() {
        let mut queue = FdQueue::default();
        let mut writers = Vec::new();
        // Five reads of 16 each, for five frames not yet handled: the
        // fifth is past what the queue holds, closed, and its frame
        // refused.
        for i in 0..5u64 {
            let (fds, w) = pipes(MAX_FDS_PER_FRAME);
            writers.push(w);
            queue.arrived(i * 10 + 9, Arrival::Fds(fds)).unwrap();
        }
        assert!(all_closed(&writers[4]));
        for i in 0..4u64 {
            assert_eq!(queue.take(i * 10..i * 10 + 10).unwrap().len(), 16);
        }
        assert!(queue.take(40..50).is_err());
    }

    #[test]
    fn a_frame_sent_a_byte_at_a_time_with_descriptors_ends_the_connection() {
        let mut queue = FdQueue::default();
        let (readers, writers) = pipes(1);
        let reader = &readers[0];
        // One descriptor with each byte of a frame still in progress: the
        // first 64 reads are noted (past the first 64 descriptors, as too
        // many), the next is refused, and nothing grows further.
        for at in 0..MAX_ARRIVALS as u64 {
            let copy = reader.try_clone().unwrap();
            queue.arrived(at, Arrival::Fds(vec![copy])).unwrap();
        }
        let copy = reader.try_clone().unwrap();
        let e = queue.arrived(64, Arrival::Fds(vec![copy])).unwrap_err();
        assert_eq!(e, FdError::Flood);
        assert_eq!(queue.arrived.len(), MAX_ARRIVALS);
        // Reads without descriptors are never refused.
        queue.arrived(65, Arrival::Fds(Vec::new())).unwrap();
        drop(readers);
        drop(queue);
        assert!(all_closed(&writers));
    }
}
