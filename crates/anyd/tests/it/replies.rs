//! What a closure's return value becomes for its caller, through a real
//! daemon: a `Result` whose error is not an `anyd::ApiError` (a `String`,
//! a `&str`, any serializable error) fails the call with a `RuntimeError`
//! in every codec, rather than succeeding with serde's `{"Err": ...}`.
//! Values and `ApiError` results are in `server`.

use anyd::{Appd, ClientOptions, Codec, EndpointInfo, Error, RemoteError, Running};
use serde::Serialize;

/// An error with no kind of its own, that serializes.
#[derive(Serialize)]
enum Why {
    Gone { since: u64 },
}

fn start() -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let running = Appd::new()
        .api("get()", || -> Result<u8, String> {
            Err("no such device".into())
        })
        .api("found()", || -> Result<u8, String> { Ok(7) })
        .api("busy()", || -> Result<u8, &'static str> { Err("busy") })
        .api("later()", || async { Err::<u8, String>("not yet".into()) })
        .api("gone()", || -> Result<u8, Why> {
            Err(Why::Gone { since: 3 })
        })
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    (running, dir)
}

fn remote(result: anyd::Result<u8>) -> RemoteError {
    match result {
        Err(Error::Remote(e)) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn a_result_whose_error_is_not_an_api_error_fails_the_call() {
    let (d, _dir) = start();
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        let mut s = ClientOptions::new()
            .codec(codec)
            .connect(d.address())
            .unwrap();
        let e = remote(s.commit("get", ()));
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("RuntimeError", "no such device"),
            "{codec:?}"
        );
        assert_eq!(s.commit::<u8>("found", ()).unwrap(), 7, "{codec:?}");
        assert_eq!(remote(s.commit("busy", ())).message, "busy");
        assert_eq!(remote(s.commit("later", ())).message, "not yet");
        // An error that is not text goes as JSON.
        let e = remote(s.commit("gone", ()));
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("RuntimeError", r#"{"Gone":{"since":3}}"#)
        );
        // Each was an error reply; the session goes on.
        assert!(s.commit::<bool>("anyd.ping", ()).unwrap());
    }
}

#[test]
fn such_an_endpoint_introspects_as_returning_its_ok_type() {
    let (d, _dir) = start();
    let mut s = ClientOptions::new().connect(d.address()).unwrap();
    let eps: Vec<EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
    let returns: Vec<(&str, &str)> = eps
        .iter()
        .map(|e| (e.name.as_str(), e.returns.as_str()))
        .collect();
    assert_eq!(
        returns,
        [
            ("get", "u8"),
            ("found", "u8"),
            ("busy", "u8"),
            ("later", "u8"),
            ("gone", "u8")
        ]
    );
}
