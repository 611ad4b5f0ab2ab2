//! A first end-to-end check: a daemon on a temporary socket, called by the
//! blocking and the async client.

use anyd::{Appd, ClientOptions, ClientSession, Codec};

#[test]
fn echo_over_unix_in_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let running = Appd::new()
        .api("echo(arg)", |arg: String| arg)
        .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
        .bind(format!("unix:{}", path.display()))
        .unwrap()
        .spawn()
        .unwrap();
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        let mut s = ClientOptions::new()
            .codec(codec)
            .connect(running.address())
            .unwrap();
        let r: String = s.commit("echo", ("hello",)).unwrap();
        assert_eq!(r, "hello");
        let kw = std::collections::BTreeMap::from([("arg2", 2), ("arg1", 40)]);
        let r: i64 = s.commit_with("get_sum", (), kw).unwrap();
        assert_eq!(r, 42);
        let e = s.commit::<i64>("nope", ()).unwrap_err();
        assert_eq!(e.remote().unwrap().kind, "NotImplementedError");
        s.end_session().unwrap();
    }
    let _ = ClientSession::connect(running.address()).unwrap();
    running.shutdown().unwrap();
    assert!(!path.exists());
}
