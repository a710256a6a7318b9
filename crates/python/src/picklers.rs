//! The handle's picklers as the facade's [`Pickler`]s: the library's built-in kinds are the
//! facade's own, and a pickler class written for the library is a [`PythonPickler`], so that
//! every read is dispatched by the facade (`StoredValue::reader`), in the library's order.
//!
//! Writes stay chosen by the Python half (it recognises its built-in kinds without a call
//! into Rust per value); a pickler written for the library then stores its value through
//! `Transaction::insert_written`, which is what the trait's `write` of such a kind does.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use mmappickle::{
    ArrayPickler, ArrayPlace, Error, ErrorKind, GenericPickler, Item, Located, MaskedArrayPickler,
    Pickler, ReadSnapshot, StoredValue, Transaction,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

thread_local! {
    /// The exception a Python pickler raised in this thread's current read, raised again as
    /// it is once the read returns.
    static FAILURE: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The Python exception behind a failed read, if a Python pickler raised one.
pub(crate) fn take_failure() -> Option<PyErr> {
    FAILURE.with(|failure| failure.borrow_mut().take())
}

/// A pickler class written for the library (`BasePickler` API), called with the GIL.
#[derive(Debug)]
pub(crate) struct PythonPickler {
    name: String,
    priority: i32,
    object: Py<PyAny>,
}

impl PythonPickler {
    /// The result of calling `method(offset, length)` on the pickler; a Python exception is
    /// kept for the caller of the read and becomes a facade error meanwhile.
    fn call<R>(
        &self,
        value: &StoredValue<'_>,
        method: &str,
        convert: impl FnOnce(Bound<'_, PyAny>) -> PyResult<R>,
    ) -> Result<R, Error> {
        Python::attach(|py| {
            let result = self
                .object
                .bind(py)
                .call_method1(method, (value.offset(), value.len()))
                .and_then(convert);
            result.map_err(|error| {
                let failed = ErrorKind::PicklerFailed {
                    pickler: self.name.clone(),
                    message: error.to_string(),
                };
                FAILURE.with(|failure| *failure.borrow_mut() = Some(error));
                Error::new(failed, value.offset())
            })
        })
    }
}

impl Pickler for PythonPickler {
    fn name(&self) -> &str {
        &self.name
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, Error> {
        self.call(value, "is_valid", |valid| valid.is_truthy())
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
        // The library's `read` returns `(value, length)`.
        let read = self.call(value, "read", |read| Ok(read.get_item(0)?.unbind()))?;
        Ok(Item::other(&self.name, read))
    }

    fn is_picklable(&self, _: &dyn Any) -> bool {
        // Chosen by the Python half for writes (see the module).
        false
    }

    fn write(&self, _: &str, _: &dyn Any, _: &mut Transaction<'_>) -> Result<(), Error> {
        let pickler = self.name.clone();
        Err(Error::unplaced(ErrorKind::PicklerRefused { pickler }))
    }
}

/// The facade's picklers of `picklers`, the handle's list in the library's order: the
/// built-in kinds by name (`"ArrayPickler"`, `"MaskedArrayPickler"`, `"GenericPickler"`),
/// other picklers as the instances themselves.
pub(crate) fn facade_picklers(picklers: &[Bound<'_, PyAny>]) -> PyResult<Vec<Arc<dyn Pickler>>> {
    picklers
        .iter()
        .map(|pickler| -> PyResult<Arc<dyn Pickler>> {
            if let Ok(name) = pickler.extract::<String>() {
                return match name.as_str() {
                    "ArrayPickler" => Ok(Arc::new(ArrayPickler)),
                    "MaskedArrayPickler" => Ok(Arc::new(MaskedArrayPickler)),
                    "GenericPickler" => Ok(Arc::new(GenericPickler)),
                    other => Err(PyTypeError::new_err(format!(
                        "no built-in pickler is named {other:?}"
                    ))),
                };
            }
            let class = pickler.get_type();
            let priority = pickler.getattr("priority")?.extract::<i64>()?;
            Ok(Arc::new(PythonPickler {
                name: format!("{}.{}", class.module()?, class.qualname()?),
                priority: priority.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
                object: pickler.clone().unbind(),
            }))
        })
        .collect()
}

/// What the pickler the facade chose for a value found it holds.
pub(crate) enum Found {
    /// The generic pickler: the value's offset and bytes, whatever they hold (the library's
    /// catch-all reads an array expression too, as `pickle.loads` does).
    Generic {
        offset: u64,
        bytes: Vec<u8>,
        holds_array: bool,
    },
    /// The array pickler: where the array is, in the file `file_id` (`(device, inode)`).
    Array(ArrayPlace, (u64, u64)),
    /// The masked array pickler: where the data and mask are, in the file `file_id`.
    Masked(ArrayPlace, ArrayPlace, (u64, u64)),
    /// A Python pickler's value, read.
    Read(Py<PyAny>),
}

/// Reads `key` in `snapshot` by the first of the handle's picklers valid for it.
pub(crate) fn read_by_picklers(snapshot: &ReadSnapshot<'_>, key: &str) -> Result<Found, Error> {
    let value = snapshot.stored(key)?;
    let reader = value.reader()?;
    read_by(snapshot, &value, reader)
}

/// Reads `value`, a stored value of `snapshot`, by `reader`, the pickler the facade chose
/// for it.
pub(crate) fn read_by(
    snapshot: &ReadSnapshot<'_>,
    value: &StoredValue<'_>,
    reader: &dyn Pickler,
) -> Result<Found, Error> {
    let kind: &dyn Any = reader;
    if kind.is::<PythonPickler>() {
        if let Item::Other(other) = reader.read(value)? {
            if let Ok(read) = other.downcast::<Py<PyAny>>() {
                return Ok(Found::Read(read));
            }
        }
        let pickler = reader.name().to_owned();
        return Err(Error::new(
            ErrorKind::PicklerRefused { pickler },
            value.offset(),
        ));
    }
    let file_id = || snapshot.file_id();
    Ok(match (kind.is::<GenericPickler>(), value.located()) {
        (false, Located::Array(place)) => Found::Array(place.clone(), file_id()?),
        (false, Located::Masked { data, mask }) => {
            Found::Masked(data.clone(), mask.clone(), file_id()?)
        }
        // The generic pickler, or a value only it reads.
        (_, located) => Found::Generic {
            offset: value.offset(),
            bytes: value.bytes().to_vec(),
            holds_array: matches!(located, Located::Array(_)),
        },
    })
}
