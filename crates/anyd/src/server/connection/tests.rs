//! The connection's core driven frame by frame, with no socket, no thread
//! of its own and no clock but the instants the tests pass in: each test
//! is the daemon's side of one conversation.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use anyd_wire::codec::{self, DecodeLimits};
use anyd_wire::message::{Reply, StreamReply};
use anyd_wire::{frame, Codec};

use super::streaming::GATHER_FROM;
use super::*;
use crate::admission::{Connections, Limits};
use crate::budget::Budget;
use crate::items::Items;
use crate::server::{Appd, Logs};

/// A daemon's shared state, as `bind` makes it, for `appd`'s endpoints,
/// with `budget` bytes of memory budget.
fn shared(appd: Appd, budget: usize) -> Shared {
    let mut registry = appd.registry;
    registry.resolve_policies(0).unwrap();
    let (_read, wake_tx) = rustix::pipe::pipe().unwrap();
    Shared {
        registry,
        config: appd.config,
        stopping: AtomicBool::new(false),
        wake_tx,
        conns: Arc::new(Mutex::new(Connections::new(Limits::resolve(
            16, None, None, 4, true,
        )))),
        conns_changed: Condvar::new(),
        next_id: AtomicU64::new(0),
        budget: Arc::new(Budget::new(budget)),
        fd_budget: None,
        serving_uid: 0,
        logs: Logs::default(),
    }
}

/// This process as the caller: the core reads a peer's credentials only
/// for the policy and the log, so any peer does; a socket pair is the
/// one way to have the kernel make one.
fn peer() -> Peer {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    Peer::of(&crate::transport::Stream::Unix(a))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn daemon() -> Appd {
    Appd::new()
        .idle_timeout(Some(Duration::from_secs(2)))
        .api("echo(a)", |a: u64| a)
        .api("blob(n)", |n: usize| "x".repeat(n))
        .api("count(n)", |n: u64| Items::ready(0..n))
        .api("quiet()", || sent(0))
}

fn request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_request(Codec::MsgPack, endpoint, &args, &(), &mut out).unwrap();
    out
}

fn stream_request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_stream_request(Codec::MsgPack, endpoint, &args, &(), &mut out).unwrap();
    out
}

fn cancel() -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_cancel(Codec::MsgPack, &mut out).unwrap();
    out
}

/// The payloads of the frames the core has to write; they count as
/// written.
fn written(core: &mut Connection<'_>) -> Vec<Vec<u8>> {
    let (mut out, _) = core.output();
    let mut frames = Vec::new();
    while let Some(f) = frame::decode(out, usize::MAX).unwrap() {
        frames.push(out[f.payload].to_vec());
        out = &out[f.consumed..];
    }
    assert!(out.is_empty(), "whole frames only");
    core.written();
    frames
}

fn reply<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Reply<T> {
    codec::decode_reply(Codec::MsgPack, payload, &DecodeLimits::default()).unwrap()
}

fn item(payload: &[u8]) -> StreamReply<u64> {
    codec::decode_stream_reply(Codec::MsgPack, payload, &DecodeLimits::default()).unwrap()
}

fn error_kind(payload: &[u8]) -> String {
    match item(payload) {
        StreamReply::Err(e) => e.kind,
        other => panic!("not an error: {other:?}"),
    }
}

/// Fills the stream once, with a waker that does nothing: the tests look
/// at what the core says, not at wake-ups.
fn fill(core: &mut Connection<'_>) -> StreamNext {
    core.fill_stream(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn pipelined_requests_are_answered_in_order_and_written_together() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    for n in 1..=3u64 {
        assert_eq!(
            core.on_frame(&request("echo", (n,)), None, Behind::default()),
            Next::Continue
        );
    }
    let replies: Vec<u64> = written(&mut core)
        .iter()
        .map(|p| match reply(p) {
            Reply::Ok(v) => v,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(replies, [1, 2, 3]);
    assert!(!core.has_output());
}

#[test]
fn replies_are_written_once_they_fill_a_write() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    let half = FLUSH_AT / 2;
    assert_eq!(
        core.on_frame(&request("blob", (half,)), None, Behind::default()),
        Next::Continue
    );
    assert_eq!(
        core.on_frame(&request("blob", (half,)), None, Behind::default()),
        Next::Flush
    );
    assert_eq!(written(&mut core).len(), 2);
}

#[test]
fn replies_the_memory_budget_cannot_hold_end_the_session_unsent() {
    let (shared, peer, rt) = (shared(daemon(), 1024), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    // Within the allowance: never counted.
    assert_eq!(
        core.on_frame(&request("blob", (1000,)), None, Behind::default()),
        Next::Continue
    );
    core.written();
    // Beyond it by more than the budget holds.
    let next = core.on_frame(
        &request("blob", (REPLY_ALLOWANCE + 4096,)),
        None,
        Behind::default(),
    );
    assert_eq!(
        next,
        Next::End {
            reason: End::OverBudget,
            flush: false
        }
    );
}

#[test]
fn the_end_of_session_is_answered_and_ends_it() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    let mut sigends = Vec::new();
    codec::encode_end_session(Codec::MsgPack, &mut sigends);
    let next = core.on_frame(&sigends, None, Behind::default());
    assert_eq!(
        next,
        Next::End {
            reason: End::SessionEnded,
            flush: true
        }
    );
    assert_eq!(written(&mut core), [sigends]);
}

#[test]
fn a_malformed_request_gets_an_error_and_an_unreadable_one_ends_the_session() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    // MessagePack (its first byte says so), but not a request.
    assert_eq!(
        core.on_frame(&[0x93, 0xc1], None, Behind::default()),
        Next::Continue
    );
    let Reply::Err::<()>(e) = reply(&written(&mut core)[0]) else {
        panic!("not an error reply")
    };
    assert_eq!(e.kind, "ValueError");
    // No codec to answer in.
    let next = core.on_frame(&[], None, Behind::default());
    assert!(
        matches!(
            next,
            Next::End {
                reason: End::UnreadableMessage,
                ..
            }
        ),
        "{next:?}"
    );
}

#[test]
fn a_stream_sends_its_items_then_its_end_and_the_session_goes_on() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("count", (3,)), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Done);
    let frames: Vec<StreamReply<u64>> = written(&mut core).iter().map(|p| item(p)).collect();
    assert_eq!(
        frames,
        [
            StreamReply::Item(0),
            StreamReply::Item(1),
            StreamReply::Item(2),
            StreamReply::End
        ]
    );
    // A cancel that crossed the end of its stream is not answered.
    assert_eq!(
        core.on_frame(&cancel(), None, Behind::default()),
        Next::Continue
    );
    assert!(!core.has_output());
    assert_eq!(
        core.on_frame(&request("echo", (7,)), None, Behind::default()),
        Next::Continue
    );
    assert!(matches!(reply(&written(&mut core)[0]), Reply::Ok(7u64)));
}

/// A channel of `n` items sent before the handler returns, its sender
/// kept (forgotten) so that the stream waits after them rather than end.
fn sent(n: u64) -> Items<u64> {
    let (tx, items) = crate::items::channel::<u64>();
    for i in 0..n {
        tx.send(i).unwrap();
    }
    std::mem::forget(tx);
    items
}

/// `n` items ready to the connection's poll, then a wait without end.
struct ThenPending(std::ops::Range<u64>);

impl futures_core::Stream for ThenPending {
    type Item = u64;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> std::task::Poll<Option<u64>> {
        self.0.next().map_or(std::task::Poll::Pending, |i| {
            std::task::Poll::Ready(Some(i))
        })
    }
}

#[test]
fn a_fast_run_from_a_thread_of_its_own_is_gathered_a_few_items_are_not() {
    let appd = daemon()
        .api("sent(n)", sent)
        .api("polled(n)", |n: u64| Items::from_stream(ThenPending(0..n)));
    let (shared, peer, rt) = (shared(appd, 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    let start = |core: &mut Connection<'_>, endpoint: &str, n: u64| {
        assert_eq!(
            core.on_frame(&stream_request(endpoint, (n,)), None, Behind::default()),
            Next::Stream
        );
    };
    let cancelled = |core: &mut Connection<'_>| {
        assert_eq!(
            core.stream_wait(Some(&cancel()), false, Instant::now()),
            StreamWait::Cancelled
        );
        written(core);
    };
    // Each u64 item is a frame of about a dozen bytes: 100 of them make
    // more than GATHER_FROM, 10 fewer.
    start(&mut core, "sent", 100);
    assert_eq!(fill(&mut core), StreamNext::Gather);
    assert!(core.output().0.len() >= GATHER_FROM);
    assert_eq!(written(&mut core).len(), 100);
    // Nothing more came: the next wait is the source's wake.
    assert_eq!(fill(&mut core), StreamNext::Wait);
    cancelled(&mut core);

    start(&mut core, "sent", 10);
    assert_eq!(fill(&mut core), StreamNext::Wait);
    assert_eq!(written(&mut core).len(), 10);
    cancelled(&mut core);

    // Items the connection polls come when it asks: never gathered.
    start(&mut core, "polled", 100);
    assert_eq!(fill(&mut core), StreamNext::Wait);
    assert_eq!(written(&mut core).len(), 100);
}

#[test]
fn a_cancel_ends_a_waiting_stream() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("quiet", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Wait);
    let now = Instant::now();
    assert_eq!(
        core.stream_wait(None, false, now),
        StreamWait::Wait {
            read: true,
            due: None
        }
    );
    assert_eq!(
        core.stream_wait(Some(&cancel()), false, now),
        StreamWait::Cancelled
    );
    assert_eq!(error_kind(&written(&mut core)[0]), "Cancelled");
}

#[test]
fn a_request_behind_a_stream_waits_unread_for_its_end() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("quiet", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Wait);
    let behind = request("echo", (5,));
    let now = Instant::now();
    // Not a cancel: the reading stops, and only the socket's close counts.
    let wait = StreamWait::Wait {
        read: false,
        due: None,
    };
    assert_eq!(core.stream_wait(Some(&behind), false, now), wait);
    // Even a cancel after it is not looked at: it is a request's turn.
    assert_eq!(core.stream_wait(Some(&cancel()), false, now), wait);
    // Nor is a frame in progress then given a deadline: nothing is read.
    assert_eq!(core.stream_wait(None, true, now), wait);
}

#[test]
fn a_frame_in_progress_behind_a_stream_is_due_within_the_idle_timeout() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("quiet", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Wait);
    let seen = Instant::now();
    let due = seen + Duration::from_secs(2);
    let waiting = StreamWait::Wait {
        read: true,
        due: Some(due),
    };
    assert_eq!(core.stream_wait(None, true, seen), waiting);
    // More of it later: still due when it was first seen.
    let later = seen + Duration::from_secs(1);
    assert_eq!(core.stream_wait(None, true, later), waiting);
    assert_eq!(core.stream_wait(None, true, due), StreamWait::Overdue);
    assert_eq!(error_kind(&written(&mut core)[0]), "TimeoutError");
}

#[test]
fn a_frame_completed_in_time_clears_its_deadline() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("quiet", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Wait);
    let seen = Instant::now();
    assert!(matches!(
        core.stream_wait(None, true, seen),
        StreamWait::Wait { due: Some(_), .. }
    ));
    // The bytes of a frame in progress that turns out to be a cancel.
    let end = seen + Duration::from_secs(1);
    assert_eq!(
        core.stream_wait(Some(&cancel()), false, end),
        StreamWait::Cancelled
    );
}

#[test]
fn shutdown_mid_stream_tells_the_client_and_a_client_gone_is_told_nothing() {
    let (shared, peer, rt) = (shared(daemon(), 1 << 20), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("quiet", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Wait);
    assert_eq!(core.stream_gone(true), End::ShuttingDown);
    assert_eq!(error_kind(&written(&mut core)[0]), "Shutdown");

    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("quiet", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::Wait);
    assert_eq!(core.stream_gone(false), End::ClosedByClient);
    assert!(!core.has_output());
}

#[test]
fn stream_items_count_in_the_memory_budget() {
    let appd = daemon().api("big()", || {
        Items::ready(std::iter::repeat_n("x".repeat(200 * 1024), 4))
    });
    let (shared, peer, rt) = (shared(appd, 1024), peer(), runtime());
    let mut core = Connection::new(&shared, &peer, rt.handle());
    assert_eq!(
        core.on_frame(&stream_request("big", ()), None, Behind::default()),
        Next::Stream
    );
    assert_eq!(fill(&mut core), StreamNext::End(End::OverBudget));
}
