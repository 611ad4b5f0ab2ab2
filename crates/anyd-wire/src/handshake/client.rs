//! The connecting side of the handshake.
//!
//! This file owns the order of the client's steps: answer the server's
//! challenge and read its verdict, then challenge the server, check its reply
//! and give the verdict. The bytes of each step come from `challenge.rs`;
//! reading and writing frames is the caller's.

use std::fmt;

use super::{
    answer, challenge_message, verify, Handshake, HandshakeError, HandshakeOptions, Step,
    CHALLENGE, CHALLENGE_RANDOM_LEN, MAX_HANDSHAKE_FRAME, WELCOME,
};

/// The client side of a handshake: it answers first, then challenges.
///
/// ```text
/// client                                server
///   start() -> None (the server speaks first)
///            <-- #CHALLENGE#... -----
///   receive  --- reply ------------->
///            <-- #WELCOME# ----------   (anything else: Rejected)
///   receive  --- #CHALLENGE#{d}R --->
///            <-- reply --------------
///   receive  --- #WELCOME# --------->   done (or #FAILURE# and an error)
/// ```
///
/// A wrong authkey shows on this side as [`HandshakeError::Rejected`]: the
/// server checks our answer first and replies `#FAILURE#`.
///
/// Drive it as described on [`Handshake`]. `Debug` shows the state and
/// options, never the authkey.
pub struct ClientHandshake {
    /// The shared secret; never printed.
    authkey: Vec<u8>,
    /// The digest we ask for and whether we accept md5 replies.
    options: HandshakeOptions,
    /// Where we are in the exchange.
    state: State,
}

/// The client's progress, named by what it waits for. Our own challenge
/// message M is built up front and carried until the reply to it arrives.
enum State {
    /// The next payload is the server's challenge.
    AwaitChallenge {
        /// Our challenge message M, sent once the server welcomes us.
        message: Vec<u8>,
    },
    /// We answered; the next payload is the server's verdict.
    AwaitVerdict {
        /// Our challenge message M.
        message: Vec<u8>,
    },
    /// Our challenge is out; the next payload is the server's reply.
    AwaitReply {
        /// The M the reply must authenticate.
        message: Vec<u8>,
    },
    /// Both sides are authenticated.
    Done,
    /// An error was returned; the connection must close.
    Failed,
}

impl State {
    /// What the client is doing, for [`HandshakeError::Unexpected`] and
    /// `Debug`.
    fn describe(&self) -> &'static str {
        match self {
            State::AwaitChallenge { .. } => "waiting for the server's challenge",
            State::AwaitVerdict { .. } => "waiting for the server's verdict",
            State::AwaitReply { .. } => "waiting for the reply to our challenge",
            State::Done => "the handshake is complete",
            State::Failed => "the handshake has failed",
        }
    }
}

impl ClientHandshake {
    /// A client handshake for one connection.
    ///
    /// `random` must be fresh bytes from a CSPRNG, never reused: they make
    /// our challenge unpredictable, so that a recorded reply cannot be
    /// replayed.
    pub fn new(
        authkey: &[u8],
        options: HandshakeOptions,
        random: [u8; CHALLENGE_RANDOM_LEN],
    ) -> Self {
        ClientHandshake {
            authkey: authkey.to_vec(),
            options,
            state: State::AwaitChallenge {
                message: challenge_message(options.digest, &random),
            },
        }
    }

    /// Always `None`: the server speaks first. It exists so that both sides
    /// are driven by the same loop (see [`Handshake`]).
    pub fn start(&mut self) -> Option<Vec<u8>> {
        None
    }

    /// Takes the payload of the next frame from the server.
    ///
    /// # Errors
    ///
    /// - on the server's challenge: the errors of [`answer`];
    /// - on the server's verdict: [`HandshakeError::Rejected`] for anything
    ///   but `#WELCOME#` (a wrong authkey, or a server that refuses md5);
    /// - on the server's reply: [`HandshakeError::MalformedReply`],
    ///   [`HandshakeError::UnknownReplyDigest`],
    ///   [`HandshakeError::LegacyRefused`] or [`HandshakeError::WrongDigest`],
    ///   for which [`HandshakeError::send_before_close`] gives `#FAILURE#`;
    /// - [`HandshakeError::FrameTooLarge`] for a payload over
    ///   [`MAX_HANDSHAKE_FRAME`], and [`HandshakeError::Unexpected`] after
    ///   the handshake ended.
    ///
    /// After an error the handshake stays failed. A call after success
    /// returns `Unexpected` and leaves it done.
    pub fn receive(&mut self, payload: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (next, result) = self.advance(state, payload);
        self.state = next;
        result
    }

    /// True once the server is authenticated and has welcomed our answer.
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
            State::AwaitChallenge { message } => answer(&self.authkey, payload)
                .map(|reply| (State::AwaitVerdict { message }, Step::send(reply))),
            State::AwaitVerdict { message } if payload == WELCOME => {
                let challenge = [CHALLENGE, &message].concat();
                Ok((State::AwaitReply { message }, Step::send(challenge)))
            }
            State::AwaitVerdict { .. } => Err(HandshakeError::Rejected),
            State::AwaitReply { message } => verify(
                &self.authkey,
                &message,
                payload,
                self.options.require_modern,
            )
            .map(|_| {
                let step = Step {
                    send: Some(WELCOME.to_vec()),
                    done: true,
                };
                (State::Done, step)
            }),
            State::Done | State::Failed => Err(unexpected(&state)),
        };
        match result {
            Ok((next, step)) => (next, Ok(step)),
            Err(err) => (State::Failed, Err(err)),
        }
    }
}

impl Handshake for ClientHandshake {
    fn start(&mut self) -> Option<Vec<u8>> {
        ClientHandshake::start(self)
    }

    fn receive(&mut self, payload: &[u8]) -> Result<Step, HandshakeError> {
        ClientHandshake::receive(self, payload)
    }

    fn is_done(&self) -> bool {
        ClientHandshake::is_done(self)
    }
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand, so that the authkey never reaches a log.
        f.debug_struct("ClientHandshake")
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

    fn client(options: HandshakeOptions) -> ClientHandshake {
        ClientHandshake::new(KEY, options, [9; CHALLENGE_RANDOM_LEN])
    }

    /// A client that has answered a legacy challenge and been welcomed; returns
    /// its challenge payload.
    fn welcomed(options: HandshakeOptions) -> (ClientHandshake, Vec<u8>) {
        let mut client = client(options);
        let _ = client.receive(&[CHALLENGE, &[1; 20]].concat()).unwrap();
        let challenge = client.receive(WELCOME).unwrap().send.unwrap();
        (client, challenge)
    }

    #[test]
    fn start_sends_nothing() {
        let mut client = client(HandshakeOptions::default());
        assert_eq!(client.start(), None);
        assert_eq!(client.start(), None);
    }

    #[test]
    fn answers_legacy_and_modern_challenges() {
        let mut legacy = client(HandshakeOptions::default());
        let step = legacy.receive(&[CHALLENGE, &[1; 20]].concat()).unwrap();
        assert_eq!(step.send, Some(Digest::Md5.mac(KEY, &[1; 20])));
        assert!(!step.done);

        let mut modern = client(HandshakeOptions::default());
        let message = challenge_message(Digest::Sha384, &[3; 40]);
        let step = modern.receive(&[CHALLENGE, &message].concat()).unwrap();
        let expected = [b"{sha384}".as_slice(), &Digest::Sha384.mac(KEY, &message)].concat();
        assert_eq!(step.send, Some(expected));
    }

    #[test]
    fn challenges_after_welcome() {
        let options = HandshakeOptions {
            digest: Digest::Sha3_256,
            require_modern: false,
        };
        let (_, challenge) = welcomed(options);
        assert_eq!(
            challenge,
            [b"#CHALLENGE#{sha3_256}".as_slice(), &[9; 40]].concat()
        );
    }

    #[test]
    fn anything_but_welcome_is_rejected() {
        for verdict in [FAILURE, b"", b"#WELCOME", b"#WELCOME#\0", b"#CHALLENGE#"] {
            let mut client = client(HandshakeOptions::default());
            let _ = client.receive(&[CHALLENGE, &[1; 20]].concat()).unwrap();
            let err = client.receive(verdict).unwrap_err();
            assert_eq!(err, HandshakeError::Rejected, "{verdict:?}");
            assert_eq!(err.send_before_close(), None);
        }
    }

    #[test]
    fn good_reply_completes_with_welcome() {
        let (mut client, challenge) = welcomed(HandshakeOptions::default());
        let reply = answer(KEY, &challenge).unwrap();
        let step = client.receive(&reply).unwrap();
        assert_eq!(step.send.as_deref(), Some(WELCOME));
        assert!(step.done && client.is_done());
    }

    #[test]
    fn wrong_reply_fails_with_failure_to_send() {
        let (mut client, challenge) = welcomed(HandshakeOptions::default());
        let reply = answer(b"wrong", &challenge).unwrap();
        let err = client.receive(&reply).unwrap_err();
        assert_eq!(err, HandshakeError::WrongDigest);
        assert_eq!(err.send_before_close(), Some(FAILURE));
        assert!(!client.is_done());
    }

    #[test]
    fn require_modern_refuses_a_legacy_server_reply() {
        let options = HandshakeOptions {
            digest: Digest::Sha256,
            require_modern: true,
        };
        let (mut client, challenge) = welcomed(options);
        // A Python 3.11 server answers any challenge with raw md5.
        let message = &challenge[CHALLENGE.len()..];
        let err = client.receive(&Digest::Md5.mac(KEY, message)).unwrap_err();
        assert_eq!(err, HandshakeError::LegacyRefused);
        assert_eq!(err.send_before_close(), Some(FAILURE));
    }

    #[test]
    fn bad_server_challenge_fails() {
        let mut client = client(HandshakeOptions::default());
        assert_eq!(
            client.receive(b"hello"),
            Err(HandshakeError::MissingChallengePrefix)
        );
        let mut client = super::ClientHandshake::new(KEY, HandshakeOptions::default(), [0; 40]);
        assert_eq!(
            client.receive(b"#CHALLENGE#{sha1}abc"),
            Err(HandshakeError::UnknownChallengeDigest {
                name: "sha1".into()
            })
        );
        assert!(matches!(
            client.receive(b"#CHALLENGE#"),
            Err(HandshakeError::Unexpected { .. })
        ));
    }

    #[test]
    fn oversized_payload_is_refused() {
        let mut client = client(HandshakeOptions::default());
        let big = [CHALLENGE, &[0; MAX_HANDSHAKE_FRAME]].concat();
        assert_eq!(
            client.receive(&big),
            Err(HandshakeError::FrameTooLarge { len: big.len() })
        );
        // Exactly the limit is a size the protocol allows (and here garbage).
        let mut client = super::ClientHandshake::new(KEY, HandshakeOptions::default(), [0; 40]);
        let at_limit = [CHALLENGE, &[0; MAX_HANDSHAKE_FRAME - 11]].concat();
        assert_eq!(
            client.receive(&at_limit),
            Err(HandshakeError::MalformedChallenge { len: 245 })
        );
    }

    #[test]
    fn done_stays_done() {
        let (mut client, challenge) = welcomed(HandshakeOptions::default());
        let _ = client.receive(&answer(KEY, &challenge).unwrap()).unwrap();
        assert!(matches!(
            client.receive(WELCOME),
            Err(HandshakeError::Unexpected { .. })
        ));
        assert!(client.is_done());
    }

    #[test]
    fn debug_hides_the_key() {
        let mut client = ClientHandshake::new(b"hunter2-key", HandshakeOptions::default(), [0; 40]);
        let before = format!("{client:?}");
        let _ = client.receive(&[CHALLENGE, &[1; 20]].concat());
        let after = format!("{client:?}");
        for shown in [before, after] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("104, 117, 110"), "{shown}");
            assert!(shown.contains("ClientHandshake"), "{shown}");
        }
    }
}
