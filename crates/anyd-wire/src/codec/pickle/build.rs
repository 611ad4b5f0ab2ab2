//! The decoder's second pass: from the arena's root to a [`Value`] tree
//! (or a [`Decoded`] exception), within the limits.
//!
//! Sharing is what lets a small pickle describe a huge or infinite tree,
//! so this is where depth, the value count and cycles are checked, and
//! where every byte of the value built is charged to the decoder's
//! budget. This module does not read opcodes.

use super::arena::{scalar_heap, Arena, Node};
use super::budget::{heap, Budget};
use super::{repr, Decoded, PickleError, PickleLimits};
use crate::Value;

/// Set in [`Builder::flags`] for a container being built right now:
/// meeting one again is a cycle.
const ON_PATH: u8 = 1;
/// Set for a scalar already built once: another copy is charged for its
/// size.
const SEEN: u8 = 2;

pub(super) struct Builder<'a> {
    arena: &'a Arena,
    limits: &'a PickleLimits,
    budget: &'a mut Budget,
    /// [`ON_PATH`] and [`SEEN`], by arena index.
    flags: Vec<u8>,
    /// Values built so far, as `PickleLimits::max_nodes` counts them.
    count: usize,
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        arena: &'a Arena,
        limits: &'a PickleLimits,
        budget: &'a mut Budget,
    ) -> Result<Builder<'a>, PickleError> {
        budget.charge(heap::<u8>(arena.slots()))?;
        Ok(Builder {
            arena,
            limits,
            budget,
            flags: vec![0; arena.slots()],
            count: 0,
        })
    }

    /// The root, which may be an exception.
    pub(super) fn root(&mut self, idx: usize) -> Result<Decoded, PickleError> {
        match self.arena.get(idx) {
            Ok(Node::Exception { kind, args }) => {
                self.charge(1)?;
                let args = self.seq(args, 1)?;
                let kind = (**kind).to_owned();
                let message = repr::message(&args);
                // The message is made before it can be charged: it is a
                // rendering of what was charged already, at most a few
                // bytes for each of its bytes or values.
                self.budget
                    .charge(heap::<u8>(kind.capacity()) + heap::<u8>(message.capacity()))?;
                Ok(Decoded::Exception {
                    kind,
                    message,
                    args,
                })
            }
            _ => Ok(Decoded::Value(self.value(idx, 0)?)),
        }
    }

    fn charge(&mut self, units: usize) -> Result<(), PickleError> {
        self.count = self.count.saturating_add(units);
        if self.count > self.limits.max_nodes {
            return Err(PickleError::TooManyValues(self.limits.max_nodes));
        }
        Ok(())
    }

    /// `depth` counts the containers around this node.
    pub(super) fn value(&mut self, idx: usize, depth: usize) -> Result<Value, PickleError> {
        let arena = self.arena;
        let node = arena.get(idx)?;
        self.charge(1)?;
        let flags = self.flags.get(idx).copied().unwrap_or(0);
        if let Node::Scalar(value) = node {
            if flags & SEEN != 0 {
                let size = match value {
                    Value::Str(s) => s.len(),
                    Value::Bytes(b) | Value::ByteArray(b) | Value::BigInt(b) => b.len(),
                    _ => 0,
                };
                self.charge(size / 64)?;
            } else if let Some(f) = self.flags.get_mut(idx) {
                *f |= SEEN;
            }
            self.budget.charge(scalar_heap(value))?;
            return Ok(value.clone());
        }
        match node {
            Node::Callable(c) => {
                return Err(PickleError::Malformed(format!(
                    "global {c} used as a value"
                )))
            }
            Node::Exception { .. } => return Err(PickleError::NestedException),
            _ => {}
        }
        if flags & ON_PATH != 0 {
            return Err(PickleError::Recursive);
        }
        if depth >= self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        self.set(idx, flags | ON_PATH);
        let inner = depth + 1;
        let value = match node {
            Node::List(items) => Value::List(self.seq(items, inner)?),
            Node::Tuple(items) => Value::Tuple(self.seq(items, inner)?),
            Node::Set(items) => Value::Set(self.seq(items, inner)?),
            Node::FrozenSet(items) => Value::FrozenSet(self.seq(items, inner)?),
            Node::Dict(entries) => {
                self.budget.charge(heap::<(Value, Value)>(entries.len()))?;
                let mut map = Vec::with_capacity(entries.len());
                for &(k, v) in entries {
                    map.push((self.value(k, inner)?, self.value(v, inner)?));
                }
                Value::Map(map)
            }
            Node::Scalar(_) | Node::Callable(_) | Node::Exception { .. } | Node::Free(_) => {
                return Err(PickleError::Malformed("unexpected node".to_owned()))
            }
        };
        self.set(idx, flags & !ON_PATH);
        Ok(value)
    }

    fn set(&mut self, idx: usize, flags: u8) {
        if let Some(f) = self.flags.get_mut(idx) {
            *f = flags;
        }
    }

    /// Items, into a vector of exactly their number (collecting through
    /// a `Result` would not know it, and could double the allocation).
    fn seq(&mut self, items: &[usize], depth: usize) -> Result<Vec<Value>, PickleError> {
        self.budget.charge(heap::<Value>(items.len()))?;
        let mut out = Vec::with_capacity(items.len());
        for &i in items {
            out.push(self.value(i, depth)?);
        }
        Ok(out)
    }
}
