use super::*;
use crate::codec::decode_request;
use crate::message::options_tests::{all_set, AllKinds};
use crate::message::OptionSet;

/// The options map for every combination of the protocol's options,
/// as this implementation wrote and read it with a constant per
/// combination before the table, and must still.
const EVERY_COMBINATION: [(bool, bool, &[u8]); 4] = [
    (false, false, b"\x80"),
    (true, false, b"\x81\xa6stream\xc3"),
    (false, true, b"\x81\xa3fds\xc3"),
    (true, true, b"\x82\xa6stream\xc3\xa3fds\xc3"),
];

fn read<O: OptionSet>(bytes: &[u8]) -> Result<O, DecodeError> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let options = read_options(&mut c)?;
    c.finish()?;
    Ok(options)
}

#[test]
fn the_table_writes_and_reads_the_constants_it_replaced() {
    for (stream, fds, bytes) in EVERY_COMBINATION {
        let options = RequestOptions::NONE.with_stream(stream).with_fds(fds);
        let mut out = Vec::new();
        write_options(&options, &mut out);
        assert_eq!(out, bytes, "{options:?}");
        assert_eq!(read::<RequestOptions>(bytes).unwrap(), options);
        // And whole requests, as the client writes them.
        let mut expected = vec![0x94];
        encode_call("echo", &("hello",), &(), &mut expected).unwrap();
        expected.extend_from_slice(bytes);
        out.clear();
        encode_request_with("echo", &("hello",), &(), &options, &mut out).unwrap();
        assert_eq!(out, expected, "{options:?}");
    }
}

#[test]
fn options_of_every_kind_are_written_as_rmp_serde_writes_a_map() {
    #[derive(Serialize)]
    struct Expected<'a> {
        flag: bool,
        number: u64,
        text: &'a str,
    }
    let set = all_set();
    let mut out = Vec::new();
    write_options(&set, &mut out);
    let mut expected = Vec::new();
    let e = Expected {
        flag: true,
        number: set.number.unwrap(),
        text: set.text.as_deref().unwrap(),
    };
    write(&e, &mut expected).unwrap();
    assert_eq!(out, expected);
    assert_eq!(read::<AllKinds>(&out).unwrap(), set);
    out.clear();
    write_options(&AllKinds::default(), &mut out);
    assert_eq!(out, b"\x80");
    // Any integer format holds a number, a signed one too when it is
    // not negative.
    for (bytes, n) in [
        (&b"\x81\xa6number\x05"[..], 5),
        (b"\x81\xa6number\xcd\x01\x00", 256),
        (b"\x81\xa6number\xd0\x05", 5),
        (
            b"\x81\xa6number\xd3\x7f\xff\xff\xff\xff\xff\xff\xff",
            i64::MAX as u64,
        ),
    ] {
        assert_eq!(read::<AllKinds>(bytes).unwrap().number, Some(n));
    }
}

#[test]
fn options_of_another_kind_are_refused_naming_the_option() {
    for (bytes, why) in [
        (
            &b"\x81\xa6number\xff"[..],
            "\"number\" takes an unsigned integer, not a negative integer",
        ),
        (
            b"\x81\xa6number\xd0\xff",
            "\"number\" takes an unsigned integer, not a negative integer",
        ),
        (
            b"\x81\xa6number\xa1x",
            "\"number\" takes an unsigned integer, not a string",
        ),
        (
            b"\x81\xa4text\xc3",
            "\"text\" takes a string, not a boolean",
        ),
        (
            b"\x81\xa4flag\x91\x01",
            "\"flag\" takes a boolean, not a list",
        ),
        (
            b"\x81\xa4flag\xcb\0\0\0\0\0\0\0\0",
            "\"flag\" takes a boolean, not a float",
        ),
        (b"\x81\xa4flag\xc0", "\"flag\" takes a boolean, not nil"),
    ] {
        let e = read::<AllKinds>(bytes).unwrap_err().to_string();
        assert!(e.ends_with(why), "{e}");
    }
}

/// An unknown option is refused as before the table, word for word; a
/// map cut short is that first, whatever it holds.
#[test]
fn unknown_options_are_refused_as_before() {
    for (bytes, error) in [
        (
            &b"\x94\xa5count\x91\x03\x80\x81\xa4fast\xc3"[..],
            "malformed MsgPack message: bad request options: unknown request option \"fast\"",
        ),
        (
            b"\x94\xa5count\x91\x03\x80\x82\xa6stream\xc3\xa4fast\x91\x01",
            "malformed MsgPack message: bad request options: unknown request option \"fast\"",
        ),
        (
            b"\x94\xa5count\x91\x03\x80\x81\xa4fast\x91",
            "malformed MsgPack message: truncated MessagePack value",
        ),
        (
            b"\x94\xa5count\x91\x03\x80\x81\xa6stream\xc3\x00",
            "malformed MsgPack message: 1 trailing bytes after the message",
        ),
    ] {
        let e = decode_request(bytes, &DecodeLimits::default()).unwrap_err();
        assert_eq!(e.to_string(), error);
    }
}

#[test]
fn skip_value_walks_nested_values() {
    // [1, {"a": [nil, true]}, "xyz"] followed by a marker byte.
    let bytes = b"\x93\x01\x81\xa1a\x92\xc0\xc3\xa3xyz\xff";
    let mut c = Cursor { buf: bytes, pos: 0 };
    assert_eq!(c.skip_value().unwrap(), &bytes[..bytes.len() - 1]);
    assert_eq!(c.pos, bytes.len() - 1);
}

#[test]
fn skip_value_refuses_claims_beyond_the_input() {
    for bytes in [
        &b"\xdd\xff\xff\xff\xff"[..], // array32 of 2^32 - 1 elements, none present
        b"\xdf\xff\xff\xff\xff\x01",  // map32 claim
        b"\xdb\xff\xff\xff\xffab",    // str32 claim
        b"\xc6\x7f\xff\xff\xff",      // bin32 claim
        b"\xc9\xff\xff\xff\xff\x01",  // ext32 claim
        b"\xcb\x00",                  // short float
    ] {
        let mut c = Cursor { buf: bytes, pos: 0 };
        assert!(c.skip_value().is_err(), "{bytes:x?}");
    }
}

#[test]
fn deep_nesting_does_not_recurse() {
    // 1,000,000 nested fixarrays of one: a stack bomb for a recursive
    // scanner, a plain loop here.
    let mut bytes = vec![0x91; 1_000_000];
    bytes.push(0xc0);
    let mut c = Cursor {
        buf: &bytes,
        pos: 0,
    };
    assert_eq!(c.skip_value().unwrap().len(), bytes.len());
}

#[test]
fn reserved_marker_is_an_error() {
    let mut c = Cursor {
        buf: b"\xc1",
        pos: 0,
    };
    assert!(c.skip_value().is_err());
}
