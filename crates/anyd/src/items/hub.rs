//! [`Hub`]: events a daemon publishes to every subscriber's stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::{Fill, Items, Sink, Source};
use crate::error::RemoteError;

/// A broadcast hub: what the daemon [`publish`](Hub::publish)es reaches
/// every subscriber, in order; each subscriber is a streaming endpoint's
/// [`Items`] ([`subscribe`](Hub::subscribe)).
///
/// Publishing never waits for a subscriber. The hub keeps the last
/// `capacity` events for subscribers that have not taken them yet (a
/// subscriber takes them as fast as its client reads); a subscriber that
/// falls further behind than that has missed events, and its stream ends
/// with a `Lagged` error saying how many (`data: {"missed": n}`): its
/// client knows that its view is incomplete, and subscribes again (and
/// reads the state afresh) if it wants to go on. Memory is the hub's
/// `capacity` events, shared by all subscribers, and a bounded buffer per
/// subscriber's connection.
///
/// Clones share the hub. Dropping every clone ends the subscribers'
/// streams well, after the events they have not taken yet.
///
/// ```
/// use anyd::{Appd, Hub};
/// use serde::Serialize;
///
/// #[derive(Clone, Serialize)]
/// struct Event { tunnel: String, up: bool }
///
/// let events = Hub::new(256);
/// let appd = Appd::new().api("watch()", {
///     let events = events.clone();
///     move || events.subscribe()
/// });
/// events.publish(Event { tunnel: "wg0".into(), up: true });
/// # let _ = appd;
/// ```
pub struct Hub<T> {
    tx: broadcast::Sender<Arc<T>>,
    capacity: usize,
}

impl<T> Clone for Hub<T> {
    fn clone(&self) -> Self {
        Hub {
            tx: self.tx.clone(),
            capacity: self.capacity,
        }
    }
}

impl<T> std::fmt::Debug for Hub<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("capacity", &self.capacity)
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl<T: Serialize + Send + Sync + 'static> Hub<T> {
    /// A hub that keeps up to `capacity` events for its slowest
    /// subscribers.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "anyd: a hub keeps at least one event");
        let (tx, _) = broadcast::channel(capacity);
        Hub { tx, capacity }
    }

    /// Publishes `event` to every subscriber, without waiting for any;
    /// returns how many there are.
    pub fn publish(&self, event: T) -> usize {
        self.tx.send(Arc::new(event)).unwrap_or(0)
    }

    /// How many subscribers the hub has now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A new subscriber: every event published from now on, as a
    /// streaming endpoint's items.
    pub fn subscribe(&self) -> Items<T> {
        Items::from_source(Box::new(Subscriber {
            rx: Some(self.tx.subscribe()),
            waiting: None,
            capacity: self.capacity,
        }))
    }
}

type Wait<T> =
    Pin<Box<dyn Future<Output = (Result<Arc<T>, RecvError>, broadcast::Receiver<Arc<T>>)> + Send>>;

struct Subscriber<T> {
    /// The receiver, while no wait holds it.
    rx: Option<broadcast::Receiver<Arc<T>>>,
    /// A wait for the next event, which holds the receiver until it is
    /// over.
    waiting: Option<Wait<T>>,
    capacity: usize,
}

impl<T> Subscriber<T> {
    fn lagged(&self, missed: u64) -> RemoteError {
        let data = vec![(
            anyd_wire::Value::Str("missed".into()),
            anyd_wire::Value::Int(missed.into()),
        )];
        RemoteError {
            kind: "Lagged".into(),
            message: format!(
                "this subscriber fell behind and missed {missed} events (the hub keeps {}): subscribe again",
                self.capacity
            ),
            data: Some(anyd_wire::Value::Map(data)),
        }
    }
}

impl<T: Serialize + Send + Sync + 'static> Source for Subscriber<T> {
    fn fill(&mut self, cx: &mut Context<'_>, sink: &mut Sink<'_>) -> Fill {
        loop {
            if let Some(wait) = self.waiting.as_mut() {
                let Poll::Ready((result, rx)) = wait.as_mut().poll(cx) else {
                    return Fill::Pending;
                };
                self.waiting = None;
                self.rx = Some(rx);
                match result {
                    Ok(event) => {
                        if let Err(e) = sink.push(&*event) {
                            return Fill::Done(Err(e));
                        }
                    }
                    Err(RecvError::Lagged(n)) => return Fill::Done(Err(self.lagged(n))),
                    Err(RecvError::Closed) => return Fill::Done(Ok(())),
                }
            }
            let Some(rx) = self.rx.as_mut() else {
                return Fill::Done(Ok(()));
            };
            // Everything already published, without waiting (a few items
            // with descriptors at a time, as a stream's other sources).
            while !sink.is_full() {
                match rx.try_recv() {
                    Ok(event) => {
                        if let Err(e) = sink.push(&*event) {
                            return Fill::Done(Err(e));
                        }
                    }
                    Err(TryRecvError::Lagged(n)) => return Fill::Done(Err(self.lagged(n))),
                    Err(TryRecvError::Closed) => return Fill::Done(Ok(())),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if sink.is_full() {
                return Fill::Full;
            }
            let mut rx = self.rx.take().expect("checked above");
            self.waiting = Some(Box::pin(async move {
                let result = rx.recv().await;
                (result, rx)
            }));
        }
    }
}
