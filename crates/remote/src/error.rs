//! The remote crate's error type: what went wrong, and at which byte offset of the remote
//! file (when the problem is at a place in it).

use std::fmt;
use std::ops::Range;

/// A remote read error: its kind and the byte offset in the remote file where it was found
/// (none for a problem at no place in the file: a bad URL, a missing key, a runtime that
/// does not start).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    offset: Option<u64>,
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
    /// answer, a missing object); the store's error is the
    /// [`source`](std::error::Error::source).
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
    /// The blocking API's runtime could not start (the I/O error is the
    /// [`source`](std::error::Error::source)).
    Runtime(std::io::Error),
}

impl Error {
    /// An error of `kind` found at byte `offset` of the remote file.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error {
            kind,
            offset: Some(offset),
        }
    }

    /// An error of `kind` at no place in the file (a bad URL, a missing key, a runtime that
    /// does not start).
    pub fn unplaced(kind: ErrorKind) -> Self {
        Error { kind, offset: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset in the remote file where the problem was found, if it is at one.
    pub fn offset(&self) -> Option<u64> {
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

    /// An array error whose offset is relative to a value at `value_offset` (one at no place
    /// in the value, like a refused shape, is placed at the value).
    pub(crate) fn array(error: mmappickle_array::Error, value_offset: u64) -> Self {
        let offset = value_offset.saturating_add(error.offset().unwrap_or(0));
        Error::new(ErrorKind::Array(error), offset)
    }

    /// A codec error found in a value that starts at `value_offset`.
    pub(crate) fn codec(error: mmappickle_codec::Error, value_offset: u64) -> Self {
        let offset = value_offset.saturating_add(error.offset());
        Error::new(ErrorKind::Codec(error), offset)
    }
}

impl From<mmappickle_container::Error> for Error {
    /// Keeps the container's offset.
    fn from(error: mmappickle_container::Error) -> Self {
        Error {
            offset: error.offset(),
            kind: ErrorKind::Container(error),
        }
    }
}

/// The container's message for a remote file: fsck mends a local file only, so a remote
/// file's torn end is said without the advice to run it.
fn write_container_kind(
    f: &mut fmt::Formatter<'_>,
    kind: &mmappickle_container::ErrorKind,
) -> fmt::Result {
    use mmappickle_container::ErrorKind as Kind;
    match kind {
        Kind::TruncatedEntry {
            entry_end,
            file_len,
        } => write!(
            f,
            "entry ends at byte {entry_end}, past the end of the {file_len}-byte remote file (the file \
             is torn or damaged)"
        ),
        Kind::MissingTerminator => write!(
            f,
            "expected the terminator (FRAME 2, DICT, STOP) (the file is torn or \
             damaged)"
        ),
        kind => write!(f, "{kind}"),
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::BadUrl { url, reason } => write!(f, "cannot open {url}: {reason}"),
            // The store's error is the source: said once, by whoever prints the chain.
            ErrorKind::Request(_) => write!(f, "request failed after its retries"),
            ErrorKind::Changed { expected, found } => {
                write!(
                    f,
                    "the remote file changed while it was read: version {expected} was read first"
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
            // A layer's message is said here (with the file offset, not the layer's own): the
            // source chain continues below it, at the layer's source.
            ErrorKind::Container(error) => write_container_kind(f, error.kind()),
            ErrorKind::Array(error) => write!(f, "{}", error.kind()),
            ErrorKind::Codec(error) => write!(f, "cannot decode the value: {}", error.kind()),
            ErrorKind::KeyNotFound { key } => {
                write!(f, "key {key:?} not found: expected a live key")
            }
            ErrorKind::NotAnArray { key } => {
                write!(f, "key {key:?} does not hold a plain array: expected one")
            }
            ErrorKind::RowsOutOfRange { rows, n_rows } => write!(
                f,
                "rows {}..{} asked of an array of {n_rows} rows",
                rows.start, rows.end
            ),
            ErrorKind::BufferLength { expected, found } => {
                write!(f, "a buffer of {found} bytes: expected {expected}")
            }
            ErrorKind::TooLarge { len } => {
                write!(f, "a value of {len} bytes, more than this machine can hold")
            }
            ErrorKind::Runtime(_) => write!(f, "cannot start the I/O runtime"),
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
            ErrorKind::Request(error) => Some(error),
            ErrorKind::Runtime(error) => Some(error),
            // The layers' messages are in this error's own: the chain goes on below them.
            ErrorKind::Container(error) => error.source(),
            ErrorKind::Array(error) => error.source(),
            ErrorKind::Codec(error) => error.source(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The messages of `error` and its sources, outermost first.
    fn chain(error: &Error) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            messages.push(cause.to_string());
            source = cause.source();
        }
        messages
    }

    // A nested error is said once: as the source, not again inside this error's message.
    #[test]
    fn no_message_of_the_chain_is_said_twice() {
        let runtime = Error::unplaced(ErrorKind::Runtime(std::io::Error::other("no threads")));
        assert_eq!(
            chain(&runtime),
            ["cannot start the I/O runtime", "no threads"]
        );
        let store = object_store::Error::NotFound {
            path: "data.mmdpickle".into(),
            source: "gone".into(),
        };
        let request = Error::request(store, 4096);
        let messages = chain(&request);
        // Ours says the store's error once, as its source (object_store's own errors may
        // repeat theirs: a chain printer can drop a message its predecessor contains).
        assert_eq!(
            messages[..2],
            [
                "request failed after its retries at byte offset 4096",
                "Object at location data.mmdpickle not found: gone",
            ]
        );
    }

    // A layer's error keeps its place in the file; a bad URL has none.
    #[test]
    fn offsets_are_file_offsets_or_none() {
        let codec =
            mmappickle_codec::Error::new(mmappickle_codec::ErrorKind::UnknownOpcode(0xff), 3);
        assert_eq!(Error::codec(codec, 100).offset(), Some(103));
        let bad_url = Error::unplaced(ErrorKind::BadUrl {
            url: "ftp://x".into(),
            reason: "unsupported scheme".into(),
        });
        assert_eq!(bad_url.offset(), None);
        assert_eq!(
            bad_url.to_string(),
            "cannot open ftp://x: unsupported scheme"
        );
    }

    // A remote file's torn end does not advise fsck, which mends local files only.
    #[test]
    fn a_torn_remote_file_does_not_advise_fsck() {
        let truncated = mmappickle_container::Error::new(
            mmappickle_container::ErrorKind::TruncatedEntry {
                entry_end: 1 << 63,
                file_len: 400,
            },
            24,
        );
        let error = Error::from(truncated);
        assert_eq!(error.offset(), Some(24));
        assert!(!error.to_string().contains("fsck"), "{error}");
        assert!(
            error.to_string().contains("400-byte remote file"),
            "{error}"
        );
    }
}
