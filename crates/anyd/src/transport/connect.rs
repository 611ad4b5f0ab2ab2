//! Connecting to a daemon: one attempt, blocking ([`Stream::connect`]) or
//! async ([`AsyncStream::connect`]), and the retry while the daemon is not
//! there yet ([`Retry`]) that both clients' `connect_until` follow.
//!
//! It owns how each kind of address is connected, the bound on a Unix
//! connect that waits for a full backlog, and when to try again. It does
//! not own the streams themselves (`stream`'s and `async_stream`'s) nor
//! what is said over them.

use std::io;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::Stream;
#[cfg(feature = "async-client")]
use super::{async_unix::UnixSocket, AsyncStream};
use crate::address::Address;
use crate::error::{Error, Result};

/// Connects a Unix stream socket within `timeout`. A Unix connect waits
/// when the daemon's listen backlog is full (a daemon that has stopped
/// accepting, or is swamped), and Linux bounds that wait by the socket's
/// send timeout; it is set for the connect only.
fn unix_connect(
    addr: &rustix::net::SocketAddrUnix,
    timeout: Option<Duration>,
) -> io::Result<UnixStream> {
    use rustix::net::sockopt::{set_socket_timeout, Timeout};
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        // What is left of the timeout, again after an interrupted wait; a
        // zero timeout would mean none at all.
        let left = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        set_socket_timeout(&fd, Timeout::Send, left)?;
        match rustix::net::connect(&fd, addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) if deadline.is_none_or(|d| Instant::now() < d) => continue,
            // The send timeout ran out while the backlog stayed full (or a
            // signal came after it had).
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the daemon did not accept the connection in time (its backlog is full)",
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    set_socket_timeout(&fd, Timeout::Send, None)?;
    Ok(UnixStream::from(fd))
}

/// When to try connecting again: while the daemon is not there yet (no
/// socket file, connection refused) and the deadline, if any, is not
/// past; other errors end at once. A daemon that is starting up appears
/// within milliseconds: the pauses start at 5 ms and double up to 100 ms.
#[derive(Debug)]
pub(crate) struct Retry {
    /// `None`: no retry at all.
    deadline: Option<Instant>,
    /// The pause before the next attempt.
    pause: Duration,
}

impl Retry {
    pub(crate) fn until(deadline: Option<Instant>) -> Retry {
        Retry {
            deadline,
            pause: Duration::from_millis(5),
        }
    }

    /// How long to wait before trying again after an attempt failed with
    /// `e`; `None`: give up.
    pub(crate) fn pause_after(&mut self, e: &io::Error) -> Option<Duration> {
        let starting = matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        );
        match self.deadline {
            Some(d) if starting && Instant::now() + self.pause < d => {
                let pause = self.pause;
                self.pause = (pause * 2).min(Duration::from_millis(100));
                Some(pause)
            }
            _ => None,
        }
    }
}

impl Stream {
    /// Connects once, waiting at most `timeout` if given.
    pub(crate) fn connect(address: &Address, timeout: Option<Duration>) -> io::Result<Stream> {
        match address {
            Address::Unix(path) => {
                let addr = rustix::net::SocketAddrUnix::new(path.as_path())?;
                unix_connect(&addr, timeout).map(Stream::Unix)
            }
            Address::Abstract(name) => {
                let addr = rustix::net::SocketAddrUnix::new_abstract_name(name)?;
                unix_connect(&addr, timeout).map(Stream::Unix)
            }
            Address::Tcp { host, port } => {
                let addrs = Address::resolve(host, *port)
                    .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e))?;
                let mut last = None;
                for a in addrs {
                    let r = match timeout {
                        Some(t) => TcpStream::connect_timeout(&a, t),
                        None => TcpStream::connect(a),
                    };
                    match r {
                        Ok(s) => {
                            // Small request/reply messages: Nagle would hold
                            // each one back waiting for an ACK.
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
            }
        }
    }

    /// Connects, retrying as [`Retry`] says until `deadline`, each
    /// attempt waiting at most `timeout`.
    pub(crate) fn connect_until(
        address: &Address,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<Stream> {
        let mut retry = Retry::until(deadline);
        loop {
            match Stream::connect(address, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => match retry.pause_after(&e) {
                    Some(pause) => std::thread::sleep(pause),
                    None => {
                        return Err(Error::Connect {
                            address: address.to_string(),
                            source: e,
                        })
                    }
                },
            }
        }
    }
}

#[cfg(feature = "async-client")]
impl AsyncStream {
    /// Connects once.
    pub(crate) async fn connect(address: &Address) -> io::Result<AsyncStream> {
        match address {
            // tokio's connect waits for the connection without blocking
            // the runtime; the socket then goes on the reactor for reading
            // only (see `async_unix`).
            Address::Unix(path) => {
                let socket = tokio::net::UnixStream::connect(path).await?.into_std()?;
                UnixSocket::new(socket).map(AsyncStream::Unix)
            }
            Address::Abstract(_) => {
                // tokio has no abstract-name connect. A Unix connect waits
                // only while the daemon's backlog is full; the blocking one,
                // bounded, is fine here.
                let bound = Some(Duration::from_millis(100));
                let std = match Stream::connect(address, bound)? {
                    Stream::Unix(s) => s,
                    _ => unreachable!("an abstract address connects a Unix stream"),
                };
                UnixSocket::new(std).map(AsyncStream::Unix)
            }
            Address::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Ok(AsyncStream::Tcp(s))
            }
        }
    }

    /// Connects, retrying as [`Retry`] says until `deadline`, each
    /// attempt due within `timeout` ([`Error::Timeout`] if it is not).
    /// Needs a tokio runtime with timers.
    pub(crate) async fn connect_until(
        address: &Address,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<AsyncStream> {
        let mut retry = Retry::until(deadline);
        loop {
            let attempt = match timeout {
                Some(t) => tokio::time::timeout(t, AsyncStream::connect(address))
                    .await
                    .map_err(|_| Error::Timeout("connecting"))?,
                None => AsyncStream::connect(address).await,
            };
            match attempt {
                Ok(s) => return Ok(s),
                Err(e) => match retry.pause_after(&e) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => {
                        return Err(Error::Connect {
                            address: address.to_string(),
                            source: e,
                        })
                    }
                },
            }
        }
    }
}
