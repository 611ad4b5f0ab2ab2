//! A Unix socket's file at a path: how it is made ([`SocketFile`]: its
//! mode and group), put in place ([`bind_unix_path`]: a live daemon's file
//! is never taken, a stale one is replaced, nobody can connect before the
//! mode and group are set, no link is ever followed), and removed when the
//! listener goes ([`OwnedSocketFile`]).
//!
//! It owns the two constructions of `bind_unix_path` and the names a
//! socket has while it is being made ([`is_transient_socket_name`]).
//! Whether the directory is fit to hold the file is `checked_dir`'s (pid
//! files share it); the listening socket itself is `listener`'s.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::address::Address;
use crate::checked_dir::Dir;
use crate::error::{Error, Result};

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

impl OwnedSocketFile {
    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path`, the name a Unix socket was bound with, is one that no
/// client could connect to: a `/proc/self/fd/N/...` name (the kernel keeps
/// the one a socket was bound with, and `bind_unix_path` binds through
/// `/proc` in a directory another user may change), or the private
/// directory it was made in before being renamed into place
/// (`.NAME.<16 hex digits>/s`).
pub(crate) fn is_transient_socket_name(path: &Path) -> bool {
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
/// whole process's, and other threads may be creating files). Returns
/// the listening socket and its file, which removes itself when dropped.
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
pub(crate) fn bind_unix_path(
    path: &Path,
    file: &SocketFile,
) -> Result<(UnixListener, OwnedSocketFile)> {
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
    Ok((UnixListener::from(fd), owned))
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
    use super::is_transient_socket_name;
    use std::path::Path;

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
}
