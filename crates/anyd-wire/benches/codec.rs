//! What one small call costs in the codec alone: the client encodes a
//! request, the server decodes it and its argument, the server encodes the
//! reply, the client decodes it. No I/O, so this is the protocol's share of
//! a round trip.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use anyd_wire::codec::{
    decode_reply, decode_request, encode_reply_ok, encode_request, DecodeLimits,
};
use anyd_wire::message::{Incoming, Reply};
use anyd_wire::{frame, Codec};
use criterion::{criterion_group, criterion_main, Criterion};

fn round_trip(codec: Codec, req: &mut Vec<u8>, rep: &mut Vec<u8>, limits: &DecodeLimits) -> String {
    req.clear();
    let mark = frame::begin(req);
    encode_request(codec, "echo", &("hello",), &(), req).unwrap();
    frame::finish(req, mark);

    let f = frame::decode(req, frame::DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    let Ok(Incoming::Request(r)) = decode_request(&req[f.payload], limits) else {
        panic!("not a request")
    };
    let arg: String = r.args[0].deserialize().unwrap();

    rep.clear();
    let mark = frame::begin(rep);
    encode_reply_ok(codec, &arg, rep).unwrap();
    frame::finish(rep, mark);

    let f = frame::decode(rep, frame::DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    match decode_reply::<String>(codec, &rep[f.payload], limits).unwrap() {
        Reply::Ok(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

fn codecs(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let mut group = c.benchmark_group("echo_round_trip");
    for (name, codec) in [
        ("msgpack", Codec::MsgPack),
        ("json", Codec::Json),
        ("pickle", Codec::Pickle),
    ] {
        let (mut req, mut rep) = (Vec::with_capacity(256), Vec::with_capacity(256));
        assert_eq!(round_trip(codec, &mut req, &mut rep, &limits), "hello");
        group.bench_function(name, |b| {
            b.iter(|| black_box(round_trip(black_box(codec), &mut req, &mut rep, &limits)))
        });
    }
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
