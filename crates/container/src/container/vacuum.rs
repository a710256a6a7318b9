//! Vacuum: a compacted copy written beside the file and renamed over it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{io_at, straddles_page, Container, Durability, Identity};
use crate::error::Error;
use crate::layout::{
    self, encode_header, encode_padding_entry, padding_to, Entry, HEADER_LEN, TERMINATOR,
};
use crate::lock::FileLock;
use crate::scratch::sync_parent_directory;

/// Vacuum keeps the offset of an entry that follows padding the same modulo this many bytes,
/// so data aligned by [`Alignment`](crate::Alignment) (64 for arrays) stays aligned.
pub const VACUUM_ALIGNMENT: u64 = 64;

/// Chunk size for copies during vacuum.
const COPY_CHUNK: usize = 1 << 20;

/// What [`Container::vacuum`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    /// Entries removed (deleted ones, shadowed duplicates, and old padding; padding is rebuilt
    /// where an aligned entry needs it).
    pub removed_entries: usize,
    /// File length before.
    pub len_before: u64,
    /// File length after.
    pub len_after: u64,
    /// The commit number after.
    pub commit_number: i32,
}

impl Container {
    /// Removes deleted entries and gives their space back, by writing a compacted copy beside
    /// the file and renaming it over the file; this handle then uses the new file, and other
    /// handles notice the new inode at their next lock.
    ///
    /// Maps of the old file stay valid (they map the old inode) but no longer see changes:
    /// the layers above refuse a vacuum while maps are alive.
    ///
    /// First, the scratch files that killed vacuums of this file left (`.NAME.vacuum-PID`,
    /// their process gone) are removed.
    pub fn vacuum(&mut self) -> Result<VacuumReport, Error> {
        self.check_writable()?;
        self.locked(|container| container.vacuum_locked())
    }

    fn vacuum_locked(&mut self) -> Result<VacuumReport, Error> {
        self.remove_stale_vacuum_files();
        let table = self.refresh()?.clone();
        let len_before = self.current_len()?;
        let kept: Vec<(&Entry, bool)> = table
            .entries()
            .iter()
            .enumerate()
            .filter(|&(entry_idx, entry)| entry.is_live() && !table.is_shadowed(entry_idx))
            .map(|(entry_idx, entry)| {
                let after_padding = entry_idx
                    .checked_sub(1)
                    .and_then(|previous| table.entries().get(previous))
                    .is_some_and(Entry::is_padding);
                (entry, after_padding)
            })
            .collect();
        let removed_entries = table.entries().len() - kept.len();
        // Padding is rebuilt for the entries that need it: it alone is no reason to vacuum.
        let n_padding = table
            .entries()
            .iter()
            .filter(|entry| entry.is_padding())
            .count();
        if removed_entries == n_padding {
            return Ok(VacuumReport {
                removed_entries: 0,
                len_before,
                len_after: len_before,
                commit_number: table.commit_number(),
            });
        }
        let commit_number = if table.commit_number() == 0 { 1 } else { 0 };
        let mut scratch_path = vacuum_scratch_prefix(&self.path)
            .unwrap_or_else(|| self.path.with_file_name(".vacuum-"))
            .into_os_string();
        scratch_path.push(std::process::id().to_string());
        let scratch_path = PathBuf::from(scratch_path);
        let scratch = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&scratch_path)
            .map_err(Error::unplaced_io)?;
        let permissions = self
            .file
            .metadata()
            .map_err(Error::unplaced_io)?
            .permissions();
        let built = scratch
            .set_permissions(permissions)
            .map_err(Error::unplaced_io)
            .and_then(|()| self.build_compacted(&scratch, &kept, commit_number));
        let len_after = match built {
            Ok(len_after) => len_after,
            Err(error) => {
                let _ = std::fs::remove_file(&scratch_path);
                return Err(error);
            }
        };
        // Lock the new file before it gets the name, so that handles reopening it wait for us.
        let scratch = Arc::new(scratch);
        let scratch_lock = FileLock::acquire(&scratch, true).map_err(Error::unplaced_io)?;
        // Mark the old file superseded: its commit number changes (to a negative number,
        // which no other change writes), so other handles look at the path again at their
        // next lock instead of at every one. A kill before the rename leaves the old file
        // with that number, a valid file for every reader.
        let superseded = if table.commit_number() == -1 { -2 } else { -1 };
        if let Err(error) = self.write_commit_number(superseded) {
            let _ = std::fs::remove_file(&scratch_path);
            return Err(error);
        }
        if let Err(error) = std::fs::rename(&scratch_path, &self.path) {
            let _ = std::fs::remove_file(&scratch_path);
            return Err(Error::unplaced_io(error));
        }
        if self.options.durability == Durability::Flush {
            sync_parent_directory(&self.path).map_err(Error::unplaced_io)?;
        }
        // Dropping the old file releases its lock (once a view begun under it is gone too);
        // we hold the new file's lock already.
        self.identity = Identity::of(&scratch.metadata().map_err(Error::unplaced_io)?);
        super::held::moved(self.handle, self.identity);
        if let Some(old) = self.lock.replace(scratch_lock) {
            let _ = FileLock::release(old);
        }
        self.file = scratch;
        self.cache = None;
        self.map = None;
        self.refresh()?;
        Ok(VacuumReport {
            removed_entries,
            len_before,
            len_after,
            commit_number,
        })
    }

    fn build_compacted(
        &self,
        scratch: &File,
        kept: &[(&Entry, bool)],
        commit_number: i32,
    ) -> Result<u64, Error> {
        scratch
            .write_all_at(&encode_header(commit_number), 0)
            .map_err(Error::unplaced_io)?;
        let mut offset = HEADER_LEN;
        let mut buffer = vec![0u8; COPY_CHUNK];
        for &(entry, after_padding) in kept {
            if after_padding {
                // Same offset modulo the alignment as before, so aligned data stays aligned.
                let padding = padding_to(offset, entry.offset(), VACUUM_ALIGNMENT)
                    .ok_or(Error::overflow(offset))?;
                if padding != 0 {
                    let padding_entry =
                        encode_padding_entry(padding, 1).ok_or(Error::overflow(offset))?;
                    scratch
                        .write_all_at(&padding_entry, offset)
                        .map_err(io_at(offset))?;
                    offset += padding;
                }
            }
            let mut copied = 0u64;
            while copied < entry.len() {
                let chunk = (entry.len() - copied).min(COPY_CHUNK as u64) as usize;
                let chunk_buffer = buffer.get_mut(..chunk).unwrap_or_default();
                self.file
                    .read_exact_at(chunk_buffer, entry.offset() + copied)
                    .map_err(io_at(entry.offset() + copied))?;
                // All-zero chunks stay holes: a stub's unwritten data takes no space.
                if chunk_buffer.iter().any(|&byte| byte != 0) {
                    scratch
                        .write_all_at(chunk_buffer, offset + copied)
                        .map_err(io_at(offset + copied))?;
                }
                copied += chunk as u64;
            }
            offset += entry.len();
        }
        // As in `append_locked`: the next append's commit must not cross a page boundary.
        if self.options.page_safe_commit && straddles_page(offset) {
            let padding = layout::MIN_PADDING_LEN;
            let padding_entry = encode_padding_entry(padding, 1).ok_or(Error::overflow(offset))?;
            scratch
                .write_all_at(&padding_entry, offset)
                .map_err(io_at(offset))?;
            offset += padding;
        }
        scratch
            .write_all_at(&TERMINATOR, offset)
            .map_err(io_at(offset))?;
        let len_after = offset + TERMINATOR.len() as u64;
        scratch.set_len(len_after).map_err(io_at(len_after))?;
        if self.options.durability == Durability::Flush {
            scratch.sync_all().map_err(Error::unplaced_io)?;
        }
        Ok(len_after)
    }
}

/// `.NAME.vacuum-` beside `path`: vacuum's scratch files are this and the process id.
pub(super) fn vacuum_scratch_prefix(path: &Path) -> Option<PathBuf> {
    let file_name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{file_name}.vacuum-")))
}
