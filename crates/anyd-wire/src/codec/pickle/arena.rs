//! The objects a pickle builds, before they become a [`Value`]: an arena
//! of nodes whose containers hold the indices of their children, each
//! node with a count of the references to it, so that what a pickle
//! drops (POP, the arguments REDUCE consumed, a memo entry overwritten)
//! is freed at once and its slot used again.
//!
//! This module owns the nodes, their reference counts and what they cost;
//! it does not read opcodes (the reader does) nor build values (the
//! builder does).

use std::fmt;

use super::budget::{heap, held, room, Budget};
use super::PickleError;
use crate::Value;

/// The node every NONE pushes: None has no identity, so one node serves
/// them all, and a NONE costs a stack entry and nothing else.
pub(super) const NONE: usize = 0;
/// The node every NEWTRUE pushes.
pub(super) const TRUE: usize = 1;
/// The node every NEWFALSE pushes.
pub(super) const FALSE: usize = 2;
/// The node every EMPTY_TUPLE pushes: nothing changes a tuple once built.
pub(super) const EMPTY_TUPLE: usize = 3;

/// A reference count that never goes down: the shared nodes above, and a
/// node referenced so often that its count saturated (it is then never
/// freed, which is safe).
const PINNED: u32 = u32::MAX;

/// One object built by the pickle, with children as arena indices.
///
/// 32 bytes: the variants other than `Scalar` fit beside `Value`'s tag,
/// which is why an exception keeps its arguments in a boxed slice.
pub(super) enum Node {
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
        /// The class name, from [`super::BUILTIN_EXCEPTIONS`].
        kind: &'static &'static str,
        args: Box<[usize]>,
    },
    /// A slot given back, and the next free one.
    Free(Option<usize>),
}

impl Node {
    /// What the node is, for error messages.
    pub(super) fn describe(&self) -> &'static str {
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
            Node::Free(_) => "freed object",
        }
    }

    /// The heap bytes the node owns, as charged when they were made.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Node::Scalar(v) => scalar_heap(v),
            Node::List(c) | Node::Tuple(c) | Node::Set(c) | Node::FrozenSet(c) => held(c),
            Node::Dict(entries) => held(entries),
            Node::Exception { args, .. } => heap::<usize>(args.len()),
            Node::Callable(_) | Node::Free(_) => 0,
        }
    }
}

/// The heap bytes of a scalar value: its str, bytes or big int digits.
pub(super) fn scalar_heap(value: &Value) -> usize {
    match value {
        Value::Str(s) => heap::<u8>(s.capacity()),
        Value::Bytes(b) | Value::ByteArray(b) | Value::BigInt(b) => heap::<u8>(b.capacity()),
        _ => 0,
    }
}

/// The globals a pickle may name, each accepted in one call shape only.
#[derive(Debug, Clone, Copy)]
pub(super) enum Callable {
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
    Exception(&'static &'static str),
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

/// Nodes per chunk of the arena. The arena grows a chunk at a time, so it
/// never copies its nodes to grow and never holds more than one chunk
/// it does not use (a `Vec` that doubles would hold up to twice what it
/// uses, and three times while it copies). The first chunk grows by
/// doubling instead, from [`FIRST_CHUNK`] nodes, so that a small pickle
/// takes little.
const CHUNK: usize = 4096;

/// The capacity the first chunk starts with: enough for the requests
/// CPython writes for a call with a few arguments, in one allocation.
const FIRST_CHUNK: usize = 16;

/// Up to [`CHUNK`] nodes and their reference counts.
struct Chunk {
    nodes: Vec<Node>,
    /// How many references each node has, by the node's place.
    refs: Vec<u32>,
}

/// The nodes, their reference counts and the free slots.
///
/// A reference is held by a stack entry, a memo entry or a container's
/// child (an exception's argument included); whoever drops one calls
/// [`Arena::unref`]. Cycles (a list that contains itself) are never
/// freed; they are refused when the value is built, and their nodes
/// stay charged until then.
pub(super) struct Arena {
    /// Nodes 0 to `CHUNK - 1`, the shared ones first.
    first: Chunk,
    /// Node `i` past the first chunk is in `rest[i / CHUNK - 1]`, at
    /// `i % CHUNK`.
    rest: Vec<Chunk>,
    /// Slots used, free ones included.
    len: usize,
    /// The first free slot; each free slot names the next.
    free: Option<usize>,
    /// Nodes whose last reference went, still to be freed: a worklist
    /// rather than recursion, since a chain of containers can be as long
    /// as the input.
    dying: Vec<usize>,
}

impl Arena {
    /// An arena holding the shared nodes ([`NONE`], [`TRUE`], [`FALSE`],
    /// [`EMPTY_TUPLE`]).
    pub(super) fn new(budget: &mut Budget) -> Result<Arena, PickleError> {
        budget.charge(heap::<Node>(FIRST_CHUNK) + heap::<u32>(FIRST_CHUNK))?;
        let mut first = Chunk {
            nodes: Vec::with_capacity(FIRST_CHUNK),
            refs: Vec::with_capacity(FIRST_CHUNK),
        };
        first.nodes.extend([
            Node::Scalar(Value::Nil),
            Node::Scalar(Value::Bool(true)),
            Node::Scalar(Value::Bool(false)),
            Node::Tuple(Vec::new()),
        ]);
        first.refs.extend([PINNED; 4]);
        Ok(Arena {
            len: first.nodes.len(),
            first,
            rest: Vec::new(),
            free: None,
            dying: Vec::new(),
        })
    }

    /// How many slots there are, free ones included: every index is
    /// below this.
    pub(super) fn slots(&self) -> usize {
        self.len
    }

    fn chunk(&self, idx: usize) -> Option<&Chunk> {
        match idx / CHUNK {
            0 => Some(&self.first),
            c => self.rest.get(c - 1),
        }
    }

    fn chunk_mut(&mut self, idx: usize) -> Option<&mut Chunk> {
        match idx / CHUNK {
            0 => Some(&mut self.first),
            c => self.rest.get_mut(c - 1),
        }
    }

    fn slot(&mut self, idx: usize) -> Option<&mut Node> {
        self.chunk_mut(idx)?.nodes.get_mut(idx % CHUNK)
    }

    fn count(&mut self, idx: usize) -> Option<&mut u32> {
        self.chunk_mut(idx)?.refs.get_mut(idx % CHUNK)
    }

    /// The node at `idx`; a freed one is an error.
    pub(super) fn get(&self, idx: usize) -> Result<&Node, PickleError> {
        match self.chunk(idx).and_then(|c| c.nodes.get(idx % CHUNK)) {
            Some(Node::Free(_)) | None => Err(dangling()),
            Some(node) => Ok(node),
        }
    }

    pub(super) fn get_mut(&mut self, idx: usize) -> Result<&mut Node, PickleError> {
        match self.slot(idx) {
            Some(Node::Free(_)) | None => Err(dangling()),
            Some(node) => Ok(node),
        }
    }

    /// Stores `node`, whose heap bytes are already charged, in a free slot
    /// or a new one, with no reference yet.
    pub(super) fn add(&mut self, node: Node, budget: &mut Budget) -> Result<usize, PickleError> {
        if let Some(idx) = self.free {
            let slot = self.slot(idx).ok_or_else(dangling)?;
            let Node::Free(next) = std::mem::replace(slot, node) else {
                return Err(dangling());
            };
            self.free = next;
            if let Some(count) = self.count(idx) {
                *count = 0;
            }
            return Ok(idx);
        }
        let idx = self.len;
        if idx / CHUNK > self.rest.len() {
            room(budget, &mut self.rest, 1)?;
            budget.charge(heap::<Node>(CHUNK) + heap::<u32>(CHUNK))?;
            self.rest.push(Chunk {
                nodes: Vec::with_capacity(CHUNK),
                refs: Vec::with_capacity(CHUNK),
            });
        }
        let chunk = self.chunk_mut(idx).ok_or_else(dangling)?;
        // Only the first chunk ever grows here.
        room(budget, &mut chunk.nodes, 1)?;
        room(budget, &mut chunk.refs, 1)?;
        chunk.nodes.push(node);
        chunk.refs.push(0);
        self.len += 1;
        Ok(idx)
    }

    /// Counts one more reference to `idx`.
    pub(super) fn add_ref(&mut self, idx: usize) {
        if let Some(count) = self.count(idx) {
            *count = count.saturating_add(1);
        }
    }

    /// Drops one reference to `idx`, freeing it, and then whatever only
    /// it referenced, when that was the last.
    pub(super) fn unref(&mut self, idx: usize, budget: &mut Budget) -> Result<(), PickleError> {
        if !self.drop_count(idx) {
            return Ok(());
        }
        room(budget, &mut self.dying, 1)?;
        self.dying.push(idx);
        while let Some(idx) = self.dying.pop() {
            let free = self.free;
            let slot = self.slot(idx).ok_or_else(dangling)?;
            let node = std::mem::replace(slot, Node::Free(free));
            self.free = Some(idx);
            budget.release(node.heap_bytes());
            let children: &[usize] = match &node {
                Node::List(c) | Node::Tuple(c) | Node::Set(c) | Node::FrozenSet(c) => c,
                Node::Exception { args, .. } => args,
                Node::Dict(entries) => {
                    for &(k, v) in entries {
                        self.dying_child(k, budget)?;
                        self.dying_child(v, budget)?;
                    }
                    &[]
                }
                Node::Scalar(_) | Node::Callable(_) | Node::Free(_) => &[],
            };
            for &child in children {
                self.dying_child(child, budget)?;
            }
        }
        Ok(())
    }

    /// Drops the reference a dying node held to `child`, queueing the
    /// child when that was its last.
    fn dying_child(&mut self, child: usize, budget: &mut Budget) -> Result<(), PickleError> {
        if self.drop_count(child) {
            room(budget, &mut self.dying, 1)?;
            self.dying.push(child);
        }
        Ok(())
    }

    /// Takes one off the count of `idx`; true when that was the last.
    fn drop_count(&mut self, idx: usize) -> bool {
        match self.count(idx) {
            Some(&mut PINNED) | Some(0) | None => false,
            Some(count) => {
                *count -= 1;
                *count == 0
            }
        }
    }
}

pub(super) fn dangling() -> PickleError {
    PickleError::Malformed("dangling reference".to_owned())
}
