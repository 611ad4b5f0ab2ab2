//! anydctl end to end: the built binary against real daemons, Rust ones
//! started in this process on temporary sockets and a Python `anyd.Appd`
//! from a virtualenv. Each check reads stdout, stderr and the exit status,
//! as a script would. Nothing waits by sleeping, and every run of the
//! binary has a deadline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyd::{Appd, Hub, Items, RemoteError, Running, Value};

// Tests in files of their own under tests/cli/, so that this one stops
// growing; they share the helpers here. (A `#[path]`, since cargo would
// take a file beside this one for a test binary of its own.)
#[path = "cli/answer_types.rs"]
mod answer_types;
#[path = "cli/call_context.rs"]
mod call_context;
#[path = "cli/call_fds.rs"]
mod call_fds;
#[path = "cli/contract.rs"]
mod contract;
#[path = "cli/flags.rs"]
mod flags;
#[path = "cli/format_chars.rs"]
mod format_chars;
#[path = "cli/raw_timeout.rs"]
mod raw_timeout;
#[path = "cli/stats.rs"]
mod stats;

/// How long one run of anydctl (or one setup step) may take before the
/// test fails.
const PATIENCE: Duration = Duration::from_secs(120);

/// What a run of anydctl gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `program` with `args` and `env` (ANYD_AUTHKEY removed unless
/// given), killing it if it outlives `patience`.
fn run_program(program: &Path, args: &[&str], env: &[(&str, &str)], patience: Duration) -> Output {
    run_program_as(None, program, args, env, patience)
}

/// [`run_program`] as the user and group `uid` when given (which needs
/// root).
fn run_program_as(
    uid: Option<u32>,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    patience: Duration,
) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    if let Some(uid) = uid {
        // std drops root's supplementary groups with the uid.
        cmd.uid(uid).gid(uid);
    }
    cmd.args(args)
        .env_remove("ANYD_AUTHKEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(patience) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!(
                "{} {args:?} did not finish within {patience:?}",
                program.display()
            );
        }
    }
}

fn anydctl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = run_program(
        Path::new(env!("CARGO_BIN_EXE_anydctl")),
        args,
        env,
        PATIENCE,
    );
    let run = Run {
        code: out.status.code().expect("anydctl was killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("anydctl {args:?} -> {run:#?}");
    run
}

/// Runs anydctl with `input` on its stdin.
fn run_program_with_stdin(args: &[&str], input: &str) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_anydctl"))
        .args(args)
        .env_remove("ANYD_AUTHKEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("anydctl was killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn anydctl(args: &[&str]) -> Run {
    anydctl_env(args, &[])
}

/// Runs anydctl and insists on success; returns stdout.
fn ok(args: &[&str]) -> String {
    let run = anydctl(args);
    assert_eq!(run.code, 0, "{args:?}: {run:#?}");
    run.stdout
}

/// A daemon on a fresh socket path; the directory lives as long as the
/// returned guard.
fn start(appd: Appd) -> (Running, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let running = appd.bind(path.to_str().unwrap()).unwrap().spawn().unwrap();
    let address = running.address().to_string();
    (running, address, dir)
}

fn demo() -> Appd {
    Appd::new()
        .api("echo(arg)", |arg: Value| arg)
        .doc("Returns its argument.")
        .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
        .doc("Adds two numbers.\nBoth are 64-bit integers.")
        .api(
            "greet(name, greeting)",
            |name: String, greeting: Option<String>| {
                format!("{}, {name}", greeting.as_deref().unwrap_or("hello"))
            },
        )
        .api("status()", || -> Result<String, RemoteError> {
            Err(RemoteError::new("VpnError", "not connected"))
        })
        .api("blob()", || Value::Bytes(vec![0, 255, 10]))
        .api("mul", |a: u8, b: u8| u16::from(a) * u16::from(b))
}

#[test]
fn anydctl_and_the_daemon_report_the_same_release() {
    let (_d, addr, _dir) = start(demo());
    let said: serde_json::Value =
        serde_json::from_str(&ok(&["call", &addr, "anyd.version"])).unwrap();
    let release = said["anyd"]
        .as_str()
        .expect("anyd.version names the release");
    assert_eq!(ok(&["--version"]), format!("anydctl {release}\n"));
}

#[test]
fn call_with_positional_arguments() {
    let (_d, addr, _dir) = start(demo());
    assert_eq!(ok(&["call", &addr, "get_sum", "1", "2"]), "3\n");
    // A negative number is an argument, not an option.
    assert_eq!(ok(&["call", &addr, "get_sum", "-5", "2"]), "-3\n");
    assert_eq!(ok(&["call", &addr, "mul", "--", "3", "4"]), "12\n");
    // Without `unix:`, an absolute path is a socket too.
    let path = addr.strip_prefix("unix:").unwrap();
    assert_eq!(ok(&["call", path, "greet", "ann"]), "\"hello, ann\"\n");
}

#[test]
fn call_with_keyword_arguments() {
    let (_d, addr, _dir) = start(demo());
    assert_eq!(
        ok(&["call", &addr, "get_sum", "-k", "arg1=1", "-k", "arg2=2"]),
        "3\n"
    );
    assert_eq!(
        ok(&["call", &addr, "greet", "ann", "--kwarg", "greeting=hi"]),
        "\"hi, ann\"\n"
    );
    assert_eq!(
        ok(&["call", &addr, "get_sum", "10", "-k", "arg2=-1"]),
        "9\n"
    );
    // anydctl checks the names against the daemon's contract...
    let run = anydctl(&["call", &addr, "get_sum", "1", "-k", "arg3=2"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("anydctl: get_sum(): has no parameter 'arg3'\n"),
        "{run:#?}"
    );
    // ... and the daemon too, and says what is wrong.
    let run = anydctl(&["call", "--no-check", &addr, "get_sum", "1", "-k", "arg3=2"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(
        run.stderr,
        "TypeError: get_sum() got an unexpected keyword argument 'arg3'\n"
    );
    // A name given twice never leaves anydctl.
    let run = anydctl(&["call", &addr, "get_sum", "-k", "arg1=1", "-k", "arg1=2"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("given twice"), "{run:#?}");
}

#[test]
fn arguments_are_json_where_they_parse_and_strings_otherwise() {
    let (_d, addr, _dir) = start(demo());
    let echo = |arg: &str| ok(&["call", &addr, "echo", arg]);
    assert_eq!(
        echo(r#"{"b": [1, 2.5, null, true], "a": {"x": "y"}}"#),
        "{\"b\":[1,2.5,null,true],\"a\":{\"x\":\"y\"}}\n"
    );
    assert_eq!(echo("42"), "42\n");
    assert_eq!(echo("\"42\""), "\"42\"\n");
    assert_eq!(echo("hello"), "\"hello\"\n");
    assert_eq!(echo("hello world"), "\"hello world\"\n");
    assert_eq!(echo("[1,2"), "\"[1,2\"\n");
    assert_eq!(echo("007"), "\"007\"\n");
    assert_eq!(echo("/etc/vpn.json"), "\"/etc/vpn.json\"\n");
    // Integers beyond 64 bits travel in pickle only, and come back
    // exactly, as strings.
    let min = "-170141183460469231731687303715884105728";
    assert_eq!(
        ok(&["call", "--codec", "pickle", &addr, "echo", min]),
        format!("\"{min}\"\n")
    );
    let run = anydctl(&["call", &addr, "echo", min]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("use --codec pickle"), "{run:#?}");
    // --verbose says how each argument was read.
    let run = anydctl(&["call", "--verbose", &addr, "echo", "[1,2", "-k", "x=1"]);
    assert!(
        run.stderr
            .contains("ARG 1: [1,2 is not JSON: sent as a string"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("-k x: 1 is JSON"), "{run:#?}");
}

#[test]
fn results_in_every_codec_read_the_same() {
    let (_d, addr, _dir) = start(demo());
    let arg = r#"{"a":[1,-2,2.5,null,false,"s"]}"#;
    for codec in ["msgpack", "json", "pickle"] {
        assert_eq!(
            ok(&["call", "--codec", codec, &addr, "echo", arg]),
            format!("{arg}\n"),
            "{codec}"
        );
        assert_eq!(
            ok(&["call", &addr, "blob", "--codec", codec]),
            "[0,255,10]\n",
            "{codec}"
        );
    }
}

#[test]
fn raw_prints_strings_and_bytes_bare() {
    let (_d, addr, _dir) = start(demo());
    assert_eq!(
        ok(&["call", "--raw", &addr, "greet", "ann"]),
        "hello, ann\n"
    );
    assert_eq!(ok(&["call", &addr, "echo", "a\"b", "--raw"]), "a\"b\n");
    // Anything else is still JSON.
    assert_eq!(ok(&["call", "--raw", &addr, "get_sum", "1", "2"]), "3\n");
    let out = run_program(
        Path::new(env!("CARGO_BIN_EXE_anydctl")),
        &["call", "--raw", &addr, "blob"],
        &[],
        PATIENCE,
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, [0, 255, 10]);
}

#[test]
fn a_remote_error_goes_to_stderr_with_status_5() {
    let (_d, addr, _dir) = start(demo());
    let run = anydctl(&["call", &addr, "status"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "VpnError: not connected\n");

    let run = anydctl(&["call", &addr, "get_sum", "1", "two"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(
        run.stderr, "TypeError: get_sum() argument 'arg2' must be i64, not str\n",
        "{run:#?}"
    );
}

#[test]
fn an_unknown_endpoint_is_a_remote_error() {
    let (_d, addr, _dir) = start(demo());
    let run = anydctl(&["call", &addr, "nope"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "NotImplementedError: nope\n");
}

#[test]
fn endpoints_as_a_table() {
    let (_d, addr, _dir) = start(demo());
    let out = ok(&["endpoints", &addr]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ENDPOINT") && lines[0].ends_with("DOC"),
        "{out}"
    );
    let row = |name: &str| {
        *lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
    };
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        words(row("echo")),
        "echo arg: Value Value Returns its argument."
    );
    assert_eq!(
        words(row("get_sum")),
        "get_sum arg1: i64, arg2: i64 i64 Adds two numbers."
    );
    assert_eq!(
        words(row("greet")),
        "greet name: String, greeting?: Option<String> String"
    );
    assert_eq!(words(row("mul")), "mul #1: u8, #2: u8 u16");
    assert_eq!(words(row("status")), "status - String");
    // The doc's second line continues under the first.
    let i = lines.iter().position(|l| l.starts_with("get_sum")).unwrap();
    assert_eq!(lines[i + 1].trim(), "Both are 64-bit integers.");
    let doc_column = lines[0].find("DOC").unwrap();
    assert_eq!(lines[i + 1].find("Both"), Some(doc_column), "{out}");
}

#[test]
fn endpoints_as_json() {
    let (_d, addr, _dir) = start(demo());
    let out = ok(&["endpoints", "--json", &addr]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in ["echo", "get_sum", "greet", "status", "blob", "mul"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let greet = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "greet")
        .unwrap();
    assert_eq!(
        greet["params"],
        serde_json::json!([
            {"name": "name", "type": "String", "optional": false},
            {"name": "greeting", "type": "Option<String>", "optional": true},
        ])
    );
    assert_eq!(greet["returns"], "String");
}

#[test]
fn ping_three_times() {
    let (_d, addr, _dir) = start(demo());
    let run = anydctl(&["ping", "-c", "3", "-i", "10ms", &addr]);
    assert_eq!(run.code, 0, "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("PING {addr}: anyd.ping over msgpack"));
    for (seq, line) in (1..=3).zip(&lines[1..]) {
        let prefix = format!("reply from {addr}: seq={seq} time=");
        assert!(
            line.starts_with(&prefix) && line.ends_with(" ms"),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains(&format!(
            "--- {addr} ping statistics ---\n3 calls, 3 replies, 0% failed, time "
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("rtt min/avg/max/mdev = "),
        "{}",
        run.stdout
    );
}

#[test]
fn bench_with_two_clients_and_a_number_of_requests() {
    let (_d, addr, _dir) = start(demo());
    let run = anydctl(&[
        "bench",
        &addr,
        "echo",
        "hello",
        "--clients",
        "2",
        "--requests",
        "200",
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.starts_with(&format!(
            "bench echo(\"hello\") on {addr}: 2 clients, msgpack\n"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\ncalls:    200 (200 ok, 0 errors) in "),
        "{}",
        run.stdout
    );
    for word in [
        "rate:",
        "latency:  min ",
        " p50 ",
        " p90 ",
        " p99 ",
        " max ",
        "latency histogram (200 calls):",
    ] {
        assert!(run.stdout.contains(word), "{word} in {}", run.stdout);
    }
    // No progress bar without a terminal.
    assert_eq!(run.stderr, "");

    // The same as JSON; the histogram's bins hold every call.
    let out = ok(&[
        "bench", "--json", &addr, "get_sum", "1", "2", "-j", "2", "-n", "150",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["clients"], 2);
    assert_eq!(report["calls"], 150);
    assert_eq!(report["ok"], 150);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["call"], "get_sum(1, 2)");
    let binned: u64 = report["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(binned, 150);
    let l = &report["latency_ns"];
    let at = |k: &str| l[k].as_u64().unwrap();
    assert!(at("min") <= at("p50") && at("p50") <= at("p90"), "{l}");
    assert!(at("p90") <= at("p99") && at("p99") <= at("max"), "{l}");
}

#[test]
fn bench_counts_error_replies_by_kind() {
    let (_d, addr, _dir) = start(demo());
    let run = anydctl(&["bench", &addr, "nope", "-j", "2", "-n", "10"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(
        run.stdout.contains("calls:    10 (0 ok, 10 errors)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("errors:   10 NotImplementedError: nope"),
        "{}",
        run.stdout
    );
    // A duration run stops by itself (how many calls it makes is the
    // machine's business).
    let out = ok(&["bench", "--json", &addr, "echo", "1", "--duration", "200ms"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["errors"], 0);
    assert_eq!(report["calls"], report["ok"]);
    assert_eq!(report["interrupted"], false);
}

#[test]
fn a_caller_the_policy_refuses_is_not_told_the_daemon_is_not_rust_as_root() {
    use std::os::unix::fs::PermissionsExt;
    anyd_testkit::root::require_root("running anydctl as another user");
    // A root-only daemon answers nobody's calls, anyd.ping and
    // anyd.endpoints among them, as it answers a missing endpoint:
    // anydctl must not tell nobody that it is no Rust anyd daemon.
    let (d, address, dir) = start(demo().allow(anyd::Allow::root()).socket_mode(0o666));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A copy of anydctl that nobody may run, in a directory nobody may
    // enter (the build's own may be private to root).
    let (_bin, program) =
        anyd_testkit::root::runnable_by_others(Path::new(env!("CARGO_BIN_EXE_anydctl")));
    let as_nobody = |args: &[&str]| {
        let out = run_program_as(Some(65534), &program, args, &[], PATIENCE);
        let run = Run {
            code: out.status.code().expect("anydctl was killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("anydctl {args:?} as nobody -> {run:#?}");
        run
    };

    let run = as_nobody(&["endpoints", &address]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(
        run.stderr
            .contains("or its policy does not let you call anyd.endpoints"),
        "{run:#?}"
    );
    assert!(
        !run.stderr.contains("It is not a Rust anyd daemon;"),
        "{run:#?}"
    );

    let run = as_nobody(&["ping", "-c", "1", &address]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("a Rust one answers so when its policy does not let you call it"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("(a Python anyd daemon?)"), "{run:#?}");

    // Root, whom the policy admits, sees the endpoints.
    assert!(ok(&["endpoints", &address]).contains("get_sum"));
    drop(d);
}

#[test]
fn authkey_from_the_environment() {
    let (_d, addr, _dir) = start(demo().authkey("sesame"));
    let run = anydctl_env(
        &["call", &addr, "get_sum", "1", "2"],
        &[("ANYD_AUTHKEY", "sesame")],
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "3\n"), "{run:#?}");
}

#[test]
fn authkey_from_a_file() {
    let (_d, addr, dir) = start(demo().authkey("sesame"));
    let key = dir.path().join("key");
    std::fs::write(&key, "sesame\n").unwrap();
    let key = key.to_str().unwrap();
    assert_eq!(
        ok(&["call", "--authkey-file", key, &addr, "get_sum", "1", "2"]),
        "3\n"
    );
    // The file wins over the environment.
    let run = anydctl_env(
        &["ping", "-c", "1", &addr, "--authkey-file", key],
        &[("ANYD_AUTHKEY", "wrong")],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    // An unreadable file is a usage error.
    let missing = dir.path().join("missing");
    let run = anydctl(&[
        "call",
        "--authkey-file",
        missing.to_str().unwrap(),
        &addr,
        "echo",
        "1",
    ]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("cannot read --authkey-file"),
        "{run:#?}"
    );
}

#[test]
fn a_wrong_authkey_exits_with_status_4() {
    let (_d, addr, _dir) = start(demo().authkey("sesame"));
    for cmd in [
        vec!["call", &addr, "echo", "1"],
        vec!["ping", "-c", "1", &addr],
    ] {
        let run = anydctl_env(&cmd, &[("ANYD_AUTHKEY", "wrong")]);
        assert_eq!(run.code, 4, "{run:#?}");
        assert!(
            run.stderr.starts_with("anydctl: authentication failed"),
            "{run:#?}"
        );
        assert_eq!(run.stdout, "");
    }
    // No key at all: the library recognises the daemon's challenge.
    let run = anydctl(&["call", &addr, "echo", "1"]);
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("requires an authkey"), "{run:#?}");
    assert!(run.stderr.contains("ANYD_AUTHKEY"), "{run:#?}");
}

#[test]
fn nothing_listening_exits_with_status_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody.sock");
    let addr = format!("unix:{}", path.display());
    for cmd in [
        vec!["call", &addr, "echo", "1"],
        vec!["endpoints", &addr],
        vec!["ping", &addr],
        vec!["bench", &addr, "echo", "-n", "1"],
    ] {
        let run = anydctl(&cmd);
        assert_eq!(run.code, 3, "{run:#?}");
        assert!(run.stderr.contains("cannot connect to"), "{run:#?}");
        assert_eq!(run.stdout, "", "{cmd:?}");
    }
}

#[test]
fn a_reply_later_than_the_timeout_exits_with_status_6() {
    // The handler waits for the test to let it go, not for a clock.
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let appd = demo().api("wait()", move || {
        let _ = gate.lock().unwrap().recv_timeout(PATIENCE);
    });
    let (_d, addr, _dir) = start(appd);
    let run = anydctl(&["call", "--timeout", "100ms", &addr, "wait"]);
    assert_eq!(run.code, 6, "{run:#?}");
    assert!(run.stderr.contains("timed out"), "{run:#?}");
    release.send(()).unwrap();
}

#[test]
fn other_addresses() {
    let tcp = demo().bind("tcp:127.0.0.1:0").unwrap().spawn().unwrap();
    let addr = tcp.address().to_string();
    assert!(addr.starts_with("tcp:127.0.0.1:"), "{addr}");
    assert_eq!(ok(&["call", &addr, "get_sum", "1", "2"]), "3\n");

    let name = format!("unix:@anydctl-test-{}", std::process::id());
    let abstract_ = demo().bind(name.as_str()).unwrap().spawn().unwrap();
    assert_eq!(ok(&["call", &name, "get_sum", "1", "2"]), "3\n");
    drop(abstract_);
}

#[test]
fn usage_errors_exit_with_status_2() {
    for cmd in [
        vec!["call", "relative.sock", "echo"],
        vec!["call", "tcp:localhost", "echo"],
        vec!["call", "/x.sock", "echo", "-k", "novalue"],
        vec![
            "call",
            "/x.sock",
            "echo",
            "99999999999999999999999999999999999999999",
        ],
        vec!["call", "/x.sock"],
        vec!["bench", "/x.sock", "echo"],
        vec!["bench", "/x.sock", "echo", "-n", "1", "-d", "1s"],
        vec!["ping", "/x.sock", "-c", "0"],
        vec!["call", "/x.sock", "echo", "--timeout", "soon"],
        vec!["frobnicate"],
        vec![],
    ] {
        let run = anydctl(&cmd);
        assert_eq!(run.code, 2, "{cmd:?}: {run:#?}");
        assert_eq!(run.stdout, "", "{cmd:?}");
    }
}

#[test]
fn help_completions_and_man_page() {
    let help = ok(&["--help"]);
    for part in [
        "Examples:",
        "Exit status:",
        "  5  remote error",
        "ANYD_AUTHKEY",
        "bench",
    ] {
        assert!(help.contains(part), "{part} in\n{help}");
    }
    assert!(help.contains("  130  interrupted"), "{help}");
    let call_help = ok(&["call", "--help"]);
    assert!(call_help.contains("--kwarg <NAME=VALUE>"), "{call_help}");
    assert!(call_help.contains("--stream"), "{call_help}");
    assert!(call_help.contains("--count <N>"), "{call_help}");
    assert!(call_help.contains("Examples:"), "{call_help}");

    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        assert!(
            script.contains("anydctl") && script.contains("endpoints"),
            "{shell}"
        );
    }
    let page = ok(&["man"]);
    assert!(page.starts_with(".ie"), "{}", &page[..100]);
    for part in [
        ".TH anydctl 1",
        ".SH \"EXIT STATUS\"",
        ".SH COMMANDS",
        "\\-\\-authkey\\-file",
        "\\-\\-stream",
        "stream of TYPE",
    ] {
        assert!(page.contains(part), "{part}");
    }
}

// The Python side: a real `anyd.Appd` (Python anyd 0.4.1, TCP, pickle).

/// The venv with Python anyd, made once for the whole workspace by the
/// same code as anyd's interop tests.
use anyd_testkit::python as support;

/// A Python `anyd.Appd` on 127.0.0.1 and a free port; killed on drop.
struct PythonAppd {
    child: Child,
    address: String,
    /// Kept open: the daemon's stdout, which it no longer writes to.
    _stdout: BufReader<ChildStdout>,
}

const PYTHON_APPD: &str = r#"
import os
from anyd import Appd

key = os.environ.get("TEST_AUTHKEY")
appd = Appd(("127.0.0.1", 0), authkey=key.encode() if key else None)

@appd.api
def echo(arg):
    return arg

@appd.api
def get_sum(arg1, arg2):
    return arg1 + arg2

print(appd.address[1], flush=True)
appd.start()
"#;

impl PythonAppd {
    fn start(authkey: Option<&str>) -> Self {
        let mut cmd = Command::new(&support::venv().python);
        cmd.args(["-c", PYTHON_APPD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(key) = authkey {
            cmd.env("TEST_AUTHKEY", key);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // The port line, read on a thread so that a daemon that never
        // prints it fails the test instead of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, reader));
        });
        let Ok((line, stdout)) = rx.recv_timeout(PATIENCE) else {
            let _ = child.kill();
            panic!("the Python daemon did not print its port");
        };
        let port: u16 = line
            .unwrap()
            .trim()
            .parse()
            .expect("the Python daemon died before printing its port");
        PythonAppd {
            child,
            address: format!("tcp:127.0.0.1:{port}"),
            _stdout: stdout,
        }
    }
}

impl Drop for PythonAppd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_python_appd_over_tcp_with_pickle() {
    let py = PythonAppd::start(None);
    let addr = py.address.as_str();
    let call = |args: &[&str]| {
        let mut all = vec!["--codec", "pickle", "call", addr];
        all.extend_from_slice(args);
        anydctl(&all)
    };
    let run = call(&["echo", r#"{"a":[1,2.5,null,true],"b":"x"}"#]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.stdout, "{\"a\":[1,2.5,null,true],\"b\":\"x\"}\n");
    assert_eq!(call(&["get_sum", "1", "2"]).stdout, "3\n");
    assert_eq!(
        call(&["get_sum", "-k", "arg1=1", "-k", "arg2=2"]).stdout,
        "3\n"
    );
    assert_eq!(call(&["echo", "hi", "--raw"]).stdout, "hi\n");
    let run = call(&["nope"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(run.stderr, "NotImplementedError: nope\n");

    // No anyd.ping: anydctl says so, and times the error replies.
    let run = anydctl(&["--codec", "pickle", "ping", "-c", "2", "-i", "10ms", addr]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("has no anyd.ping"), "{run:#?}");
    assert!(
        run.stdout.contains("seq=2 time=") && run.stdout.contains("(NotImplementedError)"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("2 calls, 2 replies, 0% failed"),
        "{run:#?}"
    );

    // No anyd.endpoints: anydctl says so plainly.
    let run = anydctl(&["--codec", "pickle", "endpoints", addr]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(run.stderr.contains("cannot list its endpoints"), "{run:#?}");
    assert!(
        run.stderr
            .contains("Python anyd daemons have no anyd.endpoints"),
        "{run:#?}"
    );

    let out = ok(&[
        "--codec", "pickle", "bench", "--json", addr, "echo", "x", "-n", "20",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["calls"].as_u64(), report["ok"].as_u64()),
        (Some(20), Some(20))
    );

    // The daemon served all of that, one session after another, and is
    // still there.
    assert_eq!(call(&["get_sum", "20", "22"]).stdout, "42\n");
}

#[test]
fn a_python_appd_with_an_authkey() {
    let py = PythonAppd::start(Some("sesame"));
    let addr = py.address.as_str();
    let key = [("ANYD_AUTHKEY", "sesame")];
    let run = anydctl_env(
        &["--codec", "pickle", "call", addr, "get_sum", "1", "2"],
        &key,
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "3\n"), "{run:#?}");
    // Last: a failed handshake ends a Python anyd daemon.
    let run = anydctl_env(
        &["--codec", "pickle", "call", addr, "get_sum", "1", "2"],
        &[("ANYD_AUTHKEY", "wrong")],
    );
    assert_eq!(run.code, 4, "{run:#?}");
}

#[test]
fn a_peer_that_does_not_speak_the_protocol_exits_with_status_1() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-anyd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // Answers the first request with a well-framed payload that is no
    // reply in any codec, as a foreign service on the socket would.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let mut request = vec![0; u32::from_be_bytes(header) as usize];
        s.read_exact(&mut request).unwrap();
        let junk = b"HTTP/1.1 400 Bad Request";
        s.write_all(&(junk.len() as u32).to_be_bytes()).unwrap();
        s.write_all(junk).unwrap();
    });
    let run = anydctl(&["call", path.to_str().unwrap(), "echo", "hi"]);
    server.join().unwrap();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(run.stderr.starts_with("anydctl: "), "{run:#?}");
}

/// Runs anydctl on a pseudo-terminal (util-linux `script`), as at an
/// interactive shell; returns what the terminal showed (stdout and stderr
/// together, with the terminal's `\r\n` line ends) and the exit status.
fn anydctl_on_a_terminal(args: &[&str]) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_anydctl"))
        .chain(args.iter().copied())
        .map(quote)
        .collect();
    let out = run_program(
        Path::new("script"),
        &["-q", "-e", "-c", &command.join(" "), "/dev/null"],
        &[],
        PATIENCE,
    );
    let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    eprintln!("anydctl {args:?} on a terminal ->\n{shown}");
    (out.status.code().expect("script was killed"), shown)
}

#[test]
fn on_a_terminal_results_are_pretty_and_bench_draws_its_progress() {
    let (_d, addr, _dir) = start(demo());
    let (code, shown) = anydctl_on_a_terminal(&["call", &addr, "echo", r#"{"a":[1,2]}"#]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(shown, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
    // The same call into a pipe is compact.
    assert_eq!(
        ok(&["call", &addr, "echo", r#"{"a":[1,2]}"#]),
        "{\"a\":[1,2]}\n"
    );

    let (code, shown) = anydctl_on_a_terminal(&[
        "bench",
        &addr,
        "echo",
        "hi",
        "--clients",
        "1",
        "--duration",
        "1s",
    ]);
    assert_eq!(code, 0, "{shown}");
    // The bar is redrawn in place, then erased before the report.
    assert!(shown.contains("\r\x1b[2K["), "{shown:?}");
    assert!(shown.contains("% "), "{shown:?}");
    assert!(shown.contains("\ncalls:"), "{shown:?}");
}

/// Text with what a terminal acts on: a title change (OSC 0 ... BEL), a
/// screen clear (CSI 2 J), DEL, a one-character C1 CSI, a carriage return.
const EVIL: &str = "title\x1b]0;pwned\x07 clear\x1b[2J del\x7f csi\u{9b}2J\rover";
/// `EVIL` as anydctl shows it.
const EVIL_SHOWN: &str = r"title\x1b]0;pwned\x07 clear\x1b[2J del\x7f csi\u{9b}2J\x0dover";

/// A daemon whose every word is hostile to a terminal.
fn hostile() -> Appd {
    Appd::new()
        .api("text()", || EVIL)
        .doc(&format!("{EVIL}\nsecond line {EVIL}"))
        .api("blob()", || {
            let mut b = EVIL.as_bytes().to_vec();
            b.push(0xff);
            Value::Bytes(b)
        })
        .api("fail()", || -> Result<(), RemoteError> {
            Err(RemoteError::new(format!("Evil{EVIL}"), EVIL))
        })
        .api("texts()", || Items::from_iter([EVIL, EVIL]))
}

/// Fails if `shown` holds a character a terminal would act on (newlines
/// and tabs aside), or a format character that makes text read otherwise
/// (U+202E RIGHT-TO-LEFT OVERRIDE and the like).
fn assert_nothing_for_a_terminal(what: &str, shown: &str) {
    if let Some(c) = shown
        .chars()
        .find(|&c| (c.is_control() && c != '\n' && c != '\t') || is_format(c))
    {
        panic!("{what} shows {c:?} raw: {shown:?}");
    }
}

/// Whether `c` is of Unicode general category Cf (Format), by the
/// `regex-syntax` crate's tables: not by anydctl's own, which are what is
/// being tested.
fn is_format(c: char) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    static CF: std::sync::OnceLock<Vec<(char, char)>> = std::sync::OnceLock::new();
    let ranges = CF.get_or_init(|| {
        let hir = regex_syntax::parse(r"\p{Cf}").unwrap();
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
            panic!("\\p{{Cf}} is not a class: {hir:?}");
        };
        class
            .ranges()
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect()
    });
    ranges.iter().any(|&(a, b)| (a..=b).contains(&c))
}

#[test]
fn what_a_daemon_says_reaches_no_terminal_raw() {
    let (_d, addr, _dir) = start(hostile());
    // An error reply, on stderr.
    let run = anydctl(&["call", &addr, "fail"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_nothing_for_a_terminal("an error reply", &run.stderr);
    assert_eq!(run.stderr, format!("Evil{EVIL_SHOWN}: {EVIL_SHOWN}\n"));
    // A result as JSON: the same string once parsed.
    let run = anydctl(&["call", &addr, "text"]);
    assert_nothing_for_a_terminal("a JSON result", &run.stdout);
    let back: String = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(back, EVIL);
    // The endpoint table, its docs included.
    let out = ok(&["endpoints", &addr]);
    assert_nothing_for_a_terminal("the endpoint table", &out);
    assert!(out.contains(EVIL_SHOWN), "{out}");
    assert!(out.contains(&format!("second line {EVIL_SHOWN}")), "{out}");
    let out = ok(&["endpoints", "--json", &addr]);
    assert_nothing_for_a_terminal("the endpoints as JSON", &out);
    // The benchmark's report of error kinds.
    let run = anydctl(&["bench", &addr, "fail", "-j", "1", "-n", "2"]);
    assert_nothing_for_a_terminal("the bench report", &run.stdout);
    assert!(
        run.stdout
            .contains(&format!("2 Evil{EVIL_SHOWN}: {EVIL_SHOWN}")),
        "{}",
        run.stdout
    );
    let run = anydctl(&["bench", "--json", &addr, "fail", "-j", "1", "-n", "2"]);
    assert_nothing_for_a_terminal("the bench report as JSON", &run.stdout);

    // --raw into a pipe is the exception: exactly what the daemon sent.
    assert_eq!(ok(&["call", "--raw", &addr, "text"]), format!("{EVIL}\n"));
    let out = run_program(
        Path::new(env!("CARGO_BIN_EXE_anydctl")),
        &["call", "--raw", &addr, "blob"],
        &[],
        PATIENCE,
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, [EVIL.as_bytes(), &[0xff]].concat());
}

#[test]
fn on_a_terminal_what_a_daemon_says_is_shown_not_acted_on() {
    let (_d, addr, _dir) = start(hostile());
    let evil_json = serde_json::to_string(EVIL)
        .unwrap()
        .replace('\x7f', r"\u007f")
        .replace('\u{9b}', r"\u009b");
    let cases: [(&[&str], i32, String); 7] = [
        (
            &["call", &addr, "fail"],
            5,
            format!("Evil{EVIL_SHOWN}: {EVIL_SHOWN}\n"),
        ),
        (
            &["call", "--raw", &addr, "text"],
            0,
            format!("{EVIL_SHOWN}\n"),
        ),
        (
            &["call", "--raw", &addr, "blob"],
            0,
            format!(r"{EVIL_SHOWN}\xff"),
        ),
        (&["call", &addr, "text"], 0, format!("{evil_json}\n")),
        // A stream's items, a line each: JSON, or --raw made visible.
        (
            &["call", &addr, "texts"],
            0,
            format!("{evil_json}\n{evil_json}\n"),
        ),
        (
            &["call", "--raw", &addr, "texts"],
            0,
            format!("{EVIL_SHOWN}\n{EVIL_SHOWN}\n"),
        ),
        (&["endpoints", &addr], 0, String::new()),
    ];
    for (args, code, expected) in cases {
        let (status, shown) = anydctl_on_a_terminal(args);
        assert_eq!(status, code, "{args:?}: {shown:?}");
        assert_nothing_for_a_terminal(&format!("{args:?}"), &shown);
        if expected.is_empty() {
            assert!(shown.contains(EVIL_SHOWN), "{shown:?}");
        } else {
            assert_eq!(shown, expected, "{args:?}");
        }
    }
}

// Streams: items printed as they come, --count, a cancel on Ctrl-C, and
// what the daemon is told.

/// A hub of events and a daemon with streaming endpoints beside `demo`'s:
/// `count(n)` (0 to n-1), `countdown(n)` (n-1 to 0, then an error),
/// `records()` (maps, and a string with a newline), `watch()` (the hub's
/// events) and `feed()` (once: the items the test sends into `feed`).
struct Streams {
    events: Hub<u64>,
    feed: anyd::ItemSender<u64>,
}

fn streaming() -> (Appd, Streams) {
    #[derive(serde::Serialize)]
    struct Record {
        name: &'static str,
        n: u32,
    }
    let events = Hub::new(64);
    let hub = events.clone();
    let (feed, items) = anyd::channel();
    let items = Mutex::new(Some(items));
    let appd = demo()
        .api("count(n)", |n: u64| Items::from_iter(0..n))
        .doc("0, 1, ... n-1.")
        .api("countdown(n)", |n: u64| {
            let liftoff = RemoteError::new("Liftoff", "no more numbers");
            Items::try_from_iter((0..n).rev().map(Ok).chain([Err(liftoff)]))
        })
        .api("records()", || {
            Items::from_iter([
                Record { name: "a", n: 1 },
                Record {
                    name: "two\nlines",
                    n: 2,
                },
            ])
        })
        .api("words()", || Items::from_iter(["one", "two words"]))
        .api("watch()", move || hub.subscribe())
        .doc("Every event, as it happens.")
        .api("feed()", move || {
            items.lock().unwrap().take().expect("feed() is called once")
        });
    (appd, Streams { events, feed })
}

#[test]
fn a_stream_prints_one_json_value_a_line_and_ends_with_status_0() {
    let (appd, _streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    assert_eq!(ok(&["call", &addr, "count", "3"]), "0\n1\n2\n");
    assert_eq!(ok(&["call", &addr, "count", "0"]), "");
    // Compact JSON, a line each, whatever the item holds.
    assert_eq!(
        ok(&["call", &addr, "records"]),
        "{\"name\":\"a\",\"n\":1}\n{\"name\":\"two\\nlines\",\"n\":2}\n"
    );
    assert_eq!(ok(&["call", "--raw", &addr, "words"]), "one\ntwo words\n");
    for codec in ["msgpack", "json"] {
        assert_eq!(
            ok(&["call", "--codec", codec, &addr, "count", "2"]),
            "0\n1\n",
            "{codec}"
        );
    }
    // --stream skips the first call for one reply, which --verbose shows.
    let run = anydctl(&["call", "--stream", "--verbose", &addr, "count", "2"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "0\n1\n"), "{run:#?}");
    assert!(!run.stderr.contains("anyd.endpoints says"), "{run:#?}");
    let run = anydctl(&["call", "--verbose", &addr, "count", "2"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "0\n1\n"), "{run:#?}");
    assert!(
        run.stderr
            .contains("anyd.describe says count streams: calling it for its items"),
        "{run:#?}"
    );
    // Without the contract, the first call finds out.
    let run = anydctl(&["call", "--no-check", "--verbose", &addr, "count", "2"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "0\n1\n"), "{run:#?}");
    assert!(
        run.stderr
            .contains("anyd.endpoints says count streams: calling it for its items"),
        "{run:#?}"
    );
    // --count does not limit a single result.
    assert_eq!(
        ok(&["call", "--count", "1", &addr, "get_sum", "1", "2"]),
        "3\n"
    );
}

#[test]
fn an_error_ending_a_stream_is_a_remote_error() {
    let (appd, _streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    let run = anydctl(&["call", &addr, "countdown", "3"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(run.stdout, "2\n1\n0\n");
    assert_eq!(run.stderr, "Liftoff: no more numbers\n");
    // A call's own TypeError is still reported as it is: the endpoint
    // list says the endpoint does not stream.
    let run = anydctl(&["call", &addr, "count", "three"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(
        run.stderr.starts_with("TypeError: count() argument"),
        "{run:#?}"
    );
    let run = anydctl(&["call", &addr, "get_sum", "1", "two"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(
        run.stderr,
        "TypeError: get_sum() argument 'arg2' must be i64, not str\n"
    );
    // --stream on an endpoint that does not stream: the daemon says so.
    let run = anydctl(&["call", "--stream", &addr, "get_sum", "1", "2"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(
        run.stderr,
        "TypeError: get_sum() does not stream: call it for its one reply\n"
    );
    // Pickle has no streams: the daemon's refusal, as it is.
    let run = anydctl(&["call", "--codec", "pickle", &addr, "count", "2"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("TypeError: count() sends a stream of items"),
        "{run:#?}"
    );
    let run = anydctl(&["call", "--codec", "pickle", "--stream", &addr, "count", "2"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(run.stdout, "");
}

#[test]
fn bench_refuses_a_streaming_endpoint_before_it_runs() {
    let (appd, streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    let run = anydctl(&["bench", &addr, "feed", "-j", "2", "-n", "10"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(run.stdout, "", "no report: nothing ran");
    assert_eq!(
        run.stderr,
        "anydctl: feed streams (anyd.endpoints says so): bench measures calls for one reply; \
         `anydctl call` prints a stream's items, and --count N stops after N\n"
    );
    // feed() may be called once: bench did not call it.
    assert!(!streams.feed.is_closed());
    let follow = Background::start(&["call", &addr, "feed"]);
    streams.feed.send(7).unwrap();
    assert_eq!(follow.line(), "7");
    drop(follow);
    // Pickle has no streams: the run goes on, and reports the refusals.
    let run = anydctl(&["--codec", "pickle", "bench", &addr, "count", "1", "-n", "3"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(
        run.stdout
            .contains("errors:   3 TypeError: count() sends a stream of items"),
        "{}",
        run.stdout
    );
}

/// anydctl running in the background, its stdout read line by line as it
/// comes.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    fn start(args: &[&str]) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anydctl"))
            .args(args)
            .env_remove("ANYD_AUTHKEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        Background {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line anydctl prints.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("anydctl printed no line in time")
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for anydctl to exit: its status, what else it printed.
    fn finish(mut self) -> Run {
        let child = &mut self.child;
        anyd_testkit::process::wait_until("anydctl exits", || child.try_wait().unwrap().is_some());
        let status = self.child.wait().unwrap();
        // The pipe's end follows the exit: the reader has every line.
        let stdout: Vec<String> = self.lines.iter().collect();
        let run = Run {
            code: status.code().expect("anydctl was killed by a signal"),
            stdout: stdout.iter().map(|l| format!("{l}\n")).collect(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
        };
        eprintln!("anydctl in the background -> {run:#?}");
        run
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn items_are_printed_as_they_come_into_a_pipe() {
    let (appd, streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    let run = Background::start(&["call", &addr, "feed"]);
    // Each line is out while the stream is still open: flushed per item.
    streams.feed.send(1).unwrap();
    assert_eq!(run.line(), "1");
    streams.feed.send(2).unwrap();
    assert_eq!(run.line(), "2");
    // Dropping the sender ends the stream well.
    drop(streams.feed);
    let run = run.finish();
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:#?}");
    assert_eq!(run.stderr, "");
}

/// A relay between anydctl and a daemon's Unix socket that keeps the
/// frames each side sends: what the daemon was told, and what it
/// answered.
struct Relay {
    address: String,
    /// The payloads of the client's frames, in order.
    client: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The payloads of the daemon's frames, in order.
    daemon: Arc<Mutex<Vec<Vec<u8>>>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Relays one connection to the daemon at `address` (`unix:/path`).
    fn start(address: &str) -> Relay {
        use std::os::unix::net::{UnixListener, UnixStream};
        let target = address.strip_prefix("unix:").unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let client = Arc::new(Mutex::new(Vec::new()));
        let daemon = Arc::new(Mutex::new(Vec::new()));
        let (client_frames, daemon_frames) = (client.clone(), daemon.clone());
        std::thread::spawn(move || {
            let (from_client, _) = listener.accept().unwrap();
            let to_daemon = UnixStream::connect(target).unwrap();
            let to_client = from_client.try_clone().unwrap();
            let from_daemon = to_daemon.try_clone().unwrap();
            std::thread::spawn(move || relay(from_daemon, to_client, &daemon_frames));
            relay(from_client, to_daemon, &client_frames);
        });
        Relay {
            address: format!("unix:{}", path.display()),
            client,
            daemon,
            _dir: dir,
        }
    }

    /// What the client sent: `call NAME`, `stream NAME`, `cancel`, `end
    /// session`.
    fn client_said(&self) -> Vec<String> {
        use anyd::wire::codec::{decode_request, DecodeLimits};
        use anyd::wire::message::Incoming;
        let limits = DecodeLimits::default();
        let frames = self.client.lock().unwrap();
        frames
            .iter()
            .map(|payload| match decode_request(payload, &limits) {
                Ok(Incoming::Request(r)) if r.options.stream => format!("stream {}", r.endpoint),
                Ok(Incoming::Request(r)) => format!("call {}", r.endpoint),
                Ok(Incoming::Cancel(_)) => "cancel".to_owned(),
                Ok(Incoming::EndSession(_)) => "end session".to_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// The kinds of the daemon's frames: `item`, `end`, an error's kind,
    /// `end session`; anything else (replies) as `reply`.
    fn daemon_said(&self) -> Vec<String> {
        use anyd::wire::codec::{decode_reply, decode_stream_reply, DecodeLimits};
        use anyd::wire::message::{Reply, StreamReply};
        let limits = DecodeLimits::default();
        let frames = self.daemon.lock().unwrap();
        frames
            .iter()
            .map(|payload| {
                if let Ok(Reply::EndSession) =
                    decode_reply::<Value>(anyd::Codec::MsgPack, payload, &limits)
                {
                    return "end session".to_owned();
                }
                match decode_stream_reply::<Value>(anyd::Codec::MsgPack, payload, &limits) {
                    Ok(StreamReply::Item(_)) => "item".to_owned(),
                    Ok(StreamReply::End) => "end".to_owned(),
                    Ok(StreamReply::Err(e)) => e.kind,
                    _ => "reply".to_owned(),
                }
            })
            .collect()
    }
}

/// Copies `from` to `to`, keeping each whole frame's payload in `frames`
/// before it is passed on (so a frame is kept by the time its answer can
/// come back); shuts `to` for writing at the end.
fn relay(
    mut from: std::os::unix::net::UnixStream,
    mut to: std::os::unix::net::UnixStream,
    frames: &Mutex<Vec<Vec<u8>>>,
) {
    use std::io::{Read, Write};
    let mut pending = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) =
            anyd::wire::frame::decode(&pending, anyd::wire::frame::DEFAULT_MAX_FRAME)
        {
            frames
                .lock()
                .unwrap()
                .push(pending[frame.payload.clone()].to_vec());
            pending.drain(..frame.consumed);
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

#[test]
fn count_stops_after_n_items_and_cancels_the_rest() {
    let (appd, streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    // An endless stream: only a cancel ends it.
    let endless = u64::MAX.to_string();
    assert_eq!(
        ok(&["call", "--count", "3", &addr, "count", &endless]),
        "0\n1\n2\n"
    );

    let relay = Relay::start(&addr);
    // Unchecked: without the daemon's contract, anydctl finds out that
    // the endpoint streams by calling it (with the contract, it knows).
    let run = Background::start(&["call", "--no-check", "-c", "3", &relay.address, "watch"]);
    let hub = &streams.events;
    anyd_testkit::process::wait_until("anydctl watches", || hub.subscribers() == 1);
    for event in 1..=5 {
        hub.publish(event);
    }
    let run = run.finish();
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "1\n2\n3\n"),
        "{run:#?}"
    );
    assert_eq!(run.stderr, "");
    // The daemon dropped its subscriber, told by a cancel; the session
    // went on and ended well. (anyd.version first: whether a Ctrl-C
    // during the unary call would send a CANCEL.)
    anyd_testkit::process::wait_until("the daemon drops its subscriber", || hub.subscribers() == 0);
    assert_eq!(
        relay.client_said(),
        [
            "call anyd.version",
            "call watch",
            "call anyd.endpoints",
            "stream watch",
            "cancel",
            "end session"
        ]
    );
    let daemon = relay.daemon_said();
    assert!(
        daemon.ends_with(&["Cancelled".to_owned(), "end session".to_owned()]),
        "{daemon:?}"
    );
}

#[test]
fn ctrl_c_cancels_the_stream_and_exits_130() {
    use rustix::process::Signal;
    let (appd, streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    let hub = &streams.events;

    let relay = Relay::start(&addr);
    let run = Background::start(&["call", "--stream", &relay.address, "watch"]);
    anyd_testkit::process::wait_until("anydctl watches", || hub.subscribers() == 1);
    hub.publish(7);
    // Printed: anydctl is reading the stream, its signals watched.
    assert_eq!(run.line(), "7");
    run.signal(Signal::INT);
    let run = run.finish();
    assert_eq!((run.code, run.stdout.as_str()), (130, ""), "{run:#?}");
    // Nothing said of the cancel it asked for.
    assert_eq!(run.stderr, "");
    anyd_testkit::process::wait_until("the daemon drops its subscriber", || hub.subscribers() == 0);
    // The daemon was told, ended the stream with Cancelled, and served
    // the session's end: a cancel, not a reset.
    assert_eq!(
        relay.client_said(),
        ["stream watch", "cancel", "end session"]
    );
    assert_eq!(relay.daemon_said(), ["item", "Cancelled", "end session"]);

    // SIGTERM does the same, with its own status.
    let run = Background::start(&["call", &addr, "watch"]);
    anyd_testkit::process::wait_until("anydctl watches", || hub.subscribers() == 1);
    hub.publish(8);
    assert_eq!(run.line(), "8");
    run.signal(Signal::TERM);
    let run = run.finish();
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (143, "", ""),
        "{run:#?}"
    );
    anyd_testkit::process::wait_until("the daemon drops its subscriber", || hub.subscribers() == 0);
}

#[test]
fn endpoints_mark_streams_and_their_item_type() {
    let (appd, _streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    let out = ok(&["endpoints", &addr]);
    let words = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        words("watch"),
        "watch - stream of u64 Every event, as it happens."
    );
    assert_eq!(words("count"), "count n: u64 stream of u64 0, 1, ... n-1.");
    assert_eq!(
        words("get_sum"),
        "get_sum arg1: i64, arg2: i64 i64 Adds two numbers."
    );

    let list: serde_json::Value =
        serde_json::from_str(&ok(&["endpoints", "--json", &addr])).unwrap();
    let entry = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    assert_eq!(entry("watch")["stream"], true);
    assert_eq!(entry("watch")["returns"], "u64");
    assert_eq!(entry("records")["stream"], true);
    assert_eq!(entry("echo")["stream"], false);
}

// Descriptors in results: received, shown as what they are, and with
// --raw read through.

/// A struct holding a descriptor, as a daemon's result may.
#[derive(serde::Serialize)]
struct Piped {
    label: &'static str,
    read: anyd::Fd,
}

/// The read end of a pipe that holds `text`, its write end closed: what
/// is read through it ends after `text`.
fn pipe_holding(text: &str) -> std::io::Result<anyd::Fd> {
    let (r, w) = rustix::pipe::pipe()?;
    rustix::io::write(&w, text.as_bytes())?;
    Ok(r.into())
}

/// A daemon whose results hold descriptors: a file it opens, a pipe in a
/// struct, /dev/null, two at once, a directory, a pipe's write end, and
/// a stream of pipes.
fn with_descriptors() -> Appd {
    use std::fs::File;
    type Opened = std::io::Result<anyd::Fd>;
    Appd::new()
        .api("open(path)", |path: String| -> Opened {
            Ok(File::open(path)?.into())
        })
        .api("pipe(text)", |text: String| -> std::io::Result<Piped> {
            Ok(Piped {
                label: "p",
                read: pipe_holding(&text)?,
            })
        })
        .api("null()", || -> Opened {
            Ok(File::options()
                .read(true)
                .write(true)
                .open("/dev/null")?
                .into())
        })
        .api("two()", || -> std::io::Result<(anyd::Fd, anyd::Fd)> {
            Ok((pipe_holding("a")?, pipe_holding("b")?))
        })
        .api("dir(path)", |path: String| -> Opened {
            Ok(File::open(path)?.into())
        })
        .api("write_end()", || -> Opened {
            let (_r, w) = rustix::pipe::pipe()?;
            Ok(w.into())
        })
        .api("echo(arg)", |arg: Value| arg)
        .api("pipes(n)", |n: usize| {
            anyd::Items::ready((0..n).map(|i| pipe_holding(&i.to_string()).unwrap()))
        })
}

/// A file of the test's with `content`, mode 0640; its directory lives as
/// long as the guard.
fn file_holding(content: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.txt");
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    // As /proc/self/fd names it: without symbolic links.
    let path = std::fs::canonicalize(path).unwrap();
    (dir, path.to_str().unwrap().to_owned())
}

/// What anydctl printed, as JSON.
fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

#[test]
fn descriptors_in_a_result_are_shown_as_what_they_are() {
    let (_d, addr, _dir) = start(with_descriptors());
    let (_files, path) = file_holding("twelve bytes");
    let me = rustix::process::geteuid().as_raw();
    for codec in ["msgpack", "json"] {
        let call = |args: &[&str]| {
            let mut all = vec!["--codec", codec, "call", &addr];
            all.extend_from_slice(args);
            json_of(&ok(&all))
        };
        let shown = call(&["open", &path]);
        assert_eq!(
            shown,
            serde_json::json!({"$fd": {
                "kind": "regular file",
                "access": "read-only",
                "path": path,
                "size": 12,
                "mode": "0640",
                "uid": me,
                "gid": rustix::process::getegid().as_raw(),
            }}),
            "{codec}"
        );

        // Inside a struct, in place of its placeholder.
        let shown = call(&["pipe", "through the pipe"]);
        assert_eq!(shown["label"], "p", "{shown}");
        let fd = &shown["read"]["$fd"];
        assert_eq!(fd["kind"], "pipe", "{shown}");
        assert_eq!(fd["access"], "read-only", "{shown}");
        assert!(
            fd["path"].as_str().unwrap().starts_with("pipe:["),
            "{shown}"
        );
        assert_eq!(fd.get("size"), None, "{shown}");

        let shown = call(&["null"]);
        let fd = &shown["$fd"];
        assert_eq!(fd["kind"], "character device", "{shown}");
        assert_eq!(fd["path"], "/dev/null", "{shown}");
        assert_eq!(fd["device"], "1:3", "{shown}");
        assert_eq!(fd["access"], "read-write", "{shown}");

        let shown = call(&["two"]);
        assert_eq!(shown[0]["$fd"]["kind"], "pipe", "{shown}");
        assert_eq!(shown[1]["$fd"]["kind"], "pipe", "{shown}");
        assert_ne!(shown[0]["$fd"]["path"], shown[1]["$fd"]["path"], "{shown}");
    }
    // A stream's items, each with its own.
    let out = ok(&["call", &addr, "pipes", "3"]);
    let lines: Vec<serde_json::Value> = out.lines().map(json_of).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for item in &lines {
        assert_eq!(item["$fd"]["kind"], "pipe", "{out}");
    }
    assert_ne!(lines[0]["$fd"]["path"], lines[1]["$fd"]["path"], "{out}");
    // --verbose counts them.
    let run = anydctl(&["call", "--verbose", &addr, "two"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr.contains("the result holds 2 descriptors"),
        "{run:#?}"
    );
}

#[test]
fn raw_copies_what_the_one_descriptor_gives_to_read() {
    let (_d, addr, dir) = start(with_descriptors());
    // Into a pipe, exactly as it reads: escape sequences and all.
    let content = "line one\n\x1b]0;title\x07line two, no newline";
    let (_files, path) = file_holding(content);
    for codec in ["msgpack", "json"] {
        assert_eq!(
            ok(&["--codec", codec, "call", "--raw", &addr, "open", &path]),
            content,
            "{codec}"
        );
    }
    // The one descriptor inside a struct; the rest of the struct is not
    // printed.
    assert_eq!(
        ok(&["call", "--raw", &addr, "pipe", "through the pipe"]),
        "through the pipe"
    );
    assert_eq!(ok(&["call", "--raw", &addr, "null"]), "");

    // What --raw cannot copy is an error that says why, status 1.
    let refused = |args: &[&str], why: &str| {
        let mut all = vec!["call", "--raw", &addr];
        all.extend_from_slice(args);
        let run = anydctl(&all);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:#?}");
        assert!(run.stderr.starts_with("anydctl: "), "{run:#?}");
        assert!(run.stderr.contains(why), "{why}: {run:#?}");
    };
    refused(&["two"], "the result holds 2 descriptors");
    let dir_path = dir.path().to_str().unwrap();
    refused(&["dir", dir_path], "it is a directory");
    refused(&["write_end"], "opened write-only");
    // A result without descriptors prints as --raw always did.
    assert_eq!(ok(&["call", "--raw", &addr, "echo", "text"]), "text\n");
}

#[test]
fn a_placeholder_that_names_no_descriptor_is_data() {
    let (_d, addr, _dir) = start(with_descriptors());
    // The daemon echoes the map: no descriptor comes with it.
    assert_eq!(
        ok(&["call", &addr, "echo", r#"{"$fd":0}"#]),
        "{\"$fd\":0}\n"
    );
    let run = anydctl(&["call", "--verbose", &addr, "echo", r#"[{"$fd":0}]"#]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "[{\"$fd\":0}]\n"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("is shown as data"), "{run:#?}");
}

#[test]
fn pickle_carries_no_descriptors_and_the_error_says_so() {
    let (_d, addr, _dir) = start(with_descriptors());
    let (_files, path) = file_holding("x");
    let run = anydctl(&["--codec", "pickle", "call", &addr, "open", &path]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(run.stderr.starts_with("RuntimeError: "), "{run:#?}");
    assert!(run.stderr.contains("descriptors"), "{run:#?}");
}
