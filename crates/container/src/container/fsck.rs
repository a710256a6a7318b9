//! Fsck: keep every complete entry, cut the rest, write a fresh terminator.

use super::{next_commit_number, straddles_page, Container};
use crate::error::Error;
use crate::layout::{self, encode_padding_entry, Entry, TERMINATOR};
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
}

impl FsckReport {
    /// Whether the file was already sound.
    pub fn is_clean(&self) -> bool {
        self.dropped_bytes == 0
            && self.problem.is_none()
            && self.deleted_duplicates == 0
            && self.restored_trailers.is_empty()
    }
}

impl Container {
    /// Repairs a damaged file: keeps every complete entry, cuts the file after the last one,
    /// writes a fresh terminator, deletes older live duplicates of a key, and reports what it
    /// dropped. The header must be valid.
    pub fn fsck(&mut self) -> Result<FsckReport, Error> {
        self.check_writable()?;
        self.locked(|container| container.fsck_locked())
    }

    fn fsck_locked(&mut self) -> Result<FsckReport, Error> {
        let len = self.current_len()?;
        let map = ReadMap::new(self, len)?;
        let salvage = layout::salvage(map.bytes())?;
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
            // The page rule of `append_locked`: the next commit's 11 bytes must not cross a
            // page boundary, so a padding entry moves a terminator that would.
            let mut padding = Vec::new();
            if self.options.page_safe_commit && straddles_page(salvage.end) {
                let memo_max = salvage
                    .entries
                    .iter()
                    .map(Entry::memo_max)
                    .fold(1, i32::max);
                padding = encode_padding_entry(layout::MIN_PADDING_LEN, memo_max)
                    .ok_or(Error::overflow(salvage.end))?;
            }
            // The terminator first (it also sets the length), then the padding before it.
            self.end_with_terminator(salvage.end + padding.len() as u64)?;
            self.write_at(&padding, salvage.end)?;
            self.sync()?;
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
        Ok(FsckReport {
            restored_trailers: std::mem::take(&mut self.restored_trailers),
            kept_entries: salvage.entries.len(),
            truncated_at: salvage.end,
            dropped_bytes,
            dropped_key: salvage.torn_key,
            problem: salvage.problem.map(|problem| problem.to_string()),
            deleted_duplicates,
        })
    }
}
