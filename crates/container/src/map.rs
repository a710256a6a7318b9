//! Read maps of the file: the crate's only `unsafe` code.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// A read-only map of the first `len` bytes of a file, or an empty slice for an empty file.
pub(crate) struct ReadMap {
    map: Option<Mmap>,
}

impl ReadMap {
    /// Maps the first `len` bytes of `file` read-only.
    ///
    /// The caller holds the container's exclusive `flock` for as long as the map is alive, and
    /// has checked that the file is at least `len` bytes long.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(ReadMap { map: None });
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        // SAFETY: the map is read-only and private to this crate: no `&mut` to its bytes exists
        // and the slice handed out borrows the map. Changes to the file by this process happen
        // only through `pwrite` while no borrowed slice is alive (every use of a `ReadMap` is a
        // scan or a copy that ends before the next write). Other cooperating processes
        // (this crate and Python's mmappickle) change or shrink the file only while they hold
        // the exclusive `flock`, which our caller holds for the map's whole life; a process that
        // ignores the lock could truncate the file under us (SIGBUS), which no mapping-based
        // reader can prevent and which the crate documents.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(ReadMap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
