//! The connected socket, Unix or TCP ([`Stream`]), as the daemon's
//! connections and the blocking client use it: timeouts, shutdown (from
//! another thread too, through [`Stream::share`]), and writes that never
//! raise SIGPIPE.
//!
//! It does not own connecting (`connect`), the descriptors that travel on
//! it (`fds`), nor who is on the other end (`peer`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

/// A connected socket, Unix or TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    /// A socket that something else may shut down while this stream
    /// serves it (see `Stream::share`; the daemon's).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    Shared(Arc<Stream>),
}

impl Stream {
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Shared(s) => s.set_read_timeout(t),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Shared(s) => s.set_write_timeout(t),
        }
    }

    /// Shuts the connection down (a daemon closing; a client cutting a
    /// call off from another thread).
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Shared(s) => s.shutdown(how),
        }
    }

    /// Whether descriptors can travel on this socket: a Unix one.
    pub(crate) fn carries_fds(&self) -> bool {
        match self {
            Stream::Unix(_) => true,
            Stream::Tcp(_) => false,
            Stream::Shared(s) => s.carries_fds(),
        }
    }

    /// A second handle on the same socket (a duplicated descriptor).
    #[cfg(feature = "client")]
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Shared(s) => s.try_clone(),
        }
    }

    /// This stream, and a weak reference through which another thread may
    /// [`shutdown`](Self::shutdown) it, with one descriptor for both (a
    /// `dup` would double what every connection costs).
    ///
    /// Why that is sound where keeping the bare descriptor number would
    /// not be: the socket is closed when its last strong reference goes.
    /// A thread that upgrades the weak reference holds the socket open
    /// until it lets go, so the number it shuts down is still this socket,
    /// never one the process has opened since with the same number; once
    /// the stream is gone, the upgrade fails and nothing is touched.
    #[cfg(feature = "server")]
    pub(crate) fn share(self) -> (Stream, std::sync::Weak<Stream>) {
        let strong = Arc::new(self);
        let weak = Arc::downgrade(&strong);
        (Stream::Shared(strong), weak)
    }

    /// A read through a shared reference, as `Read for &UnixStream` does.
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => {
                let mut s: &UnixStream = s;
                s.read(buf)
            }
            Stream::Tcp(s) => {
                let mut s: &TcpStream = s;
                s.read(buf)
            }
            Stream::Shared(s) => s.read_shared(buf),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_shared(buf)
    }
}

impl Write for Stream {
    /// A `send` with `MSG_NOSIGNAL`: writing to a peer that is gone is an
    /// `EPIPE` error for this connection, never a SIGPIPE that would kill
    /// a host process which does not ignore it (a C or Python program
    /// embedding the daemon; Rust's own runtime ignores SIGPIPE, but not
    /// every program around this library is Rust's).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::net::send(&*self, buf, rustix::net::SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => continue,
                result => return result.map_err(io::Error::from),
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
            Stream::Shared(s) => s.as_fd(),
        }
    }
}
