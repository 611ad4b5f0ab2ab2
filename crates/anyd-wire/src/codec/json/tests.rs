//! The JSON codec's tests: requests, replies, options and errors.

use super::*;
use crate::codec::decode_request;
use crate::message::options_tests::{all_set, AllKinds, ReadOptions};

/// The end of a request for every combination of the protocol's
/// options, as this implementation wrote it with a constant per
/// combination before the table, and must still.
const EVERY_COMBINATION: [(bool, bool, &[u8]); 4] = [
    (false, false, b"]"),
    (true, false, b",{\"stream\":true}]"),
    (false, true, b",{\"fds\":true}]"),
    (true, true, b",{\"stream\":true,\"fds\":true}]"),
];

fn read<O: OptionSet>(text: &str) -> Result<O, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let options = de::DeserializeSeed::deserialize(ReadOptions(std::marker::PhantomData), &mut de)?;
    de.end()?;
    Ok(options)
}

#[test]
fn the_table_writes_and_reads_the_constants_it_replaced() {
    for (stream, fds, end) in EVERY_COMBINATION {
        let options = RequestOptions::NONE.with_stream(stream).with_fds(fds);
        let mut expected = Vec::new();
        encode_call("echo", &("hello",), &(), &mut expected).unwrap();
        expected.extend_from_slice(end);
        let mut out = Vec::new();
        if options.any() {
            encode_request_with("echo", &("hello",), &(), &options, &mut out).unwrap();
        } else {
            encode_request("echo", &("hello",), &(), &mut out).unwrap();
        }
        assert_eq!(out, expected, "{options:?}");
        let Ok(crate::message::Incoming::Request(r)) =
            decode_request(&out, &DecodeLimits::default())
        else {
            panic!("{options:?}")
        };
        assert_eq!(r.options, options);
    }
}

#[test]
fn options_of_every_kind_are_written_as_serde_json_writes_a_map() {
    #[derive(Serialize)]
    struct Expected<'a> {
        flag: bool,
        number: u64,
        text: &'a str,
    }
    let set = all_set();
    let mut out = Vec::new();
    write_options(&set, &mut out);
    let e = Expected {
        flag: true,
        number: set.number.unwrap(),
        text: set.text.as_deref().unwrap(),
    };
    assert_eq!(out, serde_json::to_vec(&e).unwrap());
    assert_eq!(
        read::<AllKinds>(std::str::from_utf8(&out).unwrap()).unwrap(),
        set
    );
    out.clear();
    write_options(&AllKinds::default(), &mut out);
    assert_eq!(out, b"{}");
    // An escaped key is its text.
    assert!(read::<AllKinds>(r#"{"fl\u0061g":true}"#).unwrap().flag);
}

#[test]
fn options_of_another_kind_are_refused_naming_the_option() {
    for (text, why) in [
        (
            r#"{"number":-1}"#,
            r#""number" takes an unsigned integer, not a negative integer"#,
        ),
        (
            r#"{"number":1.5}"#,
            r#""number" takes an unsigned integer, not a float"#,
        ),
        (
            r#"{"number":"1"}"#,
            r#""number" takes an unsigned integer, not a string"#,
        ),
        (
            r#"{"text":true}"#,
            r#""text" takes a string, not a boolean"#,
        ),
        (r#"{"flag":[1]}"#, r#""flag" takes a boolean, not a list"#),
        (
            r#"{"flag":{"a":1}}"#,
            r#""flag" takes a boolean, not a map"#,
        ),
        (r#"{"flag":null}"#, r#""flag" takes a boolean, not null"#),
    ] {
        let e = read::<AllKinds>(text).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
}

/// An unknown option is refused as before the table, word for word,
/// where it stands.
#[test]
fn unknown_options_are_refused_as_before() {
    for (text, error) in [
        (
            r#"["count",[3],{},{"fast":true}]"#,
            r#"malformed Json message: unknown request option "fast" at line 1 column 23"#,
        ),
        (
            r#"["count",[3],{},{"fast":[1,2}]"#,
            r#"malformed Json message: unknown request option "fast" at line 1 column 23"#,
        ),
        (
            r#"["count",[3],{},[]]"#,
            "malformed Json message: invalid type: sequence, expected a map of request options at line 1 column 16",
        ),
    ] {
        let e = decode_request(text.as_bytes(), &DecodeLimits::default()).unwrap_err();
        assert_eq!(e.to_string(), error);
    }
}
