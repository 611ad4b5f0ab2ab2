//! The performance budget of DESIGN.md, measured in one run: what a small
//! call costs end to end next to the floor, what many clients get through
//! at once, what 1,000 connections making calls get, what an idle daemon
//! and its connections weigh, how fast it is ready, and the same figures
//! for Python anyd.
//!
//! The floor is a bare blocking Unix-socket ping-pong: a 4-byte big-endian
//! length, then the payload, echoed back by a thread-per-connection server,
//! with a payload as long as anyd's MessagePack `echo("hello")` request.
//! Every anyd row is a real anyd client calling a real `Appd` (`echo`, one
//! short string) through the full path: encode, frame, write, the server's
//! read, decode, dispatch, handler, reply, the client's decode. The Python
//! row is Python anyd 0.4.1 calling Python anyd 0.4.1 over TCP, from the
//! venv the interop tests make under `target/`.
//!
//! ```sh
//! cargo bench -p anyd-ipc --bench roundtrip                 # the full table (about 5 minutes)
//! cargo bench -p anyd-ipc --bench roundtrip -- --test       # a few calls: does it run?
//! cargo bench -p anyd-ipc --bench roundtrip -- pickle       # only rows naming pickle (and the floor)
//! ```
//!
//! Environment: `ANYD_BENCH_CALLS` (timed sequential calls per row and
//! round), `ANYD_BENCH_ROUNDS` (latency and throughput rounds alike), `ANYD_BENCH_CLIENTS` (concurrent clients),
//! `ANYD_BENCH_WINDOW_MS` (how long they run), `ANYD_BENCH_MANY`
//! (connections of the many-connection rows), `ANYD_BENCH_MANY_THREADS`
//! (the client threads, or tasks, that call over them), `ANYD_BENCH_IDLE`
//! (connections held open for the memory figure), `ANYD_BENCH_PYTHON=0`
//! (leave Python out), `ANYD_BENCH_PIN=0` (leave threads where the
//! scheduler puts them), `ANYD_BENCH_QUICK=1` (same as `--test`).
//!
//! Latency: one client, calls in sequence, each timed with `Instant`.
//! Throughput: `ANYD_BENCH_CLIENTS` connections, each on its own thread (a
//! task of a multi-threaded runtime with a worker per CPU for the async
//! client, a process of its own for Python), calling for `ANYD_BENCH_WINDOW_MS`.
//! Many connections: `ANYD_BENCH_MANY` connections (1,000) open at once,
//! each making calls, from `ANYD_BENCH_MANY_THREADS` threads (250; tasks
//! of a runtime with a worker per CPU for the async client), each calling
//! its share of the connections in turn for `ANYD_BENCH_WINDOW_MS`, every
//! call timed: calls/s and p99 next to the floor's thread-per-connection
//! server under the same load, so that a change that helps one client and
//! hurts many shows. The rows run
//! interleaved, round after round, and the table shows the median of the
//! rounds, so that a noisy neighbour on a shared machine skews one round of
//! every row rather than every round of one row. Timings are printed, never
//! asserted: the exit status only says the benchmark ran.
//!
//! The budget lines (DESIGN.md, "Performance budget") print each figure as
//! a ratio next to its budget, then "met" or "NOT met": unary p50 within
//! 1.1x the floor, 32 clients at least the floor's calls/s, the async
//! client's p50 within 1.3x the blocking one's, a call passing a
//! descriptor within 1.3x a plain call, at most 16 KiB per idle
//! connection. "20x Python anyd" is retired: the floor itself is about 13x
//! Python anyd, so that line measured CPython; the Python rows stay in the
//! table for scale.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyd::wire::{codec, frame};
// Shared with the integration tests: the daemon in a process of its own
// and the Python venv.
use anyd::{Address, Appd, AsyncClientSession, ClientOptions, ClientSession, Codec, Running};
use anyd_testkit::{process, python as support};

/// The argument of every `echo` call.
const ARG: &str = "hello";

/// The row most of the budget is about.
const BUDGET_ROW: &str = "anyd MessagePack, Unix";

/// A call returning a descriptor, next to the budget row.
const DESCRIPTOR_ROW: &str = "anyd returns a descriptor, Unix";
/// The floor of a call returning a descriptor: the raw ping-pong whose
/// every reply carries a copy of a descriptor its server keeps, as the
/// descriptor row's daemon hands out.
const DESCRIPTOR_FLOOR_ROW: &str = "floor: raw, returns a descriptor";

/// The async client's row, whose p50 has a budget against the budget row's.
const ASYNC_ROW: &str = "anyd async MessagePack, Unix";

/// The many-connection rows: the floor's server, and anyd's with the
/// blocking and the async client.
const MANY_FLOOR_ROW: &str = "floor: raw Unix, many connections";
const MANY_ROW: &str = "anyd MessagePack, Unix, many connections";
const MANY_ASYNC_ROW: &str = "anyd async MessagePack, Unix, many connections";

/// The Python rows' names: Python anyd as shipped, and with its logging
/// off.
const PYTHON_ROW: &str = "Python anyd 0.4.1, TCP";
const PYTHON_QUIET_ROW: &str = "Python anyd, TCP, no logging";

/// How much to run.
struct Plan {
    calls: usize,
    warmup: usize,
    rounds: usize,
    /// Throughput rounds (each `window` long per row).
    parallel_rounds: usize,
    clients: usize,
    window: Duration,
    /// Connections open at once in the many-connection rows.
    many: usize,
    /// The threads (tasks, for the async client) calling over them.
    many_threads: usize,
    /// Connections held open for the per-connection memory figure.
    idle: usize,
    /// Daemon starts timed for the readiness figure.
    starts: usize,
    python: bool,
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
        let number = |name: &str, default: usize| -> usize {
            let Ok(v) = std::env::var(name) else {
                return default;
            };
            match v.parse() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("ignoring {name}={v:?}: not a positive number");
                    default
                }
            }
        };
        // Five latency rounds and three throughput rounds: on a shared
        // two-core machine one round in three can be disturbed, and a
        // median of five survives two.
        let full = !quick;
        let pick = |full_value: usize, quick_value: usize| {
            if full {
                full_value
            } else {
                quick_value
            }
        };
        Plan {
            calls: number("ANYD_BENCH_CALLS", pick(50_000, 200)),
            warmup: pick(2_000, 50),
            rounds: number("ANYD_BENCH_ROUNDS", pick(5, 1)),
            parallel_rounds: number("ANYD_BENCH_ROUNDS", pick(3, 1)),
            clients: number("ANYD_BENCH_CLIENTS", 32),
            window: Duration::from_millis(number("ANYD_BENCH_WINDOW_MS", pick(3_000, 200)) as u64),
            many: number("ANYD_BENCH_MANY", pick(1_000, 20)),
            many_threads: number("ANYD_BENCH_MANY_THREADS", pick(250, 4)),
            idle: number("ANYD_BENCH_IDLE", pick(1_000, 50)),
            starts: pick(5, 1),
            python: std::env::var("ANYD_BENCH_PYTHON").map_or(true, |v| v != "0"),
            quick,
            filters: args
                .into_iter()
                .filter(|a| !a.starts_with('-'))
                .map(|a| a.to_lowercase())
                .collect(),
        }
    }

    fn wants(&self, row: &str) -> bool {
        let row = row.to_lowercase();
        self.filters.is_empty() || self.filters.iter().any(|f| row.contains(f.as_str()))
    }
}

/// One client's calls in sequence (warm-up, then timed).
type Sequential = Box<dyn FnMut(&Plan) -> Stats>;
/// Calls per second of `plan.clients` clients at once.
type Parallel = Box<dyn FnMut(&Plan) -> f64>;

/// One row of the table and what its rounds measured.
struct Row {
    name: &'static str,
    sequential: Sequential,
    parallel: Parallel,
    latency: Vec<Stats>,
    throughput: Vec<f64>,
}

impl Row {
    fn new(name: &'static str, sequential: Sequential, parallel: Parallel) -> Row {
        Row {
            name,
            sequential,
            parallel,
            latency: Vec::new(),
            throughput: Vec::new(),
        }
    }
}

#[derive(Clone, Copy)]
struct Stats {
    p50_us: f64,
    p99_us: f64,
    calls_per_s: f64,
}

/// `durations` in nanoseconds, sorted here; `wall` is the time they took
/// together.
fn stats(durations: &mut [u64], wall: Duration) -> Stats {
    durations.sort_unstable();
    Stats {
        p50_us: quantile(durations, 0.50) as f64 / 1e3,
        p99_us: quantile(durations, 0.99) as f64 / 1e3,
        calls_per_s: durations.len() as f64 / wall.as_secs_f64(),
    }
}

/// The nearest-rank quantile of sorted values (the Python client computes
/// it the same way).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
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
// Blocking clients: one call is a closure; the same code times a row with
// one client and with many.

/// Makes one `echo` call (and checks nothing: each client checked its
/// first reply when it was made).
type Call = Box<dyn FnMut() + Send>;
/// Connects a new client.
type Connect = Arc<dyn Fn() -> Call + Send + Sync>;

fn sequential(plan: &Plan, call: &mut Call) -> Stats {
    for _ in 0..plan.warmup {
        call();
    }
    let mut durations = vec![0u64; plan.calls];
    let start = Instant::now();
    for slot in &mut durations {
        let t = Instant::now();
        call();
        *slot = t.elapsed().as_nanos() as u64;
    }
    stats(&mut durations, start.elapsed())
}

/// `plan.clients` threads, each with its own connection, calling until the
/// window closes; the calls they made per second.
fn parallel(plan: &Plan, connect: &Connect) -> f64 {
    let ready = Barrier::new(plan.clients + 1);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let threads: Vec<_> = (0..plan.clients)
            .map(|_| {
                s.spawn(|| {
                    let mut call = connect();
                    ready.wait();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        call();
                        n += 1;
                    }
                    // Before the client is dropped: ending its session is
                    // not a call.
                    (n, Instant::now())
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        thread::sleep(plan.window);
        stop.store(true, Ordering::Relaxed);
        let (mut calls, mut end) = (0u64, start);
        for t in threads {
            let (n, stopped) = t.join().expect("client");
            calls += n;
            end = end.max(stopped);
        }
        calls as f64 / (end - start).as_secs_f64()
    })
}

fn blocking_row(name: &'static str, connect: Connect) -> Row {
    let mut one = connect();
    Row::new(
        name,
        Box::new(move |plan| sequential(plan, &mut one)),
        Box::new(move |plan| parallel(plan, &connect)),
    )
}

// ---------------------------------------------------------------------------
// Many connections: each making calls, fewer threads than connections.

/// What the many-connection rows measure: every call of every connection,
/// from the moment all of them are open.
#[derive(Clone, Copy)]
struct ManyStats {
    calls_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

impl ManyStats {
    /// `durations` in nanoseconds (sorted here), made in `wall`.
    fn of(durations: &mut [u64], wall: Duration) -> ManyStats {
        let s = stats(durations, wall);
        ManyStats {
            calls_per_s: s.calls_per_s,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
        }
    }
}

/// One many-connection row and what its rounds measured.
struct ManyRow {
    name: &'static str,
    run: Box<dyn FnMut(&Plan) -> ManyStats>,
    rounds: Vec<ManyStats>,
}

/// The connections of client `t` of `clients`: `t`, `t + clients`, ...
/// below `plan.many`, so that every connection is made and the shares
/// differ by one at most.
fn share(plan: &Plan, t: usize, clients: usize) -> usize {
    (t..plan.many).step_by(clients).count()
}

/// `plan.many` connections open at once, shared among
/// `plan.many_threads` threads; each thread calls its connections in
/// turn, timing every call, until the window closes.
fn many(plan: &Plan, connect: &Connect) -> ManyStats {
    let threads = plan.many_threads.min(plan.many);
    let ready = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (ready, stop) = (&ready, &stop);
                let n = share(plan, t, threads);
                thread::Builder::new()
                    // A few hundred of these: little stack each.
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        let mut calls: Vec<Call> = (0..n).map(|_| connect()).collect();
                        ready.wait();
                        let mut durations = Vec::with_capacity(4096);
                        let mut next = 0;
                        while !stop.load(Ordering::Relaxed) {
                            let at = Instant::now();
                            calls[next]();
                            durations.push(at.elapsed().as_nanos() as u64);
                            next = (next + 1) % calls.len();
                        }
                        (durations, Instant::now())
                    })
                    .expect("a client thread")
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        thread::sleep(plan.window);
        stop.store(true, Ordering::Relaxed);
        let (mut all, mut end) = (Vec::new(), start);
        for h in handles {
            let (durations, stopped) = h.join().expect("client");
            all.extend(durations);
            end = end.max(stopped);
        }
        ManyStats::of(&mut all, end - start)
    })
}

/// The same with the async client: `plan.many` sessions shared among
/// `plan.many_threads` tasks of `runtime`.
fn many_async(plan: &Plan, runtime: &tokio::runtime::Runtime, address: &Address) -> ManyStats {
    let tasks = plan.many_threads.min(plan.many);
    runtime.block_on(async {
        let ready = Arc::new(tokio::sync::Barrier::new(tasks + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (ready, stop, address) = (ready.clone(), stop.clone(), address.clone());
                let n = share(plan, t, tasks);
                tokio::spawn(async move {
                    let mut sessions = Vec::with_capacity(n);
                    for _ in 0..n {
                        let mut s = AsyncClientSession::connect(&address)
                            .await
                            .expect("connect");
                        let r: String = s.commit("echo", (ARG,)).await.expect("echo");
                        assert_eq!(r, ARG);
                        sessions.push(s);
                    }
                    ready.wait().await;
                    let mut durations = Vec::with_capacity(4096);
                    let mut next = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let at = Instant::now();
                        let r: String = sessions[next]
                            .commit("echo", (black_box(ARG),))
                            .await
                            .expect("echo");
                        black_box(r);
                        durations.push(at.elapsed().as_nanos() as u64);
                        next = (next + 1) % sessions.len();
                    }
                    (durations, Instant::now())
                })
            })
            .collect();
        ready.wait().await;
        let start = Instant::now();
        tokio::time::sleep(plan.window).await;
        stop.store(true, Ordering::Relaxed);
        let (mut all, mut end) = (Vec::new(), start);
        for h in handles {
            let (durations, stopped) = h.await.expect("client task");
            all.extend(durations);
            end = end.max(stopped);
        }
        ManyStats::of(&mut all, end - start)
    })
}

fn many_row(name: &'static str, connect: Connect) -> ManyRow {
    ManyRow {
        name,
        run: Box::new(move |plan| many(plan, &connect)),
        rounds: Vec::new(),
    }
}

fn many_async_row(name: &'static str, address: &Address) -> ManyRow {
    // A worker per CPU, as for the 32 async clients.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let address = address.clone();
    ManyRow {
        name,
        run: Box::new(move |plan| many_async(plan, &runtime, &address)),
        rounds: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// The floor: length-prefixed ping-pong over std sockets, nothing else.

/// Echoes frames on one connection until it closes: read a 4-byte length
/// and that many bytes through a `BufReader` (one `read` per message, like
/// anyd's own framing), write both back in one write.
fn raw_echo_connection<S>(stream: S)
where
    for<'a> &'a S: Read + Write,
{
    raw_serve_connection(&stream, |reply| (&stream).write_all(reply));
}

/// The floor servers' loop: reads each frame as [`raw_echo_connection`]
/// says, and hands it whole (header and payload) to `send`, until the
/// connection closes or `send` fails.
fn raw_serve_connection<S>(stream: &S, mut send: impl FnMut(&[u8]) -> std::io::Result<()>)
where
    for<'a> &'a S: Read,
{
    let mut reply = Vec::with_capacity(4096);
    let mut reader = BufReader::new(stream);
    loop {
        let mut header = [0u8; 4];
        if reader.read_exact(&mut header).is_err() {
            return;
        }
        let n = u32::from_be_bytes(header) as usize;
        reply.clear();
        reply.extend_from_slice(&header);
        reply.resize(4 + n, 0);
        if reader.read_exact(&mut reply[4..]).is_err() || send(&reply).is_err() {
            return;
        }
    }
}

fn raw_unix_server(path: &Path) {
    let listener = UnixListener::bind(path).expect("bind the raw Unix server");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || raw_echo_connection(stream));
        }
    });
}

/// The floor's server, but each reply goes with a copy of a descriptor
/// the server keeps open (`/dev/null`), made for it and closed once sent:
/// one `sendmsg` with `SCM_RIGHTS`, as a daemon handing out a device it
/// keeps would write it.
fn raw_fd_server(path: &Path) {
    use std::os::fd::AsFd;
    let listener = UnixListener::bind(path).expect("bind the raw descriptor server");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let kept = std::fs::File::open("/dev/null").expect("open /dev/null");
                raw_serve_connection(&stream, |reply| {
                    let copy = kept.try_clone()?;
                    let fds = [copy.as_fd()];
                    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 64];
                    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
                    control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
                    let sent = rustix::net::sendmsg(
                        &stream,
                        &[std::io::IoSlice::new(reply)],
                        &mut control,
                        rustix::net::SendFlags::NOSIGNAL,
                    )?;
                    if sent == reply.len() {
                        Ok(())
                    } else {
                        Err(std::io::ErrorKind::WriteZero.into())
                    }
                });
            });
        }
    });
}

/// The floor's client of [`raw_fd_server`]: one write, then `recvmsg`
/// with room for descriptors (close-on-exec, as anyd's client reads)
/// until the reply is whole; the descriptor that came is closed.
fn raw_fd_connect(path: PathBuf, payload: Vec<u8>) -> Connect {
    Arc::new(move || {
        let mut s = UnixStream::connect(&path).expect("connect to the raw descriptor server");
        let mut request = (payload.len() as u32).to_be_bytes().to_vec();
        request.extend_from_slice(&payload);
        let mut reply = vec![0u8; 4096];
        let mut call = move || {
            s.write_all(&request).expect("raw write");
            let (mut got, mut fds) = (0, 0);
            while got < 4 || got < 4 + u32::from_be_bytes(reply[..4].try_into().unwrap()) as usize {
                let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 64];
                let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
                let r = rustix::net::recvmsg(
                    &s,
                    &mut [std::io::IoSliceMut::new(&mut reply[got..])],
                    &mut control,
                    rustix::net::RecvFlags::CMSG_CLOEXEC,
                )
                .expect("raw recvmsg");
                assert!(r.bytes > 0, "the raw descriptor server closed");
                got += r.bytes;
                for message in control.drain() {
                    if let rustix::net::RecvAncillaryMessage::ScmRights(rights) = message {
                        fds += rights.count();
                    }
                }
            }
            assert_eq!(fds, 1, "a descriptor with each reply");
            got
        };
        assert_eq!(call(), 4 + payload.len(), "the raw echo");
        Box::new(move || {
            black_box(call());
        })
    })
}

fn raw_tcp_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw TCP server");
    let addr = listener.local_addr().expect("the raw TCP address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_nodelay(true);
            thread::spawn(move || raw_echo_connection(stream));
        }
    });
    addr
}

/// The client side of the floor: one write of header and payload, then
/// read the header and the payload back through a `BufReader`.
struct RawClient<S: Read> {
    stream: S,
    reader: BufReader<S>,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl<S: Read + Write> RawClient<S> {
    fn new(stream: S, clone: S, payload: &[u8]) -> Self {
        let mut request = (payload.len() as u32).to_be_bytes().to_vec();
        request.extend_from_slice(payload);
        RawClient {
            stream,
            reader: BufReader::new(clone),
            request,
            reply: Vec::with_capacity(4096),
        }
    }

    fn call(&mut self) -> usize {
        self.stream.write_all(&self.request).expect("raw write");
        let mut header = [0u8; 4];
        self.reader.read_exact(&mut header).expect("raw read");
        let n = u32::from_be_bytes(header) as usize;
        self.reply.resize(n, 0);
        self.reader.read_exact(&mut self.reply).expect("raw read");
        n
    }

    fn into_call(mut self) -> Call
    where
        S: Send + 'static,
    {
        assert_eq!(self.call(), self.request.len() - 4, "the raw echo");
        Box::new(move || {
            black_box(self.call());
        })
    }
}

fn raw_unix_connect(path: PathBuf, payload: Vec<u8>) -> Connect {
    Arc::new(move || {
        let s = UnixStream::connect(&path).expect("connect to the raw server");
        let clone = s.try_clone().expect("clone a socket");
        RawClient::new(s, clone, &payload).into_call()
    })
}

fn raw_tcp_connect(addr: std::net::SocketAddr, payload: Vec<u8>) -> Connect {
    Arc::new(move || {
        let s = TcpStream::connect(addr).expect("connect to the raw TCP server");
        s.set_nodelay(true).expect("TCP_NODELAY");
        let clone = s.try_clone().expect("clone a socket");
        RawClient::new(s, clone, &payload).into_call()
    })
}

// ---------------------------------------------------------------------------
// anyd rows.

fn anyd_daemon(address: String) -> Running {
    // What `descriptor()` hands out: a copy each call, as a daemon
    // handing out a device or log it keeps open would.
    let kept = std::fs::File::open("/dev/null").expect("open /dev/null");
    Appd::new()
        .api("echo(arg)", |arg: String| arg)
        .api("descriptor(arg)", move |arg: String| {
            black_box(arg);
            kept.try_clone().map(anyd::Fd::from)
        })
        // The connections of every throughput round of every row, and
        // the many-connection rows', with room to spare, whoever runs it.
        .max_connections(4096)
        .max_connections_per_uid(4096)
        .bind(address)
        .expect("bind the anyd daemon")
        .spawn()
        .expect("start the anyd daemon")
}

fn anyd_connect(address: &Address, codec: Codec) -> Connect {
    let address = address.clone();
    Arc::new(move || {
        let mut session = ClientOptions::new()
            .codec(codec)
            .connect(&address)
            .expect("connect");
        let r: String = session.commit("echo", (ARG,)).expect("echo");
        assert_eq!(r, ARG);
        Box::new(move || {
            let r: String = session.commit("echo", (black_box(ARG),)).expect("echo");
            black_box(r);
        })
    })
}

/// A call like `echo`'s that returns a descriptor instead, received and
/// closed by the client.
fn anyd_descriptor_connect(address: &Address) -> Connect {
    let address = address.clone();
    Arc::new(move || {
        let mut session = ClientOptions::new().connect(&address).expect("connect");
        let fd: anyd::Fd = session.commit("descriptor", (ARG,)).expect("descriptor");
        drop(fd);
        Box::new(move || {
            let fd: anyd::Fd = session
                .commit("descriptor", (black_box(ARG),))
                .expect("descriptor");
            black_box(fd);
        })
    })
}

fn async_row(name: &'static str, address: &Address) -> Row {
    // One client in sequence: a current-thread runtime, as a small async
    // program would have.
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut session = single
        .block_on(AsyncClientSession::connect(address))
        .expect("connect");
    // Many clients: tasks on a multi-threaded runtime, one worker a core.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let address = address.clone();
    Row::new(
        name,
        Box::new(move |plan| {
            single.block_on(async {
                for _ in 0..plan.warmup {
                    let _: String = session.commit("echo", (ARG,)).await.expect("echo");
                }
                let mut durations = vec![0u64; plan.calls];
                let start = Instant::now();
                for slot in &mut durations {
                    let t = Instant::now();
                    let r: String = session
                        .commit("echo", (black_box(ARG),))
                        .await
                        .expect("echo");
                    black_box(r);
                    *slot = t.elapsed().as_nanos() as u64;
                }
                stats(&mut durations, start.elapsed())
            })
        }),
        Box::new(move |plan| {
            multi.block_on(async {
                let mut sessions = Vec::with_capacity(plan.clients);
                for _ in 0..plan.clients {
                    sessions.push(
                        AsyncClientSession::connect(&address)
                            .await
                            .expect("connect"),
                    );
                }
                let stop = Arc::new(AtomicBool::new(false));
                let start = Instant::now();
                let tasks: Vec<_> = sessions
                    .into_iter()
                    .map(|mut s| {
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            let mut n = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                let r: String =
                                    s.commit("echo", (black_box(ARG),)).await.expect("echo");
                                black_box(r);
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                tokio::time::sleep(plan.window).await;
                stop.store(true, Ordering::Relaxed);
                let mut calls = 0u64;
                for t in tasks {
                    calls += t.await.expect("client task");
                }
                calls as f64 / start.elapsed().as_secs_f64()
            })
        }),
    )
}

// ---------------------------------------------------------------------------
// Python anyd calling Python anyd.

/// The Python daemon: Python anyd's own `Appd` with one endpoint, as its
/// README has it. Python anyd logs three INFO lines a call to stderr; with
/// `quiet` that logging is turned off (its best case: the lines cost more
/// than the call), without it they go to `/dev/null` (as shipped, with
/// the cheapest place to write to).
const PYTHON_DAEMON: &str = r#"
import logging
import os
import sys
import anyd

if sys.argv[1:] == ["quiet"]:
    logging.disable(logging.CRITICAL)
else:
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))
appd = anyd.Appd(("127.0.0.1", 0))


@appd.api
def echo(arg):
    return arg


print("READY", appd.address[1], flush=True)
appd.start()
"#;

/// The Python client.
///
/// `latency PORT WARMUP CALLS`: one session, calls in sequence, each
/// timed; prints p50 and p99 (ns, nearest rank) and the wall time (ns).
///
/// `parallel PORT`: prints READY, reads a window length in seconds from
/// stdin, then calls until the window closes and prints how many calls it
/// finished inside it. Python anyd serves one session at a time from a
/// listen backlog of one, so most of these clients spend the window
/// waiting in connect: that is what Python anyd does with many clients. A
/// client still connecting when the window closes gives up; one that is
/// connected ends its session properly, because Python anyd's daemon dies
/// of a client that vanishes with a reply unread.
const PYTHON_CLIENT: &str = r#"
import logging
import math
import signal
import sys
import time
import anyd

logging.disable(logging.CRITICAL)
mode, port = sys.argv[1], int(sys.argv[2])
address = ("127.0.0.1", port)

if mode == "latency":
    warmup, calls = int(sys.argv[3]), int(sys.argv[4])
    clock = time.perf_counter_ns
    with anyd.ClientSession(address) as client:
        assert client.commit("echo", "hello") == "hello"
        for _ in range(warmup):
            client.commit("echo", "hello")
        durations = [0] * calls
        start = clock()
        for i in range(calls):
            t = clock()
            client.commit("echo", "hello")
            durations[i] = clock() - t
        wall = clock() - start
    durations.sort()

    def at(q):
        return durations[min(max(math.ceil(len(durations) * q), 1), len(durations)) - 1]

    print(at(0.5), at(0.99), wall)
else:
    class GaveUp(Exception):
        pass

    state = {"connected": False, "closed": False}

    def close(*_):
        state["closed"] = True
        if not state["connected"]:
            raise GaveUp()

    signal.signal(signal.SIGALRM, close)
    print("READY", flush=True)
    window = float(sys.stdin.readline())
    signal.setitimer(signal.ITIMER_REAL, window)
    try:
        client = anyd.ClientSession(address).client
        state["connected"] = True
    except GaveUp:
        print(0, flush=True)
        sys.exit(0)
    calls = 0
    while not state["closed"]:
        assert client.commit("echo", "hello") == "hello"
        if not state["closed"]:
            calls += 1
    client.end_session()
    print(calls, flush=True)
"#;

/// The Python client program and where to find the Python daemon.
struct PythonClient {
    python: PathBuf,
    script: tempfile::NamedTempFile,
    port: String,
}

impl PythonClient {
    fn latency(&self, plan: &Plan) -> Stats {
        let out = support::run_ok(
            &self.python,
            PYTHON_CLIENT,
            &[
                "latency",
                &self.port,
                &plan.warmup.to_string(),
                &plan.calls.to_string(),
            ],
        );
        let numbers: Vec<u64> = out
            .split_whitespace()
            .map(|n| n.parse().expect("a number from the Python client"))
            .collect();
        let [p50, p99, wall] = numbers[..] else {
            panic!("the Python client printed {out:?}");
        };
        Stats {
            p50_us: p50 as f64 / 1e3,
            p99_us: p99 as f64 / 1e3,
            calls_per_s: plan.calls as f64 / (wall as f64 / 1e9),
        }
    }

    fn parallel(&self, plan: &Plan) -> f64 {
        let mut clients: Vec<_> = (0..plan.clients)
            .map(|_| {
                let mut child = Command::new(&self.python)
                    .arg("-I")
                    .arg(self.script.path())
                    .args(["parallel", &self.port])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("start a Python client");
                let stdout = BufReader::new(child.stdout.take().expect("piped"));
                (child, stdout)
            })
            .collect();
        let line = |stdout: &mut BufReader<_>| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read a Python client");
            line
        };
        // Every client has started Python and imported anyd before the
        // window opens for all of them at once.
        for (_, stdout) in &mut clients {
            assert_eq!(
                line(stdout).trim(),
                "READY",
                "a Python client did not start"
            );
        }
        for (child, _) in &mut clients {
            let stdin = child.stdin.as_mut().expect("piped");
            writeln!(stdin, "{}", plan.window.as_secs_f64()).expect("start a Python client");
        }
        let mut calls = 0u64;
        for (mut child, mut stdout) in clients {
            let said = line(&mut stdout);
            calls += said
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("a Python client printed {said:?}"));
            let status = child.wait().expect("wait for a Python client");
            assert!(status.success(), "a Python client failed: {status}");
        }
        calls as f64 / plan.window.as_secs_f64()
    }
}

fn python_row(name: &'static str, port: u16) -> Row {
    let client = Arc::new(PythonClient {
        python: support::venv().python.clone(),
        script: support::script_file(PYTHON_CLIENT),
        port: port.to_string(),
    });
    let same = client.clone();
    Row::new(
        name,
        Box::new(move |plan| client.latency(plan)),
        Box::new(move |plan| same.parallel(plan)),
    )
}

// ---------------------------------------------------------------------------
// A daemon process: readiness and memory.

/// What a daemon process weighs and how soon it answers.
struct Footprint {
    /// From spawning the process to the reply of its first call (median of
    /// the starts).
    ready: Duration,
    idle_rss_kib: u64,
    /// With `plan.idle` connections open, each of which made one call.
    loaded_rss_kib: Option<u64>,
    /// After those connections closed.
    after_rss_kib: Option<u64>,
}

impl Footprint {
    fn per_connection_kib(&self, plan: &Plan) -> Option<f64> {
        let loaded = self.loaded_rss_kib?;
        Some((loaded as f64 - self.idle_rss_kib as f64) / plan.idle as f64)
    }
}

fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The anyd daemon is this benchmark run again as `process::Daemon`, a
/// plain `Appd` with `echo`: spawned, it is ready when its first call has
/// been answered.
fn anyd_footprint(plan: &Plan) -> Footprint {
    let mut starts = Vec::with_capacity(plan.starts);
    let mut daemon = None;
    for _ in 0..plan.starts {
        drop(daemon.take());
        let t = Instant::now();
        // Returns once a call has been answered.
        let d = process::Daemon::start(None);
        starts.push(t.elapsed());
        daemon = Some(d);
    }
    let daemon = daemon.expect("at least one start");
    let idle = daemon.wait_quiet();

    process::allow_open_files(plan.idle as u64 + 64);
    let sessions: Vec<ClientSession> = (0..plan.idle)
        .map(|_| {
            let mut s = daemon.session();
            let r: String = s.commit("echo", (ARG,)).expect("echo");
            assert_eq!(r, ARG);
            s
        })
        .collect();
    process::wait_until("the daemon serves every connection", || {
        daemon.connection_threads() >= plan.idle
    });
    let loaded = daemon.status();
    drop(sessions);
    let after = daemon.wait_quiet();
    Footprint {
        ready: median_duration(starts),
        idle_rss_kib: idle.rss_kib,
        loaded_rss_kib: Some(loaded.rss_kib),
        after_rss_kib: Some(after.rss_kib),
    }
}

/// Python anyd's daemon, measured the same way: spawned, then called (with
/// pickle, its codec) until it answers.
fn python_footprint(plan: &Plan) -> Footprint {
    let venv = support::venv();
    let mut starts = Vec::with_capacity(plan.starts);
    let mut rss = 0;
    for _ in 0..plan.starts {
        let t = Instant::now();
        let daemon = support::PythonDaemon::start(&venv.python, PYTHON_DAEMON, &[]);
        let mut s = ClientOptions::new()
            .codec(Codec::Pickle)
            .connect(format!("tcp:127.0.0.1:{}", daemon.port()))
            .expect("connect to the Python daemon");
        let r: String = s.commit("echo", (ARG,)).expect("echo");
        starts.push(t.elapsed());
        assert_eq!(r, ARG);
        s.end_session().expect("end the session");
        rss = process::Status::of(Some(daemon.pid())).rss_kib;
    }
    Footprint {
        ready: median_duration(starts),
        idle_rss_kib: rss,
        // Python anyd holds one connection at a time: the others wait in
        // the kernel's backlog and cost it nothing.
        loaded_rss_kib: None,
        after_rss_kib: None,
    }
}

// ---------------------------------------------------------------------------
// Where the threads run.

/// Puts every thread of this process, and the processes `others`, on
/// `cpus`. Latency rows run with everything on one CPU: on this kind of
/// virtual machine a wake-up across CPUs costs tens of microseconds, more
/// than the whole call, and whether it happens depends on where the
/// scheduler put the two threads, which changes from run to run. Threads
/// inherit the mask of the thread that makes them, so the daemons'
/// connection threads made later land on the same CPUs.
fn place(cpus: &rustix::thread::CpuSet, others: &[u32]) {
    let tasks = std::fs::read_dir("/proc/self/task").expect("list this process's threads");
    let tids = tasks
        .filter_map(Result::ok)
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok());
    // The Python daemons are single-threaded: their pid is their thread.
    for id in tids.chain(others.iter().map(|&p| p as i32)) {
        match rustix::thread::sched_setaffinity(rustix::process::Pid::from_raw(id), cpus) {
            // A thread that ended since the listing is no error.
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => eprintln!("cannot place thread {id} ({e}): the figures mix placements"),
        }
    }
}

/// The CPU sets for latency (one CPU) and throughput (all of this
/// process's), or `None` with `ANYD_BENCH_PIN=0`.
fn placements() -> Option<(rustix::thread::CpuSet, rustix::thread::CpuSet)> {
    if std::env::var("ANYD_BENCH_PIN").is_ok_and(|v| v == "0") {
        return None;
    }
    let all = rustix::thread::sched_getaffinity(None).expect("this process's CPUs");
    let first = (0..rustix::thread::CpuSet::MAX_CPU).find(|&c| all.is_set(c))?;
    let mut one = rustix::thread::CpuSet::new();
    one.set(first);
    Some((one, all))
}

// ---------------------------------------------------------------------------

fn main() {
    // When a footprint measurement started this binary as its daemon.
    process::serve_if_child();

    let plan = Plan::from_env();
    let dir = tempfile::tempdir().expect("a temporary directory");

    // The floor's payload is exactly anyd's request payload.
    let mut request = Vec::new();
    codec::encode_request(Codec::MsgPack, "echo", &(ARG,), &(), &mut request)
        .expect("encode the request");

    let floor_path = dir.path().join("floor.sock");
    raw_unix_server(&floor_path);
    let fd_floor_path = dir.path().join("floor-fd.sock");
    let raw_tcp = raw_tcp_server();
    let unix = anyd_daemon(format!("unix:{}", dir.path().join("anyd.sock").display()));
    let tcp = anyd_daemon("tcp:127.0.0.1:0".into());
    // The client threads of a throughput round, each with a connection,
    // and the connections of a many-connection row, against servers in
    // this process: two descriptors a connection, twice over for a row's
    // connections still closing when the next row's open.
    process::allow_open_files(4 * (plan.clients + plan.many) as u64 + 256);

    let python_daemon = |name: &str, args: &[&str]| {
        (plan.python && plan.wants(name))
            .then(|| support::PythonDaemon::start(&support::venv().python, PYTHON_DAEMON, args))
    };
    let python_shipped = python_daemon(PYTHON_ROW, &[]);
    let python_quiet = python_daemon(PYTHON_QUIET_ROW, &["quiet"]);

    // The first row is the floor every ratio refers to.
    let mut rows = vec![blocking_row(
        "floor: raw Unix ping-pong",
        raw_unix_connect(floor_path, request.clone()),
    )];
    let mut add = |name: &'static str, make: &dyn Fn() -> Row| {
        if plan.wants(name) {
            rows.push(make());
        }
    };
    add(BUDGET_ROW, &|| {
        blocking_row(BUDGET_ROW, anyd_connect(unix.address(), Codec::MsgPack))
    });
    add(DESCRIPTOR_ROW, &|| {
        blocking_row(DESCRIPTOR_ROW, anyd_descriptor_connect(unix.address()))
    });
    add(DESCRIPTOR_FLOOR_ROW, &|| {
        let path = fd_floor_path.clone();
        raw_fd_server(&path);
        blocking_row(DESCRIPTOR_FLOOR_ROW, raw_fd_connect(path, request.clone()))
    });
    add("anyd JSON, Unix", &|| {
        blocking_row("anyd JSON, Unix", anyd_connect(unix.address(), Codec::Json))
    });
    add("anyd pickle, Unix", &|| {
        blocking_row(
            "anyd pickle, Unix",
            anyd_connect(unix.address(), Codec::Pickle),
        )
    });
    add(ASYNC_ROW, &|| async_row(ASYNC_ROW, unix.address()));
    add("raw TCP ping-pong (loopback)", &|| {
        blocking_row(
            "raw TCP ping-pong (loopback)",
            raw_tcp_connect(raw_tcp, request.clone()),
        )
    });
    add("anyd MessagePack, TCP loopback", &|| {
        blocking_row(
            "anyd MessagePack, TCP loopback",
            anyd_connect(tcp.address(), Codec::MsgPack),
        )
    });
    for (name, daemon) in [
        (PYTHON_ROW, &python_shipped),
        (PYTHON_QUIET_ROW, &python_quiet),
    ] {
        if let Some(d) = daemon {
            let port = d.port();
            add(name, &|| python_row(name, port));
        }
    }

    // Many connections: the floor's server, then anyd's, under the same
    // load; the floor whenever another of them runs.
    let mut many_rows = Vec::new();
    let many_wanted = [MANY_ROW, MANY_ASYNC_ROW]
        .iter()
        .any(|name| plan.wants(name));
    if many_wanted {
        many_rows.push(many_row(
            MANY_FLOOR_ROW,
            raw_unix_connect(dir.path().join("floor.sock"), request.clone()),
        ));
    }
    if plan.wants(MANY_ROW) {
        many_rows.push(many_row(
            MANY_ROW,
            anyd_connect(unix.address(), Codec::MsgPack),
        ));
    }
    if plan.wants(MANY_ASYNC_ROW) {
        many_rows.push(many_async_row(MANY_ASYNC_ROW, unix.address()));
    }

    let placements = placements();
    println!(
        "anyd round trip: echo({ARG:?}); request payload {} bytes (frame {} bytes)",
        request.len(),
        request.len() + frame::HEADER_LEN
    );
    println!(
        "latency: 1 client, {} timed calls in sequence after {} warm-up calls, {} round(s); \
         throughput: {} clients for {:.1} s, {} round(s); rows interleaved; {} CPUs, {}{}",
        plan.calls,
        plan.warmup,
        plan.rounds,
        plan.clients,
        plan.window.as_secs_f64(),
        plan.parallel_rounds,
        thread::available_parallelism().map_or(0, |n| n.get()),
        if placements.is_some() {
            "latency on one CPU, throughput on all"
        } else {
            "threads where the scheduler puts them"
        },
        if plan.quick {
            " (quick run: numbers mean nothing)"
        } else {
            ""
        }
    );

    let python_pids: Vec<u32> = [&python_shipped, &python_quiet]
        .into_iter()
        .flatten()
        .map(support::PythonDaemon::pid)
        .collect();
    for round in 0..plan.rounds.max(plan.parallel_rounds) {
        // Start each round at a different row, so that no row always runs
        // right after the same neighbour.
        let n = rows.len();
        if round < plan.rounds {
            if let Some((one, _)) = &placements {
                place(one, &python_pids);
            }
            for i in 0..n {
                let row = &mut rows[(i + round) % n];
                let s = (row.sequential)(&plan);
                row.latency.push(s);
            }
        }
        if round < plan.parallel_rounds {
            if let Some((_, all)) = &placements {
                place(all, &python_pids);
            }
            for i in 0..n {
                let row = &mut rows[(i + round) % n];
                let t = (row.parallel)(&plan);
                row.throughput.push(t);
            }
            let m = many_rows.len();
            for i in 0..m {
                let row = &mut many_rows[(i + round) % m];
                let before = unix.connections();
                let s = (row.run)(&plan);
                row.rounds.push(s);
                // The daemon's connections of this row, and their threads,
                // are gone before the next row starts.
                process::wait_until("the many connections closed", || {
                    unix.connections() <= before
                });
            }
        }
        if !plan.quick {
            eprintln!("round {} done", round + 1);
        }
    }

    if let Some((_, all)) = &placements {
        place(all, &python_pids);
    }
    let summary: Vec<Summary> = rows.iter().map(Summary::of).collect();
    print_table(&plan, &summary);
    let many_summary: Vec<ManySummary> = many_rows.iter().map(ManySummary::of).collect();
    print_many(&plan, &many_summary);

    let anyd = (plan.filters.is_empty() || plan.wants("footprint")).then(|| anyd_footprint(&plan));
    let python = python_shipped.is_some().then(|| python_footprint(&plan));
    drop((python_shipped, python_quiet));
    print_footprints(&plan, anyd.as_ref(), python.as_ref());
    print_budget(&plan, &summary, &many_summary, anyd.as_ref());

    drop(unix);
    drop(tcp);
}

/// A row's rounds, summed up.
struct Summary {
    name: &'static str,
    /// The medians of the rounds.
    latency: Stats,
    parallel: f64,
    /// The lowest and highest p50 of a round: how much the machine moved
    /// under the row.
    p50_range: (f64, f64),
    /// The same for the throughput rounds.
    parallel_range: (f64, f64),
}

impl Summary {
    fn of(row: &Row) -> Summary {
        let of = |f: fn(&Stats) -> f64| median(row.latency.iter().map(f).collect());
        let p50s = row.latency.iter().map(|s| s.p50_us);
        Summary {
            name: row.name,
            latency: Stats {
                p50_us: of(|s| s.p50_us),
                p99_us: of(|s| s.p99_us),
                calls_per_s: of(|s| s.calls_per_s),
            },
            parallel: median(row.throughput.clone()),
            p50_range: range(p50s),
            parallel_range: range(row.throughput.iter().copied()),
        }
    }
}

/// The lowest and highest of `values`.
fn range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    (
        values.clone().fold(f64::INFINITY, f64::min),
        values.fold(0.0, f64::max),
    )
}

fn print_table(plan: &Plan, summary: &[Summary]) {
    let floor = &summary[0];
    let clients = format!("{} clients/s", plan.clients);
    println!();
    println!(
        "{:<31} {:>7} {:>7} {:>10} {:>12} {:>9} {:>8}  {:>11} {:>15}",
        "row",
        "p50 µs",
        "p99 µs",
        "1 client/s",
        clients,
        "p50/floor",
        "Nc/floor",
        "p50 range",
        "Nc/s range (k)"
    );
    println!("{}", "-".repeat(31 + 8 + 8 + 11 + 13 + 10 + 9 + 13 + 16));
    for s in summary {
        println!(
            "{:<31} {:>7.2} {:>7.2} {:>10.0} {:>12.0} {:>8.2}x {:>7.2}x  {:>11} {:>15}",
            s.name,
            s.latency.p50_us,
            s.latency.p99_us,
            s.latency.calls_per_s,
            s.parallel,
            s.latency.p50_us / floor.latency.p50_us,
            s.parallel / floor.parallel,
            format!("{:.2}-{:.2}", s.p50_range.0, s.p50_range.1),
            format!(
                "{:.0}-{:.0}",
                s.parallel_range.0 / 1e3,
                s.parallel_range.1 / 1e3
            ),
        );
    }
    println!(
        "(each figure: the median of its rounds; the ranges: the lowest and highest of a round; \
         Nc: {} clients at once; Nc/floor: against the floor's thread-per-connection server)",
        plan.clients
    );
}

fn print_footprints(plan: &Plan, anyd: Option<&Footprint>, python: Option<&Footprint>) {
    let show = |name: &str, f: &Footprint| {
        let loaded = match (f.loaded_rss_kib, f.per_connection_kib(plan), f.after_rss_kib) {
            (Some(loaded), Some(per), Some(after)) => format!(
                "{loaded} KiB with {} idle connections ({per:.1} KiB each), {after} KiB after they closed",
                plan.idle
            ),
            _ => "one connection at a time".to_owned(),
        };
        println!(
            "{name:<19} ready in {:.1} ms; idle RSS {} KiB; {loaded}",
            f.ready.as_secs_f64() * 1e3,
            f.idle_rss_kib
        );
    };
    if anyd.is_none() && python.is_none() {
        return;
    }
    println!();
    println!(
        "daemon processes (ready: spawn to the first reply, median of {} start(s)):",
        plan.starts
    );
    if let Some(f) = anyd {
        show("anyd (Unix socket)", f);
    }
    if let Some(f) = python {
        show("Python anyd (TCP)", f);
    }
}

/// A many-connection row's rounds, summed up.
struct ManySummary {
    name: &'static str,
    /// The medians of the rounds.
    median: ManyStats,
    /// The lowest and highest calls/s of a round.
    range: (f64, f64),
}

impl ManySummary {
    fn of(row: &ManyRow) -> ManySummary {
        let of = |f: fn(&ManyStats) -> f64| median(row.rounds.iter().map(f).collect());
        ManySummary {
            name: row.name,
            median: ManyStats {
                calls_per_s: of(|s| s.calls_per_s),
                p50_us: of(|s| s.p50_us),
                p99_us: of(|s| s.p99_us),
            },
            range: range(row.rounds.iter().map(|s| s.calls_per_s)),
        }
    }
}

fn print_many(plan: &Plan, summary: &[ManySummary]) {
    let Some(floor) = summary.first() else {
        return;
    };
    println!();
    println!(
        "{} connections open at once, each making calls: {} threads (tasks, for the async \
         client) calling their share in turn for {:.1} s, every call timed",
        plan.many,
        plan.many_threads.min(plan.many),
        plan.window.as_secs_f64()
    );
    println!(
        "{:<46} {:>9} {:>8} {:>9} {:>13} {:>9} {:>15}",
        "row", "calls/s", "p50 µs", "p99 µs", "calls/floor", "p99/floor", "calls/s range (k)"
    );
    println!("{}", "-".repeat(46 + 10 + 9 + 10 + 14 + 10 + 18));
    for s in summary {
        println!(
            "{:<46} {:>9.0} {:>8.1} {:>9.1} {:>12.2}x {:>8.2}x {:>15}",
            s.name,
            s.median.calls_per_s,
            s.median.p50_us,
            s.median.p99_us,
            s.median.calls_per_s / floor.median.calls_per_s,
            s.median.p99_us / floor.median.p99_us,
            format!("{:.0}-{:.0}", s.range.0 / 1e3, s.range.1 / 1e3),
        );
    }
    println!("(each figure: the median of its rounds; the floor: the raw ping-pong's thread-per-connection server)");
}

/// A ratio to two decimals, or three where two would show the budget
/// itself ("1.30x: NOT met" reads as a contradiction).
fn ratio_shown(ratio: f64, budget: f64) -> String {
    if format!("{ratio:.2}") == format!("{budget:.2}") {
        format!("{ratio:.3}x")
    } else {
        format!("{ratio:.2}x")
    }
}

fn print_budget(
    plan: &Plan,
    summary: &[Summary],
    many: &[ManySummary],
    footprint: Option<&Footprint>,
) {
    let floor = &summary[0];
    let row = |name: &str| summary.iter().find(|s| s.name == name);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!();
    println!(
        "budget (DESIGN.md){}:",
        if plan.quick {
            " (quick run: not judged)"
        } else {
            ""
        }
    );
    // Each line: what, the figure as a ratio, the budget, the verdict.
    let line = |what: String, met: bool| {
        if plan.quick {
            println!("  {what}");
        } else {
            println!("  {what}: {}", verdict(met));
        }
    };
    let at_most = |what: &str, ratio: f64, budget: f64| {
        line(
            format!(
                "{what}: {} (budget <= {budget:.1}x)",
                ratio_shown(ratio, budget)
            ),
            ratio <= budget,
        );
    };
    let at_least = |what: &str, ratio: f64, budget: f64| {
        line(
            format!(
                "{what}: {} (budget >= {budget:.1}x)",
                ratio_shown(ratio, budget)
            ),
            ratio >= budget,
        );
    };
    if let Some(anyd) = row(BUDGET_ROW) {
        at_most(
            "1 client, MessagePack over Unix, p50 / the floor's",
            anyd.latency.p50_us / floor.latency.p50_us,
            1.1,
        );
        at_least(
            &format!(
                "{} clients, calls/s / the floor's thread-per-connection server's (the aim: 1.2x)",
                plan.clients
            ),
            anyd.parallel / floor.parallel,
            1.0,
        );
        if let Some(a) = row(ASYNC_ROW) {
            at_most(
                "1 client, the async client's p50 / the blocking one's",
                a.latency.p50_us / anyd.latency.p50_us,
                1.3,
            );
        }
        if let Some(fd) = row(DESCRIPTOR_ROW) {
            at_most(
                "1 client, a call returning a descriptor, p50 / the same call's without",
                fd.latency.p50_us / anyd.latency.p50_us,
                1.3,
            );
            // What the kernel's own descriptor passing costs, beside it:
            // the budget line above divides by anyd's plain call, so the
            // faster that call, the less of the kernel's cost it allows.
            if let Some(raw) = row(DESCRIPTOR_FLOOR_ROW) {
                println!(
                    "  (no budget) the raw floor returning a descriptor / the raw floor: {:.2}x; \
                     anyd returning a descriptor / the raw floor returning one: {:.2}x",
                    raw.latency.p50_us / floor.latency.p50_us,
                    fd.latency.p50_us / raw.latency.p50_us
                );
            }
        }
    }
    // Not a budget line of DESIGN.md: printed beside them so that a change
    // that helps one client and hurts many shows.
    if let (Some(floor), Some(anyd)) = (
        many.iter().find(|s| s.name == MANY_FLOOR_ROW),
        many.iter().find(|s| s.name == MANY_ROW),
    ) {
        println!(
            "  (no budget) {} connections, calls/s / the floor's: {:.2}x; p99 / the floor's: {:.2}x",
            plan.many,
            anyd.median.calls_per_s / floor.median.calls_per_s,
            anyd.median.p99_us / floor.median.p99_us
        );
    }
    if let Some(f) = footprint {
        if let Some(per) = f.per_connection_kib(plan) {
            line(
                format!("per idle connection: {per:.1} KiB (budget <= 16 KiB)"),
                per <= 16.0,
            );
        }
        let mib = f.idle_rss_kib as f64 / 1024.0;
        line(
            format!("idle daemon RSS: {mib:.1} MiB (budget <= 8 MiB)"),
            mib <= 8.0,
        );
        let ms = f.ready.as_secs_f64() * 1e3;
        line(format!("ready: {ms:.1} ms (budget <= 20 ms)"), ms <= 20.0);
    }
    println!(
        "  retired: \"1 client, calls/s >= 20x Python anyd\" (the floor itself is about 13x \
         Python anyd: see the Python rows' p50/floor)"
    );
}
