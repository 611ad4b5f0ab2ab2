//! What one small call costs end to end, next to the floor it is measured
//! against (DESIGN.md, "Performance budget").
//!
//! The floor is a bare blocking Unix-socket ping-pong: a 4-byte big-endian
//! length, then the payload, echoed back by a thread-per-connection server,
//! with a payload as long as anyd's MessagePack `echo("hello")` request.
//! Every other row is a real anyd client calling a real `Appd` (`echo`,
//! one short string) through the full path: encode, frame, write, the
//! server's read, decode, dispatch, handler, reply, the client's decode.
//!
//! ```sh
//! cargo bench -p anyd --bench roundtrip                 # 50,000 calls a row, 5 rounds
//! ANYD_BENCH_CALLS=200000 cargo bench -p anyd --bench roundtrip
//! cargo bench -p anyd --bench roundtrip -- --test       # a few calls: does it run?
//! cargo bench -p anyd --bench roundtrip -- pickle       # only rows naming pickle (and the floor)
//! ```
//!
//! Environment: `ANYD_BENCH_CALLS` (timed calls per row and round),
//! `ANYD_BENCH_ROUNDS`, `ANYD_BENCH_QUICK=1` (same as `--test`). One client
//! at a time, calls in sequence, each timed with `Instant`. The rows run
//! interleaved, round after round, and the table shows the median of the
//! rounds, so that a noisy neighbour on a shared machine skews one round of
//! every row rather than every round of one row. Timings are printed, never
//! asserted: the exit status only says the benchmark ran.

use std::hint::black_box;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyd::wire::{frame, message};
use anyd::{Appd, AsyncClientSession, ClientOptions, Codec, Running};

/// The argument of every `echo` call.
const ARG: &str = "hello";

/// The budget: anyd's MessagePack round trip over a Unix socket, as a
/// multiple of the floor.
const BUDGET: f64 = 1.25;

/// The row the budget is about.
const BUDGET_ROW: &str = "anyd MessagePack, Unix";

/// How much to run.
struct Plan {
    calls: usize,
    warmup: usize,
    rounds: usize,
    quick: bool,
    /// Words from the command line: only rows whose name contains one of
    /// them run (and the floor, which every ratio needs).
    filters: Vec<String>,
}

impl Plan {
    fn from_env() -> Plan {
        // cargo passes `--bench` to a real run and `--test` to a smoke run
        // (`cargo bench -- --test`); other flags are ignored, and words are
        // row filters.
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--test")
            || std::env::var("ANYD_BENCH_QUICK").is_ok_and(|v| v == "1");
        let number = |name: &str| -> Option<usize> {
            let v = std::env::var(name).ok()?;
            match v.parse() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    eprintln!("ignoring {name}={v:?}: not a positive number");
                    None
                }
            }
        };
        let (calls, warmup, rounds) = if quick {
            (200, 50, 1)
        } else {
            // Five rounds: on a shared two-core machine one round in three
            // can be disturbed, and a median of five survives two.
            (50_000, 2_000, 5)
        };
        Plan {
            calls: number("ANYD_BENCH_CALLS").unwrap_or(calls),
            warmup,
            rounds: number("ANYD_BENCH_ROUNDS").unwrap_or(rounds),
            quick,
            filters: args
                .into_iter()
                .filter(|a| !a.starts_with('-'))
                .map(|a| a.to_lowercase())
                .collect(),
        }
    }
}

/// Makes one call per slot of its argument, timing each one into the slot
/// (nanoseconds).
type Calls = Box<dyn FnMut(&mut [u64])>;

/// One row of the table: a client already connected, and how to call.
struct Row {
    name: &'static str,
    run: Calls,
    rounds: Vec<Stats>,
}

#[derive(Clone, Copy)]
struct Stats {
    p50_us: f64,
    p99_us: f64,
    calls_per_s: f64,
}

/// Times `call` once per slot of `out`, in nanoseconds.
fn time_each(out: &mut [u64], mut call: impl FnMut()) {
    for slot in out {
        let t = Instant::now();
        call();
        *slot = t.elapsed().as_nanos() as u64;
    }
}

fn stats(durations: &mut [u64], wall: Duration) -> Stats {
    durations.sort_unstable();
    let at = |q: f64| {
        let i = ((durations.len() as f64 * q).ceil() as usize).clamp(1, durations.len()) - 1;
        durations[i] as f64 / 1e3
    };
    Stats {
        p50_us: at(0.50),
        p99_us: at(0.99),
        calls_per_s: durations.len() as f64 / wall.as_secs_f64(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// The floor: length-prefixed ping-pong over std sockets, nothing else.

/// Echoes frames on one connection until it closes: read a 4-byte length,
/// read that many bytes, write both back in one write. With `buffered`,
/// reads go through a `BufReader` (one `read` per message, like anyd's own
/// framing); without, header and payload are two `read_exact` calls.
fn raw_echo_connection<S>(stream: S, buffered: bool)
where
    for<'a> &'a S: Read + Write,
{
    let mut reply = Vec::with_capacity(4096);
    let mut reader: Box<dyn Read + '_> = if buffered {
        Box::new(BufReader::new(&stream))
    } else {
        Box::new(&stream)
    };
    loop {
        let mut header = [0u8; 4];
        if reader.read_exact(&mut header).is_err() {
            return;
        }
        let n = u32::from_be_bytes(header) as usize;
        reply.clear();
        reply.extend_from_slice(&header);
        reply.resize(4 + n, 0);
        if reader.read_exact(&mut reply[4..]).is_err() {
            return;
        }
        if (&stream).write_all(&reply).is_err() {
            return;
        }
    }
}

fn raw_unix_server(path: &Path, buffered: bool) {
    let listener = UnixListener::bind(path).expect("bind the raw Unix server");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || raw_echo_connection(stream, buffered));
        }
    });
}

fn raw_tcp_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw TCP server");
    let addr = listener.local_addr().expect("the raw TCP address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_nodelay(true);
            thread::spawn(move || raw_echo_connection(stream, true));
        }
    });
    addr
}

/// The client side of the floor: one write of header and payload, then
/// read the header and the payload back.
struct RawClient<S> {
    stream: S,
    reader: Option<BufReader<S>>,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl<S: Read + Write> RawClient<S> {
    fn new(stream: S, clone: Option<S>, payload: &[u8]) -> Self {
        let mut request = (payload.len() as u32).to_be_bytes().to_vec();
        request.extend_from_slice(payload);
        RawClient {
            stream,
            reader: clone.map(BufReader::new),
            request,
            reply: Vec::with_capacity(4096),
        }
    }

    fn call(&mut self) -> usize {
        self.stream.write_all(&self.request).expect("raw write");
        let reader: &mut dyn Read = match &mut self.reader {
            Some(r) => r,
            None => &mut self.stream,
        };
        let mut header = [0u8; 4];
        reader.read_exact(&mut header).expect("raw read");
        let n = u32::from_be_bytes(header) as usize;
        self.reply.resize(n, 0);
        reader.read_exact(&mut self.reply).expect("raw read");
        n
    }
}

// ---------------------------------------------------------------------------
// anyd rows.

fn anyd_daemon(address: String) -> Running {
    Appd::new()
        .api("echo(arg)", |arg: String| arg)
        .bind(address)
        .expect("bind the anyd daemon")
        .spawn()
        .expect("start the anyd daemon")
}

fn anyd_row(name: &'static str, address: &anyd::Address, codec: Codec) -> Row {
    let mut session = ClientOptions::new()
        .codec(codec)
        .connect(address)
        .expect("connect");
    let r: String = session.commit("echo", (ARG,)).expect("echo");
    assert_eq!(r, ARG);
    Row {
        name,
        run: Box::new(move |out| {
            time_each(out, || {
                let r: String = session.commit("echo", (black_box(ARG),)).expect("echo");
                black_box(r);
            })
        }),
        rounds: Vec::new(),
    }
}

fn async_row(name: &'static str, address: &anyd::Address) -> Row {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut session = runtime
        .block_on(AsyncClientSession::connect(address))
        .expect("connect");
    Row {
        name,
        run: Box::new(move |out| {
            // The whole loop runs inside the runtime, as an async program's
            // calls would; each call is timed on its own.
            runtime.block_on(async {
                for slot in out.iter_mut() {
                    let t = Instant::now();
                    let r: String = session
                        .commit("echo", (black_box(ARG),))
                        .await
                        .expect("echo");
                    black_box(r);
                    *slot = t.elapsed().as_nanos() as u64;
                }
            })
        }),
        rounds: Vec::new(),
    }
}

fn raw_row<S: Read + Write + 'static>(name: &'static str, mut client: RawClient<S>) -> Row {
    let expected = client.request.len() - 4;
    assert_eq!(client.call(), expected);
    Row {
        name,
        run: Box::new(move |out| {
            time_each(out, || {
                black_box(client.call());
            })
        }),
        rounds: Vec::new(),
    }
}

fn main() {
    let plan = Plan::from_env();
    let dir = tempfile::tempdir().expect("a temporary directory");

    // The floor's payload is exactly anyd's request payload.
    let mut request = Vec::new();
    message::encode_request(Codec::MsgPack, "echo", &(ARG,), &(), &mut request)
        .expect("encode the request");

    let floor_path = dir.path().join("floor.sock");
    raw_unix_server(&floor_path, true);
    let unbuffered_path = dir.path().join("floor-unbuffered.sock");
    raw_unix_server(&unbuffered_path, false);
    let raw_tcp = raw_tcp_server();

    let unix = anyd_daemon(format!("unix:{}", dir.path().join("anyd.sock").display()));
    let tcp = anyd_daemon("tcp:127.0.0.1:0".into());

    let unix_client = |path: &Path, buffered: bool| {
        let s = UnixStream::connect(path).expect("connect to the raw server");
        let clone = buffered.then(|| s.try_clone().expect("clone a socket"));
        RawClient::new(s, clone, &request)
    };
    let tcp_client = {
        let s = TcpStream::connect(raw_tcp).expect("connect to the raw TCP server");
        s.set_nodelay(true).expect("TCP_NODELAY");
        let clone = s.try_clone().expect("clone a socket");
        RawClient::new(s, Some(clone), &request)
    };

    // The first row is the floor every ratio refers to.
    let mut rows = vec![
        raw_row("floor: raw Unix ping-pong", unix_client(&floor_path, true)),
        anyd_row(BUDGET_ROW, unix.address(), Codec::MsgPack),
        anyd_row("anyd JSON, Unix", unix.address(), Codec::Json),
        anyd_row("anyd pickle, Unix", unix.address(), Codec::Pickle),
        async_row("anyd async MessagePack, Unix", unix.address()),
        raw_row("raw TCP ping-pong (loopback)", tcp_client),
        anyd_row(
            "anyd MessagePack, TCP loopback",
            tcp.address(),
            Codec::MsgPack,
        ),
        raw_row(
            "raw Unix, unbuffered (2 reads)",
            unix_client(&unbuffered_path, false),
        ),
    ];
    let floor_name = rows[0].name;
    rows.retain(|r| {
        let name = r.name.to_lowercase();
        r.name == floor_name
            || plan.filters.is_empty()
            || plan.filters.iter().any(|f| name.contains(f.as_str()))
    });

    println!(
        "anyd round trip: echo({ARG:?}), one client, calls in sequence; request payload {} bytes \
         (frame {} bytes)",
        request.len(),
        request.len() + frame::HEADER_LEN
    );
    println!(
        "{} timed calls per row and round after {} warm-up calls, {} round(s), rows interleaved; \
         {} CPUs{}",
        plan.calls,
        plan.warmup,
        plan.rounds,
        thread::available_parallelism().map_or(0, |n| n.get()),
        if plan.quick {
            " (quick run: numbers mean nothing)"
        } else {
            ""
        }
    );

    let mut warmup = vec![0u64; plan.warmup];
    let mut timed = vec![0u64; plan.calls];
    for round in 0..plan.rounds {
        // Start each round at a different row, so that no row always runs
        // right after the same neighbour.
        let n = rows.len();
        for i in 0..n {
            let row = &mut rows[(i + round) % n];
            (row.run)(&mut warmup);
            let t = Instant::now();
            (row.run)(&mut timed);
            let wall = t.elapsed();
            row.rounds.push(stats(&mut timed, wall));
        }
        if !plan.quick {
            eprintln!("round {} of {} done", round + 1, plan.rounds);
        }
    }

    // Per row: the medians, and the lowest and highest p50 of a round (how
    // much the machine moved under the row).
    let summary: Vec<(&str, Stats, f64, f64)> = rows
        .iter()
        .map(|r| {
            let of = |f: fn(&Stats) -> f64| median(r.rounds.iter().map(f).collect());
            let p50s = r.rounds.iter().map(|s| s.p50_us);
            (
                r.name,
                Stats {
                    p50_us: of(|s| s.p50_us),
                    p99_us: of(|s| s.p99_us),
                    calls_per_s: of(|s| s.calls_per_s),
                },
                p50s.clone().fold(f64::INFINITY, f64::min),
                p50s.fold(0.0, f64::max),
            )
        })
        .collect();
    let floor = summary[0].1.p50_us;

    println!();
    println!(
        "{:<32} {:>9} {:>9} {:>12} {:>9}  {:>13}",
        "row", "p50 (µs)", "p99 (µs)", "calls/s", "p50/floor", "p50 range"
    );
    println!(
        "{}",
        "-".repeat(32 + 1 + 9 + 1 + 9 + 1 + 12 + 1 + 9 + 2 + 13)
    );
    for (name, s, lo, hi) in &summary {
        println!(
            "{:<32} {:>9.2} {:>9.2} {:>12.0} {:>8.2}x  {:>13}",
            name,
            s.p50_us,
            s.p99_us,
            s.calls_per_s,
            s.p50_us / floor,
            format!("{lo:.2}-{hi:.2}"),
        );
    }
    if plan.rounds > 1 {
        println!(
            "(each figure: the median of {} rounds; the range: the lowest and highest \
             p50 of a round)",
            plan.rounds
        );
    }

    if let Some((_, anyd, ..)) = summary.iter().find(|(name, ..)| *name == BUDGET_ROW) {
        let ratio = anyd.p50_us / floor;
        println!();
        println!(
            "budget: anyd MessagePack over Unix p50 <= {BUDGET}x floor: {} ({ratio:.2}x)",
            if ratio <= BUDGET { "met" } else { "NOT met" }
        );
    }

    drop(unix);
    drop(tcp);
}
