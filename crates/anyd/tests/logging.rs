//! What a daemon says at the info level, where logs usually go: sessions,
//! refusals and errors, but never a payload and never a key.
//!
//! A test binary of its own: it installs the process's global log
//! subscriber, which would capture (and be disturbed by) every other test
//! of the `it` binary that shares its process under `cargo test`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use anyd::wire::frame;
use anyd::{Appd, ClientOptions, ClientSession};

/// Where the subscriber writes: one buffer, shared.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A caller's W3C trace context.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn info_logs_name_events_and_never_payloads_or_keys() {
    const KEY: &str = "key-3f6e9c0b-never-logged";
    const PAYLOAD: &str = "payload-a81d-never-logged";
    const MALFORMED: &str = "malformed-77c2-never-logged";
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        // A line as each span closes, with the fields recorded by then.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let d = Appd::new()
        .authkey(KEY)
        .api("echo(a)", |a: String| a)
        .api("greet()", || tracing::info!("a handler's own line"))
        // Restricted (to this process's user), and audited.
        .api("secret(a)", |a: String| a.len())
        .restrict(anyd::Allow::uid(rustix::process::getuid().as_raw()))
        .audit(true)
        .api(
            "fail(a)",
            |_a: String| -> Result<String, anyd::RemoteError> {
                Err(anyd::RemoteError::new("ValueError", "refused"))
            },
        )
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    let good = ClientOptions::new().authkey(KEY);

    // Calls that succeed and fail, with the payload in the arguments.
    let mut s = good.clone().connect(d.address()).unwrap();
    assert_eq!(s.commit::<String>("echo", (PAYLOAD,)).unwrap(), PAYLOAD);
    assert!(s.commit::<String>("fail", (PAYLOAD,)).is_err());
    assert!(s.commit::<String>("missing", (PAYLOAD,)).is_err());
    s.commit::<()>("greet", ()).unwrap();
    assert_eq!(
        s.commit::<usize>("secret", (PAYLOAD,)).unwrap(),
        PAYLOAD.len()
    );
    s.end_session().unwrap();

    // A wrong key, and a client without one.
    assert!(ClientOptions::new()
        .authkey("not-the-key")
        .connect(d.address())
        .is_err());
    let mut keyless = ClientSession::connect(d.address()).unwrap();
    assert!(keyless.commit::<String>("echo", (PAYLOAD,)).is_err());
    drop(keyless);

    // A malformed request, on a daemon without a key (a raw socket needs
    // no handshake there): an error reply, and the session goes on.
    let open_path = dir.path().join("open.sock");
    let open = Appd::new()
        .api("echo(a)", |a: String| a)
        .bind(open_path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    let mut bytes = vec![0x93, 0xa4];
    bytes.extend_from_slice(b"echo");
    // A str8 claiming 200 bytes, followed by fewer.
    bytes.extend_from_slice(&[0xd9, 200]);
    bytes.extend_from_slice(MALFORMED.as_bytes());
    let mut framed = Vec::new();
    frame::encode(&bytes, &mut framed);
    let mut raw = UnixStream::connect(&open_path).unwrap();
    raw.write_all(&framed).unwrap();
    let mut header = [0u8; 4];
    raw.read_exact(&mut header).unwrap();
    let mut reply = vec![0; u32::from_be_bytes(header) as usize];
    raw.read_exact(&mut reply).unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("malformed request"));
    // A call with the caller's trace context (JSON, request options).
    let mut options = anyd::wire::codec::RequestOptions::NONE;
    options.traceparent = Some(TRACEPARENT.into());
    let mut traced = Vec::new();
    let mark = frame::begin(&mut traced);
    anyd::wire::codec::encode_request_with(
        anyd::Codec::Json,
        "echo",
        &("x",),
        &(),
        &options,
        &mut traced,
    )
    .unwrap();
    frame::finish(&mut traced, mark);
    raw.write_all(&traced).unwrap();
    raw.read_exact(&mut header).unwrap();
    let mut reply = vec![0; u32::from_be_bytes(header) as usize];
    raw.read_exact(&mut reply).unwrap();
    assert_eq!(reply, br#"{"ok":"x"}"#);
    drop(raw);
    open.shutdown().unwrap();

    d.shutdown().unwrap();
    let text = log.text();
    // The log was written, and says what happened.
    assert!(text.contains("listening"), "{text}");
    assert!(text.contains("handshake failed"), "{text}");
    // A handler's own line says which call and which caller it serves:
    // the fourth call of its connection, by this process's user.
    let own = text
        .lines()
        .find(|l| l.contains("a handler's own line"))
        .unwrap_or_else(|| panic!("no handler line in:\n{text}"));
    let uid = rustix::process::getuid().as_raw();
    let pid = std::process::id();
    assert!(
        own.contains(&format!("conn{{uid={uid} gid=")) && own.contains(&format!("pid={pid}}}")),
        "{own}"
    );
    // Its call's span: endpoint, number on its connection, codec (the
    // outcome and duration come at its end).
    assert!(
        own.contains("call{endpoint=greet n=4 codec=MsgPack}"),
        "{own}"
    );
    // As the call's span closes, it has its outcome and duration too; the
    // failed call, its error's kind.
    let closed = |endpoint: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("call{{endpoint={endpoint} ")) && l.contains("close"))
            .collect::<Vec<_>>()
    };
    let greet = closed("greet");
    assert_eq!(greet.len(), 1, "{text}");
    assert!(
        greet[0].contains(r#"outcome="ok" duration_us="#),
        "{}",
        greet[0]
    );
    let fail = closed("fail");
    assert!(fail[0].contains(r#"outcome="ValueError""#), "{}", fail[0]);
    // The traced call's span has the caller's trace id.
    let echo = closed("echo");
    let traced: Vec<&&str> = echo.iter().filter(|l| l.contains("trace_id=")).collect();
    assert_eq!(traced.len(), 1, "{text}");
    assert!(
        traced[0].contains(r#"codec=Json trace_id=4bf92f3577b34da6a3ce929d0e0e4736 outcome="ok""#),
        "{}",
        traced[0]
    );
    // The audit line of the restricted call: who, what, the outcome (the
    // payload is checked absent below); none for the unrestricted ones.
    let audit: Vec<&str> = text.lines().filter(|l| l.contains("anyd::audit")).collect();
    assert_eq!(audit.len(), 1, "{text}");
    for field in [
        format!("uid={uid}"),
        "endpoint=\"secret\"".into(),
        "outcome=\"ok\"".into(),
    ] {
        assert!(audit[0].contains(&field), "{field} in {}", audit[0]);
    }
    for secret in [KEY, PAYLOAD, MALFORMED] {
        assert!(!text.contains(secret), "{secret} is in the log:\n{text}");
    }
}

#[test]
fn tcp_without_an_authkey_warns_that_every_local_user_can_call() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Bind logs on the thread that binds: a subscriber for this thread
    // alone leaves the other test's global one alone.
    tracing::subscriber::with_default(subscriber, || {
        let open = Appd::new().bind("tcp:127.0.0.1:0").unwrap();
        let keyed = Appd::new().authkey("k").bind("tcp:127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let unix = Appd::new()
            .bind(dir.path().join("d.sock").to_str().unwrap())
            .unwrap();
        let text = log.text();
        let warned: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("every local user can call"))
            .collect();
        assert_eq!(warned.len(), 1, "{text}");
        assert!(warned[0].contains("WARN"), "{text}");
        assert!(
            warned[0].contains(&open.local_address().to_string()),
            "the warning names the address: {text}"
        );
        drop((open, keyed, unix));
    });
}
