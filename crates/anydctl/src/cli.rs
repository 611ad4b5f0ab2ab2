//! The command line as clap parses it: raw flags and positionals, their
//! help, and the texts (exit codes, examples) that `--help`, the man page
//! and the completions share. Turning them into something runnable is
//! `plan.rs`; nothing here connects or prints.

use std::path::PathBuf;
use std::time::Duration;

use anyd::Address;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::exit::Exit;

mod durations;
mod fd_args;
mod stats_args;

pub(crate) use durations::parse_duration;
use durations::{parse_positive_duration, parse_timeout};
pub(crate) use fd_args::{FdArgs, FdSource};
pub(crate) use stats_args::{StatsArgs, STATS_ABOUT, STATS_EXAMPLES};

/// How the tool reads its command line.
#[derive(Debug, Parser)]
#[command(
    name = "anydctl",
    version,
    about = "Call any anyd daemon from the shell: call endpoints, list and describe them, read their stats, ping, benchmark.",
    long_about = "Call any anyd daemon from the shell: call endpoints, list and describe them, read its stats, \
        compare contracts, ping, benchmark.\n\n\
        ADDR is a daemon's address: unix:/path (or just /path), unix:@name for a \
        Linux abstract socket, tcp:host:port. anydctl is an ordinary anyd client; \
        it also calls Python anyd daemons (use --codec pickle for those).",
    after_help = after_help(),
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub(crate) common: Common,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options shared by the commands that talk to a daemon.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Payload codec. Python anyd daemons only understand pickle (and stop
    /// on anything else); Rust anyd daemons take all three.
    #[arg(long, global = true, value_enum, default_value_t = CodecArg::Msgpack)]
    pub(crate) codec: CodecArg,

    /// Give up on connecting, or on a reply, after this long (10s, 250ms,
    /// 1.5, 2m), also sent as each call's deadline to a daemon that reads
    /// one; with `call --raw`, also on reading a descriptor that has not
    /// ended (a pipe, a socket, a terminal or another device), after
    /// printing what came (exit status 6). Without it, connecting may take
    /// 10s, and replies and such reading may take forever.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,

    /// Read the daemon's authkey from this file (one trailing newline is
    /// dropped). Without it, the key comes from ANYD_AUTHKEY if that is set
    /// and not empty. A key is never taken from the command line, where
    /// other users could read it.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) authkey_file: Option<PathBuf>,

    /// Say on stderr what is being done: how arguments were read, the
    /// connection, timings.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
}

/// The codecs, as spelled on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CodecArg {
    /// MessagePack, the native default.
    Msgpack,
    /// JSON.
    Json,
    /// Python pickle (data only), for Python anyd daemons.
    Pickle,
}

impl From<CodecArg> for anyd::Codec {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::Msgpack => anyd::Codec::MsgPack,
            CodecArg::Json => anyd::Codec::Json,
            CodecArg::Pickle => anyd::Codec::Pickle,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Call an endpoint and print its result, or its stream's items, as JSON.
    #[command(
        long_about = "Call an endpoint and print its result as JSON: pretty on a terminal, \
            compact otherwise. An error reply is printed on stderr as `Kind: message` \
            (exit status 5).\n\n\
            Each ARG and each -k VALUE is read as JSON if it parses as JSON, and is sent \
            as a string otherwise: 42, 1.5, true, null, [1,2], {\"a\":1} and \"42\" (with \
            the quotes, the string 42) are JSON; hello, /etc/vpn.json and [1,2 (a typo) \
            are strings. --verbose shows how each one was read.\n\n\
            Result values that JSON has no word for: bytes become an array of numbers \
            (0-255); tuples, sets and frozensets become arrays; integers outside the 64-bit \
            range become decimal strings; NaN and infinities become the strings \"NaN\", \
            \"Infinity\" and \"-Infinity\"; map keys that are not strings become their JSON text \
            (1 becomes \"1\").\n\n\
            Descriptors: over a Unix socket, in MessagePack or JSON, a daemon may return \
            open file descriptors (an anyd::Fd in a Rust daemon's result). Each is shown \
            in place as {\"$fd\": {...}}, what kind of file it is: \"kind\" (regular file, \
            directory, pipe, FIFO, socket, character device, block device, symbolic link, \
            unknown), \"access\" (read-only, write-only, read-write, path-only), \"path\" \
            (what /proc/self/fd links to: a path, or the kernel's name such as \
            pipe:[1234]), \"size\" (regular files), \"device\" (major:minor, devices), \
            \"mode\" (octal, \"0600\"), \"uid\" and \"gid\". anydctl closes them once \
            shown. --raw copies the content of the one descriptor a result holds to stdout \
            instead (from its current offset to its end; a pipe's or socket's end is when \
            the other side closes it); a result with several, or one that cannot be read \
            (a directory, one opened for writing only), is an error (exit status 1). With \
            --timeout, a pipe, FIFO, socket or character device (a terminal among them), \
            which may never end, is read for that long at most: what came is printed, and \
            anydctl exits with status 6 if the end has not come; a regular file is read to \
            its end. A map \
            {\"$fd\": n} that names no descriptor that came with the result is data, shown \
            as it came.\n\n\
            Sending descriptors: an endpoint's parameter of type Fd takes an open \
            descriptor, sent with the call over a Unix socket (MessagePack or JSON). --file \
            PATH opens PATH read-only and sends it; --fd N sends anydctl's own descriptor N, \
            one it inherited (--fd 0 < file, --fd 3 3<file, --fd 3 3>file for one to write \
            to). Both may be given several times; the descriptors are numbered 0, 1, ... in \
            the order given, the two flags mixed. When no argument names one, they follow \
            the ARGs as positional arguments, in that order: `anydctl call ADDR load --file \
            /etc/vpn.json` calls load(<the file>). Otherwise an ARG or a -k VALUE names \
            descriptor n with {\"$fd\": n}, anywhere inside it ('{\"$fd\":0}', -k \
            'log={\"$fd\":1}', '{\"config\":{\"$fd\":0}}'), and each descriptor given must \
            be named once. Without --fd and --file, {\"$fd\": n} is sent as the map it is. \
            The daemon gets its own copy of each.\n\n\
            Whatever the daemon sent is shown without control characters a terminal would \
            act on (escape sequences that retitle the window or clear the screen) and \
            without format characters that make text read as something else (U+202E \
            RIGHT-TO-LEFT OVERRIDE, isolates, zero-width characters: Unicode category Cf): \
            JSON writes them as \\u escapes, error messages and --raw on a terminal as \
            \\x1b, \\u{202e} and the like. Only --raw into a pipe or a file writes the \
            result as it came.\n\n\
            A streaming endpoint (`anydctl endpoints` marks it `stream of TYPE`) sends items \
            rather than one result: each is printed as it arrives, as compact JSON on a line \
            of its own (on a terminal too; --raw as for a result), and anydctl exits 0 when \
            the stream ends. An error that ends the stream is printed on stderr as an error \
            reply is (exit status 5). --count N stops after N items. Ctrl-C (SIGINT) or \
            SIGTERM cancels the call or the stream: the daemon is told (a CANCEL, or for a \
            call to a daemon whose anyd.version does not say it reads one, the connection \
            closed) and stops its handler or producer, nothing more is printed, and the \
            exit status is 130 (143 for SIGTERM); a call's last answer is waited for 1s at \
            most, and a second Ctrl-C ends anydctl at once. --timeout is sent to the daemon \
            as the call's deadline (its TimeoutError exits 6) and limits connecting and the \
            first reply, not the wait between items, for which a quiet stream may take its \
            time.\n\n\
            How anydctl knows: the daemon's contract (anyd.describe, which it reads first to \
            check the arguments) says so. Without one (--no-check, older daemons), it calls \
            the endpoint for one reply first. A Rust anyd daemon \
            refuses that call of a streaming endpoint with a TypeError before running \
            anything; anydctl then asks anyd.endpoints whether the endpoint streams, and \
            calls it for its stream if it does. --stream calls it for its stream at once.",
        after_help = CALL_EXAMPLES
    )]
    Call(CallArgs),

    /// List a daemon's endpoints: parameters, types, docs.
    #[command(
        long_about = "List a daemon's endpoints with their parameters, types and docs, \
            from its reserved endpoint anyd.endpoints. A parameter marked `?` may be left \
            out. An endpoint that sends a stream of items rather than one result returns \
            `stream of TYPE`, TYPE being the items' type (`anydctl call` prints them one a \
            line). Python anyd daemons have no anyd.endpoints and cannot list their \
            endpoints; anydctl says so (exit status 5).",
        after_help = ENDPOINTS_EXAMPLES
    )]
    Endpoints(EndpointsArgs),

    /// Show a daemon's contract: its endpoints with their JSON Schemas.
    #[command(
        long_about = "Show a daemon's contract document, from its reserved endpoint \
            anyd.describe: its interface's name and version, each endpoint it lets you \
            call with its parameters (`?` after a name: may be left out), result \
            (`stream of TYPE` for a stream), error kinds and descriptors, and its types. \
            --json prints the document itself (docs/PROTOCOL.md section 5.1), which \
            `anydctl schema diff` compares and any language can build a client from.\n\n\
            Daemons that predate anyd.describe, and Python anyd daemons, answer it with \
            NotImplementedError (exit status 5); an answer that is not a contract \
            document is exit status 1.",
        after_help = DESCRIBE_EXAMPLES
    )]
    Describe(DescribeArgs),

    /// Show a daemon's counts per endpoint: calls, errors, latencies.
    #[command(long_about = STATS_ABOUT, after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),

    /// Work with contract documents: compare two.
    #[command(subcommand)]
    Schema(SchemaCommand),

    /// Measure round trips to a daemon, like ping.
    #[command(
        long_about = "Measure round trips to a daemon, like ping: call its reserved \
            endpoint anyd.ping every INTERVAL over one session and print the time of each \
            reply, then statistics (also on Ctrl-C).\n\n\
            Python anyd daemons have no anyd.ping and answer it with a \
            NotImplementedError. That reply still travels the whole way (request, \
            decoding, dispatch, reply), so anydctl says so once and times those replies. \
            Any other error reply counts as a reply too: the daemon answered.\n\n\
            Exit status: 0 when every call got a reply; otherwise that of the last failure \
            (3 connection, 6 timeout, ...). A broken session is connected again for the \
            next call.",
        after_help = PING_EXAMPLES
    )]
    Ping(PingArgs),

    /// Load a daemon's endpoint from many clients and report latencies.
    #[command(
        long_about = "Load an endpoint from CLIENTS concurrent clients (one thread and one \
            session each) for a duration or a number of requests, then print calls per \
            second, latency percentiles (of every answered call, error replies included), \
            error counts by kind, and a latency histogram. A progress bar shows on a \
            terminal; Ctrl-C stops early and still reports.\n\n\
            Arguments are read as for `call`. Point it at your own daemon: it sends as \
            fast as the daemon answers.\n\n\
            Exit status: 0 when every call succeeded, 5 when some got error replies, \
            3 or 6 when a client lost its connection or timed out (that client stops; the \
            others go on), 3 or 4 when a client cannot connect at all (then nothing runs), \
            2 when the daemon lists the endpoint as a stream (bench measures calls for one \
            reply; nothing runs).",
        after_help = BENCH_EXAMPLES
    )]
    Bench(BenchArgs),

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  anydctl completions bash > ~/.local/share/bash-completion/completions/anydctl"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff).
    #[command(after_help = "Example:\n  anydctl man > anydctl.1 && man ./anydctl.1")]
    Man,
}

/// `anydctl schema`.
#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Tell whether a new contract breaks clients of an old one.
    #[command(
        long_about = "Compare two contract documents and classify each difference: \
            compatible (a client of OLD still works against NEW: a new endpoint, a new \
            optional parameter, a parameter that accepts more, a result that gives \
            less, a new error kind, which a client maps to a generic error) or breaking \
            (an endpoint or parameter removed or moved, a type that accepts less, a new \
            required parameter, a result that may now hold what it never did: a field \
            gone, a null, a wider number; a stream that is no longer one). Each change \
            is a line; the last line counts them.\n\n\
            OLD and NEW are files holding documents (`anydctl describe --json`, an \
            interface's `contract()`), `-` for stdin, or a daemon's address written \
            with its scheme (unix:/run/app.sock, unix:@name, tcp:host:port), whose \
            anyd.describe is read.\n\n\
            Exit status: 0 when nothing breaks (compatible changes or none), 7 when \
            something does, 2 when a document cannot be read.",
        after_help = SCHEMA_DIFF_EXAMPLES
    )]
    Diff {
        /// The contract clients were written against.
        #[arg(value_name = "OLD")]
        old: String,
        /// The contract the daemon serves now.
        #[arg(value_name = "NEW")]
        new: String,
    },
}

/// `anydctl describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The daemon's address.
    #[arg(value_name = "ADDR", value_parser = parse_address)]
    pub(crate) address: Address,

    /// Print the contract document itself (JSON), for scripts and other
    /// languages.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What to call: an endpoint and its arguments.
#[derive(Debug, Args)]
pub(crate) struct CallSpecArgs {
    /// The endpoint's name.
    #[arg(value_name = "ENDPOINT")]
    pub(crate) endpoint: String,

    /// Positional arguments: JSON where they parse as JSON, strings
    /// otherwise. Put `--` before arguments that start with `-` and are not
    /// numbers.
    #[arg(value_name = "ARG")]
    pub(crate) args: Vec<String>,

    /// A keyword argument, VALUE read like ARG (repeatable).
    #[arg(short = 'k', long = "kwarg", value_name = "NAME=VALUE", value_parser = parse_kwarg)]
    pub(crate) kwargs: Vec<(String, String)>,
}

/// `anydctl call`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct CallArgs {
    /// The daemon's address.
    #[arg(value_name = "ADDR", value_parser = parse_address)]
    pub(crate) address: Address,

    /// The endpoint and its arguments.
    #[command(flatten)]
    pub(crate) spec: CallSpecArgs,

    /// Print a string result bare (text and a newline, as `jq -r` does), a
    /// bytes result as the bytes themselves, and a result holding one file
    /// descriptor as what can be read through it (a file's content, what
    /// comes down a pipe); other results as JSON. Several descriptors, or
    /// one that cannot be read, are an error. On a terminal, control
    /// characters (escape sequences among them) and format characters
    /// (U+202E and the like) are shown as `\x1b`, `\u{202e}` rather than
    /// obeyed; into a pipe or a file, the result is written exactly as the
    /// daemon sent it. A pipe, socket or device is read within --timeout.
    #[arg(long)]
    pub(crate) raw: bool,

    /// Call the endpoint for its stream of items at once, without the
    /// first calls that check the arguments and find out whether it
    /// streams (a round trip or two fewer). An endpoint that does not
    /// stream then answers with a TypeError.
    #[arg(long)]
    pub(crate) stream: bool,

    /// Send the arguments unchecked. By default anydctl first reads the
    /// daemon's contract (anyd.describe) and refuses arguments its
    /// schemas refuse, naming the parameter (exit status 2), and calls a
    /// streaming endpoint for its items at once; daemons without a
    /// contract (Python anyd, --codec pickle) are called unchecked.
    #[arg(long)]
    pub(crate) no_check: bool,

    /// Stop after N items of a stream: the rest is cancelled and anydctl
    /// exits 0. A result that is not a stream is printed as usual.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Descriptors to send: `--fd N`, `--file PATH`.
    #[command(flatten)]
    pub(crate) fds: FdArgs,
}

/// `anydctl endpoints`.
#[derive(Debug, Args)]
pub(crate) struct EndpointsArgs {
    /// The daemon's address.
    #[arg(value_name = "ADDR", value_parser = parse_address)]
    pub(crate) address: Address,

    /// Print the list as JSON, for scripts: [{name, params: [{name, type,
    /// optional}], returns, doc, stream}]; `stream` is true for an
    /// endpoint that sends a stream of items, whose type `returns` is.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `anydctl ping`.
#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The daemon's address.
    #[arg(value_name = "ADDR", value_parser = parse_address)]
    pub(crate) address: Address,

    /// Stop after this many calls (default: until Ctrl-C).
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Wait this long between calls.
    #[arg(short = 'i', long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
}

/// `anydctl bench`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    group(ArgGroup::new("stop").required(true).args(["duration", "requests"]))
)]
pub(crate) struct BenchArgs {
    /// The daemon's address.
    #[arg(value_name = "ADDR", value_parser = parse_address)]
    pub(crate) address: Address,

    /// The endpoint and its arguments.
    #[command(flatten)]
    pub(crate) spec: CallSpecArgs,

    /// Concurrent clients: one thread and one session each (`-j` as in
    /// `make -j`: how many at once).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) clients: u32,

    /// What `-c` was before it meant a count everywhere: refused with a
    /// word on what to write instead, rather than read as a count here.
    #[arg(short = 'c', value_name = "N", hide = true)]
    pub(crate) old_clients: Option<String>,

    /// Run for this long (10s, 1m, 500ms).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub(crate) duration: Option<Duration>,

    /// Make this many calls in all, shared among the clients.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) requests: Option<u64>,

    /// Print the report as JSON, for scripts (no histogram drawing; the
    /// bins are in the JSON).
    #[arg(long)]
    pub(crate) json: bool,
}

/// Reads an address in the library's syntax.
fn parse_address(s: &str) -> Result<Address, String> {
    s.parse::<Address>().map_err(|e| match e {
        anyd::Error::Config(why) => why,
        other => other.to_string(),
    })
}

/// Splits `NAME=VALUE` at the first `=`.
fn parse_kwarg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE, for example -k name=ann".to_owned()),
    }
}

/// Examples for the whole tool, shown by `anydctl --help` and the man page.
pub(crate) const EXAMPLES: &[(&str, &str)] = &[
    (
        "anydctl call /run/vpnmd.sock connect /etc/vpn.json",
        "call connect(\"/etc/vpn.json\")",
    ),
    ("anydctl call unix:@echod get_sum 1 2", "call get_sum(1, 2)"),
    (
        "anydctl call /run/app.sock greet ann -k greeting=hi",
        "positional and keyword arguments",
    ),
    (
        "anydctl call --raw /run/app.sock status",
        "a string result without quotes",
    ),
    (
        "anydctl call --raw /run/vpnmd.sock open_log",
        "read through the file descriptor a daemon returns",
    ),
    (
        "anydctl call /run/vpnmd.sock load --file /etc/vpn.json",
        "send a file's descriptor, for an Fd parameter",
    ),
    (
        "anydctl call --count 10 /run/vpnmd.sock watch",
        "the first ten items of a stream, one JSON value a line",
    ),
    ("anydctl endpoints /run/app.sock", "what the daemon offers"),
    (
        "anydctl describe --json /run/vpnmd.sock > vpnmd.json",
        "its contract: endpoints and JSON Schemas",
    ),
    (
        "anydctl schema diff vpnmd.json unix:/run/vpnmd.sock",
        "does the running daemon break old clients?",
    ),
    ("anydctl ping -c 3 /run/app.sock", "three round trips"),
    (
        "anydctl bench /run/app.sock echo hi --clients 8 --duration 10s",
        "load test",
    ),
    (
        "anydctl --codec pickle --authkey-file key call tcp:127.0.0.1:7000 echo hi",
        "a Python anyd daemon",
    ),
];

const CALL_EXAMPLES: &str = "Examples:
  anydctl call /run/app.sock echo hello          echo(\"hello\") -> \"hello\"
  anydctl call /run/app.sock get_sum 1 2         get_sum(1, 2) -> 3
  anydctl call /run/app.sock echo '\"42\"'         the string \"42\", not the number
  anydctl call /run/app.sock echo '{\"a\": [1]}'   a map
  anydctl call /run/app.sock greet ann -k greeting=hi
  anydctl call /run/app.sock get_sum -1 2        get_sum(-1, 2) -> 1
  anydctl call /run/app.sock echo -- -x          after --, -x is an argument
  anydctl call --raw /run/app.sock status        status text without quotes
  anydctl call /run/vpnmd.sock open_log          {\"$fd\": {\"kind\": \"regular file\", ...}}
  anydctl call --raw /run/vpnmd.sock open_log    the file's content, read through the descriptor
  anydctl call --raw --timeout 5s /run/vpnmd.sock follow_log
                                                 what a pipe brings in 5s (then status 6)
  anydctl call /run/vpnmd.sock load --file /etc/vpn.json
                                                 load(<a descriptor of the file, read-only>)
  anydctl call /run/app.sock import --fd 0 < data.csv
                                                 import(<anydctl's stdin>)
  anydctl call /run/app.sock copy '{\"$fd\":1}' '{\"$fd\":0}' --file a --fd 3 3>b
                                                 copy(<3, to write>, <a>)
  anydctl call /run/vpnmd.sock watch             each event as it comes, until Ctrl-C
  anydctl call /run/app.sock count 100 -c 3      the first 3 items of a stream
  anydctl call --stream /run/vpnmd.sock watch | jq -r .profile";

const ENDPOINTS_EXAMPLES: &str = "Examples:
  anydctl endpoints /run/app.sock
  anydctl endpoints --json unix:@app | jq -r '.[].name'";

const DESCRIBE_EXAMPLES: &str = "Examples:
  anydctl describe /run/vpnmd.sock
  anydctl describe --json /run/vpnmd.sock | jq '.methods[].name'";

const SCHEMA_DIFF_EXAMPLES: &str = "Examples:
  anydctl schema diff vpnmd-1.0.json vpnmd-1.1.json
  anydctl schema diff vpnmd.json unix:/run/vpnmd.sock   against the running daemon
  anydctl describe --json unix:@app | anydctl schema diff app.json -";

const PING_EXAMPLES: &str = "Examples:
  anydctl ping /run/app.sock
  anydctl ping -c 5 -i 200ms tcp:127.0.0.1:7000";

const BENCH_EXAMPLES: &str = "Examples:
  anydctl bench /run/app.sock echo hello --clients 8 --duration 10s
  anydctl bench /run/app.sock get_sum 1 2 -j 2 -n 100000
  anydctl bench --json /run/app.sock echo x -d 5s | jq .calls_per_s";

/// What ANYD_AUTHKEY does, for `--help` and the man page.
pub(crate) const ENVIRONMENT: &str = "ANYD_AUTHKEY: the daemon's authkey, used when \
    --authkey-file is not given; an empty value counts as unset.";

/// The top-level `after_help`: examples, exit status and environment, from
/// the same tables the man page uses.
fn after_help() -> String {
    let mut text = String::from("Examples:\n");
    let width = EXAMPLES.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (command, what) in EXAMPLES {
        text.push_str(&format!("  {command:width$}  # {what}\n"));
    }
    text.push_str("\nExit status:\n");
    for (exit, meaning) in Exit::DOCUMENTED {
        // Right-aligned, for 130 and 143 below the one-digit codes.
        text.push_str(&format!("  {:>3}  {meaning}\n", exit.code()));
    }
    text.push_str("\nEnvironment:\n  ");
    text.push_str(ENVIRONMENT);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kwargs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_kwarg("expr=a=b").unwrap(),
            ("expr".to_owned(), "a=b".to_owned())
        );
        assert_eq!(parse_kwarg("x=").unwrap(), ("x".to_owned(), String::new()));
        assert!(parse_kwarg("=1").is_err());
        assert!(parse_kwarg("x").is_err());
    }
}
