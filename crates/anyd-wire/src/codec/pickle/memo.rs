//! The pickle memo: keys to arena indices, charged to the decoder's
//! budget.
//!
//! CPython numbers its memo entries 0, 1, 2, ... (MEMOIZE, and BINPUT or
//! LONG_BINPUT with the next key in protocols 2 and 3), so those live in
//! a plain vector, 8 bytes an entry. Any other key (LONG_BINPUT may name
//! any up to 2^32 - 1) goes to an ordered map, charged at what a B-tree
//! entry can take. This module owns that layout; the reader decides what
//! is stored and counts the references.

use std::collections::BTreeMap;

use super::budget::{held, room, Budget};
use super::PickleError;

/// What a B-tree map of `u64` to `usize` takes per entry, at most: every
/// node but the root holds at least 5 of its 11 entries (a leaf is 192
/// bytes, 208 with the allocator's header; an inner node 288, with at
/// least 6 children), so some 45 bytes an entry.
const SPARSE_ENTRY_BYTES: usize = 64;

/// What the first sparse entry costs besides: a root that may hold fewer
/// than 5 entries.
const SPARSE_ROOT_BYTES: usize = 512;

#[derive(Default)]
pub(super) struct Memo {
    /// Keys 0..len, in order.
    dense: Vec<usize>,
    /// Keys not in `dense`: never one below `dense.len()`.
    sparse: BTreeMap<u64, usize>,
    /// What `sparse` was charged.
    sparse_bytes: usize,
}

impl Memo {
    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        self.dense.len() + self.sparse.len()
    }

    pub(super) fn get(&self, key: u64) -> Option<usize> {
        match usize::try_from(key) {
            Ok(k) if k < self.dense.len() => self.dense.get(k).copied(),
            _ => self.sparse.get(&key).copied(),
        }
    }

    /// Stores `idx` under `key`; returns what it replaced, whose reference
    /// the memo no longer holds. `max` is the number of entries allowed.
    pub(super) fn put(
        &mut self,
        key: u64,
        idx: usize,
        max: usize,
        budget: &mut Budget,
    ) -> Result<Option<usize>, PickleError> {
        if let Some(old) = self.sparse.get_mut(&key) {
            return Ok(Some(std::mem::replace(old, idx)));
        }
        let at = usize::try_from(key).ok();
        if let Some(old) = at.and_then(|k| self.dense.get_mut(k)) {
            return Ok(Some(std::mem::replace(old, idx)));
        }
        if self.len() >= max {
            return Err(PickleError::MemoLimit(max));
        }
        if at == Some(self.dense.len()) {
            room(budget, &mut self.dense, 1)?;
            self.dense.push(idx);
        } else {
            let root = if self.sparse.is_empty() {
                SPARSE_ROOT_BYTES
            } else {
                0
            };
            budget.charge(SPARSE_ENTRY_BYTES + root)?;
            self.sparse_bytes += SPARSE_ENTRY_BYTES + root;
            self.sparse.insert(key, idx);
        }
        Ok(None)
    }

    /// Frees the memo, giving back what it was charged. The references it
    /// held are not counted down: nothing is freed after this.
    pub(super) fn free(self, budget: &mut Budget) {
        budget.release(held(&self.dense) + self.sparse_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_order_are_dense_others_sparse_and_both_are_found() {
        let mut budget = Budget::for_input(0);
        let mut memo = Memo::default();
        for key in 0..10 {
            assert_eq!(
                memo.put(key, 100 + key as usize, 1000, &mut budget)
                    .unwrap(),
                None
            );
        }
        assert_eq!(memo.put(0xffff_ffff, 7, 1000, &mut budget).unwrap(), None);
        // A sparse key that the dense part then reaches stays sparse.
        assert_eq!(memo.put(11, 8, 1000, &mut budget).unwrap(), None);
        assert_eq!(memo.put(10, 9, 1000, &mut budget).unwrap(), None);
        assert_eq!(memo.put(11, 10, 1000, &mut budget).unwrap(), Some(8));
        assert_eq!((memo.dense.len(), memo.sparse.len()), (11, 2));
        assert_eq!(memo.get(3), Some(103));
        assert_eq!(memo.get(10), Some(9));
        assert_eq!(memo.get(11), Some(10));
        assert_eq!(memo.get(0xffff_ffff), Some(7));
        assert_eq!(memo.get(12), None);
        assert_eq!(memo.put(3, 1, 1000, &mut budget).unwrap(), Some(103));
        assert_eq!(memo.len(), 13);
        assert!(matches!(
            memo.put(500, 1, 13, &mut budget),
            Err(PickleError::MemoLimit(13))
        ));
        // Replacing is not growth, even at the limit.
        assert_eq!(memo.put(11, 2, 13, &mut budget).unwrap(), Some(10));
    }
}
