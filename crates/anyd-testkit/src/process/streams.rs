//! The streams of the test daemon: a hub of events, a channel nobody
//! sends on, and iterators stuck in `next` until the test lets them go.

use std::sync::{Condvar, LazyLock, Mutex};

use anyd::{Hub, ItemSender, Items};

/// Events every `ticks()` caller subscribes to.
pub(super) static HUB: LazyLock<Hub<String>> = LazyLock::new(|| Hub::new(1024));

/// The senders of `quiet()` streams.
static QUIET: Mutex<Vec<ItemSender<u64>>> = Mutex::new(Vec::new());

/// The most subscribers one of the events reached: a subscriber that
/// falls behind may be gone before the last one.
pub(super) fn publish(n: usize, size: usize) -> usize {
    let event = "e".repeat(size);
    let mut reached = 0;
    for _ in 0..n {
        reached = reached.max(HUB.publish(event.clone()));
    }
    reached
}

pub(super) fn quiet() -> Items<u64> {
    let (tx, items) = anyd::channel();
    QUIET.lock().unwrap().push(tx);
    items
}

/// How many `quiet()` streams the daemon still serves.
pub(super) fn open_channels() -> usize {
    let mut quiet = QUIET.lock().unwrap();
    quiet.retain(|tx| !tx.is_closed());
    quiet.len()
}

/// The `stuck()` iterators in their `next`, and how many times
/// `unstick()` let them go.
struct Stuck {
    waiting: usize,
    released: u64,
}

static STUCK: Mutex<Stuck> = Mutex::new(Stuck {
    waiting: 0,
    released: 0,
});
/// Signalled by `unstick()`.
static UNSTUCK: Condvar = Condvar::new();

/// Item 0, then a `next` that waits for an event only `unstick()` makes:
/// an iterator blocked in `next` for as long as the test wants. Let go, it
/// yields 1; a `next` called after that would wait again, for the next
/// `unstick()`.
pub(super) fn stuck() -> Items<u64> {
    Items::from_iter(std::iter::once(0).chain(std::iter::from_fn(|| {
        let mut stuck = STUCK.lock().unwrap();
        let seen = stuck.released;
        stuck.waiting += 1;
        while stuck.released == seen {
            stuck = UNSTUCK.wait(stuck).unwrap();
        }
        stuck.waiting -= 1;
        Some(1)
    })))
}

/// Lets every `stuck()` iterator in its `next` return; returns how many
/// there were.
pub(super) fn unstick() -> usize {
    let mut stuck = STUCK.lock().unwrap();
    stuck.released += 1;
    UNSTUCK.notify_all();
    stuck.waiting
}

/// How many `stuck()` iterators are in their `next` now.
pub(super) fn stuck_waiting() -> usize {
    STUCK.lock().unwrap().waiting
}
