//! The codec's error type: what went wrong, and at which byte offset.

use std::fmt;

/// A decoding error: its kind and the byte offset in the input where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: usize,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside an opcode or before `STOP`.
    UnexpectedEof {
        /// The opcode being read, if one had started.
        opcode: Option<&'static str>,
    },
    /// A byte that is not a pickle opcode.
    UnknownOpcode(u8),
    /// An opcode's argument is malformed (the text says how).
    BadArgument {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

impl Error {
    /// An error of `kind` found at byte `offset`.
    pub fn new(kind: ErrorKind, offset: usize) -> Self {
        Error { kind, offset }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The same error with its offset moved by `base` (for input embedded in a larger file).
    pub fn shifted(mut self, base: usize) -> Self {
        self.offset = self.offset.saturating_add(base);
        self
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnexpectedEof { opcode: Some(op) } => {
                write!(f, "input ends inside {op}")
            }
            ErrorKind::UnexpectedEof { opcode: None } => {
                write!(f, "input ends before STOP")
            }
            ErrorKind::UnknownOpcode(byte) => write!(f, "unknown opcode 0x{byte:02x}"),
            ErrorKind::BadArgument { opcode, expected } => {
                write!(f, "bad argument to {opcode}: expected {expected}")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}", self.kind, self.offset)
    }
}

impl std::error::Error for Error {}
