//! For the tests that need root: they switch to other users, give files to
//! other groups or drop privileges. Not run as root, they fail with a
//! message saying so (never a silent pass); their names end in `_as_root`,
//! so that `cargo nextest run --workspace -E 'not test(/_as_root$/)'` leaves
//! them out.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Fails the test unless it runs as root; `why` says what it needs root for.
pub fn require_root(why: &str) {
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
pub fn runnable_by_others(program: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join(program.file_name().unwrap());
    std::fs::copy(program, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", program.display()));
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// Runs `f` on a thread with the given credentials, set in the order a
/// privilege drop needs: groups, gid, then uid, and returns what it
/// returns. Linux credentials are per thread at the system call level, so
/// only that thread changes (the test itself stays root), and a daemon `f`
/// connects to is told by the kernel that its caller is that user.
pub fn as_user<T: Send>(uid: u32, gid: u32, groups: &[u32], f: impl FnOnce() -> T + Send) -> T {
    use rustix::process::{Gid, Uid};
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
            rustix::thread::set_thread_groups(&groups).unwrap();
            rustix::thread::set_thread_res_gid(gid, gid, gid).unwrap();
            rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// [`as_user`] as nobody (65534), with no supplementary groups.
pub fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    as_user(65534, 65534, &[], f)
}

/// A directory that belongs to nobody (65534), mode 0755: the runtime
/// directory of a daemon's `run_as` user, which that user may fill with
/// whatever it likes.
pub fn nobodys_directory() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// What a file looks like, to check that nothing touched it.
#[derive(Debug, PartialEq, Eq)]
pub struct FileState {
    /// Its permission bits (with setuid, setgid and sticky).
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// What it holds.
    pub content: Vec<u8>,
}

impl FileState {
    /// Of the file at `path` (a link itself, not what it leads to).
    pub fn of(path: &Path) -> FileState {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).unwrap();
        FileState {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            content: std::fs::read(path).unwrap(),
        }
    }
}

/// A root-owned file with mode 0600 and some content, in a root-owned
/// directory others may enter (so that a link to it resolves for them),
/// and beside it the path of a file that does not exist: targets for
/// links planted by another user. The directory lives as long as the
/// returned guard.
pub fn roots_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, b"root's secret\n").unwrap();
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o600)).unwrap();
    let absent = dir.path().join("created-through-a-link");
    (dir, precious, absent)
}
