//! The async clients' Unix socket, registered with the runtime for reading
//! only ([`UnixSocket`]).
//!
//! tokio's own `UnixStream` registers its socket for reading and writing
//! at once, and a Unix socket signals room to write each time its peer
//! takes bytes from it: every request the daemon read woke the client's
//! runtime, which found nothing to do and waited again, two more context
//! switches a call (`strace`: an `EPOLLOUT` wake-up before each reply's
//! `EPOLLIN`). A request is written whole at once nearly always; only when
//! the socket's buffer is full does a write wait for room, through a second
//! registration (of a duplicate descriptor) that lasts as long as that
//! wait.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::sys::watch;

/// A connected Unix socket on the runtime's reactor, waited on for reading
/// and, only while a write waits for room, for writing.
#[derive(Debug)]
pub(crate) struct UnixSocket {
    io: AsyncFd<OwnedFd>,
    /// Registered for room to write while a write waits for it.
    room: Option<AsyncFd<OwnedFd>>,
}

impl UnixSocket {
    /// Takes `socket` (made non-blocking) onto the current runtime's
    /// reactor.
    pub(crate) fn new(socket: UnixStream) -> io::Result<UnixSocket> {
        socket.set_nonblocking(true)?;
        Ok(UnixSocket {
            io: watch(socket.into(), Interest::READABLE)?,
            room: None,
        })
    }

    /// The socket, for calls that do not wait (sends, shutdown).
    pub(crate) fn get_ref(&self) -> &OwnedFd {
        self.io.get_ref()
    }

    /// Runs `read` (one non-blocking read into a buffer of `room` bytes:
    /// how many bytes, and what came with them) once the socket is
    /// readable; waits again while it would block. `alone` says of what
    /// came with the bytes whether it is nothing: only then does a short
    /// read tell that the socket is empty.
    pub(crate) fn poll_read_with<T>(
        &self,
        cx: &mut Context<'_>,
        room: usize,
        mut read: impl FnMut(&OwnedFd) -> io::Result<(usize, T)>,
        alone: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<(usize, T)>> {
        loop {
            let mut ready = ready!(self.io.poll_read_ready(cx))?;
            match ready.try_io(|socket| read(socket.get_ref())) {
                Ok(Ok((n, with))) => {
                    if 0 < n && n < room && alone(&with) {
                        // Fewer bytes than there was room for, and no
                        // descriptor (a read stops right after bytes that
                        // bring some, however many follow): the socket is
                        // empty, and the next read waits for the next
                        // wake-up rather than make a system call to learn
                        // that. tokio's own reads do the same; a wake-up
                        // that came meanwhile is kept.
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok((n, with)));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Would block: the readiness is cleared, wait again.
                Err(_) => continue,
            }
        }
    }

    /// Runs `send` (one non-blocking send) until the socket takes some of
    /// it: at once, nearly always; otherwise once there is room, for which
    /// it waits.
    pub(crate) fn poll_send_with(
        &mut self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(&OwnedFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.room.is_none() {
                match send(self.io.get_ref()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Registered now, its readiness is what the socket
                        // has now: room that came meanwhile is not missed.
                        let copy = self.io.get_ref().as_fd().try_clone_to_owned()?;
                        self.room = Some(watch(copy, Interest::WRITABLE)?);
                    }
                    sent => return Poll::Ready(sent),
                }
            }
            let room = self.room.as_ref().expect("registered above");
            let mut ready = ready!(room.poll_write_ready(cx))?;
            let sent = ready.try_io(|_| send(self.io.get_ref()));
            drop(ready);
            if let Ok(sent) = sent {
                // Written (or failed): the wait for room is over.
                self.room = None;
                return Poll::Ready(sent);
            }
        }
    }
}
