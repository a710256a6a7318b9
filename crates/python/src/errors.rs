//! Facade errors as the Python exceptions the Python library raises.

use std::io;

use mmappickle::{message_with_sources, ErrorKind};
use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    mmappickle,
    UnsafeValueError,
    PyValueError,
    "A value that a safe mmapdict refuses to build: it names a global other than the builtin types and numpy arrays."
);

/// The I/O error at the root of `error`, if any.
fn io_source<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e io::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            return Some(io_error);
        }
        current = error.source();
    }
    None
}

/// The one translator of errors, for local and remote dicts alike: `KeyError(key)` for a
/// missing key, `io.UnsupportedOperation("not writable")` for a change to a read-only dict,
/// `OSError` for a failed request or a remote file that changed while it was read, the
/// `OSError` subclass of an I/O error (`FileNotFoundError`, ...), and `ValueError` with the
/// facade's message (what, and at which byte offset) for the rest: a malformed file, an
/// over-long key, a value that cannot be stored, a bad URL.
pub(crate) fn to_py_err(error: mmappickle::Error) -> PyErr {
    match error.kind() {
        ErrorKind::KeyNotFound { key } => return PyKeyError::new_err(key.clone()),
        ErrorKind::ReadOnly => return not_writable(),
        ErrorKind::Request(_) | ErrorKind::Changed { .. } | ErrorKind::BadResponse { .. } => {
            return PyOSError::new_err(message_with_sources(&error))
        }
        _ => {}
    }
    match io_source(&error) {
        Some(io_error) => PyErr::from(io::Error::new(
            io_error.kind(),
            message_with_sources(&error),
        )),
        None => PyValueError::new_err(message_with_sources(&error)),
    }
}

/// `io.UnsupportedOperation("not writable")`, as the Python library raises it.
pub(crate) fn not_writable() -> PyErr {
    Python::attach(|py| {
        match py
            .import("io")
            .and_then(|io| io.getattr("UnsupportedOperation"))
            .and_then(|class| class.call1(("not writable",)))
        {
            Ok(exception) => PyErr::from_value(exception),
            Err(error) => error,
        }
    })
}
