//! The pickle codec: Python anyd programs' payloads, read as data only.
//!
//! This module owns the translation between pickle bytes and [`Value`]
//! ([protocol section 4.3](crate::protocol#43-pickle-safely), "Pickle,
//! safely"), and, in `message.rs`, the shapes of requests and replies as pickles: the functions every codec
//! offers (see [`crate::codec`]). It does not own framing, the message
//! types, nor the choice of codec.
//!
//! The decoder is not a pickle virtual machine. It understands the opcodes
//! that build plain data (None, bools, ints of any size, floats, str, bytes,
//! bytearray, list, tuple, dict, set, frozenset) plus the memo and framing
//! opcodes, and a closed list of globals in exactly the shapes CPython's
//! pickler writes them (`_codecs.encode` for protocol 2 bytes, `set`,
//! `frozenset`, `bytearray`, `bytes`, and builtin exception classes in
//! replies). Everything else is an error that names the opcode or the
//! global; nothing is ever called or imported. Depth, memo size, the number
//! of values and every length prefix are checked before anything is
//! allocated for them, and every byte the decoder holds, the decoded value
//! included, is charged before it is allocated to an allowance of
//! [`WORK_BYTES_PER_INPUT_BYTE`] per input byte; what a pickle drops is
//! freed at once.
//!
//! The encoder writes protocol 4 byte for byte as CPython 3.11's
//! `pickle.dumps(obj, protocol=4)` does for the same tree of objects,
//! framing and memo opcodes included.

mod arena;
mod budget;
mod build;
mod decode;
mod encode;
mod globals;
mod memo;
mod message;
mod op;
mod repr;
mod stack;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_memory;

pub use budget::{WORK_BYTES_FOR_ANY_INPUT, WORK_BYTES_PER_INPUT_BYTE};
pub use decode::{decode_value, decode_value_or_exception};
pub use encode::{encode_exception, encode_value};
pub use message::PEEK_FALLBACK;
pub(crate) use message::{
    decode_args, decode_head, decode_reply, encode_end_session, encode_reply_error,
    encode_reply_ok, encode_request, FIRST_BYTES,
};

use crate::Value;

/// Bounds that keep a hostile pickle from using unbounded time or memory.
///
/// The input length bounds everything else: what the decoder holds, in
/// bytes, is at most [`WORK_BYTES_FOR_ANY_INPUT`] plus
/// [`WORK_BYTES_PER_INPUT_BYTE`] per input byte, whatever these limits
/// say. These are about what a small input could otherwise expand into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickleLimits {
    /// How many containers may enclose one another in the decoded value;
    /// also the bound on open MARKs. Materializing recurses this deep, so
    /// keep it in the hundreds.
    pub max_depth: usize,
    /// How many memo entries (BINPUT, LONG_BINPUT, MEMOIZE) may exist.
    ///
    /// CPython memoizes every str, bytes and non-empty container it writes,
    /// so a legitimate pickle can hold nearly one entry per value: the
    /// default equals `max_nodes`, so that anything within `max_nodes` is
    /// accepted. An entry costs 8 bytes when keys come in the order
    /// CPython numbers them (64 otherwise), and each needs an input byte.
    pub max_memo: usize,
    /// How many values the decoded tree may hold, counting every container
    /// and scalar once per place it appears. A value shared through the memo
    /// and referenced many times counts each time (so "billion laughs"
    /// pickles fail instead of exploding), and a str, bytes, bytearray or
    /// big int copied again for such a repeat also counts one per 64 bytes.
    /// The stack holds at most this many entries, and the decoder's
    /// intermediate objects (plus what REDUCE copies, counted the same way)
    /// number at most four times this many.
    pub max_nodes: usize,
    /// How many values each input byte may decode to, past the first
    /// [`NODES_FOR_ANY_INPUT`]: the effective `max_nodes` of an input of
    /// `n` bytes is `min(max_nodes, NODES_FOR_ANY_INPUT + n *
    /// nodes_per_input_byte)`. Memo references make a pickle expand (a
    /// 5 KB pickle of one 1,000-element list referenced 1,000 times is a
    /// million values, some 100 MB decoded); this keeps what a caller can
    /// make the daemon hold proportional to what it sent. CPython's own
    /// pickles of unshared data decode to at most one value per byte; the
    /// default of 2 leaves room for shared tuples and strings.
    pub nodes_per_input_byte: usize,
}

/// The values any pickle may decode to, however short (see
/// [`PickleLimits::nodes_per_input_byte`]).
pub const NODES_FOR_ANY_INPUT: usize = 4096;

impl Default for PickleLimits {
    fn default() -> Self {
        PickleLimits {
            max_depth: 128,
            max_memo: 1_000_000,
            max_nodes: 1_000_000,
            nodes_per_input_byte: 2,
        }
    }
}

impl PickleLimits {
    /// These limits for an input of `len` bytes: `max_nodes` scaled down
    /// to what the input may expand into.
    pub fn for_input(&self, len: usize) -> PickleLimits {
        let scaled = len
            .saturating_mul(self.nodes_per_input_byte)
            .saturating_add(NODES_FOR_ANY_INPUT);
        PickleLimits {
            max_nodes: self.max_nodes.min(scaled),
            ..*self
        }
    }
}

/// What a pickle decoded to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decoded {
    /// A plain value.
    Value(Value),
    /// A builtin exception instance, as a Python daemon sends an error
    /// reply. Only produced by [`decode_value_or_exception`], and only at
    /// the top level. Attributes set on the exception (which Python pickles as a
    /// BUILD state) are checked to be data and then dropped.
    Exception {
        /// The class name, such as `ValueError`.
        kind: String,
        /// The arguments joined with `", "`: strings as they are, other
        /// values in a Python-repr-like form.
        message: String,
        /// The exception's `args` tuple.
        args: Vec<Value>,
    },
}

/// Why a pickle was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The input ended in the middle of an opcode, or before STOP, or a
    /// length prefix claims more bytes than remain.
    #[error("truncated pickle")]
    Truncated,
    /// Something follows the STOP opcode.
    #[error("trailing bytes after STOP")]
    TrailingBytes,
    /// The PROTO opcode names a protocol other than 2 to 5.
    #[error("unsupported protocol {0}")]
    UnsupportedProtocol(u8),
    /// A real opcode that this decoder refuses, because it runs code,
    /// reaches outside the pickle, or belongs to the text protocols.
    #[error("opcode {name} (0x{code:02x}) is not allowed")]
    ForbiddenOpcode {
        /// CPython's name for the opcode.
        name: &'static str,
        /// The opcode byte.
        code: u8,
    },
    /// A byte that no pickle protocol defines as an opcode.
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    /// A global outside the short list of data constructors.
    #[error("forbidden global {module}.{name}")]
    ForbiddenGlobal {
        /// The module, as written in the pickle (shortened if very long).
        module: String,
        /// The name, as written in the pickle (shortened if very long).
        name: String,
    },
    /// A builtin exception class where exceptions are not allowed (in a
    /// request).
    #[error("exception {module}.{name} is not allowed here")]
    ExceptionNotAllowed {
        /// The module, as written in the pickle.
        module: String,
        /// The exception class name.
        name: String,
    },
    /// An exception inside a container or inside another exception's
    /// arguments; only a top-level exception is supported.
    #[error("an exception nested inside a value is not supported")]
    NestedException,
    /// Containers (or MARKs) nested deeper than `max_depth`.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// More memo entries than `max_memo`.
    #[error("memo limit of {0} entries exceeded")]
    MemoLimit(usize),
    /// The value, the stack or the intermediate objects exceed `max_nodes`.
    #[error("too many values (limit {0})")]
    TooManyValues(usize),
    /// Decoding would hold more working memory than the input's length
    /// allows ([`WORK_BYTES_PER_INPUT_BYTE`]); the limit in bytes.
    #[error("working memory limit of {0} bytes exceeded")]
    MemoryLimit(usize),
    /// A container that contains itself, such as `l = []; l.append(l)`.
    #[error("recursive structure")]
    Recursive,
    /// Anything else that CPython's pickler never writes: a stack
    /// underflow, an APPEND to a non-list, a non-UTF-8 str, a bad
    /// argument to an allowed global...
    #[error("invalid pickle: {0}")]
    Malformed(String),
}

/// The name of every builtin exception and warning class of Python 3.11,
/// as listed in its `builtins` module (aliases such as `IOError` included).
///
/// These are the classes accepted from a peer's error reply, and the kinds
/// [`encode_exception`] writes as themselves.
pub const BUILTIN_EXCEPTIONS: &[&str] = &[
    "BaseException",
    "BaseExceptionGroup",
    "Exception",
    "GeneratorExit",
    "KeyboardInterrupt",
    "SystemExit",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BufferError",
    "EOFError",
    "ImportError",
    "LookupError",
    "MemoryError",
    "NameError",
    "OSError",
    "ReferenceError",
    "RuntimeError",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SystemError",
    "TypeError",
    "ValueError",
    "Warning",
    "FloatingPointError",
    "OverflowError",
    "ZeroDivisionError",
    "BytesWarning",
    "DeprecationWarning",
    "EncodingWarning",
    "FutureWarning",
    "ImportWarning",
    "PendingDeprecationWarning",
    "ResourceWarning",
    "RuntimeWarning",
    "SyntaxWarning",
    "UnicodeWarning",
    "UserWarning",
    "BlockingIOError",
    "ChildProcessError",
    "ConnectionError",
    "FileExistsError",
    "FileNotFoundError",
    "InterruptedError",
    "IsADirectoryError",
    "NotADirectoryError",
    "PermissionError",
    "ProcessLookupError",
    "TimeoutError",
    "IndentationError",
    "IndexError",
    "KeyError",
    "ModuleNotFoundError",
    "NotImplementedError",
    "RecursionError",
    "UnboundLocalError",
    "UnicodeError",
    "BrokenPipeError",
    "ConnectionAbortedError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "TabError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeTranslateError",
    "ExceptionGroup",
    "EnvironmentError",
    "IOError",
];

/// The bytes of the str a pickle starts with, read from its first opcodes
/// only, when it starts the way CPython's pickler (protocols 2 to 5)
/// writes a tuple whose first item is a str: PROTO, an optional FRAME,
/// then SHORT_BINUNICODE, BINUNICODE or BINUNICODE8. This is how a request
/// names its endpoint, so the name is known before anything else is
/// decoded; `None` for any other start. Never allocates; the UTF-8 is not
/// checked.
///
/// Protocols 0 and 1 start a tuple with MARK and never reach here: a
/// request's first byte must be PROTO for the codec to be detected at all.
pub fn peek_str(input: &[u8]) -> Option<&[u8]> {
    let [op::PROTO, 2..=5, rest @ ..] = input else {
        return None;
    };
    let rest = match rest {
        [op::FRAME, _, _, _, _, _, _, _, _, rest @ ..] => rest,
        rest => rest,
    };
    let (len, rest): (u64, &[u8]) = match rest {
        [op::SHORT_BINUNICODE, len, rest @ ..] => (u64::from(*len), rest),
        [op::BINUNICODE, a, b, c, d, rest @ ..] => {
            (u32::from_le_bytes([*a, *b, *c, *d]).into(), rest)
        }
        [op::BINUNICODE8, a, b, c, d, e, f, g, h, rest @ ..] => {
            (u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]), rest)
        }
        _ => return None,
    };
    rest.get(..usize::try_from(len).ok()?)
}

/// The builtin exception class called `name`, as a `'static` string.
fn builtin_exception(name: &str) -> Option<&'static str> {
    BUILTIN_EXCEPTIONS.iter().copied().find(|&n| n == name)
}

/// Trims little-endian two's complement bytes to the shortest form that
/// keeps the value (what CPython's `encode_long` writes). Zero becomes
/// empty.
fn trim_twos_complement(bytes: &[u8]) -> &[u8] {
    let mut len = bytes.len();
    while len > 0 {
        let last = bytes[len - 1];
        let below_negative = len >= 2 && bytes[len - 2] & 0x80 != 0;
        let redundant = if len == 1 {
            last == 0
        } else {
            (last == 0 && !below_negative) || (last == 0xff && below_negative)
        };
        if !redundant {
            break;
        }
        len -= 1;
    }
    &bytes[..len]
}

/// The value of minimal two's complement bytes, if it fits in an `i128`.
fn twos_complement_to_i128(minimal: &[u8]) -> Option<i128> {
    if minimal.len() > 16 {
        return None;
    }
    let negative = minimal.last().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xff; 16] } else { [0; 16] };
    buf[..minimal.len()].copy_from_slice(minimal);
    Some(i128::from_le_bytes(buf))
}
