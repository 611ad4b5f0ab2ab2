//! The commands: each runs a validated plan against a daemon with the
//! blocking client and hands what it learned to `output`. They return the
//! exit status to end with, or a failure; `main` does the exiting.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::{Exit, Failure};
use crate::plan::Plan;

mod bench;
mod call;
mod endpoints;
mod ping;

/// Runs a plan.
///
/// # Errors
///
/// The command's failure.
pub(crate) fn run(plan: Plan) -> Result<Exit, Failure> {
    match plan {
        Plan::Call { conn, call, raw } => call::run(&conn, &call, raw),
        Plan::Endpoints { conn, json } => endpoints::run(&conn, json),
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
