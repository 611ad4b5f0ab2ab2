//! The test binary run again as a child process, for what must happen in a
//! process of its own: a daemon that is signalled, measured or daemonized,
//! a client that is killed, a test that counts the whole process's threads.
//! The one way the tests start such a child.
//!
//! A child is one test of the same binary, run alone by the test harness:
//! either an ignored helper "test" ([`helper`]), ignored so that a normal
//! run never counts it as a test, which does nothing but the child's part
//! and fails when run by hand without its parent ([`NOT_A_TEST`]); or an
//! ordinary test run again alone ([`alone`]). Name it by its path in the
//! binary (`lifecycle::child_daemon`), as `cargo test -- --list` shows it.
//!
//! The child reports on its stdout, which [`Process`] reads line by line;
//! the test answers on its stdin. Every wait has a deadline.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::PATIENCE;

/// The test harness's arguments that run exactly one ignored helper
/// "test", named before them.
const HELPER_ARGS: [&str; 4] = ["--exact", "--ignored", "--nocapture", "--test-threads=1"];

/// The environment variable that tells a test run by [`alone`] that it is
/// that process.
const ALONE_VAR: &str = "ANYD_TEST_ALONE";

/// The panic message of a helper run without the parent test that gives
/// it its work.
pub const NOT_A_TEST: &str =
    "not a test: this helper is the child process of other tests in this binary, started by them";

/// The command that runs this binary's ignored helper test `name` (its
/// path in the binary) in a child process; the caller adds the helper's
/// environment and starts it, with [`Process::spawn`] or otherwise.
pub fn helper(name: &str) -> Command {
    helper_through(&[], name)
}

/// As [`helper`], through `wrapper`: a program and its arguments put
/// before the test binary (for example `systemd-socket-activate -l PATH`).
///
/// # Panics
///
/// If the test binary cannot be found.
pub fn helper_through(wrapper: &[&str], name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.arg(name).args(HELPER_ARGS);
    cmd
}

/// Runs the (not ignored) test `name` of this binary again, alone in a
/// process of its own, and fails unless it ran and passed there. For a
/// test that measures the whole process, whatever the test runner does
/// with the others: it starts with `if !rerun::is_alone() { return
/// rerun::alone("its::path"); }`.
///
/// # Panics
///
/// If the test fails or does not run in the child, or the child runs past
/// [`PATIENCE`].
pub fn alone(name: &str) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE_VAR, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{name}, run alone, did not end within {PATIENCE:?}"))
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 passed"), "{name} did not run:\n{said}");
}

/// Whether this process is a test run by [`alone`].
pub fn is_alone() -> bool {
    std::env::var_os(ALONE_VAR).is_some()
}

/// A child process whose stdout is read line by line, killed when dropped
/// (also when the test panics).
#[derive(Debug)]
pub struct Process {
    /// The process; its stdin is a pipe, its stdout is this struct's.
    pub child: Child,
    /// Lines of its stdout, read by a thread of their own.
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `cmd` with its stdin a pipe (for the test to talk to it) and
    /// its stdout read line by line.
    ///
    /// # Panics
    ///
    /// If it cannot start.
    pub fn spawn(cmd: &mut Command) -> Process {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line containing `what` (the test harness may print its
    /// own text before the child's on a line) and returns it.
    ///
    /// # Panics
    ///
    /// If none comes within [`PATIENCE`] or the child's stdout ends first.
    pub fn expect(&self, what: &str) -> String {
        self.expect_one_of(&[what])
    }

    /// Waits for a line containing one of `whats` and returns it.
    ///
    /// # Panics
    ///
    /// As [`expect`](Self::expect).
    pub fn expect_one_of(&self, whats: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if whats.iter().any(|w| line.contains(w)) => return line,
                Ok(_) => continue,
                Err(e) => panic!("waiting for one of {whats:?} from the child: {e}"),
            }
        }
    }

    /// Every line read since the last one taken, up to the one containing
    /// `marker` (left out).
    ///
    /// # Panics
    ///
    /// As [`expect`](Self::expect).
    pub fn lines_until(&self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return lines,
                Ok(line) => lines.push(line),
                Err(e) => panic!("waiting for {marker:?} from the child: {e}"),
            }
        }
    }

    /// Writes `line` to the child's stdin.
    ///
    /// # Panics
    ///
    /// If the child's stdin is closed.
    pub fn tell(&mut self, line: &str) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// Sends `signal` to the child.
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for the child to exit.
    ///
    /// # Panics
    ///
    /// If it has not within [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the child did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
