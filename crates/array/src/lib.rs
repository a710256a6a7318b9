//! Typed numpy arrays over memory maps of an mmappickle file.
//!
//! - [`DType`]: numpy dtypes, parsed from and written as numpy's `str(dtype)`;
//!   [`Element`] maps Rust types to them ([`Bool`] for numpy's `bool` bytes).
//! - The array expression: [`ArrayLayout`] writes it (prefix, raw bytes,
//!   suffix) in either [`ArrayEncoding`]; [`parse_array_value`] /
//!   [`read_array_header`] find an [`ArrayHeader`] (dtype, shape, where the raw
//!   bytes are). Masked arrays: [`MaskedLayout`], [`parse_masked_value`].
//! - [`classify`]: the one place that tells a generic value, an array, a masked
//!   array and a malformed array header apart ([`ValueKind`]).
//! - Maps: [`MappedArray`] / [`MappedArrayMut`] (typed), [`MappedBytes`] /
//!   [`MappedBytesMut`] (any dtype), each mapping exactly its region. Making one
//!   is `unsafe` (as with memmap2): the caller promises that the region stays in
//!   the file and that no writable map aliases it; the `mmappickle` facade keeps
//!   both promises for the maps it hands out.
//! - [`OwnedArray::from_value`]: numpy arrays pickled by numpy itself, inside generic
//!   values; [`OwnedMasked`]: masked arrays in either pickled form.
//!
//! ```
//! use mmappickle_array::{parse_array_value, ArrayEncoding, ArrayLayout, DType};
//!
//! let data = [1.0f64, 2.0, 3.0, 4.0];
//! let layout = ArrayLayout::for_slice(&data, &[2, 2], ArrayEncoding::Compatible)?;
//! let value = layout.to_value_bytes(bytemuck::cast_slice(&data))?;
//! // Raw bytes start after the 70-byte prefix and the BINBYTES8 opcode.
//! assert_eq!(layout.raw_offset(), 79);
//!
//! let header = parse_array_value(&value)?.expect("an array expression");
//! assert_eq!(header.dtype, DType::parse("float64")?);
//! assert_eq!(header.shape, [2, 2]);
//! assert_eq!(header.raw_len, 32);
//! # Ok::<(), mmappickle_array::Error>(())
//! ```
//!
//! ## Alignment
//!
//! Python never aligns raw data, so readers cope with any offset
//! ([`MappedArray::get`], [`MappedArray::to_vec`]); [`MappedArray::as_slice`]
//! needs the data aligned for its element. Writers that want slices to work
//! ask the container to start the raw bytes ([`ArrayLayout::raw_offset`]
//! within the value) at a multiple of [`DATA_ALIGN`] (64) bytes; the container
//! inserts a padding entry before the entry when needed (see `FORMAT-ARRAY.md`).

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod classify;
mod dtype;
mod element;
mod error;
mod expr;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod map;
mod owned;
mod sink;

/// The alignment of raw data in arrays this project writes.
pub const DATA_ALIGN: u64 = 64;

pub use {bytemuck, half, num_complex};

pub use crate::{
    classify::{classify, ValueKind},
    dtype::{ByteOrder, DType, Kind, MAX_DIMS},
    element::{Bool, Element},
    error::{Error, ErrorKind},
    expr::{
        checked_n_elements, checked_raw_len, parse_array_value, parse_masked_value,
        read_array_header, read_masked_header, ArrayEncoding, ArrayHeader, ArrayLayout, FileValue,
        MaskedHeader, MaskedLayout, ValueSource, COMPATIBLE_PREFIX, MASKED_PREFIX,
    },
    map::{KeepAlive, MappedArray, MappedArrayMut, MappedBytes, MappedBytesMut},
    owned::{OwnedArray, OwnedMasked},
    sink::{FileSink, RawSink},
};
