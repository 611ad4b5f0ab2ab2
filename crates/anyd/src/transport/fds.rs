//! File descriptors that travel with frames over a Unix socket, as
//! `SCM_RIGHTS` ancillary data (groundwork for descriptor passing).
//!
//! On a stream socket the kernel delivers the descriptors of one `sendmsg`
//! with the first byte that call wrote, and never merges two such calls'
//! descriptors into one `recvmsg`. So a reader that notes the stream
//! offset at which descriptors arrived can hand each frame exactly the
//! descriptors whose offset falls inside it ([`FdQueue`]), and close the
//! rest.
//!
//! Every received descriptor is close-on-exec from the moment it arrives
//! (`MSG_CMSG_CLOEXEC`), and owned (`OwnedFd`): whatever path drops it
//! closes it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// The most descriptors one frame may carry.
pub(crate) const MAX_FDS_PER_FRAME: usize = 16;

/// Why a read with descriptors failed.
#[derive(Debug)]
pub(crate) enum FdError {
    /// More descriptors came with one write than a frame may carry: all
    /// are closed.
    TooMany(usize),
    /// The kernel cut the ancillary data short (`MSG_CTRUNC`): some
    /// descriptors were lost, so which frame owns what is unknown. The
    /// connection cannot go on.
    Truncated,
    /// Reading failed.
    Io(io::Error),
}

impl From<rustix::io::Errno> for FdError {
    fn from(e: rustix::io::Errno) -> Self {
        FdError::Io(e.into())
    }
}

/// Room for one more descriptor than a frame may carry, so that one too
/// many is seen as such rather than as a truncation.
const SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME + 1));

/// One read into `buf`, and the descriptors that came with its bytes
/// (appended to `fds`); `Ok(0)` at the end of the stream.
pub(crate) fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    flags: RecvFlags,
) -> Result<usize, FdError> {
    let mut space = [MaybeUninit::<u8>::uninit(); SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            socket,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            flags | RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    // Owned from here: any early return closes them.
    let mut received = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            received.extend(rights);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(FdError::Truncated);
    }
    if received.len() > MAX_FDS_PER_FRAME {
        return Err(FdError::TooMany(received.len()));
    }
    fds.extend(received);
    Ok(got.bytes)
}

/// Writes what the socket takes of `bytes` with `fds` attached to its
/// first byte (never raising SIGPIPE); the descriptors go only if at least
/// one byte does.
pub(crate) fn send_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    flags: SendFlags,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if fds.len() > MAX_FDS_PER_FRAME
        || (!fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors in one frame; at most {MAX_FDS_PER_FRAME}",
                fds.len()
            ),
        ));
    }
    loop {
        match sendmsg(
            socket,
            &[IoSlice::new(bytes)],
            &mut control,
            flags | SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// Descriptors received and not yet handed to a frame, by the stream
/// offset of the byte they came with.
#[derive(Debug, Default)]
pub(crate) struct FdQueue {
    arrived: VecDeque<(u64, Vec<OwnedFd>)>,
}

impl FdQueue {
    /// Notes `fds`, which came with the byte at stream offset `at`.
    pub(crate) fn arrived(&mut self, at: u64, fds: Vec<OwnedFd>) {
        if !fds.is_empty() {
            self.arrived.push_back((at, fds));
        }
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
        while let Some((at, _)) = self.arrived.front() {
            if *at >= frame.end {
                break;
            }
            let (at, fds) = self.arrived.pop_front().expect("looked at");
            if at >= frame.start {
                taken.extend(fds);
            }
        }
        if taken.len() > MAX_FDS_PER_FRAME {
            return Err(FdError::TooMany(taken.len()));
        }
        Ok(taken)
    }

    /// Whether descriptors are waiting for a frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.arrived.is_empty()
    }
}

/// Owned descriptors as borrowed ones, for [`send_with_fds`].
pub(crate) fn borrowed(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(AsFd::as_fd).collect()
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
        let rights = borrowed(&readers);
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
        let n = send_with_fds(a.as_fd(), b"frame", &borrowed(&sent), SendFlags::empty()).unwrap();
        assert_eq!(n, 5);
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let got = recv_with_fds(b.as_fd(), &mut buf, &mut fds, RecvFlags::empty()).unwrap();
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
        assert!(send_with_fds(a.as_fd(), b"x", &borrowed(&readers), SendFlags::empty()).is_err());
        // ... and the receiving side refuses one that comes anyway.
        send_raw(&a, readers);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        let e = recv_with_fds(b.as_fd(), &mut buf, &mut fds, RecvFlags::empty()).unwrap_err();
        assert!(matches!(e, FdError::TooMany(17)), "{e:?}");
        assert!(fds.is_empty());
        assert!(all_closed(&writers), "every descriptor closed");
    }

    #[test]
    fn truncated_ancillary_data_is_an_error_and_leaks_nothing() {
        let (a, b) = UnixStream::pair().unwrap();
        let (readers, writers) = pipes(40);
        send_raw(&a, readers);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        let e = recv_with_fds(b.as_fd(), &mut buf, &mut fds, RecvFlags::empty()).unwrap_err();
        assert!(matches!(e, FdError::Truncated), "{e:?}");
        // The kernel closes what did not fit, and this side what did.
        assert!(all_closed(&writers));
    }

    #[test]
    fn each_frame_gets_the_descriptors_that_came_with_its_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (first, _w1) = pipes(1);
        let (second, _w2) = pipes(2);
        // Two frames of 4 bytes each, written back to back.
        send_with_fds(a.as_fd(), b"aaaa", &borrowed(&first), SendFlags::empty()).unwrap();
        send_with_fds(a.as_fd(), b"bbbb", &borrowed(&second), SendFlags::empty()).unwrap();
        let mut queue = FdQueue::default();
        let mut offset = 0u64;
        let mut buf = [0u8; 64];
        let mut data = Vec::new();
        while data.len() < 8 {
            let mut fds = Vec::new();
            let n = recv_with_fds(b.as_fd(), &mut buf, &mut fds, RecvFlags::empty()).unwrap();
            queue.arrived(offset, fds);
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
        queue.arrived(0, early);
        queue.arrived(10, own);
        // The frame at 10..20 takes its own; those at 0 had a frame that
        // did not take them.
        assert_eq!(queue.take(10..20).unwrap().len(), 1);
        assert!(all_closed(&early_writers));
    }
}
