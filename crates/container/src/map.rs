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

impl ReadMap {
    /// Maps the whole file of `container`, read-only. Refused unless `container` holds its
    /// lock: the lock is the proof that no cooperating process changes the file meanwhile.
    pub(crate) fn new(container: &Container) -> Result<Self, Error> {
        if !container.holds_lock() {
            return Err(Error::unplaced_io(io::Error::other(
                "a read map needs the container's lock",
            )));
        }
        let file = container.file();
        let len = file.metadata().map_err(Error::unplaced_io)?.len();
        if len == 0 {
            return Ok(ReadMap { map: None });
        }
        let len = usize::try_from(len).map_err(|_| Error::overflow(len))?;
        // SAFETY: the file stays whole under the map: the container holds the exclusive
        // `flock` (checked above) and every use of a `ReadMap` is a scan or a copy that ends
        // before the lock is released; cooperating processes (this crate, Python's
        // mmappickle) change or shrink the file only while they hold that lock. A process
        // that ignores the lock could truncate the file under us (SIGBUS): no mapping
        // reader can prevent that, and the crate documents it. Aliasing: the map is
        // private to this crate and hands out `&[u8]` borrowing it; this process changes
        // the file only through `pwrite`, never while such a slice is borrowed, and makes
        // no writable map of it. Bit validity: bytes are valid whatever they hold.
        let map = unsafe { MmapOptions::new().len(len).map(file) }.map_err(Error::unplaced_io)?;
        Ok(ReadMap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
