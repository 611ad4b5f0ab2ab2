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
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;

/// Set once the passed descriptors have been taken: each must be owned
/// exactly once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The sockets passed to this process by socket activation, with their
/// names (`LISTEN_FDNAMES`), or an empty list when there are none. The
/// descriptors are taken once; a second call returns none.
pub(crate) fn take_listen_fds() -> io::Result<Vec<(OwnedFd, String)>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<RawFd>().ok())
        .unwrap_or(0);
    if !for_us || count <= 0 || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .unwrap_or_default()
        .split(':')
        .map(str::to_owned)
        .collect();
    let mut fds = Vec::new();
    for i in 0..count {
        let raw = SD_LISTEN_FDS_START + i;
        // SAFETY: LISTEN_PID names this process, so the manager passed us
        // descriptors 3..3+LISTEN_FDS, open and ours; TAKEN guarantees that
        // each is wrapped in an OwnedFd only once in this process.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // They arrive without close-on-exec; our children must not keep
        // the daemon's listening socket alive.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        let name = names.get(i as usize).cloned().unwrap_or_default();
        fds.push((fd, name));
    }
    Ok(fds)
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
