//! Fuzz target bodies: the cargo-fuzz `array` target in `fuzz/` is one call
//! into [`array`], so `cargo test` replays exactly what the fuzzer ran.
//!
//! A body returns `Err(description)` when a promise of this crate fails on
//! the input; a panic inside it is a finding too. Not part of the public API
//! (compiled with the `fuzzing` feature, or in this crate's own tests).

use mmappickle_codec::{decode_entry_value, Limits};

use crate::{
    checked_raw_len, classify, ArrayHeader, DType, OwnedArray, ValueKind, COMPATIBLE_PREFIX,
    MASKED_PREFIX,
};

/// What a fuzz body reports when a property fails.
pub type Verdict = Result<(), String>;

/// `array` target: the array expression parsers on `data` as an entry's
/// value, with the fixed 70-byte prefix prepended (so the fuzzer starts at
/// the raw bytes' opcode), and with the masked prefix before that; the dtype
/// parser on `data` as text; numpy's own array pickles through
/// [`OwnedArray::from_value`].
///
/// Checked: the classifier's header describes raw bytes inside the value whose
/// length is `product(shape) * item_size`; a malformed verdict is one of the
/// malformed-header errors; a parsed dtype's name parses back to it.
pub fn array(data: &[u8]) -> Verdict {
    let with_prefix = [&COMPATIBLE_PREFIX[..], data].concat();
    let masked = [&MASKED_PREFIX[..], &COMPATIBLE_PREFIX[..], data].concat();
    for value in [data, &with_prefix, &masked] {
        match classify(&mut &value[..]) {
            Ok(ValueKind::Array(header)) => check_header(&header, value.len())?,
            Ok(ValueKind::Masked(masked)) => {
                check_header(&masked.data, value.len())?;
                check_header(&masked.mask, value.len())?;
                if masked.end != value.len() as u64 {
                    return Err(format!(
                        "masked array ends at {} of {}",
                        masked.end,
                        value.len()
                    ));
                }
            }
            Ok(ValueKind::Malformed(error)) if !error.is_malformed_header() => {
                return Err(format!("malformed for a reason of another kind: {error}"));
            }
            Ok(_) => {}
            Err(error) => return Err(format!("classifying bytes in memory failed: {error}")),
        }
    }
    if let Ok(name) = std::str::from_utf8(data) {
        check_dtype_name(name)?;
    }
    // The unpickler has a target of its own: small limits keep copy bombs
    // from slowing this one down.
    let limits = Limits {
        max_elements: 1 << 16,
        ..Limits::default()
    };
    if let Ok(value) = decode_entry_value(data, &limits) {
        if let Some(Ok(array)) = OwnedArray::from_value(&value) {
            let _elements = array.len();
        }
    }
    Ok(())
}

/// The raw bytes a header points at lie inside the value and have the length
/// that its dtype and shape give.
fn check_header(header: &ArrayHeader, value_len: usize) -> Verdict {
    let expected_len = checked_raw_len(&header.dtype, &header.shape);
    if expected_len != Some(header.raw_len) {
        return Err(format!(
            "{header:?}: raw_len {} but dtype and shape give {expected_len:?}",
            header.raw_len
        ));
    }
    let raw_end = header.raw_offset.checked_add(header.raw_len);
    if raw_end.is_none_or(|raw_end| raw_end > header.end) || header.end > value_len as u64 {
        return Err(format!(
            "{header:?}: raw bytes or end outside the {value_len}-byte value"
        ));
    }
    Ok(())
}

/// A dtype parsed from text has a name that parses back to it.
fn check_dtype_name(name: &str) -> Verdict {
    let Ok(dtype) = DType::parse(name) else {
        return Ok(());
    };
    let printed = dtype.name();
    match DType::parse(&printed) {
        Ok(reparsed) if reparsed == dtype => Ok(()),
        other => Err(format!(
            "dtype {name:?} prints as {printed:?}, which parses as {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_array_value, ArrayEncoding, ArrayLayout};

    // A valid array expression passes every check, as value and after the prefix.
    #[test]
    fn valid_array_passes() {
        let data = [1u16, 2, 3, 4, 5, 6];
        let layout =
            ArrayLayout::for_slice(&data, &[2, 3], ArrayEncoding::Compatible).expect("layout");
        let value = layout
            .to_value_bytes(bytemuck::cast_slice(&data))
            .expect("value bytes");
        assert!(matches!(parse_array_value(&value), Ok(Some(_))));
        assert_eq!(array(&value), Ok(()));
        let after_prefix = value
            .get(COMPATIBLE_PREFIX.len()..)
            .expect("longer than the prefix");
        assert_eq!(array(after_prefix), Ok(()));
    }

    // Short and empty inputs are not arrays and break nothing.
    #[test]
    fn short_inputs_pass() {
        for input in [
            &b""[..],
            b"\x8e",
            b"float64",
            b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert_eq!(array(input), Ok(()), "{input:?}");
        }
    }
}
