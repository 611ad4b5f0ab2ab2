//! A VPN-like daemon declared with `#[anyd::api]`, and its command line
//! client, in one program.
//!
//! ```sh
//! # A self-contained run: the daemon on a temporary socket, a few calls.
//! cargo run -p anyd-ipc --example vpnd_macro
//!
//! # Or as two processes:
//! cargo run -p anyd-ipc --example vpnd_macro -- serve unix:/tmp/vpnd.sock
//! cargo run -p anyd-ipc --example vpnd_macro -- call unix:/tmp/vpnd.sock watch   # in another terminal
//! cargo run -p anyd-ipc --example vpnd_macro -- call unix:/tmp/vpnd.sock connect /etc/vpn.json
//! cargo run -p anyd-ipc --example vpnd_macro -- call unix:/tmp/vpnd.sock status
//! cargo run -p anyd-ipc --example vpnd_macro -- call unix:/tmp/vpnd.sock disconnect
//! ```
//!
//! Nothing here touches the network: "connecting" records the config path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyd::{Appd, EndpointInfo, Hub, Items, Peer};
use serde::{Deserialize, Serialize};

/// What the daemon reports about the tunnel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Status {
    up: bool,
    config: Option<String>,
    /// How many times the tunnel came up since the daemon started.
    sessions: u64,
}

/// What `watch` streams: the tunnel's changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Event {
    /// The tunnel came up with this config.
    Connected { config: String },
    /// The tunnel went down at the request of this uid.
    Disconnected { by: Option<u32> },
}

/// The daemon's own errors; each reaches the client with its kind.
#[derive(Debug, anyd::ApiError)]
enum VpnError {
    /// Kind `VpnError`, the type's name.
    NotConnected,
    /// Kind `ValueError`, so that a Python client raises that class.
    #[api_error(kind = "ValueError")]
    BadConfig(String),
}

impl fmt::Display for VpnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VpnError::NotConnected => f.write_str("the tunnel is not up"),
            VpnError::BadConfig(why) => write!(f, "bad config: {why}"),
        }
    }
}

/// One value serves every connection at once: its mutable state sits
/// behind a lock and an atomic, and its watchers share a hub.
struct Vpnd {
    config: Mutex<Option<String>>,
    sessions: AtomicU64,
    events: Hub<Event>,
}

impl Default for Vpnd {
    fn default() -> Self {
        Vpnd {
            config: Mutex::new(None),
            sessions: AtomicU64::new(0),
            // A watcher more than 64 changes behind is told it missed some.
            events: Hub::new(64),
        }
    }
}

#[anyd::api]
impl Vpnd {
    /// Brings the tunnel up with the given config file.
    ///
    /// `mtu` defaults to 1420.
    // `connect` is the client's constructor, so the method has another
    // name and the endpoint keeps the natural one.
    #[api(name = "connect")]
    fn up(&self, config_path: String, mtu: Option<u16>) -> Result<Status, VpnError> {
        if !config_path.ends_with(".json") {
            return Err(VpnError::BadConfig(format!(
                "{config_path} is not a .json file"
            )));
        }
        tracing::info!(config_path, mtu = mtu.unwrap_or(1420), "tunnel up");
        *self.config.lock().unwrap() = Some(config_path.clone());
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.events.publish(Event::Connected {
            config: config_path,
        });
        Ok(self.status())
    }

    /// Tears the tunnel down. Only root and the daemon's own user may:
    /// anyone else is told it does not exist (`NotImplementedError`).
    #[api(allow(root, same_user))]
    async fn disconnect(&self, peer: &Peer) -> Result<Status, VpnError> {
        // Released before status() takes the lock again.
        let was_up = self.config.lock().unwrap().take().is_some();
        if was_up {
            tracing::info!(uid = ?peer.uid(), "tunnel down");
            self.events.publish(Event::Disconnected { by: peer.uid() });
            Ok(self.status())
        } else {
            Err(VpnError::NotConnected)
        }
    }

    /// The tunnel's state.
    fn status(&self) -> Status {
        let config = self.config.lock().unwrap().clone();
        Status {
            up: config.is_some(),
            config,
            sessions: self.sessions.load(Ordering::Relaxed),
        }
    }

    /// Every change of the tunnel from now on, as it happens.
    // Returning `Items` makes it a streaming endpoint: the typed client's
    // `watch` gives an iterator of events.
    fn watch(&self) -> Items<Event> {
        self.events.subscribe()
    }
}

type Main = Result<(), Box<dyn std::error::Error>>;

fn main() -> Main {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours for a terminal only: a journal or a log file gets text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => demo(),
        ["serve", address] => Ok(Appd::new().mount(Vpnd::default()).bind(*address)?.serve()?),
        ["call", address, rest @ ..] => call(address, rest),
        _ => Err("usage: vpnd_macro [serve ADDRESS | call ADDRESS connect PATH | status | disconnect | watch | endpoints]".into()),
    }
}

/// The typed client at work: one method per endpoint.
fn call(address: &str, what: &[&str]) -> Main {
    let mut vpn = VpndClient::connect(address)?;
    match what {
        ["connect", path] => println!("{:?}", vpn.up((*path).to_owned(), None)?),
        ["status"] => println!("{:?}", vpn.status()?),
        ["disconnect"] => println!("{:?}", vpn.disconnect()?),
        ["watch"] => {
            // Until Ctrl-C, or the daemon stops: its streams then end with
            // a `Shutdown` error, and the connection with them.
            for event in vpn.watch()? {
                match event {
                    Ok(event) => println!("{event:?}"),
                    Err(e) if e.remote().is_some_and(|r| r.kind == "Shutdown") => {
                        println!("the daemon stopped");
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        ["endpoints"] => {
            let mut session = vpn.into_session();
            let endpoints: Vec<EndpointInfo> = session.commit("anyd.endpoints", ())?;
            for e in endpoints {
                let params: Vec<String> = e
                    .params
                    .iter()
                    .map(|p| format!("{}: {}", p.name.as_deref().unwrap_or("_"), p.ty))
                    .collect();
                let doc = e.doc.replace('\n', "\n    ");
                let params = params.join(", ");
                let returns = match e.stream {
                    true => format!("stream of {}", e.returns),
                    false => e.returns,
                };
                println!("{}({params}) -> {returns}\n    {doc}", e.name);
            }
            return Ok(());
        }
        _ => return Err(format!("unknown call {what:?}").into()),
    }
    vpn.end_session()?;
    Ok(())
}

/// Serves on a temporary socket and calls it: what the two-process
/// commands do, in one run.
fn demo() -> Main {
    let path = std::env::temp_dir().join(format!("vpnd_macro-{}.sock", std::process::id()));
    let address = format!("unix:{}", path.display());
    // Mounted by `Arc`: the demo keeps a handle on the daemon's hub.
    let vpnd = Arc::new(Vpnd::default());
    let running = Appd::new()
        .mount(Arc::clone(&vpnd))
        .bind(&*address)?
        .spawn()?;
    println!("serving on {address}");

    // A watcher first, so that its stream has the changes the calls below
    // make.
    let mut watcher = VpndClient::connect(&*address)?;
    let mut events = watcher.watch()?;
    until_watched(&vpnd)?;

    for what in [
        &["endpoints"][..],
        &["connect", "/etc/vpn.json"],
        &["status"],
        &["disconnect"],
    ] {
        println!("> {}", what.join(" "));
        call(&address, what)?;
    }

    println!("> watch (what the watcher saw meanwhile)");
    for _ in 0..2 {
        println!("{:?}", events.next().ok_or("the stream ended early")??);
    }
    // Dropping the iterator cancels the stream: the daemon drops its
    // subscriber, and the client serves calls again.
    drop(events);
    println!("{:?}", watcher.status()?);
    watcher.end_session()?;

    // Errors arrive with their kinds.
    let mut vpn = VpndClient::connect(&*address)?;
    for result in [vpn.disconnect(), vpn.up("/etc/vpn.yaml".into(), Some(1280))] {
        if let Err(e) = result {
            let remote = e.remote().ok_or("not a remote error")?;
            println!("error {}: {}", remote.kind, remote.message);
        }
    }
    vpn.end_session()?;
    running.shutdown()?;
    Ok(())
}

/// Waits until the daemon has subscribed a watcher. A client cannot tell:
/// a stream's first frame is its first item, and this one has none until
/// something changes. The daemon's hub counts its subscribers.
fn until_watched(vpnd: &Vpnd) -> Main {
    let deadline = Instant::now() + Duration::from_secs(10);
    while vpnd.events.subscribers() == 0 {
        if Instant::now() > deadline {
            return Err("the watcher was not subscribed within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
