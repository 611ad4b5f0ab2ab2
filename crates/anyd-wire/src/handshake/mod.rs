//! The authentication handshake of
//! [protocol section 2](crate::protocol#2-authentication-handshake),
//! without I/O.
//!
//! This module owns the bytes of the handshake: the digest names, the
//! challenge message, the reply to a challenge, the check of a reply, and the
//! two state machines that run a whole mutual authentication on one
//! connection ([`ServerHandshake`] and [`ClientHandshake`]). It is
//! wire-compatible with Python's `multiprocessing.connection`, both the legacy
//! protocol of Python 3.11 and older (20-byte challenges, raw HMAC-MD5
//! replies) and the modern one of Python 3.12+ (`{digest}`-prefixed
//! challenges and replies).
//!
//! It does not own frames, sockets, timeouts or randomness. The state
//! machines take and produce frame *payloads*; the caller wraps them in frames
//! (see [`crate::frame`]), reads handshake frames with the
//! [`MAX_HANDSHAKE_FRAME`] limit, and passes in 40 fresh bytes from the
//! operating system's CSPRNG for each connection (the `anyd` crate uses
//! `getrandom`). Keeping the crate free of a random source keeps every test
//! here deterministic.
//!
//! # Driving a handshake
//!
//! Both state machines implement [`Handshake`], so one loop serves both sides.
//! A caller that owns a blocking socket writes:
//!
//! ```
//! use std::io::{self, Read, Write};
//! use anyd_wire::handshake::{Handshake, HandshakeError, MAX_HANDSHAKE_FRAME};
//!
//! fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
//!     w.write_all(&(payload.len() as u32).to_be_bytes())?;
//!     w.write_all(payload)?;
//!     w.flush()
//! }
//!
//! fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
//!     let mut header = [0; 4];
//!     r.read_exact(&mut header)?;
//!     let len = i32::from_be_bytes(header);
//!     // Refuse before allocating: a handshake frame is small.
//!     match usize::try_from(len) {
//!         Ok(len) if len <= MAX_HANDSHAKE_FRAME => {
//!             let mut payload = vec![0; len];
//!             r.read_exact(&mut payload)?;
//!             Ok(payload)
//!         }
//!         _ => Err(io::Error::new(io::ErrorKind::InvalidData, "handshake frame too large")),
//!     }
//! }
//!
//! #[derive(Debug)]
//! enum Error {
//!     Io(io::Error),
//!     Handshake(HandshakeError),
//! }
//!
//! fn authenticate(hs: &mut dyn Handshake, sock: &mut (impl Read + Write)) -> Result<(), Error> {
//!     if let Some(payload) = hs.start() {
//!         write_frame(sock, &payload).map_err(Error::Io)?;
//!     }
//!     while !hs.is_done() {
//!         let payload = read_frame(sock).map_err(Error::Io)?;
//!         match hs.receive(&payload) {
//!             Ok(step) => {
//!                 if let Some(reply) = step.send {
//!                     write_frame(sock, &reply).map_err(Error::Io)?;
//!                 }
//!             }
//!             Err(err) => {
//!                 // A rejected reply is answered with #FAILURE# before closing.
//!                 if let Some(last) = err.send_before_close() {
//!                     let _ = write_frame(sock, last);
//!                 }
//!                 return Err(Error::Handshake(err));
//!             }
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The same loop in memory, a server against a client:
//!
//! ```
//! use anyd_wire::handshake::{ClientHandshake, HandshakeOptions, ServerHandshake};
//!
//! let key = b"secret";
//! let mut server = ServerHandshake::new(key, HandshakeOptions::default(), [1; 40]);
//! let mut client = ClientHandshake::new(key, HandshakeOptions::default(), [2; 40]);
//! assert_eq!(client.start(), None); // the client speaks second
//!
//! let challenge = server.start().expect("the server challenges first");
//! let reply = client.receive(&challenge).unwrap().send.unwrap();
//! let welcome = server.receive(&reply).unwrap().send.unwrap();
//! let client_challenge = client.receive(&welcome).unwrap().send.unwrap();
//! let server_reply = server.receive(&client_challenge).unwrap().send.unwrap();
//! let step = client.receive(&server_reply).unwrap();
//! assert!(step.done && client.is_done());
//! let step = server.receive(&step.send.unwrap()).unwrap();
//! assert!(step.done && server.is_done());
//! ```

mod challenge;
mod client;
mod digest;
mod error;
mod server;
#[cfg(test)]
mod tests;

pub use challenge::{answer, challenge_message, verify};
pub use client::ClientHandshake;
pub use digest::Digest;
pub use error::HandshakeError;
pub use server::ServerHandshake;

/// The prefix of a challenge frame payload.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";

/// The verdict payload sent when a reply matched.
pub const WELCOME: &[u8] = b"#WELCOME#";

/// The verdict payload sent when a reply did not match, just before closing.
pub const FAILURE: &[u8] = b"#FAILURE#";

/// The largest handshake frame payload a peer may send, in bytes.
///
/// Python reads every handshake frame with `recv_bytes(256)`; the caller
/// enforces it on the frame header before reading the payload, and
/// [`Handshake::receive`] refuses longer payloads as well.
pub const MAX_HANDSHAKE_FRAME: usize = 256;

/// How many random bytes follow the `{digest}` prefix of a modern challenge.
///
/// Python 3.12+ uses 40; so do we, so that our challenges look like
/// Python's on the wire.
pub const CHALLENGE_RANDOM_LEN: usize = 40;

/// The settings of one side of a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandshakeOptions {
    /// The digest named in the challenges we send (default SHA-256, as in
    /// Python 3.12+). The peer answers with it unless it is a legacy peer,
    /// which always answers with raw MD5.
    pub digest: Digest,
    /// Refuse MD5 replies, raw or `{md5}`-prefixed (default false). This locks
    /// out Python 3.11 and older peers, which can only answer with MD5. It
    /// does not stop us from answering a legacy challenge: what it guards is
    /// the proof we accept, not the proof we give.
    pub require_modern: bool,
}

/// What to do after [`Handshake::receive`] accepted a payload.
///
/// The handshake is lock-step: every frame received produces at most one
/// frame to send, so `send` is an `Option` rather than a list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a Step may carry a payload that must be sent to the peer"]
pub struct Step {
    /// A payload to send to the peer, in one frame, before reading again.
    pub send: Option<Vec<u8>>,
    /// True once this side has finished the handshake successfully (after
    /// sending `send`, if any): the next frame on the connection is no longer
    /// a handshake frame.
    pub done: bool,
}

impl Step {
    /// A step that sends `payload` and continues the handshake.
    fn send(payload: Vec<u8>) -> Self {
        Step {
            send: Some(payload),
            done: false,
        }
    }
}

/// One side of a handshake, driven by the caller that owns the connection.
///
/// The caller sends what [`start`](Handshake::start) returns, then, until
/// [`is_done`](Handshake::is_done), reads one frame (with the
/// [`MAX_HANDSHAKE_FRAME`] limit), passes its payload to
/// [`receive`](Handshake::receive) and sends the payload of the returned
/// [`Step`]. On an error it sends
/// [`HandshakeError::send_before_close`], if any, and closes the connection.
/// The module documentation has the whole loop.
pub trait Handshake {
    /// The payload to send before reading anything: the server's challenge,
    /// or `None` for the client, which speaks second. Later calls return
    /// `None`.
    fn start(&mut self) -> Option<Vec<u8>>;

    /// Takes the payload of the next frame from the peer.
    ///
    /// # Errors
    ///
    /// Any [`HandshakeError`]; the handshake has then failed for good (later
    /// calls return [`HandshakeError::Unexpected`]) and the connection must be
    /// closed, after sending [`HandshakeError::send_before_close`] if any.
    fn receive(&mut self, payload: &[u8]) -> Result<Step, HandshakeError>;

    /// True once this side has completed the handshake successfully.
    fn is_done(&self) -> bool;
}
