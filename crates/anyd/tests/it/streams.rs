//! Streaming endpoints end to end (docs/PROTOCOL.md section 8.1): items
//! through both clients, how streams end (well, with an error, cancelled,
//! refused), what a cancelled or abandoned stream leaves behind, a hub's
//! subscribers, and the frames themselves on a raw socket. Streams against
//! a daemon in its own process (memory, SIGTERM, killed clients) are
//! below in `process` and in `faults`.

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyd::wire::message::StreamReply;
use anyd::{
    Allow, Appd, AsyncClientSession, ClientOptions, ClientSession, Codec, Error, Hub, ItemSender,
    Items, RemoteError, Running,
};
use anyd_testkit::process::wait_until;
use anyd_testkit::raw::{
    self, raw, read_frame, reply, request, start, stream_reply, stream_request,
};

const PATIENCE: Duration = Duration::from_secs(20);

fn session(d: &Running) -> ClientSession {
    ClientOptions::new()
        .timeout(Some(PATIENCE))
        .connect(d.address())
        .unwrap()
}

fn counting() -> Appd {
    Appd::new()
        .api("count(n)", |n: u64| Items::from_iter(0..n))
        .api("echo(a)", |a: u64| a)
}

fn remote(e: &Error) -> &RemoteError {
    match e {
        Error::Remote(r) => r,
        other => panic!("expected an error reply, got {other}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_stream_of_items_then_the_session_goes_on() {
    let (d, _dir) = start(counting());
    for codec in [Codec::MsgPack, Codec::Json] {
        let mut s = ClientOptions::new()
            .codec(codec)
            .connect(d.address())
            .unwrap();
        // More than a write's worth, and none at all.
        for n in [100_000, 0, 1] {
            let items: Vec<u64> = s
                .stream::<u64>("count", (n,))
                .unwrap()
                .collect::<anyd::Result<_>>()
                .unwrap();
            assert_eq!(items, (0..n).collect::<Vec<_>>(), "{codec:?}");
        }
        assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
    }
}

#[test]
fn the_async_client_streams_and_cancels_on_drop() {
    let (d, _dir) = start(counting());
    runtime().block_on(async {
        let mut s = AsyncClientSession::connect(d.address()).await.unwrap();
        let mut items = s.stream::<u64>("count", (10,)).await.unwrap();
        let mut got = Vec::new();
        while let Some(i) = items.next().await {
            got.push(i.unwrap());
        }
        drop(items);
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        // Dropped mid-stream: the next call brings the session back in
        // step first.
        {
            let mut items = s.stream::<u64>("count", (u64::MAX,)).await.unwrap();
            assert_eq!(items.next().await.unwrap().unwrap(), 0);
        }
        assert_eq!(s.commit::<u64>("echo", (7,)).await.unwrap(), 7);
        // Cancelled explicitly.
        let mut items = s.stream::<u64>("count", (u64::MAX,)).await.unwrap();
        assert_eq!(items.next().await.unwrap().unwrap(), 0);
        items.cancel().await.unwrap();
        assert_eq!(s.commit::<u64>("echo", (8,)).await.unwrap(), 8);
        s.end_session().await.unwrap();
    });
}

/// A stream that never has an item, and says when it is polled and when
/// it is dropped.
struct Forever {
    polled: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl futures_core::Stream for Forever {
    type Item = u64;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u64>> {
        self.polled.store(true, Ordering::SeqCst);
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A daemon whose `forever()` streams a [`Forever`], and the flags that
/// say whether it was polled and dropped.
fn forever_daemon() -> (Running, tempfile::TempDir, Arc<AtomicBool>, Arc<AtomicBool>) {
    let polled = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (p, dr) = (polled.clone(), dropped.clone());
    let (d, dir) = start(counting().api("forever()", move || {
        Items::from_stream(Forever {
            polled: p.clone(),
            dropped: dr.clone(),
        })
    }));
    (d, dir, polled, dropped)
}

#[test]
fn cancelling_drops_an_async_producer_that_has_nothing_due() {
    let (d, _dir, polled, dropped) = forever_daemon();
    let mut s = session(&d);
    let items = s.stream::<u64>("forever", ()).unwrap();
    wait_until("the daemon polls the stream", || {
        polled.load(Ordering::SeqCst)
    });
    assert!(!dropped.load(Ordering::SeqCst));
    items.cancel().unwrap();
    // Dropped once the end frame is written (the client may read it
    // first), and before the session's next call is served.
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
    assert!(dropped.load(Ordering::SeqCst));
}

/// A streaming endpoint fed by a channel whose sender the test holds.
fn fed() -> (Appd, Arc<Mutex<Option<ItemSender<String>>>>) {
    let sender = Arc::new(Mutex::new(None));
    let slot = sender.clone();
    let appd = counting().api("fed()", move || {
        let (tx, items) = anyd::channel();
        *slot.lock().unwrap() = Some(tx);
        items
    });
    (appd, sender)
}

#[test]
fn a_canceller_stops_a_quiet_stream_from_another_thread() {
    let (appd, sender) = fed();
    let (d, _dir) = start(appd);
    let mut s = session(&d);
    let mut items = s.stream::<String>("fed", ()).unwrap();
    wait_until("the handler ran", || sender.lock().unwrap().is_some());
    let tx = sender.lock().unwrap().take().unwrap();
    tx.send("first".into()).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), "first");
    let canceller = items.canceller().unwrap();
    let cancelling = std::thread::spawn(move || canceller.cancel());
    // The iterator was blocked on a quiet stream; the cancel ends it.
    let e = items.next().unwrap().unwrap_err();
    assert_eq!(remote(&e).kind, "Cancelled");
    assert!(items.next().is_none());
    cancelling.join().unwrap().unwrap();
    drop(items);
    wait_until("the producer learns", || tx.is_closed());
    assert_eq!(tx.send("late".into()), Err(anyd::StreamClosed));
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

#[test]
fn a_blocking_iterator_s_stream_ends_at_once_and_the_iterator_when_it_returns() {
    let (release_tx, release_rx) = mpsc::channel::<u64>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let dropped = Arc::new(AtomicBool::new(false));
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let in_next = Arc::new(AtomicBool::new(false));
    let (dr, waits) = (dropped.clone(), in_next.clone());
    let (d, _dir) = start(counting().api("waiting()", move || {
        let rx = release_rx.clone();
        let guard = Guard(dr.clone());
        let waits = waits.clone();
        // Yields 0 at once, then waits for the test before each item.
        Items::from_iter(std::iter::once(0).chain(std::iter::from_fn(move || {
            let _ = &guard;
            waits.store(true, Ordering::SeqCst);
            rx.lock().unwrap().recv().ok()
        })))
    }));
    let mut s = session(&d);
    let mut items = s.stream::<u64>("waiting", ()).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), 0);
    // Cancelled only once the iterator waits in its next `next`: a cancel
    // before that stops it before the call, and drops it at once.
    wait_until("the iterator waits in next", || {
        in_next.load(Ordering::SeqCst)
    });
    // The end frame comes while the iterator still waits in `next`.
    items.cancel().unwrap();
    assert!(!dropped.load(Ordering::SeqCst));
    // Once its `next` returns, it is dropped. (A `next` that returned
    // just before the stream ended may have been followed by one more:
    // let each go until it is dropped.)
    wait_until("the iterator is dropped", || {
        let _ = release_tx.send(1);
        dropped.load(Ordering::SeqCst)
    });
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

#[test]
fn the_last_items_of_a_fast_run_come_without_another_item_after_them() {
    // A producer on a thread of its own sends a run of items as fast as it
    // can, far more than the connection gathers before writing, then
    // sends nothing until the client has had them all. The connection
    // gathers such a run rather than be woken for every few items: its
    // last items must still come on their own.
    const RUN: u64 = 20_000;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let done_rx = Arc::new(Mutex::new(done_rx));
    let (by_iter, by_channel) = (done_rx.clone(), done_rx);
    let (d, _dir) = start(
        counting()
            .api("run_iter()", move || {
                let done = by_iter.clone();
                Items::from_iter((0..RUN).chain(std::iter::from_fn(move || {
                    let _ = done.lock().unwrap().recv();
                    None
                })))
            })
            .api("run_channel()", move || {
                let done = by_channel.clone();
                let (tx, items) = anyd::channel();
                std::thread::spawn(move || {
                    for i in 0..RUN {
                        if tx.send(i).is_err() {
                            return;
                        }
                    }
                    let _ = done.lock().unwrap().recv();
                });
                items
            }),
    );
    let mut s = session(&d);
    for endpoint in ["run_iter", "run_channel"] {
        // A stream's reads have no timeout: a tail left gathered would
        // leave the reading thread waiting, and the test fails on the
        // count it did not send.
        let (count_tx, count_rx) = mpsc::channel();
        let reading = std::thread::spawn(move || {
            let mut items = s.stream::<u64>(endpoint, ()).unwrap();
            for i in 0..RUN {
                assert_eq!(items.next().unwrap().unwrap(), i, "{endpoint}");
            }
            count_tx.send(RUN).unwrap();
            assert!(items.next().is_none(), "{endpoint}");
            drop(items);
            s
        });
        let got = count_rx.recv_timeout(PATIENCE);
        assert_eq!(got, Ok(RUN), "{endpoint}: the run's last items never came");
        done_tx.send(()).unwrap();
        s = reading.join().unwrap();
    }
    let rt = runtime();
    rt.block_on(async {
        let mut s = AsyncClientSession::connect(d.address()).await.unwrap();
        for endpoint in ["run_iter", "run_channel"] {
            let mut items = s.stream::<u64>(endpoint, ()).await.unwrap();
            for i in 0..RUN {
                let item = tokio::time::timeout(PATIENCE, items.next()).await;
                assert_eq!(item.unwrap().unwrap().unwrap(), i, "{endpoint}");
            }
            done_tx.send(()).unwrap();
            assert!(items.next().await.is_none(), "{endpoint}");
        }
    });
}

#[derive(Debug, anyd::ApiError)]
#[api_error(kind = "TunnelDown")]
struct TunnelDown;

impl std::fmt::Display for TunnelDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the tunnel went down")
    }
}

#[test]
fn an_error_ends_the_stream_after_the_items_before_it() {
    let (d, _dir) = start(
        counting()
            .api("iter()", || {
                Items::try_from_iter((0..5u64).map(|i| if i < 3 { Ok(i) } else { Err(TunnelDown) }))
            })
            .api("stream()", || {
                Items::try_from_stream(IterStream((0..5u64).map(|i| {
                    if i < 3 {
                        Ok(i)
                    } else {
                        Err(TunnelDown)
                    }
                })))
            })
            .api("channel()", || {
                let (tx, items) = anyd::channel();
                std::thread::spawn(move || {
                    for i in 0..3u64 {
                        tx.send(i).unwrap();
                    }
                    tx.fail(TunnelDown);
                });
                items
            })
            .api("panics()", || {
                Items::from_iter((0..5u64).map(|i| if i < 3 { i } else { panic!("at {i}") }))
            })
            .api("refuses()", || -> Result<Items<u64>, TunnelDown> {
                Err(TunnelDown)
            }),
    );
    let mut s = session(&d);
    for endpoint in ["iter", "stream", "channel", "panics"] {
        let got: Vec<anyd::Result<u64>> = s.stream(endpoint, ()).unwrap().collect();
        assert_eq!(got.len(), 4, "{endpoint}: {got:?}");
        for (i, item) in got[..3].iter().enumerate() {
            assert_eq!(*item.as_ref().unwrap(), i as u64, "{endpoint}");
        }
        let e = remote(got[3].as_ref().unwrap_err());
        if endpoint == "panics" {
            assert_eq!(e.kind, "RuntimeError");
            assert!(e.message.contains("internal error"), "{}", e.message);
        } else {
            assert_eq!(
                (&*e.kind, &*e.message),
                ("TunnelDown", "the tunnel went down")
            );
        }
    }
    // Refused before any item.
    let got: Vec<anyd::Result<u64>> = s.stream("refuses", ()).unwrap().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(remote(got[0].as_ref().unwrap_err()).kind, "TunnelDown");
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

/// An iterator as an async stream that is always ready.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.0.next())
    }
}

#[test]
fn streams_and_unary_calls_do_not_mix_up() {
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let (d, _dir) = start(
        Appd::new()
            .api("count(n)", move |n: u64| {
                r1.fetch_add(1, Ordering::SeqCst);
                Items::from_iter(0..n)
            })
            .api("echo(a)", move |a: u64| {
                r2.fetch_add(1, Ordering::SeqCst);
                a
            }),
    );
    let mut s = session(&d);
    let e = s.commit::<u64>("count", (3,)).unwrap_err();
    // Refused before the handler runs: a client may call again the other
    // way (anydctl does) without the endpoint having run twice.
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let e = remote(&e);
    assert_eq!(e.kind, "TypeError");
    assert!(
        e.message.starts_with("count() sends a stream of items"),
        "{}",
        e.message
    );
    for unary in ["echo", "anyd.ping"] {
        let args: Vec<u64> = if unary == "echo" { vec![3] } else { vec![] };
        let got: Vec<anyd::Result<u64>> = s.stream(unary, args).unwrap().collect();
        assert_eq!(got.len(), 1, "{unary}");
        let e = remote(got[0].as_ref().unwrap_err());
        assert_eq!(e.kind, "TypeError");
        assert!(e.message.contains("does not stream"), "{}", e.message);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // An item of the wrong type is that item's error; the stream goes on.
    let got: Vec<anyd::Result<String>> = s.stream("count", (2,)).unwrap().collect();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|r| matches!(r, Err(Error::ResultType(_)))),
        "{got:?}"
    );
    // Pickle has no streams: said before anything is sent.
    let mut p = ClientOptions::new()
        .codec(Codec::Pickle)
        .connect(d.address())
        .unwrap();
    assert!(matches!(
        p.stream::<u64>("count", (3,)),
        Err(Error::Encode(_))
    ));
    assert_eq!(p.commit::<u64>("echo", (7,)).unwrap(), 7);
    let e = p.commit::<u64>("count", (3,)).unwrap_err();
    assert_eq!(remote(&e).kind, "TypeError");
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

#[test]
fn introspection_marks_streams_and_policy_refuses_them_like_any_endpoint() {
    let (d, _dir) = start(
        counting()
            .api("root_count(n)", |n: u64| Items::from_iter(0..n))
            .restrict(Allow::uid(u32::MAX - 1)),
    );
    let mut s = session(&d);
    let endpoints: Vec<anyd::EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
    let count = endpoints.iter().find(|e| e.name == "count").unwrap();
    assert!(count.stream);
    assert_eq!(count.returns, "u64");
    assert!(!endpoints.iter().find(|e| e.name == "echo").unwrap().stream);
    assert!(endpoints.iter().all(|e| e.name != "root_count"));
    // Refused as a missing endpoint is, before the handler runs.
    let got: Vec<anyd::Result<u64>> = s.stream("root_count", (3,)).unwrap().collect();
    let refused = remote(got[0].as_ref().unwrap_err()).clone();
    let got: Vec<anyd::Result<u64>> = s.stream("no_such_count", (3,)).unwrap().collect();
    let missing = remote(got[0].as_ref().unwrap_err()).clone();
    assert_eq!(refused.kind, "NotImplementedError");
    assert_eq!(refused.kind, missing.kind);
}

#[test]
fn a_hub_reaches_every_subscriber_in_order() {
    const SUBSCRIBERS: usize = 1000;
    const EVENTS: u64 = 100;
    anyd_testkit::process::allow_open_files(4 * SUBSCRIBERS as u64 + 256);
    let hub: Hub<u64> = Hub::new(EVENTS as usize);
    let h = hub.clone();
    let (d, _dir) = start(
        Appd::new()
            .max_connections(2 * SUBSCRIBERS)
            .max_connections_per_uid(2 * SUBSCRIBERS)
            .api("watch()", move || h.subscribe()),
    );
    let mut sessions: Vec<ClientSession> = (0..SUBSCRIBERS).map(|_| session(&d)).collect();
    let mut streams: Vec<_> = sessions
        .iter_mut()
        .map(|s| s.stream::<u64>("watch", ()).unwrap())
        .collect();
    wait_until("every subscriber is in", || {
        hub.subscribers() == SUBSCRIBERS
    });
    for event in 0..EVENTS {
        assert_eq!(hub.publish(event), SUBSCRIBERS);
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        for event in 0..EVENTS {
            assert_eq!(stream.next().unwrap().unwrap(), event, "subscriber {i}");
        }
    }
    drop(streams);
    wait_until("every subscription is dropped", || hub.subscribers() == 0);
    // The sessions serve calls again.
    for s in &mut sessions {
        assert!(s.commit::<bool>("anyd.ping", ()).unwrap());
    }
}

#[test]
fn a_dropped_hub_ends_its_subscribers_streams_after_their_events() {
    let slot = Arc::new(Mutex::new(Some(Hub::<u64>::new(8))));
    let handler_slot = slot.clone();
    let (d, _dir) = start(Appd::new().api("watch()", move || {
        handler_slot.lock().unwrap().as_ref().unwrap().subscribe()
    }));
    let mut s = session(&d);
    let stream = s.stream::<u64>("watch", ()).unwrap();
    let subscribers = || slot.lock().unwrap().as_ref().unwrap().subscribers();
    wait_until("subscribed", || subscribers() == 1);
    let hub = slot.lock().unwrap().take().unwrap();
    hub.publish(1);
    hub.publish(2);
    drop(hub);
    let rest: Vec<u64> = stream.map(Result::unwrap).collect();
    assert_eq!(rest, [1, 2]);
}

#[test]
fn a_cancel_outside_a_stream_is_ignored_and_requests_behind_a_stream_wait_for_its_end() {
    let (d, _dir) = start(counting());
    let mut c = raw(d.address());
    // A cancel that crossed its stream's end, then a call.
    let mut burst = raw::cancel();
    burst.extend(request("echo", (1,)));
    c.write_all(&burst).unwrap();
    assert_eq!(
        reply::<u64>(&read_frame(&mut c).unwrap()),
        anyd::wire::message::Reply::Ok(1)
    );
    // A stream and a request pipelined behind it: the reply follows the
    // stream's end frame.
    let mut burst = stream_request("count", (3,));
    burst.extend(request("echo", (2,)));
    c.write_all(&burst).unwrap();
    for i in 0..3 {
        assert_eq!(
            stream_reply::<u64>(&read_frame(&mut c).unwrap()),
            StreamReply::Item(i)
        );
    }
    assert_eq!(
        stream_reply::<u64>(&read_frame(&mut c).unwrap()),
        StreamReply::End
    );
    assert_eq!(
        reply::<u64>(&read_frame(&mut c).unwrap()),
        anyd::wire::message::Reply::Ok(2)
    );
    // In JSON, cancel included.
    let mut json = Vec::new();
    let frame_json = |text: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&(text.len() as u32).to_be_bytes());
        out.extend_from_slice(text);
    };
    frame_json(br#"["count",[1000000000],{},{"stream":true}]"#, &mut json);
    c.write_all(&json).unwrap();
    assert_eq!(read_frame(&mut c).unwrap(), br#"{"item":0}"#);
    json.clear();
    frame_json(br#""CANCEL""#, &mut json);
    c.write_all(&json).unwrap();
    loop {
        let f = read_frame(&mut c).unwrap();
        if f.starts_with(br#"{"item":"#) {
            continue;
        }
        assert_eq!(
            f,
            br#"{"error":{"kind":"Cancelled","message":"the client cancelled the stream","data":null}}"#
        );
        break;
    }
    c.write_all(&request("echo", (3,))).unwrap();
    assert_eq!(
        reply::<u64>(&read_frame(&mut c).unwrap()),
        anyd::wire::message::Reply::Ok(3)
    );
}

#[test]
fn a_quiet_stream_outlives_the_idle_timeout() {
    let idle = Duration::from_millis(200);
    let (appd, sender) = fed();
    let (d, _dir) = start(appd.idle_timeout(Some(idle)));
    let mut s = session(&d);
    let mut items = s.stream::<String>("fed", ()).unwrap();
    wait_until("the handler ran", || sender.lock().unwrap().is_some());
    let tx = sender.lock().unwrap().take().unwrap();
    // The time under test: several idle timeouts with nothing sent. A
    // session idle between requests would be closed by now.
    std::thread::sleep(idle * 5);
    tx.send("still here".into()).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), "still here");
    drop(tx);
    assert!(items.next().is_none());
    drop(items);
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

/// Against a daemon in its own process: what a stream costs it.
mod process {
    use super::*;
    use anyd_testkit::process::{Daemon, Settings};
    use rustix::process::Signal;

    #[test]
    fn a_client_that_stops_reading_a_stream_costs_bounded_memory_and_is_cut() {
        let d = Daemon::start_with(Settings {
            idle_timeout: Some(Duration::from_secs(2)),
            ..Settings::default()
        });
        let before = d.wait_quiet();
        d.reset_peak();
        // 64 KiB items from an iterator that never ends, never read.
        let mut c = std::os::unix::net::UnixStream::connect(d.path()).unwrap();
        c.write_all(&stream_request("flood", (64 * 1024,))).unwrap();
        // The daemon cuts it at the reply deadline...
        wait_until("the daemon closes the stalled stream", || {
            d.connections() == 0
        });
        let after = d.wait_quiet();
        // ... having held about what the socket, its write and the
        // channel hold: without the flow control, an endless iterator
        // fills memory in these two seconds.
        let grew_mib = (after.peak_kib.saturating_sub(before.rss_kib)) / 1024;
        assert!(grew_mib < 32, "the daemon grew by {grew_mib} MiB");
        assert_eq!(
            after.threads, before.threads,
            "the iterator's thread is gone"
        );
    }

    #[test]
    fn issue_22_a_request_behind_a_stream_is_due_within_the_idle_timeout() {
        const STREAMS: usize = 12;
        let idle = Duration::from_millis(500);
        let d = Daemon::start_with(Settings {
            idle_timeout: Some(idle),
            ..Settings::default()
        });
        let before = d.wait_quiet();
        let fds_before = d.open_fds();
        d.reset_peak();
        // Streams from a hub that stays quiet, each with all but the last
        // byte of a 1 MiB frame behind it, and sixteen descriptors.
        let (readers, writers) = raw::pipes(16);
        let fds: Vec<_> = readers.iter().map(std::os::fd::AsFd::as_fd).collect();
        let mut behind = Vec::new();
        anyd::wire::frame::encode(&vec![0u8; 1 << 20], &mut behind);
        behind.pop();
        let started = std::time::Instant::now();
        let mut clients: Vec<_> = (0..STREAMS)
            .map(|_| {
                let mut c = std::os::unix::net::UnixStream::connect(d.path()).unwrap();
                c.set_read_timeout(Some(PATIENCE)).unwrap();
                c.write_all(&stream_request("ticks", ())).unwrap();
                raw::send_with_fds(&c, &behind[..4096], &fds);
                c.write_all(&behind[4096..]).unwrap();
                c
            })
            .collect();
        drop(readers);
        // Each is cut at the frame's deadline, and told why first.
        for c in &mut clients {
            let end = read_frame(c).expect("an end frame before the close");
            let StreamReply::Err(e) = stream_reply::<String>(&end) else {
                panic!("not an error end: {end:?}")
            };
            assert_eq!(e.kind, "TimeoutError", "{e:?}");
            assert!(read_frame(c).is_none(), "closed after it");
        }
        let cut_after = started.elapsed();
        wait_until("the daemon has let every stream go", || {
            d.connections() == 0
        });
        let after = d.wait_quiet();
        let grew_mib = after.peak_kib.saturating_sub(before.rss_kib) / 1024;
        eprintln!(
            "figure: {STREAMS} quiet streams with 1 MiB less a byte and 16 descriptors behind \
             each, idle timeout {idle:?}: all cut after {cut_after:?}; the daemon's peak grew \
             by {grew_mib} MiB, descriptors {fds_before} before and {} after",
            d.open_fds()
        );
        assert!(raw::all_closed(&writers), "every descriptor sent is closed");
        assert_eq!(d.open_fds(), fds_before);
        assert_eq!(after.threads, before.threads);
        // A quiet stream with nothing behind it is still not cut: the
        // stream above outlived no timeout of its own.
        let mut s = d.session();
        assert_eq!(s.commit::<String>("echo", ("still",)).unwrap(), "still");
    }

    #[test]
    fn a_subscriber_that_never_reads_blocks_no_publisher_and_learns_what_it_missed() {
        let d = Daemon::start(None);
        let before = d.wait_quiet();
        d.reset_peak();
        let mut slow = std::os::unix::net::UnixStream::connect(d.path()).unwrap();
        slow.set_read_timeout(Some(PATIENCE)).unwrap();
        slow.write_all(&stream_request("ticks", ())).unwrap();
        let mut s = d.session();
        wait_until("subscribed", || {
            s.commit::<usize>("subscribers", ()).unwrap() == 1
        });
        // 80 MiB published to a subscriber that reads nothing: the call
        // returns, it does not wait for the subscriber.
        let reached: usize = s.commit("publish", (20_000, 4096)).unwrap();
        assert_eq!(reached, 1);
        let grew_mib = (d.status().peak_kib.saturating_sub(before.rss_kib)) / 1024;
        assert!(grew_mib < 32, "the daemon grew by {grew_mib} MiB");
        // Reading at last: what was on its way, then the end with how
        // many events it missed.
        let mut items = 0u64;
        let missed = loop {
            let frame = read_frame(&mut slow).expect("the stream's end");
            match stream_reply::<String>(&frame) {
                StreamReply::Item(e) => {
                    assert_eq!(e.len(), 4096);
                    items += 1;
                }
                StreamReply::Err(e) => {
                    assert_eq!(e.kind, "Lagged", "{e}");
                    break e.data.unwrap();
                }
                other => panic!("{other:?}"),
            }
        };
        let anyd::Value::Map(entries) = missed else {
            panic!("{missed:?}")
        };
        let anyd::Value::Int(n) = entries[0].1 else {
            panic!("{entries:?}")
        };
        assert!(
            n > 0 && items + n as u64 <= 20_000,
            "{items} items, {n} missed"
        );
        assert_eq!(s.commit::<usize>("subscribers", ()).unwrap(), 0);
    }

    #[test]
    fn sigterm_ends_open_streams_with_a_clear_error() {
        let mut d = Daemon::start(None);
        let mut streams: Vec<ClientSession> = (0..3).map(|_| d.session()).collect();
        let mut iters: Vec<_> = streams
            .iter_mut()
            .map(|s| s.stream::<String>("ticks", ()).unwrap())
            .collect();
        let mut s = d.session();
        wait_until("subscribed", || {
            s.commit::<usize>("subscribers", ()).unwrap() == 3
        });
        drop(s);
        d.signal(Signal::TERM);
        for items in &mut iters {
            let e = items.next().unwrap().unwrap_err();
            let e = remote(&e);
            assert_eq!(
                (&*e.kind, &*e.message),
                ("Shutdown", "the daemon is shutting down")
            );
            assert!(items.next().is_none());
        }
        drop(iters);
        d.expect("STOPPED true");
        assert!(d.wait_exit().success());
    }

    #[test]
    fn many_streams_started_and_cancelled_leave_nothing_behind() {
        let d = Daemon::start(None);
        let before = d.wait_quiet();
        let mut s = d.session();
        for _ in 0..200 {
            for endpoint in ["quiet", "ticks"] {
                s.stream::<String>(endpoint, ()).unwrap().cancel().unwrap();
            }
            let mut flood = s.stream::<String>("flood", (16,)).unwrap();
            flood.next().unwrap().unwrap();
            flood.cancel().unwrap();
        }
        assert_eq!(s.commit::<usize>("open_channels", ()).unwrap(), 0);
        assert_eq!(s.commit::<usize>("subscribers", ()).unwrap(), 0);
        drop(s);
        let after = d.wait_quiet();
        assert_eq!(after.threads, before.threads);
        assert!(
            after.rss_kib < before.rss_kib + 8 * 1024,
            "{} KiB, then {} KiB",
            before.rss_kib,
            after.rss_kib
        );
    }
}

#[test]
fn streams_count_in_the_memory_budget() {
    // A budget that cannot hold one write of large items beyond the
    // per-connection allowance: the connection is closed, the daemon goes
    // on.
    let (d, _dir) = start(counting().memory_budget(1).api("big()", || {
        Items::from_iter(std::iter::repeat("y".repeat(1 << 20)))
    }));
    let mut c = raw(d.address());
    c.write_all(&stream_request("big", ())).unwrap();
    assert!(raw::closed_by_daemon(&mut c));
    let mut s = session(&d);
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

#[test]
fn a_source_that_never_waits_is_still_cancelled_and_shut_down() {
    let (d, _dir) = start(counting().api("endless()", || Items::ready(0..u64::MAX)));
    let mut s = session(&d);
    let mut items = s.stream::<u64>("endless", ()).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), 0);
    // Ended by the daemon, not by the client's patience.
    items.cancel().unwrap();
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
    let mut items = s.stream::<u64>("endless", ()).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), 0);
    let stopping = std::thread::spawn(move || d.shutdown());
    let last = items.find_map(Result::err).expect("an end");
    assert_eq!(remote(&last).kind, "Shutdown");
    stopping.join().unwrap().unwrap();
}

/// A value whose `Serialize` panics.
struct Treacherous(u64);

impl serde::Serialize for Treacherous {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(self.0 < 3, "cannot write {}", self.0);
        s.serialize_u64(self.0)
    }
}

#[test]
fn an_item_that_panics_as_it_is_written_ends_the_stream_with_an_error_not_half_a_frame() {
    let (d, _dir) = start(counting().api("treacherous()", || {
        Items::from_stream(IterStream((0..10).map(Treacherous)))
    }));
    let mut s = session(&d);
    let got: Vec<anyd::Result<u64>> = s.stream("treacherous", ()).unwrap().collect();
    let last = got.last().unwrap().as_ref().unwrap_err();
    assert_eq!(remote(last).kind, "RuntimeError", "{last}");
    assert!(got[..got.len() - 1].iter().all(Result::is_ok));
    // The session is in step.
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

/// The descriptors this process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn senders_that_outlive_their_streams_hold_no_descriptor() {
    let kept: Arc<Mutex<Vec<ItemSender<u64>>>> = Arc::default();
    let k = kept.clone();
    let (d, _dir) = start(counting().api("kept()", move || {
        let (tx, items) = anyd::channel();
        k.lock().unwrap().push(tx);
        items
    }));
    let mut s = session(&d);
    // One stream first: what serving streams opens once is opened. The
    // daemon closes a stream's eventfd after writing its end frame, so the
    // client may read that frame first; the connection serves its next
    // call only once the stream is wholly over, so a unary call's reply
    // says the first stream's eventfd is closed before the count is taken.
    s.stream::<u64>("kept", ()).unwrap().cancel().unwrap();
    assert_eq!(s.commit::<u64>("echo", (1,)).unwrap(), 1);
    let before = open_descriptors();
    for _ in 0..100 {
        s.stream::<u64>("kept", ()).unwrap().cancel().unwrap();
    }
    assert_eq!(kept.lock().unwrap().len(), 101);
    // The daemon drops a stream's source and closes its eventfd just
    // after the end frame is written, which the client may read first.
    wait_until("every stream's channel is closed", || {
        kept.lock().unwrap().iter().all(ItemSender::is_closed)
    });
    wait_until("the streams' descriptors are closed", || {
        open_descriptors() == before
    });
}

#[test]
fn a_handler_may_send_before_it_returns_but_not_more_than_the_channel_holds() {
    let (d, _dir) = start(
        counting()
            .api("snapshot_then_more()", || {
                let (tx, items) = anyd::channel();
                // The state as it is, sent before the stream starts...
                tx.send("snapshot".to_owned()).unwrap();
                // ... then what changes, from a thread.
                std::thread::spawn(move || tx.send("change".to_owned()));
                items
            })
            .api("too_much()", || {
                let (tx, items) = anyd::channel();
                for _ in 0..100 {
                    tx.send("z".repeat(1024)).unwrap();
                }
                items
            }),
    );
    let mut s = session(&d);
    let got: Vec<String> = s
        .stream("snapshot_then_more", ())
        .unwrap()
        .collect::<anyd::Result<_>>()
        .unwrap();
    assert_eq!(got, ["snapshot", "change"]);
    // More than the channel holds would wait for the stream, which starts
    // only once the handler returns: an error, not a connection hung.
    let got: Vec<anyd::Result<String>> = s.stream("too_much", ()).unwrap().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(remote(got[0].as_ref().unwrap_err()).kind, "RuntimeError");
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

#[test]
fn an_async_stream_dropped_mid_way_stops_the_daemon_s_producer_at_once() {
    let (d, _dir, polled, dropped) = forever_daemon();
    runtime().block_on(async {
        let mut s = AsyncClientSession::connect(d.address()).await.unwrap();
        let items = s.stream::<u64>("forever", ()).await.unwrap();
        wait_until("the daemon polls the stream", || {
            polled.load(Ordering::SeqCst)
        });
        drop(items);
        // No further call: the drop itself sent the cancel.
        wait_until("the daemon drops the producer", || {
            dropped.load(Ordering::SeqCst)
        });
        // The next call reads the end frame first, and is answered.
        assert_eq!(s.commit::<u64>("echo", (7,)).await.unwrap(), 7);
    });
}
