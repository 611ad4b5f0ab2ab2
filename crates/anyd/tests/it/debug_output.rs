//! What `Debug` shows of every client-side type: its state (the address,
//! whether it is connected, the codec and other options, a call or a
//! stream under way), never the key, never bytes from the wire (the
//! handshake's MAC and the replies sit in a client's read buffer, the last
//! request in its write buffer), and in a few hundred bytes.

use std::time::Duration;

use anyd::{channel, Appd, AsyncClientSession, ClientOptions, ClientSession, Hub, Items, Running};

/// The key of the daemon and its clients, with bytes that print in every
/// way a `Debug` could print them.
const KEY: &[u8] = b"s3cr3t-k3y-7f2a\x00\xfe";

/// What the calls send and get back, so that it is in the clients'
/// buffers when they are shown.
const WORD: &str = "zq5-payload-from-the-wire-e41c";

/// A unary endpoint and a streaming one, for the typed clients.
struct Echod;

#[anyd::api]
impl Echod {
    /// Returns `word`.
    fn echo(&self, word: String) -> String {
        word
    }

    /// `word`, `n` times.
    fn repeat(&self, word: String, n: u32) -> Items<String> {
        Items::from_iter(std::iter::repeat_n(word, n as usize))
    }
}

/// A daemon that wants the key, on a fresh socket path; the directory
/// lives as long as the returned guard.
fn start() -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echod.sock");
    let running = Appd::new()
        .authkey(KEY)
        .mount(Echod)
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    (running, dir)
}

/// Every call below gives up after this long rather than hang the run.
fn options() -> ClientOptions {
    ClientOptions::new()
        .authkey(KEY)
        .timeout(Some(Duration::from_secs(10)))
}

/// The forms in which a secret or a payload could show in `Debug`.
fn forms(bytes: &[u8]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(&bytes[..12]).into_owned(),
        format!("{bytes:?}"),
        format!("{:?}", bytes.to_vec()),
        format!("{:?}", String::from_utf8_lossy(bytes)),
        format!("{:?}", bytes.escape_ascii().to_string()),
        bytes[..8].iter().map(|b| format!("{b:02x}")).collect(),
    ]
}

/// Whether `shown` holds a run of 16 or more numbers that could be bytes,
/// as `Debug` prints a `Vec<u8>` or `[u8]` compact (`1, 2, 3`) or pretty
/// (one a line).
fn has_byte_run(shown: &str) -> bool {
    let mut run = 0;
    for token in shown.split(',') {
        let token = token.trim_matches(|c: char| c.is_whitespace() || c == '[' || c == ']');
        if !token.is_empty() && token.parse::<u8>().is_ok() {
            run += 1;
            if run >= 16 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The start of `shown`, for a failure's message: what went wrong may
/// be megabytes long.
fn head(shown: &str) -> &str {
    match shown.char_indices().nth(2000) {
        Some((cut, _)) => &shown[..cut],
        None => shown,
    }
}

/// Checks what `value` shows, compact and pretty; `expect` must be in the
/// compact form (the state it is to show).
fn check(what: &str, value: &dyn std::fmt::Debug, expect: &[&str]) {
    let compact = format!("{value:?}");
    let pretty = format!("{value:#?}");
    let secrets: Vec<String> = forms(KEY)
        .into_iter()
        .chain(forms(WORD.as_bytes()))
        .collect();
    for shown in [&compact, &pretty] {
        for secret in &secrets {
            assert!(
                !shown.contains(secret.as_str()),
                "{what} shows {secret}: {}",
                head(shown)
            );
        }
        assert!(!has_byte_run(shown), "{what} shows bytes: {}", head(shown));
    }
    // Short: a read buffer alone is 64 KiB. Pretty output indents every
    // nested line, so it is allowed more.
    assert!(
        compact.len() < 1024,
        "{what}: {} bytes: {}",
        compact.len(),
        head(&compact)
    );
    assert!(
        pretty.len() < 4096,
        "{what}: {} bytes: {}",
        pretty.len(),
        head(&pretty)
    );
    for part in expect {
        assert!(
            compact.contains(part),
            "{what} does not show {part}: {compact}"
        );
    }
}

#[test]
fn client_types_show_their_state_never_the_key_nor_wire_bytes() {
    let (d, _dir) = start();
    let address = d.address().clone();
    let options = options();
    check(
        "ClientOptions",
        &options,
        &["authkey: Some(<hidden>)", "codec: MsgPack"],
    );
    assert!(format!("{:?}", ClientOptions::new()).contains("authkey: None"));

    // After the handshake and a call: the daemon's MAC and the reply have
    // been read, the request written.
    let mut session = ClientSession::connect_with(&address, options.clone()).unwrap();
    let echoed: String = session.commit("echo", (WORD,)).unwrap();
    assert_eq!(echoed, WORD);
    check(
        "ClientSession",
        &session,
        &[
            "connected: true",
            "in_flight: false",
            "streaming: false",
            "authkey: Some(<hidden>)",
            "echod.sock",
        ],
    );
    {
        let mut items = session.stream::<String>("repeat", (WORD, 3)).unwrap();
        assert_eq!(items.next().unwrap().unwrap(), WORD);
        check("ItemIter", &items, &["streaming: true"]);
        let canceller = items.canceller().unwrap();
        check("Canceller", &canceller, &["stream_open: Some(true)"]);
        check("ItemIter with a canceller", &items, &["stream_open"]);
    }
    let mut typed = EchodClient::from_session(session);
    assert_eq!(typed.echo(WORD.into()).unwrap(), WORD);
    check("EchodClient", &typed, &["connected: true"]);
    {
        let mut items = typed.repeat(WORD.into(), 2).unwrap();
        assert_eq!(items.next().unwrap().unwrap(), WORD);
        check("EchodClient's ItemIter", &items, &["streaming: true"]);
    }
    typed.end_session().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut session = AsyncClientSession::connect_with(&address, options.clone())
            .await
            .unwrap();
        let echoed: String = session.commit("echo", (WORD,)).await.unwrap();
        assert_eq!(echoed, WORD);
        check(
            "AsyncClientSession",
            &session,
            &["connected: true", "in_flight: false", "echod.sock"],
        );
        {
            let mut items = session.stream::<String>("repeat", (WORD, 3)).await.unwrap();
            assert_eq!(items.next().await.unwrap().unwrap(), WORD);
            check("ItemStream", &items, &["streaming: true"]);
        }
        let mut typed = EchodAsyncClient::from_session(session);
        assert_eq!(typed.echo(WORD.into()).await.unwrap(), WORD);
        check("EchodAsyncClient", &typed, &["connected: true"]);
        typed.end_session().await.unwrap();
    });

    // The daemon's side of a stream, which handlers make.
    check("Items", &Items::from_iter([WORD.to_owned()]), &[]);
    let (sender, items) = channel::<String>();
    check("ItemSender", &sender, &[]);
    check("Items of a channel", &items, &[]);
    let hub: Hub<String> = Hub::new(4);
    hub.publish(WORD.to_owned());
    check("Hub", &hub, &["capacity: 4"]);
}
