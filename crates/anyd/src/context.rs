//! The context of the call a handler serves: its deadline, whether its
//! caller still wants the reply, and its trace context (docs/PROTOCOL.md
//! sections 8.3 and 8.4).
//!
//! A handler takes it as a parameter ([`Context`]); calls it makes to
//! other daemons while it serves the call inherit the remaining deadline
//! and the trace context through [`outgoing`], with nothing passed by
//! hand.
//!
//! Nothing here runs a thread. Whether the caller went away or sent a
//! CANCEL is read from the connection's socket when asked (a `poll` with
//! no wait, and a peek at the next frame), and, for a future awaiting
//! cancellation, by the daemon's runtime watching the socket. A call that
//! asks nothing of it costs nothing: the context is made only for a call
//! with a deadline or a trace context, or a handler that takes it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyd_wire::frame;

mod watch;

pub(crate) use watch::Watch;

/// The call a handler serves, as the handler may see it: when it is due,
/// whether its caller still wants the reply, and the trace it belongs to.
///
/// A handler takes it as a parameter, anywhere among its arguments (it is
/// not a wire argument: callers do not send it):
///
/// ```
/// use std::time::Duration;
///
/// fn scan(ctx: anyd::Context, networks: u32) -> Result<u32, String> {
///     for n in 0..networks {
///         // Checking costs a `poll` of the socket with no wait: do it
///         // between steps, not in a tight loop.
///         if ctx.is_cancelled() {
///             return Err(format!("stopped after {n} networks"));
///         }
///         std::thread::sleep(Duration::from_millis(1));
///     }
///     Ok(networks)
/// }
///
/// let app = anyd::Appd::new().api("scan(networks)", scan);
/// # drop(app);
/// ```
///
/// An async handler need not look: it is dropped at its deadline or when
/// its caller cancels (docs/PROTOCOL.md section 8.3). It may still take the
/// context, to read the deadline or to await [`cancelled`](Self::cancelled)
/// in work it spawns.
///
/// A context outliving its call (moved to another thread, say) keeps
/// what it knew when the call ended: cancelled or not; its socket is no
/// longer looked at.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    deadline: Option<Instant>,
    traceparent: Option<Box<str>>,
    tracestate: Option<Box<str>>,
    watch: Mutex<Watch>,
    /// Wakes [`Context::cancelled`] futures when the call ends.
    ended: tokio::sync::Notify,
    runtime: tokio::runtime::Handle,
}

/// Why a call is no longer wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// The caller sent CANCEL.
    ByCaller,
    /// The caller closed its connection, or died.
    CallerGone,
    /// The call's deadline passed.
    DeadlinePassed,
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cancelled::ByCaller => "the client cancelled the call",
            Cancelled::CallerGone => "the client went away",
            Cancelled::DeadlinePassed => "the call's deadline passed",
        })
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("deadline", &self.inner.deadline)
            .field("traced", &self.inner.traceparent.is_some())
            .field("cancelled", &self.lock().reason())
            .finish_non_exhaustive()
    }
}

/// What a call made from a handler inherits of the call the handler
/// serves.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// When the call served is due.
    pub(crate) deadline: Option<Instant>,
    /// The trace context to send: the same trace, the served call as the
    /// parent.
    pub(crate) traceparent: Option<Box<str>>,
    /// The vendor part, as it came.
    pub(crate) tracestate: Option<Box<str>>,
}

/// What a call made on this thread inherits, if the thread serves a call
/// with a deadline or a trace context.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn outgoing() -> Option<Outgoing> {
    crate::frame_context::with_call_context(|c| c.map(Context::outgoing))
}

impl Context {
    /// A call's context: due by `deadline`, traced by
    /// `traceparent` and `tracestate` as they came, its caller watched
    /// through `watch`.
    pub(crate) fn new(
        deadline: Option<Instant>,
        traceparent: Option<Box<str>>,
        tracestate: Option<Box<str>>,
        watch: Watch,
        runtime: tokio::runtime::Handle,
    ) -> Context {
        Context {
            inner: Arc::new(Inner {
                deadline,
                traceparent,
                tracestate,
                watch: Mutex::new(watch),
                ended: tokio::sync::Notify::new(),
                runtime,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Watch> {
        self.inner.watch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the call is due: the earliest of its caller's timeout, the
    /// endpoint's and the daemon's (`None`: no deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// How long until the deadline (zero once past; `None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the reply is no longer wanted: the caller sent CANCEL,
    /// closed its connection or died, or the deadline passed. Looks at
    /// the connection's socket without waiting (a `poll`, and a peek at
    /// the frame behind the call): cheap, but a system call, so a loop
    /// checks it between steps of work rather than on every turn.
    pub fn is_cancelled(&self) -> bool {
        self.why().is_some()
    }

    /// Why the reply is no longer wanted, if it is not (see
    /// [`is_cancelled`](Self::is_cancelled)).
    pub fn why(&self) -> Option<Cancelled> {
        let mut watch = self.lock();
        if let Some(r) = watch.reason() {
            return Some(r);
        }
        if self.inner.deadline.is_some_and(|d| Instant::now() >= d) {
            watch.cancel(Cancelled::DeadlinePassed);
        } else {
            watch.look();
        }
        watch.reason()
    }

    /// Completes when the reply is no longer wanted (as
    /// [`is_cancelled`](Self::is_cancelled) says), with why; never, if
    /// the call ends first. The daemon's runtime watches the socket: a
    /// handler may await it from any task or thread (a blocking handler
    /// with a runtime of its own, say), and no thread waits for it.
    pub async fn cancelled(&self) -> Cancelled {
        let deadline = self.inner.deadline.map(tokio::time::Instant::from_std);
        loop {
            let ended = self.inner.ended.notified();
            tokio::pin!(ended);
            // Registered before the last look, so an end that comes
            // between the two is not missed.
            ended.as_mut().enable();
            if let Some(why) = self.why() {
                return why;
            }
            let socket = {
                let _in_runtime = self.inner.runtime.enter();
                self.lock().readiness()
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            match socket {
                // The socket's edge (a frame, or its closing): look again.
                Some(socket) => tokio::select! {
                    ready = socket.readable() => {
                        // Edge by edge: what is there now is looked at
                        // next, and only something new wakes this again.
                        if let Ok(mut ready) = ready {
                            ready.clear_ready();
                        }
                    }
                    () = sleep => {}
                    () = &mut ended => {}
                },
                // The call is over and was not cancelled: nothing more can
                // come (the deadline no longer matters either).
                None if self.lock().is_over() => std::future::pending::<()>().await,
                None => tokio::select! {
                    () = sleep => {}
                    () = &mut ended => {}
                },
            }
        }
    }

    /// The call is over: its socket is no longer looked at, and futures
    /// awaiting cancellation let go of it.
    pub(crate) fn end(&self) {
        self.lock().end();
        self.inner.ended.notify_waiters();
    }

    /// What a call made while this one is served inherits.
    fn outgoing(&self) -> Outgoing {
        Outgoing {
            deadline: self.inner.deadline,
            traceparent: self
                .inner
                .traceparent
                .as_deref()
                .and_then(child_traceparent),
            tracestate: self
                .inner
                .traceparent
                .as_ref()
                .and(self.inner.tracestate.clone()),
        }
    }
}

/// The `traceparent` of a call made while serving one traced by `parent`:
/// the same trace and flags, a new parent id. `None` when `parent` is not
/// well formed.
fn child_traceparent(parent: &str) -> Option<Box<str>> {
    let child = crate::TraceContext::parse(parent)?.child()?;
    Some(child.to_string().into())
}

/// Whether `bytes` start with a whole frame that is a CANCEL: `Some(true)`
/// or `Some(false)`, or `None` while too few bytes tell. A frame longer
/// than any CANCEL is not one.
pub(crate) fn frame_is_cancel(bytes: &[u8]) -> Option<bool> {
    /// The longest CANCEL: JSON's `"CANCEL"`, 8 bytes.
    const LONGEST: usize = 8;
    match frame::decode(bytes, LONGEST) {
        Ok(Some(f)) => {
            // The codecs say what a CANCEL is, as they do for the
            // session and for streams.
            let head = anyd_wire::codec::decode_head(&bytes[f.payload], &Default::default());
            Some(matches!(head, Ok(anyd_wire::message::Head::Cancel(_))))
        }
        Ok(None) => None,
        Err(_) => Some(false),
    }
}

#[cfg(test)]
mod tests;
