//! Fuzz target bodies: the cargo-fuzz targets in `fuzz/` are one call into
//! these, so `cargo test` replays exactly what the fuzzer ran.
//!
//! Each body returns `Err(description)` when a promise of this crate fails
//! on the input; a panic, an abort or an allocation failure inside it is a
//! finding too. Not part of the public API (compiled with the `fuzzing`
//! feature, or in this crate's own tests).

use arbitrary::{Arbitrary, Unstructured};

use crate::{
    decode_entry_value, dis, dumps, encode_entry_value, encode_op, loads_with, parse_op, BigInt,
    Construct, Error, Global, Limits, Object, Value,
};

/// What a fuzz body reports when a property fails.
pub type Verdict = Result<(), String>;

/// Deepest nesting of containers that [`FuzzValue`] builds.
pub const MAX_FUZZ_DEPTH: usize = 5;
/// Most items of a generic container that [`FuzzValue`] builds.
const MAX_FUZZ_ITEMS: usize = 8;
/// Most values in one [`FuzzValue`].
const MAX_FUZZ_NODES: usize = 4096;
/// Most copies of one item in a long list (past the 1000-item batches).
const MAX_REPEATED_ITEMS: usize = 2100;
/// Longest payload of a big `str` / `bytes` (past the 64 KiB frames).
const MAX_BIG_PAYLOAD: usize = 140_000;

/// The limits the `loads` target runs with: the defaults but 2^20 values.
/// At the default 2^23 a copy bomb takes seconds and, under the address
/// sanitizer, close to libFuzzer's 2 GiB cap; the default bound itself is
/// checked by `tests/tests/fuzz_regressions.rs` on the bombs found.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_elements: 1 << 20,
        ..Limits::default()
    }
}

/// `ops` target: decodes every op of `data`.
///
/// The op iterator stops at the first error; decoding then resumes one byte
/// further, so every byte offset that starts an op is reached. The
/// disassembler runs over the same bytes. Checked: error offsets lie within
/// the input, and each op re-encodes to bytes that decode to itself.
pub fn ops(data: &[u8]) -> Verdict {
    let _listing = dis(data);
    let mut offset = 0;
    while let Some(rest) = data.get(offset..).filter(|rest| !rest.is_empty()) {
        match parse_op(rest) {
            Ok((op, used)) => {
                if used == 0 || used > rest.len() {
                    return Err(format!(
                        "op at {offset} claims {used} of {} bytes",
                        rest.len()
                    ));
                }
                check_op_reencodes(&op, offset)?;
                offset += used;
            }
            Err(error) => {
                check_error_offset(&error, rest.len())?;
                offset += 1;
            }
        }
    }
    Ok(())
}

/// `encode_op` promises that `parse_op` of its output gives the op back.
fn check_op_reencodes(op: &crate::Op<'_>, offset: usize) -> Verdict {
    let mut encoded = Vec::new();
    encode_op(op, &mut encoded);
    let (reparsed, used) = parse_op(&encoded)
        .map_err(|error| format!("op {op:?} at {offset} re-encodes to {encoded:?}: {error}"))?;
    // Encodings are compared, not ops: a FLOAT NaN is not equal to itself.
    let mut reencoded = Vec::new();
    encode_op(&reparsed, &mut reencoded);
    if used != encoded.len() || reencoded != encoded {
        return Err(format!(
            "op {op:?} at {offset} encodes to {encoded:?}, which decodes to {reparsed:?} ({used} bytes)"
        ));
    }
    Ok(())
}

/// An error's offset must point into the input (or just past its end).
fn check_error_offset(error: &Error, input_len: usize) -> Verdict {
    if error.offset() > input_len as u64 {
        return Err(format!(
            "error {error} at offset {} past the input's {input_len} bytes",
            error.offset()
        ));
    }
    // Display must not panic either.
    let _message = error.to_string();
    Ok(())
}

/// `loads` target: the safe unpickler on `data` as a whole stream and as an
/// entry's value bytes, within [`fuzz_limits`]. Checked: no panic, error
/// offsets within the input, and a value read back is written and read
/// again without error.
pub fn loads(data: &[u8]) -> Verdict {
    let limits = fuzz_limits();
    match loads_with(data, &limits) {
        Ok(value) => check_rewrites(&value)?,
        Err(error) => check_error_offset(&error, data.len())?,
    }
    match decode_entry_value(data, &limits) {
        Ok(value) => check_rewrites(&value),
        Err(error) => check_error_offset(&error, data.len()),
    }
}

/// A value the unpickler built can be pickled, and that pickle loads.
fn check_rewrites(value: &Value) -> Verdict {
    let bytes = dumps(value);
    loads_with(&bytes, &Limits::default())
        .map(drop)
        .map_err(|error| format!("dumps of a loaded value does not load: {error}"))
}

/// An arbitrary [`Value`] in the form the pickler writes back unchanged,
/// and a memo start for the entry encoding.
///
/// Depth-bounded ([`MAX_FUZZ_DEPTH`]). `NEWOBJ` objects get no keyword
/// arguments (only `NEWOBJ_EX` carries them).
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzValue {
    /// The value to round-trip.
    pub value: Value,
    /// The memo start given to the entry encoding.
    pub memo_start: u32,
}

impl<'a> Arbitrary<'a> for FuzzValue {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let memo_start = u32::arbitrary(u)?;
        let mut builder = ValueBuilder {
            u,
            nodes_left: MAX_FUZZ_NODES,
            big_payloads_left: 1,
        };
        let value = builder.value(MAX_FUZZ_DEPTH)?;
        Ok(FuzzValue { value, memo_start })
    }
}

/// Builds a value from fuzzer bytes within a budget, so that one input
/// stays fast to pickle (thousands of executions a second).
struct ValueBuilder<'u, 'a> {
    u: &'u mut Unstructured<'a>,
    /// Values still allowed (repeated items count one each).
    nodes_left: usize,
    /// Payloads past the frame size still allowed.
    big_payloads_left: usize,
}

impl ValueBuilder<'_, '_> {
    fn value(&mut self, depth: usize) -> arbitrary::Result<Value> {
        if depth == 0 || self.u.is_empty() || self.nodes_left == 0 {
            return self.scalar();
        }
        self.nodes_left -= 1;
        let below = depth - 1;
        Ok(match self.u.int_in_range(0u8..=9)? {
            0 => Value::List(self.items(below)?),
            1 => Value::Tuple(self.items(below)?),
            2 => Value::Set(self.items(below)?),
            3 => Value::FrozenSet(self.items(below)?),
            4 => Value::Dict(self.pairs(below)?),
            5 => Value::Object(Box::new(self.object(below)?)),
            6 => self.repeated()?,
            _ => self.scalar()?,
        })
    }

    /// Many copies of one small item: the 1000-item batches and their edges.
    fn repeated(&mut self) -> arbitrary::Result<Value> {
        let count = self
            .u
            .int_in_range(0..=MAX_REPEATED_ITEMS)?
            .min(self.nodes_left);
        self.nodes_left -= count;
        let item = self.small_scalar()?;
        let items = vec![item; count];
        Ok(match self.u.int_in_range(0u8..=4)? {
            0 => Value::List(items),
            1 => Value::Tuple(items),
            2 => Value::Set(items),
            3 => Value::FrozenSet(items),
            _ => Value::Dict(items.iter().cloned().zip(items.iter().cloned()).collect()),
        })
    }

    fn scalar(&mut self) -> arbitrary::Result<Value> {
        if self.big_payloads_left > 0 && self.u.ratio(1u8, 16)? {
            // A payload past the 64 KiB frame size: written outside frames.
            self.big_payloads_left -= 1;
            let len = self.u.int_in_range(0..=MAX_BIG_PAYLOAD)?;
            let fill = u8::arbitrary(self.u)?;
            return Ok(if bool::arbitrary(self.u)? {
                Value::Bytes(vec![fill; len])
            } else {
                Value::Str(char::from(fill & 0x7f).to_string().repeat(len))
            });
        }
        self.small_scalar()
    }

    fn small_scalar(&mut self) -> arbitrary::Result<Value> {
        let u = &mut *self.u;
        Ok(match u.int_in_range(0u8..=9)? {
            0 => Value::None,
            1 => Value::Bool(bool::arbitrary(u)?),
            2 => Value::Int(i64::arbitrary(u)?),
            3 => {
                let len = u.int_in_range(0..=300usize)?.min(u.len());
                BigInt::value_from_le_bytes(u.bytes(len)?)
            }
            4 => Value::Float(f64::arbitrary(u)?),
            5 => Value::Str(String::arbitrary(u)?),
            6 => Value::Bytes(Vec::arbitrary(u)?),
            7 => Value::ByteArray(Vec::arbitrary(u)?),
            8 => Value::Global(Global::new(String::arbitrary(u)?, String::arbitrary(u)?)),
            // Ints near the BININT1 / BININT2 / BININT / LONG1 boundaries.
            _ => Value::Int(i64::from(i32::arbitrary(u)? >> u.int_in_range(0..=31)?)),
        })
    }

    fn items(&mut self, depth: usize) -> arbitrary::Result<Vec<Value>> {
        let count = self.u.int_in_range(0..=MAX_FUZZ_ITEMS)?;
        (0..count).map(|_| self.value(depth)).collect()
    }

    fn pairs(&mut self, depth: usize) -> arbitrary::Result<Vec<(Value, Value)>> {
        let count = self.u.int_in_range(0..=MAX_FUZZ_ITEMS)?;
        (0..count)
            .map(|_| Ok((self.value(depth)?, self.value(depth)?)))
            .collect()
    }

    fn object(&mut self, depth: usize) -> arbitrary::Result<Object> {
        let construct = *self.u.choose(&[
            Construct::Reduce,
            Construct::NewObj,
            Construct::NewObjEx,
            Construct::Inst,
            Construct::Obj,
        ])?;
        let callable = if bool::arbitrary(self.u)? {
            Value::Global(Global::new(
                String::arbitrary(self.u)?,
                String::arbitrary(self.u)?,
            ))
        } else {
            self.value(depth)?
        };
        let mut object = Object::new(construct, callable, self.items(depth)?);
        if construct == Construct::NewObjEx {
            object.kwargs = self.pairs(depth)?;
        }
        object.list_items = self.items(depth)?;
        object.dict_items = self.pairs(depth)?;
        if bool::arbitrary(self.u)? {
            object.state = Some(self.value(depth)?);
        }
        Ok(object)
    }
}

/// `roundtrip` target on raw fuzzer bytes: builds a [`FuzzValue`] from them
/// exactly as `libfuzzer-sys` does for a typed target, then checks
/// [`roundtrip_value`]. Bytes too short for a value check nothing.
pub fn roundtrip(data: &[u8]) -> Verdict {
    match FuzzValue::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(input) => roundtrip_value(&input),
        Err(_) => Ok(()),
    }
}

/// `loads(dumps(v)) == v` (up to the documented [`as_read_back`]), and
/// `dumps` of what was loaded is the same bytes; likewise
/// `decode_entry_value(encode_entry_value(v, start))` with `memo_max ==
/// start`. Both encodings also decode op by op without error.
pub fn roundtrip_value(input: &FuzzValue) -> Verdict {
    let value = &input.value;
    let mut made_native = false;
    let expected = read_back(value, &mut made_native);
    let stream = dumps(value);
    check_ops_decode(&stream, "dumps")?;
    let loaded = loads_with(&stream, &Limits::default())
        .map_err(|error| format!("dumps of {value:?} does not load: {error}"))?;
    if loaded != expected {
        return Err(format!("dumps/loads changed {value:?} into {loaded:?}"));
    }
    // A builtin call that reads back native (`builtins.set([..])`) is then
    // written with its own opcodes (`EMPTY_SET`), so the bytes differ.
    if !made_native && dumps(&loaded) != stream {
        return Err(format!(
            "{value:?} and its read-back {loaded:?} pickle differently"
        ));
    }

    let (entry_bytes, memo_max) = encode_entry_value(value, input.memo_start);
    if memo_max != input.memo_start {
        return Err(format!(
            "entry encoding moved the memo from {} to {memo_max}",
            input.memo_start
        ));
    }
    check_ops_decode(&entry_bytes, "encode_entry_value")?;
    let decoded = decode_entry_value(&entry_bytes, &Limits::default())
        .map_err(|error| format!("entry bytes of {value:?} do not decode: {error}"))?;
    if decoded != expected {
        return Err(format!("entry encoding changed {value:?} into {decoded:?}"));
    }
    Ok(())
}

/// What `loads(dumps(value))` gives, as the pickler documents it: an
/// `INST` / `OBJ` object is written, so reads back, as `REDUCE`; an object
/// node that is exactly a builtin call CPython writes (`builtins.set([..])`,
/// `_codecs.encode(s, 'latin1')`...) reads back as the native value.
pub fn as_read_back(value: &Value) -> Value {
    read_back(value, &mut false)
}

/// [`as_read_back`], setting `made_native` when an object node reads back native.
fn read_back(value: &Value, made_native: &mut bool) -> Value {
    fn all(items: &[Value], made_native: &mut bool) -> Vec<Value> {
        items
            .iter()
            .map(|item| read_back(item, made_native))
            .collect()
    }
    match value {
        Value::List(items) => Value::List(all(items, made_native)),
        Value::Tuple(items) => Value::Tuple(all(items, made_native)),
        Value::Set(items) => Value::Set(all(items, made_native)),
        Value::FrozenSet(items) => Value::FrozenSet(all(items, made_native)),
        Value::Dict(pairs) => Value::Dict(read_back_pairs(pairs, made_native)),
        Value::Object(object) => {
            let construct = match object.construct {
                Construct::Inst | Construct::Obj => Construct::Reduce,
                other => other,
            };
            let node = Value::Object(Box::new(Object {
                construct,
                callable: read_back(&object.callable, made_native),
                args: all(&object.args, made_native),
                kwargs: read_back_pairs(&object.kwargs, made_native),
                list_items: all(&object.list_items, made_native),
                dict_items: read_back_pairs(&object.dict_items, made_native),
                state: object
                    .state
                    .as_ref()
                    .map(|state| read_back(state, made_native)),
            }));
            let node = crate::builtins::native_value(node);
            *made_native |= !matches!(node, Value::Object(_));
            node
        }
        other => other.clone(),
    }
}

fn read_back_pairs(pairs: &[(Value, Value)], made_native: &mut bool) -> Vec<(Value, Value)> {
    pairs
        .iter()
        .map(|(key, value)| (read_back(key, made_native), read_back(value, made_native)))
        .collect()
}

/// Every op of bytes this crate wrote decodes.
fn check_ops_decode(bytes: &[u8], writer: &str) -> Verdict {
    match crate::ops(bytes).find_map(Result::err) {
        Some(error) => Err(format!(
            "{writer} wrote an op that does not decode: {error}"
        )),
        None => Ok(()),
    }
}

/// The memo starts the `entry_value_from_pickle` target runs with: a new
/// file's, one where `BINPUT` gives way to `LONG_BINPUT`, and one that leaves
/// room for a single store below the `i32::MAX` limit.
const MEMO_STARTS: [u32; 3] = [1, 255, i32::MAX as u32 - 1];

/// `entry_value_from_pickle` target: `data` as a whole pickle stream made
/// into an entry's value bytes, at each of [`MEMO_STARTS`].
///
/// Checked on success: the bytes decode op by op with no `PROTO`, `FRAME`,
/// `STOP` or `MEMOIZE`, every memo index they use lies in `[memo_start,
/// memo_max)`, and where `loads` reads the stream, the entry decoder reads
/// the bytes as the same value. On error: its offset lies within the input.
pub fn entry_value_from_pickle(data: &[u8]) -> Verdict {
    let limits = fuzz_limits();
    // Loaded once: the value does not depend on the memo start.
    let mut loaded = None;
    for memo_start in MEMO_STARTS {
        let (bytes, memo_max) = match crate::entry_value_from_pickle(data, memo_start) {
            Ok(rewritten) => rewritten,
            Err(error) => {
                check_error_offset(&error, data.len())?;
                continue;
            }
        };
        if memo_max < memo_start {
            return Err(format!("memo_max {memo_max} below memo_start {memo_start}"));
        }
        check_entry_ops(&bytes, memo_start, memo_max)?;
        let expected = loaded.get_or_insert_with(|| loads_with(data, &limits).ok());
        let Some(expected) = expected else {
            continue;
        };
        let decoded = decode_entry_value(&bytes, &limits).map_err(|error| {
            format!("loads reads the stream, the entry decoder not its rewrite (start {memo_start}): {error}")
        })?;
        // Pickled bytes are compared, not values: a float NaN is not equal to itself.
        if decoded != *expected && dumps(&decoded) != dumps(expected) {
            return Err(format!(
                "the rewrite (start {memo_start}) reads as {decoded:?}, the stream as {expected:?}"
            ));
        }
    }
    Ok(())
}

/// `len` bytes of a xorshift generator at `state` (tests make values from them, as the
/// fuzzer does from its inputs, reproducibly).
pub fn pseudo_random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// An entry value holds no op that only a whole stream may, and its memo
/// indices lie in `[memo_start, memo_max)`.
fn check_entry_ops(bytes: &[u8], memo_start: u32, memo_max: u32) -> Verdict {
    use crate::Op;
    // Text holding surrogates decodes as the restream reads it (as Python's `surrogatepass`).
    let mut offset = 0;
    while offset < bytes.len() {
        let (op, len) = crate::restream::parse_op_any_text(&bytes[offset..])
            .map_err(|error| format!("the rewrite holds an op that does not decode: {error}"))?;
        offset += len;
        let index = match op {
            Op::Proto(_) | Op::Frame(_) | Op::Stop | Op::Memoize => {
                return Err(format!("the rewrite holds {op:?}"))
            }
            Op::Put(index) | Op::Get(index) => index,
            Op::BinPut(index) | Op::BinGet(index) => u64::from(index),
            Op::LongBinPut(index) | Op::LongBinGet(index) => u64::from(index),
            _ => continue,
        };
        if !(u64::from(memo_start)..u64::from(memo_max)).contains(&index) {
            return Err(format!(
                "the rewrite uses memo index {index} outside [{memo_start}, {memo_max})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every body accepts the empty input and a few short ones.
    #[test]
    fn bodies_accept_short_inputs() {
        for input in [
            &b""[..],
            b".",
            b"\x80\x04N.",
            b"(((",
            b"\x95\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert_eq!(ops(input), Ok(()), "ops {input:?}");
            assert_eq!(loads(input), Ok(()), "loads {input:?}");
            assert_eq!(roundtrip(input), Ok(()), "roundtrip {input:?}");
            assert_eq!(
                entry_value_from_pickle(input),
                Ok(()),
                "entry_value_from_pickle {input:?}"
            );
        }
    }

    // Values built from pseudo-random bytes round-trip; the generator makes
    // nested containers (not only scalars) from them.
    #[test]
    fn generated_values_roundtrip() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut saw_container = false;
        for _ in 0..200 {
            let bytes = pseudo_random_bytes(&mut state, 256);
            let input = FuzzValue::arbitrary_take_rest(Unstructured::new(&bytes))
                .expect("256 bytes make a value");
            saw_container |= matches!(
                input.value,
                Value::List(_) | Value::Tuple(_) | Value::Dict(_) | Value::Object(_)
            );
            assert_eq!(roundtrip_value(&input), Ok(()));
        }
        assert!(saw_container, "the generator never nested anything");
    }

    // A stream with a shared part: its rewrite keeps one store and reads as
    // the stream does.
    #[test]
    fn entry_value_from_pickle_checks_a_shared_list() {
        // x = ['a']; pickle.dumps([x, x], 4), as in the function's example.
        let stream =
            b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94\x8c\x01a\x94ah\x01e.";
        assert_eq!(entry_value_from_pickle(stream), Ok(()));
    }

    // A bad op does not stop the walk: ops after it are still decoded (and a
    // broken property would be reported for them).
    #[test]
    fn ops_resumes_after_an_error() {
        assert_eq!(ops(b"\xffK\x01\x00N."), Ok(()));
    }
}
