//! Log lines that callers can cause, kept to a few: a flood of refused
//! connections, cut handshakes or denied calls must not become a flood of
//! log lines (a full disk, a journal that drops the lines that matter).
//!
//! One [`Throttle`] per kind of line: with one for all, a flood of one
//! kind (warnings about one user's refused connections) would hold back
//! the lines of another (the error that descriptors ran out). What a
//! throttle holds back is counted and the count goes with the next line
//! let through; call sites log what they hold back at debug level.
//!
//! This module decides whether to log, not what: the lines are the call
//! sites'.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets up to `burst` lines through at once, then one per interval (a
/// token bucket), counting the ones held back.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    burst: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Lines that may go now.
    tokens: u32,
    /// When `tokens` was last topped up (`None`: never used, full).
    refilled: Option<Instant>,
    /// Held back since the last line let through.
    held: u64,
}

impl Throttle {
    /// Up to `burst` lines at once, then one a second.
    pub(crate) const fn per_second(burst: u32) -> Self {
        Throttle::new(Duration::from_secs(1), burst)
    }

    pub(crate) const fn new(every: Duration, burst: u32) -> Self {
        Throttle {
            every,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                refilled: None,
                held: 0,
            }),
        }
    }

    /// `Some(how many were held back since the last one)` if this line
    /// should be logged; `None` if it is held back (and counted).
    pub(crate) fn let_through(&self) -> Option<u64> {
        self.let_through_at(Instant::now())
    }

    fn let_through_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.refilled {
            None => s.refilled = Some(now),
            Some(then) => {
                let every = self.every.as_nanos().max(1);
                let due = now.saturating_duration_since(then).as_nanos() / every;
                if due > 0 {
                    let due = u32::try_from(due).unwrap_or(u32::MAX);
                    s.tokens = s.tokens.saturating_add(due).min(self.burst);
                    s.refilled = Some(now);
                }
            }
        }
        if s.tokens == 0 {
            s.held += 1;
            return None;
        }
        s.tokens -= 1;
        Some(std::mem::take(&mut s.held))
    }
}

/// Logs a line at `$level` if `$throttle` lets it through, with the count
/// of those held back since as `held_back`; at debug level otherwise, so
/// that a debug log still has every one.
///
/// `throttled!(throttle, warn, peer = p, "connection refused")`
macro_rules! throttled {
    ($throttle:expr, $level:ident, $($line:tt)+) => {
        match $throttle.let_through() {
            Some(held_back) => tracing::$level!(held_back, $($line)+),
            None => tracing::debug!($($line)+),
        }
    };
}

pub(crate) use throttled;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_a_second_counting_what_it_holds_back() {
        let t = Throttle::new(Duration::from_secs(1), 1);
        let start = Instant::now();
        assert_eq!(t.let_through_at(start), Some(0));
        assert_eq!(t.let_through_at(start), None);
        assert_eq!(t.let_through_at(start + Duration::from_millis(999)), None);
        assert_eq!(t.let_through_at(start + Duration::from_secs(1)), Some(2));
        assert_eq!(t.let_through_at(start + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let t = Throttle::new(Duration::from_secs(1), 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.let_through_at(start), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(t.let_through_at(start), None);
        }
        // A second later, one more; ten seconds later, the burst again and
        // no more.
        let later = start + Duration::from_secs(1);
        assert_eq!(t.let_through_at(later), Some(100));
        assert_eq!(t.let_through_at(later), None);
        let much_later = later + Duration::from_secs(10);
        let through = (0..10)
            .filter(|_| t.let_through_at(much_later).is_some())
            .count();
        assert_eq!(through, 3);
    }
}
