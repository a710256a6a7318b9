//! The safe unpickler: an iterative stack machine that builds a [`Value`] tree
//! and never runs or imports anything.
//!
//! The memo (and how a container memoized before it is filled is seen
//! full) is in the `memo` module.
//!
//! Builtin calls (`builtins.set([..])`, `_codecs.encode(..)`...) become
//! native values when they leave the stack (into a container, the memo, or
//! as the result), not at `REDUCE`: only then is it known that no `BUILD`,
//! `APPEND` or `SETITEM` was applied to them.

use crate::bigint::parse_decimal;
use crate::builtins::native_value;
use crate::memo::{Memo, MemoEntry};
use crate::op::{parse_op, Op, TextInt};
use crate::{BigInt, Construct, Error, ErrorKind, Global, Object, Value};

/// Bounds on what the unpickler will build.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum nesting depth of containers (and of open `MARK`s). Keep it
    /// modest: dropping a value recurses once per level.
    pub max_depth: usize,
    /// Maximum number of memo entries.
    pub max_memo: usize,
    /// Maximum number of values built in total (a memo `GET` or `DUP`
    /// counts every value it copies, and a copied `str`, `bytes` or `int`
    /// one more per 32 bytes of payload). Copies are what lets a small
    /// pickle build a large tree, so this bounds memory: about 100 bytes
    /// per value at worst (a tree of one-item tuples), plus the input's own
    /// payloads.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 1000,
            max_memo: 1 << 24,
            // A copy bomb (DUP / GET of a growing tree) stops near 2^23
            // values of 32 bytes plus their allocations: under 1 GiB.
            max_elements: 1 << 23,
        }
    }
}

/// Unpickles a whole stream with the default [`Limits`].
pub fn loads(data: &[u8]) -> Result<Value, Error> {
    loads_with(data, &Limits::default())
}

/// Unpickles a whole stream within `limits`. Bytes after `STOP` are ignored,
/// as Python does.
///
/// Every global stays a [`Value::Global`], every constructed object an
/// [`Object`] node. `PERSID`, `BINPERSID`, `EXT1/2/4`, `NEXT_BUFFER` and
/// `READONLY_BUFFER` are errors. Protocol 0-2 strings (`STRING`,
/// `BINSTRING`, `SHORT_BINSTRING`) give [`Value::Str`] when ASCII and
/// [`Value::Bytes`] otherwise.
///
/// The `REDUCE` forms that CPython writes for `bytes` (`_codecs.encode`),
/// `bytearray`, `set` and `frozenset` at protocols 0 to 4 give the native
/// [`Value::Bytes`], [`Value::ByteArray`], [`Value::Set`] and
/// [`Value::FrozenSet`] when they are exactly such a call and nothing is
/// applied to them afterwards (see the crate docs); every other `REDUCE`
/// stays an [`Object`] node.
pub fn loads_with(data: &[u8], limits: &Limits) -> Result<Value, Error> {
    run_machine(data, limits, End::Stop)
}

/// Loads an entry's value bytes: ops that leave exactly one value, with no
/// `STOP` and no `MARK` left open, ending at the end of `data`.
///
/// Appending a `STOP` and calling [`loads_with`] would accept bytes that
/// hold a `STOP` (the rest ignored) or leave extra items on the stack, which
/// `pickle.load` of the whole file reads as something other than the dict.
pub(crate) fn load_value_bytes(data: &[u8], limits: &Limits) -> Result<Value, Error> {
    run_machine(data, limits, End::EndOfInput)
}

/// Runs a fresh machine over `data` until `end`.
fn run_machine(data: &[u8], limits: &Limits, end: End) -> Result<Value, Error> {
    let mut machine = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::new(data, limits.max_memo),
        limits,
        elements: 0,
        opcode: "",
    };
    machine.run(data, end)
}

/// Where a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At `STOP`, as a whole pickle does.
    Stop,
    /// At the end of the input, which must leave exactly one value (entry value bytes).
    EndOfInput,
}

// The opcodes that [`Machine::fast_step`] runs.
use crate::opcode::{name, BININT, BININT1, BININT2, BINUNICODE, MARK, MEMOIZE, SHORT_BINUNICODE};

/// `taint` of a slot that refers to no open container.
const NO_TAINT: usize = usize::MAX;

/// A value on the stack with what the checks need to know about it.
#[derive(Debug)]
struct Slot {
    value: Value,
    /// Nesting depth of `value` (0 for a scalar).
    depth: usize,
    /// Lowest stack position of an open container that `value` holds a copy of.
    taint: usize,
}

impl Slot {
    fn scalar(value: Value) -> Self {
        Slot {
            value,
            depth: 0,
            taint: NO_TAINT,
        }
    }
}

/// Number of nodes in `value` (iterative: no recursion on depth).
fn node_count(value: &Value) -> usize {
    let mut count = 0usize;
    let mut todo = vec![value];
    while let Some(value) = todo.pop() {
        // A payload counts too: copies of one long `bytes` would escape a count of nodes.
        count = count.saturating_add(1 + payload_len(value) / PAYLOAD_BYTES_PER_ELEMENT);
        match value {
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => {
                todo.extend(items.iter());
            }
            Value::Dict(pairs) => todo.extend(pairs.iter().flat_map(|(k, v)| [k, v])),
            Value::Object(object) => {
                todo.push(&object.callable);
                todo.extend(object.args.iter());
                todo.extend(object.kwargs.iter().flat_map(|(k, v)| [k, v]));
                todo.extend(object.list_items.iter());
                todo.extend(object.dict_items.iter().flat_map(|(k, v)| [k, v]));
                todo.extend(object.state.iter());
            }
            _ => {}
        }
    }
    count
}

/// Payload bytes that count as one more element against `max_elements`.
const PAYLOAD_BYTES_PER_ELEMENT: usize = 32;

/// Heap bytes a value holds outside its children.
fn payload_len(value: &Value) -> usize {
    match value {
        Value::Str(text) => text.len(),
        Value::Bytes(bytes) | Value::ByteArray(bytes) => bytes.len(),
        Value::BigInt(big) => big.to_le_bytes().len(),
        Value::Global(global) => global.module.len() + global.name.len(),
        _ => 0,
    }
}

/// Appends alternating keys and values (`item_count` of them, even) as pairs.
fn push_pairs(
    pairs: &mut Vec<(Value, Value)>,
    mut values: impl Iterator<Item = Value>,
    item_count: usize,
) {
    pairs.reserve(item_count / 2);
    while let (Some(key), Some(value)) = (values.next(), values.next()) {
        pairs.push((key, value));
    }
}

/// Whether ops can change `value` after it was memoized.
fn is_mutable_container(value: &Value) -> bool {
    matches!(
        value,
        Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::Object(_)
    )
}

/// A string argument of a protocol 0-2 `STRING` op: `str` when ASCII.
fn old_string(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) if bytes.is_ascii() => Value::Str(text.to_owned()),
        _ => Value::Bytes(bytes.to_vec()),
    }
}

struct Machine<'l> {
    stack: Vec<Slot>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: Memo,
    limits: &'l Limits,
    elements: usize,
    /// Name of the op being run, for errors.
    opcode: &'static str,
}

impl Machine<'_> {
    fn run(&mut self, data: &[u8], end: End) -> Result<Value, Error> {
        let mut offset = 0;
        loop {
            let rest = data.get(offset..).unwrap_or_default();
            if end == End::EndOfInput && rest.is_empty() {
                return self
                    .finish_value()
                    .map_err(|kind| Error::new(kind, offset as u64));
            }
            match self.fast_step(rest) {
                Ok(Some(used)) => {
                    offset += used;
                    continue;
                }
                Ok(None) => {}
                Err(kind) => return Err(Error::new(kind, offset as u64)),
            }
            let (op, used) = parse_op(rest).map_err(|error| error.shifted(offset as u64))?;
            if end == End::EndOfInput && matches!(op, Op::Stop) {
                return Err(Error::new(
                    ErrorKind::BadEntryValue {
                        problem: "a STOP inside the value bytes",
                    },
                    offset as u64,
                ));
            }
            self.opcode = rest.first().map_or("?", |&code| name(code));
            let after = offset + used;
            match self.step(op, data.len() - after) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(kind) => return Err(Error::new(kind, offset as u64)),
            }
            offset = after;
        }
    }

    /// Runs the first op of `rest` if it is one of the ops that big pickles
    /// are made of (a string, `MEMOIZE`, a small int, `MARK`) and is
    /// well-formed, without building an [`Op`]; gives the bytes it used.
    /// `None`: [`step`](Self::step) runs it (and reports what is wrong).
    #[inline]
    fn fast_step(&mut self, rest: &[u8]) -> Result<Option<usize>, ErrorKind> {
        let used = match *rest {
            [SHORT_BINUNICODE, length, ref tail @ ..] => {
                let length = usize::from(length);
                let Some(Ok(text)) = tail.get(..length).map(std::str::from_utf8) else {
                    return Ok(None);
                };
                self.opcode = const { name(SHORT_BINUNICODE) };
                self.push_scalar(Value::Str(text.to_owned()))?;
                2 + length
            }
            [BINUNICODE, b0, b1, b2, b3, ref tail @ ..] => {
                let Ok(length) = usize::try_from(u32::from_le_bytes([b0, b1, b2, b3])) else {
                    return Ok(None);
                };
                let Some(Ok(text)) = tail.get(..length).map(std::str::from_utf8) else {
                    return Ok(None);
                };
                self.opcode = const { name(BINUNICODE) };
                self.push_scalar(Value::Str(text.to_owned()))?;
                5 + length
            }
            [MEMOIZE, ..] => {
                self.opcode = const { name(MEMOIZE) };
                self.put(self.memo.next_index())?;
                1
            }
            [BININT1, byte, ..] => {
                self.opcode = const { name(BININT1) };
                self.push_scalar(Value::Int(byte.into()))?;
                2
            }
            [BININT2, b0, b1, ..] => {
                self.opcode = const { name(BININT2) };
                self.push_scalar(Value::Int(u16::from_le_bytes([b0, b1]).into()))?;
                3
            }
            [BININT, b0, b1, b2, b3, ..] => {
                self.opcode = const { name(BININT) };
                self.push_scalar(Value::Int(i32::from_le_bytes([b0, b1, b2, b3]).into()))?;
                5
            }
            [MARK, ..] => {
                self.opcode = const { name(MARK) };
                self.mark()?;
                1
            }
            _ => return Ok(None),
        };
        Ok(Some(used))
    }

    /// The one value that entry value bytes must leave at their end.
    fn finish_value(&mut self) -> Result<Value, ErrorKind> {
        let problem = match (self.marks.len(), self.stack.len()) {
            (0, 1) => return self.pop().map(|slot| slot.value),
            (0, 0) => "no value",
            (0, _) => "more than one value on the stack",
            _ => "a MARK left open",
        };
        Err(ErrorKind::BadEntryValue { problem })
    }

    fn mark(&mut self) -> Result<(), ErrorKind> {
        if self.marks.len() >= self.limits.max_depth {
            return Err(self.limit("max_depth", self.limits.max_depth));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// Runs one op; `Some` at `STOP`. `remaining` is the input after the op.
    fn step(&mut self, op: Op<'_>, remaining: usize) -> Result<Option<Value>, ErrorKind> {
        match op {
            Op::Stop => return self.pop().map(|slot| Some(slot.value)),
            Op::Proto(version) => {
                if version > 5 {
                    return Err(self.bad("a protocol from 0 to 5"));
                }
            }
            Op::Frame(length) => {
                // As CPython's C loader: the frame must be in the input; ops may cross its end.
                if length > remaining as u64 {
                    return Err(ErrorKind::LengthTooLarge {
                        opcode: self.opcode,
                        length,
                        available: remaining,
                    });
                }
            }
            Op::Mark => self.mark()?,
            Op::Pop => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            Op::PopMark => {
                let mark = self.pop_mark()?;
                self.settle(mark)?;
                self.stack.truncate(mark);
            }
            Op::Dup => {
                let top = self.peek(1)?;
                let position = self.stack.len() - 1;
                // In Python both are one object: the copy refers to the open original.
                let taint = if is_mutable_container(&top.value) {
                    top.taint.min(position)
                } else {
                    top.taint
                };
                let (value, depth) = (top.value.clone(), top.depth);
                self.charge(node_count(&value))?;
                self.stack.push(Slot {
                    value,
                    depth,
                    taint,
                });
            }
            Op::Float(value) | Op::BinFloat(value) => self.push_scalar(Value::Float(value))?,
            Op::Int(TextInt::Bool(flag)) => self.push_scalar(Value::Bool(flag))?,
            Op::Int(TextInt::Decimal(text)) | Op::Long(text) => {
                let value = parse_decimal(text).ok_or_else(|| self.bad("at most 4300 digits"))?;
                self.push_scalar(value)?;
            }
            Op::BinInt(value) => self.push_scalar(Value::Int(value.into()))?,
            Op::BinInt1(value) => self.push_scalar(Value::Int(value.into()))?,
            Op::BinInt2(value) => self.push_scalar(Value::Int(value.into()))?,
            Op::Long1(bytes) | Op::Long4(bytes) => {
                self.push_scalar(BigInt::value_from_le_bytes(bytes))?;
            }
            Op::None => self.push_scalar(Value::None)?,
            Op::NewTrue => self.push_scalar(Value::Bool(true))?,
            Op::NewFalse => self.push_scalar(Value::Bool(false))?,
            Op::PersId(_) | Op::BinPersId => {
                return Err(self.unsupported("persistent ids need a persistent_load callback"));
            }
            Op::Ext1(_) | Op::Ext2(_) | Op::Ext4(_) => {
                return Err(self.unsupported("extension codes need copyreg's extension registry"));
            }
            Op::NextBuffer | Op::ReadonlyBuffer => {
                return Err(self.unsupported("out-of-band buffers were not given"));
            }
            Op::String(bytes) => self.push_scalar(old_string(&bytes))?,
            Op::BinString(bytes) | Op::ShortBinString(bytes) => {
                self.push_scalar(old_string(bytes))?;
            }
            Op::Unicode(text) => self.push_scalar(Value::Str(text.into_owned()))?,
            Op::BinUnicode(text) | Op::ShortBinUnicode(text) | Op::BinUnicode8(text) => {
                self.push_scalar(Value::Str(text.to_owned()))?;
            }
            Op::BinBytes(bytes) | Op::ShortBinBytes(bytes) | Op::BinBytes8(bytes) => {
                self.push_scalar(Value::Bytes(bytes.to_vec()))?;
            }
            Op::ByteArray8(bytes) => self.push_scalar(Value::ByteArray(bytes.to_vec()))?,
            Op::EmptyList => self.push_container(Value::List(Vec::new()))?,
            Op::EmptyDict => self.push_container(Value::Dict(Vec::new()))?,
            Op::EmptySet => self.push_container(Value::Set(Vec::new()))?,
            Op::EmptyTuple => self.push_container(Value::Tuple(Vec::new()))?,
            Op::List | Op::Tuple | Op::FrozenSet | Op::Dict => {
                let mark = self.pop_mark()?;
                let (items, depth, taint) = self.drain_from(mark)?;
                let value = match op {
                    Op::List => Value::List(items),
                    Op::Tuple => Value::Tuple(items),
                    Op::FrozenSet => Value::FrozenSet(items),
                    _ => Value::Dict(self.pairs(items)?),
                };
                self.push_built(value, depth, taint)?;
            }
            Op::Tuple1 | Op::Tuple2 | Op::Tuple3 => {
                let count = match op {
                    Op::Tuple1 => 1,
                    Op::Tuple2 => 2,
                    _ => 3,
                };
                self.peek(count)?;
                let start = self.stack.len() - count;
                let (items, depth, taint) = self.drain_from(start)?;
                self.push_built(Value::Tuple(items), depth, taint)?;
            }
            Op::Append | Op::SetItem => {
                let count = if matches!(op, Op::Append) { 1 } else { 2 };
                self.peek(count + 1)?;
                let start = self.stack.len() - count;
                self.fill(start - 1, start, &op)?;
            }
            Op::Appends | Op::SetItems | Op::AddItems => {
                let mark = self.pop_mark()?;
                let target = mark.checked_sub(1).ok_or(ErrorKind::StackUnderflow {
                    opcode: self.opcode,
                })?;
                self.fill(target, mark, &op)?;
            }
            Op::Get(index) => self.get(index)?,
            Op::BinGet(index) => self.get(index.into())?,
            Op::LongBinGet(index) => self.get(index.into())?,
            Op::Put(index) => self.put(index)?,
            Op::BinPut(index) => self.put(index.into())?,
            Op::LongBinPut(index) => self.put(index.into())?,
            Op::Memoize => self.put(self.memo.next_index())?,
            // Architecture invariant: nothing is run or imported; a global stays a
            // (module, name) pair, and REDUCE, BUILD and NEWOBJ stay object nodes.
            Op::Global { module, name } => {
                self.push_scalar(Value::Global(Global::new(module, name)))?;
            }
            Op::StackGlobal => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module.value, name.value) {
                    (Value::Str(module), Value::Str(name)) => {
                        self.push_scalar(Value::Global(Global { module, name }))?;
                    }
                    (module, name) => {
                        let found = if matches!(module, Value::Str(_)) {
                            name.kind_name()
                        } else {
                            module.kind_name()
                        };
                        return Err(self.wrong_type("two str", found));
                    }
                }
            }
            Op::Reduce | Op::NewObj => {
                self.peek(2)?;
                let start = self.stack.len() - 2;
                let (mut items, depth, taint) = self.drain_from(start)?;
                let args = self.tuple_items(items.pop())?;
                let callable = items.pop().unwrap_or(Value::None);
                let construct = if matches!(op, Op::Reduce) {
                    Construct::Reduce
                } else {
                    Construct::NewObj
                };
                let value = Value::Object(Box::new(Object::new(construct, callable, args)));
                self.push_built(value, depth, taint)?;
            }
            Op::NewObjEx => {
                self.peek(3)?;
                let start = self.stack.len() - 3;
                let (mut items, depth, taint) = self.drain_from(start)?;
                let kwargs = match items.pop() {
                    Some(Value::Dict(pairs)) => pairs,
                    other => {
                        return Err(self.wrong_type(
                            "a dict",
                            other.as_ref().map_or("nothing", Value::kind_name),
                        ))
                    }
                };
                let args = self.tuple_items(items.pop())?;
                let callable = items.pop().unwrap_or(Value::None);
                let mut object = Object::new(Construct::NewObjEx, callable, args);
                object.kwargs = kwargs;
                self.push_built(Value::Object(Box::new(object)), depth, taint)?;
            }
            Op::Inst { module, name } => {
                let mark = self.pop_mark()?;
                let (args, depth, taint) = self.drain_from(mark)?;
                let callable = Value::Global(Global::new(module, name));
                let object = Object::new(Construct::Inst, callable, args);
                self.push_built(Value::Object(Box::new(object)), depth, taint)?;
            }
            Op::Obj => {
                let mark = self.pop_mark()?;
                let (mut items, depth, taint) = self.drain_from(mark)?;
                if items.is_empty() {
                    return Err(ErrorKind::StackUnderflow {
                        opcode: self.opcode,
                    });
                }
                let callable = items.remove(0);
                let object = Object::new(Construct::Obj, callable, items);
                self.push_built(Value::Object(Box::new(object)), depth, taint)?;
            }
            Op::Build => {
                let state = self.pop()?;
                self.peek(1)?;
                let target = self.stack.len() - 1;
                self.absorb(target, state.depth, state.taint)?;
                let opcode = self.opcode;
                match self.stack.get_mut(target).map(|slot| &mut slot.value) {
                    Some(Value::Object(object)) if object.state.is_none() => {
                        object.state = Some(state.value);
                    }
                    Some(Value::Object(_)) => {
                        return Err(ErrorKind::Unsupported {
                            opcode,
                            reason: "a second BUILD on one object",
                        })
                    }
                    other => {
                        let found = other.map_or("nothing", |value| value.kind_name());
                        return Err(self.wrong_type("an object", found));
                    }
                }
            }
        }
        Ok(None)
    }

    fn bad(&self, expected: &'static str) -> ErrorKind {
        ErrorKind::BadArgument {
            opcode: self.opcode,
            expected,
        }
    }

    fn limit(&self, limit: &'static str, max: usize) -> ErrorKind {
        ErrorKind::LimitExceeded { limit, max }
    }

    fn unsupported(&self, reason: &'static str) -> ErrorKind {
        ErrorKind::Unsupported {
            opcode: self.opcode,
            reason,
        }
    }

    fn wrong_type(&self, expected: &'static str, found: &'static str) -> ErrorKind {
        ErrorKind::WrongType {
            opcode: self.opcode,
            expected,
            found,
        }
    }

    /// The lowest stack position that ops may touch: the last mark.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Counts `count` new values against `max_elements`.
    fn charge(&mut self, count: usize) -> Result<(), ErrorKind> {
        self.elements = self.elements.saturating_add(count);
        if self.elements > self.limits.max_elements {
            return Err(self.limit("max_elements", self.limits.max_elements));
        }
        Ok(())
    }

    fn push_scalar(&mut self, value: Value) -> Result<(), ErrorKind> {
        self.charge(1)?;
        self.stack.push(Slot::scalar(value));
        Ok(())
    }

    fn push_container(&mut self, value: Value) -> Result<(), ErrorKind> {
        self.push_built(value, 0, NO_TAINT)
    }

    /// Pushes a container whose items had `item_depth` at most.
    fn push_built(
        &mut self,
        value: Value,
        item_depth: usize,
        taint: usize,
    ) -> Result<(), ErrorKind> {
        self.charge(1)?;
        let depth = item_depth + 1;
        if depth > self.limits.max_depth {
            return Err(self.limit("max_depth", self.limits.max_depth));
        }
        self.stack.push(Slot {
            value,
            depth,
            taint,
        });
        Ok(())
    }

    /// The `count`-th value from the top, which must be above the fence.
    fn peek(&self, count: usize) -> Result<&Slot, ErrorKind> {
        let underflow = ErrorKind::StackUnderflow {
            opcode: self.opcode,
        };
        let position = self
            .stack
            .len()
            .checked_sub(count)
            .ok_or(underflow.clone())?;
        if position < self.fence() {
            return Err(underflow);
        }
        self.stack.get(position).ok_or(underflow)
    }

    fn pop(&mut self) -> Result<Slot, ErrorKind> {
        self.peek(1)?;
        self.settle(self.stack.len() - 1)?;
        let slot = self.stack.pop().ok_or(ErrorKind::StackUnderflow {
            opcode: self.opcode,
        })?;
        Ok(Slot {
            value: native_value(slot.value),
            ..slot
        })
    }

    fn pop_mark(&mut self) -> Result<usize, ErrorKind> {
        self.marks.pop().ok_or(ErrorKind::MissingMark {
            opcode: self.opcode,
        })
    }

    /// Removes the values from `start` up: their values, the largest depth
    /// and the lowest taint below `start` (taints at or above it are resolved).
    fn drain_from(&mut self, start: usize) -> Result<(Vec<Value>, usize, usize), ErrorKind> {
        self.settle(start)?;
        let mut depth = 0;
        let mut taint = NO_TAINT;
        let values = self
            .stack
            .drain(start..)
            .map(|slot| {
                depth = depth.max(slot.depth);
                if slot.taint < start {
                    taint = taint.min(slot.taint);
                }
                native_value(slot.value)
            })
            .collect();
        Ok((values, depth, taint))
    }

    /// Copies into the memo every pending container at position `start` or above,
    /// as they are about to leave the stack.
    fn settle(&mut self, start: usize) -> Result<(), ErrorKind> {
        while let Some((position, index)) = self.memo.take_pending(start) {
            let Some(slot) = self.stack.get(position) else {
                continue;
            };
            let count = node_count(&slot.value);
            let entry = MemoEntry::Ready {
                value: native_value(slot.value.clone()),
                depth: slot.depth,
            };
            self.charge(count)?;
            self.memo.set(index, Some(entry))?;
        }
        Ok(())
    }

    /// Checks that putting an item of `item_depth` / `item_taint` into the
    /// container at `target` keeps within the limits and makes no cycle.
    fn absorb(
        &mut self,
        target: usize,
        item_depth: usize,
        item_taint: usize,
    ) -> Result<(), ErrorKind> {
        let opcode = self.opcode;
        let max_depth = self.limits.max_depth;
        let slot = self
            .stack
            .get_mut(target)
            .ok_or(ErrorKind::StackUnderflow { opcode })?;
        if item_taint == target {
            return Err(ErrorKind::Recursive { opcode });
        }
        if item_taint < target {
            slot.taint = slot.taint.min(item_taint);
        }
        slot.depth = slot.depth.max(item_depth + 1);
        if slot.depth > max_depth {
            return Err(ErrorKind::LimitExceeded {
                limit: "max_depth",
                max: max_depth,
            });
        }
        Ok(())
    }

    fn target_value(&mut self, target: usize) -> Result<&mut Value, ErrorKind> {
        let opcode = self.opcode;
        self.stack
            .get_mut(target)
            .map(|slot| &mut slot.value)
            .ok_or(ErrorKind::StackUnderflow { opcode })
    }

    /// Moves the values from `start` up into the container at `target`:
    /// `APPEND(S)` into a list (or an object's `list_items`), `SETITEM(S)`
    /// into a dict (or an object's `dict_items`), `ADDITEMS` into a set.
    fn fill(&mut self, target: usize, start: usize, op: &Op<'_>) -> Result<(), ErrorKind> {
        self.settle(start)?;
        let items = self.stack.get(start..).unwrap_or_default();
        let mut depth = 0;
        let mut taint = NO_TAINT;
        for slot in items {
            depth = depth.max(slot.depth);
            if slot.taint < start {
                taint = taint.min(slot.taint);
            }
        }
        let item_count = items.len();
        if matches!(op, Op::SetItems) && item_count % 2 != 0 {
            return Err(self.bad("an even number of keys and values"));
        }
        self.absorb(target, depth, taint)?;
        // The container leaves its slot while the items move, so that both can be borrowed.
        let mut container = std::mem::replace(self.target_value(target)?, Value::None);
        let expected = {
            let values = self
                .stack
                .drain(start..)
                .map(|slot| native_value(slot.value));
            match (op, &mut container) {
                (Op::Append | Op::Appends, Value::List(list)) => {
                    list.extend(values);
                    None
                }
                (Op::Append | Op::Appends, Value::Object(object)) => {
                    object.list_items.extend(values);
                    None
                }
                (Op::SetItem | Op::SetItems, Value::Dict(pairs)) => {
                    push_pairs(pairs, values, item_count);
                    None
                }
                (Op::SetItem | Op::SetItems, Value::Object(object)) => {
                    push_pairs(&mut object.dict_items, values, item_count);
                    None
                }
                (Op::AddItems, Value::Set(set)) => {
                    set.extend(values);
                    None
                }
                (Op::Append | Op::Appends, _) => Some("a list or an object"),
                (Op::SetItem | Op::SetItems, _) => Some("a dict or an object"),
                _ => Some("a set"),
            }
        };
        let found = container.kind_name();
        *self.target_value(target)? = container;
        match expected {
            None => Ok(()),
            Some(expected) => Err(self.wrong_type(expected, found)),
        }
    }

    /// Pairs up alternating keys and values.
    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, ErrorKind> {
        if items.len() % 2 != 0 {
            return Err(self.bad("an even number of keys and values"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut iter = items.into_iter();
        while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    fn tuple_items(&self, value: Option<Value>) -> Result<Vec<Value>, ErrorKind> {
        match value {
            Some(Value::Tuple(items)) => Ok(items),
            other => Err(self.wrong_type(
                "a tuple of arguments",
                other.as_ref().map_or("nothing", Value::kind_name),
            )),
        }
    }

    fn get(&mut self, index: u64) -> Result<(), ErrorKind> {
        let missing = ErrorKind::MemoMissing {
            opcode: self.opcode,
            index,
        };
        let (value, depth, taint) = match self.memo.get(index) {
            Some(MemoEntry::Ready { value, depth }) => (value, *depth, NO_TAINT),
            Some(MemoEntry::Pending { position }) => {
                let slot = self.stack.get(*position).ok_or(missing)?;
                (&slot.value, slot.depth, *position)
            }
            None => return Err(missing),
        };
        let count = node_count(value);
        let value = value.clone();
        self.charge(count)?;
        self.stack.push(Slot {
            value,
            depth,
            taint,
        });
        Ok(())
    }

    /// `PUT` (and `MEMOIZE`, at the next index) with its common case inline: a
    /// value that no `GET` reads only grows the count.
    #[inline]
    fn put(&mut self, index: u64) -> Result<(), ErrorKind> {
        if self.stack.len() > self.fence() && self.memo.set_unread_fast(index) {
            return Ok(());
        }
        self.store(index)
    }

    /// Stores the top value at memo `index`: a copy if some `GET` reads it,
    /// a reference to its slot while it is a container that ops may still fill.
    fn store(&mut self, index: u64) -> Result<(), ErrorKind> {
        let top = self.peek(1)?;
        self.memo.check_room(index)?;
        let position = self.stack.len() - 1;
        let entry = if !self.memo.is_read(index) {
            None
        } else if is_mutable_container(&top.value) {
            Some(MemoEntry::Pending { position })
        } else {
            let count = node_count(&top.value);
            let entry = MemoEntry::Ready {
                value: top.value.clone(),
                depth: top.depth,
            };
            self.charge(count)?;
            Some(entry)
        };
        self.memo.set(index, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursive_list_is_an_error() {
        // l = []; l.append(l); pickle.dumps(l, 4)
        let error = loads(b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00]\x94h\x00a.").unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Recursive { opcode: "APPEND" });
    }

    #[test]
    fn dup_of_a_list_appended_to_itself_is_recursive() {
        let error = loads(b"]2a.").unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Recursive { opcode: "APPEND" });
        assert_eq!(
            loads(b"K\x012\x86."),
            Ok(Value::Tuple(vec![Value::Int(1), Value::Int(1)]))
        );
    }

    #[test]
    fn pop_takes_a_mark_first() {
        assert_eq!(loads(b"K\x01(0."), Ok(Value::Int(1)));
    }

    // The ops that `fast_step` runs load as `step` would, and their bad
    // forms give `step`'s errors, at the op's offset.
    #[test]
    fn fast_ops_match_the_general_path() {
        let stream = b"(\x8c\x01aX\x02\x00\x00\x00\xc3\xa9K\xffM\xff\xffJ\xfe\xff\xff\xff\x94t.";
        let expected = Value::tuple([
            Value::from("a"),
            Value::from("\u{e9}"),
            Value::Int(255),
            Value::Int(65535),
            Value::Int(-2),
        ]);
        assert_eq!(loads(stream), Ok(expected));
        let error_at = |data: &[u8]| loads(data).map_err(|e| (e.kind().clone(), e.offset()));
        let bad_utf8 = ErrorKind::BadArgument {
            opcode: "SHORT_BINUNICODE",
            expected: "UTF-8 text",
        };
        assert_eq!(error_at(b"N\x8c\x01\xff."), Err((bad_utf8, 1)));
        assert!(matches!(error_at(b"N\x8c\x05ab"), Err((_, 1))));
        assert!(matches!(error_at(b"NX\x05\x00\x00"), Err((_, 1))));
        let underflow = ErrorKind::StackUnderflow { opcode: "MEMOIZE" };
        assert_eq!(error_at(b"N(\x94."), Err((underflow, 2)));
        let one_entry = Limits {
            max_memo: 1,
            ..Limits::default()
        };
        let memo_error = loads_with(b"K\x01\x94K\x02\x94.", &one_entry).unwrap_err();
        assert_eq!(memo_error.offset(), 5);
        assert!(matches!(
            memo_error.kind(),
            ErrorKind::LimitExceeded {
                limit: "max_memo",
                ..
            }
        ));
        let shallow = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let depth_error = loads_with(b"(((", &shallow).unwrap_err();
        assert_eq!(depth_error.offset(), 2);
    }
}
