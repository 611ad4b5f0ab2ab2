//! Streams, measured in one run against their floor (DESIGN.md's budget):
//! how many small items a second a stream delivers, and how long an event
//! takes from `Hub::publish` to a subscriber's hands, next to a unary
//! call.
//!
//! The floor is a one-way stream of frames over a Unix socket: a thread
//! writes 4-byte big-endian lengths and payloads through a 64 KiB buffer
//! (as many ready frames to a write as fit), the reader takes them through
//! a buffered reader as fast as they come. Its payloads are exactly
//! anyd's item frames for the same values (`{"item": n}` in
//! MessagePack), so the anyd rows differ from it only by what anyd does:
//! the request, the source, encoding, flow control, the client's decoding
//! into `u64` and the end frame.
//!
//! ```sh
//! cargo bench -p anyd-ipc --bench streams              # the table (about a minute)
//! cargo bench -p anyd-ipc --bench streams -- --test    # a few items: does it run?
//! cargo bench -p anyd-ipc --bench streams -- from_stream  # only rows naming it (and the floor)
//! ```
//!
//! Environment: `ANYD_BENCH_ITEMS` (items per stream and round),
//! `ANYD_BENCH_ROUNDS`, `ANYD_BENCH_EVENTS` (events per latency round),
//! `ANYD_BENCH_QUICK=1` (same as `--test`). Rows run interleaved, round
//! after round; the table shows each row's median round. Timings are
//! printed, never asserted.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;
use std::time::Instant;

use anyd::wire::{codec, frame, Codec};
use anyd::{Appd, AsyncClientSession, ClientOptions, ClientSession, Hub, Items, Running};

struct Plan {
    items: u64,
    rounds: usize,
    events: usize,
    quick: bool,
    /// Words from the command line: only rows whose name contains one of
    /// them run (and the floor, which every ratio needs).
    filters: Vec<String>,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::args().any(|a| a == "--test")
            || std::env::var("ANYD_BENCH_QUICK").is_ok_and(|v| v == "1");
        let number = |name: &str, full: usize, quick_value: usize| -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(if quick { quick_value } else { full })
        };
        Plan {
            items: number("ANYD_BENCH_ITEMS", 2_000_000, 1_000) as u64,
            rounds: number("ANYD_BENCH_ROUNDS", 5, 1),
            events: number("ANYD_BENCH_EVENTS", 2_000, 20),
            quick,
            filters: std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .map(|a| a.to_lowercase())
                .collect(),
        }
    }

    fn wants(&self, row: &str) -> bool {
        let row = row.to_lowercase();
        row.starts_with("floor")
            || self.filters.is_empty()
            || self.filters.iter().any(|f| row.contains(f.as_str()))
    }
}

/// An iterator as an async stream that always has its next item ready.
struct Ready<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for Ready<I> {
    type Item = I::Item;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.0.next())
    }
}

/// The event of the latency rows: when it was published, in nanoseconds
/// since the run's start.
type Stamp = u64;

fn daemon(path: &std::path::Path, hub: Hub<Stamp>) -> Running {
    Appd::new()
        .api("echo(a)", |a: u64| a)
        .api("iter(n)", |n: u64| Items::from_iter(0..n))
        .api("ready(n)", |n: u64| Items::ready(0..n))
        .api("stream(n)", |n: u64| Items::from_stream(Ready(0..n)))
        .api("channel(n)", |n: u64| {
            let (tx, items) = anyd::channel();
            thread::spawn(move || {
                for i in 0..n {
                    if tx.send(i).is_err() {
                        return;
                    }
                }
            });
            items
        })
        .api("watch()", move || hub.subscribe())
        .max_connections(1024)
        .max_connections_per_uid(1024)
        .bind(path.to_str().expect("a UTF-8 path"))
        .expect("bind")
        .spawn()
        .expect("serve")
}

/// The floor's writer: `n` item frames, as anyd encodes them, through a
/// 64 KiB buffer, then the end frame.
fn floor_server(listener: UnixListener) {
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut header = [0u8; 4];
            if conn.read_exact(&mut header).is_err() {
                continue;
            }
            let mut n = [0u8; 8];
            conn.read_exact(&mut n).expect("how many");
            let n = u64::from_be_bytes(n);
            let mut out = BufWriter::with_capacity(64 * 1024, conn);
            let mut item = Vec::with_capacity(32);
            for i in 0..n {
                item.clear();
                let mark = frame::begin(&mut item);
                codec::encode_item(Codec::MsgPack, &i, &mut item).expect("encode");
                frame::finish(&mut item, mark);
                out.write_all(&item).expect("write");
            }
            out.write_all(&[0, 0, 0, 4, 0x81, 0xa2, b'o', b'k'])
                .and_then(|()| out.flush())
                .expect("write the end");
        }
    });
}

/// The floor's reader: frames as fast as they come, until the end.
fn floor_client(path: &std::path::Path, n: u64) -> u64 {
    let mut conn = UnixStream::connect(path).expect("connect to the floor");
    let mut ask = vec![0, 0, 0, 8];
    ask.extend_from_slice(&n.to_be_bytes());
    conn.write_all(&ask).expect("ask");
    let mut reader = BufReader::with_capacity(64 * 1024, conn);
    let mut payload = Vec::new();
    let mut count = 0;
    loop {
        let mut header = [0u8; 4];
        reader.read_exact(&mut header).expect("a frame");
        payload.resize(u32::from_be_bytes(header) as usize, 0);
        reader.read_exact(&mut payload).expect("a payload");
        if payload.starts_with(&[0x81, 0xa2]) {
            return count;
        }
        count += 1;
    }
}

/// Items a second of one stream of `n` items, read by `read`.
fn rate(n: u64, read: impl FnOnce(u64) -> u64) -> f64 {
    let started = Instant::now();
    let got = read(n);
    let elapsed = started.elapsed();
    assert_eq!(got, n, "a stream lost items");
    n as f64 / elapsed.as_secs_f64()
}

fn blocking_stream(s: &mut ClientSession, endpoint: &str, n: u64) -> u64 {
    let mut count = 0;
    for (i, item) in s.stream::<u64>(endpoint, (n,)).expect("stream").enumerate() {
        assert_eq!(item.expect("an item"), i as u64);
        count += 1;
    }
    count
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Publish-to-receipt latency with `subscribers` subscribers, each a
/// blocking client on its own thread: every event is published once all
/// subscribers have the one before, so that no event queues behind
/// another. Returns the sorted latencies in nanoseconds, every subscriber's.
fn hub_latency(
    path: &std::path::Path,
    hub: &Hub<Stamp>,
    subscribers: usize,
    events: usize,
    start: Instant,
) -> Vec<u64> {
    let received = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(Barrier::new(subscribers + 1));
    let threads: Vec<_> = (0..subscribers)
        .map(|_| {
            let path = path.to_owned();
            let received = received.clone();
            let ready = ready.clone();
            thread::spawn(move || {
                let mut s = ClientSession::connect(path.to_str().expect("UTF-8")).expect("connect");
                let mut items = s.stream::<Stamp>("watch", ()).expect("subscribe");
                ready.wait();
                let mut latencies = Vec::with_capacity(events);
                for _ in 0..events {
                    let sent = items.next().expect("an event").expect("an event");
                    let now = start.elapsed().as_nanos() as u64;
                    latencies.push(now.saturating_sub(sent));
                    received.fetch_add(1, Ordering::Release);
                }
                latencies
            })
        })
        .collect();
    ready.wait();
    while hub.subscribers() < subscribers {
        thread::yield_now();
    }
    for k in 0..events {
        hub.publish(start.elapsed().as_nanos() as u64);
        while received.load(Ordering::Acquire) < (k + 1) * subscribers {
            std::hint::spin_loop();
            thread::yield_now();
        }
    }
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a subscriber"))
        .collect();
    all.sort_unstable();
    while hub.subscribers() > 0 {
        thread::yield_now();
    }
    all
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn unary_p50(path: &std::path::Path, calls: usize) -> u64 {
    let mut s = ClientSession::connect(path.to_str().expect("UTF-8")).expect("connect");
    for i in 0..calls.min(1_000) {
        s.commit::<u64>("echo", (i,)).expect("a warm-up call");
    }
    let mut times: Vec<u64> = (0..calls)
        .map(|i| {
            let t = Instant::now();
            s.commit::<u64>("echo", (i,)).expect("a call");
            t.elapsed().as_nanos() as u64
        })
        .collect();
    times.sort_unstable();
    quantile(&times, 0.5)
}

fn main() {
    let plan = Plan::from_env();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let floor_path = dir.path().join("floor.sock");
    floor_server(UnixListener::bind(&floor_path).expect("bind the floor"));
    let anyd_path = dir.path().join("anyd.sock");
    let hub: Hub<Stamp> = Hub::new(1024);
    let _daemon = daemon(&anyd_path, hub.clone());
    let address = anyd_path.to_str().expect("UTF-8").to_owned();
    let mut blocking = ClientOptions::new().connect(&address).expect("connect");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut async_client = runtime
        .block_on(AsyncClientSession::connect(&address))
        .expect("connect");

    type Row<'a> = (&'static str, Box<dyn FnMut(u64) -> u64 + 'a>);
    let floor_at = floor_path.clone();
    let mut rows: Vec<Row<'_>> = vec![
        (
            "floor: raw one-way frames, Unix",
            Box::new(move |n| floor_client(&floor_at, n)),
        ),
        (
            "anyd stream, Items::from_iter",
            Box::new(|n| blocking_stream(&mut blocking, "iter", n)),
        ),
    ];
    // One client per row: a row's session is borrowed by its closure.
    let mut first = ClientSession::connect(address.as_str()).expect("connect");
    let mut second = ClientSession::connect(address.as_str()).expect("connect");
    let mut third = ClientSession::connect(address.as_str()).expect("connect");
    rows.insert(
        1,
        (
            "anyd stream, Items::ready",
            Box::new(move |n| blocking_stream(&mut first, "ready", n)),
        ),
    );
    rows.push((
        "anyd stream, Items::from_stream",
        Box::new(move |n| blocking_stream(&mut second, "stream", n)),
    ));
    rows.push((
        "anyd stream, anyd::channel",
        Box::new(move |n| blocking_stream(&mut third, "channel", n)),
    ));
    rows.push((
        "anyd stream, from_iter, async client",
        Box::new(|n| {
            runtime.block_on(async {
                let mut items = async_client
                    .stream::<u64>("iter", (n,))
                    .await
                    .expect("stream");
                let mut count = 0;
                while let Some(item) = items.next().await {
                    assert_eq!(item.expect("an item"), count);
                    count += 1;
                }
                count
            })
        }),
    ));

    println!(
        "anyd streams: {} small items (u64 counting up) per stream and round, {} round(s), \
         rows interleaved; {} CPUs{}",
        plan.items,
        plan.rounds,
        thread::available_parallelism().map_or(0, |n| n.get()),
        if plan.quick {
            " (quick run: numbers mean nothing)"
        } else {
            ""
        }
    );
    rows.retain(|(name, _)| plan.wants(name));
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    for round in 0..plan.rounds {
        let n = rows.len();
        for i in 0..n {
            let at = (i + round) % n;
            let (_, read) = &mut rows[at];
            rates[at].push(rate(plan.items, read));
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!();
    println!("| stream | items/s | x floor |");
    println!("| --- | ---: | ---: |");
    for ((name, _), items_per_second) in rows.iter().zip(&medians) {
        println!(
            "| {name} | {:.2} M | {:.2} |",
            items_per_second / 1e6,
            items_per_second / medians[0]
        );
    }
    drop(rows);

    // Latency: publish to receipt, next to a unary call's.
    if !plan.wants("publish") {
        return;
    }
    let start = Instant::now();
    let unary = unary_p50(&anyd_path, plan.events * 5);
    println!();
    println!("| from publish to a subscriber | p50 | p99 | p50 x unary call p50 |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| unary call (echo), for scale | {:.1} µs | | 1.00 |",
        unary as f64 / 1e3
    );
    for subscribers in [1, 100] {
        let events = if subscribers == 1 {
            plan.events
        } else {
            (plan.events / 4).max(10)
        };
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for _ in 0..plan.rounds.min(3) {
            let sorted = hub_latency(&anyd_path, &hub, subscribers, events, start);
            p50s.push(quantile(&sorted, 0.5) as f64);
            p99s.push(quantile(&sorted, 0.99) as f64);
        }
        let (p50, p99) = (median(p50s), median(p99s));
        println!(
            "| {subscribers} subscriber{} | {:.1} µs | {:.1} µs | {:.2} |",
            if subscribers == 1 { "" } else { "s" },
            p50 / 1e3,
            p99 / 1e3,
            p50 / unary as f64
        );
    }
}
