//! The check both native codecs' targets make, in one place.

use anyd_wire::codec::{
    decode_reply, decode_request, decode_stream_reply, encode_item, encode_request_with,
    DecodeLimits,
};
use anyd_wire::message::{Incoming, StreamReply};
use anyd_wire::{Codec, Value};

/// Decoding `data` as a reply and as a stream's frame in `codec`, and as a
/// request (a streaming one, a cancel) in whatever codec its first byte
/// names, never panics; a decoded item re-encodes to an item, and a
/// decoded request re-encodes to one that decodes to the same endpoint,
/// argument count, wish for a stream and for descriptors.
pub fn check(codec: Codec, data: &[u8]) {
    let limits = DecodeLimits::default();
    let _ = decode_reply::<Value>(codec, data, &limits);
    if let Ok(StreamReply::Item(item)) = decode_stream_reply::<Value>(codec, data, &limits) {
        let mut out = Vec::new();
        if encode_item(codec, &item, &mut out).is_ok() {
            let again = decode_stream_reply::<Value>(codec, &out, &limits);
            assert!(
                matches!(again, Ok(StreamReply::Item(_))),
                "a re-encoded item does not decode: {again:?}"
            );
        }
    }
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
    let encoded = encode_request_with(r.codec, &r.endpoint, &args, &(), &r.options, &mut out);
    if encoded.is_err() {
        return;
    }
    let Ok(Incoming::Request(again)) = decode_request(&out, &limits) else {
        panic!("re-encoded request does not decode");
    };
    assert_eq!(again.endpoint, r.endpoint);
    assert_eq!(again.args.len(), args.len());
    assert_eq!(again.options, r.options);
}
