//! From parsed flags to a validated plan: arguments read as values, the
//! authkey read from its file or the environment, client options built.
//! Everything that can be wrong with an invocation is found here, before
//! any connection is made; the commands then only run the plan.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyd::{Address, ClientOptions, ClientSession, Codec, Fd, Value};
use clap::CommandFactory;

use crate::cli::{
    BenchArgs, CallSpecArgs, Cli, CodecArg, Command, Common, FdSource, SchemaCommand,
};
use crate::exit::Failure;
use crate::output::json;
use crate::sent;

/// The environment variable that may hold the authkey.
pub(crate) const AUTHKEY_ENV: &str = "ANYD_AUTHKEY";

/// A validated invocation.
#[derive(Debug)]
pub(crate) enum Plan {
    /// `anydctl call`.
    Call {
        /// Where and how to connect.
        conn: Connection,
        /// What to call.
        call: CallSpec,
        /// How to call it and print what comes back.
        how: CallHow,
    },
    /// `anydctl endpoints`.
    Endpoints {
        /// Where and how to connect.
        conn: Connection,
        /// JSON instead of a table.
        json: bool,
    },
    /// `anydctl stats`.
    Stats {
        /// Where and how to connect.
        conn: Connection,
        /// The reply itself instead of a table.
        json: bool,
    },
    /// `anydctl describe`.
    Describe {
        /// Where and how to connect.
        conn: Connection,
        /// The document itself instead of text.
        json: bool,
    },
    /// `anydctl schema diff`.
    SchemaDiff {
        /// The old contract.
        old: DocSource,
        /// The new one.
        new: DocSource,
    },
    /// `anydctl ping`.
    Ping {
        /// Where and how to connect.
        conn: Connection,
        /// How many calls; `None` until interrupted.
        count: Option<u64>,
        /// The pause between calls.
        interval: Duration,
    },
    /// `anydctl bench`.
    Bench(BenchPlan),
    /// `anydctl completions`.
    Completions(clap_complete::Shell),
    /// `anydctl man`.
    Man,
}

/// Where `schema diff` reads a contract document.
#[derive(Debug)]
pub(crate) enum DocSource {
    /// A file.
    File(std::path::PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// A daemon's `anyd.describe`.
    Daemon(Box<Connection>),
}

/// How `anydctl call` calls and prints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallHow {
    /// Print a string or bytes result (or item) bare.
    pub(crate) raw: bool,
    /// Call for a stream at once, without finding out first.
    pub(crate) stream: bool,
    /// Stop a stream after this many items.
    pub(crate) count: Option<u64>,
    /// Check the arguments against the daemon's contract first.
    pub(crate) check: bool,
    /// `--timeout`: with `raw`, how long a descriptor that may never end
    /// (a pipe, a socket, a device) is read.
    pub(crate) timeout: Option<Duration>,
}

/// Where a daemon is and how to talk to it.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// The daemon's address.
    pub(crate) address: Address,
    /// The codec requests use.
    pub(crate) codec: Codec,
    /// Options for every session (the codec and key are in there too).
    options: ClientOptions,
    /// Whether a key was given, for the hints after a failure.
    has_authkey: bool,
    /// `--verbose`.
    pub(crate) verbose: bool,
}

impl Connection {
    /// Opens a session.
    ///
    /// # Errors
    ///
    /// A [`Failure`] with the status of the library error and a hint when
    /// one is likely to help.
    pub(crate) fn connect(&self) -> Result<ClientSession, Failure> {
        let start = Instant::now();
        let session = self
            .options
            .clone()
            .connect(&self.address)
            .map_err(|e| self.failure(e))?;
        if self.verbose {
            eprintln!(
                "anydctl: connected to {} in {:.3} ms ({}, {})",
                self.address,
                start.elapsed().as_secs_f64() * 1e3,
                codec_name(self.codec),
                if self.has_authkey {
                    "authenticated with the key"
                } else {
                    "no authkey"
                }
            );
        }
        Ok(session)
    }

    /// Turns a library error met while talking to this daemon into a
    /// failure, with a hint for the usual mistakes: a daemon that wants a
    /// key, a key the daemon does not want, a Python daemon spoken to in a
    /// codec it does not know.
    pub(crate) fn failure(&self, e: anyd::Error) -> Failure {
        // Only the likely causes for this connection are named: a missing
        // key when none was given, the codec when a Python daemon (TCP
        // only, in practice) may be at the other end.
        let python = self.codec.is_native() && matches!(self.address, Address::Tcp { .. });
        let mut hints = Vec::new();
        match &e {
            anyd::Error::AuthRequired => {
                hints.push("give the key with --authkey-file or ANYD_AUTHKEY");
            }
            anyd::Error::Protocol { .. } | anyd::Error::Io(_) if python => hints.push(
                "a Python anyd daemon only understands --codec pickle (and stops on \
                 any other codec)",
            ),
            anyd::Error::Timeout(_) if self.has_authkey => hints.push(
                "a daemon without an authkey never starts the handshake a client with a key \
                 waits for",
            ),
            _ => {}
        }
        match Failure::from(e) {
            Failure::Message { exit, mut message } => {
                for hint in hints {
                    message.push_str("\nhint: ");
                    message.push_str(hint);
                }
                Failure::Message { exit, message }
            }
            failure => failure,
        }
    }
}

/// The lowercase name of a codec, as `--codec` spells it.
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::MsgPack => "msgpack",
        Codec::Json => "json",
        Codec::Pickle => "pickle",
    }
}

/// An endpoint and its arguments, read as values.
#[derive(Debug, Clone)]
pub(crate) struct CallSpec {
    /// The endpoint.
    pub(crate) endpoint: String,
    /// Positional arguments.
    pub(crate) args: Vec<Value>,
    /// Keyword arguments, in the order given.
    pub(crate) kwargs: Vec<(String, Value)>,
    /// The descriptors `--fd` and `--file` give, in order: sent in place
    /// of their placeholders in `args` and `kwargs` (`sent`).
    pub(crate) fds: Arc<[Fd]>,
    /// How each argument was read, one line each, for `--verbose`.
    pub(crate) readings: Vec<String>,
}

impl CallSpec {
    /// The positional arguments to send, descriptors in their places.
    pub(crate) fn args(&self) -> sent::Args<'_> {
        sent::Args {
            values: &self.args,
            fds: &self.fds,
        }
    }

    /// The keyword arguments to send, descriptors in their places.
    pub(crate) fn kwargs(&self) -> sent::Kwargs<'_> {
        sent::Kwargs {
            entries: &self.kwargs,
            fds: &self.fds,
        }
    }

    /// The positional arguments as one value (a list).
    pub(crate) fn args_value(&self) -> Value {
        Value::List(self.args.clone())
    }

    /// The keyword arguments as one value (a map with string keys).
    pub(crate) fn kwargs_value(&self) -> Value {
        Value::Map(
            self.kwargs
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                .collect(),
        )
    }

    /// The call as a person would write it: `get_sum(1, arg2=2)`.
    pub(crate) fn describe(&self) -> String {
        let args = self.args.iter().map(json::compact);
        let kwargs = self
            .kwargs
            .iter()
            .map(|(k, v)| format!("{k}={}", json::compact(v)));
        let all: Vec<String> = args.chain(kwargs).collect();
        format!("{}({})", self.endpoint, all.join(", "))
    }
}

/// When a benchmark stops.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// After this long.
    After(Duration),
    /// After this many calls in all.
    Requests(u64),
}

/// A validated `anydctl bench`.
#[derive(Debug)]
pub(crate) struct BenchPlan {
    /// Where and how to connect.
    pub(crate) conn: Connection,
    /// What to call.
    pub(crate) call: CallSpec,
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// When to stop.
    pub(crate) stop: Stop,
    /// JSON report.
    pub(crate) json: bool,
}

/// Validates the parsed command line.
///
/// # Errors
///
/// [`Failure::Usage`] for an invocation that cannot run.
pub(crate) fn plan(cli: Cli) -> Result<Plan, Failure> {
    let common = cli.common;
    Ok(match cli.command {
        Command::Call(a) => Plan::Call {
            call: call_spec(a.spec, common.codec.into(), &a.fds.sources, &a.address)?,
            conn: connection(&common, a.address)?,
            how: CallHow {
                raw: a.raw,
                stream: a.stream,
                count: a.count,
                timeout: common.timeout,
                // Pickle is for Python anyd daemons, which have no
                // contract to check against.
                check: !a.no_check && common.codec != CodecArg::Pickle,
            },
        },
        Command::Describe(a) => Plan::Describe {
            conn: connection(&common, a.address)?,
            json: a.json,
        },
        Command::Schema(SchemaCommand::Diff { old, new }) => Plan::SchemaDiff {
            old: doc_source(&common, &old)?,
            new: doc_source(&common, &new)?,
        },
        Command::Stats(a) => Plan::Stats {
            conn: connection(&common, a.address)?,
            json: a.json,
        },
        Command::Endpoints(a) => Plan::Endpoints {
            conn: connection(&common, a.address)?,
            json: a.json,
        },
        Command::Ping(a) => Plan::Ping {
            conn: connection(&common, a.address)?,
            count: a.count,
            interval: a.interval,
        },
        Command::Bench(a) => Plan::Bench(bench_plan(&common, a)?),
        Command::Completions { shell } => Plan::Completions(shell),
        Command::Man => Plan::Man,
    })
}

/// A file, `-`, or an address written with its scheme.
fn doc_source(common: &Common, text: &str) -> Result<DocSource, Failure> {
    if text == "-" {
        return Ok(DocSource::Stdin);
    }
    if ["unix:", "tcp:"].iter().any(|p| text.starts_with(p)) {
        let address = text
            .parse::<Address>()
            .map_err(|e| usage(format!("{text}: {e}")))?;
        return Ok(DocSource::Daemon(Box::new(connection(common, address)?)));
    }
    Ok(DocSource::File(text.into()))
}

fn bench_plan(common: &Common, a: BenchArgs) -> Result<BenchPlan, Failure> {
    if let Some(n) = a.old_clients {
        // Refused rather than taken for a count: an old script's `-c 8`
        // meant 8 clients, and must not come to mean something else
        // without a word.
        return Err(usage(format!(
            "-c is a count (of calls in ping, of items in call) and no longer bench's \
             clients: write -j {n} or --clients {n}, with --duration or --requests"
        )));
    }
    let stop = match (a.duration, a.requests) {
        (Some(d), _) => Stop::After(d),
        (None, Some(n)) => Stop::Requests(n),
        // clap's required group makes this unreachable; say it anyway.
        (None, None) => return Err(usage("give --duration or --requests")),
    };
    Ok(BenchPlan {
        call: call_spec(a.spec, common.codec.into(), &[], &a.address)?,
        conn: connection(common, a.address)?,
        clients: a.clients as usize,
        stop,
        json: a.json,
    })
}

fn connection(common: &Common, address: Address) -> Result<Connection, Failure> {
    let codec = Codec::from(common.codec);
    let mut options = ClientOptions::new().codec(codec);
    if let Some(t) = common.timeout {
        options = options.timeout(Some(t)).connect_timeout(Some(t));
    }
    let key = read_authkey(
        common.authkey_file.as_deref(),
        std::env::var_os(AUTHKEY_ENV),
    )
    .map_err(usage)?;
    let has_authkey = key.is_some();
    if let Some(key) = key {
        options = options.authkey(key);
    }
    Ok(Connection {
        address,
        codec,
        options,
        has_authkey,
        verbose: common.verbose,
    })
}

/// The authkey: from the file if one is named, else from the environment
/// variable's bytes if set and not empty, else none.
fn read_authkey(file: Option<&Path>, env: Option<OsString>) -> Result<Option<Vec<u8>>, String> {
    if let Some(path) = file {
        let mut key = std::fs::read(path)
            .map_err(|e| format!("cannot read --authkey-file {}: {e}", path.display()))?;
        // A key file written by `echo` or an editor ends in a newline that is
        // not part of the key.
        if key.ends_with(b"\n") {
            key.pop();
            if key.ends_with(b"\r") {
                key.pop();
            }
        }
        if key.is_empty() {
            return Err(format!("--authkey-file {} is empty", path.display()));
        }
        return Ok(Some(key));
    }
    Ok(env.map(OsStringExt::into_vec).filter(|k| !k.is_empty()))
}

/// The call: arguments read as values, and the descriptors `fds` name,
/// taken and placed (`sent`).
fn call_spec(
    a: CallSpecArgs,
    codec: Codec,
    fds: &[FdSource],
    address: &Address,
) -> Result<CallSpec, Failure> {
    if !fds.is_empty() && (!codec.is_native() || !matches!(address, Address::Unix(_))) {
        return Err(usage(format!(
            "{} sends a descriptor, which travels only over a Unix socket, in MessagePack \
             or JSON (not {} to {address})",
            fds[0].flag(),
            codec_name(codec)
        )));
    }
    let mut readings = Vec::new();
    let mut args = Vec::with_capacity(a.args.len());
    for (i, text) in a.args.iter().enumerate() {
        let (value, reading) = read_arg(text, codec).map_err(usage)?;
        readings.push(format!("ARG {}: {text} {reading}", i + 1));
        args.push(value);
    }
    let mut kwargs: Vec<(String, Value)> = Vec::with_capacity(a.kwargs.len());
    for (name, text) in a.kwargs {
        if kwargs.iter().any(|(n, _)| *n == name) {
            return Err(usage(format!("keyword argument {name} given twice")));
        }
        let (value, reading) = read_arg(&text, codec).map_err(usage)?;
        readings.push(format!("-k {name}: {text} {reading}"));
        kwargs.push((name, value));
    }
    let flags: Vec<String> = fds.iter().map(FdSource::flag).collect();
    if let Some(placed) = sent::place(&mut args, &kwargs, &flags).map_err(usage)? {
        readings.push(format!("descriptors: {placed}"));
    }
    Ok(CallSpec {
        endpoint: a.endpoint,
        args,
        kwargs,
        fds: sent::open(fds).map_err(usage)?.into(),
        readings,
    })
}

/// Reads one argument: JSON where it parses as JSON, a string otherwise.
/// Also says, for `--verbose`, how it was read.
///
/// A plain integer literal is read exactly, as far as the codec carries
/// integers: 64 bits for MessagePack and JSON, 128 for pickle (here). A
/// larger one is refused rather than rounded to a float, which is what a
/// JSON parser would do with it.
fn read_arg(text: &str, codec: Codec) -> Result<(Value, String), String> {
    if is_integer_literal(text) {
        let quote = format!("to send it as a string, quote it: '\"{text}\"'");
        let n = text
            .parse::<i128>()
            .map_err(|_| format!("{text} does not fit in 128 bits; {quote}"))?;
        let fits_64 = i64::try_from(n).is_ok() || u64::try_from(n).is_ok();
        if !fits_64 && codec.is_native() {
            return Err(format!(
                "{text} does not fit in 64 bits, the most {} carries; use --codec pickle, \
                 or {quote}",
                codec_name(codec)
            ));
        }
        return Ok((Value::Int(n), "is JSON: an integer".to_owned()));
    }
    Ok(match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let reading = format!("is JSON: {}", json::compact(&v));
            (v, reading)
        }
        Err(_) => (
            Value::Str(text.to_owned()),
            "is not JSON: sent as a string".to_owned(),
        ),
    })
}

/// `-?(0|[1-9][0-9]*)`: an integer as JSON writes it (so `007` stays a
/// string, as JSON would not read it).
fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    match digits.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn usage(message: impl std::fmt::Display) -> Failure {
    let error = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
    Failure::Usage(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(text: &str) -> Value {
        read_arg(text, Codec::MsgPack).unwrap().0
    }

    #[test]
    fn arguments_are_json_where_they_parse() {
        assert_eq!(arg("42"), Value::Int(42));
        assert_eq!(arg("-7"), Value::Int(-7));
        assert_eq!(arg("1.5"), Value::Float(1.5));
        assert_eq!(arg("true"), Value::Bool(true));
        assert_eq!(arg("null"), Value::Nil);
        assert_eq!(arg("\"42\""), Value::Str("42".into()));
        assert_eq!(
            arg("[1,\"a\"]"),
            Value::List(vec![Value::Int(1), Value::Str("a".into())])
        );
        assert_eq!(
            arg("{\"a\":1}"),
            Value::Map(vec![(Value::Str("a".into()), Value::Int(1))])
        );
        assert_eq!(arg("-9223372036854775808"), Value::Int(i64::MIN.into()));
        assert_eq!(arg("18446744073709551615"), Value::Int(u64::MAX.into()));
        let max = "170141183460469231731687303715884105727";
        assert!(read_arg(max, Codec::Json).is_err());
        assert_eq!(
            read_arg(max, Codec::Pickle).unwrap().0,
            Value::Int(i128::MAX)
        );
    }

    #[test]
    fn other_arguments_are_strings() {
        for text in [
            "hello",
            "/etc/vpn.json",
            "[1,2",
            "007",
            "+5",
            "",
            "hello world",
        ] {
            assert_eq!(arg(text), Value::Str(text.into()), "{text:?}");
        }
        assert!(read_arg("1234567890123456789012345678901234567890", Codec::Pickle).is_err());
    }

    #[test]
    fn authkey_sources() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = Some(OsString::from("from-env"));
        assert_eq!(
            read_authkey(Some(&file), env.clone()).unwrap(),
            Some(b"from-file".to_vec())
        );
        assert_eq!(read_authkey(None, env).unwrap(), Some(b"from-env".to_vec()));
        assert_eq!(read_authkey(None, Some(OsString::new())).unwrap(), None);
        assert_eq!(read_authkey(None, None).unwrap(), None);
        std::fs::write(&file, "two\nlines\n\n").unwrap();
        assert_eq!(
            read_authkey(Some(&file), None).unwrap(),
            Some(b"two\nlines\n".to_vec())
        );
        assert!(read_authkey(Some(&dir.path().join("missing")), None).is_err());
        std::fs::write(&file, "\n").unwrap();
        assert!(read_authkey(Some(&file), None).is_err());
    }
}
