//! The options of a request (docs/PROTOCOL.md section 8): what a call asks
//! beyond its endpoint and arguments, as one value.
//!
//! This module owns which options there are: [`RequestOptions`], declared
//! with `option_set!` as one list of `"key" => field: Type`, from which
//! come the struct and its table (`OptionSet`). The kind of value an option
//! takes (a boolean, an unsigned integer, a string) comes with its field's
//! type (`OptionField`). The codecs write and read the options map through
//! the table alone, whatever its keys: MessagePack and JSON each have one
//! `write_options`, and read the map with one function (MessagePack's
//! `read_options`; JSON's is [`RequestOptions`]'s `Deserialize`, here). So
//! an option is a line in that list, with its docs, and its row in
//! docs/PROTOCOL.md section 8; no codec changes for it.
//!
//! It knows no codec's bytes, only keys and kinds of values.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Declares a set of options from one list: the struct, a field for each
/// option with its docs, and the set's table (its [`OptionSet`] impl), so
/// that an option is declared once, as `"key" => field: Type`. The type
/// says what kind of value the option takes ([`OptionField`]).
///
/// The table is plain code, a line per option in each method, so that the
/// codecs' walks over it inline to what hand-written code for these keys
/// would be: no call through a pointer, no allocation.
macro_rules! option_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $key:literal => $field_vis:vis $field:ident: $ty:ty,
            )+
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[$field_meta])*
                $field_vis $field: $ty,
            )+
        }

        impl OptionSet for $name {
            const KEYS: &'static [&'static str] = &[$($key),+];

            const UNSET: Self = Self {
                $($field: <$ty as OptionField>::UNSET,)+
            };

            #[inline]
            fn each<'s>(&'s self, sink: &mut impl OptionSink<'s>) {
                $(
                    if let Some(value) = OptionField::get(&self.$field) {
                        sink.option($key, value);
                    }
                )+
            }

            #[inline]
            fn set<'k>(
                &mut self,
                key: &'k [u8],
                read: Result<OptionValue<'_>, &'static str>,
            ) -> Result<(), OptionError<'k>> {
                $(
                    if key == $key.as_bytes() {
                        return set_field(&mut self.$field, $key, read);
                    }
                )+
                Err(OptionError::Unknown(key))
            }
        }
    };
}

option_set! {
    /// What a request asks beyond the call itself: the options map, the
    /// optional fourth element of a request in a native codec
    /// (docs/PROTOCOL.md section 8). An option this implementation does
    /// not know is an error, so that a client learns that the daemon
    /// cannot do what it asked rather than getting something else.
    ///
    /// [`RequestOptions::NONE`] (the default) is the plain request, with
    /// no fourth element.
    ///
    /// Not `Copy`, so that an option may hold a string.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct RequestOptions {
        /// `stream`: the client accepts a stream of replies (section 8.1).
        "stream" => pub stream: bool,
        /// `fds`: the client speaks descriptors (section 8.2): the request
        /// may come with some, and its reply or items may carry some.
        "fds" => pub fds: bool,
        /// `timeout_ms`: the call is due within this many milliseconds of
        /// the daemon reading it (section 8.3): relative, so that no two
        /// clocks need agree. At most [`MAX_TIMEOUT_MS`].
        "timeout_ms" => pub timeout_ms: Option<TimeoutMs>,
        /// `traceparent`: the caller's W3C trace context (section 8.4),
        /// as the `traceparent` header carries it.
        "traceparent" => pub traceparent: Option<Box<str>>,
        /// `tracestate`: the vendor part of the caller's W3C trace context
        /// (section 8.4), sent only with `traceparent`.
        "tracestate" => pub tracestate: Option<Box<str>>,
    }
}

/// The longest a call may ask to be given, in milliseconds: a day. A
/// longer wait is no deadline a caller means; a caller that can wait for
/// ever sends none.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// The value of the `timeout_ms` option: milliseconds, at most
/// [`MAX_TIMEOUT_MS`] (a request asking more is refused, naming the
/// option). Held in 32 bits, which a day fits: every request carries the
/// options, and a smaller request is cheaper to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeoutMs(u32);

impl TimeoutMs {
    /// `ms` milliseconds, or `None` past [`MAX_TIMEOUT_MS`].
    pub const fn new(ms: u64) -> Option<TimeoutMs> {
        if ms <= MAX_TIMEOUT_MS {
            Some(TimeoutMs(ms as u32))
        } else {
            None
        }
    }

    /// A duration as the option carries it: whole milliseconds rounded
    /// up (a caller that allows 0.4 ms is not told it has 0), at most
    /// [`MAX_TIMEOUT_MS`].
    pub fn from_duration(d: std::time::Duration) -> TimeoutMs {
        let ms = d.as_nanos().div_ceil(1_000_000);
        let ms = u64::try_from(ms).unwrap_or(u64::MAX).min(MAX_TIMEOUT_MS);
        TimeoutMs(ms as u32)
    }

    /// The milliseconds.
    pub const fn millis(self) -> u64 {
        self.0 as u64
    }

    /// As a duration.
    pub const fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0 as u64)
    }
}

impl RequestOptions {
    /// No option: the plain three-element request.
    pub const NONE: RequestOptions = <RequestOptions as OptionSet>::UNSET;

    /// The key of every option this implementation knows, in the order
    /// they are written: what a daemon announces in `anyd.version`.
    pub const KEYS: &'static [&'static str] = <RequestOptions as OptionSet>::KEYS;

    /// These options, asking for a stream or not.
    #[must_use]
    pub const fn with_stream(mut self, on: bool) -> Self {
        self.stream = on;
        self
    }

    /// These options, speaking descriptors or not.
    #[must_use]
    pub const fn with_fds(mut self, on: bool) -> Self {
        self.fds = on;
        self
    }

    /// These options, with the call due within `timeout` (`None`: no
    /// deadline sent).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.timeout_ms = timeout.map(TimeoutMs::from_duration);
        self
    }

    /// Whether any option is set, so that the request needs its fourth
    /// element.
    #[inline]
    pub fn any(&self) -> bool {
        let mut any = false;
        self.each(&mut |_, _| any = true);
        any
    }
}

impl<'de> serde::Deserialize<'de> for RequestOptions {
    /// A map only, each key known (serde's derive would also take a list
    /// of the fields' values, and ignore unknown keys), each value of its
    /// option's kind. JSON reads the options so.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ReadOptions(PhantomData).deserialize(d)
    }
}

/// A set of options, declared with `option_set!`: [`RequestOptions`]
/// (and, in tests, a set with an option of every kind), which the codecs
/// write and read whatever it holds.
pub(crate) trait OptionSet: Sized {
    /// Every option's key, in the order they are written: plain ASCII
    /// (lower case letters and `_`) of at most 31 bytes, so that the
    /// codecs write a key as it is (MessagePack as a fixstr); at most 15
    /// of them, so that MessagePack writes the map's header as one byte.
    const KEYS: &'static [&'static str];

    /// Every option unset: what a request without options asks.
    const UNSET: Self;

    /// Gives `sink` each option that is set and its value, in the order
    /// of [`KEYS`](Self::KEYS): what a codec writes. An option that is not
    /// set (a boolean that is false, a number that is `None`) is left out.
    /// Unrolled, a call per option, so that each key and kind is a
    /// constant where a codec's sink, inlined, writes it.
    fn each<'s>(&'s self, sink: &mut impl OptionSink<'s>);

    /// Sets the option `key` (compared as bytes: a codec need not check
    /// that a key is UTF-8 to find it) to what a codec read: a value, or
    /// (as `Err`) what came instead, when it is no kind of value that
    /// options take (a list, say).
    ///
    /// # Errors
    ///
    /// [`OptionError::Unknown`] when no option has this key, whatever the
    /// value; [`OptionError::Kind`] when the value is not of the option's
    /// kind.
    fn set<'k>(
        &mut self,
        key: &'k [u8],
        read: Result<OptionValue<'_>, &'static str>,
    ) -> Result<(), OptionError<'k>>;
}

/// What [`OptionSet::each`] gives the options to: a codec's writer (whose
/// method should be `#[inline(always)]`), or a closure.
pub(crate) trait OptionSink<'s> {
    /// One option that is set, and its value.
    fn option(&mut self, key: &'static str, value: OptionValue<'s>);
}

impl<'s, F: FnMut(&'static str, OptionValue<'s>)> OptionSink<'s> for F {
    fn option(&mut self, key: &'static str, value: OptionValue<'s>) {
        self(key, value);
    }
}

/// The key of `O` that `key` is, to check it before its value is read
/// (JSON's way).
///
/// # Errors
///
/// [`OptionError::Unknown`] when no option has it.
pub(crate) fn lookup<O: OptionSet>(key: &[u8]) -> Result<&'static str, OptionError<'_>> {
    O::KEYS
        .iter()
        .find(|k| k.as_bytes() == key)
        .copied()
        .ok_or(OptionError::Unknown(key))
}

/// Sets `field`, the option `key`, to what a codec read (see
/// [`OptionSet::set`]).
#[inline]
fn set_field<'k>(
    field: &mut impl OptionField,
    key: &'static str,
    read: Result<OptionValue<'_>, &'static str>,
) -> Result<(), OptionError<'k>> {
    let found = match read {
        Ok(value) => {
            let found = field.refused(&value);
            if field.set(value) {
                return Ok(());
            }
            found
        }
        Err(found) => found,
    };
    Err(OptionError::Kind {
        key,
        takes: field.takes(),
        found,
    })
}

/// The value of an option as a codec carries it: the kinds of value an
/// option may take. Borrowed from the payload, or from the field it is
/// written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptionValue<'a> {
    /// A boolean (`stream`, `fds`).
    Bool(bool),
    /// An unsigned integer (a timeout in milliseconds, say).
    UInt(u64),
    /// A string (a trace context, say).
    Str(&'a str),
}

impl OptionValue<'_> {
    /// What this is, for an error: `"a boolean"`.
    fn what(&self) -> &'static str {
        match self {
            OptionValue::Bool(_) => "a boolean",
            OptionValue::UInt(_) => "an integer",
            OptionValue::Str(_) => "a string",
        }
    }
}

/// The type of an option's field, which says what kind of value the option
/// takes and when it is set.
pub(crate) trait OptionField: Sized {
    /// The option not set: what a request that does not name it asks.
    const UNSET: Self;
    /// The value to write, or `None` when the option is not set.
    fn get(&self) -> Option<OptionValue<'_>>;
    /// Takes a value read from a request; `false`, the field as it was,
    /// when the value is not of this option's kind.
    fn set(&mut self, value: OptionValue<'_>) -> bool;
    /// What this option takes, for an error: `"a boolean"`.
    fn takes(&self) -> &'static str;
    /// What `value` is, for the error when [`set`](Self::set) refuses
    /// it: its kind, unless the kind is right and the value is not.
    fn refused(&self, value: &OptionValue<'_>) -> &'static str {
        value.what()
    }
}

/// A flag: written when true, since absent means false (and a client may
/// send `false`).
impl OptionField for bool {
    const UNSET: Self = false;
    #[inline]
    fn get(&self) -> Option<OptionValue<'_>> {
        self.then_some(OptionValue::Bool(true))
    }
    #[inline]
    fn set(&mut self, value: OptionValue<'_>) -> bool {
        match value {
            OptionValue::Bool(on) => *self = on,
            _ => return false,
        }
        true
    }
    fn takes(&self) -> &'static str {
        "a boolean"
    }
}

/// An unsigned integer, absent when `None`.
impl OptionField for Option<u64> {
    const UNSET: Self = None;
    #[inline]
    fn get(&self) -> Option<OptionValue<'_>> {
        self.map(OptionValue::UInt)
    }
    #[inline]
    fn set(&mut self, value: OptionValue<'_>) -> bool {
        match value {
            OptionValue::UInt(n) => *self = Some(n),
            _ => return false,
        }
        true
    }
    fn takes(&self) -> &'static str {
        "an unsigned integer"
    }
}

/// Milliseconds of a deadline, absent when `None`: an unsigned integer
/// of at most [`MAX_TIMEOUT_MS`].
impl OptionField for Option<TimeoutMs> {
    const UNSET: Self = None;
    #[inline]
    fn get(&self) -> Option<OptionValue<'_>> {
        self.map(|t| OptionValue::UInt(t.millis()))
    }
    #[inline]
    fn set(&mut self, value: OptionValue<'_>) -> bool {
        match value {
            OptionValue::UInt(n) => match TimeoutMs::new(n) {
                Some(t) => *self = Some(t),
                None => return false,
            },
            _ => return false,
        }
        true
    }
    fn takes(&self) -> &'static str {
        "milliseconds, an unsigned integer of at most 86400000 (a day)"
    }
    fn refused(&self, value: &OptionValue<'_>) -> &'static str {
        match value {
            OptionValue::UInt(_) => "a larger one",
            other => other.what(),
        }
    }
}

/// A string, absent when `None`; owned, since the options outlive the
/// payload they were read from; a `Box<str>`, the smallest owned string,
/// since every request carries the options.
impl OptionField for Option<Box<str>> {
    const UNSET: Self = None;
    #[inline]
    fn get(&self) -> Option<OptionValue<'_>> {
        self.as_deref().map(OptionValue::Str)
    }
    #[inline]
    fn set(&mut self, value: OptionValue<'_>) -> bool {
        match value {
            OptionValue::Str(s) => *self = Some(s.into()),
            _ => return false,
        }
        true
    }
    fn takes(&self) -> &'static str {
        "a string"
    }
}

/// Why an options map was refused: a `ValueError` for the client
/// (docs/PROTOCOL.md section 8). Small and borrowed: nothing is built until
/// it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptionError<'k> {
    /// A key no option has.
    Unknown(&'k [u8]),
    /// A value of another kind than its option takes.
    Kind {
        /// The option.
        key: &'static str,
        /// What it takes.
        takes: &'static str,
        /// What came.
        found: &'static str,
    },
}

impl fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown(key) => {
                write!(
                    f,
                    "unknown request option {:?}",
                    String::from_utf8_lossy(key)
                )
            }
            OptionError::Kind { key, takes, found } => {
                write!(f, "request option {key:?} takes {takes}, not {found}")
            }
        }
    }
}

/// Reads an options map with serde, into any set of options: each key is
/// checked before its value is read, so that an unknown key is refused
/// where it stands.
pub(crate) struct ReadOptions<O>(pub(crate) PhantomData<O>);

impl<'de, O: OptionSet> DeserializeSeed<'de> for ReadOptions<O> {
    type Value = O;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<O, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, O: OptionSet> Visitor<'de> for ReadOptions<O> {
    type Value = O;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of request options")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<O, A::Error> {
        let mut options = O::UNSET;
        while let Some(key) = map.next_key_seed(ReadKey::<O>(PhantomData))? {
            map.next_value_seed(SetValue {
                options: &mut options,
                key,
            })?;
        }
        Ok(options)
    }
}

/// A key of the options map, read from the borrowed key without
/// allocating: the set's own key, or an error naming it.
struct ReadKey<O>(PhantomData<O>);

impl<'de, O: OptionSet> DeserializeSeed<'de> for ReadKey<O> {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<O: OptionSet> Visitor<'_> for ReadKey<O> {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request option's name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        lookup::<O>(key.as_bytes()).map_err(E::custom)
    }
}

/// A value of the options map, set into its option as it is read (a
/// string with escapes lives only as long as the visit): one of the kinds
/// options take, or what it is instead, for the error that names its
/// option.
struct SetValue<'o, O> {
    options: &'o mut O,
    key: &'static str,
}

impl<O: OptionSet> SetValue<'_, O> {
    fn set<E: de::Error>(self, read: Result<OptionValue<'_>, &'static str>) -> Result<(), E> {
        self.options
            .set(self.key.as_bytes(), read)
            .map_err(E::custom)
    }
}

impl<'de, O: OptionSet> DeserializeSeed<'de> for SetValue<'_, O> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, O: OptionSet> Visitor<'de> for SetValue<'_, O> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request option's value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.set(Ok(OptionValue::Bool(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.set(Ok(OptionValue::UInt(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.set(
            u64::try_from(v)
                .map(OptionValue::UInt)
                .map_err(|_| "a negative integer"),
        )
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.set(Err("a float"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.set(Ok(OptionValue::Str(v)))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.set(Err("bytes"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.set(Err("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.set(Err("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        self.set(Err("a list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        self.set(Err("a map"))
    }
}

#[cfg(test)]
pub(crate) mod tests;
