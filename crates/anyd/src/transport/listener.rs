//! The listening socket ([`Listener`]): bound to an address, or inherited
//! from a service manager ([`Listener::from_fd`]), accepting connections as
//! blocking [`Stream`]s.
//!
//! It owns which socket each kind of address gets, and which address an
//! inherited socket reports. Placing a socket file at a path (its mode and
//! group, a live daemon's file kept, a stale one replaced, no link
//! followed) is `socket_file`'s; the accept loop is the server's.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self, UnixListener};
use std::path::Path;

use super::socket_file::{self, is_transient_socket_name, OwnedSocketFile, SocketFile};
use super::Stream;
use crate::address::Address;
use crate::error::{Error, Result};

/// A bound, listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Unix {
        listener: UnixListener,
        /// The socket file we created, removed when the listener goes.
        file: Option<OwnedSocketFile>,
    },
    Tcp(TcpListener),
}

impl Listener {
    /// The socket file this listener created and removes, if any.
    pub(crate) fn socket_path(&self) -> Option<&Path> {
        match self {
            Listener::Unix {
                file: Some(file), ..
            } => Some(file.path()),
            _ => None,
        }
    }

    /// Binds `address`. For a socket file: a live daemon at the path is an
    /// error, a stale file (nobody accepts) is replaced, anything that is
    /// not a socket is left alone; the socket accepts connections only
    /// once it has its mode and group, and nothing is ever done to the
    /// path through a link (see `socket_file::bind_unix_path`).
    pub(crate) fn bind(address: &Address, file: &SocketFile) -> Result<Listener> {
        Self::bind_at(address, file).map_err(|e| match e {
            Error::Io(source) => Error::Bind {
                address: address.to_string(),
                source,
            },
            other => other,
        })
    }

    fn bind_at(address: &Address, file: &SocketFile) -> Result<Listener> {
        match address {
            Address::Unix(path) => {
                socket_file::bind_unix_path(path, file).map(|(listener, owned)| Listener::Unix {
                    listener,
                    file: Some(owned),
                })
            }
            Address::Abstract(name) => {
                let addr = net::SocketAddr::from_abstract_name(name)?;
                match UnixListener::bind_addr(&addr) {
                    Ok(listener) => Ok(Listener::Unix {
                        listener,
                        file: None,
                    }),
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                        Err(Error::AlreadyRunning(address.to_string()))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Address::Tcp { host, port } => {
                let addrs = Address::resolve(host, *port)?;
                match TcpListener::bind(&addrs[..]) {
                    Ok(l) => Ok(Listener::Tcp(l)),
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                        Err(Error::AlreadyRunning(address.to_string()))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The address clients should use (with the real port for `tcp:...:0`).
    pub(crate) fn local_address(&self, bound: &Address) -> Address {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Address::from).unwrap_or(bound.clone()),
            Listener::Unix { .. } => bound.clone(),
        }
    }

    /// All resolved IP addresses are loopback (or this is a Unix socket).
    pub(crate) fn is_local(&self) -> bool {
        match self {
            Listener::Unix { .. } => true,
            Listener::Tcp(l) => l
                .local_addr()
                .is_ok_and(|a: SocketAddr| a.ip().is_loopback()),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Unix { listener, .. } => listener.set_nonblocking(on),
            Listener::Tcp(l) => l.set_nonblocking(on),
        }
    }

    /// Accepts one connection; the stream is blocking whatever the listener.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix { listener, .. } => {
                let (s, _) = listener.accept()?;
                s.set_nonblocking(false)?;
                Ok(Stream::Unix(s))
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
        }
    }

    /// Wraps a listening socket inherited from a service manager (or
    /// another process), and says what address it listens on: its own,
    /// or `configured` (what the program asked to bind) when the socket's
    /// is none a client could use: unnamed, or a name it was made under
    /// before being moved to its path (see [`is_transient_socket_name`]).
    pub(crate) fn from_fd(
        fd: std::os::fd::OwnedFd,
        configured: &Address,
    ) -> Result<(Listener, Address)> {
        let unix = UnixListener::from(fd);
        // A TCP socket fails `local_addr` as a Unix one (wrong family).
        match unix.local_addr() {
            Ok(addr) => {
                let address = match (addr.as_pathname(), addr.as_abstract_name()) {
                    (Some(p), _) if !is_transient_socket_name(p) => Address::Unix(p.to_owned()),
                    (None, Some(n)) => Address::Abstract(n.to_vec()),
                    (kernels, _) => match configured {
                        Address::Unix(_) => {
                            tracing::debug!(
                                name = ?kernels,
                                address = %configured,
                                "the inherited socket has no name a client could use; \
                                 taking it to listen at the configured path"
                            );
                            configured.clone()
                        }
                        _ => match kernels {
                            Some(p) => Address::Unix(p.to_owned()),
                            None => {
                                return Err(Error::Config("the inherited socket is unnamed".into()))
                            }
                        },
                    },
                };
                Ok((
                    Listener::Unix {
                        listener: unix,
                        file: None,
                    },
                    address,
                ))
            }
            Err(_) => {
                let tcp = TcpListener::from(std::os::fd::OwnedFd::from(unix));
                let address = Address::from(tcp.local_addr()?);
                Ok((Listener::Tcp(tcp), address))
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Unix { listener, .. } => listener.as_fd(),
            Listener::Tcp(l) => l.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Listener;
    use crate::address::Address;

    #[test]
    fn an_inherited_socket_bound_through_proc_reports_the_configured_path() {
        use rustix::fs::{open, Mode, OFlags};
        use rustix::net::{bind, listen, socket_with, AddressFamily, SocketAddrUnix};
        use rustix::net::{SocketFlags, SocketType};
        use std::os::fd::AsRawFd;
        // A socket bound as `socket_file::bind_unix_path` does in a
        // directory another user may change: the kernel keeps the /proc
        // name, which no client can use (in another process, or later in
        // this one, it names another descriptor or nothing).
        let dir = tempfile::tempdir().unwrap();
        let dir_fd = open(
            dir.path(),
            OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let via_proc = format!("/proc/self/fd/{}/s", dir_fd.as_raw_fd());
        bind(&fd, &SocketAddrUnix::new(via_proc.as_str()).unwrap()).unwrap();
        listen(&fd, 1).unwrap();
        let configured = Address::Unix(dir.path().join("e.sock"));
        let (_listener, address) = Listener::from_fd(fd, &configured).unwrap();
        assert_eq!(address, configured);
    }
}
