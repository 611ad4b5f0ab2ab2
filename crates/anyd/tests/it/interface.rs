//! `#[anyd::interface]` end to end: an interface declared as a trait (in a
//! module of its own here, as a crate would be), a daemon that implements
//! it and mounts its service, the generated clients, and the contract
//! document: built at build time from the interface, served by the daemon
//! at `anyd.describe`, the same; the daemon's closures and `#[anyd::api]`
//! blocks in it too; what a caller may not call left out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyd::contract::{Document, ErrorKind, ParamStructure};
use anyd::{Allow, Appd, ClientOptions, ClientSession, Codec, Error, Running};
use serde_json::json;

/// The interface, as its own crate would hold it: types, errors, trait.
mod tunnels_api {
    use std::collections::BTreeMap;

    use anyd::schemars::JsonSchema;
    use anyd::{Fd, Items, Peer};
    use serde::{Deserialize, Serialize};

    /// The tunnels that are up.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[schemars(crate = "anyd::schemars")]
    pub(super) struct State {
        /// By profile.
        pub(super) tunnels: BTreeMap<String, Tunnel>,
    }

    /// One tunnel.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[schemars(crate = "anyd::schemars")]
    pub(super) struct Tunnel {
        pub(super) mtu: u16,
        pub(super) by_uid: Option<u32>,
    }

    /// A change.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[schemars(crate = "anyd::schemars")]
    #[serde(rename_all = "lowercase")]
    pub(super) enum Event {
        Up { profile: String },
        Down { profile: String },
    }

    /// What only the secret endpoint returns.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[schemars(crate = "anyd::schemars")]
    pub(super) struct Secret {
        pub(super) word: String,
    }

    /// The tunnels' own failures.
    #[derive(Debug, anyd::ApiError)]
    pub(super) enum TunnelError {
        /// It is up already.
        AlreadyUp(String),
        /// The profile's name is not one.
        #[api_error(kind = "ValueError")]
        BadProfile(String),
    }

    impl std::fmt::Display for TunnelError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                TunnelError::AlreadyUp(p) => write!(f, "{p} is already up"),
                TunnelError::BadProfile(p) => write!(f, "bad profile name {p:?}"),
            }
        }
    }

    /// Pretend tunnels.
    #[anyd::interface(name = "tunnels", version = "2.1.0")]
    pub(super) trait Tunnels {
        /// The tunnels that are up.
        fn status(&self) -> State;

        /// Brings up the tunnel of a profile.
        #[api(name = "connect")]
        fn up(&self, profile: String, mtu: Option<u16>, peer: &Peer) -> Result<State, TunnelError>;

        /// Adds two numbers, later.
        #[api(name = "sum")]
        async fn add(&self, a: i64, b: i64) -> i64;

        /// Every change from now on.
        fn watch(&self) -> Items<Event>;

        /// A file, opened for the caller.
        fn open(&self, path: String) -> std::io::Result<Fd>;

        /// The length of what a descriptor reads.
        fn measure(self: std::sync::Arc<Self>, file: Fd) -> u64;

        /// Root's alone.
        #[api(allow(root))]
        fn secret(&self) -> Secret;

        /// Not an endpoint: a helper implementations provide.
        #[api(skip)]
        fn helper(&self) -> u8 {
            7
        }
    }
}

use tunnels_api::{
    Event, Secret, State, Tunnel, TunnelError, Tunnels, TunnelsAsyncClient, TunnelsClient,
    TunnelsContract, TunnelsService,
};

/// A daemon that implements the interface.
#[derive(Default)]
struct Daemon {
    state: Mutex<State>,
    events: Option<anyd::Hub<Event>>,
}

impl Tunnels for Daemon {
    fn status(&self) -> State {
        self.state.lock().unwrap().clone()
    }

    fn up(
        &self,
        profile: String,
        mtu: Option<u16>,
        peer: &anyd::Peer,
    ) -> Result<State, TunnelError> {
        if profile.is_empty() {
            return Err(TunnelError::BadProfile(profile));
        }
        let mut state = self.state.lock().unwrap();
        if state.tunnels.contains_key(&profile) {
            return Err(TunnelError::AlreadyUp(profile));
        }
        let tunnel = Tunnel {
            mtu: mtu.unwrap_or(1500),
            by_uid: peer.uid(),
        };
        state.tunnels.insert(profile.clone(), tunnel);
        if let Some(events) = &self.events {
            events.publish(Event::Up { profile });
        }
        Ok(state.clone())
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        tokio::task::yield_now().await;
        a + b
    }

    fn watch(&self) -> anyd::Items<Event> {
        match &self.events {
            Some(events) => events.subscribe(),
            None => anyd::Items::from_iter([Event::Down {
                profile: "none".into(),
            }]),
        }
    }

    fn open(&self, path: String) -> std::io::Result<anyd::Fd> {
        Ok(anyd::Fd::from(std::fs::File::open(path)?))
    }

    fn measure(self: Arc<Self>, file: anyd::Fd) -> u64 {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file.into_file(), &mut text).unwrap();
        text.len() as u64 + u64::from(self.helper()) - 7
    }

    fn secret(&self) -> Secret {
        Secret {
            word: "swordfish".into(),
        }
    }
}

fn start(appd: Appd) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tunnels.sock");
    let running = appd.bind(path.to_str().unwrap()).unwrap().spawn().unwrap();
    (running, dir)
}

fn options() -> ClientOptions {
    ClientOptions::new().timeout(Some(Duration::from_secs(10)))
}

#[test]
fn the_typed_blocking_client_calls_a_daemon_that_implements_the_interface() {
    let events = anyd::Hub::new(16);
    let daemon = Daemon {
        events: Some(events.clone()),
        ..Daemon::default()
    };
    let (d, dir) = start(Appd::new().mount(TunnelsService::new(daemon)));
    let mut client = TunnelsClient::connect_with(d.address(), options()).unwrap();

    assert_eq!(client.status().unwrap(), State::default());
    let state = client.up("office".into(), None).unwrap();
    assert_eq!(state.tunnels["office"].mtu, 1500);
    let e = client.up("office".into(), Some(9000)).unwrap_err();
    let e = e.remote().unwrap();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("TunnelError", "office is already up")
    );
    let e = client.up(String::new(), None).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, "ValueError");
    assert_eq!(client.add(2, 3).unwrap(), 5);
    assert_eq!(client.secret().unwrap().word, "swordfish");

    // Descriptors both ways.
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "twelve bytes").unwrap();
    let fd = client.open(file.to_str().unwrap().into()).unwrap();
    assert_eq!(client.measure(fd).unwrap(), 12);
    let e = client.open("/no/such/file".into()).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, "FileNotFoundError");

    // A stream.
    let mut watcher = TunnelsClient::connect_with(d.address(), options()).unwrap();
    let mut items = watcher.watch().unwrap();
    // Changes from the moment the daemon has subscribed the watcher.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while events.subscribers() == 0 {
        assert!(std::time::Instant::now() < deadline, "never subscribed");
        std::thread::sleep(Duration::from_millis(5));
    }
    client.up("home".into(), None).unwrap();
    assert_eq!(
        items.next().unwrap().unwrap(),
        Event::Up {
            profile: "home".into()
        }
    );
    drop(items);
    assert_eq!(watcher.add(1, 1).unwrap(), 2);
    client.end_session().unwrap();
}

#[test]
fn the_async_client_too() {
    let (d, _dir) = start(Appd::new().mount(TunnelsService::from_arc(Arc::new(Daemon::default()))));
    let address = d.address().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut client = TunnelsAsyncClient::connect_with(address.as_str(), options())
            .await
            .unwrap();
        assert_eq!(client.add(40, 2).await.unwrap(), 42);
        let state = client.up("home".into(), Some(1400)).await.unwrap();
        assert_eq!(state.tunnels["home"].mtu, 1400);
        let mut items = client.watch().await.unwrap();
        assert_eq!(
            items.next().await.unwrap().unwrap(),
            Event::Down {
                profile: "none".into()
            }
        );
        assert!(items.next().await.is_none());
        drop(items);
        client.end_session().await.unwrap();
    });
}

/// The names of a document's methods.
fn names(doc: &Document) -> Vec<&str> {
    doc.methods.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn the_contract_is_built_from_the_interface_alone() {
    let doc = TunnelsContract::contract();
    assert_eq!(
        (TunnelsContract::NAME, TunnelsContract::VERSION),
        ("tunnels", "2.1.0")
    );
    assert_eq!(
        (doc.info.title.as_str(), doc.info.version.as_str()),
        ("tunnels", "2.1.0")
    );
    assert_eq!(doc.info.description, "Pretend tunnels.");
    assert_eq!(doc.contract, anyd::contract::FORMAT);
    assert_eq!(
        names(&doc),
        ["status", "connect", "sum", "watch", "open", "measure", "secret"]
    );

    let connect = doc.method("connect").unwrap();
    assert_eq!(connect.description, "Brings up the tunnel of a profile.");
    assert_eq!(connect.param_structure, ParamStructure::Either);
    let params: Vec<_> = connect
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.required, p.keyword_only, p.fds))
        .collect();
    assert_eq!(
        params,
        [
            ("profile", true, false, false),
            ("mtu", false, false, false)
        ]
    );
    assert_eq!(connect.params[0].schema, json!({"type": "string"}));
    assert_eq!(
        connect.params[1].schema,
        json!({"type": ["integer", "null"], "format": "uint16", "minimum": 0, "maximum": 65535})
    );
    assert_eq!(
        connect.result.schema,
        json!({"$ref": "#/components/schemas/State"})
    );
    assert_eq!(
        connect.errors,
        Some(vec![
            ErrorKind::new("TunnelError", "The tunnels' own failures."),
            ErrorKind::new("ValueError", "The profile's name is not one."),
        ])
    );
    assert!(!connect.stream && !connect.takes_fds() && !connect.returns_fds());
    assert_eq!(doc.method("status").unwrap().errors, Some(vec![]));

    let watch = doc.method("watch").unwrap();
    assert!(watch.stream);
    assert_eq!(watch.result.name, "item");
    assert_eq!(
        watch.result.schema,
        json!({"$ref": "#/components/schemas/Event"})
    );

    let open = doc.method("open").unwrap();
    assert!(open.returns_fds() && !open.takes_fds());
    assert_eq!(open.errors.as_ref().unwrap().len(), 6, "io::Error's kinds");
    let fd = open.result.schema.as_value();
    assert_eq!(fd["type"], "object");
    assert_eq!(fd["required"], json!(["$fd"]));
    assert_eq!(
        fd["properties"]["$fd"],
        json!({"type": "integer", "minimum": 0})
    );
    assert_eq!(fd["x-anyd-fd"], "SCM_RIGHTS");
    let measure = doc.method("measure").unwrap();
    assert!(measure.takes_fds() && !measure.returns_fds());

    let schemas: Vec<_> = doc.components.schemas.keys().map(String::as_str).collect();
    assert_eq!(schemas, ["Event", "Secret", "State", "Tunnel"]);
    let state = doc.components.schemas["State"].as_value();
    assert_eq!(
        state["properties"]["tunnels"]["additionalProperties"],
        json!({"$ref": "#/components/schemas/Tunnel"})
    );

    // The document as JSON, and back.
    let text = doc.to_json_pretty();
    assert_eq!(Document::from_json(&text).unwrap(), doc);
    let bad = Document::from_json("{\"contract\": 1}").unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("not a contract document: missing field"),
        "{bad}"
    );
    let later = text.replacen("\"contract\": 1", "\"contract\": 99", 1);
    assert_eq!(
        Document::from_json(&later).unwrap_err().to_string(),
        "a contract document of format 99 (this program reads format 1)"
    );
}

#[test]
fn the_daemon_serves_the_same_document_in_every_codec() {
    let (d, _dir) = start(Appd::new().mount(TunnelsService::new(Daemon::default())));
    for codec in [Codec::MsgPack, Codec::Json] {
        let mut s = options().codec(codec).connect(d.address()).unwrap();
        let served: Document = s.commit("anyd.describe", ()).unwrap();
        assert_eq!(served, TunnelsContract::contract(), "{codec:?}");
        let e = s.commit::<Document>("anyd.describe", (1,)).unwrap_err();
        assert_eq!(e.remote().unwrap().kind, "TypeError");
    }
}

/// An `#[anyd::api]` block, half of whose types have a schema.
struct Extra;

#[derive(serde::Serialize, serde::Deserialize, anyd::schemars::JsonSchema)]
#[schemars(crate = "anyd::schemars")]
struct Described {
    n: u8,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Opaque {
    n: u8,
}

#[anyd::api]
impl Extra {
    /// With a schema.
    fn described(&self, d: Described, maybe: Option<String>) -> Result<u8, TunnelError> {
        let _ = maybe;
        Ok(d.n)
    }

    /// Without.
    fn opaque(&self, o: Opaque) -> Result<Opaque, anyd::RemoteError> {
        Ok(o)
    }
}

#[test]
fn closures_and_api_blocks_describe_themselves_as_far_as_their_types_allow() {
    let (d, _dir) = start(
        Appd::new()
            .mount(TunnelsService::new(Daemon::default()))
            .mount(Extra)
            .api("echo(arg)", |arg: String| arg)
            .doc("Returns its argument.")
            .api("pair", |a: u8, b: Option<anyd::Fd>| (a, b.is_some())),
    );
    let mut s = ClientSession::connect_with(d.address(), options()).unwrap();
    let doc: Document = s.commit("anyd.describe", ()).unwrap();
    assert_eq!(doc.info.title, "tunnels");
    assert_eq!(
        names(&doc),
        [
            "status",
            "connect",
            "sum",
            "watch",
            "open",
            "measure",
            "secret",
            "described",
            "opaque",
            "echo",
            "pair"
        ]
    );

    let described = doc.method("described").unwrap();
    assert_eq!(
        described.params[0].schema,
        json!({"$ref": "#/components/schemas/Described"})
    );
    assert!(!described.params[1].required, "from the binding");
    assert_eq!(described.errors.as_ref().unwrap()[1].kind, "ValueError");
    assert!(doc.components.schemas.contains_key("Described"));
    let opaque = doc.method("opaque").unwrap();
    assert_eq!(opaque.params[0].schema, json!({"x-rust-type": "Opaque"}));
    assert_eq!(opaque.result.schema, json!({"x-rust-type": "Opaque"}));
    assert_eq!(opaque.errors, None, "RemoteError: any kind");

    let echo = doc.method("echo").unwrap();
    assert_eq!(echo.description, "Returns its argument.");
    assert_eq!(echo.params[0].name, "arg");
    assert_eq!(echo.params[0].schema, json!({"x-rust-type": "String"}));
    assert_eq!(echo.errors, None);
    let pair = doc.method("pair").unwrap();
    assert_eq!(pair.param_structure, ParamStructure::ByPosition);
    let params: Vec<_> = pair
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.required, p.fds))
        .collect();
    assert_eq!(params, [("#1", true, false), ("#2", false, true)]);
    assert_eq!(pair.result.schema, json!({"x-rust-type": "(u8, bool)"}));

    // The argument check of the document, as a client would run it.
    let e = doc
        .check_call("described", &[json!({"n": 300})], &[])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "described(): parameter 'd': at .n: 300 is out of range"
    );
    assert_eq!(e.param.as_deref(), Some("d"));
    doc.check_call("echo", &[json!(5)], &[]).unwrap();
}

#[test]
fn a_caller_sees_only_what_it_may_call_and_the_types_of_that_as_root() {
    anyd_testkit::root::require_root("switching to another user");
    // An abstract socket: no file permissions, the policy is the gate.
    let name = format!("anyd-interface-{}", std::process::id());
    let d = Appd::new()
        .mount(TunnelsService::new(Daemon::default()))
        .api("admin()", || "root")
        .restrict(Allow::root())
        .restrict_endpoint("connect", Allow::root())
        .bind(format!("unix:@{name}"))
        .unwrap()
        .spawn()
        .unwrap();
    let address = d.address().to_string();
    let describe = |a: String| {
        let mut s = ClientSession::connect(a.as_str()).unwrap();
        let doc: Document = s.commit("anyd.describe", ()).unwrap();
        let listed: Vec<anyd::EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
        (doc, listed)
    };
    let (root, root_listed) = describe(address.clone());
    assert_eq!(
        names(&root),
        ["status", "connect", "sum", "watch", "open", "measure", "secret", "admin"]
    );
    assert!(root.components.schemas.contains_key("Secret"));
    let a = address.clone();
    let (nobody, nobody_listed) = anyd_testkit::root::as_nobody(move || describe(a));
    assert_eq!(
        names(&nobody),
        ["status", "sum", "watch", "open", "measure"]
    );
    // Nothing of what it may not call: not even its types' names.
    let text = serde_json::to_string(&nobody).unwrap();
    assert!(
        !text.contains("Secret") && !text.contains("secret"),
        "{text}"
    );
    for (doc, listed) in [(&root, &root_listed), (&nobody, &nobody_listed)] {
        let listed: Vec<_> = listed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names(doc),
            listed,
            "anyd.describe lists what anyd.endpoints does"
        );
    }
    // And it may not call them.
    let a = address.clone();
    let e = anyd_testkit::root::as_nobody(move || {
        let mut s = ClientSession::connect(a.as_str()).unwrap();
        s.commit::<Secret>("secret", ()).unwrap_err()
    });
    assert!(
        matches!(&e, Error::Remote(r) if r.kind == "NotImplementedError"),
        "{e}"
    );
}
