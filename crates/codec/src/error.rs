//! The codec's error type: what went wrong, and at which byte offset.

use std::fmt;

/// A decoding error: its kind and the byte offset in the input where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: u64,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside an opcode, or before `STOP` (`opcode` is `None`).
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
    /// A declared length runs past the end of the input.
    LengthTooLarge {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
        /// The declared length.
        length: u64,
        /// The bytes that were left in the input.
        available: usize,
    },
    /// An opcode needs more values than the stack holds above the last `MARK`.
    StackUnderflow {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
    },
    /// An opcode that consumes up to a `MARK` found none.
    MissingMark {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
    },
    /// A `GET` of a memo index that was never `PUT`.
    MemoMissing {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
        /// The memo index asked for.
        index: u64,
    },
    /// A bound of [`Limits`](crate::Limits) was exceeded.
    LimitExceeded {
        /// Which bound: `"max_depth"`, `"max_memo"` or `"max_elements"`.
        limit: &'static str,
        /// The bound's value.
        max: usize,
    },
    /// A valid opcode that this safe unpickler refuses.
    Unsupported {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A container that would contain itself (a value tree cannot hold a cycle).
    Recursive {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
    },
    /// An opcode was applied to a value of the wrong type.
    WrongType {
        /// The opcode's `pickletools` name.
        opcode: &'static str,
        /// The type the opcode needs.
        expected: &'static str,
        /// The type that was found.
        found: &'static str,
    },
    /// An entry's value bytes are not exactly one value: they hold a `STOP`,
    /// leave no value or several on the stack, or leave a `MARK` open.
    BadEntryValue {
        /// What was found instead of one value.
        problem: &'static str,
    },
}

impl Error {
    /// An error of `kind` found at byte `offset`.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error { kind, offset }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset in the input where the problem was found.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The same error with its offset moved by `base` (for input embedded in a larger file).
    pub fn shifted(mut self, base: u64) -> Self {
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
            ErrorKind::LengthTooLarge {
                opcode,
                length,
                available,
            } => write!(
                f,
                "{opcode} declares {length} bytes but only {available} remain"
            ),
            ErrorKind::StackUnderflow { opcode } => {
                write!(f, "{opcode} needs more values than the stack holds")
            }
            ErrorKind::MissingMark { opcode } => write!(f, "{opcode} expected a MARK"),
            ErrorKind::MemoMissing { opcode, index } => {
                write!(f, "{opcode} reads memo index {index}, which was never set")
            }
            ErrorKind::LimitExceeded { limit, max } => {
                write!(f, "limit {limit} = {max} exceeded")
            }
            ErrorKind::Unsupported { opcode, reason } => {
                write!(f, "{opcode} is not supported: {reason}")
            }
            ErrorKind::Recursive { opcode } => write!(
                f,
                "{opcode} would make a container contain itself (recursive structures are not supported)"
            ),
            ErrorKind::WrongType {
                opcode,
                expected,
                found,
            } => write!(f, "{opcode} expected {expected}, found {found}"),
            ErrorKind::BadEntryValue { problem } => {
                write!(f, "expected an entry value of exactly one value, found {problem}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_opcode_and_offset() {
        let error = Error::new(ErrorKind::StackUnderflow { opcode: "APPEND" }, 7);
        assert_eq!(
            error.to_string(),
            "APPEND needs more values than the stack holds at byte offset 7"
        );
        assert_eq!(error.shifted(3).offset(), 10);
    }
}
