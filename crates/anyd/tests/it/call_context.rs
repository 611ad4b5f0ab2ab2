//! The call context from the clients' side (docs/PROTOCOL.md sections 8.3
//! and 8.4): the session's timeout sent as the call's deadline, an async
//! call given up on (its future dropped) cancelled without losing the
//! session, a blocking call cancelled from another thread, and a call
//! made inside a handler carrying the served call's deadline and trace.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use anyd::wire::codec::{self, decode_request, DecodeLimits, RequestOptions};
use anyd::wire::message::{Incoming, Reply};
use anyd::wire::{frame, Codec};
use anyd::{Appd, AsyncClientSession, Cancelled, ClientOptions, Context, Error};
use anyd_testkit::raw::{raw, read_frame, reply, request_with, start};

// The daemon of these tests is the one of the daemon side's tests.
use crate::deadlines::{daemon, PATIENCE};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn kind(e: Error) -> String {
    match e {
        Error::Remote(r) => r.kind,
        other => panic!("not an error reply: {other:?}"),
    }
}

#[test]
fn the_timeout_is_sent_and_the_daemons_timeout_error_keeps_the_session() {
    let (running, _dir, f) = daemon(|a| a);
    let mut s = ClientOptions::new()
        .timeout(Some(Duration::from_millis(200)))
        .connect(running.address())
        .unwrap();
    // The handler sleeps an hour: the answer is the daemon's, at the
    // deadline it was sent, not this side's wait giving up.
    assert_eq!(
        kind(s.commit::<u32>("wait", ()).unwrap_err()),
        "TimeoutError"
    );
    f.dropped
        .recv_timeout(PATIENCE)
        .expect("the future was dropped");
    assert_eq!(s.commit::<u32>("echo", (3,)).unwrap(), 3);
    // Changed between calls: none, then one again.
    s.set_timeout(None).unwrap();
    assert_eq!(s.timeout(), None);
    assert_eq!(s.commit::<u32>("echo", (4,)).unwrap(), 4);
    s.set_timeout(Some(Duration::from_millis(100))).unwrap();
    assert_eq!(
        kind(s.commit::<u32>("wait", ()).unwrap_err()),
        "TimeoutError"
    );
    f.dropped.recv_timeout(PATIENCE).unwrap();
    s.end_session().unwrap();
}

#[test]
fn set_timeout_on_a_session_without_one_sends_it_from_the_next_call() {
    let (running, _dir, f) = daemon(|a| a);
    let rt = runtime();
    rt.block_on(async {
        let mut s = AsyncClientSession::connect(running.address())
            .await
            .unwrap();
        assert_eq!(s.commit::<u32>("echo", (1,)).await.unwrap(), 1);
        s.set_timeout(Some(Duration::from_millis(200)));
        let e = s.commit::<u32>("wait", ()).await.unwrap_err();
        assert_eq!(kind(e), "TimeoutError");
        f.dropped.recv_timeout(PATIENCE).unwrap();
        assert_eq!(s.commit::<u32>("echo", (2,)).await.unwrap(), 2);
        s.end_session().await.unwrap();
    });
}

#[test]
fn an_async_call_whose_future_is_dropped_is_cancelled_and_the_session_goes_on() {
    let (running, _dir, f) = daemon(|a| a);
    let rt = runtime();
    rt.block_on(async {
        let mut s = AsyncClientSession::connect(running.address())
            .await
            .unwrap();
        // A timeout of the session's that never comes into play: the
        // daemon is asked what it reads.
        s.set_timeout(Some(PATIENCE));
        {
            let call = s.commit::<u32>("wait", ());
            tokio::pin!(call);
            // Polled until the handler runs, then dropped.
            let started = async {
                while f.started.try_recv().is_err() {
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                r = &mut call => panic!("the call ended: {r:?}"),
                () = started => {}
            }
        }
        // The drop sent the CANCEL: the daemon drops the handler at once,
        // without this session doing anything more.
        f.dropped
            .recv_timeout(PATIENCE)
            .expect("the handler was dropped");
        // The next call reads and discards the Cancelled reply first.
        assert_eq!(s.commit::<u32>("echo", (5,)).await.unwrap(), 5);
        assert_eq!(s.commit::<u32>("echo", (6,)).await.unwrap(), 6);
        s.end_session().await.unwrap();
    });
}

#[test]
fn a_dropped_call_to_a_blocking_handler_is_waited_for_by_the_next_call() {
    let (running, _dir, f) = daemon(|a| a);
    let rt = runtime();
    rt.block_on(async {
        let mut s = AsyncClientSession::connect(running.address())
            .await
            .unwrap();
        s.set_timeout(Some(PATIENCE));
        {
            let call = s.commit::<u32>("watch", ());
            tokio::pin!(call);
            let started = async {
                while f.started.try_recv().is_err() {
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                r = &mut call => panic!("the call ended: {r:?}"),
                () = started => {}
            }
        }
        assert_eq!(
            f.seen.recv_timeout(PATIENCE).unwrap().0,
            Some(Cancelled::ByCaller)
        );
        // Its reply ("stopped", when it returned) is discarded, not taken
        // for this call's.
        assert_eq!(s.commit::<u32>("echo", (8,)).await.unwrap(), 8);
    });
}

#[test]
fn a_blocking_call_is_cancelled_from_another_thread_and_the_session_goes_on() {
    let (running, _dir, f) = daemon(|a| a);
    let mut s = anyd::ClientSession::connect(running.address()).unwrap();
    let canceller = s.canceller().unwrap();
    assert!(!canceller.cancel().unwrap(), "no call under way");
    let cancelling = std::thread::spawn(move || {
        f.started.recv_timeout(PATIENCE).unwrap();
        // The handler runs: the request was read, so written, and the
        // canceller armed (the request is written under its lock).
        assert!(canceller.cancel().unwrap(), "a call under way");
        f.dropped.recv_timeout(PATIENCE).unwrap();
    });
    assert_eq!(kind(s.commit::<u32>("wait", ()).unwrap_err()), "Cancelled");
    cancelling.join().unwrap();
    assert_eq!(s.commit::<u32>("echo", (9,)).unwrap(), 9);
    s.end_session().unwrap();
}

/// A fake daemon that answers `anyd.version` as a daemon of this project
/// does and every other call with `true`, and hands over the options of
/// each such call.
fn recording_daemon(dir: &std::path::Path) -> (String, Receiver<(String, RequestOptions)>) {
    let path = dir.join("b.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve_recording(&mut conn, &tx));
        }
    });
    (format!("unix:{}", path.display()), rx)
}

fn serve_recording(conn: &mut UnixStream, tx: &Sender<(String, RequestOptions)>) {
    while let Some(payload) = read_frame(conn) {
        let mut out = Vec::new();
        let mark = frame::begin(&mut out);
        match decode_request(&payload, &DecodeLimits::default()).unwrap() {
            Incoming::Request(r) if r.endpoint == "anyd.version" => {
                let version = serde_json::json!({
                    "anyd": "0.0.0",
                    "protocol": 1,
                    "options": RequestOptions::KEYS,
                    "cancel": true,
                });
                codec::encode_reply_ok(Codec::MsgPack, &version, &mut out).unwrap();
            }
            Incoming::Request(r) => {
                let _ = tx.send((r.endpoint.clone().into_owned(), r.options.clone()));
                codec::encode_reply_ok(Codec::MsgPack, &true, &mut out).unwrap();
            }
            Incoming::EndSession(c) => codec::encode_end_session(c, &mut out),
            _ => return,
        }
        frame::finish(&mut out, mark);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

#[test]
fn a_call_made_inside_a_handler_carries_the_served_calls_deadline_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (b, recorded) = recording_daemon(dir.path());
    let b = Arc::new(b);
    let (b1, b2) = (b.clone(), b.clone());
    let (a, _a_dir) = start(
        Appd::new()
            // Blocking, with a client of its own and no context in sight.
            .api("relay()", move || -> Result<bool, String> {
                let mut s = anyd::ClientSession::connect(b1.as_str()).map_err(|e| e.to_string())?;
                s.commit::<bool>("seen", ()).map_err(|e| e.to_string())
            })
            // Async, with the async client.
            .api("relay_async()", move || {
                let b = b2.clone();
                async move {
                    let mut s = AsyncClientSession::connect(b.as_str())
                        .await
                        .map_err(|e| e.to_string())?;
                    s.commit::<bool>("seen", ())
                        .await
                        .map_err(|e| e.to_string())
                }
            }),
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut options = RequestOptions::NONE.with_timeout(Some(Duration::from_secs(30)));
    options.traceparent = Some(format!("00-{trace}-00f067aa0ba902b7-01").into());
    options.tracestate = Some("k=v".into());
    let mut s = raw(a.address());
    for endpoint in ["relay", "relay_async"] {
        s.write_all(&request_with(endpoint, (), options.clone()))
            .unwrap();
        assert_eq!(reply::<bool>(&read_frame(&mut s).unwrap()), Reply::Ok(true));
        let (called, seen) = recorded.recv_timeout(PATIENCE).unwrap();
        assert_eq!(called, "seen");
        let ms = seen.timeout_ms.expect("a deadline").millis();
        assert!(
            ms <= 30_000,
            "{endpoint}: {ms} ms, more than the served call had"
        );
        let parent = seen.traceparent.expect("a trace context");
        assert!(
            parent.starts_with(&format!("00-{trace}-")),
            "{endpoint}: {parent}"
        );
        assert_ne!(
            parent,
            options.traceparent.clone().unwrap(),
            "the served call is the parent"
        );
        assert_eq!(seen.tracestate.as_deref(), Some("k=v"));
    }
    // Without a served call's context, a session without a timeout sends
    // none of it (and does not ask what the daemon reads).
    let mut plain = anyd::ClientSession::connect(b.as_str()).unwrap();
    assert!(plain.commit::<bool>("seen", ()).unwrap());
    // (Nor does it ask for descriptors: a `bool` cannot hold one.)
    assert_eq!(
        recorded.recv_timeout(PATIENCE).unwrap().1,
        RequestOptions::NONE
    );
}

#[test]
fn a_daemon_of_this_project_sees_the_inherited_deadline_in_its_context() {
    let (b, _b_dir) = start(Appd::new().api("remaining()", |ctx: Context| {
        ctx.remaining().map(|d| d.as_millis() as u64)
    }));
    let b = b.address().to_string();
    let (a, _a_dir) = start(
        Appd::new().api("relay()", move || -> Result<Option<u64>, String> {
            let mut s = anyd::ClientSession::connect(b.as_str()).map_err(|e| e.to_string())?;
            s.commit("remaining", ()).map_err(|e| e.to_string())
        }),
    );
    let mut s = ClientOptions::new()
        .timeout(Some(Duration::from_secs(30)))
        .connect(a.address())
        .unwrap();
    let left = s.commit::<Option<u64>>("relay", ()).unwrap();
    let left = left.expect("B's handler has a deadline");
    assert!(left <= 30_000, "{left}");
    // And none when the outer call has none.
    let mut s = anyd::ClientSession::connect(a.address()).unwrap();
    assert_eq!(s.commit::<Option<u64>>("relay", ()).unwrap(), None);
}

/// A Python `anyd.Appd` (0.4.1, which knows no options, no `anyd.version`
/// and no CANCEL) on a free TCP port, with `echo(arg)` and `slow(arg)`,
/// which answers after half a second. Prints `READY <port>`.
const PYTHON_APPD: &str = r##"
import time

import anyd

appd = anyd.Appd(("127.0.0.1", 0))


@appd.api
def echo(arg):
    return arg


@appd.api
def slow(arg):
    time.sleep(0.5)
    return arg


print("READY", appd.address[1], flush=True)
appd.start()
"##;

#[test]
fn python_anyd_is_called_with_a_timeout_as_before_and_a_dropped_call_is_read_through() {
    use anyd_testkit::python::{venv, PythonDaemon};
    let venv = venv();
    let appd = PythonDaemon::start(&venv.python, PYTHON_APPD, &[]);
    let address = format!("tcp:127.0.0.1:{}", appd.port());
    let options = ClientOptions::new()
        .codec(Codec::Pickle)
        .timeout(Some(PATIENCE));
    let mut s = options.clone().connect(&address).unwrap();
    assert_eq!(s.commit::<String>("echo", ("a",)).unwrap(), "a");
    s.set_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(s.commit::<String>("slow", ("b",)).unwrap(), "b");
    // A canceller asks Python nothing (pickle sessions never ask
    // anyd.version), and with no call under way does nothing.
    assert!(!s.canceller().unwrap().cancel().unwrap());
    s.end_session().unwrap();
    runtime().block_on(async {
        let mut s = options.connect_async(&address).await.unwrap();
        {
            let call = s.commit::<String>("slow", ("late",));
            tokio::pin!(call);
            // One poll writes the request; then the call is dropped.
            tokio::select! {
                biased;
                r = &mut call => panic!("the call ended: {r:?}"),
                () = tokio::task::yield_now() => {}
            }
        }
        // No CANCEL for Python: the next call reads the late reply first,
        // and gets its own.
        assert_eq!(s.commit::<String>("echo", ("c",)).await.unwrap(), "c");
        s.end_session().await.unwrap();
    });
}

/// A daemon declared with `#[anyd::api]`, for its generated clients.
struct Sleeper;

#[anyd::api]
impl Sleeper {
    /// Answers after an hour.
    async fn nap(&self) -> u32 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        1
    }

    /// Answers at once.
    fn twice(&self, x: u32) -> u32 {
        2 * x
    }
}

#[test]
fn the_generated_clients_set_the_timeout_through_their_session() {
    let (running, _dir) = start(Appd::new().mount(Sleeper));
    let mut client = SleeperClient::connect(running.address()).unwrap();
    assert_eq!(client.session_mut().timeout(), None);
    client
        .session_mut()
        .set_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(kind(client.nap().unwrap_err()), "TimeoutError");
    assert_eq!(client.twice(2).unwrap(), 4);
    runtime().block_on(async {
        let mut client = SleeperAsyncClient::connect(running.address())
            .await
            .unwrap();
        client
            .session_mut()
            .set_timeout(Some(Duration::from_millis(100)));
        assert_eq!(kind(client.nap().await.unwrap_err()), "TimeoutError");
        assert_eq!(client.twice(3).await.unwrap(), 6);
    });
}
