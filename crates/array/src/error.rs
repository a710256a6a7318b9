//! The array layer's error type: what went wrong, and at which byte offset (when it is at
//! a place in a value or a file).

use std::fmt;

/// An error of the array layer: its kind and the byte offset (within the value
/// being parsed, or within the file for map errors) where it was found; none for
/// problems at no place (an index out of bounds, a wrong element type).
#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    // Boxed: a `Result` of this crate, and a `ValueKind` holding an error, stay small.
    kind: Box<ErrorKind>,
    offset: Option<u64>,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The value ended while more bytes were expected.
    UnexpectedEof {
        /// What was being read.
        expected: &'static str,
    },
    /// A byte that is not the opcode the array expression needs there.
    UnexpectedOpcode {
        /// What was expected.
        expected: &'static str,
        /// The byte found.
        found: u8,
    },
    /// Something that should be part of an array is not what it should be.
    Malformed {
        /// What was expected.
        expected: &'static str,
    },
    /// A dtype name that is not understood (or cannot be written).
    BadDType(String),
    /// A dtype that has no fixed-size, writable form (structured, object, ...).
    UnsupportedDType(String),
    /// The raw data length does not match the shape and item size.
    LengthMismatch {
        /// The raw length found.
        found: u64,
        /// `product(shape) * itemsize`.
        expected: u64,
    },
    /// A shape, length or offset overflows.
    Overflow,
    /// More dimensions than numpy allows (32).
    TooManyDims(usize),
    /// A negative dimension in a shape.
    NegativeDim(i64),
    /// The dtype is not the one the Rust element type stands for.
    DTypeMismatch {
        /// The dtype of the array.
        dtype: String,
        /// The Rust element type asked for.
        element: &'static str,
    },
    /// The data is not aligned for a slice of the element type.
    Misaligned {
        /// The alignment the element type needs.
        align: usize,
    },
    /// The data is not in the machine's byte order, so it cannot be a slice.
    NotNativeEndian(String),
    /// A `bool` byte that is neither 0 nor 1.
    InvalidBool(u8),
    /// The region to map does not lie inside the file.
    RegionOutOfFile {
        /// The end of the region.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// An element index outside the array.
    IndexOutOfBounds {
        /// The index asked for.
        index: usize,
        /// The number of elements.
        len: usize,
    },
    /// Not enough free disk space to reserve the array.
    NoSpace {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The data given to a writer does not fill the declared shape.
    DataLength {
        /// Bytes given.
        found: u64,
        /// Bytes the shape and dtype need.
        expected: u64,
    },
    /// An I/O error (mapping, reading or writing the file); it is the error's
    /// [`source`](std::error::Error::source).
    Io(std::io::Error),
}

impl Error {
    /// An error of `kind` found at byte `offset`.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error {
            kind: Box::new(kind),
            offset: Some(offset),
        }
    }

    /// An error of `kind` at no place in a value or file.
    pub fn unplaced(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
            offset: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset where the problem was found, if it is at one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The same error with its offset (if any) moved by `base`.
    pub fn shifted(mut self, base: u64) -> Self {
        self.offset = self.offset.map(|offset| offset.saturating_add(base));
        self
    }

    /// Whether the error says that an array expression has a header numpy would refuse (raw
    /// length against shape x itemsize, a shape that overflows or is negative, too many
    /// dimensions, a number dtype of no numpy size), rather than that a value only starts
    /// like an array expression.
    pub fn is_malformed_header(&self) -> bool {
        matches!(
            *self.kind,
            ErrorKind::LengthMismatch { .. }
                | ErrorKind::Overflow
                | ErrorKind::NegativeDim(_)
                | ErrorKind::TooManyDims(_)
                | ErrorKind::BadDType(_)
        )
    }

    /// An I/O error met at byte `offset`.
    pub fn io(error: std::io::Error, offset: u64) -> Self {
        Error::new(ErrorKind::Io(error), offset)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnexpectedEof { expected } => write!(f, "value ends where {expected} was expected"),
            ErrorKind::UnexpectedOpcode { expected, found } => {
                write!(f, "expected {expected}, found byte 0x{found:02x}")
            }
            ErrorKind::Malformed { expected } => write!(f, "malformed array: expected {expected}"),
            ErrorKind::BadDType(name) => write!(f, "unknown numpy dtype {name:?}"),
            ErrorKind::UnsupportedDType(name) => {
                write!(f, "dtype {name:?} cannot be written as a memory-mappable array")
            }
            ErrorKind::LengthMismatch { found, expected } => write!(
                f,
                "raw data is {found} bytes but the shape and item size need {expected}"
            ),
            ErrorKind::Overflow => write!(f, "shape or length overflows"),
            ErrorKind::TooManyDims(n) => write!(f, "{n} dimensions, numpy allows at most 32"),
            ErrorKind::NegativeDim(d) => write!(f, "negative dimension {d} in shape"),
            ErrorKind::DTypeMismatch { dtype, element } => {
                write!(f, "array of dtype {dtype} cannot be read as {element}")
            }
            ErrorKind::Misaligned { align } => write!(
                f,
                "array data is not aligned to {align} bytes: use get() or to_vec() instead of a slice"
            ),
            ErrorKind::NotNativeEndian(name) => write!(
                f,
                "dtype {name} is not in the machine's byte order: use get() or to_vec() instead of a slice"
            ),
            ErrorKind::InvalidBool(b) => write!(f, "bool byte is {b}, expected 0 or 1"),
            ErrorKind::RegionOutOfFile { end, file_len } => {
                write!(f, "array region ends at {end}, past the file's end at {file_len}")
            }
            ErrorKind::IndexOutOfBounds { index, len } => {
                write!(f, "index {index} out of bounds for {len} elements")
            }
            ErrorKind::NoSpace { needed, available } => write!(
                f,
                "not enough disk space to reserve the array: {needed} bytes needed, {available} available"
            ),
            ErrorKind::DataLength { found, expected } => write!(
                f,
                "data is {found} bytes but the dtype and shape need {expected}"
            ),
            // The I/O error itself is the source: said once, by whoever prints the chain.
            ErrorKind::Io(_) => write!(f, "I/O error"),
        }
    }
}

impl PartialEq for ErrorKind {
    /// Kinds are equal when they are the same variant saying the same thing (every field is
    /// in the message); I/O errors when their [`std::io::ErrorKind`]s are.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ErrorKind::Io(mine), ErrorKind::Io(theirs)) => mine.kind() == theirs.kind(),
            _ => {
                std::mem::discriminant(self) == std::mem::discriminant(other)
                    && self.to_string() == other.to_string()
            }
        }
    }
}

impl Eq for ErrorKind {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match self.offset {
            Some(offset) => write!(f, " at byte offset {offset}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Io(error) => Some(error),
            _ => None,
        }
    }
}
