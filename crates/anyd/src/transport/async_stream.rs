//! The async clients' socket: a tokio Unix or TCP stream behind one type.
//!
//! It owns nothing but the choice between the two; connecting is
//! `connect`'s, frames are the client's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::AsFd;
use std::task::ready;

use rustix::net::{RecvFlags, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::fds::{self, Arrival, OutFd};

/// A connected tokio socket, Unix or TCP.
#[derive(Debug)]
pub(crate) enum AsyncStream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl AsyncStream {
    /// Writes what the socket takes now, without waiting (see tokio's
    /// `try_write`): for a drop, which cannot wait.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            AsyncStream::Unix(s) => s.try_write(buf),
            AsyncStream::Tcp(s) => s.try_write(buf),
        }
    }
}

impl AsyncStream {
    /// Whether descriptors can travel on this socket: a Unix one.
    pub(crate) fn carries_fds(&self) -> bool {
        matches!(self, AsyncStream::Unix(_))
    }

    /// One read into `buf`, with the descriptors that came with its bytes
    /// on a Unix socket if `fds` (see `fds::recv_with_fds`): how many bytes, 0 at
    /// the end of the stream. Cancel safe: nothing is read until it is
    /// ready.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        fds: bool,
    ) -> Poll<io::Result<(usize, Arrival)>> {
        match self {
            AsyncStream::Unix(s) if fds => loop {
                ready!(s.poll_read_ready(cx))?;
                let read = s.try_io(Interest::READABLE, || {
                    fds::recv_with_fds(s.as_fd(), &mut *buf, RecvFlags::DONTWAIT)
                });
                match read {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return Poll::Ready(r),
                }
            },
            // A plain read: the kernel closes any descriptor that comes.
            other => {
                let mut read = ReadBuf::new(buf);
                ready!(Pin::new(other).poll_read(cx, &mut read))?;
                Poll::Ready(Ok((read.filled().len(), Arrival::Fds(Vec::new()))))
            }
        }
    }

    /// Writes one frame with `fds` attached to its first bytes (a Unix
    /// socket's only: the clients gather none for another).
    pub(crate) async fn write_frame(&mut self, bytes: &[u8], fds: &[OutFd]) -> io::Result<()> {
        self.write_frame_from(bytes, fds, &mut 0).await
    }

    /// Writes one frame from byte `*written` on, counting in `*written`
    /// what went out as it goes, so that a write dropped half way says
    /// how far it got (and the rest can follow later); `fds` go with the
    /// first bytes, so only when `*written` is 0.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that sense: dropped, what went out is counted.
    pub(crate) async fn write_frame_from(
        &mut self,
        bytes: &[u8],
        fds: &[OutFd],
        written: &mut usize,
    ) -> io::Result<()> {
        if let (AsyncStream::Unix(s), false, 0) = (&mut *self, fds.is_empty(), *written) {
            let fds = fds::borrowed(fds);
            *written = loop {
                s.writable().await?;
                let sent = s.try_io(Interest::WRITABLE, || {
                    fds::send_with_fds(s.as_fd(), bytes, &fds, SendFlags::DONTWAIT)
                        .map_err(Into::into)
                });
                match sent {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => break r?,
                }
            };
        }
        while *written < bytes.len() {
            let rest = &bytes[*written..];
            let n = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_write(cx, rest)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            *written += n;
        }
        Ok(())
    }
}

impl AsyncRead for AsyncStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            AsyncStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            AsyncStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Unix(s) => Pin::new(s).poll_flush(cx),
            AsyncStream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            AsyncStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
