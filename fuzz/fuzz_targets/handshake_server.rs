//! The server side of the handshake fed arbitrary client frames: never
//! panics, never completes without the key, and refuses oversized frames.
//!
//! The first byte picks the options and whether the first reply is the
//! correct answer (so that the fuzzer reaches the states after it, which a
//! random MAC never would); the rest is a sequence of length-prefixed
//! payloads.
#![no_main]

use anyd_wire::handshake::{
    answer, Digest, HandshakeOptions, ServerHandshake, MAX_HANDSHAKE_FRAME,
};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fuzz key";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let options = HandshakeOptions {
        digest: Digest::ALL[usize::from(flags & 0x7) % Digest::ALL.len()],
        require_modern: flags & 0x8 != 0,
    };
    let mut hs = ServerHandshake::new(KEY, options, [flags; 40]);
    let challenge = hs.start().expect("first start sends a challenge");
    let mut answered_correctly = false;
    if flags & 0x10 != 0 {
        let reply = answer(KEY, &challenge).expect("our own challenge is valid");
        let step = hs.receive(&reply);
        answered_correctly = step.is_ok();
    }
    while let Some((&len, tail)) = rest.split_first() {
        let len = (usize::from(len) * 2).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let before_done = hs.is_done();
        match hs.receive(payload) {
            Ok(step) => {
                assert!(payload.len() <= MAX_HANDSHAKE_FRAME);
                // Completion needs the correct answer to our challenge.
                if step.done || hs.is_done() {
                    assert!(answered_correctly);
                }
            }
            Err(_) => assert!(!hs.is_done() || before_done),
        }
    }
});
