//! anyd: Linux daemons with an API over a local socket, and their clients.
//!
//! A daemon is an [`Appd`]: endpoints are plain or async functions of
//! typed arguments, registered under a name.
//!
//! Linux only: the crate relies on peer credentials (`SO_PEERCRED`,
//! `SO_PEERGROUPS`), descriptor passing with `MSG_CMSG_CLOEXEC`,
//! `eventfd`, capabilities and `/proc`, and does not build elsewhere.
//!
//! ```no_run
//! use anyd::{Appd, ClientSession};
//!
//! // The daemon.
//! let running = Appd::new()
//!     .api("echo(arg)", |arg: String| arg)
//!     .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
//!     .bind("unix:/tmp/echod.sock")?
//!     .spawn()?; // or .serve() to block until SIGTERM
//!
//! // A client.
//! let mut session = ClientSession::connect("unix:/tmp/echod.sock")?;
//! let sum: i64 = session.commit("get_sum", (1, 2))?;
//! assert_eq!(sum, 3);
//! session.end_session()?;
//! running.shutdown()?;
//! # Ok::<(), anyd::Error>(())
//! ```
//!
//! The daemon logs through [`tracing`](https://docs.rs/tracing): until the
//! program installs a subscriber it prints nothing, not even that it is
//! listening. With `tracing-subscriber = "0.3"` among the dependencies,
//! one line first in `main` prints info and above to standard error:
//!
//! ```no_run
//! tracing_subscriber::fmt()
//!     .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
//!     .init();
//! ```
//!
//! See [Traces and counts](#traces-and-counts) for what each call
//! leaves.
//!
//! A socket file is `0600` by default: only the daemon's own user may
//! connect, and a client run by another user gets `Permission denied`.
//! A daemon that serves an unprivileged command-line tool opens it
//! ([`Appd::socket_mode`], with [`Appd::socket_group_name`] for one
//! group; see [Who may call what](#who-may-call-what)).
//!
//! The wire protocol is Python anyd's (`multiprocessing.connection` frames,
//! its `authkey` handshake, `SIGENDS`), so Python `anyd.ClientSession`
//! programs can call a Rust daemon and a Rust client can call a Python
//! `anyd.Appd` (with [`Codec::Pickle`]). Rust peers use MessagePack; JSON
//! serves every other language.
//!
//! Each connection is served by its own thread: a handler that blocks
//! delays no other client, and requests on one connection are answered in
//! order. Errors reach the caller as error replies with a kind
//! ([`RemoteError`]); a panicking handler becomes a `RuntimeError` reply and
//! the daemon goes on.
//!
//! Larger daemons declare their API as an `impl` block with
//! [`#[anyd::api]`](macro@api), which also generates a typed client
//! (blocking and async); their errors get a kind with
//! [`#[derive(ApiError)]`](derive@ApiError). A method that returns
//! [`Items`] streams, and its typed client methods give the items as an
//! [`ItemIter`] or an [`ItemStream`].
//!
//! A daemon and its command-line tool built as separate programs share
//! an interface: a trait in a crate of its own, with
//! [`#[anyd::interface]`](macro@interface), which gives the typed clients
//! without the daemon's code, and a [contract document](contract) (JSON
//! Schema per type) that clients in any language build on and that
//! [`contract::diff`] checks for breaking changes. Every daemon serves its
//! own at the reserved endpoint `anyd.describe`.
//!
//! Over a Unix socket, arguments and results may hold open file
//! descriptors: an [`Fd`] travels with its message as `SCM_RIGHTS`, so a
//! root daemon can open what its caller may not and hand it over
//! ([protocol section 8.2](crate::protocol#82-descriptors)).
//!
//! Three things are named *api*, for the two ways of declaring
//! endpoints: the attribute [`#[anyd::api]`](macro@api) on an `impl`
//! block; the trait [`Api`] it implements for the type, which
//! [`Appd::mount`] takes to register every endpoint of a value of it; and
//! the method [`Appd::api`], which registers one function or closure.
//! Likewise [`ApiError`](trait@ApiError) is a trait and
//! [`#[derive(ApiError)]`](derive@ApiError) its derive, as serde's
//! `Serialize` is.
//!
//! # Getting it
//!
//! The package is `anyd-ipc` (the registry's `anyd` is another crate); its
//! library is `anyd`, so code says `use anyd::...`:
//!
//! ```toml
//! [dependencies]
//! anyd-ipc = "0.1"
//! ```
//!
//! Arguments and results are anything serde can (de)serialize: deriving
//! `Serialize` and `Deserialize` on types of your own takes serde with its
//! `derive` feature (`serde = { version = "1", features = ["derive"] }`);
//! anyd does not re-export serde.
//!
//! The command-line client is the `anydctl` package: `cargo install
//! anydctl --locked`, or from a checkout of the repository `cargo install
//! --path crates/anydctl --locked`.
//!
//! # Features
//!
//! Everything by default. A program that only calls a daemon leaves the
//! daemon out, and with it tokio's multi-thread runtime and signals:
//!
//! ```toml
//! [dependencies]
//! # A command-line tool: the blocking client, no tokio at all.
//! anyd-ipc = { version = "0.1", default-features = false, features = ["client"] }
//! ```
//!
//! | Feature | Gives | Builds |
//! | --- | --- | --- |
//! | `client` | [`ClientSession`], [`ClientOptions`], [`ItemIter`], [`Canceller`], [`CallCanceller`]; the blocking typed client of an [`#[anyd::api]`](macro@api) block | std sockets, no tokio |
//! | `async-client` | [`AsyncClientSession`], [`ItemStream`], [`ClientOptions::connect_async`]; the async typed client; `client` too | tokio's `rt`, `net`, `io-util`, `time`: a runtime of the program's, current-thread is enough |
//! | `server` | [`Appd`] and what serves it ([`Server`], [`Running`], [`ShutdownHandle`]), [`Api`], [`IntoApi`], [`Allow`], [`Capability`], [`Hub`], [`Handler`], [`FromCall`], [`Call`], [`IntoReply`], [`CallRecord`], [`daemonize`], [`systemd`]; the [`Api`] impl of an `#[anyd::api]` block | tokio's multi-thread runtime, signals, `sync`, `time` |
//! | `macros` | [`#[anyd::api]`](macro@api), [`#[derive(ApiError)]`](derive@ApiError) | `anyd-macros` (syn) |
//!
//! In every set, with none of them: the types both sides name,
//! [`Address`], [`Error`], [`RemoteError`], [`Fd`], [`Value`], [`Codec`],
//! [`Peer`], [`Items`] (with [`channel`], [`ItemSender`],
//! [`StreamClosed`]), [`ApiError`](trait@ApiError), [`EndpointInfo`],
//! [`ParamInfo`], [`TraceContext`], and [`wire`]. So a crate that declares an API (its
//! types, its errors, an interface) builds for a client alone.
//!
//! `#[anyd::api]` builds in every set and generates what the set has
//! (the `Api` impl with `server`, each client with its feature): the
//! program's `anyd` decides, not the program's own features. A program
//! with the clients alone gets only the clients (and the compiler warns
//! that the block's own methods go unused there).
//!
//! # Choosing a codec
//!
//! The daemon answers each request in the codec it came in, so one daemon
//! serves every kind of client at once; only clients choose
//! ([`ClientOptions::codec`]):
//!
//! - [`Codec::MsgPack`], the default: compact and the fastest, for Rust
//!   peers and any language with a MessagePack library.
//! - [`Codec::Json`]: for scripts and languages without MessagePack; a
//!   JSON array `["endpoint", [args], {kwargs}]` in a frame is a call.
//! - [`Codec::Pickle`]: to call a Python `anyd.Appd`, and what Python
//!   clients send. The daemon decodes pickles as data only (no import, no
//!   call), so a pickle cannot run code here.
//!
//! Arguments are anything serde can deserialize; a handler that takes a
//! [`Value`] accepts whatever was sent.
//!
//! # Streams and events
//!
//! An endpoint may send a stream of values instead of one: a tunnel's
//! events, a long operation's progress, a log to follow. Its handler
//! returns [`Items<T>`](Items), made from an iterator
//! ([`Items::from_iter`], or [`Items::ready`] for items computed at once),
//! an async stream ([`Items::from_stream`]), a [`channel`] a thread or a
//! task feeds, or a [`Hub`] the daemon publishes events to
//! ([`Hub::subscribe`]); an error ends the stream and reaches the client
//! like an error reply. A client asks for the items with
//! [`ClientSession::stream`] (an iterator) or [`AsyncClientSession::stream`]
//! (a `Stream`), and dropping what it gets cancels the stream:
//!
//! ```no_run
//! use anyd::{Appd, Hub};
//! # fn main() -> anyd::Result<()> {
//! let events: Hub<String> = Hub::new(256);
//! let running = Appd::new()
//!     .api("watch()", {
//!         let events = events.clone();
//!         move || events.subscribe()
//!     })
//!     .bind("unix:/tmp/watchd.sock")?
//!     .spawn()?;
//! events.publish("tunnel up".to_owned());
//!
//! let mut session = anyd::ClientSession::connect("unix:/tmp/watchd.sock")?;
//! for event in session.stream::<String>("watch", ())?.take(3) {
//!     println!("{}", event?);
//! }
//! # running.shutdown()
//! # }
//! ```
//!
//! The daemon takes items from their source only as the socket takes
//! them (its memory per stream is bounded whatever the client's speed),
//! writes every item that is ready in one write, and drops the source as
//! soon as the client cancels, disconnects or is killed, or the daemon
//! shuts down (the client then gets a `Shutdown` error). A hub never
//! waits for a slow subscriber: one that falls too far behind gets a
//! `Lagged` error saying how many events it missed. Streams travel in the
//! native codecs only, as an extension a client asks for per call
//! ([protocol section 8.1](crate::protocol#81-streams)); a Python client calling a streaming
//! endpoint gets a `TypeError` that says so.
//!
//! # Deadlines and cancellation
//!
//! A caller may send a timeout with its call, and cancel it (a CANCEL
//! right behind the request, or closing its connection). The daemon keeps
//! the earliest of the caller's timeout and its own bounds
//! ([`Appd::call_timeout`], [`Appd::timeout`]; none by default): an async
//! handler is dropped at its deadline or when its caller cancels, and a
//! blocking handler takes an [`anyd::Context`](Context) to see it, with no
//! thread per call. Calls a handler makes inherit its deadline and trace
//! context. The wire side is in docs/PROTOCOL.md sections 8.3 and 8.4.
//!
//! The clients send [`ClientOptions::timeout`] as each call's deadline
//! (to a daemon whose `anyd.version` lists it), so that the daemon's
//! `TimeoutError` keeps the session usable; an async call whose future is
//! dropped is cancelled without losing the session, and a blocking one
//! is cancelled from another thread with a [`CallCanceller`].
//!
//! # Who may call what
//!
//! On a Unix socket the kernel tells the daemon who is calling (uid, gid,
//! groups, pid: [`Peer`]), and [`Allow`] rules decide, daemon-wide
//! ([`Appd::allow`]) and per endpoint ([`Appd::restrict`], or
//! `#[api(allow(...))]`):
//!
//! ```no_run
//! use anyd::{Allow, Appd, Peer};
//! # fn main() -> anyd::Result<()> {
//! Appd::new()
//!     .api("status()", || "up") // anyone who can connect
//!     .api("connect(profile)", |p: String, who: Peer| format!("{p} by {:?}", who.uid()))
//!     .restrict(Allow::group("vpn").or(Allow::root()))
//!     .socket_mode(0o666) // every local user may connect; the policy decides
//!     .bind("unix:/run/vpnmd.sock")?
//!     .serve()
//! # }
//! ```
//!
//! A caller the policy refuses gets the reply to an endpoint that does not
//! exist (`NotImplementedError`), so it learns nothing about the API, and
//! costs the daemon nothing beyond its frame: the policy runs on the
//! endpoint's name, before any argument is decoded. The daemon's log says
//! which rule refused whom. Over TCP there are no credentials: use an
//! [authkey](Appd::authkey), as Python anyd does.
//!
//! # Traces and counts
//!
//! Every event of a connection's thread, a handler's own included, comes
//! inside two spans: `conn` (the caller's `uid`, `gid`, `pid`) and `call`
//! (`endpoint`, `n` its number on the connection, `codec`; then
//! `trace_id` when the caller sent a W3C trace context, `outcome` (`ok`,
//! `stream`, or the error's kind) and `duration_us`, recorded as they
//! become known). With the `env-filter` feature of tracing-subscriber,
//! `RUST_LOG=anyd=debug` adds a line per call; `FmtSpan::CLOSE` prints
//! each call span as it closes, with all its fields:
//!
//! ```no_run
//! use tracing_subscriber::{fmt::format::FmtSpan, EnvFilter};
//! tracing_subscriber::fmt()
//!     .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
//!     .with_span_events(FmtSpan::CLOSE)
//!     .init();
//! ```
//!
//! A caller's trace context ([`TraceContext`]) reaches
//! [`Appd::on_call_span`], where a program that exports traces makes the
//! caller's span the call span's parent. [`Appd::audit`] adds an info line
//! per call of a restricted endpoint (who, what, the outcome; never an
//! argument).
//!
//! The daemon counts each endpoint's calls, errors by kind (timeouts and
//! cancellations among them) and latencies; the reserved endpoint
//! `anyd.stats` gives them to root and the daemon's own user
//! ([`Appd::stats_allow`] admits more; [protocol section
//! 5.2](crate::protocol#52-counts-anydstats)), and `anydctl stats` shows
//! them. [`Appd::on_call`] hands every call ([`CallRecord`]) to a hook, for
//! exporting metrics to Prometheus or elsewhere.
//!
//! # Running as a system service
//!
//! [`Server::serve`] handles SIGTERM and SIGINT (stop accepting, let calls
//! in progress finish, remove the socket file) and SIGHUP
//! ([`Appd::on_reload`]). Under systemd, [`Appd::bind`] takes a socket
//! passed by socket activation instead of binding its own
//! ([`Appd::socket_name`] picks one of several), and the daemon reports
//! readiness, status and watchdog pings ([`systemd`]). Without a service
//! manager: [`Appd::pid_file`], [`daemonize`] and [`Appd::run_as`] to drop
//! root once the socket is bound, keeping the capabilities named with
//! [`Appd::keep_capabilities`] (a VPN daemon keeps
//! [`Capability::NetAdmin`]) and no other.
//!
//! # Python interoperability
//!
//! Python `anyd.ClientSession` and `multiprocessing.connection.Client`
//! call a Rust daemon unchanged (with the same `authkey`, if any); a Rust
//! client calls a Python `anyd.Appd` with [`Codec::Pickle`], and Python
//! exceptions arrive as [`Error::Remote`] with their class name as kind.
//!
//! ```no_run
//! use anyd::{ClientOptions, Codec};
//! let mut py = ClientOptions::new()
//!     .codec(Codec::Pickle)
//!     .authkey(std::env::var("APPD_KEY").unwrap_or_default().into_bytes())
//!     .connect("tcp:127.0.0.1:7000")?;
//! let sum: i64 = py.commit("get_sum", (1, 2))?;
//! # Ok::<(), anyd::Error>(())
//! ```
//!
//! # Limits
//!
//! Every limit has a default that keeps a root daemon safe with its socket
//! open to every local user, and a setter on [`Appd`]: frames
//! ([`max_frame`](Appd::max_frame), 16 MiB), memory for buffers of all
//! connections together ([`memory_budget`](Appd::memory_budget)),
//! connections in all, per user and reserved for root and the daemon's
//! user ([`max_connections`](Appd::max_connections),
//! [`max_connections_per_uid`](Appd::max_connections_per_uid),
//! [`reserved_connections`](Appd::reserved_connections)), handshakes in
//! progress ([`max_handshakes`](Appd::max_handshakes)), and time for the
//! handshake, for an idle session and for each request and reply as a
//! whole ([`handshake_timeout`](Appd::handshake_timeout),
//! [`idle_timeout`](Appd::idle_timeout)). The protocol reference
//! ([`protocol`], [section 7](protocol#7-limits-and-timeouts)) lists them
//! all with what happens past each, and `SECURITY.md` in the repository
//! what an attacker can and cannot do.
//!
//! Time settings, on [`Appd`] and [`ClientOptions`] alike, follow one
//! rule: a setter takes an `Option<Duration>` where no limit is a sensible
//! choice (`None`: none), such as [`idle_timeout`](Appd::idle_timeout) or
//! a client's reply [`timeout`](ClientOptions::timeout), and a plain
//! `Duration` where there is always one, such as
//! [`handshake_timeout`](Appd::handshake_timeout) or
//! [`shutdown_deadline`](Appd::shutdown_deadline).
//!
//! # Stability
//!
//! The wire protocol is version 1 (reported by the reserved endpoint
//! `anyd.version`, beside this crate's version); what it adds to Python
//! anyd's protocol is opt-in, so an unmodified Python peer never sees a
//! frame it does not expect. The public API follows semantic versioning;
//! `CHANGELOG.md` in the repository says what changed in each release.

// A library crate: every public item is documented (the workspace warns;
// here it is an error).
#![deny(missing_docs)]
// docs.rs (`--cfg docsrs`, nightly) marks each item with the feature that
// gives it.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Elsewhere the crate cannot build: said first, in words, ahead of the
// unresolved `std::os::linux` imports and socket options that follow.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "anyd (the anyd-ipc package) runs on Linux only: it needs SO_PEERCRED and SO_PEERGROUPS, \
     SCM_RIGHTS with MSG_CMSG_CLOEXEC, eventfd, capabilities and /proc"
);

// What each module is for, and in which feature sets it builds: the
// layers of DESIGN.md, less the ones a build leaves out. Modules with no
// `cfg` are the types both sides use.
mod address;
#[cfg(feature = "server")]
mod admission;
#[cfg(feature = "server")]
mod api;
mod api_error;
#[cfg(feature = "server")]
mod budget;
#[cfg(feature = "server")]
mod capability;
#[cfg(feature = "server")]
mod checked_dir;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "server")]
mod context;
pub mod contract;
#[cfg(feature = "server")]
mod daemon;
mod endpoint_info;
mod error;
mod fd;
#[cfg(feature = "server")]
mod fd_budget;
#[cfg(any(feature = "client", feature = "server"))]
mod frame_buffer;
mod frame_context;
#[cfg(any(feature = "client", feature = "server"))]
mod framed;
#[cfg(feature = "server")]
mod handler;
#[cfg(any(feature = "client", feature = "server"))]
mod handshake;
// Without the daemon, `Items` is a type that API signatures name (an
// interface crate builds without the daemon); its sources are never
// polled.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod items;
#[cfg(feature = "server")]
mod observe;
#[cfg(feature = "server")]
mod policy;
#[cfg(feature = "server")]
mod registry;
#[cfg(feature = "server")]
mod reply;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod stats;
#[cfg(any(feature = "server", feature = "async-client"))]
mod sys;
#[cfg(feature = "server")]
pub mod systemd;
#[cfg(feature = "server")]
mod throttle;
mod trace_context;
mod transport;

// Every feature set.
pub use address::{Address, ToAddress};
pub use api_error::ApiError;
#[cfg(feature = "server")]
pub use context::{Cancelled, Context};
pub use endpoint_info::{EndpointInfo, ParamInfo};
pub use error::{Error, RemoteError, Result, WireError};
pub use fd::Fd;
pub use items::{channel, ItemSender, Items, StreamClosed};
pub use trace_context::TraceContext;
pub use transport::Peer;

pub use anyd_wire::handshake::Digest;
pub use anyd_wire::{Codec, Value};

/// The wire layer, for tools that need frames and codecs directly.
pub use anyd_wire as wire;

#[doc(inline)]
pub use anyd_wire::protocol;
/// The JSON Schema generator of contract documents, for
/// `#[derive(anyd::schemars::JsonSchema)]` on an interface's types
/// (with `#[schemars(crate = "anyd::schemars")]`) without a dependency
/// of one's own.
pub use schemars;

// `client`.
#[cfg(feature = "client")]
pub use client::{CallCanceller, Canceller, ClientOptions, ClientSession, ItemIter};

// `async-client`.
#[cfg(feature = "async-client")]
pub use client::{AsyncClientSession, ItemStream};

// `server`.
#[cfg(feature = "server")]
pub use {
    api::{Api, IntoApi},
    capability::Capability,
    daemon::{daemonize, daemonize_ready},
    handler::{Call, FromCall, Handler},
    items::Hub,
    observe::CallRecord,
    policy::Allow,
    reply::IntoReply,
    server::{Appd, Running, Server, ShutdownHandle},
};

// `macros`.
#[cfg(feature = "macros")]
pub use anyd_macros::{api, interface, ApiError};

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The README's Rust examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;

#[cfg(test)]
mod readme {
    /// The README is this crate's page on the registry and the project's on
    /// a forge, where a doc test's hidden lines (`# fn main() {`,
    /// `# Ok::<_, _>(())`) show as text: its Rust examples are whole
    /// programs instead, compiled as they read (see `ReadmeExamples`).
    #[test]
    fn rust_examples_hide_no_lines() {
        let mut fence: Option<&str> = None;
        let mut hidden = Vec::new();
        for (number, line) in include_str!("../../../README.md").lines().enumerate() {
            if let Some(info) = line.strip_prefix("```") {
                fence = match fence {
                    None => Some(info),
                    Some(_) => None,
                };
                continue;
            }
            let in_rust = fence.is_some_and(|info| info.starts_with("rust"));
            let trimmed = line.trim_start();
            if in_rust && (trimmed == "#" || trimmed.starts_with("# ")) {
                hidden.push(format!("README.md:{}: {line}", number + 1));
            }
        }
        assert!(
            hidden.is_empty(),
            "hidden doc test lines:\n{}",
            hidden.join("\n")
        );
    }
}
