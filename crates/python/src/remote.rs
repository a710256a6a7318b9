//! `NativeRemote`: a read-only mmappickle file over HTTP(S), S3 or `file://` URLs, through
//! the remote crate's blocking API, every request made with the Python runtime detached.

use mmappickle::{message_with_sources, ValueKind};
use mmappickle_remote::{ErrorKind, RemoteDict, RemoteItem, RemoteOptions};
use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use std::sync::{Arc, Mutex};

use crate::records::{ArrayBytes, GenericValue, MaskedArrayBytes, RemoteArray};

/// A remote file opened for reading (the `RemoteDict` class of the Python half wraps one).
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct NativeRemote {
    /// `None` once closed (the block cache and connections are then released, as soon as
    /// the reads running meanwhile end).
    remote: Mutex<Option<Arc<RemoteDict>>>,
    url: String,
}

fn closed() -> PyErr {
    PyValueError::new_err("I/O operation on a closed RemoteDict")
}

/// The error's message and those of its sources, as the CLI says them.
/// `KeyError(key)` for a missing key, `OSError` for a failed request or a file that changed
/// while it was read, `ValueError` for the rest (a bad URL, a malformed file).
fn to_py_err(error: mmappickle_remote::Error) -> PyErr {
    match error.kind() {
        ErrorKind::KeyNotFound { key } => PyKeyError::new_err(key.clone()),
        ErrorKind::Request(_)
        | ErrorKind::Changed { .. }
        | ErrorKind::BadResponse { .. }
        | ErrorKind::Runtime(_) => PyOSError::new_err(message_with_sources(&error)),
        _ => PyValueError::new_err(message_with_sources(&error)),
    }
}

/// An array read whole, as its record.
fn array_bytes(py: Python<'_>, array: &mmappickle::OwnedArray) -> PyResult<Py<ArrayBytes>> {
    Py::new(
        py,
        ArrayBytes {
            dtype: array.dtype.name(),
            shape: array.shape.clone(),
            raw: PyByteArray::new(py, &array.data).unbind(),
        },
    )
}

impl NativeRemote {
    /// The open remote file (shared with the reads running now).
    fn remote(&self) -> PyResult<Arc<RemoteDict>> {
        let remote = self.remote.lock().map_err(|_| closed())?;
        remote.as_ref().map(Arc::clone).ok_or_else(closed)
    }
}

#[pymethods]
impl NativeRemote {
    /// Opens `url`; `cache_bytes` bounds the block cache (the default when `None`).
    #[new]
    #[pyo3(signature = (url, cache_bytes=None))]
    fn new(py: Python<'_>, url: String, cache_bytes: Option<u64>) -> PyResult<Self> {
        let mut options = RemoteOptions::new();
        if let Some(cache_bytes) = cache_bytes {
            options = options.cache_budget(cache_bytes);
        }
        let remote = py
            .detach(|| RemoteDict::open_with(&url, options))
            .map_err(to_py_err)?;
        Ok(NativeRemote {
            remote: Mutex::new(Some(Arc::new(remote))),
            url,
        })
    }

    /// The URL the file was opened with.
    fn url(&self) -> &str {
        &self.url
    }

    /// Releases the block cache and the connections (later reads raise `ValueError`).
    fn close(&self) -> PyResult<()> {
        *self.remote.lock().map_err(|_| closed())? = None;
        Ok(())
    }

    /// Whether it was closed.
    fn closed(&self) -> PyResult<bool> {
        Ok(self.remote.lock().map_err(|_| closed())?.is_none())
    }

    /// The live keys in file order.
    fn keys(&self) -> PyResult<Vec<String>> {
        Ok(self.remote()?.keys())
    }

    /// The number of live keys.
    fn len(&self) -> PyResult<usize> {
        Ok(self.remote()?.len())
    }

    /// Whether `key` is live.
    fn contains(&self, key: &str) -> PyResult<bool> {
        Ok(self.remote()?.contains_key(key))
    }

    /// The commit number in the file's header.
    fn commit_number(&self) -> PyResult<i32> {
        Ok(self.remote()?.table().commit_number())
    }

    /// What `key` holds: a `GenericValue`, a `RemoteArray` (read it with `read_rows`) or a
    /// `MaskedArrayBytes`.
    fn locate(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        let remote = self.remote()?;
        let entry = remote
            .table()
            .get(key)
            .ok_or_else(|| PyKeyError::new_err(key.to_owned()))?;
        let kind = py.detach(|| remote.value_kind(entry)).map_err(to_py_err)?;
        match kind {
            ValueKind::Array(header) => Ok(Py::new(
                py,
                RemoteArray {
                    dtype: header.dtype.name(),
                    shape: header.shape,
                },
            )?
            .into_any()),
            ValueKind::Masked(_) => match py.detach(|| remote.get(key)) {
                Ok(RemoteItem::Masked { data, mask }) => {
                    let data = array_bytes(py, &data)?;
                    let mask = array_bytes(py, &mask)?;
                    Ok(Py::new(py, MaskedArrayBytes { data, mask })?.into_any())
                }
                Ok(_) => Err(PyValueError::new_err(format!(
                    "key {key:?} changed kind while it was read"
                ))),
                Err(error) => Err(to_py_err(error)),
            },
            // A header numpy would refuse: the remote dict's decoding says where and why.
            ValueKind::Malformed(_) => match py.detach(|| remote.value(key)) {
                Err(error) => Err(to_py_err(error)),
                Ok(_) => Err(PyValueError::new_err(format!(
                    "key {key:?} holds a malformed array"
                ))),
            },
            ValueKind::Generic { .. } => {
                let bytes = py.detach(|| remote.raw_value(key)).map_err(to_py_err)?;
                Ok(Py::new(py, GenericValue::new(py, &bytes))?.into_any())
            }
        }
    }

    /// The raw bytes (C order) of rows `start..stop` of the plain array of `key` (the whole
    /// array when `start` is `None`), fetched straight into a new `bytearray` (which numpy
    /// wraps without a copy), the Python runtime detached while the requests run.
    #[pyo3(signature = (key, start=None, stop=None))]
    fn read_rows<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        start: Option<usize>,
        stop: Option<usize>,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let remote = self.remote()?;
        let header = py.detach(|| remote.array_header(key)).map_err(to_py_err)?;
        let too_large = || PyValueError::new_err("the array does not fit in memory");
        let raw_len = usize::try_from(header.raw_len).map_err(|_| too_large())?;
        let rows = match (start, stop) {
            (None, None) => None,
            (start, stop) => {
                let n_rows = header.shape.first().copied().unwrap_or(0);
                Some(start.unwrap_or(0)..stop.unwrap_or(n_rows))
            }
        };
        let len = match &rows {
            None => raw_len,
            // Rows of equal length: a row is the array's length over its rows.
            Some(rows) => match header.shape.first() {
                Some(&n_rows) if n_rows > 0 && rows.start <= rows.end && rows.end <= n_rows => {
                    (raw_len / n_rows) * (rows.end - rows.start)
                }
                // Out of range: the remote crate says why.
                _ => 0,
            },
        };
        PyByteArray::new_with(py, len, |buffer| {
            // The new bytearray is not visible to any Python code until it is returned.
            py.detach(|| match &rows {
                None => remote.array_into(key, buffer),
                Some(rows) => remote.array_rows_into(key, rows.clone(), buffer),
            })
            .map_err(to_py_err)
        })
    }

    /// Requests made and bytes received since the open: `(requests, bytes)`.
    fn transfer(&self) -> PyResult<(u64, u64)> {
        let transfer = self.remote()?.transfer();
        Ok((transfer.requests, transfer.bytes))
    }
}
