//! Bytes at offsets: the file in memory, or a remote file's block cache that holds bytes only
//! once fetched; and how a parse over them stops.

use std::ops::Range;

use crate::error::{Error, ErrorKind};

/// A file's bytes read at offsets: the whole file in memory (a map, a slice), or a cache of a
/// remote file's blocks that fetches what [`Scanner::resume`](crate::Scanner::resume) asks for.
pub trait ByteSource {
    /// The file's length.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `len` bytes at `offset`: `Ok(None)` when they run past the end of the file,
    /// `Err(NotLoaded)` when the source holds them only once they are fetched.
    fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded>;
}

/// Bytes of the file that a [`ByteSource`] does not hold yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoaded {
    /// The bytes wanted (inside the file).
    pub range: Range<u64>,
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded> {
        let slice = (|| {
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            self.get(start..end)
        })();
        Ok(slice)
    }
}

pub(super) fn byte_at<S: ByteSource + ?Sized>(
    file: &S,
    offset: u64,
) -> Result<Option<u8>, NotLoaded> {
    Ok(file.bytes_at(offset, 1)?.map(|bytes| bytes[0]))
}

pub(super) fn u64_at<S: ByteSource + ?Sized>(
    file: &S,
    offset: u64,
) -> Result<Option<u64>, NotLoaded> {
    Ok(file
        .bytes_at(offset, 8)?
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_le_bytes))
}

pub(super) fn i32_at<S: ByteSource + ?Sized>(
    file: &S,
    offset: u64,
) -> Result<Option<i32>, NotLoaded> {
    Ok(file
        .bytes_at(offset, 4)?
        .and_then(|bytes| bytes.try_into().ok())
        .map(i32::from_le_bytes))
}

/// Why a parse over a [`ByteSource`] stopped: bad bytes, or bytes still to fetch.
pub(super) enum Stop {
    Invalid(Error),
    NotLoaded(NotLoaded),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Invalid(error)
    }
}

impl From<NotLoaded> for Stop {
    fn from(not_loaded: NotLoaded) -> Self {
        Stop::NotLoaded(not_loaded)
    }
}

/// The outcome of a parse over bytes that are all in memory, where nothing is ever missing
/// (an impossible miss reads as bytes past the end of the file).
pub(super) fn in_memory<T>(result: Result<T, Stop>, file_len: u64) -> Result<T, Error> {
    result.map_err(|stop| match stop {
        Stop::Invalid(error) => error,
        Stop::NotLoaded(NotLoaded { range }) => Error::new(
            ErrorKind::TruncatedEntry {
                entry_end: range.end,
                file_len,
            },
            range.start,
        ),
    })
}
