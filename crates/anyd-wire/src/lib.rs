//! The anyd wire protocol, with no I/O at all.
//!
//! This crate owns the bytes: frames ([`protocol`] section 1), the
//! authentication handshake (section 2), requests and replies (section 3) in
//! the three codecs (section 4). Every function here works on byte buffers;
//! sockets, runtimes and time belong to the `anyd` crate. That split keeps the
//! protocol testable with byte literals and fuzzable without a network.
//!
//! - [`frame`]: the length prefix every payload travels in.
//! - [`handshake`]: the mutual authentication, as two state machines.
//! - [`message`]: requests, replies and the end of a session as types, with
//!   no bytes; a request's options ([`message::RequestOptions`]) are one
//!   value, declared with the one table of options the codecs go through.
//! - [`codec`]: those messages as MessagePack, JSON or pickle bytes: which
//!   codec a payload is in, and one module per codec with the same
//!   functions.
//! - [`value`]: the dynamic [`Value`] that pickle decodes to and tools
//!   print.
//! - [`protocol`]: no code, the protocol's reference (`docs/PROTOCOL.md`
//!   in the repository), which this crate implements.
//!
//! Each uses only those before it in this list that it needs: `codec` uses
//! `message` and `value`, `message` uses `value`, and `frame` and
//! `handshake` stand alone.

// A library crate: every public item is documented (the workspace warns;
// here it is an error).
#![deny(missing_docs)]

pub mod codec;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod protocol;
pub mod value;

pub use message::Codec;
pub use value::{from_value, to_value, Value, ValueError};

/// The protocol version this crate speaks, as reported by `anyd.version`.
pub const PROTOCOL_VERSION: u32 = 1;
