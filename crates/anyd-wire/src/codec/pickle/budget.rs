//! The pickle decoder's working memory, in bytes: charged before each
//! allocation, given back when it is freed, and refused past an allowance
//! proportional to the input (docs/PROTOCOL.md section 7).
//!
//! Value counts (`PickleLimits`) bound what a pickle decodes to; they do
//! not bound what the decoder holds on the way, nor the bytes each value
//! takes. This module owns that arithmetic: how many bytes an allocation
//! takes, how a growing `Vec` is charged, and the allowance. It does not
//! know opcodes; the reader, the memo and the builder charge through it.

use super::PickleError;

/// Working memory the decoder may hold per byte of input, past
/// [`WORK_BYTES_FOR_ANY_INPUT`]: its arena, stack, marks and memo, and the
/// value it builds, counted as the allocator takes them (each allocation
/// rounded up to 16 bytes, plus 16 for the allocator's own header; a
/// growing buffer with the old copy still held). CPython's pickles of
/// plain data need at most about 60; see docs/PROTOCOL.md section 7.
pub const WORK_BYTES_PER_INPUT_BYTE: usize = 128;

/// Working memory any pickle may use, however short: room for the
/// [`super::NODES_FOR_ANY_INPUT`] values any input may decode to.
pub const WORK_BYTES_FOR_ANY_INPUT: usize = 1 << 20;

/// The bytes the decoder holds, against its allowance.
#[derive(Debug)]
pub(super) struct Budget {
    /// Bytes charged and not given back.
    held: usize,
    /// The most `held` has been, for tests and measurements.
    peak: usize,
    /// `held` may not pass this.
    allowance: usize,
}

impl Budget {
    /// The allowance of an input of `len` bytes.
    pub(super) fn for_input(len: usize) -> Budget {
        Budget {
            held: 0,
            peak: 0,
            allowance: len
                .saturating_mul(WORK_BYTES_PER_INPUT_BYTE)
                .saturating_add(WORK_BYTES_FOR_ANY_INPUT),
        }
    }

    /// Takes `bytes` from the allowance, before they are allocated.
    pub(super) fn charge(&mut self, bytes: usize) -> Result<(), PickleError> {
        let held = self.held.saturating_add(bytes);
        if held > self.allowance {
            return Err(PickleError::MemoryLimit(self.allowance));
        }
        self.held = held;
        self.peak = self.peak.max(held);
        Ok(())
    }

    /// Gives back `bytes` that were charged and are now freed.
    pub(super) fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }

    /// The most that was held at once.
    pub(super) fn peak(&self) -> usize {
        self.peak
    }
}

/// What an allocation of `count` items of `T` takes from the allocator:
/// its size rounded up to 16, plus 16 for the allocator's header (glibc's
/// malloc takes at least that much); nothing for an empty one, which
/// allocates nothing.
pub(super) fn heap<T>(count: usize) -> usize {
    let bytes = count.saturating_mul(std::mem::size_of::<T>());
    if bytes == 0 {
        0
    } else {
        bytes.div_ceil(16).saturating_mul(16).saturating_add(16)
    }
}

/// Makes room in `vec` for `additional` more items: if it must grow, its
/// new buffer (twice the old, or what is needed) is charged before it
/// exists, while the old one is still held (growing copies from one to the
/// other), and the old one is given back afterwards.
pub(super) fn room<T>(
    budget: &mut Budget,
    vec: &mut Vec<T>,
    additional: usize,
) -> Result<(), PickleError> {
    let old = vec.capacity();
    let need = vec.len().saturating_add(additional);
    if need <= old {
        return Ok(());
    }
    let new = need.max(old.saturating_mul(2)).max(4);
    budget.charge(heap::<T>(new))?;
    vec.reserve_exact(new - vec.len());
    // A Vec gets exactly the capacity asked for; should it ever get more,
    // the excess is charged too, so that `release` of its capacity later
    // matches what was charged.
    let got = vec.capacity();
    if got > new {
        budget.charge(heap::<T>(got) - heap::<T>(new))?;
    }
    budget.release(heap::<T>(old));
    Ok(())
}

/// What a `Vec` holds, to give back when it is dropped.
pub(super) fn held<T>(vec: &Vec<T>) -> usize {
    heap::<T>(vec.capacity())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_is_rounded_and_has_a_header() {
        assert_eq!(heap::<u8>(0), 0);
        assert_eq!(heap::<u8>(1), 32);
        assert_eq!(heap::<u8>(16), 32);
        assert_eq!(heap::<u8>(17), 48);
        assert_eq!(heap::<u64>(4), 48);
        assert_eq!(heap::<u64>(usize::MAX), usize::MAX);
    }

    #[test]
    fn growth_is_charged_with_both_buffers_and_settles_to_the_new_one() {
        let mut budget = Budget::for_input(0);
        let mut v: Vec<u64> = Vec::new();
        room(&mut budget, &mut v, 1).unwrap();
        assert_eq!(v.capacity(), 4);
        assert_eq!(budget.held, heap::<u64>(4));
        v.extend([1, 2, 3, 4]);
        room(&mut budget, &mut v, 1).unwrap();
        assert_eq!(v.capacity(), 8);
        assert_eq!(budget.held, heap::<u64>(8));
        assert_eq!(budget.peak(), heap::<u64>(4) + heap::<u64>(8));
        // Room that is there already costs nothing.
        room(&mut budget, &mut v, 4).unwrap();
        assert_eq!(budget.held, heap::<u64>(8));
        budget.release(held(&v));
        assert_eq!(budget.held, 0);
    }

    #[test]
    fn past_the_allowance_nothing_is_allocated() {
        let mut budget = Budget::for_input(1);
        let allowance = WORK_BYTES_FOR_ANY_INPUT + WORK_BYTES_PER_INPUT_BYTE;
        assert!(matches!(
            budget.charge(allowance + 1),
            Err(PickleError::MemoryLimit(a)) if a == allowance
        ));
        let mut v: Vec<u8> = Vec::new();
        assert!(room(&mut budget, &mut v, allowance).is_err());
        assert_eq!(v.capacity(), 0);
        assert_eq!(budget.held, 0);
        budget.charge(allowance).unwrap();
        assert!(budget.charge(1).is_err());
    }
}
