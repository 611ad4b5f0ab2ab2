//! The safe pickle decoder: never panics on any input, in request and in
//! reply mode, and what it decodes re-encodes to something it decodes to
//! the same value.
#![no_main]

use anyd_wire::codec::pickle::{
    decode_value, decode_value_or_exception, encode_value, PickleLimits,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = PickleLimits::default();
    let _ = decode_value_or_exception(data, &limits);
    if let Ok(v) = decode_value(data, &limits) {
        let mut out = Vec::new();
        encode_value(&v, &mut out);
        match decode_value(&out, &limits) {
            Ok(again) => {
                // NaN is the one value not equal to itself.
                if format!("{v:?}").contains("NaN") {
                    return;
                }
                assert_eq!(again, v);
            }
            other => panic!("re-encoded pickle does not decode: {other:?}"),
        }
    }
});
