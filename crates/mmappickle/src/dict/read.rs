//! Reading: what a key holds, told apart from the head of its value, and maps of arrays.
//! Each read of `MmapDict` is a snapshot of one read (`snapshot`).

use std::fs::File;

use mmappickle_array::{
    read_array_header, read_masked_header, ArrayHeader, DType, Element, MappedArray,
    MappedArrayMut, MappedBytes, MaskedHeader, ValueSource,
};
use mmappickle_codec::Value;

use super::{Item, Iter, MaskedArray, MmapDict};
use crate::error::{Error, ErrorKind};

/// What an entry's value is, found from its first bytes.
pub(super) enum ValueForm {
    Array(ArrayHeader),
    Masked(MaskedHeader),
    Generic,
}

impl MmapDict {
    /// What `key` holds: a generic value, a mapped array, or a mapped masked array.
    ///
    /// A generic value that holds numpy arrays pickled by numpy itself stays a
    /// [`Value`]; [`OwnedArray::from_value`](crate::OwnedArray::from_value) reads them.
    ///
    /// ```
    /// use mmappickle::{Item, MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("get.mmdpickle"))?;
    /// m.insert("name", "value")?;
    /// m.insert_array("grid", &[1i32, 2, 3, 4], &[2, 2])?;
    /// assert_eq!(m.get("name")?, Value::from("value"));
    /// match m.get("grid")? {
    ///     Item::Array(map) => {
    ///         assert_eq!(map.dtype().name(), "int32");
    ///         assert_eq!(map.shape(), [2, 2]);
    ///         assert_eq!(map.typed::<i32>()?.to_vec(), [1, 2, 3, 4]);
    ///     }
    ///     other => panic!("expected an array, found {other:?}"),
    /// }
    /// for entry in m.iter()? {
    ///     let (key, item) = entry?;
    ///     println!("{key}: {item:?}");
    /// }
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Result<Item, Error> {
        self.read()?.get(key)
    }

    /// The value of `key` decoded as a generic pickled value, whatever the entry holds: an
    /// array entry gives its expression tree (`reshape(fromstring(raw, dtype), shape)`),
    /// read whole into memory; prefer [`MmapDict::array`] for arrays.
    pub fn value(&self, key: &str) -> Result<Value, Error> {
        self.read()?.value(key)
    }

    /// The value bytes of `key` as stored (pickle opcodes without `PROTO`, `FRAME` and
    /// `STOP`), for tools that disassemble them.
    pub fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.read()?.raw_value(key)
    }

    /// The array of `key`, mapped read-only and typed: [`ErrorKind::NotAnArray`] when the key
    /// holds something else, [`ErrorKind::WrongElementType`] when its dtype is not `T`'s.
    pub fn array<T: Element>(&self, key: &str) -> Result<MappedArray<T>, Error> {
        self.read()?.array(key)
    }

    /// The array of `key`, mapped writable: changes go straight to the file (and to every
    /// process mapping it). [`ErrorKind::ReadOnly`] on a read-only dict.
    pub fn array_mut<T: Element>(&self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.check_writable()?;
        self.read()?.array_mut(key)
    }

    /// The masked array of `key`, data and mask mapped read-only and typed.
    pub fn masked<T: Element>(&self, key: &str) -> Result<MaskedArray<T>, Error> {
        self.read()?.masked(key)
    }

    /// Every key with what it holds, in file order, from one snapshot (the shared lock is
    /// held until the iterator is dropped).
    pub fn iter(&self) -> Result<Iter<'_>, Error> {
        self.read()?.into_iter_owned()
    }
}

pub(super) fn check_element<T: Element>(
    key: &str,
    dtype: &DType,
    offset: u64,
) -> Result<(), Error> {
    if T::matches(dtype) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::WrongElementType {
                key: key.to_owned(),
                requested: T::RUST_NAME,
                dtype: dtype.name(),
            },
            offset,
        ))
    }
}

/// What a value is, from its bytes read from any source (`value_offset` places its errors;
/// only the expression's opcodes are read, never the raw data).
pub(super) fn value_form_of<S: ValueSource + ?Sized>(
    source: &mut S,
    value_offset: u64,
) -> Result<ValueForm, Error> {
    if let Some(header) =
        read_array_header(source).map_err(|error| Error::array_at(error, value_offset))?
    {
        return Ok(ValueForm::Array(header));
    }
    if let Some(header) =
        read_masked_header(source).map_err(|error| Error::array_at(error, value_offset))?
    {
        return Ok(ValueForm::Masked(header));
    }
    Ok(ValueForm::Generic)
}

/// Whether `error` (from [`value_form`]) says that the value is an array expression whose
/// header numpy would refuse (raw length against shape x itemsize, a shape that overflows or
/// is negative, too many dimensions, a number dtype of no numpy size): such an entry is an
/// error, not a value. Other array errors (an opcode where the fixed form has another) leave
/// a value that only starts like an array, read as a generic value.
pub(super) fn is_malformed_array_header(error: &Error) -> bool {
    use mmappickle_array::ErrorKind as Kind;
    let ErrorKind::Array(array_error) = error.kind() else {
        return false;
    };
    matches!(
        array_error.kind(),
        Kind::LengthMismatch { .. }
            | Kind::Overflow
            | Kind::NegativeDim(_)
            | Kind::TooManyDims(_)
            | Kind::BadDType(_)
    )
}

pub(super) fn checked_data_offset(value_offset: u64, header: &ArrayHeader) -> Result<u64, Error> {
    value_offset.checked_add(header.raw_offset).ok_or_else(|| {
        Error::array_at(
            mmappickle_array::Error::new(mmappickle_array::ErrorKind::Overflow, header.raw_offset),
            value_offset,
        )
    })
}

/// Maps an array part of a value read-only (called under the file's lock).
pub(super) fn map_bytes(
    file: &File,
    value_offset: u64,
    header: ArrayHeader,
) -> Result<MappedBytes, Error> {
    let data_offset = checked_data_offset(value_offset, &header)?;
    Ok(MappedBytes::map(
        file,
        data_offset,
        header.dtype,
        &header.shape,
    )?)
}
