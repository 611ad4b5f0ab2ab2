//! Replies: what a handler's return value becomes. [`IntoReply`] for a
//! value, a `Result` (whose error is an [`ApiError`], or else read back
//! from its serde form), a stream. How the arguments are bound
//! and the handler is called is `handler.rs`'s.

use std::fmt;

use anyd_wire::codec::encode_reply_ok;
use serde::ser::{Impossible, Serializer};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::error::RemoteError;
use crate::frame_context::encode_with_fds;
use crate::handler::{short_type_name, Call};
use crate::items::{Items, Source};
use crate::transport::fds::OutFd;

/// Marks a handler that returns a plain value.
#[doc(hidden)]
pub enum Plain {}
/// Marks a handler that returns `Result<T, E: ApiError>`.
#[doc(hidden)]
pub enum Fallible {}
/// Marks an async handler.
#[doc(hidden)]
pub enum Async {}
/// Marks a handler that returns [`Items`].
#[doc(hidden)]
pub enum Streaming {}
/// Marks a handler that returns `Result<Items<T>, E: ApiError>`.
#[doc(hidden)]
pub enum FallibleStreaming {}

/// What a call made: a reply written, with the descriptors it carries,
/// or a stream to send. Opaque: only the framework makes and reads one.
#[doc(hidden)]
pub struct Outcome(pub(crate) Made);

/// What is inside an [`Outcome`].
pub(crate) enum Made {
    /// The reply's value is written; these descriptors go with it.
    Written(Vec<OutFd>),
    /// The items of this source follow, then the end.
    Stream(Box<dyn Source>),
}

/// What a handler returns: a serializable value, a `Result` whose error
/// is an [`ApiError`], or a stream of values ([`Items`], or a `Result` of
/// one).
///
/// A `Result` whose error is not an `ApiError` but serializes, such as
/// `Result<T, String>` or `Result<T, &str>`, is taken for what it means:
/// `Ok(v)` sends `v`, and `Err(e)` fails the call with kind
/// `RuntimeError` and `e` as its message (a string as it is, another type
/// as JSON). Give errors a kind of their own with [`ApiError`].
/// ([`#[anyd::api]`](macro@crate::api) methods, whose typed clients
/// return the error, need an `ApiError`.)
///
/// ```no_run
/// use anyd::Appd;
///
/// let server = Appd::new()
///     // The caller gets an error reply: RuntimeError, "no such device".
///     .api("get()", || -> Result<u8, String> { Err("no such device".into()) })
///     .bind("unix:/tmp/devd.sock")?;
/// # Ok::<(), anyd::Error>(())
/// ```
pub trait IntoReply<M> {
    /// The introspected result type (of the items, for a stream).
    #[doc(hidden)]
    fn returns() -> String;
    /// Whether the endpoint streams.
    #[doc(hidden)]
    fn streams() -> bool {
        false
    }
    /// Writes the reply value into `out`, or hands over the stream, or
    /// gives the error to send.
    #[doc(hidden)]
    fn reply(self, call: &Call<'_>, out: &mut Vec<u8>) -> Result<Outcome, RemoteError>;
}

/// Writes `value` as the reply into `out`; the descriptors it holds go
/// with it when the call may carry some (the caller asked, over a Unix
/// socket).
fn write_ok<T: Serialize + ?Sized>(
    value: &T,
    call: &Call<'_>,
    out: &mut Vec<u8>,
) -> Result<Outcome, RemoteError> {
    let codec = call.codec();
    encode_with_fds(call.carries_fds, || encode_reply_ok(codec, value, out))
        .map(|((), fds)| Outcome(Made::Written(fds)))
        .map_err(|e| RemoteError::new("RuntimeError", format!("cannot encode the result: {e}")))
}

/// A value, sent as the reply; but a `Result` whose error is not an
/// [`ApiError`] (a `String`, say: the `Fallible` implementation does not
/// apply to it) is read as the outcome it is, not sent as a value: `Ok(v)`
/// sends `v`, `Err(e)` an error reply (see [`result_error`]).
impl<T: Serialize> IntoReply<Plain> for T {
    fn returns() -> String {
        let name = short_type_name(std::any::type_name::<T>());
        match is_result::<T>().then(|| result_ok_type(&name)).flatten() {
            Some(ok) => ok.to_owned(),
            None => name,
        }
    }
    fn reply(self, call: &Call<'_>, out: &mut Vec<u8>) -> Result<Outcome, RemoteError> {
        if is_result::<T>() {
            if let Ok(outcome) = self.serialize(ResultReader { call, out }) {
                return outcome;
            }
        }
        write_ok(&self, call, out)
    }
}

impl<T: Serialize, E: ApiError> IntoReply<Fallible> for Result<T, E> {
    fn returns() -> String {
        short_type_name(std::any::type_name::<T>())
    }
    fn reply(self, call: &Call<'_>, out: &mut Vec<u8>) -> Result<Outcome, RemoteError> {
        match self {
            Ok(v) => write_ok(&v, call, out),
            Err(e) => Err(e.into_remote()),
        }
    }
}

impl<T: Serialize + Send + 'static> IntoReply<Streaming> for Items<T> {
    fn returns() -> String {
        short_type_name(std::any::type_name::<T>())
    }
    fn streams() -> bool {
        true
    }
    fn reply(self, _: &Call<'_>, _: &mut Vec<u8>) -> Result<Outcome, RemoteError> {
        Ok(Outcome(Made::Stream(self.source)))
    }
}

impl<T: Serialize + Send + 'static, E: ApiError> IntoReply<FallibleStreaming>
    for Result<Items<T>, E>
{
    fn returns() -> String {
        short_type_name(std::any::type_name::<T>())
    }
    fn streams() -> bool {
        true
    }
    fn reply(self, _: &Call<'_>, _: &mut Vec<u8>) -> Result<Outcome, RemoteError> {
        match self {
            Ok(items) => Ok(Outcome(Made::Stream(items.source))),
            Err(e) => Err(e.into_remote()),
        }
    }
}

/// Whether `T` is a `Result` (under any alias: `io::Result<T>` is one).
/// Its type name is a constant of the type, so for every other type this
/// is a constant `false`, and their replies pay nothing for it.
fn is_result<T: ?Sized>() -> bool {
    std::any::type_name::<T>().starts_with("core::result::Result<")
}

/// `u8` out of `Result<u8, String>` (a short type name): what the
/// endpoint returns when it succeeds, for introspection.
fn result_ok_type(short: &str) -> Option<&str> {
    let args = short.strip_prefix("Result<")?.strip_suffix('>')?;
    let mut depth = 0usize;
    for (i, c) in args.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => return Some(args[..i].trim()),
            _ => {}
        }
    }
    None
}

/// The error reply for `Err(e)` of a `Result` whose `E` is not an
/// [`ApiError`] but serializes: kind `RuntimeError` (what Python raises
/// for an error without a class of its own, and what a
/// `Box<dyn Error + Send + Sync>` gets), and the error as text for the
/// message: a string as it is (`Err("no such device".into())`), anything
/// else as JSON.
fn result_error<E: Serialize + ?Sized>(e: &E) -> RemoteError {
    let message = match serde_json::to_value(e) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(why) => format!("(an error that cannot be shown: {why})"),
    };
    RemoteError::new("RuntimeError", message)
}

/// A serializer that takes only a serde `Result`, the enum serde names
/// `Result` with the newtype variants `Ok` and `Err`: it writes the reply
/// for `Ok(v)` and gives the error for `Err(e)`, and refuses anything
/// else at its first step (a `Result` under another serialization, such
/// as a `#[serde(with)]`, then goes out as the value it serializes to).
struct ResultReader<'p, 'c> {
    call: &'p Call<'c>,
    out: &'p mut Vec<u8>,
}

/// What [`ResultReader`] says to anything but a `Result`.
#[derive(Debug)]
struct NotAResult;

impl fmt::Display for NotAResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a Result")
    }
}

impl std::error::Error for NotAResult {}

impl serde::ser::Error for NotAResult {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotAResult
    }
}

/// The methods of [`ResultReader`] for what is not a `Result`.
macro_rules! not_a_result {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, NotAResult> {
            Err(NotAResult)
        })*
    };
}

impl Serializer for ResultReader<'_, '_> {
    /// Written (`Ok`), or the error to send (`Err`).
    type Ok = Result<Outcome, RemoteError>;
    type Error = NotAResult;
    type SerializeSeq = Impossible<Self::Ok, NotAResult>;
    type SerializeTuple = Impossible<Self::Ok, NotAResult>;
    type SerializeTupleStruct = Impossible<Self::Ok, NotAResult>;
    type SerializeTupleVariant = Impossible<Self::Ok, NotAResult>;
    type SerializeMap = Impossible<Self::Ok, NotAResult>;
    type SerializeStruct = Impossible<Self::Ok, NotAResult>;
    type SerializeStructVariant = Impossible<Self::Ok, NotAResult>;

    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &V,
    ) -> Result<Self::Ok, NotAResult> {
        match (name, variant) {
            ("Result", "Ok") => Ok(write_ok(value, self.call, self.out)),
            ("Result", "Err") => Ok(Err(result_error(value))),
            _ => Err(NotAResult),
        }
    }

    fn serialize_some<V: Serialize + ?Sized>(self, _: &V) -> Result<Self::Ok, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_newtype_struct<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &V,
    ) -> Result<Self::Ok, NotAResult> {
        Err(NotAResult)
    }

    not_a_result! {
        serialize_bool(bool) -> Self::Ok;
        serialize_i8(i8) -> Self::Ok;
        serialize_i16(i16) -> Self::Ok;
        serialize_i32(i32) -> Self::Ok;
        serialize_i64(i64) -> Self::Ok;
        serialize_u8(u8) -> Self::Ok;
        serialize_u16(u16) -> Self::Ok;
        serialize_u32(u32) -> Self::Ok;
        serialize_u64(u64) -> Self::Ok;
        serialize_f32(f32) -> Self::Ok;
        serialize_f64(f64) -> Self::Ok;
        serialize_char(char) -> Self::Ok;
        serialize_str(&str) -> Self::Ok;
        serialize_bytes(&[u8]) -> Self::Ok;
        serialize_none() -> Self::Ok;
        serialize_unit() -> Self::Ok;
        serialize_unit_struct(&'static str) -> Self::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_told_by_their_type_name() {
        // The reading of `Result`s hangs on this: were the standard
        // library to name the type otherwise, this fails first.
        assert!(is_result::<Result<u8, String>>());
        assert!(is_result::<std::io::Result<()>>());
        assert!(!is_result::<Option<Result<u8, String>>>());
        assert!(!is_result::<String>());
    }

    #[test]
    fn the_ok_type_of_a_result() {
        assert_eq!(result_ok_type("Result<u8, String>"), Some("u8"));
        assert_eq!(
            result_ok_type("Result<HashMap<String, (u8, u16)>, Vec<String>>"),
            Some("HashMap<String, (u8, u16)>")
        );
        assert_eq!(result_ok_type("Vec<u8>"), None);
    }

    #[test]
    fn an_error_is_sent_as_text() {
        let e = result_error("no such device");
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("RuntimeError", "no such device")
        );
        #[derive(Serialize)]
        enum Why {
            Busy,
            Gone { since: u64 },
        }
        assert_eq!(result_error(&Why::Busy).message, "Busy");
        assert_eq!(
            result_error(&Why::Gone { since: 3 }).message,
            r#"{"Gone":{"since":3}}"#
        );
    }
}
