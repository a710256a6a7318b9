//! Writing array values into a sink that can leave holes.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::element::Element;
use crate::error::{Error, ErrorKind};
use crate::expr::{ArrayEncoding, ArrayLayout, MaskedLayout};

/// Where a value's bytes go: the container's value sink, bridged by the facade.
pub trait RawSink {
    /// Writes `bytes` at the current position and moves past them.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Moves `n` bytes forward without writing (a hole reading as zeros).
    fn skip(&mut self, n: u64) -> io::Result<()>;
    /// The current position in the file.
    fn position(&self) -> u64;
    /// The file being written.
    fn file(&self) -> &File;
    /// The file's path, when known (to ask for its file system's free space).
    fn path(&self) -> Option<&Path> {
        None
    }
}

fn io_error(error: io::Error) -> Error {
    Error::unplaced(ErrorKind::Io(error))
}

impl ArrayLayout {
    /// Writes prefix, `raw` (which must be `raw_len` bytes) and suffix into `sink`.
    pub fn write_to<S: RawSink + ?Sized>(&self, sink: &mut S, raw: &[u8]) -> Result<(), Error> {
        self.check_raw(raw)?;
        sink.write_all(self.prefix()).map_err(io_error)?;
        sink.write_all(raw).map_err(io_error)?;
        sink.write_all(self.suffix()).map_err(io_error)
    }

    /// Writes prefix, a hole of `raw_len` bytes and suffix into `sink`.
    pub fn write_hole_to<S: RawSink + ?Sized>(&self, sink: &mut S) -> Result<(), Error> {
        sink.write_all(self.prefix()).map_err(io_error)?;
        sink.skip(self.raw_len()).map_err(io_error)?;
        sink.write_all(self.suffix()).map_err(io_error)
    }

    /// The layout of a slice of `T` with `shape` (in the machine's byte order).
    pub fn for_slice<T: Element>(
        data: &[T],
        shape: &[usize],
        encoding: ArrayEncoding,
    ) -> Result<ArrayLayout, Error> {
        let layout = ArrayLayout::new(&T::dtype(), shape, encoding)?;
        layout.check_raw(bytemuck::cast_slice(data))?;
        Ok(layout)
    }
}

impl MaskedLayout {
    /// Writes the masked array into `sink`: `data` and `mask` are the raw bytes.
    pub fn write_to<S: RawSink + ?Sized>(
        &self,
        sink: &mut S,
        data: &[u8],
        mask: &[u8],
    ) -> Result<(), Error> {
        for (raw, part) in [(data, &self.header().data), (mask, &self.header().mask)] {
            if raw.len() as u64 != part.raw_len {
                return Err(Error::unplaced(ErrorKind::DataLength {
                    found: raw.len() as u64,
                    expected: part.raw_len,
                }));
            }
        }
        for part in [self.head(), data, self.middle(), mask, self.tail()] {
            sink.write_all(part).map_err(io_error)?;
        }
        Ok(())
    }
}

/// A [`RawSink`] writing at a position of a file with positioned writes
/// (the file's cursor is not moved): for tests and simple writers.
#[derive(Debug)]
pub struct FileSink<'a> {
    file: &'a File,
    position: u64,
    path: Option<&'a Path>,
}

impl<'a> FileSink<'a> {
    /// A sink writing `file` from `position` on; `path` is the file's path, if known.
    pub fn new(file: &'a File, position: u64, path: Option<&'a Path>) -> Self {
        FileSink {
            file,
            position,
            path,
        }
    }
}

fn write_file_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }
    #[cfg(windows)]
    {
        let mut written = 0;
        while written < bytes.len() {
            let at = offset + written as u64;
            match std::os::windows::fs::FileExt::seek_write(file, &bytes[written..], at)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => written += n,
            }
        }
        Ok(())
    }
}

impl RawSink for FileSink<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_file_at(self.file, bytes, self.position)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.position = self
            .position
            .checked_add(n)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "position overflows"))?;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn file(&self) -> &File {
        self.file
    }

    fn path(&self) -> Option<&Path> {
        self.path
    }
}
