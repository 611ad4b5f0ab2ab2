//! The one place anydctl needs `unsafe`: a copy of a descriptor it
//! inherited, named by its number (`call --fd N`). Safe code only reaches
//! descriptors something in the process owns; a number from the command
//! line is borrowed here, after the checks that make the borrow sound,
//! just long enough to duplicate it. Nothing else in anydctl is unsafe.

#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use rustix::io::{Errno, FdFlags};

/// A close-on-exec copy of descriptor `n`, which anydctl's process must
/// have inherited: open, and without close-on-exec.
///
/// Everything std and rustix open has close-on-exec, and a descriptor
/// that came across `exec` cannot have it, so one without it was not
/// opened by this process and nothing here owns it, or closes it while
/// it is borrowed. (Descriptors 0, 1 and 2 are the process's stdin,
/// stdout and stderr: std uses them by number and never closes them.)
///
/// # Errors
///
/// Why `n` cannot be sent, in words.
pub(crate) fn dup_inherited(n: RawFd) -> Result<OwnedFd, String> {
    if n < 0 {
        return Err(format!("{n} is not a descriptor number"));
    }
    // SAFETY: `n` is not -1. If it is not open, F_GETFD fails with EBADF
    // and touches nothing. If it is, the borrow lives for this function
    // only; F_GETFD comes first and tells whether something in the
    // process may own it (close-on-exec, as the doc above says), and the
    // copy is made only if nothing does, so nothing closes it meanwhile.
    let fd = unsafe { BorrowedFd::borrow_raw(n) };
    match rustix::io::fcntl_getfd(fd) {
        Err(Errno::BADF) => Err(format!(
            "descriptor {n} is not open in anydctl's process (the shell opens one: \
             --fd 3 3<file)"
        )),
        Err(e) => Err(format!("cannot look at descriptor {n}: {e}")),
        Ok(flags) if flags.contains(FdFlags::CLOEXEC) => Err(format!(
            "descriptor {n} was opened by anydctl itself, not inherited"
        )),
        Ok(_) => rustix::io::fcntl_dupfd_cloexec(fd, 3)
            .map_err(|e| format!("cannot copy descriptor {n}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_an_inherited_descriptor_is_copied() {
        // Stdin is inherited in a test as in anydctl.
        let copy = dup_inherited(0).unwrap();
        assert_ne!(copy.as_raw_fd(), 0);
        let flags = rustix::io::fcntl_getfd(&copy).unwrap();
        assert!(flags.contains(FdFlags::CLOEXEC));
        // A pipe this process opened has close-on-exec: not inherited.
        let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let why = dup_inherited(r.as_raw_fd()).unwrap_err();
        assert!(why.contains("opened by anydctl itself"), "{why}");
        // A number nothing is open at.
        let why = dup_inherited(1 << 20).unwrap_err();
        assert!(why.contains("is not open"), "{why}");
        assert!(dup_inherited(-1).is_err());
    }
}
