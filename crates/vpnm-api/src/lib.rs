//! The interface of vpnmd, the example privileged daemon, and vpnm, its
//! command-line client: what the two agree on, and nothing else. vpnm
//! depends on this crate, not on the daemon's code; vpnmd implements
//! [`Vpnm`] on its state and mounts [`VpnmService`].
//!
//! The contract document this interface makes (`VpnmContract::contract()`)
//! is kept in `vpnmd.contract.json` beside this file; a test compares the
//! two, so that a change that breaks vpnm's clients fails until the copy
//! is updated on purpose (`ANYD_UPDATE_CONTRACT=1 cargo test -p vpnm-api`).
//! `cargo run -p vpnm-api --example contract` prints it.

use std::collections::BTreeMap;
use std::fmt;

use anyd::schemars::JsonSchema;
use anyd::{Fd, Items, Peer};
use serde::{Deserialize, Serialize};

/// The tunnels that are up.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "anyd::schemars")]
pub struct State {
    /// One entry per tunnel that is up, by profile.
    pub tunnels: BTreeMap<String, Tunnel>,
}

/// A tunnel that is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "anyd::schemars")]
pub struct Tunnel {
    /// The uid that brought it up.
    pub by_uid: Option<u32>,
    /// Seconds since the epoch.
    pub since: u64,
}

/// One tunnel brought up or torn down, as `watch()` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "anyd::schemars")]
pub struct Event {
    /// Up or down.
    pub change: Change,
    /// The tunnel's profile.
    pub profile: String,
    /// The uid that made the change, as the kernel reports the caller.
    pub uid: Option<u32>,
    /// Seconds since the epoch.
    pub at: u64,
}

/// What happened to a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "anyd::schemars")]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Brought up.
    Up,
    /// Torn down.
    Down,
}

impl Change {
    /// `up` or `down`.
    pub fn word(self) -> &'static str {
        match self {
            Change::Up => "up",
            Change::Down => "down",
        }
    }
}

/// Why vpnmd refuses.
#[derive(Debug, anyd::ApiError)]
pub enum VpnError {
    /// The tunnel is up already.
    AlreadyUp(String),
    /// The tunnel is not up.
    NotConnected(String),
    /// The daemon's state file cannot be read.
    Corrupt(String),
    /// A profile's name is made of ASCII letters, digits and `-`.
    #[api_error(kind = "ValueError")]
    BadProfile(String),
    /// The daemon could not read or write its files.
    #[api_error(kind = "OSError")]
    Io(String),
}

impl fmt::Display for VpnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VpnError::AlreadyUp(profile) => write!(f, "{profile} is already up"),
            VpnError::NotConnected(profile) => write!(f, "{profile} is not connected"),
            VpnError::Corrupt(why) => write!(f, "corrupt state file: {why}"),
            VpnError::BadProfile(profile) => write!(f, "bad profile name {profile:?}"),
            VpnError::Io(why) => f.write_str(why),
        }
    }
}

/// A pretend VPN daemon: tunnels brought up and down by profile, watched
/// as they change, and a log of every change. Anyone may ask for the
/// status and watch; the daemon decides who may change the tunnels and
/// read the log.
#[anyd::interface(name = "vpnm")]
pub trait Vpnm {
    /// The tunnels that are up.
    fn status(&self) -> Result<State, VpnError>;

    /// Every tunnel brought up or torn down from now on, by anyone, as it
    /// happens.
    fn watch(&self, peer: &Peer) -> Items<Event>;

    /// Brings up the tunnel of a profile.
    #[api(name = "connect")]
    fn up(&self, profile: String, peer: &Peer) -> Result<State, VpnError>;

    /// Tears down the tunnel of a profile.
    #[api(name = "disconnect")]
    fn down(&self, profile: String, peer: &Peer) -> Result<State, VpnError>;

    /// A read-only descriptor to the log of every change (root's file).
    fn open_log(&self, peer: &Peer) -> Result<Fd, VpnError>;
}

/// The endpoints that change the tunnels or tell who changed them: those
/// a daemon restricts (vpnmd: to a group and root).
pub const CHANGERS: [&str; 3] = ["connect", "disconnect", "open_log"];
