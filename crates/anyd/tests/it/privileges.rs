//! Dropping root after binding (`Appd::run_as`), with the capabilities
//! the daemon keeps (`Appd::keep_capabilities`): who the daemon is
//! afterwards, and what it may still do, read from the kernel
//! (`/proc/<pid>/task/<tid>/status`). The daemons are `lifecycle`'s child
//! daemon, in processes of their own.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use anyd::{ClientSession, Error};
use anyd_testkit::root;
use rustix::process::Signal;

use super::lifecycle::spawn;

/// `CAP_NET_ADMIN`'s bit.
const NET_ADMIN: u64 = 1 << 12;

/// The capability sets in the text of a `/proc/.../status` file, by the
/// names it gives them (`CapEff`), each a mask of capability bits.
fn capabilities(status: &str) -> BTreeMap<String, u64> {
    status
        .lines()
        .filter_map(|line| {
            let (name, mask) = line.split_once(':')?;
            let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
            name.starts_with("Cap").then(|| (name.to_owned(), mask))
        })
        .collect()
}

/// Every set (inheritable, permitted, effective, bounding, ambient) equal
/// to `mask`.
fn every_set(mask: u64) -> BTreeMap<String, u64> {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .into_iter()
        .map(|name| (name.to_owned(), mask))
        .collect()
}

#[test]
fn run_as_refuses_a_directory_of_a_third_user_as_root() {
    root::require_root("dropping privileges");
    // Root accepts a directory that belongs to another user at bind (it
    // may be the one it runs as); once the user is known, a third one's
    // is refused: its owner could replace the daemon's files.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(12345), Some(12345)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("d.sock");
    let d = spawn(
        &[
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap()),
            ("ANYD_CHILD_RUN_AS", "nobody"),
        ],
        &[],
    );
    let line = d.expect("BIND_ERROR");
    assert!(line.contains("uid 12345"), "{line}");
    assert!(!sock.exists(), "the socket was left behind");
}

#[test]
fn privileges_are_dropped_after_binding_as_root() {
    root::require_root("dropping privileges");
    // A directory of nobody (the user), as a runtime directory of the
    // daemon's user would be: it removes its files there on exit.
    let dir = root::nobodys_directory();
    let sock = dir.path().join("d.sock");
    let pid_file = dir.path().join("d.pid");
    let d = spawn(
        &[
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap()),
            ("ANYD_CHILD_RUN_AS", "nobody"),
            ("ANYD_CHILD_PIDFILE", pid_file.to_str().unwrap()),
        ],
        &[],
    );
    d.expect("READY");
    // The socket was made by root (mode 0600, owner root), and the daemon
    // now runs as nobody.
    let mut s = ClientSession::connect(sock.to_str().unwrap()).unwrap();
    assert_eq!(
        s.commit::<(u32, u32)>("whoami", ()).unwrap(),
        (65534, 65534)
    );
    // Root's supplementary groups are gone too: only nobody's own.
    assert_eq!(s.commit::<Vec<u32>>("groups", ()).unwrap(), [65534]);
    // And every capability, from the bounding set too.
    let status: String = s.commit("capabilities", ()).unwrap();
    assert_eq!(capabilities(&status), every_set(0), "{status}");
    // "The daemon's user" is now nobody: root, who started it, is not.
    match s.commit::<String>("mine", ()) {
        Err(Error::Remote(e)) => assert_eq!(e.kind, "NotImplementedError", "{e:?}"),
        other => panic!("root called an endpoint for the daemon's user: {other:?}"),
    }
    drop(s);
    assert!(pid_file.exists());
    d.signal(Signal::TERM);
    d.expect("STOPPED true");
    assert!(!sock.exists(), "the socket file was left behind");
    assert!(!pid_file.exists(), "the pid file was left behind");
}

#[test]
fn run_as_keeps_the_capabilities_named_and_no_other_as_root() {
    root::require_root("dropping privileges");
    let dir = root::nobodys_directory();
    let sock = dir.path().join("d.sock");
    let d = spawn(
        &[
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap()),
            ("ANYD_CHILD_RUN_AS", "nobody"),
            ("ANYD_CHILD_KEEP_NET_ADMIN", "1"),
        ],
        &[],
    );
    let line = d.expect("BOUND_BY");
    // The harness may print its own text first on the line.
    let (_, tid) = line.split_once("BOUND_BY ").unwrap();
    let tid: u32 = tid.trim().parse().unwrap();
    d.expect("READY");
    // The thread that bound: nobody now, with CAP_NET_ADMIN in every set
    // (ambient too, for the programs it runs) and nothing else, not even
    // in the bounding set.
    let status = std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", d.pid())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:\t65534\t65534\t65534\t65534")),
        "{status}"
    );
    assert_eq!(capabilities(&status), every_set(NET_ADMIN), "{status}");
    // A connection's thread, started afterwards, has the same.
    let mut s = ClientSession::connect(sock.to_str().unwrap()).unwrap();
    assert_eq!(
        s.commit::<(u32, u32)>("whoami", ()).unwrap(),
        (65534, 65534)
    );
    let serving: String = s.commit("capabilities", ()).unwrap();
    assert_eq!(capabilities(&serving), every_set(NET_ADMIN), "{serving}");
    drop(s);
    d.signal(Signal::TERM);
    d.expect("STOPPED true");
}

#[test]
fn keeping_capabilities_without_run_as_is_refused_at_bind() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let d = spawn(
        &[
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap()),
            ("ANYD_CHILD_KEEP_NET_ADMIN", "1"),
        ],
        &[],
    );
    let line = d.expect("BIND_ERROR");
    assert!(
        line.contains("CAP_NET_ADMIN") && line.contains("run_as"),
        "{line}"
    );
    assert!(!sock.exists(), "the socket was left behind");
}
