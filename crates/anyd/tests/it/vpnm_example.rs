//! The vpnmd/vpnm example pair, run as real processes: a daemon running as
//! root (or started as root to serve as another user with
//! `CAP_NET_ADMIN` alone), and its CLI run by users in and out of the
//! allowed group.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyd::ClientOptions;

use anyd_testkit::root;

/// `cargo test` and `cargo nextest` build the examples next to the test
/// binaries' directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vpnm(program: &Path, address: &str, uid: u32, gid: u32, args: &[&str]) -> Output {
    Command::new(program)
        .arg("--address")
        .arg(address)
        .args(args)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
}

/// vpnmd running as root, members of `nogroup` allowed to change state,
/// in a temporary directory other users may enter.
struct Vpnmd {
    daemon: Kill,
    address: String,
    sock: PathBuf,
    state_dir: PathBuf,
    /// Its log, line by line.
    log: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Vpnmd {
    fn start() -> Vpnmd {
        let dir = tempfile::tempdir().unwrap();
        // Other users must reach the socket inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Vpnmd::start_in(dir, &[])
    }

    /// With its socket and state in `dir`, and more arguments.
    fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Vpnmd {
        let sock = dir.path().join("vpnmd.sock");
        let address = format!("unix:{}", sock.display());
        let state_dir = dir.path().join("state");
        let mut daemon = Kill(
            Command::new(example("vpnmd"))
                .args(["--address", &address, "--group", "nogroup", "--state-dir"])
                .arg(&state_dir)
                .args(args)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let (log_tx, log) = mpsc::channel();
        let stderr = daemon.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if log_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Ready once it answers.
        let mut s = ClientOptions::new()
            .retry_for(Duration::from_secs(30))
            .connect(address.as_str())
            .unwrap();
        assert!(s.commit::<bool>("anyd.ping", ()).unwrap());
        drop(s);
        Vpnmd {
            daemon,
            address,
            sock,
            state_dir,
            log,
            _dir: dir,
        }
    }

    /// Waits for a line of the log that `matches`, and returns it.
    fn expect_log(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("vpnmd did not log {what}"));
            if matches(&line) {
                return line;
            }
        }
    }
}

#[test]
fn only_the_group_may_change_state_and_everyone_may_look_as_root() {
    root::require_root("the example daemon runs as root, its users as others");
    // The CLI runs as other users, who may not enter the build directory.
    let (_bin, vpnm_program) = root::runnable_by_others(&example("vpnm"));
    let vpnm =
        |address: &str, uid, gid, args: &[&str]| vpnm(&vpnm_program, address, uid, gid, args);
    let vpnmd = Vpnmd::start();
    let (address, sock, state_dir) = (&vpnmd.address, &vpnmd.sock, &vpnmd.state_dir);
    let mode = std::fs::metadata(sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o666,
        "everyone may reach the socket; the policy decides"
    );

    // A member of the group (nobody:nogroup) brings a tunnel up.
    let out = vpnm(address, 65534, 65534, &["connect", "office"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "office: up\n");
    let state = std::fs::read_to_string(state_dir.join("state.json")).unwrap();
    assert!(state.contains("\"by_uid\": 65534"), "{state}");

    // Errors from the daemon come back as messages and exit status 1.
    let out = vpnm(address, 65534, 65534, &["connect", "office"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vpnm: VpnError: office is already up\n"
    );

    // Someone outside the group may look, and may not change anything:
    // the daemon refuses by the caller's credentials, and answers as it
    // would for an endpoint it does not have (the caller learns nothing
    // about what it may not call); its log says which rule denied whom.
    let out = vpnm(address, 4000, 4000, &["status"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "office: up\n");
    for change in [["connect", "home"], ["disconnect", "office"]] {
        let out = vpnm(address, 4000, 4000, &change);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!(
                "vpnm: {}: not permitted, or not provided by this daemon\n",
                change[0]
            )
        );
    }
    for endpoint in ["connect", "disconnect"] {
        let line = vpnmd.expect_log(&format!("the denial of {endpoint}"), |line| {
            line.contains("call denied by policy")
                && line.contains(&format!("endpoint=\"{endpoint}\""))
        });
        assert!(line.contains("uid=4000"), "{line}");
        assert!(line.contains("rule="), "{line}");
    }
    let state = std::fs::read_to_string(state_dir.join("state.json")).unwrap();
    assert!(!state.contains("home"), "{state}");

    // Root may do anything.
    let out = vpnm(address, 0, 0, &["disconnect", "office"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no tunnel is up\n");

    // SIGHUP (systemd's ExecReload) re-reads the state file.
    let pid = rustix::process::Pid::from_raw(vpnmd.daemon.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let line = vpnmd.expect_log("that it re-read its state file", |line| {
        line.contains("state file re-read")
    });
    assert!(line.contains("tunnels=0"), "{line}");
}

#[test]
fn a_watcher_sees_every_change_by_anyone_in_order_as_root() {
    root::require_root("the example daemon runs as root, its users as others");
    let (_bin, vpnm_program) = root::runnable_by_others(&example("vpnm"));
    let vpnmd = Vpnmd::start();
    let address = vpnmd.address.as_str();
    // Someone outside the group watches: watching is read-only, like the
    // status.
    let mut watcher = Kill(
        Command::new(&vpnm_program)
            .args(["--address", address, "watch"])
            .uid(4000)
            .gid(4000)
            .stdout(Stdio::piped())
            // Shown with the test's output, should the watch fail.
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (line_tx, lines) = mpsc::channel();
    let stdout = watcher.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the watcher printed no line in time")
    };
    // Subscribed once the daemon says so: no change after it is missed.
    vpnmd.expect_log("the watcher", |line| {
        line.contains("watching") && line.contains("uid=Some(4000)")
    });

    // A member of the group, then root, change the state; the watcher
    // sees each change as it happens, in order, with who made it.
    let run = |uid, args: &[&str]| {
        let out = vpnm(&vpnm_program, address, uid, uid, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    run(65534, &["connect", "office"]);
    assert_eq!(next_line(), "office: up (uid 65534)");
    run(65534, &["connect", "home"]);
    run(0, &["disconnect", "office"]);
    assert_eq!(next_line(), "home: up (uid 65534)");
    assert_eq!(next_line(), "office: down (uid 0)");
    // A refused change is no change.
    let out = vpnm(&vpnm_program, address, 4000, 4000, &["disconnect", "home"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    run(65534, &["disconnect", "home"]);
    assert_eq!(next_line(), "home: down (uid 65534)");

    // The watcher is still watching: it ends only when stopped.
    assert_eq!(watcher.0.try_wait().unwrap(), None);
}

/// The lines of the change log, without their times (the first word).
fn without_times(log: &str) -> Vec<String> {
    log.lines()
        .map(|line| {
            let (at, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            assert!(at.parse::<u64>().is_ok(), "{line:?}");
            rest.to_owned()
        })
        .collect()
}

#[test]
fn the_group_reads_the_root_only_log_through_a_descriptor_as_root() {
    root::require_root("the example daemon runs as root, its users as others");
    let (_bin, vpnm_program) = root::runnable_by_others(&example("vpnm"));
    let vpnm =
        |address: &str, uid, gid, args: &[&str]| vpnm(&vpnm_program, address, uid, gid, args);
    let vpnmd = Vpnmd::start();
    let address = vpnmd.address.as_str();
    let log_file = vpnmd.state_dir.join("changes.log");

    // Before any change, the log is there, empty, and root's alone.
    let out = vpnm(address, 65534, 65534, &["log"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let meta = std::fs::metadata(&log_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        rustix::process::geteuid().as_raw(),
        "the daemon's user owns its log"
    );

    let run = |uid, args: &[&str]| {
        let out = vpnm(address, uid, uid, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    run(65534, &["connect", "office"]);
    run(0, &["disconnect", "office"]);

    // A member of the group may not open the file...
    let opened = Command::new("cat")
        .arg(&log_file)
        // The error in English, to be recognized.
        .env("LC_ALL", "C")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!opened.status.success(), "{opened:?}");
    assert!(
        String::from_utf8_lossy(&opened.stderr).contains("Permission denied"),
        "{opened:?}"
    );
    // ... and reads it through the descriptor the daemon hands over.
    let out = vpnm(address, 65534, 65534, &["log"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        without_times(&String::from_utf8_lossy(&out.stdout)),
        ["office up uid 65534", "office down uid 0"]
    );
    vpnmd.expect_log("the handing over of the log", |line| {
        line.contains("log handed over") && line.contains("uid=Some(65534)")
    });

    // The descriptor was opened read only: what it lets its holder do is
    // what the daemon opened it for, whatever the holder's rights.
    root::as_nobody(|| {
        let mut s = ClientOptions::new().connect(address).unwrap();
        let log: anyd::Fd = s.commit("open_log", ()).unwrap();
        let access = rustix::fs::fcntl_getfl(&log).unwrap() & rustix::fs::OFlags::RWMODE;
        assert_eq!(access, rustix::fs::OFlags::RDONLY);
        assert_eq!(
            rustix::io::write(&log, b"forged\n"),
            Err(rustix::io::Errno::BADF)
        );
        let mut text = String::new();
        std::io::Read::read_to_string(&mut log.into_file(), &mut text).unwrap();
        assert_eq!(
            without_times(&text),
            ["office up uid 65534", "office down uid 0"]
        );
    });

    // Someone outside the group is refused, as for an endpoint the daemon
    // does not have, and gets nothing.
    let out = vpnm(address, 4000, 4000, &["log"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vpnm: log: not permitted, or not provided by this daemon\n"
    );
    let line = vpnmd.expect_log("the denial of open_log", |line| {
        line.contains("call denied by policy") && line.contains("endpoint=\"open_log\"")
    });
    assert!(line.contains("uid=4000"), "{line}");
}

#[test]
fn vpnmd_serving_as_a_user_keeps_cap_net_admin_alone_as_root() {
    root::require_root("the example daemon starts as root, to serve as nobody");
    // Its user's directory, where it makes its state and removes its socket.
    let vpnmd = Vpnmd::start_in(root::nobodys_directory(), &["--user", "nobody"]);
    // The process, as the kernel shows it (its main thread, which bound the
    // socket and started every thread that serves): nobody, with
    // CAP_NET_ADMIN in each capability set (ambient too, for the programs
    // it would run) and no other capability, not even in the bounding set.
    let status = std::fs::read_to_string(format!("/proc/{}/status", vpnmd.daemon.0.id())).unwrap();
    let line = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .trim()
            .to_owned()
    };
    assert_eq!(line("Uid:"), "65534\t65534\t65534\t65534");
    let net_admin = format!("{:016x}", 1u64 << 12);
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(line(set), net_admin, "{set} in {status}");
    }
    // It serves, and keeps its state as that user.
    let (_bin, vpnm_program) = root::runnable_by_others(&example("vpnm"));
    let out = vpnm(&vpnm_program, &vpnmd.address, 0, 0, &["connect", "office"]);
    assert!(out.status.success(), "{out:?}");
    let state = std::fs::metadata(vpnmd.state_dir.join("state.json")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&state), 65534);
}

#[test]
fn the_daemon_serves_the_contract_its_interface_makes_and_the_committed_copy_as_root() {
    root::require_root("the example daemon runs as root");
    let vpnmd = Vpnmd::start();
    let mut s = ClientOptions::new()
        .connect(vpnmd.address.as_str())
        .unwrap();
    // Root may call everything: the whole contract.
    let served: anyd::contract::Document = s.commit("anyd.describe", ()).unwrap();
    assert_eq!(served, vpnm_api::VpnmContract::contract());
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vpnm-api/vpnmd.contract.json");
    let committed =
        anyd::contract::Document::from_json(&std::fs::read_to_string(committed).unwrap()).unwrap();
    let d = anyd::contract::diff(&committed, &served);
    assert!(!d.is_breaking(), "{d}");
    // Someone outside the group sees what it may call, and no more.
    let address = vpnmd.address.clone();
    let theirs: anyd::contract::Document = root::as_user(4000, 4000, &[], move || {
        ClientOptions::new()
            .connect(address.as_str())
            .unwrap()
            .commit("anyd.describe", ())
            .unwrap()
    });
    let names: Vec<_> = theirs.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["status", "watch"]);
}

/// The Python client of the examples, which knows no daemon.
fn python_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/anyd_json_client.py")
}

#[test]
fn a_python_client_built_from_the_contract_calls_every_endpoint_as_root() {
    root::require_root("the example daemon runs as root");
    let vpnmd = Vpnmd::start();
    let python = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(python_client())
            .arg(&vpnmd.address)
            .args(args)
            .output()
            .expect("python3 runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Every endpoint, with arguments it makes up from the schemas; the
    // stream opened first, its items shown after the calls, then
    // cancelled; the descriptor read.
    let (code, stdout, stderr) = python(&["exercise"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let expected_starts = [
        "status() -> {\"tunnels\": {}}",
        "connect(\"example\") -> {\"tunnels\": {\"example\": {\"by_uid\": 0, \"since\": ",
        "disconnect(\"example\") -> {\"tunnels\": {}}",
        "open_log() -> <descriptor: ",
        "watch() -> item {\"change\": \"up\", \"profile\": \"example\", \"uid\": 0, \"at\": ",
        "watch() -> item {\"change\": \"down\", \"profile\": \"example\", \"uid\": 0, \"at\": ",
        "watch() -> cancelled",
    ];
    assert_eq!(lines.len(), expected_starts.len(), "{stdout}");
    for (line, start) in lines.iter().zip(expected_starts) {
        assert!(
            line.starts_with(start),
            "{line:?} does not start with {start:?}"
        );
    }
    assert!(lines[3].contains("example up uid 0"), "{stdout}");
    vpnmd.expect_log("the cancelled watch", |line| line.contains("watching"));

    // One call, checked against the schema before it is sent.
    let (code, _, stderr) = python(&["call", "connect", "42"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "anyd_json_client: connect(): parameter 'profile': expected string, got 42\n"
    );
    let (code, stdout, _) = python(&["call", "connect", "office"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("{\"tunnels\": {\"office\": "),
        "{stdout}"
    );
    let (code, _, stderr) = python(&["call", "connect", "office"]);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(5), "VpnError: office is already up\n")
    );
    let (code, stdout, _) = python(&["describe"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("watch() -> stream of Event\n"), "{stdout}");
}
