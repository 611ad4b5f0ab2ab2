//! The client side of the handshake fed arbitrary server frames: never
//! panics, and never completes unless the server proved it knows the key.
//!
//! The first byte picks the options; the rest is a sequence of
//! length-prefixed payloads. A leading valid challenge is optional, so the
//! fuzzer explores both the challenge parser and the later states.
#![no_main]

use anyd_wire::handshake::{
    ClientHandshake, Digest, HandshakeOptions, CHALLENGE, MAX_HANDSHAKE_FRAME,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let options = HandshakeOptions {
        digest: Digest::ALL[usize::from(flags & 0x7) % Digest::ALL.len()],
        require_modern: flags & 0x8 != 0,
    };
    let mut hs = ClientHandshake::new(b"fuzz key", options, [flags; 40]);
    assert!(hs.start().is_none());
    if flags & 0x10 != 0 {
        // A well-formed challenge from the server: modern (a digest name
        // and 40 bytes) or legacy (exactly 20 bytes).
        let mut challenge = CHALLENGE.to_vec();
        if flags & 0x20 != 0 {
            challenge.extend_from_slice(b"{sha256}");
        }
        challenge.extend_from_slice(if flags & 0x20 != 0 {
            &[0x5a; 40]
        } else {
            &[0x5a; 20]
        });
        let step = hs.receive(&challenge);
        assert!(step.is_ok() || options.require_modern);
    }
    while let Some((&len, tail)) = rest.split_first() {
        let len = (usize::from(len) * 2).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        if let Ok(step) = hs.receive(payload) {
            assert!(payload.len() <= MAX_HANDSHAKE_FRAME);
            // The client is done only after the server welcomed our answer
            // and answered our challenge, which needs the key: a random
            // answer must not pass.
            assert!(!step.done, "client completed without a keyed server");
        }
    }
});
