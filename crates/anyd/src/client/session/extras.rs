//! What a call carries beyond its endpoint and arguments: its deadline
//! (the session's timeout, or less when the call is made while a handler
//! serves a call that is due sooner) and its trace context (inherited
//! from that call), and which of these the daemon reads (docs/PROTOCOL.md
//! sections 8, 8.3 and 8.4), as `anyd.version` says once asked.
//!
//! It owns the rules: an option goes only to a daemon that listed it; a
//! daemon is asked only when a call would carry one (so a session with no
//! timeout and no inherited context sends nothing new and makes no extra
//! round trip); how much longer than its deadline a client waits. It does
//! no I/O: `session` asks and the drivers read.

use std::time::{Duration, Instant};

use anyd_wire::codec::RequestOptions;
use anyd_wire::message::Reply;
use serde::Deserialize;

use super::state::{Call, Phase};
use super::{Exchange, Session};
use crate::error::{Error, Result};

/// How long a driver waits for an exchange's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The session's own ([`Session::wait`]), at which a blocking socket's
    /// read timeout rests.
    Session,
    /// This call's own, shorter: the call is made while a handler serves
    /// one that is due sooner.
    Call(Duration),
}

/// A call started: its exchange, or first the question it needs answered.
#[derive(Debug)]
pub(crate) enum Start<'s, C> {
    /// The call's request to send and its reply to read.
    Call(Exchange<'s, C>),
    /// `anyd.version` to ask first, the call carrying what a daemon must
    /// have listed: [`Session::learned`] takes its reply, then the driver
    /// starts the call again.
    Ask(Exchange<'s, C>),
}

impl<C> Exchange<'_, C> {
    /// How long to wait for the reply: the session's wait, or the call's
    /// own.
    pub(crate) fn limit(&self) -> Option<Duration> {
        match self.wait {
            Wait::Session => self.options.timeout.map(local_wait),
            Wait::Call(d) => Some(d),
        }
    }
}

/// What a daemon reads of what this client may send beyond the plain
/// protocol, as its `anyd.version` said. `stream` and `fds` are not
/// here: every daemon of this project reads them, and clients have sent
/// them since they exist without asking.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Knows {
    /// The option `timeout_ms` (section 8.3).
    pub(crate) timeout_ms: bool,
    /// The option `traceparent` (section 8.4).
    pub(crate) traceparent: bool,
    /// The option `tracestate` (section 8.4).
    pub(crate) tracestate: bool,
    /// A CANCEL behind a unary call (section 8.3).
    pub(crate) cancel: bool,
}

/// What it reads, as a list (`[timeout_ms, cancel]`), or `all`: short,
/// for the `Debug` of a session, which is kept short.
impl std::fmt::Debug for Knows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.timeout_ms && self.traceparent && self.tracestate && self.cancel {
            return f.write_str("all");
        }
        let Knows {
            timeout_ms,
            traceparent,
            tracestate,
            cancel,
        } = *self;
        let names = [
            (timeout_ms, "timeout_ms"),
            (traceparent, "traceparent"),
            (tracestate, "tracestate"),
            (cancel, "cancel"),
        ];
        let mut list = f.debug_list();
        for (_, name) in names.iter().filter(|(on, _)| *on) {
            list.entry(&format_args!("{name}"));
        }
        list.finish()
    }
}

impl Knows {
    /// A daemon that reads none of it: Python anyd (which answers
    /// `anyd.version` with `NotImplementedError`), one that predates the
    /// list of options, or one whose answer makes no sense.
    pub(crate) const NOTHING: Knows = Knows {
        timeout_ms: false,
        traceparent: false,
        tracestate: false,
        cancel: false,
    };

    /// What the reply to `anyd.version` says.
    ///
    /// # Errors
    ///
    /// Only what makes the session unusable (a transport or protocol
    /// error): any answer, an error reply or one of another shape among
    /// them, says what the daemon knows.
    pub(crate) fn from_version(reply: Result<Reply<VersionInfo>>) -> Result<Knows> {
        let info = match reply {
            Ok(Reply::Ok(info)) => info,
            // NotImplementedError (Python anyd), or any other refusal;
            // a reply that is not a map of this shape.
            Ok(Reply::Err(_)) | Err(Error::ResultType(_)) => return Ok(Knows::NOTHING),
            Ok(_) => return Err(Error::protocol("an unexpected reply to anyd.version")),
            Err(e) => return Err(e),
        };
        let lists = |key: &str| info.options.iter().flatten().any(|o| o == key);
        Ok(Knows {
            timeout_ms: lists("timeout_ms"),
            traceparent: lists("traceparent"),
            tracestate: lists("tracestate"),
            cancel: info.cancel == Some(true),
        })
    }
}

/// The part of `anyd.version`'s reply a client reads (section 5); what
/// else it holds is ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct VersionInfo {
    /// The request options the daemon knows; absent from daemons that
    /// predate the list (which know `stream` and `fds`).
    #[serde(default)]
    options: Option<Vec<String>>,
    /// Whether it reads a CANCEL behind a unary call.
    #[serde(default)]
    cancel: Option<bool>,
}

/// What a call would carry, before what the daemon reads filters it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Wants {
    /// The deadline, relative: the session's timeout or what is left of
    /// the served call's, whichever is sooner.
    pub(crate) timeout: Option<Duration>,
    /// How long the client waits for the reply (the deadline, and a
    /// grace: [`local_wait`]), when it is not the session's own (an
    /// inherited deadline shortened it).
    pub(crate) wait: Option<Duration>,
    /// The trace context to send, inherited.
    pub(crate) traceparent: Option<Box<str>>,
    /// Its vendor part, as it came.
    pub(crate) tracestate: Option<Box<str>>,
}

impl Wants {
    /// What a call made now carries, with the session's `own` timeout:
    /// `None` (the plain request, the session's wait) when it has no
    /// timeout and is not made while a handler serves a call with a
    /// deadline or a trace context. That case costs a look at a
    /// thread-local (with the `server` feature) and nothing else.
    #[inline]
    pub(crate) fn now(own: Option<Duration>) -> Option<Wants> {
        match (own, inherited()) {
            (None, None) => None,
            (own, None) => Some(Wants {
                timeout: own,
                ..Wants::default()
            }),
            (own, inherited) => Some(Wants::from_parts(own, inherited, Instant::now())),
        }
    }

    /// What a call made at `now` carries with the session's `own` timeout,
    /// within the served call's `inherited` context.
    pub(crate) fn from_parts(
        own: Option<Duration>,
        inherited: Option<Inherited>,
        now: Instant,
    ) -> Wants {
        let Some(inherited) = inherited else {
            return Wants {
                timeout: own,
                ..Wants::default()
            };
        };
        let left = inherited.deadline.map(|d| d.saturating_duration_since(now));
        let timeout = match (own, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Wants {
            timeout,
            // Only when the served call shortened it: otherwise the
            // session's own wait applies, as the driver has it set.
            wait: (timeout != own).then(|| timeout.map(local_wait)).flatten(),
            traceparent: inherited.traceparent,
            tracestate: inherited.tracestate,
        }
    }

    /// Whether this would send an option only a daemon that lists it may
    /// get, so that the daemon must be asked first.
    pub(crate) fn needs_asking(&self) -> bool {
        self.timeout.is_some() || self.traceparent.is_some()
    }

    /// The options to send to a daemon that reads what `knows` says.
    pub(crate) fn options(self, knows: Knows) -> RequestOptions {
        let mut options = RequestOptions::NONE;
        if knows.timeout_ms {
            options = options.with_timeout(self.timeout);
        }
        if knows.traceparent && self.traceparent.is_some() {
            options.traceparent = self.traceparent;
            // `tracestate` goes with `traceparent` only.
            if knows.tracestate {
                options.tracestate = self.tracestate;
            }
        }
        options
    }
}

/// What a call made while a handler serves a call inherits of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Inherited {
    /// When the served call is due.
    pub(crate) deadline: Option<Instant>,
    /// The trace context to send: the served call's trace.
    pub(crate) traceparent: Option<Box<str>>,
    /// Its vendor part.
    pub(crate) tracestate: Option<Box<str>>,
}

/// What a call made on this thread inherits: the context of the call a
/// handler of this process serves on it, if any.
#[cfg(feature = "server")]
#[inline]
fn inherited() -> Option<Inherited> {
    crate::context::outgoing().map(|o| Inherited {
        deadline: o.deadline,
        traceparent: o.traceparent,
        tracestate: o.tracestate,
    })
}

/// A client-only build serves no calls: nothing to inherit.
#[cfg(not(feature = "server"))]
#[inline]
fn inherited() -> Option<Inherited> {
    None
}

/// How long a client waits for the reply of a call it sent `timeout` to:
/// the timeout, then a tenth of it (at most a second) and 50 ms more. The
/// daemon measures the deadline from when it reads the request, so its
/// `TimeoutError` (which keeps the session usable) takes a little longer
/// than `timeout` to come back; the grace lets it come first. A blocking
/// handler is answered only when it returns: past the grace the client
/// gives up on the session, which the daemon takes as a cancel.
pub(crate) fn local_wait(timeout: Duration) -> Duration {
    let grace = (timeout / 10).min(Duration::from_secs(1)) + Duration::from_millis(50);
    timeout.saturating_add(grace)
}

/// What the session knows of its daemon, and what its calls carry.
impl<C> Session<C> {
    /// Changes the session's timeout from the next call on (see
    /// [`ClientOptions::timeout`]).
    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.options.timeout = timeout;
    }

    /// How long the session waits for a reply: its timeout and a grace
    /// ([`local_wait`]), or for ever.
    pub(crate) fn wait(&self) -> Option<Duration> {
        self.options.timeout.map(local_wait)
    }

    /// Whether the daemon said that it reads a CANCEL behind a unary call
    /// (`None`: it was not asked).
    pub(crate) fn daemon_cancels(&self) -> Option<bool> {
        self.knows.map(|k| k.cancel)
    }

    /// `anyd.version` to ask, if the daemon was not asked yet and could
    /// be (a native codec: pickle carries no options, and Python anyd
    /// reads nothing else); `None` otherwise. For a driver that needs to
    /// know before a call would make it ask (a canceller of calls).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub(crate) fn ask_if_unknown(&mut self) -> Result<Option<Exchange<'_, C>>> {
        if self.knows.is_some() {
            return Ok(None);
        }
        if !self.options.codec.is_native() {
            self.knows = Some(Knows::NOTHING);
            return Ok(None);
        }
        self.ask().map(Some)
    }

    /// Starts asking `anyd.version`: no arguments, no options.
    pub(super) fn ask(&mut self) -> Result<Exchange<'_, C>> {
        self.encode("anyd.version", &(), &(), RequestOptions::NONE, false)?;
        self.start(Call::Version, Wait::Session)
    }

    /// Takes note of the reply to `anyd.version`: what the daemon reads.
    ///
    /// # Errors
    ///
    /// A transport or protocol error (the session is closed), or
    /// [`Error::Protocol`] if no such question was under way.
    pub(crate) fn learned(&mut self, reply: Result<Reply<VersionInfo>>) -> Result<()> {
        self.out_fds.clear();
        self.state.advance(
            Phase::Calling(Call::Version),
            Phase::Idle,
            "the reply to anyd.version",
        )?;
        match Knows::from_version(reply) {
            Ok(knows) => {
                self.knows = Some(knows);
                Ok(())
            }
            Err(e) => {
                self.close();
                Err(e)
            }
        }
    }

    /// What a call made now with the timeout `own` carries: its options
    /// (beyond `stream` and `fds`) and its wait, or `Err(())` when the
    /// daemon must be asked first. A call with no timeout, not made while
    /// a handler serves one, gets the plain request and the session's
    /// wait, with no clock read.
    #[inline]
    pub(super) fn extras(
        &self,
        own: Option<Duration>,
    ) -> std::result::Result<(RequestOptions, Wait), ()> {
        let Some(wants) = Wants::now(own) else {
            return Ok((RequestOptions::NONE, Wait::Session));
        };
        let wait = wants.wait.map_or(Wait::Session, Wait::Call);
        if !self.options.codec.is_native() {
            // Pickle carries no options: the deadline stays this side's.
            return Ok((RequestOptions::NONE, wait));
        }
        match self.knows {
            Some(knows) => Ok((wants.options(knows), wait)),
            None if wants.needs_asking() => Err(()),
            None => Ok((RequestOptions::NONE, wait)),
        }
    }
}

#[cfg(test)]
mod tests;
