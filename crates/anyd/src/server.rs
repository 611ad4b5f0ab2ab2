//! `Appd`: the daemon. A registry of endpoints, a listener, and one thread
//! per connection.
//!
//! Why threads and not tasks: a call is a blocking read, a handler, a
//! blocking write; on a dedicated thread that is exactly the floor's path
//! (no reactor, no wake-up, no hand-off), and a handler that blocks holds up
//! nobody else by construction. tokio is there for what needs it: async
//! handlers (run on a small runtime from the connection thread) and signals.
//!
//! What a connection holds is bounded in time and in memory: each frame
//! and each write of replies has a deadline as a whole (the idle timeout),
//! and the buffers of all connections together draw on one memory budget
//! beyond a small allowance each (see `budget`); a connection that would go
//! over is closed.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyd_wire::codec::{
    decode_head, encode_end_session, encode_reply_error, DecodeError, DecodeLimits,
};
use anyd_wire::frame;
use anyd_wire::handshake::{Digest, HandshakeOptions};
use anyd_wire::message::Head;

use crate::address::{Address, ToAddress};
use crate::admission::{Caller, Connections, Limits, Throttle};
use crate::budget::{Budget, Charge};
use crate::daemon::{self, PidFile};
use crate::error::{Error, RemoteError, Result};
use crate::framed::{self, Framed, ReadError};
use crate::handler::Handler;
use crate::policy::Allow;
use crate::registry::Registry;
use crate::systemd;
use crate::transport::{Listener, Peer, SocketFile, Stream};

/// Limits and options of a daemon; every one has a default.
#[derive(Debug, Clone)]
struct Config {
    authkey: Option<Vec<u8>>,
    handshake: HandshakeOptions,
    max_frame: usize,
    /// `None`: [`default_memory_budget`] of `max_frame`.
    memory_budget: Option<usize>,
    handshake_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_connections: usize,
    max_connections_per_uid: Option<usize>,
    reserved_connections: Option<usize>,
    max_handshakes: usize,
    shutdown_deadline: Duration,
    socket_file: SocketFile,
    allow_remote_without_authkey: bool,
    handle_signals: bool,
    decode_limits: DecodeLimits,
    socket_activation: bool,
    socket_name: Option<String>,
    pid_file: Option<PathBuf>,
    run_as: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            authkey: None,
            handshake: HandshakeOptions::default(),
            max_frame: frame::DEFAULT_MAX_FRAME,
            memory_budget: None,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_connections: 1024,
            max_connections_per_uid: None,
            reserved_connections: None,
            max_handshakes: 64,
            shutdown_deadline: Duration::from_secs(5),
            socket_file: SocketFile::default(),
            allow_remote_without_authkey: false,
            handle_signals: true,
            decode_limits: DecodeLimits::default(),
            socket_activation: true,
            socket_name: None,
            pid_file: None,
            run_as: None,
        }
    }
}

/// A daemon under construction: its endpoints and settings.
///
/// ```no_run
/// use anyd::Appd;
///
/// fn main() -> anyd::Result<()> {
///     Appd::new()
///         .api("echo(arg)", |arg: String| arg)
///         .doc("Returns its argument.")
///         .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
///         .bind("unix:/tmp/echod.sock")?
///         .serve() // until SIGTERM or SIGINT
/// }
/// ```
#[must_use = "an Appd does nothing until bound and served"]
pub struct Appd {
    registry: Registry,
    config: Config,
    on_reload: Option<Reload>,
}

/// What SIGHUP runs.
type Reload = Arc<dyn Fn() + Send + Sync>;

impl Default for Appd {
    fn default() -> Self {
        Self::new()
    }
}

impl Appd {
    /// The endpoint table, for the `#[anyd::api]` glue in `api.rs`.
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

impl Appd {
    /// A daemon with no endpoints yet (the reserved `anyd.ping`,
    /// `anyd.version` and `anyd.endpoints` are always there).
    pub fn new() -> Self {
        Appd {
            registry: Registry::default(),
            config: Config::default(),
            on_reload: None,
        }
    }

    /// Registers an endpoint.
    ///
    /// `signature` is the name, optionally with the parameter names in
    /// parentheses: `"get_sum(arg1, arg2)"`. With names, callers may pass
    /// arguments by keyword; without (`"echo"`), only by position. A
    /// [`Peer`](crate::Peer) parameter is not a wire argument and takes no
    /// name.
    ///
    /// `handler` is a function or closure, plain or async (see
    /// [`Handler`]).
    ///
    /// # Panics
    ///
    /// If the signature is malformed, names a reserved `anyd.` endpoint or
    /// an endpoint already registered, or declares a different number of
    /// names than the handler has wire parameters.
    pub fn api<M, H: Handler<M>>(mut self, signature: &str, handler: H) -> Self {
        self.registry.add(signature, handler);
        self
    }

    /// Documents the endpoint registered last (shown by `anyd.endpoints`).
    ///
    /// # Panics
    ///
    /// If no endpoint was registered yet.
    pub fn doc(mut self, doc: &str) -> Self {
        self.registry.document_last(doc);
        self
    }

    /// Admits `rule`'s callers to the daemon; everyone else gets, for
    /// every call, the reply to an endpoint that does not exist
    /// (`NotImplementedError` naming it), and the daemon logs at info
    /// level which rule denied whom. Several calls widen the rule
    /// (any of them admits). Without any, whoever can connect may call.
    ///
    /// ```no_run
    /// use anyd::{Allow, Appd};
    /// # fn main() -> anyd::Result<()> {
    /// Appd::new()
    ///     .allow(Allow::group("vpn").or(Allow::root()))
    ///     .api("status()", || "up")
    ///     .api("disconnect()", || "down")
    ///     .restrict(Allow::root())
    ///     .bind("unix:/run/vpnd.sock")?
    ///     .serve()
    /// # }
    /// ```
    pub fn allow(mut self, rule: Allow) -> Self {
        self.registry.allow(rule);
        self
    }

    /// Restricts the endpoint registered last to `rule`'s callers, on top
    /// of the daemon-wide rule. Callers who may not call it get the reply
    /// to an endpoint that does not exist (`NotImplementedError` naming
    /// it: they cannot tell the two apart), before any argument of theirs
    /// is decoded, and do not see it in `anyd.endpoints`.
    ///
    /// # Panics
    ///
    /// If no endpoint was registered yet.
    pub fn restrict(mut self, rule: Allow) -> Self {
        self.registry.restrict_last(rule);
        self
    }

    /// Requires clients to prove they know `key` (Python's `authkey`)
    /// before anything they send is decoded.
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.config.authkey = Some(key.into());
        self
    }

    /// The digest named in our challenges (default SHA-256).
    pub fn digest(mut self, digest: Digest) -> Self {
        self.config.handshake.digest = digest;
        self
    }

    /// Refuses clients that can only answer with MD5 (Python 3.11 and
    /// older). Default: accepted.
    pub fn require_modern_digest(mut self, yes: bool) -> Self {
        self.config.handshake.require_modern = yes;
        self
    }

    /// The largest frame a client may send (default 16 MiB); a larger
    /// header closes the connection before anything is allocated.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// How many bytes all connections together may hold for frames in
    /// progress and replies not yet written, beyond a small allowance of
    /// each (default 256 MiB, or twice [`max_frame`](Self::max_frame) if
    /// that is more).
    ///
    /// The allowance, 64 KiB for a request and 128 KiB for replies, is
    /// never counted: a connection that sends and gets messages up to
    /// those sizes is never refused for memory, whatever others do. A
    /// connection whose buffer would grow past what is left of the budget
    /// (a large request arriving, a large reply made) is closed at once,
    /// and what it held given back; the others go on. A client that sends
    /// large frames and stalls, or reads large replies slowly, holds its
    /// share until its idle timeout at most.
    ///
    /// Without the budget, each connection could pin a frame of up to
    /// `max_frame` (16 MiB by default), some 16 GiB at the connection cap;
    /// the default admits sixteen frames at the default limit at once, and
    /// at least one call at the limit whatever it is. Set it lower than
    /// twice `max_frame` and the largest calls cannot be served.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.config.memory_budget = Some(bytes);
        self
    }

    /// How long a client has to complete the handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// How long a session may stay silent before it is closed (default 10
    /// minutes; `None` for never). The rest of a request is due within as
    /// long of its first bytes, and a reply (or the replies to pipelined
    /// requests, written together) within as long of the start of its
    /// write, however slowly the client reads: a client that reads too
    /// slowly is cut, and the buffers its session held given back.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How many connections are served at once (default 1024); more are
    /// closed as soon as they are accepted. Part of them is kept for root
    /// and the daemon's user ([`reserved_connections`](Self::reserved_connections)),
    /// and each other user may hold only its share
    /// ([`max_connections_per_uid`](Self::max_connections_per_uid)).
    ///
    /// Each connection holds one file descriptor, so [`bind`](Self::bind)
    /// raises the process's soft limit on open files (`RLIMIT_NOFILE`,
    /// often 1024) towards what this many connections need, up to the
    /// hard limit, and logs a warning when the hard limit is too low.
    /// Should the descriptors run out all the same, new connections are
    /// closed at once (with an error in the log) rather than left waiting
    /// in the listen backlog.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// How many connections one user (uid, on a Unix socket) other than
    /// root and the daemon's own user may hold at once (default: an eighth
    /// of [`max_connections`](Self::max_connections), 128 of 1024); more
    /// from that user are closed as soon as they are accepted. Like
    /// sd-varlink's and dbus-daemon's per-user limits: one user's flood of
    /// idle connections does not take everyone else's places.
    ///
    /// Root and the daemon's user (see [`Allow::same_user`]) are not
    /// capped per uid. On TCP there is no uid: connections are capped in
    /// all, and those still in the authkey handshake by
    /// [`max_handshakes`](Self::max_handshakes).
    pub fn max_connections_per_uid(mut self, n: usize) -> Self {
        self.config.max_connections_per_uid = Some(n);
        self
    }

    /// How many of the [`max_connections`](Self::max_connections) places
    /// only root and the daemon's own user may take (default: an eighth,
    /// 128 of 1024): however many users flood a Unix socket, they share
    /// the rest, and root can still connect. Not applied on TCP, where
    /// callers have no uid.
    pub fn reserved_connections(mut self, n: usize) -> Self {
        self.config.reserved_connections = Some(n);
        self
    }

    /// With an [`authkey`](Self::authkey): how many connections may be in
    /// the handshake at once (default 64), per uid on a Unix socket and in
    /// all on TCP; root and the daemon's user are not counted. Past it, the
    /// oldest such connection is cut to let the new one in (as OpenSSH's
    /// `MaxStartups` caps unauthenticated connections): a client that
    /// knows the key is through in a round trip, so a flood of clients
    /// that never answer can neither fill
    /// [`max_connections`](Self::max_connections) nor keep key holders out.
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.config.max_handshakes = n.max(1);
        self
    }

    /// How long shutdown waits for calls in progress (default 5 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }

    /// The permissions of a socket file (default `0o600`: the daemon's user
    /// only).
    pub fn socket_mode(mut self, mode: u32) -> Self {
        self.config.socket_file.mode = mode;
        self
    }

    /// The group of a socket file (with a mode such as `0o660`, lets that
    /// group's members connect).
    pub fn socket_group(mut self, gid: u32) -> Self {
        self.config.socket_file.group = Some(gid);
        self
    }

    /// Allows a TCP listener on a non-loopback address without an authkey
    /// (default: refused, since anyone on the network could call).
    pub fn allow_remote_without_authkey(mut self, yes: bool) -> Self {
        self.config.allow_remote_without_authkey = yes;
        self
    }

    /// Whether [`Server::serve`] shuts down on SIGTERM and SIGINT (default
    /// true).
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.config.handle_signals = yes;
        self
    }

    /// Whether [`bind`](Self::bind) uses a listening socket passed by a
    /// service manager (systemd socket activation: `LISTEN_FDS`,
    /// `LISTEN_PID`) instead of binding the address (default true). The
    /// address then only matters when the daemon runs on its own.
    ///
    /// The passed descriptors are checked before the daemon opens
    /// anything (call [`bind`](Self::bind) before opening files of your
    /// own): a `LISTEN_FDS` that claims a descriptor which is not a
    /// listening socket is an error, not a file taken for a socket.
    pub fn socket_activation(mut self, yes: bool) -> Self {
        self.config.socket_activation = yes;
        self
    }

    /// Which of the sockets a service manager passes to use: the one named
    /// `name` (`FileDescriptorName=` in the `.socket` unit, systemd's
    /// `LISTEN_FDNAMES`). Without it the daemon uses the only socket
    /// passed, or the first of several with a warning. If sockets are
    /// passed and none has this name, [`bind`](Self::bind) fails naming
    /// those it got; the others are closed.
    pub fn socket_name(mut self, name: impl Into<String>) -> Self {
        self.config.socket_name = Some(name.into());
        self
    }

    /// Holds a pid file under an exclusive lock while the daemon runs: a
    /// second instance refuses to start ([`Error::AlreadyRunning`] naming
    /// the running pid), and the file is removed on exit.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.pid_file = Some(path.into());
        self
    }

    /// Switches the whole process to `user` (its uid, gid and groups)
    /// right after binding, so that a daemon started as root to create its
    /// socket does not keep root while it serves.
    ///
    /// [`Allow::same_user`] then means `user`. The socket file and the pid
    /// file are removed on exit as that user, so keep them in a directory
    /// it may write to (one it owns, such as systemd's
    /// `RuntimeDirectory=`); elsewhere a warning at bind says they will be
    /// left behind (harmlessly: the next start replaces both).
    pub fn run_as(mut self, user: impl Into<String>) -> Self {
        self.config.run_as = Some(user.into());
        self
    }

    /// Runs `hook` on SIGHUP (when signals are handled), on a runtime
    /// thread: the usual "reload your configuration".
    pub fn on_reload(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_reload = Some(Arc::new(hook));
        self
    }

    /// Whether the message of a panicking handler reaches its caller
    /// (default false). Either way the caller gets a `RuntimeError` and the
    /// daemon's log keeps the message; without this the reply says only
    /// that the endpoint failed, since a panic message may tell a caller
    /// what it should not know (a path, a value, the daemon's state).
    pub fn panic_details(mut self, yes: bool) -> Self {
        self.registry.panic_details = yes;
        self
    }

    /// Limits on pickle requests (nesting, memo, size).
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.config.decode_limits = limits;
        self
    }

    /// Binds the address: the daemon is reachable (connections queue)
    /// once this returns, and serves once [`Server::serve`] runs.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] if a daemon serves the address,
    /// [`Error::Config`] for a bad address, a path that is not a socket, a
    /// non-loopback TCP address without an authkey, or descriptors passed
    /// by a service manager that are not what `LISTEN_FDS` promises (each
    /// a listening stream socket), [`Error::Io`] otherwise.
    ///
    /// A TCP address without an authkey is logged as a warning: TCP
    /// carries no credentials, so on loopback every local user can call.
    pub fn bind(mut self, address: impl ToAddress) -> Result<Server> {
        // Sockets passed by a service manager first, before this process
        // opens anything (the user database, the pid file) that could take
        // a descriptor number LISTEN_FDS claims.
        let inherited = if self.config.socket_activation {
            systemd::take_listen_fds()?
        } else {
            Vec::new()
        };
        let address = address.to_address()?;
        // "The daemon's user" is the one it serves calls as: after
        // `run_as`, that user and not root. Resolved before the socket is
        // touched, so that a bad rule fails first.
        let serving_uid = match &self.config.run_as {
            Some(user) => {
                crate::users::user_by_name(user)?
                    .ok_or_else(|| Error::Config(format!("no user named {user:?}")))?
                    .uid
            }
            None => rustix::process::geteuid().as_raw(),
        };
        self.registry.resolve_policies(serving_uid)?;
        // The pid file first: a second instance must stop before it
        // touches the socket.
        let pid_file = match &self.config.pid_file {
            Some(path) => Some(PidFile::acquire(path)?),
            None => None,
        };
        let (listener, local) = match choose_inherited(
            inherited,
            self.config.socket_name.as_deref(),
        )? {
            Some((fd, name)) => {
                let (listener, local) = Listener::from_fd(fd)?;
                tracing::info!(address = %local, name, "using the socket passed by the service manager");
                (listener, local)
            }
            None => {
                let listener = Listener::bind(&address, &self.config.socket_file)?;
                let local = listener.local_address(&address);
                (listener, local)
            }
        };
        if !listener.is_local()
            && self.config.authkey.is_none()
            && !self.config.allow_remote_without_authkey
        {
            return Err(Error::Config(format!(
                "{local} is reachable from other hosts and no authkey is set; \
                 set one, or allow_remote_without_authkey(true)"
            )));
        }
        if matches!(listener, Listener::Tcp(_)) && self.config.authkey.is_none() {
            // TCP carries no credentials: no policy can tell callers apart.
            if listener.is_local() {
                tracing::warn!(
                    address = %local,
                    "TCP without an authkey: every local user can call this daemon; \
                     set an authkey, or listen on a Unix socket"
                );
            } else {
                tracing::warn!(
                    address = %local,
                    "TCP without an authkey: anyone who can reach this address can \
                     call this daemon (allow_remote_without_authkey)"
                );
            }
        }
        let limits = self.limits(&listener);
        make_room_for(self.config.max_connections);
        let budget = self
            .config
            .memory_budget
            .unwrap_or_else(|| default_memory_budget(self.config.max_frame));
        if budget < self.config.max_frame.saturating_mul(2) {
            tracing::warn!(
                memory_budget = budget,
                max_frame = self.config.max_frame,
                "the memory budget is less than twice max_frame: the largest calls will be refused"
            );
        }
        if let Some(user) = &self.config.run_as {
            let leftovers: Vec<&Path> = listener
                .socket_path()
                .into_iter()
                .chain(pid_file.as_ref().map(PidFile::path))
                .collect();
            daemon::drop_privileges(user, &leftovers)?;
        }
        let (wake_rx, wake_tx) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)?;
        Ok(Server {
            listener,
            address: local,
            shared: Arc::new(Shared {
                registry: self.registry,
                config: self.config,
                stopping: AtomicBool::new(false),
                wake_tx,
                conns: Mutex::new(Connections::new(limits)),
                conns_changed: Condvar::new(),
                next_id: AtomicU64::new(0),
                budget: Arc::new(Budget::new(budget)),
                serving_uid,
                refusals: Mutex::new(Throttle::new(Duration::from_secs(1))),
            }),
            wake_rx,
            on_reload: self.on_reload,
            pid_file,
        })
    }
}

impl Appd {
    /// The connection caps, from the settings and the listener.
    fn limits(&self, listener: &Listener) -> Limits {
        let max = self.config.max_connections;
        let share = max / 8;
        Limits {
            max,
            per_uid: self.config.max_connections_per_uid.unwrap_or(share.max(1)),
            // No caller has a uid on TCP: a reserve would be no one's.
            reserved: match listener {
                Listener::Tcp(_) => 0,
                Listener::Unix { .. } => self.config.reserved_connections.unwrap_or(share).min(max),
            },
            handshakes: self.config.max_handshakes,
        }
    }
}

/// The passed socket to serve on: the one named `name`, else the only one
/// (or the first, with a warning naming the rest).
fn choose_inherited(
    passed: Vec<(std::os::fd::OwnedFd, String)>,
    name: Option<&str>,
) -> Result<Option<(std::os::fd::OwnedFd, String)>> {
    if passed.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = passed.iter().map(|(_, n)| format!("{n:?}")).collect();
    match name {
        Some(wanted) => passed
            .into_iter()
            .find(|(_, n)| n == wanted)
            .map(Some)
            .ok_or_else(|| {
                Error::Config(format!(
                    "the service manager passed sockets named {}, none named {wanted:?}",
                    names.join(", ")
                ))
            }),
        None => {
            if passed.len() > 1 {
                tracing::warn!(
                    sockets = names.join(", "),
                    "several sockets were passed; serving on the first \
                     (Appd::socket_name chooses one)"
                );
            }
            Ok(passed.into_iter().next())
        }
    }
}

/// File descriptors a connection holds: its stream (shutdown reaches it
/// through a weak reference, see [`Stream::share`]).
const FDS_PER_CONNECTION: u64 = 1;

/// File descriptors for everything but connections: the listener, the
/// wake pipe, the spare descriptor of the accept loop, the runtime, the
/// pid file, and what handlers open.
const FDS_SPARE: u64 = 64;

/// Raises the soft limit on open files to what `connections` need, as far
/// as the hard limit allows. Without it the default soft limit of 1024
/// runs out at some 480 connections and `accept` fails while clients wait,
/// well before the connection cap would refuse them politely. Raising the
/// soft limit up to the hard one is what the limit pair is for (systemd
/// sets a soft 1024 precisely so that programs which can use more ask).
fn make_room_for(connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};

    let wanted = (connections as u64)
        .saturating_mul(FDS_PER_CONNECTION)
        .saturating_add(FDS_SPARE);
    let mut limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let new = wanted.min(hard);
    if new > soft {
        limit.current = Some(new);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, soft, wanted, "could not raise the limit on open files");
            return;
        }
        tracing::debug!(from = soft, to = new, "raised the soft limit on open files");
    }
    if new < wanted {
        let fit = new.saturating_sub(FDS_SPARE) / FDS_PER_CONNECTION;
        tracing::warn!(
            max_connections = connections,
            open_files = new,
            "the hard limit on open files allows about {fit} connections, fewer than max_connections"
        );
    }
}

/// The memory budget unless the program sets one: 256 MiB, sixteen frames
/// at the default limit, or two frames at `max_frame` (a request and its
/// reply) if that is more.
fn default_memory_budget(max_frame: usize) -> usize {
    (256 << 20usize).max(max_frame.saturating_mul(2))
}

/// What the listener and the connection threads share.
struct Shared {
    registry: Registry,
    config: Config,
    stopping: AtomicBool,
    wake_tx: OwnedFd,
    /// The live connections: who may have one more, and how shutdown
    /// reaches them.
    conns: Mutex<Connections>,
    conns_changed: Condvar,
    next_id: AtomicU64,
    /// Bytes connections hold for frames in progress and replies not yet
    /// written, beyond their allowances ([`Appd::memory_budget`]).
    budget: Arc<Budget>,
    /// The daemon's own user (after `run_as`): with root, may use the
    /// reserved connections.
    serving_uid: u32,
    /// Keeps refusals under a flood to a log line a second.
    refusals: Mutex<Throttle>,
}

/// A bound daemon, ready to serve.
#[must_use = "a Server does nothing until served"]
pub struct Server {
    listener: Listener,
    address: Address,
    shared: Arc<Shared>,
    wake_rx: OwnedFd,
    on_reload: Option<Reload>,
    /// Held (locked) until the server is gone.
    pid_file: Option<PidFile>,
}

/// Stops a serving daemon from anywhere (another thread, a handler), and
/// says how many connections it serves.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("stopping", &self.shared.stopping.load(Ordering::Relaxed))
            .finish()
    }
}

impl ShutdownHandle {
    /// Starts a graceful shutdown: stop accepting, let calls in progress
    /// finish (up to the deadline), remove the socket file, and return from
    /// [`Server::serve`]. Returns at once.
    pub fn shutdown(&self) {
        if !self.shared.stopping.swap(true, Ordering::SeqCst) {
            // A full pipe already holds a wake-up; nothing else can fail.
            let _ = rustix::io::write(&self.shared.wake_tx, &[1]);
        }
    }

    /// How many connections the daemon holds right now: from the moment
    /// one is accepted (before its handshake) until its thread has let it
    /// go. Refused connections (over [`Appd::max_connections`]) never
    /// count. For health endpoints and status lines, and for checking that
    /// clients that vanished cost nothing once gone.
    pub fn connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// A daemon serving on a background thread (see [`Server::spawn`]).
#[derive(Debug)]
pub struct Running {
    address: Address,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Running {
    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// A handle that stops the daemon.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// How many connections the daemon holds right now (see
    /// [`ShutdownHandle::connections`]).
    pub fn connections(&self) -> usize {
        self.handle.connections()
    }

    /// Shuts down gracefully and waits until the daemon has stopped.
    ///
    /// # Errors
    ///
    /// What [`Server::serve`] returned.
    pub fn shutdown(mut self) -> Result<()> {
        self.handle.shutdown();
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Config("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        let _ = self.join();
    }
}

impl Server {
    /// The address clients connect to (with the port the system chose for
    /// `tcp:...:0`).
    pub fn local_address(&self) -> &Address {
        &self.address
    }

    /// A handle that stops [`serve`](Self::serve).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves on a background thread, with signal handling off (the
    /// program owns its signals); for tests, tools and embedding.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the thread cannot be started.
    pub fn spawn(self) -> Result<Running> {
        let address = self.address.clone();
        let handle = self.shutdown_handle();
        let thread = std::thread::Builder::new()
            .name("anyd-server".into())
            .spawn(move || self.serve_with(false))?;
        Ok(Running {
            address,
            handle,
            thread: Some(thread),
        })
    }

    /// Serves until shut down by SIGTERM, SIGINT (unless
    /// [`Appd::handle_signals`] turned that off) or a [`ShutdownHandle`];
    /// then stops accepting, lets calls in progress finish up to the
    /// deadline, and removes the socket file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the runtime for async handlers and signals cannot
    /// start, or the listener fails for good.
    pub fn serve(self) -> Result<()> {
        let signals = self.shared.config.handle_signals;
        self.serve_with(signals)
    }

    fn serve_with(self, signals: bool) -> Result<()> {
        // One worker: async handlers are driven from their connection
        // threads by `block_on`; the worker runs timers, I/O and signals.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("anyd-runtime")
            .enable_all()
            .build()?;
        if signals {
            use tokio::signal::unix::{signal, SignalKind};
            let handle = self.shutdown_handle();
            let _guard = runtime.enter();
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let mut hup = signal(SignalKind::hangup())?;
            let on_reload = self.on_reload.clone();
            runtime.spawn(async move {
                loop {
                    let which = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                        _ = hup.recv() => {
                            tracing::info!("SIGHUP: reloading");
                            if let Some(hook) = &on_reload {
                                let hook = hook.clone();
                                let _ = tokio::task::spawn_blocking(move || hook()).await;
                            }
                            continue;
                        }
                    };
                    tracing::info!("{which}: shutting down");
                    handle.shutdown();
                    break;
                }
            });
        }
        if let Some(every) = systemd::watchdog_interval() {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    systemd::ping_watchdog();
                }
            });
        }
        tracing::info!(address = %self.address, endpoints = self.shared.registry.infos().len(), "listening");
        systemd::notify_ready(&format!("serving on {}", self.address));
        daemon::daemonize_ready();
        let result = self.accept_loop(runtime.handle());
        systemd::notify_stopping();
        let Server {
            listener,
            address,
            shared,
            pid_file,
            ..
        } = self;
        // Closing the listener refuses new connections and removes the
        // socket file.
        drop(listener);
        drain(&shared);
        drop(pid_file);
        runtime.shutdown_background();
        tracing::info!(%address, "stopped");
        result
    }

    fn accept_loop(&self, runtime: &tokio::runtime::Handle) -> Result<()> {
        use rustix::event::{poll, PollFd, PollFlags};
        self.listener.set_nonblocking(true)?;
        // A descriptor held in reserve: out of descriptors, closing it
        // lets `accept` take a pending connection, to close it at once
        // rather than leave its client waiting in the backlog (the trick
        // of libev and nginx).
        let mut spare = spare_descriptor(&self.wake_rx);
        loop {
            let mut fds = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&self.wake_rx, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            loop {
                match self.listener.accept() {
                    Ok(stream) => self.start_connection(stream, runtime),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                            && spare.is_some() =>
                    {
                        drop(spare.take());
                        let refused = self.listener.accept().map(drop);
                        // Reopened once the connection is closed, with the
                        // number it freed.
                        spare = spare_descriptor(&self.wake_rx);
                        match refused {
                            Ok(()) => {
                                self.log_refusal(|held| {
                                    tracing::error!(
                                        error = %e,
                                        refused_before = held,
                                        "out of file descriptors: connection closed at once"
                                    );
                                });
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => {}
                        }
                    }
                    Err(e) => {
                        // Out of descriptors or memory: nothing to do but
                        // wait for connections to end; poll would report
                        // the pending connection again at once.
                        tracing::error!(error = %e, "accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }

    /// Logs a refusal through the throttle: `log` gets how many were
    /// held back since the last line.
    fn log_refusal(&self, log: impl FnOnce(u64)) {
        let mut throttle = self
            .shared
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(held) = throttle.let_through() {
            drop(throttle);
            log(held);
        }
    }

    fn start_connection(&self, stream: Stream, runtime: &tokio::runtime::Handle) {
        let shared = &self.shared;
        let peer = Peer::of(&stream);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let caller = Caller {
            uid: peer.uid(),
            privileged: peer
                .uid()
                .is_some_and(|uid| uid == 0 || uid == shared.serving_uid),
        };
        let (stream, socket) = stream.share();
        let admitted = shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(id, caller, shared.config.authkey.is_some(), socket);
        match admitted {
            Ok(a) if a.cut => self.log_refusal(|held| {
                tracing::info!(
                    peer = peer.address(),
                    uid = peer.uid(),
                    limit = shared.config.max_handshakes,
                    refused_before = held,
                    "too many handshakes in progress: the oldest was cut"
                );
            }),
            Ok(_) => {}
            Err(why) => {
                self.log_refusal(|held| {
                    tracing::warn!(
                        peer = peer.address(),
                        uid = peer.uid(),
                        refused_before = held,
                        "connection refused: {}",
                        why.as_str()
                    );
                });
                return;
            }
        }
        let thread_shared = shared.clone();
        let runtime = runtime.clone();
        let spawned = std::thread::Builder::new()
            .name("anyd-conn".into())
            .spawn(move || {
                let shared = thread_shared;
                tracing::debug!(peer = peer.address(), "session start");
                let why = serve_connection(&shared, id, stream, &peer, &runtime);
                tracing::debug!(peer = peer.address(), end = why, "session end");
                let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                conns.remove(id);
                shared.conns_changed.notify_all();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a connection thread");
            let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.remove(id);
        }
    }
}

/// A descriptor to hold in reserve for the accept loop (a copy of `fd`),
/// or `None` if even that one cannot be had.
fn spare_descriptor(fd: &OwnedFd) -> Option<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).ok()
}

/// Ends every connection gracefully: no more requests are read (calls in
/// progress finish and get their replies), then waits for the connection
/// threads up to the deadline, and cuts what is left.
fn drain(shared: &Shared) {
    let deadline = Instant::now() + shared.config.shutdown_deadline;
    let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    conns.shutdown_all(Shutdown::Read);
    while !conns.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                connections = conns.len(),
                "shutdown deadline passed; closing the connections still busy"
            );
            conns.shutdown_all(Shutdown::Both);
            return;
        }
        conns = shared
            .conns_changed
            .wait_timeout(conns, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// One session, from the handshake to the end; returns why it ended, for
/// the log.
fn serve_connection(
    shared: &Shared,
    id: u64,
    stream: Stream,
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
) -> &'static str {
    let config = &shared.config;
    // A client that does not read its replies must not hold this thread
    // (and its buffer) forever.
    let _ = stream.set_write_timeout(config.idle_timeout);
    let mut conn = Framed::new(stream, config.max_frame);
    conn.charge_to(Charge::new(shared.budget.clone(), framed::GROWTH_STEP));
    if let Some(key) = &config.authkey {
        let result = framed::server_side(key, config.handshake)
            .map_err(Error::from)
            .and_then(|mut side| {
                framed::handshake(
                    &mut conn,
                    &mut side,
                    Some(config.handshake_timeout),
                    config.max_frame,
                )
            });
        if let Err(e) = result {
            tracing::info!(peer = peer.address(), error = %e, "handshake failed");
            return "handshake failed";
        }
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .authenticated(id);
    }
    if conn.stream.set_read_timeout(config.idle_timeout).is_err() {
        return "socket error";
    }
    let mut out = Vec::new();
    // What replies not yet written draw from the memory budget.
    let mut out_charge = Charge::new(shared.budget.clone(), REPLY_ALLOWANCE);
    // Every write of replies is due as a whole within the idle timeout.
    let write = |conn: &mut Framed, out: &[u8]| {
        framed::write_all_within(&mut conn.stream, out, config.idle_timeout)
    };
    loop {
        // Idle or trickling, a client gets `idle_timeout` for the first
        // bytes of its next request and as much for the rest.
        let range = match conn.read_frame_idle(config.idle_timeout) {
            Ok(Some(r)) => r,
            Ok(None) => return "closed by the client",
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return "idle timeout"
            }
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::OutOfMemory => {
                tracing::info!(
                    peer = peer.address(),
                    "a frame over the memory budget; closing"
                );
                return "over the memory budget";
            }
            Err(ReadError::Io(_)) => return "connection error",
            Err(ReadError::Frame(e)) => {
                tracing::info!(peer = peer.address(), error = %e, "bad frame; closing");
                return "bad frame";
            }
        };
        // Answer everything already here before writing: pipelined
        // requests cost one write for all their replies, up to
        // `FLUSH_AT` bytes of them.
        let mut next = Some(range);
        let mut end = false;
        while let Some(range) = next {
            let flow = handle_message(shared, conn.payload(range), peer, runtime, &mut out);
            // A reply is counted once made (the handler made its value
            // anyway); one that the budget cannot hold is never sent.
            if out.capacity() > REPLY_ALLOWANCE && !out_charge.hold(out.capacity()) {
                tracing::info!(
                    peer = peer.address(),
                    bytes = out.len(),
                    "replies over the memory budget; closing"
                );
                return "over the memory budget";
            }
            match flow {
                Flow::Continue => {
                    if out.len() >= FLUSH_AT {
                        if let Err(e) = write(&mut conn, &out) {
                            return write_failed(&e);
                        }
                        out.clear();
                    }
                }
                Flow::End => {
                    end = true;
                    break;
                }
                Flow::Close => {
                    let _ = write(&mut conn, &out);
                    return "unreadable message";
                }
            }
            next = match conn.buffered_frame() {
                Ok(n) => n,
                Err(e) => {
                    let _ = write(&mut conn, &out);
                    tracing::info!(peer = peer.address(), error = %e, "bad frame; closing");
                    return "bad frame";
                }
            };
        }
        if let Err(e) = write(&mut conn, &out) {
            return write_failed(&e);
        }
        out.clear();
        // Large replies are not kept: their memory goes back, and with it
        // their share of the budget.
        if out.capacity() > REPLY_ALLOWANCE {
            out = Vec::new();
            out_charge.hold(0);
        }
        if end {
            return "end of session";
        }
    }
}

/// How many bytes of replies to pipelined requests are gathered before
/// they are written. Small replies still go out many to a write, and a
/// client that sends requests by the thousand and reads slowly, or never,
/// holds at most this much of the daemon's memory (plus the reply in the
/// making) while the connection thread waits on the socket: without it, a
/// read buffer full of requests for large replies would have them all
/// made at once.
const FLUSH_AT: usize = 64 * 1024;

/// What a connection's replies may hold without drawing on the memory
/// budget: replies to pipelined small requests are gathered up to
/// `FLUSH_AT`, which the buffer's doubling makes twice that.
const REPLY_ALLOWANCE: usize = 2 * FLUSH_AT;

/// Why a write of replies failed, for the log.
fn write_failed(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::TimedOut {
        "reply timeout"
    } else {
        "write failed"
    }
}

enum Flow {
    Continue,
    End,
    Close,
}

/// Decodes one message and appends the framed reply to `out`.
fn handle_message(
    shared: &Shared,
    payload: &[u8],
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
    out: &mut Vec<u8>,
) -> Flow {
    // Only as far as the endpoint name: the policy is checked before any
    // argument is decoded.
    let limits = &shared.config.decode_limits;
    let head = match decode_head(payload, limits) {
        Ok(Head::Request(r)) => r,
        Ok(Head::EndSession(codec)) => {
            let mark = frame::begin(out);
            encode_end_session(codec, out);
            frame::finish(out, mark);
            return Flow::End;
        }
        Ok(_) => return Flow::Close,
        Err(e @ (DecodeError::Empty | DecodeError::UnknownCodec(_))) => {
            // No codec to answer in: all we can do is close.
            tracing::info!(peer = peer.address(), error = %e, "unreadable message; closing");
            return Flow::Close;
        }
        Err(e) => {
            // The codec is known, so the client can read an error reply and
            // the session goes on.
            let codec = anyd_wire::codec::detect(payload).unwrap_or(anyd_wire::Codec::MsgPack);
            // The detail may quote the payload: debug only.
            tracing::debug!(peer = peer.address(), error = %e, "malformed request");
            let err = RemoteError::new("ValueError", format!("malformed request: {e}"));
            let mark = frame::begin(out);
            encode_reply_error(codec, &err, out);
            frame::finish(out, mark);
            return Flow::Continue;
        }
    };
    let codec = head.codec;
    // Timing costs two clock reads a call; take them only when logged.
    let started =
        tracing::enabled!(tracing::Level::DEBUG).then(|| (Instant::now(), head.endpoint.clone()));
    let mark = frame::begin(out);
    let result = shared.registry.dispatch(head, peer, runtime, limits, out);
    if let Err(err) = &result {
        out.truncate(mark + frame::HEADER_LEN);
        encode_reply_error(codec, err, out);
    }
    frame::finish(out, mark);
    if let Some((started, endpoint)) = started {
        tracing::debug!(
            endpoint = %endpoint,
            codec = ?codec,
            micros = started.elapsed().as_micros() as u64,
            outcome = result.as_ref().err().map_or("ok", |e| e.kind.as_str()),
            "call"
        );
    }
    Flow::Continue
}
