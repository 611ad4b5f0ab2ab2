//! A stream's frames as the session core reads them: the common case (an
//! item already buffered, straight to the caller) and the general one
//! (what a frame said, for [`Session::stream_step`](super::Session::stream_step)).

use std::os::fd::OwnedFd;

use anyd_wire::codec::{decode_stream_item, decode_stream_reply};
use anyd_wire::message::StreamReply;
use serde::de::DeserializeOwned;

use super::super::ClientOptions;
use crate::error::{Error, Result};
use crate::frame_buffer::{FrameBuffer, ReadError};
use crate::frame_context::decode_with_fds;
use crate::transport::fds::FdError;

/// The next frame of a stream if it is an item of type `T` already
/// buffered whole, taken; `None` leaves the frame (if any) to the general
/// path, [`stream_frame`] then [`Session::stream_step`](super::Session::stream_step), which says what it
/// is. An item changes nothing in the session's state, so a driver may
/// hand it out without those steps, and most of a stream's frames are
/// items in the buffer of one read.
#[inline(always)]
pub(crate) fn buffered_item<T: DeserializeOwned>(
    buf: &mut FrameBuffer,
    options: &ClientOptions,
) -> Option<T> {
    let (payload, consumed) = buf.plain_frame()?;
    let item = decode_stream_item(options.codec, payload, &options.decode_limits)?;
    buf.skip(consumed);
    Some(item)
}

/// What one frame of a stream said, before the session takes note of it
/// ([`Session::stream_step`](super::Session::stream_step)).
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// An item.
    Item(T),
    /// An item that does not fit the type asked for; the stream goes on.
    WrongType(Error),
    /// The stream ended well.
    End,
    /// The stream ended with this error reply.
    Failed(Error),
    /// The connection is unusable: closed, or out of step.
    Broken(Error),
}

/// Reads one frame of a stream: `read` as [`Exchange::reply`](super::Exchange::reply) takes it.
pub(crate) fn stream_frame<T: DeserializeOwned>(
    options: &ClientOptions,
    read: std::result::Result<Option<&[u8]>, ReadError>,
    fds: Option<std::result::Result<Vec<OwnedFd>, FdError>>,
) -> Step<T> {
    let fds = match received(fds) {
        Ok(fds) => fds,
        Err(e) => return Step::Broken(e),
    };
    let payload = match read {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Step::Broken(Error::protocol(
                "the daemon closed the connection before the end of the stream",
            ))
        }
        Err(e) => return Step::Broken(e.into_error("waiting for the stream's items")),
    };
    let decoded = decode_with_fds(fds, || {
        decode_stream_reply(options.codec, payload, &options.decode_limits)
    });
    match decoded {
        Ok(StreamReply::Item(v)) => Step::Item(v),
        Ok(StreamReply::End) => Step::End,
        Ok(StreamReply::Err(e)) => Step::Failed(Error::Remote(e)),
        Ok(_) => Step::Broken(Error::protocol("unknown stream frame")),
        Err(e) => match Error::from_decode(e) {
            e @ Error::ResultType(_) => Step::WrongType(e),
            e => Step::Broken(e),
        },
    }
}

/// The descriptors a frame's values may take: those that came with it
/// (none for a session that takes none, whose frames' descriptors, if a
/// daemon sends any, are closed unused).
pub(super) fn received(
    fds: Option<std::result::Result<Vec<OwnedFd>, FdError>>,
) -> Result<Vec<OwnedFd>> {
    match fds {
        None => Ok(Vec::new()),
        Some(Ok(fds)) => Ok(fds),
        Some(Err(e)) => Err(Error::protocol(format!("the daemon's reply: {e}"))),
    }
}
