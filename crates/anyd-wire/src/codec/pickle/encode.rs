//! [`Value`] to protocol 4 pickle bytes, laid out as CPython 3.11 lays
//! them out.
//!
//! Matching CPython byte for byte is not needed for Python to read the
//! output, but it makes the encoder testable against `pickle.dumps` and
//! leaves no doubt about what a Python peer sees. The pieces that matter:
//! where MEMOIZE goes, the batching of APPENDS/SETITEMS/ADDITEMS, and the
//! C pickler's framer, which opens a frame lazily, closes it at the start of
//! the next object once it holds 64 KiB, writes a str or bytes of 64 KiB or
//! more outside any frame, and drops the frame header of a frame shorter
//! than 4 bytes. The one difference: CPython memoizes objects by identity
//! and writes BINGET for a repeated object; a `Value` is a tree, so equal
//! parts are simply written again.

use std::borrow::Cow;

use super::{builtin_exception, op, trim_twos_complement, twos_complement_to_i128};
use crate::Value;

const FRAME_HEADER_SIZE: usize = 9;
/// Frames shorter than this lose their header (CPython's `FRAME_SIZE_MIN`).
const FRAME_SIZE_MIN: usize = 4;
/// CPython's `FRAME_SIZE_TARGET`.
const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// CPython's `BATCHSIZE` for APPENDS, SETITEMS and ADDITEMS.
const BATCH_SIZE: usize = 1000;

/// Builtin exceptions whose constructor does not take a single message, so
/// Python could not load `Kind(message)`; they are sent the way unknown
/// kinds are.
const NOT_CONSTRUCTIBLE: &[&str] = &[
    "BaseExceptionGroup",
    "ExceptionGroup",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeTranslateError",
];

/// Appends `value` to `out` as a protocol 4 pickle, as CPython 3.11's
/// `pickle.dumps(value, protocol=4)` writes the equivalent Python object.
///
/// # Panics
///
/// If a [`Value::BigInt`] is longer than `i32::MAX` bytes, which no pickle
/// protocol can represent. Recursion follows the depth of `value`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    let mut pickler = Pickler::start(out);
    pickler.save(value);
    pickler.finish();
}

/// Appends an exception to `out` as a protocol 4 pickle: a Python `anyd`
/// client raises it.
///
/// A `kind` from [`BUILTIN_EXCEPTIONS`](super::BUILTIN_EXCEPTIONS) is
/// written as `builtins.<kind>(message)`; any other kind (and the few
/// builtins whose constructor needs more than a message, such as
/// `UnicodeDecodeError`) as `builtins.RuntimeError("<kind>: <message>")`.
pub fn encode_exception(kind: &str, message: &str, out: &mut Vec<u8>) {
    let (class, message) = match builtin_exception(kind) {
        Some(class) if !NOT_CONSTRUCTIBLE.contains(&class) => (class, Cow::Borrowed(message)),
        _ => ("RuntimeError", Cow::Owned(format!("{kind}: {message}"))),
    };
    let mut pickler = Pickler::start(out);
    // The object sequence CPython's save_reduce goes through: the class,
    // then the args tuple `(message,)`, then REDUCE.
    pickler.boundary();
    pickler.save_global("builtins", class);
    pickler.boundary();
    pickler.boundary();
    pickler.save_str(&message);
    pickler.write(&[op::TUPLE1]);
    pickler.memoize();
    pickler.write(&[op::REDUCE]);
    pickler.memoize();
    pickler.finish();
}

/// CPython's C pickler reduced to what a tree of values needs.
struct Pickler<'a> {
    out: &'a mut Vec<u8>,
    /// Where the open frame's header sits in `out`, if a frame is open.
    frame_start: Option<usize>,
    /// Off only while a large str or bytes is written outside frames.
    framing: bool,
}

impl<'a> Pickler<'a> {
    fn start(out: &'a mut Vec<u8>) -> Self {
        // PROTO is written before framing starts, so it is never in a frame.
        out.extend_from_slice(&[op::PROTO, 4]);
        Pickler {
            out,
            frame_start: None,
            framing: true,
        }
    }

    fn finish(mut self) {
        self.write(&[op::STOP]);
        self.commit_frame();
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER_SIZE]);
        }
        self.out.extend_from_slice(bytes);
    }

    fn frame_len(&self, start: usize) -> usize {
        self.out.len() - start - FRAME_HEADER_SIZE
    }

    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.frame_len(start);
        if len >= FRAME_SIZE_MIN {
            self.out[start] = op::FRAME;
            self.out[start + 1..start + FRAME_HEADER_SIZE]
                .copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER_SIZE);
        }
    }

    /// CPython checks the frame size at the start of saving every object.
    fn boundary(&mut self) {
        if let Some(start) = self.frame_start {
            if self.frame_len(start) >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    /// A str or bytes payload: a big one goes outside any frame.
    fn write_payload(&mut self, header: &[u8], data: &[u8]) {
        if data.len() >= FRAME_SIZE_TARGET {
            self.commit_frame();
            self.framing = false;
            self.write(header);
            self.write(data);
            self.framing = true;
        } else {
            self.write(header);
            self.write(data);
        }
    }

    fn memoize(&mut self) {
        self.write(&[op::MEMOIZE]);
    }

    fn save(&mut self, value: &Value) {
        self.boundary();
        match value {
            Value::Nil => self.write(&[op::NONE]),
            Value::Bool(true) => self.write(&[op::NEWTRUE]),
            Value::Bool(false) => self.write(&[op::NEWFALSE]),
            Value::Int(i) => self.save_int(*i),
            Value::BigInt(bytes) => {
                let minimal = trim_twos_complement(bytes);
                match twos_complement_to_i128(minimal) {
                    Some(i) => self.save_int(i),
                    None => self.save_long(minimal),
                }
            }
            Value::Float(f) => {
                self.write(&[op::BINFLOAT]);
                self.write(&f.to_be_bytes());
            }
            Value::Str(s) => self.save_str(s),
            Value::Bytes(b) => self.save_bytes(b),
            Value::ByteArray(b) => {
                // Protocol 4 has no BYTEARRAY8: CPython reduces it to
                // `bytearray(b"...")`, or `bytearray()` when empty.
                self.save_global("builtins", "bytearray");
                self.boundary();
                if b.is_empty() {
                    self.write(&[op::EMPTY_TUPLE]);
                } else {
                    self.boundary();
                    self.save_bytes(b);
                    self.write(&[op::TUPLE1]);
                    self.memoize();
                }
                self.write(&[op::REDUCE]);
                self.memoize();
            }
            Value::List(items) => {
                self.write(&[op::EMPTY_LIST]);
                self.memoize();
                if let [item] = items.as_slice() {
                    self.save(item);
                    self.write(&[op::APPEND]);
                } else {
                    for batch in items.chunks(BATCH_SIZE) {
                        self.write(&[op::MARK]);
                        for item in batch {
                            self.save(item);
                        }
                        self.write(&[op::APPENDS]);
                    }
                }
            }
            Value::Tuple(items) => match items.as_slice() {
                [] => self.write(&[op::EMPTY_TUPLE]),
                [_] | [_, _] | [_, _, _] => {
                    for item in items {
                        self.save(item);
                    }
                    // TUPLE1, TUPLE2 and TUPLE3 are consecutive.
                    self.write(&[op::TUPLE1 + (items.len() - 1) as u8]);
                    self.memoize();
                }
                _ => {
                    self.write(&[op::MARK]);
                    for item in items {
                        self.save(item);
                    }
                    self.write(&[op::TUPLE]);
                    self.memoize();
                }
            },
            Value::Map(entries) => {
                self.write(&[op::EMPTY_DICT]);
                self.memoize();
                if let [(k, v)] = entries.as_slice() {
                    self.save(k);
                    self.save(v);
                    self.write(&[op::SETITEM]);
                } else if !entries.is_empty() {
                    for batch in full_batches(entries) {
                        self.write(&[op::MARK]);
                        for (k, v) in batch {
                            self.save(k);
                            self.save(v);
                        }
                        self.write(&[op::SETITEMS]);
                    }
                }
            }
            Value::Set(items) => {
                self.write(&[op::EMPTY_SET]);
                self.memoize();
                if !items.is_empty() {
                    for batch in full_batches(items) {
                        self.write(&[op::MARK]);
                        for item in batch {
                            self.save(item);
                        }
                        self.write(&[op::ADDITEMS]);
                    }
                }
            }
            Value::FrozenSet(items) => {
                // No batching: FROZENSET takes everything since the MARK.
                self.write(&[op::MARK]);
                for item in items {
                    self.save(item);
                }
                self.write(&[op::FROZENSET]);
                self.memoize();
            }
        }
    }

    fn save_int(&mut self, i: i128) {
        if let Ok(small) = u8::try_from(i) {
            self.write(&[op::BININT1, small]);
        } else if let Ok(medium) = u16::try_from(i) {
            self.write(&[op::BININT2]);
            self.write(&medium.to_le_bytes());
        } else if let Ok(word) = i32::try_from(i) {
            self.write(&[op::BININT]);
            self.write(&word.to_le_bytes());
        } else {
            let bytes = i.to_le_bytes();
            self.save_long(trim_twos_complement(&bytes));
        }
    }

    /// LONG1 or LONG4 with minimal two's complement bytes.
    fn save_long(&mut self, minimal: &[u8]) {
        match u8::try_from(minimal.len()) {
            Ok(len) => self.write(&[op::LONG1, len]),
            Err(_) => {
                let len = i32::try_from(minimal.len()).expect("int too large to pickle");
                self.write(&[op::LONG4]);
                self.write(&len.to_le_bytes());
            }
        }
        self.write(minimal);
    }

    fn save_str(&mut self, s: &str) {
        let len = s.len();
        if let Ok(short) = u8::try_from(len) {
            self.write_payload(&[op::SHORT_BINUNICODE, short], s.as_bytes());
        } else if let Ok(medium) = u32::try_from(len) {
            let mut header = [op::BINUNICODE, 0, 0, 0, 0];
            header[1..].copy_from_slice(&medium.to_le_bytes());
            self.write_payload(&header, s.as_bytes());
        } else {
            let mut header = [op::BINUNICODE8, 0, 0, 0, 0, 0, 0, 0, 0];
            header[1..].copy_from_slice(&(len as u64).to_le_bytes());
            self.write_payload(&header, s.as_bytes());
        }
        self.memoize();
    }

    fn save_bytes(&mut self, b: &[u8]) {
        let len = b.len();
        if let Ok(short) = u8::try_from(len) {
            self.write_payload(&[op::SHORT_BINBYTES, short], b);
        } else if let Ok(medium) = u32::try_from(len) {
            let mut header = [op::BINBYTES, 0, 0, 0, 0];
            header[1..].copy_from_slice(&medium.to_le_bytes());
            self.write_payload(&header, b);
        } else {
            let mut header = [op::BINBYTES8, 0, 0, 0, 0, 0, 0, 0, 0];
            header[1..].copy_from_slice(&(len as u64).to_le_bytes());
            self.write_payload(&header, b);
        }
        self.memoize();
    }

    /// A global as protocol 4 writes it: module and name as memoized
    /// strings, STACK_GLOBAL, and the class itself memoized.
    fn save_global(&mut self, module: &str, name: &str) {
        self.boundary();
        self.save_str(module);
        self.boundary();
        self.save_str(name);
        self.write(&[op::STACK_GLOBAL]);
        self.memoize();
    }
}

/// Batches as CPython's C pickler cuts dicts and sets: a collection whose
/// size is a multiple of the batch size ends with an empty batch.
fn full_batches<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let trailing: &[T] = &[];
    let extra = (items.len() % BATCH_SIZE == 0).then_some(trailing);
    items.chunks(BATCH_SIZE).chain(extra)
}
