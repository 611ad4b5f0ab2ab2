//! The pickle decoder's working memory against its input's length, as the
//! decoder's own budget counts it (`budget.rs`): adversarial pickles that
//! push and drop values hold next to nothing, those that keep what they
//! make stay within [`WORK_BYTES_PER_INPUT_BYTE`], and copies made by
//! REDUCE are charged in bytes. The real allocations are checked against
//! the same bound by the `pickle_memory` test binary, with a counting
//! allocator.

use super::decode::decode_value_counted;
use super::*;

/// A protocol 4 pickle: PROTO, `head`, `unit` `k` times, `tail`, STOP.
fn pickle(head: &[u8], unit: &[u8], k: usize, tail: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x04];
    v.extend_from_slice(head);
    for _ in 0..k {
        v.extend_from_slice(unit);
    }
    v.extend_from_slice(tail);
    v.push(b'.');
    v
}

/// `builtins.<name>` by STACK_GLOBAL, memoized under `key`.
fn global(name: &str, key: u8) -> Vec<u8> {
    let mut v = vec![0x8c, 8];
    v.extend_from_slice(b"builtins");
    v.push(0x8c);
    v.push(u8::try_from(name.len()).unwrap());
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(&[0x93, b'q', key]);
    v
}

/// A str of `len` bytes by BINUNICODE.
fn str_op(len: usize) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    v.resize(v.len() + len, b'x');
    v
}

/// Pickles that make values and drop them at once, each with the value it
/// decodes to. Before values were freed, every one of them kept a node
/// (48 bytes) per value it made, until the value count stopped it.
fn churn(k: usize) -> Vec<(&'static str, Vec<u8>, Value)> {
    let nil = Value::Nil;
    // A 4 KiB bytes object copied by bytearray() and dropped, over and
    // over: 4 KiB a copy, freed each time.
    let mut copies = vec![b'B'];
    copies.extend_from_slice(&4096u32.to_le_bytes());
    copies.resize(copies.len() + 4096, 0);
    copies.extend_from_slice(&[b'q', 0, b'0']);
    copies.extend(global("bytearray", 1));
    copies.push(b'0');
    let mut sets = b"](K\x01K\x02eq\x000".to_vec();
    sets.extend(global("set", 1));
    sets.push(b'0');
    vec![
        ("NONE POP", pickle(b"N", b"N0", k, b""), nil.clone()),
        ("EMPTY_LIST POP", pickle(b"N", b"]0", k, b""), nil.clone()),
        ("BININT1 POP", pickle(b"N", b"K\x070", k, b""), nil.clone()),
        (
            "str POP",
            pickle(b"N", &[str_op(40), b"0".to_vec()].concat(), k / 8, b""),
            nil.clone(),
        ),
        ("DUP POP", pickle(b"]", b"20", k, b"0N"), nil.clone()),
        (
            "a list of lists, dropped",
            pickle(b"N", b"](]]]]]]]]e0", k / 10, b""),
            nil.clone(),
        ),
        (
            "a chain of 1-tuples, dropped",
            pickle(
                b"N",
                &[&b"]"[..], &[0x85; 100], b"0"].concat(),
                k / 100,
                b"",
            ),
            nil.clone(),
        ),
        (
            "a dict, dropped",
            pickle(b"N", b"}(K\x01]K\x02}u0", k / 10, b""),
            nil.clone(),
        ),
        (
            "MARK ... POP_MARK",
            pickle(b"N", b"(NNNNNNN]1", k / 10, b""),
            nil.clone(),
        ),
        (
            "MARKs 100 deep, then POP_MARKs",
            pickle(b"N", &[[b'('; 100], [b'1'; 100]].concat(), k / 200, b""),
            nil.clone(),
        ),
        (
            "BINPUT over the same key",
            pickle(b"N", b"]q\x070", k, b""),
            nil.clone(),
        ),
        (
            "LONG_BINPUT over the same key, BINGET, POP",
            pickle(b"N", b"}r\x07\x00\x00\x000j\x07\x00\x00\x000", k, b""),
            nil.clone(),
        ),
        (
            "set(list) by REDUCE, dropped",
            pickle(&sets, b"h\x01h\x00\x85R0", k / 8, b"N"),
            nil.clone(),
        ),
        (
            "bytearray(bytes) by REDUCE, dropped",
            // Fewer: each copy is 64 units of work (one per 64 bytes).
            pickle(&copies, b"h\x01h\x00\x85R0", k / 32, b"N"),
            nil,
        ),
    ]
}

#[test]
fn values_dropped_at_once_cost_nothing_that_stays() {
    let limits = PickleLimits::default();
    for (what, data, expect) in churn(100_000) {
        let (value, peak) = decode_value_counted(&data, &limits);
        assert_eq!(value.expect(what), expect, "{what}");
        // What holds a few values at a time, whatever the input's length:
        // the arena's first few slots, a stack entry or two, the 4 KiB
        // copies and the set of two.
        assert!(
            peak < 32 << 10,
            "{what}: {peak} bytes held for {} bytes of input",
            data.len()
        );
    }
}

/// Pickles whose values all stay until the end: containers of one-byte
/// values, and what the memo keeps.
fn kept(k: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut sparse = vec![b'N'];
    for key in (0..u32::try_from(k / 5).unwrap()).rev() {
        sparse.push(b'r');
        sparse.extend_from_slice(&key.to_le_bytes());
    }
    vec![
        ("a list of empty lists", pickle(b"](", b"]", k, b"e")),
        ("a list of empty dicts", pickle(b"](", b"}", k, b"e")),
        ("a list of Nones", pickle(b"](", b"N", k, b"e")),
        ("a tuple of DUPs", pickle(b"(N", b"2", k, b"t")),
        (
            "lists of lists, appended one by one",
            pickle(b"]", b"]a", k / 2, b""),
        ),
        ("a dict of lists", pickle(b"}(", b"K\x01]", k / 3, b"u")),
        ("a chain of 1-tuples", pickle(b"N", &[0x85], k, b"")),
        ("a memo entry per byte", pickle(b"N", b"\x94", k, b"")),
        ("sparse memo keys", pickle(&sparse, b"", 0, b"")),
        ("memoized lists", pickle(b"](", b"]\x94", k / 2, b"e")),
    ]
}

#[test]
fn values_kept_cost_at_most_the_allowance_of_their_length() {
    let limits = PickleLimits::default();
    for (what, data) in kept(200_000) {
        let (value, peak) = decode_value_counted(&data, &limits);
        // The chain is too deep to decode; the others decode. Either way
        // what was held stays well within the allowance (128 bytes per
        // byte): one node, one reference and one value of 32 bytes each
        // per byte, at most.
        assert!(
            value.is_ok() || matches!(value, Err(PickleError::TooDeep(_))),
            "{what}: {value:?}"
        );
        let per_byte = peak / data.len();
        assert!(
            per_byte <= 96,
            "{what}: {per_byte} bytes held per input byte"
        );
    }
}

#[test]
fn cpython_pickles_of_plain_data_need_at_most_half_the_allowance() {
    let k = 100_000;
    let values = [
        Value::List((0..k).map(Value::Int).collect()),
        Value::List(vec![Value::Nil; k as usize]),
        Value::List((0..k).map(|i| Value::Str(i.to_string())).collect()),
        Value::List((0..k).map(|_| Value::Tuple(vec![Value::Nil])).collect()),
        Value::List((0..k).map(|_| Value::List(Vec::new())).collect()),
        Value::Map(
            (0..k)
                .map(|i| (Value::Str(i.to_string()), Value::Int(i)))
                .collect(),
        ),
        Value::Set((0..k).map(Value::Int).collect()),
        Value::List(
            (0..k)
                .map(|i| Value::Bytes(vec![0; (i % 100) as usize]))
                .collect(),
        ),
    ];
    for value in values {
        let mut data = Vec::new();
        encode_value(&value, &mut data);
        let (decoded, peak) = decode_value_counted(&data, &PickleLimits::default());
        assert_eq!(decoded.unwrap(), value);
        let per_byte = peak / data.len();
        assert!(
            per_byte <= WORK_BYTES_PER_INPUT_BYTE / 2,
            "{}: {per_byte} bytes held per input byte",
            value.type_name()
        );
    }
}

#[test]
fn copies_by_reduce_are_charged_in_bytes() {
    // bytearray(b) for a 64 KiB b, a thousand times, kept in a list: 7
    // bytes of input for each 64 KiB copy. The value count allowed some
    // 16,000 units of 64 bytes for each (1 GiB in all); bytes stop it at
    // the allowance.
    let mut head = vec![b'B'];
    head.extend_from_slice(&(64u32 << 10).to_le_bytes());
    head.resize(head.len() + (64 << 10), 0);
    head.extend_from_slice(&[b'q', 0, b'0']);
    head.extend(global("bytearray", 1));
    head.extend_from_slice(b"0](");
    let data = pickle(&head, b"h\x01h\x00\x85R", 1000, b"e");
    let (value, peak) = decode_value_counted(&data, &PickleLimits::default());
    let allowance = WORK_BYTES_FOR_ANY_INPUT + WORK_BYTES_PER_INPUT_BYTE * data.len();
    assert!(
        matches!(value, Err(PickleError::MemoryLimit(a)) if a == allowance),
        "{value:?}"
    );
    assert!(peak <= allowance);
}

#[test]
fn shared_values_are_charged_for_every_copy_they_decode_to() {
    // Within the value count (2 per byte), but each value a 60-byte str:
    // a tuple of 500 references to it, referenced 500 times, is 250,000
    // copies (15 MB of str) from 4 KB of input. The count stops it first;
    // were it raised, the bytes would.
    let mut head = str_op(60);
    head.extend_from_slice(b"q\x000(");
    head.extend(std::iter::repeat_n([b'h', 0], 500).flatten());
    head.extend_from_slice(b"tq\x010](");
    let data = pickle(&head, b"h\x01", 500, b"e");
    let limits = PickleLimits {
        max_nodes: usize::MAX,
        nodes_per_input_byte: usize::MAX,
        ..PickleLimits::default()
    };
    let (value, peak) = decode_value_counted(&data, &limits);
    assert!(
        matches!(value, Err(PickleError::MemoryLimit(_))),
        "{value:?}"
    );
    assert!(peak <= WORK_BYTES_FOR_ANY_INPUT + WORK_BYTES_PER_INPUT_BYTE * data.len());
    assert!(matches!(
        decode_value(&data, &PickleLimits::default()),
        Err(PickleError::TooManyValues(_))
    ));
}
