//! Values whose pickle is one scalar opcode (an int, a float, a str, bytes, `None`, `True`,
//! `False`), built as `pickle.loads` builds them, without an unpickler: making and freeing
//! one cost a third of a small value's get.

use mmappickle::Scalar;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyString};
use pyo3::IntoPyObjectExt;

/// The value of a stored value's opcodes when they are one scalar ([`Scalar`]); `None` for
/// anything else, which `pickle.loads` reads.
pub(crate) fn scalar_value(py: Python<'_>, value_bytes: &[u8]) -> Option<PyResult<Py<PyAny>>> {
    Some(match Scalar::from_value_bytes(value_bytes)? {
        Scalar::None => Ok(py.None()),
        Scalar::Bool(flag) => flag.into_py_any(py),
        Scalar::Int(int) => int.into_py_any(py),
        Scalar::Float(float) => Ok(PyFloat::new(py, float).into_any().unbind()),
        Scalar::Str(text) => Ok(PyString::new(py, text).into_any().unbind()),
        Scalar::Bytes(bytes) => Ok(PyBytes::new(py, bytes).into_any().unbind()),
    })
}
