//! Every kind of endpoint method, and both clients, with no warning.
#![deny(warnings, missing_docs, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyd::{Appd, Items, Peer};
use serde::{Deserialize, Serialize};

/// What `status` returns.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// Whether the tunnel is up.
    pub up: bool,
}

/// The daemon's errors.
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

/// The daemon.
#[derive(Default)]
pub struct Vpnmd {
    hits: AtomicU64,
}

#[anyd::api]
impl Vpnmd {
    /// A constructor stays a plain function.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sync, renamed, with an optional parameter and a fallible result.
    #[api(name = "connect")]
    fn up(&self, config_path: String, retries: Option<u32>) -> Result<Status, VpnError> {
        let _ = (config_path, retries);
        Ok(Status { up: true })
    }

    /// Async, with the caller's credentials.
    async fn disconnect(&self, peer: &Peer) -> Result<Status, VpnError> {
        let _ = peer.uid();
        Err(VpnError::NotConnected)
    }

    /// No result, a by-value `Peer` and a raw identifier.
    fn note(&self, r#type: String, peer: Peer) {
        let _ = (r#type, peer);
    }

    /// Holds the daemon by `Arc`; `Self` in a parameter type.
    async fn count(self: Arc<Self>, times: u64, _other: Option<Box<Self>>) -> u64 {
        self.hits.fetch_add(times, Ordering::Relaxed) + times
    }

    /// An `io::Result`, seen through for the client.
    fn read(&self, path: std::path::PathBuf) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    /// A stream, from an iterator.
    fn numbers(&self, n: u64) -> Items<u64> {
        Items::from_iter(0..n)
    }

    /// An async stream that may be refused before it starts.
    async fn watch(&self, tunnel: Option<String>) -> Result<anyd::Items<Status>, VpnError> {
        match tunnel {
            Some(_) => Ok(Items::from_iter([Status { up: true }])),
            None => Err(VpnError::NotConnected),
        }
    }

    /// Only with the `never` cfg.
    #[cfg(any())]
    fn hidden(&self) {}

    /// A helper that is not an endpoint.
    #[api(skip)]
    fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl serde::Serialize for Vpnmd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.hits())
    }
}

impl<'de> serde::Deserialize<'de> for Vpnmd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(|n| Vpnmd {
            hits: AtomicU64::new(n),
        })
    }
}

/// Calls every endpoint through the blocking client.
pub fn blocking(address: &str) -> anyd::Result<()> {
    let mut vpn = VpnmdClient::connect(address)?;
    let _: Status = vpn.up("/etc/vpn.json".into(), None)?;
    let _: Status = vpn.disconnect()?;
    vpn.note("x".into())?;
    let _: u64 = vpn.count(1, None)?;
    let _: Vec<u8> = vpn.read("/etc/hostname".into())?;
    let _: Vec<u64> = vpn.numbers(3)?.collect::<anyd::Result<_>>()?;
    let watch: anyd::ItemIter<'_, Status> = vpn.watch(Some("wg0".into()))?;
    drop(watch);
    vpn.end_session()
}

/// The same through the async client.
pub async fn nonblocking(address: &str) -> anyd::Result<()> {
    let options = anyd::ClientOptions::new();
    let mut vpn = VpnmdAsyncClient::connect_with(address, options).await?;
    let _: Status = vpn.up("/etc/vpn.json".into(), Some(2)).await?;
    let _: Status = vpn.disconnect().await?;
    let _: u64 = vpn.count(1, Some(Box::new(Vpnmd::new()))).await?;
    let mut numbers: anyd::ItemStream<'_, u64> = vpn.numbers(3).await?;
    while let Some(n) = numbers.next().await {
        let _: u64 = n?;
    }
    // It borrows the client until it is dropped (dropping cancels).
    drop(numbers);
    let _: anyd::ItemStream<'_, Status> = vpn.watch(None).await?;
    let session = vpn.into_session();
    VpnmdAsyncClient::from_session(session).end_session().await
}

fn main() {
    let vpn = Arc::new(Vpnmd::new());
    let _appd = Appd::new().mount(Arc::clone(&vpn));
    let _appd = Appd::new().mount(Vpnmd::new());
    let _ = (blocking, nonblocking);
}
