//! The session's state machine as a table: every event in every state,
//! and the state it leaves.

use super::*;
use crate::client::session::extras::Knows;

pub(super) const IDLE: &str = "idle";
pub(super) const CALL: &str = "a call under way";
pub(super) const ASK: &str = "asking the daemon's version";
pub(super) const SREQ: &str = "a streaming call's request under way";
pub(super) const END: &str = "ending the session";
pub(super) const STREAM: &str = "a stream open";
pub(super) const CANCELLED: &str = "a stream open, its cancel sent";
pub(super) const OWE_REQ: &str = "a call given up on, its request half sent";
pub(super) const OWE_CANCEL: &str = "a call given up on, its cancel to send";
pub(super) const OWE_REPLY: &str = "a call given up on, its reply to discard";
pub(super) const CLOSED: &str = "closed";

/// The states a session can be in, by how to get there from a new one.
pub(super) const STATES: [&str; 11] = [
    IDLE, CALL, ASK, SREQ, END, STREAM, CANCELLED, OWE_REQ, OWE_CANCEL, OWE_REPLY, CLOSED,
];

/// A daemon that reads a CANCEL behind a unary call, and the options.
const READS_ALL: Knows = Knows {
    timeout_ms: true,
    traceparent: true,
    tracestate: true,
    cancel: true,
};

/// A session in the state `STATES` names, driven there as the drivers
/// drive it, with a daemon that reads everything (but for the state of
/// asking it what it reads).
pub(super) fn in_state(name: &str) -> Session<()> {
    let mut s = session();
    s.knows = Some(READS_ALL);
    match name {
        IDLE => {}
        CALL => {
            s.call("f", &(), &(), false).unwrap();
        }
        ASK => {
            s.knows = None;
            s.set_timeout(Some(Duration::from_secs(1)));
            assert!(matches!(
                s.call("f", &(), &(), false).unwrap(),
                Start::Ask(_)
            ));
        }
        SREQ => {
            s.call_stream("f", &(), &(), false).unwrap();
        }
        END => {
            s.end().unwrap();
        }
        STREAM => {
            s.call_stream("f", &(), &(), false).unwrap();
            s.stream_sent().unwrap();
        }
        CANCELLED => {
            s.call_stream("f", &(), &(), false).unwrap();
            s.stream_sent().unwrap();
            s.cancel().unwrap();
            s.cancel_went_out();
        }
        OWE_REQ | OWE_CANCEL | OWE_REPLY => {
            s.call("f", &(), &(), false).unwrap();
            s.written = if name == OWE_REQ { 1 } else { s.out.len() };
            assert!(s.abandon());
            if name == OWE_REPLY {
                s.written = s.out.len();
                s.owed_written();
            }
        }
        CLOSED => s.close(),
        _ => unreachable!("{name}"),
    }
    assert_eq!(s.state.describe(), name);
    s
}

/// What an event does to a session in each state: the state it leaves,
/// in the order of `STATES`.
struct Event {
    name: &'static str,
    run: fn(&mut Session<()>),
    then: [&'static str; 11],
}

/// Every event, in every state. A call started while one is under way
/// closes the session (the first call's reply would answer it), and so
/// does one while a call given up on still owes something (the driver
/// settles that first); one started while a stream is open is refused
/// and the stream stays; an event that comes out of turn closes the
/// session.
const EVENTS: &[Event] = &[
    Event {
        name: "call",
        run: |s| {
            let _ = s.call("f", &(), &(), false);
        },
        #[rustfmt::skip]
        then: [CALL, CLOSED, CLOSED, CLOSED, CLOSED, STREAM, CANCELLED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "call_stream",
        run: |s| {
            let _ = s.call_stream("f", &(), &(), false);
        },
        #[rustfmt::skip]
        then: [SREQ, CLOSED, CLOSED, CLOSED, CLOSED, STREAM, CANCELLED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "end",
        run: |s| {
            let _ = s.end();
        },
        #[rustfmt::skip]
        then: [END, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "stream_sent",
        run: |s| {
            let _ = s.stream_sent();
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, STREAM, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "cancel",
        run: |s| {
            let _ = s.cancel();
        },
        then: STATES,
    },
    Event {
        name: "cancel_went_out",
        run: |s| s.cancel_went_out(),
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CANCELLED, CANCELLED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "stream_step(Item)",
        run: |s| {
            let _ = s.stream_step(Step::Item(()));
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, STREAM, CANCELLED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "stream_step(WrongType)",
        run: |s| {
            let _ = s.stream_step::<()>(Step::WrongType(Error::ResultType("x".into())));
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, STREAM, CANCELLED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "stream_step(End)",
        run: |s| {
            let _ = s.stream_step::<()>(Step::End);
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, IDLE, IDLE, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "stream_step(Failed)",
        run: |s| {
            let e = Error::Remote(RemoteError::new("ValueError", "no"));
            let _ = s.stream_step::<()>(Step::Failed(e));
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, IDLE, IDLE, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "stream_step(Broken)",
        run: |s| {
            let _ = s.stream_step::<()>(Step::Broken(Error::protocol("x")));
        },
        then: [CLOSED; 11],
    },
    Event {
        name: "finish_call(Ok)",
        run: |s| {
            let _ = s.finish_call(Ok(Reply::Ok(())));
        },
        #[rustfmt::skip]
        then: [CLOSED, IDLE, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "finish_call(wrong type)",
        run: |s| {
            let _ = s.finish_call::<()>(Err(Error::ResultType("x".into())));
        },
        #[rustfmt::skip]
        then: [CLOSED, IDLE, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "finish_call(timeout)",
        run: |s| {
            let _ = s.finish_call::<()>(Err(Error::Timeout("waiting")));
        },
        then: [CLOSED; 11],
    },
    Event {
        name: "learned(NotImplementedError)",
        run: |s| {
            let refused = RemoteError::new("NotImplementedError", "anyd.version");
            let _ = s.learned(Ok(Reply::Err(refused)));
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, IDLE, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED],
    },
    Event {
        name: "learned(broken)",
        run: |s| {
            let _ = s.learned(Err(Error::protocol("cut")));
        },
        then: [CLOSED; 11],
    },
    Event {
        name: "finish_end",
        run: |s| {
            let _ = s.finish_end(Ok(Reply::EndSession));
        },
        then: [CLOSED; 11],
    },
    Event {
        name: "take_for_end",
        run: |s| {
            let _ = s.take_for_end();
        },
        then: [CLOSED; 11],
    },
    Event {
        name: "close",
        run: Session::close,
        then: [CLOSED; 11],
    },
    // A driver gives up on a call: what went out of its request says
    // what is owed. Only a unary call (or the question before one) is
    // given up so; in any other state nothing changes.
    Event {
        name: "abandon, nothing written",
        run: |s| {
            s.written = 0;
            s.abandon();
        },
        #[rustfmt::skip]
        then: [IDLE, IDLE, IDLE, SREQ, END, STREAM, CANCELLED, OWE_REQ, OWE_CANCEL, OWE_REPLY, CLOSED],
    },
    Event {
        name: "abandon, part written",
        run: |s| {
            s.written = 1;
            s.abandon();
        },
        #[rustfmt::skip]
        then: [IDLE, OWE_REQ, OWE_REQ, SREQ, END, STREAM, CANCELLED, OWE_REQ, OWE_CANCEL, OWE_REPLY, CLOSED],
    },
    Event {
        name: "abandon, written whole",
        run: |s| {
            s.written = s.out.len();
            s.abandon();
        },
        // The question asked before a call is never cancelled.
        #[rustfmt::skip]
        then: [IDLE, OWE_CANCEL, OWE_REPLY, SREQ, END, STREAM, CANCELLED, OWE_REQ, OWE_CANCEL, OWE_REPLY, CLOSED],
    },
    Event {
        name: "owed_written, all of it",
        run: |s| {
            s.written = s.out.len();
            s.owed_written();
        },
        #[rustfmt::skip]
        then: [IDLE, CALL, ASK, SREQ, END, STREAM, CANCELLED, OWE_CANCEL, OWE_REPLY, OWE_REPLY, CLOSED],
    },
    Event {
        name: "owed_written, not all",
        run: |s| {
            s.written = s.out.len().saturating_sub(1);
            s.owed_written();
        },
        then: STATES,
    },
    Event {
        name: "owed_reply(a frame)",
        run: |s| {
            let _ = s.owed_reply(Ok(true), None);
        },
        #[rustfmt::skip]
        then: [CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, IDLE, CLOSED],
    },
    Event {
        name: "owed_reply(the end)",
        run: |s| {
            let _ = s.owed_reply(Ok(false), None);
        },
        then: [CLOSED; 11],
    },
];

#[test]
fn every_event_in_every_state() {
    for event in EVENTS {
        for (from, then) in STATES.iter().zip(event.then) {
            let mut s = in_state(from);
            (event.run)(&mut s);
            assert_eq!(s.state.describe(), then, "{} while {from}", event.name);
            // The connection is there exactly while the session is open.
            assert_eq!(s.conn().is_some(), then != CLOSED);
        }
    }
}
