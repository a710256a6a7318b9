//! The value encoding of an mmappickle entry (placeholder).

use crate::{Error, Limits, Value};

/// Encodes `value` as an entry's value bytes with memo indices from `memo_start`;
/// returns the bytes and the next free memo index.
pub fn encode_entry_value(_value: &Value, memo_start: u32) -> (Vec<u8>, u32) {
    (Vec::new(), memo_start)
}

/// Loads an entry's value bytes (no PROTO, FRAME or STOP).
pub fn decode_entry_value(value_bytes: &[u8], limits: &Limits) -> Result<Value, Error> {
    let _ = (value_bytes, limits);
    crate::loads_with(value_bytes, limits)
}
