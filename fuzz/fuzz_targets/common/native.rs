//! The check both native codecs' targets make, in one place.

use anyd_wire::codec::{decode_reply, decode_request, encode_request, DecodeLimits};
use anyd_wire::message::Incoming;
use anyd_wire::{Codec, Value};

/// Decoding `data` as a reply in `codec`, and as a request in whatever
/// codec its first byte names, never panics; a decoded request re-encodes
/// to one that decodes to the same endpoint and argument count.
pub fn check(codec: Codec, data: &[u8]) {
    let limits = DecodeLimits::default();
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
}
