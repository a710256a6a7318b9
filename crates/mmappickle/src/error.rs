//! The facade's error type: one `Error { kind, offset }` wrapping the layers' errors.

use std::fmt;

/// An error of an [`MmapDict`](crate::MmapDict) operation: what went wrong, and the byte
/// offset in the file where it was found (none when the problem is at no place in the file:
/// a missing key, a refused change).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    offset: Option<u64>,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A value could not be decoded (malformed pickle opcodes, or a bound of the dict's
    /// [`Limits`](crate::Limits) exceeded).
    Codec(mmappickle_codec::Error),
    /// The file layout is damaged, or the container refused the operation.
    Container(mmappickle_container::Error),
    /// An array expression is malformed, cannot be written, or cannot be mapped.
    Array(mmappickle_array::Error),
    /// An operating-system error outside the layers (convert, rename, sync); it is the
    /// error's [`source`](std::error::Error::source).
    Io(std::io::Error),
    /// The key is not in the dict.
    KeyNotFound {
        /// The key asked for.
        key: String,
    },
    /// A key longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes once encoded as UTF-8 (the format stores its length in
    /// one byte).
    KeyTooLong {
        /// The key's length in UTF-8 bytes.
        len: usize,
    },
    /// The entry is an array whose dtype is not the element type asked for.
    WrongElementType {
        /// The key.
        key: String,
        /// The Rust element type asked for.
        requested: &'static str,
        /// The dtype of the array in the file (numpy's `str(dtype)`).
        dtype: String,
    },
    /// Bytes of one dtype given to be written into an array of another.
    WrongDType {
        /// The key.
        key: String,
        /// The dtype of the bytes given (numpy's `str(dtype)`).
        given: String,
        /// The dtype of the array in the file.
        dtype: String,
    },
    /// The entry holds a generic value (or a masked array) where a plain array was asked for.
    NotAnArray {
        /// The key.
        key: String,
    },
    /// The entry is not a masked array.
    NotMasked {
        /// The key.
        key: String,
    },
    /// A change (insert, remove, vacuum, fsck, a writable map, a write of rows) was asked of
    /// a dict opened read-only.
    ReadOnly,
    /// Vacuum was refused because maps of this file handed out by this dict are still alive
    /// (vacuum replaces the file, so they would no longer see it).
    MapsAlive {
        /// How many maps are alive.
        count: usize,
    },
    /// A writable map of a key's array (or a write of its rows) was asked while another map
    /// of it lives in this process, or a map while a writable one (or a write) lives: one
    /// process never changes bytes that another map of it reads.
    MapConflict {
        /// The key.
        key: String,
    },
    /// The file is a plain pickle, but not of a dict: there is nothing to convert.
    NotADict {
        /// The Python type of what the pickle holds.
        found: &'static str,
    },
    /// The file is a plain pickle of a dict, which only a read-write open converts.
    PlainPickleReadOnly,
    /// The plain pickle to convert has a key that is not a `str` (mmappickle keys are
    /// strings).
    NonStrKey {
        /// The Python type of the key.
        found: &'static str,
    },
    /// A serde type and a value do not fit each other (the error says where).
    #[cfg(feature = "serde")]
    Serde(mmappickle_codec::SerdeError),
    /// `data` and `mask` given to an insert do not have the same number of elements.
    MaskLength {
        /// Elements of the data.
        data: usize,
        /// Elements of the mask.
        mask: usize,
    },
    /// A pickle stream given to an insert does not decode; the codec's offset is in that
    /// stream, not in the file (the error itself is at no place in the file).
    PickleStream(mmappickle_codec::Error),
    /// Rows asked outside the array (or of a 0-d array).
    RowsOutOfRange {
        /// The rows asked for.
        rows: std::ops::Range<usize>,
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
    /// No pickler of the dict reads a stored value (`reading`), or stores a value given
    /// (see [`Pickler`](crate::Pickler)).
    NoPickler {
        /// The key.
        key: String,
        /// Whether a read (else a write) found none.
        reading: bool,
    },
    /// A pickler was asked to read or store a value it does not take (its `is_valid` or
    /// `is_picklable` said otherwise).
    PicklerRefused {
        /// The pickler's name.
        pickler: String,
    },
    /// A pickler of one's own failed while it read a value (for a binding to another
    /// language: the exception it raised).
    PicklerFailed {
        /// The pickler's name.
        pickler: String,
        /// What it reported.
        message: String,
    },
    /// A pickler asked to map bytes outside the value it reads.
    PlaceOutsideValue {
        /// The file range asked for.
        range: std::ops::Range<u64>,
    },
    /// A value is larger than this machine can hold in memory.
    TooLarge {
        /// The value's length as the file gives it.
        len: u64,
    },
    /// A remote file's URL is malformed or names a scheme this build cannot read.
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A request for a remote file failed after its retries (a time-out, a refused
    /// connection, a 4xx/5xx answer, a missing object); the store's error is the
    /// [`source`](std::error::Error::source).
    Request(Box<dyn std::error::Error + Send + Sync>),
    /// A remote file was replaced while it was read: its version is no longer the one read
    /// first, so nothing read from it is mixed with the new version.
    Changed {
        /// The version (ETag, else size) read first.
        expected: String,
        /// The version the store has now, when it said (a failed `If-Match` does not).
        found: Option<String>,
    },
    /// A server answered with other bytes than asked for.
    BadResponse {
        /// The byte range asked for.
        requested: std::ops::Range<u64>,
        /// What was wrong with the answer.
        problem: String,
    },
    /// A remote file's layout is torn or damaged: fsck mends a local file only (download it,
    /// then run fsck on the copy).
    RemoteLayout(mmappickle_container::Error),
}

impl Error {
    /// An error of `kind` found at byte `offset` of the file.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error {
            kind,
            offset: Some(offset),
        }
    }

    /// An error of `kind` at no place in the file (a missing key, a refused change).
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

    /// Whether a remote file changed while it was read ([`ErrorKind::Changed`]).
    pub fn is_changed(&self) -> bool {
        matches!(self.kind, ErrorKind::Changed { .. })
    }

    /// A codec error found in a value that starts at `value_offset` in the file.
    pub fn codec_at(error: mmappickle_codec::Error, value_offset: u64) -> Self {
        let offset = value_offset.saturating_add(error.offset());
        Error::new(ErrorKind::Codec(error), offset)
    }

    /// An array error whose offset is relative to a value at `value_offset` in the file (one
    /// at no place, like a refused shape, stays at none).
    pub fn array_at(error: mmappickle_array::Error, value_offset: u64) -> Self {
        let offset = error
            .offset()
            .map(|offset| value_offset.saturating_add(offset));
        Error {
            kind: ErrorKind::Array(error),
            offset,
        }
    }

    pub(crate) fn io(error: std::io::Error) -> Self {
        Error::unplaced(ErrorKind::Io(error))
    }
}

impl From<mmappickle_container::Error> for Error {
    /// Keeps the container's offset; its `ReadOnly` and `KeyTooLong` become the facade's.
    fn from(error: mmappickle_container::Error) -> Self {
        use mmappickle_container::ErrorKind as Kind;
        let offset = error.offset();
        let kind = match error.kind() {
            Kind::ReadOnly => ErrorKind::ReadOnly,
            Kind::KeyTooLong { len } => ErrorKind::KeyTooLong { len: *len },
            _ => ErrorKind::Container(error),
        };
        Error { kind, offset }
    }
}

impl From<std::io::Error> for Error {
    /// An I/O error outside the layers, at no particular offset.
    fn from(error: std::io::Error) -> Self {
        Error::io(error)
    }
}

#[cfg(feature = "serde")]
impl From<mmappickle_codec::SerdeError> for Error {
    /// A Rust type and a value that do not fit: at no place in the file (the error says
    /// where in the value).
    fn from(error: mmappickle_codec::SerdeError) -> Self {
        Error::unplaced(ErrorKind::Serde(error))
    }
}

impl From<mmappickle_array::Error> for Error {
    /// Map errors carry file offsets already; writer errors carry none.
    fn from(error: mmappickle_array::Error) -> Self {
        let offset = error.offset();
        Error {
            kind: ErrorKind::Array(error),
            offset,
        }
    }
}

/// `error`'s message followed by those of its sources (`what: why: ...`), for a tool that
/// shows an error on one line. Each error of these crates says only its own part (what, and
/// at which byte offset) and leaves its cause to [`source`](std::error::Error::source); a
/// source whose message already ends the line (another library's error that repeats its
/// cause) is not said again.
///
/// ```
/// use mmappickle::{message_with_sources, MmapDict};
///
/// let error = MmapDict::open_readonly("/nonexistent/dir/file.mmdpickle").unwrap_err();
/// let message = message_with_sources(&error);
/// assert!(message.ends_with("No such file or directory (os error 2)"), "{message}");
/// ```
pub fn message_with_sources(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_message = cause.to_string();
        if !message.ends_with(&cause_message) {
            message.push_str(": ");
            message.push_str(&cause_message);
        }
        source = cause.source();
    }
    message
}

/// The container's message for a remote file: fsck mends a local file only, so a remote
/// file's torn end is said without the advice to run it.
fn write_remote_layout(
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
            "entry ends at byte {entry_end}, past the end of the {file_len}-byte remote file (the \
             file is torn or damaged)"
        ),
        Kind::MissingTerminator => write!(
            f,
            "expected the terminator (FRAME 2, DICT, STOP) (the file is torn or damaged)"
        ),
        kind => write!(f, "{kind}"),
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A layer's message is said here (with the file offset, not the layer's own): the
            // source chain continues below it, at the layer's source.
            ErrorKind::Codec(error) => write!(f, "cannot decode the value: {}", error.kind()),
            ErrorKind::Container(error) => write!(f, "{}", error.kind()),
            ErrorKind::Array(error) => write!(f, "{}", error.kind()),
            // The I/O error itself is the source: said once, by whoever prints the chain.
            ErrorKind::Io(_) => write!(f, "I/O error"),
            ErrorKind::KeyNotFound { key } => {
                write!(f, "key {key:?} not found: expected a live key")
            }
            ErrorKind::KeyTooLong { len } => {
                let max = mmappickle_container::MAX_KEY_LEN;
                write!(f, "key of {len} UTF-8 bytes: expected at most {max}")
            }
            ErrorKind::WrongElementType {
                key,
                requested,
                dtype,
            } => write!(
                f,
                "key {key:?} holds an array of dtype {dtype}, which cannot be read as {requested}"
            ),
            ErrorKind::WrongDType { key, given, dtype } => write!(
                f,
                "key {key:?} holds an array of dtype {dtype}: bytes of dtype {given} cannot be \
                 written into it"
            ),
            ErrorKind::NotAnArray { key } => {
                write!(f, "key {key:?} does not hold a plain array: expected one")
            }
            ErrorKind::NotMasked { key } => {
                write!(f, "key {key:?} does not hold a masked array: expected one")
            }
            ErrorKind::ReadOnly => write!(f, "the dict is open read-only: changes are refused"),
            ErrorKind::MapsAlive { count } => write!(
                f,
                "vacuum refused: {count} array map(s) of this file are still alive \
                 (drop them first: vacuum replaces the file)"
            ),
            ErrorKind::MapConflict { key } => write!(
                f,
                "key {key:?} is mapped elsewhere in this process: a writable map or a write of \
                 rows cannot live beside another map of the same bytes (drop the other map first)"
            ),
            ErrorKind::NotADict { found } => {
                write!(
                    f,
                    "the file is a plain pickle of a {found}: expected a dict"
                )
            }
            ErrorKind::PlainPickleReadOnly => write!(
                f,
                "the file is a plain pickle of a dict, not an mmappickle file: \
                 open it read-write to convert it"
            ),
            ErrorKind::NonStrKey { found } => write!(
                f,
                "the pickle to convert has a key of type {found}: expected str keys only"
            ),
            #[cfg(feature = "serde")]
            ErrorKind::Serde(error) => write!(f, "{error}"),
            ErrorKind::MaskLength { data, mask } => write!(
                f,
                "mask has {mask} elements: expected {data}, as many as the data"
            ),
            ErrorKind::PickleStream(error) => write!(
                f,
                "cannot read the pickle given: {} at byte {} of the stream",
                error.kind(),
                error.offset()
            ),
            ErrorKind::RowsOutOfRange { rows, n_rows } => write!(
                f,
                "rows {}..{} asked of an array of {n_rows} rows",
                rows.start, rows.end
            ),
            ErrorKind::BufferLength { expected, found } => {
                write!(f, "a buffer of {found} bytes: expected {expected}")
            }
            ErrorKind::NoPickler { key, reading: true } => {
                write!(f, "no pickler of the dict reads the value of key {key:?}")
            }
            ErrorKind::NoPickler {
                key,
                reading: false,
            } => {
                write!(
                    f,
                    "no pickler of the dict stores the value given for key {key:?}"
                )
            }
            ErrorKind::PicklerRefused { pickler } => {
                write!(f, "{pickler} was given a value it does not take")
            }
            ErrorKind::PicklerFailed { pickler, message } => {
                write!(f, "{pickler} failed: {message}")
            }
            ErrorKind::PlaceOutsideValue { range } => write!(
                f,
                "bytes {}..{} asked to be mapped lie outside the value",
                range.start, range.end
            ),
            ErrorKind::TooLarge { len } => {
                write!(f, "a value of {len} bytes, more than this machine can hold")
            }
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
            ErrorKind::RemoteLayout(error) => write_remote_layout(f, error.kind()),
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
            // The layers' messages are in this error's own: the chain goes on below them.
            ErrorKind::Codec(error) => error.source(),
            ErrorKind::Container(error) => error.source(),
            ErrorKind::Array(error) => error.source(),
            ErrorKind::Io(error) => Some(error),
            ErrorKind::RemoteLayout(error) => error.source(),
            ErrorKind::PickleStream(error) => error.source(),
            ErrorKind::Request(error) => Some(error.as_ref()),
            #[cfg(feature = "serde")]
            ErrorKind::Serde(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The container's read-only refusal becomes the facade's own kind, offset kept.
    #[test]
    fn container_read_only_maps_to_facade_kind() {
        let error = Error::from(mmappickle_container::Error::new(
            mmappickle_container::ErrorKind::ReadOnly,
            17,
        ));
        assert!(matches!(error.kind(), ErrorKind::ReadOnly));
        assert_eq!(error.offset(), Some(17));
    }

    // A codec error inside a value is reported at its file offset.
    #[test]
    fn codec_offsets_are_shifted_to_the_file() {
        let codec =
            mmappickle_codec::Error::new(mmappickle_codec::ErrorKind::UnknownOpcode(0xff), 3);
        let error = Error::codec_at(codec, 100);
        assert_eq!(error.offset(), Some(103));
        assert!(error.to_string().contains("at byte offset 103"));
    }

    // A problem at no place in the file says no offset.
    #[test]
    fn unplaced_errors_say_no_offset() {
        let missing = Error::unplaced(ErrorKind::KeyNotFound {
            key: "x".to_owned(),
        });
        assert_eq!(missing.offset(), None);
        assert_eq!(
            missing.to_string(),
            "key \"x\" not found: expected a live key"
        );
        let refused = Error::from(mmappickle_container::Error::unplaced(
            mmappickle_container::ErrorKind::ReadOnly,
        ));
        assert_eq!(
            refused.to_string(),
            "the dict is open read-only: changes are refused"
        );
    }

    // An I/O error stays the source, and no message of the chain is said twice.
    #[test]
    fn io_errors_are_sources_said_once() {
        use std::error::Error as _;
        let container = mmappickle_container::Error::new(
            mmappickle_container::ErrorKind::Io(std::io::Error::other("disk on fire")),
            40,
        );
        let error = Error::from(container);
        let mut chain = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        assert_eq!(chain, ["I/O error at byte offset 40", "disk on fire"]);
        let io = error
            .source()
            .and_then(|source| source.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::Other)
        );
    }
}
