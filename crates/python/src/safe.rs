//! Safe loading: an entry's value decoded by the codec and built as Python objects directly,
//! without Python's unpickler, so nothing a file names is ever imported or run.

use mmappickle::{decode_entry_value, Construct, Global, Limits, Object, OwnedArray, Value};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyByteArray, PyBytes, PyComplex, PyDict, PyFrozenSet, PyInt, PyList, PySet, PyTuple,
};

use crate::errors::UnsafeValueError;

/// Decodes an entry's value bytes into builtin Python objects (`dict`, `list`, `tuple`,
/// `set`, `frozenset`, `str`, `bytes`, `bytearray`, `int`, `float`, `complex`, `bool`,
/// `None`) and numpy arrays pickled by numpy, which `make_array(dtype, shape, raw)` builds.
/// Any other global raises `UnsafeValueError` naming it; a malformed value, `ValueError`.
#[pyfunction]
pub(crate) fn safe_loads<'py>(
    py: Python<'py>,
    value_bytes: &[u8],
    make_array: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let value = decode_entry_value(value_bytes, &Limits::default())
        .map_err(|error| PyValueError::new_err(error.to_string()))?;
    Builder { py, make_array }.build(&value)
}

struct Builder<'py> {
    py: Python<'py>,
    make_array: Bound<'py, PyAny>,
}

fn global_name(value: &Value) -> String {
    match value {
        Value::Global(Global { module, name }) => format!("{module}.{name}"),
        other => format!("a call of a {}", other.kind_name()),
    }
}

fn unsafe_global(name: String) -> PyErr {
    UnsafeValueError::new_err(format!(
        "refusing to build {name}: a safe mmapdict builds only builtin values and numpy arrays"
    ))
}

impl<'py> Builder<'py> {
    fn build(&self, value: &Value) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        Ok(match value {
            Value::None => py.None().into_bound(py),
            Value::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
            Value::Int(int) => int.into_pyobject(py)?.into_any(),
            Value::BigInt(big) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("signed", true)?;
                let raw = PyBytes::new(py, big.to_le_bytes());
                py.get_type::<PyInt>()
                    .call_method("from_bytes", (raw, "little"), Some(&kwargs))?
            }
            Value::Float(float) => float.into_pyobject(py)?.into_any(),
            Value::Str(text) => text.into_pyobject(py)?.into_any(),
            Value::Bytes(bytes) => PyBytes::new(py, bytes).into_any(),
            Value::ByteArray(bytes) => PyByteArray::new(py, bytes).into_any(),
            Value::List(items) => PyList::new(py, self.build_all(items)?)?.into_any(),
            Value::Tuple(items) => PyTuple::new(py, self.build_all(items)?)?.into_any(),
            Value::Set(items) => PySet::new(py, self.build_all(items)?)?.into_any(),
            Value::FrozenSet(items) => PyFrozenSet::new(py, self.build_all(items)?)?.into_any(),
            Value::Dict(pairs) => {
                let dict = PyDict::new(py);
                for (key, item) in pairs {
                    dict.set_item(self.build(key)?, self.build(item)?)?;
                }
                dict.into_any()
            }
            Value::Global(_) => return Err(unsafe_global(global_name(value))),
            Value::Object(object) => self.build_object(value, object)?,
        })
    }

    fn build_all(&self, items: &[Value]) -> PyResult<Vec<Bound<'py, PyAny>>> {
        items.iter().map(|item| self.build(item)).collect()
    }

    /// `complex(re, im)` and numpy arrays; every other object is refused.
    fn build_object(&self, value: &Value, object: &Object) -> PyResult<Bound<'py, PyAny>> {
        if let Some(array) = OwnedArray::from_value(value) {
            let array = array.map_err(|error| PyValueError::new_err(error.to_string()))?;
            let raw = PyBytes::new(self.py, &array.data);
            return self
                .make_array
                .call1((array.dtype.name(), array.shape.clone(), raw));
        }
        if let (Value::Global(global), Construct::Reduce, [real, imag]) =
            (&object.callable, object.construct, object.args.as_slice())
        {
            let is_complex = matches!(global.module.as_str(), "builtins" | "__builtin__")
                && global.name == "complex";
            let plain = object.kwargs.is_empty()
                && object.list_items.is_empty()
                && object.dict_items.is_empty()
                && object.state.is_none();
            if let (true, true, Some(real), Some(imag)) =
                (is_complex, plain, real.as_f64(), imag.as_f64())
            {
                return Ok(PyComplex::from_doubles(self.py, real, imag).into_any());
            }
        }
        Err(unsafe_global(global_name(&object.callable)))
    }
}
