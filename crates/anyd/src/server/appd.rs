//! The `Appd` builder: endpoints, policy and every setting of a daemon,
//! with their defaults. Binding is `bind.rs`'s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyd_wire::codec::DecodeLimits;
use anyd_wire::handshake::Digest;

use super::config::Config;
use crate::api::{Api, IntoApi};
use crate::capability::{Capability, Keep};
use crate::handler::Handler;
use crate::policy::Allow;
use crate::registry::Registry;

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
    pub(super) registry: Registry,
    pub(super) config: Config,
    pub(super) on_reload: Option<Reload>,
}

/// What SIGHUP runs.
pub(super) type Reload = Arc<dyn Fn() + Send + Sync>;

impl Default for Appd {
    fn default() -> Self {
        Self::new()
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

    /// Registers the endpoints of an `#[anyd::api]` impl block, in the
    /// order of its methods. Can be mixed with [`Appd::api`] and called
    /// more than once, as long as no endpoint name is used twice.
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// #[derive(Default)]
    /// struct Counter {
    ///     hits: AtomicU64,
    /// }
    ///
    /// #[anyd::api]
    /// impl Counter {
    ///     /// Counts one more hit and returns the total.
    ///     fn hit(&self) -> u64 {
    ///         self.hits.fetch_add(1, Ordering::Relaxed) + 1
    ///     }
    /// }
    ///
    /// fn main() -> anyd::Result<()> {
    ///     anyd::Appd::new()
    ///         .mount(Counter::default())
    ///         .api("echo(arg)", |arg: String| arg)
    ///         .bind("unix:/tmp/counter.sock")?
    ///         .serve()
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// If an endpoint name is already registered (the macro rejects
    /// clashes within one block at compile time).
    pub fn mount(self, api: impl IntoApi) -> Self {
        Api::register(api.into_api(), self)
    }

    /// What `#[anyd::api]` calls for each method: [`Appd::api`] and
    /// [`Appd::doc`] in one, plus the parameter types as the source writes
    /// them (`types`, one per wire parameter).
    #[doc(hidden)]
    pub fn __api_with<M, H: Handler<M>>(
        mut self,
        signature: &str,
        types: &[&str],
        doc: &str,
        handler: H,
    ) -> Self {
        self.registry.add(signature, handler);
        self.registry.describe_last(types, doc);
        self
    }

    /// What `#[anyd::interface]` and `#[anyd::api]` call after registering
    /// an endpoint: its contract description, for `anyd.describe`.
    #[doc(hidden)]
    pub fn __describe_last(mut self, describe: crate::contract::private::Describe) -> Self {
        self.registry.describe_contract_last(describe);
        self
    }

    /// What `#[anyd::interface]` calls before registering an interface's
    /// endpoints: its name and version, for `anyd.describe`.
    #[doc(hidden)]
    pub fn __interface(mut self, info: crate::contract::Info) -> Self {
        self.registry.contract.interface(info);
        self
    }

    /// Restricts the endpoint `name` to `rule`'s callers, on top of the
    /// daemon-wide rule, as [`Appd::restrict`] does the one registered
    /// last: for endpoints [mounted](Appd::mount) from an interface, whose
    /// rule the daemon decides when it starts (a group named on its
    /// command line, say).
    ///
    /// ```no_run
    /// use anyd::{Allow, Appd};
    /// # fn main() -> anyd::Result<()> {
    /// Appd::new()
    ///     .api("status()", || "up")
    ///     .api("disconnect()", || "down")
    ///     .restrict_endpoint("disconnect", Allow::group("vpn").or(Allow::root()))
    ///     .bind("unix:/run/vpnd.sock")?
    ///     .serve()
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If no endpoint of that name is registered yet.
    pub fn restrict_endpoint(mut self, name: &str, rule: Allow) -> Self {
        self.registry.restrict_named(name, rule);
        self
    }

    /// Admits `rule`'s callers to the daemon; everyone else gets, for
    /// every call, the reply to an endpoint that does not exist
    /// (`NotImplementedError` naming it), and the daemon logs at info
    /// level which rule denied whom. Several calls widen the rule
    /// (any of them admits). Without any, whoever can connect may call.
    /// A denied caller can call in a loop: the log has the first ten
    /// denials at once and then one a second at info level (with how many
    /// were held back), every one at debug level.
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
    /// Always bounded, hence a plain `Duration`: a handshake that never
    /// ends would hold its place among the connections for good.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// How long a session may stay silent before it is closed (default 10
    /// minutes; `None` for never, hence the `Option`: a daemon whose
    /// clients keep a session open for good may want no limit). The rest of a request is due within as
    /// long of its first bytes, and a reply (or the replies to pipelined
    /// requests, written together) within as long of the start of its
    /// write, however slowly the client reads: a client that reads too
    /// slowly is cut, and the buffers its session held given back.
    ///
    /// A silent session is closed between the timeout and an eighth more:
    /// one thread of the daemon's looks over the waiting connections
    /// every eighth of the timeout, where a read timeout would have armed
    /// a kernel timer at every wait for a request (a measurable part of a
    /// call's cost).
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
    /// Each connection holds one file descriptor, and in a daemon that
    /// takes descriptors from its callers (see [`Fd`](crate::Fd)) up to
    /// 64 more for frames not yet complete; so [`bind`](Self::bind)
    /// raises the process's soft limit on open files (`RLIMIT_NOFILE`,
    /// often 1024) towards what this many connections need, up to the
    /// hard limit, and shares out what it got: when the limit cannot hold
    /// them all, the daemon serves fewer connections than this (at most
    /// three quarters of the open files it may have, the rest for
    /// descriptors in transit) and logs a warning. The descriptors for
    /// frames in progress are shared like connections: an eighth of them
    /// kept for root and the daemon's user, an eighth (at least 16) the
    /// most one other user's connections hold together, a connection past
    /// that cut. The figures are logged at info level at bind. Should the
    /// descriptors run out all the same, new connections are closed at
    /// once (with an error in the log) rather than left waiting in the
    /// listen backlog.
    ///
    /// A small cap leaves few places to share: by default the reserve is
    /// at least one place (from a cap of 2), and each other user may hold
    /// at least 4 or all that the reserve leaves, whichever is fewer (with
    /// a cap of 16: 2 reserved, and 4 places for each other user where an
    /// eighth would give 2).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// How many connections one user (uid, on a Unix socket) other than
    /// root and the daemon's own user may hold at once (default: an eighth
    /// of [`max_connections`](Self::max_connections), 128 of 1024, but at
    /// least 4, or all that the [reserve](Self::reserved_connections)
    /// leaves if fewer: 4 of 16, 3 of 4); more from that user are closed
    /// as soon as they are accepted. A client that reconnects, a tool that
    /// checks on the daemon and a shell that calls it need a few places
    /// each; under a small cap, a share that gives them those lets fewer
    /// users fill the unreserved places, and the reserve is what still
    /// keeps root's. Like
    /// sd-varlink's and dbus-daemon's per-user limits: one user's flood of
    /// idle connections does not take everyone else's places. A stream
    /// whose iterator is still in its `next` when its client leaves holds
    /// its place until `next` returns (see
    /// [`Items::from_iter`](crate::Items::from_iter)).
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
    /// 128 of 1024, and at least one once the cap is 2 or more): however
    /// many users flood a Unix socket, they share the rest, and root can
    /// still connect. Not applied on TCP, where
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
    /// that never answer does not keep key holders of the same uid (on
    /// TCP: anyone) out.
    ///
    /// The cap is per uid: one uid's keyless flood holds at most this
    /// many places, but several uids hold as many each, and together they
    /// can fill what the reserve leaves (with the defaults, some 14 uids ×
    /// 64 handshakes fill the 896 unreserved places), after which other
    /// users are refused until handshakes time out (10 s) and root still
    /// gets its reserve. On TCP the cap is for everyone together, so a
    /// keyless flood never fills [`max_connections`](Self::max_connections).
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.config.max_handshakes = n.max(1);
        self
    }

    /// How long shutdown waits for calls in progress (default 5 s).
    /// Always bounded, hence a plain `Duration`: a call that never returns
    /// must not keep the daemon from stopping. Streams' iterators blocked
    /// in `next` are not waited for at all (see
    /// [`Items::from_iter`](crate::Items::from_iter)).
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
        self.config.socket_group_name = None;
        self
    }

    /// [`socket_group`](Self::socket_group) by the group's name, looked up
    /// when the daemon binds: with [`socket_mode(0o660)`](Self::socket_mode),
    /// the members of `name` may connect, and a command-line client they
    /// run reaches the daemon.
    ///
    /// [`bind`](Self::bind) fails if there is no such group.
    pub fn socket_group_name(mut self, name: impl Into<String>) -> Self {
        self.config.socket_group_name = Some(name.into());
        self
    }

    /// Allows a TCP listener on a non-loopback address without an authkey
    /// (default: refused, since anyone on the network could call).
    pub fn allow_remote_without_authkey(mut self, yes: bool) -> Self {
        self.config.allow_remote_without_authkey = yes;
        self
    }

    /// Whether [`Server::serve`](super::Server::serve) shuts down on SIGTERM and SIGINT (default
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
    /// listening socket passed across `exec` (one with close-on-exec set
    /// was opened by this process, such as a socket of its own) is an
    /// error, not a descriptor taken from its owner. The error stays: a
    /// second `bind` checks them again, and does not quietly bind the
    /// address instead.
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
    /// second instance refuses to start ([`Error::AlreadyRunning`](crate::Error::AlreadyRunning) naming
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
    ///
    /// Leaving root takes every capability with it, and out of the
    /// bounding set too (no program the daemon runs can get one back);
    /// [`keep_capabilities`](Self::keep_capabilities) names those to keep.
    pub fn run_as(mut self, user: impl Into<String>) -> Self {
        self.config.run_as = Some(user.into());
        self
    }

    /// Keeps `capabilities` when [`run_as`](Self::run_as) drops root, and
    /// only those: a VPN daemon that needs `CAP_NET_ADMIN` for its tunnels
    /// and routes keeps it, and serves as an ordinary user otherwise.
    ///
    /// They stay in the permitted and effective sets (so the daemon's own
    /// code has them), in the inheritable and ambient sets (so a program
    /// it runs, such as `ip`, has them too, as it would under root), and
    /// in the bounding set, which loses every other capability. To keep
    /// capabilities while staying root, give `run_as("root")`.
    ///
    /// Linux keeps capabilities per thread: the thread that calls
    /// [`bind`](Self::bind) keeps them, and so do the threads it starts
    /// afterwards, which serve the connections; a thread started before
    /// `bind` keeps none (a warning at bind says how many there are). So
    /// bind from the main thread, before starting others.
    ///
    /// [`bind`](Self::bind) fails without `run_as`, or when the daemon
    /// does not have a capability it is to keep.
    ///
    /// ```no_run
    /// use anyd::{Appd, Capability};
    ///
    /// fn main() -> anyd::Result<()> {
    ///     Appd::new()
    ///         .api("status()", || "up")
    ///         .socket_mode(0o666)
    ///         .run_as("vpnmd") // started as root, to bind /run/vpnmd.sock
    ///         .keep_capabilities([Capability::NetAdmin])
    ///         .bind("unix:/run/vpnmd/vpnmd.sock")?
    ///         .serve()
    /// }
    /// ```
    pub fn keep_capabilities(mut self, capabilities: impl IntoIterator<Item = Capability>) -> Self {
        self.config.keep_capabilities = Keep::new(capabilities);
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

    /// Whether every call of a restricted endpoint leaves an audit line at
    /// info level (default false): an endpoint a rule restricts
    /// ([`restrict`](Self::restrict), [`restrict_endpoint`](Self::restrict_endpoint))
    /// or any endpoint of a daemon with a daemon-wide rule
    /// ([`allow`](Self::allow)). The line (target `anyd::audit`) says who
    /// called (uid, gid, pid), which endpoint and the outcome (`ok`, or the
    /// error's kind), never an argument's value; a call the policy denies
    /// is logged as it always is ("call denied by policy"). Every allowed
    /// call has its line, none is held back: a caller allowed to call in
    /// a loop writes one a call.
    pub fn audit(mut self, yes: bool) -> Self {
        self.registry.audit = yes;
        self
    }

    /// Whether the daemon takes descriptors that callers send with their
    /// requests ([protocol section 8.2](crate::protocol#82-descriptors)).
    /// By default it does when an endpoint has a parameter whose type
    /// names [`Fd`](crate::Fd)
    /// (`Fd`, `Option<Fd>`, `Vec<Fd>`, ...): say `true` for one that
    /// takes them inside a struct of its own. A daemon that does not take
    /// them reads with plain `recv`, which costs less, and the kernel
    /// closes whatever a caller sends; handing descriptors out to callers
    /// needs no such setting.
    pub fn receive_descriptors(mut self, yes: bool) -> Self {
        self.registry.receive_fds = Some(yes);
        self
    }

    /// Limits on pickle requests (nesting, memo, size).
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.config.decode_limits = limits;
        self
    }
}
