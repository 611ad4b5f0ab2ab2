//! The frame decoder: never panics, never accepts a frame over the limit,
//! and whatever it accepts re-encodes to the same bytes.
#![no_main]

use anyd_wire::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    const MAX: usize = 1 << 16;
    let mut buf = data;
    while let Ok(Some(f)) = frame::decode(buf, MAX) {
        assert!(f.payload.len() <= MAX);
        let payload = &buf[f.payload.clone()];
        let mut again = Vec::new();
        frame::encode(payload, &mut again);
        // A short header re-encodes exactly; the extended one only when the
        // sender used it (legal for small payloads too).
        if f.payload.start == frame::HEADER_LEN {
            assert_eq!(&again[..], &buf[..f.consumed]);
        }
        buf = &buf[f.consumed..];
    }
});
