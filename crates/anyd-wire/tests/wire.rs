//! The message layer against docs/PROTOCOL.md's vectors, and round trips through
//! every codec.

use std::collections::BTreeMap;

use anyd_wire::codec::{
    decode_reply, decode_request, detect, encode_end_session, encode_reply_error, encode_reply_ok,
    encode_request, Codec, DecodeError, DecodeLimits, EncodeError,
};
use anyd_wire::frame;
use anyd_wire::message::{Incoming, RemoteError, Reply, Request};
use anyd_wire::Value;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn request(payload: &[u8]) -> Request<'_> {
    match decode_request(payload, &DecodeLimits::default()).unwrap() {
        Incoming::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn arg<T: serde::de::DeserializeOwned>(r: &Request<'_>, i: usize) -> T {
    r.args[i].deserialize().unwrap()
}

const ECHO_P2: &str = "800258040000006563686f7100580500000068656c6c6f71018571027d71038771042e";
const ECHO_P4: &str = "80049516000000000000008c046563686f948c0568656c6c6f9485947d9487942e";
const ECHO_P5: &str = "80059516000000000000008c046563686f948c0568656c6c6f9485947d9487942e";

#[test]
fn pickle_request_vectors_decode() {
    for v in [ECHO_P2, ECHO_P4, ECHO_P5] {
        let bytes = hex(v);
        let r = request(&bytes);
        assert_eq!(r.codec, Codec::Pickle);
        assert_eq!(r.endpoint, "echo");
        assert_eq!(r.args.len(), 1);
        assert_eq!(arg::<String>(&r, 0), "hello");
        assert!(r.kwargs.is_empty());
    }
    let kw = hex("80049523000000000000008c046563686f94297d948c03617267948c0c68656c6c6f20776f726c6421947387942e");
    let r = request(&kw);
    assert_eq!(r.endpoint, "echo");
    assert!(r.args.is_empty());
    assert_eq!(r.kwargs.len(), 1);
    assert_eq!(r.kwargs[0].0, "arg");
    assert_eq!(
        r.kwargs[0].1.deserialize::<String>().unwrap(),
        "hello world!"
    );

    let sum = hex("80049515000000000000008c076765745f73756d944b014b0286947d9487942e");
    let r = request(&sum);
    assert_eq!(r.endpoint, "get_sum");
    assert_eq!((arg::<i64>(&r, 0), arg::<i64>(&r, 1)), (1, 2));
}

#[test]
fn pickle_sigends_vectors_decode() {
    for v in [
        "8004950b000000000000004307534947454e4453942e",
        "8002635f636f646563730a656e636f64650a71005807000000534947454e4453710158060000006c6174696e3171028671035271042e",
    ] {
        let bytes = hex(v);
        assert!(matches!(
            decode_request(&bytes, &DecodeLimits::default()).unwrap(),
            Incoming::EndSession(Codec::Pickle)
        ));
    }
}

#[test]
fn pickle_request_encodes_byte_exact() {
    let mut out = Vec::new();
    encode_request(Codec::Pickle, "echo", &("hello",), &(), &mut out).unwrap();
    assert_eq!(out, hex(ECHO_P4));
    out.clear();
    encode_request(Codec::Pickle, "get_sum", &(1, 2), &(), &mut out).unwrap();
    assert_eq!(
        out,
        hex("80049515000000000000008c076765745f73756d944b014b0286947d9487942e")
    );
    out.clear();
    let kwargs = BTreeMap::from([("arg", "hello world!")]);
    encode_request(Codec::Pickle, "echo", &(), &kwargs, &mut out).unwrap();
    assert_eq!(
        out,
        hex("80049523000000000000008c046563686f94297d948c03617267948c0c68656c6c6f20776f726c6421947387942e")
    );
    out.clear();
    encode_end_session(Codec::Pickle, &mut out);
    assert_eq!(out, hex("8004950b000000000000004307534947454e4453942e"));
}

#[test]
fn pickle_error_reply_vectors() {
    let mut out = Vec::new();
    encode_reply_error(
        Codec::Pickle,
        &RemoteError::new("NotImplementedError", "my_func"),
        &mut out,
    );
    assert_eq!(
        out,
        hex("80049532000000000000008c086275696c74696e73948c134e6f74496d706c656d656e7465644572726f729493948c076d795f66756e6394859452942e")
    );
    let reply: Reply<Value> = decode_reply(Codec::Pickle, &out, &DecodeLimits::default()).unwrap();
    let Reply::Err(e) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("NotImplementedError", "my_func")
    );

    let p2 = hex(
        "800263657863657074696f6e730a547970654572726f720a7100580300000062616471018571025271032e",
    );
    let reply: Reply<Value> = decode_reply(Codec::Pickle, &p2, &DecodeLimits::default()).unwrap();
    let Reply::Err(e) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert_eq!((e.kind.as_str(), e.message.as_str()), ("TypeError", "bad"));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Status {
    status: String,
}

#[test]
fn pickle_value_reply_vector() {
    let status = Status {
        status: "connected".into(),
    };
    let mut out = Vec::new();
    encode_reply_ok(Codec::Pickle, &status, &mut out).unwrap();
    assert_eq!(
        out,
        hex("80049519000000000000007d948c06737461747573948c09636f6e6e656374656494732e")
    );
    let back: Reply<Status> = decode_reply(Codec::Pickle, &out, &DecodeLimits::default()).unwrap();
    assert_eq!(back, Reply::Ok(status));
}

#[test]
fn json_request_is_the_documented_shape() {
    let mut out = Vec::new();
    encode_request(Codec::Json, "echo", &("hello",), &(), &mut out).unwrap();
    assert_eq!(out, br#"["echo",["hello"],{}]"#);
    let r = request(br#"["echo", ["hello"], {}]"#);
    assert_eq!(r.codec, Codec::Json);
    assert_eq!(arg::<String>(&r, 0), "hello");
    // Escaped names and keys still decode.
    let r = request(br#"["ec\u0068o", [], {"a\"b": [1, 2]}]"#);
    assert_eq!(r.endpoint, "echo");
    assert_eq!(r.kwargs[0].0, "a\"b");
    assert_eq!(r.kwargs[0].1.deserialize::<Vec<u8>>().unwrap(), [1, 2]);
}

#[test]
fn json_replies_have_the_documented_shape() {
    let mut out = Vec::new();
    encode_reply_ok(
        Codec::Json,
        &Status {
            status: "up".into(),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out, br#"{"ok":{"status":"up"}}"#);
    out.clear();
    encode_reply_error(Codec::Json, &RemoteError::new("TypeError", "bad"), &mut out);
    assert_eq!(
        out,
        br#"{"error":{"kind":"TypeError","message":"bad","data":null}}"#
    );
    // `{"ok": null}` is a successful unit result, not a missing key.
    let r: Reply<()> =
        decode_reply(Codec::Json, br#"{"ok": null}"#, &DecodeLimits::default()).unwrap();
    assert_eq!(r, Reply::Ok(()));
    assert!(decode_reply::<()>(Codec::Json, br#"{}"#, &DecodeLimits::default()).is_err());
    assert!(decode_reply::<()>(
        Codec::Json,
        br#"{"ok":1,"error":2}"#,
        &DecodeLimits::default()
    )
    .is_err());
}

#[test]
fn msgpack_shapes() {
    let mut out = Vec::new();
    encode_request(Codec::MsgPack, "echo", &("hello",), &(), &mut out).unwrap();
    assert_eq!(out, b"\x93\xa4echo\x91\xa5hello\x80");
    out.clear();
    encode_end_session(Codec::MsgPack, &mut out);
    assert_eq!(out, b"\xa7SIGENDS");
    out.clear();
    encode_reply_ok(Codec::MsgPack, &true, &mut out).unwrap();
    assert_eq!(out, b"\x81\xa2ok\xc3");
    out.clear();
    encode_reply_error(Codec::MsgPack, &RemoteError::new("E", "m"), &mut out);
    assert_eq!(
        out,
        b"\x81\xa5error\x83\xa4kind\xa1E\xa7message\xa1m\xa4data\xc0"
    );
    let r: Reply<()> = decode_reply(Codec::MsgPack, &out, &DecodeLimits::default()).unwrap();
    assert_eq!(r, Reply::Err(RemoteError::new("E", "m")));
}

#[test]
fn end_session_round_trips_in_every_codec() {
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        let mut out = Vec::new();
        encode_end_session(codec, &mut out);
        assert_eq!(detect(&out).unwrap(), codec);
        assert!(matches!(
            decode_request(&out, &DecodeLimits::default()).unwrap(),
            Incoming::EndSession(c) if c == codec
        ));
        assert_eq!(
            decode_reply::<()>(codec, &out, &DecodeLimits::default()).unwrap(),
            Reply::EndSession
        );
    }
}

#[test]
fn detection_by_first_byte() {
    assert_eq!(detect(b"\x93").unwrap(), Codec::MsgPack);
    assert_eq!(detect(b"\xa7").unwrap(), Codec::MsgPack);
    assert_eq!(detect(b"[").unwrap(), Codec::Json);
    assert_eq!(detect(b"\"").unwrap(), Codec::Json);
    assert_eq!(detect(b"\x80").unwrap(), Codec::Pickle);
    assert!(matches!(detect(b""), Err(DecodeError::Empty)));
    assert!(matches!(
        detect(b" ["),
        Err(DecodeError::UnknownCodec(b' '))
    ));
    assert!(matches!(detect(b"{"), Err(DecodeError::UnknownCodec(b'{'))));
}

#[test]
fn argument_shapes_are_checked_on_the_client() {
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        let mut out = Vec::new();
        assert_eq!(
            encode_request(codec, "echo", &"bare", &(), &mut out),
            Err(EncodeError::ArgsNotASequence)
        );
        out.clear();
        assert_eq!(
            encode_request(codec, "echo", &(), &[1, 2], &mut out),
            Err(EncodeError::KwargsNotAMap)
        );
        out.clear();
        // A Vec is as good as a tuple for positional arguments.
        encode_request(codec, "sum", &vec![1, 2, 3], &(), &mut out).unwrap();
        let r = request(&out);
        assert_eq!(r.args.len(), 3);
    }
}

#[test]
fn hostile_requests_are_errors() {
    let limits = DecodeLimits::default();
    for payload in [
        &b"\x93\xa4echo\xdd\xff\xff\xff\xff"[..], // args: array32 of 2^32-1, none present
        b"\x93\xa4echo\x90\xdf\xff\xff\xff\xff",  // kwargs: map32 claim
        b"\x93\xdb\xff\xff\xff\xffecho\x90\x80",  // endpoint: str32 claim
        b"\x93\xa4echo\x90\x80\x00",              // trailing byte
        b"\x93\xa4echo\x90",                      // truncated
        b"\x93\x01\x90\x80",                      // endpoint not a string
        b"\x93\xa2\xff\xfe\x90\x80",              // endpoint not UTF-8
        b"\xa7SIGENDX",                           // not SIGENDS
        br#"["echo", ["hello"]]"#,                // two parts
        br#"["echo", ["hello"], {}, 1]"#,         // four parts
        br#"["echo", "hello", {}]"#,              // args not a list
        br#"["echo", [], []]"#,                   // kwargs not an object
        br#"["echo", [1,"#,                       // truncated
        b"\x80\x04N.",                            // pickle None: not a request
    ] {
        assert!(
            decode_request(payload, &limits).is_err(),
            "{:?}",
            String::from_utf8_lossy(payload)
        );
    }
    // A JSON nesting bomb hits serde_json's recursion limit, not the stack.
    let mut bomb = b"[\"echo\", [".to_vec();
    bomb.extend(std::iter::repeat_n(b'[', 100_000));
    assert!(decode_request(&bomb, &limits).is_err());
    // A MessagePack one is skipped without recursion and then refused when
    // a handler tries to use it.
    let mut bomb = b"\x93\xa4echo\x91".to_vec();
    bomb.extend(std::iter::repeat_n(0x91, 100_000));
    bomb.extend_from_slice(b"\xc0\x80");
    let r = request(&bomb);
    assert!(r.args[0].deserialize::<Value>().is_err());
}

#[test]
fn wrong_result_type_is_a_result_error() {
    let mut out = Vec::new();
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        out.clear();
        encode_reply_ok(codec, &"text", &mut out).unwrap();
        assert!(matches!(
            decode_reply::<u32>(codec, &out, &DecodeLimits::default()),
            Err(DecodeError::Result(_))
        ));
    }
}

#[test]
fn frames_carry_messages() {
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    encode_request(Codec::MsgPack, "echo", &("hello",), &(), &mut out).unwrap();
    frame::finish(&mut out, mark);
    let f = frame::decode(&out, frame::DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    let r = request(&out[f.payload]);
    assert_eq!(arg::<String>(&r, 0), "hello");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    port: u16,
    tags: Vec<String>,
    limit: Option<i64>,
    blob: Vec<u8>,
}

fn config() -> impl Strategy<Value = Config> {
    (
        ".{0,20}",
        any::<u16>(),
        proptest::collection::vec(".{0,8}", 0..4),
        any::<Option<i64>>(),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(name, port, tags, limit, blob)| Config {
            name,
            port,
            tags,
            limit,
            blob,
        })
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::MsgPack), Just(Codec::Json), Just(Codec::Pickle)]
}

proptest! {
    #[test]
    fn request_round_trip(codec in codec(), c in config(), n in any::<i64>(), f in -1e300f64..1e300, key in "[a-z_]{1,10}") {
        let mut out = Vec::new();
        let kwargs = BTreeMap::from([(key.clone(), n)]);
        encode_request(codec, "set_config", &(c.clone(), f), &kwargs, &mut out).unwrap();
        let r = request(&out);
        prop_assert_eq!(r.codec, codec);
        prop_assert_eq!(&*r.endpoint, "set_config");
        prop_assert_eq!(arg::<Config>(&r, 0), c);
        prop_assert_eq!(arg::<f64>(&r, 1), f);
        prop_assert_eq!(&*r.kwargs[0].0, key.as_str());
        prop_assert_eq!(r.kwargs[0].1.deserialize::<i64>().unwrap(), n);
    }

    #[test]
    fn reply_round_trip(codec in codec(), c in config(), kind in "[A-Za-z]{1,12}", message in ".{0,40}") {
        let mut out = Vec::new();
        encode_reply_ok(codec, &c, &mut out).unwrap();
        prop_assert_eq!(decode_reply::<Config>(codec, &out, &DecodeLimits::default()).unwrap(), Reply::Ok(c));
        out.clear();
        let err = RemoteError::new(kind.clone(), message.clone());
        encode_reply_error(codec, &err, &mut out);
        let Reply::Err(back) = decode_reply::<Config>(codec, &out, &DecodeLimits::default()).unwrap() else {
            panic!("expected an error");
        };
        if codec == Codec::Pickle && !anyd_wire::codec::pickle::BUILTIN_EXCEPTIONS.contains(&kind.as_str()) {
            // Pickle carries only Python's own exception classes; others
            // travel as RuntimeError("Kind: message").
            prop_assert_eq!(back.kind, "RuntimeError");
            prop_assert_eq!(back.message, format!("{kind}: {message}"));
        } else {
            prop_assert_eq!(back.kind, kind);
            prop_assert_eq!(back.message, message);
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let limits = DecodeLimits::default();
        if let Ok(Incoming::Request(r)) = decode_request(&bytes, &limits) {
            for a in &r.args {
                let _ = a.deserialize::<Value>();
            }
        }
        for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
            let _ = decode_reply::<Value>(codec, &bytes, &limits);
        }
    }
}

#[test]
fn pickle_names_are_peeked_and_must_match() {
    use anyd_wire::codec::decode_head;
    use anyd_wire::message::Head;
    let limits = DecodeLimits::default();
    // Protocols 2 (BINUNICODE) and 4 (FRAME, SHORT_BINUNICODE), as CPython
    // writes them: the name is known from the first opcodes.
    for text in [
        "800258040000006563686f7100580500000068656c6c6f71018571027d71038771042e",
        "80049516000000000000008c046563686f948c0568656c6c6f9485947d9487942e",
    ] {
        let bytes = hex(text);
        let Head::Request(head) = decode_head(&bytes, &limits).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(head.endpoint, "echo");
        let r = head.decode_args(0, &limits).unwrap();
        assert_eq!((r.positional, r.args.len()), (1, 0), "counted, not kept");
    }
    // A pickle that starts with an allowed name, drops it, and then builds
    // a request for another endpoint: refused once decoded, so the policy
    // checked on the peeked name cannot be fooled.
    let mut sneaky = vec![0x80, 0x04, 0x8c, 4];
    sneaky.extend_from_slice(b"echo");
    sneaky.extend_from_slice(b"0"); // POP
    sneaky.extend_from_slice(&[0x8c, 6]);
    sneaky.extend_from_slice(b"secret");
    sneaky.extend_from_slice(&[b')', b'}', 0x87, b'.']);
    let Head::Request(head) = decode_head(&sneaky, &limits).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(head.endpoint, "echo");
    let e = head.decode_args(1, &limits).unwrap_err();
    assert!(e.to_string().contains("not the first value"), "{e}");
    // A long pickle that does not name its endpoint first is refused
    // before it is decoded; a short one is decoded whole.
    let mut unnamed = vec![0x80, 0x04];
    unnamed.extend(std::iter::repeat_n(b'(', 2000));
    let e = decode_head(&unnamed, &limits).unwrap_err();
    assert!(
        e.to_string().contains("must start with its endpoint name"),
        "{e}"
    );
    let sigends = hex("8002635f636f646563730a656e636f64650a71005807000000534947454e4453710158060000006c6174696e3171028671035271042e");
    assert!(matches!(
        decode_head(&sigends, &limits).unwrap(),
        Head::EndSession(Codec::Pickle)
    ));
}

mod streams {
    //! The stream extension (docs/PROTOCOL.md section 8.1), byte for byte.

    use super::*;
    use anyd_wire::codec::{
        decode_stream_reply, encode_cancel, encode_item, encode_stream_request,
    };
    use anyd_wire::message::StreamReply;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    #[test]
    fn msgpack_vectors() {
        let mut out = Vec::new();
        encode_stream_request(Codec::MsgPack, "count", &(3,), &(), &mut out).unwrap();
        assert_eq!(out, b"\x94\xa5count\x91\x03\x80\x81\xa6stream\xc3");
        let r = request(&out);
        assert!(r.options.stream);
        assert_eq!(arg::<u32>(&r, 0), 3);
        out.clear();
        encode_item(Codec::MsgPack, &7, &mut out).unwrap();
        assert_eq!(out, b"\x81\xa4item\x07");
        assert_eq!(
            decode_stream_reply::<u8>(Codec::MsgPack, &out, &limits()).unwrap(),
            StreamReply::Item(7)
        );
        out.clear();
        encode_cancel(Codec::MsgPack, &mut out).unwrap();
        assert_eq!(out, b"\xa6CANCEL");
        assert!(matches!(
            decode_request(&out, &limits()).unwrap(),
            Incoming::Cancel(Codec::MsgPack)
        ));
        // The end is an ordinary reply: nil, or an error.
        assert_eq!(
            decode_stream_reply::<u8>(Codec::MsgPack, b"\x81\xa2ok\xc0", &limits()).unwrap(),
            StreamReply::End
        );
        out.clear();
        encode_reply_error(Codec::MsgPack, &RemoteError::new("E", "m"), &mut out);
        assert_eq!(
            decode_stream_reply::<u8>(Codec::MsgPack, &out, &limits()).unwrap(),
            StreamReply::Err(RemoteError::new("E", "m"))
        );
    }

    #[test]
    fn json_vectors() {
        let mut out = Vec::new();
        encode_stream_request(Codec::Json, "count", &(3,), &(), &mut out).unwrap();
        assert_eq!(out, br#"["count",[3],{},{"stream":true}]"#);
        let r = request(&out);
        assert!(r.options.stream);
        out.clear();
        encode_item(Codec::Json, &"x", &mut out).unwrap();
        assert_eq!(out, br#"{"item":"x"}"#);
        assert_eq!(
            decode_stream_reply::<String>(Codec::Json, &out, &limits()).unwrap(),
            StreamReply::Item("x".to_owned())
        );
        out.clear();
        encode_cancel(Codec::Json, &mut out).unwrap();
        assert_eq!(out, br#""CANCEL""#);
        assert!(matches!(
            decode_request(&out, &limits()).unwrap(),
            Incoming::Cancel(Codec::Json)
        ));
        assert_eq!(
            decode_stream_reply::<String>(Codec::Json, br#"{"ok":null}"#, &limits()).unwrap(),
            StreamReply::End
        );
    }

    #[test]
    fn a_request_without_options_is_not_a_stream() {
        for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
            let mut out = Vec::new();
            encode_request(codec, "count", &(3,), &(), &mut out).unwrap();
            assert!(!request(&out).options.stream, "{codec:?}");
        }
        // Options may also say no.
        assert!(
            !request(br#"["count",[3],{},{"stream":false}]"#)
                .options
                .stream
        );
        assert!(!request(br#"["count",[3],{},{}]"#).options.stream);
    }

    #[test]
    fn unknown_options_and_a_fifth_element_are_malformed() {
        for bad in [
            &br#"["count",[3],{},{"fast":true}]"#[..],
            br#"["count",[3],{},{"stream":1}]"#,
            br#"["count",[3],{},{},{}]"#,
            br#"["count",[3],{},[]]"#,
            b"\x94\xa5count\x91\x03\x80\x81\xa4fast\xc3",
            b"\x94\xa5count\x91\x03\x80\xc3",
            b"\x94\xa5count\x91\x03\x80",
            b"\x95\xa5count\x91\x03\x80\x80\x80",
        ] {
            assert!(
                decode_request(bad, &limits()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pickle_has_no_streams() {
        let mut out = Vec::new();
        assert_eq!(
            encode_stream_request(Codec::Pickle, "count", &(3,), &(), &mut out),
            Err(EncodeError::NotNative(Codec::Pickle))
        );
        assert!(encode_item(Codec::Pickle, &1, &mut out).is_err());
        assert!(encode_cancel(Codec::Pickle, &mut out).is_err());
        assert!(decode_stream_reply::<u8>(Codec::Pickle, b"\x80\x04K\x01.", &limits()).is_err());
    }

    #[test]
    fn an_item_is_not_a_unary_reply() {
        let err = decode_reply::<u8>(Codec::MsgPack, b"\x81\xa4item\x07", &limits());
        assert!(err.is_err());
        let err = decode_reply::<u8>(Codec::Json, br#"{"item":7}"#, &limits());
        assert!(err.is_err());
    }
}

mod descriptors {
    //! The descriptors option (docs/PROTOCOL.md section 8.2), byte for
    //! byte: the placeholders are ordinary maps, so only the request's
    //! option is new.

    use super::*;
    use anyd_wire::codec::{encode_request_with, RequestOptions};

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    fn placeholder(n: u8) -> std::collections::BTreeMap<&'static str, u8> {
        [("$fd", n)].into()
    }

    #[test]
    fn msgpack_vectors() {
        let fds = RequestOptions::NONE.with_fds(true);
        let mut out = Vec::new();
        encode_request_with(
            Codec::MsgPack,
            "read",
            &(placeholder(0),),
            &(),
            &fds,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"\x94\xa4read\x91\x81\xa3$fd\x00\x80\x81\xa3fds\xc3");
        let r = request(&out);
        assert!(r.options.fds && !r.options.stream);
        out.clear();
        let both = fds.with_stream(true);
        encode_request_with(Codec::MsgPack, "watch", &(), &(), &both, &mut out).unwrap();
        assert_eq!(out, b"\x94\xa5watch\x90\x80\x82\xa6stream\xc3\xa3fds\xc3");
        let r = request(&out);
        assert!(r.options.fds && r.options.stream);
    }

    #[test]
    fn json_vectors() {
        let fds = RequestOptions::NONE.with_fds(true);
        let mut out = Vec::new();
        encode_request_with(Codec::Json, "read", &(placeholder(0),), &(), &fds, &mut out).unwrap();
        assert_eq!(out, br#"["read",[{"$fd":0}],{},{"fds":true}]"#);
        assert!(request(&out).options.fds);
        out.clear();
        let both = fds.with_stream(true);
        encode_request_with(Codec::Json, "watch", &(), &(), &both, &mut out).unwrap();
        assert_eq!(out, br#"["watch",[],{},{"stream":true,"fds":true}]"#);
        // Without options, the plain request.
        out.clear();
        encode_request_with(
            Codec::Json,
            "watch",
            &(),
            &(),
            &RequestOptions::NONE,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, br#"["watch",[],{}]"#);
        assert!(!request(&out).options.fds);
    }

    #[test]
    fn pickle_carries_no_descriptors() {
        let mut out = Vec::new();
        let fds = RequestOptions::NONE.with_fds(true);
        assert_eq!(
            encode_request_with(Codec::Pickle, "read", &(), &(), &fds, &mut out),
            Err(EncodeError::NotNative(Codec::Pickle))
        );
        assert!(decode_request(br#"["read",[],{},{"fds":1}]"#, &limits()).is_err());
    }
}

mod call_context {
    //! The call context's options (docs/PROTOCOL.md sections 8.3 and 8.4),
    //! byte for byte.

    use super::*;
    use anyd_wire::codec::{encode_request_with, RequestOptions, TimeoutMs};

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn options() -> RequestOptions {
        let mut o = RequestOptions::NONE.with_timeout(Some(std::time::Duration::from_millis(1500)));
        o.traceparent = Some(TRACEPARENT.into());
        o.tracestate = Some("k=v".into());
        o
    }

    #[test]
    fn msgpack_vectors() {
        let mut out = Vec::new();
        let timeout =
            RequestOptions::NONE.with_timeout(Some(std::time::Duration::from_millis(1500)));
        encode_request_with(Codec::MsgPack, "echo", &("hi",), &(), &timeout, &mut out).unwrap();
        assert_eq!(
            out, b"\x94\xa4echo\x91\xa2hi\x80\x81\xaatimeout_ms\xcd\x05\xdc",
            "{out:02x?}"
        );
        assert_eq!(request(&out).options.timeout_ms, TimeoutMs::new(1500));
        out.clear();
        encode_request_with(Codec::MsgPack, "echo", &("hi",), &(), &options(), &mut out).unwrap();
        let mut want =
            b"\x94\xa4echo\x91\xa2hi\x80\x83\xaatimeout_ms\xcd\x05\xdc\xabtraceparent\xd9\x37"
                .to_vec();
        want.extend_from_slice(TRACEPARENT.as_bytes());
        want.extend_from_slice(b"\xaatracestate\xa3k=v");
        assert_eq!(out, want, "{out:02x?}");
        assert_eq!(request(&out).options, options());
    }

    #[test]
    fn json_vectors() {
        let mut out = Vec::new();
        encode_request_with(Codec::Json, "echo", &("hi",), &(), &options(), &mut out).unwrap();
        let want = format!(
            r#"["echo",["hi"],{{}},{{"timeout_ms":1500,"traceparent":"{TRACEPARENT}","tracestate":"k=v"}}]"#
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), want);
        assert_eq!(request(&out).options, options());
    }

    #[test]
    fn a_timeout_rounds_up_to_whole_milliseconds_and_stops_at_a_day() {
        use std::time::Duration;
        let ms = |d| TimeoutMs::from_duration(d).millis();
        assert_eq!(ms(Duration::from_micros(400)), 1);
        assert_eq!(ms(Duration::from_millis(7)), 7);
        assert_eq!(
            ms(Duration::from_secs(10 * 24 * 3600)),
            anyd_wire::codec::MAX_TIMEOUT_MS
        );
        assert_eq!(ms(Duration::ZERO), 0);
    }

    #[test]
    fn a_bad_timeout_is_malformed_and_names_the_option() {
        let limits = DecodeLimits::default();
        for (payload, says) in [
            (
                &br#"["echo",[],{},{"timeout_ms":-5}]"#[..],
                "not a negative integer",
            ),
            (br#"["echo",[],{},{"timeout_ms":"5"}]"#, "not a string"),
            (br#"["echo",[],{},{"timeout_ms":1.5}]"#, "not a float"),
            (
                br#"["echo",[],{},{"timeout_ms":86400001}]"#,
                "not a larger one",
            ),
            (
                b"\x94\xa4echo\x90\x80\x81\xaatimeout_ms\xff",
                "not a negative integer",
            ),
            (
                b"\x94\xa4echo\x90\x80\x81\xaatimeout_ms\xce\x05\x26\x5c\x01",
                "not a larger one",
            ),
            (
                b"\x94\xa4echo\x90\x80\x81\xabtraceparent\x01",
                "not an integer",
            ),
        ] {
            let e = decode_request(payload, &limits).unwrap_err().to_string();
            assert!(e.contains("timeout_ms") || e.contains("traceparent"), "{e}");
            assert!(e.contains(says), "{e}");
        }
        let ok = decode_request(br#"["echo",[],{},{"timeout_ms":86400000}]"#, &limits).unwrap();
        assert!(
            matches!(ok, Incoming::Request(r) if r.options.timeout_ms.map(TimeoutMs::millis) == Some(86_400_000))
        );
    }
}
