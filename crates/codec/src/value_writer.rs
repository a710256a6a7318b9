//! Entry values written straight from a caller's own objects, one call per object, with the
//! opcodes CPython's pickler chooses: what the Python package uses to store plain values
//! (ints, floats, strings, lists, dicts...) without running Python's pickler, then parsing
//! and renumbering its output.

use crate::pickler::{encode_int, sized_header, BATCH_SIZE};
use crate::{opcode, Error, ErrorKind};

/// Writes the entry value bytes (FORMAT.md, "Generic values") of many values into one
/// buffer, each value given as a walk of its objects: byte-identical to what
/// [`encode_entry_value`](crate::encode_entry_value) writes for the same [`Value`](crate::Value),
/// and so to `pickle.dumps(value, 4)` once its memo is renumbered, for values in which no
/// memoized object (a `str`, `bytes`, `list`, `dict`, non-empty `tuple`) appears twice:
/// the caller checks that (Python would write a `GET` for the second occurrence).
///
/// A scalar is one call; a container is `begin_*` with its length, its items (a dict's as
/// key, value, key, value...), then [`end`](Self::end). Every value written is whole and
/// balanced: a container given more or fewer items than its length, a second value before
/// [`finish_value`](Self::finish_value), or a value finished with a container open is an
/// [`ErrorKind::BadEntryValue`] (at the buffer's length), and
/// [`abandon_value`](Self::abandon_value) drops a value begun. A finished value is an
/// [`EncodedValue`], which a batch stores as it is.
///
/// ```
/// use mmappickle_codec::{encode_entry_value, Value, ValueWriter};
///
/// // {"ids": [1, 2], "gain": 0.5}
/// let mut writer = ValueWriter::new();
/// writer.begin_dict(2)?;
/// writer.str("ids")?;
/// writer.begin_list(2)?;
/// writer.int(1)?;
/// writer.int(2)?;
/// writer.end()?;
/// writer.str("gain")?;
/// writer.float(0.5)?;
/// writer.end()?;
/// let index = writer.finish_value()?;
///
/// let value = Value::Dict(vec![
///     (Value::from("ids"), Value::from(vec![1, 2])),
///     (Value::from("gain"), Value::Float(0.5)),
/// ]);
/// let bytes = writer.get(index).unwrap().as_bytes();
/// assert_eq!(bytes, encode_entry_value(&value, 1).0);
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ValueWriter {
    bytes: Vec<u8>,
    /// Where each finished value ends (the next one starts there).
    ends: Vec<usize>,
    /// The containers of the value being written, innermost last.
    open: Vec<OpenContainer>,
    /// Whether the value being written has its outermost object (then only
    /// [`ValueWriter::finish_value`] may follow).
    whole: bool,
}

/// A container being written.
#[derive(Debug, Clone, Copy)]
struct OpenContainer {
    kind: ContainerKind,
    /// Its items (pairs for a dict).
    len: usize,
    /// The objects written into it so far (a dict's keys and values each count).
    written: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    List,
    Tuple,
    Dict,
}

/// One whole value's entry bytes, as a [`ValueWriter`] wrote them: balanced, with no memo
/// opcode (the entry's `memo_max` is its memo start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedValue<'a> {
    bytes: &'a [u8],
}

impl<'a> EncodedValue<'a> {
    /// The value's opcodes (no `PROTO`, `FRAME`, memo or `STOP`).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl ValueWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `bytes` bytes of `values` values.
    pub fn with_capacity(bytes: usize, values: usize) -> Self {
        ValueWriter {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(values),
            ..Self::default()
        }
    }

    /// `None`.
    pub fn none(&mut self) -> Result<(), Error> {
        self.scalar(&[opcode::NONE])
    }

    /// `True` or `False`.
    pub fn bool(&mut self, value: bool) -> Result<(), Error> {
        self.scalar(&[if value {
            opcode::NEWTRUE
        } else {
            opcode::NEWFALSE
        }])
    }

    /// An `int`.
    pub fn int(&mut self, value: i64) -> Result<(), Error> {
        self.scalar(encode_int(i128::from(value)).as_bytes())
    }

    /// A `float`.
    pub fn float(&mut self, value: f64) -> Result<(), Error> {
        let mut op = [opcode::BINFLOAT; 9];
        op[1..].copy_from_slice(&value.to_be_bytes());
        self.scalar(&op)
    }

    /// A `str`.
    pub fn str(&mut self, text: &str) -> Result<(), Error> {
        self.sized(
            [
                opcode::SHORT_BINUNICODE,
                opcode::BINUNICODE,
                opcode::BINUNICODE8,
            ],
            text.as_bytes(),
        )
    }

    /// A `bytes`.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.sized(
            [opcode::SHORT_BINBYTES, opcode::BINBYTES, opcode::BINBYTES8],
            bytes,
        )
    }

    /// Begins a `list` of `len` items.
    pub fn begin_list(&mut self, len: usize) -> Result<(), Error> {
        self.begin(ContainerKind::List, len, &[opcode::EMPTY_LIST])
    }

    /// Begins a `tuple` of `len` items.
    pub fn begin_tuple(&mut self, len: usize) -> Result<(), Error> {
        // Up to three items, `TUPLE1`..`TUPLE3` after them; the empty tuple is one opcode.
        let mark: &[u8] = if len > 3 { &[opcode::MARK] } else { &[] };
        self.begin(ContainerKind::Tuple, len, mark)
    }

    /// Begins a `dict` of `len` items (then key, value, key, value...).
    pub fn begin_dict(&mut self, len: usize) -> Result<(), Error> {
        self.begin(ContainerKind::Dict, len, &[opcode::EMPTY_DICT])
    }

    /// Ends the innermost container, which must hold all its items.
    pub fn end(&mut self) -> Result<(), Error> {
        let Some(container) = self.open.last().copied() else {
            return Err(self.misuse("an end with no container open"));
        };
        if container.written != container.capacity() {
            return Err(self.misuse("a container ended before its length"));
        }
        self.open.pop();
        match container.kind {
            ContainerKind::List => {}
            ContainerKind::Tuple => self.bytes.push(match container.len {
                0 => opcode::EMPTY_TUPLE,
                1 => opcode::TUPLE1,
                2 => opcode::TUPLE2,
                3 => opcode::TUPLE3,
                _ => opcode::TUPLE,
            }),
            // `batch_dict_exact` loops again after a full batch: an empty one follows.
            ContainerKind::Dict => {
                if container.len > 1 && container.len % BATCH_SIZE == 0 {
                    self.bytes
                        .extend_from_slice(&[opcode::MARK, opcode::SETITEMS]);
                }
            }
        }
        self.end_object();
        Ok(())
    }

    /// Ends the value being written: its index, for [`get`](Self::get).
    pub fn finish_value(&mut self) -> Result<usize, Error> {
        if !self.open.is_empty() {
            return Err(self.misuse("a value finished with a container open"));
        }
        if !self.whole {
            return Err(self.misuse("a value finished before any object"));
        }
        self.whole = false;
        self.ends.push(self.bytes.len());
        Ok(self.ends.len() - 1)
    }

    /// Drops what was written of the value being written (the finished ones stay).
    pub fn abandon_value(&mut self) {
        self.bytes.truncate(self.value_start());
        self.open.clear();
        self.whole = false;
    }

    /// Value `index`, if it was finished.
    pub fn get(&self, index: usize) -> Option<EncodedValue<'_>> {
        let start = match index.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        let end = *self.ends.get(index)?;
        Some(EncodedValue {
            bytes: self.bytes.get(start..end)?,
        })
    }

    /// The number of finished values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no value is finished.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where the value being written starts.
    fn value_start(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    fn scalar(&mut self, op: &[u8]) -> Result<(), Error> {
        self.begin_object()?;
        self.bytes.extend_from_slice(op);
        self.end_object();
        Ok(())
    }

    /// A `str` or `bytes`: the 1-, 4- or 8-byte length form, then the payload.
    fn sized(&mut self, opcodes: [u8; 3], payload: &[u8]) -> Result<(), Error> {
        self.begin_object()?;
        let [short, medium, long] = opcodes;
        let header = sized_header(payload.len(), short, medium, long);
        self.bytes.extend_from_slice(header.as_slice());
        self.bytes.extend_from_slice(payload);
        self.end_object();
        Ok(())
    }

    fn begin(&mut self, kind: ContainerKind, len: usize, opening: &[u8]) -> Result<(), Error> {
        self.begin_object()?;
        self.bytes.extend_from_slice(opening);
        self.open.push(OpenContainer {
            kind,
            len,
            written: 0,
        });
        Ok(())
    }

    /// Before an object: the `MARK` that opens a batch of its container's items.
    fn begin_object(&mut self) -> Result<(), Error> {
        let Some(container) = self.open.last().copied() else {
            if self.whole {
                return Err(self.misuse("a second value before the first was finished"));
            }
            return Ok(());
        };
        if container.written == container.capacity() {
            return Err(self.misuse("more items than the container's length"));
        }
        let opens_batch = match container.kind {
            // `batch_list_exact`: one item gets `APPEND`, any other count batches.
            ContainerKind::List => container.len != 1 && container.written % BATCH_SIZE == 0,
            ContainerKind::Dict => container.len != 1 && container.written % (2 * BATCH_SIZE) == 0,
            ContainerKind::Tuple => false,
        };
        if opens_batch {
            self.bytes.push(opcode::MARK);
        }
        Ok(())
    }

    /// After an object: counted in its container, whose batch it may close.
    fn end_object(&mut self) {
        let Some(container) = self.open.last_mut() else {
            self.whole = true;
            return;
        };
        container.written += 1;
        let OpenContainer { kind, len, written } = *container;
        let closing = match kind {
            ContainerKind::List if len == 1 => opcode::APPEND,
            ContainerKind::List if written % BATCH_SIZE == 0 || written == len => opcode::APPENDS,
            ContainerKind::Dict if written % 2 == 1 => return,
            ContainerKind::Dict if len == 1 => opcode::SETITEM,
            ContainerKind::Dict if written % (2 * BATCH_SIZE) == 0 || written == 2 * len => {
                opcode::SETITEMS
            }
            _ => return,
        };
        self.bytes.push(closing);
    }

    fn misuse(&self, problem: &'static str) -> Error {
        Error::new(
            ErrorKind::BadEntryValue { problem },
            self.bytes.len() as u64,
        )
    }
}

impl OpenContainer {
    /// The objects it holds once whole.
    fn capacity(&self) -> usize {
        match self.kind {
            ContainerKind::Dict => self.len.saturating_mul(2),
            ContainerKind::List | ContainerKind::Tuple => self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_entry_value, Value};
    use proptest::prelude::*;

    /// Writes `value` (built of what the writer takes) into `writer`.
    fn write(writer: &mut ValueWriter, value: &Value) -> Result<(), Error> {
        match value {
            Value::None => writer.none(),
            Value::Bool(flag) => writer.bool(*flag),
            Value::Int(int) => writer.int(*int),
            Value::Float(float) => writer.float(*float),
            Value::Str(text) => writer.str(text),
            Value::Bytes(bytes) => writer.bytes(bytes),
            Value::List(items) | Value::Tuple(items) => {
                if matches!(value, Value::List(_)) {
                    writer.begin_list(items.len())?;
                } else {
                    writer.begin_tuple(items.len())?;
                }
                items.iter().try_for_each(|item| write(writer, item))?;
                writer.end()
            }
            Value::Dict(pairs) => {
                writer.begin_dict(pairs.len())?;
                for (key, value) in pairs {
                    write(writer, key)?;
                    write(writer, value)?;
                }
                writer.end()
            }
            other => panic!("not a value the writer takes: {other:?}"),
        }
    }

    fn written(value: &Value) -> Vec<u8> {
        let mut writer = ValueWriter::new();
        write(&mut writer, value).unwrap();
        let index = writer.finish_value().unwrap();
        writer.get(index).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn containers_of_every_length_batch_as_the_pickler_does() {
        for len in [0, 1, 2, 3, 4, 5, 999, 1000, 1001, 1999, 2000, 2001] {
            let items: Vec<Value> = (0..len as i64).map(Value::Int).collect();
            let pairs: Vec<(Value, Value)> = (0..len as i64)
                .map(|i| (Value::from(format!("k{i}")), Value::Int(i)))
                .collect();
            for value in [
                Value::List(items.clone()),
                Value::Tuple(items),
                Value::Dict(pairs),
            ] {
                assert_eq!(written(&value), encode_entry_value(&value, 1).0, "{len}");
            }
        }
    }

    #[test]
    fn scalars_are_written_as_the_pickler_writes_them() {
        let long_text = "é".repeat(200);
        let scalars = [
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(255),
            Value::Int(256),
            Value::Int(65535),
            Value::Int(65536),
            Value::Int(-1),
            Value::Int(i64::from(i32::MAX) + 1),
            Value::Int(i64::MIN),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::from(""),
            Value::from(long_text.as_str()),
            Value::from("x".repeat(70_000)),
            Value::Bytes(vec![]),
            Value::Bytes(vec![7; 300]),
        ];
        for value in scalars {
            assert_eq!(
                written(&value),
                encode_entry_value(&value, 1).0,
                "{value:?}"
            );
        }
    }

    fn writable_value() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            ".{0,300}".prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        ];
        scalar.prop_recursive(4, 64, 8, |inner| {
            let items = proptest::collection::vec(inner.clone(), 0..8);
            prop_oneof![
                items.clone().prop_map(Value::List),
                items.prop_map(Value::Tuple),
                proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Dict),
            ]
        })
    }

    /// One call of the writer, with small arguments.
    #[derive(Debug, Clone)]
    enum Call {
        Int(i64),
        Str(String),
        BeginList(usize),
        BeginTuple(usize),
        BeginDict(usize),
        End,
        Finish,
        Abandon,
    }

    fn call() -> impl Strategy<Value = Call> {
        prop_oneof![
            any::<i64>().prop_map(Call::Int),
            ".{0,4}".prop_map(Call::Str),
            (0usize..6).prop_map(Call::BeginList),
            (0usize..6).prop_map(Call::BeginTuple),
            (0usize..4).prop_map(Call::BeginDict),
            Just(Call::End),
            Just(Call::Finish),
            Just(Call::Abandon),
        ]
    }

    proptest! {
        // Any value the writer takes: the bytes of the `Value` pickler's entry mode.
        #[test]
        fn prop_written_as_encode_entry_value(value in writable_value()) {
            prop_assert_eq!(written(&value), encode_entry_value(&value, 1).0);
        }

        // Whatever the calls, right or wrong: every finished value is exactly one value,
        // as an entry must be.
        #[test]
        fn prop_finished_values_always_decode(calls in proptest::collection::vec(call(), 0..40)) {
            let mut writer = ValueWriter::new();
            for call in calls {
                // A refused call changes nothing: the writer goes on.
                let _ = match call {
                    Call::Int(int) => writer.int(int),
                    Call::Str(text) => writer.str(&text),
                    Call::BeginList(len) => writer.begin_list(len),
                    Call::BeginTuple(len) => writer.begin_tuple(len),
                    Call::BeginDict(len) => writer.begin_dict(len),
                    Call::End => writer.end(),
                    Call::Finish => writer.finish_value().map(drop),
                    Call::Abandon => {
                        writer.abandon_value();
                        Ok(())
                    }
                };
            }
            for index in 0..writer.len() {
                let bytes = writer.get(index).unwrap().as_bytes();
                let decoded = crate::decode_entry_value(bytes, &crate::Limits::default());
                prop_assert!(decoded.is_ok(), "{bytes:?}: {decoded:?}");
            }
        }
    }

    #[test]
    fn values_follow_one_another_in_one_buffer() {
        let mut writer = ValueWriter::new();
        writer.int(1).unwrap();
        assert_eq!(writer.finish_value().unwrap(), 0);
        writer.begin_list(1).unwrap();
        writer.str("a").unwrap();
        writer.end().unwrap();
        assert_eq!(writer.finish_value().unwrap(), 1);
        // An abandoned value leaves the finished ones as they were.
        writer.begin_dict(3).unwrap();
        writer.str("half").unwrap();
        writer.abandon_value();
        writer.none().unwrap();
        assert_eq!(writer.finish_value().unwrap(), 2);
        assert_eq!(writer.len(), 3);
        let values: Vec<&[u8]> = (0..3).map(|i| writer.get(i).unwrap().as_bytes()).collect();
        assert_eq!(values, [&b"K\x01"[..], b"]\x8c\x01aa", b"N"]);
        assert_eq!(writer.get(3), None);
    }

    #[test]
    fn unbalanced_writes_are_errors_at_the_buffer_end() {
        let problem = |error: Error| match error.kind() {
            ErrorKind::BadEntryValue { problem } => (*problem, error.offset()),
            other => panic!("{other:?}"),
        };
        let mut writer = ValueWriter::new();
        assert_eq!(
            problem(writer.finish_value().unwrap_err()),
            ("a value finished before any object", 0)
        );
        assert_eq!(
            problem(writer.end().unwrap_err()),
            ("an end with no container open", 0)
        );
        writer.begin_tuple(2).unwrap();
        writer.int(1).unwrap();
        assert_eq!(
            problem(writer.end().unwrap_err()),
            ("a container ended before its length", 2)
        );
        assert_eq!(
            problem(writer.finish_value().unwrap_err()),
            ("a value finished with a container open", 2)
        );
        writer.int(2).unwrap();
        assert_eq!(
            problem(writer.int(3).unwrap_err()),
            ("more items than the container's length", 4)
        );
        writer.end().unwrap();
        assert_eq!(
            problem(writer.none().unwrap_err()),
            ("a second value before the first was finished", 5)
        );
        // A dict counts keys and values: a key alone is not an item.
        writer.abandon_value();
        writer.begin_dict(1).unwrap();
        writer.str("key").unwrap();
        assert_eq!(
            problem(writer.end().unwrap_err()),
            ("a container ended before its length", 6)
        );
        assert!(writer.is_empty());
    }
}
