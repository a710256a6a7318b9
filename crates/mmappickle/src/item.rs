//! The one read core: what an entry's value holds, told from its bytes by the one classifier,
//! for every door (local snapshots, remote files, and through them the CLI and the Python
//! package). A door finds where the parts are ([`locate_value`]), reads them its own way (a map of
//! the local file, the remote block cache) and decodes generic values here
//! ([`decode_value`]).

use mmappickle_array::{
    checked_raw_len, ArrayHeader, Bool, DType, Element, MappedArray, MappedBytes, OwnedArray,
    ValueKind,
};
use mmappickle_codec::{decode_entry_value, Limits, Value};
use mmappickle_container::Entry;

use crate::error::{Error, ErrorKind};
use crate::picklers::OtherValue;

/// What a key holds: a generic value, an array, or a masked array. A local dict maps its
/// arrays; a remote one reads them into memory.
///
/// Maps stay valid after the dict is dropped; while one is alive,
/// [`MmapDict::vacuum`](crate::MmapDict::vacuum) is refused.
#[derive(Debug)]
pub enum Item {
    /// A generic Python value, decoded (never run: objects stay [`Value::Object`] nodes).
    Value(Value),
    /// A numpy array, whatever its dtype; [`MmapDict::array`](crate::MmapDict::array) maps a
    /// local one typed directly.
    Array(ArrayData),
    /// A `numpy.ma.MaskedArray`: data and mask.
    Masked(MaskedBytes),
    /// A value read by a [`Pickler`](crate::Pickler) of one's own (never with the built-in
    /// picklers alone).
    Other(OtherValue),
}

impl Item {
    /// The generic value, if the key holds one.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            Item::Value(value) => Some(value),
            _ => None,
        }
    }

    /// The generic value, if the key holds one.
    pub fn into_value(self) -> Option<Value> {
        match self {
            Item::Value(value) => Some(value),
            _ => None,
        }
    }

    /// The array, if the key holds a plain array.
    pub fn as_array(&self) -> Option<&ArrayData> {
        match self {
            Item::Array(array) => Some(array),
            _ => None,
        }
    }

    /// The value a pickler of one's own read, if one did.
    pub fn as_other(&self) -> Option<&OtherValue> {
        match self {
            Item::Other(other) => Some(other),
            _ => None,
        }
    }

    /// The data and mask, if the key holds a masked array.
    pub fn as_masked(&self) -> Option<&MaskedBytes> {
        match self {
            Item::Masked(masked) => Some(masked),
            _ => None,
        }
    }
}

impl PartialEq<Value> for Item {
    /// An item equals a value when it is that generic value (arrays never do).
    fn eq(&self, other: &Value) -> bool {
        self.as_value() == Some(other)
    }
}

/// An array's dtype, shape and raw bytes (C order, in the dtype's byte order): mapped from a
/// local file, or read into memory from a remote one.
#[derive(Debug)]
pub enum ArrayData {
    /// A read-only map of the local file.
    Mapped(MappedBytes),
    /// Bytes read into memory.
    Owned(OwnedArray),
}

impl ArrayData {
    /// The dtype.
    pub fn dtype(&self) -> &DType {
        match self {
            ArrayData::Mapped(map) => map.dtype(),
            ArrayData::Owned(array) => &array.dtype,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            ArrayData::Mapped(map) => map.shape(),
            ArrayData::Owned(array) => &array.shape,
        }
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            ArrayData::Mapped(map) => map.bytes(),
            ArrayData::Owned(array) => &array.data,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `T` (C order), copied, for any alignment and byte order: an error
    /// when `T` is not the dtype's element.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, Error> {
        Ok(match self {
            ArrayData::Mapped(map) => map.to_vec::<T>()?,
            ArrayData::Owned(array) => array.to_vec()?,
        })
    }

    /// Tells the kernel a map's bytes will be read at scattered places (see
    /// [`MappedBytes::advise_random`]); nothing for bytes in memory.
    pub fn advise_random(&self) -> Result<(), Error> {
        match self {
            ArrayData::Mapped(map) => Ok(map.advise_random()?),
            ArrayData::Owned(_) => Ok(()),
        }
    }

    /// The map, for an array of a local file.
    pub fn as_mapped(&self) -> Option<&MappedBytes> {
        match self {
            ArrayData::Mapped(map) => Some(map),
            ArrayData::Owned(_) => None,
        }
    }

    /// The map, for an array of a local file.
    pub fn into_mapped(self) -> Option<MappedBytes> {
        match self {
            ArrayData::Mapped(map) => Some(map),
            ArrayData::Owned(_) => None,
        }
    }

    /// The array in memory (a map's bytes copied).
    pub fn into_owned(self) -> OwnedArray {
        match self {
            ArrayData::Mapped(map) => OwnedArray {
                dtype: map.dtype().clone(),
                shape: map.shape().to_vec(),
                data: map.bytes().to_vec(),
            },
            ArrayData::Owned(array) => array,
        }
    }
}

/// A masked array's data and mask (dtype `bool`: the data's shape, or 0-d when the array had
/// no mask), untyped.
#[derive(Debug)]
pub struct MaskedBytes {
    /// The data.
    pub data: ArrayData,
    /// The mask.
    pub mask: ArrayData,
}

/// A masked array's two maps, typed: elements of `T` and a `bool` mask.
#[derive(Debug)]
pub struct MaskedArray<T: Element> {
    /// The data.
    pub data: MappedArray<T>,
    /// The mask: the data's shape, or 0-d when the array had no mask.
    pub mask: MappedArray<Bool>,
}

/// Where an array's raw bytes (C order) are in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayPlace {
    /// Offset of the first raw byte in the file (any alignment).
    pub data_offset: u64,
    /// The element type.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
}

impl ArrayPlace {
    /// The raw bytes' length.
    pub fn raw_len(&self) -> u64 {
        // Checked when the place was found (the header's raw length).
        checked_raw_len(&self.dtype, &self.shape).unwrap_or(u64::MAX)
    }

    /// Rows `rows` of the array (its first axis; C order, so one contiguous range): their
    /// place, with the shape of the rows.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Result<ArrayPlace, Error> {
        let n_rows = self.shape.first().copied().unwrap_or(0);
        if self.shape.is_empty() || rows.start > rows.end || rows.end > n_rows {
            return Err(Error::unplaced(ErrorKind::RowsOutOfRange { rows, n_rows }));
        }
        // Within the array, whose raw length was checked against the file.
        let row_len = checked_raw_len(&self.dtype, &self.shape[1..]).unwrap_or(0);
        let mut shape = self.shape.clone();
        shape[0] = rows.end - rows.start;
        Ok(ArrayPlace {
            data_offset: self.data_offset + rows.start as u64 * row_len,
            dtype: self.dtype.clone(),
            shape,
        })
    }

    /// The byte range in the file.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.data_offset..self.data_offset.saturating_add(self.raw_len())
    }

    /// Whether the raw bytes sit at a multiple of the element size (numpy's alignment, which
    /// typed slices need).
    pub fn is_aligned(&self) -> bool {
        self.data_offset % self.dtype.item_size().max(1) as u64 == 0
    }
}

/// Where a generic value's bytes are in the file (pickle opcodes without `PROTO`, `FRAME`
/// and `STOP`; `PROTO 4 + bytes + STOP` is a pickle of the value alone).
#[derive(Debug)]
pub struct ValuePlace {
    /// The first byte's offset in the file.
    pub offset: u64,
    /// The length.
    pub len: u64,
    /// Why a value that starts like an array expression is not one: the error to report if
    /// it does not decode as a generic value either.
    not_an_array: Option<mmappickle_array::Error>,
}

impl ValuePlace {
    /// The byte range in the file.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.len
    }
}

/// The bytes before an entry's value bytes in a whole pickle of the value alone (`PROTO 4`).
pub const VALUE_PICKLE_HEAD: [u8; 2] = [mmappickle_codec::opcode::PROTO, 4];

/// The bytes after an entry's value bytes in a whole pickle of the value alone (`STOP`).
pub const VALUE_PICKLE_TAIL: [u8; 1] = [mmappickle_codec::opcode::STOP];

/// What a key holds, found without mapping or decoding anything: see
/// [`MmapDict::locate`](crate::MmapDict::locate).
#[derive(Debug)]
pub enum Located {
    /// A generic value.
    Value(ValuePlace),
    /// A numpy array.
    Array(ArrayPlace),
    /// A `numpy.ma.MaskedArray`: its data and its mask (dtype `bool`, the data's shape, or
    /// 0-d when the array had no mask).
    Masked {
        /// The data.
        data: ArrayPlace,
        /// The mask.
        mask: ArrayPlace,
    },
}

impl Located {
    /// The place of the plain array of `key` (whose value is at `value_offset`), or the
    /// error saying what it holds instead ([`ErrorKind::NotAnArray`]; a value that only
    /// starts like an array says why it is not one).
    pub fn into_array(self, key: &str, value_offset: u64) -> Result<ArrayPlace, Error> {
        match self {
            Located::Array(place) => Ok(place),
            other => Err(other.wrong_kind(value_offset, || ErrorKind::NotAnArray {
                key: key.to_owned(),
            })),
        }
    }

    /// The places of the masked array of `key` (data, mask), or the error saying what it
    /// holds instead ([`ErrorKind::NotMasked`]).
    pub fn into_masked(
        self,
        key: &str,
        value_offset: u64,
    ) -> Result<(ArrayPlace, ArrayPlace), Error> {
        match self {
            Located::Masked { data, mask } => Ok((data, mask)),
            other => Err(other.wrong_kind(value_offset, || ErrorKind::NotMasked {
                key: key.to_owned(),
            })),
        }
    }

    fn wrong_kind(self, value_offset: u64, kind: impl FnOnce() -> ErrorKind) -> Error {
        match self {
            Located::Value(ValuePlace {
                not_an_array: Some(error),
                ..
            }) => Error::array_at(error, value_offset),
            _ => Error::new(kind(), value_offset),
        }
    }
}

/// Where the parts of the value of `entry` are, given what the classifier found in it
/// (`kind`, its offsets relative to the value): a malformed array header is the error, at
/// its file offset.
pub fn locate_value(entry: &Entry, kind: ValueKind) -> Result<Located, Error> {
    let value_offset = entry.value_offset();
    let place = |header: &ArrayHeader| array_place(header, value_offset);
    Ok(match kind {
        ValueKind::Malformed(error) => return Err(Error::array_at(error, value_offset)),
        ValueKind::Generic { not_an_array } => Located::Value(ValuePlace {
            offset: value_offset,
            len: entry.value_len(),
            not_an_array,
        }),
        ValueKind::Array(header) => Located::Array(place(&header)?),
        ValueKind::Masked(header) => Located::Masked {
            data: place(&header.data)?,
            mask: place(&header.mask)?,
        },
    })
}

/// The place of the array of `header` in a value at `value_offset`.
fn array_place(header: &ArrayHeader, value_offset: u64) -> Result<ArrayPlace, Error> {
    let data_offset = value_offset.checked_add(header.raw_offset).ok_or_else(|| {
        let overflow = mmappickle_array::ErrorKind::Overflow;
        let error = mmappickle_array::Error::new(overflow, header.raw_offset);
        Error::array_at(error, value_offset)
    })?;
    Ok(ArrayPlace {
        data_offset,
        dtype: header.dtype.clone(),
        shape: header.shape.clone(),
    })
}

/// The generic value whose bytes (`bytes`, those of `place`) a door read: decoded, never
/// run. One that only starts like an array and does not decode either is the array error.
pub fn decode_value(bytes: &[u8], place: ValuePlace, limits: &Limits) -> Result<Value, Error> {
    decode_entry_value(bytes, limits).map_err(|error| match place.not_an_array {
        Some(array_error) => Error::array_at(array_error, place.offset),
        None => Error::codec_at(error, place.offset),
    })
}

/// The error of a value of `entry` whose array header numpy would refuse (`kind`, what the
/// classifier found in it), at its file offset: such a value is neither read nor decoded.
pub fn refuse_malformed(entry: &Entry, kind: ValueKind) -> Result<(), Error> {
    match kind {
        ValueKind::Malformed(error) => Err(Error::array_at(error, entry.value_offset())),
        _ => Ok(()),
    }
}

/// The value of an entry decoded as a generic value whatever it holds (an array gives its
/// expression tree), from its bytes, once [`refuse_malformed`] let it through.
pub fn decode_any_value(bytes: &[u8], entry: &Entry, limits: &Limits) -> Result<Value, Error> {
    decode_entry_value(bytes, limits).map_err(|error| Error::codec_at(error, entry.value_offset()))
}
