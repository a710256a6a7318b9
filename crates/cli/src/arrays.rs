//! Arrays: their JSON digest (`{"ndarray": {dtype, shape, sha256}}`) and their
//! readable summary (dtype, shape, first and last elements), for mapped
//! entries and for arrays that numpy pickled inside generic values.

use mmappickle::{DType, Kind, OwnedArray, OwnedMasked, Value};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::known_forms::NumpyScalar;

/// How many elements a summary shows at each end.
const EDGE_ELEMENTS: usize = 3;

/// `{"dtype", "shape", "sha256"}` of raw C-order bytes.
pub fn digest(dtype: &DType, shape: &[usize], raw: &[u8]) -> Json {
    json!({
        "dtype": dtype.name(),
        "shape": shape,
        "sha256": hex(&Sha256::digest(raw)),
    })
}

/// `{"ndarray": digest}`.
pub fn ndarray_json(dtype: &DType, shape: &[usize], raw: &[u8]) -> Json {
    json!({ "ndarray": digest(dtype, shape, raw) })
}

/// `{"masked": {"data": digest, "mask": digest}}`.
pub fn masked_json(data: Json, mask: Json) -> Json {
    json!({ "masked": { "data": data, "mask": mask } })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The array `value` stands for, when numpy pickled one there (an undecodable
/// array, e.g. of Python objects, stays an ordinary value).
fn owned_array(value: &Value) -> Option<OwnedArray> {
    OwnedArray::from_value(value)?.ok()
}

/// The `{"ndarray": ..}` / `{"masked": ..}` description of `value` when it is
/// an array the way numpy or mmappickle pickles one; `None` otherwise.
pub fn array_json(value: &Value) -> Option<Json> {
    if let Some(OwnedMasked { data, mask }) = OwnedMasked::from_expression(value) {
        return Some(masked_json(
            digest(&data.dtype, &data.shape, &data.data),
            digest(&mask.dtype, &mask.shape, &mask.data),
        ));
    }
    let array = owned_array(value)?;
    Some(ndarray_json(&array.dtype, &array.shape, &array.data))
}

/// A readable summary of `value` when it is an array; `None` otherwise.
pub fn array_repr(value: &Value) -> Option<String> {
    if let Some(OwnedMasked { data, mask }) = OwnedMasked::from_expression(value) {
        return Some(masked_summary(
            &data.dtype,
            &data.shape,
            &data.data,
            &mask.shape,
            &mask.data,
        ));
    }
    let array = owned_array(value)?;
    Some(summary(&array.dtype, &array.shape, &array.data))
}

/// `array(dtype=float64, shape=(2, 3), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])`, with
/// only the first and last elements of a long array.
pub fn summary(dtype: &DType, shape: &[usize], raw: &[u8]) -> String {
    format!(
        "array(dtype={}, shape={}, {})",
        dtype.name(),
        shape_repr(shape),
        elements_repr(dtype, raw)
    )
}

/// `masked_array(dtype=.., shape=.., data=[..], mask=[..])`.
pub fn masked_summary(
    dtype: &DType,
    shape: &[usize],
    data: &[u8],
    mask_shape: &[usize],
    mask: &[u8],
) -> String {
    let mask_text = if mask_shape.is_empty() && !shape.is_empty() {
        // A 0-d mask is numpy's `nomask` written out.
        format!("{} (no mask)", elements_repr(&bool_dtype(), mask))
    } else {
        elements_repr(&bool_dtype(), mask)
    };
    format!(
        "masked_array(dtype={}, shape={}, data={}, mask={})",
        dtype.name(),
        shape_repr(shape),
        elements_repr(dtype, data),
        mask_text
    )
}

fn bool_dtype() -> DType {
    DType::native(Kind::Bool, 1).unwrap_or_else(|| DType::opaque("bool", 1))
}

/// A shape as Python prints a tuple.
pub fn shape_repr(shape: &[usize]) -> String {
    let as_u64: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
    crate::npy::python_tuple_repr(&as_u64)
}

/// The elements, flat: all of them when few, else the first and last three.
fn elements_repr(dtype: &DType, raw: &[u8]) -> String {
    let item_size = dtype.item_size();
    if item_size == 0 {
        return format!("<{} bytes>", raw.len());
    }
    // Only the shown items are touched: a mapped array may be far larger than RAM.
    let n_items = raw.len() / item_size;
    let item = |idx: usize| element_repr(dtype, &raw[idx * item_size..(idx + 1) * item_size]);
    let shown: Vec<String> = if n_items <= 2 * EDGE_ELEMENTS {
        (0..n_items).map(item).collect()
    } else {
        (0..EDGE_ELEMENTS)
            .map(item)
            .chain(std::iter::once("...".to_owned()))
            .chain((n_items - EDGE_ELEMENTS..n_items).map(item))
            .collect()
    };
    format!("[{}]", shown.join(", "))
}

fn element_repr(dtype: &DType, item: &[u8]) -> String {
    match NumpyScalar::decode(dtype, item) {
        Some(element) => element.element_text(),
        None => format!("0x{}", hex(item)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtype(name: &str) -> DType {
        DType::parse(name).unwrap()
    }

    #[test]
    fn long_arrays_show_their_ends() {
        let raw: Vec<u8> = (0..10i32).flat_map(|n| n.to_le_bytes()).collect();
        assert_eq!(
            summary(&dtype("<i4"), &[2, 5], &raw),
            "array(dtype=int32, shape=(2, 5), [0, 1, 2, ..., 7, 8, 9])"
        );
        let raw: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            summary(&dtype("float64"), &[2], &raw),
            "array(dtype=float64, shape=(2,), [1.5, -2.0])"
        );
    }

    #[test]
    fn elements_of_every_kind_read_right() {
        assert_eq!(element_repr(&dtype(">i4"), &(-3i32).to_be_bytes()), "-3");
        assert_eq!(element_repr(&dtype("uint16"), &[0xff, 0xff]), "65535");
        assert_eq!(element_repr(&dtype("int8"), &[0x80]), "-128");
        assert_eq!(element_repr(&dtype("float16"), &[0x00, 0x3c]), "1.0");
        assert_eq!(element_repr(&dtype("float16"), &[0x00, 0xc0]), "-2.0");
        assert_eq!(element_repr(&dtype(">f8"), &0.25f64.to_be_bytes()), "0.25");
        let complex: Vec<u8> = [1.0f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(element_repr(&dtype("complex64"), &complex), "(1.0-2.0j)");
        assert_eq!(element_repr(&dtype("bool"), &[1]), "True");
        assert_eq!(element_repr(&dtype("|S3"), b"ab\0"), "b'ab'");
        let text: Vec<u8> = "hé\0"
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        assert_eq!(element_repr(&dtype("<U3"), &text), "'hé'");
    }

    #[test]
    fn digests_hash_the_raw_bytes() {
        // sha256 of the empty input.
        assert_eq!(
            digest(&dtype("float64"), &[0, 3], &[]),
            json!({"dtype": "float64", "shape": [0, 3],
                   "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
        );
    }
}
