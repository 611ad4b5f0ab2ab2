//! What a call carries and what a daemon's `anyd.version` says it reads.

use super::*;
use crate::RemoteError;

const ALL: Knows = Knows {
    timeout_ms: true,
    traceparent: true,
    tracestate: true,
    cancel: true,
};

fn version(options: Option<&[&str]>, cancel: Option<bool>) -> Result<Reply<VersionInfo>> {
    Ok(Reply::Ok(VersionInfo {
        options: options.map(|o| o.iter().map(|s| s.to_string()).collect()),
        cancel,
    }))
}

#[test]
fn what_anyd_version_says_the_daemon_reads() {
    let all = ["stream", "fds", "timeout_ms", "traceparent", "tracestate"];
    assert_eq!(
        Knows::from_version(version(Some(&all), Some(true))).unwrap(),
        ALL
    );
    // Older daemons: no list (stream and fds only), no cancel.
    assert_eq!(
        Knows::from_version(version(None, None)).unwrap(),
        Knows::NOTHING
    );
    let some = Knows::from_version(version(Some(&["timeout_ms"]), Some(false))).unwrap();
    assert_eq!(
        some,
        Knows {
            timeout_ms: true,
            ..Knows::NOTHING
        }
    );
    // Python anyd, and any refusal or answer of another shape.
    let refused = Ok(Reply::Err(RemoteError::new(
        "NotImplementedError",
        "anyd.version",
    )));
    assert_eq!(Knows::from_version(refused).unwrap(), Knows::NOTHING);
    let odd = Err(Error::ResultType("a string".into()));
    assert_eq!(Knows::from_version(odd).unwrap(), Knows::NOTHING);
    // A broken connection is no answer.
    assert!(Knows::from_version(Err(Error::Closed)).is_err());
    assert!(Knows::from_version(Ok(Reply::EndSession)).is_err());
}

#[test]
fn nothing_is_wanted_without_a_timeout_or_a_served_call() {
    assert_eq!(Wants::now(None), None);
    let own = Duration::from_millis(1500);
    let wants = Wants::now(Some(own)).unwrap();
    assert_eq!(wants.timeout, Some(own));
    assert_eq!(wants.wait, None, "the session's own wait");
    assert!(wants.needs_asking());
}

#[test]
fn an_inherited_deadline_shortens_the_timeout_and_the_wait() {
    let now = Instant::now();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let inherited = Inherited {
        deadline: Some(now + Duration::from_secs(2)),
        traceparent: Some(trace.into()),
        tracestate: Some("k=v".into()),
    };
    let w = Wants::from_parts(Some(Duration::from_secs(5)), Some(inherited.clone()), now);
    assert_eq!(w.timeout, Some(Duration::from_secs(2)));
    assert_eq!(w.wait, Some(local_wait(Duration::from_secs(2))));
    assert_eq!(w.traceparent.as_deref(), Some(trace));
    // The session's own, when it is the sooner.
    let w = Wants::from_parts(Some(Duration::from_secs(1)), Some(inherited.clone()), now);
    assert_eq!((w.timeout, w.wait), (Some(Duration::from_secs(1)), None));
    // No timeout of its own: the inherited one.
    let w = Wants::from_parts(None, Some(inherited.clone()), now);
    assert_eq!(w.timeout, Some(Duration::from_secs(2)));
    // Past: zero, which the daemon answers at once.
    let late = now + Duration::from_secs(3);
    let w = Wants::from_parts(None, Some(inherited), late);
    assert_eq!(w.timeout, Some(Duration::ZERO));
    // A trace with no deadline still needs asking.
    let traced = Inherited {
        traceparent: Some(trace.into()),
        ..Inherited::default()
    };
    let w = Wants::from_parts(None, Some(traced), now);
    assert_eq!((w.timeout, w.wait), (None, None));
    assert!(w.needs_asking());
}

#[test]
fn only_what_the_daemon_lists_is_sent() {
    let wants = || Wants {
        timeout: Some(Duration::from_millis(1500)),
        wait: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tracestate: Some("k=v".into()),
    };
    assert_eq!(wants().options(Knows::NOTHING), RequestOptions::NONE);
    let all = wants().options(ALL);
    assert_eq!(all.timeout_ms.map(|t| t.millis()), Some(1500));
    assert!(all.traceparent.is_some() && all.tracestate.is_some());
    let no_state = wants().options(Knows {
        tracestate: false,
        ..ALL
    });
    assert!(no_state.traceparent.is_some() && no_state.tracestate.is_none());
    // `tracestate` never goes alone.
    let no_parent = wants().options(Knows {
        traceparent: false,
        ..ALL
    });
    assert!(no_parent.traceparent.is_none() && no_parent.tracestate.is_none());
    let timeout_only = wants().options(Knows {
        timeout_ms: true,
        ..Knows::NOTHING
    });
    assert_eq!(
        timeout_only,
        RequestOptions::NONE.with_timeout(Some(Duration::from_millis(1500)))
    );
}

#[test]
fn the_wait_is_the_timeout_and_a_grace() {
    assert_eq!(local_wait(Duration::ZERO), Duration::from_millis(50));
    assert_eq!(
        local_wait(Duration::from_secs(2)),
        Duration::from_millis(2250)
    );
    assert_eq!(
        local_wait(Duration::from_secs(60)),
        Duration::from_millis(61_050)
    );
    assert_eq!(local_wait(Duration::MAX), Duration::MAX);
}
