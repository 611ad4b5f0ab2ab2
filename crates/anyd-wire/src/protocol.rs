//! The wire protocol reference (`docs/PROTOCOL.md` in the repository, and
//! this module's page): frames, the handshake, the codecs, reserved
//! endpoints, errors, limits and the extensions. The code of this crate
//! implements it; this module holds no code.
//!
//! The text follows.
#![doc = include_str!("../PROTOCOL.md")]
