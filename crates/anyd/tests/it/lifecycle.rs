//! The daemon as a process: signals, socket activation, service manager
//! notifications, the pid file and daemonizing. Dropping privileges, with
//! the same child daemon, is in `privileges`.
//!
//! Each daemon is this test binary run again with `ANYD_CHILD_ADDR` set
//! (see `child_daemon`), so that signals, environment and credentials
//! reach only it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

use anyd::{Appd, ClientOptions, ClientSession, Error};
use anyd_testkit::process::wait_until;
use anyd_testkit::rerun::{self, Process};
use anyd_testkit::{root, PATIENCE};
use rustix::process::{Pid, Signal};

/// The daemon side, started by the tests below with `ANYD_CHILD_ADDR`.
#[test]
#[ignore = "not a test: the daemon process of the tests in this file"]
fn child_daemon() {
    let Ok(address) = std::env::var("ANYD_CHILD_ADDR") else {
        panic!("{}", rerun::NOT_A_TEST);
    };
    if std::env::var_os("ANYD_CHILD_DAEMONIZE").is_some() {
        anyd::daemonize().unwrap();
    }
    // A listening socket of the program's own, opened before bind (and
    // kept open while it runs).
    let _own = std::env::var("ANYD_CHILD_OWN_LISTENER")
        .ok()
        .map(|path| std::os::unix::net::UnixListener::bind(path).unwrap());
    // A program that tries bind again after it failed.
    if std::env::var_os("ANYD_CHILD_BIND_TWICE").is_some() {
        if let Err(e) = child_appd().bind(address.as_str()) {
            println!("FIRST_BIND_ERROR {e}");
        }
    }
    let server = match child_appd().bind(address.as_str()) {
        Ok(s) => s,
        Err(e) => {
            println!("BIND_ERROR {e}");
            // Where a daemonized one's launcher hears it.
            eprintln!("BIND_ERROR {e}");
            std::process::exit(2);
        }
    };
    // The thread that bound, which kept what capabilities it was told to.
    println!("BOUND_BY {}", rustix::thread::gettid().as_raw_nonzero());
    println!("READY {}", server.local_address());
    let result = server.serve();
    println!("STOPPED {}", result.is_ok());
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

/// The child daemon's endpoints and settings (from its environment).
fn child_appd() -> Appd {
    let mut appd = Appd::new()
        .api("slow()", || {
            // Tell the parent the call is in progress, then wait for it to
            // say "go" on stdin.
            println!("STARTED");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            "finished"
        })
        .api("hello()", || "hi")
        .api("mine()", || "for the daemon's own user")
        .restrict(anyd::Allow::same_user())
        .api("whoami()", || {
            (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            )
        })
        .api("capabilities()", || {
            // Of the thread serving the call: capabilities are per thread.
            std::fs::read_to_string("/proc/thread-self/status").unwrap()
        })
        .api("groups()", || -> Vec<u32> {
            rustix::process::getgroups()
                .unwrap()
                .into_iter()
                .map(|g| g.as_raw())
                .collect()
        })
        .api("process()", || {
            let pid = rustix::process::getpid();
            let sid = this_session();
            let cwd = std::env::current_dir().unwrap();
            let stdout = std::fs::read_link("/proc/self/fd/1").unwrap();
            (pid.as_raw_nonzero().get(), sid, cwd, stdout)
        })
        .on_reload(|| println!("RELOADED"));
    if let Ok(path) = std::env::var("ANYD_CHILD_PIDFILE") {
        appd = appd.pid_file(path);
    }
    if let Ok(name) = std::env::var("ANYD_CHILD_SOCKET_NAME") {
        appd = appd.socket_name(name);
    }
    if let Ok(user) = std::env::var("ANYD_CHILD_RUN_AS") {
        appd = appd.run_as(user);
    }
    if std::env::var_os("ANYD_CHILD_KEEP_NET_ADMIN").is_some() {
        appd = appd.keep_capabilities([anyd::Capability::NetAdmin]);
    }
    appd
}

/// The session this process belongs to, as `/proc` shows it.
///
/// Not `getsid(2)` through rustix: where the session's leader lives outside
/// this PID namespace (a container, a CI sandbox) the session id reads as 0,
/// which rustix takes for an impossible pid and panics on.
fn this_session() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name in parentheses may hold spaces: count fields after it.
    let (_, fields) = stat.rsplit_once(')').unwrap();
    // state, ppid, pgrp, session
    fields.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Starts `child_daemon` with `env`, through `wrapper` (a command and its
/// arguments put before the test binary) if given.
pub(super) fn spawn(env: &[(&str, &str)], wrapper: &[&str]) -> Process {
    let mut cmd = rerun::helper_through(wrapper, "lifecycle::child_daemon");
    cmd.envs(env.iter().copied());
    Process::spawn(&mut cmd)
}

fn run_signal_case(signal: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let mut d = spawn(&[("ANYD_CHILD_ADDR", path.to_str().unwrap())], &[]);
    d.expect("READY");
    let address = path.to_str().unwrap().to_owned();
    let call = std::thread::spawn(move || {
        let mut s = ClientSession::connect(address.as_str()).unwrap();
        s.commit::<String>("slow", ())
    });
    d.expect("STARTED");
    d.signal(signal);
    // Stops accepting: the socket file goes while the call still runs.
    wait_until("the socket file is removed", || !path.exists());
    assert!(ClientSession::connect(path.to_str().unwrap()).is_err());
    // Let the call finish: its reply still arrives.
    d.tell("go");
    assert_eq!(call.join().unwrap().unwrap(), "finished");
    d.expect("STOPPED true");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    run_signal_case(Signal::TERM);
}

#[test]
fn sigint_drains_and_exits_cleanly() {
    run_signal_case(Signal::INT);
}

#[test]
fn sighup_runs_the_reload_hook_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let d = spawn(&[("ANYD_CHILD_ADDR", path.to_str().unwrap())], &[]);
    d.expect("READY");
    // A served call shows the daemon is past setting up its signal
    // handlers (READY only says it is bound).
    let mut s = ClientSession::connect(path.to_str().unwrap()).unwrap();
    assert_eq!(s.commit::<String>("hello", ()).unwrap(), "hi");
    d.signal(Signal::HUP);
    d.expect("RELOADED");
    assert_eq!(s.commit::<String>("hello", ()).unwrap(), "hi");
    drop(s);
    d.signal(Signal::TERM);
    d.expect("STOPPED true");
}

#[test]
fn a_locked_pid_file_keeps_a_second_instance_out() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("d.pid");
    let env = |sock: &Path| {
        vec![
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap().to_owned()),
            ("ANYD_CHILD_PIDFILE", pid_file.to_str().unwrap().to_owned()),
        ]
    };
    let as_refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let first_env = as_refs(&env(&dir.path().join("a.sock")));
    let first_env: Vec<(&str, &str)> = first_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = spawn(&first_env, &[]);
    first.expect("READY");
    let written: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, first.child.id());

    // Even on another socket, the second instance stops at the pid file.
    let second_env = as_refs(&env(&dir.path().join("b.sock")));
    let second_env: Vec<(&str, &str)> = second_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut second = spawn(&second_env, &[]);
    let line = second.expect("BIND_ERROR");
    assert!(line.contains(&format!("pid {written}")), "{line}");
    assert!(line.contains("already running"), "{line}");
    assert!(!second.child.wait().unwrap().success());
    assert!(!dir.path().join("b.sock").exists());

    // Serving (so past setting up its signal handlers), then stopped.
    let mut s = ClientSession::connect(dir.path().join("a.sock").to_str().unwrap()).unwrap();
    assert_eq!(s.commit::<String>("hello", ()).unwrap(), "hi");
    drop(s);
    first.signal(Signal::TERM);
    first.expect("STOPPED true");
    wait_until("the pid file is removed", || !pid_file.exists());
}

/// Starts (in this process) a daemon with a pid file at `pid_file` and
/// its socket beside it; returns the error it must fail with.
fn refused_pid_file(pid_file: &Path) -> Error {
    let sock = pid_file.with_extension("sock");
    let e = Appd::new()
        .pid_file(pid_file)
        .bind(sock.to_str().unwrap())
        .err()
        .unwrap_or_else(|| panic!("{} was accepted as a pid file", pid_file.display()));
    assert!(!sock.exists(), "the socket was made despite the pid file");
    e
}

#[test]
fn a_pid_file_that_is_not_a_plain_file_of_ours_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("d.pid");
    let other = dir.path().join("other");
    std::fs::write(&other, b"precious\n").unwrap();

    // A link, wherever it leads: not followed, so the file it leads to
    // is not truncated and one it names is not created.
    let nowhere = dir.path().join("nowhere");
    for target in [&other, &nowhere] {
        std::os::unix::fs::symlink(target, &pid_file).unwrap();
        let e = refused_pid_file(&pid_file);
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::remove_file(&pid_file).unwrap();
    }
    assert_eq!(std::fs::read(&other).unwrap(), b"precious\n");
    assert!(!nowhere.exists(), "a file was created through the link");

    // A second name of another file: writing it would write that file.
    std::fs::hard_link(&other, &pid_file).unwrap();
    let e = refused_pid_file(&pid_file);
    assert!(e.to_string().contains("hard links"), "{e}");
    assert_eq!(std::fs::read(&other).unwrap(), b"precious\n");
    std::fs::remove_file(&pid_file).unwrap();

    // A FIFO (the open does not wait for a writer) and a directory.
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &pid_file,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let e = refused_pid_file(&pid_file);
    assert!(e.to_string().contains("not a regular file"), "{e}");
    std::fs::remove_file(&pid_file).unwrap();
    std::fs::create_dir(&pid_file).unwrap();
    assert!(matches!(refused_pid_file(&pid_file), Error::Config(_)));
    std::fs::remove_dir(&pid_file).unwrap();

    // In a directory every user may write to (not sticky), anyone could
    // replace it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = refused_pid_file(&pid_file);
    assert!(e.to_string().contains("not sticky"), "{e}");
    assert!(!pid_file.exists());

    // A left-over file of ours is taken over, and removed on exit.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(&pid_file, b"12345678\n").unwrap();
    let server = Appd::new()
        .pid_file(&pid_file)
        .bind(dir.path().join("d.sock").to_str().unwrap())
        .unwrap();
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written, format!("{}\n", std::process::id()));
    drop(server);
    assert!(!pid_file.exists());
}

#[test]
fn a_pid_file_link_planted_by_the_directorys_owner_leads_root_nowhere_as_root() {
    root::require_root("planting links as another user in a directory root writes in");
    let dir = root::nobodys_directory();
    let (_roots, precious, absent) = root::roots_files();
    let before = root::FileState::of(&precious);
    let pid_file = dir.path().join("d.pid");
    for target in [&precious, &absent] {
        root::as_nobody(|| std::os::unix::fs::symlink(target, &pid_file).unwrap());
        let sock = dir.path().join("d.sock");
        let result = Appd::new().pid_file(&pid_file).bind(sock.to_str().unwrap());
        // Checked while a daemon that took the link would still hold it.
        assert_eq!(
            root::FileState::of(&precious),
            before,
            "root's file was touched"
        );
        assert!(!absent.exists(), "root created a file through the link");
        let e = result.err().expect("a link was taken as the pid file");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        root::as_nobody(|| std::fs::remove_file(&pid_file).unwrap());
    }
    // A file nobody made there is not root's to write either.
    root::as_nobody(|| std::fs::write(&pid_file, b"1\n").unwrap());
    let e = refused_pid_file(&pid_file);
    assert!(e.to_string().contains("uid 65534"), "{e}");
    assert_eq!(std::fs::read(&pid_file).unwrap(), b"1\n");
}

/// A wrapper for [`spawn`] that runs the daemon without `/proc`, as in a
/// bare chroot: a tmpfs hides it, in a mount namespace of the daemon's own.
const WITHOUT_PROC: [&str; 5] = [
    "unshare",
    "--mount",
    "sh",
    "-c",
    "mount -t tmpfs none /proc && exec \"$0\" \"$@\"",
];

#[test]
fn without_proc_a_socket_in_another_users_directory_is_refused_as_root() {
    root::require_root("hiding /proc in a mount namespace");
    // The directory's owner could swap the private directory the socket
    // is made in for a link between its check and the bind by path, and
    // have root make a socket wherever that leads: only /proc/self/fd
    // binds in the directory that was checked. Without /proc, no try.
    let dir = root::nobodys_directory();
    let sock = dir.path().join("d.sock");
    let d = spawn(
        &[("ANYD_CHILD_ADDR", sock.to_str().unwrap())],
        &WITHOUT_PROC,
    );
    let line = d.expect("BIND_ERROR");
    assert!(
        line.contains("without /proc") && line.contains("uid 65534"),
        "{line}"
    );
    // Neither a socket nor the private directory is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // Where only root may write, the socket is bound at its path, which
    // needs no /proc.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let d = spawn(
        &[("ANYD_CHILD_ADDR", sock.to_str().unwrap())],
        &WITHOUT_PROC,
    );
    d.expect("READY");
    let mut s = ClientSession::connect(sock.to_str().unwrap()).unwrap();
    assert_eq!(s.commit::<String>("hello", ()).unwrap(), "hi");
}

#[test]
fn socket_activation_uses_the_inherited_socket() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-socket-activate is needed for this test (package systemd)");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activated.sock");
    let d = activated(&[&path], &[]);
    let s = first_call(&d, &path);
    stop_activated(&d, s);
}

/// The child daemon under `systemd-socket-activate`, listening on
/// `sockets`, with more activator arguments `extra`. The daemon is told to
/// bind somewhere it cannot: only an inherited socket can make it
/// reachable.
fn activated(sockets: &[&Path], extra: &[&str]) -> Process {
    let mut args = vec!["systemd-socket-activate".to_owned()];
    args.extend(sockets.iter().map(|p| format!("--listen={}", p.display())));
    args.push("--setenv=ANYD_CHILD_ADDR=unix:/nonexistent/dir/never.sock".into());
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = spawn(&[], &args);
    wait_until("the activator listens", || {
        sockets.iter().all(|p| p.exists())
    });
    d
}

/// Connects at `path`, which starts the activated daemon. The activator
/// creates the socket file when it binds, a moment before it listens: a
/// connection refused meanwhile is tried again.
fn wake(path: &Path) -> std::os::unix::net::UnixStream {
    let mut last = None;
    wait_until("the activator accepts a connection", || {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => last = Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => panic!("connecting to {}: {e}", path.display()),
        }
        last.is_some()
    });
    last.unwrap()
}

/// Connects at `path` (which starts the activated daemon), calls, and
/// checks that the daemon says it serves there.
fn first_call(d: &Process, path: &Path) -> ClientSession {
    let mut s = ClientOptions::new()
        .retry_for(PATIENCE)
        .connect(path.to_str().unwrap())
        .unwrap();
    assert_eq!(s.commit::<String>("hello", ()).unwrap(), "hi");
    let line = d.expect("READY");
    assert!(line.contains(&format!("unix:{}", path.display())), "{line}");
    s
}

/// Stops an activated daemon (the activator execs it, so its pid comes
/// from the daemon) and sees it stop well.
fn stop_activated(d: &Process, mut s: ClientSession) {
    let (pid, ..): (i32, i32, String, String) = s.commit("process", ()).unwrap();
    drop(s);
    rustix::process::kill_process(Pid::from_raw(pid).unwrap(), Signal::TERM).unwrap();
    d.expect("STOPPED true");
}

#[test]
fn socket_activation_serves_on_the_socket_of_the_chosen_name() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.sock");
    let two = dir.path().join("two.sock");
    let d = activated(
        &[&one, &two],
        &["--fdname=admin:api", "--setenv=ANYD_CHILD_SOCKET_NAME=api"],
    );
    // A connection to either starts the daemon; it serves on "api".
    let s = first_call(&d, &two);
    // The other socket was closed: nothing accepts there any more.
    let e = ClientSession::connect(one.to_str().unwrap()).unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    stop_activated(&d, s);
}

#[test]
fn a_socket_name_that_was_not_passed_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.sock");
    let d = activated(
        &[&one],
        &["--fdname=admin", "--setenv=ANYD_CHILD_SOCKET_NAME=api"],
    );
    // The first connection starts the daemon, which refuses to start.
    let _wake = wake(&one);
    let line = d.expect("BIND_ERROR");
    assert!(
        line.contains("none named \"api\"") && line.contains("\"admin\""),
        "{line}"
    );
}

#[test]
fn listen_fds_claiming_more_than_was_passed_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.sock");
    let pid_file = dir.path().join("d.pid");
    // One socket passed, two claimed: descriptor 4 is whatever the daemon
    // opens first (here its pid file), never a socket to take and close.
    let d = activated(
        &[&path],
        &[
            &format!("--setenv=ANYD_CHILD_PIDFILE={}", pid_file.display()),
            "sh",
            "-c",
            "export LISTEN_FDS=2; exec \"$0\" \"$@\"",
        ],
    );
    let _wake = wake(&path);
    let line = d.expect("BIND_ERROR");
    assert!(
        line.contains("LISTEN_FDS=2") && line.contains("descriptor 4 is not open"),
        "{line}"
    );
}

#[test]
fn a_socket_the_program_opened_itself_is_not_taken_for_a_passed_one() {
    // One socket passed, two claimed, and descriptor 4 is a listening
    // socket the program opened before bind: it passes every other check,
    // but it is the program's, and taking it would give it two owners.
    // Opened in this process, it has close-on-exec; passed ones cannot.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.sock");
    let own = dir.path().join("own.sock");
    let d = activated(
        &[&path],
        &[
            &format!("--setenv=ANYD_CHILD_OWN_LISTENER={}", own.display()),
            "sh",
            "-c",
            "export LISTEN_FDS=2; exec \"$0\" \"$@\"",
        ],
    );
    let _wake = wake(&path);
    let line = d.expect_one_of(&["BIND_ERROR", "READY"]);
    assert!(
        line.contains("BIND_ERROR")
            && line.contains("descriptor 4 has close-on-exec set")
            && line.contains("opened by this process"),
        "{line}"
    );
}

#[test]
fn a_failed_check_of_passed_sockets_fails_a_second_bind_the_same_way() {
    // A program that tries bind again after LISTEN_FDS was found wrong
    // must not find socket activation quietly gone (and bind the address
    // instead): the sockets are checked again.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.sock");
    let d = activated(
        &[&path],
        &[
            "--setenv=ANYD_CHILD_BIND_TWICE=1",
            "sh",
            "-c",
            "export LISTEN_FDS=2; exec \"$0\" \"$@\"",
        ],
    );
    let _wake = wake(&path);
    let first = d.expect("FIRST_BIND_ERROR");
    assert!(first.contains("descriptor 4 is not open"), "{first}");
    let second = d.expect_one_of(&["BIND_ERROR", "READY"]);
    assert!(
        second.contains("BIND_ERROR") && second.contains("descriptor 4 is not open"),
        "{second}"
    );
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_socket_is_a_clear_error() {
    // A file passed as descriptor 3, by hand: LISTEN_PID is the shell's
    // pid, which the daemon keeps through exec.
    let d = spawn(
        &[("ANYD_CHILD_ADDR", "unix:/nonexistent/dir/never.sock")],
        &[
            "sh",
            "-c",
            "exec 3</dev/null; export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$0\" \"$@\"",
        ],
    );
    let line = d.expect("BIND_ERROR");
    assert!(line.contains("descriptor 3 is not a socket"), "{line}");
    // A connection instead of a listening socket (the activator's
    // --accept passes one).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accept.sock");
    let d = activated(&[&path], &["--accept"]);
    let _wake = wake(&path);
    let line = d.expect("BIND_ERROR");
    assert!(
        line.contains("descriptor 3 is a socket that is not listening"),
        "{line}"
    );
}

#[test]
fn the_service_manager_hears_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(PATIENCE)).unwrap();
    let sock = dir.path().join("d.sock");
    let d = spawn(
        &[
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap()),
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "100000"),
        ],
        &[],
    );
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    // READY=1 comes once serving; watchdog pings follow at half the
    // interval. Their relative order is up to the scheduler.
    while !(seen.iter().any(|m: &String| m.starts_with("READY=1"))
        && seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2)
    {
        seen.push(next());
    }
    let ready = seen.iter().find(|m| m.starts_with("READY=1")).unwrap();
    assert!(
        ready.contains(&format!("MAINPID={}", d.child.id())),
        "{ready}"
    );
    assert!(ready.contains("STATUS=serving on unix:"), "{ready}");
    d.signal(Signal::TERM);
    loop {
        let m = next();
        if m.starts_with("STOPPING=1") {
            break;
        }
        assert_eq!(m, "WATCHDOG=1", "only pings before STOPPING");
    }
    d.expect("STOPPED true");
}

#[test]
fn a_daemonized_daemon_that_cannot_bind_fails_its_launcher_with_the_reason() {
    let mut cmd = rerun::helper("lifecycle::child_daemon");
    cmd.env("ANYD_CHILD_ADDR", "unix:/nonexistent/dir/d.sock")
        .env("ANYD_CHILD_DAEMONIZE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let out = rx
        .recv_timeout(PATIENCE)
        .expect("the launcher did not return");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // What the daemon said before it exited, then the launcher's word.
    assert!(stderr.contains("BIND_ERROR"), "{stderr}");
    assert!(
        stderr.contains("cannot listen on unix:/nonexistent/dir/d.sock"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the daemon exited before it was serving"),
        "{stderr}"
    );
}

#[test]
fn daemonize_detaches_into_its_own_session() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let mut d = spawn(
        &[
            ("ANYD_CHILD_ADDR", sock.to_str().unwrap()),
            ("ANYD_CHILD_DAEMONIZE", "1"),
        ],
        &[],
    );
    // The process we started returns, successfully, once the detached
    // daemon serves: a call needs no retry.
    assert!(d.child.wait().unwrap().success());
    let mut s = ClientSession::connect(sock.to_str().unwrap()).unwrap();
    let (pid, sid, cwd, stdout): (i32, i32, String, String) = s.commit("process", ()).unwrap();
    drop(s);
    assert_ne!(pid as u32, d.child.id());
    assert_ne!(sid, pid, "in a new session, but not its leader");
    assert_ne!(sid, this_session(), "not in our session");
    assert_eq!(cwd, "/");
    assert_eq!(stdout, "/dev/null");
    rustix::process::kill_process(Pid::from_raw(pid).unwrap(), Signal::TERM).unwrap();
    wait_until("the daemon removes its socket", || !sock.exists());
}
