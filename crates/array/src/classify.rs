//! The one classifier: whether a value is a generic value, an array, a masked array, or an
//! array expression with a malformed header.
//!
//! Architecture invariant: every reader (the facade's `get`, `value` and maps, its entry
//! listing, convert, the fuzz bodies) asks [`classify`]; nothing else tells these apart.

use crate::error::{Error, ErrorKind};
use crate::expr::{
    may_be_array_expression, read_array_header, read_masked_header, ArrayHeader, MaskedHeader,
    ValueSource,
};

/// What a value is, found from its head (the raw data is never read).
#[derive(Debug)]
pub enum ValueKind {
    /// A generic pickled value. When it starts like an array expression that is not one
    /// that maps (an opcode where the fixed form has another), `not_an_array` says why: it
    /// is the error to report if the value does not decode as a generic value either.
    Generic {
        /// Why a value that starts like an array is not one.
        not_an_array: Option<Error>,
    },
    /// A memory-mappable array. (Headers are boxed so that a listing of many small values
    /// stays small.)
    Array(Box<ArrayHeader>),
    /// A masked array: data and mask, both mappable.
    Masked(Box<MaskedHeader>),
    /// An array expression whose header numpy would refuse (raw length against shape x
    /// itemsize, a shape that overflows or is negative, too many dimensions, a number dtype
    /// of no numpy size): an error, not a value. Offsets are relative to the value.
    Malformed(Error),
}

impl ValueKind {
    /// The name tools show for the kind: `value`, `array`, `masked` or `malformed`.
    pub fn name(&self) -> &'static str {
        match self {
            ValueKind::Generic { .. } => "value",
            ValueKind::Array(_) => "array",
            ValueKind::Masked(_) => "masked",
            ValueKind::Malformed(_) => "malformed",
        }
    }

    /// The header of the (data) array, for plain and masked arrays.
    pub fn data_header(&self) -> Option<&ArrayHeader> {
        match self {
            ValueKind::Array(header) => Some(header),
            ValueKind::Masked(header) => Some(&header.data),
            _ => None,
        }
    }
}

/// Classifies the value `source` holds by reading its head. `Err` only for an I/O error of
/// the source; a malformed array header is [`ValueKind::Malformed`].
///
/// ```
/// use mmappickle_array::{classify, ArrayEncoding, ArrayLayout, ValueKind};
///
/// let layout = ArrayLayout::for_slice(&[1u8, 2], &[2], ArrayEncoding::Compatible)?;
/// let value = layout.to_value_bytes(&[1, 2])?;
/// assert!(matches!(classify(&mut value.as_slice())?, ValueKind::Array(_)));
/// assert!(matches!(classify(&mut &b"K\x01"[..])?, ValueKind::Generic { not_an_array: None }));
/// # Ok::<(), mmappickle_array::Error>(())
/// ```
pub fn classify<S: ValueSource + ?Sized>(source: &mut S) -> Result<ValueKind, Error> {
    if !may_be_array_expression(source)? {
        return Ok(ValueKind::Generic { not_an_array: None });
    }
    let not_an_array = match read_array_header(source) {
        Ok(Some(header)) => return Ok(ValueKind::Array(Box::new(header))),
        Ok(None) => None,
        Err(error) => Some(error),
    };
    let not_an_array = match (not_an_array, read_masked_header(source)) {
        (_, Ok(Some(header))) => return Ok(ValueKind::Masked(Box::new(header))),
        (first, Ok(None)) => first,
        (_, Err(error)) => Some(error),
    };
    match not_an_array {
        Some(error) if matches!(error.kind(), ErrorKind::Io(_)) => Err(error),
        Some(error) if error.is_malformed_header() => Ok(ValueKind::Malformed(error)),
        not_an_array => Ok(ValueKind::Generic { not_an_array }),
    }
}
