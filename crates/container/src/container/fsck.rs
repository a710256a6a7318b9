//! Fsck: keep every complete entry, cut the rest, write a fresh terminator.

use super::{next_commit_number, straddles_page, Container};
use crate::error::Error;
use crate::layout::{self, encode_padding_entry, TERMINATOR};
use crate::map::ReadMap;

/// What [`Container::fsck`] found and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// Complete entries kept.
    pub kept_entries: usize,
    /// Where the kept entries end: the file was cut here and a terminator written.
    pub truncated_at: u64,
    /// Bytes dropped after the kept entries (a torn entry, a stray tail), terminator excluded.
    pub dropped_bytes: u64,
    /// The key of the torn entry that was dropped, when its head was readable.
    pub dropped_key: Option<String>,
    /// What stopped the walk, when it did not end at a terminator.
    pub problem: Option<String>,
    /// Older live duplicates of a key (a replace interrupted by a crash) that were deleted.
    pub deleted_duplicates: usize,
    /// Entries whose trailer a Python `mmapdict` constructor had overwritten with a
    /// terminator, written back: `(key, live)`, live unless the library deleted the entry
    /// since or its value is not whole (see [`Table::overwritten_trailers`]).
    ///
    /// [`Table::overwritten_trailers`]: crate::Table::overwritten_trailers
    pub restored_trailers: Vec<(String, bool)>,
    /// The key of a torn last entry that was completed (only its trailer or terminator was
    /// cut: its value was whole).
    pub completed_key: Option<String>,
    /// Damaged entries followed by entries proven intact (they chain to the terminator that
    /// ends the file): each made a padding entry of its length, the entries after it kept.
    pub dropped_damaged: Vec<DroppedEntry>,
}

/// A damaged range that fsck made a padding entry, keeping the entries after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEntry {
    /// Where the damaged entry started.
    pub offset: u64,
    /// Its length, up to the first intact entry after it.
    pub len: u64,
    /// Its key, when its head was readable.
    pub key: Option<String>,
    /// What was wrong with it.
    pub problem: String,
}

impl FsckReport {
    /// Whether the file was already sound.
    pub fn is_clean(&self) -> bool {
        self.dropped_bytes == 0
            && self.problem.is_none()
            && self.deleted_duplicates == 0
            && self.restored_trailers.is_empty()
            && self.completed_key.is_none()
            && self.dropped_damaged.is_empty()
    }
}

/// What a read-write handle repaired on its own under the lock (a torn tail, overwritten
/// trailers) before [`Container::fsck`] was asked: the next fsck reports it.
#[derive(Debug, Default)]
pub(super) struct Repairs {
    /// `(key, live)` of each trailer written back.
    pub(super) restored_trailers: Vec<(String, bool)>,
    /// The torn tail repaired.
    pub(super) torn_tail: Option<TornTailRepair>,
}

/// A torn tail repaired: the last entry completed, or cut away.
#[derive(Debug)]
pub(super) struct TornTailRepair {
    /// Where the torn entry (or terminator) started.
    pub(super) at: u64,
    /// Bytes cut (0 when the entry was completed).
    pub(super) dropped_bytes: u64,
    /// The torn entry's key, when its head was readable.
    pub(super) key: Option<String>,
    pub(super) completed: bool,
    /// How the file ended.
    pub(super) problem: String,
}

impl Container {
    /// Ends the file with a terminator at `end` (cutting what follows), then syncs. The page
    /// rule of `append_locked`: the next commit's 11 bytes must not cross a page boundary,
    /// so a padding entry (with `memo_start`, the memo start in force) moves a terminator
    /// that would.
    pub(super) fn cut_at(&mut self, end: u64, memo_start: i32) -> Result<(), Error> {
        let mut padding = Vec::new();
        if self.options.page_safe_commit && straddles_page(end) {
            padding = encode_padding_entry(layout::MIN_PADDING_LEN, memo_start)
                .ok_or(Error::overflow(end))?;
        }
        // The terminator first (it also sets the length), then the padding before it.
        self.end_with_terminator(end + padding.len() as u64)?;
        self.write_at(&padding, end)?;
        self.sync()
    }

    /// Damage followed by entries proven intact (they chain to the terminator that ends the
    /// file): each damaged range becomes a padding entry of its length (deleted, no key),
    /// and the entries after it are kept. Returns what was dropped. A range shorter than a
    /// padding entry, or damage that nothing intact follows, is left to the cut.
    fn drop_damaged_entries(&mut self) -> Result<Vec<DroppedEntry>, Error> {
        let mut dropped = Vec::new();
        loop {
            let lock = self.held_lock()?;
            let map = ReadMap::new(&lock, self.current_len()?)?;
            let salvage = layout::salvage(map.bytes(&lock))?;
            let Some(problem) = salvage.problem else {
                return Ok(dropped);
            };
            let Some(resume) = layout::entries_resume_at(map.bytes(&lock), salvage.end) else {
                return Ok(dropped);
            };
            drop(map);
            let len = resume - salvage.end;
            let memo_start = layout::memo_start(&salvage.entries);
            let Some(padding) = encode_padding_entry(len, memo_start) else {
                return Ok(dropped);
            };
            // The key set changes (the damaged key goes): readers must look again.
            let commit_number = next_commit_number(self.read_commit_number()?);
            self.write_commit_number(commit_number)?;
            self.write_at(&padding, salvage.end)?;
            self.sync()?;
            dropped.push(DroppedEntry {
                offset: salvage.end,
                len,
                key: salvage.torn_key,
                problem: problem.to_string(),
            });
        }
    }

    /// Repairs a damaged file: keeps every complete entry, cuts the file after the last one,
    /// writes a fresh terminator, deletes older live duplicates of a key, and reports what it
    /// dropped. The header must be valid. The scratch files that killed vacuums of this file
    /// left (`.NAME.vacuum-PID`, their process gone) are removed too.
    pub fn fsck(&mut self) -> Result<FsckReport, Error> {
        self.check_writable()?;
        self.locked(|container| container.fsck_locked())
    }

    fn fsck_locked(&mut self) -> Result<FsckReport, Error> {
        self.remove_stale_vacuum_files();
        let dropped_damaged = self.drop_damaged_entries()?;
        let len = self.current_len()?;
        let lock = self.held_lock()?;
        let map = ReadMap::new(&lock, len)?;
        let salvage = layout::salvage(map.bytes(&lock))?;
        drop(map);
        let terminator_present = salvage.problem.is_none();
        let clean_end = salvage.end + TERMINATOR.len() as u64;
        // Past the kept entries, the terminator excluded when there is one (the remains of
        // one a library constructor wrote may be shorter).
        let dropped_bytes = if terminator_present {
            len.saturating_sub(clean_end)
        } else {
            len - salvage.end
        };
        if !terminator_present || len != clean_end {
            if !terminator_present {
                let commit_number = next_commit_number(self.read_commit_number()?);
                self.write_commit_number(commit_number)?;
            }
            self.cut_at(salvage.end, layout::memo_start(&salvage.entries))?;
        }
        // Older live duplicates of a key (a crash in the middle of a replace) are counted here
        // and deleted by the refresh.
        let deleted_duplicates = salvage
            .entries
            .iter()
            .enumerate()
            .filter(|(entry_idx, entry)| {
                entry.is_live()
                    && salvage.entries.get(entry_idx + 1..).is_some_and(|later| {
                        later
                            .iter()
                            .any(|other| other.is_live() && other.key() == entry.key())
                    })
            })
            .count();
        // The refresh writes back what the scan tolerates (overwritten trailers); those an
        // earlier refresh of this handle wrote back (at the open) are reported too.
        self.cache = None;
        self.refresh()?;
        let repairs = std::mem::take(&mut self.repairs);
        let mut report = FsckReport {
            dropped_damaged,
            restored_trailers: repairs.restored_trailers,
            completed_key: None,
            kept_entries: salvage.entries.len(),
            truncated_at: salvage.end,
            dropped_bytes,
            dropped_key: salvage.torn_key,
            problem: salvage.problem.map(|problem| problem.to_string()),
            deleted_duplicates,
        };
        if let Some(torn) = repairs.torn_tail.filter(|_| report.problem.is_none()) {
            report.truncated_at = torn.at;
            report.dropped_bytes += torn.dropped_bytes;
            report.problem = Some(torn.problem);
            if torn.completed {
                report.completed_key = torn.key;
            } else {
                report.dropped_key = torn.key;
            }
        }
        Ok(report)
    }
}
