//! Maps of arrays: the facade's only `unsafe` code, and the rule that makes it sound inside
//! one process.
//!
//! Architecture invariant: one process never holds a writable map of an entry's bytes
//! together with any other reference to them, nor changes them by a positioned write
//! (`pwrite`) while any reference to them lives. Every map this crate hands out, every
//! other read of an array's bytes (a decode, a copy, a disassembly of the whole file) and
//! every positioned write carries a [`Claim`] on its region in a process-wide table; a
//! writable map is refused ([`ErrorKind::MapConflict`]) while any other claim on the region
//! (or on the whole file) lives, and any claim while a writable one lives; positioned writes
//! live beside each other (they hand out no reference), never beside a map or a read. Other
//! processes are outside any table: there the rule is memmap2's and numpy's, sound while
//! every writer of the file cooperates.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, PoisonError};

use mmappickle_array::{MappedBytes, MappedBytesMut};

use crate::error::{Error, ErrorKind};
use crate::item::ArrayPlace;

/// The bytes of one entry's value, named process-wide: the file (device and inode, so that
/// two handles of one file agree and a vacuumed file's new inode is other bytes) and the
/// value's offset (entries never overlap, so two values are two disjoint regions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Region {
    device: u64,
    inode: u64,
    value_offset: u64,
}

/// The `value_offset` of the region that stands for the whole file (a disassembly's reads):
/// no value starts there.
const WHOLE_FILE: u64 = u64::MAX;

impl Region {
    fn of(file: &File, value_offset: u64) -> Result<Region, Error> {
        let metadata = file.metadata().map_err(Error::io)?;
        Ok(Region {
            device: metadata.dev(),
            inode: metadata.ino(),
            value_offset,
        })
    }

    fn is_whole_file(&self) -> bool {
        self.value_offset == WHOLE_FILE
    }

    fn same_file(&self, other: &Region) -> bool {
        (self.device, self.inode) == (other.device, other.inode)
    }
}

/// How many claims on a region live, by kind.
#[derive(Debug, Default)]
struct Holders {
    readers: usize,
    writers: usize,
    positioned_writers: usize,
}

/// What a claim is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// A read-only map, or a read of the bytes.
    Read,
    /// A writable map.
    Write,
    /// Positioned writes (`pwrite`) into the file: no reference to the bytes is made.
    PositionedWrite,
}

impl Holders {
    fn count(&mut self, access: Access) -> &mut usize {
        match access {
            Access::Read => &mut self.readers,
            Access::Write => &mut self.writers,
            Access::PositionedWrite => &mut self.positioned_writers,
        }
    }

    /// Whether anything changes the bytes: a writable map or positioned writes.
    fn changing(&self) -> bool {
        self.writers > 0 || self.positioned_writers > 0
    }
}

/// Every region of this process with a live map.
static LIVE_MAPS: Mutex<Option<HashMap<Region, Holders>>> = Mutex::new(None);

/// A claim on a region, kept alive with the map (or the read) it covers: dropping it
/// releases it. It also holds a clone of the dict's map counter, so that vacuum sees the map.
#[derive(Debug)]
pub(super) struct Claim {
    region: Region,
    access: Access,
    _counted: Arc<()>,
}

impl Claim {
    /// Claims `region`, or `None` when the rule refuses: a writable map beside any other
    /// claim (of the region, or of the whole file), any claim beside a writable map, a read
    /// beside positioned writes and positioned writes beside a read.
    fn take(region: Region, access: Access, counter: &Arc<()>) -> Option<Claim> {
        let mut live = LIVE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        let regions = live.get_or_insert_with(HashMap::new);
        let whole_file = Region {
            value_offset: WHOLE_FILE,
            ..region
        };
        let whole_file_read = regions.get(&whole_file).is_some_and(|h| h.readers > 0);
        let refused = if region.is_whole_file() {
            regions
                .iter()
                .any(|(other, holders)| other.same_file(&region) && holders.changing())
        } else {
            let holders = regions.get(&region);
            let read = holders.is_some_and(|h| h.readers > 0) || whole_file_read;
            holders.is_some_and(|h| h.writers > 0)
                || match access {
                    Access::Read => holders.is_some_and(|h| h.positioned_writers > 0),
                    Access::Write => read || holders.is_some_and(|h| h.positioned_writers > 0),
                    Access::PositionedWrite => read,
                }
        };
        if refused {
            return None;
        }
        *regions.entry(region).or_default().count(access) += 1;
        Some(Claim {
            region,
            access,
            _counted: Arc::clone(counter),
        })
    }

    /// A read claim on the value at `value_offset` of `file` (the value of `key`), for a
    /// read of its bytes that is not a map (a copy, a decode): refused while a writable map
    /// of them lives in this process.
    pub(super) fn read(
        file: &File,
        key: &str,
        value_offset: u64,
        counter: &Arc<()>,
    ) -> Result<Claim, Error> {
        Claim::take(Region::of(file, value_offset)?, Access::Read, counter)
            .ok_or_else(|| conflict(key))
    }

    /// A claim on the value at `value_offset` of `file` (the value of `key`) for positioned
    /// writes into its bytes: refused while a map or a read of them lives in this process;
    /// other positioned writes may run beside it.
    pub(super) fn positioned_write(
        file: &File,
        key: &str,
        value_offset: u64,
        counter: &Arc<()>,
    ) -> Result<Claim, Error> {
        Claim::take(
            Region::of(file, value_offset)?,
            Access::PositionedWrite,
            counter,
        )
        .ok_or_else(|| conflict(key))
    }

    /// A read claim on the whole of `file`, for reads that may reach any byte of it (a
    /// disassembly): refused while any writable map of the file lives in this process.
    pub(super) fn read_whole_file(file: &File, counter: &Arc<()>) -> Result<Claim, Error> {
        Claim::take(Region::of(file, WHOLE_FILE)?, Access::Read, counter).ok_or_else(|| {
            Error::unplaced(ErrorKind::MapConflict {
                key: String::from("(the whole file)"),
            })
        })
    }
}

fn conflict(key: &str) -> Error {
    Error::unplaced(ErrorKind::MapConflict {
        key: key.to_owned(),
    })
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut live = LIVE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(regions) = live.as_mut() else {
            return;
        };
        if let Some(holders) = regions.get_mut(&self.region) {
            let count = holders.count(self.access);
            *count = count.saturating_sub(1);
            if holders.readers == 0 && !holders.changing() {
                regions.remove(&self.region);
            }
        }
    }
}

/// An array part of the value of `key` at `value_offset`, to be mapped.
pub(super) struct MapRequest<'a> {
    pub(super) key: &'a str,
    pub(super) value_offset: u64,
    pub(super) place: ArrayPlace,
}

impl MapRequest<'_> {
    /// Claims the region (or is refused by the rule).
    fn claim(&self, file: &File, writable: bool, counter: &Arc<()>) -> Result<Claim, Error> {
        let region = Region::of(file, self.value_offset)?;
        let access = if writable {
            Access::Write
        } else {
            Access::Read
        };
        Claim::take(region, access, counter).ok_or_else(|| conflict(self.key))
    }

    /// Maps the part read-only. `file` is that of a read snapshot (under the file's lock,
    /// shared or exclusive), and the value is that of the live entry of `key` in its table.
    pub(super) fn map(self, file: &File, counter: &Arc<()>) -> Result<MappedBytes, Error> {
        let claim = self.claim(file, false, counter)?;
        let ArrayPlace {
            data_offset,
            dtype,
            shape,
        } = self.place;
        // SAFETY: the region stays in the file: it lies inside the value of a live entry
        // (the array parser checked the raw bytes against the value's length, and the map
        // checks them against the file's), found under the file's lock (the snapshot's
        // shared lock, or the exclusive one), and the container never shrinks a file below
        // a live entry (a failed append cuts back to its own terminator, fsck and the
        // refresh cut only after the last complete entry, vacuum writes a new file and
        // renames it, leaving the mapped inode whole); cooperating processes (this crate,
        // Python's mmappickle, numpy) follow the same rules: the soundness of any map of a
        // shared file rests on every writer of it cooperating (memmap2's rule). Aliasing:
        // `claim` proves that no writable map of these bytes lives in this process, and it
        // lives as long as the map. Bit validity: the map hands out bytes, read as `Pod`
        // elements, for which any bits are valid.
        let map = unsafe { MappedBytes::map(file, data_offset, dtype, &shape) }?;
        Ok(map.with_keep_alive(Box::new(claim)))
    }

    /// Maps the part writable, under the same conditions as [`MapRequest::map`].
    pub(super) fn map_mut(self, file: &File, counter: &Arc<()>) -> Result<MappedBytesMut, Error> {
        let claim = self.claim(file, true, counter)?;
        let ArrayPlace {
            data_offset,
            dtype,
            shape,
        } = self.place;
        // SAFETY: the region stays in the file for the reasons given in `map`. Aliasing:
        // `claim` proves that no other map of these bytes (read-only or writable), no read
        // of them under a claim (a decode, a copy) and no disassembly of the file lives in
        // this process, and it lives as long as this map, so the `&mut [u8]` it hands out is
        // the only reference to them here. Writes by other processes only change element
        // values: any bits are a valid `Pod` element.
        let map = unsafe { MappedBytesMut::map(file, data_offset, dtype, &shape) }?;
        Ok(map.with_keep_alive(Box::new(claim)))
    }
}
