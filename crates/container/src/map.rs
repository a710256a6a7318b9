//! Read maps of the file: the crate's only `unsafe` code.

#![allow(unsafe_code)]

use std::io;

use memmap2::{Mmap, MmapOptions};

use crate::container::Container;
use crate::error::Error;

/// A read-only map of the whole file, or an empty slice for an empty file.
pub(crate) struct ReadMap {
    map: Option<Mmap>,
}

impl std::fmt::Debug for ReadMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMap")
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl ReadMap {
    /// Maps the first `len` bytes of the file of `container`, read-only. Refused unless
    /// `container` holds its lock (exclusive, or shared by read views): the lock is the proof
    /// that no cooperating process changes the file meanwhile. The caller found the file at
    /// least `len` bytes long under this lock hold, and reads the map again later (the
    /// container keeps it across lock holds) only under the lock and after an `fstat` found
    /// the file still at least as long as the bytes read.
    pub(crate) fn new(container: &Container, len: u64) -> Result<Self, Error> {
        if !container.holds_lock() {
            return Err(Error::unplaced_io(io::Error::other(
                "a read map needs the container's lock",
            )));
        }
        if len == 0 {
            return Ok(ReadMap { map: None });
        }
        let len = usize::try_from(len).map_err(|_| Error::overflow(len))?;
        // SAFETY: the file stays whole under the map while it is read: the container holds
        // its `flock` (checked above; exclusive, or shared by read views) and reads the map
        // only under the lock and within the length an `fstat` under that lock hold gave;
        // cooperating processes (this crate, Python's mmappickle) change or shrink the file
        // only while they hold the exclusive lock. A process that ignores the lock could
        // truncate the file under us (SIGBUS): no mapping reader can prevent that, and the
        // crate documents it. Aliasing: the map is private to this crate and hands out
        // `&[u8]` borrowing it; this process changes the file only through `pwrite` under
        // the exclusive lock, while no read view (the only holder of a slice across calls)
        // is out, and makes no writable map of it. Bit validity: bytes are valid whatever
        // they hold.
        let map = unsafe { MmapOptions::new().len(len).map(container.file()) }
            .map_err(Error::unplaced_io)?;
        Ok(ReadMap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
