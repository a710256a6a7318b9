//! What the printers read of an item, wherever it comes from: a value, or arrays as dtype,
//! shape and C-order bytes (mapped from a local file, or fetched from a remote one).

use mmappickle::{DType, Item, MappedBytes, OwnedArray, Value};
use mmappickle_remote::RemoteItem;

/// An array's dtype, shape and raw bytes (C order).
#[derive(Debug, Clone, Copy)]
pub struct ArrayView<'a> {
    pub dtype: &'a DType,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
    /// Where the bytes are in the local file, for a mapped array.
    pub data_offset: Option<u64>,
}

/// An item as the printers see it.
#[derive(Debug, Clone, Copy)]
pub enum ItemView<'a> {
    Value(&'a Value),
    Array(ArrayView<'a>),
    Masked {
        data: ArrayView<'a>,
        mask: ArrayView<'a>,
    },
}

impl<'a> From<&'a MappedBytes> for ArrayView<'a> {
    fn from(array: &'a MappedBytes) -> Self {
        ArrayView {
            dtype: array.dtype(),
            shape: array.shape(),
            bytes: array.bytes(),
            data_offset: Some(array.data_offset()),
        }
    }
}

impl<'a> From<&'a OwnedArray> for ArrayView<'a> {
    fn from(array: &'a OwnedArray) -> Self {
        ArrayView {
            dtype: &array.dtype,
            shape: &array.shape,
            bytes: &array.data,
            data_offset: None,
        }
    }
}

/// An item of a local or a remote file, as the printers see it.
pub trait Viewed {
    /// The view of the item.
    fn view(&self) -> ItemView<'_>;
}

impl Viewed for Item {
    fn view(&self) -> ItemView<'_> {
        match self {
            Item::Value(value) => ItemView::Value(value),
            Item::Array(array) => ItemView::Array(array.into()),
            Item::Masked(masked) => ItemView::Masked {
                data: (&masked.data).into(),
                mask: (&masked.mask).into(),
            },
        }
    }
}

impl Viewed for RemoteItem {
    fn view(&self) -> ItemView<'_> {
        match self {
            RemoteItem::Value(value) => ItemView::Value(value),
            RemoteItem::Array(array) => ItemView::Array(array.into()),
            RemoteItem::Masked { data, mask } => ItemView::Masked {
                data: data.into(),
                mask: mask.into(),
            },
        }
    }
}
