//! An iterator run on a thread of its own ([`Items::from_iter`]), feeding
//! a channel that the connection drains; and what becomes of that thread
//! once the stream is over.
//!
//! An iterator cannot be stopped inside its `next`: the channel closes
//! when the stream ends, and the thread returns as soon as its current
//! `next` does, without calling it again. Until then it runs on. Its
//! connection either waits for it (the session goes on: at most one such
//! thread per connection) or, when the session is over (the client gone,
//! the daemon shutting down), leaves it behind ([`Source::detach`]): the
//! connection's thread, socket and buffers go at once, and the server
//! counts the thread left behind against its caller's share until it
//! ends (see `admission`). The thread holds none of the connection's
//! resources: only the iterator and the channel's sending side, whose
//! buffer the closing emptied.
//!
//! [`Items::from_iter`]: super::Items::from_iter

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use super::{Fill, Sink, Source};
use crate::error::RemoteError;

/// An iterator run on its own thread, feeding a channel that the
/// connection drains.
pub(super) struct Threaded {
    /// The producer, until the first fill starts it.
    start: Option<Box<dyn FnOnce() + Send>>,
    /// The channel's receiving side; [`Ended`] once the stream is over,
    /// which closes the channel.
    items: Box<dyn Source>,
    /// The producer's thread, while it may run.
    thread: Option<JoinHandle<()>>,
    /// What the thread says as it ends.
    exit: Arc<Exit>,
}

impl Threaded {
    /// A source that runs `start` on a thread of its own at the first
    /// fill; `start` sends into the channel whose receiving side is
    /// `items`.
    pub(super) fn new(start: Box<dyn FnOnce() + Send>, items: Box<dyn Source>) -> Self {
        Threaded {
            start: Some(start),
            items,
            thread: None,
            exit: Arc::default(),
        }
    }

    /// Closes the channel (the producer stops at its next send, or before
    /// its next `next`) and, if the thread has ended, reaps it. `Some`
    /// while it still runs.
    fn close(&mut self) -> Option<MutexGuard<'_, ExitState>> {
        self.items = Box::new(Ended);
        let thread = self.thread.take()?;
        let state = self.exit.lock();
        if state.done {
            drop(state);
            // Past its last act: the join returns at once.
            let _ = thread.join();
            return None;
        }
        self.thread = Some(thread);
        Some(state)
    }
}

impl Source for Threaded {
    fn runs_apart(&self) -> bool {
        true
    }

    fn fill(&mut self, cx: &mut Context<'_>, sink: &mut Sink<'_>) -> Fill {
        if let Some(start) = self.start.take() {
            let exiting = Exiting(self.exit.clone());
            let spawned = std::thread::Builder::new()
                .name("anyd-items".into())
                .spawn(move || {
                    // Said however the thread ends, after the iterator is
                    // dropped.
                    let _exiting = exiting;
                    // A panicking iterator ends its stream with an error
                    // (the sender sees the panic as it drops); the panic
                    // is the daemon's to log, not the thread's to print.
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(start)) {
                        tracing::error!(panic = %crate::error::panic_message(&*panic), "an iterator of items panicked");
                    }
                });
            match spawned {
                Ok(t) => self.thread = Some(t),
                Err(e) => {
                    return Fill::Done(Err(RemoteError::new(
                        "RuntimeError",
                        format!("cannot start the stream: {e}"),
                    )))
                }
            }
        }
        self.items.fill(cx, sink)
    }

    fn poll_stop(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.close() {
            None => Poll::Ready(()),
            Some(mut state) => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn detach(&mut self) -> Option<Detached> {
        let mut state = self.close()?;
        // Nobody waits for it any more: the connection's waker goes.
        state.waker = None;
        drop(state);
        // Dropping the handle leaves the thread to end on its own.
        self.thread = None;
        Some(Detached(self.exit.clone()))
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        // The channel's end first: the producer stops at its next send.
        // Never a join: the connection's thread must not wait for a
        // `next` (the server detaches a thread it leaves behind first,
        // to count it; see `detach`).
        self.items = Box::new(Ended);
    }
}

/// What a producer's thread says as it ends, to whoever waits for it.
#[derive(Default)]
struct Exit {
    state: Mutex<ExitState>,
}

#[derive(Default)]
struct ExitState {
    /// The thread has done its last act.
    done: bool,
    /// The connection, waiting for the thread to end.
    waker: Option<Waker>,
    /// What the thread holds while it runs on after its stream (its place
    /// in its caller's share), dropped as it ends.
    held: Option<Box<dyn Send>>,
}

impl Exit {
    fn lock(&self) -> MutexGuard<'_, ExitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producer thread's last act, on drop: done, whoever waits is woken,
/// and what it held is let go.
struct Exiting(Arc<Exit>);

impl Drop for Exiting {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.done = true;
        let waker = state.waker.take();
        let held = state.held.take();
        drop(state);
        drop(held);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A producer's thread left to end on its own (see [`Source::detach`]).
pub(crate) struct Detached(Arc<Exit>);

impl Detached {
    /// Keeps `held` until the thread ends (lets it go at once if it has
    /// ended already).
    pub(crate) fn hold(self, held: Box<dyn Send>) {
        let mut state = self.0.lock();
        if state.done {
            drop(state);
            drop(held);
        } else {
            state.held = Some(held);
        }
    }
}

/// A source with nothing left.
struct Ended;

impl Source for Ended {
    fn fill(&mut self, _: &mut Context<'_>, _: &mut Sink<'_>) -> Fill {
        Fill::Done(Ok(()))
    }
}
