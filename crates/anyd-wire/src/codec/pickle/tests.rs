//! Tests of the pickle codec: the docs/PROTOCOL.md vectors, CPython in both
//! directions, hostile input, and a round-trip property.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::Value;

// ---------------------------------------------------------------------------
// Helpers

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("valid hex"))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(x: &str) -> Value {
    Value::Str(x.to_owned())
}

fn int(i: i128) -> Value {
    Value::Int(i)
}

fn read_value(bytes: &[u8]) -> Value {
    match decode_value(bytes, &PickleLimits::default()) {
        Ok(v) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

fn read_reply(bytes: &[u8]) -> Decoded {
    decode_value_or_exception(bytes, &PickleLimits::default()).expect("a valid reply")
}

/// Either decoder, for a case that must hold for requests and replies alike.
fn decode_either(bytes: &[u8], allow_exceptions: bool) -> Result<Decoded, PickleError> {
    let limits = PickleLimits::default();
    if allow_exceptions {
        decode_value_or_exception(bytes, &limits)
    } else {
        decode_value(bytes, &limits).map(Decoded::Value)
    }
}

fn decode_err(bytes: &[u8]) -> PickleError {
    match decode_value_or_exception(bytes, &PickleLimits::default()) {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

/// `2**n` as minimal two's complement, for ints beyond i128.
fn pow2(n: usize, negative: bool) -> Value {
    let mut bytes = vec![0u8; n / 8];
    let top = 1u8 << (n % 8);
    if negative {
        // -(2**n): the same magnitude bits with all higher bits set.
        bytes.push(if top == 0x80 {
            0x80
        } else {
            top.wrapping_neg()
        });
        if top != 0x80 && bytes.last() == Some(&0) {
            bytes.push(0xff);
        }
    } else {
        bytes.push(top);
        if top == 0x80 {
            bytes.push(0);
        }
    }
    let minimal = trim_twos_complement(&bytes).to_vec();
    match twos_complement_to_i128(&minimal) {
        Some(i) => Value::Int(i),
        None => Value::BigInt(minimal),
    }
}

/// Runs `python3 -c script` with `input` on stdin and returns stdout. The
/// test fails (never skips) when python3 is missing, fails or hangs.
fn python(script: &str, input: &[u8]) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be on PATH: these tests check CPython compatibility");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python3") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("python3 timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().expect("writer").expect("write to python3");
    let out = reader.join().expect("reader").expect("read python3 output");
    let err = err_reader.join().expect("stderr reader");
    assert!(status.success(), "python3 failed: {status}\n{err}\n{out}");
    out
}

// ---------------------------------------------------------------------------
// docs/PROTOCOL.md section 4.4 vectors

const REQ_ECHO_P2: &str = "800258040000006563686f7100580500000068656c6c6f71018571027d71038771042e";
const REQ_ECHO_P4: &str = "80049516000000000000008c046563686f948c0568656c6c6f9485947d9487942e";
const REQ_ECHO_P5: &str = "80059516000000000000008c046563686f948c0568656c6c6f9485947d9487942e";
const REQ_KWARGS_P4: &str =
    "80049523000000000000008c046563686f94297d948c03617267948c0c68656c6c6f20776f726c6421947387942e";
const REQ_SUM_P4: &str = "80049515000000000000008c076765745f73756d944b014b0286947d9487942e";
const SIGENDS_P4: &str = "8004950b000000000000004307534947454e4453942e";
const SIGENDS_P2: &str = "8002635f636f646563730a656e636f64650a71005807000000534947454e4453710158060000006c6174696e3171028671035271042e";
const NOT_IMPLEMENTED_P4: &str = "80049532000000000000008c086275696c74696e73948c134e6f74496d706c656d656e7465644572726f729493948c076d795f66756e6394859452942e";
const TYPE_ERROR_P2: &str =
    "800263657863657074696f6e730a547970654572726f720a7100580300000062616471018571025271032e";
const STATUS_P4: &str = "80049519000000000000007d948c06737461747573948c09636f6e6e656374656494732e";
const SET_P2: &str = "8002635f5f6275696c74696e5f5f0a7365740a71005d7101284b014b02658571025271032e";
const SET_P4: &str = "80049509000000000000008f94284b014b02902e";
const BYTES_P4: &str = "8004950600000000000000430200ff942e";
const INT_2_70_P2: &str = "80028a090000000000000000402e";
const NESTED_P4: &str = "80049524000000000000007d94288c0161945d94284b014740040000000000004e88658c016294430178948594752e";

const ALL_VECTORS: &[&str] = &[
    REQ_ECHO_P2,
    REQ_ECHO_P4,
    REQ_ECHO_P5,
    REQ_KWARGS_P4,
    REQ_SUM_P4,
    SIGENDS_P4,
    SIGENDS_P2,
    NOT_IMPLEMENTED_P4,
    TYPE_ERROR_P2,
    STATUS_P4,
    SET_P2,
    SET_P4,
    BYTES_P4,
    INT_2_70_P2,
    NESTED_P4,
];

fn echo_request() -> Value {
    Value::Tuple(vec![
        s("echo"),
        Value::Tuple(vec![s("hello")]),
        Value::Map(vec![]),
    ])
}

fn kwargs_request() -> Value {
    Value::Tuple(vec![
        s("echo"),
        Value::Tuple(vec![]),
        Value::Map(vec![(s("arg"), s("hello world!"))]),
    ])
}

fn sum_request() -> Value {
    Value::Tuple(vec![
        s("get_sum"),
        Value::Tuple(vec![int(1), int(2)]),
        Value::Map(vec![]),
    ])
}

fn status_reply() -> Value {
    Value::Map(vec![(s("status"), s("connected"))])
}

fn nested() -> Value {
    Value::Map(vec![
        (
            s("a"),
            Value::List(vec![
                int(1),
                Value::Float(2.5),
                Value::Nil,
                Value::Bool(true),
            ]),
        ),
        (s("b"), Value::Tuple(vec![Value::Bytes(b"x".to_vec())])),
    ])
}

#[test]
fn vector_request_echo_all_protocols() {
    for v in [REQ_ECHO_P2, REQ_ECHO_P4, REQ_ECHO_P5] {
        assert_eq!(read_value(&hex(v)), echo_request(), "{v}");
    }
}

#[test]
fn vector_request_kwargs() {
    assert_eq!(read_value(&hex(REQ_KWARGS_P4)), kwargs_request());
}

#[test]
fn vector_request_get_sum() {
    assert_eq!(read_value(&hex(REQ_SUM_P4)), sum_request());
}

#[test]
fn vector_sigends_protocol_2_and_4() {
    for v in [SIGENDS_P2, SIGENDS_P4] {
        assert_eq!(
            read_value(&hex(v)),
            Value::Bytes(b"SIGENDS".to_vec()),
            "{v}"
        );
    }
}

#[test]
fn vector_not_implemented_reply() {
    assert_eq!(
        read_reply(&hex(NOT_IMPLEMENTED_P4)),
        Decoded::Exception {
            kind: "NotImplementedError".into(),
            message: "my_func".into(),
            args: vec![s("my_func")],
        }
    );
}

#[test]
fn vector_type_error_protocol_2_exceptions_module() {
    assert_eq!(
        read_reply(&hex(TYPE_ERROR_P2)),
        Decoded::Exception {
            kind: "TypeError".into(),
            message: "bad".into(),
            args: vec![s("bad")],
        }
    );
}

#[test]
fn vector_status_reply() {
    assert_eq!(read_value(&hex(STATUS_P4)), status_reply());
}

#[test]
fn vector_set_protocol_2_and_4() {
    for v in [SET_P2, SET_P4] {
        assert_eq!(read_value(&hex(v)), Value::Set(vec![int(1), int(2)]), "{v}");
    }
}

#[test]
fn vector_bytes() {
    assert_eq!(read_value(&hex(BYTES_P4)), Value::Bytes(vec![0, 0xff]));
}

#[test]
fn vector_int_2_pow_70_fits_i128() {
    assert_eq!(read_value(&hex(INT_2_70_P2)), int(1 << 70));
}

#[test]
fn vector_nested() {
    assert_eq!(read_value(&hex(NESTED_P4)), nested());
}

#[test]
fn encoder_is_byte_exact_for_protocol_4_vectors() {
    let cases = [
        ("echo request", echo_request(), REQ_ECHO_P4),
        ("kwargs request", kwargs_request(), REQ_KWARGS_P4),
        ("get_sum request", sum_request(), REQ_SUM_P4),
        ("SIGENDS", Value::Bytes(b"SIGENDS".to_vec()), SIGENDS_P4),
        ("status reply", status_reply(), STATUS_P4),
        ("set", Value::Set(vec![int(1), int(2)]), SET_P4),
        ("bytes", Value::Bytes(vec![0, 0xff]), BYTES_P4),
        ("nested", nested(), NESTED_P4),
    ];
    for (name, value, want) in cases {
        assert_eq!(to_hex(&encode(&value)), want, "{name}");
    }
    let mut out = Vec::new();
    encode_exception("NotImplementedError", "my_func", &mut out);
    assert_eq!(to_hex(&out), NOT_IMPLEMENTED_P4);
}

#[test]
fn encoder_appends_to_existing_output() {
    let mut out = b"prefix".to_vec();
    encode_value(&status_reply(), &mut out);
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(to_hex(&out[6..]), STATUS_P4);
}

#[test]
fn encoder_small_pickles_have_no_frame() {
    // CPython drops the header of a frame under 4 bytes.
    assert_eq!(to_hex(&encode(&Value::Nil)), "80044e2e");
    assert_eq!(to_hex(&encode(&int(1))), "80044b012e");
    assert_eq!(to_hex(&encode(&Value::Set(vec![]))), "80048f942e");
    assert_eq!(to_hex(&encode(&int(300))), "80049504000000000000004d2c012e");
}

#[test]
fn encoder_bytearray_and_big_ints_like_cpython() {
    // From `pickle.dumps(obj, 4).hex()` in Python 3.11.
    let cases = [
        (
            Value::ByteArray(b"ab".to_vec()),
            "80049523000000000000008c086275696c74696e73948c096279746561727261799493944302616294859452942e",
        ),
        (
            Value::ByteArray(vec![]),
            "8004951d000000000000008c086275696c74696e73948c096279746561727261799493942952942e",
        ),
        (
            Value::FrozenSet(vec![int(1)]),
            "8004950600000000000000284b0191942e",
        ),
        (
            int(-(1 << 70)),
            "8004950c000000000000008a090000000000000000c02e",
        ),
        (
            pow2(127, false),
            "80049514000000000000008a1100000000000000000000000000000080002e",
        ),
        (int(-1), "80049506000000000000004affffffff2e"),
        (int(1 << 31), "80049508000000000000008a0500000080002e"),
        // A non-minimal BigInt that fits i128 is written as CPython would.
        (Value::BigInt(vec![5, 0, 0, 0]), "80044b052e"),
    ];
    for (value, want) in cases {
        assert_eq!(to_hex(&encode(&value)), want, "{value:?}");
    }
}

#[test]
fn builtin_exceptions_list_is_complete_and_unique() {
    let mut names = BUILTIN_EXCEPTIONS.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), BUILTIN_EXCEPTIONS.len());
    let out = python(
        "import builtins\n\
         print(' '.join(sorted(n for n, v in vars(builtins).items()\n\
               if isinstance(v, type) and issubclass(v, BaseException))))",
        b"",
    );
    let mut python_names: Vec<&str> = out.split_whitespace().collect();
    python_names.sort_unstable();
    assert_eq!(names, python_names);
}

// ---------------------------------------------------------------------------
// CPython, both directions

/// Loads every pickle with CPython and compares it with the Python value
/// `expect` (type-strict); `exact` also requires `pickle.dumps(loaded, 4)`
/// to give back our bytes.
const LOADS_SCRIPT: &str = r#"
import sys, json, pickle, builtins
def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, BaseException):
        return same(a.args, b.args)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(k1, k2) and same(v1, v2)
            for (k1, v1), (k2, v2) in zip(a.items(), b.items()))
    if isinstance(a, (set, frozenset)):
        return sorted(map(repr, a)) == sorted(map(repr, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b
for case in json.load(sys.stdin):
    name = case["name"]
    data = bytes.fromhex(case["hex"])
    try:
        got = pickle.loads(data)
    except Exception as e:
        print("FAIL", name, "loads raised", repr(e))
        continue
    want = eval(case["expect"])
    if not same(got, want):
        print("FAIL", name, "got", repr(got)[:300], "want", repr(want)[:300])
        continue
    if case["exact"]:
        again = pickle.dumps(got, 4)
        if again != data:
            at = next((i for i, (x, y) in enumerate(zip(again, data)) if x != y),
                      min(len(again), len(data)))
            lo = max(0, at - 16)
            print("FAIL", name, "not byte-exact from offset", at, "(lengths",
                  len(again), len(data), "): cpython", again[lo:at + 32].hex(),
                  "ours", data[lo:at + 32].hex())
            continue
    print("ok", name)
"#;

struct Case {
    name: String,
    value: Option<Value>,
    exception: Option<(String, String)>,
    expect: String,
    exact: bool,
}

fn case(name: &str, value: Value, expect: &str, exact: bool) -> Case {
    Case {
        name: name.into(),
        value: Some(value),
        exception: None,
        expect: expect.into(),
        exact,
    }
}

fn exception_case(kind: &str, message: &str, expect: &str, exact: bool) -> Case {
    Case {
        name: format!("exception {kind}"),
        value: None,
        exception: Some((kind.into(), message.into())),
        expect: expect.into(),
        exact,
    }
}

fn ints(range: std::ops::Range<i128>) -> Vec<Value> {
    range.map(Value::Int).collect()
}

fn encode_cases() -> Vec<Case> {
    let mut cases = vec![
        case("None", Value::Nil, "None", true),
        case("True", Value::Bool(true), "True", true),
        case("False", Value::Bool(false), "False", true),
        case("0", int(0), "0", true),
        case("255", int(255), "255", true),
        case("256", int(256), "256", true),
        case("65535", int(65535), "65535", true),
        case("65536", int(65536), "65536", true),
        case("-1", int(-1), "-1", true),
        case("-256", int(-256), "-256", true),
        case("i32 max", int(i32::MAX.into()), "2**31 - 1", true),
        case("i32 max + 1", int(1 << 31), "2**31", true),
        case("i32 min", int(i32::MIN.into()), "-2**31", true),
        case("i32 min - 1", int(-(1 << 31) - 1), "-2**31 - 1", true),
        case("2**63", int(1 << 63), "2**63", true),
        case("-2**63 - 1", int(-(1 << 63) - 1), "-2**63 - 1", true),
        case("-128 * 2**56", int(-(1 << 63)), "-2**63", true),
        case("i128 max", int(i128::MAX), "2**127 - 1", true),
        case("i128 min", int(i128::MIN), "-2**127", true),
        case("2**70", int(1 << 70), "2**70", true),
        case("2**128", pow2(128, false), "2**128", true),
        case("-2**128", pow2(128, true), "-2**128", true),
        case("-2**135", pow2(135, true), "-2**135", true),
        case("2**2400 (LONG4)", pow2(2400, false), "2**2400", true),
        case("-2**2400 (LONG4)", pow2(2400, true), "-2**2400", true),
        case("1.5", Value::Float(1.5), "1.5", true),
        case("-0.0", Value::Float(-0.0), "-0.0", true),
        case("1e300", Value::Float(1e300), "1e300", true),
        case("inf", Value::Float(f64::INFINITY), "float('inf')", true),
        case(
            "-inf",
            Value::Float(f64::NEG_INFINITY),
            "float('-inf')",
            true,
        ),
        case("nan", Value::Float(f64::NAN), "float('nan')", true),
        case("empty str", s(""), "''", false),
        case("ascii str", s("hello world"), "'hello world'", true),
        case(
            "unicode str",
            s("héllo wörld ✓ 🦀 \u{0}"),
            "'héllo wörld ✓ 🦀 \\x00'",
            true,
        ),
        case("str 255", s(&"a".repeat(255)), "'a' * 255", true),
        case("str 256", s(&"a".repeat(256)), "'a' * 256", true),
        case("str 70000", s(&"x".repeat(70_000)), "'x' * 70000", true),
        // Either side of the 64 KiB frame-bypass threshold, in a tuple so
        // that a frame is open around them.
        case(
            "tuple of str 65535",
            Value::Tuple(vec![s(&"a".repeat(65_535))]),
            "('a' * 65535,)",
            true,
        ),
        case(
            "tuple of str 65536",
            Value::Tuple(vec![s(&"a".repeat(65_536))]),
            "('a' * 65536,)",
            true,
        ),
        case(
            "bytes 65536 after a str",
            Value::Tuple(vec![s("key"), Value::Bytes(vec![1; 65_536]), int(3)]),
            "('key', b'\\x01' * 65536, 3)",
            true,
        ),
        case(
            "unicode str 90000 bytes",
            s(&"€".repeat(30_000)),
            "'€' * 30000",
            true,
        ),
        case("empty bytes", Value::Bytes(vec![]), "b''", false),
        case("bytes", Value::Bytes(vec![0, 0xff]), "b'\\x00\\xff'", true),
        case(
            "bytes 300",
            Value::Bytes(vec![7; 300]),
            "b'\\x07' * 300",
            true,
        ),
        case(
            "bytes 70000",
            Value::Bytes(vec![b'y'; 70_000]),
            "b'y' * 70000",
            true,
        ),
        case(
            "empty bytearray",
            Value::ByteArray(vec![]),
            "bytearray()",
            true,
        ),
        case(
            "bytearray",
            Value::ByteArray(b"ab".to_vec()),
            "bytearray(b'ab')",
            true,
        ),
        case(
            "bytearray 70000",
            Value::ByteArray(vec![0xfe; 70_000]),
            "bytearray(b'\\xfe' * 70000)",
            true,
        ),
        case("empty list", Value::List(vec![]), "[]", true),
        case("list 1", Value::List(vec![int(1)]), "[1]", true),
        case("list 2", Value::List(vec![int(1), int(2)]), "[1, 2]", true),
        case(
            "list 1000",
            Value::List(ints(0..1000)),
            "list(range(1000))",
            true,
        ),
        case(
            "list 40000 (several frames)",
            Value::List(ints(0..40_000)),
            "list(range(40000))",
            true,
        ),
        case(
            "list 2500",
            Value::List(ints(0..2500)),
            "list(range(2500))",
            true,
        ),
        case(
            "list of 40000-byte strs (frame split)",
            Value::List(vec![
                s(&"a".repeat(40_000)),
                s(&"b".repeat(40_000)),
                s(&"c".repeat(40_000)),
                int(5),
            ]),
            "['a' * 40000, 'b' * 40000, 'c' * 40000, 5]",
            true,
        ),
        case(
            "dict with a big str value",
            Value::Map(vec![(s("key"), s(&"v".repeat(70_000))), (s("zz"), int(1))]),
            "{'key': 'v' * 70000, 'zz': 1}",
            true,
        ),
        case("empty tuple", Value::Tuple(vec![]), "()", true),
        case("tuple 1", Value::Tuple(vec![int(1)]), "(1,)", true),
        case(
            "tuple 2",
            Value::Tuple(vec![int(1), int(2)]),
            "(1, 2)",
            true,
        ),
        case(
            "tuple 3",
            Value::Tuple(vec![int(1), int(2), int(3)]),
            "(1, 2, 3)",
            true,
        ),
        case("tuple 4", Value::Tuple(ints(1..5)), "(1, 2, 3, 4)", true),
        case("empty dict", Value::Map(vec![]), "{}", true),
        case(
            "dict 1",
            Value::Map(vec![(s("key"), int(1))]),
            "{'key': 1}",
            true,
        ),
        case(
            "dict 1000",
            Value::Map((0..1000).map(|i| (int(i), int(-i))).collect()),
            "{i: -i for i in range(1000)}",
            true,
        ),
        case(
            "dict 2500",
            Value::Map((0..2500).map(|i| (int(i), Value::Nil)).collect()),
            "dict.fromkeys(range(2500))",
            true,
        ),
        case("empty set", Value::Set(vec![]), "set()", true),
        case("set 1", Value::Set(vec![int(1)]), "{1}", true),
        case("set 3", Value::Set(ints(1..4)), "{1, 2, 3}", true),
        case(
            "set 1000",
            Value::Set(ints(0..1000)),
            "set(range(1000))",
            true,
        ),
        case(
            "set 2001",
            Value::Set(ints(0..2001)),
            "set(range(2001))",
            true,
        ),
        case(
            "empty frozenset",
            Value::FrozenSet(vec![]),
            "frozenset()",
            true,
        ),
        case(
            "frozenset",
            Value::FrozenSet(vec![int(1), int(2)]),
            "frozenset({1, 2})",
            true,
        ),
        case(
            "frozenset 1500",
            Value::FrozenSet(ints(0..1500)),
            "frozenset(range(1500))",
            true,
        ),
        case(
            "nested vector",
            nested(),
            "{'a': [1, 2.5, None, True], 'b': (b'x',)}",
            true,
        ),
        case(
            "deeply nested",
            Value::List(vec![Value::Map(vec![(
                s("key"),
                Value::Tuple(vec![
                    Value::Set(vec![Value::FrozenSet(vec![s("inner")])]),
                    Value::List(vec![Value::List(vec![Value::ByteArray(b"zz".to_vec())])]),
                    pow2(200, true),
                ]),
            )])]),
            "[{'key': ({frozenset({'inner'})}, [[bytearray(b'zz')]], -2**200)}]",
            true,
        ),
        case(
            "echo request",
            echo_request(),
            "('echo', ('hello',), {})",
            true,
        ),
        exception_case("ValueError", "bad value", "ValueError('bad value')", true),
        exception_case("KeyError", "missing key", "KeyError('missing key')", true),
        exception_case(
            "PermissionError",
            "not allowed",
            "PermissionError('not allowed')",
            true,
        ),
        exception_case(
            "NotImplementedError",
            "my_func",
            "NotImplementedError('my_func')",
            true,
        ),
        exception_case(
            "VpnError",
            "tunnel down",
            "RuntimeError('VpnError: tunnel down')",
            true,
        ),
        exception_case(
            "UnicodeDecodeError",
            "bad byte",
            "RuntimeError('UnicodeDecodeError: bad byte')",
            true,
        ),
        exception_case("ValueError", "", "ValueError('')", false),
    ];
    for kind in BUILTIN_EXCEPTIONS {
        let message = format!("message for {kind}");
        let expect = match *kind {
            "BaseExceptionGroup"
            | "ExceptionGroup"
            | "UnicodeDecodeError"
            | "UnicodeEncodeError"
            | "UnicodeTranslateError" => {
                format!("RuntimeError('{kind}: {message}')")
            }
            _ => format!("{kind}('{message}')"),
        };
        cases.push(exception_case(kind, &message, &expect, false));
    }
    cases
}

#[test]
fn python_loads_what_we_encode() {
    let cases = encode_cases();
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let mut out = Vec::new();
            match (&c.value, &c.exception) {
                (Some(v), _) => encode_value(v, &mut out),
                (None, Some((kind, message))) => encode_exception(kind, message, &mut out),
                (None, None) => unreachable!("a case has a value or an exception"),
            }
            serde_json::json!({
                "name": c.name,
                "hex": to_hex(&out),
                "expect": c.expect,
                "exact": c.exact,
            })
        })
        .collect();
    let input = serde_json::to_vec(&json).expect("json");
    let out = python(LOADS_SCRIPT, &input);
    let failures: Vec<&str> = out.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        failures.is_empty(),
        "CPython disagrees:\n{}",
        failures.join("\n")
    );
    assert_eq!(out.lines().count(), cases.len(), "{out}");
}

/// Prints `protocol index hex` for a varied set of objects, then
/// `exc protocol index hex` for exceptions.
const DUMPS_SCRIPT: &str = r#"
import pickle
x = [1]
d = {"k": "v"}
e = ValueError("with attr")
e.code = 7
OBJS = [
    None, True, False, 0, 255, 256, 65535, 65536, -1, 2**31, -2**31 - 1,
    2**70, -2**70, 2**127 - 1, -2**127, 2**128, -2**200, 2**2400,
    1.5, -0.0, 1e300,
    "", "héllo ✓", "x" * 70000,
    b"", b"\x00\xff", b"y" * 70000,
    bytearray(b"ab"), bytearray(), bytearray(b"\xff" * 300),
    [], [1], [1, 2, 3], list(range(2500)),
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
    {}, {"a": 1}, {"a": 1, 2: "b", (1, 2): None},
    set(), {1, 2, 3}, set(range(1500)), frozenset(), frozenset({1, 2}),
    [x, x], (d, d, [d]),
    {"a": [1, 2.5, None, True], "b": (b"x",)},
    ("echo", ("hello",), {}),
]
EXCS = [
    ValueError("bad"), KeyError("k"), PermissionError(13, "denied", "f"), e,
    ModuleNotFoundError("m"), TypeError("a", 2, None),
]
for p in (2, 3, 4, 5):
    for i, o in enumerate(OBJS):
        print(p, i, pickle.dumps(o, p).hex())
    for i, o in enumerate(EXCS):
        print("exc", p, i, pickle.dumps(o, p).hex())
"#;

fn python_objects() -> Vec<Value> {
    let shared = Value::List(vec![int(1)]);
    let d = Value::Map(vec![(s("k"), s("v"))]);
    vec![
        Value::Nil,
        Value::Bool(true),
        Value::Bool(false),
        int(0),
        int(255),
        int(256),
        int(65535),
        int(65536),
        int(-1),
        int(1 << 31),
        int(-(1 << 31) - 1),
        int(1 << 70),
        int(-(1 << 70)),
        int(i128::MAX),
        int(i128::MIN),
        pow2(128, false),
        pow2(200, true),
        pow2(2400, false),
        Value::Float(1.5),
        Value::Float(-0.0),
        Value::Float(1e300),
        s(""),
        s("héllo ✓"),
        s(&"x".repeat(70_000)),
        Value::Bytes(vec![]),
        Value::Bytes(vec![0, 0xff]),
        Value::Bytes(vec![b'y'; 70_000]),
        Value::ByteArray(b"ab".to_vec()),
        Value::ByteArray(vec![]),
        Value::ByteArray(vec![0xff; 300]),
        Value::List(vec![]),
        Value::List(vec![int(1)]),
        Value::List(ints(1..4)),
        Value::List(ints(0..2500)),
        Value::Tuple(vec![]),
        Value::Tuple(vec![int(1)]),
        Value::Tuple(ints(1..3)),
        Value::Tuple(ints(1..4)),
        Value::Tuple(ints(1..5)),
        Value::Map(vec![]),
        Value::Map(vec![(s("a"), int(1))]),
        Value::Map(vec![
            (s("a"), int(1)),
            (int(2), s("b")),
            (Value::Tuple(vec![int(1), int(2)]), Value::Nil),
        ]),
        Value::Set(vec![]),
        Value::Set(ints(1..4)),
        Value::Set(ints(0..1500)),
        Value::FrozenSet(vec![]),
        Value::FrozenSet(vec![int(1), int(2)]),
        Value::List(vec![shared.clone(), shared]),
        Value::Tuple(vec![d.clone(), d.clone(), Value::List(vec![d])]),
        nested(),
        echo_request(),
    ]
}

fn python_exceptions(protocol: u8) -> Vec<Decoded> {
    let exc = |kind: &str, message: &str, args: Vec<Value>| Decoded::Exception {
        kind: kind.into(),
        message: message.into(),
        args,
    };
    // Protocol 2 maps Python 3-only classes to their Python 2 ancestors.
    let p2 = protocol == 2;
    vec![
        exc("ValueError", "bad", vec![s("bad")]),
        exc("KeyError", "k", vec![s("k")]),
        exc(
            if p2 { "OSError" } else { "PermissionError" },
            "13, denied, f",
            vec![int(13), s("denied"), s("f")],
        ),
        exc("ValueError", "with attr", vec![s("with attr")]),
        exc(
            if p2 {
                "ImportError"
            } else {
                "ModuleNotFoundError"
            },
            "m",
            vec![s("m")],
        ),
        exc("TypeError", "a, 2, None", vec![s("a"), int(2), Value::Nil]),
    ]
}

#[test]
fn we_decode_what_python_dumps() {
    let out = python(DUMPS_SCRIPT, b"");
    let objects = python_objects();
    let mut checked = 0;
    for line in out.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["exc", protocol, index, data] => {
                let protocol: u8 = protocol.parse().expect("protocol");
                let index: usize = index.parse().expect("index");
                let got = decode_value_or_exception(&hex(data), &PickleLimits::default())
                    .unwrap_or_else(|e| panic!("exception {index} at protocol {protocol}: {e}"));
                assert_eq!(
                    got,
                    python_exceptions(protocol)[index],
                    "exception {index} at protocol {protocol}"
                );
                // A request may not carry one.
                assert!(matches!(
                    decode_value(&hex(data), &PickleLimits::default()),
                    Err(PickleError::ExceptionNotAllowed { .. })
                ));
            }
            [protocol, index, data] => {
                let index: usize = index.parse().expect("index");
                let got = decode_value(&hex(data), &PickleLimits::default())
                    .unwrap_or_else(|e| panic!("object {index} at protocol {protocol}: {e}"));
                assert_eq!(
                    got,
                    objects[index].clone(),
                    "object {index} at protocol {protocol}"
                );
            }
            _ => panic!("unexpected line from python3: {line}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 4 * (objects.len() + python_exceptions(2).len()));
}

// ---------------------------------------------------------------------------
// Smaller decoder cases

#[test]
fn shared_reference_comes_back_twice() {
    // x = [1]; pickle.dumps((x, x), 4)
    let v = read_value(&hex("8004950a000000000000005d944b0161680086942e"));
    let x = Value::List(vec![int(1)]);
    assert_eq!(v, Value::Tuple(vec![x.clone(), x]));
}

#[test]
fn empty_long1_is_zero() {
    assert_eq!(read_value(&hex("80028a002e")), int(0));
}

#[test]
fn long_beyond_i128_is_big_int_minimal() {
    // 2**128 written with a redundant extra zero byte.
    let v = read_value(&hex("80028a13000000000000000000000000000000000100002e"));
    assert_eq!(v, pow2(128, false));
}

#[test]
fn no_proto_binary_pickle_is_accepted() {
    // Protocol 1 style: EMPTY_LIST BINPUT MARK BININT1 BININT1 APPENDS STOP.
    assert_eq!(
        read_value(&hex("5d7100284b014b02652e")),
        Value::List(vec![int(1), int(2)])
    );
}

#[test]
fn protocol_1_text_int_is_rejected() {
    // pickle.dumps([True, None, 1, "a", b"b", (1, 2)], 1) writes True as
    // the text opcode INT.
    let e = decode_err(&hex("5d7100284930310a4e4b015801000000617101635f636f646563730a656e636f64650a710228580100000062710358060000006c6174696e317104747105527106284b014b02747107652e"));
    assert!(
        matches!(e, PickleError::ForbiddenOpcode { name: "INT", .. }),
        "{e}"
    );
}

#[test]
fn py2_str_decodes_as_str_or_bytes() {
    // SHORT_BINSTRING "hi", then BINSTRING b"\xff", in a TUPLE2.
    assert_eq!(
        read_value(&hex("8002550268695401000000ff862e")),
        Value::Tuple(vec![s("hi"), Value::Bytes(vec![0xff])])
    );
}

#[test]
fn exception_with_attributes_is_accepted() {
    // e = ValueError("x"); e.foo = 1; protocols 2 and 4 (REDUCE then BUILD).
    for v in [
        "800263657863657074696f6e730a56616c75654572726f720a710058010000007871018571025271037d71045803000000666f6f71054b0173622e",
        "8004952f000000000000008c086275696c74696e73948c0a56616c75654572726f729493948c017894859452947d948c03666f6f944b0173622e",
    ] {
        assert_eq!(
            read_reply(&hex(v)),
            Decoded::Exception {
                kind: "ValueError".into(),
                message: "x".into(),
                args: vec![s("x")],
            }
        );
    }
}

#[test]
fn global_as_a_value_is_rejected() {
    // pickle.dumps(set, 4)
    let e = decode_err(&hex(
        "80049514000000000000008c086275696c74696e73948c037365749493942e",
    ));
    assert!(matches!(e, PickleError::Malformed(_)), "{e}");
}

#[test]
fn stop_with_extra_values_is_rejected() {
    let e = decode_err(&hex("80044e4e2e"));
    assert!(matches!(e, PickleError::Malformed(_)), "{e}");
}

#[test]
fn trailing_bytes_after_stop_are_rejected() {
    let mut data = hex(SET_P4);
    data.push(0x4e);
    assert!(matches!(decode_err(&data), PickleError::TrailingBytes));
}

#[test]
fn unsupported_protocols_are_rejected() {
    for (data, want) in [("80064e2e", 6), ("80004e2e", 0), ("80014e2e", 1)] {
        let e = decode_err(&hex(data));
        assert!(
            matches!(e, PickleError::UnsupportedProtocol(p) if p == want),
            "{e}"
        );
    }
    assert_eq!(
        decode_err(&hex("80064e2e")).to_string(),
        "unsupported protocol 6"
    );
}

#[test]
fn codecs_encode_only_latin1() {
    // _codecs.encode("ab", "utf8")
    let e = decode_err(&hex(
        "8002635f636f646563730a656e636f64650a58020000006162580400000075746638862e",
    ));
    assert!(matches!(e, PickleError::Malformed(_)), "{e}");
    // ... and only chars below 256.
    let e = decode_err(&hex(
        "8002635f636f646563730a656e636f64650a5803000000e282ac58060000006c6174696e3186522e",
    ));
    assert!(matches!(e, PickleError::Malformed(_)), "{e}");
}

// ---------------------------------------------------------------------------
// Hostile input

#[test]
fn every_truncated_prefix_is_an_error() {
    let mut pickles: Vec<Vec<u8>> = ALL_VECTORS.iter().map(|v| hex(v)).collect();
    pickles.push(encode(&Value::List(vec![
        pow2(300, true),
        Value::ByteArray(vec![1; 300]),
        Value::FrozenSet(vec![s(&"z".repeat(300))]),
        Value::Float(0.5),
    ])));
    for pickle in &pickles {
        for len in 0..pickle.len() {
            assert!(
                decode_value_or_exception(&pickle[..len], &PickleLimits::default()).is_err(),
                "prefix {len} of {}",
                to_hex(pickle)
            );
        }
        assert!(decode_value_or_exception(pickle, &PickleLimits::default()).is_ok());
    }
}

/// PROTO 4, an opcode, then a little-endian length field.
fn claim(opcode: u8, len: &[u8]) -> Vec<u8> {
    let mut data = vec![0x80, 0x04, opcode];
    data.extend_from_slice(len);
    data.extend_from_slice(b"abc.");
    data
}

#[test]
fn binbytes8_claiming_2_pow_62_is_truncation() {
    let e = decode_err(&claim(0x8e, &(1u64 << 62).to_le_bytes()));
    assert!(matches!(e, PickleError::Truncated), "{e}");
}

#[test]
fn binunicode8_claiming_2_pow_62_is_truncation() {
    let e = decode_err(&claim(0x8d, &(1u64 << 62).to_le_bytes()));
    assert!(matches!(e, PickleError::Truncated), "{e}");
}

#[test]
fn long4_claiming_2_pow_31_is_truncation() {
    let e = decode_err(&claim(0x8b, &i32::MAX.to_le_bytes()));
    assert!(matches!(e, PickleError::Truncated), "{e}");
    let e = decode_err(&claim(0x8b, &(-5i32).to_le_bytes()));
    assert!(matches!(e, PickleError::Malformed(_)), "{e}");
}

#[test]
fn other_length_claims_are_truncation() {
    for (opcode, len) in [
        (0x96u8, (u64::MAX).to_le_bytes().to_vec()), // BYTEARRAY8
        (0x95, (1u64 << 62).to_le_bytes().to_vec()), // FRAME
        (b'B', u32::MAX.to_le_bytes().to_vec()),     // BINBYTES
        (b'X', u32::MAX.to_le_bytes().to_vec()),     // BINUNICODE
        (b'T', i32::MAX.to_le_bytes().to_vec()),     // BINSTRING
    ] {
        let e = decode_err(&claim(opcode, &len));
        assert!(matches!(e, PickleError::Truncated), "{opcode:#x}: {e}");
    }
}

#[test]
fn nesting_bomb_of_lists_is_too_deep() {
    let n = 100_000;
    let mut data = vec![0x80, 0x04];
    data.extend(std::iter::repeat_n(b']', n));
    data.extend(std::iter::repeat_n(b'a', n - 1));
    data.push(b'.');
    let e = decode_err(&data);
    assert!(matches!(e, PickleError::TooDeep(128)), "{e}");
    assert_eq!(e.to_string(), "nesting deeper than 128");
}

#[test]
fn nesting_bomb_of_marks_is_too_deep() {
    let mut data = vec![0x80, 0x04];
    data.extend(std::iter::repeat_n(b'(', 100_000));
    data.push(b'.');
    assert!(matches!(decode_err(&data), PickleError::TooDeep(128)));
}

#[test]
fn nesting_bomb_of_tuples_is_too_deep() {
    let mut data = vec![0x80, 0x04, b'N'];
    data.extend(std::iter::repeat_n(0x85, 100_000));
    data.push(b'.');
    assert!(matches!(decode_err(&data), PickleError::TooDeep(128)));
}

#[test]
fn nesting_at_the_limit_is_fine() {
    let limits = PickleLimits::default();
    let mut data = vec![0x80, 0x04, b'N'];
    data.extend(std::iter::repeat_n(0x85, limits.max_depth));
    data.push(b'.');
    assert!(decode_value(&data, &limits).is_ok());
    let mut data = vec![0x80, 0x04, b'N'];
    data.extend(std::iter::repeat_n(0x85, limits.max_depth + 1));
    data.push(b'.');
    assert!(decode_value(&data, &limits).is_err());
}

#[test]
fn memo_key_0xffffffff_needs_no_allocation() {
    // LONG_BINPUT and LONG_BINGET with the largest key.
    let v = read_value(&hex("80044e72ffffffff6affffffff862e"));
    assert_eq!(v, Value::Tuple(vec![Value::Nil, Value::Nil]));
}

/// Found by the fuzzer: the encoder memoizes every str and container as
/// CPython does, so a value of many distinct parts must stay within the
/// memo limit when decoded again.
#[test]
fn a_value_with_many_memoized_parts_round_trips() {
    let limits = PickleLimits::default();
    let parts: Vec<Value> = (0..100_000)
        .map(|i| Value::List(vec![Value::Str(i.to_string())]))
        .collect();
    let v = Value::List(parts);
    let mut out = Vec::new();
    encode_value(&v, &mut out);
    assert_eq!(decode_value(&out, &limits).unwrap(), v);
}

#[test]
fn memo_flood_hits_the_memo_limit() {
    let limits = PickleLimits::default();
    let mut data = vec![0x80, 0x04, b'N'];
    for key in 0..=limits.max_memo as u32 {
        data.push(b'r');
        data.extend_from_slice(&key.to_le_bytes());
    }
    data.push(b'.');
    let e = decode_err(&data);
    assert!(
        matches!(e, PickleError::MemoLimit(m) if m == limits.max_memo),
        "{e}"
    );
    // Overwriting the same key is not growth.
    let mut data = vec![0x80, 0x04, b'N'];
    for _ in 0..100_000 {
        data.extend_from_slice(&[b'q', 7]);
    }
    data.push(b'.');
    assert_eq!(read_value(&data), Value::Nil);
}

#[test]
fn billion_laughs_through_binget_is_too_many_values() {
    // L0 = 1000 ints; L1 = 1000 references to L0; L2 = 1000 references to
    // L1: a few kilobytes describing a billion values.
    let mut data = vec![0x80, 0x04, b']', 0x94, b'('];
    for _ in 0..1000 {
        data.extend_from_slice(&[b'K', 1]);
    }
    data.extend_from_slice(b"e0");
    for level in 0..2u8 {
        data.extend_from_slice(&[b']', 0x94, b'(']);
        for _ in 0..1000 {
            data.extend_from_slice(&[b'h', level]);
        }
        data.push(b'e');
        if level == 0 {
            data.push(b'0');
        }
    }
    data.push(b'.');
    assert!(data.len() < 10_000);
    let e = decode_err(&data);
    assert!(matches!(e, PickleError::TooManyValues(_)), "{e}");
}

#[test]
fn billion_laughs_with_a_big_str_is_too_many_values() {
    // A 1 MiB str referenced 1000 times: 1000 values, but 1 GiB of copies.
    let mut data = vec![0x80, 0x04, b'X'];
    data.extend_from_slice(&(1u32 << 20).to_le_bytes());
    data.extend(std::iter::repeat_n(b'x', 1 << 20));
    data.extend_from_slice(&[0x94, b'0', b']', b'(']);
    for _ in 0..1000 {
        data.extend_from_slice(&[b'h', 0]);
    }
    data.extend_from_slice(b"e.");
    let e = decode_err(&data);
    assert!(matches!(e, PickleError::TooManyValues(_)), "{e}");
}

#[test]
fn repeated_set_reduce_of_a_big_list_is_bounded() {
    // set(big_list) over and over copies the list each time.
    let mut data = vec![0x80, 0x04, b']', 0x94, b'('];
    for _ in 0..100_000 {
        data.extend_from_slice(&[b'K', 1]);
    }
    data.extend_from_slice(b"e0]("); // keep the list in the memo only
    for _ in 0..1000 {
        data.extend_from_slice(&[0x8c, 8]);
        data.extend_from_slice(b"builtins");
        data.extend_from_slice(&[0x8c, 3]);
        data.extend_from_slice(b"set");
        data.extend_from_slice(&[0x93, b'h', 0, 0x85, b'R']);
    }
    data.extend_from_slice(b"e.");
    let e = decode_err(&data);
    assert!(matches!(e, PickleError::TooManyValues(_)), "{e}");
}

#[test]
fn too_many_values_with_small_limits() {
    let limits = PickleLimits {
        max_nodes: 10,
        ..PickleLimits::default()
    };
    let data = encode(&Value::List(ints(0..20)));
    assert!(matches!(
        decode_value(&data, &limits),
        Err(PickleError::TooManyValues(10))
    ));
    let data = encode(&Value::List(ints(0..5)));
    assert!(decode_value(&data, &limits).is_ok());
}

#[test]
fn recursive_list_is_rejected() {
    // l = []; l.append(l); pickle.dumps(l, 4)
    let e = decode_err(&hex("80049506000000000000005d946800612e"));
    assert!(matches!(e, PickleError::Recursive), "{e}");
    assert_eq!(e.to_string(), "recursive structure");
}

#[test]
fn recursive_dict_is_rejected() {
    // d = {}; d["d"] = d; pickle.dumps(d, 4)
    let e = decode_err(&hex("8004950a000000000000007d948c0164946800732e"));
    assert!(matches!(e, PickleError::Recursive), "{e}");
}

fn assert_forbidden_global(data: &[u8], module: &str, name: &str) {
    for allow_exceptions in [false, true] {
        match decode_either(data, allow_exceptions) {
            Err(PickleError::ForbiddenGlobal { module: m, name: n }) => {
                assert_eq!((m.as_str(), n.as_str()), (module, name));
            }
            other => panic!("expected forbidden {module}.{name}, got {other:?}"),
        }
    }
}

#[test]
fn forbidden_global_os_system() {
    // GLOBAL "os system" (protocol 2 style) and STACK_GLOBAL (protocol 4),
    // each called with "touch /tmp/x".
    assert_forbidden_global(
        &hex("8002636f730a73797374656d0a7100580c000000746f756368202f746d702f7871018571025271032e"),
        "os",
        "system",
    );
    assert_forbidden_global(
        &hex("80048c026f73948c0673797374656d9493948c0c746f756368202f746d702f7894859452942e"),
        "os",
        "system",
    );
    assert_eq!(
        decode_err(&hex("8002636f730a73797374656d0a2e")).to_string(),
        "forbidden global os.system"
    );
}

#[test]
fn forbidden_global_posix_system() {
    // pickle.dumps of an object whose __reduce__ returns
    // (os.system, ("touch /tmp/x",)), protocols 2 and 4.
    assert_forbidden_global(
        &hex("800263706f7369780a73797374656d0a7100580c000000746f756368202f746d702f7871018571025271032e"),
        "posix",
        "system",
    );
    assert_forbidden_global(
        &hex("80049527000000000000008c05706f736978948c0673797374656d9493948c0c746f756368202f746d702f7894859452942e"),
        "posix",
        "system",
    );
}

#[test]
fn forbidden_global_nt_system() {
    assert_forbidden_global(
        &hex("80048c026e74948c0673797374656d9493948c0c746f756368202f746d702f7894859452942e"),
        "nt",
        "system",
    );
}

#[test]
fn forbidden_global_builtins_eval() {
    // (eval, ("__import__('os')",)) at protocols 2 and 4.
    assert_forbidden_global(
        &hex("8002635f5f6275696c74696e5f5f0a6576616c0a710058100000005f5f696d706f72745f5f28276f73272971018571025271032e"),
        "__builtin__",
        "eval",
    );
    assert_forbidden_global(
        &hex("8004952c000000000000008c086275696c74696e73948c046576616c9493948c105f5f696d706f72745f5f28276f73272994859452942e"),
        "builtins",
        "eval",
    );
}

#[test]
fn forbidden_global_builtins_exec() {
    assert_forbidden_global(
        &hex("8002635f5f6275696c74696e5f5f0a657865630a710058080000007072696e7428312971018571025271032e"),
        "__builtin__",
        "exec",
    );
    assert_forbidden_global(
        &hex("80049524000000000000008c086275696c74696e73948c04657865639493948c087072696e7428312994859452942e"),
        "builtins",
        "exec",
    );
}

#[test]
fn forbidden_global_builtins_getattr() {
    // (getattr, ("x", "upper")) at protocols 2 and 4.
    assert_forbidden_global(
        &hex("8002635f5f6275696c74696e5f5f0a676574617474720a710058010000007871015805000000757070657271028671035271042e"),
        "__builtin__",
        "getattr",
    );
    assert_forbidden_global(
        &hex("80049528000000000000008c086275696c74696e73948c07676574617474729493948c0178948c05757070657294869452942e"),
        "builtins",
        "getattr",
    );
}

#[test]
fn forbidden_global_subprocess_popen() {
    // (subprocess.Popen, (["true"],)): protocol 2 writes it as
    // commands.Popen (fix_imports), protocol 4 as subprocess.Popen.
    assert_forbidden_global(
        &hex(
            "800263636f6d6d616e64730a506f70656e0a71005d71015804000000747275657102618571035271042e",
        ),
        "commands",
        "Popen",
    );
    assert_forbidden_global(
        &hex("80049526000000000000008c0a73756270726f63657373948c05506f70656e9493945d948c04747275659461859452942e"),
        "subprocess",
        "Popen",
    );
}

#[test]
fn forbidden_global_names_are_shortened() {
    let mut data = b"\x80\x02c".to_vec();
    data.extend(std::iter::repeat_n(b'm', 10_000));
    data.extend_from_slice(b"\nname\n.");
    let e = decode_err(&data);
    assert!(e.to_string().len() < 200, "{e}");
}

#[test]
fn exception_in_a_request_is_rejected() {
    for v in [NOT_IMPLEMENTED_P4, TYPE_ERROR_P2] {
        let e = decode_value(&hex(v), &PickleLimits::default()).unwrap_err();
        assert!(matches!(e, PickleError::ExceptionNotAllowed { .. }), "{e}");
    }
}

#[test]
fn exception_inside_a_container_is_rejected() {
    // [ValueError("x")] at protocol 4.
    let e = decode_err(&hex(
        "80045d948c086275696c74696e73948c0a56616c75654572726f729493948c01789485945294612e",
    ));
    assert!(matches!(e, PickleError::NestedException), "{e}");
}

#[test]
fn non_builtin_exception_class_is_forbidden() {
    // A user-defined class from __main__, as an error reply.
    assert_forbidden_global(
        &hex("80048c085f5f6d61696e5f5f948c065679704572729493948c017894859452942e"),
        "__main__",
        "VypErr",
    );
}

fn assert_forbidden_opcode(data: &[u8], name: &str, code: u8) {
    match decode_value_or_exception(data, &PickleLimits::default()) {
        Err(PickleError::ForbiddenOpcode { name: n, code: c }) => {
            assert_eq!((n, c), (name, code));
        }
        other => panic!("expected opcode {name} to be refused, got {other:?}"),
    }
}

#[test]
fn opcode_inst_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02(io\nsystem\nS'x'\n.", "INST", b'i');
    assert_eq!(
        decode_err(b"\x80\x02(io\nsystem\n.").to_string(),
        "opcode INST (0x69) is not allowed"
    );
}

#[test]
fn opcode_obj_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02(N\x8c\x01xo.", "OBJ", b'o');
}

#[test]
fn opcode_newobj_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02N)\x81.", "NEWOBJ", 0x81);
}

#[test]
fn opcode_newobj_ex_is_rejected() {
    assert_forbidden_opcode(b"\x80\x04N)}\x92.", "NEWOBJ_EX", 0x92);
}

#[test]
fn opcode_build_on_a_non_exception_is_rejected() {
    assert_forbidden_opcode(b"\x80\x04}\x94}\x94b.", "BUILD", b'b');
    assert_forbidden_opcode(b"\x80\x04]Nb.", "BUILD", b'b');
}

#[test]
fn opcode_build_on_an_exception_with_odd_state_is_rejected() {
    // ValueError("x") then BUILD with a list state.
    let e = decode_err(&hex(
        "80048c086275696c74696e73948c0a56616c75654572726f729493948c017894859452945d622e",
    ));
    assert!(matches!(e, PickleError::Malformed(_)), "{e}");
}

#[test]
fn opcode_persid_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02P1\n.", "PERSID", b'P');
}

#[test]
fn opcode_binpersid_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02K\x01Q.", "BINPERSID", b'Q');
}

#[test]
fn opcode_ext1_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02\x82\x01.", "EXT1", 0x82);
}

#[test]
fn opcode_ext2_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02\x83\x01\x00.", "EXT2", 0x83);
}

#[test]
fn opcode_ext4_is_rejected() {
    assert_forbidden_opcode(b"\x80\x02\x84\x01\x00\x00\x00.", "EXT4", 0x84);
}

#[test]
fn opcode_next_buffer_is_rejected() {
    assert_forbidden_opcode(b"\x80\x05\x97.", "NEXT_BUFFER", 0x97);
}

#[test]
fn opcode_readonly_buffer_is_rejected() {
    assert_forbidden_opcode(b"\x80\x05C\x01a\x98.", "READONLY_BUFFER", 0x98);
}

#[test]
fn text_protocol_opcodes_are_rejected() {
    for (data, name) in [
        (&b"I1\n."[..], "INT"),
        (b"L1L\n.", "LONG"),
        (b"F1.5\n.", "FLOAT"),
        (b"S'x'\n.", "STRING"),
        (b"Vx\n.", "UNICODE"),
        (b"Np0\n.", "PUT"),
        (b"Np0\ng0\n.", "PUT"),
    ] {
        match decode_value_or_exception(data, &PickleLimits::default()) {
            Err(PickleError::ForbiddenOpcode { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unknown_opcodes_are_rejected() {
    for code in [0x00u8, 0x99, 0xff, b'z'] {
        let e = decode_err(&[0x80, 0x04, code, b'.']);
        assert!(
            matches!(e, PickleError::UnknownOpcode(c) if c == code),
            "{e}"
        );
    }
}

#[test]
fn stack_misuse_is_an_error_not_a_panic() {
    for data in [
        &b"\x80\x04."[..],
        b"\x80\x04a.",
        b"\x80\x04]a.",
        b"\x80\x04](a.",
        b"\x80\x04N(e.",
        b"\x80\x04e.",
        b"\x80\x041.",
        b"\x80\x040.",
        b"\x80\x042.",
        b"\x80\x04\x85.",
        b"\x80\x04(\x85.",
        b"\x80\x04h\x00.",
        b"\x80\x04\x94.",
        b"\x80\x04R.",
        b"\x80\x04NNR.",
        b"\x80\x04N)R.",
        b"\x80\x04}K\x01s.",
        b"\x80\x04)K\x01K\x02s.",
        b"\x80\x04](K\x01u.",
        b"\x80\x04](K\x01\x90.",
        b"\x80\x04(K\x01d.",
        b"\x80\x04N\x93.",
        b"\x80\x04NN\x93.",
        b"\x80\x04N\x80\x04.",
        b"\x80\x04(N.",
    ] {
        assert!(
            decode_value_or_exception(data, &PickleLimits::default()).is_err(),
            "{}",
            to_hex(data)
        );
    }
}

// ---------------------------------------------------------------------------
// Properties

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i128>().prop_map(Value::Int),
        any::<i64>().prop_map(|i| Value::Int(i.into())),
        any::<u8>().prop_map(|i| Value::Int(i.into())),
        // The top byte 01..=fe keeps these minimal, and 17+ bytes keeps
        // them outside i128.
        (prop::collection::vec(any::<u8>(), 16..40), 1u8..=0xfe).prop_map(|(mut b, top)| {
            b.push(top);
            Value::BigInt(b)
        }),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::ByteArray),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Tuple),
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Set),
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::FrozenSet),
            prop::collection::vec((inner.clone(), inner), 0..8).prop_map(Value::Map),
        ]
    })
}

/// Opcodes with plausible arguments, so that random sequences get past the
/// first byte and reach the stack, memo and REDUCE logic.
const SOUP: &[&[u8]] = &[
    b"]",
    b")",
    b"}",
    b"\x8f",
    b"(",
    b"a",
    b"e",
    b"s",
    b"u",
    b"\x90",
    b"t",
    b"l",
    b"d",
    b"\x91",
    b"0",
    b"1",
    b"2",
    b"\x85",
    b"\x86",
    b"\x87",
    b"\x94",
    b"q\x00",
    b"q\x01",
    b"h\x00",
    b"h\x01",
    b"h\x02",
    b"K\x01",
    b"N",
    b"\x88",
    b"\x8a\x00",
    b"\x8a\x01\xff",
    b"\x8c\x01x",
    b"C\x01y",
    b"\x8c\x08builtins",
    b"\x8c\x03set",
    b"\x8c\tbytearray",
    b"\x8c\nValueError",
    b"\x8c\x06latin1",
    b"c_codecs\nencode\n",
    b"c__builtin__\nset\n",
    b"cexceptions\nKeyError\n",
    b"\x93",
    b"R",
    b"b",
    b"\x95\x01\x00\x00\x00\x00\x00\x00\x00",
    b".",
];

proptest! {
    #[test]
    fn opcode_soup_never_panics(
        picks in prop::collection::vec(0..SOUP.len(), 0..64),
        allow in any::<bool>(),
    ) {
        let mut data = vec![0x80, 0x04];
        for i in picks {
            data.extend_from_slice(SOUP[i]);
        }
        data.push(b'.');
        let _ = decode_either(&data, allow);
    }

    #[test]
    fn round_trip(value in arb_value()) {
        let data = encode(&value);
        let back = decode_value(&data, &PickleLimits::default());
        prop_assert_eq!(back.ok(), Some(value));
    }

    #[test]
    fn random_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut data = vec![0x80, 0x04];
        data.extend_from_slice(&tail);
        let _ = decode_value_or_exception(&data, &PickleLimits::default());
        let _ = decode_value(&tail, &PickleLimits::default());
    }

    #[test]
    fn mutated_vectors_never_panic(
        which in 0..ALL_VECTORS.len(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut data = hex(ALL_VECTORS[which]);
        let i = at.index(data.len());
        data[i] = byte;
        let _ = decode_value_or_exception(&data, &PickleLimits::default());
    }
}

/// Protocol 4: one list of `inner` small ints, memoized, then a list that
/// references it `times` times (`[x] * times` in Python).
fn shared_list_pickle(inner: usize, times: usize) -> Vec<u8> {
    let mut data = vec![0x80, 0x04, b']', 0x94, b'('];
    for _ in 0..inner {
        data.extend_from_slice(&[b'K', 1]);
    }
    data.extend_from_slice(b"e0](");
    for _ in 0..times {
        data.extend_from_slice(&[b'h', 0]);
    }
    data.extend_from_slice(b"e.");
    data
}

#[test]
fn memo_expansion_is_bounded_by_the_input_length() {
    // 5 KB that would decode to a million values (some 100 MB).
    let data = shared_list_pickle(1000, 990);
    assert!(data.len() < 5_000);
    let e = decode_err(&data);
    assert!(
        matches!(e, PickleError::TooManyValues(n) if n < 20_000),
        "{e}"
    );
    // The same shape within what its length allows decodes.
    let data = shared_list_pickle(10, 100);
    let Ok(Value::List(rows)) = decode_value(&data, &PickleLimits::default()) else {
        panic!("a small shared list does not decode");
    };
    assert_eq!(rows.len(), 100);
}

#[test]
fn the_budget_of_an_input_scales_with_its_length() {
    let limits = PickleLimits::default();
    assert_eq!(limits.for_input(0).max_nodes, NODES_FOR_ANY_INPUT);
    assert_eq!(limits.for_input(1000).max_nodes, NODES_FOR_ANY_INPUT + 2000);
    assert_eq!(limits.for_input(usize::MAX).max_nodes, limits.max_nodes);
    // A big unshared value is one value per few bytes: within budget.
    let data = encode(&Value::List(ints(0..200_000)));
    assert!(decode_value(&data, &limits).is_ok());
}
