//! The commands: each runs a validated plan against a daemon with the
//! blocking client and hands what it learned to `output`. They return the
//! exit status to end with, or a failure; `main` does the exiting.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyd::{CallCanceller, Canceller};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::{Exit, Failure};
use crate::plan::Plan;

mod bench;
mod call;
mod describe;
mod endpoints;
mod ping;
mod schema;
mod stats;

/// Runs a plan.
///
/// # Errors
///
/// The command's failure.
pub(crate) fn run(plan: Plan) -> Result<Exit, Failure> {
    match plan {
        Plan::Call { conn, call, how } => call::run(&conn, &call, how),
        Plan::Endpoints { conn, json } => endpoints::run(&conn, json),
        Plan::Describe { conn, json } => describe::run(&conn, json),
        Plan::Stats { conn, json } => stats::run(&conn, json),
        Plan::SchemaDiff { old, new } => schema::diff(&old, &new),
        Plan::Ping {
            conn,
            count,
            interval,
        } => ping::run(&conn, count, interval),
        Plan::Bench(plan) => bench::run(plan),
        Plan::Completions(shell) => {
            let mut out = io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "anydctl", &mut out);
            out.flush()?;
            Ok(Exit::Success)
        }
        Plan::Man => {
            let mut out = io::stdout().lock();
            crate::man::render(&mut out)?;
            out.flush()?;
            Ok(Exit::Success)
        }
    }
}

/// A flag that SIGINT and SIGTERM set, so that `ping` and `bench` can stop
/// and still print their statistics. A second signal, once the flag is
/// set, does what it would have done without this (ends the process), in
/// case the first one is stuck behind a daemon that does not answer.
fn interrupt_flag() -> Result<Arc<AtomicBool>, Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // The conditional handler must come first: it acts only when the
        // flag was already set by an earlier signal.
        flag::register_conditional_default(signal, Arc::clone(&interrupted))
            .and_then(|_| flag::register(signal, Arc::clone(&interrupted)))
            .map_err(|e| Failure::new(Exit::Other, format!("cannot handle signals: {e}")))?;
    }
    Ok(interrupted)
}

/// Cancels a stream or a call when SIGINT or SIGTERM arrives, so that the
/// daemon is told to stop (a CANCEL frame, docs/PROTOCOL.md sections 8.1
/// and 8.3) rather than finding the connection reset, and anydctl ends in
/// its own time with the status of the signal. As with
/// [`interrupt_flag`], a second signal does what it would have done
/// without this (ends the process), in case the daemon does not end the
/// stream.
///
/// A thread waits for the signals and cancels from there: the main thread
/// is blocked reading the stream or the reply, which the cancel ends. A
/// call's reply is waited for [`CALL_CANCEL_GRACE`] at most (a blocking
/// handler answers only when it returns); then the call is cut off. The
/// handlers stay until the process exits, which it does right after.
pub(crate) struct CancelOnSignal {
    shared: Arc<SignalShared>,
}

struct SignalShared {
    /// The first signal caught, 0 before.
    caught: AtomicI32,
    /// What cancels the stream or the call under way, if one is.
    canceller: Mutex<Option<Cancelling>>,
    /// Signalled when the call is over ([`CancelOnSignal::disarm`]).
    over: Condvar,
}

/// What a signal cancels.
enum Cancelling {
    /// The stream being printed.
    Stream(Canceller),
    /// The call waiting for its reply.
    Call(CallCanceller),
}

/// How long a cancelled call's reply is waited for before the call is cut
/// off (the connection shut down): an async handler is dropped and
/// answers at once, a blocking one when it next looks at its context.
pub(crate) const CALL_CANCEL_GRACE: Duration = Duration::from_secs(1);

impl CancelOnSignal {
    /// Starts catching SIGINT and SIGTERM. Call it before the stream is
    /// asked for: a signal caught before [`arm`](Self::arm) cancels the
    /// stream as soon as it is armed.
    pub(crate) fn watch() -> Result<Self, Failure> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        use signal_hook::iterator::Signals;
        let cannot =
            |e: io::Error| Failure::new(Exit::Other, format!("cannot handle signals: {e}"));
        let once = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // The conditional handler first: it acts only once the flag
            // was set by an earlier signal.
            flag::register_conditional_default(signal, Arc::clone(&once))
                .and_then(|_| flag::register(signal, Arc::clone(&once)))
                .map_err(cannot)?;
        }
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(cannot)?;
        let shared = Arc::new(SignalShared {
            caught: AtomicI32::new(0),
            canceller: Mutex::new(None),
            over: Condvar::new(),
        });
        let watcher = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let _ = watcher.caught.compare_exchange(
                        0,
                        signal,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    // Under the lock, so that `arm` either sees the signal
                    // or hands over the canceller first.
                    let canceller = watcher.canceller.lock().unwrap_or_else(|e| e.into_inner());
                    match canceller.as_ref() {
                        // A failed cancel leaves the stream running: the
                        // second Ctrl-C ends anydctl.
                        Some(Cancelling::Stream(c)) => {
                            let _ = c.cancel();
                        }
                        Some(Cancelling::Call(c)) => {
                            let c = c.clone();
                            let _ = c.cancel();
                            let (_slot, waited) = watcher
                                .over
                                .wait_timeout_while(canceller, CALL_CANCEL_GRACE, |slot| {
                                    matches!(slot, Some(Cancelling::Call(_)))
                                })
                                .unwrap_or_else(|e| e.into_inner());
                            if waited.timed_out() {
                                let _ = c.abort();
                            }
                        }
                        None => {}
                    }
                }
            })
            .map_err(cannot)?;
        Ok(CancelOnSignal { shared })
    }

    /// Hands over the stream's canceller; cancels at once if a signal came
    /// already.
    pub(crate) fn arm(&self, canceller: Canceller) {
        let mut slot = self
            .shared
            .canceller
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.caught().is_some() {
            let _ = canceller.cancel();
        }
        *slot = Some(Cancelling::Stream(canceller));
    }

    /// Hands over the canceller of the calls about to be made: a signal
    /// cancels the one under way (the caller checks [`caught`](Self::caught)
    /// before each call, since one not yet sent cannot be cancelled).
    pub(crate) fn arm_call(&self, canceller: CallCanceller) {
        let mut slot = self
            .shared
            .canceller
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *slot = Some(Cancelling::Call(canceller));
    }

    /// The call or stream is over: nothing to cancel any more, and a
    /// signal thread waiting for a cancelled call's end stops waiting.
    pub(crate) fn disarm(&self) {
        let mut slot = self
            .shared
            .canceller
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *slot = None;
        self.shared.over.notify_all();
    }

    /// The status to end with for the first signal caught, if one was.
    pub(crate) fn caught(&self) -> Option<Exit> {
        match self.shared.caught.load(Ordering::Acquire) {
            0 => None,
            signal_hook::consts::SIGTERM => Some(Exit::Terminated),
            _ => Some(Exit::Interrupted),
        }
    }
}

/// Sleeps for `d`, or less if `interrupted` gets set; says whether it did.
fn sleep_unless(interrupted: &AtomicBool, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}
