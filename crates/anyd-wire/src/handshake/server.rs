//! The accepting side of the handshake.
//!
//! This file owns the order of the server's steps: challenge the client,
//! check its reply and give the verdict, then answer the client's challenge
//! and read its verdict. The bytes of each step come from `challenge.rs`;
//! reading and writing frames is the caller's.

use std::fmt;

use super::{
    answer, challenge_message, verify, Handshake, HandshakeError, HandshakeOptions, Step,
    CHALLENGE, CHALLENGE_RANDOM_LEN, MAX_HANDSHAKE_FRAME, WELCOME,
};

/// The server side of a handshake: it challenges first, then answers.
///
/// ```text
/// server                                client
///   start()  --- #CHALLENGE#{d}R1 --->
///            <-- reply -------------
///   receive  --- #WELCOME# --------->   (or #FAILURE# and an error)
///            <-- #CHALLENGE#{d}R2 --
///   receive  --- reply ------------->
///            <-- #WELCOME# ----------
///   receive  -> done
/// ```
///
/// Drive it as described on [`Handshake`]. `Debug` shows the state and
/// options, never the authkey.
pub struct ServerHandshake {
    /// The shared secret; never printed.
    authkey: Vec<u8>,
    /// The digest we ask for and whether we accept md5 replies.
    options: HandshakeOptions,
    /// Where we are in the exchange.
    state: State,
}

/// The server's progress, named by what it waits for.
enum State {
    /// Created: our challenge message is ready but not handed out.
    Start {
        /// The challenge message M (without `#CHALLENGE#`).
        message: Vec<u8>,
    },
    /// Our challenge is out; the next payload is the client's reply.
    AwaitReply {
        /// The M the reply must authenticate.
        message: Vec<u8>,
    },
    /// We welcomed the client; the next payload is its challenge.
    AwaitChallenge,
    /// We answered the client's challenge; the next payload is its verdict.
    AwaitVerdict,
    /// Both sides are authenticated.
    Done,
    /// An error was returned; the connection must close.
    Failed,
}

impl State {
    /// What the server is doing, for [`HandshakeError::Unexpected`] and
    /// `Debug`.
    fn describe(&self) -> &'static str {
        match self {
            State::Start { .. } => "the server has not sent its challenge yet",
            State::AwaitReply { .. } => "waiting for the reply to our challenge",
            State::AwaitChallenge => "waiting for the client's challenge",
            State::AwaitVerdict => "waiting for the client's verdict",
            State::Done => "the handshake is complete",
            State::Failed => "the handshake has failed",
        }
    }
}

impl ServerHandshake {
    /// A server handshake for one connection.
    ///
    /// `random` must be fresh bytes from a CSPRNG, never reused: they make
    /// our challenge unpredictable, so that a recorded reply cannot be
    /// replayed.
    pub fn new(
        authkey: &[u8],
        options: HandshakeOptions,
        random: [u8; CHALLENGE_RANDOM_LEN],
    ) -> Self {
        ServerHandshake {
            authkey: authkey.to_vec(),
            options,
            state: State::Start {
                message: challenge_message(options.digest, &random),
            },
        }
    }

    /// The first payload to send: our challenge, `#CHALLENGE#{digest}` and
    /// the 40 random bytes. Returns `None` if already called.
    pub fn start(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Start { message } => {
                let payload = [CHALLENGE, &message].concat();
                self.state = State::AwaitReply { message };
                Some(payload)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Takes the payload of the next frame from the client.
    ///
    /// # Errors
    ///
    /// - after our challenge: [`HandshakeError::MalformedReply`],
    ///   [`HandshakeError::UnknownReplyDigest`],
    ///   [`HandshakeError::LegacyRefused`] or [`HandshakeError::WrongDigest`],
    ///   for which [`HandshakeError::send_before_close`] gives `#FAILURE#`;
    /// - on the client's challenge: the errors of [`answer`];
    /// - on the client's verdict: [`HandshakeError::Rejected`];
    /// - [`HandshakeError::FrameTooLarge`] for a payload over
    ///   [`MAX_HANDSHAKE_FRAME`], and [`HandshakeError::Unexpected`] before
    ///   [`start`](Self::start) or after the handshake ended.
    ///
    /// After an error the handshake stays failed. A call after success
    /// returns `Unexpected` and leaves it done.
    pub fn receive(&mut self, payload: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (next, result) = self.advance(state, payload);
        self.state = next;
        result
    }

    /// True once the client is authenticated and has welcomed our answer.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The transition for one payload: the next state and what to return.
    fn advance(&self, state: State, payload: &[u8]) -> (State, Result<Step, HandshakeError>) {
        let unexpected = |state: &State| HandshakeError::Unexpected {
            state: state.describe(),
            len: payload.len(),
        };
        match state {
            // The end states stay as they are: a stray call must not turn a
            // finished handshake into a failed one or the reverse.
            State::Done | State::Failed => {
                let err = unexpected(&state);
                return (state, Err(err));
            }
            _ if payload.len() > MAX_HANDSHAKE_FRAME => {
                let err = HandshakeError::FrameTooLarge { len: payload.len() };
                return (State::Failed, Err(err));
            }
            _ => {}
        }
        let result = match state {
            State::Start { .. } => Err(unexpected(&state)),
            State::AwaitReply { message } => verify(
                &self.authkey,
                &message,
                payload,
                self.options.require_modern,
            )
            .map(|_| (State::AwaitChallenge, Step::send(WELCOME.to_vec()))),
            State::AwaitChallenge => {
                answer(&self.authkey, payload).map(|reply| (State::AwaitVerdict, Step::send(reply)))
            }
            State::AwaitVerdict if payload == WELCOME => Ok((
                State::Done,
                Step {
                    send: None,
                    done: true,
                },
            )),
            State::AwaitVerdict => Err(HandshakeError::Rejected),
            State::Done | State::Failed => Err(unexpected(&state)),
        };
        match result {
            Ok((next, step)) => (next, Ok(step)),
            Err(err) => (State::Failed, Err(err)),
        }
    }
}

impl Handshake for ServerHandshake {
    fn start(&mut self) -> Option<Vec<u8>> {
        ServerHandshake::start(self)
    }

    fn receive(&mut self, payload: &[u8]) -> Result<Step, HandshakeError> {
        ServerHandshake::receive(self, payload)
    }

    fn is_done(&self) -> bool {
        ServerHandshake::is_done(self)
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand, so that the authkey never reaches a log.
        f.debug_struct("ServerHandshake")
            .field("state", &self.state.describe())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Digest, FAILURE};
    use super::*;

    const KEY: &[u8] = b"secret";

    fn started(options: HandshakeOptions) -> (ServerHandshake, Vec<u8>) {
        let mut server = ServerHandshake::new(KEY, options, [7; CHALLENGE_RANDOM_LEN]);
        let challenge = server.start().unwrap();
        (server, challenge)
    }

    #[test]
    fn challenge_is_modern_and_uses_random() {
        let (mut server, challenge) = started(HandshakeOptions::default());
        let expected = [b"#CHALLENGE#{sha256}".as_slice(), &[7; 40]].concat();
        assert_eq!(challenge, expected);
        assert_eq!(server.start(), None, "start hands out the challenge once");
    }

    #[test]
    fn challenge_names_the_configured_digest() {
        let options = HandshakeOptions {
            digest: Digest::Sha3_384,
            require_modern: true,
        };
        let (_, challenge) = started(options);
        assert!(challenge.starts_with(b"#CHALLENGE#{sha3_384}"));
    }

    #[test]
    fn good_reply_is_welcomed() {
        let (mut server, challenge) = started(HandshakeOptions::default());
        let reply = answer(KEY, &challenge).unwrap();
        let step = server.receive(&reply).unwrap();
        assert_eq!(step.send.as_deref(), Some(WELCOME));
        assert!(!step.done && !server.is_done());
    }

    #[test]
    fn wrong_reply_fails_with_failure_to_send() {
        let (mut server, challenge) = started(HandshakeOptions::default());
        let reply = answer(b"wrong", &challenge).unwrap();
        let err = server.receive(&reply).unwrap_err();
        assert_eq!(err, HandshakeError::WrongDigest);
        assert_eq!(err.send_before_close(), Some(FAILURE));
        assert!(!server.is_done());
        // Failed for good: even the right reply is refused now.
        let good = answer(KEY, &challenge).unwrap();
        assert!(matches!(
            server.receive(&good),
            Err(HandshakeError::Unexpected { .. })
        ));
    }

    #[test]
    fn receive_before_start_is_unexpected() {
        let mut server = ServerHandshake::new(KEY, HandshakeOptions::default(), [0; 40]);
        let err = server.receive(b"#CHALLENGE#").unwrap_err();
        assert!(
            matches!(err, HandshakeError::Unexpected { len: 11, .. }),
            "{err}"
        );
        assert_eq!(server.start(), None, "a failed handshake does not start");
    }

    #[test]
    fn oversized_payload_is_refused() {
        let (mut server, _) = started(HandshakeOptions::default());
        let err = server.receive(&[0; MAX_HANDSHAKE_FRAME + 1]).unwrap_err();
        assert_eq!(err, HandshakeError::FrameTooLarge { len: 257 });
        assert_eq!(err.send_before_close(), None);
    }

    #[test]
    fn verdict_other_than_welcome_is_rejected() {
        for verdict in [FAILURE, b"", b"#WELCOME", b"#WELCOME##", b"#welcome#"] {
            let (mut server, challenge) = started(HandshakeOptions::default());
            let _ = server.receive(&answer(KEY, &challenge).unwrap()).unwrap();
            let _ = server.receive(&[CHALLENGE, &[1; 20]].concat()).unwrap();
            assert_eq!(server.receive(verdict), Err(HandshakeError::Rejected));
            assert!(!server.is_done());
        }
    }

    #[test]
    fn bad_client_challenge_fails_silently() {
        let (mut server, challenge) = started(HandshakeOptions::default());
        let _ = server.receive(&answer(KEY, &challenge).unwrap()).unwrap();
        let err = server.receive(b"#WELCOME#").unwrap_err();
        assert_eq!(err, HandshakeError::MissingChallengePrefix);
        assert_eq!(err.send_before_close(), None);
    }

    #[test]
    fn done_stays_done() {
        let (mut server, challenge) = started(HandshakeOptions::default());
        let _ = server.receive(&answer(KEY, &challenge).unwrap()).unwrap();
        let reply = server.receive(&[CHALLENGE, &[1; 20]].concat()).unwrap();
        assert_eq!(reply.send, Some(Digest::Md5.mac(KEY, &[1; 20])));
        let step = server.receive(WELCOME).unwrap();
        assert_eq!(
            step,
            Step {
                send: None,
                done: true
            }
        );
        assert!(server.is_done());
        assert!(matches!(
            server.receive(WELCOME),
            Err(HandshakeError::Unexpected { .. })
        ));
        assert!(server.is_done());
    }

    #[test]
    fn debug_hides_the_key() {
        let mut server = ServerHandshake::new(b"hunter2-key", HandshakeOptions::default(), [0; 40]);
        let before = format!("{server:?}");
        let _ = server.start();
        let after = format!("{server:?}");
        for shown in [before, after] {
            assert!(!shown.contains("hunter2"), "{shown}");
            // Nor as a list of byte values.
            assert!(!shown.contains("104, 117, 110"), "{shown}");
            assert!(shown.contains("ServerHandshake"), "{shown}");
        }
    }
}
