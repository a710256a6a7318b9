//! Maps of arrays: the facade's only `unsafe` code, and the rule that makes it sound inside
//! one process.
//!
//! Architecture invariant: one process never holds a writable map of an entry's bytes
//! together with any other map of them. Every map this crate hands out carries a [`Claim`]
//! on its region in a process-wide table; a writable map is refused
//! ([`ErrorKind::MapConflict`]) while any other claim on the region lives, and any map while
//! a writable claim lives.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, PoisonError};

use mmappickle_array::{ArrayHeader, MappedBytes, MappedBytesMut};

use crate::error::{Error, ErrorKind};

/// The bytes of one entry's value, named process-wide: the file (device and inode, so that
/// two handles of one file agree and a vacuumed file's new inode is other bytes) and the
/// value's offset (entries never overlap, so two values are two disjoint regions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Region {
    device: u64,
    inode: u64,
    value_offset: u64,
}

/// How many maps of a region live, by kind.
#[derive(Debug, Default)]
struct Holders {
    readers: usize,
    writers: usize,
}

/// Every region of this process with a live map.
static LIVE_MAPS: Mutex<Option<HashMap<Region, Holders>>> = Mutex::new(None);

/// A map's claim on its region, kept alive with the map: dropping the map releases it. It
/// also holds a clone of the dict's map counter, so that vacuum sees the map.
#[derive(Debug)]
struct Claim {
    region: Region,
    writable: bool,
    _counted: Arc<()>,
}

impl Claim {
    /// Claims `region`, or `None` when the rule refuses: a writable claim beside any other,
    /// or any claim beside a writable one.
    fn take(region: Region, writable: bool, counter: &Arc<()>) -> Option<Claim> {
        let mut live = LIVE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        let holders = live
            .get_or_insert_with(HashMap::new)
            .entry(region)
            .or_default();
        let refused = holders.writers > 0 || (writable && holders.readers > 0);
        if refused {
            return None;
        }
        if writable {
            holders.writers += 1;
        } else {
            holders.readers += 1;
        }
        Some(Claim {
            region,
            writable,
            _counted: Arc::clone(counter),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut live = LIVE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(regions) = live.as_mut() else {
            return;
        };
        if let Some(holders) = regions.get_mut(&self.region) {
            if self.writable {
                holders.writers = holders.writers.saturating_sub(1);
            } else {
                holders.readers = holders.readers.saturating_sub(1);
            }
            if holders.readers == 0 && holders.writers == 0 {
                regions.remove(&self.region);
            }
        }
    }
}

/// Where an array part of the value of `key` at `value_offset` is to be mapped.
pub(super) struct MapRequest<'a> {
    pub(super) key: &'a str,
    pub(super) value_offset: u64,
    pub(super) header: ArrayHeader,
}

impl MapRequest<'_> {
    /// Claims the region (or is refused by the rule) and finds where the raw data starts.
    fn claim(&self, file: &File, writable: bool, counter: &Arc<()>) -> Result<(Claim, u64), Error> {
        let metadata = file.metadata().map_err(Error::io)?;
        let region = Region {
            device: metadata.dev(),
            inode: metadata.ino(),
            value_offset: self.value_offset,
        };
        let claim = Claim::take(region, writable, counter).ok_or_else(|| {
            Error::unplaced(ErrorKind::MapConflict {
                key: self.key.to_owned(),
            })
        })?;
        Ok((claim, self.data_offset()?))
    }

    /// Where the raw data starts in the file.
    pub(super) fn data_offset(&self) -> Result<u64, Error> {
        self.value_offset
            .checked_add(self.header.raw_offset)
            .ok_or_else(|| {
                let overflow = mmappickle_array::ErrorKind::Overflow;
                let error = mmappickle_array::Error::new(overflow, self.header.raw_offset);
                Error::array_at(error, self.value_offset)
            })
    }

    /// Maps the part read-only. `file` is that of a read snapshot (under the file's lock,
    /// shared or exclusive), and the value is that of the live entry of `key` in its table.
    pub(super) fn map(self, file: &File, counter: &Arc<()>) -> Result<MappedBytes, Error> {
        let (claim, data_offset) = self.claim(file, false, counter)?;
        // SAFETY: the region stays in the file: it lies inside the value of a live entry
        // (the array parser checked the raw bytes against the value's length, and the map
        // checks them against the file's), found under the file's lock (the snapshot's
        // shared lock, or the exclusive one), and the
        // container never shrinks a file below a live entry (a failed append cuts back to
        // its own terminator, fsck and the refresh cut only after the last complete entry,
        // vacuum writes a new file and renames it, leaving the mapped inode whole);
        // cooperating processes (this crate, Python's mmappickle) follow the same rules
        // under the same lock. Aliasing: `claim` proves that no writable map of these bytes
        // lives in this process, and it lives as long as the map. Bit validity: the map
        // hands out bytes, read as `Pod` elements, for which any bits are valid.
        let map =
            unsafe { MappedBytes::map(file, data_offset, self.header.dtype, &self.header.shape) }?;
        Ok(map.with_keep_alive(Box::new(claim)))
    }

    /// Maps the part writable, under the same conditions as [`MapRequest::map`].
    pub(super) fn map_mut(self, file: &File, counter: &Arc<()>) -> Result<MappedBytesMut, Error> {
        let (claim, data_offset) = self.claim(file, true, counter)?;
        // SAFETY: the region stays in the file for the reasons given in `map`. Aliasing:
        // `claim` proves that no other map of these bytes (read-only or writable) lives in
        // this process, and it lives as long as this one, so the `&mut [u8]` it hands out
        // is the only reference to them here. Writes by other processes only change element
        // values: any bits are a valid `Pod` element.
        let map = unsafe {
            MappedBytesMut::map(file, data_offset, self.header.dtype, &self.header.shape)
        }?;
        Ok(map.with_keep_alive(Box::new(claim)))
    }
}
