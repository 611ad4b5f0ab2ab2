//! Working under systemd: sockets passed by socket activation
//! (`LISTEN_FDS`, and choosing among several by `LISTEN_FDNAMES`), and
//! readiness, status and watchdog notifications (`NOTIFY_SOCKET`). Both are plain environment protocols, so they also
//! work with any manager that speaks them.
//!
//! [`Server::serve`](crate::Server::serve) sends `READY=1` once it accepts
//! calls, `STOPPING=1` when it shuts down, and `WATCHDOG=1` at half the
//! interval systemd asks for; [`notify_status`] lets a daemon say more.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::error::{Error, Result};

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;

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
    if count == 0 {
        return Ok(Vec::new());
    }
    let fds = SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count;
    // Each is checked before any is owned, and owned only once in this
    // process (a second call finds none), by the one module that may.
    let claimed = crate::sys::claim_inherited(fds, check_listening).map_err(|(raw, why)| {
        Error::Config(format!(
            "socket activation: LISTEN_FDS={count} promises descriptors {}..={}, \
             but descriptor {raw} {why}",
            SD_LISTEN_FDS_START,
            SD_LISTEN_FDS_START + count - 1
        ))
    })?;
    let Some(claimed) = claimed else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .unwrap_or_default()
        .split(':')
        .map(str::to_owned)
        .collect();
    let mut taken = Vec::new();
    for (i, fd) in claimed.into_iter().enumerate() {
        // They arrive without close-on-exec; our children must not keep
        // the daemon's listening socket alive.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        let name = names.get(i).cloned().unwrap_or_default();
        taken.push((fd, name));
    }
    Ok(taken)
}

/// Whether `fd`, passed across `exec` (the open and close-on-exec checks
/// are [`crate::sys::claim_inherited`]'s), is a listening stream socket of
/// a family we serve; if not, what it is instead.
fn check_listening(fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
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

/// The passed socket to serve on: the one named `name`, else the only one
/// (or the first, with a warning naming the rest).
pub(crate) fn choose_inherited(
    passed: Vec<(std::os::fd::OwnedFd, String)>,
    name: Option<&str>,
) -> Result<Option<(std::os::fd::OwnedFd, String)>> {
    if passed.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = passed.iter().map(|(_, n)| format!("{n:?}")).collect();
    match name {
        Some(wanted) => passed
            .into_iter()
            .find(|(_, n)| n == wanted)
            .map(Some)
            .ok_or_else(|| {
                Error::Config(format!(
                    "the service manager passed sockets named {}, none named {wanted:?}",
                    names.join(", ")
                ))
            }),
        None => {
            if passed.len() > 1 {
                tracing::warn!(
                    sockets = names.join(", "),
                    "several sockets were passed; serving on the first \
                     (Appd::socket_name chooses one)"
                );
            }
            Ok(passed.into_iter().next())
        }
    }
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
