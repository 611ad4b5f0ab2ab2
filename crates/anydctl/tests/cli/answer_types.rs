//! An `anyd.endpoints` answer of another shape than a list of endpoints
//! (a daemon that is not anyd's, or not of this release) is said in the
//! user's words, `expected a string, got an integer (5)`, never in the
//! codec's (`wrong msgpack marker FixStr(12)`).

use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use anyd::wire::{codec, frame, Codec};
use anyd::RemoteError;

use super::{anydctl, ok};

/// The end of session, as a MessagePack client sends it and the daemon
/// answers it.
const SIGENDS: &[u8] = b"\xa7SIGENDS";

/// A reply `{"ok": answer}`, framed.
fn ok_reply(answer: serde_json::Value) -> Vec<u8> {
    let mut payload = Vec::new();
    codec::encode_reply_ok(Codec::MsgPack, &answer, &mut payload).unwrap();
    let mut framed = Vec::new();
    frame::encode(&payload, &mut framed);
    framed
}

/// An error reply, framed.
fn error_reply(kind: &str, message: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    codec::encode_reply_error(
        Codec::MsgPack,
        &RemoteError::new(kind, message),
        &mut payload,
    );
    let mut framed = Vec::new();
    frame::encode(&payload, &mut framed);
    framed
}

/// Answers each request of one connection with the next of `replies`,
/// and the end of session as a daemon does.
fn serve(mut s: UnixStream, replies: &[Vec<u8>]) {
    use std::io::Write;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut replies = replies.iter();
    while let Some(payload) = anyd_testkit::raw::read_frame(&mut s) {
        let reply = if payload == SIGENDS {
            let mut framed = Vec::new();
            frame::encode(SIGENDS, &mut framed);
            framed
        } else {
            replies.next().expect("no reply left for a request").clone()
        };
        if s.write_all(&reply).is_err() || payload == SIGENDS {
            return;
        }
    }
}

/// A daemon that is not anyd's: it answers the requests of every
/// connection with `replies`, in order. The socket lives in the returned
/// directory.
fn impostor(replies: Vec<Vec<u8>>) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impostor.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            serve(s.unwrap(), &replies);
        }
    });
    (format!("unix:{}", path.display()), dir)
}

#[test]
fn an_endpoint_list_of_another_shape_is_said_in_words() {
    use serde_json::json;
    let good = json!({"name": "a", "params": [], "returns": "i64", "doc": "An endpoint."});
    // The impostor answers as anyd would: the table shows it.
    let (addr, _dir) = impostor(vec![ok_reply(json!([good]))]);
    assert!(ok(&["endpoints", &addr]).contains("An endpoint."));

    let cases = [
        (
            json!("hello world!"),
            r#"expected a list of endpoints, got a string ("hello world!")"#,
        ),
        (
            json!(["hello world!"]),
            r#"endpoint 1: expected a map, got a string ("hello world!")"#,
        ),
        (
            json!([good, {"name": "b", "params": [], "returns": 5, "doc": ""}]),
            "endpoint 2 (b): returns: expected a string, got an integer (5)",
        ),
        (
            json!([{"name": "c", "params": [{"name": "x", "type": "i64"}], "returns": "",
                    "doc": ""}]),
            "endpoint 1 (c): params: parameter 1 (x): expected a field optional, got none",
        ),
    ];
    for (answer, words) in cases {
        let (addr, _dir) = impostor(vec![ok_reply(answer)]);
        let run = anydctl(&["endpoints", &addr]);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:#?}");
        assert_eq!(
            run.stderr,
            format!(
                "anydctl: {addr} answered anyd.endpoints with what is not a list of endpoints: \
                 {words}\n"
            )
        );
    }

    // `call` asks anyd.endpoints whether an endpoint streams, when the
    // first call is refused with a TypeError: the same words. (Before the
    // call, anyd.version: whether a Ctrl-C would send a CANCEL.)
    let (addr, _dir) = impostor(vec![
        error_reply("NotImplementedError", "anyd.version"),
        error_reply("TypeError", "count() sends a stream of items"),
        ok_reply(json!("hello world!")),
    ]);
    let run = anydctl(&["call", "--no-check", &addr, "count", "3"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains(r#"not a list of endpoints: expected a list of endpoints, got a string"#),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("msgpack"), "{run:#?}");
}
