//! anyd: Unix daemons with an API over a local socket, and their clients.
//!
//! A daemon is an [`Appd`]: endpoints are plain or async functions of
//! typed arguments, registered under a name.
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
//! [`#[derive(ApiError)]`](derive@ApiError).

mod address;
mod admission;
mod api;
mod async_client;
mod budget;
mod client;
mod daemon;
mod error;
mod framed;
mod handler;
mod peergroups;
mod policy;
mod registry;
mod server;
pub mod systemd;
mod transport;
mod users;

pub use address::{Address, ToAddress};
pub use anyd_macros::{api, ApiError};
pub use api::{Api, IntoApi};
pub use async_client::AsyncClientSession;
pub use client::{ClientOptions, ClientSession};
pub use daemon::{daemonize, daemonize_ready};
pub use error::{Error, RemoteError, Result};
pub use handler::{ApiError, Call, EndpointInfo, FromCall, Handler, IntoReply, ParamInfo};
pub use policy::Allow;
pub use server::{Appd, Running, Server, ShutdownHandle};
pub use transport::Peer;

pub use anyd_wire::handshake::Digest;
pub use anyd_wire::{Codec, Value};

/// The wire layer, for tools that need frames and codecs directly.
pub use anyd_wire as wire;

#[doc(hidden)]
pub use api::__private;

/// The README's Rust examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
