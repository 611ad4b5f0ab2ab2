//! What calls leave behind: the counts of `anyd.stats` (and who may read
//! them), the call hook's records, and the caller's trace context handed
//! to the span hook.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyd::wire::{codec, frame, Codec};
use anyd::{Allow, Appd, ClientSession, Error, RemoteError, Running, TraceContext};
use anyd_testkit::{raw, root};
use serde_json::Value as Json;

const NOBODY: u32 = 65534;

/// The endpoints whose calls the tests count; `fail` answers with the
/// kind it is given, as the daemon's own timeouts and cancellations are
/// answered ("TimeoutError", "Cancelled").
fn appd() -> Appd {
    Appd::new()
        .api("echo(arg)", |arg: String| arg)
        .api("fail(kind)", |kind: String| -> Result<(), RemoteError> {
            Err(RemoteError::new(kind, "as asked"))
        })
        .api("idle()", || ())
}

/// A daemon on an abstract socket: no file permissions stand between the
/// tests' users and it, so its policy is the only gate.
fn on_abstract(appd: Appd, what: &str) -> Running {
    let name = format!(
        "anyd-stats-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    appd.bind(format!("unix:@{name}")).unwrap().spawn().unwrap()
}

/// The row of `name` in a reply of `anyd.stats`.
fn row<'a>(stats: &'a Json, name: &str) -> &'a Json {
    stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {stats}"))
}

#[test]
fn stats_count_every_call_by_endpoint_and_error_kind() {
    let records = Arc::new(Mutex::new(Vec::new()));
    let seen = records.clone();
    let appd = appd().on_call(move |call| {
        seen.lock().unwrap().push((
            call.endpoint().map(str::to_owned),
            call.outcome().to_owned(),
            call.is_ok(),
        ));
    });
    let (d, _dir) = raw::start(appd);
    let mut s = ClientSession::connect(d.address()).unwrap();
    for _ in 0..3 {
        let _: String = s.commit("echo", ("hi",)).unwrap();
    }
    for kind in ["ValueError", "ValueError", "TimeoutError", "Cancelled"] {
        let err = s.commit::<()>("fail", (kind,)).unwrap_err();
        assert!(matches!(&err, Error::Remote(r) if r.kind == kind), "{err}");
    }
    // Two arguments for one: a TypeError, counted as the endpoint's.
    assert!(s.commit::<String>("echo", ("a", "b")).is_err());
    // Missing endpoints: counted apart, under no name of theirs.
    assert!(s.commit::<()>("missing", ()).is_err());
    assert!(s.commit::<()>("anyd.missing", ()).is_err());
    let _: bool = s.commit("anyd.ping", ()).unwrap();
    // A second connection, still open when the counts are read (and
    // served already: its call was answered).
    let mut other = ClientSession::connect(d.address()).unwrap();
    other.commit::<()>("idle", ()).unwrap();

    // The test's user is the daemon's: admitted by default.
    let stats: Json = s.commit("anyd.stats", ()).unwrap();
    let echo = row(&stats, "echo");
    assert_eq!(echo["calls"], 4, "{echo}");
    assert_eq!(echo["ok"], 3, "{echo}");
    assert_eq!(echo["streams"], 0, "{echo}");
    assert_eq!(echo["errors"], serde_json::json!({"TypeError": 1}));
    let counted: u64 = echo["latency_us"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 4, "every call has its duration: {echo}");
    let p50 = echo["latency_us"]["p50"].as_u64().unwrap();
    let p99 = echo["latency_us"]["p99"].as_u64().unwrap();
    let max = echo["latency_us"]["max"].as_u64().unwrap();
    assert!(p50 <= p99 && p99 <= max, "{echo}");

    let fail = row(&stats, "fail");
    assert_eq!(fail["calls"], 4);
    assert_eq!(fail["ok"], 0);
    assert_eq!(
        fail["errors"],
        serde_json::json!({"Cancelled": 1, "TimeoutError": 1, "ValueError": 2})
    );
    assert_eq!(fail["timeouts"], 1);
    assert_eq!(fail["cancelled"], 1);

    // Every endpoint has its row, called or not, in registration order;
    // then the reserved ones that were called.
    let names: Vec<&str> = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "fail", "idle", "anyd.ping"]);
    assert_eq!(row(&stats, "idle")["calls"], 1);
    assert_eq!(row(&stats, "anyd.ping")["ok"], 1);
    assert_eq!(stats["refused"], 2);
    assert_eq!(stats["connections"]["open"], 2, "{stats}");
    assert_eq!(stats["connections"]["total"], 2, "{stats}");
    assert!(stats["uptime_s"].is_u64());

    // The hook saw the same calls (anyd.stats itself included, once its
    // reply was made), with missing endpoints under no name.
    let records = records.lock().unwrap().clone();
    let mut expected: Vec<(Option<String>, String, bool)> = Vec::new();
    let named = |n: &str| Some(n.to_owned());
    for _ in 0..3 {
        expected.push((named("echo"), "ok".into(), true));
    }
    for kind in ["ValueError", "ValueError", "TimeoutError", "Cancelled"] {
        expected.push((named("fail"), kind.into(), false));
    }
    expected.push((named("echo"), "TypeError".into(), false));
    expected.push((None, "NotImplementedError".into(), false));
    expected.push((None, "NotImplementedError".into(), false));
    expected.push((named("anyd.ping"), "ok".into(), true));
    expected.push((named("idle"), "ok".into(), true));
    expected.push((named("anyd.stats"), "ok".into(), true));
    assert_eq!(records, expected);

    // A session gone is no longer open (once its thread has seen it go).
    other.end_session().unwrap();
    let mut last = Json::Null;
    anyd_testkit::process::wait_until("the ended session to be counted closed", || {
        last = s.commit("anyd.stats", ()).unwrap();
        last["connections"]["open"] == 1
    });
    assert_eq!(last["connections"]["total"], 2);
}

/// What a caller gets for `anyd.stats`, and for a reserved name that does
/// not exist: the kind and message of each error, or "ok".
fn stats_and_missing(address: String) -> (String, String) {
    let mut s = ClientSession::connect(address.as_str()).unwrap();
    let answer = |r: Result<Json, Error>| match r {
        Ok(_) => "ok".to_owned(),
        Err(Error::Remote(e)) => format!(
            "{}: {}",
            e.kind,
            e.message.replace("anyd.nothing", "anyd.stats")
        ),
        Err(e) => panic!("{e}"),
    };
    (
        answer(s.commit("anyd.stats", ())),
        answer(s.commit("anyd.nothing", ())),
    )
}

#[test]
fn only_root_and_the_daemons_user_read_stats_unless_widened_as_root() {
    root::require_root("switching to another user");
    let d = on_abstract(appd(), "default");
    let address = d.address().to_string();
    let (root_sees, _) = stats_and_missing(address.clone());
    assert_eq!(root_sees, "ok");
    // Another user gets what a reserved name that does not exist gets,
    // word for word.
    let a = address.clone();
    let (refused, missing) = root::as_user(NOBODY, NOBODY, &[], move || stats_and_missing(a));
    assert_eq!(refused, "NotImplementedError: anyd.stats");
    assert_eq!(refused, missing);
    // Its other calls go on as before.
    let a = address.clone();
    let echoed: String = root::as_user(NOBODY, NOBODY, &[], move || {
        ClientSession::connect(a.as_str())
            .unwrap()
            .commit("echo", ("hi",))
            .unwrap()
    });
    assert_eq!(echoed, "hi");
    d.shutdown().unwrap();

    let d = on_abstract(appd().stats_allow(Allow::uid(NOBODY)), "widened");
    let a = d.address().to_string();
    let (admitted, _) = root::as_user(NOBODY, NOBODY, &[], move || stats_and_missing(a));
    assert_eq!(admitted, "ok");
    // Widened, not replaced: root still reads them, and others still not.
    assert_eq!(stats_and_missing(d.address().to_string()).0, "ok");
    let a = d.address().to_string();
    let (other, _) = root::as_user(4000, 4000, &[], move || stats_and_missing(a));
    assert_eq!(other, "NotImplementedError: anyd.stats");
    d.shutdown().unwrap();
}

/// Sends `echo("hi")` with `traceparent` (and `tracestate`) as request
/// options, in JSON, on a bare connection; returns the reply.
fn echo_with_trace(d: &Running, traceparent: &str, tracestate: Option<&str>) -> Json {
    let mut options = codec::RequestOptions::NONE;
    options.traceparent = Some(traceparent.into());
    options.tracestate = tracestate.map(Into::into);
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    codec::encode_request_with(Codec::Json, "echo", &("hi",), &(), &options, &mut out).unwrap();
    frame::finish(&mut out, mark);
    let mut s = raw::raw(d.address());
    s.write_all(&out).unwrap();
    let reply = raw::read_frame(&mut s).expect("a reply");
    serde_json::from_slice(&reply).unwrap()
}

#[test]
fn a_well_formed_trace_context_reaches_the_span_hook_and_others_are_ignored() {
    let contexts: Arc<Mutex<Vec<TraceContext>>> = Arc::default();
    let seen = contexts.clone();
    let appd = appd().on_call_span(move |_span, trace| seen.lock().unwrap().push(trace.clone()));
    let (d, _dir) = raw::start(appd);
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        echo_with_trace(&d, good, Some("congo=t61rcWkgMzE")),
        serde_json::json!({"ok": "hi"})
    );
    // Ill-formed: ignored, and the call answered all the same.
    for bad in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "not a traceparent",
    ] {
        assert_eq!(
            echo_with_trace(&d, bad, None),
            serde_json::json!({"ok": "hi"}),
            "{bad}"
        );
    }
    let contexts = contexts.lock().unwrap().clone();
    assert_eq!(contexts.len(), 1, "{contexts:?}");
    assert_eq!(contexts[0].to_string(), good);
    assert_eq!(contexts[0].tracestate(), Some("congo=t61rcWkgMzE"));
    d.shutdown().unwrap();
}

/// Whether `a` and `b` have the same keys all the way down (objects and
/// the first element of arrays), whatever the values.
fn same_shape(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Json::Array(a), Json::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => same_shape(x, y),
            _ => true,
        },
        (Json::Object(_) | Json::Array(_), _) | (_, Json::Object(_) | Json::Array(_)) => false,
        _ => true,
    }
}

#[test]
fn the_protocols_example_of_anyd_stats_has_the_replys_shape() {
    let doc = include_str!("../../../../docs/PROTOCOL.md");
    let example = doc
        .lines()
        .find(|l| l.starts_with(r#"{"ok":{"uptime_s""#))
        .expect("docs/PROTOCOL.md section 5.2 has an example reply");
    let example: Json = serde_json::from_str(example).unwrap();
    let (d, _dir) = raw::start(appd());
    let mut s = ClientSession::connect(d.address()).unwrap();
    s.commit::<String>("echo", ("a", "b")).unwrap_err();
    let real: Json = s.commit("anyd.stats", ()).unwrap();
    assert!(same_shape(&example["ok"], &real), "{example}\n{real}");
}
