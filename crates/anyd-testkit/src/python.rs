//! Helpers for the tests that talk to real Python programs: a shared venv
//! with Python `anyd` installed, and Python processes run under a deadline
//! (clients) or kept alive for the length of a test (daemons).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

/// The Python package the interop tests talk to, pinned: the wire protocol
/// is checked against this release.
const PYTHON_ANYD: &str = "anyd==0.4.1";

/// How long one Python program may run (clients) or take to get ready
/// (daemons). Generous: a loaded CI machine starts Python slowly, and a
/// hung test must still end.
pub const PYTHON_DEADLINE: Duration = Duration::from_secs(60);

/// The interpreter the venv is made from: `ANYD_TEST_PYTHON`, or `python3`.
pub fn base_python() -> OsString {
    std::env::var_os("ANYD_TEST_PYTHON").unwrap_or_else(|| "python3".into())
}

/// A venv with Python anyd installed.
#[derive(Debug)]
pub struct Venv {
    /// The venv's interpreter.
    pub python: PathBuf,
    /// `(major, minor)` of that interpreter.
    pub version: (u32, u32),
}

impl Venv {
    /// Whether this Python authenticates the pre-3.12 way: 20-byte
    /// challenges and raw HMAC-MD5 replies to any challenge.
    pub fn legacy_handshake(&self) -> bool {
        self.version < (3, 12)
    }
}

/// The shared venv, created on first use.
///
/// Test processes may start together (nextest runs each test in its own
/// process), so creation happens under an exclusive lock on a file beside
/// the venv, and a marker written last says the venv is complete; a venv
/// without the marker is a leftover of an interrupted run and is rebuilt.
///
/// # Panics
///
/// If the venv cannot be made or pip fails, with their output: a test that
/// needs Python anyd fails rather than being skipped.
pub fn venv() -> &'static Venv {
    static VENV: OnceLock<Result<Venv, String>> = OnceLock::new();
    match VENV.get_or_init(make_venv) {
        Ok(v) => v,
        Err(e) => panic!("cannot set up the Python venv for the interop tests:\n{e}"),
    }
}

fn make_venv() -> Result<Venv, String> {
    let target = target_dir()?;
    let dir = target.join("python-venv");
    let marker = dir.join("anyd-interop-ready");
    let python = dir.join("bin").join("python");
    fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    let lock_path = target.join("python-venv.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    lock_exclusive(&lock).map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // The lock is released when `lock` is dropped, after the marker is
    // written.
    let made_by = marker_first_line();
    if let Some(version) = read_marker(&marker, &made_by) {
        if python.exists() {
            return Ok(Venv { python, version });
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    let mut venv = Command::new(base_python());
    venv.arg("-m").arg("venv").arg(&dir);
    run_setup_step(venv)?;
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        PYTHON_ANYD,
    ]);
    run_setup_step(pip)?;
    // Also proves that the package imports.
    let mut probe = Command::new(&python);
    probe.args([
        "-I",
        "-c",
        "import sys, anyd; print('%d.%d' % sys.version_info[:2])",
    ]);
    let printed = run_setup_step(probe)?;
    let version = parse_version(printed.trim())
        .ok_or_else(|| format!("unexpected Python version {printed:?}"))?;
    // Written under a temporary name, then renamed: a run killed while
    // writing leaves no marker rather than a torn one.
    let partial = dir.join("anyd-interop-ready.partial");
    let (major, minor) = version;
    fs::write(&partial, format!("{made_by}\npython {major}.{minor}\n"))
        .and_then(|()| fs::rename(&partial, &marker))
        .map_err(|e| format!("writing {}: {e}", marker.display()))?;
    drop(lock);
    Ok(Venv { python, version })
}

/// What the venv was made for: the package, and the interpreter it was
/// made from (a venv of another interpreter is rebuilt).
fn marker_first_line() -> String {
    format!("{PYTHON_ANYD} from {}", base_python().to_string_lossy())
}

/// The Python version recorded in a marker, if the marker is there and was
/// written for this package and interpreter.
fn read_marker(marker: &Path, made_by: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string(marker).ok()?;
    let (first, rest) = text.split_once('\n')?;
    if first != made_by {
        return None;
    }
    parse_version(rest.trim().strip_prefix("python ")?)
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    loop {
        match flock(file, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs one step of the venv setup; its stdout on success, everything it
/// printed on failure.
fn run_setup_step(mut command: Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

/// The workspace's target directory: `CARGO_TARGET_DIR` when it is an
/// absolute path, else found from this test binary, which cargo and nextest
/// run from `<target>/[<triple>/]<profile>/deps/`.
fn target_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir);
        }
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    // Cargo marks the target directory's root with CACHEDIR.TAG.
    if let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()) {
        return Ok(dir.to_owned());
    }
    exe.ancestors()
        .nth(3)
        .map(Path::to_owned)
        .ok_or_else(|| format!("{} is not in a target directory", exe.display()))
}

/// A Python program's source, written to a file so that its tracebacks
/// quote the failing line.
pub fn script_file(source: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix("anyd-interop-")
        .suffix(".py")
        .tempfile()
        .expect("cannot create a temporary script");
    std::io::Write::write_all(&mut file, source.as_bytes()).expect("cannot write the script");
    file
}

/// `python -I script args...`: isolated, so that neither the environment
/// nor the temporary directory the script sits in can change what
/// `import anyd` finds.
fn command(python: &Path, script: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(python);
    c.arg("-I")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What a finished Python program printed.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs a Python program to its end, killing it at [`PYTHON_DEADLINE`].
///
/// # Panics
///
/// If it cannot start or runs past the deadline.
pub fn run(python: &Path, source: &str, args: &[&str]) -> Finished {
    let script = script_file(source);
    let mut child = command(python, script.path(), args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let stdout = read_all(child.stdout.take().expect("piped"));
    let stderr = read_all(child.stderr.take().expect("piped"));
    // The readers end when the program closes its pipes, that is when it
    // exits; the channel turns that into a wait with a deadline.
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = (stdout.join(), stderr.join());
        let _ = done_tx.send(());
        out
    });
    let timed_out = done_rx.recv_timeout(PYTHON_DEADLINE).is_err();
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().expect("cannot wait for the Python program");
    let (stdout, stderr) = waiter.join().expect("reader thread");
    let (stdout, stderr) = (
        stdout.expect("stdout reader"),
        stderr.expect("stderr reader"),
    );
    assert!(
        !timed_out,
        "the Python program ran past {PYTHON_DEADLINE:?} and was killed\n\
         --- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Runs a Python program that must succeed; returns its stdout.
///
/// # Panics
///
/// If it fails, with everything it printed (an `assert` that failed in the
/// script shows up here as its traceback).
pub fn run_ok(python: &Path, source: &str, args: &[&str]) -> String {
    let out = run(python, source, args);
    assert!(
        out.status.success(),
        "the Python program failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// A Python daemon that runs for the length of a test. Dropping it kills
/// it and waits for it, also when the test panics; the daemon's stderr is
/// then printed, since it usually says why.
pub struct PythonDaemon {
    child: Child,
    /// Reads stdout to its end, so that the program never blocks on a full
    /// pipe or dies of a broken one.
    _stdout: JoinHandle<()>,
    stderr: Option<JoinHandle<String>>,
    /// What the program printed when ready (after `READY `).
    ready: String,
    _script: tempfile::NamedTempFile,
}

impl PythonDaemon {
    /// Starts a daemon program and waits (up to [`PYTHON_DEADLINE`]) for it
    /// to print `READY <something>` on stdout once it listens.
    ///
    /// # Panics
    ///
    /// If it cannot start, or exits or stays silent instead of getting
    /// ready.
    pub fn start(python: &Path, source: &str, args: &[&str]) -> Self {
        let script = script_file(source);
        let mut child = command(python, script.path(), args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let stderr = read_all(child.stderr.take().expect("piped"));
        let (line_tx, line_rx) = mpsc::channel();
        let stdout = forward_first_line(child.stdout.take().expect("piped"), line_tx);
        let mut daemon = PythonDaemon {
            child,
            _stdout: stdout,
            stderr: Some(stderr),
            ready: String::new(),
            _script: script,
        };
        let line = line_rx.recv_timeout(PYTHON_DEADLINE);
        match line.as_deref().map(|l| l.trim_end().strip_prefix("READY ")) {
            Ok(Some(rest)) => daemon.ready = rest.to_owned(),
            other => {
                let stderr = daemon.stop();
                panic!(
                    "the Python daemon did not get ready (first line: {other:?})\n\
                     --- stderr\n{stderr}"
                );
            }
        }
        daemon
    }

    /// The TCP port the daemon printed as `READY <port>`.
    pub fn port(&self) -> u16 {
        self.ready
            .parse()
            .unwrap_or_else(|_| panic!("READY line without a port: {:?}", self.ready))
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon (if still running) and returns its stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Sends the first line of `stdout` over `tx`, then keeps reading (and
/// discarding) until the program exits.
fn forward_first_line(stdout: ChildStdout, tx: mpsc::Sender<String>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = tx.send(line);
        }
        drop(tx);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    })
}

impl Drop for PythonDaemon {
    fn drop(&mut self) {
        let stderr = self.stop();
        if std::thread::panicking() {
            eprintln!("--- stderr of the Python daemon\n{stderr}");
        }
    }
}
