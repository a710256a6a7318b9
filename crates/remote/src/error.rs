//! The remote crate's error type: what went wrong, and at which byte offset of the remote file.

use std::fmt;
use std::ops::Range;

/// A remote read error: its kind and the byte offset in the remote file where it was found
/// (0 when the error concerns no byte of the file, like a bad URL).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    offset: u64,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL is malformed or names a scheme this build cannot read.
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A request failed after its retries (a time-out, a refused connection, a 4xx/5xx
    /// answer, a missing object).
    Request(object_store::Error),
    /// The object was replaced while it was read: its version is no longer the one read
    /// first, so nothing read from it is mixed with the new version.
    Changed {
        /// The version (ETag, else size) read first.
        expected: String,
        /// The version the store has now, when it said (a failed `If-Match` does not).
        found: Option<String>,
    },
    /// The server answered with other bytes than asked for.
    BadResponse {
        /// The byte range asked for.
        requested: Range<u64>,
        /// What was wrong with the answer.
        problem: String,
    },
    /// The file's layout is malformed (header, entries, terminator).
    Container(mmappickle_container::Error),
    /// An array expression is malformed.
    Array(mmappickle_array::Error),
    /// A generic value does not decode.
    Codec(mmappickle_codec::Error),
    /// No live entry has this key.
    KeyNotFound {
        /// The key asked for.
        key: String,
    },
    /// The key holds no plain numpy array.
    NotAnArray {
        /// The key asked for.
        key: String,
    },
    /// Rows asked outside the array (or of a 0-d array).
    RowsOutOfRange {
        /// The rows asked for.
        rows: Range<usize>,
        /// The array's number of rows (0 for a 0-d array).
        n_rows: usize,
    },
    /// A caller's buffer is not as long as the bytes asked for.
    BufferLength {
        /// The bytes asked for.
        expected: u64,
        /// The buffer's length.
        found: usize,
    },
    /// A value is larger than this machine can hold in memory.
    TooLarge {
        /// The value's length as the file gives it.
        len: u64,
    },
    /// The blocking API's runtime could not start.
    Runtime(std::io::Error),
}

impl Error {
    /// An error of `kind` found at byte `offset` of the remote file.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error { kind, offset }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset in the remote file where the problem was found.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the object changed while it was read (a precondition failed, or the store
    /// answered with another version).
    pub fn is_changed(&self) -> bool {
        matches!(self.kind, ErrorKind::Changed { .. })
    }

    pub(crate) fn request(error: object_store::Error, offset: u64) -> Self {
        Error::new(ErrorKind::Request(error), offset)
    }

    pub(crate) fn array(error: mmappickle_array::Error, value_offset: u64) -> Self {
        let offset = value_offset.saturating_add(error.offset().unwrap_or(0));
        Error::new(ErrorKind::Array(error), offset)
    }

    pub(crate) fn codec(error: mmappickle_codec::Error, value_offset: u64) -> Self {
        let offset = value_offset.saturating_add(error.offset());
        Error::new(ErrorKind::Codec(error), offset)
    }
}

impl From<mmappickle_container::Error> for Error {
    fn from(error: mmappickle_container::Error) -> Self {
        let offset = error.offset().unwrap_or(0);
        Error::new(ErrorKind::Container(error), offset)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset;
        match &self.kind {
            ErrorKind::BadUrl { url, reason } => write!(f, "cannot open {url}: {reason}"),
            ErrorKind::Request(error) => {
                write!(
                    f,
                    "request for the bytes at offset {offset} failed: {error}"
                )
            }
            ErrorKind::Changed { expected, found } => {
                write!(
                    f,
                    "the remote file changed while it was read (at offset {offset}): version {expected} was read first"
                )?;
                match found {
                    Some(found) => write!(f, ", the store now has {found}"),
                    None => write!(f, ", the store now has another (a precondition failed)"),
                }
            }
            ErrorKind::BadResponse { requested, problem } => write!(
                f,
                "bad answer for bytes {}..{}: {problem}",
                requested.start, requested.end
            ),
            ErrorKind::Container(error) => write!(f, "{error}"),
            ErrorKind::Array(error) => write!(f, "{error} (file offset {offset})"),
            ErrorKind::Codec(error) => write!(f, "{error} (file offset {offset})"),
            ErrorKind::KeyNotFound { key } => write!(f, "key {key:?} not found"),
            ErrorKind::NotAnArray { key } => write!(f, "key {key:?} holds no plain numpy array"),
            ErrorKind::RowsOutOfRange { rows, n_rows } => write!(
                f,
                "rows {}..{} asked of an array of {n_rows} rows",
                rows.start, rows.end
            ),
            ErrorKind::BufferLength { expected, found } => write!(
                f,
                "a buffer of {found} bytes for the {expected} bytes at offset {offset}"
            ),
            ErrorKind::TooLarge { len } => write!(
                f,
                "the value at offset {offset} claims {len} bytes, more than this machine can hold"
            ),
            ErrorKind::Runtime(error) => write!(f, "cannot start the I/O runtime: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Request(error) => Some(error),
            ErrorKind::Container(error) => Some(error),
            ErrorKind::Array(error) => Some(error),
            ErrorKind::Codec(error) => Some(error),
            ErrorKind::Runtime(error) => Some(error),
            _ => None,
        }
    }
}
