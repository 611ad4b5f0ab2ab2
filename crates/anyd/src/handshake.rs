//! Driving a handshake of the wire layer (`anyd_wire::handshake`) over
//! frames, for either side: what to send when, what a frame that comes
//! means, and what each way of failing is reported as. One driver for the
//! server and both clients; it does no I/O itself.
//!
//! It owns the order of the exchange (the opening frame, a frame out for
//! each frame in as the side asks, the last word of a failed handshake
//! sent before closing) and the errors of a handshake. The messages and
//! the digests are the wire layer's; reading, writing, the frame cap and
//! the deadline are the caller's (`framed::handshake` blocking, the async
//! client on tokio).

use std::io;
use std::ops::Range;

use anyd_wire::frame::{self, FrameError};
#[cfg(feature = "client")]
use anyd_wire::handshake::ClientHandshake;
#[cfg(feature = "server")]
use anyd_wire::handshake::ServerHandshake;
use anyd_wire::handshake::{Handshake, HandshakeOptions, CHALLENGE_RANDOM_LEN};

use crate::error::Error;
use crate::frame_buffer::ReadError;

/// Fresh challenge bytes from the OS.
fn challenge_random() -> io::Result<[u8; CHALLENGE_RANDOM_LEN]> {
    let mut random = [0u8; CHALLENGE_RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(random)
}

/// The daemon's side, with a fresh challenge.
#[cfg(feature = "server")]
pub(crate) fn server_side(
    authkey: &[u8],
    options: HandshakeOptions,
) -> io::Result<ServerHandshake> {
    Ok(ServerHandshake::new(authkey, options, challenge_random()?))
}

/// A client's side, with a fresh challenge.
#[cfg(feature = "client")]
pub(crate) fn client_side(
    authkey: &[u8],
    options: HandshakeOptions,
) -> io::Result<ClientHandshake> {
    Ok(ClientHandshake::new(authkey, options, challenge_random()?))
}

/// A handshake under way. The caller loops: send [`to_send`](Self::to_send)
/// if not empty, stop once [`is_done`](Self::is_done), otherwise read the
/// next frame and [`receive`](Self::receive) it; after a failed `receive`,
/// `to_send` is the last word for the peer, best effort, before closing.
#[derive(Debug)]
pub(crate) struct HandshakeRun<'s, H> {
    side: &'s mut H,
    /// Whole frames for the peer, not yet handed to the caller's writes.
    out: Vec<u8>,
    /// The side has accepted the peer; nothing more comes in.
    done: bool,
}

impl<'s, H: Handshake> HandshakeRun<'s, H> {
    /// Starts the side: the server's challenge is the first thing to send.
    pub(crate) fn start(side: &'s mut H) -> Self {
        let mut out = Vec::new();
        if let Some(first) = side.start() {
            frame::encode(&first, &mut out);
        }
        HandshakeRun {
            side,
            out,
            done: false,
        }
    }

    /// Frames to write before anything else happens.
    pub(crate) fn to_send(&self) -> &[u8] {
        &self.out
    }

    /// The caller wrote all of [`to_send`](Self::to_send).
    pub(crate) fn sent(&mut self) {
        self.out.clear();
    }

    /// Whether the handshake succeeded (once [`to_send`](Self::to_send) is
    /// written).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds the payload of the next frame from the peer.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] when the peer fails the handshake; what is then
    /// left to send is the last word for it.
    pub(crate) fn receive(&mut self, payload: &[u8]) -> Result<(), Error> {
        match self.side.receive(payload) {
            Ok(step) => {
                if let Some(send) = step.send {
                    frame::encode(&send, &mut self.out);
                }
                self.done = step.done;
                Ok(())
            }
            Err(e) => {
                if let Some(last) = e.send_before_close() {
                    frame::encode(last, &mut self.out);
                }
                Err(Error::Auth(e))
            }
        }
    }
}

/// The next frame of a handshake from what a read of it gave: the end of
/// the stream, an oversized frame or a failed read become the handshake's
/// errors.
pub(crate) fn frame_read(
    read: Result<Option<Range<usize>>, ReadError>,
) -> Result<Range<usize>, Error> {
    match read {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Error::protocol(
            "the peer closed the connection during the handshake (a wrong or missing authkey?)",
        )),
        Err(ReadError::Frame(e @ FrameError::TooLarge { len, .. })) => Err(Error::Protocol {
            what: format!("a {len}-byte frame during the handshake (a peer without an authkey?)"),
            source: Some(e.into()),
        }),
        Err(e) => Err(e.into_error("during the handshake")),
    }
}

#[cfg(test)]
mod tests {
    use anyd_wire::frame;

    use super::*;
    use crate::frame_buffer::FrameBuffer;

    /// Delivers what `from` has to send into `to`'s buffer.
    fn deliver(from: &mut HandshakeRun<'_, impl Handshake>, to: &mut FrameBuffer) {
        let mut bytes = from.to_send();
        while !bytes.is_empty() {
            let spare = to.spare().unwrap();
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            to.filled(n);
            bytes = &bytes[n..];
        }
        from.sent();
    }

    /// Runs both sides against each other until neither has anything to
    /// say; returns each side's outcome.
    fn run(server_key: &[u8], client_key: &[u8]) -> (Result<bool, Error>, Result<bool, Error>) {
        let options = HandshakeOptions::default();
        let mut server_side = server_side(server_key, options).unwrap();
        let mut client_side = client_side(client_key, options).unwrap();
        let mut server = HandshakeRun::start(&mut server_side);
        let mut client = HandshakeRun::start(&mut client_side);
        let (mut to_server, mut to_client) = (
            FrameBuffer::new(frame::DEFAULT_MAX_FRAME),
            FrameBuffer::new(frame::DEFAULT_MAX_FRAME),
        );
        let (mut s, mut c) = (Ok(false), Ok(false));
        for _ in 0..8 {
            deliver(&mut server, &mut to_client);
            deliver(&mut client, &mut to_server);
            if let (Ok(false), Some(r)) = (&c, to_client.next_frame().unwrap()) {
                c = client
                    .receive(to_client.payload(r))
                    .map(|()| client.is_done());
            }
            if let (Ok(false), Some(r)) = (&s, to_server.next_frame().unwrap()) {
                s = server
                    .receive(to_server.payload(r))
                    .map(|()| server.is_done());
            }
        }
        (s, c)
    }

    #[test]
    fn both_sides_driven_against_each_other_agree() {
        let (s, c) = run(b"key", b"key");
        assert!(s.unwrap() && c.unwrap());
    }

    #[test]
    fn a_wrong_key_fails_the_handshake() {
        let (s, c) = run(b"key", b"other");
        assert!(matches!(s, Err(Error::Auth(_))), "{s:?}");
        assert!(matches!(c, Err(Error::Auth(_))), "{c:?}");
    }

    #[test]
    fn what_a_read_gave_becomes_the_handshake_s_error() {
        let closed = frame_read(Ok(None)).unwrap_err().to_string();
        assert!(closed.contains("during the handshake"), "{closed}");
        let large = frame_read(Err(ReadError::Frame(FrameError::TooLarge {
            len: 9,
            max: 1,
        })))
        .unwrap_err()
        .to_string();
        assert!(large.contains("a 9-byte frame"), "{large}");
    }
}
