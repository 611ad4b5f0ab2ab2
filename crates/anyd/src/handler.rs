//! Handlers: how a plain or async function of typed arguments becomes an
//! endpoint. Argument binding (positional, by keyword, optional) happens
//! here and only here; what the return value becomes is `reply.rs`'s.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyd_wire::codec::ArgError;
use anyd_wire::message::{Arg, Request};
use anyd_wire::Codec;
use serde::de::DeserializeOwned;

use crate::context::{Cancelled, Context, Watch};
use crate::endpoint_info::missing;
use crate::endpoint_info::{EndpointInfo, ParamInfo};
use crate::error::RemoteError;
use crate::frame_context::{decode_arg, decode_with_fds};
use crate::reply::{Async, IntoReply, Outcome};
use crate::transport::Peer;

/// The call being served, as argument binding reads it: the request,
/// the endpoint, the caller. Not something a handler takes: a handler's
/// parameters are wire arguments and [`Peer`] (see [`FromCall`]). Public
/// only because [`FromCall`]'s hidden methods name it.
pub struct Call<'a> {
    pub(crate) info: &'a EndpointInfo,
    pub(crate) request: &'a Request<'a>,
    pub(crate) peer: &'a Peer,
    pub(crate) runtime: &'a tokio::runtime::Handle,
    /// The reply (or a stream's items) may carry descriptors: the caller
    /// asked, over a Unix socket.
    pub(crate) carries_fds: bool,
    /// When the call is due, and the timeout that made it.
    pub(crate) deadline: Option<(Instant, Duration)>,
    /// The connection's socket, and the bytes read behind the request:
    /// what the context looks at for a CANCEL or the caller going.
    pub(crate) socket: Option<BorrowedFd<'a>>,
    pub(crate) behind: &'a [u8],
    /// The call's context, made when first needed.
    pub(crate) context: OnceLock<Context>,
}

impl Call<'_> {
    /// The codec of the request; the reply uses the same.
    pub fn codec(&self) -> Codec {
        self.request.codec
    }

    /// The caller.
    pub fn peer(&self) -> &Peer {
        self.peer
    }

    /// The call's context, made the first time it is asked for: most
    /// calls never need one.
    pub(crate) fn context(&self) -> &Context {
        self.context.get_or_init(|| {
            let options = &self.request.options;
            Context::new(
                self.deadline.map(|(at, _)| at),
                options.traceparent.clone(),
                options.tracestate.clone(),
                Watch::new(self.socket, self.behind),
                self.runtime.clone(),
            )
        })
    }

    /// The error that answers a call its caller no longer wants.
    pub(crate) fn cancelled_error(&self, why: Cancelled) -> RemoteError {
        match why {
            Cancelled::DeadlinePassed => {
                let ms = self.deadline.map_or(0, |(_, t)| t.as_millis());
                RemoteError::new(
                    "TimeoutError",
                    format!(
                        "{}() did not finish within its deadline ({ms} ms)",
                        self.info.name
                    ),
                )
            }
            why => RemoteError::new("Cancelled", why.to_string()),
        }
    }

    /// Runs an async handler's future to its end on the daemon's runtime,
    /// or drops it when the caller no longer wants it (a CANCEL, the
    /// caller gone, the deadline): connection threads are not runtime
    /// workers, so blocking on it here is allowed, and it keeps the reply
    /// in order with the rest of the connection's requests. A future done
    /// on its first poll costs no watch.
    fn run_async<F: Future>(&self, fut: F) -> Result<F::Output, RemoteError> {
        self.runtime.block_on(async {
            let mut fut = std::pin::pin!(fut);
            let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            if let Poll::Ready(out) = first {
                return Ok(out);
            }
            let context = self.context();
            tokio::select! {
                biased;
                out = &mut fut => Ok(out),
                why = context.cancelled() => Err(self.cancelled_error(why)),
            }
        })
    }

    /// The argument bound to parameter `index`: positional if the caller
    /// sent that many, otherwise by the parameter's name.
    fn arg(&self, index: usize) -> Option<&Arg<'_>> {
        if let Some(a) = self.request.args.get(index) {
            return Some(a);
        }
        let name = self.info.params.get(index)?.name.as_deref()?;
        self.request
            .kwargs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// How a parameter is named in error messages.
    fn param_name(&self, index: usize) -> Cow<'_, str> {
        match self.info.params.get(index).and_then(|p| p.name.as_deref()) {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Owned(format!("#{}", index + 1)),
        }
    }

    /// Checks the shape of the call against the parameters before any
    /// argument is decoded, with Python's wording for each mistake.
    pub(crate) fn check_shape(&self) -> Result<(), RemoteError> {
        let name = &self.info.name;
        let n = self.info.params.len();
        let given = self.request.positional;
        if given > n {
            let s = if n == 1 { "" } else { "s" };
            return Err(type_error(format!(
                "{name}() takes {n} positional argument{s} but {given} were given"
            )));
        }
        for (i, (key, _)) in self.request.kwargs.iter().enumerate() {
            let Some(index) = self
                .info
                .params
                .iter()
                .position(|p| p.name.as_deref() == Some(key))
            else {
                if self.info.params.iter().all(|p| p.name.is_none()) && n > 0 {
                    return Err(type_error(format!(
                        "{name}() takes no keyword arguments (its parameter names are not declared)"
                    )));
                }
                return Err(type_error(format!(
                    "{name}() got an unexpected keyword argument '{key}'"
                )));
            };
            let repeated = self.request.kwargs[..i].iter().any(|(k, _)| k == key);
            if index < given || repeated {
                return Err(type_error(format!(
                    "{name}() got multiple values for argument '{key}'"
                )));
            }
        }
        Ok(())
    }
}

fn type_error(message: String) -> RemoteError {
    RemoteError::new("TypeError", message)
}

/// What a handler may take as a parameter: a wire argument (any
/// `DeserializeOwned` type, decoded from the request, by position or by
/// keyword), the caller's [`Peer`], which the kernel tells the daemon, or
/// the call's [`Context`] (its deadline, whether the caller still wants
/// the reply).
///
/// This crate implements it for those three and no more; it is not meant to
/// be implemented elsewhere (its methods are hidden and may change), so a
/// handler cannot take a type of its own making other than a decoded
/// argument. What a handler needs beyond its arguments and its caller, it
/// captures: a closure holds an `Arc` of the daemon's state, an
/// [`#[anyd::api]`](macro@crate::api) method has `&self`.
pub trait FromCall: Sized {
    /// The parameter's introspection, or `None` when it is not a wire
    /// argument.
    #[doc(hidden)]
    fn param() -> Option<ParamInfo>;
    /// Takes the value for the wire parameter at `*index` (and advances it)
    /// or from the call itself.
    #[doc(hidden)]
    fn from_call(call: &Call<'_>, index: &mut usize) -> Result<Self, RemoteError>;
}

impl<T: DeserializeOwned> FromCall for T {
    fn param() -> Option<ParamInfo> {
        Some(ParamInfo {
            name: None,
            ty: short_type_name(std::any::type_name::<T>()),
            optional: missing::<T>().is_some(),
        })
    }

    fn from_call(call: &Call<'_>, index: &mut usize) -> Result<Self, RemoteError> {
        let i = *index;
        *index += 1;
        match call.arg(i) {
            Some(arg) => decode_arg(|| arg.deserialize()).map_err(|(e, fd_refused)| {
                // Say it in the caller's terms (Python's wording and type
                // names), not the decoder's. The type is read from the
                // argument's first byte or token: naming it must not cost
                // decoding all of it.
                let detail = match (e, arg.type_name()) {
                    // Nesting past the decoder's depth limit is the
                    // problem itself, whatever the outer type.
                    (e @ ArgError::TooDeep, _) => e.to_string(),
                    // A descriptor refused (none came, a placeholder
                    // naming none of the frame's, a value that is not
                    // one): the deserializer says which.
                    (e, _) if fd_refused => e.to_string(),
                    (_, Some(sent)) => format!(
                        "must be {}, not {sent}",
                        short_type_name(std::any::type_name::<T>()),
                    ),
                    (e, None) => e.to_string(),
                };
                type_error(format!(
                    "{}() argument '{}' {detail}",
                    call.info.name,
                    call.param_name(i)
                ))
            }),
            None => missing().ok_or_else(|| {
                type_error(format!(
                    "{}() missing required argument: '{}'",
                    call.info.name,
                    call.param_name(i)
                ))
            }),
        }
    }
}

impl FromCall for Peer {
    fn param() -> Option<ParamInfo> {
        None
    }
    fn from_call(call: &Call<'_>, _: &mut usize) -> Result<Self, RemoteError> {
        Ok(call.peer.clone())
    }
}

impl FromCall for Context {
    fn param() -> Option<ParamInfo> {
        None
    }
    fn from_call(call: &Call<'_>, _: &mut usize) -> Result<Self, RemoteError> {
        Ok(call.context().clone())
    }
}

/// A function or closure that can serve an endpoint: plain or async, of up
/// to 10 parameters, each a wire argument (`DeserializeOwned`) or a
/// [`Peer`], returning what [`IntoReply`] takes: a value,
/// `Result<T, E: ApiError>`, a stream, or a `Result` whose error is not an
/// `ApiError` but serializes (`String`, `&str`), which fails the call with
/// a `RuntimeError` carrying the error's text.
///
/// The type parameter `M` only tells the implementations apart; it is
/// always inferred.
#[diagnostic::on_unimplemented(
    message = "this function cannot serve an endpoint",
    label = "not an `anyd::Handler`",
    note = "an endpoint takes up to 10 parameters, each `serde::de::DeserializeOwned` or `anyd::Peer`, and returns a `serde::Serialize` value, `anyd::Items<T>` (a stream) or a `Result` of either whose error is an `anyd::ApiError` (a value's error may also be `String`, `&str` or another `serde::Serialize` type, sent as a `RuntimeError`), directly or from a future; it must be `Send + Sync + 'static`"
)]
pub trait Handler<M>: Send + Sync + 'static {
    /// The wire parameters (names are filled in from the signature).
    #[doc(hidden)]
    fn params() -> Vec<ParamInfo>;
    /// The introspected result type.
    #[doc(hidden)]
    fn returns() -> String;
    /// Whether the endpoint streams.
    #[doc(hidden)]
    fn streams() -> bool;
    /// Binds the arguments (`fds`: the descriptors that came with the
    /// request, for `Fd` parameters to take; the rest are closed before
    /// the handler runs), runs, and writes the reply value into `out` (or
    /// hands over the stream).
    #[doc(hidden)]
    fn call(
        &self,
        call: &Call<'_>,
        fds: Vec<OwnedFd>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, RemoteError>;
}

/// Binds a handler's parameters `$a` from `call`, with `fds` for the
/// `Fd`s among them: descriptors no parameter took are closed before the
/// handler runs.
macro_rules! bind_args {
    ($call:ident, $fds:ident, $($a:ident),*) => {
        decode_with_fds($fds, || -> Result<_, RemoteError> {
            let mut index = 0;
            $(let $a = $a::from_call($call, &mut index)?;)*
            Ok(($($a,)*))
        })?
    };
}

macro_rules! impl_handler {
    ($($a:ident),*) => {
        impl<F, R, M, $($a,)*> Handler<(M, PhantomData<($($a,)*)>)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: IntoReply<M>,
            $($a: FromCall,)*
        {
            fn params() -> Vec<ParamInfo> {
                let params: Vec<Option<ParamInfo>> = vec![$($a::param()),*];
                params.into_iter().flatten().collect()
            }
            fn returns() -> String {
                R::returns()
            }
            fn streams() -> bool {
                R::streams()
            }
            #[allow(non_snake_case, unused_variables, unused_mut)]
            fn call(
                &self,
                call: &Call<'_>,
                fds: Vec<OwnedFd>,
                out: &mut Vec<u8>,
            ) -> Result<Outcome, RemoteError> {
                let ($($a,)*) = bind_args!(call, fds, $($a),*);
                (self)($($a),*).reply(call, out)
            }
        }

        impl<F, Fut, M, $($a,)*> Handler<(Async, M, PhantomData<($($a,)*)>)> for F
        where
            F: Fn($($a),*) -> Fut + Send + Sync + 'static,
            Fut: Future,
            Fut::Output: IntoReply<M>,
            $($a: FromCall,)*
        {
            fn params() -> Vec<ParamInfo> {
                let params: Vec<Option<ParamInfo>> = vec![$($a::param()),*];
                params.into_iter().flatten().collect()
            }
            fn returns() -> String {
                <Fut::Output as IntoReply<M>>::returns()
            }
            fn streams() -> bool {
                <Fut::Output as IntoReply<M>>::streams()
            }
            #[allow(non_snake_case, unused_variables, unused_mut)]
            fn call(
                &self,
                call: &Call<'_>,
                fds: Vec<OwnedFd>,
                out: &mut Vec<u8>,
            ) -> Result<Outcome, RemoteError> {
                let ($($a,)*) = bind_args!(call, fds, $($a),*);
                call.run_async((self)($($a),*))?.reply(call, out)
            }
        }
    };
}

impl_handler!();
impl_handler!(A1);
impl_handler!(A1, A2);
impl_handler!(A1, A2, A3);
impl_handler!(A1, A2, A3, A4);
impl_handler!(A1, A2, A3, A4, A5);
impl_handler!(A1, A2, A3, A4, A5, A6);
impl_handler!(A1, A2, A3, A4, A5, A6, A7);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);

/// `alloc::vec::Vec<alloc::string::String>` -> `Vec<String>`: every path
/// keeps only its last segment.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            continue;
        }
        push_last_segment(&full[segment_start..i], &mut out);
        out.push(c);
        segment_start = i + c.len_utf8();
    }
    push_last_segment(&full[segment_start..], &mut out);
    out
}

fn push_last_segment(path: &str, out: &mut String) {
    out.push_str(path.rsplit("::").next().unwrap_or(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(
            short_type_name(std::any::type_name::<Vec<Option<String>>>()),
            "Vec<Option<String>>"
        );
        assert_eq!(
            short_type_name(std::any::type_name::<(
                i64,
                std::collections::HashMap<String, f64>
            )>()),
            "(i64, HashMap<String, f64>)"
        );
        assert_eq!(short_type_name("&[u8]"), "&[u8]");
    }

    #[test]
    fn only_options_are_optional() {
        assert!(missing::<Option<u8>>().is_some());
        assert!(missing::<u8>().is_none());
        assert!(missing::<String>().is_none());
        assert!(missing::<anyd_wire::Value>().is_none(), "absent is not nil");
        assert_eq!(missing::<()>(), Some(()));
    }
}
