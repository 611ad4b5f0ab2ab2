//! Pickle bytes to a [`Value`] (or, in a reply, a [`Decoded`] exception):
//! the data-only reader.
//!
//! Reading happens in two passes. The first walks the opcodes and builds an
//! arena of nodes in which containers hold the indices of their children;
//! the stack and the memo hold indices too. That keeps Python's reference
//! semantics: the pickler memoizes a list while it is still empty and fills
//! it afterwards, and a shared object comes back through BINGET, so nothing
//! may be copied into the memo. The second pass, at STOP, materializes the
//! root into a [`Value`] tree (`build.rs`), which is where depth, size and
//! cycles are checked, because sharing is what lets a small pickle
//! describe a huge or infinite tree.
//!
//! Every byte either pass holds is charged to a budget proportional to the
//! input before it is allocated (`budget.rs`), and what the pickle drops
//! is freed at once (`arena.rs`): a pickle that pushes and pops values
//! costs nothing that stays.

use super::arena::{self, Arena, Node};
use super::budget::{heap, held, room, Budget};
use super::build::Builder;
use super::memo::Memo;
use super::{
    op, trim_twos_complement, twos_complement_to_i128, Decoded, PickleError, PickleLimits,
};
use crate::Value;

/// Decodes one pickle into a value: a request, or anything else that must
/// be plain data.
///
/// Accepts PROTO 2 to 5 as the first opcode, or no PROTO at all (a
/// protocol 1 pickle that sticks to the binary data opcodes; text opcodes
/// such as `INT` or `PUT` are refused). See the module documentation for the
/// accepted globals.
///
/// # Errors
///
/// [`PickleError`] for truncated or malformed input, anything that is not
/// data (forbidden opcodes and globals, and exceptions), and input that
/// exceeds `limits` or the working memory its length allows. Never panics,
/// whatever the input.
pub fn decode_value(input: &[u8], limits: &PickleLimits) -> Result<Value, PickleError> {
    decode(input, limits, false, |builder, root| builder.value(root, 0)).0
}

/// Decodes one pickle into a value or, at the top level only, a builtin
/// exception: a reply from a Python daemon, which raises an error by
/// pickling the exception.
///
/// Accepts what [`decode_value`] accepts, plus the builtin exception
/// classes.
///
/// # Errors
///
/// As [`decode_value`], and an exception anywhere but at the top level.
/// Never panics, whatever the input.
pub fn decode_value_or_exception(
    input: &[u8],
    limits: &PickleLimits,
) -> Result<Decoded, PickleError> {
    decode(input, limits, true, |builder, root| builder.root(root)).0
}

/// [`decode_value`], and the most working memory it held at once, as its
/// budget counted it: for tests of that accounting.
#[cfg(test)]
pub(super) fn decode_value_counted(
    input: &[u8],
    limits: &PickleLimits,
) -> (Result<Value, PickleError>, usize) {
    decode(input, limits, false, |builder, root| builder.value(root, 0))
}

/// Both passes: the opcodes into an arena (exceptions allowed or not),
/// then `build` from the arena's root within the limits scaled to the
/// input. Also returns the budget's peak.
fn decode<T>(
    input: &[u8],
    limits: &PickleLimits,
    allow_exceptions: bool,
    build: impl FnOnce(&mut Builder<'_>, usize) -> Result<T, PickleError>,
) -> (Result<T, PickleError>, usize) {
    let limits = limits.for_input(input.len());
    let mut budget = Budget::for_input(input.len());
    let result = both_passes(input, &limits, allow_exceptions, &mut budget, build);
    (result, budget.peak())
}

fn both_passes<T>(
    input: &[u8],
    limits: &PickleLimits,
    allow_exceptions: bool,
    budget: &mut Budget,
    build: impl FnOnce(&mut Builder<'_>, usize) -> Result<T, PickleError>,
) -> Result<T, PickleError> {
    let mut reader = Reader {
        input,
        pos: 0,
        limits,
        allow_exceptions,
        arena: Arena::new(budget)?,
        budget,
        work: 0,
        work_cap: limits.max_nodes.saturating_mul(4),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
    };
    let root = reader.run()?;
    // Only the arena is needed from here on.
    let Reader {
        arena,
        budget,
        stack,
        marks,
        memo,
        ..
    } = reader;
    budget.release(held(&stack) + held(&marks));
    drop((stack, marks));
    memo.free(budget);
    let mut builder = Builder::new(&arena, limits, budget)?;
    build(&mut builder, root)
}

pub(super) fn malformed(msg: impl Into<String>) -> PickleError {
    PickleError::Malformed(msg.into())
}

/// The first pass: opcodes to an arena.
pub(super) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    pub(super) limits: &'a PickleLimits,
    pub(super) allow_exceptions: bool,
    pub(super) arena: Arena,
    /// Every byte this pass and the next hold.
    pub(super) budget: &'a mut Budget,
    /// Arena nodes made plus everything REDUCE copies (child indices, and
    /// bytes in units of 64), freed or not: what the pass costs in time
    /// beyond reading the input.
    pub(super) work: usize,
    pub(super) work_cap: usize,
    pub(super) stack: Vec<usize>,
    /// Stack lengths at each open MARK; the last one is the fence below
    /// which ordinary opcodes may not pop.
    pub(super) marks: Vec<usize>,
    pub(super) memo: Memo,
}

impl<'a> Reader<'a> {
    fn run(&mut self) -> Result<usize, PickleError> {
        let mut first = true;
        loop {
            let code = self.byte()?;
            let at_start = std::mem::replace(&mut first, false);
            match code {
                op::PROTO => {
                    let version = self.byte()?;
                    if !at_start {
                        return Err(malformed("PROTO after the first opcode"));
                    }
                    if !(2..=5).contains(&version) {
                        return Err(PickleError::UnsupportedProtocol(version));
                    }
                }
                op::FRAME => {
                    // Frames only group opcodes for buffered readers; the
                    // whole input is already here, so the length is only
                    // checked, never used to allocate.
                    let len = self.u64()?;
                    if len > self.remaining() as u64 {
                        return Err(PickleError::Truncated);
                    }
                }
                op::STOP => return self.stop(),
                op::MARK => {
                    if self.marks.len() >= self.limits.max_depth {
                        return Err(PickleError::TooDeep(self.limits.max_depth));
                    }
                    room(self.budget, &mut self.marks, 1)?;
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    // An empty MARK is popped by POP (as CPython does).
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        let idx = self.pop("POP")?;
                        self.arena.unref(idx, self.budget)?;
                    }
                }
                op::POP_MARK => {
                    let mark = self.mark("POP_MARK")?;
                    while self.stack.len() > mark {
                        if let Some(idx) = self.stack.pop() {
                            self.arena.unref(idx, self.budget)?;
                        }
                    }
                }
                op::DUP => {
                    let top = self.top("DUP")?;
                    self.push(top)?;
                }
                op::NONE => self.push(arena::NONE)?,
                op::NEWTRUE => self.push(arena::TRUE)?,
                op::NEWFALSE => self.push(arena::FALSE)?,
                op::BININT => {
                    let b = self.array::<4>()?;
                    self.push_scalar(Value::Int(i32::from_le_bytes(b).into()))?;
                }
                op::BININT1 => {
                    let b = self.byte()?;
                    self.push_scalar(Value::Int(b.into()))?;
                }
                op::BININT2 => {
                    let b = self.array::<2>()?;
                    self.push_scalar(Value::Int(u16::from_le_bytes(b).into()))?;
                }
                op::LONG1 => {
                    let len = self.byte()?;
                    let bytes = self.take(len.into())?;
                    self.push_made(bytes.len(), || Ok(int_value(bytes)))?;
                }
                op::LONG4 => {
                    let len = self.i32_len("LONG4")?;
                    let bytes = self.take(len)?;
                    self.push_made(bytes.len(), || Ok(int_value(bytes)))?;
                }
                op::BINFLOAT => {
                    let b = self.array::<8>()?;
                    self.push_scalar(Value::Float(f64::from_be_bytes(b)))?;
                }
                op::SHORT_BINUNICODE => {
                    let len = self.byte()?;
                    self.push_str(len.into(), "SHORT_BINUNICODE")?;
                }
                op::BINUNICODE => {
                    let len = self.u32()?;
                    self.push_str(len.into(), "BINUNICODE")?;
                }
                op::BINUNICODE8 => {
                    let len = self.u64()?;
                    self.push_str(len, "BINUNICODE8")?;
                }
                op::SHORT_BINBYTES => {
                    let len = self.byte()?;
                    self.push_bytes(len.into(), Value::Bytes)?;
                }
                op::BINBYTES => {
                    let len = self.u32()?;
                    self.push_bytes(len.into(), Value::Bytes)?;
                }
                op::BINBYTES8 => {
                    let len = self.u64()?;
                    self.push_bytes(len, Value::Bytes)?;
                }
                op::BYTEARRAY8 => {
                    let len = self.u64()?;
                    self.push_bytes(len, Value::ByteArray)?;
                }
                op::SHORT_BINSTRING => {
                    let len = self.byte()?;
                    let b = self.take(len.into())?;
                    self.push_made(b.len(), || Ok(py2_str(b)))?;
                }
                op::BINSTRING => {
                    let len = self.i32_len("BINSTRING")?;
                    let b = self.take(len)?;
                    self.push_made(b.len(), || Ok(py2_str(b)))?;
                }
                op::EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
                op::EMPTY_TUPLE => self.push(arena::EMPTY_TUPLE)?,
                op::EMPTY_DICT => self.push_node(Node::Dict(Vec::new()))?,
                op::EMPTY_SET => self.push_node(Node::Set(Vec::new()))?,
                op::LIST => {
                    let items = self.pop_mark("LIST")?;
                    self.push_node(Node::List(items))?;
                }
                op::TUPLE => {
                    let items = self.pop_mark("TUPLE")?;
                    self.push_node(Node::Tuple(items))?;
                }
                op::FROZENSET => {
                    let items = self.pop_mark("FROZENSET")?;
                    self.push_node(Node::FrozenSet(items))?;
                }
                op::DICT => {
                    let items = self.pop_mark("DICT")?;
                    let pairs = self.pairs(items, "DICT")?;
                    self.push_node(Node::Dict(pairs))?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1) + 1;
                    if self.stack.len() < self.fence() + n {
                        return Err(underflow(code));
                    }
                    self.budget.charge(heap::<usize>(n))?;
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_node(Node::Tuple(items))?;
                }
                op::APPEND => {
                    let item = self.pop("APPEND")?;
                    let list = self.top("APPEND")?;
                    match self.arena.get_mut(list)? {
                        Node::List(children) => {
                            room(self.budget, children, 1)?;
                            children.push(item);
                        }
                        other => {
                            return Err(malformed(format!("APPEND to a {}", other.describe())))
                        }
                    }
                }
                op::APPENDS => {
                    let items = self.pop_mark("APPENDS")?;
                    let list = self.top("APPENDS")?;
                    match self.arena.get_mut(list)? {
                        Node::List(children) => {
                            room(self.budget, children, items.len())?;
                            children.extend_from_slice(&items);
                        }
                        other => {
                            return Err(malformed(format!("APPENDS to a {}", other.describe())))
                        }
                    }
                    self.budget.release(held(&items));
                }
                op::SETITEM => {
                    let value = self.pop("SETITEM")?;
                    let key = self.pop("SETITEM")?;
                    let dict = self.top("SETITEM")?;
                    match self.arena.get_mut(dict)? {
                        Node::Dict(entries) => {
                            room(self.budget, entries, 1)?;
                            entries.push((key, value));
                        }
                        other => {
                            return Err(malformed(format!("SETITEM on a {}", other.describe())))
                        }
                    }
                }
                op::SETITEMS => {
                    let items = self.pop_mark("SETITEMS")?;
                    let new = self.pairs(items, "SETITEMS")?;
                    let dict = self.top("SETITEMS")?;
                    match self.arena.get_mut(dict)? {
                        Node::Dict(entries) => {
                            room(self.budget, entries, new.len())?;
                            entries.extend_from_slice(&new);
                        }
                        other => {
                            return Err(malformed(format!("SETITEMS on a {}", other.describe())))
                        }
                    }
                    self.budget.release(held(&new));
                }
                op::ADDITEMS => {
                    let items = self.pop_mark("ADDITEMS")?;
                    let set = self.top("ADDITEMS")?;
                    match self.arena.get_mut(set)? {
                        Node::Set(children) => {
                            room(self.budget, children, items.len())?;
                            children.extend_from_slice(&items);
                        }
                        other => {
                            return Err(malformed(format!("ADDITEMS to a {}", other.describe())))
                        }
                    }
                    self.budget.release(held(&items));
                }
                op::BINPUT => {
                    let key = self.byte()?;
                    self.memo_put(key.into())?;
                }
                op::LONG_BINPUT => {
                    let key = self.u32()?;
                    self.memo_put(key.into())?;
                }
                op::MEMOIZE => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                op::BINGET => {
                    let key = self.byte()?;
                    self.memo_get(key.into())?;
                }
                op::LONG_BINGET => {
                    let key = self.u32()?;
                    self.memo_get(key.into())?;
                }
                op::GLOBAL => {
                    let module = self.line("GLOBAL")?;
                    let name = self.line("GLOBAL")?;
                    let callable = self.resolve(module, name)?;
                    self.push_node(Node::Callable(callable))?;
                }
                op::STACK_GLOBAL => {
                    let name = self.pop("STACK_GLOBAL")?;
                    let module = self.pop("STACK_GLOBAL")?;
                    let callable = match (self.arena.get(module)?, self.arena.get(name)?) {
                        (Node::Scalar(Value::Str(m)), Node::Scalar(Value::Str(n))) => {
                            self.resolve(m, n)?
                        }
                        _ => return Err(malformed("STACK_GLOBAL needs a module and a name str")),
                    };
                    self.arena.unref(name, self.budget)?;
                    self.arena.unref(module, self.budget)?;
                    self.push_node(Node::Callable(callable))?;
                }
                op::REDUCE => {
                    let args = self.pop("REDUCE")?;
                    let callable = self.pop("REDUCE")?;
                    // The result takes its own references to what it
                    // copies, so the arguments can go.
                    let node = self.reduce(callable, args)?;
                    self.arena.unref(args, self.budget)?;
                    self.arena.unref(callable, self.budget)?;
                    self.push_node(node)?;
                }
                op::BUILD => {
                    let state = self.pop("BUILD")?;
                    let target = self.top("BUILD")?;
                    if !matches!(self.arena.get(target)?, Node::Exception { .. }) {
                        return Err(forbidden(code));
                    }
                    // Python sets an exception's attributes from this dict;
                    // only the class and args travel, so it is dropped.
                    match self.arena.get(state)? {
                        Node::Scalar(Value::Nil) | Node::Dict(_) => {}
                        other => {
                            return Err(malformed(format!(
                                "BUILD state of an exception is a {}",
                                other.describe()
                            )))
                        }
                    }
                    self.arena.unref(state, self.budget)?;
                }
                _ => return Err(forbidden(code)),
            }
        }
    }

    fn stop(&mut self) -> Result<usize, PickleError> {
        if !self.marks.is_empty() {
            return Err(malformed("STOP with a MARK still open"));
        }
        let root = match self.stack.as_slice() {
            [root] => *root,
            stack => {
                return Err(malformed(format!(
                    "STOP with {} values on the stack",
                    stack.len()
                )))
            }
        };
        if self.pos != self.input.len() {
            return Err(PickleError::TrailingBytes);
        }
        Ok(root)
    }

    fn push_str(&mut self, len: u64, opname: &str) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        // CPython writes lone surrogates with "surrogatepass"; a Rust string
        // cannot hold them, so such a str is refused rather than mangled.
        let s = std::str::from_utf8(bytes)
            .map_err(|_| malformed(format!("{opname} is not valid UTF-8")))?;
        self.push_made(s.len(), || Ok(Value::Str(s.to_owned())))
    }

    fn push_bytes(&mut self, len: u64, make: fn(Vec<u8>) -> Value) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        self.push_made(bytes.len(), || Ok(make(bytes.to_vec())))
    }

    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// The next `len` bytes; a length larger than what is left is a
    /// truncation, found before anything of that size exists.
    fn take(&mut self, len: u64) -> Result<&'a [u8], PickleError> {
        let len = usize::try_from(len).map_err(|_| PickleError::Truncated)?;
        if len > self.remaining() {
            return Err(PickleError::Truncated);
        }
        let bytes = self
            .input
            .get(self.pos..self.pos + len)
            .ok_or(PickleError::Truncated)?;
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N as u64)?;
        bytes.try_into().map_err(|_| PickleError::Truncated)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A signed 4-byte length (LONG4, BINSTRING), where negative is invalid.
    fn i32_len(&mut self, opname: &str) -> Result<u64, PickleError> {
        let len = i32::from_le_bytes(self.array()?);
        u64::try_from(len).map_err(|_| malformed(format!("{opname} with a negative length")))
    }

    /// A newline-terminated argument of GLOBAL.
    fn line(&mut self, opname: &str) -> Result<&'a str, PickleError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let line = self.take(end as u64)?;
        self.pos += 1;
        std::str::from_utf8(line).map_err(|_| malformed(format!("{opname} name is not UTF-8")))
    }
}

pub(super) fn forbidden(code: u8) -> PickleError {
    match op::name(code) {
        Some(name) => PickleError::ForbiddenOpcode { name, code },
        None => PickleError::UnknownOpcode(code),
    }
}

fn underflow(code: u8) -> PickleError {
    malformed(format!(
        "stack underflow at {}",
        op::name(code).unwrap_or("an opcode")
    ))
}

/// An int from LONG1/LONG4's little-endian two's complement bytes.
fn int_value(bytes: &[u8]) -> Value {
    let minimal = trim_twos_complement(bytes);
    match twos_complement_to_i128(minimal) {
        Some(i) => Value::Int(i),
        None => Value::BigInt(minimal.to_vec()),
    }
}

/// A Python 2 `str`: text when it is UTF-8 (ASCII included), else bytes.
fn py2_str(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::Str(s.to_owned()),
        Err(_) => Value::Bytes(bytes.to_vec()),
    }
}
