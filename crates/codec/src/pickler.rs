//! The pickler: a [`Value`] to protocol 4 bytes, byte-identical to CPython's
//! `pickle.dumps(value, protocol=4)` (the C `_pickle` module) for values in
//! which no Python object appears twice.
//!
//! The writer mirrors `_pickle.c`: the same opcode choices, the same
//! `MEMOIZE` after every memoizable object, the same batching of `APPENDS` /
//! `SETITEMS` / `ADDITEMS`, and the same framing (a frame is closed at the start
//! of a `save` once it holds 64 KiB; a `str` or `bytes` payload of 64 KiB or
//! more is written outside any frame).
//!
//! A [`Value::Object`] built by `INST` or `OBJ` (protocols 0 and 1) is written
//! the way protocol 4 writes any reduced object: callable, arguments tuple,
//! `REDUCE`.

use crate::opcode;
use crate::value::{Construct, Global, Object, Value};

/// Frames are closed once they hold this many bytes (`FRAME_SIZE_TARGET`).
const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// A frame shorter than this gets no `FRAME` header (`FRAME_SIZE_MIN`).
const FRAME_SIZE_MIN: usize = 4;
/// `FRAME` opcode + u64 length.
const FRAME_HEADER_SIZE: usize = 9;
/// Most output bytes reserved up front from the size estimate.
const MAX_PREALLOCATED: usize = 1 << 20;
/// Items per `APPENDS` / `SETITEMS` / `ADDITEMS` batch (`BATCHSIZE`).
pub(crate) const BATCH_SIZE: usize = 1000;

/// Pickles `value` with protocol 4, byte-identical to CPython's
/// `pickle.dumps(value, protocol=4)` when no Python object appears twice
/// in the value (CPython would write a `BINGET` for the second occurrence;
/// this writer repeats the value instead, which loads to an equal value).
///
/// A [`Value::ByteArray`] is written as protocol 4 writes a `bytearray`,
/// `builtins.bytearray(b'...')` (`REDUCE`), which [`loads`](crate::loads)
/// reads back as a [`Value::ByteArray`]. An object built by `INST` / `OBJ`
/// is written with `REDUCE`.
///
/// ```
/// use mmappickle_codec::{dumps, Value};
///
/// let bytes = dumps(&Value::from(vec![1, 2]));
/// assert_eq!(bytes, b"\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e.");
/// ```
pub fn dumps(value: &Value) -> Vec<u8> {
    let mut pickler = Pickler::new(Mode::Stream, estimate_size(value));
    pickler.write(&[opcode::PROTO, 4]);
    pickler.framing = true;
    pickler.save(value);
    pickler.write(&[opcode::STOP]);
    pickler.commit_frame();
    pickler.out
}

/// Writes `value`'s opcodes with no `PROTO`, `FRAME`, `MEMOIZE` or `STOP`:
/// what an mmappickle entry stores for a value that needs no memo.
pub(crate) fn dumps_unframed_without_memo(value: &Value) -> Vec<u8> {
    let mut pickler = Pickler::new(Mode::EntryValue, estimate_size(value));
    pickler.save(value);
    pickler.out
}

/// What the pickler writes around the value's opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A whole pickle: `MEMOIZE` after every memoizable object, as CPython.
    Stream,
    /// An entry's value: no memo at all (nothing is shared, so nothing is fetched).
    EntryValue,
}

/// The output buffer and the framing state of `_pickle.c`'s `PicklerObject`.
struct Pickler {
    out: Vec<u8>,
    mode: Mode,
    /// Whether new output goes into frames (turned off around big payloads).
    framing: bool,
    /// Where the open frame's 9-byte header placeholder starts.
    frame_start: Option<usize>,
}

impl Pickler {
    fn new(mode: Mode, capacity: usize) -> Self {
        Pickler {
            // The estimate extrapolates from first items, so nested values can
            // overshoot by orders of magnitude (fuzz finding): the output grows
            // as needed past this bound.
            out: Vec::with_capacity(capacity.min(MAX_PREALLOCATED)),
            mode,
            framing: false,
            frame_start: None,
        }
    }

    /// `_Pickler_Write`: opens a frame first when framing and none is open.
    fn write(&mut self, bytes: &[u8]) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER_SIZE]);
        }
        self.out.extend_from_slice(bytes);
    }

    /// `_Pickler_CommitFrame`: fills the open frame's header, or removes the
    /// placeholder when the frame is too short to be worth one.
    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let frame_len = self.out.len() - start - FRAME_HEADER_SIZE;
        if frame_len >= FRAME_SIZE_MIN {
            let mut header = [0u8; FRAME_HEADER_SIZE];
            header[0] = opcode::FRAME;
            header[1..].copy_from_slice(&(frame_len as u64).to_le_bytes());
            self.out[start..start + FRAME_HEADER_SIZE].copy_from_slice(&header);
        } else {
            self.out.drain(start..start + FRAME_HEADER_SIZE);
        }
    }

    /// `_Pickler_OpcodeBoundary`: closes the frame once it is big enough.
    fn opcode_boundary(&mut self) {
        if let Some(start) = self.frame_start {
            if self.out.len() - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    /// `_Pickler_write_bytes`: a big payload goes outside any frame.
    fn write_payload(&mut self, header: &[u8], payload: &[u8]) {
        if payload.len() >= FRAME_SIZE_TARGET {
            self.commit_frame();
            let framing = std::mem::replace(&mut self.framing, false);
            self.write(header);
            self.write(payload);
            self.framing = framing;
        } else {
            self.write(header);
            self.write(payload);
        }
    }

    fn memoize(&mut self) {
        if self.mode == Mode::Stream {
            self.write(&[opcode::MEMOIZE]);
        }
    }

    /// `save`: the opcode boundary check (a full frame is closed before the
    /// next object starts, never after the last one), then one value.
    fn save(&mut self, value: &Value) {
        self.opcode_boundary();
        match value {
            Value::None => self.write(&[opcode::NONE]),
            Value::Bool(true) => self.write(&[opcode::NEWTRUE]),
            Value::Bool(false) => self.write(&[opcode::NEWFALSE]),
            Value::Int(int) => self.save_int(*int),
            Value::BigInt(big) => self.save_long_bytes(big.to_le_bytes()),
            Value::Float(float) => {
                let mut buf = [0u8; 9];
                buf[0] = opcode::BINFLOAT;
                buf[1..].copy_from_slice(&float.to_be_bytes());
                self.write(&buf);
            }
            Value::Str(text) => self.save_str(text),
            Value::Bytes(bytes) => self.save_bytes(bytes),
            Value::ByteArray(bytes) => self.save_bytearray(bytes),
            Value::List(items) => {
                self.write(&[opcode::EMPTY_LIST]);
                self.memoize();
                self.batch_appends_exact(items);
            }
            Value::Tuple(items) => self.save_tuple(items),
            Value::Dict(pairs) => {
                self.write(&[opcode::EMPTY_DICT]);
                self.memoize();
                self.batch_setitems_exact(pairs);
            }
            Value::Set(items) => self.save_set(items),
            Value::FrozenSet(items) => {
                self.write(&[opcode::MARK]);
                for item in items {
                    self.save(item);
                }
                self.write(&[opcode::FROZENSET]);
                self.memoize();
            }
            Value::Global(global) => self.save_global(global),
            Value::Object(object) => self.save_object(object),
        }
    }

    /// `save_long`: `BININT1` / `BININT2` / `BININT` within the `i32` range, else `LONG1`.
    fn save_int(&mut self, int: i64) {
        self.write(encode_int(i128::from(int)).as_bytes());
    }

    /// `LONG1` (fewer than 256 bytes) or `LONG4` with minimal two's complement bytes.
    fn save_long_bytes(&mut self, le_bytes: &[u8]) {
        if let Ok(len) = u8::try_from(le_bytes.len()) {
            self.write(&[opcode::LONG1, len]);
        } else {
            let mut header = [opcode::LONG4, 0, 0, 0, 0];
            header[1..].copy_from_slice(&len_u32(le_bytes.len()).to_le_bytes());
            self.write(&header);
        }
        self.write(le_bytes);
    }

    /// `save_unicode` at protocol 4 (UTF-8 payload).
    fn save_str(&mut self, text: &str) {
        let payload = text.as_bytes();
        let header = sized_header(
            payload.len(),
            opcode::SHORT_BINUNICODE,
            opcode::BINUNICODE,
            opcode::BINUNICODE8,
        );
        self.write_payload(header.as_slice(), payload);
        self.memoize();
    }

    /// `save_bytes` at protocol 4.
    fn save_bytes(&mut self, bytes: &[u8]) {
        let header = sized_header(
            bytes.len(),
            opcode::SHORT_BINBYTES,
            opcode::BINBYTES,
            opcode::BINBYTES8,
        );
        self.write_payload(header.as_slice(), bytes);
        self.memoize();
    }

    /// A `bytearray` below protocol 5 is reduced: `bytearray(bytes(b))`, or
    /// `bytearray()` when empty, as `bytearray.__reduce_ex__(4)` says.
    fn save_bytearray(&mut self, bytes: &[u8]) {
        // Each part is a `save` of its own in CPython: boundary checks first.
        self.opcode_boundary();
        self.save_global_parts("builtins", "bytearray");
        self.opcode_boundary();
        if bytes.is_empty() {
            self.write(&[opcode::EMPTY_TUPLE]);
        } else {
            self.opcode_boundary();
            self.save_bytes(bytes);
            self.write(&[opcode::TUPLE1]);
            self.memoize();
        }
        self.write(&[opcode::REDUCE]);
        self.memoize();
    }

    /// `save_tuple` at protocol >= 2.
    fn save_tuple(&mut self, items: &[Value]) {
        let tuple_opcode = match items.len() {
            0 => {
                // The empty tuple is a singleton: never memoized.
                self.write(&[opcode::EMPTY_TUPLE]);
                return;
            }
            1 => opcode::TUPLE1,
            2 => opcode::TUPLE2,
            3 => opcode::TUPLE3,
            _ => {
                self.write(&[opcode::MARK]);
                opcode::TUPLE
            }
        };
        for item in items {
            self.save(item);
        }
        self.write(&[tuple_opcode]);
        self.memoize();
    }

    /// `save_set`: batches of 1000, and a trailing empty batch when the last
    /// one was full (the C loop runs again while a batch is full).
    fn save_set(&mut self, items: &[Value]) {
        self.write(&[opcode::EMPTY_SET]);
        self.memoize();
        if items.is_empty() {
            return;
        }
        let mut remaining = items;
        loop {
            let batch_len = remaining.len().min(BATCH_SIZE);
            let (batch, rest) = remaining.split_at(batch_len);
            self.write(&[opcode::MARK]);
            for item in batch {
                self.save(item);
            }
            self.write(&[opcode::ADDITEMS]);
            remaining = rest;
            if batch_len != BATCH_SIZE {
                break;
            }
        }
    }

    /// `save_global` at protocol 4: module and name as strings, `STACK_GLOBAL`.
    fn save_global(&mut self, global: &Global) {
        self.save_global_parts(&global.module, &global.name);
    }

    /// Module and name are each a `save` of a `str` in CPython.
    fn save_global_parts(&mut self, module: &str, name: &str) {
        self.opcode_boundary();
        self.save_str(module);
        self.opcode_boundary();
        self.save_str(name);
        self.write(&[opcode::STACK_GLOBAL]);
        self.memoize();
    }

    /// `save_reduce`: construction, then list items, dict items, state.
    fn save_object(&mut self, object: &Object) {
        self.save(&object.callable);
        // The arguments tuple and the keyword dict are `save`s of their own.
        self.opcode_boundary();
        self.save_tuple(&object.args);
        match object.construct {
            Construct::NewObjEx => {
                self.opcode_boundary();
                self.write(&[opcode::EMPTY_DICT]);
                self.memoize();
                self.batch_setitems_exact(&object.kwargs);
                self.write(&[opcode::NEWOBJ_EX]);
            }
            Construct::NewObj => self.write(&[opcode::NEWOBJ]),
            Construct::Reduce | Construct::Inst | Construct::Obj => {
                self.write(&[opcode::REDUCE]);
            }
        }
        self.memoize();
        self.batch_appends_generic(&object.list_items);
        self.batch_setitems_generic(&object.dict_items);
        if let Some(state) = &object.state {
            self.save(state);
            self.write(&[opcode::BUILD]);
        }
    }

    /// `batch_list_exact`: a one-item list gets `APPEND`, otherwise every
    /// batch (even a last one of one item) gets `MARK ... APPENDS`.
    fn batch_appends_exact(&mut self, items: &[Value]) {
        if let [item] = items {
            self.save(item);
            self.write(&[opcode::APPEND]);
            return;
        }
        for batch in items.chunks(BATCH_SIZE) {
            self.write(&[opcode::MARK]);
            for item in batch {
                self.save(item);
            }
            self.write(&[opcode::APPENDS]);
        }
    }

    /// `batch_dict_exact`: a one-item dict gets `SETITEM`; otherwise batches
    /// of `MARK ... SETITEMS`, with a trailing empty batch when the last one
    /// was full (the C loop runs again while a batch is full).
    fn batch_setitems_exact(&mut self, pairs: &[(Value, Value)]) {
        if let [(key, value)] = pairs {
            self.save(key);
            self.save(value);
            self.write(&[opcode::SETITEM]);
            return;
        }
        if pairs.is_empty() {
            return;
        }
        let mut remaining = pairs;
        loop {
            let batch_len = remaining.len().min(BATCH_SIZE);
            let (batch, rest) = remaining.split_at(batch_len);
            self.write(&[opcode::MARK]);
            for (key, value) in batch {
                self.save(key);
                self.save(value);
            }
            self.write(&[opcode::SETITEMS]);
            remaining = rest;
            if batch_len != BATCH_SIZE {
                break;
            }
        }
    }

    /// `batch_list` (any iterator): a batch of one item gets `APPEND`.
    fn batch_appends_generic(&mut self, items: &[Value]) {
        for batch in items.chunks(BATCH_SIZE) {
            if let [item] = batch {
                self.save(item);
                self.write(&[opcode::APPEND]);
            } else {
                self.write(&[opcode::MARK]);
                for item in batch {
                    self.save(item);
                }
                self.write(&[opcode::APPENDS]);
            }
        }
    }

    /// `batch_dict` (any iterator): a batch of one item gets `SETITEM`.
    fn batch_setitems_generic(&mut self, pairs: &[(Value, Value)]) {
        for batch in pairs.chunks(BATCH_SIZE) {
            if let [(key, value)] = batch {
                self.save(key);
                self.save(value);
                self.write(&[opcode::SETITEM]);
            } else {
                self.write(&[opcode::MARK]);
                for (key, value) in batch {
                    self.save(key);
                    self.save(value);
                }
                self.write(&[opcode::SETITEMS]);
            }
        }
    }
}

/// An opcode with its length argument: 1-byte, 4-byte or 8-byte form.
pub(crate) struct SizedHeader {
    bytes: [u8; 9],
    len: usize,
}

impl SizedHeader {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

pub(crate) fn sized_header(payload_len: usize, short: u8, medium: u8, long: u8) -> SizedHeader {
    let mut bytes = [0u8; 9];
    let len = if let Ok(len) = u8::try_from(payload_len) {
        bytes[0] = short;
        bytes[1] = len;
        2
    } else if let Ok(len) = u32::try_from(payload_len) {
        bytes[0] = medium;
        bytes[1..5].copy_from_slice(&len.to_le_bytes());
        5
    } else {
        bytes[0] = long;
        bytes[1..9].copy_from_slice(&(payload_len as u64).to_le_bytes());
        9
    };
    SizedHeader { bytes, len }
}

/// A length for a 4-byte length field; only `LONG4` uses it, whose payload
/// comes from a `BigInt` that a pickle (itself < 4 GiB per opcode) gave.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The length of `le_bytes` once redundant sign-extension bytes are dropped.
fn minimal_twos_complement_len(le_bytes: &[u8]) -> usize {
    let mut len = le_bytes.len();
    while len > 1 {
        let top = le_bytes[len - 1];
        let next_is_negative = le_bytes[len - 2] & 0x80 != 0;
        if (top == 0 && !next_is_negative) || (top == 0xff && next_is_negative) {
            len -= 1;
        } else {
            break;
        }
    }
    len
}

/// An int's opcode and argument as `pickle.dumps` writes it (protocol >= 2): see
/// [`encode_int`].
#[derive(Debug, Clone, Copy)]
pub struct EncodedInt {
    bytes: [u8; 18],
    len: usize,
}

impl EncodedInt {
    /// The opcode and its argument.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// `value` as `pickle.dumps` writes an int (protocol >= 2): `BININT1`, `BININT2` or `BININT`
/// within their ranges, else `LONG1` with minimal two's complement bytes. No allocation.
///
/// ```
/// use mmappickle_codec::encode_int;
/// assert_eq!(encode_int(7).as_bytes(), b"K\x07");
/// assert_eq!(encode_int(-1).as_bytes(), b"J\xff\xff\xff\xff");
/// assert_eq!(encode_int(1 << 31).as_bytes(), b"\x8a\x05\x00\x00\x00\x80\x00");
/// ```
pub fn encode_int(value: i128) -> EncodedInt {
    let mut bytes = [0u8; 18];
    let len = if let Ok(small) = u8::try_from(value) {
        bytes[..2].copy_from_slice(&[opcode::BININT1, small]);
        2
    } else if let Ok(small) = u16::try_from(value) {
        bytes[0] = opcode::BININT2;
        bytes[1..3].copy_from_slice(&small.to_le_bytes());
        3
    } else if let Ok(small) = i32::try_from(value) {
        bytes[0] = opcode::BININT;
        bytes[1..5].copy_from_slice(&small.to_le_bytes());
        5
    } else {
        let le_bytes = value.to_le_bytes();
        let minimal_len = minimal_twos_complement_len(&le_bytes);
        bytes[0] = opcode::LONG1;
        bytes[1] = minimal_len as u8;
        bytes[2..2 + minimal_len].copy_from_slice(&le_bytes[..minimal_len]);
        2 + minimal_len
    };
    EncodedInt { bytes, len }
}

/// A cheap guess of the output size (from the first item of each
/// container), to allocate the buffer once in most cases.
fn estimate_size(value: &Value) -> usize {
    match value {
        Value::None | Value::Bool(_) => 1,
        Value::Int(_) => 5,
        Value::Float(_) => 9,
        Value::Str(text) => text.len() + 6,
        Value::Bytes(bytes) | Value::ByteArray(bytes) => bytes.len() + 48,
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            let per_item = items.first().map_or(0, estimate_size);
            16 + per_item.saturating_mul(items.len())
        }
        Value::Dict(pairs) => {
            let per_pair = pairs
                .first()
                .map_or(0, |(key, value)| estimate_size(key) + estimate_size(value));
            16 + per_pair.saturating_mul(pairs.len())
        }
        Value::BigInt(_) | Value::Object(_) | Value::Global(_) => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Small values, checked against `pickle.dumps(v, 4)` of CPython 3.11.
    #[test]
    fn scalars_match_cpython() {
        assert_eq!(dumps(&Value::None), b"\x80\x04N.");
        assert_eq!(dumps(&Value::Bool(true)), b"\x80\x04\x88.");
        assert_eq!(
            dumps(&Value::Int(300)),
            b"\x80\x04\x95\x04\x00\x00\x00\x00\x00\x00\x00M,\x01."
        );
        assert_eq!(
            dumps(&Value::Int(-1)),
            b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00J\xff\xff\xff\xff."
        );
        assert_eq!(
            dumps(&Value::Int(1 << 31)),
            b"\x80\x04\x95\x08\x00\x00\x00\x00\x00\x00\x00\x8a\x05\x00\x00\x00\x80\x00."
        );
    }

    // A frame shorter than 4 bytes loses its header; PROTO is never framed.
    #[test]
    fn tiny_frames_are_dropped() {
        assert_eq!(dumps(&Value::Int(5)), b"\x80\x04K\x05.");
    }

    // Entry values carry no MEMOIZE, FRAME, PROTO or STOP.
    #[test]
    fn entry_mode_writes_bare_opcodes() {
        let value = Value::from(vec![Value::from("a")]);
        assert_eq!(dumps_unframed_without_memo(&value), b"]\x8c\x01aa");
    }

    #[test]
    fn minimal_length_drops_sign_bytes() {
        assert_eq!(minimal_twos_complement_len(&(-128i64).to_le_bytes()), 1);
        assert_eq!(minimal_twos_complement_len(&128i64.to_le_bytes()), 2);
        assert_eq!(minimal_twos_complement_len(&(i64::MIN).to_le_bytes()), 8);
    }
}
