//! Calls given up on half way (an async call's future dropped), what they
//! owe and in which order, and what a call carries beyond its arguments
//! (deadline, trace context) against what the daemon reads.

use std::time::{Duration, Instant};

use anyd_wire::codec::{decode_request, DecodeLimits, RequestOptions};
use anyd_wire::message::Incoming;

use super::*;
use crate::client::session::extras::Knows;
use crate::client::session::state::{Owed, Phase};

/// A daemon that reads a CANCEL behind a unary call, and the options.
const READS_ALL: Knows = Knows {
    timeout_ms: true,
    traceparent: true,
    tracestate: true,
    cancel: true,
};

/// The endpoint and options of a framed request.
fn request_of(frame: &[u8]) -> (String, RequestOptions) {
    match decode_request(&frame[4..], &DecodeLimits::default()).unwrap() {
        Incoming::Request(r) => (r.endpoint.into_owned(), r.options),
        other => panic!("not a request: {other:?}"),
    }
}

/// Whether `frame` is a CANCEL.
fn is_cancel(frame: &[u8]) -> bool {
    matches!(
        decode_request(&frame[4..], &DecodeLimits::default()),
        Ok(Incoming::Cancel(_))
    )
}

/// A session with a timeout of `t`, whose daemon reads `knows`.
fn knowing(knows: Option<Knows>, t: Option<Duration>) -> Session<()> {
    let mut s = Session::new((), ClientOptions::default().timeout(t), false);
    s.knows = knows;
    s
}

#[test]
fn a_call_given_up_on_owes_its_cancel_then_its_reply_then_the_session_goes_on() {
    let mut s = knowing(Some(READS_ALL), None);
    let ex = sent(s.call("slow", &(), &(), false).unwrap());
    *ex.written = ex.request.len();
    assert!(s.abandon());
    assert!(s.owes() && !s.owes_reply());
    let ex = s.owed_write().unwrap();
    assert!(is_cancel(ex.request), "a CANCEL is owed first");
    assert_eq!(*ex.written, 0);
    *ex.written = ex.request.len();
    s.owed_written();
    assert!(s.owed_write().is_none());
    assert!(s.owes_reply());
    // Not in step until the reply is read: a call now would get it.
    s.owed_reply(Ok(true), None).unwrap();
    assert!(!s.owes());
    let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
    assert_eq!(request_of(ex.request).0, "echo");
}

#[test]
fn a_daemon_that_reads_no_cancel_is_owed_only_the_reply() {
    for knows in [None, Some(Knows::NOTHING)] {
        let mut s = knowing(knows, None);
        let ex = sent(s.call("slow", &(), &(), false).unwrap());
        *ex.written = ex.request.len();
        assert!(s.abandon());
        assert!(s.owed_write().is_none(), "{knows:?}");
        assert!(s.owes_reply());
    }
}

#[test]
fn half_a_request_is_finished_before_its_cancel() {
    let mut s = knowing(Some(READS_ALL), None);
    let ex = sent(s.call("slow", &("an argument",), &(), false).unwrap());
    let whole = ex.request.to_vec();
    *ex.written = 3;
    assert!(s.abandon());
    assert_eq!(s.state.phase(), Some(Phase::Owed(Owed::Request)));
    // The rest, from where the write stopped, in two goes.
    let ex = s.owed_write().unwrap();
    assert_eq!(ex.request, &whole[..]);
    assert_eq!(*ex.written, 3);
    *ex.written = 5;
    s.owed_written();
    assert_eq!(s.state.phase(), Some(Phase::Owed(Owed::Request)));
    let ex = s.owed_write().unwrap();
    *ex.written = whole.len();
    s.owed_written();
    let ex = s.owed_write().unwrap();
    assert!(is_cancel(ex.request));
}

#[test]
fn a_call_none_of_whose_bytes_went_out_owes_nothing() {
    let mut s = knowing(Some(READS_ALL), None);
    s.call("slow", &(), &(), false).unwrap();
    assert!(!s.abandon());
    assert!(!s.owes());
    assert_eq!(s.state.describe(), "idle");
    sent(s.call("echo", &(), &(), false).unwrap());
    // Finished calls leave nothing to give up.
    assert!(s.finish_call(Ok(Reply::Ok(()))).is_ok());
    assert!(!s.abandon());
}

#[test]
fn an_owed_reply_that_does_not_come_closes_the_session() {
    let mut s = knowing(None, None);
    let ex = sent(s.call("slow", &(), &(), false).unwrap());
    *ex.written = ex.request.len();
    s.abandon();
    assert!(s.owed_reply(Ok(false), None).is_err());
    assert!(s.conn().is_none());
}

#[test]
fn a_session_with_no_timeout_asks_nothing_and_sends_nothing_new() {
    let mut s = session();
    let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
    assert_eq!(ex.wait, Wait::Session);
    assert_eq!(request_of(ex.request).1, RequestOptions::NONE);
    assert!(s.knows.is_none());
}

#[test]
fn a_timeout_asks_the_daemon_once_and_goes_only_where_it_is_read() {
    let t = Duration::from_millis(1500);
    let mut s = knowing(None, Some(t));
    let Start::Ask(ex) = s.call("echo", &(1,), &(), false).unwrap() else {
        panic!("sent a timeout to a daemon not asked");
    };
    let (endpoint, options) = request_of(ex.request);
    assert_eq!(endpoint, "anyd.version");
    assert_eq!(options, RequestOptions::NONE);
    // An older daemon: no list of options.
    let old = Reply::Err(crate::RemoteError::new(
        "NotImplementedError",
        "anyd.version",
    ));
    s.learned(Ok(old)).unwrap();
    let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
    assert_eq!(request_of(ex.request).1, RequestOptions::NONE);
    assert_eq!(ex.limit(), Some(local_wait(t)), "still waited for");
    s.finish_call(Ok(Reply::Ok(()))).unwrap();
    // One that reads it.
    s.knows = Some(READS_ALL);
    let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
    let timeout = request_of(ex.request).1.timeout_ms.map(|t| t.millis());
    assert_eq!(timeout, Some(1500));
}

#[test]
fn pickle_never_asks_and_keeps_its_timeout_to_itself() {
    let options = ClientOptions::default()
        .codec(anyd_wire::Codec::Pickle)
        .timeout(Some(Duration::from_secs(1)));
    let mut s = Session::new((), options, false);
    let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
    assert_eq!(ex.limit(), Some(local_wait(Duration::from_secs(1))));
    assert!(s.knows.is_none());
}

#[cfg(feature = "server")]
#[test]
fn a_call_made_while_a_handler_serves_one_inherits_its_deadline_and_trace() {
    use crate::context::{Context, Watch};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let served = Context::new(
        Some(Instant::now() + Duration::from_secs(30)),
        Some(parent.into()),
        Some("k=v".into()),
        Watch::new(None, &[]),
        rt.handle().clone(),
    );
    let mut s = knowing(Some(READS_ALL), Some(Duration::from_secs(60)));
    let (options, limit) =
        crate::frame_context::with_call(anyd_wire::Codec::MsgPack, Some(&served), || {
            let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
            (request_of(ex.request).1, ex.limit())
        });
    let ms = options.timeout_ms.unwrap().millis();
    assert!((29_000..=30_000).contains(&ms), "{ms}");
    assert!(limit.unwrap() < local_wait(Duration::from_secs(31)));
    let child = options.traceparent.unwrap();
    assert!(
        child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{child}"
    );
    assert!(child.ends_with("-01"));
    assert_ne!(&*child, parent, "the served call is the parent");
    assert_eq!(options.tracestate.as_deref(), Some("k=v"));
    s.finish_call(Ok(Reply::Ok(()))).unwrap();
    // Out of the handler: the session's own timeout, no trace.
    let ex = sent(s.call("echo", &(1,), &(), false).unwrap());
    let options = request_of(ex.request).1;
    assert_eq!(options.timeout_ms.map(|t| t.millis()), Some(60_000));
    assert!(options.traceparent.is_none());
}
