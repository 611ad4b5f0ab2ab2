//! For the tests that need root: they switch to other users, give files to
//! other groups or drop privileges. Not run as root, they fail with a
//! message saying so (never a silent pass); their names end in `_as_root`,
//! so that `cargo nextest run --workspace -E 'not test(/_as_root$/)'` leaves
//! them out.

#![allow(
    dead_code,
    reason = "each test binary uses the part of this module it needs"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Fails the test unless it runs as root; `why` says what it needs root for.
pub(crate) fn require_root(why: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root ({why}): run the suite as root, or leave out \
         the tests named *_as_root with -E 'not test(/_as_root$/)'"
    );
}

/// A copy of the program at `program` that every user may run, in a
/// directory every user may enter, with that directory (removed when
/// dropped).
///
/// A program run as another user must be reachable by that user: the
/// build's own directory may not be (a checkout under `/root` or in a
/// `mktemp -d` directory is 0700).
pub(crate) fn runnable_by_others(program: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join(program.file_name().unwrap());
    std::fs::copy(program, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", program.display()));
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// Runs `f` on a thread with the given credentials, set in the order a
/// privilege drop needs: groups, gid, then uid. Linux credentials are per
/// thread at the system call level, so a daemon `f` connects to is told by
/// the kernel that its caller is that user.
pub(crate) fn as_user<T: Send + 'static>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use rustix::process::{Gid, Uid};
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    std::thread::spawn(move || {
        rustix::thread::set_thread_groups(&groups).unwrap();
        rustix::thread::set_thread_gid(Gid::from_raw(gid)).unwrap();
        rustix::thread::set_thread_uid(Uid::from_raw(uid)).unwrap();
        f()
    })
    .join()
    .unwrap()
}
