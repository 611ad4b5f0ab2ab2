//! Process lifecycle for daemons that run without a service manager, or
//! want the classic safeguards: a locked pid file, detaching from the
//! terminal, and dropping root after binding (to the `run_as` user looked
//! up at bind, [`RunAs`]); and raising the limit on open files to what the
//! connection cap needs.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{flock, FlockOperation};

use crate::capability::Keep;
use crate::error::{Error, Result};
use crate::sys::{self, users};

/// A pid file held under an exclusive lock for the life of the daemon.
///
/// The lock, not the file's existence, says whether a daemon runs: a file
/// left by a crash is simply taken over.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    file: File,
    /// The file's identity, so that only this file is removed on exit.
    dev: u64,
    ino: u64,
}

impl PidFile {
    /// Locks `path` and writes our pid into it.
    ///
    /// Whoever may write the directory must not be able to make the
    /// daemon (often root) create, truncate or write another file: the
    /// file is opened relative to its checked directory (see
    /// `checked_dir::Dir::of`) with `O_NOFOLLOW` (a link at `path` is an
    /// error, not followed, so nothing is created at its target), without
    /// `O_TRUNC`, and with `O_NONBLOCK` and `O_NOCTTY` (a FIFO or a device
    /// put there neither blocks the open nor becomes a terminal). The open
    /// file must be a regular file with no other name (a hard link to
    /// another file would be written through) belonging to root or to us;
    /// only then is it locked and, locked, truncated.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] naming the pid in the file when another
    /// process holds the lock; [`Error::Config`] when `path` or its
    /// directory is refused; [`Error::System`] when it cannot be opened,
    /// locked or written.
    pub(crate) fn acquire(path: &Path) -> Result<PidFile> {
        use rustix::fs::{fstat, openat, FileType, Mode, OFlags};
        let refused =
            |why: String| Error::Config(format!("refusing the pid file {}: {why}", path.display()));
        let (dir, name) = crate::checked_dir::Dir::of(path, "pid file")?;
        let fd = openat(
            &dir.fd,
            name,
            OFlags::RDWR
                | OFlags::CREATE
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::NOCTTY
                | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => refused("it is a symbolic link".into()),
            // Not a file the system failed to open: a path that cannot be one.
            rustix::io::Errno::ISDIR => refused("it is a directory".into()),
            e => Error::system(format!("open pid file {}", path.display()), e),
        })?;
        let st = fstat(&fd)
            .map_err(|e| Error::system(format!("inspect pid file {}", path.display()), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refused("it is not a regular file".into()));
        }
        if st.st_nlink != 1 {
            return Err(refused(format!(
                "it has {} names (hard links)",
                st.st_nlink
            )));
        }
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != 0 && st.st_uid != euid {
            return Err(refused(format!(
                "it belongs to another user (uid {})",
                st.st_uid
            )));
        }
        let mut file = File::from(fd);
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim();
                let pid = if pid.is_empty() { "unknown" } else { pid };
                return Err(Error::AlreadyRunning(format!(
                    "pid {pid} (pid file {})",
                    path.display()
                )));
            }
            return Err(Error::system(
                format!("lock pid file {}", path.display()),
                e,
            ));
        }
        // Truncated only now, through the locked descriptor of the file
        // checked above.
        let write = |file: &mut File| {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write(&mut file)
            .map_err(|e| Error::system(format!("write pid file {}", path.display()), e))?;
        Ok(PidFile {
            path: path.to_owned(),
            file,
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }
}

impl PidFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Removed while still locked, so no other instance can have taken
        // it over in between; and only if the path still names our file
        // (unlinking never follows a link).
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    // Left behind unlocked, it is taken over by the next start.
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the pid file");
                }
            }
            _ => tracing::warn!(
                path = %self.path.display(),
                "the pid file was replaced or removed by someone else; leaving the path alone"
            ),
        }
        let _ = &self.file;
    }
}

/// Whether `uid`, a member of `gids`, may remove `path`: it needs write
/// and search permission on the directory, and in a sticky directory
/// (like `/tmp`) to own the directory or the file. Unknown is no.
fn removable_by(path: &Path, uid: u32, gids: &[u32]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (std::fs::metadata(dir), std::fs::symlink_metadata(path)) {
        (Ok(d), Ok(f)) => may_remove(
            DirBits {
                mode: d.mode(),
                uid: d.uid(),
                gid: d.gid(),
            },
            f.uid(),
            uid,
            gids,
        ),
        _ => false,
    }
}

/// What decides who may remove an entry of a directory.
#[derive(Debug, Clone, Copy)]
struct DirBits {
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The kernel's rule for unlinking an entry owned by `file_uid` from
/// `dir`, for a caller `uid` in `gids` without capabilities.
fn may_remove(dir: DirBits, file_uid: u32, uid: u32, gids: &[u32]) -> bool {
    if uid == 0 {
        return true;
    }
    let class = if dir.uid == uid {
        dir.mode >> 6
    } else if gids.contains(&dir.gid) {
        dir.mode >> 3
    } else {
        dir.mode
    };
    let write_and_search = class & 0o3 == 0o3;
    let sticky = dir.mode & 0o1000 != 0;
    write_and_search && (!sticky || dir.uid == uid || file_uid == uid)
}

/// The environment variable that tells a re-executed process which stage
/// of [`daemonize`] it is in.
const STAGE_VAR: &str = "ANYD_DAEMONIZE_STAGE";

/// Tells the stages of a `daemonize` run that a launcher waits on their
/// standard error (a pipe) for [`READY_MARK`]; the daemon takes it out of
/// its environment at once, so that what it starts does not inherit it.
const LAUNCHER_VAR: &str = "ANYD_DAEMONIZE_LAUNCHER";

/// Whether this process is a daemonized one whose launcher still waits.
static LAUNCHER_WAITS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What the daemon writes to the launcher once it serves.
const READY_MARK: &[u8] = b"\0anyd-ready\n";

/// Detaches the process from its terminal and parent, the way a classic
/// Unix daemon does: a new session, not its leader (so it can never get a
/// controlling terminal back), working directory `/`, umask `027`, and
/// standard streams on `/dev/null`. Call it first thing in `main`, before
/// any thread or runtime exists; the calling process exits inside it and
/// only the detached one returns.
///
/// The calling process exits once the daemon serves (its [`Server`]
/// accepts calls, or the program calls [`daemonize_ready`]), with status 0; if the daemon exits before that, for
/// example because it cannot bind its socket, with status 1, after
/// passing on what the daemon wrote to standard error until then. So an
/// init script or a shell that starts the daemon learns whether it came
/// up, and why not. Until it serves, the daemon's standard error goes to
/// the launcher; then to `/dev/null`.
///
/// Rust cannot safely `fork` a process that may hold locks, so the two
/// forks of the classic recipe are two re-executions of the program with
/// the same arguments: the first creates the new session, the second
/// starts the daemon inside it. Where a service manager runs the daemon,
/// do not daemonize: it tracks the process it started.
///
/// [`Server`]: crate::Server
///
/// # Errors
///
/// The program cannot be started again, or `setsid` fails.
pub fn daemonize() -> Result<()> {
    let stage = std::env::var(STAGE_VAR).unwrap_or_default();
    match stage.as_str() {
        "" => launch(),
        "1" => {
            // Not a process group leader (we were spawned), so this works.
            rustix::process::setsid().map_err(io::Error::from)?;
            // Standard error, the pipe to the launcher, is inherited.
            respawn("2", Stdio::inherit())
        }
        _ => {
            // Changed here, before any thread exists: what the daemon
            // starts later must not think a launcher waits on it.
            std::env::remove_var(STAGE_VAR);
            if std::env::var_os(LAUNCHER_VAR).is_some() {
                std::env::remove_var(LAUNCHER_VAR);
                LAUNCHER_WAITS.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
            Ok(())
        }
    }
}

/// The launcher: starts stage 1 with standard error on a pipe, passes on
/// what comes through it, and exits 0 once the daemon says it serves, 1
/// if the pipe closes first (every process that held it has exited).
fn launch() -> Result<()> {
    let (read, write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)?;
    // The child's copy of `write` is made without CLOEXEC by Stdio; ours
    // closes when `Stdio` is dropped, so the pipe ends with the daemon.
    spawn_stage("1", Stdio::from(write), true)?;
    let mut from_daemon = std::fs::File::from(read);
    let mut said = Vec::new();
    let mut chunk = [0u8; 4096];
    let ready = loop {
        match from_daemon.read(&mut chunk) {
            Ok(0) => break false,
            Ok(n) => said.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
        if let Some(at) = find(&said, READY_MARK) {
            said.truncate(at);
            break true;
        }
        // Pass on whole lines as they come; keep a tail that may be the
        // start of the mark.
        let keep = said.len().min(READY_MARK.len() - 1);
        let _ = io::stderr().write_all(&said[..said.len() - keep]);
        said.drain(..said.len() - keep);
    };
    let _ = io::stderr().write_all(&said);
    if ready {
        std::process::exit(0);
    }
    let _ = writeln!(
        io::stderr(),
        "{}: the daemon exited before it was serving",
        std::env::args().next().unwrap_or_default()
    );
    std::process::exit(1);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Tells the launcher of a [`daemonize`]d process that the daemon is up,
/// which lets it exit 0, and puts standard error on `/dev/null` from then
/// on. A [`Server`](crate::Server) does this itself once it serves; a
/// program that daemonizes without one calls this when it is ready. Does
/// nothing in a process that was not daemonized, or the second time.
pub fn daemonize_ready() {
    if !LAUNCHER_WAITS.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    // The pipe to the launcher leaves standard error before the mark goes
    // through it: once the launcher has the mark it exits, and a log line
    // written to the pipe after that would meet a closed pipe.
    let pipe = match rustix::io::dup(io::stderr()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the launcher the daemon is up");
            return;
        }
    };
    match std::fs::OpenOptions::new().write(true).open("/dev/null") {
        Ok(null) => {
            if let Err(e) = rustix::stdio::dup2_stderr(&null) {
                tracing::warn!(error = %e, "cannot put standard error on /dev/null");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot open /dev/null"),
    }
    // Closing the last copy of the pipe ends the launcher's wait.
    let _ = (&pipe).write_all(READY_MARK);
    drop(pipe);
}

/// Starts this program again at `stage`, detached, and exits.
fn respawn(stage: &str, stderr: Stdio) -> Result<()> {
    spawn_stage(stage, stderr, false)?;
    std::process::exit(0);
}

/// Starts this program again at `stage`; with `launcher`, telling it (and
/// the stage it starts in turn) that a launcher waits on its standard
/// error.
fn spawn_stage(stage: &str, stderr: Stdio, launcher: bool) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    if launcher {
        command.env(LAUNCHER_VAR, "1");
    }
    command
        .args(std::env::args_os().skip(1))
        .env(STAGE_VAR, stage)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    Ok(())
}

/// The user a daemon switches to ([`Appd::run_as`](crate::Appd::run_as)),
/// looked up once, when it binds: what "the daemon's user" means for its
/// policy, and what [`drop_privileges`] switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Its groups, the primary one first (from the group database).
    pub(crate) groups: Vec<u32>,
}

impl RunAs {
    /// Looks `name` up in the user and group databases.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if there is no such user, [`Error::System`] if
    /// the databases cannot be read.
    pub(crate) fn look_up(name: &str) -> Result<RunAs> {
        let u = users::user_by_name(name)?
            .ok_or_else(|| Error::Config(format!("no user named {name:?}")))?;
        let groups = users::groups_of(&u.name, u.gid)?;
        Ok(RunAs {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            groups,
        })
    }
}

/// Drops root for `user`: its groups, its primary gid, then its uid;
/// afterwards checks that root cannot be regained. `leftovers` are the files the daemon removes on exit (its
/// socket file, its pid file): a warning says so now if `user` will not be
/// allowed to.
///
/// Through the C library's `setgroups`, `setgid` and `setuid`, which apply
/// to every thread of the process (the raw system calls change only the
/// calling thread, and a thread left as root would undo the point).
///
/// Capabilities: leaving uid 0 empties every thread's permitted,
/// effective and ambient sets; `keep` names those this thread keeps
/// (and the threads it starts afterwards inherit), and every capability
/// it does not name leaves the bounding set first (see
/// [`Keep::before_switch`]). Capabilities belong to threads, which the C
/// library's broadcast of the user change does not cover: a thread
/// started before this keeps none.
pub(crate) fn drop_privileges(u: &RunAs, keep: &Keep, leftovers: &[&Path]) -> Result<()> {
    let user = u.name.as_str();
    for path in leftovers {
        // At bind, still root, the daemon accepted a directory of any
        // owner: it may be this user's (the recommended place). Another
        // user's is refused now, as it is for a daemon that is not root
        // (`checked_dir::directory_risk`): its owner could replace the file.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let meta = std::fs::metadata(dir)
            .map_err(|e| Error::system(format!("inspect {}", dir.display()), e))?;
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        if owner != 0 && owner != u.uid {
            return Err(Error::Config(format!(
                "refusing to run as {user} with {} in {}: the directory belongs to another \
                 user (uid {owner}), who could replace it; use one that belongs to root or {user}",
                path.display(),
                dir.display()
            )));
        }
        if !removable_by(path, u.uid, &u.groups) {
            tracing::warn!(
                path = %path.display(),
                user,
                "once running as this user the daemon cannot remove this file on exit: \
                 its directory does not let the user; a directory the user owns \
                 (systemd's RuntimeDirectory=) avoids the leftover"
            );
        }
    }
    if !keep.is_empty() {
        warn_of_other_threads(keep);
    }
    keep.before_switch()?;
    let switched = sys::switch_process_credentials(&u.groups, u.gid, u.uid);
    // Run whether or not the switch worked: the kernel must not go on
    // keeping capabilities across changes of user.
    let kept = keep.after_switch();
    switched
        .map_err(|(what, e)| Error::system(format!("drop privileges to {user} ({what})"), e))?;
    kept?;
    if u.uid != 0 && rustix::thread::set_thread_uid(rustix::process::Uid::ROOT).is_ok() {
        return Err(Error::Config(format!(
            "dropped to {user} but could regain root; refusing to continue"
        )));
    }
    tracing::info!(
        user,
        uid = u.uid,
        gid = u.gid,
        capabilities = keep.names(),
        "dropped privileges"
    );
    Ok(())
}

/// Says so when threads other than this one exist: they keep none of the
/// capabilities kept here (see [`drop_privileges`]), so a handler that
/// ran on one would lack them.
fn warn_of_other_threads(keep: &Keep) {
    let others = std::fs::read_dir("/proc/self/task")
        .map(|tasks| tasks.count().saturating_sub(1))
        .unwrap_or(0);
    if others > 0 {
        tracing::warn!(
            threads = others,
            capabilities = keep.names(),
            "other threads of the daemon were started before it dropped privileges: \
             capabilities belong to threads, and they keep none (the thread that binds, \
             and every thread it starts from then on, keep these); bind before starting \
             threads, from the main thread"
        );
    }
}

/// File descriptors for everything but connections: the listener, the
/// wake pipe, the spare descriptor of the accept loop, the runtime, the
/// pid file, and what handlers open.
pub(crate) const FDS_SPARE: u64 = 64;

/// Raises the soft limit on open files towards `wanted`, as far as the
/// hard limit allows, and returns the soft limit the process has then
/// (`u64::MAX`: unlimited). The connection caps and the descriptor budget
/// are sized from what it returns (`fd_budget::Plan`). Without it,
/// systemd's default soft limit of 1024 would run out at some 960
/// connections, short of the default cap: past that, new connections are
/// closed at once for want of a descriptor, whoever they come from, before
/// the caps could tell root's from everyone else's. Raising the soft limit
/// up to the hard one is what the limit pair is for (systemd sets a soft
/// 1024 precisely so that programs which can use more ask).
pub(crate) fn raise_open_files(wanted: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};

    let mut limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return soft;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let new = wanted.min(hard);
    if new <= soft {
        return soft;
    }
    limit.current = Some(new);
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        tracing::warn!(error = %e, soft, wanted, "could not raise the limit on open files");
        return soft;
    }
    tracing::debug!(from = soft, to = new, "raised the soft limit on open files");
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(mode: u32, uid: u32, gid: u32) -> DirBits {
        DirBits { mode, uid, gid }
    }

    #[test]
    fn the_run_as_user_is_looked_up_with_its_groups() {
        let root = RunAs::look_up("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.groups.first(), Some(&0));
        let e = RunAs::look_up("no-such-user-anyd").unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
    }

    #[test]
    fn who_may_remove_a_file() {
        // A root-owned private directory: only root.
        assert!(!may_remove(dir(0o700, 0, 0), 0, 65534, &[65534]));
        assert!(may_remove(dir(0o700, 0, 0), 0, 0, &[0]));
        // A directory the user owns, or may write through its group.
        assert!(may_remove(dir(0o700, 65534, 0), 0, 65534, &[65534]));
        assert!(may_remove(dir(0o770, 0, 100), 0, 65534, &[65534, 100]));
        assert!(!may_remove(dir(0o750, 0, 100), 0, 65534, &[65534, 100]));
        // World-writable: anyone, unless sticky and the file is root's.
        assert!(may_remove(dir(0o777, 0, 0), 0, 65534, &[65534]));
        assert!(!may_remove(dir(0o1777, 0, 0), 0, 65534, &[65534]));
        assert!(may_remove(dir(0o1777, 0, 0), 65534, 65534, &[65534]));
        // Write without search is not enough.
        assert!(!may_remove(dir(0o722, 0, 0), 0, 65534, &[65534]));
    }
}
