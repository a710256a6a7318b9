//! What a key holds: a generic value, a mapped array, a mapped masked array.

use mmappickle_array::{Bool, Element, MappedArray, MappedBytes};
use mmappickle_codec::Value;

/// What a key holds: a generic value, a mapped array, or a mapped masked array.
///
/// Maps stay valid after the dict is dropped; while one is alive, [`MmapDict::vacuum`](crate::MmapDict::vacuum) is
/// refused.
#[derive(Debug)]
pub enum Item {
    /// A generic Python value, decoded (never run: objects stay [`Value::Object`] nodes).
    Value(Value),
    /// A numpy array, mapped read-only whatever its dtype; [`MappedBytes::typed`] gives a
    /// typed view, [`MmapDict::array`](crate::MmapDict::array) maps it typed directly.
    Array(MappedBytes),
    /// A `numpy.ma.MaskedArray`: data and mask, both mapped read-only.
    Masked(MaskedBytes),
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

    /// The mapped array, if the key holds a plain array.
    pub fn as_array(&self) -> Option<&MappedBytes> {
        match self {
            Item::Array(array) => Some(array),
            _ => None,
        }
    }

    /// The mapped data and mask, if the key holds a masked array.
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

/// A masked array's two maps (untyped).
#[derive(Debug)]
pub struct MaskedBytes {
    /// The data.
    pub data: MappedBytes,
    /// The mask (dtype `bool`): the data's shape, or 0-d when the array had no mask.
    pub mask: MappedBytes,
}

/// A masked array's two maps, typed: elements of `T` and a `bool` mask.
#[derive(Debug)]
pub struct MaskedArray<T: Element> {
    /// The data.
    pub data: MappedArray<T>,
    /// The mask: the data's shape, or 0-d when the array had no mask.
    pub mask: MappedArray<Bool>,
}
