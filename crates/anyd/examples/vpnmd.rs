//! vpnmd: the shape of a privileged daemon, with harmless "privileged"
//! work. It keeps the state of pretend VPN tunnels in a file; any local
//! user may connect and ask for the status, or watch every change as it
//! happens; only members of one group (and root) may change it: the socket
//! is open to all (0666), and the daemon's policy, from the kernel's word
//! on who is calling, decides what each caller may do. SIGHUP re-reads the
//! state file. Its command-line client is `vpnm`.
//!
//! It also keeps a log of every change, readable by the daemon's user
//! alone (root, or `--user`'s; mode 0600), and hands members of the group a read-only descriptor to it
//! (`open_log()`, descriptor passing): they read the log themselves,
//! through what the daemon opened for them, without being able to open
//! the file, or to write to it.
//!
//! ```sh
//! cargo run -p anyd-ipc --example vpnmd -- --address unix:/tmp/vpnmd.sock \
//!     --state-dir /tmp/vpnmd --group vpn
//! cargo run -p anyd-ipc --example vpnm -- --address unix:/tmp/vpnmd.sock watch &
//! cargo run -p anyd-ipc --example vpnm -- --address unix:/tmp/vpnmd.sock connect office
//! cargo run -p anyd-ipc --example vpnm -- --address unix:/tmp/vpnmd.sock log
//! ```
//!
//! Under systemd it runs from the units in `contrib/systemd/`: the socket
//! is passed in (socket activation), readiness and status go to the
//! manager, SIGTERM drains calls in progress.
//!
//! A real VPN daemon needs `CAP_NET_ADMIN` (tunnels, routes) and nothing
//! else of root's. Started as root without a service manager, `--user
//! NAME` binds the socket as root, then serves as NAME with that one
//! capability (`Appd::run_as` with `keep_capabilities`); the state
//! directory must then be one NAME may write (`install -d -o NAME
//! /var/lib/vpnmd`). Under systemd the unit does the same with
//! `DynamicUser=` and `AmbientCapabilities=`, and the daemon never runs
//! as root at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyd::{Allow, Appd, Capability, Fd, Hub, Items, Peer};
// The interface vpnm calls: its types, its errors, the trait this daemon
// implements, and the service that mounts it.
use vpnm_api::{Change, Event, State, Tunnel, VpnError, Vpnm, VpnmService, CHANGERS};

struct Vpnmd {
    state_file: PathBuf,
    /// Every change, a line each (`1712345678 office up uid 1000`), for
    /// the daemon's user alone: who brought which tunnel up or down, and when, is
    /// more than the status tells everyone. Members of the group read it
    /// through `open_log()`.
    log_file: PathBuf,
    /// Calls run concurrently, one thread per client: the state file is
    /// read and written, and the log appended to, under this lock.
    lock: Mutex<()>,
    /// Every change, to every watcher. Published under `lock`, so that
    /// watchers see the changes in the order the state file went through
    /// them.
    events: Hub<Event>,
}

impl Vpnmd {
    fn load(&self) -> Result<State, VpnError> {
        match std::fs::read(&self.state_file) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| VpnError::Corrupt(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(VpnError::Io(e.to_string())),
        }
    }

    /// Writes the new state atomically: a crash never leaves half a file.
    fn store(&self, state: &State) -> Result<(), VpnError> {
        let tmp = self.state_file.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(state).expect("the state serializes");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.state_file))
            .map_err(|e| VpnError::Io(e.to_string()))
    }

    /// SIGHUP: re-reads the state file (after an operator edited it, say)
    /// and reports what it holds, or that it is unreadable.
    fn reload(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match self.load() {
            Ok(state) => {
                tracing::info!(tunnels = state.tunnels.len(), "state file re-read");
                let _ =
                    anyd::systemd::notify_status(&format!("{} tunnel(s) up", state.tunnels.len()));
            }
            Err(e) => tracing::error!(error = %e, "cannot re-read the state file"),
        }
    }

    /// Appends a change to the log; called under `lock`, after the state
    /// file holds the change. A log that cannot be written is reported
    /// in the daemon's own log but fails nothing: the change is made, and
    /// the caller must not be told otherwise.
    fn record(&self, change: Change, profile: &str, peer: &Peer, at: u64) {
        let who = peer
            .uid()
            .map_or_else(|| "uid unknown".to_owned(), |uid| format!("uid {uid}"));
        let line = format!("{at} {profile} {} {who}\n", change.word());
        let appended =
            open_log_for_append(&self.log_file).and_then(|mut log| log.write_all(line.as_bytes()));
        if let Err(e) = appended {
            tracing::error!(error = %e, "cannot append to the change log");
        }
    }

    /// Tells the watchers and the log; called under `lock`, after the
    /// state file holds the change.
    fn publish(&self, change: Change, profile: String, peer: &Peer, at: u64) {
        self.record(change, &profile, peer, at);
        self.events.publish(Event {
            change,
            profile,
            uid: peer.uid(),
            at,
        });
    }
}

/// The endpoints: what vpnm calls, as the interface declares them.
impl Vpnm for Vpnmd {
    fn status(&self) -> Result<State, VpnError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.load()
    }

    /// Every change from now on, as it happens. Read-only, so anyone may
    /// watch, as anyone may ask for the status. A watcher that falls more
    /// than the hub's capacity behind gets a `Lagged` error and asks for
    /// the status afresh.
    fn watch(&self, peer: &Peer) -> Items<Event> {
        let events = self.events.subscribe();
        // Logged once subscribed: from here on, no change is missed.
        tracing::info!(uid = ?peer.uid(), "watching");
        events
    }

    /// Hands the caller a descriptor to the change log, opened read only.
    /// The file is the daemon's alone (0600): the caller could not open it, and
    /// the policy (the group rule of connect and disconnect) decides who
    /// gets the descriptor instead. Read only, because permissions are
    /// checked when a file is opened, not when a descriptor is used: what
    /// the daemon opens is what the caller may do with it. A descriptor
    /// rather than the text in the reply: the caller reads a log of any
    /// length at its own pace, and no reply grows with it.
    fn open_log(&self, peer: &Peer) -> Result<Fd, VpnError> {
        let log = File::open(&self.log_file)
            .map_err(|e| VpnError::Io(format!("cannot open the log: {e}")))?;
        tracing::info!(uid = ?peer.uid(), "log handed over");
        Ok(Fd::from(log))
    }

    fn up(&self, profile: String, peer: &Peer) -> Result<State, VpnError> {
        if profile.is_empty()
            || !profile
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(VpnError::BadProfile(profile));
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.load()?;
        if state.tunnels.contains_key(&profile) {
            return Err(VpnError::AlreadyUp(profile));
        }
        let since = now();
        state.tunnels.insert(
            profile.clone(),
            Tunnel {
                by_uid: peer.uid(),
                since,
            },
        );
        self.store(&state)?;
        tracing::info!(profile, uid = ?peer.uid(), "tunnel up");
        let _ = anyd::systemd::notify_status(&format!("{} tunnel(s) up", state.tunnels.len()));
        self.publish(Change::Up, profile, peer, since);
        Ok(state)
    }

    fn down(&self, profile: String, peer: &Peer) -> Result<State, VpnError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.load()?;
        if state.tunnels.remove(&profile).is_none() {
            return Err(VpnError::NotConnected(profile));
        }
        self.store(&state)?;
        tracing::info!(profile, uid = ?peer.uid(), "tunnel down");
        let _ = anyd::systemd::notify_status(&format!("{} tunnel(s) up", state.tunnels.len()));
        self.publish(Change::Down, profile, peer, now());
        Ok(state)
    }
}

/// Opens the change log to append to, creating it for the daemon's user
/// alone. The mode is set on an existing file too: a log left with a
/// wider mode (by hand, or by an older version) would let everyone read
/// what the policy keeps to the group.
fn open_log_for_append(path: &Path) -> std::io::Result<File> {
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    log.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(log)
}

/// Seconds since the epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Options {
    address: String,
    state_dir: PathBuf,
    group: Option<String>,
    pid_file: Option<PathBuf>,
    user: Option<String>,
}

const USAGE: &str =
    "usage: vpnmd [--address ADDR] [--state-dir DIR] [--group NAME] [--pid-file PATH]
             [--user NAME]

  --address ADDR    where to listen (default unix:/run/vpnmd.sock); a socket
                    passed by systemd is used instead when present
  --state-dir DIR   where the state file lives (default /var/lib/vpnmd)
  --group NAME      members of this group (and root) may connect,
                    disconnect and read the change log; without it, only
                    root may; anyone may ask for the status and watch
                    the changes
  --pid-file PATH   hold a locked pid file
  --user NAME       started as root: once the socket is bound, serve as
                    user NAME, keeping CAP_NET_ADMIN and no other
                    capability; the state directory must be NAME's";

fn options() -> Options {
    let mut o = Options {
        address: "unix:/run/vpnmd.sock".into(),
        state_dir: "/var/lib/vpnmd".into(),
        group: None,
        pid_file: None,
        user: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("vpnmd: {name} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--address" => o.address = value("--address"),
            "--state-dir" => o.state_dir = value("--state-dir").into(),
            "--group" => o.group = Some(value("--group")),
            "--pid-file" => o.pid_file = Some(value("--pid-file").into()),
            "--user" => o.user = Some(value("--user")),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => {
                eprintln!("vpnmd: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    o
}

fn main() -> anyd::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a journal or a log file gets text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let o = options();
    let vpn = std::sync::Arc::new(Vpnmd {
        state_file: o.state_dir.join("state.json"),
        log_file: o.state_dir.join("changes.log"),
        lock: Mutex::new(()),
        // Changes are rare; a watcher this far behind has stopped reading.
        events: Hub::new(256),
    });
    let state = vpn.clone();
    let changers = match &o.group {
        Some(g) => Allow::group(g.as_str()).or(Allow::root()),
        None => Allow::root(),
    };
    let reloaded = vpn.clone();
    let mut appd = Appd::new()
        .mount(VpnmService::from_arc(vpn))
        .on_reload(move || reloaded.reload())
        // Everyone may reach the socket; the policy below is the gate.
        .socket_mode(0o666);
    // Who may change the tunnels may read who changed them; to others
    // these endpoints do not exist.
    for name in CHANGERS {
        appd = appd.restrict_endpoint(name, changers.clone());
    }
    if let Some(path) = o.pid_file {
        appd = appd.pid_file(path);
    }
    if let Some(user) = o.user {
        // What tunnels and routes need; every other capability goes.
        appd = appd.run_as(user).keep_capabilities([Capability::NetAdmin]);
    }
    let server = appd.bind(o.address.as_str())?;
    // Made now, as the user the daemon serves as, so that it owns them;
    // the log before the first change, so that open_log() finds one
    // (empty), with its mode from the start.
    std::fs::create_dir_all(&o.state_dir)?;
    open_log_for_append(&state.log_file)?;
    drop(state);
    eprintln!("vpnmd: serving on {}", server.local_address());
    server.serve()
}
