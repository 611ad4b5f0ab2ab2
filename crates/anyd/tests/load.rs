//! The daemon under load, measured from outside: many clients at once, a
//! long run, clients that do not read or read slowly, panics in numbers. The daemon runs in its own process
//! (see `process`), so that its memory and threads are what is measured,
//! and each test says what it saw on stderr.
//!
//! The soak (a million calls) is ignored by default: it would double the
//! time of the whole debug test run. `.ci/run` runs it in release, where it
//! takes seconds:
//! `cargo nextest run --release --workspace --locked --test load --run-ignored only a_million_calls_do_not_grow_the_daemon`.

mod process;
mod raw;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyd::{ClientOptions, ClientSession, Error};
use process::{wait_until, Daemon, Settings, PATIENCE};
use raw::request;

/// The daemon side, started by the tests below (see `process`).
#[test]
#[ignore = "not a test: the daemon process of the tests in this file"]
fn child_daemon() {
    process::serve_as_child();
}

/// Waits for client threads; returns the errors they reported.
fn errors_of(threads: Vec<std::thread::JoinHandle<Result<(), String>>>) -> Vec<String> {
    threads
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect()
}

fn assert_no_errors(errors: &[String]) {
    assert!(
        errors.is_empty(),
        "{} clients failed; the first ones:\n{}",
        errors.len(),
        errors[..errors.len().min(10)].join("\n")
    );
}

/// Client threads need little stack; a thousand of them at the default
/// size would reserve gigabytes of address space for nothing.
fn client_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(work)
        .unwrap()
}

/// `clients` clients connect at once and, once the daemon holds them all,
/// make `calls` calls each; returns the daemon's status while it held them.
///
/// # Panics
///
/// If any client fails to connect, gets an error or a reply that is not
/// its own.
fn all_at_once(d: &Daemon, clients: usize, calls: usize) -> process::Status {
    let connected = Arc::new(Barrier::new(clients + 1));
    let go = Arc::new(Barrier::new(clients + 1));
    let failed_to_connect = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let options = d.options();
            let path = d.path().to_owned();
            let (connected, go) = (connected.clone(), go.clone());
            let failed_to_connect = failed_to_connect.clone();
            client_thread(move || {
                let session = options.connect(path.as_str());
                if session.is_err() {
                    failed_to_connect.fetch_add(1, Ordering::SeqCst);
                }
                connected.wait();
                go.wait();
                let mut s = session.map_err(|e| format!("client {c}: connect: {e}"))?;
                for i in 0..calls {
                    // A value no other call sends: a reply that went to the
                    // wrong call, or came twice, shows.
                    let sent = format!("{c}/{i}");
                    let got: String = s
                        .commit("echo", (&sent,))
                        .map_err(|e| format!("client {c}, call {i}: {e}"))?;
                    if got != sent {
                        return Err(format!("client {c}, call {i}: sent {sent:?}, got {got:?}"));
                    }
                }
                s.end_session()
                    .map_err(|e| format!("client {c}: end of session: {e}"))
            })
        })
        .collect();
    connected.wait();
    // Connected is not yet accepted: wait until the daemon holds every
    // client, so that the calls really run on all the connections at once.
    wait_until("the daemon holds every client", || {
        failed_to_connect.load(Ordering::SeqCst) > 0 || d.connections() == clients
    });
    let held = d.status();
    go.wait();
    let errors = errors_of(threads);
    assert_eq!(failed_to_connect.load(Ordering::SeqCst), 0, "{errors:?}");
    assert_no_errors(&errors);
    held
}

#[test]
fn a_thousand_clients_at_once_each_get_their_own_replies() {
    const CLIENTS: usize = 1000;
    // The daemon holds two descriptors per connection (the stream and the
    // copy shutdown reaches it through); this process one.
    process::allow_open_files(2 * CLIENTS as u64 + 64);
    let d = Daemon::start(None);
    let fresh = d.wait_quiet();
    // A first round with few calls: the allocator keeps some of what a
    // thousand threads used (a few MiB, its per-thread arenas and cached
    // stacks) and reuses it for the next thousand; measured after this
    // round, the daemon is at its idle size once it has served.
    all_at_once(&d, CLIENTS, 10);
    let idle = d.wait_quiet();
    d.reset_peak();
    let held = all_at_once(&d, CLIENTS, 200);
    let after = d.wait_quiet();
    eprintln!(
        "daemon RSS (KiB): fresh {}, idle after a first round {}, \
         holding {CLIENTS} connections {} ({} threads), peak {}, after {}",
        fresh.rss_kib, idle.rss_kib, held.rss_kib, held.threads, after.peak_kib, after.rss_kib
    );
    assert_eq!(after.threads, idle.threads, "threads were left behind");
    // 200,000 calls and a thousand connections later, the daemon is back
    // to its size: a leak of 2 KiB per connection, or 10 bytes per call,
    // would show.
    let kept = after.rss_kib.saturating_sub(idle.rss_kib);
    assert!(
        kept < 2 * 1024,
        "the daemon kept {kept} KiB after the load (idle {} KiB, after {} KiB)",
        idle.rss_kib,
        after.rss_kib
    );
}

#[test]
#[ignore = "a million calls: run in release, as .ci/run does"]
fn a_million_calls_do_not_grow_the_daemon() {
    const ROUNDS: u64 = 10;
    const PER_ROUND: u64 = 100_000;
    const CLIENTS: u64 = 4;
    let d = Daemon::start(None);
    let start = d.wait_quiet();
    let mut after_round = Vec::new();
    for round in 0..ROUNDS {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let options = d.options();
                let path = d.path().to_owned();
                let first = round * PER_ROUND + c * (PER_ROUND / CLIENTS);
                client_thread(move || {
                    soak_client(&options, &path, first..first + PER_ROUND / CLIENTS)
                })
            })
            .collect();
        assert_no_errors(&errors_of(threads));
        // Measured with no connection open: the same state every round.
        after_round.push(d.wait_quiet().rss_kib);
    }
    eprintln!(
        "daemon RSS (KiB): idle {}, after each 100,000 calls {after_round:?}",
        start.rss_kib
    );
    let (first, last) = (after_round[0], after_round[after_round.len() - 1]);
    let growth = last.saturating_sub(first);
    assert!(
        growth < 1024,
        "the daemon grew by {growth} KiB from the first to the last 100,000 calls"
    );
}

/// How many calls the soak makes on one session: sessions are renewed now
/// and then, so that connecting and ending are soaked too.
const PER_SESSION_OF_SOAK: u64 = 5_000;

/// Makes calls `numbers`, each checked: echoes of unique strings of
/// varied length, sums, an endpoint's own error, an unknown endpoint.
fn soak_client(
    options: &ClientOptions,
    path: &str,
    numbers: std::ops::Range<u64>,
) -> Result<(), String> {
    let mut session: Option<ClientSession> = None;
    for n in numbers {
        if n % PER_SESSION_OF_SOAK == 0 {
            if let Some(s) = session.take() {
                s.end_session().map_err(|e| format!("call {n}: {e}"))?;
            }
        }
        let s = match &mut session {
            Some(s) => s,
            None => session.insert(
                options
                    .clone()
                    .connect(path)
                    .map_err(|e| format!("call {n}: connect: {e}"))?,
            ),
        };
        let fail = |what: String| format!("call {n}: {what}");
        match n % 4 {
            0 => {
                let sent = format!("{n}:{}", "x".repeat((n % 1000) as usize));
                let got: String = s
                    .commit("echo", (&sent,))
                    .map_err(|e| fail(e.to_string()))?;
                if got != sent {
                    return Err(fail(format!("echo of {sent:?} came back as {got:?}")));
                }
            }
            1 => {
                let got: u64 = s.commit("sum", (n, 1)).map_err(|e| fail(e.to_string()))?;
                if got != n + 1 {
                    return Err(fail(format!("sum({n}, 1) = {got}")));
                }
            }
            2 => expect_remote(s.commit::<u64>("refuse", (n,)), "Refused", &n.to_string())
                .map_err(fail)?,
            _ => expect_remote(
                s.commit::<u64>("nowhere", (n,)),
                "NotImplementedError",
                "nowhere",
            )
            .map_err(fail)?,
        }
    }
    if let Some(s) = session {
        s.end_session().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks that a call failed with an error reply of `kind` that says
/// `says`.
fn expect_remote(result: Result<u64, Error>, kind: &str, says: &str) -> Result<(), String> {
    match result {
        Err(Error::Remote(e)) if e.kind == kind && e.message == says => Ok(()),
        other => Err(format!("expected a {kind} saying {says:?}, got {other:?}")),
    }
}

#[test]
fn a_client_that_never_reads_costs_the_daemon_bounded_memory() {
    // Replies of 256 KiB to a burst of requests that fits in one socket
    // buffer: a gigabyte of replies, were they all made before one is
    // sent.
    const REPLY: usize = 256 * 1024;
    const REQUESTS: usize = 4096;
    let d = Daemon::start(None);
    let idle = d.wait_quiet();
    d.reset_peak();

    let greedy = UnixStream::connect(d.path()).unwrap();
    greedy.set_read_timeout(Some(PATIENCE)).unwrap();
    let burst: Vec<u8> = (0..REQUESTS)
        .flat_map(|_| request("blob", (REPLY,)))
        .collect();
    let writer = {
        let mut w = greedy.try_clone().unwrap();
        // Blocks once the daemon stops reading; ends when the socket is
        // shut down below.
        std::thread::spawn(move || {
            let _ = w.write_all(&burst);
        })
    };
    // The daemon has begun answering: a reply waits in our socket, unread
    // (peeked at, not consumed).
    let mut byte = [0u8; 1];
    let (n, _) = rustix::net::recv(&greedy, &mut byte[..], rustix::net::RecvFlags::PEEK).unwrap();
    assert_eq!(n, 1);

    // Meanwhile others are served, on new connections and old.
    let mut other = d.session();
    for i in 0..100 {
        let sent = format!("other {i}");
        assert_eq!(other.commit::<String>("echo", (&sent,)).unwrap(), sent);
        if i % 10 == 0 {
            let mut fresh = d.session();
            assert_eq!(fresh.commit::<u64>("sum", (i, 1)).unwrap(), i + 1);
        }
    }
    drop(other);
    let stuck = d.status();
    eprintln!(
        "daemon RSS (KiB): idle {}, with a client that does not read {} (peak {}), \
         {} of replies waiting in its socket",
        idle.rss_kib,
        stuck.rss_kib,
        stuck.peak_kib,
        rustix::io::ioctl_fionread(&greedy).unwrap()
    );
    // The replies not yet sent are not piled up in the daemon: it made as
    // many as the socket takes and a few more, then waited.
    let grown = stuck.peak_kib.saturating_sub(idle.rss_kib);
    assert!(
        grown < 4 * 1024,
        "the daemon grew by {grown} KiB for a client that does not read"
    );

    // The client goes away without having read a thing: its connection
    // ends and its memory is given back.
    greedy.shutdown(std::net::Shutdown::Both).unwrap();
    drop(greedy);
    writer.join().unwrap();
    let after = d.wait_quiet();
    eprintln!("daemon RSS (KiB) once it left: {}", after.rss_kib);
    assert_eq!(after.threads, idle.threads);
}

#[test]
fn a_reply_read_slowly_is_cut_at_the_deadline() {
    // The reader frees some socket buffer every quarter of the idle
    // timeout: each wait of a send for room is short, but the whole reply
    // would take some sixteen seconds at this pace. It is due within the
    // idle timeout of the start of its write.
    const IDLE: Duration = Duration::from_secs(1);
    const REPLY: usize = 4 << 20;
    const READ: usize = 64 * 1024;
    let d = Daemon::start_with(Settings {
        idle_timeout: Some(IDLE),
        ..Settings::default()
    });
    let mut other = d.session();
    let mut slow = UnixStream::connect(d.path()).unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    slow.write_all(&request("blob", (REPLY,))).unwrap();
    let started = Instant::now();
    let mut got = 0;
    let mut chunk = vec![0u8; READ];
    let cut = loop {
        match slow.read(&mut chunk) {
            Ok(0) => break true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Ok(n) => got += n,
            Err(e) => panic!("reading the reply: {e}"),
        }
        if got >= REPLY {
            break false;
        }
        // Meanwhile another client is served.
        assert_eq!(
            other.commit::<u64>("sum", (got as u64, 1)).unwrap(),
            got as u64 + 1
        );
        // The pace of a slow reader, not a wait for anything.
        std::thread::sleep(IDLE / 4);
    };
    eprintln!(
        "a client reading {READ} bytes per {:?} got {got} of a {REPLY}-byte reply \
         in {:?} (idle timeout {IDLE:?})",
        IDLE / 4,
        started.elapsed()
    );
    assert!(
        cut,
        "the daemon wrote a whole {REPLY}-byte reply to a client that took {:?} to read it",
        started.elapsed()
    );
    // Its connection and thread are given back (the other session has
    // been idle for longer than the timeout by then, and goes too).
    drop((slow, other));
    d.wait_quiet();
}

#[test]
fn panics_under_load_are_one_error_reply_each() {
    const CLIENTS: u64 = 64;
    const CALLS: u64 = 200;
    let d = Daemon::start(None);
    let idle = d.wait_quiet();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let options = d.options();
            let path = d.path().to_owned();
            client_thread(move || {
                let mut s = options
                    .connect(path.as_str())
                    .map_err(|e| format!("client {c}: connect: {e}"))?;
                for i in 0..CALLS {
                    let n = c * CALLS + i;
                    if i % 2 == 0 {
                        let sent = n.to_string();
                        match s.commit::<String>("echo", (&sent,)) {
                            Ok(got) if got == sent => {}
                            other => return Err(format!("echo of {sent}: {other:?}")),
                        }
                    } else {
                        // The reply names this call's own panic.
                        match s.commit::<u64>("boom", (n,)) {
                            Err(Error::Remote(e))
                                if e.kind == "RuntimeError"
                                    && e.message == format!("boom() panicked: boom {n}") => {}
                            other => return Err(format!("boom({n}): {other:?}")),
                        }
                    }
                }
                s.end_session().map_err(|e| format!("client {c}: {e}"))
            })
        })
        .collect();
    assert_no_errors(&errors_of(threads));
    // Every connection thread ended normally, the daemon lost none and
    // kept none.
    let after = d.wait_quiet();
    assert_eq!(after.threads, idle.threads);
    let mut s = d.session();
    assert_eq!(
        s.commit::<String>("echo", ("still here",)).unwrap(),
        "still here"
    );
}

#[test]
fn the_blocking_client_starts_no_thread() {
    // Threads are counted for the whole process, so this runs alone in a
    // process of its own, whatever the test runner does with the others.
    if std::env::var_os("ANYD_TEST_ALONE").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "the_blocking_client_starts_no_thread",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ANYD_TEST_ALONE", "1")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{said}");
        assert!(said.contains("1 passed"), "the test did not run:\n{said}");
        return;
    }
    // The daemon is another process: every thread counted here is ours.
    let d = Daemon::start(None);
    let threads = || process::Status::of(None).threads;
    let before = threads();
    let mut s = d.session();
    assert_eq!(threads(), before, "connecting started a thread");
    for i in 0..100u64 {
        assert_eq!(s.commit::<u64>("sum", (i, 1)).unwrap(), i + 1);
    }
    assert_eq!(threads(), before, "calling started a thread");
    s.end_session().unwrap();
    assert_eq!(threads(), before);
}
