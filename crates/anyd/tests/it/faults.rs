//! Faults from outside the daemon: clients killed or gone in the middle of
//! a frame, a request or the handshake, and SIGTERM while clients are
//! busy. The daemon goes on, and what a vanished client held (its
//! connection, its thread) is given back.
//!
//! Killed clients are this test binary run again (`child_client`), so that
//! SIGKILL hits only them; the daemon is in its own process too (see
//! `process`) where its threads are counted.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyd::wire::handshake::{ClientHandshake, HandshakeOptions};
use anyd::wire::{codec, frame, message, Codec};
use anyd::{Appd, Error};
use anyd_testkit::rerun::{self, Process};
use anyd_testkit::{process, raw};
use process::{wait_until, Daemon, PATIENCE};
use raw::{read_frame, request};
use rustix::process::Signal;

/// What a `child_client` does before it waits to be killed.
const CLIENT_MODE_VAR: &str = "ANYD_FAULTS_CLIENT";
/// The socket a `child_client` connects to.
const CLIENT_PATH_VAR: &str = "ANYD_FAULTS_CLIENT_PATH";

/// The client side of the kill test: connects, sends what its mode says,
/// prints `SENT`, and waits (for stdin, which never comes) to be killed.
/// Started by `KilledClient::start`; fails when run without it.
#[test]
#[ignore = "not a test: the killed client of the tests in this file"]
fn child_client() {
    let Ok(mode) = std::env::var(CLIENT_MODE_VAR) else {
        panic!("{}", rerun::NOT_A_TEST);
    };
    let path = std::env::var(CLIENT_PATH_VAR).unwrap();
    let mut s = UnixStream::connect(&path).unwrap();
    let echo = request("echo", ("hello",));
    match mode.as_str() {
        // Two bytes of a four-byte header.
        "header" => s.write_all(&echo[..2]).unwrap(),
        // The header and half the payload.
        "half frame" => s.write_all(&echo[..echo.len() / 2]).unwrap(),
        // Requests, and a last one cut short.
        "pipelined" => {
            let mut burst: Vec<u8> = (0..100).flat_map(|_| echo.clone()).collect();
            burst.extend_from_slice(&echo[..echo.len() - 1]);
            s.write_all(&burst).unwrap();
        }
        // A whole request whose handler does not return until told.
        "in a call" => s.write_all(&request("slow", ())).unwrap(),
        // The same, the handler holding a descriptor of the call, and two
        // more that came with it.
        "in a call with descriptors" => {
            let (readers, _writers) = raw::pipes(3);
            let fds: Vec<_> = readers.iter().map(AsFd::as_fd).collect();
            let frame = raw::fd_request("fd_hold", (raw::placeholder(0),));
            raw::send_with_fds(&s, &frame, &fds);
        }
        // Requests for descriptors, never read: the daemon is blocked
        // writing replies that carry them when this client dies (each
        // such reply is a write of its own, and the socket holds a few
        // hundred; the requests fit in its buffer the other way).
        "not reading descriptors" => {
            let burst: Vec<u8> = (0..2_000)
                .flat_map(|_| raw::fd_request("fd_null", ()))
                .collect();
            s.write_all(&burst).unwrap();
        }
        // Requests for 1 MiB replies, never read: the daemon is blocked
        // writing to this client when it dies.
        "not reading" => {
            let burst: Vec<u8> = (0..64).flat_map(|_| request("blob", (1 << 20,))).collect();
            s.write_all(&burst).unwrap();
        }
        // Receiving a stream that has nothing to say.
        "in a quiet stream" => s.write_all(&raw::stream_request("quiet", ())).unwrap(),
        // Subscribed to events.
        "subscribed" => s.write_all(&raw::stream_request("ticks", ())).unwrap(),
        // Receiving a stream that never ends, not reading: the daemon is
        // blocked writing to this client, its iterator's thread waiting
        // for room.
        "flooded" => s.write_all(&raw::stream_request("flood", (1024,))).unwrap(),
        // The challenge read, then half a reply (against a keyed daemon).
        "in the handshake" => {
            let challenge = read_frame(&mut s).unwrap();
            assert!(challenge.starts_with(b"#CHALLENGE#"));
            s.write_all(&[0, 0, 0, 40, 1, 2, 3]).unwrap();
        }
        other => panic!("unknown mode {other:?}"),
    }
    println!("SENT");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    panic!("a child client was told to go on; it is only ever killed");
}

/// A `child_client` process, killed when dropped.
struct KilledClient {
    process: Process,
}

impl KilledClient {
    /// Starts a client in `mode` and waits until it has sent its part.
    fn start(mode: &str, path: &str) -> KilledClient {
        let process = Process::spawn(
            rerun::helper("faults::child_client")
                .env(CLIENT_MODE_VAR, mode)
                .env(CLIENT_PATH_VAR, path),
        );
        process.expect("SENT");
        KilledClient { process }
    }

    fn kill(mut self) {
        self.process.child.kill().unwrap();
        self.process.child.wait().unwrap();
    }
}
#[test]
fn clients_killed_mid_request_leave_nothing_behind() {
    let mut d = Daemon::start(None);
    let idle = d.wait_quiet();
    let idle_fds = d.open_fds();
    // An established client, served between every kill.
    let mut steady = d.session();
    for (i, mode) in [
        "header",
        "half frame",
        "pipelined",
        "not reading",
        "not reading descriptors",
        "in a call",
        "in a call with descriptors",
        "in a quiet stream",
        "subscribed",
        "flooded",
    ]
    .into_iter()
    .enumerate()
    {
        let client = KilledClient::start(mode, d.path());
        if mode.starts_with("in a call") {
            d.expect("STARTED");
        } else {
            // The daemon holds it (besides the steady client): it dies
            // while connected, not before being accepted.
            wait_until("the daemon holds the client", || d.connections() == 2);
        }
        // A stream's source is in place before the client dies.
        match mode {
            "in a quiet stream" => wait_until("the stream is open", || {
                steady.commit::<usize>("open_channels", ()).unwrap() == 1
            }),
            "subscribed" => wait_until("the subscription is open", || {
                steady.commit::<usize>("subscribers", ()).unwrap() == 1
            }),
            "flooded" => wait_until("the iterator runs on its thread", || {
                d.status().threads > idle.threads
            }),
            _ => {}
        }
        client.kill();
        if mode.starts_with("in a call") {
            // The handler returns after its caller died; its reply has
            // nowhere to go.
            d.go();
        }
        wait_until("the killed client's connection ends", || {
            d.connections() == 1
        });
        // Its stream's source is gone with it, though no item was due.
        assert_eq!(steady.commit::<usize>("open_channels", ()).unwrap(), 0);
        assert_eq!(steady.commit::<usize>("subscribers", ()).unwrap(), 0);
        let sent = format!("after {mode}");
        assert_eq!(steady.commit::<String>("echo", (&sent,)).unwrap(), sent);
        assert_eq!(
            steady.commit::<u64>("sum", (i as u64, 1)).unwrap(),
            i as u64 + 1
        );
    }
    drop(steady);
    let after = d.wait_quiet();
    assert_eq!(after.threads, idle.threads, "threads were left behind");
    assert_eq!(d.open_fds(), idle_fds, "descriptors were left behind");
    assert!(
        d.process.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
}

#[test]
fn a_client_killed_in_the_handshake_leaves_nothing_behind() {
    let d = Daemon::start(Some("sesame"));
    let idle = d.wait_quiet();
    let client = KilledClient::start("in the handshake", d.path());
    wait_until("the daemon holds the client", || d.connections() == 1);
    client.kill();
    let after = d.wait_quiet();
    assert_eq!(after.threads, idle.threads, "threads were left behind");
    let mut s = d.session();
    assert_eq!(s.commit::<String>("echo", ("in",)).unwrap(), "in");
}

/// Plays a session as a client would (the handshake if `key` is given,
/// then one request) but sends only the first `cut` bytes of it, then
/// leaves. Returns true if `cut` covered the whole session, whose reply is
/// then checked.
fn session_cut_at(path: &Path, key: Option<&[u8]>, cut: usize) -> bool {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut left = cut;
    // Sends what the budget allows; true if that was all of `bytes`.
    let mut send = |s: &mut UnixStream, bytes: &[u8]| {
        let n = bytes.len().min(left);
        s.write_all(&bytes[..n]).unwrap();
        left -= n;
        n == bytes.len()
    };
    if let Some(key) = key {
        let mut side = ClientHandshake::new(key, HandshakeOptions::default(), [7; 40]);
        while !side.is_done() {
            let payload = read_frame(&mut s).expect("a handshake frame");
            let step = side.receive(&payload).unwrap();
            if let Some(payload) = step.send {
                let mut f = Vec::new();
                frame::encode(&payload, &mut f);
                if !send(&mut s, &f) {
                    return false;
                }
            }
        }
    }
    if !send(&mut s, &request("echo", ("whole",))) {
        return false;
    }
    let reply: message::Reply<String> = codec::decode_reply(
        Codec::MsgPack,
        &read_frame(&mut s).unwrap(),
        &Default::default(),
    )
    .unwrap();
    assert!(
        matches!(reply, message::Reply::Ok(ref v) if v == "whole"),
        "{reply:?}"
    );
    true
}

#[test]
fn clients_leaving_at_any_byte_leave_no_connection_behind() {
    for key in [None, Some(&b"sesame"[..])] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let mut appd = Appd::new().api("echo(a)", |a: String| a);
        if let Some(key) = key {
            appd = appd.authkey(key);
        }
        let d = appd.bind(path.to_str().unwrap()).unwrap().spawn().unwrap();
        // Leaves after 0, 1, 2... bytes, until a session is whole.
        let mut cut = 0;
        while !session_cut_at(&path, key, cut) {
            cut += 1;
        }
        assert!(cut > 8, "{cut} bytes cannot be a whole session");
        let deadline = Instant::now() + PATIENCE;
        while d.connections() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} connections left after clients left at each of {cut} bytes (key: {})",
                d.connections(),
                key.is_some()
            );
            std::thread::yield_now();
        }
        // And it still serves.
        assert!(session_cut_at(&path, key, usize::MAX));
    }
}

#[test]
fn sigterm_under_load_finishes_calls_in_flight_and_exits_cleanly() {
    const BUSY: usize = 16;
    let mut d = Daemon::start(None);
    // A call in flight when SIGTERM comes, held by the test.
    let slow = {
        let mut s = d.session();
        std::thread::spawn(move || s.commit::<String>("slow", ()))
    };
    d.expect("STARTED");
    // Busy clients, calling until the daemon closes their connection.
    let answered = Arc::new(AtomicUsize::new(0));
    let busy: Vec<_> = (0..BUSY)
        .map(|c| {
            let mut s = d.session();
            let (options, path) = (d.options(), d.path().to_owned());
            let answered = answered.clone();
            std::thread::spawn(move || -> Result<Error, String> {
                for i in 0u64.. {
                    let sent = format!("{c}/{i}");
                    match s.commit::<String>("echo", (&sent,)) {
                        Ok(got) if got == sent => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(got) => return Err(format!("sent {sent:?}, got {got:?}")),
                        // The daemon stopped reading this connection.
                        Err(e @ (Error::Io(_) | Error::Protocol { .. })) => {
                            // By then the socket file is gone: the listener
                            // closes before connections are drained.
                            return match options.connect(path.as_str()) {
                                Err(Error::Connect { .. }) => Ok(e),
                                Err(other) => Err(format!("reconnecting: {other}")),
                                Ok(_) => Err("connected to a stopping daemon".to_owned()),
                            };
                        }
                        Err(e) => return Err(format!("call {sent}: {e}")),
                    }
                }
                Err("ran out of numbers".to_owned())
            })
        })
        .collect();
    // Under load: every busy client has had calls answered.
    wait_until("the busy clients are served", || {
        answered.load(Ordering::SeqCst) >= BUSY * 20
    });
    d.signal(Signal::TERM);
    wait_until("the socket file is removed", || {
        !Path::new(d.path()).exists()
    });
    assert!(matches!(
        d.options().connect(d.path()),
        Err(Error::Connect { .. })
    ));
    // The call in flight completes with its reply.
    d.go();
    assert_eq!(slow.join().unwrap().unwrap(), "finished");
    for (c, t) in busy.into_iter().enumerate() {
        if let Err(e) = t.join().unwrap() {
            panic!("busy client {c}: {e}");
        }
    }
    d.expect("STOPPED true");
    let status = d.wait_exit();
    assert!(status.success(), "{status}");
}
