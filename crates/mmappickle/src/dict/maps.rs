//! Maps of arrays: the facade's only `unsafe` code, and the rule that makes it sound inside
//! one process.
//!
//! Architecture invariant: one process never holds a writable map of an entry's bytes
//! together with any other reference to them, nor changes them by a positioned write
//! (`pwrite`) while any reference to them lives. Every map this crate hands out, every
//! other read of an array's bytes (a decode, a copy, a disassembly of the whole file) and
//! every positioned write carries a [`Claim`] on its region in a process-wide table; a
//! writable map is refused ([`ErrorKind::MapConflict`]) while any other claim on the region
//! (or on the whole file) lives, and any claim while a writable one lives. Positioned writes
//! live beside each other (they hand out no reference) and are refused beside a map; since
//! reads and positioned writes end by themselves, a read (or a map) waits for the positioned
//! writes under way and a positioned write for the reads under way, unless the thread that
//! asks holds them (it would wait for itself: refused). Other processes are outside any
//! table: there the rule is memmap2's and numpy's, sound while every writer of the file
//! cooperates.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::ThreadId;

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

/// The claims on a region that live, by kind.
#[derive(Debug, Default)]
struct Holders {
    /// Read-only maps handed out: they live as long as their owner keeps them.
    maps: usize,
    /// Writable maps handed out.
    writable_maps: usize,
    /// Reads under way (a decode, a copy, a pickler's read), by thread: each ends with the
    /// call that made it.
    reads: Vec<ThreadId>,
    /// Positioned writes under way, by thread: each ends with its write.
    positioned_writes: Vec<ThreadId>,
}

/// What a claim is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// A read of the bytes that ends with the call that made it.
    Read,
    /// A read-only map.
    Map,
    /// A writable map.
    MapMut,
    /// Positioned writes (`pwrite`) into the file: no reference to the bytes is made.
    PositionedWrite,
}

/// What the rule says of a claim asked for.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Take,
    /// Another thread's read or positioned write, which ends by itself, is in the way.
    Wait,
    Refuse,
}

impl Holders {
    fn is_empty(&self) -> bool {
        self.maps == 0
            && self.writable_maps == 0
            && self.reads.is_empty()
            && self.positioned_writes.is_empty()
    }

    fn add(&mut self, access: Access, thread: ThreadId) {
        match access {
            Access::Read => self.reads.push(thread),
            Access::Map => self.maps += 1,
            Access::MapMut => self.writable_maps += 1,
            Access::PositionedWrite => self.positioned_writes.push(thread),
        }
    }

    fn remove(&mut self, access: Access, thread: ThreadId) {
        let remove_one = |threads: &mut Vec<ThreadId>| {
            if let Some(at) = threads.iter().position(|holder| *holder == thread) {
                threads.swap_remove(at);
            }
        };
        match access {
            Access::Read => remove_one(&mut self.reads),
            Access::Map => self.maps = self.maps.saturating_sub(1),
            Access::MapMut => self.writable_maps = self.writable_maps.saturating_sub(1),
            Access::PositionedWrite => remove_one(&mut self.positioned_writes),
        }
    }
}

/// Claims of `thread` in `threads` refuse (it would wait for itself); others' are waited for.
fn wait_for(threads: &[ThreadId], thread: ThreadId) -> Verdict {
    if threads.contains(&thread) {
        Verdict::Refuse
    } else if threads.is_empty() {
        Verdict::Take
    } else {
        Verdict::Wait
    }
}

/// The rule: a writable map beside no other claim (of the region, or of the whole file);
/// no claim beside a writable map; positioned writes never beside a map; a read or a map
/// waits for positioned writes under way, and a positioned write for reads under way (both
/// end by themselves), except where the thread asking holds them.
fn verdict(
    regions: &HashMap<Region, Holders>,
    region: Region,
    access: Access,
    thread: ThreadId,
) -> Verdict {
    let empty = Holders::default();
    if region.is_whole_file() {
        let same_file = || regions.iter().filter(|(other, _)| other.same_file(&region));
        if same_file().any(|(_, holders)| holders.writable_maps > 0) {
            return Verdict::Refuse;
        }
        let writes: Vec<ThreadId> = same_file()
            .flat_map(|(_, holders)| holders.positioned_writes.iter().copied())
            .collect();
        return wait_for(&writes, thread);
    }
    let holders = regions.get(&region).unwrap_or(&empty);
    let whole_file = Region {
        value_offset: WHOLE_FILE,
        ..region
    };
    let whole_file_reads = regions.get(&whole_file).map_or(&[][..], |h| &h.reads[..]);
    if holders.writable_maps > 0 {
        return Verdict::Refuse;
    }
    match access {
        Access::Read | Access::Map => wait_for(&holders.positioned_writes, thread),
        Access::MapMut => {
            let taken = holders.maps > 0
                || !holders.reads.is_empty()
                || !holders.positioned_writes.is_empty()
                || !whole_file_reads.is_empty();
            if taken {
                Verdict::Refuse
            } else {
                Verdict::Take
            }
        }
        Access::PositionedWrite if holders.maps > 0 => Verdict::Refuse,
        Access::PositionedWrite => {
            let reads: Vec<ThreadId> = holders
                .reads
                .iter()
                .chain(whole_file_reads)
                .copied()
                .collect();
            wait_for(&reads, thread)
        }
    }
}

/// Every region of this process with a live claim.
static LIVE_MAPS: Mutex<Option<HashMap<Region, Holders>>> = Mutex::new(None);

/// Signalled whenever a read or a positioned write ends, for the claims that wait for one.
static CLAIM_ENDED: Condvar = Condvar::new();

/// A claim on a region, kept alive with the map (or the read, or the write) it covers:
/// dropping it releases it. It also holds a clone of the dict's map counter, so that vacuum
/// sees the map.
#[derive(Debug)]
pub(super) struct Claim {
    region: Region,
    access: Access,
    thread: ThreadId,
    _counted: Arc<()>,
}

impl Claim {
    /// Claims `region` once the rule lets it (waiting for other threads' reads or positioned
    /// writes under way), or `None` when the rule refuses.
    fn take(region: Region, access: Access, counter: &Arc<()>) -> Option<Claim> {
        let thread = std::thread::current().id();
        let mut live = LIVE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let regions = live.get_or_insert_with(HashMap::new);
            match verdict(regions, region, access, thread) {
                Verdict::Refuse => return None,
                Verdict::Wait => {
                    live = CLAIM_ENDED
                        .wait(live)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Verdict::Take => {
                    regions.entry(region).or_default().add(access, thread);
                    return Some(Claim {
                        region,
                        access,
                        thread,
                        _counted: Arc::clone(counter),
                    });
                }
            }
        }
    }

    /// A read claim on the value at `value_offset` of `file` (the value of `key`), for a
    /// read of its bytes that is not a map (a copy, a decode) and ends with the call that
    /// makes it: refused while a writable map of them lives in this process; waits for the
    /// positioned writes under way.
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
    /// writes into its bytes: refused while a map of them lives in this process; waits for
    /// the reads under way; other positioned writes run beside it.
    pub(super) fn positioned_write(
        file: &File,
        key: &str,
        value_offset: u64,
        counter: &Arc<()>,
    ) -> Result<Claim, Error> {
        let region = Region::of(file, value_offset)?;
        Claim::take(region, Access::PositionedWrite, counter).ok_or_else(|| conflict(key))
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
            holders.remove(self.access, self.thread);
            if holders.is_empty() {
                regions.remove(&self.region);
            }
        }
        if matches!(self.access, Access::Read | Access::PositionedWrite) {
            CLAIM_ENDED.notify_all();
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
            Access::MapMut
        } else {
            Access::Map
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
        // `claim` proves that no writable map of these bytes lives in this process and that
        // no positioned write into them runs (none starts while it lives), and it lives as
        // long as the map. Bit validity: the map hands out bytes, read as `Pod`
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
        // of them under a claim (a decode, a copy), no positioned write into them and no
        // disassembly of the file lives in this process, and it lives as long as this map, so the `&mut [u8]` it hands out is
        // the only reference to them here. Writes by other processes only change element
        // values: any bits are a valid `Pod` element.
        let map = unsafe { MappedBytesMut::map(file, data_offset, dtype, &shape) }?;
        Ok(map.with_keep_alive(Box::new(claim)))
    }
}
