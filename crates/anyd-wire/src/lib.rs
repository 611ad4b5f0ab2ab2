//! The anyd wire protocol, with no I/O at all.
//!
//! This crate owns the bytes: frames (docs/PROTOCOL.md section 1), the
//! authentication handshake (section 2), requests and replies (section 3) in
//! the three codecs (section 4). Every function here works on byte buffers;
//! sockets, runtimes and time belong to the `anyd` crate. That split keeps the
//! protocol testable with byte literals and fuzzable without a network.

// A library crate: every public item is documented (the workspace warns;
// here it is an error).
#![deny(missing_docs)]

pub mod codec;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod value;

pub use message::Codec;
pub use value::{from_value, to_value, Value, ValueError};

/// The protocol version this crate speaks, as reported by `anyd.version`.
pub const PROTOCOL_VERSION: u32 = 1;
