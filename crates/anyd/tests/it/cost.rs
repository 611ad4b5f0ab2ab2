//! Cost before trust: what a request costs a daemon in its own process,
//! measured as the growth of its peak resident set (`VmHWM`, reset before
//! each request), for requests built to be expensive to decode: 16 MB of
//! one-byte arguments, or one argument of 16 MB where a number is expected.
//!
//! The bound, for every codec: growth <= 2 x the frame + 8 MiB. The
//! daemon must hold the frame itself (1x: measured, every case here grows
//! the peak by 0.99x to 1.01x the frame); the second 1x and the 8 MiB are
//! room for a read buffer that grows by doubling and for the allocator.
//! Anything that decoded per argument or per value would cost at least 16
//! bytes for each one-byte value, 16x the frame or more (before this was
//! fixed: 530 MiB for a denied 16 MB MessagePack request). The callers the policy turns away are another user
//! (`nobody`), as an unprivileged local attacker of a root daemon would be.

use anyd_testkit::{process, raw, root};

use anyd::wire::{codec, frame, message, Codec};
use anyd::RemoteError;
use process::Daemon;

const NOBODY: u32 = 65534;

/// Arguments of about this many bytes in all: most of the default 16 MiB
/// frame limit.
const SIZE: usize = 16_000_000;

fn str_msgpack(s: &str, out: &mut Vec<u8>) {
    out.push(0xa0 | u8::try_from(s.len()).unwrap());
    out.extend_from_slice(s.as_bytes());
}

/// `[endpoint, [1, 1, ...], {}]` with `n` one-byte arguments.
fn msgpack_many_args(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = vec![0x93];
    str_msgpack(endpoint, &mut p);
    p.push(0xdd);
    p.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    p.resize(p.len() + n, 0x01);
    p.push(0x80);
    p
}

/// `[endpoint, [[1, 1, ...], 1], {}]`: a list of `n` where a number goes.
fn msgpack_big_list(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = vec![0x93];
    str_msgpack(endpoint, &mut p);
    p.extend_from_slice(&[0x92, 0xdd]);
    p.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    p.resize(p.len() + n, 0x01);
    p.extend_from_slice(&[0x01, 0x80]);
    p
}

/// `[endpoint, [], {"x": 1, "x": 1, ...}]` with `n` keyword arguments.
fn msgpack_many_kwargs(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = vec![0x93];
    str_msgpack(endpoint, &mut p);
    p.extend_from_slice(&[0x90, 0xdf]);
    p.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    for _ in 0..n {
        p.extend_from_slice(&[0xa1, b'x', 0x01]);
    }
    p
}

fn ones_json(n: usize, out: &mut Vec<u8>) {
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'1');
    }
    out.push(b']');
}

/// `["endpoint", [1, 1, ...], {}]` with `n` arguments.
fn json_many_args(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = format!("[\"{endpoint}\",").into_bytes();
    ones_json(n, &mut p);
    p.extend_from_slice(b",{}]");
    p
}

/// `["endpoint", [[1, 1, ...], 1], {}]`.
fn json_big_list(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = format!("[\"{endpoint}\",[").into_bytes();
    ones_json(n, &mut p);
    p.extend_from_slice(b",1],{}]");
    p
}

/// The start of a protocol 4 request: PROTO, the name, MEMOIZE.
fn pickle_start(endpoint: &str) -> Vec<u8> {
    let mut p = vec![0x80, 0x04, 0x8c, u8::try_from(endpoint.len()).unwrap()];
    p.extend_from_slice(endpoint.as_bytes());
    p.push(0x94);
    p
}

/// `(endpoint, (None, None, ...), {})`: `n` one-byte arguments.
fn pickle_many_args(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = pickle_start(endpoint);
    p.push(b'(');
    p.resize(p.len() + n, b'N');
    p.extend_from_slice(&[b't', b'}', 0x87, b'.']);
    p
}

/// `(endpoint, ([None, None, ...], 1), {})`: a list where a number goes.
fn pickle_big_list(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = pickle_start(endpoint);
    p.extend_from_slice(b"(](");
    p.resize(p.len() + n, b'N');
    p.extend_from_slice(&[b'e', b'K', 1, b't', b'}', 0x87, b'.']);
    p
}

/// `(endpoint, (), {})` after `n` pairs of NONE POP: opcodes that make
/// values and drop them at once, so that nothing but a decoder's own
/// bookkeeping grows.
fn pickle_churn(endpoint: &str, n: usize) -> Vec<u8> {
    let mut p = pickle_start(endpoint);
    for _ in 0..n {
        p.extend_from_slice(b"N0");
    }
    p.extend_from_slice(&[b')', b'}', 0x87, b'.']);
    p
}

/// Sends `payload` on a fresh connection as `uid`, returns the error reply
/// and how much the daemon's peak resident set grew meanwhile, in bytes.
fn cost(d: &Daemon, uid: u32, payload: Vec<u8>) -> (RemoteError, u64) {
    let name = d
        .path()
        .strip_prefix("unix:@")
        .expect("an abstract socket")
        .to_owned();
    let codec = codec::detect(&payload).unwrap();
    d.reset_peak();
    let before = d.status().rss_kib;
    let reply = root::as_user(uid, uid, &[], move || {
        let reply = raw::call_abstract(&name, &payload);
        drop(payload);
        reply
    });
    let grown = d.status().peak_kib.saturating_sub(before) * 1024;
    match codec::decode_reply::<anyd::Value>(codec, &reply, &Default::default()).unwrap() {
        message::Reply::Err(e) => (e, grown),
        other => panic!("not an error reply: {other:?}"),
    }
}

/// The bound every case here must keep: 2x the frame, plus 8 MiB.
fn bound(len: usize) -> u64 {
    2 * len as u64 + (8 << 20)
}

/// Sends one case; says what is wrong with its reply or its cost, if
/// anything (every case runs, so that a failure shows them all).
fn check(
    d: &Daemon,
    uid: u32,
    what: &str,
    payload: Vec<u8>,
    kind: &str,
    says: &str,
) -> Vec<String> {
    let len = payload.len();
    assert!(len <= frame::DEFAULT_MAX_FRAME);
    let (e, grown) = cost(d, uid, payload);
    eprintln!(
        "{what}: {len} bytes -> peak grew {} KiB ({:.2}x the frame): {e}",
        grown / 1024,
        grown as f64 / len as f64
    );
    let mut wrong = Vec::new();
    if grown > bound(len) {
        wrong.push(format!(
            "{what}: the daemon's peak grew by {} KiB for a frame of {} KiB (bound {} KiB)",
            grown / 1024,
            len / 1024,
            bound(len) / 1024
        ));
    }
    if e.kind != kind || !e.message.contains(says) {
        wrong.push(format!(
            "{what}: replied {e}, expected {kind}: ...{says}..."
        ));
    }
    wrong
}

#[test]
fn a_denied_request_costs_a_small_multiple_of_its_size_in_every_codec_as_root() {
    root::require_root("calling as another user");
    let d = Daemon::start_abstract(None);
    let cases: [(&str, Codec, Vec<u8>); 5] = [
        (
            "msgpack, 16M one-byte arguments",
            Codec::MsgPack,
            msgpack_many_args("root_sum", SIZE),
        ),
        (
            "json, 8M arguments",
            Codec::Json,
            json_many_args("root_sum", SIZE / 2),
        ),
        (
            "pickle, 16M None arguments",
            Codec::Pickle,
            pickle_many_args("root_sum", SIZE),
        ),
        (
            "pickle, a 16M-item list",
            Codec::Pickle,
            pickle_big_list("root_sum", SIZE),
        ),
        (
            "pickle, 8M NONE POP",
            Codec::Pickle,
            pickle_churn("root_sum", SIZE / 2),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, codec, payload) in cases {
        assert_eq!(codec::detect(&payload).unwrap(), codec);
        // Exactly what a call of a missing endpoint gets.
        wrong.extend(check(
            &d,
            NOBODY,
            what,
            payload,
            "NotImplementedError",
            "root_sum",
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Root may call it: the endpoint is there, and the daemon still serves.
    let mut s = d.session();
    assert_eq!(s.commit::<u64>("root_sum", (1, 2)).unwrap(), 3);
}

#[test]
fn an_allowed_call_with_wrong_arguments_costs_a_small_multiple_of_its_size() {
    let d = Daemon::start_abstract(None);
    let me = rustix::process::geteuid().as_raw();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "msgpack, 16M arguments for 2",
            msgpack_many_args("sum", SIZE),
            "sum() takes 2 positional arguments but 16000000 were given",
        ),
        (
            "msgpack, a 16M-item list for a number",
            msgpack_big_list("sum", SIZE),
            "sum() argument 'a' must be u64, not list",
        ),
        (
            "msgpack, 5M keyword arguments",
            msgpack_many_kwargs("sum", SIZE / 3),
            "sum() got an unexpected keyword argument 'x'",
        ),
        (
            "json, 8M arguments for 2",
            json_many_args("sum", SIZE / 2),
            "sum() takes 2 positional arguments but 8000000 were given",
        ),
        (
            "json, an 8M-item list for a number",
            json_big_list("sum", SIZE / 2),
            "sum() argument 'a' must be u64, not list",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, payload, says) in cases {
        wrong.extend(check(&d, me, what, payload, "TypeError", says));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_pickle_from_an_allowed_caller_costs_a_small_multiple_of_its_size() {
    // Pickles are decoded whole once the caller is allowed, within the
    // decoder's working memory (at most 128 bytes per input byte, and next
    // to nothing for what a pickle drops). Before values were freed and
    // counted in bytes, these cost the daemon 13x, 4.5x and 4x the frame.
    let d = Daemon::start_abstract(None);
    let me = rustix::process::geteuid().as_raw();
    let cases: [(&str, Vec<u8>, &str, &str); 3] = [
        (
            "pickle, 8M NONE POP",
            pickle_churn("sum", SIZE / 2),
            "TypeError",
            "sum() missing required argument: 'a'",
        ),
        (
            "pickle, 16M None arguments for 2",
            pickle_many_args("sum", SIZE),
            "ValueError",
            "too many values",
        ),
        (
            "pickle, a 16M-item list for a number",
            pickle_big_list("sum", SIZE),
            "ValueError",
            "too many values",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, payload, kind, says) in cases {
        wrong.extend(check(&d, me, what, payload, kind, says));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
