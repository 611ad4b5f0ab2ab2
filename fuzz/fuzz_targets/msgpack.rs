//! Requests and replies in this codec: decoding never panics, and a decoded
//! request re-encodes to a request that decodes to the same arguments.
#![no_main]

use anyd_wire::message::{decode_reply, decode_request, encode_request, DecodeLimits, Incoming};
use anyd_wire::{Codec, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let codec = Codec::MsgPack;
    let _ = decode_reply::<Value>(codec, data, &limits);
    let Ok(Incoming::Request(r)) = decode_request(data, &limits) else {
        return;
    };
    let Ok(args) = r
        .args
        .iter()
        .map(|a| a.deserialize::<Value>())
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let mut out = Vec::new();
    if encode_request(r.codec, &r.endpoint, &args, &(), &mut out).is_err() {
        return;
    }
    let Ok(Incoming::Request(again)) = decode_request(&out, &limits) else {
        panic!("re-encoded request does not decode");
    };
    assert_eq!(again.endpoint, r.endpoint);
    assert_eq!(again.args.len(), args.len());
});
