//! Whether a type may hold an [`Fd`](super::Fd): asked by a client of a
//! call's result type (and of a stream's item type), so that it asks for
//! descriptors, and reads the reply with room for them, only when the
//! result can take one.
//!
//! Why: reading with `recvmsg` and room for ancillary data costs the
//! kernel some 0.35 µs a read more than a plain `recv` (measured pinned
//! to one CPU, against a bare socket's 9.2 µs round trip), and the
//! request's `fds` option costs both sides its bytes. A call whose result
//! is a `String` can never take a descriptor: it need pay neither.
//!
//! How: the type is deserialized from a [`Probe`], a deserializer that
//! makes up a value of whatever shape is asked for (zero, an empty
//! string, one element of each sequence, each field of each struct) while
//! `Fd`'s `Deserialize` fails whenever a probe is under way. A type that
//! deserializes without error holds no `Fd` on that path. Each variant of
//! each enum is tried, one run each, in every combination, as the
//! choices of earlier enums lead to later ones.
//!
//! "May" also covers what the type ignores: a value it skips whatever it
//! is (`IgnoredAny`, and the value of a field a struct does not know, for
//! which the probe offers each struct one key it does not know: serde's
//! structs take such fields unless `deny_unknown_fields`, and a newer
//! daemon's version of the struct may put a descriptor there). An `Fd`
//! met is noted as well as refused, so that a type whose own code
//! swallows the refusal (a lenient `deserialize_with`) still may.
//!
//! Whatever the probe cannot tell is "may" too: a type read through
//! `deserialize_any` (self-describing values, untagged and internally
//! tagged enums, flattened fields: their shape comes from the data), one
//! whose `Deserialize` refuses a made-up value or panics on one (a
//! validated newtype that refuses an empty string; integers are made up
//! as 1, so `NonZero` types pass), one nested deeper than [`MAX_DEPTH`]
//! (a recursive type), one with more enum combinations than
//! [`MAX_RUNS`]. "May" is what every call paid before: a `recvmsg` and
//! the option. A wrong "no" is the one failure that matters, and it is
//! not silent: the daemon answers a result holding a descriptor with an
//! error reply saying the client did not ask for descriptors.
//!
//! The probe runs the type's own `Deserialize` on made-up values, once
//! per type and thread: a `Deserialize` with side effects has them then,
//! and one that panics on such values (caught: it counts as may) shows
//! the panic hook's message, or aborts a program built with
//! `panic = "abort"`.
//!
//! Answers are kept per type and thread: a type is probed once.

use std::cell::{Cell, RefCell};

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// How deep a value may nest before the probe says "may": a recursive
/// type (a tree of nodes) would otherwise never end.
const MAX_DEPTH: usize = 24;

/// How many runs (combinations of enum variants) a type may take before
/// the probe says "may".
const MAX_RUNS: usize = 64;

/// How many types a thread keeps the answer for; past that, the oldest
/// answer goes.
const KEPT: usize = 64;

thread_local! {
    /// A probe is under way on this thread: an `Fd` refuses to deserialize.
    static PROBING: Cell<bool> = const { Cell::new(false) };
    /// The probe under way met what may hold a descriptor: an `Fd` (even
    /// if the type's code then swallowed its refusal), or a value the
    /// type ignores whatever it is.
    static MET: Cell<bool> = const { Cell::new(false) };
    /// Answers so far: a type's probe function's address, and the answer.
    static ANSWERS: RefCell<Vec<(usize, bool)>> = const { RefCell::new(Vec::new()) };
}

/// For `Fd`'s `Deserialize`: whether a probe is under way on this thread,
/// which then takes note that the type may hold an `Fd` (and the `Fd`
/// fails).
#[inline]
pub(crate) fn met_fd() -> bool {
    let probing = PROBING.get();
    if probing {
        MET.set(true);
    }
    probing
}

/// Whether a value of type `T` may hold an `Fd` (see the module's docs):
/// false only when deserializing a `T` provably never asks for one.
#[inline]
pub(crate) fn may_hold_fd<T: DeserializeOwned>() -> bool {
    // The address of the probe of `T` names `T`'s answer: distinct types
    // have distinct probes, and two probes the compiler folded into one
    // are the same machine code, so they answer alike.
    let key = probe::<T> as fn() -> bool as usize;
    let known = ANSWERS.with_borrow(|answers| {
        answers
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, answer)| answer)
    });
    if let Some(answer) = known {
        return answer;
    }
    // A `Deserialize` that panics on made-up values must not fail the
    // call that asked: it counts as may (the panic hook still prints).
    let answer = std::panic::catch_unwind(probe::<T>).unwrap_or(true);
    ANSWERS.with_borrow_mut(|answers| {
        if answers.len() == KEPT {
            answers.remove(0);
        }
        answers.push((key, answer));
    });
    answer
}

/// Probes `T`: every combination of enum variants, in both of serde's
/// representations (human-readable or not).
fn probe<T: DeserializeOwned>() -> bool {
    /// Ends the probe however `T`'s code ends, a panic included.
    struct Probing;
    impl Drop for Probing {
        fn drop(&mut self) {
            PROBING.set(false);
            MET.set(false);
        }
    }
    if PROBING.replace(true) {
        // A type's `Deserialize` asked about another type while probed:
        // too clever to tell.
        return true;
    }
    let _probing = Probing;
    MET.set(false);
    for human in [false, true] {
        let mut choices = Choices::default();
        let mut runs = 0;
        loop {
            runs += 1;
            if runs > MAX_RUNS {
                return true;
            }
            choices.next = 0;
            let mut probe = Probe {
                choices: &mut choices,
                depth: 0,
                human,
            };
            if T::deserialize(&mut probe).is_err() || MET.get() {
                return true;
            }
            if !choices.advance() {
                break;
            }
        }
    }
    false
}

/// The variants chosen for the enums met so far in a run, in the order
/// met, each with how many variants its enum has: an odometer, the last
/// enum turning fastest.
#[derive(Default)]
struct Choices {
    chosen: Vec<(usize, usize)>,
    /// The next enum of this run.
    next: usize,
}

impl Choices {
    /// The variant for the next enum met, which has `variants`.
    fn pick(&mut self, variants: usize) -> usize {
        let at = self.next;
        self.next += 1;
        match self.chosen.get(at) {
            Some(&(chosen, _)) => chosen,
            None => {
                self.chosen.push((0, variants));
                0
            }
        }
    }

    /// Turns the odometer; false once every combination was run.
    fn advance(&mut self) -> bool {
        // Enums past what this run met are not reached by its choices.
        self.chosen.truncate(self.next);
        while let Some((chosen, variants)) = self.chosen.pop() {
            if chosen + 1 < variants {
                self.chosen.push((chosen + 1, variants));
                return true;
            }
        }
        false
    }
}

/// The error of a probe: its words are never shown.
#[derive(Debug)]
struct Unknown;

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot tell")
    }
}

impl std::error::Error for Unknown {}

impl de::Error for Unknown {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Unknown
    }
}

/// A deserializer that makes up a value of the shape asked for.
struct Probe<'c> {
    choices: &'c mut Choices,
    depth: usize,
    human: bool,
}

impl Probe<'_> {
    /// A probe of a value one level deeper, or "cannot tell" past the
    /// depth bound.
    fn deeper(&mut self) -> Result<Probe<'_>, Unknown> {
        if self.depth >= MAX_DEPTH {
            return Err(Unknown);
        }
        Ok(Probe {
            choices: self.choices,
            depth: self.depth + 1,
            human: self.human,
        })
    }
}

/// `deserialize_*` methods that visit one made-up number.
macro_rules! made_up {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
            visitor.$visit($value)
        })*
    };
}

impl<'de> de::Deserializer<'de> for &mut Probe<'_> {
    type Error = Unknown;

    /// The shape comes from the data, which there is none of.
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Unknown> {
        Err(Unknown)
    }

    fn is_human_readable(&self) -> bool {
        self.human
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_bool(false)
    }

    // Integers are 1, not 0: `NonZero` types take it.
    made_up! {
        deserialize_i8 => visit_i8(1),
        deserialize_i16 => visit_i16(1),
        deserialize_i32 => visit_i32(1),
        deserialize_i64 => visit_i64(1),
        deserialize_i128 => visit_i128(1),
        deserialize_u8 => visit_u8(1),
        deserialize_u16 => visit_u16(1),
        deserialize_u32 => visit_u32(1),
        deserialize_u64 => visit_u64(1),
        deserialize_u128 => visit_u128(1),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_char('a')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_borrowed_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_string(String::new())
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_borrowed_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_byte_buf(Vec::new())
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_some(&mut self.deeper()?)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        visitor.visit_newtype_struct(&mut self.deeper()?)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_seq(Elements {
            probe: self.deeper()?,
            left: 1,
        })
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        visitor.visit_seq(Elements {
            probe: self.deeper()?,
            left: len,
        })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        self.deserialize_tuple(len, visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_map(Entries {
            probe: self.deeper()?,
            keys: Keys::Any(1),
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        visitor.visit_map(Entries {
            probe: self.deeper()?,
            keys: Keys::Fields(fields),
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        if variants.is_empty() {
            return Err(Unknown);
        }
        let chosen = self.choices.pick(variants.len());
        visitor.visit_enum(Variant {
            probe: self.deeper()?,
            name: variants[chosen],
        })
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        visitor.visit_borrowed_str("")
    }
    /// A value the type ignores, whatever it is: a descriptor among them.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unknown> {
        MET.set(true);
        visitor.visit_unit()
    }
}

/// The elements of a made-up sequence.
struct Elements<'c> {
    probe: Probe<'c>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = Unknown;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Unknown> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut self.probe).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The keys of a made-up map: a struct's fields, or made-up keys.
enum Keys {
    /// The fields of a struct not offered yet, then [`UNKNOWN_KEY`]: a
    /// struct that takes a key it does not know ignores its value, which
    /// a newer peer's version of the struct may make a descriptor (so it
    /// may hold one); one that refuses it (`deny_unknown_fields`) is whole
    /// without it.
    Fields(&'static [&'static str]),
    /// Made-up keys left.
    Any(usize),
}

/// The key offered as one a struct does not know.
const UNKNOWN_KEY: &str = "\u{0}anyd: a field this struct does not know";

/// The entries of a made-up map.
struct Entries<'c> {
    probe: Probe<'c>,
    keys: Keys,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Unknown;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Unknown> {
        match &mut self.keys {
            Keys::Any(0) => Ok(None),
            Keys::Fields([]) => {
                self.keys = Keys::Any(0);
                // `deny_unknown_fields`: the struct is whole without it.
                let key: de::value::StrDeserializer<'_, Unknown> = UNKNOWN_KEY.into_deserializer();
                Ok(seed.deserialize(key).ok())
            }
            Keys::Fields([field, rest @ ..]) => {
                self.keys = Keys::Fields(rest);
                seed.deserialize(field.into_deserializer()).map(Some)
            }
            Keys::Any(left) => {
                *left -= 1;
                seed.deserialize(&mut self.probe).map(Some)
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Unknown> {
        seed.deserialize(&mut self.probe)
    }
}

/// The variant chosen of a made-up enum.
struct Variant<'c> {
    probe: Probe<'c>,
    name: &'static str,
}

impl<'de, 'c> de::EnumAccess<'de> for Variant<'c> {
    type Error = Unknown;
    type Variant = Probe<'c>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Probe<'c>), Unknown> {
        let name = seed.deserialize(self.name.into_deserializer())?;
        Ok((name, self.probe))
    }
}

impl<'de> de::VariantAccess<'de> for Probe<'_> {
    type Error = Unknown;

    fn unit_variant(self) -> Result<(), Unknown> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        mut self,
        seed: S,
    ) -> Result<S::Value, Unknown> {
        seed.deserialize(&mut self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        de::Deserializer::deserialize_tuple(&mut self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        mut self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unknown> {
        de::Deserializer::deserialize_struct(&mut self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests;
