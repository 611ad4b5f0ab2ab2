//! The daemon-wide memory budget: the bytes that connections hold in
//! buffers for frames in progress and for replies not yet written, counted
//! across all connections, and what each buffer has drawn from it.
//!
//! It does not own the buffers (the connection loop and `framed` do), and
//! it does not decide what happens when the budget is spent: the
//! connection loop closes the connection whose buffer asked for more.
//!
//! Each buffer has a free allowance that is not counted: the small calls
//! of the steady state never touch the shared counter, and a connection
//! that only makes such calls can never be refused by the budget. Only
//! what a buffer holds beyond its allowance is drawn, so the budget is
//! touched (one atomic update) when a large message makes a buffer grow
//! and when the buffer is given back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes that connections may hold beyond their free allowances, for the
/// whole daemon.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes if that keeps the total within the limit.
    fn take(&self, n: usize) -> bool {
        // The count guards no other memory: relaxed is enough.
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// What connections hold from the budget right now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// What one buffer draws from a [`Budget`]: the part of its size beyond
/// its free allowance. Given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    /// How large the buffer may be without drawing on the budget.
    free: usize,
    /// What it holds from the budget now.
    held: usize,
}

impl Charge {
    pub(crate) fn new(budget: Arc<Budget>, free: usize) -> Charge {
        Charge {
            budget,
            free,
            held: 0,
        }
    }

    /// Accounts for the buffer being `bytes` long from now on: draws what
    /// it grew by beyond the allowance, gives back what it shrank by.
    /// Returns false, and changes nothing, if the budget cannot take the
    /// growth: the buffer must then not grow.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        let wanted = bytes.saturating_sub(self.free);
        if wanted > self.held {
            if !self.budget.take(wanted - self.held) {
                return false;
            }
        } else if wanted < self.held {
            self.budget.give_back(self.held - wanted);
        }
        self.held = wanted;
        true
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_within_the_allowance_is_free() {
        let budget = Arc::new(Budget::new(0));
        let mut c = Charge::new(budget.clone(), 100);
        assert!(c.hold(100));
        assert!(c.hold(0));
        assert_eq!(budget.used(), 0);
        assert!(!c.hold(101));
    }

    #[test]
    fn growth_beyond_it_is_drawn_and_given_back() {
        let budget = Arc::new(Budget::new(1000));
        let mut a = Charge::new(budget.clone(), 100);
        let mut b = Charge::new(budget.clone(), 100);
        assert!(a.hold(700));
        assert_eq!(budget.used(), 600);
        // The budget is spent for b's growth; b is left as it was.
        assert!(!b.hold(600));
        assert_eq!(budget.used(), 600);
        assert!(b.hold(500));
        assert_eq!(budget.used(), 1000);
        // Shrinking gives back; dropping gives back the rest.
        assert!(a.hold(300));
        assert_eq!(budget.used(), 600);
        drop(a);
        assert_eq!(budget.used(), 400);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
