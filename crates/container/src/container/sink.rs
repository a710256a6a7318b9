//! The value sink: an append writes its value straight into the file through it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A single value write of at least this many bytes first reserves its range on disk.
const PREALLOCATE_MIN: usize = 1 << 20;

/// Writes a new entry's value at its final offset: straight into the file, or (a small
/// value of a batch) into the batch's buffer, which is written with the rest of the batch.
#[derive(Debug)]
pub struct ValueSink<'a> {
    file: &'a File,
    /// The batch's buffer, whose end is at `position`; `None`: write to the file.
    buffer: Option<&'a mut Vec<u8>>,
    position: u64,
    end: u64,
    /// A buffered value's bytes were written in the file by the value writer itself (see
    /// [`ValueSink::write_in_place`]): the file may extend past the batch's end.
    wrote_in_file: bool,
}

impl<'a> ValueSink<'a> {
    /// A sink over `position..end` of `file`.
    pub(super) fn new(file: &'a File, position: u64, end: u64) -> Self {
        ValueSink {
            file,
            buffer: None,
            position,
            end,
            wrote_in_file: false,
        }
    }

    /// A sink over `position..end` whose bytes go to the end of `buffer` (which is to be
    /// written so that its end lands at `position`).
    pub(super) fn buffered(
        file: &'a File,
        buffer: &'a mut Vec<u8>,
        position: u64,
        end: u64,
    ) -> Self {
        ValueSink {
            file,
            buffer: Some(buffer),
            position,
            end,
            wrote_in_file: false,
        }
    }
}

impl ValueSink<'_> {
    fn reserve(&self, len: u64) -> io::Result<u64> {
        self.position
            .checked_add(len)
            .filter(|&next| next <= self.end)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "value writer went past the announced value length",
                )
            })
    }

    /// Writes `bytes` at the current position and moves past them. On Linux a write of 1 MiB
    /// or more first asks the file system to allocate its range in one go (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`; errors ignored), as numpy does: large writes get faster.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let next = self.reserve(bytes.len() as u64)?;
        if let Some(buffer) = self.buffer.as_mut() {
            buffer.extend_from_slice(bytes);
            self.position = next;
            return Ok(());
        }
        if bytes.len() >= PREALLOCATE_MIN {
            preallocate(self.file, self.position, bytes.len() as u64);
        }
        self.file.write_all_at(bytes, self.position)?;
        self.position = next;
        Ok(())
    }

    /// Moves `len` bytes forward without writing them (they read as zeros, a hole on disk;
    /// zeros in a batch's buffer, which only holds small values).
    pub fn skip(&mut self, len: u64) -> io::Result<()> {
        let next = self.reserve(len)?;
        if let Some(buffer) = self.buffer.as_mut() {
            let new_len = usize::try_from(next - self.position)
                .ok()
                .and_then(|len| buffer.len().checked_add(len))
                .ok_or_else(|| io::Error::other("value too long for memory"))?;
            buffer.resize(new_len, 0);
        }
        self.position = next;
        Ok(())
    }

    /// Copies `len` bytes of `source` from `source_offset` to the current position and
    /// moves past them: inside the kernel (`copy_file_range`, no copy through memory) where
    /// it can, else in 1 MiB pieces through a buffer. `source` is not read past its end: a
    /// source that ends early is an error.
    pub fn copy_from(&mut self, source: &File, source_offset: u64, len: u64) -> io::Result<()> {
        let next = self.reserve(len)?;
        if let Some(buffer) = self.buffer.as_mut() {
            // A small value of a batch: read into the batch's buffer.
            let start = buffer.len();
            let len = usize::try_from(len).map_err(io::Error::other)?;
            buffer.resize(start + len, 0);
            source.read_exact_at(&mut buffer[start..], source_offset)?;
            self.position = next;
            return Ok(());
        }
        let mut copied = 0;
        while copied < len {
            let piece = usize::try_from(len - copied)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            let done = kernel_copy(
                source,
                source_offset + copied,
                self.file,
                self.position + copied,
                piece,
            )?;
            if done == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the source ends {} bytes early", len - copied),
                ));
            }
            copied += done as u64;
        }
        self.position = next;
        Ok(())
    }

    /// Lets `write` write the next `len` bytes of the value itself (a binding writing
    /// straight from its own buffer): it is called with the file, the offset of the first of
    /// them and `len`, and must write exactly that range (with `pwrite`); then the sink moves
    /// past them. A range straight in the file is first allocated in one go when large (as
    /// [`ValueSink::write_all`] does); a small value of a batch is read back into the batch's
    /// buffer, whose write then leaves the bytes as they are.
    pub fn write_in_place(
        &mut self,
        len: u64,
        write: impl FnOnce(&File, u64, u64) -> io::Result<()>,
    ) -> io::Result<()> {
        let next = self.reserve(len)?;
        if self.buffer.is_none() && len >= PREALLOCATE_MIN as u64 {
            preallocate(self.file, self.position, len);
        }
        if self.buffer.is_some() {
            // The writer writes past the file's end (a buffered value lies after what the
            // batch wrote so far): a terminator goes after this entry first, so that the
            // file keeps ending with one while the writer grows it (a Python `mmapdict`
            // constructor writes one over whatever ends the file otherwise).
            let entry_end = self.end + crate::layout::ENTRY_TRAILER_LEN;
            super::end_file_with_terminator(self.file, entry_end)
                .map_err(|error| io::Error::other(error.to_string()))?;
            self.wrote_in_file = true;
        }
        write(self.file, self.position, len)?;
        if let Some(buffer) = self.buffer.as_mut() {
            let start = buffer.len();
            let len = usize::try_from(len).map_err(io::Error::other)?;
            buffer.resize(start + len, 0);
            self.file
                .read_exact_at(&mut buffer[start..], self.position)?;
        }
        self.position = next;
        Ok(())
    }

    /// Whether a buffered value's bytes were written in the file by its writer: the file
    /// may then extend past the batch's end.
    pub(super) fn wrote_in_file(&self) -> bool {
        self.wrote_in_file
    }

    /// Absolute file offset of the next byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes still to write or skip.
    pub fn remaining(&self) -> u64 {
        self.end - self.position
    }

    /// The file (for reservations such as `fs2::FileExt::allocate`).
    pub fn file(&self) -> &File {
        self.file
    }
}

/// Asks the file system to allocate `len` bytes at `offset` in one extent before they are
/// written, as numpy's `tofile` does: a large `pwrite` into the reserved range is some 20 %
/// faster than one that allocates page by page. Only the range about to be written is
/// reserved (a stub's skipped data stays a hole); the file's length is unchanged
/// (`FALLOC_FL_KEEP_SIZE`, and the range lies before the new terminator anyway). An
/// optimisation only: any error (e.g. `EOPNOTSUPP`) is ignored.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len);
}

/// Copies up to `len` bytes from `source` at `from` to `target` at `to`, returning how many
/// (0 at the source's end): `copy_file_range`, or where the kernel refuses it (another file
/// system, an old kernel) a `pread` and `pwrite` of up to 1 MiB.
fn kernel_copy(source: &File, from: u64, target: &File, to: u64, len: usize) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let (mut from, mut to) = (from, to);
        match rustix::fs::copy_file_range(source, Some(&mut from), target, Some(&mut to), len) {
            Ok(done) => return Ok(done),
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let mut buffer = vec![0u8; len.min(1 << 20)];
    let done = source.read_at(&mut buffer, from)?;
    target.write_all_at(buffer.get(..done).unwrap_or_default(), to)?;
    Ok(done)
}

/// Elsewhere the write allocates as it goes.
#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    // Bytes a caller writes into the file itself stay: a batch's buffer takes them in, so
    // that its own write of the range rewrites them, not zeros.
    #[test]
    fn bytes_written_in_place_go_into_the_batch_buffer() {
        let file = tempfile::tempfile().unwrap();
        let mut buffer = b"head".to_vec();
        let mut sink = ValueSink::buffered(&file, &mut buffer, 4, 8);
        sink.write_in_place(4, |file, offset, len| {
            assert_eq!((offset, len), (4, 4));
            file.write_all_at(b"abcd", offset)
        })
        .unwrap();
        assert_eq!(sink.position(), 8);
        assert!(sink.write_in_place(1, |_, _, _| Ok(())).is_err());
        assert_eq!(buffer, b"headabcd");
        let mut straight = ValueSink::new(&file, 8, 10);
        straight
            .write_in_place(2, |file, offset, _| file.write_all_at(b"ef", offset))
            .unwrap();
        let mut written = [0u8; 2];
        file.read_exact_at(&mut written, 8).unwrap();
        assert_eq!(&written, b"ef");
    }

    #[test]
    fn value_sink_refuses_to_go_past_the_value() {
        let file = tempfile::tempfile().unwrap();
        let mut sink = ValueSink::new(&file, 10, 20);
        sink.write_all(b"abc").unwrap();
        sink.skip(5).unwrap();
        assert_eq!(sink.position(), 18);
        assert_eq!(sink.remaining(), 2);
        assert!(sink.write_all(b"xyz").is_err());
        assert!(sink.skip(3).is_err());
        assert!(sink.skip(u64::MAX).is_err());
        assert_eq!(sink.position(), 18);
        let mut written = [0u8; 3];
        file.read_exact_at(&mut written, 10).unwrap();
        assert_eq!(&written, b"abc");
    }

    #[test]
    fn value_sink_copies_from_a_file_and_refuses_a_short_source() {
        let source = tempfile::tempfile().unwrap();
        source.write_all_at(b"0123456789", 0).unwrap();
        let target = tempfile::tempfile().unwrap();
        let mut sink = ValueSink::new(&target, 4, 12);
        sink.copy_from(&source, 2, 6).unwrap();
        assert_eq!(sink.position(), 10);
        let mut copied = [0u8; 6];
        target.read_exact_at(&mut copied, 4).unwrap();
        assert_eq!(&copied, b"234567");
        assert!(sink.copy_from(&source, 9, 2).is_err());
        assert!(sink.copy_from(&source, 0, 3).is_err());

        let mut buffer = Vec::new();
        let mut sink = ValueSink::buffered(&target, &mut buffer, 0, 3);
        sink.copy_from(&source, 7, 3).unwrap();
        assert_eq!(buffer, b"789");
    }
}
