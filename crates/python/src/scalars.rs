//! Values whose pickle is one scalar opcode (an int, a float, a str, bytes, `None`, `True`,
//! `False`), built as `pickle.loads` builds them, without an unpickler: making and freeing
//! one cost a third of a small value's get.

use mmappickle::codec::{parse_op, Op};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyString};
use pyo3::IntoPyObjectExt;

/// The value of a stored value's opcodes (without `PROTO`, `FRAME`, `STOP`) when they are one
/// scalar opcode, then at most the op that memoizes it; `None` for anything else, which
/// `pickle.loads` reads. Text that is not strict UTF-8 (a lone surrogate, which pickle
/// decodes with `surrogatepass`) is left to `pickle.loads` too.
pub(crate) fn scalar_value(py: Python<'_>, value_bytes: &[u8]) -> Option<PyResult<Py<PyAny>>> {
    let (op, op_len) = parse_op(value_bytes).ok()?;
    let rest = &value_bytes[op_len..];
    if !rest.is_empty() {
        let (memo, memo_len) = parse_op(rest).ok()?;
        let memoizes = matches!(memo, Op::Memoize | Op::BinPut(_) | Op::LongBinPut(_));
        if !memoizes || memo_len != rest.len() {
            return None;
        }
    }
    Some(match op {
        Op::BinInt1(int) => int.into_py_any(py),
        Op::BinInt2(int) => int.into_py_any(py),
        Op::BinInt(int) => int.into_py_any(py),
        Op::Long1(bytes) => int_of_le_bytes(bytes)?.into_py_any(py),
        Op::BinFloat(float) => Ok(PyFloat::new(py, float).into_any().unbind()),
        Op::ShortBinUnicode(text) | Op::BinUnicode(text) => {
            Ok(PyString::new(py, text).into_any().unbind())
        }
        Op::ShortBinBytes(bytes) | Op::BinBytes(bytes) => {
            Ok(PyBytes::new(py, bytes).into_any().unbind())
        }
        Op::None => Ok(py.None()),
        Op::NewTrue => true.into_py_any(py),
        Op::NewFalse => false.into_py_any(py),
        _ => return None,
    })
}

/// The int of `LONG1`'s little-endian two's complement bytes, when it fits in an `i64`.
fn int_of_le_bytes(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 8 {
        return None;
    }
    let negative = bytes.last().is_some_and(|&last| last & 0x80 != 0);
    let mut word = [if negative { 0xff } else { 0 }; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(word))
}
