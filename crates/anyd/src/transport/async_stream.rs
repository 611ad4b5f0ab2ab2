//! The async clients' socket: a tokio Unix or TCP stream behind one type.
//!
//! It owns nothing but the choice between the two; connecting is
//! `connect`'s, frames are the client's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::{AsFd, OwnedFd};
use std::task::ready;

use rustix::net::{RecvFlags, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::async_unix::UnixSocket;
use super::fds::{self, Arrival, OutFd};

/// A connected socket on the runtime's reactor, Unix or TCP.
#[derive(Debug)]
pub(crate) enum AsyncStream {
    Unix(UnixSocket),
    Tcp(tokio::net::TcpStream),
}

/// One non-blocking send of `buf` on a Unix socket with `fds` attached,
/// never raising SIGPIPE.
fn unix_send<F: AsFd>(socket: &OwnedFd, buf: &[u8], fds: &[F]) -> io::Result<usize> {
    Ok(fds::send_with_fds(
        socket.as_fd(),
        buf,
        fds,
        SendFlags::DONTWAIT,
    )?)
}

/// One non-blocking read into `buf` from a Unix socket, with the
/// descriptors that came if `fds` (the kernel closes any that come
/// otherwise).
fn unix_recv(socket: &OwnedFd, buf: &mut [u8], fds: bool) -> io::Result<(usize, Arrival)> {
    if fds {
        return fds::recv_with_fds(socket.as_fd(), buf, RecvFlags::DONTWAIT);
    }
    let n = fds::recv(socket.as_fd(), buf, RecvFlags::DONTWAIT)?;
    Ok((n, Arrival::Fds(Vec::new())))
}

impl AsyncStream {
    /// Writes what the socket takes now, without waiting (see tokio's
    /// `try_write`): for a drop, which cannot wait.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            AsyncStream::Unix(s) => unix_send(s.get_ref(), buf, fds::NO_FDS),
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
            AsyncStream::Unix(s) => {
                let room = buf.len();
                s.poll_read_with(
                    cx,
                    room,
                    |socket| unix_recv(socket, &mut *buf, fds),
                    |arrival| matches!(arrival, Arrival::Fds(fds) if fds.is_empty()),
                )
            }
            AsyncStream::Tcp(tcp) => {
                let mut read = ReadBuf::new(buf);
                ready!(Pin::new(tcp).poll_read(cx, &mut read))?;
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
            *written = std::future::poll_fn(|cx| {
                s.poll_send_with(cx, |socket| unix_send(socket, bytes, fds))
            })
            .await?;
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

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncStream::Unix(s) => {
                s.poll_send_with(cx, |socket| unix_send(socket, buf, fds::NO_FDS))
            }
            AsyncStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            // Nothing is buffered on this side.
            AsyncStream::Unix(_) => Poll::Ready(Ok(())),
            AsyncStream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Unix(s) => Poll::Ready(
                rustix::net::shutdown(s.get_ref(), rustix::net::Shutdown::Write)
                    .map_err(Into::into),
            ),
            AsyncStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
