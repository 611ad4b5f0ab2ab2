//! `anydctl bench`: many clients call one endpoint as fast as the daemon
//! answers; then a report. One thread and one blocking session per client,
//! so that the numbers are those of the real client a program would use.
//!
//! All clients connect first and start together (a gate), so the
//! connection cost is not in the latencies and a daemon that refuses one
//! client fails the run before it starts. The first client's session asks
//! `anyd.endpoints` whether the endpoint streams before anything runs: a
//! streaming endpoint would answer every call with the same TypeError.
//! Each client records latencies in its own histogram; the main thread
//! draws the progress bar from per-client counters and merges the
//! histograms at the end.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use anyd::ClientSession;
use serde::de::IgnoredAny;

use super::call::listed_as_stream;
use super::interrupt_flag;
use crate::exit::{Exit, Failure};
use crate::latency::Latencies;
use crate::output::json;
use crate::output::progress::{Progress, Status};
use crate::output::report::{
    bench_text, BenchReport, Bin, ErrorCount, LatencySummary, HISTOGRAM_BINS,
};
use crate::plan::{codec_name, BenchPlan, CallSpec, Connection, Stop};

/// How often the progress bar is redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// One client's counters, read by the progress bar while the client runs.
/// Aligned to a cache line so that clients on different cores do not slow
/// each other down by writing next to each other.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
}

/// What the clients share.
struct Shared {
    /// Clients wait here once connected, until all are.
    start: Gate,
    /// A client could not connect: nobody runs.
    abort: AtomicBool,
    /// Ctrl-C.
    interrupted: Arc<AtomicBool>,
    /// Calls handed out so far, with `Stop::Requests`.
    tickets: AtomicU64,
    /// Per-client counters.
    counters: Vec<Counters>,
    /// Clients that have finished.
    finished: AtomicUsize,
    /// The main thread, woken when the last client finishes.
    main: Thread,
}

/// The starting line: clients arrive once connected, and the main thread
/// opens the gate when all have (a `Barrier` cannot be opened for fewer
/// when a client thread fails to start).
#[derive(Default)]
struct Gate {
    /// Clients arrived, and whether the gate is open.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Counts this client in and waits for the gate to open.
    fn arrive_and_wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits for `clients` to arrive, then opens the gate.
    fn open_when(&self, clients: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.0 < clients {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.1 = true;
        self.changed.notify_all();
    }
}

/// What one client brings back.
#[derive(Default)]
struct Outcome {
    latencies: Latencies,
    ok: u64,
    errors: BTreeMap<String, (u64, String)>,
    /// It could not connect.
    connect_failure: Option<(Exit, String)>,
    /// It stopped early on a broken connection or a timeout.
    failure: Option<(Exit, String)>,
    ended: Option<Instant>,
}

/// Runs the benchmark and prints the report.
pub(crate) fn run(plan: BenchPlan) -> Result<Exit, Failure> {
    let interrupted = interrupt_flag()?;
    if plan.conn.verbose {
        for reading in &plan.call.readings {
            eprintln!("anydctl: {reading}");
        }
    }
    let shared = Arc::new(Shared {
        start: Gate::default(),
        abort: AtomicBool::new(false),
        interrupted,
        tickets: AtomicU64::new(0),
        counters: (0..plan.clients).map(|_| Counters::default()).collect(),
        finished: AtomicUsize::new(0),
        main: thread::current(),
    });
    let mut first = first_session(&plan)?;
    let call = Arc::new(plan.call.clone());
    let mut handles = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let (conn, call, mine) = (plan.conn.clone(), Arc::clone(&call), Arc::clone(&shared));
        let stop = plan.stop;
        let session = first.take();
        let spawned = thread::Builder::new()
            .name(format!("client-{i}"))
            .spawn(move || client(i, session, &conn, &call, stop, &mine));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Let the clients already started through, to stop at once.
                shared.abort.store(true, Ordering::SeqCst);
                shared.start.open_when(handles.len());
                for h in handles {
                    let _ = h.join();
                }
                return Err(Failure::new(
                    Exit::Other,
                    format!("cannot start client thread {}: {e}", i + 1),
                ));
            }
        }
    }
    shared.start.open_when(plan.clients);
    let start = Instant::now();

    let progress = Progress::on_stderr();
    while shared.finished.load(Ordering::Acquire) < plan.clients
        && !shared.abort.load(Ordering::SeqCst)
    {
        thread::park_timeout(REDRAW);
        let (calls, errors) = shared.counters.iter().fold((0, 0), |(c, e), k| {
            (
                c + k.calls.load(Ordering::Relaxed),
                e + k.errors.load(Ordering::Relaxed),
            )
        });
        let elapsed = start.elapsed();
        let fraction = match plan.stop {
            Stop::After(d) => elapsed.as_secs_f64() / d.as_secs_f64(),
            Stop::Requests(n) => calls as f64 / n as f64,
        };
        progress.draw(Status {
            fraction,
            calls,
            errors,
            elapsed,
        });
    }
    progress.clear();

    let mut outcomes = Vec::with_capacity(handles.len());
    for h in handles {
        // A client thread only panics on a bug here; its calls are lost,
        // so the report would lie.
        let outcome = h
            .join()
            .map_err(|_| Failure::new(Exit::Other, "a client thread panicked; no report"))?;
        outcomes.push(outcome);
    }
    if let Some((exit, why)) = outcomes.iter().find_map(|o| o.connect_failure.clone()) {
        return Err(Failure::new(exit, why));
    }
    let report = report(
        &plan,
        &outcomes,
        start,
        shared.interrupted.load(Ordering::Relaxed),
    );

    let mut out = io::stdout().lock();
    if plan.json {
        json::write_serialize(&mut out, &report, io::stdout().is_terminal())?;
    } else {
        out.write_all(bench_text(&report).as_bytes())?;
    }
    out.flush()?;
    let stopped = outcomes.iter().find_map(|o| o.failure.as_ref());
    Ok(match stopped {
        Some((exit, _)) => *exit,
        None if report.errors > 0 => Exit::Remote,
        None => Exit::Success,
    })
}

/// The first client's session, once it has made sure the endpoint does
/// not stream: a benchmark measures calls for one reply, and a streaming
/// endpoint refuses each of those. Pickle has no streams, nor does a daemon
/// without `anyd.endpoints` say (then the calls' errors are the report).
/// A failure to connect is left to the client, to be reported as the
/// others' are.
fn first_session(plan: &BenchPlan) -> Result<Option<ClientSession>, Failure> {
    if !plan.conn.codec.is_native() {
        return Ok(None);
    }
    let Ok(mut session) = plan.conn.connect() else {
        return Ok(None);
    };
    if listed_as_stream(&plan.conn, &mut session, &plan.call.endpoint)? {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{} streams (anyd.endpoints says so): bench measures calls for one reply; \
                 `anydctl call` prints a stream's items, and --count N stops after N",
                plan.call.endpoint
            ),
        ));
    }
    Ok(Some(session))
}

/// One client: connect (unless the session is given), wait for the
/// others, call until told to stop.
fn client(
    index: usize,
    session: Option<ClientSession>,
    conn: &Connection,
    call: &CallSpec,
    stop: Stop,
    shared: &Shared,
) -> Outcome {
    let mut outcome = Outcome::default();
    let session = match session.map_or_else(|| conn.connect(), Ok) {
        Ok(s) => Some(s),
        Err(f) => {
            outcome.connect_failure = Some((
                f.exit(),
                format!(
                    "client {} of {} cannot connect: {}",
                    index + 1,
                    shared.counters.len(),
                    f.detail()
                ),
            ));
            shared.abort.store(true, Ordering::SeqCst);
            None
        }
    };
    shared.start.arrive_and_wait();
    let Some(mut session) = session.filter(|_| !shared.abort.load(Ordering::SeqCst)) else {
        return outcome;
    };
    let counters = &shared.counters[index];
    let deadline = match stop {
        Stop::After(d) => Some(Instant::now() + d),
        Stop::Requests(_) => None,
    };
    let (args, kwargs) = (call.args_value(), call.kwargs_value());
    loop {
        if shared.interrupted.load(Ordering::Relaxed) {
            break;
        }
        if let Stop::Requests(n) = stop {
            if shared.tickets.fetch_add(1, Ordering::Relaxed) >= n {
                break;
            }
        }
        let t = Instant::now();
        if deadline.is_some_and(|d| t >= d) {
            break;
        }
        let result = session.commit_with::<IgnoredAny>(&call.endpoint, &args, &kwargs);
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match result {
            Ok(_) => {
                outcome.latencies.record(ns);
                outcome.ok += 1;
            }
            Err(anyd::Error::Remote(r)) => {
                outcome.latencies.record(ns);
                let entry = outcome
                    .errors
                    .entry(r.kind)
                    .or_insert_with(|| (0, r.message));
                entry.0 += 1;
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let f = conn.failure(e);
                outcome.failure = Some((f.exit(), f.detail()));
                break;
            }
        }
        counters.calls.fetch_add(1, Ordering::Relaxed);
    }
    outcome.ended = Some(Instant::now());
    drop(session);
    if shared.finished.fetch_add(1, Ordering::AcqRel) + 1 == shared.counters.len() {
        shared.main.unpark();
    }
    outcome
}

/// Adds the clients' outcomes up.
fn report(
    plan: &BenchPlan,
    outcomes: &[Outcome],
    start: Instant,
    interrupted: bool,
) -> BenchReport {
    let mut latencies = Latencies::default();
    let mut ok = 0;
    let mut kinds: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for o in outcomes {
        latencies.merge(&o.latencies);
        ok += o.ok;
        for (kind, (count, message)) in &o.errors {
            let e = kinds.entry(kind).or_insert((0, message));
            e.0 += count;
        }
    }
    let errors: u64 = kinds.values().map(|(c, _)| c).sum();
    let mut error_kinds: Vec<ErrorCount> = kinds
        .into_iter()
        .map(|(kind, (count, message))| ErrorCount {
            kind: kind.to_owned(),
            count,
            message: message.to_owned(),
        })
        .collect();
    error_kinds.sort_by_key(|e| std::cmp::Reverse(e.count));
    let end = outcomes
        .iter()
        .filter_map(|o| o.ended)
        .max()
        .unwrap_or(start);
    let elapsed = end.saturating_duration_since(start).as_secs_f64();
    let calls = ok + errors;
    BenchReport {
        address: plan.conn.address.to_string(),
        call: plan.call.describe(),
        codec: codec_name(plan.conn.codec),
        clients: plan.clients,
        calls,
        ok,
        errors,
        error_kinds,
        failed_clients: outcomes
            .iter()
            .filter_map(|o| o.failure.as_ref().map(|(_, why)| why.clone()))
            .collect(),
        interrupted,
        elapsed_s: elapsed,
        calls_per_s: if elapsed > 0.0 {
            calls as f64 / elapsed
        } else {
            0.0
        },
        latency_ns: LatencySummary::of(&latencies),
        histogram: latencies
            .bins(HISTOGRAM_BINS)
            .into_iter()
            .map(|(from_ns, to_ns, count)| Bin {
                from_ns,
                to_ns,
                count,
            })
            .collect(),
    }
}
