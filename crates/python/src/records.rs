//! The typed records that cross the boundary between the Rust half and the Python half: what
//! a key holds (`GenericValue`, `ArrayPlace`, `MaskedPlace`; over a URL, `RemoteArray` and
//! `ArrayBytes` / `MaskedArrayBytes`), and the values a batch stores (`NewPickle`,
//! `NewArray`, `NewMasked`, `NewStub`, `NewWritten`), and what a summary of the entries shows
//! (`EntrySummary`). Each is a small frozen class whose fields the `.pyi` describes.

use std::fmt::Write as _;

use mmappickle::{
    decode_entry_value, DType, ErrorKind, Limits, Listing, Located, ValuePlace, VALUE_PICKLE_HEAD,
    VALUE_PICKLE_TAIL,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

pub(crate) fn parse_dtype(name: &str) -> PyResult<DType> {
    DType::parse(name).map_err(|error| PyValueError::new_err(error.to_string()))
}

/// `PROTO 4`, `value_bytes`, `STOP`: the pickle of an entry's value alone.
pub(crate) fn value_pickle<'py>(
    py: Python<'py>,
    value_bytes: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let (pickle, ()) = value_pickle_with(py, value_bytes.len(), |buffer| {
        buffer.copy_from_slice(value_bytes);
    })?;
    Ok(pickle)
}

/// The whole pickle of a value of `value_len` bytes that `fill` writes into the buffer it
/// gets, with what `fill` returned.
pub(crate) fn value_pickle_with<'py, R: Default>(
    py: Python<'py>,
    value_len: usize,
    fill: impl FnOnce(&mut [u8]) -> R,
) -> PyResult<(Bound<'py, PyBytes>, R)> {
    let (head, tail) = (VALUE_PICKLE_HEAD.len(), VALUE_PICKLE_TAIL.len());
    let mut filled = R::default();
    let pickle = PyBytes::new_with(py, head + value_len + tail, |buffer| {
        let end = buffer.len() - tail;
        buffer[..head].copy_from_slice(&VALUE_PICKLE_HEAD);
        filled = fill(&mut buffer[head..end]);
        buffer[end..].copy_from_slice(&VALUE_PICKLE_TAIL);
        Ok(())
    })?;
    Ok((pickle, filled))
}

/// A generic value: its bytes as stored (pickle opcodes without `PROTO`, `FRAME`, `STOP`),
/// kept as the whole pickle of the value alone, which `pickle.loads` reads.
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct GenericValue {
    pickle: Py<PyBytes>,
    /// Where the bytes are in the file, as the library's picklers receive them in
    /// `is_valid(offset, length)` and `read(offset, length)`.
    #[pyo3(get)]
    offset: u64,
    #[pyo3(get)]
    length: u64,
    /// Whether the value is an array expression (read as a generic value when the handle
    /// has no array pickler): built by the Rust decoder, which reads the library's form on
    /// every numpy, where `pickle.loads` of it fails from numpy 2.3 on.
    #[pyo3(get)]
    holds_array: bool,
}

impl GenericValue {
    pub(crate) fn new(
        py: Python<'_>,
        offset: u64,
        value_bytes: &[u8],
        holds_array: bool,
    ) -> PyResult<Self> {
        Ok(GenericValue {
            pickle: value_pickle(py, value_bytes)?.unbind(),
            offset,
            length: value_bytes.len() as u64,
            holds_array,
        })
    }
}

#[pymethods]
impl GenericValue {
    /// The value's bytes as stored in the file.
    #[getter]
    fn value_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let pickle = self.pickle.as_bytes(py);
        let value_bytes = pickle
            .get(VALUE_PICKLE_HEAD.len()..pickle.len().saturating_sub(VALUE_PICKLE_TAIL.len()))
            .unwrap_or_default();
        PyBytes::new(py, value_bytes)
    }

    /// A whole pickle of the value alone, for `pickle.loads`.
    #[getter]
    fn pickle(&self, py: Python<'_>) -> Py<PyBytes> {
        self.pickle.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let whole = self.pickle.as_bytes(py).len();
        let value_len = whole.saturating_sub(VALUE_PICKLE_HEAD.len() + VALUE_PICKLE_TAIL.len());
        format!("GenericValue(<{value_len} bytes>)")
    }
}

/// Where an array's raw bytes (C order) are in the file, to map them.
#[pyclass(module = "mmappickle._native", frozen, get_all)]
pub(crate) struct ArrayPlace {
    /// Offset of the first raw byte (any alignment).
    data_offset: u64,
    /// numpy's name of the dtype.
    dtype: String,
    /// The shape.
    shape: Vec<usize>,
    /// `(device, inode)` of the file the place is in: the handle's map of the file serves
    /// it only while it maps that file (a vacuum replaces it).
    file_id: (u64, u64),
}

impl ArrayPlace {
    pub(crate) fn new(place: mmappickle::ArrayPlace, file_id: (u64, u64)) -> Self {
        ArrayPlace {
            data_offset: place.data_offset,
            dtype: place.dtype.name(),
            shape: place.shape,
            file_id,
        }
    }
}

#[pymethods]
impl ArrayPlace {
    fn __repr__(&self) -> String {
        format!(
            "ArrayPlace(data_offset={}, dtype={:?}, shape={:?})",
            self.data_offset, self.dtype, self.shape
        )
    }
}

/// A masked array: the places of its data and of its mask (`bool`, the data's shape, or 0-d
/// when the array was written without a mask).
#[pyclass(module = "mmappickle._native", frozen, get_all)]
pub(crate) struct MaskedPlace {
    pub(crate) data: Py<ArrayPlace>,
    pub(crate) mask: Py<ArrayPlace>,
}

/// A remote plain array, its bytes not read yet (`NativeRemote.read_rows` reads them).
#[pyclass(module = "mmappickle._native", frozen, get_all)]
pub(crate) struct RemoteArray {
    pub(crate) dtype: String,
    pub(crate) shape: Vec<usize>,
}

/// An array read whole: its dtype name, shape and raw bytes (C order).
#[pyclass(module = "mmappickle._native", frozen, get_all)]
pub(crate) struct ArrayBytes {
    pub(crate) dtype: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) raw: Py<PyByteArray>,
}

/// A masked array read whole.
#[pyclass(module = "mmappickle._native", frozen, get_all)]
pub(crate) struct MaskedArrayBytes {
    pub(crate) data: Py<ArrayBytes>,
    pub(crate) mask: Py<ArrayBytes>,
}

/// A value pickled by Python: a whole pickle stream (`pickle.dumps(value, 4)`).
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct NewPickle {
    pub(crate) key: String,
    pub(crate) stream: Py<PyBytes>,
}

#[pymethods]
impl NewPickle {
    #[new]
    fn new(key: String, stream: Py<PyBytes>) -> Self {
        NewPickle { key, stream }
    }
}

/// An array whose raw bytes `write_raw(fd, offset, length)` writes into the file.
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct NewArray {
    pub(crate) key: String,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    pub(crate) write_raw: Py<PyAny>,
}

#[pymethods]
impl NewArray {
    #[new]
    fn new(key: String, dtype: &str, shape: Vec<usize>, write_raw: Py<PyAny>) -> PyResult<Self> {
        Ok(NewArray {
            key,
            dtype: parse_dtype(dtype)?,
            shape,
            write_raw,
        })
    }
}

/// A masked array: the raw bytes (C order) of its data and of its mask.
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct NewMasked {
    pub(crate) key: String,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Py<PyBytes>,
    pub(crate) mask: Py<PyBytes>,
}

#[pymethods]
impl NewMasked {
    #[new]
    fn new(
        key: String,
        dtype: &str,
        shape: Vec<usize>,
        data: Py<PyBytes>,
        mask: Py<PyBytes>,
    ) -> PyResult<Self> {
        Ok(NewMasked {
            key,
            dtype: parse_dtype(dtype)?,
            shape,
            data,
            mask,
        })
    }
}

/// A stub: an array of `dtype` and `shape` whose bytes are a hole in the file.
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct NewStub {
    pub(crate) key: String,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
}

#[pymethods]
impl NewStub {
    #[new]
    fn new(key: String, dtype: &str, shape: Vec<usize>) -> PyResult<Self> {
        Ok(NewStub {
            key,
            dtype: parse_dtype(dtype)?,
            shape,
        })
    }
}

/// A value that `write(fd, value_offset, memo_start) -> (length, memo_max)` writes itself at
/// its final place (a pickler class of the Python library's kind); its bytes are checked by
/// the codec before the commit.
#[pyclass(module = "mmappickle._native", frozen)]
pub(crate) struct NewWritten {
    pub(crate) key: String,
    pub(crate) write: Py<PyAny>,
}

#[pymethods]
impl NewWritten {
    #[new]
    fn new(key: String, write: Py<PyAny>) -> Self {
        NewWritten { key, write }
    }
}

/// Generic values up to this long are decoded for their repr in a summary; longer ones are
/// not read.
const SUMMARY_DECODED_LEN: u64 = 64 * 1024;

/// The characters of a value's repr that a summary keeps.
const SUMMARY_REPR_CHARS: usize = 100;

/// One live entry as a summary shows it (a notebook's table of the entries), found without
/// reading any array's data.
#[pyclass(module = "mmappickle._native", frozen, get_all)]
pub(crate) struct EntrySummary {
    key: String,
    /// `value`, `array`, `masked` or `malformed`.
    kind: &'static str,
    /// The (data) array's dtype name, for arrays and masked arrays.
    dtype: Option<String>,
    /// The (data) array's shape, for arrays and masked arrays.
    shape: Option<Vec<usize>>,
    /// The bytes it takes in the file: a generic value's, an array's data (with its mask),
    /// a malformed value's.
    nbytes: u64,
    /// A generic value's repr, cut to a line, decoded by the codec (never by Python's
    /// unpickler) when the value is small; a malformed array's error.
    description: Option<String>,
}

/// `(live keys, file length, summaries of the first `limit` live entries in file order)` of
/// `listing`: `locate` tells what a key holds, `value_bytes` reads a small generic value (an
/// array's data is never read).
pub(crate) fn summary(
    listing: &Listing,
    limit: usize,
    mut locate: impl FnMut(&str) -> Result<Located, mmappickle::Error>,
    mut value_bytes: impl FnMut(&str, &ValuePlace) -> Result<Vec<u8>, mmappickle::Error>,
) -> Result<(usize, u64, Vec<EntrySummary>), mmappickle::Error> {
    let mut entries = Vec::new();
    let live = listing
        .entries()
        .filter(|info| info.entry.is_live() && !info.shadowed);
    for entry in live.take(limit).map(|info| info.entry) {
        let key = entry.key();
        let (mut dtype, mut shape, mut description) = (None, None, None);
        let (kind, nbytes) = match locate(key) {
            Ok(Located::Value(place)) => {
                if place.len <= SUMMARY_DECODED_LEN {
                    // A value the codec cannot decode (a pickler's own layout) has no repr.
                    description =
                        decode_entry_value(&value_bytes(key, &place)?, &Limits::default())
                            .ok()
                            .map(|value| cut_repr(&value));
                }
                ("value", place.len)
            }
            Ok(Located::Array(place)) => {
                let nbytes = place.raw_len();
                (dtype, shape) = (Some(place.dtype.name()), Some(place.shape));
                ("array", nbytes)
            }
            Ok(Located::Masked { data, mask }) => {
                let nbytes = data.raw_len().saturating_add(mask.raw_len());
                (dtype, shape) = (Some(data.dtype.name()), Some(data.shape));
                ("masked", nbytes)
            }
            Err(error) if matches!(error.kind(), ErrorKind::Array(_)) => {
                description = Some(error.to_string());
                ("malformed", entry.value_len())
            }
            Err(error) => return Err(error),
        };
        entries.push(EntrySummary {
            key: key.to_owned(),
            kind,
            dtype,
            shape,
            nbytes,
            description,
        });
    }
    Ok((listing.n_live(), listing.file_len(), entries))
}

/// `value`'s repr (the codec's, Python's form), cut after [`SUMMARY_REPR_CHARS`] characters
/// with `...`: the formatting stops there, however large the value.
fn cut_repr(value: &mmappickle::Value) -> String {
    /// Keeps the characters written while `left` lasts, then fails the formatting.
    struct Cut {
        text: String,
        left: usize,
    }
    impl std::fmt::Write for Cut {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            for character in text.chars() {
                if self.left == 0 {
                    return Err(std::fmt::Error);
                }
                self.text.push(character);
                self.left -= 1;
            }
            Ok(())
        }
    }
    let mut cut = Cut {
        text: String::new(),
        left: SUMMARY_REPR_CHARS,
    };
    if write!(cut, "{value}").is_err() {
        cut.text.push_str("...");
    }
    cut.text
}
