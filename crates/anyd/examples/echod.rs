//! echod: the quickstart daemon, the same three endpoints as Python anyd's
//! examples.
//!
//! ```sh
//! cargo run -p anyd-ipc --example echod
//! cargo run -p anyd-ipc --example echod -- --address tcp:127.0.0.1:4242 --authkey-file key.txt
//! ANYD_AUTHKEY=secret cargo run -p anyd-ipc --example echod
//! ```
//!
//! It serves until SIGTERM or SIGINT (Ctrl-C), then removes its socket.
//! Logs go to stderr at `info`; `RUST_LOG=debug` shows every call.
//!
//! A Python `anyd` client calls it unchanged:
//!
//! ```python
//! from anyd import ClientSession
//! with ClientSession("/run/user/1000/echod.sock") as client:  # the printed path
//!     print(client.commit("echo", "hello"), client.commit("get_sum", 1, 2))
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyd::{Appd, Value};
use tracing_subscriber::EnvFilter;

const HELP: &str = "\
echod: an anyd daemon with three endpoints: echo(arg), get_sum(arg1, arg2),
no_args_action().

usage: echod [--address ADDR] [--authkey-file PATH]

options:
  --address ADDR        where to listen: unix:/path, unix:@name or
                        tcp:host:port (default: unix:$XDG_RUNTIME_DIR/echod.sock,
                        or unix:/tmp/echod-$UID.sock without XDG_RUNTIME_DIR)
  --authkey-file PATH   require clients to know the key in PATH (a trailing
                        newline is not part of the key)
  -h, --help            show this help

environment:
  ANYD_AUTHKEY          the key, when --authkey-file is not given
  RUST_LOG              log filter (default: info)

The key is never taken from the command line: other users can read a
process's arguments.
";

/// What the command line asked for, before anything is read or bound.
struct Args {
    address: Option<String>,
    authkey_file: Option<PathBuf>,
}

/// Why the program stops before serving.
enum Exit {
    Help,
    Usage(String),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, Exit> {
    let mut parsed = Args {
        address: None,
        authkey_file: None,
    };
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| Exit::Usage(format!("{name} needs a value")))
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(Exit::Help),
            "--address" => parsed.address = Some(value("--address")?),
            "--authkey-file" => parsed.authkey_file = Some(value("--authkey-file")?.into()),
            "--authkey" => {
                return Err(Exit::Usage(
                    "--authkey is not accepted: other users can read a process's arguments; \
                     use --authkey-file PATH or ANYD_AUTHKEY"
                        .into(),
                ))
            }
            other => return Err(Exit::Usage(format!("unknown argument {other:?}"))),
        }
    }
    Ok(parsed)
}

/// `unix:$XDG_RUNTIME_DIR/echod.sock`: a directory only this user can
/// enter, cleaned at logout. Without one, a per-user name in /tmp.
fn default_address() -> String {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => format!("unix:{}", PathBuf::from(dir).join("echod.sock").display()),
        None => format!(
            "unix:/tmp/echod-{}.sock",
            rustix::process::getuid().as_raw()
        ),
    }
}

/// The key from the file if one is given, else from `ANYD_AUTHKEY`, else
/// none.
fn authkey(file: Option<&PathBuf>) -> Result<Option<Vec<u8>>, String> {
    let mut key = match file {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read the authkey file {}: {e}", path.display()))?,
        None => match std::env::var_os("ANYD_AUTHKEY") {
            Some(k) => k.into_encoded_bytes(),
            None => return Ok(None),
        },
    };
    // Editors and `echo` end files with a newline; it is not meant as part
    // of the key.
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.is_empty() {
        return Err("the authkey is empty".into());
    }
    Ok(Some(key))
}

fn run(args: Args) -> Result<(), String> {
    let key = authkey(args.authkey_file.as_ref())?;
    let address = args.address.unwrap_or_else(default_address);

    let mut appd = Appd::new()
        .api("echo(arg)", |arg: Value| arg)
        .doc("Returns its argument, whatever its type.")
        .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
        .doc("Adds two integers.")
        .api("no_args_action()", || {
            tracing::info!("no_args_action called");
            "done"
        })
        .doc("Takes no arguments; logs the call and answers \"done\".");
    let keyed = key.is_some();
    if let Some(key) = key {
        appd = appd.authkey(key);
    }
    let server = appd.bind(&address).map_err(|e| e.to_string())?;
    println!(
        "echod: listening on {}{}",
        server.local_address(),
        if keyed { " (authkey required)" } else { "" }
    );
    server.serve().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a journal or a log file gets text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(Exit::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(Exit::Usage(why)) => {
            eprintln!("echod: {why}\n(see echod --help)");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("echod: {why}");
            ExitCode::FAILURE
        }
    }
}
