//! `call --timeout` sends the call's deadline (docs/PROTOCOL.md section
//! 8.3), and Ctrl-C (or SIGTERM) during a unary call cancels it: the
//! daemon is sent a CANCEL, its handler is dropped or told, and anydctl
//! exits with the signal's status.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Instant;

use anyd::{Appd, Cancelled, Context};
use rustix::process::Signal;

use super::{anydctl, start, Background, Relay, PATIENCE};

/// Says when it is dropped: an async handler's future holds one.
struct Dropped(Sender<()>);

impl Drop for Dropped {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// What the daemon's handlers say: started, dropped (the async one), and
/// why the blocking one stopped.
struct Said {
    started: Receiver<()>,
    dropped: Receiver<()>,
    seen: Receiver<Option<Cancelled>>,
    /// Lets `stuck()` return.
    release: Sender<()>,
}

/// A daemon with `wait()`, an async handler that never finishes on its
/// own; `watch()`, a blocking handler that works until its context says
/// the call is no longer wanted; and `stuck()`, a blocking handler that
/// looks at nothing and returns only when released.
fn daemon() -> (Appd, Said) {
    let (started_tx, started) = channel();
    let (dropped_tx, dropped) = channel();
    let (seen_tx, seen) = channel();
    let (release, released) = channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let (watch_started, stuck_started) = {
        let tx = started_tx.lock().unwrap();
        (Mutex::new(tx.clone()), Mutex::new(tx.clone()))
    };
    let (dropped_tx, seen_tx, released) = (
        Mutex::new(dropped_tx),
        Mutex::new(seen_tx),
        Mutex::new(released),
    );
    let appd = Appd::new()
        .api("wait()", move || {
            let guard = Dropped(dropped_tx.lock().unwrap().clone());
            let started = started_tx.lock().unwrap().clone();
            async move {
                let _guard = guard;
                let _ = started.send(());
                std::future::pending::<()>().await;
                1u32
            }
        })
        .api("watch()", move |ctx: Context| {
            let _ = watch_started.lock().unwrap().send(());
            let started = Instant::now();
            while !ctx.is_cancelled() && started.elapsed() < PATIENCE {
                std::thread::yield_now();
            }
            let _ = seen_tx.lock().unwrap().send(ctx.why());
            "stopped"
        })
        .api("stuck()", move || {
            let _ = stuck_started.lock().unwrap().send(());
            let _ = released.lock().unwrap().recv_timeout(PATIENCE);
            "released"
        });
    let said = Said {
        started,
        dropped,
        seen,
        release,
    };
    (appd, said)
}

#[test]
fn call_timeout_is_sent_to_the_daemon_whose_timeout_error_exits_6() {
    let (appd, said) = daemon();
    let (_d, addr, _dir) = start(appd);
    let run = anydctl(&["call", "--timeout", "300ms", &addr, "wait"]);
    assert_eq!(run.code, 6, "{run:#?}");
    // The daemon's words, with the deadline it was sent.
    assert_eq!(
        run.stderr,
        "TimeoutError: wait() did not finish within its deadline (300 ms)\n"
    );
    said.dropped
        .recv_timeout(PATIENCE)
        .expect("the handler was dropped");
}

#[test]
fn ctrl_c_during_a_call_cancels_it_and_exits_130() {
    let (appd, said) = daemon();
    let (_d, addr, _dir) = start(appd);
    let relay = Relay::start(&addr);
    let run = Background::start(&["call", "--no-check", &relay.address, "wait"]);
    said.started.recv_timeout(PATIENCE).expect("the call runs");
    run.signal(Signal::INT);
    let run = run.finish();
    assert_eq!((run.code, run.stdout.as_str()), (130, ""), "{run:#?}");
    assert_eq!(run.stderr, "");
    said.dropped
        .recv_timeout(PATIENCE)
        .expect("the handler was dropped");
    // Told with a CANCEL behind the call (anyd.version said the daemon
    // reads one), its Cancelled reply read, the session ended well.
    assert_eq!(
        relay.client_said(),
        ["call anyd.version", "call wait", "cancel", "end session"]
    );
    let daemon = relay.daemon_said();
    assert!(
        daemon.ends_with(&["Cancelled".to_owned(), "end session".to_owned()]),
        "{daemon:?}"
    );
}

#[test]
fn sigterm_during_a_call_tells_a_blocking_handler_and_exits_143() {
    let (appd, said) = daemon();
    let (_d, addr, _dir) = start(appd);
    let run = Background::start(&["call", &addr, "watch"]);
    said.started.recv_timeout(PATIENCE).expect("the call runs");
    run.signal(Signal::TERM);
    let run = run.finish();
    assert_eq!((run.code, run.stdout.as_str()), (143, ""), "{run:#?}");
    let seen = said.seen.recv_timeout(PATIENCE).unwrap();
    assert_eq!(seen, Some(Cancelled::ByCaller));
}

#[test]
fn a_handler_that_does_not_stop_is_cut_off_after_a_grace_and_ctrl_c_still_exits_130() {
    let (appd, said) = daemon();
    let (_d, addr, _dir) = start(appd);
    let run = Background::start(&["call", &addr, "stuck"]);
    said.started.recv_timeout(PATIENCE).expect("the call runs");
    run.signal(Signal::INT);
    let run = run.finish();
    assert_eq!((run.code, run.stdout.as_str()), (130, ""), "{run:#?}");
    assert_eq!(run.stderr, "");
    said.release.send(()).unwrap();
}
