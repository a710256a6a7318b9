//! The value encoding of an mmappickle entry (FORMAT.md, "Generic values").
//!
//! Python's mmappickle stores `pickle.dumps(value, 4)` without `PROTO`,
//! `FRAME` and `STOP`, keeps only the memo slots that some `GET` reads
//! (renumbered from the entry's `memo_start`), and drops every other
//! `MEMOIZE` / `PUT`. A [`Value`] shares nothing, so no `GET` is ever
//! needed: the pickler's memo-free mode writes exactly the bytes Python
//! writes after that renumbering, and the memo stays at `memo_start`.

use crate::pickler::dumps_unframed_without_memo;
use crate::{loads_with, Error, Limits, Value};

/// `PROTO 4`, put before an entry's value bytes to load them as a pickle.
const PROTO_4: [u8; 2] = [0x80, 4];
/// `STOP`, put after them.
const STOP: u8 = b'.';

/// Encodes `value` as an entry's value bytes, memo indices from `memo_start`.
///
/// Returns the bytes and the next free memo index (the entry's `memo_max`).
/// The bytes hold no memo opcode, so the index returned is `memo_start`.
///
/// ```
/// use mmappickle_codec::{encode_entry_value, Value};
///
/// let (bytes, memo_max) = encode_entry_value(&Value::from(vec![1, 2]), 1);
/// assert_eq!(bytes, b"](K\x01K\x02e");
/// assert_eq!(memo_max, 1);
/// ```
pub fn encode_entry_value(value: &Value, memo_start: u32) -> (Vec<u8>, u32) {
    (dumps_unframed_without_memo(value), memo_start)
}

/// Loads an entry's value bytes (no `PROTO`, `FRAME` or `STOP`) within `limits`.
///
/// Error offsets are relative to the start of `value_bytes`; an error found
/// at `value_bytes.len()` means the value ended too early (the offset is
/// clamped there when the loader stumbled on the `STOP` this function adds).
///
/// ```
/// use mmappickle_codec::{decode_entry_value, Limits, Value};
///
/// let value = decode_entry_value(b"](K\x01K\x02e", &Limits::default())?;
/// assert_eq!(value, Value::from(vec![1, 2]));
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
pub fn decode_entry_value(value_bytes: &[u8], limits: &Limits) -> Result<Value, Error> {
    let mut pickle = Vec::with_capacity(value_bytes.len() + PROTO_4.len() + 1);
    pickle.extend_from_slice(&PROTO_4);
    pickle.extend_from_slice(value_bytes);
    pickle.push(STOP);
    loads_with(&pickle, limits).map_err(|error| {
        let offset = error
            .offset()
            .saturating_sub(PROTO_4.len())
            .min(value_bytes.len());
        Error::new(error.kind().clone(), offset)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The memo index comes back unchanged whatever the start.
    #[test]
    fn memo_start_is_returned() {
        for start in [0, 1, 255, 256, u32::MAX] {
            let (_, next) = encode_entry_value(&Value::from("x"), start);
            assert_eq!(next, start);
        }
    }

    // Python mmappickle writes `m['k'] = [1, 'a', (2, 3)]` as these value bytes
    // (read from a file it made; memo_max 1).
    #[test]
    fn matches_python_mmappickle_value_bytes() {
        let value = Value::List(vec![
            Value::Int(1),
            Value::from("a"),
            Value::Tuple(vec![Value::Int(2), Value::Int(3)]),
        ]);
        let (bytes, _) = encode_entry_value(&value, 1);
        assert_eq!(bytes, b"](K\x01\x8c\x01aK\x02K\x03\x86e");
    }
}
