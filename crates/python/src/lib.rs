//! `mmappickle._native`: the Rust half of the Python package `mmappickle` (distribution
//! `mmappickle-rs`), a drop-in for Python's `mmappickle` 1.0.
//!
//! Everything the file format needs happens here, through the [`mmappickle`] facade: opening,
//! locking, the entry table, framing values pickled by Python's `pickle`, writing arrays,
//! finding where an array's bytes are, vacuum, fsck, and the safe decoding of values that
//! never runs Python's unpickler. The Python half (`python/mmappickle/`) is glue: the
//! `mmapdict` class, `numpy.memmap` construction, `pickle.dumps` / `loads` calls.
//!
//! Built by maturin (`pip install ./crates/python`) as one abi3 wheel for CPython >= 3.9;
//! tested by the pytest suite under `crates/python/tests`, which `cargo xtask test` runs.

#![deny(missing_docs)]

mod errors;
mod remote;
mod safe;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use mmappickle::{ArrayEncoding, ArrayPlace, DType, EmptyArray, Located, MmapDict};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::{to_py_err, UnsafeValueError};

/// An open mmappickle file (the `mmapdict` class of the Python half wraps one).
#[pyclass(module = "mmappickle._native", frozen)]
struct NativeDict {
    /// `None` once closed.
    dict: Mutex<Option<MmapDict>>,
    /// The encoding of arrays and stubs written.
    encoding: ArrayEncoding,
}

fn closed() -> PyErr {
    PyValueError::new_err("I/O operation on a closed mmapdict")
}

fn parse_dtype(name: &str) -> PyResult<DType> {
    DType::parse(name).map_err(|error| PyValueError::new_err(error.to_string()))
}

/// `(data_offset, dtype name, shape)` of an array's raw bytes.
fn place_tuple<'py>(py: Python<'py>, place: &ArrayPlace) -> PyResult<Bound<'py, PyTuple>> {
    (place.data_offset, place.dtype.name(), place.shape.clone()).into_pyobject(py)
}

/// What a key holds, as the Python half reads it: `("generic", bytes)`, `("array", place)`
/// or `("masked", data place, mask place)`.
fn located_tuple<'py>(py: Python<'py>, located: &Located) -> PyResult<Bound<'py, PyTuple>> {
    match located {
        Located::Value(bytes) => ("generic", PyBytes::new(py, bytes)).into_pyobject(py),
        Located::Array(place) => ("array", place_tuple(py, place)?).into_pyobject(py),
        Located::Masked { data, mask } => {
            ("masked", place_tuple(py, data)?, place_tuple(py, mask)?).into_pyobject(py)
        }
    }
}

/// One value of [`NativeDict::insert_many`]: `(kind, key, dtype, shape, payload, mask)`.
type NewValueTuple<'py> = (
    String,
    String,
    String,
    Vec<usize>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// A value of [`NativeDict::insert_many`], checked before the batch begins.
enum NewValue<'a, 'py> {
    /// A whole pickle stream.
    Pickle(Cow<'a, [u8]>),
    /// An array whose raw bytes a Python callable writes.
    Array(DType, &'a Bound<'py, PyAny>),
    /// A masked array: its data's and its mask's raw bytes.
    Masked(DType, Cow<'a, [u8]>, Cow<'a, [u8]>),
    /// A stub.
    Stub(DType),
}

/// Writes the raw bytes of an array with the Python callable `write_raw(fd, offset,
/// length)`; a Python exception it raises is kept in `python_error` (and is the insert's
/// error).
fn call_writer(
    write_raw: &Bound<'_, PyAny>,
    python_error: &mut Option<PyErr>,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    match write_raw.call1((file.as_raw_fd(), offset, len)) {
        Ok(_) => Ok(()),
        Err(error) => {
            let message = error.to_string();
            *python_error = Some(error);
            Err(std::io::Error::other(message))
        }
    }
}

/// The error of an insert whose writer may have raised: the Python exception first.
fn insert_result<R>(inserted: PyResult<R>, python_error: Option<PyErr>) -> PyResult<R> {
    match (inserted, python_error) {
        (Err(_), Some(error)) => Err(error),
        (inserted, _) => inserted,
    }
}

impl NativeDict {
    /// The dict (`None` once closed), waiting for another thread's operation with the Python
    /// runtime detached.
    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Option<MmapDict>>> {
        self.dict
            .lock_py_attached(py)
            .map_err(|_| PyValueError::new_err("mmapdict poisoned by a panic"))
    }

    /// Runs `operation` on the open dict, the Python runtime attached (short operations).
    fn with<R>(
        &self,
        py: Python<'_>,
        operation: impl FnOnce(&mut MmapDict) -> Result<R, mmappickle::Error>,
    ) -> PyResult<R> {
        let mut guard = self.lock(py)?;
        let dict = guard.as_mut().ok_or_else(closed)?;
        operation(dict).map_err(to_py_err)
    }

    /// Runs `operation` on the open dict with the Python runtime detached (long operations:
    /// other Python threads run meanwhile).
    fn detached<R: Send>(
        &self,
        py: Python<'_>,
        operation: impl FnOnce(&mut MmapDict) -> Result<R, mmappickle::Error> + Send,
    ) -> PyResult<R> {
        let mut guard = self.lock(py)?;
        let dict = guard.as_mut().ok_or_else(closed)?;
        py.detach(|| operation(dict)).map_err(to_py_err)
    }
}

#[pymethods]
impl NativeDict {
    /// Opens `path` (read-write creates it; a plain pickle of a dict is converted).
    #[new]
    #[pyo3(signature = (path, readonly, portable, allow_damaged))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        readonly: bool,
        portable: bool,
        allow_damaged: bool,
    ) -> PyResult<Self> {
        let encoding = if portable {
            ArrayEncoding::Portable
        } else {
            ArrayEncoding::Compatible
        };
        let options = MmapDict::options()
            .readonly(readonly)
            .encoding(encoding)
            .allow_damaged(allow_damaged);
        let dict = py.detach(|| options.open(&path)).map_err(to_py_err)?;
        Ok(NativeDict {
            dict: Mutex::new(Some(dict)),
            encoding,
        })
    }

    /// The path the file was opened with.
    fn path(&self, py: Python<'_>) -> PyResult<PathBuf> {
        self.with(py, |dict| Ok(dict.path().to_path_buf()))
    }

    /// Whether the file was opened read-only.
    fn readonly(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |dict| Ok(dict.is_readonly()))
    }

    /// Whether the dict was closed.
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.is_none())
    }

    /// Closes the file (later operations raise `ValueError`).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        *self.lock(py)? = None;
        Ok(())
    }

    /// The live keys in file order.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |dict| dict.keys())
    }

    /// The number of live keys.
    fn len(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |dict| dict.len())
    }

    /// Whether `key` is live.
    fn contains(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.with(py, |dict| dict.contains_key(key))
    }

    /// The commit number in the file's header.
    fn commit_number(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |dict| dict.commit_number())
    }

    /// Writes the commit number.
    fn set_commit_number(&self, py: Python<'_>, commit_number: i32) -> PyResult<()> {
        self.with(py, |dict| dict.set_commit_number(commit_number))
    }

    /// Deletes `key`; returns whether it was there.
    fn remove(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.with(py, |dict| dict.remove(key))
    }

    /// Removes deleted entries: `(removed entries, length before, length after)`.
    fn vacuum(&self, py: Python<'_>) -> PyResult<(usize, u64, u64)> {
        self.detached(py, |dict| {
            let report = dict.vacuum()?;
            Ok((report.removed_entries, report.len_before, report.len_after))
        })
    }

    /// Repairs a damaged file: `(kept entries, dropped bytes, dropped key or None)`.
    fn fsck(&self, py: Python<'_>) -> PyResult<(usize, u64, Option<String>)> {
        self.detached(py, |dict| {
            let report = dict.fsck()?;
            Ok((
                report.kept_entries,
                report.dropped_bytes,
                report.dropped_key,
            ))
        })
    }

    /// Where the file's end is torn (`None` when it is not): a read-only handle reads the
    /// complete entries; a read-write one repaired the tail at its open.
    fn torn_at(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.with(py, |dict| dict.torn_at())
    }

    /// Calls `callback()` while this handle holds the file's exclusive lock (a batch with no
    /// change, dropped without a commit), and returns what it returns: the Python half
    /// rewrites a file opened from a file object in place under it. The handle reads the
    /// file's table again at its next operation.
    fn locked(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let mut guard = self.lock(py)?;
        let dict = guard.as_mut().ok_or_else(closed)?;
        let transaction = dict.transaction().map_err(to_py_err)?;
        let result = callback.call0().map(Bound::unbind);
        drop(transaction);
        result
    }

    /// What `key` holds: `("generic", bytes)`, `("array", place)` or `("masked", data place,
    /// mask place)`, a place being `(data_offset, dtype name, shape)`.
    fn locate<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyTuple>> {
        located_tuple(py, &self.with(py, |dict| dict.locate(key))?)
    }

    /// Every live key with what it holds (as `locate`), in file order, all from one read
    /// snapshot of the file (one shared lock).
    fn locate_all<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyTuple>)>> {
        let located = self.with(py, |dict| {
            let snapshot = dict.read()?;
            snapshot
                .keys()?
                .into_iter()
                .map(|key| {
                    let located = snapshot.locate(&key)?;
                    Ok((key, located))
                })
                .collect::<Result<Vec<_>, mmappickle::Error>>()
        })?;
        located
            .into_iter()
            .map(|(key, located)| Ok((key, located_tuple(py, &located)?)))
            .collect()
    }

    /// Stores many values in one batch (one lock, one commit: all of them or, on an error,
    /// none). Each is `(kind, key, dtype, shape, payload, mask)`: `("pickle", key, "", [],
    /// stream, None)`, `("array", key, dtype, shape, write_raw, None)`, `("masked", key,
    /// dtype, shape, data bytes, mask bytes)` or `("stub", key, dtype, shape, None, None)`.
    fn insert_many(&self, py: Python<'_>, values: Vec<NewValueTuple<'_>>) -> PyResult<()> {
        let new_values = values
            .iter()
            .map(|(kind, key, dtype, shape, payload, mask)| {
                let value = match kind.as_str() {
                    "pickle" => NewValue::Pickle(payload.extract()?),
                    "array" => NewValue::Array(parse_dtype(dtype)?, payload),
                    "masked" => {
                        NewValue::Masked(parse_dtype(dtype)?, payload.extract()?, mask.extract()?)
                    }
                    "stub" => NewValue::Stub(parse_dtype(dtype)?),
                    _ => {
                        let message = format!("unknown kind of value {kind:?}");
                        return Err(PyValueError::new_err(message));
                    }
                };
                Ok((key.as_str(), shape.as_slice(), value))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let mut python_error = None;
        let inserted = self.with(py, |dict| {
            dict.write(|tx| {
                for (key, shape, value) in new_values {
                    match value {
                        NewValue::Pickle(stream) => tx.insert_pickle(key, &stream)?,
                        NewValue::Array(dtype, write_raw) => {
                            tx.insert_array_in_place(key, &dtype, shape, |file, offset, len| {
                                call_writer(write_raw, &mut python_error, file, offset, len)
                            })?
                        }
                        NewValue::Masked(dtype, data, mask) => {
                            tx.insert_masked_bytes(key, &dtype, shape, &data, &mask)?
                        }
                        NewValue::Stub(dtype) => {
                            let stub = EmptyArray::with_dtype(dtype, shape).encoding(self.encoding);
                            tx.insert_stub(key, stub)?
                        }
                    }
                }
                Ok(())
            })
        });
        insert_result(inserted, python_error)
    }
}

/// Whether the file at `path` starts with the mmappickle header (a plain pickle does not).
#[pyfunction]
fn is_container(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
    py.detach(|| MmapDict::is_container(&path))
        .map_err(to_py_err)
}

/// The module `mmappickle._native`.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<NativeDict>()?;
    module.add_class::<remote::NativeRemote>()?;
    module.add("UnsafeValueError", py.get_type::<UnsafeValueError>())?;
    module.add_function(wrap_pyfunction!(safe::safe_loads, module)?)?;
    module.add_function(wrap_pyfunction!(is_container, module)?)?;
    Ok(())
}
