//! Blocking sockets: the connection stream, binding (with the socket file
//! rules of DESIGN.md, and the directory checks pid files share),
//! accepting, and the caller's identity.
//!
//! Connecting, blocking and async, is in `connect`; the async clients'
//! stream in `async_stream`.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{self, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::address::Address;
use crate::error::{Error, Result};

mod async_stream;
mod connect;
pub(crate) mod fds;

pub(crate) use async_stream::AsyncStream;

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

    /// Whether descriptors can travel on this socket: a Unix one.
    pub(crate) fn carries_fds(&self) -> bool {
        match self {
            Stream::Unix(_) => true,
            Stream::Tcp(_) => false,
            Stream::Shared(s) => s.carries_fds(),
        }
    }

    /// A second handle on the same socket (a duplicated descriptor).
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
    let mut groups = crate::sys::peer_groups(stream.as_fd()).unwrap_or_else(|| {
        crate::sys::users::user_by_uid(creds.uid.as_raw())
            .ok()
            .flatten()
            .and_then(|u| crate::sys::users::groups_of(&u.name, gid).ok())
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
    /// not a socket is left alone; the socket accepts connections only
    /// once it has its mode and group, and nothing is ever done to the
    /// path through a link (see `bind_unix_path`).
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

/// Whether `path`, the name a Unix socket was bound with, is one that no
/// client could connect to: a `/proc/self/fd/N/...` name (the kernel keeps
/// the one a socket was bound with, and `bind_unix_path` binds through
/// `/proc` in a directory another user may change), or the private
/// directory it was made in before being renamed into place
/// (`.NAME.<16 hex digits>/s`).
fn is_transient_socket_name(path: &Path) -> bool {
    let bytes = path.as_os_str().as_bytes();
    if [&b"/proc/"[..], b"/dev/fd/"]
        .iter()
        .any(|p| bytes.starts_with(p))
    {
        return true;
    }
    let private_dir = path
        .parent()
        .and_then(Path::file_name)
        .map(OsStrExt::as_bytes)
        .and_then(|d| d.strip_prefix(b"."))
        .and_then(|d| d.len().checked_sub(17).map(|at| d.split_at(at)))
        .is_some_and(|(_, tail)| tail[0] == b'.' && tail[1..].iter().all(u8::is_ascii_hexdigit));
    private_dir && path.file_name() == Some(OsStr::new(PRIVATE_SOCKET))
}

impl Listener {
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

/// The directory a socket file or a pid file goes in, opened once: the
/// directory that is checked is the one the file is made in, whatever is
/// renamed or linked meanwhile.
#[derive(Debug)]
pub(crate) struct Dir {
    pub(crate) fd: OwnedFd,
    pub(crate) path: PathBuf,
    /// The directory's owner when it was opened and checked: when it is
    /// neither root nor this process's user, someone else may rename and
    /// replace the directory's entries (see [`Dir::others_may_rename`]).
    owner: u32,
}

impl Dir {
    /// Opens the directory of `path` (through whatever links the
    /// configured path holds: those are the administrator's) and returns
    /// it with the file's name in it. Refuses a directory that lets others
    /// replace the file (see [`directory_risk`]); `what` names the file in
    /// the error.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a path without a file name or a directory
    /// that fails the check, [`Error::Io`] when it cannot be opened.
    pub(crate) fn of<'p>(path: &'p Path, what: &str) -> Result<(Dir, &'p OsStr)> {
        use rustix::fs::{fstat, open, Mode, OFlags};
        let name = match path.file_name() {
            Some(name) if !path.as_os_str().as_bytes().ends_with(b"/") => name,
            _ => {
                return Err(Error::Config(format!(
                    "{what} {} names no file",
                    path.display()
                )))
            }
        };
        let dir_path = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let fd = open(
            dir_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let st = fstat(&fd).map_err(io::Error::from)?;
        let euid = rustix::process::geteuid().as_raw();
        if let Some(risk) = directory_risk(st.st_mode, st.st_uid, euid) {
            return Err(Error::Config(format!(
                "refusing to keep the {what} {} in {}: {risk}; use a directory that only \
                 root or the daemon's user may write to (systemd's RuntimeDirectory=, \
                 /run/NAME), or a sticky one such as /tmp",
                path.display(),
                dir_path.display()
            )));
        }
        Ok((
            Dir {
                fd,
                path: dir_path.to_owned(),
                owner: st.st_uid,
            },
            name,
        ))
    }

    /// Whether a user other than root and this process's may rename or
    /// replace entries of this directory: its owner, when it is another
    /// user (a daemon running as root accepts the directory of its
    /// `run_as` user). Group or other write permission without the sticky
    /// bit would too, but [`Dir::of`] refuses that; with the sticky bit
    /// (`/tmp`) others may add entries but not rename or remove ours.
    pub(crate) fn others_may_rename(&self) -> bool {
        self.owner != 0 && self.owner != rustix::process::geteuid().as_raw()
    }
}

/// What makes a directory unfit for a daemon's socket file or pid file,
/// given its `mode` and `owner` and the daemon's effective uid; `None`
/// when it is fit.
///
/// Whoever may replace an entry of the directory may put their own socket
/// where clients look for the daemon's, or a pid file naming another
/// process. Group or other write permission lets other users do that,
/// unless the directory is sticky (like `/tmp`: there only an entry's
/// owner may remove or rename it). Its owner always may: a daemon that
/// does not run as root refuses a directory of another user. One that
/// runs as root accepts any owner here, since the directory of the user
/// it will run as (`run_as`) is the recommended place;
/// `daemon::drop_privileges` checks that owner once it knows the user.
///
/// No file is ever reached through a link whatever the directory (the
/// constructions below make sure of that), so this check is about who may
/// stand in for the daemon, not about what root may be tricked into
/// touching.
pub(crate) fn directory_risk(mode: u32, owner: u32, euid: u32) -> Option<String> {
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        let who = if mode & 0o002 != 0 {
            "every user"
        } else {
            "its group"
        };
        return Some(format!(
            "{who} may write to it (mode {:04o}, not sticky)",
            mode & 0o7777
        ));
    }
    if euid != 0 && owner != euid && owner != 0 {
        return Some(format!("it belongs to another user (uid {owner})"));
    }
    None
}

/// The name of the socket inside its private directory.
const PRIVATE_SOCKET: &str = "s";

/// A directory only this process's user may enter, made beside a socket
/// file's final place, where the socket is bound, given its mode and
/// group, and made to listen before it is renamed into place. Removed
/// (with the socket, if still in it) when dropped.
#[derive(Debug)]
struct PrivateDir<'d> {
    parent: &'d Dir,
    name: String,
    fd: OwnedFd,
}

impl<'d> PrivateDir<'d> {
    /// Makes a fresh directory with mode 0700 in `parent`, named after the
    /// file it prepares.
    fn create(parent: &'d Dir, file: &OsStr) -> Result<PrivateDir<'d>> {
        use rustix::fs::{fstat, mkdirat, openat, FileType, Mode, OFlags};
        let euid = rustix::process::geteuid().as_raw();
        for _ in 0..8 {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let name = format!(".{}.{hex}", file.to_string_lossy());
            match mkdirat(&parent.fd, name.as_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            }
            // Whoever may write `parent` may have put something else under
            // this name since: a link is not followed, and a directory
            // that is not ours, or that others may enter, is refused.
            let fd = openat(
                &parent.fd,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)?;
            let st = fstat(&fd).map_err(io::Error::from)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory
                || st.st_uid != euid
                || st.st_mode & 0o077 != 0
            {
                return Err(Error::Config(format!(
                    "{} was replaced while the socket was being made",
                    parent.path.join(&name).display()
                )));
            }
            return Ok(PrivateDir { parent, name, fd });
        }
        Err(Error::Config(format!(
            "cannot make a private directory in {}",
            parent.path.display()
        )))
    }

    /// Binds `fd` to the socket's name in this directory, through
    /// `/proc/self/fd`: in the directory this process opened and checked,
    /// even if the parent's owner renames it away and puts a link in its
    /// place meanwhile.
    ///
    /// The kernel keeps the name a socket was bound with as its address:
    /// `ss -xl`, and a client's `getpeername`, show `/proc/self/fd/N/s`
    /// for such a socket. The daemon itself reports the configured path.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] without `/proc` (a bare chroot): binding by the
    /// private directory's path instead would follow a link the parent's
    /// owner put in its place, and root would make a socket file wherever
    /// it leads, so that is refused, not tried.
    fn bind(&self, fd: &OwnedFd, path: &Path) -> Result<()> {
        use rustix::net::{bind, SocketAddrUnix};
        let via_proc = format!("/proc/self/fd/{}/{PRIVATE_SOCKET}", self.fd.as_raw_fd());
        match bind(fd, &SocketAddrUnix::new(via_proc.as_str())?) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR)
                if rustix::fs::stat("/proc/self/fd").is_err() =>
            {
                Err(Error::Config(format!(
                    "cannot make the socket file {} safely without /proc: its directory {} \
                     belongs to another user (uid {}), who could swap the directory the \
                     socket is made in for a link, and only /proc/self/fd binds in the \
                     directory that was checked; mount /proc, or use a directory that only \
                     root or the daemon's user may write to",
                    path.display(),
                    self.parent.path.display(),
                    self.parent.owner
                )))
            }
            Err(e) => Err(io::Error::from(e).into()),
        }
    }
}

impl Drop for PrivateDir<'_> {
    fn drop(&mut self) {
        use rustix::fs::{unlinkat, AtFlags};
        // Gone already once the socket is in place.
        let _ = unlinkat(&self.fd, PRIVATE_SOCKET, AtFlags::empty());
        // An empty directory only: if someone who may write the parent has
        // put another under this name meanwhile, only an empty one of
        // theirs can go.
        if let Err(e) = unlinkat(&self.parent.fd, self.name.as_str(), AtFlags::REMOVEDIR) {
            tracing::warn!(
                path = %self.parent.path.join(&self.name).display(),
                error = %e,
                "cannot remove the directory the socket was made in"
            );
        }
    }
}

/// Renames `from` in `from_dir` to `to` in `to_dir` unless `to` exists
/// (`EEXIST` then). Neither name is followed if it is a link. Where the
/// file system has no `RENAME_NOREPLACE`, a hard link and an unlink do the
/// same (a socket file may have several names).
fn rename_noreplace(
    from_dir: &OwnedFd,
    from: &str,
    to_dir: &OwnedFd,
    to: &OsStr,
) -> rustix::io::Result<()> {
    use rustix::fs::{linkat, renameat_with, unlinkat, AtFlags, RenameFlags};
    match renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            linkat(from_dir, from, to_dir, to, AtFlags::empty())?;
            unlinkat(from_dir, from, AtFlags::empty())
        }
        other => other,
    }
}

/// Binds a socket file at `path`: a live daemon there is an error, a stale
/// socket file (nobody accepts) is replaced, anything else is left alone.
/// Connections are accepted only once the file has its mode and group, no
/// link is ever followed, and the process umask is left alone (it is the
/// whole process's, and other threads may be creating files).
///
/// Two constructions, after who may change the directory:
/// - Only root and the daemon's user may rename its entries (the common
///   case: `/run/NAME`, systemd's `RuntimeDirectory=`, a sticky directory
///   such as `/tmp`, where others may add entries but not touch ours): the
///   socket is bound at `path` itself, so the kernel records `path` as its
///   address (what `ss -xl` and a client's `getpeername` show). It is
///   born with at most the owner's permissions (set on the socket before
///   `bind`; the umask may take more), then given its mode and group by
///   name relative to the directory, where nobody else can put a link,
///   and only then listens: until it does, a connection is refused as if
///   no daemon were there. `bind` neither follows nor replaces whatever
///   is at `path`: an entry there is examined (without following it) and
///   only a stale socket is removed before trying again.
/// - Another user may (its owner: the directory of the `run_as` user,
///   which root accepts): that user could swap the socket for a link
///   between `bind` and `chmod`. The socket is then bound in a fresh
///   directory only this process's user may enter (see [`PrivateDir`]),
///   through `/proc/self/fd` so that it is made in the directory that was
///   checked whatever is renamed meanwhile, given its mode and group
///   there, made to listen, and moved into place with
///   `renameat2(RENAME_NOREPLACE)`, which neither follows nor replaces
///   whatever is at `path`. The kernel then records the `/proc` name as
///   the socket's address; the daemon reports `path`. Without `/proc` this
///   is refused (see [`PrivateDir::bind`]).
///
/// The links of the configured path itself, and who may write the
/// directories above the socket's, are the administrator's (see
/// [`Dir::of`]).
///
/// Two daemons started at once on the same path may both find one stale
/// socket and each replace it, and one may take the other's socket for a
/// stale one in the moment between its `bind` and its `listen`, as with
/// any check-then-replace; a pid file serialises their starts.
fn bind_unix_path(path: &Path, file: &SocketFile) -> Result<Listener> {
    use rustix::net::{socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

    // Clients reach the socket by this path: it must fit an address.
    SocketAddrUnix::new(path)?;
    let (dir, name) = Dir::of(path, "socket file")?;
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let owned = if dir.others_may_rename() {
        bind_in_private_dir(&fd, &dir, name, path, file)?
    } else {
        bind_in_place(&fd, &dir, name, path, file)?
    };
    Ok(Listener::Unix {
        listener: UnixListener::from(fd),
        file: Some(owned),
    })
}

/// How many entries in the way of a new socket are examined before giving
/// up: an entry that keeps coming back after being removed means someone
/// else is making sockets there.
const PLACING_ROUNDS: usize = 4;

/// The first construction of [`bind_unix_path`]: binds `fd` at `path`
/// (`name` in `dir`), sets its mode and group, and listens.
fn bind_in_place(
    fd: &OwnedFd,
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    file: &SocketFile,
) -> Result<OwnedSocketFile> {
    use rustix::fs::{fchmod, statat, AtFlags, FileType, Mode};
    use rustix::net::{bind, listen, SocketAddrUnix};
    // The file `bind` makes takes the socket's own permissions, less the
    // umask. Only tidiness: nobody can connect before `listen`, which
    // comes after the final mode and group, so a failure is ignored.
    let _ = fchmod(fd, Mode::from_raw_mode(file.mode & 0o700));
    let addr = SocketAddrUnix::new(path)?;
    let mut rounds = 0;
    loop {
        match bind(fd, &addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::ADDRINUSE) if rounds < PLACING_ROUNDS => {
                rounds += 1;
                clear_stale(dir, name, path)?;
            }
            Err(rustix::io::Errno::ADDRINUSE) => return Err(keeps_being_replaced(path)),
            Err(e) => return Err(io::Error::from(e).into()),
        }
    }
    let st = statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(Error::Config(format!(
            "{} was replaced while the socket was being made",
            path.display()
        )));
    }
    // From here on, removed again if anything fails.
    let owned = OwnedSocketFile {
        path: path.to_owned(),
        dev: st.st_dev,
        ino: st.st_ino,
    };
    set_mode_and_group(&dir.fd, name, file)?;
    listen(fd, 1024)?;
    Ok(owned)
}

/// Gives the socket `name` in the directory `dir` the mode and group of
/// `file`, by name relative to a directory we hold open (no path is
/// resolved again), the group without following a link.
fn set_mode_and_group(
    dir: &OwnedFd,
    name: impl rustix::path::Arg,
    file: &SocketFile,
) -> Result<()> {
    use rustix::fs::{chmodat, chownat, AtFlags, Gid, Mode};
    let name = name.into_c_str().map_err(io::Error::from)?;
    chmodat(
        dir,
        &*name,
        Mode::from_raw_mode(file.mode),
        AtFlags::empty(),
    )
    .map_err(io::Error::from)?;
    if let Some(gid) = file.group {
        chownat(
            dir,
            &*name,
            None,
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)?;
    }
    Ok(())
}

/// The second construction of [`bind_unix_path`]: binds `fd` in a private
/// directory beside `path`, sets its mode and group there, listens, and
/// moves it to `name` in `dir`.
fn bind_in_private_dir(
    fd: &OwnedFd,
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    file: &SocketFile,
) -> Result<OwnedSocketFile> {
    use rustix::fs::{statat, AtFlags};
    use rustix::net::listen;
    let private = PrivateDir::create(dir, name)?;
    private.bind(fd, path)?;
    set_mode_and_group(&private.fd, PRIVATE_SOCKET, file)?;
    let st =
        statat(&private.fd, PRIVATE_SOCKET, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
    listen(fd, 1024)?;
    move_into_place(&private, dir, name, path)?;
    Ok(OwnedSocketFile {
        path: path.to_owned(),
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// Moves the listening socket from `private` to `name` in `dir`, replacing
/// only a stale socket file.
fn move_into_place(private: &PrivateDir<'_>, dir: &Dir, name: &OsStr, path: &Path) -> Result<()> {
    for _ in 0..PLACING_ROUNDS {
        match rename_noreplace(&private.fd, PRIVATE_SOCKET, &dir.fd, name) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => clear_stale(dir, name, path)?,
            Err(e) => return Err(io::Error::from(e).into()),
        }
    }
    Err(keeps_being_replaced(path))
}

/// Deals with the entry `name` in `dir` (at `path`) that is in the way of
/// a new socket: `Ok` to try again when it is gone meanwhile or was a
/// stale socket, now removed; an error for a live socket or anything that
/// is not a socket. The entry is examined without following a link.
fn clear_stale(dir: &Dir, name: &OsStr, path: &Path) -> Result<()> {
    use rustix::fs::{statat, unlinkat, AtFlags, FileType};
    let st = match statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        // Gone meanwhile: try again.
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io::Error::from(e).into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(Error::Config(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(Error::AlreadyRunning(
            Address::Unix(path.to_owned()).to_string(),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket file");
            match unlinkat(&dir.fd, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(io::Error::from(e).into()),
            }
        }
        Err(e) => Err(Error::system(
            format!("check {}, which exists", path.display()),
            e,
        )),
    }
}

fn keeps_being_replaced(path: &Path) -> Error {
    Error::Config(format!(
        "{} keeps being replaced by other sockets; refusing to bind",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::{directory_risk, is_transient_socket_name, Listener};
    use crate::address::Address;
    use std::path::Path;

    #[test]
    fn an_inherited_socket_bound_through_proc_reports_the_configured_path() {
        use rustix::fs::{open, Mode, OFlags};
        use rustix::net::{bind, listen, socket_with, AddressFamily, SocketAddrUnix};
        use rustix::net::{SocketFlags, SocketType};
        use std::os::fd::AsRawFd;
        // A socket bound as `bind_unix_path` does in a directory another
        // user may change: the kernel keeps the /proc name, which no
        // client can use (in another process, or later in this one, it
        // names another descriptor or nothing).
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

    #[test]
    fn which_socket_names_no_client_could_use() {
        for name in [
            "/proc/self/fd/4/s",
            "/proc/thread-self/fd/12/s",
            "/dev/fd/4/s",
            "/run/x/.e.sock.0123456789abcdef/s",
        ] {
            assert!(is_transient_socket_name(Path::new(name)), "{name}");
        }
        for name in [
            "/run/x/e.sock",
            "/run/x/s",
            "/run/x/.e.sock.0123456789abcdef/t",
            "/run/x/.e.sock.0123456789abcdeg/s",
            "/run/x/e.sock.0123456789abcdef/s",
            "/run/.x/s",
        ] {
            assert!(!is_transient_socket_name(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn which_directories_may_hold_a_socket_or_pid_file() {
        // Private or read-only for others: fine, as root or as the owner.
        assert_eq!(directory_risk(0o40700, 0, 0), None);
        assert_eq!(directory_risk(0o40755, 0, 0), None);
        assert_eq!(directory_risk(0o40755, 1000, 1000), None);
        // Root accepts the directory of the user it will run as.
        assert_eq!(directory_risk(0o40755, 65534, 0), None);
        // Sticky, like /tmp: others may add entries but not replace ours.
        assert_eq!(directory_risk(0o41777, 0, 0), None);
        assert_eq!(directory_risk(0o41777, 0, 1000), None);
        // Writable by others without the sticky bit.
        let e = directory_risk(0o40777, 0, 0).unwrap();
        assert!(e.contains("every user") && e.contains("0777"), "{e}");
        let e = directory_risk(0o40775, 0, 0).unwrap();
        assert!(e.contains("its group"), "{e}");
        // Another user's, for a daemon that is not root.
        let e = directory_risk(0o40755, 1001, 1000).unwrap();
        assert!(e.contains("uid 1001"), "{e}");
        assert_eq!(directory_risk(0o40755, 0, 1000), None);
    }
}
