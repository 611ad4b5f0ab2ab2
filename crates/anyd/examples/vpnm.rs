//! vpnm: the unprivileged command-line client of `vpnmd`.
//!
//! ```sh
//! vpnm [--address ADDR] status
//! vpnm [--address ADDR] connect PROFILE
//! vpnm [--address ADDR] disconnect PROFILE
//! ```
//!
//! Exit status: 0 on success, 1 when the daemon refuses (the message says
//! why), 2 for usage errors, 3 when the daemon cannot be reached.

use std::collections::BTreeMap;

use anyd::{ClientSession, Error, Value};

const USAGE: &str = "usage: vpnm [--address ADDR] status | connect PROFILE | disconnect PROFILE";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut address = "unix:/run/vpnmd.sock".to_owned();
    if args.first().map(String::as_str) == Some("--address") && args.len() >= 2 {
        address = args[1].clone();
        args.drain(..2);
    }
    let (endpoint, params): (&str, Vec<String>) = match args.as_slice() {
        [cmd] if cmd == "status" => ("status", vec![]),
        [cmd, profile] if cmd == "connect" || cmd == "disconnect" => {
            (cmd.as_str(), vec![profile.clone()])
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let result = ClientSession::connect(address.as_str())
        .and_then(|mut s| s.commit::<BTreeMap<String, Value>>(endpoint, params));
    match result {
        Ok(state) => {
            let tunnels = match state.get("tunnels") {
                Some(Value::Map(m)) => m.clone(),
                _ => Vec::new(),
            };
            if tunnels.is_empty() {
                println!("no tunnel is up");
            }
            for (name, _) in tunnels {
                if let Value::Str(name) = name {
                    println!("{name}: up");
                }
            }
        }
        // What a daemon answers both for an endpoint it lacks and for one
        // its policy does not let this user call: it does not say which.
        Err(Error::Remote(e)) if e.kind == "NotImplementedError" => {
            eprintln!("vpnm: {endpoint}: not permitted, or not provided by this daemon");
            std::process::exit(1);
        }
        Err(Error::Remote(e)) => {
            eprintln!("vpnm: {}: {}", e.kind, e.message);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("vpnm: {e}");
            std::process::exit(3);
        }
    }
}
