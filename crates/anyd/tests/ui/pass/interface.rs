//! An interface with every kind of method, served, called through both
//! clients, and described, with no warning.
#![deny(warnings, missing_docs, unreachable_pub)]

use std::sync::Arc;

use anyd::schemars::JsonSchema;
use anyd::{Appd, Fd, Items, Peer};
use serde::{Deserialize, Serialize};

/// What `status` returns.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "anyd::schemars")]
pub struct Status {
    /// Whether the tunnel is up.
    pub up: bool,
}

/// The interface's errors.
#[derive(Debug, anyd::ApiError)]
pub enum VpnError {
    /// Nothing to tear down.
    NotConnected,
}

impl std::fmt::Display for VpnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not connected")
    }
}

/// A VPN daemon's API.
#[anyd::interface]
pub trait Vpn {
    /// Sync, fallible.
    #[api(name = "connect", allow(root, group = "vpn"))]
    fn up(&self, config: String, retries: Option<u32>) -> Result<Status, VpnError>;
    /// Async, with the caller.
    async fn disconnect(&self, peer: &Peer) -> Status;
    /// By `Arc`.
    fn status(self: Arc<Self>) -> Status;
    /// A stream.
    fn watch(&self) -> Items<Status>;
    /// Descriptors.
    fn open_log(&self, into: Option<Fd>) -> std::io::Result<Fd>;
    /// Nothing back.
    fn reset(&self);
}

struct Daemon;

impl Vpn for Daemon {
    fn up(&self, _: String, _: Option<u32>) -> Result<Status, VpnError> {
        Err(VpnError::NotConnected)
    }
    async fn disconnect(&self, _: &Peer) -> Status {
        Status { up: false }
    }
    fn status(self: Arc<Self>) -> Status {
        Status { up: false }
    }
    fn watch(&self) -> Items<Status> {
        Items::from_iter([Status { up: true }])
    }
    fn open_log(&self, _: Option<Fd>) -> std::io::Result<Fd> {
        Ok(Fd::from(std::fs::File::open("/dev/null")?))
    }
    fn reset(&self) {}
}

fn main() {
    let contract = VpnContract::contract();
    assert_eq!(contract.methods.len(), 6);
    let _appd = Appd::new().mount(VpnService::new(Daemon));
    let _blocking = |a: &'static str| VpnClient::connect(a);
    let _async = |a: &'static str| VpnAsyncClient::connect(a);
}
