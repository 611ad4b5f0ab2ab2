//! anydctl: call any anyd daemon from the shell. What busctl is to D-Bus
//! and varlinkctl to varlink: call an endpoint, list endpoints, ping,
//! benchmark. It is an ordinary client of the `anyd` library.
//!
//! The command line goes through two steps (STYLE.md): `cli` parses raw
//! flags, `plan` validates them into something runnable; `commands` run it
//! with the blocking client, sending arguments as `sent` values (with the
//! descriptors given to send) and decoding results as `received` values
//! (which keep the descriptors a result holds), and the answers it reads
//! as types of its own through `expected`; `output` owns every byte
//! shown; exit codes are decided in `exit` and applied here only. `sys`
//! holds the one `unsafe` borrow (`--fd N`).

use std::io;
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod exit;
mod expected;
mod latency;
mod man;
mod output;
mod plan;
mod received;
mod sent;
mod sys;

use exit::Failure;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match plan::plan(cli).and_then(commands::run) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(Failure::Usage(e)) => e.exit(),
        // The reader went away (`anydctl ... | head`): nothing to report.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit().code())
        }
    }
}
