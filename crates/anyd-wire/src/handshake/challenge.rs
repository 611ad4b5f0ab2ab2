//! One step, "A challenges B", as pure functions
//! ([protocol section 2](crate::protocol#2-authentication-handshake)).
//!
//! This file owns the shape of a challenge message, of a reply, and the
//! check of a reply. It keeps no state and knows nothing of which side is
//! server or client; the state machines in `server.rs` and `client.rs` call
//! these functions in the order the protocol gives.

use subtle::ConstantTimeEq;

use super::digest::MAX_NAME_LEN;
use super::error::escape_name;
use super::{Digest, HandshakeError, CHALLENGE, CHALLENGE_RANDOM_LEN};

/// The length of a legacy challenge message (Python's `MESSAGE_LENGTH`).
const LEGACY_CHALLENGE_LEN: usize = 20;

/// The length of a legacy reply: a raw HMAC-MD5.
const LEGACY_REPLY_LEN: usize = 16;

/// Builds a modern challenge message M: `{name}` followed by `random`.
///
/// The frame payload to send is [`CHALLENGE`] followed by M; the same M is
/// what [`verify`] checks the reply against. `random` must be fresh bytes from
/// a CSPRNG for every challenge: a repeated M lets an eavesdropper replay a
/// recorded reply.
pub fn challenge_message(digest: Digest, random: &[u8; CHALLENGE_RANDOM_LEN]) -> Vec<u8> {
    let mut message = prefix(digest);
    message.extend_from_slice(random);
    message
}

/// Answers a challenge (B's side): the payload to send back.
///
/// `challenge` is the whole frame payload, `#CHALLENGE#` included. A 20-byte
/// message is a legacy challenge, answered with the raw 16-byte HMAC-MD5 of
/// it. Any other message must start with `{name}` naming an allowed digest,
/// and is answered with `{name}` followed by that digest's HMAC of the whole
/// message, braces included.
///
/// # Errors
///
/// [`HandshakeError::MissingChallengePrefix`],
/// [`HandshakeError::MalformedChallenge`] or
/// [`HandshakeError::UnknownChallengeDigest`].
pub fn answer(authkey: &[u8], challenge: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let message = challenge
        .strip_prefix(CHALLENGE)
        .ok_or(HandshakeError::MissingChallengePrefix)?;
    // Length decides first, as in Python: a 20-byte message is legacy even if
    // it happens to start with a brace.
    if message.len() == LEGACY_CHALLENGE_LEN {
        return Ok(Digest::Md5.mac(authkey, message));
    }
    match split_name(message) {
        Named::Known(digest, _) => {
            let mut reply = prefix(digest);
            reply.extend_from_slice(&digest.mac(authkey, message));
            Ok(reply)
        }
        Named::Unknown(name) => Err(HandshakeError::UnknownChallengeDigest {
            name: escape_name(name),
        }),
        Named::Absent => Err(HandshakeError::MalformedChallenge { len: message.len() }),
    }
}

/// Checks a reply to our challenge message M (A's side), and returns the
/// digest the peer used.
///
/// A 16-byte reply is a raw HMAC-MD5 (what every legacy peer sends, whatever
/// the challenge asked for); any other reply must be `{name}` followed by
/// that digest's HMAC of M. Python accepts a reply in any allowed digest, not
/// only the one the challenge named, and so do we. With `require_modern`, MD5
/// is refused in either form.
///
/// The lengths are compared first (they are public: every digest has a fixed
/// size), then the bytes in constant time, so that timing reveals nothing
/// about how much of a forged MAC was right.
///
/// # Errors
///
/// [`HandshakeError::MalformedReply`], [`HandshakeError::UnknownReplyDigest`],
/// [`HandshakeError::LegacyRefused`] or [`HandshakeError::WrongDigest`]. After
/// any of them the challenger sends `#FAILURE#`
/// ([`HandshakeError::send_before_close`]).
pub fn verify(
    authkey: &[u8],
    message: &[u8],
    reply: &[u8],
    require_modern: bool,
) -> Result<Digest, HandshakeError> {
    let (digest, mac) = if reply.len() == LEGACY_REPLY_LEN {
        (Digest::Md5, reply)
    } else {
        match split_name(reply) {
            Named::Known(digest, mac) => (digest, mac),
            Named::Unknown(name) => {
                return Err(HandshakeError::UnknownReplyDigest {
                    name: escape_name(name),
                })
            }
            Named::Absent => return Err(HandshakeError::MalformedReply { len: reply.len() }),
        }
    };
    if require_modern && digest == Digest::Md5 {
        return Err(HandshakeError::LegacyRefused);
    }
    let expected = digest.mac(authkey, message);
    if expected.len() != mac.len() || !bool::from(expected.as_slice().ct_eq(mac)) {
        return Err(HandshakeError::WrongDigest);
    }
    Ok(digest)
}

/// `{name}` as bytes.
fn prefix(digest: Digest) -> Vec<u8> {
    let name = digest.name().as_bytes();
    let mut out = Vec::with_capacity(name.len() + 2 + CHALLENGE_RANDOM_LEN);
    out.push(b'{');
    out.extend_from_slice(name);
    out.push(b'}');
    out
}

/// What a message starts with.
enum Named<'a> {
    /// `{name}` with an allowed name, and the bytes after the `}`.
    Known(Digest, &'a [u8]),
    /// `{name}` with a name that is not allowed (the bytes between braces).
    Unknown(&'a [u8]),
    /// No `{`, or no `}` close enough to close a name.
    Absent,
}

/// Splits a `{name}` prefix off `message` the way Python's
/// `_get_digest_name_and_payload` does: the `}` must come within
/// [`MAX_NAME_LEN`] bytes of the `{`.
fn split_name(message: &[u8]) -> Named<'_> {
    let Some(rest) = message.strip_prefix(b"{") else {
        return Named::Absent;
    };
    let window = &rest[..rest.len().min(MAX_NAME_LEN + 1)];
    let Some(close) = window.iter().position(|&b| b == b'}') else {
        return Named::Absent;
    };
    let name = &rest[..close];
    match Digest::from_name(name) {
        Some(digest) => Named::Known(digest, &rest[close + 1..]),
        None => Named::Unknown(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"secret";

    /// Bytes 00 01 02 .. n-1, as in the vectors of docs/PROTOCOL.md
    /// section 2.
    fn counting(n: u8) -> Vec<u8> {
        (0..n).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        assert_eq!(s.len() % 2, 0);
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn payload(message: &[u8]) -> Vec<u8> {
        [CHALLENGE, message].concat()
    }

    /// `{sha256}` + 00..27, the modern vector's M, for any digest.
    fn modern_message(digest: Digest) -> Vec<u8> {
        challenge_message(digest, &counting(40).try_into().unwrap())
    }

    // docs/PROTOCOL.md section 2 vectors, authkey `secret`.
    const LEGACY_MAC: &str = "7defa9cc46abc3583325d17ccda75190";
    const SHA256_MAC: &str = "fc57fbe650d6124b98215e7b5d197d5807ad69982d275a9735ea2d56f1fa6989";

    /// Python: `hmac.new(b"secret", b"{" + name + b"}" + bytes(range(40)), name)`.
    const PYTHON_MACS: [(Digest, &str); 5] = [
        (Digest::Md5, "e8928e8cca3ace2d777017168dc6a0b2"),
        (Digest::Sha256, SHA256_MAC),
        (
            Digest::Sha384,
            "bae78a3376369f7b803a8473318a9b7062495b47434159ac84fc92ddb33c51b2\
             77c44c3edd9a5f9cb7d628f21abe2665",
        ),
        (
            Digest::Sha3_256,
            "82e8fa62f363295b6655abecf0e98e510224c559e9745af9741c357aec358f90",
        ),
        (
            Digest::Sha3_384,
            "bfbe71d4e622f58ebf6cbe049af4c8fe518645b482915af0940d678c37c0b46d\
             d1a2a448f9ee5141c91bba42b46a7862",
        ),
    ];

    #[test]
    fn legacy_vector_answer() {
        let reply = answer(KEY, &payload(&counting(20))).unwrap();
        assert_eq!(reply, unhex(LEGACY_MAC));
    }

    #[test]
    fn legacy_vector_verify() {
        let digest = verify(KEY, &counting(20), &unhex(LEGACY_MAC), false).unwrap();
        assert_eq!(digest, Digest::Md5);
    }

    #[test]
    fn modern_vector_message() {
        let mut expected = b"{sha256}".to_vec();
        expected.extend(0..40);
        assert_eq!(modern_message(Digest::Sha256), expected);
        assert_eq!(expected.len(), 48);
    }

    #[test]
    fn modern_vector_answer() {
        let reply = answer(KEY, &payload(&modern_message(Digest::Sha256))).unwrap();
        assert_eq!(reply, [b"{sha256}".as_slice(), &unhex(SHA256_MAC)].concat());
    }

    #[test]
    fn modern_vector_verify() {
        let reply = [b"{sha256}".as_slice(), &unhex(SHA256_MAC)].concat();
        let message = modern_message(Digest::Sha256);
        assert_eq!(verify(KEY, &message, &reply, false), Ok(Digest::Sha256));
        assert_eq!(verify(KEY, &message, &reply, true), Ok(Digest::Sha256));
    }

    #[test]
    fn every_digest_matches_python_both_ways() {
        for (digest, mac) in PYTHON_MACS {
            let message = modern_message(digest);
            let expected = [prefix(digest), unhex(mac)].concat();
            assert_eq!(
                answer(KEY, &payload(&message)).unwrap(),
                expected,
                "{digest}"
            );
            assert_eq!(verify(KEY, &message, &expected, false), Ok(digest));
        }
    }

    #[test]
    fn every_digest_round_trips() {
        for digest in Digest::ALL {
            let message = challenge_message(digest, &[0xa5; CHALLENGE_RANDOM_LEN]);
            assert!(message.starts_with(format!("{{{digest}}}").as_bytes()));
            let reply = answer(KEY, &payload(&message)).unwrap();
            assert_eq!(reply.len(), digest.name().len() + 2 + digest.output_len());
            assert_eq!(verify(KEY, &message, &reply, false), Ok(digest));
            assert_eq!(
                verify(b"other", &message, &reply, false),
                Err(HandshakeError::WrongDigest),
                "{digest}"
            );
        }
    }

    #[test]
    fn a_reply_in_another_digest_is_accepted() {
        // Python checks the reply with the digest the reply names.
        let message = modern_message(Digest::Sha256);
        let reply = [
            b"{sha3_384}".as_slice(),
            &Digest::Sha3_384.mac(KEY, &message),
        ]
        .concat();
        assert_eq!(verify(KEY, &message, &reply, false), Ok(Digest::Sha3_384));
    }

    #[test]
    fn legacy_answer_to_a_modern_challenge_is_accepted_as_md5() {
        // What Python 3.11 does with our challenge: raw md5 over the whole M.
        let message = modern_message(Digest::Sha256);
        let reply = Digest::Md5.mac(KEY, &message);
        assert_eq!(verify(KEY, &message, &reply, false), Ok(Digest::Md5));
        assert_eq!(
            verify(KEY, &message, &reply, true),
            Err(HandshakeError::LegacyRefused)
        );
    }

    #[test]
    fn require_modern_refuses_md5_in_either_form() {
        let message = modern_message(Digest::Md5);
        let prefixed = answer(KEY, &payload(&message)).unwrap();
        assert!(prefixed.starts_with(b"{md5}"));
        assert_eq!(verify(KEY, &message, &prefixed, false), Ok(Digest::Md5));
        assert_eq!(
            verify(KEY, &message, &prefixed, true),
            Err(HandshakeError::LegacyRefused)
        );
        assert_eq!(
            verify(KEY, &counting(20), &unhex(LEGACY_MAC), true),
            Err(HandshakeError::LegacyRefused)
        );
        assert_eq!(
            verify(KEY, &counting(20), &[0; 16], true),
            Err(HandshakeError::LegacyRefused)
        );
    }

    #[test]
    fn twenty_bytes_are_legacy_even_with_braces() {
        let message = b"{sha256}012345678901";
        assert_eq!(message.len(), 20);
        let reply = answer(KEY, &payload(message)).unwrap();
        assert_eq!(reply, Digest::Md5.mac(KEY, message));
    }

    #[test]
    fn a_prefixed_challenge_without_random_bytes_is_answered() {
        // Python does not require bytes after the name; neither do we, as the
        // answer only proves we know the key.
        let reply = answer(KEY, &payload(b"{sha256}")).unwrap();
        assert_eq!(
            reply,
            [
                b"{sha256}".as_slice(),
                &Digest::Sha256.mac(KEY, b"{sha256}")
            ]
            .concat()
        );
    }

    #[test]
    fn missing_prefix_is_refused() {
        for challenge in [
            b"".as_slice(),
            b"#CHALLENGE",
            b"#challenge#01234567890123456789",
            &counting(31),
            b"#WELCOME#",
        ] {
            assert_eq!(
                answer(KEY, challenge),
                Err(HandshakeError::MissingChallengePrefix),
                "{challenge:?}"
            );
        }
    }

    #[test]
    fn malformed_challenges_are_refused() {
        for message in [
            b"".as_slice(),
            b"garbage",
            &counting(19),
            &counting(21),
            &counting(48),
            b"{sha256",
            b"{sha256 and no closing brace at all, long enough",
            b"{sha3_256_}xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            b"sha256}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ] {
            assert_eq!(
                answer(KEY, &payload(message)),
                Err(HandshakeError::MalformedChallenge { len: message.len() }),
                "{message:?}"
            );
        }
    }

    #[test]
    fn unknown_challenge_digests_are_refused() {
        for (message, name) in [
            (b"{sha1}0123456789012345678901234567".as_slice(), "sha1"),
            (b"{}".as_slice(), ""),
            (b"{SHA256}xxxxxxxxxxxxxxxxxxxxxxxx".as_slice(), "SHA256"),
            (b"{sha3_512}xxxxxxxxxxxxxxxxxxxxxxxx".as_slice(), "sha3_512"),
            (
                b"{\x00\xff\n\"}xxxxxxxxxxxxxxxxxxxxxxxxxxx".as_slice(),
                "\\x00\\xff\\n\\\"",
            ),
        ] {
            assert_eq!(
                answer(KEY, &payload(message)),
                Err(HandshakeError::UnknownChallengeDigest { name: name.into() }),
                "{message:?}"
            );
        }
    }

    #[test]
    fn malformed_replies_are_refused() {
        let message = modern_message(Digest::Sha256);
        for reply in [
            b"".as_slice(),
            b"garbage",
            &counting(15),
            &counting(17),
            &counting(20),
            b"{sha256",
            b"{sha256 and no closing brace at all, long enough",
        ] {
            let err = verify(KEY, &message, reply, false).unwrap_err();
            assert_eq!(
                err,
                HandshakeError::MalformedReply { len: reply.len() },
                "{reply:?}"
            );
            assert_eq!(err.send_before_close(), Some(super::super::FAILURE));
        }
    }

    #[test]
    fn unknown_reply_digests_are_refused() {
        let message = modern_message(Digest::Sha256);
        let reply = [b"{sha512}".as_slice(), &[0; 64]].concat();
        assert_eq!(
            verify(KEY, &message, &reply, false),
            Err(HandshakeError::UnknownReplyDigest {
                name: "sha512".into()
            })
        );
    }

    #[test]
    fn a_reply_one_byte_short_or_long_is_wrong() {
        let message = modern_message(Digest::Sha256);
        let good = answer(KEY, &payload(&message)).unwrap();
        let short = &good[..good.len() - 1];
        assert_eq!(
            verify(KEY, &message, short, false),
            Err(HandshakeError::WrongDigest)
        );
        let long = [good.as_slice(), &[0]].concat();
        assert_eq!(
            verify(KEY, &message, &long, false),
            Err(HandshakeError::WrongDigest)
        );
        // A bare name, no MAC at all.
        assert_eq!(
            verify(KEY, &message, b"{sha256}", false),
            Err(HandshakeError::WrongDigest)
        );
    }

    #[test]
    fn every_flipped_bit_is_wrong() {
        for (message, good) in [
            (counting(20), unhex(LEGACY_MAC)),
            (
                modern_message(Digest::Sha256),
                [b"{sha256}".as_slice(), &unhex(SHA256_MAC)].concat(),
            ),
        ] {
            // Bits of the name turn it into another name (or none); only flips
            // in the MAC itself must say "wrong digest".
            let mac_start = if good.len() == 16 {
                0
            } else {
                b"{sha256}".len()
            };
            for byte in mac_start..good.len() {
                for bit in 0..8 {
                    let mut bad = good.clone();
                    bad[byte] ^= 1 << bit;
                    assert_eq!(
                        verify(KEY, &message, &bad, false),
                        Err(HandshakeError::WrongDigest),
                        "byte {byte} bit {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_key_is_wrong_digest() {
        let reply = answer(b"not secret", &payload(&counting(20))).unwrap();
        assert_eq!(
            verify(KEY, &counting(20), &reply, false),
            Err(HandshakeError::WrongDigest)
        );
    }

    #[test]
    fn an_empty_key_works() {
        // Python accepts b"" as an authkey; HMAC pads it like any other key.
        let message = modern_message(Digest::Sha256);
        let reply = answer(b"", &payload(&message)).unwrap();
        assert_eq!(verify(b"", &message, &reply, false), Ok(Digest::Sha256));
    }
}
