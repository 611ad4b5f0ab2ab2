//! Concurrency, limits, bad input and shutdown, checked with real sockets.
//! Nothing here waits by sleeping: blocking handlers wait on channels the
//! test controls, and every wait has a deadline. Attacks on the same
//! limits (timeouts, the connection cap, absurd frames) are in `hostile`.

use anyd_testkit::raw;

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyd::wire::{codec, frame, message, Codec};
use anyd::{Appd, ClientOptions, ClientSession};
use raw::{closed_by_daemon, raw, read_frame, reply, request, start};

const PATIENCE: Duration = Duration::from_secs(20);

/// A handler that blocks until the test lets it go, and says when it has
/// started.
fn gate() -> (
    impl Fn() -> &'static str + Send + Sync + 'static,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let release_rx = Mutex::new(release_rx);
    let handler = move || {
        started_tx.lock().unwrap().send(()).unwrap();
        release_rx
            .lock()
            .unwrap()
            .recv_timeout(PATIENCE)
            .expect("the test never released the handler");
        "released"
    };
    (handler, started_rx, release_tx)
}

#[test]
fn a_blocked_handler_and_a_silent_client_delay_nobody() {
    let (slow, started, release) = gate();
    let (d, _dir) = start(Appd::new().api("slow()", slow).api("echo(a)", |a: u32| a));
    let address = d.address().clone();
    let blocked = std::thread::spawn(move || {
        let mut s = ClientSession::connect(&address).unwrap();
        s.commit::<String>("slow", ()).unwrap()
    });
    started.recv_timeout(PATIENCE).unwrap();
    // Connected, says nothing.
    let _silent = raw(d.address());
    // While one handler is blocked and one client is silent, others are
    // served: these calls return before the blocked one is released.
    let opts = ClientOptions::new().timeout(Some(PATIENCE));
    for i in 0..20 {
        let mut s = opts.clone().connect(d.address()).unwrap();
        assert_eq!(s.commit::<u32>("echo", (i,)).unwrap(), i);
    }
    assert!(!blocked.is_finished());
    release.send(()).unwrap();
    assert_eq!(blocked.join().unwrap(), "released");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a));
    let mut s = raw(d.address());
    let mut burst = Vec::new();
    for i in 0..500u32 {
        burst.extend(request("echo", (i,)));
    }
    // Mixed in: an error reply keeps its place too.
    burst.extend(request("missing", ()));
    s.write_all(&burst).unwrap();
    for i in 0..500u32 {
        match reply::<u32>(&read_frame(&mut s).unwrap()) {
            message::Reply::Ok(v) => assert_eq!(v, i),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        reply::<u32>(&read_frame(&mut s).unwrap()),
        message::Reply::Err(e) if e.kind == "NotImplementedError"
    ));
}

#[test]
fn pipelined_large_replies_keep_their_order() {
    // Replies large enough that the daemon writes a burst's replies in
    // several writes, not one.
    let (d, _dir) = start(
        Appd::new()
            .api("blob(n, tag)", |n: usize, tag: u32| (tag, "x".repeat(n)))
            .api("echo(a)", |a: u32| a),
    );
    let mut s = raw(d.address());
    let mut burst = Vec::new();
    for i in 0..40u32 {
        burst.extend(request("blob", (100_000 + i as usize, i)));
        burst.extend(request("echo", (i,)));
    }
    s.write_all(&burst).unwrap();
    for i in 0..40u32 {
        match reply::<(u32, String)>(&read_frame(&mut s).unwrap()) {
            message::Reply::Ok((tag, blob)) => {
                assert_eq!((tag, blob.len()), (i, 100_000 + i as usize));
            }
            other => panic!("{other:?}"),
        }
        match reply::<u32>(&read_frame(&mut s).unwrap()) {
            message::Reply::Ok(v) => assert_eq!(v, i),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn many_clients_at_once() {
    let (d, _dir) = start(Appd::new().api("add(a, b)", |a: u64, b: u64| a + b));
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let address = d.address().clone();
            std::thread::spawn(move || {
                let mut s = ClientSession::connect(&address).unwrap();
                for i in 0..200u64 {
                    assert_eq!(s.commit::<u64>("add", (t, i)).unwrap(), t + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn oversized_and_unreadable_frames_close_only_that_connection() {
    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a).max_frame(1024));
    let mut ok = ClientSession::connect(d.address()).unwrap();

    // A header over the limit closes the connection at once, without
    // waiting for a payload that never comes (absurd ones: `hostile`).
    let mut s = raw(d.address());
    s.write_all(&2000u32.to_be_bytes()).unwrap();
    assert!(closed_by_daemon(&mut s));
    // A frame whose payload is no codec at all.
    let mut s = raw(d.address());
    let mut f = Vec::new();
    frame::encode(b"\x01garbage", &mut f);
    s.write_all(&f).unwrap();
    assert!(closed_by_daemon(&mut s));

    // A malformed request in a known codec gets an error reply, and the
    // session goes on.
    let mut s = raw(d.address());
    let mut f = Vec::new();
    frame::encode(b"[\"echo\", [1], {}, 4]", &mut f);
    f.extend(request("echo", (7,)));
    s.write_all(&f).unwrap();
    let first = read_frame(&mut s).unwrap();
    let e: message::Reply<u32> =
        codec::decode_reply(Codec::Json, &first, &Default::default()).unwrap();
    assert!(matches!(e, message::Reply::Err(e) if e.kind == "ValueError"));
    assert!(matches!(
        reply::<u32>(&read_frame(&mut s).unwrap()),
        message::Reply::Ok(7)
    ));

    // The well-behaved client never noticed.
    assert_eq!(ok.commit::<u32>("echo", (1,)).unwrap(), 1);
}

#[test]
fn a_client_that_leaves_mid_frame_costs_nothing() {
    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a));
    for _ in 0..20 {
        let mut s = raw(d.address());
        let r = request("echo", (1,));
        s.write_all(&r[..r.len() - 2]).unwrap();
    }
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<u32>("echo", (5,)).unwrap(), 5);
}

#[test]
fn bind_makes_room_for_max_connections_in_the_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
    // A common default soft limit, low for 1,000 connections of a
    // descriptor each; not so low that tests sharing this process suffer.
    let low = 512.min(hard);
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = Some(low);
    setrlimit(Resource::Nofile, limit).unwrap();

    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a).max_connections(1000));
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        soft >= 1000.min(hard),
        "soft limit {soft} after bind, hard {hard}"
    );
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<u32>("echo", (7,)).unwrap(), 7);
}

#[test]
fn shutdown_finishes_calls_in_progress_then_removes_the_socket() {
    let (slow, started, release) = gate();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let d = Appd::new()
        .api("slow()", slow)
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    let address = d.address().clone();
    let call = std::thread::spawn(move || {
        let mut s = ClientSession::connect(&address).unwrap();
        s.commit::<String>("slow", ())
    });
    started.recv_timeout(PATIENCE).unwrap();
    let idle = ClientSession::connect(d.address()).unwrap();
    let handle = d.shutdown_handle();
    let stopper = std::thread::spawn(move || d.shutdown());
    handle.shutdown();
    // New connections are refused once the listener is gone.
    let deadline = Instant::now() + PATIENCE;
    while path.exists() {
        assert!(Instant::now() < deadline, "the socket file stays");
        std::thread::yield_now();
    }
    assert!(ClientSession::connect(path.to_str().unwrap()).is_err());
    // The call in progress completes with its reply.
    release.send(()).unwrap();
    assert_eq!(call.join().unwrap().unwrap(), "released");
    stopper.join().unwrap().unwrap();
    drop(idle);
}

#[test]
fn shutdown_deadline_bounds_the_wait() {
    let (slow, started, release) = gate();
    let (d, _dir) = start(
        Appd::new()
            .api("slow()", slow)
            .shutdown_deadline(Duration::from_millis(100)),
    );
    let address = d.address().clone();
    let call = std::thread::spawn(move || {
        let mut s = ClientSession::connect(&address).unwrap();
        s.commit::<String>("slow", ())
    });
    started.recv_timeout(PATIENCE).unwrap();
    // Returns although the handler is still blocked (it is released only
    // below).
    d.shutdown().unwrap();
    // The connection was cut: the caller sees an error, not a hang.
    assert!(call.join().unwrap().is_err());
    release.send(()).unwrap();
}

/// A panicking handler under concurrent load: each panic is one error
/// reply; the other calls are unaffected.
#[test]
fn panics_under_load_are_contained() {
    let (d, _dir) = start(Appd::new().api("maybe(n)", |n: u32| {
        assert!(n % 3 != 0, "multiple of three");
        n
    }));
    let errors = Arc::new(Mutex::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let address = d.address().clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                let mut s = ClientSession::connect(&address).unwrap();
                for n in 0..60u32 {
                    match s.commit::<u32>("maybe", (n,)) {
                        Ok(v) => assert_eq!(v, n),
                        Err(e) => {
                            assert_eq!(e.remote().unwrap().kind, "RuntimeError");
                            assert_eq!(n % 3, 0);
                            *errors.lock().unwrap() += 1;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*errors.lock().unwrap(), 8 * 20);
}
