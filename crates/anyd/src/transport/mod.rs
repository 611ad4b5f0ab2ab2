//! Layer 2 of DESIGN.md: the sockets under the protocol, blocking and
//! async, and who is on the other end.
//!
//! The rooms: `stream` (the connected socket, [`Stream`]), `peer` (the
//! caller's address and credentials, [`Peer`]), `listener` (binding,
//! inheriting and accepting, [`Listener`]), `socket_file` (a Unix socket's
//! file at a path: its mode and group, stale files, removal), `connect`
//! (connecting, blocking and async, and retrying), `async_stream` (the
//! async clients' socket, with `async_unix` under it for a Unix one) and
//! `fds` (descriptors that travel with frames).
//! Whether a directory may hold a socket file is the crate's
//! `checked_dir`, since pid files need the same check.
//!
//! Which of them a build has follows its features: connecting is the
//! clients' (the async side `async-client`'s), listening the daemon's;
//! a peer and the descriptors beside frames are everyone's.
//!
//! It does not own addresses (`address`) nor anything said over a socket
//! (frames are `framed`'s, the handshake is `handshake`'s).

#[cfg(feature = "async-client")]
mod async_stream;
#[cfg(feature = "async-client")]
mod async_unix;
#[cfg(feature = "client")]
mod connect;
// Without a side, only its limits and types are used (by `Fd` and
// `Items`).
#[cfg_attr(not(any(feature = "client", feature = "server")), allow(dead_code))]
pub(crate) mod fds;
#[cfg(feature = "server")]
mod listener;
mod peer;
#[cfg(feature = "server")]
mod socket_file;
#[cfg(any(feature = "client", feature = "server"))]
mod stream;

#[cfg(feature = "async-client")]
pub(crate) use async_stream::AsyncStream;
#[cfg(feature = "server")]
pub(crate) use listener::Listener;
pub use peer::Peer;
#[cfg(feature = "server")]
pub(crate) use socket_file::SocketFile;
#[cfg(any(feature = "client", feature = "server"))]
pub(crate) use stream::Stream;
