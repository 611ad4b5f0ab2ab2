//! Pickle bytes to a [`Value`] (or, in a reply, a [`Decoded`] exception):
//! the data-only reader.
//!
//! Reading happens in two passes. The first walks the opcodes and builds an
//! arena of nodes in which containers hold the indices of their children;
//! the stack and the memo hold indices too. That keeps Python's reference
//! semantics: the pickler memoizes a list while it is still empty and fills
//! it afterwards, and a shared object comes back through BINGET, so nothing
//! may be copied into the memo. The second pass, at STOP, materializes the
//! root into a [`Value`] tree, which is where depth, size and cycles are
//! checked, because sharing is what lets a small pickle describe a huge or
//! infinite tree.

use std::collections::HashMap;
use std::fmt;

use super::{
    builtin_exception, op, repr, trim_twos_complement, twos_complement_to_i128, Decoded,
    PickleError, PickleLimits,
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
/// exceeds `limits`. Never panics, whatever the input.
pub fn decode_value(input: &[u8], limits: &PickleLimits) -> Result<Value, PickleError> {
    decode(input, limits, false, |builder, root| builder.value(root, 0))
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
    decode(input, limits, true, |builder, root| builder.root(root))
}

/// Both passes: the opcodes into an arena (exceptions allowed or not),
/// then `build` from the arena's root within the limits scaled to the input.
fn decode<T>(
    input: &[u8],
    limits: &PickleLimits,
    allow_exceptions: bool,
    build: impl FnOnce(&mut Builder<'_>, usize) -> Result<T, PickleError>,
) -> Result<T, PickleError> {
    let scaled = limits.for_input(input.len());
    let limits = &scaled;
    let mut reader = Reader {
        input,
        pos: 0,
        limits,
        allow_exceptions,
        arena: Vec::new(),
        work: 0,
        work_cap: limits.max_nodes.saturating_mul(4),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = reader.run()?;
    let mut builder = Builder {
        arena: &reader.arena,
        limits,
        on_path: vec![false; reader.arena.len()],
        seen: vec![false; reader.arena.len()],
        count: 0,
    };
    build(&mut builder, root)
}

/// One object built by the pickle, with children as arena indices.
enum Node {
    /// None, bool, int, float, str, bytes or bytearray.
    Scalar(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
    /// An allowed global, waiting for its REDUCE.
    Callable(Callable),
    /// A builtin exception instance with its args.
    Exception {
        kind: &'static str,
        args: Vec<usize>,
    },
}

impl Node {
    /// What the node is, for error messages.
    fn describe(&self) -> &'static str {
        match self {
            Node::Scalar(Value::Nil) => "None",
            Node::Scalar(Value::Bool(_)) => "bool",
            Node::Scalar(Value::Int(_) | Value::BigInt(_)) => "int",
            Node::Scalar(Value::Float(_)) => "float",
            Node::Scalar(Value::Str(_)) => "str",
            Node::Scalar(Value::Bytes(_)) => "bytes",
            Node::Scalar(Value::ByteArray(_)) => "bytearray",
            Node::Scalar(_) => "value",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
            Node::Callable(_) => "global",
            Node::Exception { .. } => "exception",
        }
    }
}

/// The globals a pickle may name, each accepted in one call shape only.
#[derive(Debug, Clone, Copy)]
enum Callable {
    /// `_codecs.encode(str, "latin1")`: protocol 2's bytes.
    CodecsEncode,
    /// `bytes()`: protocol 2's empty bytes.
    Bytes,
    /// `bytearray()`, `bytearray(bytes)`, `bytearray(str, "latin-1")`.
    ByteArray,
    /// `set()` or `set([items])`.
    Set,
    /// `frozenset()` or `frozenset([items])`.
    FrozenSet,
    /// A builtin exception class, called with its args tuple.
    Exception(&'static str),
}

impl fmt::Display for Callable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Callable::CodecsEncode => f.write_str("_codecs.encode"),
            Callable::Bytes => f.write_str("builtins.bytes"),
            Callable::ByteArray => f.write_str("builtins.bytearray"),
            Callable::Set => f.write_str("builtins.set"),
            Callable::FrozenSet => f.write_str("builtins.frozenset"),
            Callable::Exception(kind) => write!(f, "builtins.{kind}"),
        }
    }
}

fn malformed(msg: impl Into<String>) -> PickleError {
    PickleError::Malformed(msg.into())
}

/// Keeps names from hostile input from making error messages huge.
fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The first pass: opcodes to an arena.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    limits: &'a PickleLimits,
    allow_exceptions: bool,
    arena: Vec<Node>,
    /// Arena nodes plus everything REDUCE copies (child indices, and bytes
    /// in units of 64): what the pass costs beyond the input itself.
    work: usize,
    work_cap: usize,
    stack: Vec<usize>,
    /// Stack lengths at each open MARK; the last one is the fence below
    /// which ordinary opcodes may not pop.
    marks: Vec<usize>,
    /// Keys can be anything up to 2^32 - 1 (LONG_BINPUT), so not a Vec.
    memo: HashMap<u64, usize>,
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
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    // An empty MARK is popped by POP (as CPython does).
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop("POP")?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark("POP_MARK")?;
                }
                op::DUP => {
                    let top = self.top("DUP")?;
                    self.push(top)?;
                }
                op::NONE => self.push_scalar(Value::Nil)?,
                op::NEWTRUE => self.push_scalar(Value::Bool(true))?,
                op::NEWFALSE => self.push_scalar(Value::Bool(false))?,
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
                    self.push_scalar(int_value(bytes))?;
                }
                op::LONG4 => {
                    let len = self.i32_len("LONG4")?;
                    let bytes = self.take(len)?;
                    self.push_scalar(int_value(bytes))?;
                }
                op::BINFLOAT => {
                    let b = self.array::<8>()?;
                    self.push_scalar(Value::Float(f64::from_be_bytes(b)))?;
                }
                op::SHORT_BINUNICODE => {
                    let len = self.byte()?;
                    let s = self.utf8(len.into(), "SHORT_BINUNICODE")?;
                    self.push_scalar(Value::Str(s))?;
                }
                op::BINUNICODE => {
                    let len = self.u32()?;
                    let s = self.utf8(len.into(), "BINUNICODE")?;
                    self.push_scalar(Value::Str(s))?;
                }
                op::BINUNICODE8 => {
                    let len = self.u64()?;
                    let s = self.utf8(len, "BINUNICODE8")?;
                    self.push_scalar(Value::Str(s))?;
                }
                op::SHORT_BINBYTES => {
                    let len = self.byte()?;
                    let b = self.take(len.into())?.to_vec();
                    self.push_scalar(Value::Bytes(b))?;
                }
                op::BINBYTES => {
                    let len = self.u32()?;
                    let b = self.take(len.into())?.to_vec();
                    self.push_scalar(Value::Bytes(b))?;
                }
                op::BINBYTES8 => {
                    let len = self.u64()?;
                    let b = self.take(len)?.to_vec();
                    self.push_scalar(Value::Bytes(b))?;
                }
                op::BYTEARRAY8 => {
                    let len = self.u64()?;
                    let b = self.take(len)?.to_vec();
                    self.push_scalar(Value::ByteArray(b))?;
                }
                op::SHORT_BINSTRING => {
                    let len = self.byte()?;
                    let b = self.take(len.into())?;
                    self.push_scalar(py2_str(b))?;
                }
                op::BINSTRING => {
                    let len = self.i32_len("BINSTRING")?;
                    let b = self.take(len)?;
                    self.push_scalar(py2_str(b))?;
                }
                op::EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
                op::EMPTY_TUPLE => self.push_node(Node::Tuple(Vec::new()))?,
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
                    let pairs = pairs(&items, "DICT")?;
                    self.push_node(Node::Dict(pairs))?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1) + 1;
                    if self.stack.len() < self.fence() + n {
                        return Err(underflow(code));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_node(Node::Tuple(items))?;
                }
                op::APPEND => {
                    let item = self.pop("APPEND")?;
                    let list = self.top("APPEND")?;
                    match self.node_mut(list)? {
                        Node::List(children) => children.push(item),
                        other => {
                            return Err(malformed(format!("APPEND to a {}", other.describe())))
                        }
                    }
                }
                op::APPENDS => {
                    let items = self.pop_mark("APPENDS")?;
                    let list = self.top("APPENDS")?;
                    match self.node_mut(list)? {
                        Node::List(children) => children.extend(items),
                        other => {
                            return Err(malformed(format!("APPENDS to a {}", other.describe())))
                        }
                    }
                }
                op::SETITEM => {
                    let value = self.pop("SETITEM")?;
                    let key = self.pop("SETITEM")?;
                    let dict = self.top("SETITEM")?;
                    match self.node_mut(dict)? {
                        Node::Dict(entries) => entries.push((key, value)),
                        other => {
                            return Err(malformed(format!("SETITEM on a {}", other.describe())))
                        }
                    }
                }
                op::SETITEMS => {
                    let items = self.pop_mark("SETITEMS")?;
                    let new = pairs(&items, "SETITEMS")?;
                    let dict = self.top("SETITEMS")?;
                    match self.node_mut(dict)? {
                        Node::Dict(entries) => entries.extend(new),
                        other => {
                            return Err(malformed(format!("SETITEMS on a {}", other.describe())))
                        }
                    }
                }
                op::ADDITEMS => {
                    let items = self.pop_mark("ADDITEMS")?;
                    let set = self.top("ADDITEMS")?;
                    match self.node_mut(set)? {
                        Node::Set(children) => children.extend(items),
                        other => {
                            return Err(malformed(format!("ADDITEMS to a {}", other.describe())))
                        }
                    }
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
                    let callable = match (self.node(module)?, self.node(name)?) {
                        (Node::Scalar(Value::Str(m)), Node::Scalar(Value::Str(n))) => {
                            self.resolve(m, n)?
                        }
                        _ => return Err(malformed("STACK_GLOBAL needs a module and a name str")),
                    };
                    self.push_node(Node::Callable(callable))?;
                }
                op::REDUCE => {
                    let args = self.pop("REDUCE")?;
                    let callable = self.pop("REDUCE")?;
                    let node = self.reduce(callable, args)?;
                    self.push_node(node)?;
                }
                op::BUILD => {
                    let state = self.pop("BUILD")?;
                    let target = self.top("BUILD")?;
                    if !matches!(self.node(target)?, Node::Exception { .. }) {
                        return Err(forbidden(code));
                    }
                    // Python sets an exception's attributes from this dict;
                    // only the class and args travel, so it is dropped.
                    match self.node(state)? {
                        Node::Scalar(Value::Nil) | Node::Dict(_) => {}
                        other => {
                            return Err(malformed(format!(
                                "BUILD state of an exception is a {}",
                                other.describe()
                            )))
                        }
                    }
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

    fn resolve(&self, module: &str, name: &str) -> Result<Callable, PickleError> {
        let builtins = matches!(module, "builtins" | "__builtin__");
        let callable = match (module, name) {
            ("_codecs", "encode") => Some(Callable::CodecsEncode),
            (_, "bytes") if builtins => Some(Callable::Bytes),
            (_, "bytearray") if builtins => Some(Callable::ByteArray),
            (_, "set") if builtins => Some(Callable::Set),
            (_, "frozenset") if builtins => Some(Callable::FrozenSet),
            _ if builtins || module == "exceptions" => match builtin_exception(name) {
                Some(kind) if self.allow_exceptions => Some(Callable::Exception(kind)),
                Some(kind) => {
                    return Err(PickleError::ExceptionNotAllowed {
                        module: module.to_owned(),
                        name: kind.to_owned(),
                    })
                }
                None => None,
            },
            _ => None,
        };
        callable.ok_or_else(|| PickleError::ForbiddenGlobal {
            module: shorten(module),
            name: shorten(name),
        })
    }

    /// Applies an allowed global to its arguments, accepting only the
    /// argument shapes CPython's pickler writes for it.
    fn reduce(&mut self, callable: usize, args: usize) -> Result<Node, PickleError> {
        let callable = match self.node(callable)? {
            Node::Callable(c) => *c,
            other => {
                return Err(malformed(format!(
                    "REDUCE on a {}, not an allowed global",
                    other.describe()
                )))
            }
        };
        let args = match self.node(args)? {
            Node::Tuple(items) => items,
            other => {
                return Err(malformed(format!(
                    "REDUCE arguments for {callable} are a {}, not a tuple",
                    other.describe()
                )))
            }
        };
        let bad_args = || malformed(format!("unexpected arguments for {callable}"));
        let arg = |i: usize| -> Result<&Node, PickleError> {
            let idx = *args.get(i).ok_or_else(bad_args)?;
            self.node(idx)
        };
        let node = match callable {
            Callable::CodecsEncode if args.len() == 2 => match (arg(0)?, arg(1)?) {
                (Node::Scalar(Value::Str(s)), Node::Scalar(Value::Str(enc))) if is_latin1(enc) => {
                    Node::Scalar(Value::Bytes(latin1(s)?))
                }
                _ => return Err(bad_args()),
            },
            Callable::Bytes if args.is_empty() => Node::Scalar(Value::Bytes(Vec::new())),
            Callable::ByteArray => match args.len() {
                0 => Node::Scalar(Value::ByteArray(Vec::new())),
                1 => match arg(0)? {
                    Node::Scalar(Value::Bytes(b)) => Node::Scalar(Value::ByteArray(b.clone())),
                    _ => return Err(bad_args()),
                },
                2 => match (arg(0)?, arg(1)?) {
                    (Node::Scalar(Value::Str(s)), Node::Scalar(Value::Str(enc)))
                        if is_latin1(enc) =>
                    {
                        Node::Scalar(Value::ByteArray(latin1(s)?))
                    }
                    _ => return Err(bad_args()),
                },
                _ => return Err(bad_args()),
            },
            Callable::Set | Callable::FrozenSet => {
                let items = match args.len() {
                    0 => Vec::new(),
                    1 => match arg(0)? {
                        Node::List(items) => items.clone(),
                        _ => return Err(bad_args()),
                    },
                    _ => return Err(bad_args()),
                };
                if matches!(callable, Callable::Set) {
                    Node::Set(items)
                } else {
                    Node::FrozenSet(items)
                }
            }
            Callable::Exception(kind) => Node::Exception {
                kind,
                args: args.clone(),
            },
            _ => return Err(bad_args()),
        };
        // Charge the copy: one memoized list or str could otherwise be
        // copied by every one of thousands of tiny REDUCEs.
        let copied = match &node {
            Node::Scalar(Value::Bytes(b) | Value::ByteArray(b)) => b.len() / 64,
            Node::Set(items) | Node::FrozenSet(items) => items.len(),
            Node::Exception { args, .. } => args.len(),
            _ => 0,
        };
        self.spend(copied)?;
        Ok(node)
    }

    fn spend(&mut self, units: usize) -> Result<(), PickleError> {
        self.work = self.work.saturating_add(units);
        if self.work > self.work_cap {
            return Err(PickleError::TooManyValues(self.limits.max_nodes));
        }
        Ok(())
    }

    fn node(&self, idx: usize) -> Result<&Node, PickleError> {
        self.arena
            .get(idx)
            .ok_or_else(|| malformed("dangling reference"))
    }

    fn node_mut(&mut self, idx: usize) -> Result<&mut Node, PickleError> {
        self.arena
            .get_mut(idx)
            .ok_or_else(|| malformed("dangling reference"))
    }

    fn push_scalar(&mut self, value: Value) -> Result<(), PickleError> {
        self.push_node(Node::Scalar(value))
    }

    fn push_node(&mut self, node: Node) -> Result<(), PickleError> {
        self.spend(1)?;
        self.arena.push(node);
        self.push(self.arena.len() - 1)
    }

    fn push(&mut self, idx: usize) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_nodes {
            return Err(PickleError::TooManyValues(self.limits.max_nodes));
        }
        self.stack.push(idx);
        Ok(())
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, opname: &str) -> Result<usize, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(malformed(format!("stack underflow at {opname}")));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed(format!("stack underflow at {opname}")))
    }

    fn top(&self, opname: &str) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(&top) if self.stack.len() > self.fence() => Ok(top),
            _ => Err(malformed(format!("stack underflow at {opname}"))),
        }
    }

    fn pop_mark(&mut self, opname: &str) -> Result<Vec<usize>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed(format!("{opname} without a MARK")))?;
        if mark > self.stack.len() {
            return Err(malformed(format!("stack underflow at {opname}")));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top("a memo store")?;
        if !self.memo.contains_key(&key) && self.memo.len() >= self.limits.max_memo {
            return Err(PickleError::MemoLimit(self.limits.max_memo));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let idx = *self
            .memo
            .get(&key)
            .ok_or_else(|| malformed(format!("memo key {key} not found")))?;
        self.push(idx)
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

    fn utf8(&mut self, len: u64, opname: &str) -> Result<String, PickleError> {
        let bytes = self.take(len)?;
        // CPython writes lone surrogates with "surrogatepass"; a Rust string
        // cannot hold them, so such a str is refused rather than mangled.
        String::from_utf8(bytes.to_vec())
            .map_err(|_| malformed(format!("{opname} is not valid UTF-8")))
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

fn forbidden(code: u8) -> PickleError {
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

fn pairs(items: &[usize], opname: &str) -> Result<Vec<(usize, usize)>, PickleError> {
    if items.len() % 2 != 0 {
        return Err(malformed(format!("{opname} with an odd number of items")));
    }
    Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
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

fn is_latin1(encoding: &str) -> bool {
    matches!(encoding, "latin1" | "latin-1" | "latin_1")
}

/// What `_codecs.encode(s, "latin1")` returns: one byte per char below 256.
fn latin1(s: &str) -> Result<Vec<u8>, PickleError> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| malformed("_codecs.encode of a str beyond latin-1"))
}

/// The second pass: arena to a value tree, within the limits.
struct Builder<'a> {
    arena: &'a [Node],
    limits: &'a PickleLimits,
    /// Containers being materialized right now: meeting one again is a
    /// cycle.
    on_path: Vec<bool>,
    /// Scalars already materialized once: a second copy is charged for its
    /// size.
    seen: Vec<bool>,
    count: usize,
}

impl Builder<'_> {
    fn root(&mut self, idx: usize) -> Result<Decoded, PickleError> {
        match self.arena.get(idx) {
            Some(Node::Exception { kind, args }) => {
                self.charge(1)?;
                let args = self.seq(args, 1)?;
                Ok(Decoded::Exception {
                    kind: (*kind).to_owned(),
                    message: repr::message(&args),
                    args,
                })
            }
            _ => Ok(Decoded::Value(self.value(idx, 0)?)),
        }
    }

    fn charge(&mut self, units: usize) -> Result<(), PickleError> {
        self.count = self.count.saturating_add(units);
        if self.count > self.limits.max_nodes {
            return Err(PickleError::TooManyValues(self.limits.max_nodes));
        }
        Ok(())
    }

    /// `depth` counts the containers around this node.
    fn value(&mut self, idx: usize, depth: usize) -> Result<Value, PickleError> {
        let arena = self.arena;
        let node = arena
            .get(idx)
            .ok_or_else(|| malformed("dangling reference"))?;
        self.charge(1)?;
        if let Node::Scalar(value) = node {
            if self.seen.get(idx).copied().unwrap_or(false) {
                let size = match value {
                    Value::Str(s) => s.len(),
                    Value::Bytes(b) | Value::ByteArray(b) | Value::BigInt(b) => b.len(),
                    _ => 0,
                };
                self.charge(size / 64)?;
            } else if let Some(seen) = self.seen.get_mut(idx) {
                *seen = true;
            }
            return Ok(value.clone());
        }
        match node {
            Node::Callable(c) => return Err(malformed(format!("global {c} used as a value"))),
            Node::Exception { .. } => return Err(PickleError::NestedException),
            _ => {}
        }
        if self.on_path.get(idx).copied().unwrap_or(false) {
            return Err(PickleError::Recursive);
        }
        if depth >= self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        if let Some(flag) = self.on_path.get_mut(idx) {
            *flag = true;
        }
        let inner = depth + 1;
        let value = match node {
            Node::List(items) => Value::List(self.seq(items, inner)?),
            Node::Tuple(items) => Value::Tuple(self.seq(items, inner)?),
            Node::Set(items) => Value::Set(self.seq(items, inner)?),
            Node::FrozenSet(items) => Value::FrozenSet(self.seq(items, inner)?),
            Node::Dict(entries) => {
                let mut map = Vec::with_capacity(entries.len());
                for &(k, v) in entries {
                    map.push((self.value(k, inner)?, self.value(v, inner)?));
                }
                Value::Map(map)
            }
            Node::Scalar(_) | Node::Callable(_) | Node::Exception { .. } => {
                return Err(malformed("unexpected node"))
            }
        };
        if let Some(flag) = self.on_path.get_mut(idx) {
            *flag = false;
        }
        Ok(value)
    }

    fn seq(&mut self, items: &[usize], depth: usize) -> Result<Vec<Value>, PickleError> {
        items.iter().map(|&i| self.value(i, depth)).collect()
    }
}
