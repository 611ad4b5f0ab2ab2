//! The supplementary groups of a Unix socket peer, as the kernel recorded
//! them when it connected (SO_PEERGROUPS, Linux 4.13 and later).
//!
//! A `getsockopt` that neither std nor rustix wraps. The groups must come
//! from the kernel's snapshot at connect time, not from `/proc/<pid>`,
//! which describes whatever the process (or a process that reused its pid)
//! is now, for example after executing a setgid program.

use std::os::fd::{AsRawFd, BorrowedFd};

/// The peer's supplementary groups, or `None` where the kernel cannot say
/// (before Linux 4.13).
pub(crate) fn peer_groups(fd: BorrowedFd<'_>) -> Option<Vec<u32>> {
    // NGROUPS_MAX is 65536; start small and grow to what the kernel asks.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live, writable buffer of exactly `len`
        // bytes; the kernel writes at most `len` bytes and stores the size
        // it used (or needed, with ERANGE) in `len`. The descriptor is
        // borrowed, so it stays open for the call.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Some(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return None;
    }
}
