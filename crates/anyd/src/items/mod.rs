//! Streaming endpoints: [`Items`], what a handler returns to send a stream
//! of values instead of one, and where those values come from (an
//! iterator, an async stream, a [`channel`] a producer feeds, a [`Hub`]
//! that publishes to every subscriber).
//!
//! This module owns the sources and how each hands over what it has ready:
//! already framed and encoded, as many items as are ready up to a bound, so
//! that the connection writes them all at once (docs/PROTOCOL.md section
//! 8.1). It does not own the socket: the connection's loop
//! (`server::stream`) polls a source, writes what it filled, watches for a
//! cancel, and stops the source when the stream is over (or, the session
//! over too, leaves what cannot be stopped to end on its own: see
//! `threaded`).

mod channel;
#[cfg(feature = "server")]
mod hub;
mod threaded;

pub use channel::{channel, ItemSender, StreamClosed};
#[cfg(feature = "server")]
pub use hub::Hub;
pub(crate) use threaded::Detached;
use threaded::Threaded;

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::frame_context::encode_with_fds;
use crate::transport::fds::Attached;
use anyd_wire::codec::encode_item;
use anyd_wire::{frame, Codec};
use futures_core::Stream;
use serde::Serialize;

use crate::api_error::ApiError;
use crate::error::RemoteError;

/// The values a streaming endpoint sends, one frame each, then the end.
///
/// A handler that returns `Items<T>` (or `Result<Items<T>, E>`, to refuse
/// before the stream starts) is a streaming endpoint: a client asks for
/// its items ([`ClientSession::stream`](crate::ClientSession::stream)) and
/// gets them as they come, then the end, or the error that ended the
/// stream. The daemon takes the next items only as the socket takes the
/// ones before (its memory per stream is bounded whatever the client's
/// speed), writes every item that is ready in one write, and drops the
/// source as soon as the client cancels, disconnects or the daemon shuts
/// down (an iterator blocked in `next` only once it returns: see
/// [`from_iter`](Self::from_iter)).
///
/// ```
/// use anyd::{Appd, Hub, Items};
///
/// let events: Hub<String> = Hub::new(64);
/// let hub = events.clone();
/// let appd = Appd::new()
///     // Computed on demand, from an iterator.
///     .api("count(n)", |n: u64| Items::from_iter(0..n))
///     // Whatever is published from now on.
///     .api("watch()", move || hub.subscribe());
/// events.publish("up".to_owned());
/// # let _ = appd;
/// ```
#[must_use = "an endpoint's items are sent only when the handler returns them"]
pub struct Items<T> {
    pub(crate) source: Box<dyn Source>,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Items<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Items").finish_non_exhaustive()
    }
}

impl<T: Serialize + Send + 'static> Items<T> {
    /// The items of an iterator, then the end.
    ///
    /// The iterator runs on a thread of its own, so that the connection
    /// can watch for a cancel while it computes (or waits): whatever it
    /// has yielded is on its way at once, many items to a write when they
    /// come fast (a fast run is gathered for 50 µs between writes, as a
    /// [`channel`]'s).
    ///
    /// # What a blocking iterator costs
    ///
    /// A thread cannot be stopped inside `next`. When the stream ends
    /// early, the iterator is asked for no more items and is dropped as
    /// soon as its current `next` returns; until then its thread runs on:
    ///
    /// - the client cancelled and goes on: its connection takes the next
    ///   request only once `next` has returned (a connection runs at most
    ///   one such thread);
    /// - the client has gone (or the daemon shuts down): its connection's
    ///   thread, socket and buffers are given back at once, but the
    ///   iterator's thread holds one of its caller's connection places
    ///   ([`max_connections_per_uid`](crate::Appd::max_connections_per_uid),
    ///   within [`max_connections`](crate::Appd::max_connections)) until
    ///   `next` returns, as well as a thread and whatever the iterator
    ///   holds.
    ///
    /// So an iterator that waits for an event that may never come (a
    /// message, a state change, a device) can keep a caller's share used
    /// up for as long. For items that wait on events, use a [`Hub`],
    /// [`from_stream`](Self::from_stream) (an async stream) or a
    /// [`channel`]: the first two are dropped at once when their client
    /// goes, and a channel's producer (your thread or task) learns it at
    /// its next send, or from [`ItemSender::is_closed`].
    // Not `FromIterator`: the iterator runs lazily on its own thread, so it
    // must be `Send + 'static`, which `FromIterator` cannot ask for.
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::try_from_iter(iter.into_iter().map(Ok::<T, RemoteError>))
    }

    /// The items of an iterator of results: the first error ends the
    /// stream and reaches the client like an error reply. As
    /// [`from_iter`](Self::from_iter) otherwise, what an iterator that
    /// blocks in `next` costs included.
    pub fn try_from_iter<I, E>(iter: I) -> Self
    where
        I: IntoIterator<Item = Result<T, E>>,
        I::IntoIter: Send + 'static,
        E: ApiError + 'static,
    {
        let iter = iter.into_iter();
        let (tx, items) = channel::<T>();
        let start = Box::new(move || {
            let mut iter = iter;
            // Not asked for another item once the stream is over; a
            // `next` under way when it ends is noticed at the send after
            // it.
            while let Some(item) = (!tx.is_closed()).then(|| iter.next()).flatten() {
                match item {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            // Cancelled: drop the iterator now.
                            return;
                        }
                    }
                    Err(e) => return tx.fail(e),
                }
            }
        });
        Self::from_source(Box::new(Threaded::new(start, items.source)))
    }

    /// The items of an iterator whose every item is ready at once (a
    /// collection, a computation), then the end: the fastest source.
    ///
    /// It runs on the connection's own thread, between the writes of its
    /// items, with no thread and no channel of its own: about twice the
    /// items a second of [`from_iter`](Self::from_iter). Its `next` must
    /// not wait (for events, a lock held long, a slow device): while it
    /// waits, the items before it are held back, and a cancel or a client
    /// gone is seen only when it returns. Use [`from_iter`](Self::from_iter)
    /// or a [`channel`] for those.
    pub fn ready<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::from_source(Box::new(Polled {
            stream: Box::pin(ReadyIter(Box::new(iter.into_iter()))),
            item: |v: T| Ok::<T, RemoteError>(v),
        }))
    }

    /// The items of an async stream, then the end.
    ///
    /// The stream is polled on the connection's thread within the daemon's
    /// tokio runtime (its timers and I/O work), and dropped (an async
    /// producer cancelled) as soon as the client cancels, disconnects or
    /// the daemon shuts down, whether or not an item is due.
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::from_source(Box::new(Polled {
            stream: Box::pin(stream),
            item: |v: T| Ok::<T, RemoteError>(v),
        }))
    }

    /// The items of an async stream of results: the first error ends the
    /// stream. As [`from_stream`](Self::from_stream) otherwise.
    pub fn try_from_stream<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        E: ApiError + 'static,
    {
        Self::from_source(Box::new(Polled {
            stream: Box::pin(stream),
            item: |r: Result<T, E>| r,
        }))
    }

    pub(crate) fn from_source(source: Box<dyn Source>) -> Self {
        Items {
            source,
            _item: PhantomData,
        }
    }
}

/// What a source did when asked for items.
#[derive(Debug)]
pub(crate) enum Fill {
    /// It filled the buffer up to the bound: write, then ask again.
    Full,
    /// Nothing more is ready (what was is in the buffer); the context's
    /// waker is called when there is.
    Pending,
    /// The stream is over (the buffer holds the items before the end):
    /// how it ended.
    Done(Result<(), RemoteError>),
}

/// Where a stream's items come from, type erased: it puts its ready items
/// in the sink until the sink is full.
pub(crate) trait Source: Send {
    fn fill(&mut self, cx: &mut Context<'_>, sink: &mut Sink<'_>) -> Fill;

    /// The stream is over and its session goes on: lets go of what the
    /// source runs. `Ready` once nothing of it runs any more; `Pending`
    /// while a thread it started is still busy (an iterator in its
    /// `next`), and the context's waker is called when it ends.
    fn poll_stop(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    /// The stream is over and nobody will wait for the source: what still
    /// runs of it (an iterator's thread in its `next`) is left to end on
    /// its own. `Some` when something was left running.
    fn detach(&mut self) -> Option<Detached> {
        None
    }

    /// Whether the items come from a thread of their own (a channel's
    /// producers, an iterator's thread), at their own pace rather than
    /// when the connection polls: the connection may then gather a fast
    /// run of them for a moment instead of being woken for each few.
    fn runs_apart(&self) -> bool {
        false
    }
}

/// How many items with descriptors a fill gathers before it stops, to be
/// written: as for replies, each holds its descriptors open until then.
pub(crate) const ITEMS_WITH_FDS_AT_ONCE: usize = 4;

/// Where a stream's fill puts its items: whole frames in the call's codec
/// appended to the connection's output, up to a bound, and each item's
/// descriptors beside its frame when the stream may carry some.
pub(crate) struct Sink<'a> {
    codec: Codec,
    out: &'a mut Vec<u8>,
    limit: usize,
    /// The items' descriptors, each with its frame's bytes in `out`
    /// (`None`: the stream carries none).
    fds: Option<&'a mut Attached>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(
        codec: Codec,
        out: &'a mut Vec<u8>,
        limit: usize,
        fds: Option<&'a mut Attached>,
    ) -> Self {
        Sink {
            codec,
            out,
            limit,
            fds,
        }
    }

    /// Whether the fill should stop and let the connection write: the
    /// bound is reached, or enough items with descriptors wait (each holds
    /// its descriptors open until written).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.out.len() >= self.limit
            || self
                .fds
                .as_ref()
                .is_some_and(|fds| fds.len() >= ITEMS_WITH_FDS_AT_ONCE)
    }

    /// Appends `value` as a framed item; an item that cannot be encoded
    /// ends the stream. In a stream that may carry descriptors, the
    /// item's go with its frame.
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RemoteError> {
        let out = &mut *self.out;
        let mark = frame::begin(out);
        let codec = self.codec;
        match encode_with_fds(self.fds.is_some(), || encode_item(codec, value, out)) {
            Ok(((), fds)) => {
                frame::finish(out, mark);
                if let (false, Some(attached)) = (fds.is_empty(), self.fds.as_mut()) {
                    attached.push((mark..out.len(), fds));
                }
                Ok(())
            }
            Err(e) => {
                out.truncate(mark);
                Err(RemoteError::new(
                    "RuntimeError",
                    format!("cannot encode an item: {e}"),
                ))
            }
        }
    }

    /// The call's codec.
    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// The output, for a source that hands over frames already made.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }
}

/// An async stream, polled where the connection is.
struct Polled<S, F> {
    stream: Pin<Box<S>>,
    item: F,
}

impl<S, F, R, T, E> Source for Polled<S, F>
where
    S: Stream<Item = R> + Send,
    F: Fn(R) -> Result<T, E> + Send,
    T: Serialize,
    E: ApiError,
{
    fn fill(&mut self, cx: &mut Context<'_>, sink: &mut Sink<'_>) -> Fill {
        while !sink.is_full() {
            match self.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(r)) => match (self.item)(r) {
                    Ok(v) => {
                        if let Err(e) = sink.push(&v) {
                            return Fill::Done(Err(e));
                        }
                    }
                    Err(e) => return Fill::Done(Err(e.into_remote())),
                },
                Poll::Ready(None) => return Fill::Done(Ok(())),
                Poll::Pending => return Fill::Pending,
            }
        }
        Fill::Full
    }
}

/// An iterator as a stream whose items are always ready (boxed, so that
/// any iterator is `Unpin`).
struct ReadyIter<I>(Box<I>);

impl<I: Iterator> Stream for ReadyIter<I> {
    type Item = I::Item;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.0.next())
    }
}
