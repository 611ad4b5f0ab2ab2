//! `#[anyd::api]` end to end: a daemon declared as an impl block, served on
//! a temporary socket, called through the generated blocking and async
//! clients and through a plain `ClientSession` (keywords, omitted options),
//! with derived error kinds and introspection; streaming methods through
//! both typed clients.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyd::{
    ApiError as _, Appd, ClientOptions, ClientSession, Codec, EndpointInfo, Error, Hub, Items,
    Peer, RemoteError, Running,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Status {
    up: bool,
    config: Option<String>,
    retries: u32,
}

#[derive(Debug, PartialEq, anyd::ApiError)]
enum VpnError {
    NotConnected,
    #[api_error(kind = "ValueError")]
    BadConfig(String),
}

impl fmt::Display for VpnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VpnError::NotConnected => f.write_str("not connected"),
            VpnError::BadConfig(why) => write!(f, "bad config: {why}"),
        }
    }
}

/// A struct error with its kind chosen on the type.
#[derive(Debug, anyd::ApiError)]
#[api_error(kind = "vpn.Busy")]
struct Busy {
    seconds: u32,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "busy for {} s", self.seconds)
    }
}

/// A generic error type derives too.
#[derive(Debug, anyd::ApiError)]
struct Wrapped<T: fmt::Display>(T);

impl<T: fmt::Display> fmt::Display for Wrapped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wrapped: {}", self.0)
    }
}

#[derive(Default)]
struct Vpnmd {
    config: Mutex<Option<(String, u32)>>,
    calls: AtomicU64,
}

#[anyd::api]
impl Vpnmd {
    /// Brings the tunnel up with the given config.
    ///
    /// The path must not be empty.
    #[api(name = "connect")]
    fn up(&self, config_path: String, retries: Option<u32>) -> Result<Status, VpnError> {
        if config_path.is_empty() {
            return Err(VpnError::BadConfig("empty path".into()));
        }
        *self.config.lock().unwrap() = Some((config_path, retries.unwrap_or(3)));
        Ok(self.status())
    }

    /// Tears the tunnel down.
    async fn disconnect(&self, peer: &Peer) -> Result<Status, VpnError> {
        tokio::task::yield_now().await;
        assert!(peer.pid().is_some());
        match self.config.lock().unwrap().take() {
            Some(_) => Ok(Status {
                up: false,
                config: None,
                retries: 0,
            }),
            None => Err(VpnError::NotConnected),
        }
    }

    /// The tunnel's state.
    fn status(&self) -> Status {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let config = self.config.lock().unwrap().clone();
        Status {
            up: config.is_some(),
            retries: config.as_ref().map_or(0, |c| c.1),
            config: config.map(|c| c.0),
        }
    }

    /// Who is calling.
    fn whoami(&self, peer: Peer) -> (Option<u32>, Option<u32>) {
        (peer.uid(), peer.pid())
    }

    /// Greets `name`, with `greeting` or "hello".
    fn greet(&self, name: String, greeting: Option<String>, peer: &Peer) -> String {
        let _ = peer;
        format!("{}, {name}", greeting.as_deref().unwrap_or("hello"))
    }

    /// Forgets the config; returns nothing.
    fn reset(&self) {
        self.config.lock().unwrap().take();
    }

    /// Always busy.
    fn reload(&self) -> Result<(), Busy> {
        Err(Busy { seconds: 5 })
    }

    /// Adds, after giving the runtime a turn; holds the daemon by `Arc`.
    async fn add(self: Arc<Self>, a: i64, b: i64) -> i64 {
        tokio::task::yield_now().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        a + b
    }

    /// Reads a file.
    fn read_config(&self, path: std::path::PathBuf) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    /// Fails with a generic error type.
    fn wrapped(&self) -> Result<u8, Wrapped<u8>> {
        Err(Wrapped(7))
    }

    /// Not an endpoint.
    #[api(skip)]
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A constructor: no receiver, so a plain function.
    fn with_config(path: &str) -> Self {
        Vpnmd {
            config: Mutex::new(Some((path.to_owned(), 1))),
            calls: AtomicU64::new(0),
        }
    }
}

/// A daemon on a fresh socket path; the directory lives as long as the
/// returned guard.
fn start(appd: Appd) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vpnmd.sock");
    let running = appd.bind(path.to_str().unwrap()).unwrap().spawn().unwrap();
    (running, dir)
}

/// Every call below gives up after this long rather than hang the run.
fn options() -> ClientOptions {
    ClientOptions::new().timeout(Some(Duration::from_secs(10)))
}

fn remote(e: Error) -> RemoteError {
    match e {
        Error::Remote(r) => r,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn typed_blocking_client() {
    let (d, _dir) = start(Appd::new().mount(Vpnmd::default()));
    let mut vpn = VpnmdClient::connect_with(d.address(), options()).unwrap();

    assert!(!vpn.status().unwrap().up);
    let status = vpn.up("/etc/vpn.json".into(), None).unwrap();
    assert_eq!(
        status,
        Status {
            up: true,
            config: Some("/etc/vpn.json".into()),
            retries: 3
        }
    );
    assert_eq!(vpn.up("/etc/b.json".into(), Some(9)).unwrap().retries, 9);
    assert!(!vpn.disconnect().unwrap().up);
    vpn.up("/etc/c.json".into(), None).unwrap();
    vpn.reset().unwrap();
    assert!(!vpn.status().unwrap().up);
    assert_eq!(vpn.add(40, 2).unwrap(), 42);
    assert_eq!(vpn.greet("ann".into(), None).unwrap(), "hello, ann");
    let (uid, pid) = vpn.whoami().unwrap();
    assert_eq!(uid, Some(rustix::process::getuid().as_raw()));
    assert_eq!(pid, Some(std::process::id()));

    // Errors arrive with the kinds the error types chose.
    let e = remote(vpn.disconnect().unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("VpnError", "not connected")
    );
    let e = remote(vpn.up(String::new(), None).unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("ValueError", "bad config: empty path")
    );
    let e = remote(vpn.reload().unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("vpn.Busy", "busy for 5 s")
    );
    let e = remote(vpn.wrapped().unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("Wrapped", "wrapped: 7")
    );
    let e = remote(vpn.read_config("/nonexistent/vpn.json".into()).unwrap_err());
    assert_eq!(e.kind, "FileNotFoundError");

    // The session under the client stays usable for calls by name.
    let mut session = vpn.into_session();
    assert!(session.commit::<bool>("anyd.ping", ()).unwrap());
    let mut vpn = VpnmdClient::from_session(session);
    assert!(!vpn.status().unwrap().up);
    vpn.end_session().unwrap();
}

#[test]
fn typed_async_client() {
    let (d, _dir) = start(Appd::new().mount(Vpnmd::default()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for codec in [Codec::MsgPack, Codec::Json] {
            let mut vpn = VpnmdAsyncClient::connect_with(d.address(), options().codec(codec))
                .await
                .unwrap();
            let status = vpn.up("/etc/vpn.json".into(), Some(1)).await.unwrap();
            assert!(status.up && status.retries == 1);
            assert_eq!(vpn.add(1, 2).await.unwrap(), 3);
            vpn.reset().await.unwrap();
            vpn.up("/etc/vpn.json".into(), None).await.unwrap();
            assert!(!vpn.disconnect().await.unwrap().up);
            let e = remote(vpn.disconnect().await.unwrap_err());
            assert_eq!(e.kind, "VpnError");
            let e = remote(vpn.reload().await.unwrap_err());
            assert_eq!(e.kind, "vpn.Busy");
            vpn.end_session().await.unwrap();
        }
        let mut vpn = VpnmdAsyncClient::connect(d.address()).await.unwrap();
        assert!(!vpn.status().await.unwrap().up);
        let mut session = vpn.into_session();
        assert!(session.commit::<bool>("anyd.ping", ()).await.unwrap());
        VpnmdAsyncClient::from_session(session)
            .end_session()
            .await
            .unwrap();
    });
}

#[test]
fn plain_session_binds_by_position_keyword_and_omission() {
    let (d, _dir) = start(Appd::new().mount(Vpnmd::default()));
    let mut s = ClientSession::connect_with(d.address(), options()).unwrap();

    // By keyword, with the optional parameter left out.
    let kw = BTreeMap::from([("config_path", "/etc/vpn.json")]);
    let status: Status = s.commit_with("connect", (), kw).unwrap();
    assert_eq!(status.retries, 3);
    // Positional and keyword together.
    let kw = BTreeMap::from([("retries", 5)]);
    let status: Status = s.commit_with("connect", ("/etc/b.json",), kw).unwrap();
    assert_eq!(status.retries, 5);
    let kw = BTreeMap::from([("greeting", "hi"), ("name", "bo")]);
    assert_eq!(s.commit_with::<String>("greet", (), kw).unwrap(), "hi, bo");
    assert_eq!(s.commit::<String>("greet", ("al",)).unwrap(), "hello, al");
    assert_eq!(s.commit::<i64>("add", (2, 3)).unwrap(), 5);

    // The runtime's binding errors, unchanged for macro endpoints.
    let e = remote(s.commit::<Status>("connect", ()).unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        (
            "TypeError",
            "connect() missing required argument: 'config_path'"
        )
    );
    let kw = BTreeMap::from([("config", "/x")]);
    let e = remote(s.commit_with::<Status>("connect", (), kw).unwrap_err());
    assert_eq!(
        e.message,
        "connect() got an unexpected keyword argument 'config'"
    );
    // A Peer is not a wire argument.
    let e = remote(s.commit::<(u32, u32)>("whoami", (1,)).unwrap_err());
    assert_eq!(
        e.message,
        "whoami() takes 0 positional arguments but 1 were given"
    );
    let e = remote(s.commit::<i64>("add", (1, "two")).unwrap_err());
    assert_eq!(e.message, "add() argument 'b' must be i64, not str");
    // The method's name is not an endpoint once renamed; skipped methods
    // are not endpoints at all.
    for name in ["up", "calls", "with_config"] {
        let e = remote(s.commit::<Status>(name, ()).unwrap_err());
        assert_eq!(e.kind, "NotImplementedError", "{name}");
    }
    s.end_session().unwrap();
}

#[test]
fn introspection_shows_docs_names_and_written_types() {
    let (d, _dir) = start(Appd::new().mount(Vpnmd::default()));
    let mut s = ClientSession::connect_with(d.address(), options()).unwrap();
    let eps: Vec<EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
    let names: Vec<&str> = eps.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "connect",
            "disconnect",
            "status",
            "whoami",
            "greet",
            "reset",
            "reload",
            "add",
            "read_config",
            "wrapped"
        ]
    );
    let by_name = |n: &str| eps.iter().find(|e| e.name == n).unwrap();
    let params = |n: &str| -> Vec<(String, String, bool)> {
        by_name(n)
            .params
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.ty.clone(), p.optional))
            .collect()
    };

    let connect = by_name("connect");
    assert_eq!(
        connect.doc,
        "Brings the tunnel up with the given config.\n\nThe path must not be empty."
    );
    assert_eq!(
        params("connect"),
        [
            ("config_path".into(), "String".into(), false),
            ("retries".into(), "Option<u32>".into(), true)
        ]
    );
    assert_eq!(connect.returns, "Status", "the Ok type of the Result");

    assert!(
        by_name("disconnect").params.is_empty(),
        "&Peer is not shown"
    );
    assert_eq!(by_name("disconnect").doc, "Tears the tunnel down.");
    assert!(by_name("whoami").params.is_empty(), "Peer is not shown");
    assert_eq!(by_name("whoami").returns, "(Option<u32>, Option<u32>)");
    assert_eq!(
        params("greet"),
        [
            ("name".into(), "String".into(), false),
            ("greeting".into(), "Option<String>".into(), true)
        ]
    );
    assert_eq!(
        params("add"),
        [
            ("a".into(), "i64".into(), false),
            ("b".into(), "i64".into(), false)
        ]
    );
    assert_eq!(by_name("reload").returns, "()");
    // Written types lose their module paths, like the handler's.
    assert_eq!(
        params("read_config"),
        [("path".into(), "PathBuf".into(), false)]
    );
    assert_eq!(by_name("read_config").returns, "String");
}

#[test]
fn mount_takes_an_arc_and_mixes_with_closures() {
    let vpn = Arc::new(Vpnmd::with_config("/etc/start.json"));
    let (d, _dir) = start(
        Appd::new()
            .api("echo(arg)", |arg: String| arg)
            .mount(Arc::clone(&vpn)),
    );
    let mut client = VpnmdClient::connect_with(d.address(), options()).unwrap();
    assert_eq!(
        client.status().unwrap().config.as_deref(),
        Some("/etc/start.json")
    );
    assert_eq!(client.add(1, 1).unwrap(), 2);
    let mut session = client.into_session();
    assert_eq!(session.commit::<String>("echo", ("hi",)).unwrap(), "hi");
    // The program's own handle sees what the endpoints did.
    assert_eq!(vpn.calls(), 2);
}

#[test]
#[should_panic(expected = "endpoint \"status\" is registered twice")]
fn a_name_taken_by_a_closure_cannot_be_mounted_again() {
    let _ = Appd::new().api("status", || 1).mount(Vpnmd::default());
}

#[test]
fn derived_error_kinds_and_messages() {
    let e = VpnError::NotConnected.into_remote();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str(), e.data),
        ("VpnError", "not connected", None)
    );
    let e = VpnError::BadConfig("x".into()).into_remote();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("ValueError", "bad config: x")
    );
    assert_eq!(Busy { seconds: 1 }.into_remote().kind, "vpn.Busy");
    assert_eq!(Wrapped("w").into_remote().message, "wrapped: w");
}

/// A uid no test runs as.
const STRANGER: u32 = 4_000_000_123;

/// Endpoints behind `#[api(allow(...))]` rules.
struct Guarded;

#[anyd::api]
impl Guarded {
    /// Open to whoever the daemon admits.
    fn open(&self) -> String {
        "open".into()
    }

    /// Only the daemon's own user.
    #[api(allow(same_user))]
    fn mine(&self) -> String {
        "mine".into()
    }

    /// Nobody running these tests: a uid given as an expression.
    #[api(allow(uid = STRANGER))]
    fn theirs(&self) -> String {
        "theirs".into()
    }

    /// Alternatives: the stranger, or the same user.
    #[api(allow(uid = STRANGER), allow(same_user))]
    fn either(&self) -> String {
        "either".into()
    }
}

#[test]
fn allow_rules_gate_macro_endpoints_like_restrict() {
    let (d, _dir) = start(Appd::new().mount(Guarded));
    let mut client = GuardedClient::connect_with(d.address(), options()).unwrap();
    assert_eq!(client.open().unwrap(), "open");
    assert_eq!(client.mine().unwrap(), "mine");
    assert_eq!(client.either().unwrap(), "either");
    let denied = remote(client.theirs().unwrap_err());
    // As if it did not exist.
    assert_eq!(
        (denied.kind.as_str(), denied.message.as_str()),
        ("NotImplementedError", "theirs")
    );

    // The session survives the denial, and the listing leaves out what the
    // caller may not call.
    let mut session = client.into_session();
    let listed: Vec<EndpointInfo> = session.commit("anyd.endpoints", ()).unwrap();
    let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
    assert!(
        names.contains(&"mine") && names.contains(&"either"),
        "{names:?}"
    );
    assert!(!names.contains(&"theirs"), "{names:?}");
}

/// Rules by name, resolved when the daemon binds.
struct ByName;

#[anyd::api]
impl ByName {
    #[api(allow(user = "no-such-user-anyd-test", root))]
    fn guarded(&self) {}
}

#[test]
fn an_unknown_user_in_an_allow_rule_stops_the_daemon_at_bind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("byname.sock");
    let err = Appd::new()
        .mount(ByName)
        .bind(path.to_str().unwrap())
        .err()
        .expect("bind must refuse an unknown user");
    assert!(err.to_string().contains("no-such-user-anyd-test"), "{err}");
    assert!(!path.exists());
}

/// What `Feed::watch` streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    tunnel: String,
    up: bool,
}

/// Streaming endpoints, one of each kind, beside a unary one.
struct Feed {
    events: Hub<Event>,
}

#[anyd::api]
impl Feed {
    /// The numbers from `from`, below `to` (or without end).
    fn count(&self, from: u64, to: Option<u64>) -> Items<u64> {
        Items::from_iter(from..to.unwrap_or(u64::MAX))
    }

    /// Every event published from now on.
    async fn watch(&self) -> anyd::Items<Event> {
        tokio::task::yield_now().await;
        self.events.subscribe()
    }

    /// `n` ticks from a producer thread; no ticks at all is refused
    /// before the stream starts.
    async fn ticks(&self, n: u32) -> Result<Items<u32>, VpnError> {
        if n == 0 {
            return Err(VpnError::BadConfig("no ticks".into()));
        }
        let (tx, items) = anyd::channel();
        std::thread::spawn(move || {
            for i in 0..n {
                if tx.send(i).is_err() {
                    return;
                }
            }
        });
        Ok(items)
    }

    /// The lines of a file; a file that cannot be read is refused.
    fn lines(&self, path: std::path::PathBuf) -> std::io::Result<Items<String>> {
        let text = std::fs::read_to_string(path)?;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        Ok(Items::from_iter(lines))
    }

    /// Not a stream.
    fn echo(&self, word: String) -> String {
        word
    }
}

fn feed() -> (Arc<Feed>, Running, tempfile::TempDir) {
    let feed = Arc::new(Feed {
        events: Hub::new(16),
    });
    let (d, dir) = start(Appd::new().mount(Arc::clone(&feed)));
    (feed, d, dir)
}

fn event(tunnel: &str, up: bool) -> Event {
    Event {
        tunnel: tunnel.into(),
        up,
    }
}

#[test]
fn streaming_methods_through_the_blocking_client() {
    let (feed, d, _dir) = feed();
    let mut client = FeedClient::connect_with(d.address(), options()).unwrap();

    let counted: Vec<u64> = client
        .count(3, Some(8))
        .unwrap()
        .collect::<anyd::Result<_>>()
        .unwrap();
    assert_eq!(counted, [3, 4, 5, 6, 7]);
    let ticks: Vec<u32> = client
        .ticks(4)
        .unwrap()
        .collect::<anyd::Result<_>>()
        .unwrap();
    assert_eq!(ticks, [0, 1, 2, 3]);

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "one\ntwo\n").unwrap();
    let lines: Vec<String> = client
        .lines(file.path().to_owned())
        .unwrap()
        .collect::<anyd::Result<_>>()
        .unwrap();
    assert_eq!(lines, ["one", "two"]);

    // Refused before the stream starts: the error is the only item.
    let mut refused = client.ticks(0).unwrap();
    let e = remote(refused.next().unwrap().unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("ValueError", "bad config: no ticks")
    );
    assert!(refused.next().is_none());
    drop(refused);
    let mut refused = client.lines("/nonexistent/vpn.log".into()).unwrap();
    assert_eq!(
        remote(refused.next().unwrap().unwrap_err()).kind,
        "FileNotFoundError"
    );
    assert!(refused.next().is_none());
    drop(refused);

    let mut events = client.watch().unwrap();
    // Subscribed once the hub counts it: what is published from then on
    // reaches the client.
    anyd_testkit::process::wait_until("a subscriber", || feed.events.subscribers() == 1);
    feed.events.publish(event("wg0", true));
    feed.events.publish(event("wg0", false));
    assert_eq!(events.next().unwrap().unwrap(), event("wg0", true));
    assert_eq!(events.next().unwrap().unwrap(), event("wg0", false));
    drop(events);
    anyd_testkit::process::wait_until("no subscriber", || feed.events.subscribers() == 0);

    assert_eq!(client.echo("after".into()).unwrap(), "after");
    client.end_session().unwrap();
}

#[test]
fn a_typed_stream_dropped_mid_way_is_cancelled_and_the_client_goes_on() {
    let (feed, d, _dir) = feed();
    let mut client = FeedClient::connect_with(d.address(), options()).unwrap();

    // Without end: only a cancel stops it.
    let mut numbers = client.count(0, None).unwrap();
    assert_eq!(numbers.next().unwrap().unwrap(), 0);
    assert_eq!(numbers.next().unwrap().unwrap(), 1);
    drop(numbers);
    assert_eq!(client.echo("next".into()).unwrap(), "next");

    // A quiet stream: the daemon drops its subscriber.
    let events = client.watch().unwrap();
    anyd_testkit::process::wait_until("a subscriber", || feed.events.subscribers() == 1);
    drop(events);
    anyd_testkit::process::wait_until("no subscriber", || feed.events.subscribers() == 0);
    assert_eq!(client.echo("again".into()).unwrap(), "again");
    client.end_session().unwrap();
}

#[test]
fn streaming_methods_through_the_async_client() {
    let (feed, d, _dir) = feed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for codec in [Codec::MsgPack, Codec::Json] {
            let mut client = FeedAsyncClient::connect_with(d.address(), options().codec(codec))
                .await
                .unwrap();
            let mut counted = Vec::new();
            let mut numbers = client.count(3, Some(6)).await.unwrap();
            while let Some(n) = numbers.next().await {
                counted.push(n.unwrap());
            }
            drop(numbers);
            assert_eq!(counted, [3, 4, 5]);

            let mut refused = client.ticks(0).await.unwrap();
            let e = remote(refused.next().await.unwrap().unwrap_err());
            assert_eq!(e.kind, "ValueError");
            assert!(refused.next().await.is_none());
            drop(refused);

            {
                let mut events = client.watch().await.unwrap();
                // The client's runtime is this thread's: wait on another.
                let hub = feed.events.clone();
                tokio::task::spawn_blocking(move || {
                    anyd_testkit::process::wait_until("a subscriber", || hub.subscribers() == 1)
                })
                .await
                .unwrap();
                feed.events.publish(event("wg1", true));
                assert_eq!(events.next().await.unwrap().unwrap(), event("wg1", true));
            }
            // Dropped mid-way: the drop sent the cancel, and the next call
            // reads what was on its way first. The daemon drops the
            // subscriber before it reads that call, so it is gone by the
            // reply.
            assert_eq!(client.echo("after".into()).await.unwrap(), "after");
            assert_eq!(feed.events.subscribers(), 0);
            {
                let mut numbers = client.count(0, None).await.unwrap();
                assert_eq!(numbers.next().await.unwrap().unwrap(), 0);
            }
            assert_eq!(client.echo("again".into()).await.unwrap(), "again");
            client.end_session().await.unwrap();
        }
    });
}

#[test]
fn introspection_marks_streaming_methods_with_their_item_type() {
    let (_feed, d, _dir) = feed();
    let mut s = ClientSession::connect_with(d.address(), options()).unwrap();
    let eps: Vec<EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
    let shown: Vec<(&str, &str, bool)> = eps
        .iter()
        .map(|e| (e.name.as_str(), e.returns.as_str(), e.stream))
        .collect();
    assert_eq!(
        shown,
        [
            ("count", "u64", true),
            ("watch", "Event", true),
            ("ticks", "u32", true),
            ("lines", "String", true),
            ("echo", "String", false),
        ]
    );
    let count = &eps[0];
    assert_eq!(
        count.doc,
        "The numbers from `from`, below `to` (or without end)."
    );
    let params: Vec<(&str, &str, bool)> = count
        .params
        .iter()
        .map(|p| (p.name.as_deref().unwrap(), p.ty.as_str(), p.optional))
        .collect();
    assert_eq!(
        params,
        [("from", "u64", false), ("to", "Option<u64>", true)]
    );
}
