//! Layer 2 of DESIGN.md: the sockets under the protocol, blocking and
//! async, and who is on the other end.
//!
//! The rooms: `stream` (the connected socket, [`Stream`]), `peer` (the
//! caller's address and credentials, [`Peer`]), `listener` (binding,
//! inheriting and accepting, [`Listener`]), `socket_file` (a Unix socket's
//! file at a path: its mode and group, stale files, removal), `connect`
//! (connecting, blocking and async, and retrying), `async_stream` (the
//! async clients' socket) and `fds` (descriptors that travel with frames).
//! Whether a directory may hold a socket file is the crate's
//! `checked_dir`, since pid files need the same check.
//!
//! It does not own addresses (`address`) nor anything said over a socket
//! (frames are `framed`'s, the handshake is `handshake`'s).

mod async_stream;
mod connect;
pub(crate) mod fds;
mod listener;
mod peer;
mod socket_file;
mod stream;

pub(crate) use async_stream::AsyncStream;
pub(crate) use listener::Listener;
pub use peer::Peer;
pub(crate) use socket_file::SocketFile;
pub(crate) use stream::Stream;
