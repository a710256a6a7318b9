//! A whole pickle stream made into an entry's value bytes, at the opcode level.
//!
//! Python's `pickle.dumps(value, 4)` frames its output, memoizes every
//! container and string (`MEMOIZE`, numbered by the memo's size), and ends
//! with `STOP`. An entry's value must hold none of `PROTO`, `FRAME`, `STOP`
//! and `MEMOIZE`, and its memo indices must start where the file's previous
//! entries left off (FORMAT.md, "Generic values"). This module rewrites the
//! stream op by op, so that any value Python can pickle (objects that share
//! parts or contain themselves included) is stored exactly, without building
//! a value tree.

use std::collections::HashMap;

use crate::op::{encode_op, parse_op, Op};
use crate::{Error, ErrorKind};

/// One memo store (`PUT`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`) of the stream.
struct Store {
    /// Whether some `GET` reads what it stored.
    read: bool,
}

/// What the first pass decided for one op of the stream.
enum Step {
    /// Copy the op's bytes unchanged.
    Copy { start: usize, end: usize },
    /// Left out (`PROTO`, `FRAME`, `STOP`).
    Drop,
    /// The memo store with this id.
    Store(usize),
    /// A `GET` of what the store with this id stored.
    Get(usize),
}

/// Rewrites a whole pickle stream (as `pickle.dumps(value, protocol)` gives,
/// protocol 0 to 5, framed or not) into an entry's value bytes whose memo
/// indices start at `memo_start`.
///
/// `PROTO`, `FRAME` and `STOP` are left out; a memo store that no `GET`
/// reads is dropped; the others become `BINPUT` / `LONG_BINPUT` numbered
/// from `memo_start` in stream order, and every `GET` reads the new index of
/// the store it read before (the latest store of its index, as the
/// unpickler's memo does). This is what Python mmappickle writes for the same
/// stream. Returns the bytes and the next free memo index (the entry's
/// `memo_max`).
///
/// Errors: an op that does not parse, a `GET` of an index nothing stored
/// before it ([`ErrorKind::MemoMissing`]), an op after `STOP` or no `STOP`
/// ([`ErrorKind::BadEntryValue`]), a memo index past `i32::MAX` (an entry records its
/// `memo_max` as a `BININT`).
/// The bytes are not otherwise checked to be exactly one value: that is
/// what a stream of `pickle.dumps` is; [`decode_entry_value`](crate::decode_entry_value)
/// checks it.
///
/// ```
/// use mmappickle_codec::entry_value_from_pickle;
///
/// // x = ['a']; pickle.dumps([x, x], 4): the inner list is shared.
/// let stream = b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94\x8c\x01a\x94ah\x01e.";
/// let (value, memo_max) = entry_value_from_pickle(stream, 7)?;
/// // Only the inner list's store is kept, renumbered 7; its GET follows.
/// assert_eq!(value, b"](]q\x07\x8c\x01aah\x07e");
/// assert_eq!(memo_max, 8);
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
pub fn entry_value_from_pickle(stream: &[u8], memo_start: u32) -> Result<(Vec<u8>, u32), Error> {
    let (steps, stores) = plan(stream)?;
    let mut new_index = vec![None; stores.len()];
    let mut next = memo_start;
    const MAX_INDEX: u32 = i32::MAX as u32;
    let too_many = |offset| {
        Error::new(
            ErrorKind::LimitExceeded {
                limit: "max_memo",
                max: MAX_INDEX as usize,
            },
            offset,
        )
    };
    let mut out = Vec::with_capacity(stream.len());
    for step in steps {
        match step {
            Step::Copy { start, end } => {
                out.extend_from_slice(stream.get(start..end).unwrap_or_default())
            }
            Step::Drop => {}
            Step::Store(store_id) => {
                if stores.get(store_id).is_some_and(|store| store.read) {
                    let index = next;
                    next = next
                        .checked_add(1)
                        .filter(|&next| next <= MAX_INDEX)
                        .ok_or_else(|| too_many(out.len() as u64))?;
                    if let Some(slot) = new_index.get_mut(store_id) {
                        *slot = Some(index);
                    }
                    encode_op(&put_op(index), &mut out);
                }
            }
            Step::Get(store_id) => {
                // A GET reads a store that came before it, so its index is known.
                let index = new_index
                    .get(store_id)
                    .copied()
                    .flatten()
                    .ok_or_else(|| too_many(out.len() as u64))?;
                encode_op(&get_op(index), &mut out);
            }
        }
    }
    Ok((out, next))
}

/// The first pass: what to do with each op, and which stores are read.
fn plan(stream: &[u8]) -> Result<(Vec<Step>, Vec<Store>), Error> {
    let mut steps = Vec::new();
    let mut stores: Vec<Store> = Vec::new();
    // The latest store of each index the stream used (what a GET of it reads).
    let mut latest: HashMap<u64, usize> = HashMap::new();
    let mut offset = 0;
    let mut stopped = false;
    while let Some(rest) = stream.get(offset..).filter(|rest| !rest.is_empty()) {
        if stopped {
            return Err(Error::new(
                ErrorKind::BadEntryValue {
                    problem: "bytes after STOP",
                },
                offset as u64,
            ));
        }
        let (op, len) = parse_op(rest).map_err(|error| error.shifted(offset as u64))?;
        let end = offset + len;
        let stored_index = match op {
            Op::Put(index) => Some(index),
            Op::BinPut(index) => Some(u64::from(index)),
            Op::LongBinPut(index) => Some(u64::from(index)),
            // MEMOIZE numbers by the memo's size: the number of distinct indices stored.
            Op::Memoize => Some(latest.len() as u64),
            _ => None,
        };
        let read_index = match op {
            Op::Get(index) => Some(index),
            Op::BinGet(index) => Some(u64::from(index)),
            Op::LongBinGet(index) => Some(u64::from(index)),
            _ => None,
        };
        let step = if let Some(index) = stored_index {
            latest.insert(index, stores.len());
            stores.push(Store { read: false });
            Step::Store(stores.len() - 1)
        } else if let Some(index) = read_index {
            let store_id = *latest.get(&index).ok_or_else(|| {
                Error::new(
                    ErrorKind::MemoMissing {
                        opcode: op.name(),
                        index,
                    },
                    offset as u64,
                )
            })?;
            if let Some(store) = stores.get_mut(store_id) {
                store.read = true;
            }
            Step::Get(store_id)
        } else {
            match op {
                Op::Stop => {
                    stopped = true;
                    Step::Drop
                }
                Op::Proto(_) | Op::Frame(_) => Step::Drop,
                _ => Step::Copy { start: offset, end },
            }
        };
        steps.push(step);
        offset = end;
    }
    if !stopped {
        return Err(Error::new(
            ErrorKind::UnexpectedEof { opcode: None },
            stream.len() as u64,
        ));
    }
    Ok((steps, stores))
}

fn put_op(index: u32) -> Op<'static> {
    match u8::try_from(index) {
        Ok(small) => Op::BinPut(small),
        Err(_) => Op::LongBinPut(index),
    }
}

fn get_op(index: u32) -> Op<'static> {
    match u8::try_from(index) {
        Ok(small) => Op::BinGet(small),
        Err(_) => Op::LongBinGet(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_entry_value, Limits, Value};

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut stream = b"\x80\x04\x95".to_vec();
        stream.extend_from_slice(&(body.len() as u64).to_le_bytes());
        stream.extend_from_slice(body);
        stream
    }

    // pickle.dumps([1, 'a'], 4): nothing is shared, so every MEMOIZE goes.
    #[test]
    fn unread_stores_are_dropped() {
        let stream = framed(b"]\x94(K\x01\x8c\x01a\x94e.");
        let (value, memo_max) = entry_value_from_pickle(&stream, 1).unwrap();
        assert_eq!(value, b"](K\x01\x8c\x01ae");
        assert_eq!(memo_max, 1);
    }

    // s = 'k'; pickle.dumps({s: s}, 4): the string is shared by key and value.
    #[test]
    fn shared_string_keeps_its_store() {
        let stream = framed(b"}\x94\x8c\x01k\x94h\x01s.");
        let (value, memo_max) = entry_value_from_pickle(&stream, 300).unwrap();
        assert_eq!(value, b"}\x8c\x01kr\x2c\x01\x00\x00j\x2c\x01\x00\x00s");
        assert_eq!(memo_max, 301);
        let decoded = decode_entry_value(&value, &Limits::default()).unwrap();
        assert_eq!(
            decoded,
            Value::Dict(vec![(Value::from("k"), Value::from("k"))])
        );
    }

    // A GET of the latest store of an index, not of an earlier one.
    #[test]
    fn get_reads_the_latest_store_of_its_index() {
        // PUT 0 'a', PUT 0 'b' (overwrites), then GET 0 reads 'b'.
        let stream = b"\x80\x02(\x8c\x01aq\x00\x8c\x01bq\x00h\x00l.";
        let (value, memo_max) = entry_value_from_pickle(stream, 5).unwrap();
        assert_eq!(value, b"(\x8c\x01a\x8c\x01bq\x05h\x05l");
        assert_eq!(memo_max, 6);
    }

    #[test]
    fn malformed_streams_are_errors() {
        let missing = entry_value_from_pickle(b"\x80\x04h\x03.", 1).unwrap_err();
        assert!(matches!(
            missing.kind(),
            ErrorKind::MemoMissing { index: 3, .. }
        ));
        assert_eq!(missing.offset(), 2);
        let trailing = entry_value_from_pickle(b"\x80\x04N.N", 1).unwrap_err();
        assert!(matches!(trailing.kind(), ErrorKind::BadEntryValue { .. }));
        let unstopped = entry_value_from_pickle(b"\x80\x04N", 1).unwrap_err();
        assert!(matches!(unstopped.kind(), ErrorKind::UnexpectedEof { .. }));
        let cut = entry_value_from_pickle(b"\x80\x04\x8c\x05ab", 1).unwrap_err();
        assert_eq!(cut.offset(), 2);
        assert!(entry_value_from_pickle(b"", 1).is_err());
        // The entry records its memo_max as an i32.
        let shared = framed(b"}\x94\x8c\x01k\x94h\x01s.");
        let error = entry_value_from_pickle(&shared, i32::MAX as u32).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::LimitExceeded { .. }));
    }
}
