//! Streams, measured in one run against their floor (DESIGN.md's budget):
//! how many items a second a stream delivers, for each kind of source,
//! item and client, and how long an event takes from `Hub::publish` to a
//! subscriber's hands, next to a unary call.
//!
//! Two items: a `u64` counting up, and the realistic item of the budget,
//! `Event { seq: u64, text: "hello" }`, a struct with named fields (a
//! MessagePack map of two keys, as serde gives it). Each is streamed by
//! the four kinds of source (`Items::ready` and `Items::from_stream`, on
//! the connection's thread; `Items::from_iter` and `anyd::channel`, on a
//! thread of their own) to the blocking client and to the async client (on
//! a current-thread runtime), which decode every item into its type.
//!
//! The floor is a one-way stream of frames over a Unix socket, one for
//! each item: a thread writes 4-byte big-endian lengths and payloads
//! through a 64 KiB buffer (as many ready frames to a write as fit), the
//! reader takes them through a buffered reader as fast as they come. Its
//! payloads are exactly anyd's item frames for the same values
//! (`{"item": n}` and `{"item": {"seq": n, "text": "hello"}}` in
//! MessagePack), made as anyd's sources make them, so the anyd rows differ
//! from it only by what anyd does: the request, the source, flow control,
//! the client's decoding and the end frame.
//!
//! The budget lines (DESIGN.md, "Performance budget") print each figure as
//! a ratio next to its budget, then "met" or "NOT met": with the struct
//! item, each source on the connection's thread at least half its floor,
//! each threaded source at least half the fastest source (same item, same
//! client); from publish to a subscriber, p50 within 2x a unary call's.
//! The budget's "ahead of tonic's server streaming" needs tonic, which
//! this workspace does not depend on: the README gives the figure.
//!
//! ```sh
//! cargo bench -p anyd-ipc --bench streams                  # the table (about a minute)
//! cargo bench -p anyd-ipc --bench streams -- --test        # a few items: does it run?
//! cargo bench -p anyd-ipc --bench streams -- from_stream   # only rows naming it (and the floors)
//! cargo bench -p anyd-ipc --bench streams -- "Items::ready, struct, blocking"  # one row
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
use anyd::{Appd, AsyncClientSession, ClientSession, Hub, Items, Running};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

struct Plan {
    items: u64,
    rounds: usize,
    events: usize,
    quick: bool,
    /// Words from the command line: only rows whose name contains one of
    /// them run (and the floors, which every ratio needs).
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

/// The realistic item of DESIGN.md's stream budget: a sequence number
/// and a short string, with named fields.
#[derive(Serialize, Deserialize)]
struct Event {
    seq: u64,
    text: String,
}

/// What a row streams: how a source makes item `i`, and how a client
/// checks it got item `i`.
trait Item: Serialize + DeserializeOwned + Send + 'static {
    /// The item's name in a row, and the suffix of its endpoints.
    const NAME: &'static str;
    fn make(i: u64) -> Self;
    fn is(&self, i: u64) -> bool;
}

impl Item for u64 {
    const NAME: &'static str = "u64";
    fn make(i: u64) -> u64 {
        i
    }
    fn is(&self, i: u64) -> bool {
        *self == i
    }
}

impl Item for Event {
    const NAME: &'static str = "struct";
    fn make(seq: u64) -> Event {
        Event {
            seq,
            text: "hello".to_owned(),
        }
    }
    fn is(&self, i: u64) -> bool {
        self.seq == i && self.text == "hello"
    }
}

/// The sources, as rows name them, and their endpoints' names.
const SOURCES: [(&str, &str); 4] = [
    ("Items::ready", "ready"),
    ("Items::from_stream", "stream"),
    ("Items::from_iter", "iter"),
    ("anyd::channel", "channel"),
];
/// Sources on the connection's thread, whose budget is against the floor.
const ON_CONNECTION: [&str; 2] = ["Items::ready", "Items::from_stream"];
/// Sources on a thread of their own, whose budget is against the fastest.
const THREADED: [&str; 2] = ["Items::from_iter", "anyd::channel"];
const CLIENTS: [&str; 2] = ["blocking", "async"];

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

/// The four sources of items `T`, as endpoints `ready_<item>(n)`,
/// `stream_<item>(n)`, `iter_<item>(n)` and `channel_<item>(n)`.
fn sources<T: Item>(appd: Appd) -> Appd {
    let name = |source: &str| format!("{source}_{}(n)", T::NAME);
    appd.api(&name("ready"), |n: u64| Items::ready((0..n).map(T::make)))
        .api(&name("stream"), |n: u64| {
            Items::from_stream(Ready((0..n).map(T::make)))
        })
        .api(&name("iter"), |n: u64| {
            Items::from_iter((0..n).map(T::make))
        })
        .api(&name("channel"), |n: u64| {
            let (tx, items) = anyd::channel();
            thread::spawn(move || {
                for i in 0..n {
                    if tx.send(T::make(i)).is_err() {
                        return;
                    }
                }
            });
            items
        })
}

fn daemon(path: &std::path::Path, hub: Hub<Stamp>) -> Running {
    let appd = Appd::new()
        .api("echo(a)", |a: u64| a)
        .api("watch()", move || hub.subscribe());
    sources::<Event>(sources::<u64>(appd))
        .max_connections(1024)
        .max_connections_per_uid(1024)
        .bind(path.to_str().expect("a UTF-8 path"))
        .expect("bind")
        .spawn()
        .expect("serve")
}

/// The floor's writer: `n` item frames, as anyd encodes them, through a
/// 64 KiB buffer, then the end frame. The request is `n` (8 bytes), then
/// which item (0: `u64`, 1: the struct).
fn floor_server(listener: UnixListener) {
    fn items<T: Item>(out: &mut impl Write, n: u64) {
        let mut item = Vec::with_capacity(64);
        for i in 0..n {
            item.clear();
            let mark = frame::begin(&mut item);
            codec::encode_item(Codec::MsgPack, &T::make(i), &mut item).expect("encode");
            frame::finish(&mut item, mark);
            out.write_all(&item).expect("write");
        }
    }
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut ask = [0u8; 4 + 9];
            if conn.read_exact(&mut ask).is_err() {
                continue;
            }
            let n = u64::from_be_bytes(ask[4..12].try_into().expect("8 bytes"));
            let mut out = BufWriter::with_capacity(64 * 1024, conn);
            match ask[12] {
                0 => items::<u64>(&mut out, n),
                _ => items::<Event>(&mut out, n),
            }
            out.write_all(&[0, 0, 0, 4, 0x81, 0xa2, b'o', b'k'])
                .and_then(|()| out.flush())
                .expect("write the end");
        }
    });
}

/// The floor's reader: frames as fast as they come, until the end.
fn floor_client<T: Item>(path: &std::path::Path, n: u64) -> u64 {
    let mut conn = UnixStream::connect(path).expect("connect to the floor");
    let mut ask = vec![0, 0, 0, 9];
    ask.extend_from_slice(&n.to_be_bytes());
    ask.push(u8::from(T::NAME != u64::NAME));
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

fn blocking_stream<T: Item>(s: &mut ClientSession, endpoint: &str, n: u64) -> u64 {
    let mut count = 0;
    for item in s.stream::<T>(endpoint, (n,)).expect("stream") {
        assert!(item.expect("an item").is(count), "item {count}");
        count += 1;
    }
    count
}

async fn async_stream<T: Item>(s: &mut AsyncClientSession, endpoint: &str, n: u64) -> u64 {
    let mut items = s.stream::<T>(endpoint, (n,)).await.expect("stream");
    let mut count = 0;
    while let Some(item) = items.next().await {
        assert!(item.expect("an item").is(count), "item {count}");
        count += 1;
    }
    count
}

/// A budget line: a figure as a ratio, next to its budget.
struct Budget {
    what: String,
    ratio: f64,
    budget: f64,
    /// The ratio may be at most `budget` (else: at least).
    at_most: bool,
}

impl Budget {
    fn at_least(what: String, ratio: f64, budget: f64) -> Budget {
        Budget {
            what,
            ratio,
            budget,
            at_most: false,
        }
    }

    fn at_most(what: String, ratio: f64, budget: f64) -> Budget {
        Budget {
            at_most: true,
            ..Budget::at_least(what, ratio, budget)
        }
    }

    /// "what: 0.45x (budget >= 0.5x): NOT met"; not judged in a quick run.
    fn print(&self, plan: &Plan) {
        let (sign, met) = if self.at_most {
            ("<=", self.ratio <= self.budget)
        } else {
            (">=", self.ratio >= self.budget)
        };
        let verdict = match (plan.quick, met) {
            (true, _) => "",
            (false, true) => ": met",
            (false, false) => ": NOT met",
        };
        // Three decimals where two would show the budget itself ("0.50x:
        // NOT met" reads as a contradiction).
        let decimals = if format!("{:.2}", self.ratio) == format!("{:.2}", self.budget) {
            3
        } else {
            2
        };
        println!(
            "  {}: {:.*}x (budget {sign} {:.1}x){verdict}",
            self.what, decimals, self.ratio, self.budget
        );
    }
}

/// One row of the table: what it streams, and how to read one stream of
/// `n` items (returning how many came).
struct Row<'a> {
    source: &'static str,
    item: &'static str,
    client: &'static str,
    read: Box<dyn FnMut(u64) -> u64 + 'a>,
}

impl Row<'_> {
    /// What filters match: "Items::ready, struct, blocking".
    fn name(&self) -> String {
        format!("{}, {}, {}", self.source, self.item, self.client)
    }
}

/// The rows streaming items `T` from each source to each client.
fn anyd_rows<'a, T: Item>(
    plan: &Plan,
    address: &str,
    runtime: &'a tokio::runtime::Runtime,
) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    for client in CLIENTS {
        for (source, endpoint) in SOURCES {
            let endpoint = format!("{endpoint}_{}", T::NAME);
            let mut row = Row {
                source,
                item: T::NAME,
                client,
                read: Box::new(|_| 0),
            };
            if !plan.wants(&row.name()) {
                continue;
            }
            // One session per row: a row's session is its closure's.
            row.read = if client == "blocking" {
                let mut s = ClientSession::connect(address).expect("connect");
                Box::new(move |n| blocking_stream::<T>(&mut s, &endpoint, n))
            } else {
                let mut s = runtime
                    .block_on(AsyncClientSession::connect(address))
                    .expect("connect");
                Box::new(move |n| runtime.block_on(async_stream::<T>(&mut s, &endpoint, n)))
            };
            rows.push(row);
        }
    }
    rows
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    // The floors first: every ratio refers to one of them.
    let floor = |item: &'static str, read: Box<dyn FnMut(u64) -> u64>| Row {
        source: "floor: raw one-way frames",
        item,
        client: "-",
        read,
    };
    let (u64_floor, struct_floor) = (floor_path.clone(), floor_path.clone());
    let mut rows = vec![
        floor(
            u64::NAME,
            Box::new(move |n| floor_client::<u64>(&u64_floor, n)),
        ),
        floor(
            Event::NAME,
            Box::new(move |n| floor_client::<Event>(&struct_floor, n)),
        ),
    ];
    rows.extend(anyd_rows::<u64>(&plan, &address, &runtime));
    rows.extend(anyd_rows::<Event>(&plan, &address, &runtime));

    println!(
        "anyd streams: {} items per stream and round (u64 counting up; struct: {{seq: u64, \
         text: \"hello\"}}), {} round(s), rows interleaved; {} CPUs{}",
        plan.items,
        plan.rounds,
        thread::available_parallelism().map_or(0, |n| n.get()),
        if plan.quick {
            " (quick run: numbers mean nothing)"
        } else {
            ""
        }
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    for round in 0..plan.rounds {
        let n = rows.len();
        for i in 0..n {
            let at = (i + round) % n;
            rates[at].push(rate(plan.items, &mut rows[at].read));
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    // Items/s of a row, by what it streams.
    let rate_of = |source: &str, item: &str, client: &str| {
        rows.iter()
            .zip(&medians)
            .find(|(r, _)| r.source == source && r.item == item && r.client == client)
            .map(|(_, &m)| m)
    };
    let floor_of = |item: &str| {
        rate_of("floor: raw one-way frames", item, "-").expect("the floors always run")
    };
    println!();
    println!("| source | item | client | items/s | x floor (same item) |");
    println!("| --- | --- | --- | ---: | ---: |");
    for (row, items_per_second) in rows.iter().zip(&medians) {
        println!(
            "| {} | {} | {} | {:.2} M | {:.2} |",
            row.source,
            row.item,
            row.client,
            items_per_second / 1e6,
            items_per_second / floor_of(row.item)
        );
    }

    // The budget's stream lines, with the realistic item.
    let mut budget = Vec::new();
    for client in CLIENTS {
        let item = Event::NAME;
        for source in ON_CONNECTION {
            if let Some(r) = rate_of(source, item, client) {
                budget.push(Budget::at_least(
                    format!("{source}, {item} item, {client} client: items/s / the floor's"),
                    r / floor_of(item),
                    0.5,
                ));
            }
        }
        let fastest = SOURCES
            .iter()
            .filter_map(|(source, _)| rate_of(source, item, client))
            .fold(0.0, f64::max);
        for source in THREADED {
            if let Some(r) = rate_of(source, item, client) {
                budget.push(Budget::at_least(
                    format!(
                        "{source}, {item} item, {client} client: items/s / the fastest source's"
                    ),
                    r / fastest,
                    0.5,
                ));
            }
        }
    }
    drop(rows);

    // Latency: publish to receipt, next to a unary call's.
    if plan.wants("publish") {
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
            if subscribers == 1 {
                budget.push(Budget::at_most(
                    "from publish to 1 subscriber, p50 / a unary call's".to_owned(),
                    p50 / unary as f64,
                    2.0,
                ));
            }
        }
    }

    println!();
    println!(
        "budget (DESIGN.md){}:",
        if plan.quick {
            " (quick run: not judged)"
        } else {
            ""
        }
    );
    for line in budget {
        line.print(&plan);
    }
    println!("  ahead of tonic's server streaming: not measured here (see the README)");
}
