//! The globals a pickle may name, and what REDUCE makes of them: only the
//! data constructors and builtin exception classes of the module
//! documentation, each in the one call shape CPython's pickler writes.
//!
//! This module owns that closed list and the argument checks; the reader
//! calls it at GLOBAL, STACK_GLOBAL and REDUCE. Nothing here ever calls or
//! imports anything.

use super::arena::{Callable, Node};
use super::budget::heap;
use super::decode::{malformed, Reader};
use super::{PickleError, BUILTIN_EXCEPTIONS};
use crate::Value;

/// Keeps names from hostile input from making error messages huge.
fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

impl Reader<'_> {
    /// The allowed global `module.name`, or why it is refused.
    pub(super) fn resolve(&self, module: &str, name: &str) -> Result<Callable, PickleError> {
        let builtins = matches!(module, "builtins" | "__builtin__");
        let callable = match (module, name) {
            ("_codecs", "encode") => Some(Callable::CodecsEncode),
            (_, "bytes") if builtins => Some(Callable::Bytes),
            (_, "bytearray") if builtins => Some(Callable::ByteArray),
            (_, "set") if builtins => Some(Callable::Set),
            (_, "frozenset") if builtins => Some(Callable::FrozenSet),
            _ if builtins || module == "exceptions" => {
                match BUILTIN_EXCEPTIONS.iter().find(|&&n| n == name) {
                    Some(kind) if self.allow_exceptions => Some(Callable::Exception(kind)),
                    Some(kind) => {
                        return Err(PickleError::ExceptionNotAllowed {
                            module: module.to_owned(),
                            name: (*kind).to_owned(),
                        })
                    }
                    None => None,
                }
            }
            _ => None,
        };
        callable.ok_or_else(|| PickleError::ForbiddenGlobal {
            module: shorten(module),
            name: shorten(name),
        })
    }

    /// Applies an allowed global to its arguments, accepting only the
    /// argument shapes CPython's pickler writes for it. What the result
    /// copies is charged, in bytes to the budget and in work (one unit per
    /// child, or per 64 bytes); the children it shares get a reference
    /// each.
    pub(super) fn reduce(&mut self, callable: usize, args: usize) -> Result<Node, PickleError> {
        let callable = match self.arena.get(callable)? {
            Node::Callable(c) => *c,
            other => {
                return Err(malformed(format!(
                    "REDUCE on a {}, not an allowed global",
                    other.describe()
                )))
            }
        };
        let args = match self.arena.get(args)? {
            Node::Tuple(items) => items,
            other => {
                return Err(malformed(format!(
                    "REDUCE arguments for {callable} are a {}, not a tuple",
                    other.describe()
                )))
            }
        };
        let bad_args = || malformed(format!("unexpected arguments for {callable}"));
        let arg = |i: usize| -> Result<&Node, PickleError> {
            let idx = *args.get(i).ok_or_else(bad_args)?;
            self.arena.get(idx)
        };
        // What to make, and the bytes it will hold, before making it.
        let plan = match callable {
            Callable::CodecsEncode if args.len() == 2 => match (arg(0)?, arg(1)?) {
                (Node::Scalar(Value::Str(s)), Node::Scalar(Value::Str(enc))) if is_latin1(enc) => {
                    Plan::Latin1(s, Value::Bytes)
                }
                _ => return Err(bad_args()),
            },
            Callable::Bytes if args.is_empty() => Plan::Scalar(Value::Bytes(Vec::new())),
            Callable::ByteArray => match args.len() {
                0 => Plan::Scalar(Value::ByteArray(Vec::new())),
                1 => match arg(0)? {
                    Node::Scalar(Value::Bytes(b)) => Plan::ByteArray(b),
                    _ => return Err(bad_args()),
                },
                2 => match (arg(0)?, arg(1)?) {
                    (Node::Scalar(Value::Str(s)), Node::Scalar(Value::Str(enc)))
                        if is_latin1(enc) =>
                    {
                        Plan::Latin1(s, Value::ByteArray)
                    }
                    _ => return Err(bad_args()),
                },
                _ => return Err(bad_args()),
            },
            Callable::Set | Callable::FrozenSet => match args.len() {
                0 => Plan::Items(callable, &[]),
                1 => match arg(0)? {
                    Node::List(items) => Plan::Items(callable, items),
                    _ => return Err(bad_args()),
                },
                _ => return Err(bad_args()),
            },
            Callable::Exception(kind) => Plan::Exception(kind, args),
            _ => return Err(bad_args()),
        };
        // Charge the copy: one memoized list or str could otherwise be
        // copied by every one of thousands of tiny REDUCEs.
        let (units, bytes) = match &plan {
            Plan::Scalar(_) => (0, 0),
            Plan::Latin1(s, _) => (s.len() / 64, heap::<u8>(s.chars().count())),
            Plan::ByteArray(b) => (b.len() / 64, heap::<u8>(b.len())),
            Plan::Items(_, items) | Plan::Exception(_, items) => {
                (items.len(), heap::<usize>(items.len()))
            }
        };
        self.budget.charge(bytes)?;
        let node = match plan {
            Plan::Scalar(v) => Node::Scalar(v),
            Plan::Latin1(s, make) => Node::Scalar(make(latin1(s)?)),
            Plan::ByteArray(b) => Node::Scalar(Value::ByteArray(b.to_vec())),
            Plan::Items(Callable::FrozenSet, items) => Node::FrozenSet(items.to_vec()),
            Plan::Items(_, items) => Node::Set(items.to_vec()),
            Plan::Exception(kind, items) => Node::Exception {
                kind,
                args: items.into(),
            },
        };
        let shared: &[usize] = match &node {
            Node::Set(c) | Node::FrozenSet(c) => c,
            Node::Exception { args, .. } => args,
            _ => &[],
        };
        for &child in shared {
            self.arena.add_ref(child);
        }
        self.spend(units)?;
        Ok(node)
    }
}

/// What a REDUCE makes, borrowed from its arguments until it is charged.
enum Plan<'n> {
    /// A value with nothing to copy.
    Scalar(Value),
    /// Bytes (or a bytearray) from a latin-1 str.
    Latin1(&'n str, fn(Vec<u8>) -> Value),
    /// A bytearray copied from bytes.
    ByteArray(&'n [u8]),
    /// A set or frozenset sharing these items.
    Items(Callable, &'n [usize]),
    /// An exception with these args.
    Exception(&'static &'static str, &'n [usize]),
}

fn is_latin1(encoding: &str) -> bool {
    matches!(encoding, "latin1" | "latin-1" | "latin_1")
}

/// What `_codecs.encode(s, "latin1")` returns: one byte per char below 256.
fn latin1(s: &str) -> Result<Vec<u8>, PickleError> {
    let mut out = Vec::with_capacity(s.chars().count());
    for c in s.chars() {
        let byte = u8::try_from(u32::from(c))
            .map_err(|_| malformed("_codecs.encode of a str beyond latin-1"))?;
        out.push(byte);
    }
    Ok(out)
}
