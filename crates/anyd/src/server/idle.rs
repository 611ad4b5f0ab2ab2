//! The idle timeout between requests, kept for every connection by one
//! task of the daemon's runtime rather than by a read timeout on each
//! socket.
//!
//! Why: a read timeout (`SO_RCVTIMEO`) makes the kernel arm and cancel a
//! timer every time the connection's thread waits for a request, which is
//! once a call. Measured pinned to one CPU, that was 0.3 to 0.5 µs of a
//! 10 µs call, the largest cost anyd added to a call over the bare socket.
//! Here the thread only notes when it starts waiting ([`Waiting::start`])
//! and when the wait is over ([`Waiting::stop`]): a clock read and two
//! stores. The keeper ([`Keeper`]), a thread of its own, looks over the
//! connections every eighth of the timeout and cuts those that have
//! waited longer than it: a connection idle past its timeout is cut
//! within an eighth more. A thread rather than a task of the daemon's
//! runtime, so that a handler's task that blocks the runtime's one worker
//! does not stop idle connections from being cut.
//!
//! A frame in progress (its first bytes came, the rest did not yet) is not
//! the keeper's: the read of its rest has a deadline of its own, as before
//! (`Framed::read_frame_idle`). Neither is a stream being sent, whose
//! thread waits in `poll` with its own deadlines.
//!
//! The cut and the end of a wait cannot cross: the keeper cuts only a
//! wait it sees still under way, by swapping the time it started for
//! [`CUT`], and the thread ends its wait by swapping in [`NOT_WAITING`].
//! Whichever comes second sees what the first did: a request that arrives
//! as its connection is cut is not served (as one arriving as a read
//! timeout fired was not).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Shared;
use crate::framed::Wait;

/// `since` of a connection not waiting for a request.
const NOT_WAITING: u64 = u64::MAX;
/// `since` of a connection the keeper cut.
const CUT: u64 = u64::MAX - 1;

/// One connection's wait for its next request, shared by its thread and
/// the keeper.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// When the wait started, in milliseconds of [`now_ms`]; or
    /// [`NOT_WAITING`], or [`CUT`].
    since: AtomicU64,
}

impl Waiting {
    pub(crate) fn new() -> Arc<Waiting> {
        Arc::new(Waiting {
            since: AtomicU64::new(NOT_WAITING),
        })
    }
}

impl Wait for Waiting {
    /// The connection's thread is about to wait for a request.
    #[inline]
    fn start(&self) {
        // A cut stays a cut: the thread learns of it at `stop`.
        let _ = self
            .since
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != CUT).then(now_ms)
            });
    }

    /// The wait is over (a request came, or the socket says the peer is
    /// gone); false if the keeper cut the connection first, which then
    /// ends as idle.
    #[inline]
    fn stop(&self) -> bool {
        self.since.swap(NOT_WAITING, Ordering::AcqRel) != CUT
    }
}

impl Waiting {
    /// For the keeper: cuts the wait if it started `idle_ms` or more before
    /// `now`; true if it did (the caller then shuts the socket down).
    fn cut_if_over(&self, now: u64, idle_ms: u64) -> bool {
        let since = self.since.load(Ordering::Acquire);
        if since >= CUT || now.saturating_sub(since) < idle_ms {
            return false;
        }
        self.since
            .compare_exchange(since, CUT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Milliseconds since the first call, on the monotonic clock.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// How often the keeper looks: an eighth of the timeout, at least every
/// millisecond.
fn period(idle: Duration) -> Duration {
    (idle / 8).max(Duration::from_millis(1))
}

/// The thread that cuts every connection that has waited for a request
/// longer than the idle timeout, until [`stop`](Keeper::stop)ped.
pub(super) struct Keeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Keeper {
    /// Starts the keeper of `shared`'s connections.
    ///
    /// # Errors
    ///
    /// The thread cannot be started.
    pub(super) fn start(shared: Arc<Shared>, idle: Duration) -> std::io::Result<Keeper> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("anyd-idle".into())
            .spawn(move || keep(&shared, idle, &flag))?;
        Ok(Keeper {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the keeper and waits for its thread.
    pub(super) fn stop(mut self) {
        self.signal();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn signal(&self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }
}

impl Drop for Keeper {
    /// A keeper dropped without `stop` (the server's thread unwinding)
    /// still ends its thread, without waiting for it.
    fn drop(&mut self) {
        self.signal();
    }
}

/// The keeper's loop: every period, the connections waiting too long cut.
fn keep(shared: &Shared, idle: Duration, stop: &(Mutex<bool>, Condvar)) {
    let idle_ms = idle.as_millis().max(1) as u64;
    let (stopped, wake) = stop;
    let mut stopped = stopped.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let next = Instant::now() + period(idle);
        // Waits the period out, however often woken spuriously.
        while !*stopped {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stopped = wake
                .wait_timeout(stopped, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if *stopped {
            return;
        }
        let now = now_ms();
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cut_idle(|waiting| waiting.cut_if_over(now, idle_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_cut_only_once_over_and_only_while_under_way() {
        let w = Waiting::new();
        // Not waiting: never cut.
        assert!(!w.cut_if_over(u64::MAX / 2, 0));
        w.start();
        let started = w.since.load(Ordering::Acquire);
        assert!(!w.cut_if_over(started + 99, 100));
        assert!(w.cut_if_over(started + 100, 100));
        // Once: the thread learns at `stop`, and a new wait stays cut.
        assert!(!w.cut_if_over(started + 1000, 100));
        w.start();
        assert!(!w.stop());
        // A wait that ended before the keeper looked is not cut.
        w.start();
        assert!(w.stop());
        assert!(!w.cut_if_over(u64::MAX / 2, 0));
        assert!(w.stop());
    }

    #[test]
    fn the_keeper_looks_an_eighth_of_the_timeout_apart() {
        assert_eq!(period(Duration::from_secs(600)), Duration::from_secs(75));
        assert_eq!(period(Duration::from_millis(4)), Duration::from_millis(1));
    }
}
