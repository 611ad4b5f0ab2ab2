//! The session's state machine driven through every transition, with a
//! dummy connection and no socket: what each event does in each state,
//! the events out of turn refused, and what `Debug` shows.

use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::RemoteError;

mod owed;
mod table;

use table::{in_state, CANCELLED, CLOSED, STATES, STREAM};

fn session() -> Session<()> {
    Session::new((), ClientOptions::default(), false)
}

/// The exchange of a call that needs no question first.
fn sent<C>(start: Start<'_, C>) -> Exchange<'_, C> {
    match start {
        Start::Call(ex) => ex,
        Start::Ask(_) => panic!("asked the daemon's version first"),
    }
}

#[test]
fn a_call_abandoned_before_its_reply_closes_the_session() {
    let mut s = session();
    let ex = sent(s.call("echo", &("hi",), &(), false).unwrap());
    assert!(!ex.request.is_empty());
    // Its reply never read: the next call would get it.
    assert!(matches!(
        s.call("echo", &("hi",), &(), false),
        Err(Error::Closed)
    ));
    assert!(s.conn().is_none());
    assert!(s.end().is_none());
}

#[test]
fn failures_close_the_session_but_remote_errors_and_wrong_types_do_not() {
    let mut s = session();
    s.call("f", &(), &(), false).unwrap();
    let remote = Reply::<()>::Err(RemoteError::new("ValueError", "no"));
    assert!(matches!(s.finish_call(Ok(remote)), Err(Error::Remote(_))));
    s.call("f", &(), &(), false).unwrap();
    let wrong = Error::ResultType("not a string".into());
    assert!(matches!(
        s.finish_call::<()>(Err(wrong)),
        Err(Error::ResultType(_))
    ));
    s.call("f", &(), &(), false).unwrap();
    assert!(matches!(s.finish_call(Ok(Reply::Ok(1))), Ok(1)));
    s.call("f", &(), &(), false).unwrap();
    assert!(s.finish_call::<()>(Err(Error::Timeout("waiting"))).is_err());
    assert!(matches!(s.call("f", &(), &(), false), Err(Error::Closed)));
}

#[test]
fn a_daemon_that_ends_the_session_closes_it() {
    let mut s = session();
    s.call("f", &(), &(), false).unwrap();
    assert!(s.finish_call::<()>(Ok(Reply::EndSession)).is_err());
    assert!(s.take_for_end().is_none());
}

#[test]
fn only_the_echo_of_sigends_ends_a_session_well() {
    let mut s = session();
    s.end().unwrap();
    assert!(s.finish_end(Ok(Reply::EndSession)).is_ok());
    assert!(s.end().is_none());
    let mut s = session();
    s.end().unwrap();
    assert!(s.finish_end(Ok(Reply::Ok(IgnoredAny))).is_err());
    assert!(s.conn().is_none());
}

/// A connection that says when it is dropped: the socket closing.
#[derive(Debug)]
struct Conn(Rc<Cell<bool>>);

impl Drop for Conn {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A session on a [`Conn`], and whether that was dropped.
fn watched() -> (Session<Conn>, Rc<Cell<bool>>) {
    let dropped = Rc::new(Cell::new(false));
    let conn = Conn(dropped.clone());
    (Session::new(conn, ClientOptions::default(), false), dropped)
}

#[test]
fn a_call_and_a_streaming_call_while_a_stream_is_open_are_refused_saying_so() {
    for state in [STREAM, CANCELLED] {
        let mut s = in_state(state);
        let Err(Error::Protocol { what, .. }) = s.call("f", &(), &(), false) else {
            panic!("a call while {state} was not refused");
        };
        assert!(what.contains("while a stream is open"), "{what}");
        assert!(matches!(
            s.call_stream("f", &(), &(), false),
            Err(Error::Protocol { .. })
        ));
        // Still open, and still to be read to its end.
        assert_eq!(s.state.describe(), state);
        assert!(s.is_streaming());
        assert!(s.cancel().is_some());
        assert!(s.stream_step::<()>(Step::End).is_none());
        assert!(s.call("f", &(), &(), false).is_ok());
    }
}

#[test]
fn events_out_of_turn_close_the_session_saying_what_came_when() {
    let refused = |s: &mut Session<()>, what: &str| {
        assert_eq!(s.state.describe(), CLOSED);
        assert!(s.conn().is_none(), "{what}");
    };
    let mut s = in_state("idle");
    let Err(Error::Protocol { what, .. }) = s.finish_call(Ok(Reply::Ok(()))) else {
        panic!("a reply with no call was taken");
    };
    assert_eq!(what, "a call's reply while idle");
    refused(&mut s, &what);

    let mut s = in_state("a call under way");
    let Err(Error::Protocol { what, .. }) = s.stream_sent() else {
        panic!("a unary call opened a stream");
    };
    assert_eq!(what, "a stream's request sent while a call under way");
    refused(&mut s, &what);

    let mut s = in_state("a call under way");
    let Some(Err(Error::Protocol { what, .. })) = s.stream_step(Step::Item(1)) else {
        panic!("an item with no stream open was taken");
    };
    assert_eq!(what, "a stream's frame while a call under way");
    refused(&mut s, &what);

    let mut s = in_state("ending the session");
    let Err(Error::Protocol { what, .. }) = s.finish_call(Ok(Reply::Ok(()))) else {
        panic!("SIGENDS's reply was taken as a call's");
    };
    assert_eq!(what, "a call's reply while ending the session");
    refused(&mut s, &what);

    let mut s = in_state("a call under way");
    let Err(Error::Protocol { what, .. }) = s.finish_end(Ok(Reply::EndSession)) else {
        panic!("a call's reply was taken as SIGENDS's");
    };
    assert_eq!(
        what,
        "the reply to the end of the session while a call under way"
    );
    refused(&mut s, &what);
}

#[test]
fn a_stream_goes_on_through_items_and_wrong_types_and_ends_idle() {
    let mut s = session();
    let ex = sent(s.call_stream("watch", &(), &(), false).unwrap());
    assert!(!ex.request.is_empty());
    assert!(!s.is_streaming(), "not open before its request is out");
    s.stream_sent().unwrap();
    assert!(s.is_streaming());
    assert!(!s.is_cancel_sent());
    assert!(matches!(s.stream_step(Step::Item(1)), Some(Ok(1))));
    let wrong = Step::<u8>::WrongType(Error::ResultType("x".into()));
    assert!(matches!(
        s.stream_step(wrong),
        Some(Err(Error::ResultType(_)))
    ));
    assert!(s.is_streaming());
    assert!(s.stream_step::<u8>(Step::End).is_none());
    assert!(!s.is_streaming());
    // In step: the next call goes.
    s.call("f", &(), &(), false).unwrap();
    assert!(matches!(s.finish_call(Ok(Reply::Ok(2))), Ok(2)));
}

#[test]
fn a_stream_that_fails_ends_idle_and_one_that_breaks_closes() {
    let (mut s, dropped) = watched();
    s.call_stream("watch", &(), &(), false).unwrap();
    s.stream_sent().unwrap();
    let failed = Step::<()>::Failed(Error::Remote(RemoteError::new("ValueError", "no")));
    assert!(matches!(s.stream_step(failed), Some(Err(Error::Remote(_)))));
    assert_eq!(s.state.describe(), "idle");
    s.call_stream("watch", &(), &(), false).unwrap();
    s.stream_sent().unwrap();
    assert!(!dropped.get());
    let broken = Step::<()>::Broken(Error::protocol("cut"));
    assert!(matches!(
        s.stream_step(broken),
        Some(Err(Error::Protocol { .. }))
    ));
    assert!(dropped.get(), "the socket closes with the session");
    assert!(matches!(s.call("f", &(), &(), false), Err(Error::Closed)));
}

#[test]
fn a_cancelled_stream_is_read_to_its_end() {
    let mut s = session();
    assert!(s.cancel().is_none(), "no stream, no CANCEL");
    s.call_stream("watch", &(), &(), false).unwrap();
    s.stream_sent().unwrap();
    let cancel = s.cancel().unwrap();
    assert!(!cancel.request.is_empty());
    assert!(!s.is_cancel_sent(), "framed is not sent");
    s.cancel_went_out();
    assert!(s.is_cancel_sent());
    // What was on its way still comes, then the end.
    assert!(matches!(s.stream_step(Step::Item(1)), Some(Ok(1))));
    assert!(s.is_cancel_sent());
    assert!(s.stream_step::<u8>(Step::End).is_none());
    assert!(!s.is_streaming());
    assert!(!s.is_cancel_sent());
}

#[test]
fn a_streaming_request_abandoned_or_failed_half_written_closes_the_session() {
    let mut s = session();
    s.call_stream("watch", &(), &(), false).unwrap();
    // Never written whole (an async caller dropped): out of step.
    assert!(matches!(s.call("f", &(), &(), false), Err(Error::Closed)));
    let mut s = session();
    s.call_stream("watch", &(), &(), false).unwrap();
    // The driver's write failed.
    s.close();
    assert!(matches!(
        s.call_stream("watch", &(), &(), false),
        Err(Error::Closed)
    ));
}

#[test]
fn streams_need_a_codec_that_has_them_and_the_session_stays_usable() {
    let options = ClientOptions::default().codec(anyd_wire::Codec::Pickle);
    let mut s = Session::new((), options, false);
    assert!(matches!(
        s.call_stream("watch", &(), &(), false),
        Err(Error::Encode(_))
    ));
    assert_eq!(s.state.describe(), "idle");
    s.call("f", &(), &(), false).unwrap();
}

#[test]
fn take_for_end_hands_over_an_idle_connection_and_only_that() {
    let (mut s, dropped) = watched();
    let (conn, sigends) = s.take_for_end().unwrap();
    assert!(!dropped.get(), "handed over, not closed");
    assert!(!sigends.is_empty());
    assert_eq!(s.state.describe(), CLOSED);
    assert!(s.end().is_none());
    drop(conn);
    assert!(dropped.get());
    for busy in ["a call under way", STREAM, CANCELLED] {
        let mut s = in_state(busy);
        assert!(s.take_for_end().is_none(), "{busy}");
        assert!(s.conn().is_none());
    }
}

#[test]
fn closing_drops_the_connection_and_closed_is_the_end() {
    let (mut s, dropped) = watched();
    s.call("f", &(), &(), false).unwrap();
    assert!(s.finish_call::<()>(Err(Error::Timeout("waiting"))).is_err());
    assert!(dropped.get());
    assert!(matches!(s.call("f", &(), &(), false), Err(Error::Closed)));
    assert!(matches!(
        s.call_stream("f", &(), &(), false),
        Err(Error::Closed)
    ));
    assert!(s.end().is_none());
    assert!(s.cancel().is_none());
    assert!(s.take_for_end().is_none());
    assert!(s.reading().is_none());
    assert!(!s.is_streaming());
    s.close();
    assert_eq!(s.state.describe(), CLOSED);
}

#[test]
fn debug_shows_the_state_and_the_request_s_length_not_its_bytes() {
    let mut s = in_state("idle");
    let shown = format!("{s:?}");
    assert!(shown.contains(r#"state: "idle""#), "{shown}");
    assert!(shown.contains("connected: true, in_flight: false, streaming: false"));
    s.call("f", &("zq5-secret-argument",), &(), false).unwrap();
    let shown = format!("{s:?}");
    assert!(shown.contains(r#"state: "a call under way""#), "{shown}");
    assert!(shown.contains("in_flight: true"));
    assert!(!shown.contains("zq5"), "{shown}");
    assert!(shown.contains(&format!("request_len: {}", s.out.len())));
    for state in STATES {
        let shown = format!("{:?}", in_state(state));
        assert!(shown.contains(&format!("state: {state:?}")), "{shown}");
        assert_eq!(
            shown.contains("streaming: true"),
            [STREAM, CANCELLED].contains(&state)
        );
        assert_eq!(shown.contains("connected: false"), state == CLOSED);
    }
}
