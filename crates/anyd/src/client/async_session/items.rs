//! A stream's items on tokio ([`ItemStream`]): the buffered item taken
//! first, the general path's frames, a cancel, and the CANCEL sent at once
//! when the stream is dropped before its end.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use serde::de::DeserializeOwned;

use super::AsyncClientSession;
use crate::client::session::{buffered_item, stream_frame};
use crate::error::Result;

/// The items of a stream, from [`AsyncClientSession::stream`]: a
/// [`Stream`](futures_core::Stream) of `anyd::Result<T>` that ends with
/// the stream. Dropping it before the end cancels the stream.
///
/// It has its own `next` so that no extension trait is needed to read it;
/// it is also a `futures_core::Stream` for the combinators of `futures`
/// and `tokio-stream`.
///
/// Its `Debug` shows the session's state, never an item's bytes.
pub struct ItemStream<'s, T> {
    pub(super) client: &'s mut AsyncClientSession,
    pub(super) _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ItemStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemStream")
            .field("client", &self.client)
            .finish()
    }
}

impl<T: DeserializeOwned> ItemStream<'_, T> {
    /// The next item, `None` at the end of the stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a frame is taken only when it is returned.
    pub async fn next(&mut self) -> Option<Result<T>> {
        // An item already buffered needs no poll (see `poll_item`).
        if let Some(item) = self.buffered() {
            return Some(Ok(item));
        }
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// The next item if it is already buffered whole (and the stream is
    /// open): the common case of `next` and `poll_item`.
    #[inline(always)]
    fn buffered(&mut self) -> Option<T> {
        let session = &mut self.client.session;
        if !session.is_streaming() {
            return None;
        }
        let (conn, options) = session.reading()?;
        buffered_item(&mut conn.buf, options)
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        // As the blocking client's `ItemIter::next`: an item already
        // buffered goes straight to the caller.
        if let Some(item) = self.buffered() {
            return Poll::Ready(Some(Ok(item)));
        }
        self.poll_read(cx)
    }

    /// The general path, once no item is buffered whole: reads a frame
    /// and decides what it is (an item, the end, an error, descriptors).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let session = &mut self.client.session;
        if !session.is_streaming() {
            return Poll::Ready(None);
        }
        let speaks_fds = session.reads_fds();
        let Some((conn, options)) = session.reading() else {
            return Poll::Ready(None);
        };
        let read = ready!(conn.poll_frame(cx));
        let fds = conn.frame_fds(speaks_fds);
        let read = read.map(|r| r.map(|range| conn.buf.payload(range)));
        let step = stream_frame::<T>(options, read, fds);
        Poll::Ready(session.stream_step(step))
    }
}

impl<T> ItemStream<'_, T> {
    /// Cancels the stream and reads what was already on its way, so that
    /// the session serves calls again.
    ///
    /// # Errors
    ///
    /// As [`ItemIter::cancel`](crate::ItemIter::cancel).
    pub async fn cancel(self) -> Result<()> {
        self.client.settle().await
    }
}

impl<T> Drop for ItemStream<'_, T> {
    /// Sends the CANCEL at once, so that the daemon drops its producer now
    /// rather than at the session's next call (which reads what was on its
    /// way). Drop cannot wait: the CANCEL goes out only if the socket
    /// takes it whole without waiting, as it does unless the client has
    /// been writing (it has not: a stream is read); otherwise the next
    /// call sends it.
    fn drop(&mut self) {
        let session = &mut self.client.session;
        if !session.is_streaming() || session.is_cancel_sent() {
            return;
        }
        let Some(ex) = session.cancel() else {
            return;
        };
        match ex.conn.stream.try_write(ex.request) {
            Ok(n) if n == ex.request.len() => session.cancel_went_out(),
            // Nothing went out: the next call sends it.
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // Half a frame, or a broken socket: out of step.
            _ => session.close(),
        }
    }
}

impl<T: DeserializeOwned> futures_core::Stream for ItemStream<'_, T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        self.get_mut().poll_item(cx)
    }
}
