//! `NativeRemote`: a read-only mmappickle file over HTTP(S), S3 or `file://` URLs, through
//! the remote crate's blocking API, every request made with the Python runtime detached.

use mmappickle::Located;
use mmappickle_remote::{RemoteDict, RemoteOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use std::sync::{Arc, Mutex};

use crate::errors::to_py_err;
use crate::records::{self, ArrayBytes, EntrySummary, GenericValue, MaskedArrayBytes, RemoteArray};

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

/// An array read into memory, as its record.
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
        match py.detach(|| remote.locate(key)).map_err(to_py_err)? {
            Located::Array(place) => Ok(Py::new(
                py,
                RemoteArray {
                    dtype: place.dtype.name(),
                    shape: place.shape,
                },
            )?
            .into_any()),
            Located::Masked { data, mask } => {
                let (data, mask) = py
                    .detach(|| Ok((remote.read_array(data)?, remote.read_array(mask)?)))
                    .map_err(to_py_err)?;
                let data = array_bytes(py, &data)?;
                let mask = array_bytes(py, &mask)?;
                Ok(Py::new(py, MaskedArrayBytes { data, mask })?.into_any())
            }
            Located::Value(place) => {
                let bytes = py
                    .detach(|| remote.read_range(place.range()))
                    .map_err(to_py_err)?;
                Ok(Py::new(py, GenericValue::new(py, place.offset, &bytes, false)?)?.into_any())
            }
        }
    }

    /// The raw bytes (C order) of rows `start..stop` of the plain array of `key` (the whole
    /// array when both are `None`), fetched straight into a new `bytearray` (which numpy
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
        let mut place = py.detach(|| remote.array_place(key)).map_err(to_py_err)?;
        if start.is_some() || stop.is_some() {
            let n_rows = place.shape.first().copied().unwrap_or(0);
            let rows = start.unwrap_or(0)..stop.unwrap_or(n_rows);
            place = place.rows(rows).map_err(to_py_err)?;
        }
        let len = usize::try_from(place.raw_len())
            .map_err(|_| PyValueError::new_err("the array does not fit in memory"))?;
        PyByteArray::new_with(py, len, |buffer| {
            // The new bytearray is not visible to any Python code until it is returned.
            py.detach(|| remote.read_into(&place, buffer))
                .map_err(to_py_err)
        })
    }

    /// `(live keys, file length, the first `limit` live entries)`: what a notebook shows
    /// (heads of values and small generic values are fetched, never an array's data).
    fn summary(&self, py: Python<'_>, limit: usize) -> PyResult<(usize, u64, Vec<EntrySummary>)> {
        let remote = self.remote()?;
        py.detach(|| {
            let value_bytes = |key: &str, _: &_| remote.raw_value(key);
            let listing = remote.listing_without_kinds();
            records::summary(&listing, limit, |key| remote.locate(key), value_bytes)
        })
        .map_err(to_py_err)
    }

    /// Requests made and bytes received since the open: `(requests, bytes)`.
    fn transfer(&self) -> PyResult<(u64, u64)> {
        let transfer = self.remote()?.transfer();
        Ok((transfer.requests, transfer.bytes))
    }
}
