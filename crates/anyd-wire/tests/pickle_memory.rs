//! What the pickle decoder really allocates, against the bound of
//! docs/PROTOCOL.md section 7: at most `WORK_BYTES_FOR_ANY_INPUT` plus
//! `WORK_BYTES_PER_INPUT_BYTE` per input byte, the decoded value included,
//! and next to nothing for pickles that drop what they make. The decoder's
//! own accounting is tested beside it (`codec::pickle::tests_memory`);
//! this checks that accounting against the allocator.
//!
//! A test binary of its own, because it replaces the global allocator:
//! with one that counts, per thread, the bytes asked for and not yet
//! given back, and the most that was.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use anyd_wire::codec::pickle::{
    decode_value, encode_value, PickleError, PickleLimits, WORK_BYTES_FOR_ANY_INPUT,
    WORK_BYTES_PER_INPUT_BYTE,
};
use anyd_wire::codec::{decode_request, DecodeLimits};
use anyd_wire::message::Incoming;
use anyd_wire::Value;

thread_local! {
    /// Whether this thread's allocations are being counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated and not freed since counting started (negative if
    /// more was freed than allocated meanwhile).
    static NOW: Cell<isize> = const { Cell::new(0) };
    /// The most `NOW` has been.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are torn
    // down, when there is nothing to count.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let now = NOW.get() + delta;
            NOW.set(now);
            PEAK.set(PEAK.get().max(now));
        }
    });
}

fn size(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the
// counting touches only const-initialised thread-locals, which never
// allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(size(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(size(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller promised for `ptr` and `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-size(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller promised for `ptr`, `layout`, `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as a move, with both blocks held at once: what a
            // realloc that cannot grow in place does.
            count(size(new_size));
            count(-size(layout.size()));
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns what it returned and the most it held allocated
/// at once on this thread, in bytes, what it returned included.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    NOW.set(0);
    PEAK.set(0);
    COUNTING.set(true);
    let out = f();
    COUNTING.set(false);
    (out, usize::try_from(PEAK.get()).unwrap_or(0))
}

/// The bound the protocol document states for an input of `len` bytes.
fn bound(len: usize) -> usize {
    WORK_BYTES_FOR_ANY_INPUT + WORK_BYTES_PER_INPUT_BYTE * len
}

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

/// `builtins.bytearray` by STACK_GLOBAL, memoized under key 1, and
/// popped; then a MARK'd list to append to.
fn bytes_and_bytearray(len: usize) -> Vec<u8> {
    let mut v = vec![b'B'];
    v.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    v.resize(v.len() + len, 0);
    v.extend_from_slice(b"q\x000\x8c\x08builtins\x8c\x09bytearray\x93q\x010");
    v
}

#[test]
fn a_request_of_8m_none_pop_pairs_holds_next_to_nothing() {
    // The request the issue measured: `("echo", (), {})` with 8M NONE POP
    // pairs after the name, 16 MB in all. It held some 200 MiB, a node
    // per NONE until the value count stopped it.
    let mut payload = vec![0x80, 0x04, 0x8c, 4];
    payload.extend_from_slice(b"echo");
    for _ in 0..8_000_000 {
        payload.extend_from_slice(b"N0");
    }
    payload.extend_from_slice(b")}\x87.");
    let (request, peak) = peak_of(
        || match decode_request(&payload, &DecodeLimits::default()) {
            Ok(Incoming::Request(r)) => Ok((r.endpoint.into_owned(), r.args.len())),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        },
    );
    assert_eq!(request, Ok(("echo".to_owned(), 0)));
    assert!(peak < 64 << 10, "{peak} bytes held for 16 MB of NONE POP");
}

#[test]
fn pickles_that_drop_what_they_make_hold_next_to_nothing() {
    let k = 200_000;
    let copies = bytes_and_bytearray(4096);
    let cases: [(&str, Vec<u8>); 7] = [
        ("EMPTY_LIST POP", pickle(b"N", b"]0", k, b"")),
        ("BININT1 POP", pickle(b"N", b"K\x070", k, b"")),
        (
            "lists of lists, dropped",
            pickle(b"N", b"](]]]]e0", k / 6, b""),
        ),
        ("MARK ... POP_MARK", pickle(b"N", b"(NN]]}}1", k / 8, b"")),
        (
            "MARKs 100 deep",
            pickle(b"N", &[[b'('; 100], [b'1'; 100]].concat(), k / 200, b""),
        ),
        (
            "BINPUT over one key",
            pickle(b"N", b"]q\x070h\x070", k / 4, b""),
        ),
        (
            "bytearray(bytes) copies, dropped",
            pickle(&copies, b"h\x01h\x00\x85R0", 2000, b"N"),
        ),
    ];
    for (what, data) in cases {
        let (value, peak) = peak_of(|| decode_value(&data, &PickleLimits::default()));
        assert_eq!(value.expect(what), Value::Nil, "{what}");
        assert!(peak < 64 << 10, "{what}: {peak} bytes held");
    }
}

#[test]
fn what_a_pickle_keeps_and_copies_is_within_the_bound() {
    let k = 200_000;
    let mut copies = bytes_and_bytearray(64 << 10);
    copies.extend_from_slice(b"](");
    let mut sparse = vec![b'N'];
    for key in (0..u32::try_from(k / 5).unwrap()).rev() {
        sparse.push(b'r');
        sparse.extend_from_slice(&key.to_le_bytes());
    }
    let cases: [(&str, Vec<u8>); 9] = [
        ("a list of empty lists", pickle(b"](", b"]", k, b"e")),
        ("a list of empty dicts", pickle(b"](", b"}", k, b"e")),
        ("a tuple of DUPs", pickle(b"(N", b"2", k, b"t")),
        ("lists appended one by one", pickle(b"]", b"]a", k / 2, b"")),
        ("a chain of 1-tuples", pickle(b"N", &[0x85], k, b"")),
        ("a memo entry per byte", pickle(b"N", b"\x94", k, b"")),
        ("sparse memo keys", pickle(&sparse, b"", 0, b"")),
        // 7 bytes for each 64 KiB copy: refused at the bound.
        (
            "bytearray(bytes) copies, kept",
            pickle(&copies, b"h\x01h\x00\x85R", 1000, b"e"),
        ),
        (
            "a list of 1-tuples, as CPython writes it",
            encoded(&Value::List(vec![Value::Tuple(vec![Value::Nil]); k])),
        ),
    ];
    for (what, data) in cases {
        let (value, peak) = peak_of(|| decode_value(&data, &PickleLimits::default()));
        assert!(
            matches!(
                value,
                Ok(_) | Err(PickleError::TooDeep(_) | PickleError::MemoryLimit(_))
            ),
            "{what}: {value:?}"
        );
        assert!(
            peak <= bound(data.len()),
            "{what}: {peak} bytes held for {} bytes of input (bound {})",
            data.len(),
            bound(data.len())
        );
    }
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}
