//! SIGTERM and SIGINT against a daemon in its own process: the call in
//! progress completes, new connections are refused, the socket file goes,
//! and the process exits 0.
//!
//! The daemon is this test binary run again with `ANYD_CHILD_SOCKET` set,
//! so that signals reach only it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyd::{Appd, ClientSession};

const PATIENCE: Duration = Duration::from_secs(30);

/// The daemon side; does nothing unless started by `run_signal_case`.
#[test]
fn child_daemon() {
    let Ok(path) = std::env::var("ANYD_CHILD_SOCKET") else {
        return;
    };
    let server = Appd::new()
        .api("slow()", || {
            // Tell the parent the call is in progress, then wait for it to
            // say "go" on stdin.
            println!("STARTED");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            "finished"
        })
        .bind(path.as_str())
        .unwrap();
    println!("READY");
    let result = server.serve();
    println!("STOPPED {}", result.is_ok());
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn expect(&self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness may print its own text before ours on a line.
                Ok(line) if line.contains(what) => return,
                Ok(_) => continue,
                Err(e) => panic!("waiting for {what:?}: {e}"),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_daemon(path: &Path) -> Daemon {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_daemon", "--exact", "--nocapture", "--test-threads=1"])
        .env("ANYD_CHILD_SOCKET", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
    let d = Daemon { child, lines };
    d.expect("READY");
    d
}

fn run_signal_case(signal: rustix::process::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let mut d = spawn_daemon(&path);
    let address = path.to_str().unwrap().to_owned();
    let call = std::thread::spawn(move || {
        let mut s = ClientSession::connect(address.as_str()).unwrap();
        s.commit::<String>("slow", ())
    });
    d.expect("STARTED");
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    // Stops accepting: the socket file goes while the call still runs.
    let deadline = Instant::now() + PATIENCE;
    while path.exists() {
        assert!(Instant::now() < deadline, "the socket file stays");
        std::thread::yield_now();
    }
    assert!(ClientSession::connect(path.to_str().unwrap()).is_err());
    // Let the call finish: its reply still arrives.
    writeln!(d.child.stdin.as_mut().unwrap(), "go").unwrap();
    assert_eq!(call.join().unwrap().unwrap(), "finished");
    d.expect("STOPPED true");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    run_signal_case(rustix::process::Signal::TERM);
}

#[test]
fn sigint_drains_and_exits_cleanly() {
    run_signal_case(rustix::process::Signal::INT);
}
