//! A daemon in a process of its own, for the tests that measure it: its
//! memory, threads, connections and exit status are then its own, not
//! mixed with the test's clients.
//!
//! The daemon is the test binary run again with `ANYD_PROCESS_DAEMON` set
//! (see [`crate::rerun`]): a test binary that uses [`Daemon`] has,
//! at its root, the ignored helper
//!
//! ```text
//! #[test]
//! #[ignore = "not a test: the daemon process of other tests, started by them"]
//! fn child_daemon() {
//!     anyd_testkit::process::serve_as_child();
//! }
//! ```
//!
//! A program with its own `main` (the benchmark) calls [`serve_if_child`]
//! first thing instead.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyd::{Allow, ApiError, Appd, ClientOptions, ClientSession, RemoteError, ShutdownHandle};
use rustix::process::Signal;

use crate::rerun::{self, Process, NOT_A_TEST};
pub use crate::PATIENCE;

/// The name of the helper test that serves as the daemon.
const HELPER: &str = "child_daemon";

/// The environment variable that turns the test binary into the daemon;
/// its value is the socket path.
const ADDRESS_VAR: &str = "ANYD_PROCESS_DAEMON";
/// The daemon's authkey, when it has one.
const KEY_VAR: &str = "ANYD_PROCESS_DAEMON_KEY";
/// The daemon's idle timeout in milliseconds, when not the default.
const IDLE_MS_VAR: &str = "ANYD_PROCESS_DAEMON_IDLE_MS";
/// The daemon's memory budget in bytes, when not the default.
const BUDGET_VAR: &str = "ANYD_PROCESS_DAEMON_MEMORY_BUDGET";
/// The daemon's `max_connections`, when not the default.
pub const MAX_CONNECTIONS_VAR: &str = "ANYD_PROCESS_DAEMON_MAX_CONNECTIONS";
/// The daemon's log level (`info`, `debug`), when not `warn`.
pub const LOG_VAR: &str = "ANYD_PROCESS_DAEMON_LOG";
/// The daemon's limit on open files, soft and hard, set before it binds
/// (as a service manager sets it before starting a daemon).
pub const OPEN_FILES_VAR: &str = "ANYD_PROCESS_DAEMON_OPEN_FILES";

/// What a test daemon is configured with beyond its endpoints; the
/// defaults are the library's.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Its authkey.
    pub authkey: Option<String>,
    /// Its idle timeout.
    pub idle_timeout: Option<Duration>,
    /// Its memory budget (`Appd::memory_budget`).
    pub memory_budget: Option<usize>,
    /// Where it listens (`tcp:127.0.0.1:0`, `unix:@name`); by default a
    /// fresh socket path in a temporary directory.
    pub address: Option<String>,
    /// More of its environment (for example [`MAX_CONNECTIONS_VAR`]).
    pub env: Vec<(String, String)>,
}

/// The error of the `refuse` endpoint: an endpoint's own error kind.
#[derive(Debug)]
struct Refused(u64);

impl ApiError for Refused {
    fn into_remote(self) -> RemoteError {
        RemoteError::new("Refused", self.0.to_string())
    }
}

/// Puts SIGPIPE back to its default action, which ends the process, as it
/// is in a C or Python program hosting a daemon: Rust's runtime ignores
/// SIGPIPE, which would hide a write to a vanished client that raises it.
/// The fault tests then show that no such write does.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: installs the default disposition, no handler code; signal()
    // is safe to call with other threads running.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
}

/// The `child_daemon` helper: [`serve_if_child`], failing when this
/// process was not started as the daemon.
///
/// # Panics
///
/// When run by hand, without a test that starts it.
pub fn serve_as_child() {
    assert!(std::env::var_os(ADDRESS_VAR).is_some(), "{NOT_A_TEST}");
    serve_if_child();
}

/// The daemon side: serves until SIGTERM, then prints `STOPPED <ok>` and
/// exits 0 if serving ended well. Returns at once unless a test started
/// this process as the daemon.
///
/// # Panics
///
/// If the daemon cannot be set up as its environment says.
pub fn serve_if_child() {
    let Ok(address) = std::env::var(ADDRESS_VAR) else {
        return;
    };
    default_sigpipe();
    // Warnings and errors (or what LOG_VAR says) go to stdout, where the
    // test reads lines.
    let level = std::env::var(LOG_VAR).map_or(tracing::Level::WARN, |l| l.parse().unwrap());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .init();
    // Set once the server exists; the endpoints are registered before.
    static HANDLE: OnceLock<ShutdownHandle> = OnceLock::new();
    let mut appd = Appd::new()
        // The load tests check that each panic's reply is its own.
        .panic_details(true)
        .api("echo(a)", |a: String| a)
        .api("sum(a, b)", |a: u64, b: u64| a + b)
        // For callers the policy turns away: only root may call it.
        .api("root_sum(a, b)", |a: u64, b: u64| a + b)
        .restrict(Allow::root())
        .api("refuse(n)", |n: u64| -> Result<u64, Refused> {
            Err(Refused(n))
        })
        .api("boom(n)", |n: u64| -> u64 { panic!("boom {n}") })
        // `n` bytes of reply, to fill socket buffers fast.
        .api("blob(n)", |n: usize| "x".repeat(n))
        .api("slow()", || {
            // Tells the test the call is in progress, then waits for it to
            // say "go" on stdin.
            println!("STARTED");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            "finished"
        })
        .api("connections()", || {
            HANDLE.get().map_or(0, ShutdownHandle::connections)
        })
        // Prints a line, for the test to know what the daemon logged
        // before it.
        .api("say(line)", |line: String| println!("{line}"))
        // Takes every descriptor the daemon may still open, and keeps them.
        .api("hoard()", descriptors::hoard)
        // Starts a thread that takes every descriptor that comes free, as
        // soon as it does, until `release`.
        .api("grab()", descriptors::grab)
        // Starts a thread that opens a descriptor and closes it at once,
        // over and over, as handlers opening files do, until `release`.
        .api("churn()", descriptors::churn)
        // Stops grabbing or churning and gives back every descriptor taken.
        .api("release()", descriptors::release)
        // Streams: a subscription to the daemon's hub of events...
        .api("ticks()", || streams::HUB.subscribe())
        // ... `n` events of `size` bytes published to it at once (the
        // reply is the most subscribers an event reached)...
        .api("publish(n, size)", streams::publish)
        .api("subscribers()", || streams::HUB.subscribers())
        // ... items of `size` bytes from an iterator that never ends...
        .api("flood(size)", |size: usize| {
            anyd::Items::from_iter(std::iter::repeat("x".repeat(size)))
        })
        // ... a channel nobody sends on, kept to see when the daemon
        // lets go of it...
        .api("quiet()", streams::quiet)
        .api("open_channels()", streams::open_channels)
        // ... and an iterator blocked in `next` until `unstick()`.
        .api("stuck()", streams::stuck)
        .api("unstick()", streams::unstick)
        .api("stuck_waiting()", streams::stuck_waiting)
        // Descriptors: taken, handed out, both at once...
        .api("fd_inode(fd)", |fd: anyd::Fd| {
            rustix::fs::fstat(&fd).map(|st| st.st_ino).unwrap()
        })
        .api("fd_null()", || {
            std::fs::File::open("/dev/null").map(anyd::Fd::from)
        })
        .api("fd_swap(fd)", |fd: anyd::Fd| {
            drop(fd);
            std::fs::File::open("/dev/null").map(anyd::Fd::from)
        })
        // ... streamed...
        .api("fd_stream(n)", |n: usize| {
            anyd::Items::ready(
                (0..n).map(|_| anyd::Fd::from(std::fs::File::open("/dev/null").unwrap())),
            )
        })
        // ... held until the test says "go" (a caller killed meanwhile)...
        .api("fd_hold(fd)", |fd: anyd::Fd| {
            println!("STARTED");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            drop(fd);
        })
        // ... and refused by the policy to everyone but a user that does
        // not call it.
        .api("fd_denied(fd)", |fd: anyd::Fd| drop(fd))
        .restrict(Allow::uid(DENIED_UID));
    if let Ok(key) = std::env::var(KEY_VAR) {
        appd = appd.authkey(key);
    }
    if let Ok(ms) = std::env::var(IDLE_MS_VAR) {
        appd = appd.idle_timeout(Some(Duration::from_millis(ms.parse().unwrap())));
    }
    if let Ok(bytes) = std::env::var(BUDGET_VAR) {
        appd = appd.memory_budget(bytes.parse().unwrap());
    }
    if let Ok(n) = std::env::var(MAX_CONNECTIONS_VAR) {
        appd = appd.max_connections(n.parse().unwrap());
    }
    if let Ok(n) = std::env::var(OPEN_FILES_VAR) {
        use rustix::process::{setrlimit, Resource, Rlimit};
        let n = n.parse().unwrap();
        let limit = Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        setrlimit(Resource::Nofile, limit).unwrap();
    }
    let server = appd.bind(address.as_str()).unwrap();
    HANDLE.set(server.shutdown_handle()).unwrap();
    println!("READY {}", server.local_address());
    let result = server.serve();
    println!("STOPPED {}", result.is_ok());
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

/// The one user `fd_denied()` admits: a uid no test runs as.
pub const DENIED_UID: u32 = 64_999;

/// The streams of the test daemon.
mod streams;

/// Descriptors the daemon takes on the test's demand, to run out of them
/// at a moment of the test's choosing.
mod descriptors {
    use std::fs::File;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::thread::JoinHandle;

    static HOARD: Mutex<Vec<File>> = Mutex::new(Vec::new());
    static GRABBING: AtomicBool = AtomicBool::new(false);
    static GRABBER: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

    fn is_emfile(e: &std::io::Error) -> bool {
        e.raw_os_error() == Some(libc::EMFILE)
    }

    /// Opens /dev/null until the descriptors run out; returns how many.
    pub(super) fn hoard() -> usize {
        let mut hoard = HOARD.lock().unwrap();
        let before = hoard.len();
        loop {
            match File::open("/dev/null") {
                Ok(f) => hoard.push(f),
                Err(e) if is_emfile(&e) => return hoard.len() - before,
                Err(e) => panic!("{e}"),
            }
        }
    }

    pub(super) fn grab() {
        GRABBING.store(true, Ordering::SeqCst);
        let thread = std::thread::spawn(|| {
            let mut got = Vec::new();
            while GRABBING.load(Ordering::Relaxed) {
                match File::open("/dev/null") {
                    Ok(f) => got.push(f),
                    Err(e) if is_emfile(&e) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
            HOARD.lock().unwrap().extend(got);
        });
        *GRABBER.lock().unwrap() = Some(thread);
    }

    pub(super) fn churn() {
        GRABBING.store(true, Ordering::SeqCst);
        let thread = std::thread::spawn(|| {
            while GRABBING.load(Ordering::Relaxed) {
                match File::open("/dev/null") {
                    // Held for as long as it takes to close it.
                    Ok(f) => drop(f),
                    Err(e) if is_emfile(&e) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        *GRABBER.lock().unwrap() = Some(thread);
    }

    /// Stops grabbing or churning and closes every descriptor taken;
    /// returns how many.
    pub(super) fn release() -> usize {
        GRABBING.store(false, Ordering::SeqCst);
        if let Some(thread) = GRABBER.lock().unwrap().take() {
            thread.join().unwrap();
        }
        std::mem::take(&mut *HOARD.lock().unwrap()).len()
    }
}

/// How many descriptors process `pid` (`None`: this one) has open.
pub fn open_fds(pid: Option<u32>) -> usize {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}/fd"),
        None => "/proc/self/fd".to_owned(),
    };
    // Listing /proc/self/fd opens a descriptor of its own: not counted.
    let listed = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .count();
    if pid.is_none() {
        listed - 1
    } else {
        listed
    }
}

/// What the kernel says of a process.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// The peak resident set size since start or [`Daemon::reset_peak`],
    /// KiB. The kernel records it when memory is unmapped, not when it is
    /// given back with `madvise` (as thread stacks are), so it may miss a
    /// peak; it is never below the current size.
    pub peak_kib: u64,
    /// Threads.
    pub threads: u64,
}

impl Status {
    /// Of process `pid` (or `None` for this process).
    pub fn of(pid: Option<u32>) -> Status {
        let path = match pid {
            Some(pid) => format!("/proc/{pid}/status"),
            None => "/proc/self/status".to_owned(),
        };
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {path}"))
        };
        Status {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
            threads: field("Threads:"),
        }
    }
}

/// A daemon process, killed when dropped (also when the test panics).
pub struct Daemon {
    /// The daemon's process.
    pub process: Process,
    path: String,
    key: Option<String>,
    /// Holds the socket's directory for the daemon's lifetime.
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon on a fresh socket path, with `key` as its authkey if
    /// given, and waits until it serves: a call answered shows it is past
    /// setting up its runtime and signal handlers.
    pub fn start(key: Option<&str>) -> Daemon {
        Daemon::start_with(Settings {
            authkey: key.map(str::to_owned),
            ..Settings::default()
        })
    }

    /// Starts a daemon at `address` (default: a fresh socket path), with
    /// `key` as its authkey if given and `env` in its environment, and
    /// waits until it serves.
    pub fn start_at(address: Option<&str>, key: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(Settings {
            authkey: key.map(str::to_owned),
            address: address.map(str::to_owned),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Settings::default()
        })
    }

    /// As [`start`](Self::start), on an abstract socket: any user may
    /// connect (no file permission stands in the way), so that the policy
    /// is the only gate, for tests whose callers switch to other users.
    pub fn start_abstract(key: Option<&str>) -> Daemon {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let address = format!("unix:@anyd-process-{}-{n}", std::process::id());
        Daemon::start_at(Some(&address), key, &[])
    }

    /// Starts a daemon configured with `settings` (see [`Daemon::start`]).
    pub fn start_with(settings: Settings) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let address = match &settings.address {
            Some(a) => a.clone(),
            None => dir.path().join("d.sock").to_str().unwrap().to_owned(),
        };
        let mut cmd = rerun::helper(HELPER);
        cmd.env(ADDRESS_VAR, &address)
            .env_remove(KEY_VAR)
            .env_remove(IDLE_MS_VAR)
            .env_remove(BUDGET_VAR)
            .env_remove(MAX_CONNECTIONS_VAR)
            .env_remove(LOG_VAR)
            .env_remove(OPEN_FILES_VAR)
            // Some tests make handlers panic by the thousand: a backtrace
            // for each would take minutes.
            .env("RUST_BACKTRACE", "0")
            .envs(settings.env.iter().map(|(k, v)| (k, v)));
        if let Some(key) = &settings.authkey {
            cmd.env(KEY_VAR, key);
        }
        if let Some(idle) = settings.idle_timeout {
            cmd.env(IDLE_MS_VAR, idle.as_millis().to_string());
        }
        if let Some(bytes) = settings.memory_budget {
            cmd.env(BUDGET_VAR, bytes.to_string());
        }
        let mut daemon = Daemon {
            process: Process::spawn(&mut cmd),
            path: address,
            key: settings.authkey,
            _dir: dir,
        };
        let ready = daemon.expect("READY ");
        if settings.address.is_some() {
            // The address it serves on, with the port a `tcp:...:0` got.
            daemon.path = ready[ready.find("READY ").unwrap() + 6..].trim().to_owned();
        }
        let mut s = daemon.session();
        assert_eq!(s.commit::<String>("echo", ("up",)).unwrap(), "up");
        s.end_session().unwrap();
        daemon
    }

    /// The socket path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Client options for this daemon (its key, a reply deadline).
    pub fn options(&self) -> ClientOptions {
        let options = ClientOptions::new().timeout(Some(PATIENCE));
        match &self.key {
            Some(key) => options.authkey(key.as_bytes()),
            None => options,
        }
    }

    /// A connected session.
    pub fn session(&self) -> ClientSession {
        self.options().connect(self.path.as_str()).unwrap()
    }

    /// What the kernel says of the daemon now.
    pub fn status(&self) -> Status {
        Status::of(Some(self.pid()))
    }

    /// How many descriptors the daemon has open now.
    pub fn open_fds(&self) -> usize {
        open_fds(Some(self.pid()))
    }

    /// Resets the peak resident set size (`VmHWM`) to the current one.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }

    /// The daemon's connection threads (named `anyd-conn`).
    pub fn connection_threads(&self) -> usize {
        self.threads_named("anyd-conn")
    }

    /// The daemon's threads running streams' iterators (`Items::from_iter`,
    /// named `anyd-items`).
    pub fn iterator_threads(&self) -> usize {
        self.threads_named("anyd-items")
    }

    fn threads_named(&self, name: &str) -> usize {
        let tasks = format!("/proc/{}/task", self.pid());
        std::fs::read_dir(&tasks)
            .unwrap_or_else(|e| panic!("{tasks}: {e}"))
            .filter_map(Result::ok)
            // A thread that ended between the listing and the read is not
            // counted, rightly.
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    /// How many connections the daemon holds, not counting the one that
    /// asks.
    pub fn connections(&self) -> usize {
        let mut s = self.session();
        let n: usize = s.commit("connections", ()).unwrap();
        n - 1
    }

    /// Waits until the daemon holds no connection and has no connection
    /// thread and no stream iterator's thread left (one whose connection
    /// ended ends on its own, a moment later); returns its status then.
    pub fn wait_quiet(&self) -> Status {
        wait_until("the daemon holds no connection", || self.connections() == 0);
        wait_until("the connection and iterator threads have ended", || {
            self.connection_threads() == 0 && self.iterator_threads() == 0
        });
        self.status()
    }

    /// Waits for a line of the daemon's stdout containing `what` (the test
    /// harness may print its own text before ours on a line).
    pub fn expect(&self, what: &str) -> String {
        self.process.expect(what)
    }

    /// Has the daemon print `marker`, and returns every line it printed
    /// since the last one read, up to that one: what it logged before.
    pub fn lines_until_now(&self, marker: &str) -> Vec<String> {
        self.lines_until_said(&mut self.session(), marker)
    }

    /// As [`lines_until_now`](Self::lines_until_now), through session `s`
    /// (one already open, should the daemon be out of descriptors).
    pub fn lines_until_said(&self, s: &mut ClientSession, marker: &str) -> Vec<String> {
        s.commit::<()>("say", (marker,)).unwrap();
        self.process.lines_until(marker)
    }

    /// Lets one `slow` call finish.
    pub fn go(&mut self) {
        self.process.tell("go");
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) {
        self.process.signal(signal);
    }

    /// Waits for the daemon to exit, up to [`PATIENCE`].
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.process.wait_exit()
    }
}

/// Polls `done` until it holds, failing the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Raises this process's soft limit on open files to the hard limit (the
/// daemon started afterwards inherits it), and checks it allows `needed`.
pub fn allow_open_files(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).unwrap();
    let soft = getrlimit(Resource::Nofile).current;
    assert!(
        soft.is_none_or(|n| n >= needed),
        "this test needs {needed} open files and the hard limit is {soft:?}"
    );
}
