//! The clients, blocking and async: a first end-to-end check in every
//! codec, connecting (errors, retries, timeouts), and how an async session
//! ends when dropped, or goes on when a call is cancelled.

use std::collections::BTreeMap;
use std::time::Duration;

use anyd::{Appd, ClientOptions, ClientSession, Codec, Error};
use anyd_testkit::raw::start;

use super::server::{demo, remote};

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

#[test]
fn async_client_surface() {
    let (d, _dir) = start(demo());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
            let mut s = anyd::AsyncClientSession::connect_with(
                d.address(),
                ClientOptions::new().codec(codec),
            )
            .await
            .unwrap();
            assert_eq!(
                s.commit::<String>("greet", ("al",)).await.unwrap(),
                "hello, al"
            );
            let kw = BTreeMap::from([("arg1", 1), ("arg2", 2)]);
            assert_eq!(s.commit_with::<i64>("get_sum", (), kw).await.unwrap(), 3);
            let e = remote(s.commit::<String>("status", ()).await.unwrap_err());
            if codec == Codec::Pickle {
                // Pickle can only name Python's own exception classes; an
                // application kind travels inside a RuntimeError.
                assert_eq!(e.kind, "RuntimeError");
                assert_eq!(e.message, "VpnError: not connected");
            } else {
                assert_eq!(e.kind, "VpnError");
            }
            s.end_session().await.unwrap();
        }
    });
}

#[test]
fn connect_errors_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let e = ClientSession::connect(missing.to_str().unwrap()).unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    // A bounded retry still fails when nothing ever comes up.
    let e = ClientOptions::new()
        .retry_for(Duration::from_millis(50))
        .connect(missing.to_str().unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(matches!(
        ClientSession::connect("nowhere"),
        Err(Error::Config(_))
    ));
}

#[test]
fn retry_until_the_daemon_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.sock");
    let addr = format!("unix:{}", path.display());
    let client = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut s = ClientOptions::new()
                .retry_for(Duration::from_secs(30))
                .connect(addr.as_str())?;
            s.commit::<bool>("anyd.ping", ())
        })
    };
    // Bind only once the client has demonstrably started trying: it cannot
    // have connected, since nothing listens yet.
    std::thread::yield_now();
    let d = Appd::new().bind(addr.as_str()).unwrap().spawn().unwrap();
    assert!(client.join().unwrap().unwrap());
    d.shutdown().unwrap();
}

#[test]
fn the_connect_timeout_bounds_a_unix_connect_to_a_full_backlog() {
    use rustix::net::{bind, listen, socket_with, AddressFamily, SocketAddrUnix, SocketFlags};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stuck.sock");
    // A listener that never accepts, with room for one waiting connection.
    let listener = socket_with(
        AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    bind(&listener, &SocketAddrUnix::new(path.as_path()).unwrap()).unwrap();
    listen(&listener, 0).unwrap();
    let _waiting = std::os::unix::net::UnixStream::connect(&path).unwrap();
    // The backlog is full: a connect now waits until the timeout.
    let addr = path.to_str().unwrap().to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = ClientOptions::new()
            .connect_timeout(Some(Duration::from_millis(100)))
            .connect(addr.as_str());
        let _ = tx.send(r.map(|_| ()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the connect did not end at its timeout");
    match result {
        Err(Error::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{source}")
        }
        other => panic!("{other:?}"),
    }
    drop(listener);
}

#[test]
fn a_dropped_async_session_ends_itself_with_sigends() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // A daemon stand-in that records the first message it gets and
    // answers SIGENDS in kind.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let mut payload = vec![0; u32::from_be_bytes(header) as usize];
        s.read_exact(&mut payload).unwrap();
        s.write_all(&header).unwrap();
        s.write_all(&payload).unwrap();
        payload
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let said = rt.block_on(async {
        let session = anyd::AsyncClientSession::connect(path.to_str().unwrap())
            .await
            .unwrap();
        drop(session);
        // The runtime runs the session's last words while this waits.
        tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap()
    });
    let mut sigends = Vec::new();
    anyd::wire::codec::encode_end_session(Codec::MsgPack, &mut sigends);
    assert_eq!(said, sigends);
}

#[test]
fn an_async_call_cancelled_before_its_reply_keeps_the_session_and_its_reply_is_discarded() {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let (d, _dir) = start(
        Appd::new()
            .api("slow()", move || {
                let _ = wait.lock().unwrap().recv();
                "late"
            })
            .api("fast()", || "fast"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = anyd::AsyncClientSession::connect(d.address())
            .await
            .unwrap();
        // "slow" answers only once released: this future is dropped first.
        let cut = tokio::time::timeout(Duration::from_millis(20), s.commit::<String>("slow", ()));
        assert!(cut.await.is_err());
        release.send(()).unwrap();
        // The late reply is on its way; it must not answer this call,
        // which reads it first (this session asked nothing of the daemon,
        // so it sent no CANCEL) and then gets its own.
        match s.commit::<String>("fast", ()).await {
            Ok(fast) if fast == "fast" => {}
            other => panic!("a call after a cancelled one got {other:?}"),
        }
        assert_eq!(s.commit::<String>("fast", ()).await.unwrap(), "fast");
    });
}

#[test]
fn an_async_request_larger_than_the_socket_takes_waits_for_room_and_goes_whole() {
    // The async client's Unix socket is on the reactor for reading only; a
    // write waits for room through a registration of its own, made when
    // the socket's buffer is full (requests of some MiB fill it many times
    // over), with and without a descriptor beside the bytes.
    let (d, _dir) = start(
        Appd::new()
            .api("sum(blob)", |blob: Vec<u8>| {
                blob.iter().map(|&b| u64::from(b)).sum::<u64>()
            })
            .api("sum_with(fd, blob)", |fd: anyd::Fd, blob: Vec<u8>| {
                drop(fd);
                blob.iter().map(|&b| u64::from(b)).sum::<u64>()
            })
            .api("echo(a)", |a: u64| a),
    );
    let blob: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let sum: u64 = blob.iter().map(|&b| u64::from(b)).sum();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let patience = Duration::from_secs(20);
        let mut s = anyd::AsyncClientSession::connect(d.address())
            .await
            .unwrap();
        // A MessagePack bin, as `Vec<u8>` deserializes from.
        let blob = anyd::Value::Bytes(blob);
        for round in 0..3 {
            let got = tokio::time::timeout(patience, s.commit::<u64>("sum", (&blob,))).await;
            assert_eq!(
                got.expect("the request went out").unwrap(),
                sum,
                "round {round}"
            );
            let fd = anyd::Fd::from(std::fs::File::open("/dev/null").unwrap());
            let call = s.commit::<u64>("sum_with", (&fd, &blob));
            let got = tokio::time::timeout(patience, call).await;
            assert_eq!(
                got.expect("the request went out").unwrap(),
                sum,
                "round {round}"
            );
            // Small calls after the large ones: the session is in step.
            assert_eq!(s.commit::<u64>("echo", (round,)).await.unwrap(), round);
        }
    });
}

#[test]
fn a_result_of_the_wrong_type_says_what_was_expected_and_what_came() {
    let (d, _dir) = start(Appd::new().api("name()", || "tun0").api("count()", || 7u32));
    for codec in [Codec::MsgPack, Codec::Json] {
        let mut s = ClientOptions::new()
            .codec(codec)
            .connect(d.address())
            .unwrap();
        let e = s.commit::<u8>("name", ()).unwrap_err();
        let Error::ResultType(why) = &e else {
            panic!("{codec:?}: {e:?}")
        };
        assert!(!why.contains("marker"), "{codec:?}: {why}");
        assert!(
            why.contains("u8") && why.contains("str"),
            "{codec:?}: expected and got, in the caller's words: {why}"
        );
        // The session goes on.
        assert_eq!(s.commit::<u32>("count", ()).unwrap(), 7);
    }
}
