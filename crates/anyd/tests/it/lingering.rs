//! Streams whose iterator blocks in `next` (`Items::from_iter` waiting for
//! an event that does not come) after their client has gone: the
//! connection's thread, socket and place are given back at once; the
//! iterator's thread runs on until its `next` returns, holding a place of
//! its caller's share, and then ends without asking for another item.

use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyd::wire::message::StreamReply;
use anyd::{Appd, ClientOptions, ClientSession, Items};
use anyd_testkit::process::{wait_until, Daemon, MAX_CONNECTIONS_VAR, PATIENCE};
use anyd_testkit::raw::{self, read_frame, start, stream_reply, stream_request};
use anyd_testkit::root;

/// Starts `stuck` on `s`, reads its first item, waits until `in_next`
/// says that its iterator is in `next` (a stream over before that never
/// calls it) and, if `cancel`, cancels it and reads its end; the caller
/// then leaves.
fn start_stuck(s: &mut UnixStream, in_next: impl FnMut() -> bool, cancel: bool) {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(&stream_request("stuck", ())).unwrap();
    let first = read_frame(s).expect("the first item");
    assert!(matches!(stream_reply::<u64>(&first), StreamReply::Item(0)));
    wait_until("the iterator is in its `next`", in_next);
    if cancel {
        s.write_all(&raw::cancel()).unwrap();
        let end = read_frame(s).expect("the end frame");
        match stream_reply::<u64>(&end) {
            StreamReply::Err(e) => assert_eq!(e.kind, "Cancelled", "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

/// Whether a session on `s` is refused: the daemon closes it unanswered.
fn refused(mut s: ClientSession) -> bool {
    s.commit::<String>("echo", ("x",)).is_err()
}

/// A blocking iterator on a daemon in this process: item 0, then a `next`
/// that waits for the test's channel; how many times `next` was called
/// (to wait), and how many iterators were dropped.
fn blocking() -> (Appd, mpsc::Sender<u64>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (release, waits) = mpsc::channel::<u64>();
    let waits = Arc::new(Mutex::new(waits));
    let waited = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (w, d) = (waited.clone(), dropped.clone());
    let appd = Appd::new()
        .api("echo(a)", |a: String| a)
        .api("stuck()", move || {
            let (waits, waited, guard) = (waits.clone(), w.clone(), Guard(d.clone()));
            Items::from_iter(std::iter::once(0).chain(std::iter::from_fn(move || {
                let _ = &guard;
                waited.fetch_add(1, Ordering::SeqCst);
                waits.lock().unwrap().recv().ok()
            })))
        });
    (appd, release, waited, dropped)
}

#[test]
fn a_blocked_iterator_whose_client_left_holds_one_place_until_its_next_returns() {
    let (appd, release, waited, dropped) = blocking();
    // Three places in all (root, as this test runs, is under no share but
    // this cap).
    let (d, _dir) = start(appd.max_connections(3));
    let session = || {
        ClientOptions::new()
            .timeout(Some(PATIENCE))
            .connect(d.address())
            .unwrap()
    };
    start_stuck(
        &mut raw::raw(d.address()),
        || waited.load(Ordering::SeqCst) == 1,
        false,
    );
    // The client left: its connection ends though `next` does not return.
    wait_until("the connection ends", || d.connections() == 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    // The iterator holds one place: two are left.
    let mut held = vec![session(), session()];
    for s in &mut held {
        assert_eq!(s.commit::<String>("echo", ("in",)).unwrap(), "in");
    }
    assert!(refused(session()), "the iterator's place was taken");
    drop(held);
    // Its `next` returns: the iterator is dropped without being asked for
    // another item, and its place is free again.
    release.send(1).unwrap();
    wait_until("the iterator is dropped", || {
        dropped.load(Ordering::SeqCst) == 1
    });
    assert_eq!(waited.load(Ordering::SeqCst), 1, "`next` was called again");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut all: Vec<ClientSession> = (0..3).map(|_| session()).collect();
        if all
            .iter_mut()
            .all(|s| s.commit::<String>("echo", ("in",)).is_ok())
        {
            break;
        }
        // The places of the sessions just dropped may not be free yet.
        assert!(
            Instant::now() < deadline,
            "the iterator's place stayed taken"
        );
        std::thread::yield_now();
    }
}

#[test]
fn shutdown_waits_for_no_blocked_iterator() {
    let (appd, release, waited, dropped) = blocking();
    // Far beyond the test's patience: waited for, a blocked iterator would
    // fail the test.
    let (d, _dir) = start(appd.shutdown_deadline(Duration::from_secs(600)));
    // One client has left its stream; another has cancelled its own and
    // stays, its connection waiting for the iterator before reading on.
    start_stuck(
        &mut raw::raw(d.address()),
        || waited.load(Ordering::SeqCst) == 1,
        false,
    );
    let mut stays = raw::raw(d.address());
    start_stuck(&mut stays, || waited.load(Ordering::SeqCst) == 2, true);
    wait_until("the first connection ends", || d.connections() == 1);
    let (stopped, stopping) = mpsc::channel();
    std::thread::spawn(move || stopped.send(d.shutdown()));
    stopping
        .recv_timeout(PATIENCE)
        .expect("shutdown waited for a blocked iterator")
        .unwrap();
    assert!(raw::closed_by_daemon(&mut stays));
    // Let go, both end.
    release.send(1).unwrap();
    release.send(1).unwrap();
    wait_until("the iterators are dropped", || {
        dropped.load(Ordering::SeqCst) == 2
    });
    assert_eq!(waited.load(Ordering::SeqCst), 2, "`next` was called again");
}

/// The share of one user under the cap the test sets (1,536: an eighth).
const SHARE: usize = 192;
/// The user that leaves the iterators behind.
const NOBODY: u32 = 65534;

/// Connects to abstract socket `name` as whoever this thread is.
fn connect_abstract(name: &str) -> UnixStream {
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    UnixStream::connect_addr(&addr).unwrap()
}

/// Waits until the daemon holds no connection and runs no connection
/// thread, `iterators` iterator threads, `threads` threads in all and
/// `fds` descriptors; fails showing what it has instead.
fn settle(d: &Daemon, iterators: usize, threads: u64, fds: usize) {
    wait_until("the clients' connections end", || d.connections() == 0);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = (
            d.connection_threads(),
            d.iterator_threads(),
            d.status().threads,
            d.open_fds(),
        );
        if now == (0, iterators, threads, fds) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "(connection threads, iterator threads, threads, descriptors) are {now:?}, \
             not {:?}",
            (0, iterators, threads, fds)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `n` sessions of the current thread's user with `options` on `path`,
/// each having made a call.
fn sessions(options: &ClientOptions, path: &str, n: usize) -> Vec<ClientSession> {
    (0..n)
        .map(|i| {
            let mut s = options.clone().connect(path).unwrap();
            let echoed: String = s
                .commit("echo", ("in",))
                .unwrap_or_else(|e| panic!("session {i} of {n}: {e}"));
            assert_eq!(echoed, "in");
            s
        })
        .collect()
}

#[test]
fn clients_that_leave_blocked_iterators_cost_only_those_threads_within_their_share_as_root() {
    root::require_root("connecting as another user");
    const ROUNDS: usize = 4;
    const CLIENTS: usize = 32;
    let name = format!("anyd-lingering-{}", std::process::id());
    let d = Daemon::start_at(
        Some(&format!("unix:@{name}")),
        None,
        &[(MAX_CONNECTIONS_VAR, "1536")],
    );
    let (options, path) = (d.options(), d.path());
    let idle = d.wait_quiet();
    let idle_fds = d.open_fds();
    for round in 1..=ROUNDS {
        // Every other round the clients cancel first, and leave while the
        // daemon waits for the iterator before their next request.
        let cancel = round % 2 == 0;
        let lingering = round * CLIENTS;
        let mut watch = d.session();
        root::as_user(NOBODY, NOBODY, &[], || {
            for i in lingering - CLIENTS..lingering {
                let in_next = || watch.commit::<usize>("stuck_waiting", ()).unwrap() == i + 1;
                start_stuck(&mut connect_abstract(&name), in_next, cancel);
            }
        });
        drop(watch);
        settle(&d, lingering, idle.threads + lingering as u64, idle_fds);
        eprintln!(
            "figure: after {round} x {CLIENTS} clients left (cancelling first: {cancel}): \
             daemon threads {} (idle {}), descriptors {} (idle {idle_fds}), \
             iterator threads {lingering}",
            d.status().threads,
            idle.threads,
            d.open_fds(),
        );
        let mut s = d.session();
        assert_eq!(s.commit::<usize>("stuck_waiting", ()).unwrap(), lingering);
        // Root calls, and nobody gets its share less the iterators, and
        // no more.
        assert_eq!(s.commit::<String>("echo", ("root",)).unwrap(), "root");
        root::as_user(NOBODY, NOBODY, &[], || {
            let held = sessions(&options, path, SHARE - lingering);
            assert!(
                refused(options.clone().connect(path).unwrap()),
                "nobody got a place beyond its share"
            );
            drop(held);
        });
    }
    // Another user, too.
    root::as_user(NOBODY - 1, NOBODY - 1, &[], || {
        drop(sessions(&options, path, 1))
    });
    // Their `next` returns: each iterator's thread ends without asking for
    // another item, and nobody's share is whole again.
    let mut s = d.session();
    assert_eq!(s.commit::<usize>("unstick", ()).unwrap(), ROUNDS * CLIENTS);
    drop(s);
    settle(&d, 0, idle.threads, idle_fds);
    assert_eq!(d.session().commit::<usize>("stuck_waiting", ()).unwrap(), 0);
    root::as_user(NOBODY, NOBODY, &[], || {
        drop(sessions(&options, path, SHARE))
    });
}
