//! The daemon under load, measured from outside: many clients at once, a
//! long run, clients that do not read or read slowly, a flood of frames at
//! the size limit, panics in numbers. The daemon runs in its own process
//! (see `process`), so that its memory and threads are what is measured,
//! and each test says what it saw on stderr.
//!
//! The soak (a million calls) is ignored by default: it would double the
//! time of the whole debug test run. `.ci/run` runs it in release, where it
//! takes seconds:
//! `cargo nextest run --release --workspace --locked --test it --run-ignored only a_million_calls_do_not_grow_the_daemon`.

use anyd_testkit::{process, raw, rerun};

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyd::wire::frame;
use anyd::{ClientOptions, ClientSession, Error};
use process::{wait_until, Daemon, Settings, PATIENCE};
use raw::request;

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
fn frames_in_progress_on_a_thousand_connections_are_bounded_by_the_memory_budget() {
    const CONNECTIONS: usize = 1000;
    const BUDGET: usize = 64 << 20;
    // What a connection may cost the daemon outside the budget: the free
    // allowance of its read buffer (64 KiB), its thread's stack and the
    // allocator's share, generously.
    const PER_CONNECTION: usize = 160 * 1024;
    // The budget counts what buffers hold, not what the allocator keeps
    // of what cut connections gave back, for reuse. Once glibc has seen a
    // large block freed, it serves blocks up to that size from its arenas
    // (up to 16 of them on two cores) instead of mapping them, and keeps
    // free memory at the top of each up to twice that size: measured, up
    // to some 250 MiB more than the buffers hold in this test, which goes
    // away with a fixed `MALLOC_MMAP_THRESHOLD_`. Bounded, but not by the
    // budget; the small calls and measuring noise fit in it too.
    const ALLOCATOR: usize = 256 << 20;
    let bound_kib = ((BUDGET + CONNECTIONS * PER_CONNECTION + ALLOCATOR) / 1024) as u64;
    process::allow_open_files(2 * CONNECTIONS as u64 + 64);
    let d = Daemon::start_with(Settings {
        memory_budget: Some(BUDGET),
        ..Settings::default()
    });
    let idle = d.wait_quiet();
    d.reset_peak();

    // A client making small calls throughout, on a session established
    // before the flood and on new ones.
    let stop = Arc::new(AtomicBool::new(false));
    let small = {
        let (options, path, stop) = (d.options(), d.path().to_owned(), stop.clone());
        let mut s = options.clone().connect(path.as_str()).unwrap();
        client_thread(move || -> Result<usize, String> {
            let mut calls = 0;
            while !stop.load(Ordering::SeqCst) {
                let sent = format!("small {calls}");
                let got: String = s.commit("echo", (&sent,)).map_err(|e| e.to_string())?;
                if got != sent {
                    return Err(format!("sent {sent:?}, got {got:?}"));
                }
                if calls % 50 == 0 {
                    let mut fresh = options
                        .clone()
                        .connect(path.as_str())
                        .map_err(|e| e.to_string())?;
                    let sum: u64 = fresh.commit("sum", (calls, 1)).map_err(|e| e.to_string())?;
                    if sum != calls as u64 + 1 {
                        return Err(format!("sum({calls}, 1) = {sum}"));
                    }
                }
                calls += 1;
            }
            Ok(calls)
        })
    };

    // The flood: every connection announces a frame at the size limit and
    // sends all of it but the last byte, as fast as the daemon takes it.
    let mut header = (frame::DEFAULT_MAX_FRAME as u32 - 1).to_be_bytes().to_vec();
    header.resize(64 * 1024, 0);
    let zeros = vec![0u8; 64 * 1024];
    let mut flood: Vec<(UnixStream, usize)> = (0..CONNECTIONS)
        .map(|_| {
            let s = UnixStream::connect(d.path()).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, frame::DEFAULT_MAX_FRAME + 4 - 2)
        })
        .collect();
    let (mut cut, mut done, mut peak_kib) = (0, 0, 0);
    let mut busy: Vec<usize> = (0..CONNECTIONS).collect();
    let deadline = Instant::now() + PATIENCE;
    while !busy.is_empty() {
        assert!(Instant::now() < deadline, "the flood took too long");
        let ready: Vec<usize> = {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let mut fds: Vec<PollFd> = busy
                .iter()
                .map(|&i| PollFd::new(&flood[i].0, PollFlags::OUT))
                .collect();
            poll(
                &mut fds,
                Some(&Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                }),
            )
            .unwrap();
            busy.iter()
                .zip(&fds)
                .filter(|(_, fd)| !fd.revents().is_empty())
                .map(|(&i, _)| i)
                .collect()
        };
        for i in ready {
            let (s, left) = &mut flood[i];
            loop {
                let sent_so_far = frame::DEFAULT_MAX_FRAME + 4 - 2 - *left;
                let bytes = if sent_so_far < header.len() {
                    &header[sent_so_far..]
                } else {
                    &zeros[..]
                };
                match s.write(&bytes[..bytes.len().min(*left)]) {
                    Ok(n) => {
                        *left -= n;
                        if *left == 0 {
                            done += 1;
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        cut += 1;
                        *left = usize::MAX;
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        busy.retain(|&i| flood[i].1 != 0 && flood[i].1 != usize::MAX);
        // Checked as it goes, so that a daemon without a budget fails here
        // long before it has taken the machine's memory.
        let now = d.status();
        peak_kib = peak_kib.max(now.peak_kib);
        let grown = now.peak_kib.saturating_sub(idle.rss_kib);
        assert!(
            grown < bound_kib,
            "the daemon grew by {grown} KiB (bound {bound_kib} KiB) with {} connections \
             sending frames, {cut} of them cut",
            busy.len()
        );
    }
    let held = d.status();
    stop.store(true, Ordering::SeqCst);
    let calls = small.join().unwrap().unwrap();
    eprintln!(
        "daemon RSS (KiB): idle {}, peak {} while {CONNECTIONS} connections sent a \
         {}-byte frame each (budget {} KiB, bound {bound_kib} KiB), {} after; \
         {cut} connections cut, {done} got their frame through but the last byte; \
         {calls} small calls served meanwhile",
        idle.rss_kib,
        peak_kib,
        frame::DEFAULT_MAX_FRAME - 1,
        BUDGET / 1024,
        held.rss_kib
    );
    assert_eq!(cut + done, CONNECTIONS);
    assert!(calls > 0, "no small call was served during the flood");

    // Once they are gone, the budget is whole again: large calls fit.
    drop(flood);
    let after = d.wait_quiet();
    eprintln!("daemon RSS (KiB) once they are gone: {}", after.rss_kib);
    assert_eq!(after.threads, idle.threads);
    let mut s = d.session();
    let large = "y".repeat(8 << 20);
    assert_eq!(s.commit::<String>("echo", (&large,)).unwrap(), large);
}

#[test]
fn a_reply_the_budget_cannot_hold_closes_only_its_connection() {
    const BUDGET: usize = 4 << 20;
    let d = Daemon::start_with(Settings {
        memory_budget: Some(BUDGET),
        ..Settings::default()
    });
    let mut other = d.session();
    let mut greedy = d.session();
    match greedy.commit::<String>("blob", (2 * BUDGET,)) {
        Err(e) if !matches!(e, Error::Remote(_)) => {}
        other => panic!(
            "a reply over the budget was not refused: {:?}",
            other.map(|s| s.len())
        ),
    }
    // Within the budget is served, before and after.
    assert_eq!(
        other.commit::<String>("blob", (BUDGET / 2,)).unwrap().len(),
        BUDGET / 2
    );
    let mut fresh = d.session();
    assert_eq!(
        fresh.commit::<String>("blob", (BUDGET / 2,)).unwrap().len(),
        BUDGET / 2
    );
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
    if !rerun::is_alone() {
        return rerun::alone("load::the_blocking_client_starts_no_thread");
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
