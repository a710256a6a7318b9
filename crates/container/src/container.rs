//! The file handle: open, lock, cache the table, append, remove, vacuum, fsck.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};
use crate::layout::{
    self, encode_entry_head, encode_entry_trailer, encode_header, encode_padding_entry, live_flag,
    new_entry, padding_len, Entry, Table, COMMIT_NUMBER_OFFSET, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN,
    HEADER_LEN, TERMINATOR,
};
use crate::map::ReadMap;
use crate::scratch::sync_parent_directory;

/// The largest alignment an append may ask for.
pub const MAX_ALIGN: u64 = 1 << 20;

/// Vacuum keeps the offset of an entry that follows padding the same modulo this many bytes,
/// so data aligned by [`Alignment`] (64 for arrays) stays aligned.
pub const VACUUM_ALIGNMENT: u64 = 64;

/// A single value write of at least this many bytes first reserves its range on disk.
const PREALLOCATE_MIN: usize = 1 << 20;

/// Chunk size for copies during vacuum.
const COPY_CHUNK: usize = 1 << 20;

/// Whether changes are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Changes reach the page cache only: they survive a crash of the process, not of the
    /// machine.
    #[default]
    None,
    /// Every change is `fsync`ed (data and metadata) before and after its committing write.
    Flush,
}

/// Options for opening a [`Container`], in the style of [`std::fs::OpenOptions`].
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    durability: Durability,
    readonly: bool,
    allow_damaged: bool,
    page_safe_commit: bool,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        Self {
            durability: Durability::None,
            readonly: false,
            allow_damaged: false,
            page_safe_commit: true,
        }
    }
}

impl ContainerOptions {
    /// Read-write, [`Durability::None`], damaged files refused, page-safe commits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether appends, vacuum and fsck keep every terminator inside one 4 KiB page
    /// (default `true`): a terminator that would end in a page's last 10 bytes is moved past
    /// the boundary by a 21-byte padding entry, so the next commit's 11-byte write cannot be
    /// torn at a page boundary. With `false` the layout is exactly Python mmappickle's (no
    /// such padding); a commit torn after 1 to 9 bytes is still detected by the scan.
    pub fn page_safe_commit(mut self, page_safe_commit: bool) -> Self {
        self.page_safe_commit = page_safe_commit;
        self
    }

    /// Sets whether changes are `fsync`ed.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens read-only: every change returns [`ErrorKind::ReadOnly`] and no byte is written.
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Accepts a file with a valid header but damaged entries (to run [`Container::fsck`]);
    /// reading its table fails until it is repaired.
    pub fn allow_damaged(mut self, allow_damaged: bool) -> Self {
        self.allow_damaged = allow_damaged;
        self
    }

    /// Opens (read-write: creating if missing or empty) the container at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Container, Error> {
        Container::open_with(path.as_ref(), self)
    }
}

/// Where a byte of a new entry's value must sit: the byte at
/// `value_offset + value_relative_offset` is put at a multiple of `align` (a power of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    /// Offset of the byte to align, counted from the value's first byte.
    pub value_relative_offset: u64,
    /// The alignment, a power of two up to [`MAX_ALIGN`].
    pub align: u64,
}

/// A new entry to append: its key, the length of its value, the `memo_max` to record.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// The key (at most 255 UTF-8 bytes).
    pub key: &'a str,
    /// The exact number of value bytes the writer will write or skip.
    pub value_len: u64,
    /// The next free memo index after the value (see [`Table::memo_start`]).
    pub memo_max: i32,
    /// Where the value must be aligned, if anywhere.
    pub align: Option<Alignment>,
}

/// Writes a new entry's value straight into the file at its final offset.
#[derive(Debug)]
pub struct ValueSink<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl ValueSink<'_> {
    fn reserve(&self, len: u64) -> io::Result<u64> {
        self.position
            .checked_add(len)
            .filter(|&next| next <= self.end)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "value writer went past the announced value length",
                )
            })
    }

    /// Writes `bytes` at the current position and moves past them. On Linux a write of 1 MiB
    /// or more first asks the file system to allocate its range in one go (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`; errors ignored), as numpy does: large writes get faster.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let next = self.reserve(bytes.len() as u64)?;
        if bytes.len() >= PREALLOCATE_MIN {
            preallocate(self.file, self.position, bytes.len() as u64);
        }
        self.file.write_all_at(bytes, self.position)?;
        self.position = next;
        Ok(())
    }

    /// Moves `len` bytes forward without writing them (they read as zeros, a hole on disk).
    pub fn skip(&mut self, len: u64) -> io::Result<()> {
        self.position = self.reserve(len)?;
        Ok(())
    }

    /// Absolute file offset of the next byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes still to write or skip.
    pub fn remaining(&self) -> u64 {
        self.end - self.position
    }

    /// The file (for reservations such as `fs2::FileExt::allocate`).
    pub fn file(&self) -> &File {
        self.file
    }
}

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
}

impl FsckReport {
    /// Whether the file was already sound.
    pub fn is_clean(&self) -> bool {
        self.dropped_bytes == 0 && self.problem.is_none() && self.deleted_duplicates == 0
    }
}

/// The identity of a file: which inode on which device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// An open mmappickle file: its lock, its cached entry table, its changes.
///
/// Every public method takes the exclusive `flock` on the file for its duration (re-entrant:
/// [`Container::with_lock`] runs several operations under one lock), and refreshes the cached
/// table only when the commit number, the file's length or the file's identity changed (checked
/// once per lock hold: under the lock only this handle changes the file).
#[derive(Debug)]
pub struct Container {
    path: PathBuf,
    file: File,
    identity: Identity,
    options: ContainerOptions,
    lock_depth: u32,
    cache: Option<Table>,
    /// The cached table was checked against the file (or kept up to date by this handle's
    /// own changes) during the current lock hold: nobody else can have changed the file
    /// since, so it is not checked again until the lock is released.
    validated: bool,
}

fn io_at(offset: u64) -> impl FnOnce(io::Error) -> Error {
    move |error| Error::io(error, offset)
}

/// The commit number after `commit_number`, wrapping within the non-negative i32 range.
pub fn next_commit_number(commit_number: i32) -> i32 {
    if (0..i32::MAX).contains(&commit_number) {
        commit_number + 1
    } else {
        0
    }
}

impl Container {
    /// Opens `path` read-write, creating an empty container if it is missing or empty.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        ContainerOptions::new().open(path)
    }

    /// Opens `path` read-only: every change returns an error and no byte is ever written.
    pub fn open_readonly(path: impl AsRef<Path>) -> Result<Self, Error> {
        ContainerOptions::new().readonly(true).open(path)
    }

    fn open_file(path: &Path, readonly: bool) -> Result<File, Error> {
        OpenOptions::new()
            .read(true)
            .write(!readonly)
            .create(!readonly)
            .truncate(false)
            .open(path)
            .map_err(io_at(0))
    }

    fn open_with(path: &Path, options: ContainerOptions) -> Result<Self, Error> {
        let file = Self::open_file(path, options.readonly)?;
        let identity = Identity::of(&file.metadata().map_err(io_at(0))?);
        let mut container = Container {
            path: path.to_path_buf(),
            file,
            identity,
            options,
            lock_depth: 0,
            cache: None,
            validated: false,
        };
        container.locked(|container| {
            let len = container.current_len()?;
            if len == 0 && !container.options.readonly {
                // One write of 35 bytes inside the first page: a kill leaves the file
                // empty or whole, never a header without its terminator. An empty file is
                // initialised here at the next read-write open.
                let mut new_file = encode_header(0).to_vec();
                new_file.extend_from_slice(&TERMINATOR);
                container.write_at(&new_file, 0)?;
                container.sync()?;
            }
            if !container.options.readonly {
                // Under the lock, so no vacuum of this file is building its scratch file now.
                container.remove_stale_vacuum_files();
            }
            let len = container.current_len()?;
            let map = ReadMap::new(&container.file, len).map_err(io_at(0))?;
            if let Err(error) = layout::parse_header(map.bytes()) {
                return Err(match error.kind() {
                    ErrorKind::NotAContainer { expected, .. } => Error::new(
                        ErrorKind::NotAContainer {
                            expected,
                            plain_pickle: is_plain_pickle_of_dict(map.bytes()),
                        },
                        error.offset(),
                    ),
                    _ => error,
                });
            }
            drop(map);
            let allow_damaged = container.options.allow_damaged;
            match container.refresh() {
                Ok(_) => Ok(()),
                Err(_) if allow_damaged => Ok(()),
                Err(error) => Err(error),
            }
        })?;
        Ok(container)
    }

    /// Removes the scratch files of vacuums of this path whose process is gone
    /// (`.NAME.vacuum-PID`, see [`vacuum`](Self::vacuum)).
    fn remove_stale_vacuum_files(&self) {
        if let Some(prefix) = vacuum_scratch_prefix(&self.path) {
            crate::scratch::remove_stale_scratch_files(&prefix);
        }
    }

    /// The path the container was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (the array layer maps regions of it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether the container was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.options.readonly
    }

    /// The durability chosen at open.
    pub fn durability(&self) -> Durability {
        self.options.durability
    }

    /// Runs `operation` under the container's lock; methods called inside reuse the lock.
    pub fn with_lock<R>(&mut self, operation: impl FnOnce(&mut Self) -> R) -> Result<R, Error> {
        self.locked(|container| Ok(operation(container)))
    }

    /// The file's current length.
    pub fn file_len(&mut self) -> Result<u64, Error> {
        self.locked(|container| container.current_len())
    }

    /// The commit number in the file's header.
    pub fn commit_number(&mut self) -> Result<i32, Error> {
        self.locked(|container| container.read_commit_number())
    }

    /// The entry table, re-read only when the file changed since the last call.
    pub fn table(&mut self) -> Result<&Table, Error> {
        self.locked(|container| container.refresh().map(|_| ()))?;
        self.cache
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::StaleEntry, 0))
    }

    /// The live entry of `key`.
    pub fn get(&mut self, key: &str) -> Result<Option<Entry>, Error> {
        self.locked(|container| Ok(container.refresh()?.get(key).cloned()))
    }

    /// The live keys in file order.
    pub fn keys(&mut self) -> Result<Vec<String>, Error> {
        self.locked(|container| Ok(container.refresh()?.keys().map(str::to_owned).collect()))
    }

    /// The first memo index free for a new value: `max(memo_max of all entries, 1)`.
    pub fn memo_start(&mut self) -> Result<i32, Error> {
        self.locked(|container| Ok(container.refresh()?.memo_start()))
    }

    /// Reads the value bytes of `entry`, which must still be in the file.
    pub fn read_value(&mut self, entry: &Entry) -> Result<Vec<u8>, Error> {
        self.locked(|container| {
            let table = container.refresh()?;
            let current = table
                .entries()
                .binary_search_by_key(&entry.offset(), Entry::offset)
                .ok()
                .and_then(|entry_idx| table.entries().get(entry_idx));
            if current != Some(entry) {
                return Err(Error::new(ErrorKind::StaleEntry, entry.offset()));
            }
            // The scan checked that the value lies inside the file, so its length is bounded.
            let len = usize::try_from(entry.value_len())
                .map_err(|_| Error::overflow(entry.value_offset()))?;
            let mut value = vec![0u8; len];
            container
                .file
                .read_exact_at(&mut value, entry.value_offset())
                .map_err(io_at(entry.value_offset()))?;
            Ok(value)
        })
    }

    /// Runs `read` over a read-only map of the whole file, under the lock.
    pub fn with_read_map<R>(&mut self, read: impl FnOnce(&[u8]) -> R) -> Result<R, Error> {
        self.locked(|container| {
            container.refresh()?;
            let len = container.current_len()?;
            let map = ReadMap::new(&container.file, len).map_err(io_at(0))?;
            Ok(read(map.bytes()))
        })
    }

    /// Appends an entry whose value `write_value` writes straight into the file, then deletes
    /// any older live entry with the same key. Returns the new entry.
    ///
    /// On any error the file is as before: the old terminator is intact until the new entry
    /// is complete.
    pub fn append(
        &mut self,
        new: NewEntry<'_>,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        self.check_writable()?;
        if new.key.len() > 255 {
            return Err(Error::new(ErrorKind::KeyTooLong { len: new.key.len() }, 0));
        }
        if let Some(alignment) = new.align {
            if !alignment.align.is_power_of_two() || alignment.align > MAX_ALIGN {
                return Err(Error::new(
                    ErrorKind::BadAlignment {
                        align: alignment.align,
                    },
                    0,
                ));
            }
        }
        self.locked(|container| container.append_locked(new, write_value))
    }

    fn append_locked(
        &mut self,
        new: NewEntry<'_>,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        let table = self.refresh()?;
        let terminator_offset = table.terminator_offset();
        let memo_start = table.memo_start();
        let table_commit_number = table.commit_number();
        let replaced: Vec<(usize, u64)> = table
            .index_of(new.key)
            .and_then(|entry_idx| Some((entry_idx, table.entries().get(entry_idx)?)))
            .map(|(entry_idx, entry)| (entry_idx, entry.live_flag_offset()))
            .into_iter()
            .collect();
        let key_len = new.key.len() as u64;
        let padding = match new.align {
            Some(alignment) => padding_len(
                terminator_offset,
                key_len,
                alignment.value_relative_offset,
                alignment.align,
            )
            .ok_or(Error::overflow(terminator_offset))?,
            None => 0,
        };
        let mut appended = Vec::new();
        let mut bytes_before_value = Vec::new();
        if padding > 0 {
            bytes_before_value = encode_padding_entry(padding, memo_start)
                .ok_or(Error::overflow(terminator_offset))?;
            appended.push(
                new_entry(
                    "",
                    terminator_offset,
                    padding - ENTRY_HEAD_LEN - ENTRY_TRAILER_LEN,
                    memo_start,
                    false,
                )
                .ok_or(Error::overflow(terminator_offset))?,
            );
        }
        let entry_offset = terminator_offset + padding;
        let entry = new_entry(new.key, entry_offset, new.value_len, new.memo_max, true)
            .ok_or(Error::overflow(entry_offset))?;
        // The next append commits with one 11-byte write over the terminator this one leaves;
        // a SIGKILL tears a write where it crosses a page boundary (the kernel copies page by
        // page), so that terminator must not straddle one: a padding entry moves it past.
        let tail_padding = if self.options.page_safe_commit && straddles_page(entry.end()) {
            layout::MIN_PADDING_LEN
        } else {
            0
        };
        let new_terminator_offset = entry
            .end()
            .checked_add(tail_padding)
            .ok_or(Error::overflow(entry_offset))?;
        let new_end = new_terminator_offset
            .checked_add(TERMINATOR.len() as u64)
            .ok_or(Error::overflow(entry_offset))?;
        bytes_before_value.extend(encode_entry_head(new.key.as_bytes(), entry.len() - 9));
        appended.push(entry.clone());
        let mut tail_bytes = Vec::new();
        if tail_padding > 0 {
            let memo_max = memo_start.max(new.memo_max);
            tail_bytes =
                encode_padding_entry(tail_padding, memo_max).ok_or(Error::overflow(entry.end()))?;
            appended.push(
                new_entry(
                    "",
                    entry.end(),
                    tail_padding - ENTRY_HEAD_LEN - ENTRY_TRAILER_LEN,
                    memo_max,
                    false,
                )
                .ok_or(Error::overflow(entry.end()))?,
            );
        }

        // The first 11 new bytes overwrite the old terminator: they go last, so until then the
        // file is the old dict followed by bytes after its STOP.
        let (committing_bytes, rest) = bytes_before_value.split_at(TERMINATOR.len());
        // The new terminator goes first: the file keeps ending with a terminator during the
        // whole append, so a Python `mmapdict` opening it meanwhile (its constructor checks the
        // terminator without taking the lock) does not append one of its own.
        let written = self
            .write_at(&TERMINATOR, new_terminator_offset)
            .and_then(|()| self.write_at(rest, terminator_offset + TERMINATOR.len() as u64))
            .and_then(|()| {
                let mut sink = ValueSink {
                    file: &self.file,
                    position: entry.value_offset(),
                    end: entry.value_offset() + entry.value_len(),
                };
                write_value(&mut sink).map_err(io_at(sink.position))?;
                if sink.position != sink.end {
                    return Err(Error::new(
                        ErrorKind::ValueLength {
                            expected: entry.value_len(),
                            written: sink.position - entry.value_offset(),
                        },
                        sink.position,
                    ));
                }
                Ok(())
            })
            .and_then(|()| {
                let value_end = entry.end() - ENTRY_TRAILER_LEN;
                self.write_at(&encode_entry_trailer(new.memo_max, true), value_end)?;
                self.write_at(&tail_bytes, entry.end())?;
                // A writer may have reserved space past the entry: the terminator ends the file.
                if self.current_len()? != new_end {
                    self.file.set_len(new_end).map_err(io_at(new_end))?;
                }
                self.sync()
            });
        if let Err(error) = written {
            // Best effort: the bytes after the old terminator are ignored by every reader and
            // removed by the next read-write open anyway.
            let _ = self
                .file
                .set_len(terminator_offset + TERMINATOR.len() as u64);
            return Err(error);
        }
        self.write_at(committing_bytes, terminator_offset)?;
        // The table was validated under this lock hold: its commit number is the file's.
        let commit_number = next_commit_number(table_commit_number);
        self.write_commit_number(commit_number)?;
        self.sync()?;
        if let Some(table) = self.cache.as_mut() {
            table.push_appended(appended);
            table.set_commit_number(commit_number);
        }
        // Replace: the older live entry of the key goes after the new one is in.
        self.delete_entries(&replaced)?;
        Ok(entry)
    }

    /// Deletes the live entry of `key` (flips its live flag); returns whether there was one.
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        self.check_writable()?;
        self.locked(|container| container.remove_locked(key))
    }

    fn remove_locked(&mut self, key: &str) -> Result<bool, Error> {
        let table = self.refresh()?;
        let Some(doomed) = table
            .index_of(key)
            .and_then(|entry_idx| Some((entry_idx, table.entries().get(entry_idx)?)))
            .map(|(entry_idx, entry)| (entry_idx, entry.live_flag_offset()))
        else {
            return Ok(false);
        };
        self.delete_entries(&[doomed])?;
        Ok(true)
    }

    /// Flips the live flag of the entries `(index in the table, offset of the flag)`.
    fn delete_entries(&mut self, doomed: &[(usize, u64)]) -> Result<(), Error> {
        if doomed.is_empty() {
            return Ok(());
        }
        // The commit number goes first: a crash between the two leaves a changed number and an
        // unchanged entry, which only makes readers re-scan. The cached table was validated
        // under this lock hold (every caller refreshed it), so its number is the file's.
        let current = match self.cache.as_ref() {
            Some(table) => table.commit_number(),
            None => self.read_commit_number()?,
        };
        let commit_number = next_commit_number(current);
        self.write_commit_number(commit_number)?;
        for &(_, flag_offset) in doomed {
            self.write_at(&[live_flag(false)], flag_offset)?;
        }
        self.sync()?;
        if let Some(table) = self.cache.as_mut() {
            for &(entry_idx, _) in doomed {
                table.set_live(entry_idx, false);
            }
            table.set_commit_number(commit_number);
        }
        Ok(())
    }

    /// Removes deleted entries and gives their space back, by writing a compacted copy beside
    /// the file and renaming it over the file; this handle then uses the new file, and other
    /// handles notice the new inode at their next lock.
    ///
    /// Maps of the old file stay valid (they map the old inode) but no longer see changes:
    /// the layers above refuse a vacuum while maps are alive.
    pub fn vacuum(&mut self) -> Result<VacuumReport, Error> {
        self.check_writable()?;
        self.locked(|container| container.vacuum_locked())
    }

    fn vacuum_locked(&mut self) -> Result<VacuumReport, Error> {
        let table = self.refresh()?.clone();
        let len_before = self.current_len()?;
        let kept: Vec<(&Entry, bool)> = table
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, entry)| table.get(entry.key()) == Some(*entry))
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
            .map_err(io_at(0))?;
        let permissions = self.file.metadata().map_err(io_at(0))?.permissions();
        let built = scratch
            .set_permissions(permissions)
            .map_err(io_at(0))
            .and_then(|()| self.build_compacted(&scratch, &kept, commit_number));
        let len_after = match built {
            Ok(len_after) => len_after,
            Err(error) => {
                let _ = std::fs::remove_file(&scratch_path);
                return Err(error);
            }
        };
        // Lock the new file before it gets the name, so that handles reopening it wait for us.
        fs2::FileExt::lock_exclusive(&scratch).map_err(io_at(0))?;
        if let Err(error) = std::fs::rename(&scratch_path, &self.path) {
            let _ = std::fs::remove_file(&scratch_path);
            return Err(Error::io(error, 0));
        }
        if self.options.durability == Durability::Flush {
            sync_parent_directory(&self.path).map_err(io_at(0))?;
        }
        // Dropping the old file releases its lock; we hold the new file's lock already.
        self.identity = Identity::of(&scratch.metadata().map_err(io_at(0))?);
        self.file = scratch;
        self.cache = None;
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
            .map_err(io_at(0))?;
        let mut offset = HEADER_LEN;
        let mut buffer = vec![0u8; COPY_CHUNK];
        for &(entry, after_padding) in kept {
            if after_padding {
                let wanted = entry.offset() % VACUUM_ALIGNMENT;
                let mut padding =
                    (wanted + VACUUM_ALIGNMENT - offset % VACUUM_ALIGNMENT) % VACUUM_ALIGNMENT;
                if padding != 0 {
                    while padding < layout::MIN_PADDING_LEN {
                        padding += VACUUM_ALIGNMENT;
                    }
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
            scratch.sync_all().map_err(io_at(0))?;
        }
        Ok(len_after)
    }

    /// Repairs a damaged file: keeps every complete entry, cuts the file after the last one,
    /// writes a fresh terminator, deletes older live duplicates of a key, and reports what it
    /// dropped. The header must be valid.
    pub fn fsck(&mut self) -> Result<FsckReport, Error> {
        self.check_writable()?;
        self.locked(|container| container.fsck_locked())
    }

    fn fsck_locked(&mut self) -> Result<FsckReport, Error> {
        let len = self.current_len()?;
        let map = ReadMap::new(&self.file, len).map_err(io_at(0))?;
        let salvage = layout::salvage(map.bytes())?;
        drop(map);
        let terminator_present = salvage.problem.is_none();
        let clean_end = salvage.end + TERMINATOR.len() as u64;
        let dropped_bytes = if terminator_present {
            len - clean_end
        } else {
            len - salvage.end
        };
        if !terminator_present || dropped_bytes > 0 {
            if !terminator_present {
                let commit_number = next_commit_number(self.read_commit_number()?);
                self.write_commit_number(commit_number)?;
            }
            self.file.set_len(salvage.end).map_err(io_at(salvage.end))?;
            // The page rule of `append_locked`: the next commit's 11 bytes must not cross a
            // page boundary, so a padding entry moves a terminator that would.
            let mut tail = Vec::new();
            if self.options.page_safe_commit && straddles_page(salvage.end) {
                let memo_max = salvage
                    .entries
                    .iter()
                    .map(Entry::memo_max)
                    .fold(1, i32::max);
                tail = encode_padding_entry(layout::MIN_PADDING_LEN, memo_max)
                    .ok_or(Error::overflow(salvage.end))?;
            }
            tail.extend_from_slice(&TERMINATOR);
            self.write_at(&tail, salvage.end)?;
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
        self.cache = None;
        self.refresh()?;
        Ok(FsckReport {
            kept_entries: salvage.entries.len(),
            truncated_at: salvage.end,
            dropped_bytes,
            dropped_key: salvage.torn_key,
            problem: salvage.problem.map(|problem| problem.to_string()),
            deleted_duplicates,
        })
    }

    // ---- lock, cache and raw I/O, all called with the lock held ----

    fn locked<R>(
        &mut self,
        operation: impl FnOnce(&mut Self) -> Result<R, Error>,
    ) -> Result<R, Error> {
        if self.lock_depth == 0 {
            self.validated = false;
            self.acquire_lock()?;
        }
        self.lock_depth += 1;
        let result = operation(self);
        if result.is_err() {
            // A failed change may have left the file and the cache apart: check again.
            self.validated = false;
        }
        self.lock_depth -= 1;
        if self.lock_depth == 0 {
            let _ = fs2::FileExt::unlock(&self.file);
        }
        result
    }

    /// Locks the file; if the path now names another file (a vacuum elsewhere renamed a new
    /// file over it), reopens the path and locks that instead.
    fn acquire_lock(&mut self) -> Result<(), Error> {
        loop {
            fs2::FileExt::lock_exclusive(&self.file).map_err(io_at(0))?;
            let path_identity = match std::fs::metadata(&self.path) {
                Ok(metadata) => Identity::of(&metadata),
                // The path is gone: keep working on the file we have.
                Err(_) => return Ok(()),
            };
            if path_identity == self.identity {
                return Ok(());
            }
            let file = Self::open_file(&self.path, self.options.readonly)?;
            let identity = Identity::of(&file.metadata().map_err(io_at(0))?);
            let _ = fs2::FileExt::unlock(&self.file);
            self.file = file;
            self.identity = identity;
            self.cache = None;
        }
    }

    /// The cached table, re-scanned if the commit number or the length changed; a read-write
    /// handle truncates the bytes an interrupted append left after the terminator.
    fn refresh(&mut self) -> Result<&Table, Error> {
        if self.validated && self.cache.is_some() {
            return self
                .cache
                .as_ref()
                .ok_or_else(|| Error::new(ErrorKind::StaleEntry, 0));
        }
        self.validated = false;
        let len = self.current_len()?;
        let commit_number = self.read_commit_number().ok();
        let fresh = matches!(&self.cache, Some(table)
            if table.file_len() == len && Some(table.commit_number()) == commit_number);
        if !fresh {
            self.cache = None;
            let map = ReadMap::new(&self.file, len).map_err(io_at(0))?;
            let mut table = layout::scan(map.bytes())?;
            drop(map);
            if table.trailing_len() > 0 && !self.options.readonly {
                let clean_len = table.terminator_offset() + TERMINATOR.len() as u64;
                // Rewritten whole: an interrupted commit may have torn it (see the scan).
                self.write_at(&TERMINATOR, table.terminator_offset())?;
                self.file.set_len(clean_len).map_err(io_at(clean_len))?;
                self.sync()?;
                table.drop_trailing();
            }
            let has_duplicates = table
                .entries()
                .iter()
                .filter(|entry| entry.is_live())
                .count()
                != table.n_live();
            self.cache = Some(table);
            if has_duplicates && !self.options.readonly {
                self.delete_duplicates()?;
            }
        }
        self.validated = true;
        self.cache
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::StaleEntry, 0))
    }

    /// Deletes the older live entries of keys that have several (a replace interrupted after
    /// its append): the newest one is what `pickle.load` and Python see.
    fn delete_duplicates(&mut self) -> Result<(), Error> {
        let Some(table) = self.cache.as_ref() else {
            return Ok(());
        };
        let doomed: Vec<(usize, u64)> = table
            .entries()
            .iter()
            .enumerate()
            .filter(|(entry_idx, entry)| {
                entry.is_live() && table.index_of(entry.key()) != Some(*entry_idx)
            })
            .map(|(entry_idx, entry)| (entry_idx, entry.live_flag_offset()))
            .collect();
        self.delete_entries(&doomed)
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.options.readonly {
            Err(Error::new(ErrorKind::ReadOnly, 0))
        } else {
            Ok(())
        }
    }

    fn current_len(&self) -> Result<u64, Error> {
        Ok(self.file.metadata().map_err(io_at(0))?.len())
    }

    fn read_commit_number(&self) -> Result<i32, Error> {
        let mut bytes = [0u8; 4];
        self.file
            .read_exact_at(&mut bytes, COMMIT_NUMBER_OFFSET)
            .map_err(io_at(COMMIT_NUMBER_OFFSET))?;
        Ok(i32::from_le_bytes(bytes))
    }

    fn write_commit_number(&self, commit_number: i32) -> Result<(), Error> {
        self.write_at(&commit_number.to_le_bytes(), COMMIT_NUMBER_OFFSET)
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        self.check_writable()?;
        self.file.write_all_at(bytes, offset).map_err(io_at(offset))
    }

    fn sync(&self) -> Result<(), Error> {
        match self.options.durability {
            Durability::None => Ok(()),
            Durability::Flush => self.file.sync_all().map_err(io_at(0)),
        }
    }
}

/// Asks the file system to allocate `len` bytes at `offset` in one extent before they are
/// written, as numpy's `tofile` does: a large `pwrite` into the reserved range is some 20 %
/// faster than one that allocates page by page. Only the range about to be written is
/// reserved (a stub's skipped data stays a hole); the file's length is unchanged
/// (`FALLOC_FL_KEEP_SIZE`, and the range lies before the new terminator anyway). An
/// optimisation only: any error (e.g. `EOPNOTSUPP`) is ignored.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len);
}

/// Elsewhere the write allocates as it goes.
#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _offset: u64, _len: u64) {}

/// Whether `bytes` is a plain pickle whose result is a dict (a file that can be converted).
fn is_plain_pickle_of_dict(bytes: &[u8]) -> bool {
    matches!(
        mmappickle_codec::loads(bytes),
        Ok(mmappickle_codec::Value::Dict(_))
    )
}

/// `.NAME.vacuum-` beside `path`: vacuum's scratch files are this and the process id.
fn vacuum_scratch_prefix(path: &Path) -> Option<PathBuf> {
    let file_name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{file_name}.vacuum-")))
}

/// Whether the 11 bytes of a terminator at `offset` cross a 4 KiB page boundary (see
/// `append_locked`; larger pages have their boundaries among these).
fn straddles_page(offset: u64) -> bool {
    const PAGE: u64 = 4096;
    offset % PAGE > PAGE - TERMINATOR.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_number_wraps_within_the_non_negative_range() {
        assert_eq!(next_commit_number(0), 1);
        assert_eq!(next_commit_number(41), 42);
        assert_eq!(next_commit_number(i32::MAX), 0);
        assert_eq!(next_commit_number(-5), 0);
    }

    #[test]
    fn value_sink_refuses_to_go_past_the_value() {
        let file = tempfile::tempfile().unwrap();
        let mut sink = ValueSink {
            file: &file,
            position: 10,
            end: 20,
        };
        sink.write_all(b"abc").unwrap();
        sink.skip(5).unwrap();
        assert_eq!(sink.position(), 18);
        assert_eq!(sink.remaining(), 2);
        assert!(sink.write_all(b"xyz").is_err());
        assert!(sink.skip(3).is_err());
        assert!(sink.skip(u64::MAX).is_err());
        assert_eq!(sink.position(), 18);
        let mut written = [0u8; 3];
        file.read_exact_at(&mut written, 10).unwrap();
        assert_eq!(&written, b"abc");
    }
}
