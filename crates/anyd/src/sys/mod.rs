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
//! - [`watch`]: registering a descriptor with tokio's reactor (a call's
//!   socket, to learn that its caller went; the async client's socket);
//! - [`CallSocket`]: a look at a connection's socket while a call runs,
//!   by its number;
//! - [`monotonic_ns`]: the monotonic clock as one number, for a call's
//!   duration.
//!
//! What the answers mean (policy, privilege hygiene, which sockets to
//! serve) lives with the callers. All but [`watch`] are the daemon's.
#![allow(unsafe_code)]

#[cfg(feature = "server")]
mod peer_groups;
#[cfg(feature = "server")]
pub(crate) mod users;

#[cfg(feature = "server")]
pub(crate) use peer_groups::peer_groups;

use std::io;
use std::os::fd::OwnedFd;
#[cfg(feature = "server")]
use {
    std::ops::Range,
    std::os::fd::{BorrowedFd, FromRawFd, RawFd},
    std::sync::atomic::{AtomicBool, Ordering},
};

/// The monotonic clock (`CLOCK_MONOTONIC`) in nanoseconds, for the
/// duration of every call: as one number, so that a duration is a
/// subtraction (`Instant`'s own arithmetic costs several times the read),
/// and through the C library's `clock_gettime`, which runs under
/// valgrind (rustix's own vDSO lookup crashes callgrind when it first
/// probes the vDSO).
#[cfg(feature = "server")]
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
#[cfg(feature = "server")]
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
#[cfg(feature = "server")]
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
#[cfg(feature = "server")]
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
/// it is ready for `interest`. Must be called inside a runtime.
///
/// # Errors
///
/// When the reactor refuses it (none running, or epoll's error).
pub(crate) fn watch(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` owns `fd`, which stays open, the same
    // descriptor, until the `AsyncFd` is dropped (it closes it then, after
    // leaving the reactor): what `register_with_interest` asks.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, interest).map_err(|e| e.into_parts().1)
    }
}

/// A connection's socket, by its number, as the context of a call served
/// on it looks at it: without a copy of the descriptor (a call with a
/// deadline would pay two system calls for one, and a descriptor the
/// daemon may not have to spare).
///
/// Sound only while the socket is open, which its one user guarantees:
/// `context::Watch` holds a `CallSocket` only while the call it watches
/// runs (the session cannot close the socket before the handler returns)
/// and drops it, under the lock it uses it under, before the session goes
/// on.
#[cfg(feature = "server")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallSocket(RawFd);

#[cfg(feature = "server")]
impl CallSocket {
    /// The socket `fd`, which the caller keeps open for as long as it
    /// holds the result (see the type's docs).
    pub(crate) fn new(fd: BorrowedFd<'_>) -> CallSocket {
        use std::os::fd::AsRawFd;
        CallSocket(fd.as_raw_fd())
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the socket is open while a `CallSocket` of it is held
        // (the type's docs say how its one user keeps that true).
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }

    /// What `poll` says of the socket now, without waiting: its readable
    /// side and whether it hung up.
    pub(crate) fn poll_now(&self) -> io::Result<rustix::event::PollFlags> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let fd = self.fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN | PollFlags::RDHUP)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero))?;
        Ok(fds[0].revents())
    }

    /// Copies what the socket has into `buf` without reading it, nor any
    /// descriptor that came with it (no control buffer), without waiting.
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::net::{recv, RecvFlags};
        Ok(recv(self.fd(), buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)?.0)
    }

    /// A copy of the descriptor, to hand to the runtime's reactor.
    pub(crate) fn duplicate(&self) -> io::Result<OwnedFd> {
        Ok(rustix::io::fcntl_dupfd_cloexec(self.fd(), 0)?)
    }
}
