//! What one small call costs in the codec alone: the client encodes a
//! request, the server decodes it and its argument, the server encodes the
//! reply, the client decodes it. No I/O, so this is the protocol's share of
//! a round trip.
//!
//! Twice: a plain request, and one with the request option `fds`, which
//! anyd's clients send on every call over a Unix socket in a native codec
//! (docs/PROTOCOL.md section 8.2); and the request alone with that option,
//! encoded and decoded, where the options map is a larger share.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use anyd_wire::codec::{
    decode_reply, decode_request, encode_reply_ok, encode_request_with, DecodeLimits,
    RequestOptions,
};
use anyd_wire::message::{Incoming, Reply};
use anyd_wire::{frame, Codec};
use criterion::{criterion_group, criterion_main, Criterion};

fn round_trip(
    codec: Codec,
    options: &RequestOptions,
    req: &mut Vec<u8>,
    rep: &mut Vec<u8>,
    limits: &DecodeLimits,
) -> String {
    let arg = request(codec, options, req, limits);

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

/// The request half: encoded, framed, decoded, its argument read.
fn request(
    codec: Codec,
    options: &RequestOptions,
    req: &mut Vec<u8>,
    limits: &DecodeLimits,
) -> String {
    req.clear();
    let mark = frame::begin(req);
    encode_request_with(codec, "echo", &("hello",), &(), options, req).unwrap();
    frame::finish(req, mark);

    let f = frame::decode(req, frame::DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    let Ok(Incoming::Request(r)) = decode_request(&req[f.payload], limits) else {
        panic!("not a request")
    };
    r.args[0].deserialize().unwrap()
}

fn codecs(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let none = RequestOptions::NONE;
    let fds = RequestOptions::NONE.with_fds(true);
    let mut group = c.benchmark_group("echo_round_trip");
    for (name, codec, options) in [
        ("msgpack", Codec::MsgPack, &none),
        ("json", Codec::Json, &none),
        ("pickle", Codec::Pickle, &none),
        ("msgpack_fds", Codec::MsgPack, &fds),
        ("json_fds", Codec::Json, &fds),
    ] {
        let (mut req, mut rep) = (Vec::with_capacity(256), Vec::with_capacity(256));
        assert_eq!(
            round_trip(codec, options, &mut req, &mut rep, &limits),
            "hello"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(round_trip(
                    black_box(codec),
                    black_box(options),
                    &mut req,
                    &mut rep,
                    &limits,
                ))
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("request");
    for (name, codec, options) in [
        ("msgpack", Codec::MsgPack, &none),
        ("json", Codec::Json, &none),
        ("msgpack_fds", Codec::MsgPack, &fds),
        ("json_fds", Codec::Json, &fds),
    ] {
        let mut req = Vec::with_capacity(256);
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(request(
                    black_box(codec),
                    black_box(options),
                    &mut req,
                    &limits,
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
