//! The first pass's stack, marks and memo: what each opcode pushes, pops
//! and stores, with the references the arena counts for each (a pushed or
//! stored index takes one, a popped one is the caller's to keep in a
//! container or drop) and the bytes the budget charges for each.
//!
//! This module owns those operations on the [`Reader`]; which opcode does
//! what is `decode.rs`'s.

use super::arena::{self, Node};
use super::budget::{heap, held, room};
use super::decode::{malformed, Reader};
use super::PickleError;
use crate::Value;

impl Reader<'_> {
    /// Counts `units` of work (a node made, or what REDUCE copies), which
    /// bounds the time a pickle takes beyond reading it.
    pub(super) fn spend(&mut self, units: usize) -> Result<(), PickleError> {
        self.work = self.work.saturating_add(units);
        if self.work > self.work_cap {
            return Err(PickleError::TooManyValues(self.limits.max_nodes));
        }
        Ok(())
    }

    pub(super) fn push_scalar(&mut self, value: Value) -> Result<(), PickleError> {
        self.push_node(Node::Scalar(value))
    }

    /// Pushes a scalar `make` builds from `len` input bytes, charging
    /// those bytes before it exists (then what it holds, should that
    /// differ).
    pub(super) fn push_made(
        &mut self,
        len: usize,
        make: impl FnOnce() -> Result<Value, PickleError>,
    ) -> Result<(), PickleError> {
        let charged = heap::<u8>(len);
        self.budget.charge(charged)?;
        let value = make()?;
        self.budget.release(charged);
        self.budget.charge(arena::scalar_heap(&value))?;
        self.push_scalar(value)
    }

    /// Stores a new node (its heap bytes already charged) and pushes it.
    pub(super) fn push_node(&mut self, node: Node) -> Result<(), PickleError> {
        self.spend(1)?;
        let idx = self.arena.add(node, self.budget)?;
        self.push(idx)
    }

    /// Pushes a reference to `idx`.
    pub(super) fn push(&mut self, idx: usize) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_nodes {
            return Err(PickleError::TooManyValues(self.limits.max_nodes));
        }
        room(self.budget, &mut self.stack, 1)?;
        self.stack.push(idx);
        self.arena.add_ref(idx);
        Ok(())
    }

    pub(super) fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Takes the top reference off the stack; the caller keeps it (in a
    /// container) or drops it ([`Arena::unref`]).
    pub(super) fn pop(&mut self, opname: &str) -> Result<usize, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(malformed(format!("stack underflow at {opname}")));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed(format!("stack underflow at {opname}")))
    }

    pub(super) fn top(&self, opname: &str) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(&top) if self.stack.len() > self.fence() => Ok(top),
            _ => Err(malformed(format!("stack underflow at {opname}"))),
        }
    }

    /// Closes the last MARK: the stack length it recorded.
    pub(super) fn mark(&mut self, opname: &str) -> Result<usize, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed(format!("{opname} without a MARK")))?;
        if mark > self.stack.len() {
            return Err(malformed(format!("stack underflow at {opname}")));
        }
        Ok(mark)
    }

    /// The references above the last MARK, taken off the stack into a
    /// vector of their own (charged).
    pub(super) fn pop_mark(&mut self, opname: &str) -> Result<Vec<usize>, PickleError> {
        let mark = self.mark(opname)?;
        self.budget.charge(heap::<usize>(self.stack.len() - mark))?;
        Ok(self.stack.split_off(mark))
    }

    /// Key and value pairs from `items` (DICT, SETITEMS), whose own
    /// vector is given back.
    pub(super) fn pairs(
        &mut self,
        items: Vec<usize>,
        opname: &str,
    ) -> Result<Vec<(usize, usize)>, PickleError> {
        if items.len() % 2 != 0 {
            return Err(malformed(format!("{opname} with an odd number of items")));
        }
        self.budget
            .charge(heap::<(usize, usize)>(items.len() / 2))?;
        let pairs = items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect();
        self.budget.release(held(&items));
        Ok(pairs)
    }

    pub(super) fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top("a memo store")?;
        self.arena.add_ref(top);
        if let Some(old) = self.memo.put(key, top, self.limits.max_memo, self.budget)? {
            self.arena.unref(old, self.budget)?;
        }
        Ok(())
    }

    pub(super) fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let idx = self
            .memo
            .get(key)
            .ok_or_else(|| malformed(format!("memo key {key} not found")))?;
        self.push(idx)
    }
}
