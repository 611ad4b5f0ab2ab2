//! The endpoint table and the dispatch of one request to its handler,
//! including the reserved `anyd.*` endpoints (their replies are
//! `reserved`'s).

mod names;
mod reserved;

use names::{parse_signature, NameHash};

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::transport::fds::OutFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use anyd_wire::codec::DecodeLimits;
use anyd_wire::message::{Request, RequestHead};

use crate::endpoint_info::EndpointInfo;
use crate::error::RemoteError;
use crate::frame_context::with_call;
use crate::handler::{short_type_name, Call, Handler};
use crate::items::Source;
use crate::observe::Observe;
use crate::policy::{Allow, Resolved};
use crate::reply::{Made, Outcome};
use crate::stats::EndpointStats;
use crate::throttle::{throttled, Throttle};
use crate::transport::fds::FrameFds;
use crate::transport::Peer;

type Erased = Box<
    dyn Fn(&Call<'_>, Vec<OwnedFd>, &mut Vec<u8>) -> Result<Outcome, RemoteError> + Send + Sync,
>;

pub(crate) struct Endpoint {
    pub(crate) info: EndpointInfo,
    handler: Erased,
    /// Who may call it, beyond the daemon-wide rule (`None`: whoever may
    /// call the daemon).
    allow: Option<Allow>,
    resolved: Option<Resolved>,
    /// The longest a call of it may take, whatever its caller allows.
    timeout: Option<Duration>,
    /// Its calls, counted (`anyd.stats`).
    pub(crate) stats: EndpointStats,
}

/// What a call needs of its connection.
pub(crate) struct CallEnv<'a> {
    pub(crate) peer: &'a Peer,
    pub(crate) runtime: &'a tokio::runtime::Handle,
    pub(crate) limits: &'a DecodeLimits,
    /// The connection's socket (`None`: a core driven with no socket),
    /// for the call's context to look at.
    pub(crate) socket: Option<BorrowedFd<'a>>,
    /// The bytes read behind the request (part or all of the next frame,
    /// which may be a CANCEL).
    pub(crate) behind: &'a [u8],
}

/// What to send for one request.
pub(crate) enum Dispatched {
    /// The reply written into `out`, with the descriptors it carries.
    Reply(Vec<OutFd>),
    /// A stream to send (nothing written); its items may carry
    /// descriptors when `fds`.
    Stream { source: Box<dyn Source>, fds: bool },
    /// The error to send instead (what was written is to be dropped).
    Error(RemoteError),
}

/// All endpoints of a daemon.
pub(crate) struct Registry {
    endpoints: HashMap<String, Endpoint, NameHash>,
    /// Registration order, for introspection.
    order: Vec<String>,
    /// Who may call the daemon at all (`None`: whoever can connect).
    allow: Option<Allow>,
    resolved: Option<Resolved>,
    /// Whether a panicking handler's message reaches the caller.
    pub(crate) panic_details: bool,
    /// The longest any call may take, whatever its caller allows
    /// ([`Appd::call_timeout`](crate::Appd::call_timeout)).
    pub(crate) call_timeout: Option<Duration>,
    /// Whether calls of restricted endpoints leave an audit line
    /// ([`Appd::audit`](crate::Appd::audit)).
    pub(crate) audit: bool,
    /// Whether connections take the descriptors callers send (`None`: when
    /// an endpoint's parameter types name `Fd`).
    pub(crate) receive_fds: Option<bool>,
    /// `receives_fds`, worked out once: the endpoints are fixed by then.
    receives: std::sync::OnceLock<bool>,
    /// Denied calls are logged at info a few a second, the rest at debug:
    /// a denied caller can call in a loop.
    denials: Throttle,
    /// What `anyd.describe` says beyond `EndpointInfo`: the endpoints'
    /// schemas, the interfaces mounted.
    pub(crate) contract: crate::contract::describe::Registered,
    /// Hooks, the rule of `anyd.stats`, and counts of no endpoint's.
    pub(crate) observe: Observe,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            endpoints: HashMap::default(),
            order: Vec::new(),
            allow: None,
            resolved: None,
            panic_details: false,
            call_timeout: None,
            audit: false,
            receive_fds: None,
            receives: std::sync::OnceLock::new(),
            denials: Throttle::per_second(DENIALS_AT_ONCE),
            contract: Default::default(),
            observe: Observe::default(),
        }
    }
}

/// How many denied calls are logged at info at once, before one a second.
const DENIALS_AT_ONCE: u32 = 10;

/// The reply to a call of an endpoint that does not exist, and to a call
/// the policy denies: the same, so that a caller learns nothing about
/// endpoints it may not call. It is Python anyd's reply to an unknown name.
fn not_found(name: &str) -> RemoteError {
    RemoteError::new("NotImplementedError", name)
}

fn widen(slot: &mut Option<Allow>, rule: Allow) {
    *slot = Some(match slot.take() {
        Some(old) => old.or(rule),
        None => rule,
    });
}

impl Registry {
    /// Adds an endpoint.
    ///
    /// # Panics
    ///
    /// On a malformed or reserved signature, a name registered twice, or a
    /// number of declared parameter names that differs from the handler's:
    /// these are mistakes in the program, found the first time it runs.
    pub(crate) fn add<M, H: Handler<M>>(&mut self, signature: &str, handler: H) {
        let (name, names) = parse_signature(signature).unwrap_or_else(|e| panic!("anyd: {e}"));
        assert!(
            !self.endpoints.contains_key(&name),
            "anyd: endpoint {name:?} is registered twice"
        );
        let mut params = H::params();
        if let Some(names) = names {
            assert!(
                names.len() == params.len(),
                "anyd: {signature:?} names {} parameters but the handler takes {}",
                names.len(),
                params.len()
            );
            for (p, n) in params.iter_mut().zip(names) {
                p.name = Some(n);
            }
        }
        let info = EndpointInfo {
            name: name.clone(),
            params,
            returns: H::returns(),
            doc: String::new(),
            stream: H::streams(),
        };
        let handler: Erased = Box::new(move |call, fds, out| handler.call(call, fds, out));
        self.order.push(name.clone());
        let stats = EndpointStats::new(Some(&name));
        self.endpoints.insert(
            name,
            Endpoint {
                info,
                handler,
                allow: None,
                resolved: None,
                timeout: None,
                stats,
            },
        );
    }

    /// Bounds the calls of the endpoint registered last.
    ///
    /// # Panics
    ///
    /// If no endpoint was registered yet.
    pub(crate) fn timeout_last(&mut self, timeout: Duration) {
        let last = self
            .order
            .last()
            .expect("anyd: timeout() must follow the api() it bounds");
        if let Some(e) = self.endpoints.get_mut(last) {
            e.timeout = Some(timeout);
        }
    }

    /// Bounds the calls of the endpoint `name`.
    ///
    /// # Panics
    ///
    /// If no endpoint of that name is registered.
    pub(crate) fn timeout_named(&mut self, name: &str, timeout: Duration) {
        let e = self
            .endpoints
            .get_mut(name)
            .unwrap_or_else(|| panic!("anyd: endpoint_timeout({name:?}): no such endpoint"));
        e.timeout = Some(timeout);
    }

    /// Whether connections read with `recvmsg`, taking the descriptors
    /// callers send: as set, or when a parameter's type names `Fd`.
    pub(crate) fn receives_fds(&self) -> bool {
        *self.receives.get_or_init(|| {
            self.receive_fds.unwrap_or_else(|| {
                self.endpoints.values().any(|e| {
                    e.info.params.iter().any(|p| {
                        p.ty.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .any(|w| w == "Fd")
                    })
                })
            })
        })
    }

    /// Admits `rule`'s callers to the whole daemon (in addition to any
    /// admitted before).
    pub(crate) fn allow(&mut self, rule: Allow) {
        widen(&mut self.allow, rule);
    }

    /// Restricts the endpoint registered last to `rule`'s callers (in
    /// addition to any admitted before).
    pub(crate) fn restrict_last(&mut self, rule: Allow) {
        let last = self
            .order
            .last()
            .expect("anyd: restrict() must follow the api() it restricts");
        if let Some(e) = self.endpoints.get_mut(last) {
            widen(&mut e.allow, rule);
        }
    }

    /// Resolves the user and group names of every rule.
    pub(crate) fn resolve_policies(&mut self, own_uid: u32) -> crate::Result<()> {
        let resolve = |allow: &Allow| allow.resolve(own_uid);
        self.resolved = self.allow.as_ref().map(resolve).transpose()?;
        for e in self.endpoints.values_mut() {
            e.resolved = e.allow.as_ref().map(resolve).transpose()?;
        }
        self.observe.resolve(own_uid)
    }

    /// Checks the daemon-wide rule and the endpoint's own; gives the rule
    /// that denies `peer`, if one does.
    fn admit<'s>(
        &'s self,
        endpoint: Option<&'s Endpoint>,
        peer: &Peer,
    ) -> Result<(), &'s Resolved> {
        for rule in [
            self.resolved.as_ref(),
            endpoint.and_then(|e| e.resolved.as_ref()),
        ]
        .into_iter()
        .flatten()
        {
            if !rule.admits(peer) {
                return Err(rule);
            }
        }
        Ok(())
    }

    /// The reply to a denied call, logged with the rule that denied it
    /// (the caller is told nothing of it): at info level for the first
    /// few and then one a second, at debug level for the rest.
    fn denied(&self, name: &str, rule: &Resolved, peer: &Peer) -> RemoteError {
        throttled!(
            self.denials,
            info,
            uid = peer.uid(),
            gid = peer.gid(),
            pid = peer.pid(),
            peer = peer.address(),
            endpoint = name,
            rule = rule.shown(),
            "call denied by policy"
        );
        not_found(name)
    }

    /// Sets the documentation of the endpoint registered last.
    pub(crate) fn document_last(&mut self, doc: &str) {
        let last = self
            .order
            .last()
            .expect("anyd: doc() must follow the api() it documents");
        if let Some(e) = self.endpoints.get_mut(last) {
            e.info.doc = doc.trim().to_owned();
        }
    }

    /// Describes the endpoint registered last with what only its source
    /// shows: the parameter types as written (`#[anyd::api]` knows them)
    /// and the documentation.
    ///
    /// # Panics
    ///
    /// If no endpoint was registered yet, or `types` does not give one type
    /// per wire parameter.
    pub(crate) fn describe_last(&mut self, types: &[&str], doc: &str) {
        self.document_last(doc);
        let last = self.order.last().expect("anyd: nothing to describe");
        let Some(endpoint) = self.endpoints.get_mut(last) else {
            return;
        };
        let params = &mut endpoint.info.params;
        assert!(
            types.len() == params.len(),
            "anyd: {last:?} is described with {} parameter types but the handler takes {}",
            types.len(),
            params.len()
        );
        for (p, ty) in params.iter_mut().zip(types) {
            // Same form as the types found by the handler: no module paths.
            p.ty = short_type_name(ty);
        }
    }

    /// Gives the endpoint registered last its contract description.
    ///
    /// # Panics
    ///
    /// If no endpoint was registered yet.
    pub(crate) fn describe_contract_last(&mut self, describe: crate::contract::private::Describe) {
        let last = self.order.last().expect("anyd: nothing to describe");
        self.contract.describe(last, describe);
    }

    /// Restricts the endpoint `name` to `rule`'s callers (in addition to
    /// any admitted before).
    ///
    /// # Panics
    ///
    /// If no endpoint of that name is registered.
    pub(crate) fn restrict_named(&mut self, name: &str, rule: Allow) {
        let e = self
            .endpoints
            .get_mut(name)
            .unwrap_or_else(|| panic!("anyd: restrict_endpoint({name:?}): no such endpoint"));
        widen(&mut e.allow, rule);
    }

    /// The introspection of every endpoint, in registration order.
    pub(crate) fn infos(&self) -> Vec<&EndpointInfo> {
        self.order
            .iter()
            .filter_map(|n| self.endpoints.get(n))
            .map(|e| &e.info)
            .collect()
    }

    /// The introspection of the endpoints `peer` may call.
    fn infos_for(&self, peer: &Peer) -> Vec<&EndpointInfo> {
        self.order
            .iter()
            .filter_map(|n| self.endpoints.get(n))
            .filter(|e| self.admit(Some(e), peer).is_ok())
            .map(|e| &e.info)
            .collect()
    }

    /// Serves one request: checks the policy, then decodes the arguments
    /// (no more than the endpoint takes), then runs the handler; says what
    /// to send: the reply it wrote into `out` (with its descriptors), a
    /// stream, or an error. A caller the policy denies gets what a call of
    /// a missing endpoint gets, before any argument is decoded. A
    /// panicking handler becomes a `RuntimeError`. A stream is sent only
    /// to a caller that asked for one, and only a streaming endpoint sends
    /// one.
    ///
    /// `fds` are the descriptors that came with the request (`None` on a
    /// socket that cannot carry any). A denied caller's are closed before
    /// anything else, and those no parameter takes once the arguments are
    /// bound.
    ///
    /// Points `stats` at the counters the call is to be counted in, its
    /// endpoint's (found with it), once the caller is admitted to one
    /// that exists; otherwise it is left as it was (on those of refused
    /// calls: `Observe::refused`).
    pub(crate) fn dispatch<'s>(
        &'s self,
        head: RequestHead<'_>,
        fds: Option<FrameFds>,
        env: &CallEnv<'_>,
        out: &mut Vec<u8>,
        stats: &mut &'s EndpointStats,
    ) -> Dispatched {
        // What the audit line names, taken before the request is read.
        let audited = self.audit.then(|| head.endpoint.clone());
        let dispatched = match self.serve(head, fds, env, out, stats) {
            Ok((Outcome(Made::Written(fds)), _)) => Dispatched::Reply(fds),
            Ok((Outcome(Made::Stream(source)), fds)) => Dispatched::Stream { source, fds },
            Err(e) => Dispatched::Error(e),
        };
        if let Some(name) = audited {
            self.audit_line(&name, env.peer, &dispatched);
        }
        dispatched
    }

    /// The audit line of a call of `name` by `peer`, if the endpoint is
    /// restricted and the call was allowed (denials have their own line).
    #[cold]
    fn audit_line(&self, name: &str, peer: &Peer, dispatched: &Dispatched) {
        let endpoint = self.endpoints.get(name);
        let restricted = self.resolved.is_some() || endpoint.is_some_and(|e| e.resolved.is_some());
        if !restricted || self.admit(endpoint, peer).is_err() {
            return;
        }
        let outcome = match dispatched {
            Dispatched::Reply(_) => "ok",
            Dispatched::Stream { .. } => "stream",
            Dispatched::Error(e) => e.kind.as_str(),
        };
        tracing::info!(
            target: "anyd::audit",
            uid = peer.uid(),
            gid = peer.gid(),
            pid = peer.pid(),
            endpoint = name,
            outcome,
            "call"
        );
    }

    /// [`dispatch`](Self::dispatch), with whether the reply or the
    /// stream's items may carry descriptors; sets `stats` as `dispatch`
    /// says.
    fn serve<'s>(
        &'s self,
        head: RequestHead<'_>,
        fds: Option<FrameFds>,
        env: &CallEnv<'_>,
        out: &mut Vec<u8>,
        stats: &mut &'s EndpointStats,
    ) -> Result<(Outcome, bool), RemoteError> {
        let (peer, limits) = (env.peer, env.limits);
        let name: &str = &head.endpoint;
        if name.starts_with("anyd.") {
            drop(fds);
            if let Err(rule) = self.admit(None, peer) {
                return Err(self.denied(name, rule, peer));
            }
            *stats = self.observe.reserved_row(name);
            let request = decode_args(head, 0, limits)?;
            check_stream(&request, false)?;
            self.reserved(&request, peer, out)?;
            return Ok((Outcome(Made::Written(Vec::new())), false));
        }
        let endpoint = self.endpoints.get(name);
        if let Err(rule) = self.admit(endpoint, peer) {
            drop(fds);
            return Err(self.denied(name, rule, peer));
        }
        let Some(endpoint) = endpoint else {
            return Err(not_found(name));
        };
        *stats = &endpoint.stats;
        let fds = fds
            .transpose()
            .map_err(|e| RemoteError::new("ValueError", e.to_string()))?;
        let request = decode_args(head, endpoint.info.params.len(), limits)?;
        self.observe.options(&request.options);
        check_stream(&request, endpoint.info.stream)?;
        let carries_fds = request.options.fds && fds.is_some();
        if !request.options.fds && fds.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(RemoteError::new(
                "ValueError",
                "descriptors came with a request that does not say it carries them \
                 (request option \"fds\", docs/PROTOCOL.md section 8.2); all closed",
            ));
        }
        // The earliest of the caller's, the endpoint's and the daemon's
        // (one clock read, for a call that has one).
        let timeout = earliest(
            earliest(
                request.options.timeout_ms.map(|t| t.duration()),
                endpoint.timeout,
            ),
            self.call_timeout,
        );
        let call = Call {
            info: &endpoint.info,
            request: &request,
            peer,
            runtime: env.runtime,
            carries_fds,
            deadline: timeout.map(|t| (Instant::now() + t, t)),
            socket: env.socket,
            behind: env.behind,
            context: Default::default(),
        };
        call.check_shape()?;
        // A call with something to pass on has its context from the start,
        // for the calls its handler makes to inherit; one already due is
        // not run.
        if call.deadline.is_some() || request.options.traceparent.is_some() {
            if let Some(why) = call.context().why() {
                return Err(call.cancelled_error(why));
            }
        }
        // The arguments' descriptors, for `Fd` parameters to take. (None
        // came: an `Fd` parameter is told so.)
        let fds = fds.unwrap_or_default();
        // Channels the handler makes encode in the call's codec at once.
        let result = with_call(request.codec, call.context.get(), || {
            catch_unwind(AssertUnwindSafe(|| (endpoint.handler)(&call, fds, out)))
        });
        // The socket now goes on to the next call.
        if let Some(context) = call.context.get() {
            context.end();
        }
        match result {
            Ok(r) => r.map(|outcome| (outcome, carries_fds)),
            Err(panic) => {
                let name = &endpoint.info.name;
                let what = crate::error::panic_message(&*panic);
                tracing::error!(endpoint = %name, panic = %what, "handler panicked");
                // The panic text may say what the caller should not know
                // (a path, a value, the daemon's state): the log keeps it.
                let message = if self.panic_details {
                    format!("{name}() panicked: {what}")
                } else {
                    format!("{name}() failed: internal error (see the daemon's log)")
                };
                Err(RemoteError::new("RuntimeError", message))
            }
        }
    }
}

/// The earlier of two bounds, either of which may be absent: a few
/// branches, since every call asks.
#[inline]
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Checks that a call asks for a stream exactly when its endpoint
/// streams: a stream must never reach a client that does not expect one,
/// nor a single value be taken for a stream's end.
fn check_stream(request: &Request<'_>, streams: bool) -> Result<(), RemoteError> {
    let name = &request.endpoint;
    match (request.options.stream, streams) {
        (false, true) => Err(RemoteError::new(
            "TypeError",
            format!(
                "{name}() sends a stream of items: call it from a client that asks for \
                 streams (MessagePack or JSON, docs/PROTOCOL.md section 8.1), such as \
                 anyd's ClientSession::stream or anydctl"
            ),
        )),
        (true, false) => Err(RemoteError::new(
            "TypeError",
            format!("{name}() does not stream: call it for its one reply"),
        )),
        _ => Ok(()),
    }
}

/// Decodes the arguments of a request for an endpoint of `max_args`
/// parameters; a malformed request is a `ValueError` for its caller.
fn decode_args<'a>(
    head: RequestHead<'a>,
    max_args: usize,
    limits: &DecodeLimits,
) -> Result<Request<'a>, RemoteError> {
    head.decode_args(max_args, limits).map_err(|e| {
        // The detail may quote the payload: debug only.
        tracing::debug!(error = %e, "malformed request");
        RemoteError::new("ValueError", format!("malformed request: {e}"))
    })
}
