//! Every system call the crate makes that neither std nor rustix wraps
//! safely, behind a safe API: the one place where `unsafe` is allowed.
//! Each block says why it is sound.
//!
//! - [`users`]: the user and group databases through the C library (NSS);
//! - [`peer_groups`](mod@peer_groups): a socket peer's supplementary groups
//!   (`SO_PEERGROUPS`);
//! - [`switch_process_credentials`]: `setgroups`, `setgid` and `setuid` for
//!   the whole process;
//! - [`claim_inherited`]: taking ownership of descriptors passed across
//!   `exec` (socket activation);
//! - [`watch_readable`]: registering a descriptor with tokio's reactor;
//! - [`monotonic_ns`]: the monotonic clock as one number, for a call's
//!   duration.
//!
//! What the answers mean (policy, privilege hygiene, which sockets to
//! serve) lives with the callers.
#![allow(unsafe_code)]

mod peer_groups;
pub(crate) mod users;

pub(crate) use peer_groups::peer_groups;

use std::io;
use std::ops::Range;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The monotonic clock (`CLOCK_MONOTONIC`) in nanoseconds, for the
/// duration of every call: as one number, so that a duration is a
/// subtraction (`Instant`'s own arithmetic costs several times the read),
/// and through the C library's `clock_gettime`, which runs under
/// valgrind (rustix's own vDSO lookup crashes callgrind when it first
/// probes the vDSO).
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call's duration;
    // CLOCK_MONOTONIC always exists on Linux, so the call cannot fail
    // (and if it did, `t` stays zero: a duration of 0, not UB).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// Switches the whole process (every thread) to supplementary `groups`,
/// then `gid`, then `uid`: the order a privilege drop needs, since each
/// step may take away the right to the next.
///
/// # Errors
///
/// The step that failed (`"setgroups"`, `"setgid"`, `"setuid"`) and the
/// system's error; the steps before it have taken effect.
pub(crate) fn switch_process_credentials(
    groups: &[u32],
    gid: u32,
    uid: u32,
) -> Result<(), (&'static str, io::Error)> {
    let check = |r: libc::c_int, what: &'static str| {
        if r == 0 {
            Ok(())
        } else {
            Err((what, io::Error::last_os_error()))
        }
    };
    // SAFETY: `groups` is a live slice of `groups.len()` gid_t (u32)
    // values that setgroups only reads; setgid and setuid take plain
    // integers. The C library makes each change on all threads before
    // returning (unlike the raw system calls, which act on one thread).
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()), "setgroups")?;
        check(libc::setgid(gid), "setgid")?;
        check(libc::setuid(uid), "setuid")?;
    }
    Ok(())
}

/// Set once descriptors passed across `exec` have been claimed: each may
/// be owned only once in a process.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the descriptors `fds`, passed to this process across
/// `exec` (by a service manager), once each has passed `check`.
///
/// Before `check` runs, each must be open and without close-on-exec: a
/// descriptor that came across `exec` cannot have it, and everything std,
/// rustix and tokio open has it, so one with it was opened by this process
/// and belongs to someone else here (its own listening socket, opened
/// before `Appd::bind`, a log file, a pid file). Returns `Ok(None)` if the
/// descriptors were already claimed in this process; a failed check claims
/// nothing, so that a second try fails the same way.
///
/// # Errors
///
/// The first descriptor that is not what was promised, and why.
pub(crate) fn claim_inherited(
    fds: Range<RawFd>,
    check: impl Fn(BorrowedFd<'_>) -> Result<(), String>,
) -> Result<Option<Vec<OwnedFd>>, (RawFd, String)> {
    if CLAIMED.load(Ordering::SeqCst) {
        return Ok(None);
    }
    for raw in fds.clone() {
        // SAFETY: F_GETFD reads the flags of a descriptor number, and only
        // fails (EBADF) if it is not open; it touches nothing.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
        if flags == -1 {
            return Err((raw, "is not open".into()));
        }
        if flags & libc::FD_CLOEXEC != 0 {
            return Err((
                raw,
                "has close-on-exec set: it was opened by this process (a descriptor \
                 passed across exec by a service manager cannot have it), not passed"
                    .into(),
            ));
        }
        // SAFETY: `raw` is open (just checked) and is only borrowed for
        // `check`, which closes nothing: it was not opened by this process
        // (no close-on-exec), so no other code here owns it and closes it
        // meanwhile.
        check(unsafe { BorrowedFd::borrow_raw(raw) }).map_err(|why| (raw, why))?;
    }
    // Checked: claimed by this call, unless another thread's claimed them
    // meanwhile.
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    Ok(Some(
        fds.map(|raw| {
            // SAFETY: `raw` is open and came across exec (checked above:
            // no close-on-exec, which everything this process opens
            // through std, rustix or tokio has; only code that opens a
            // descriptor without it, or clears it, could fool this, and
            // such code hands that descriptor to whatever it execs), so
            // nothing else in the process owns it; CLAIMED guarantees it
            // is wrapped in an OwnedFd only once.
            unsafe { OwnedFd::from_raw_fd(raw) }
        })
        .collect(),
    ))
}

/// Registers `fd` with the current tokio runtime's reactor, to learn when
/// it is readable (or its reading side closed). Must be called inside a
/// runtime.
///
/// # Errors
///
/// When the reactor refuses it (none running, or epoll's error).
pub(crate) fn watch_readable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` owns `fd`, which stays open, the same
    // descriptor, until the `AsyncFd` is dropped (it closes it then, after
    // leaving the reactor): what `register_with_interest` asks.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            .map_err(|e| e.into_parts().1)
    }
}
