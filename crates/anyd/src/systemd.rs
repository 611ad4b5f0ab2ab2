//! Working under systemd: sockets passed by socket activation
//! (`LISTEN_FDS`), and readiness, status and watchdog notifications
//! (`NOTIFY_SOCKET`). Both are plain environment protocols, so they also
//! work with any manager that speaks them.
//!
//! [`Server::serve`](crate::Server::serve) sends `READY=1` once it accepts
//! calls, `STOPPING=1` when it shuts down, and `WATCHDOG=1` at half the
//! interval systemd asks for; [`notify_status`] lets a daemon say more.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;

/// Set once the passed descriptors have been checked and taken: each must
/// be owned exactly once. Not set by a check that fails, so that a second
/// try fails the same way instead of ignoring the sockets passed.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The most descriptors we believe a service manager passes: a larger
/// `LISTEN_FDS` is a mistake, refused before a loop over it.
const MAX_LISTEN_FDS: i32 = 4096;

/// The sockets passed to this process by socket activation, with their
/// names (`LISTEN_FDNAMES`), or an empty list when there are none
/// (`LISTEN_PID` unset or naming another process, as systemd's
/// `sd_listen_fds` reads it). The descriptors are taken once; a second
/// call returns none.
///
/// Each descriptor `LISTEN_FDS` claims is checked before any is taken:
/// open, without close-on-exec (it came across `exec`; see
/// [`check_listening`]), a socket, listening, a stream of a family we
/// serve (Unix, IPv4, IPv6). A wrong count would otherwise have the daemon
/// take, and later close, a descriptor that something else in the process
/// owns (a log file, the pid file holding its lock, a socket the program
/// opened itself).
///
/// # Errors
///
/// [`Error::Config`] saying which descriptor is not what was promised, or
/// that `LISTEN_FDS` or `LISTEN_PID` is not a number.
pub(crate) fn take_listen_fds() -> Result<Vec<(OwnedFd, String)>> {
    let Ok(count) = std::env::var("LISTEN_FDS") else {
        return Ok(Vec::new());
    };
    let Ok(pid) = std::env::var("LISTEN_PID") else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid.trim().parse().map_err(|_| {
        Error::Config(format!(
            "socket activation: LISTEN_PID={pid:?} is not a process id"
        ))
    })?;
    if pid != std::process::id() {
        tracing::debug!(
            listen_pid = pid,
            "LISTEN_FDS is meant for another process; ignored"
        );
        return Ok(Vec::new());
    }
    let count: RawFd = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=MAX_LISTEN_FDS).contains(n))
        .ok_or_else(|| {
            Error::Config(format!(
                "socket activation: LISTEN_FDS={count:?} is not a number of descriptors \
                 (0 to {MAX_LISTEN_FDS})"
            ))
        })?;
    if count == 0 || TAKEN.load(Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let fds = SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count;
    for raw in fds.clone() {
        check_listening(raw).map_err(|why| {
            Error::Config(format!(
                "socket activation: LISTEN_FDS={count} promises descriptors {}..={}, \
                 but descriptor {raw} {why}",
                SD_LISTEN_FDS_START,
                SD_LISTEN_FDS_START + count - 1
            ))
        })?;
    }
    // Checked: taken by this call, unless another thread's took them
    // meanwhile.
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .unwrap_or_default()
        .split(':')
        .map(str::to_owned)
        .collect();
    let mut taken = Vec::new();
    for (i, raw) in fds.enumerate() {
        // SAFETY: LISTEN_PID names this process, and `check_listening`
        // found `raw` to be what the manager promised to pass: open, a
        // listening socket, and without close-on-exec, which everything
        // the process opens through std, rustix or tokio has (its own
        // listening socket, opened before `Appd::bind`, included): so it
        // came across exec and nothing else in the process owns it (only
        // code that opens a descriptor without close-on-exec, or clears
        // it, could fool this check, and such code hands that descriptor
        // to whatever it execs). TAKEN, set once the checks pass,
        // guarantees that each is wrapped in an OwnedFd only once in this
        // process.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // They arrive without close-on-exec; our children must not keep
        // the daemon's listening socket alive.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        let name = names.get(i).cloned().unwrap_or_default();
        taken.push((fd, name));
    }
    Ok(taken)
}

/// Whether descriptor `raw` is a listening stream socket of a family we
/// serve, passed across `exec`; if not, what it is instead.
///
/// A descriptor a service manager passes cannot have close-on-exec (it
/// would not have survived the `exec`), and every descriptor std, rustix
/// and tokio open has it: one with it was opened by this process (for
/// example its own listening socket, opened before `Appd::bind`) and
/// belongs to someone else here.
fn check_listening(raw: RawFd) -> std::result::Result<(), String> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    // SAFETY: F_GETFD reads the flags of a descriptor number, and only
    // fails (EBADF) if it is not open; it touches nothing.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
    if flags == -1 {
        return Err("is not open".into());
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Err("has close-on-exec set: it was opened by this process (a \
                    descriptor passed across exec by a service manager cannot \
                    have it), not passed"
            .into());
    }
    // SAFETY: `raw` is open (just checked), and is only borrowed for the
    // checks below, during which this thread closes nothing.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    let stat = rustix::fs::fstat(fd).map_err(|e| format!("cannot be examined: {e}"))?;
    let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if kind != rustix::fs::FileType::Socket {
        return Err(format!("is not a socket (it is a {kind:?})"));
    }
    let family = sockopt::socket_domain(fd).map_err(|e| format!("is an unknown socket: {e}"))?;
    if ![
        AddressFamily::UNIX,
        AddressFamily::INET,
        AddressFamily::INET6,
    ]
    .contains(&family)
    {
        return Err(format!(
            "is a socket of an unsupported family ({family:?}; Unix, IPv4 and IPv6 are served)"
        ));
    }
    let kind = sockopt::socket_type(fd).map_err(|e| format!("is an unknown socket: {e}"))?;
    if kind != SocketType::STREAM {
        return Err(format!("is not a stream socket ({kind:?})"));
    }
    if !sockopt::socket_acceptconn(fd).map_err(|e| format!("is an unknown socket: {e}"))? {
        return Err("is a socket that is not listening (a connection? \
                    Accept=yes in the .socket unit passes those)"
            .into());
    }
    Ok(())
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to the service
/// manager. Returns false when there is no manager to tell.
fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    let socket = UnixDatagram::unbound()?;
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(&target)?,
    };
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// Tells the service manager what the daemon is doing (`STATUS=`, shown
/// by `systemctl status`). Does nothing outside a service manager.
///
/// # Errors
///
/// The notification socket named by `NOTIFY_SOCKET` cannot be reached.
pub fn notify_status(status: &str) -> io::Result<()> {
    notify(&format!("STATUS={}", status.replace('\n', " "))).map(|_| ())
}

pub(crate) fn notify_ready(status: &str) {
    let msg = format!(
        "READY=1\nSTATUS={}\nMAINPID={}",
        status.replace('\n', " "),
        std::process::id()
    );
    if let Err(e) = notify(&msg) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

pub(crate) fn notify_stopping() {
    if let Err(e) = notify("STOPPING=1\nSTATUS=shutting down") {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// How often to send `WATCHDOG=1`: half the interval the manager set for
/// this process, or `None` when it wants no pings.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

pub(crate) fn ping_watchdog() {
    if let Err(e) = notify("WATCHDOG=1") {
        tracing::warn!(error = %e, "cannot ping the service manager's watchdog");
    }
}
