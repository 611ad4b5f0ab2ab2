//! What the workspace's tests and benchmark share, so that none of them
//! includes another's files: a test binary run again as a child process
//! ([`rerun`]), the daemon such a child serves ([`process`]), bytes a real
//! client would never send ([`raw`]), other users and root's files
//! ([`root`]), and Python anyd in a shared venv ([`python`]).
//!
//! Not published, and no part of any API: a dev-dependency of `anyd-ipc`
//! (its integration tests and benchmark) and of `anydctl` (its CLI tests).
//!
//! Every wait here has a deadline ([`PATIENCE`] unless said otherwise), so
//! that a test that hangs fails instead; nextest's `slow-timeout`
//! (`.config/nextest.toml`) is the backstop behind it.

use std::time::Duration;

pub mod process;
pub mod python;
pub mod raw;
pub mod rerun;
pub mod root;

/// How long any one wait may take before the test fails. Generous: a
/// loaded two-core machine running a debug build is slow, and a hung test
/// must still end.
pub const PATIENCE: Duration = Duration::from_secs(60);
