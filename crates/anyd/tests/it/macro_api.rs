//! `#[anyd::api]` end to end: a daemon declared as an impl block, served on
//! a temporary socket, called through the generated blocking and async
//! clients and through a plain `ClientSession` (keywords, omitted options),
//! with derived error kinds and introspection.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyd::{
    ApiError as _, Appd, ClientOptions, ClientSession, Codec, EndpointInfo, Error, Peer,
    RemoteError, Running,
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

#[test]
fn debug_output_never_shows_the_authkey() {
    const KEY: &[u8] = b"s3cr3t-k3y-7f2a\x00\xfe";
    let (d, _dir) = start(Appd::new().authkey(KEY).mount(Vpnmd::default()));
    let options = options().authkey(KEY);
    // The key in every form a Debug could print it.
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    let forms = [
        String::from_utf8_lossy(&KEY[..15]).into_owned(),
        format!("{KEY:?}"),
        format!("{KEY:#?}"),
        format!("{:?}", KEY.to_vec()),
        format!("{:?}", String::from_utf8_lossy(KEY)),
        format!("{:?}", KEY.escape_ascii().to_string()),
        hex,
    ];
    let check = |what: &str, compact: String, pretty: String| {
        for shown in [&compact, &pretty] {
            for form in &forms {
                assert!(
                    !shown.contains(form.as_str()),
                    "{what} shows the key: {shown}"
                );
            }
        }
        assert!(
            compact.contains("authkey: Some(<hidden>)"),
            "{what}: {compact}"
        );
        assert!(pretty.contains("<hidden>"), "{what}: {pretty}");
    };
    check(
        "ClientOptions",
        format!("{options:?}"),
        format!("{options:#?}"),
    );
    let session = ClientSession::connect_with(d.address(), options.clone()).unwrap();
    check(
        "ClientSession",
        format!("{session:?}"),
        format!("{session:#?}"),
    );
    let vpn = VpnmdClient::from_session(session);
    check("VpnmdClient", format!("{vpn:?}"), format!("{vpn:#?}"));
    drop(vpn);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let session = anyd::AsyncClientSession::connect_with(d.address(), options.clone())
            .await
            .unwrap();
        check(
            "AsyncClientSession",
            format!("{session:?}"),
            format!("{session:#?}"),
        );
        let vpn = VpnmdAsyncClient::from_session(session);
        check("VpnmdAsyncClient", format!("{vpn:?}"), format!("{vpn:#?}"));
        vpn.end_session().await.unwrap();
    });
    // Without a key, Debug says so.
    assert!(format!("{:?}", ClientOptions::new()).contains("authkey: None"));
}
