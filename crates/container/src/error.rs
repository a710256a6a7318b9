//! The container's error type: what went wrong, and at which byte offset of the file (when
//! the problem is at a place in it).

use std::fmt;

/// A container error: its kind and the byte offset in the file where it was found (none for
/// a refusal or a failed system call that is at no place in the file).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    offset: Option<u64>,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file does not start with the mmappickle header.
    NotAContainer {
        /// What the header should have had at the error's offset.
        expected: &'static str,
        /// The whole file is a plain pickle of a dict (it can be converted).
        plain_pickle: bool,
    },
    /// An entry is malformed (the text says what was expected).
    BadEntry {
        /// What was expected at the error's offset.
        expected: &'static str,
    },
    /// An entry's frame runs past the end of the file (a torn write: run fsck).
    TruncatedEntry {
        /// The entry's end as its frame length gives it.
        entry_end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// The entries end without the 11-byte terminator (a torn write: run fsck).
    MissingTerminator,
    /// A key longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes once encoded as UTF-8.
    KeyTooLong {
        /// The key's length in UTF-8 bytes.
        len: usize,
    },
    /// The value writer wrote (or skipped) a different number of bytes than announced.
    ValueLength {
        /// The announced value length.
        expected: u64,
        /// What the writer wrote or skipped.
        written: u64,
    },
    /// An alignment request that cannot be met (`align` must be a power of two).
    BadAlignment {
        /// The requested alignment.
        align: u64,
    },
    /// A change was asked of a container opened read-only.
    ReadOnly,
    /// An entry handed back to the container is no longer in the file.
    StaleEntry,
    /// An exclusive operation was asked of a container while read views it handed out
    /// hold its shared lock ([`Container::end_read`](crate::Container::end_read) them first).
    ReadersActive,
    /// Another handle of the same file holds a lock in this thread that this operation's
    /// lock would wait for forever (`flock` locks belong to open file descriptions): a read
    /// snapshot or a batch on one handle and a change or read on another.
    LockedByThisThread,
    /// An offset or length does not fit in 64 bits (or in memory).
    Overflow,
    /// An operating-system error (it is the error's [`source`](std::error::Error::source)).
    Io(std::io::Error),
}

impl Error {
    /// An error of `kind` found at byte `offset` of the file.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error {
            kind,
            offset: Some(offset),
        }
    }

    /// An error of `kind` that is at no place in the file (a refusal, a failed `open`).
    pub fn unplaced(kind: ErrorKind) -> Self {
        Error { kind, offset: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset in the file where the problem was found, if it is at one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// Whether the file is a plain pickle of a dict rather than an mmappickle container.
    pub fn is_plain_pickle(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::NotAContainer {
                plain_pickle: true,
                ..
            }
        )
    }

    pub(crate) fn io(error: std::io::Error, offset: u64) -> Self {
        Error::new(ErrorKind::Io(error), offset)
    }

    /// An I/O error at no place in the file (opening, locking, syncing, renaming).
    pub(crate) fn unplaced_io(error: std::io::Error) -> Self {
        Error::unplaced(ErrorKind::Io(error))
    }

    /// The same place with another kind.
    pub(crate) fn with_kind(self, kind: ErrorKind) -> Self {
        Error { kind, ..self }
    }

    pub(crate) fn bad_entry(expected: &'static str, offset: u64) -> Self {
        Error::new(ErrorKind::BadEntry { expected }, offset)
    }

    pub(crate) fn overflow(offset: u64) -> Self {
        Error::new(ErrorKind::Overflow, offset)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotAContainer {
                expected,
                plain_pickle,
            } => {
                write!(f, "not an mmappickle file: expected {expected}")?;
                if *plain_pickle {
                    write!(
                        f,
                        " (the file is a plain pickle of a dict: it can be converted)"
                    )?;
                }
                Ok(())
            }
            ErrorKind::BadEntry { expected } => write!(f, "malformed entry: expected {expected}"),
            ErrorKind::TruncatedEntry {
                entry_end,
                file_len,
            } => write!(
                f,
                "entry ends at byte {entry_end}, past the end of the {file_len}-byte file \
                 (torn write: run fsck)"
            ),
            ErrorKind::MissingTerminator => {
                write!(
                    f,
                    "expected the terminator (FRAME 2, DICT, STOP) (torn write: run fsck)"
                )
            }
            ErrorKind::KeyTooLong { len } => {
                let max = crate::layout::MAX_KEY_LEN;
                write!(f, "key of {len} UTF-8 bytes: expected at most {max}")
            }
            ErrorKind::ValueLength { expected, written } => write!(
                f,
                "value writer produced {written} bytes: expected exactly {expected}"
            ),
            ErrorKind::BadAlignment { align } => {
                write!(f, "alignment {align}: expected a power of two")
            }
            ErrorKind::ReadOnly => write!(f, "the container is open read-only"),
            ErrorKind::StaleEntry => {
                write!(
                    f,
                    "the entry is no longer in the file: expected a current entry"
                )
            }
            ErrorKind::ReadersActive => write!(
                f,
                "read views of this container are open: expected them ended before a change"
            ),
            ErrorKind::LockedByThisThread => write!(
                f,
                "another handle of this file holds its lock in this thread (a read snapshot or \
                 a batch), and this operation would wait for it forever: expected it released \
                 first, or one handle used for both"
            ),
            ErrorKind::Overflow => write!(f, "offset or length overflows"),
            // The I/O error itself is the source: said once, by whoever prints the chain.
            ErrorKind::Io(_) => write!(f, "I/O error"),
        }
    }
}

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
        match &self.kind {
            ErrorKind::Io(error) => Some(error),
            _ => None,
        }
    }
}
