//! A daemon's settings as `Appd` collects them and the server reads
//! them, with their defaults; the setters and their documentation are
//! `appd.rs`'s.

use std::path::PathBuf;
use std::time::Duration;

use anyd_wire::codec::DecodeLimits;
use anyd_wire::frame;
use anyd_wire::handshake::HandshakeOptions;

use crate::capability::Keep;
use crate::transport::SocketFile;

/// Limits and options of a daemon; every one has a default.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) authkey: Option<Vec<u8>>,
    pub(super) handshake: HandshakeOptions,
    pub(super) max_frame: usize,
    /// `None`: `bind.rs`'s `default_memory_budget` of `max_frame`.
    pub(super) memory_budget: Option<usize>,
    pub(super) handshake_timeout: Duration,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) max_connections: usize,
    pub(super) max_connections_per_uid: Option<usize>,
    pub(super) reserved_connections: Option<usize>,
    pub(super) max_handshakes: usize,
    pub(super) shutdown_deadline: Duration,
    pub(super) socket_file: SocketFile,
    /// Looked up at bind, into `socket_file.group`.
    pub(super) socket_group_name: Option<String>,
    pub(super) allow_remote_without_authkey: bool,
    pub(super) handle_signals: bool,
    pub(super) decode_limits: DecodeLimits,
    pub(super) socket_activation: bool,
    pub(super) socket_name: Option<String>,
    pub(super) pid_file: Option<PathBuf>,
    pub(super) run_as: Option<String>,
    pub(super) keep_capabilities: Keep,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            authkey: None,
            handshake: HandshakeOptions::default(),
            max_frame: frame::DEFAULT_MAX_FRAME,
            memory_budget: None,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_connections: 1024,
            max_connections_per_uid: None,
            reserved_connections: None,
            max_handshakes: 64,
            shutdown_deadline: Duration::from_secs(5),
            socket_file: SocketFile::default(),
            socket_group_name: None,
            allow_remote_without_authkey: false,
            handle_signals: true,
            decode_limits: DecodeLimits::default(),
            socket_activation: true,
            socket_name: None,
            pid_file: None,
            run_as: None,
            keep_capabilities: Keep::default(),
        }
    }
}
