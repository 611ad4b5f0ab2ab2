//! The clients: [`ClientSession`], blocking (std sockets, no runtime: a
//! CLI must start fast; feature `client`), and `AsyncClientSession` on
//! tokio (feature `async-client`, which takes `client` along), with the
//! [`ClientOptions`] they share, and [`CallCanceller`], which cancels a
//! blocking session's call from another thread.
//!
//! One call protocol for both: `session` holds it with no I/O (the
//! request to send, what a reply means, when a session is closed), and
//! each client only drives it with its own reads and writes (`blocking`,
//! `async_session`). Connecting is the transport's (`transport::connect`),
//! frames are `frame_buffer`'s, the handshake's order `handshake`'s.

#[cfg(feature = "async-client")]
mod async_session;
mod blocking;
mod call_cancel;
mod options;
mod session;

#[cfg(feature = "async-client")]
pub use async_session::{AsyncClientSession, ItemStream};
pub use blocking::{Canceller, ClientSession, ItemIter};
pub use call_cancel::CallCanceller;
pub use options::ClientOptions;
