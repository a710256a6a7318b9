//! The value encoding of an mmappickle entry (FORMAT.md, "Generic values").
//!
//! Python's mmappickle stores `pickle.dumps(value, 4)` without `PROTO`,
//! `FRAME` and `STOP`, keeps only the memo slots that some `GET` reads
//! (renumbered from the entry's `memo_start`), and drops every other
//! `MEMOIZE` / `PUT`. A [`Value`] shares nothing, so no `GET` is ever
//! needed: the pickler's memo-free mode writes exactly the bytes Python
//! writes after that renumbering, and the memo stays at `memo_start`.

use crate::pickler::dumps_unframed_without_memo;
use crate::unpickler::load_value_bytes;
use crate::{Error, Limits, Value};

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
/// The bytes must be exactly one value, as `pickle.load` of the whole file
/// needs for the entry's `SETITEM`: a `STOP` inside, a `MARK` left open, or
/// no value or several left on the stack is an
/// [`ErrorKind::BadEntryValue`](crate::ErrorKind::BadEntryValue) (at the
/// `STOP`, or at `value_bytes.len()`). Error offsets are relative to the
/// start of `value_bytes`.
///
/// ```
/// use mmappickle_codec::{decode_entry_value, ErrorKind, Limits, Value};
///
/// let value = decode_entry_value(b"](K\x01K\x02e", &Limits::default())?;
/// assert_eq!(value, Value::from(vec![1, 2]));
///
/// // Two values (`1`, then `2`): `pickle.load` of the file would not give the dict.
/// let error = decode_entry_value(b"K\x01K\x02", &Limits::default()).unwrap_err();
/// assert!(matches!(error.kind(), ErrorKind::BadEntryValue { .. }));
/// assert_eq!(error.offset(), 4);
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
pub fn decode_entry_value(value_bytes: &[u8], limits: &Limits) -> Result<Value, Error> {
    load_value_bytes(value_bytes, limits)
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

    // Value bytes that are not exactly one value are refused, each at the
    // offset where the problem shows: a STOP inside (pickle.load of the file
    // would stop there), two values, none, and a MARK left open.
    #[test]
    fn refuses_what_is_not_exactly_one_value() {
        let cases: [(&[u8], usize, &str); 5] = [
            (b"K\x01.K\x02", 2, "STOP"),
            (b"K\x01.", 2, "STOP"),
            (b"K\x01K\x02", 4, "more than one value"),
            (b"", 0, "no value"),
            (b"](K\x01K\x02", 6, "MARK left open"),
        ];
        for (bytes, offset, problem) in cases {
            let error = decode_entry_value(bytes, &Limits::default()).unwrap_err();
            assert!(
                matches!(error.kind(), crate::ErrorKind::BadEntryValue { .. }),
                "{bytes:?}: {error}"
            );
            assert_eq!(error.offset(), offset as u64, "{bytes:?}: {error}");
            assert!(error.to_string().contains(problem), "{error}");
        }
    }

    // The memo still works across the value: a PUT then a GET of the same index.
    #[test]
    fn memo_inside_one_value_is_fine() {
        let value = decode_entry_value(b"](\x8c\x01a\x94h\x00e", &Limits::default()).unwrap();
        assert_eq!(value, Value::List(vec![Value::from("a"), Value::from("a")]));
    }
}
