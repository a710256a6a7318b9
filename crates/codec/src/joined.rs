//! Many entry values unpickled with one call of Python's unpickler: [`JoinedEntries`] joins
//! entries whose values stand alone into the pickle of one dict, which one `pickle.loads`
//! reads.

use std::collections::BTreeSet;

use crate::op::{encode_op, Op};
use crate::opcode::{self, EMPTY_DICT, MARK, PROTO, SETITEMS, STOP};
use crate::restream::StackCount;
use crate::split::scan_op;

/// Entries joined into the pickle of one dict (`PROTO 4`, `EMPTY_DICT`, `MARK`, each key
/// and value, `SETITEMS`, `STOP`), so that one call of Python's `pickle.loads` loads all their
/// values, as each would load alone, into a dict in the order pushed.
///
/// Only a value that stands alone joins: exactly one value, every memo index it reads
/// stored by itself before, no `PROTO`, `FRAME`, `STOP` or `MEMOIZE` (an entry numbers its
/// memo explicitly). Memo indices of entries never overlap in a file written as FORMAT.md
/// says; where they do, each value still reads its own stores, made before its reads.
///
/// ```
/// use mmappickle_codec::{loads, JoinedEntries, Value};
///
/// let mut joined = JoinedEntries::new();
/// assert!(joined.push("seven", b"K\x07"));
/// assert!(joined.push("pair", b"\x8c\x01aq\x05h\x05\x86")); // ('a', 'a'): one string, twice
/// assert!(!joined.push("other's", b"h\x05"));              // a memo index it did not store
/// assert!(!joined.push("two", b"K\x01K\x02"));               // two values
/// joined.push_none("read otherwise");
/// assert_eq!(joined.len(), 3);
/// let Value::Dict(items) = loads(&joined.finish())? else { panic!("not a dict") };
/// let pair = Value::Tuple(vec![Value::from("a"), Value::from("a")]);
/// assert_eq!(items[0], (Value::from("seven"), Value::Int(7)));
/// assert_eq!(items[1], (Value::from("pair"), pair));
/// assert_eq!(items[2], (Value::from("read otherwise"), Value::None));
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct JoinedEntries {
    stream: Vec<u8>,
    len: usize,
    /// Scratch space of [`stands_alone`], kept from value to value (no allocation per value
    /// that opens a `MARK`).
    stack: StackCount,
}

impl Default for JoinedEntries {
    fn default() -> Self {
        Self::new()
    }
}

impl JoinedEntries {
    /// An empty dict.
    pub fn new() -> Self {
        JoinedEntries {
            stream: vec![PROTO, 4, EMPTY_DICT, MARK],
            len: 0,
            stack: StackCount::default(),
        }
    }

    /// Adds `key` with `value` (an entry's value bytes) if the value stands alone; `false`
    /// (and nothing added) when it does not.
    pub fn push(&mut self, key: &str, value: &[u8]) -> bool {
        if !stands_alone(value, &mut self.stack) {
            return false;
        }
        self.push_key(key);
        self.stream.extend_from_slice(value);
        true
    }

    /// Adds `key` with `None` (a place the caller fills with a value it reads otherwise).
    pub fn push_none(&mut self, key: &str) {
        self.push_key(key);
        self.stream.push(opcode::NONE);
    }

    fn push_key(&mut self, key: &str) {
        match u8::try_from(key.len()) {
            // Every key of a file (the format's limit): written here, in one go.
            Ok(len) => {
                self.stream
                    .extend_from_slice(&[opcode::SHORT_BINUNICODE, len]);
                self.stream.extend_from_slice(key.as_bytes());
            }
            Err(_) => encode_op(&Op::BinUnicode(key), &mut self.stream),
        }
        self.len += 1;
    }

    /// The number of entries added.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole pickle of the dict.
    pub fn finish(mut self) -> Vec<u8> {
        self.stream.extend_from_slice(&[SETITEMS, STOP]);
        self.stream
    }
}

/// Whether the entry value bytes `value` load as one value within a stream of others (see
/// [`JoinedEntries`]).
fn stands_alone(value: &[u8], stack: &mut StackCount) -> bool {
    // One push of a number, a string or bytes (most small values): nothing more to follow.
    if matches!(scan_op(value), Ok((None, len)) if len == value.len()) {
        return true;
    }
    stack.clear();
    // Ordered: no hasher to seed per value, no allocation for a value without stores.
    let mut stored = BTreeSet::new();
    let mut offset = 0;
    while let Some(rest) = value.get(offset..).filter(|rest| !rest.is_empty()) {
        let Ok((op, len)) = scan_op(rest) else {
            return false;
        };
        offset += len;
        // A string or bytes pushes one item, as NONE does.
        let op = op.unwrap_or(Op::None);
        match op {
            Op::Put(index) => _ = stored.insert(index),
            Op::BinPut(index) => _ = stored.insert(u64::from(index)),
            Op::LongBinPut(index) => _ = stored.insert(u64::from(index)),
            Op::Get(index) if !stored.contains(&index) => return false,
            Op::BinGet(index) if !stored.contains(&u64::from(index)) => return false,
            Op::LongBinGet(index) if !stored.contains(&u64::from(index)) => return false,
            Op::Proto(_) | Op::Frame(_) | Op::Stop | Op::Memoize => return false,
            _ => {}
        }
        if stack.apply(&op).is_err() {
            return false;
        }
    }
    stack.apply(&Op::Stop).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_that_stand_alone_join() {
        let mut joined = JoinedEntries::new();
        assert!(joined.is_empty());
        for refused in [
            &b""[..],
            b"K",
            b"\x80\x04K\x01",
            b"\x95\x01\x00\x00\x00\x00\x00\x00\x00K\x01",
            b"K\x01.",
            b"]\x94",
            b"(K\x01",
            b"K\x010",
            b"e",
            b"h\x01",
            b"]h\x01q\x01",
        ] {
            assert!(!joined.push("k", refused), "{refused:?}");
        }
        assert!(joined.push("k", b"]q\x01h\x01a"));
        let long_key = "x".repeat(300);
        joined.push_none(&long_key);
        assert_eq!(joined.len(), 2);
        let mut expected = b"\x80\x04}(\x8c\x01k]q\x01h\x01aX\x2c\x01\x00\x00".to_vec();
        expected.extend_from_slice(long_key.as_bytes());
        expected.extend_from_slice(b"Nu.");
        assert_eq!(joined.finish(), expected);
    }
}
