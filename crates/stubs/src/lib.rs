//! Arrays allocated on disk without touching RAM.
//!
//! An [`EmptyArray`] writes the array expression of its dtype and shape but
//! leaves the raw bytes as a hole: the file gets a sparse region that reads as
//! zeros and takes no disk space until written through a map. Creating a
//! stub takes constant time and memory, whatever its size. With
//! [`EmptyArray::reserve`] the disk space is reserved instead, so that later
//! writes through a map cannot fail for lack of space.
//!
//! ```
//! use mmappickle_array::{parse_array_value, FileSink, MappedArray};
//! use mmappickle_stubs::EmptyArray;
//!
//! let file = tempfile::tempfile()?;
//! let stub = EmptyArray::new::<f64>(&[300, 300, 300]);
//! let header = stub.write_to(&mut FileSink::new(&file, 0, None))?;
//! assert_eq!(header.raw_len, 300 * 300 * 300 * 8);
//!
//! // SAFETY: a private temporary file that nothing shrinks, mapped once.
//! let array =
//!     unsafe { MappedArray::<f64>::map(&file, header.raw_offset, header.dtype, &header.shape) }?;
//! assert_eq!(array.get(123_456)?, 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::PathBuf;

use fs2::FileExt;
use mmappickle_array::{
    ArrayEncoding, ArrayHeader, ArrayLayout, DType, Element, Error, ErrorKind, RawSink,
};

/// A stub of an array: dtype and shape, no data (Python's `EmptyNDArray`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyArray {
    dtype: DType,
    shape: Vec<usize>,
    encoding: ArrayEncoding,
    reserve: bool,
}

impl EmptyArray {
    /// A stub of `shape` elements of `T`.
    pub fn new<T: Element>(shape: &[usize]) -> EmptyArray {
        EmptyArray::with_dtype(T::dtype(), shape)
    }

    /// A stub of `shape` elements of `dtype` (any dtype with a fixed size:
    /// strings, datetimes, other byte orders).
    pub fn with_dtype(dtype: DType, shape: &[usize]) -> EmptyArray {
        EmptyArray {
            dtype,
            shape: shape.to_vec(),
            encoding: ArrayEncoding::Compatible,
            reserve: false,
        }
    }

    /// Whether to reserve the disk space (`fallocate`) instead of leaving a hole.
    ///
    /// Reserving refuses with [`ErrorKind::NoSpace`] when the file system has
    /// too little free space. It reserves the file from its start to the end
    /// of this array, so holes of earlier stubs in the file are filled too.
    pub fn reserve(mut self, reserve: bool) -> EmptyArray {
        self.reserve = reserve;
        self
    }

    /// The encoding to write ([`ArrayEncoding::Compatible`] by default).
    pub fn encoding(mut self, encoding: ArrayEncoding) -> EmptyArray {
        self.encoding = encoding;
        self
    }

    /// The dtype.
    pub fn dtype(&self) -> &DType {
        &self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The bytes around the hole: the container needs `value_len()` and
    /// `raw_offset()` (to align) before writing.
    pub fn layout(&self) -> Result<ArrayLayout, Error> {
        ArrayLayout::new(&self.dtype, &self.shape, self.encoding)
    }

    /// Writes the stub at the sink's position: prefix, a hole (or reserved
    /// space) of the raw length, suffix. Returns the header, with offsets
    /// relative to the value's start (the sink's position on entry).
    pub fn write_to<S: RawSink + ?Sized>(&self, sink: &mut S) -> Result<ArrayHeader, Error> {
        let layout = self.layout()?;
        let value_start = sink.position();
        let raw_end = value_start
            .checked_add(layout.raw_offset())
            .and_then(|start| start.checked_add(layout.raw_len()))
            .ok_or(Error::new(ErrorKind::Overflow, value_start))?;
        if self.reserve {
            check_space(sink, raw_end)?;
        }
        layout.write_hole_to(sink)?;
        if self.reserve {
            sink.file()
                .allocate(raw_end)
                .map_err(|e| Error::io(e, value_start))?;
        }
        Ok(layout.header().clone())
    }
}

/// Refuses when the file system has less free space than reserving up to `end` needs.
fn check_space<S: RawSink + ?Sized>(sink: &S, end: u64) -> Result<(), Error> {
    let position = sink.position();
    let allocated = sink
        .file()
        .allocated_size()
        .map_err(|e| Error::io(e, position))?;
    let needed = end.saturating_sub(allocated);
    let path = match sink.path() {
        Some(path) => path.to_path_buf(),
        None => fd_path(sink.file()).ok_or_else(|| {
            Error::io(
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the file's path is needed to check its free space",
                ),
                position,
            )
        })?,
    };
    let available = fs2::available_space(&path).map_err(|e| Error::io(e, position))?;
    if needed > available {
        return Err(Error::new(
            ErrorKind::NoSpace { needed, available },
            position,
        ));
    }
    Ok(())
}

/// A path naming an open file, where the system has one (`/proc/self/fd/N` on Linux).
fn fd_path(file: &std::fs::File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        Some(PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmappickle_array::{parse_array_value, FileSink};

    // A stub writes exactly the bytes of an array of zeros.
    #[test]
    fn stub_equals_zero_array() {
        for encoding in [ArrayEncoding::Compatible, ArrayEncoding::Portable] {
            let file = tempfile::tempfile().unwrap();
            let stub = EmptyArray::new::<i32>(&[3, 4]).encoding(encoding);
            let header = stub.write_to(&mut FileSink::new(&file, 0, None)).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes).unwrap();
            let expected = stub.layout().unwrap().to_value_bytes(&[0; 48]).unwrap();
            assert_eq!(bytes, expected);
            assert_eq!(parse_array_value(&bytes).unwrap().unwrap(), header);
        }
    }

    // Structured dtypes are refused.
    #[test]
    fn structured_refused() {
        let file = tempfile::tempfile().unwrap();
        let stub = EmptyArray::with_dtype(DType::opaque("[('a', '<i4')]", 4), &[2]);
        let err = stub
            .write_to(&mut FileSink::new(&file, 0, None))
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::UnsupportedDType(_)));
    }
}
