//! The connection thread's I/O as the core sees it: writing what the
//! core holds (due as a whole), and what a failed read or write means for
//! the session, logged as callers can cause it. Shared by `session` and
//! `stream`, which otherwise know nothing of each other's loops.

use std::io;
use std::time::Duration;

use crate::frame_buffer::ReadError;
use crate::framed::{self, Framed};
use crate::throttle::throttled;
use crate::transport::fds::FdError;
use crate::transport::Peer;

use super::connection::{Connection, End};
use super::Shared;

/// Writes what the core has to write, as a whole within `within` however
/// slowly the client reads (see `framed::write_out`).
#[inline]
pub(super) fn write(
    conn: &mut Framed,
    core: &mut Connection<'_>,
    within: Option<Duration>,
) -> Result<(), End> {
    if !core.has_output() {
        core.written();
        return Ok(());
    }
    let (out, attached) = core.output();
    let result = framed::write_out(&mut conn.stream, out, attached, within);
    core.written();
    result.map_err(|e| write_failed(&e))
}

/// Why reading a frame failed (a timeout aside), logged as callers can
/// cause it: a few lines a second.
pub(super) fn read_failed(shared: &Shared, peer: &Peer, e: ReadError) -> End {
    match e {
        ReadError::Io(e) if e.kind() == io::ErrorKind::OutOfMemory => {
            throttled!(
                shared.logs.over_budget,
                info,
                peer = peer.address(),
                "a frame over the memory budget; closing"
            );
            End::OverBudget
        }
        ReadError::Io(e) => match FdError::of(&e) {
            Some(e) => {
                throttled!(
                    shared.logs.bad_input,
                    info,
                    peer = peer.address(),
                    uid = peer.uid(),
                    error = %e,
                    "descriptors refused; closing"
                );
                End::BadDescriptors
            }
            None => End::ConnectionError,
        },
        ReadError::Frame(e) => {
            throttled!(
                shared.logs.bad_input,
                info,
                peer = peer.address(),
                error = %e,
                "bad frame; closing"
            );
            End::BadFrame
        }
    }
}

/// Why a write of replies failed.
pub(super) fn write_failed(e: &io::Error) -> End {
    if e.kind() == io::ErrorKind::TimedOut {
        End::ReplyTimeout
    } else {
        End::WriteFailed
    }
}
