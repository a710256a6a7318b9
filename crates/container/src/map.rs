//! Read maps of the file: the crate's only `unsafe` code.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// A read-only map of the first `len` bytes of a file, or an empty slice for an empty file.
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
    /// Maps the first `len` bytes of `file` read-only.
    ///
    /// The caller holds the container's `flock` (exclusive, or shared by read views), has
    /// checked that the file is at least `len` bytes long, and reads the map again later only
    /// under the lock and after an `fstat` found the file still at least as long as the
    /// bytes read (the container keeps its map across lock holds).
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(ReadMap { map: None });
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        // SAFETY: the map is read-only and private to this crate: no `&mut` to its bytes exists
        // and the slice handed out borrows the map. Changes to the file by this process happen
        // only through `pwrite` under the exclusive lock, while no read view (the only holder
        // of a slice across calls) is out. Other cooperating processes (this crate and
        // Python's mmappickle) change or shrink the file only while they hold the exclusive
        // `flock`; our caller reads the map only under the lock (shared or exclusive) and
        // within the length an `fstat` under that lock hold gave, so no page it reads can
        // vanish. A process that ignores the lock could truncate the file under us (SIGBUS),
        // which no mapping-based reader can prevent and which the crate documents.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(ReadMap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
