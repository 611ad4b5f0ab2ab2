//! Blocking sockets: connecting, binding (with the socket file rules of
//! DESIGN.md), accepting, and the caller's identity.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{self, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

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

/// A connected socket, Unix or TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    /// A socket that something else may shut down while this stream
    /// serves it (see [`Stream::share`]).
    Shared(Arc<Stream>),
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
                    .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
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

    /// Connects, retrying while the daemon is not there yet (no socket file,
    /// connection refused) until `deadline`; other errors end at once.
    pub(crate) fn connect_until(
        address: &Address,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<Stream> {
        let mut pause = Duration::from_millis(5);
        loop {
            match Stream::connect(address, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let starting = matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    );
                    let now = Instant::now();
                    match deadline {
                        Some(d) if starting && now + pause < d => {
                            // A daemon that is starting up appears within
                            // milliseconds; back off to at most 100 ms.
                            std::thread::sleep(pause);
                            pause = (pause * 2).min(Duration::from_millis(100));
                        }
                        _ => {
                            return Err(Error::Connect {
                                address: address.to_string(),
                                source: e,
                            })
                        }
                    }
                }
            }
        }
    }

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

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Shared(s) => s.shutdown(how),
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
    pub(crate) fn share(self) -> (Stream, Weak<Stream>) {
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

/// Who is on the other end of a connection.
///
/// Cheap to clone. On Unix sockets the kernel vouches for the process
/// credentials (SO_PEERCRED, taken when the connection was made); on TCP
/// there are none, only the address.
#[derive(Debug, Clone)]
pub struct Peer {
    inner: Arc<PeerInfo>,
}

#[derive(Debug)]
struct PeerInfo {
    address: String,
    creds: Option<rustix::net::UCred>,
    /// Primary and supplementary groups (Unix sockets only).
    groups: Vec<u32>,
}

/// The groups of a Unix socket peer: the kernel's record when it has one,
/// otherwise what the group database says of the peer's user.
fn groups_of_peer(stream: &UnixStream, creds: &rustix::net::UCred) -> Vec<u32> {
    let gid = creds.gid.as_raw();
    let mut groups = crate::peergroups::peer_groups(stream.as_fd()).unwrap_or_else(|| {
        crate::users::user_by_uid(creds.uid.as_raw())
            .ok()
            .flatten()
            .and_then(|u| crate::users::groups_of(&u.name, gid).ok())
            .unwrap_or_default()
    });
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    groups
}

impl Peer {
    pub(crate) fn of(stream: &Stream) -> Peer {
        let (address, creds, groups) = match stream {
            Stream::Unix(s) => {
                let creds = rustix::net::sockopt::socket_peercred(s).ok();
                match creds {
                    Some(c) => (
                        format!("unix:pid={}", c.pid.as_raw_nonzero()),
                        creds,
                        groups_of_peer(s, &c),
                    ),
                    None => ("unix".to_owned(), None, Vec::new()),
                }
            }
            Stream::Tcp(s) => (
                s.peer_addr()
                    .map(|a| Address::from(a).to_string())
                    .unwrap_or_else(|_| "tcp".to_owned()),
                None,
                Vec::new(),
            ),
            Stream::Shared(s) => return Peer::of(s),
        };
        Peer {
            inner: Arc::new(PeerInfo {
                address,
                creds,
                groups,
            }),
        }
    }

    /// A readable description of the caller: `tcp:127.0.0.1:50412`, or
    /// `unix:pid=1234` on a Unix socket.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The caller's user id (Unix sockets only).
    pub fn uid(&self) -> Option<u32> {
        self.inner.creds.map(|c| c.uid.as_raw())
    }

    /// The caller's primary group id (Unix sockets only).
    pub fn gid(&self) -> Option<u32> {
        self.inner.creds.map(|c| c.gid.as_raw())
    }

    /// The caller's primary and supplementary group ids, as the kernel
    /// recorded them when it connected (Unix sockets only; empty on TCP).
    pub fn groups(&self) -> &[u32] {
        &self.inner.groups
    }

    /// The caller's process id when it connected (Unix sockets only).
    pub fn pid(&self) -> Option<u32> {
        self.inner
            .creds
            .map(|c| c.pid.as_raw_nonzero().get().unsigned_abs())
    }
}

/// How a Unix socket file is created.
#[derive(Debug, Clone)]
pub(crate) struct SocketFile {
    pub(crate) mode: u32,
    pub(crate) group: Option<u32>,
}

impl Default for SocketFile {
    fn default() -> Self {
        SocketFile {
            mode: 0o600,
            group: None,
        }
    }
}

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

/// A socket file this process created: removed on drop, unless something
/// else has replaced it meanwhile.
#[derive(Debug)]
pub(crate) struct OwnedSocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for OwnedSocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                if let Err(e) = fs::remove_file(&self.path) {
                    // Left behind, it is a stale socket the next start
                    // replaces.
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket file");
                }
            }
        }
    }
}

impl Listener {
    /// The socket file this listener created and removes, if any.
    pub(crate) fn socket_path(&self) -> Option<&Path> {
        match self {
            Listener::Unix {
                file: Some(file), ..
            } => Some(&file.path),
            _ => None,
        }
    }

    /// Binds `address`. For a socket file: a live daemon at the path is an
    /// error, a stale file (nobody accepts) is replaced, anything that is
    /// not a socket is left alone; the mode and group are set before the
    /// socket starts listening, so no client can connect through wider
    /// permissions in between.
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
            Address::Unix(path) => bind_unix_path(path, file),
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
}

impl Listener {
    /// Wraps a listening socket inherited from a service manager, and
    /// says what address it listens on.
    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<(Listener, Address)> {
        let unix = UnixListener::from(fd);
        // A TCP socket fails `local_addr` as a Unix one (wrong family).
        match unix.local_addr() {
            Ok(addr) => {
                let address = match (addr.as_pathname(), addr.as_abstract_name()) {
                    (Some(p), _) => Address::Unix(p.to_owned()),
                    (None, Some(n)) => Address::Abstract(n.to_vec()),
                    (None, None) => {
                        return Err(Error::Config("the inherited socket is unnamed".into()))
                    }
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

fn bind_unix_path(path: &Path, file: &SocketFile) -> Result<Listener> {
    use rustix::fs::{chmod, chown, Gid, Mode};
    use rustix::net::{
        bind, listen, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
    };

    let shown = || Address::Unix(path.to_owned()).to_string();
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(Error::AlreadyRunning(shown())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale socket file");
                fs::remove_file(path)?;
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "{} exists and cannot be checked: {e}",
                    path.display()
                )))
            }
        },
        Ok(_) => {
            return Err(Error::Config(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }

    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    match bind(&fd, &addr) {
        Ok(()) => {}
        // Another daemon won the race between our check and our bind.
        Err(rustix::io::Errno::ADDRINUSE) => return Err(Error::AlreadyRunning(shown())),
        Err(e) => return Err(io::Error::from(e).into()),
    }
    let meta = fs::symlink_metadata(path)?;
    let owned = OwnedSocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    chmod(path, Mode::from_raw_mode(file.mode))?;
    if let Some(gid) = file.group {
        chown(path, None, Some(Gid::from_raw(gid)))?;
    }
    listen(&fd, 1024)?;
    Ok(Listener::Unix {
        listener: UnixListener::from(fd),
        file: Some(owned),
    })
}
