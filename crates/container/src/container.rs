//! The file handle: open, lock, cache the table, read; changes live in the submodules
//! (`append`, `vacuum`, `fsck`), options and the value sink beside them.

mod append;
mod batch;
mod fsck;
mod held;
mod options;
mod scan_reads;
mod sink;
mod vacuum;
mod view;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::append::{Alignment, NewEntry, MAX_ALIGN};
pub use self::batch::Batch;
pub use self::fsck::{DroppedEntry, FsckReport};
pub use self::options::{ContainerOptions, Durability};
pub use self::sink::ValueSink;
pub use self::vacuum::{VacuumReport, VACUUM_ALIGNMENT};
pub use self::view::{Glance, ReadView};

use self::scan_reads::scan_reading_jumps;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use self::scan_reads::scan_reading_past;
use self::vacuum::vacuum_scratch_prefix;
use crate::error::{Error, ErrorKind};
use crate::layout::{
    self, encode_header, live_flag, Entry, Table, COMMIT_NUMBER_OFFSET, ENTRY_TRAILER_LEN,
    TERMINATOR,
};
use crate::lock::FileLock;
use crate::map::ReadMap;
use crate::scratch::sync_parent_directory;

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
/// [`Container::with_lock`] runs several operations under one lock, [`Container::batch`]
/// several changes with one commit), and refreshes the cached table only when the commit
/// number or the file's length changed (checked once per lock hold: under the lock only this
/// handle changes the file). [`Container::begin_read`] takes the shared lock instead, for
/// readers side by side.
///
/// A check costs one `fstat` (the length) and a load from the map of the file kept across
/// lock holds (the commit number). The path is `stat`ed only when the commit number changed:
/// a vacuum by another handle changes the old file's number before renaming the new file
/// over the path, so that this handle then reopens the path.
#[derive(Debug)]
pub struct Container {
    path: PathBuf,
    file: Arc<File>,
    identity: Identity,
    /// The forks that made the process that opened `file` (`map::forks`): a child made by
    /// `fork` shares its open file description, and so its `flock`, and reopens the file
    /// (see `follow_fork`).
    forks: u64,
    /// This handle's number among the process's, for the locks it holds (see `held`).
    handle: u64,
    options: ContainerOptions,
    lock_depth: u32,
    /// Read views handed out and not yet ended: the file is locked shared while this is not 0.
    shared_readers: u32,
    /// The file's lock while this handle holds it: during an operation, while read views are
    /// out, and while a view begun under an operation's lock outlives it (that view reads
    /// under it; the lock is released once the view is gone).
    lock: Option<Arc<FileLock>>,
    cache: Option<Arc<Table>>,
    /// A read-only map of the file as long as it was when last scanned (or longer): the
    /// commit number is read through it, and read views read values through it. Only read
    /// under a lock and after an `fstat` found the file at least this long.
    map: Option<Arc<ReadMap>>,
    /// The cached table was checked against the file (or kept up to date by this handle's
    /// own changes) during the current lock hold: nobody else can have changed the file
    /// since, so it is not checked again until the lock is released.
    validated: bool,
    /// What this handle repaired on its own, until [`fsck`](Container::fsck) reports it.
    repairs: fsck::Repairs,
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
            .map_err(Error::unplaced_io)
    }

    fn open_with(path: &Path, options: ContainerOptions) -> Result<Self, Error> {
        let file = Self::open_file(path, options.readonly)?;
        let identity = Identity::of(&file.metadata().map_err(Error::unplaced_io)?);
        let mut container = Container {
            path: path.to_path_buf(),
            file: Arc::new(file),
            identity,
            forks: crate::map::forks(),
            handle: held::new_handle(),
            options,
            lock_depth: 0,
            shared_readers: 0,
            lock: None,
            cache: None,
            map: None,
            validated: false,
            repairs: fsck::Repairs::default(),
        };
        container.locked(|container| {
            let mut len = container.current_len()?;
            if len == 0 && !container.options.readonly {
                // One write of 35 bytes inside the first page: a kill leaves the file
                // empty or whole, never a header without its terminator. An empty file is
                // initialised here at the next read-write open.
                let mut new_file = encode_header(0).to_vec();
                new_file.extend_from_slice(&TERMINATOR);
                container.write_at(&new_file, 0)?;
                len = new_file.len() as u64;
                container.sync()?;
                if container.options.durability == Durability::Flush {
                    // The file may have just been created: its name must survive a power
                    // loss as its bytes do. (A descriptor's path under /proc has no
                    // directory to sync: it names a file that exists already.)
                    match sync_parent_directory(&container.path) {
                        Err(error) if !container.path.starts_with("/proc") => {
                            return Err(Error::unplaced_io(error))
                        }
                        _ => {}
                    }
                }
            }
            let lock = container.held_lock()?;
            let map = ReadMap::new(&lock, len)?;
            if let Err(error) = layout::parse_header(map.bytes(&lock)) {
                return Err(match error.kind() {
                    &ErrorKind::NotAContainer { expected, .. } => {
                        error.with_kind(ErrorKind::NotAContainer {
                            expected,
                            plain_pickle: is_plain_pickle_of_dict(map.bytes(&lock)),
                        })
                    }
                    _ => error,
                });
            }
            // The scan of the first refresh reads it, if the file kept its length.
            container.map = Some(Arc::new(map));
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
    /// (`.NAME.vacuum-PID`, see [`vacuum`](Self::vacuum)): vacuum and fsck do, under the
    /// lock, so that no vacuum of this file is building its scratch file then. Not the open:
    /// listing the directory made each read-write open cost as much as the directory is
    /// large (27 ms in a directory of 20,000 files, against 0.3 ms).
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

    /// The guard of the lock this handle holds now (inside an operation, or read views out
    /// under the shared lock): what a read map is made and read with.
    pub(crate) fn held_lock(&self) -> Result<Arc<FileLock>, Error> {
        self.lock
            .clone()
            .ok_or_else(|| Error::unplaced_io(io::Error::other("the container's lock is not held")))
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

    /// Takes the container's lock (or one more level of it) until the matching
    /// [`Container::release_held_lock`]; operations in between reuse it without waiting. The
    /// unscoped form of [`Container::with_lock`], for a caller that must wait for the lock in
    /// one context and operate in another (a Python binding waits with the interpreter
    /// released, then operates holding it).
    ///
    /// The table is read too, so that following the path to a file a vacuum elsewhere put
    /// there, which waits for that file's lock, happens here as well; an error of that read
    /// is left to the operation that follows, which reads the table again.
    pub fn hold_lock(&mut self) -> Result<(), Error> {
        self.enter_lock()?;
        let _ = self.refresh();
        Ok(())
    }

    /// Leaves one level of the lock [`Container::hold_lock`] took.
    pub fn release_held_lock(&mut self) {
        self.leave_lock(false);
    }

    /// The file's current length.
    pub fn file_len(&mut self) -> Result<u64, Error> {
        self.locked(|container| {
            container.refresh()?;
            container.current_len()
        })
    }

    /// The commit number in the file's header.
    pub fn commit_number(&mut self) -> Result<i32, Error> {
        self.locked(|container| Ok(container.refresh()?.commit_number()))
    }

    /// The entry table, re-read only when the file changed since the last call.
    pub fn table(&mut self) -> Result<&Table, Error> {
        self.locked(|container| container.refresh().map(|_| ()))?;
        self.cache
            .as_deref()
            .ok_or_else(|| Error::unplaced(ErrorKind::StaleEntry))
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
        self.with_table_and_map(|_, bytes| read(bytes))
    }

    /// Runs `read` over the entry table and a read-only map of the whole file, under the lock
    /// (so that they agree). The map is the one kept across lock holds: no system call when
    /// the file did not change.
    pub fn with_table_and_map<R>(
        &mut self,
        read: impl FnOnce(&Table, &[u8]) -> R,
    ) -> Result<R, Error> {
        self.locked(|container| {
            let (map, table) = container.current_map_and_table()?;
            let lock = container.held_lock()?;
            let bytes = usize::try_from(table.file_len())
                .ok()
                .and_then(|len| map.bytes(&lock).get(..len))
                .ok_or_else(|| Error::unplaced(ErrorKind::StaleEntry))?;
            Ok(read(&table, bytes))
        })
    }

    /// The checked table and the kept map, extended to cover the whole file if this handle's
    /// own changes grew it; called under a lock (shared or exclusive).
    fn current_map_and_table(&mut self) -> Result<(Arc<ReadMap>, Arc<Table>), Error> {
        let file_len = self.refresh()?.file_len();
        let covered = self.map.as_ref().is_some_and(|map| map.len() >= file_len);
        if !covered {
            // The table was checked against the file's length under this lock hold: the map
            // lies inside the file.
            let lock = self.held_lock()?;
            self.map = Some(Arc::new(ReadMap::new(&lock, file_len)?));
        }
        match (&self.map, &self.cache) {
            (Some(map), Some(table)) => Ok((Arc::clone(map), Arc::clone(table))),
            _ => Err(Error::unplaced(ErrorKind::StaleEntry)),
        }
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
        if let Some(table) = self.cache.as_mut().map(Arc::make_mut) {
            for &(entry_idx, _) in doomed {
                table.set_live(entry_idx, false);
            }
            table.set_commit_number(commit_number);
        }
        Ok(())
    }
    // ---- lock, cache and raw I/O, all called with the lock held ----

    fn locked<R>(
        &mut self,
        operation: impl FnOnce(&mut Self) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.enter_lock()?;
        let result = operation(self);
        self.leave_lock(result.is_err());
        result
    }

    /// Takes the exclusive lock, or one more level of it (see [`Container::locked`]).
    fn enter_lock(&mut self) -> Result<(), Error> {
        self.follow_fork()?;
        if self.shared_readers > 0 {
            // Locking exclusively would convert the readers' shared lock under them.
            return Err(Error::unplaced(ErrorKind::ReadersActive));
        }
        if self.lock_depth == 0 {
            self.validated = false;
            // A read-only handle never writes: its operations only need the shared lock. A
            // lock still held here is the one a view begun under the last operation holds:
            // of the kind this handle's operations take.
            if self.lock.is_none() {
                let exclusive = !self.options.readonly;
                self.take_lock(exclusive)?;
            }
        }
        self.lock_depth += 1;
        Ok(())
    }

    /// Whether the lock held is shared (read views out, or a read-only handle's operation):
    /// nothing is written under it.
    fn lock_is_shared(&self) -> bool {
        self.shared_readers > 0 || self.options.readonly
    }

    /// In a process other than the one that opened the file (a child made by `fork`, which
    /// inherited this handle): opens the file again, so that this process has an open file
    /// description, and a `flock`, of its own. Parent and child would otherwise hold one lock
    /// between them and write over each other's appends. Maps made before the fork stay
    /// valid; the table is read again. Locks the parent held are not the child's: the child
    /// starts without any.
    fn follow_fork(&mut self) -> Result<(), Error> {
        let forks = crate::map::forks();
        if forks == self.forks {
            return Ok(());
        }
        // This process's descriptor of the very file, even if the path now names another
        // (it is followed at the next refresh, as in the parent).
        let own_descriptor = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        let reopen_path = if own_descriptor.exists() {
            own_descriptor.as_path()
        } else {
            self.path.as_path()
        };
        let file = Self::open_file(reopen_path, self.options.readonly)?;
        self.identity = Identity::of(&file.metadata().map_err(Error::unplaced_io)?);
        self.file = Arc::new(file);
        self.forks = forks;
        self.lock_depth = 0;
        self.shared_readers = 0;
        // The parent's lock, on the description the two share: dropped, never released.
        self.lock = None;
        held::unregister(self.handle);
        self.cache = None;
        self.map = None;
        self.validated = false;
        Ok(())
    }

    /// Leaves one level of the exclusive lock; `failed`: the operation under it failed.
    fn leave_lock(&mut self, failed: bool) {
        if failed {
            // A failed change may have left the file and the cache apart: check again.
            self.validated = false;
        }
        self.lock_depth = self.lock_depth.saturating_sub(1);
        if self.lock_depth == 0 {
            self.release_lock();
        }
    }

    /// Takes the file's lock (exclusive or shared) for this handle, which holds none.
    fn take_lock(&mut self, exclusive: bool) -> Result<(), Error> {
        held::register(self.handle, self.identity, exclusive)?;
        match FileLock::acquire(&self.file, exclusive) {
            Ok(lock) => {
                self.lock = Some(lock);
                Ok(())
            }
            Err(error) => {
                held::unregister(self.handle);
                Err(Error::unplaced_io(error))
            }
        }
    }

    /// Releases the lock this handle holds, unless a read view still reads under it (then
    /// it is kept, and released at the next chance once the view is gone).
    fn release_lock(&mut self) {
        if let Some(lock) = self.lock.take() {
            match FileLock::release(lock) {
                Ok(()) => held::unregister(self.handle),
                Err(lock) => self.lock = Some(lock),
            }
        }
    }

    /// Whether the path now names another file than ours (a vacuum elsewhere renamed a new
    /// file over it); if so, opens it, locks it as ours is locked (`shared`), and uses it.
    fn follow_path(&mut self, shared: bool) -> Result<bool, Error> {
        let path_identity = match std::fs::metadata(&self.path) {
            Ok(metadata) => Identity::of(&metadata),
            // The path is gone: keep working on the file we have.
            Err(_) => return Ok(false),
        };
        if path_identity == self.identity {
            return Ok(false);
        }
        let file = Arc::new(Self::open_file(&self.path, self.options.readonly)?);
        let lock = FileLock::acquire(&file, !shared).map_err(Error::unplaced_io)?;
        let identity = Identity::of(&file.metadata().map_err(Error::unplaced_io)?);
        // A view that still reads the old file keeps its lock until it is gone.
        if let Some(old) = self.lock.replace(lock) {
            let _ = FileLock::release(old);
        }
        held::moved(self.handle, identity);
        self.file = file;
        self.identity = identity;
        self.cache = None;
        self.map = None;
        Ok(true)
    }

    /// The cached table, re-scanned if the commit number or the length changed; a read-write
    /// handle under the exclusive lock truncates the bytes an interrupted append left after
    /// the terminator (under the shared lock nothing is written: the scan skips them).
    fn refresh(&mut self) -> Result<&Table, Error> {
        if self.validated && self.cache.is_some() {
            return self
                .cache
                .as_deref()
                .ok_or_else(|| Error::unplaced(ErrorKind::StaleEntry));
        }
        self.validated = false;
        let shared = self.lock_is_shared();
        let mut len = self.current_len()?;
        let mut commit_number = self.header_commit_number(len);
        let fresh = |cache: &Option<Arc<Table>>, len: u64, commit_number: Option<i32>| {
            matches!(cache, Some(table)
                if table.file_len() == len && Some(table.commit_number()) == commit_number)
        };
        if !fresh(&self.cache, len, commit_number) {
            // Something changed: maybe a vacuum elsewhere, which marks the old file (its
            // commit number changes) before renaming the new one over the path.
            while self.follow_path(shared)? {
                len = self.current_len()?;
                commit_number = self.header_commit_number(len);
            }
        }
        if !fresh(&self.cache, len, commit_number) {
            self.cache = None;
            let lock = self.held_lock()?;
            // A map of the file's length made under an earlier hold maps the same pages (the
            // open's header check left one); a map longer than the file is never read.
            let mut map = match self.map.take() {
                Some(map) if map.len() == len => map,
                _ => Arc::new(ReadMap::new(&lock, len)?),
            };
            let mut table = scan_reading_jumps(map.bytes(&lock), |buffer, offset| {
                self.file.read_exact_at(buffer, offset)
            })?;
            if table.is_torn() && !self.options.readonly && !shared {
                // What fsck does, before anything else under this lock: the last entry
                // completed if only its trailer or terminator was cut, else cut away.
                let salvaged = layout::salvage(map.bytes(&lock))?;
                drop(map);
                let at = salvaged.end;
                let completed = self.complete_torn_locked(layout::value_memo_max)?;
                if !completed {
                    self.cut_at(at, layout::memo_start(&salvaged.entries))?;
                }
                self.repairs.torn_tail = Some(fsck::TornTailRepair {
                    at,
                    dropped_bytes: if completed { 0 } else { len.saturating_sub(at) },
                    key: salvaged.torn_key,
                    completed,
                    problem: salvaged.problem.map(|p| p.to_string()).unwrap_or_default(),
                });
                len = self.current_len()?;
                map = Arc::new(ReadMap::new(&lock, len)?);
                table = layout::scan(map.bytes(&lock))?;
            }
            self.map = Some(map);
            if !self.options.readonly && !shared {
                self.tidy(&mut table)?;
            }
            let has_duplicates = table.has_shadowed();
            self.cache = Some(Arc::new(table));
            if has_duplicates && !self.options.readonly && !shared {
                self.delete_duplicates()?;
            }
        }
        self.validated = true;
        self.cache
            .as_deref()
            .ok_or_else(|| Error::unplaced(ErrorKind::StaleEntry))
    }

    /// Under the exclusive lock, what a scan tolerates is written back: the terminator whole
    /// at the end of the file (after an interrupted append, or the remains of one a library
    /// constructor wrote), then the trailers a library constructor overwrote, with the
    /// commit number moved on (the library read those entries as deleted).
    fn tidy(&mut self, table: &mut Table) -> Result<(), Error> {
        let untidy_tail = table.has_untidy_tail();
        if untidy_tail {
            // Rewritten whole: an interrupted commit may have torn it (see the scan).
            self.end_with_terminator(table.terminator_offset())?;
            table.drop_trailing();
        }
        let restored_any = table.overwritten_trailers().next().is_some();
        if restored_any {
            let commit_number = next_commit_number(table.commit_number());
            self.write_commit_number(commit_number)?;
            for entry in table.overwritten_trailers() {
                let trailer = layout::encode_entry_trailer(entry.memo_max(), entry.is_live());
                self.write_at(&trailer, entry.end() - ENTRY_TRAILER_LEN)?;
                let restored = (entry.key().to_owned(), entry.is_live());
                self.repairs.restored_trailers.push(restored);
            }
            table.set_commit_number(commit_number);
            table.forget_overwritten();
        }
        if untidy_tail || restored_any {
            self.sync()?;
        }
        Ok(())
    }

    /// The commit number of a file of `len` bytes (`None` if unreadable): through the map
    /// when it covers the header (no system call), else with a `pread`.
    fn header_commit_number(&self, len: u64) -> Option<i32> {
        let end = COMMIT_NUMBER_OFFSET + 4;
        if len < end {
            return None;
        }
        let mapped = self
            .map
            .as_ref()
            .zip(self.lock.as_ref())
            .and_then(|(map, lock)| {
                let bytes = map
                    .bytes(lock)
                    .get(COMMIT_NUMBER_OFFSET as usize..end as usize)?;
                Some(i32::from_le_bytes(bytes.try_into().ok()?))
            });
        mapped.or_else(|| self.read_commit_number().ok())
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
            .filter(|&(entry_idx, _)| table.is_shadowed(entry_idx))
            .map(|(entry_idx, entry)| (entry_idx, entry.live_flag_offset()))
            .collect();
        self.delete_entries(&doomed)
    }

    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if self.options.readonly {
            Err(Error::unplaced(ErrorKind::ReadOnly))
        } else {
            Ok(())
        }
    }

    pub(crate) fn current_len(&self) -> Result<u64, Error> {
        Ok(self.file.metadata().map_err(Error::unplaced_io)?.len())
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

    /// Makes the file end with a terminator at `at` (its last 11 bytes), such that it ends
    /// with a whole terminator at every instant, as a Python `mmapdict` constructor expects:
    /// it checks the last 11 bytes without the lock and, when they are not a terminator,
    /// writes one at the end, over whatever is being written there. Call it before the
    /// bytes in front of `at`, which then never grow the file.
    ///
    /// The kernel grows a file page by page during one write, so a terminator that crosses
    /// a page boundary is not written where the file ends: a whole one goes just past that
    /// boundary first, and the length is set back once the one at `at` is in place.
    pub(crate) fn end_with_terminator(&self, at: u64) -> Result<(), Error> {
        self.check_writable()?;
        end_file_with_terminator(&self.file, at)
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        self.check_writable()?;
        self.file.write_all_at(bytes, offset).map_err(io_at(offset))
    }

    fn sync(&self) -> Result<(), Error> {
        match self.options.durability {
            Durability::None => Ok(()),
            Durability::Flush => self.file.sync_all().map_err(Error::unplaced_io),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Closing the file releases its lock (unless a read view still holds the file).
        held::unregister(self.handle);
    }
}

/// Whether `bytes` is a plain pickle whose result is a dict (a file that can be converted).
fn is_plain_pickle_of_dict(bytes: &[u8]) -> bool {
    matches!(
        mmappickle_codec::loads(bytes),
        Ok(mmappickle_codec::Value::Dict(_))
    )
}

/// [`Container::end_with_terminator`] on `file`.
pub(crate) fn end_file_with_terminator(file: &File, at: u64) -> Result<(), Error> {
    let end = at
        .checked_add(PAGE)
        .map(|_| at + TERMINATOR.len() as u64)
        .ok_or(Error::overflow(at))?;
    let mut len = file.metadata().map_err(Error::unplaced_io)?.len();
    if len < end && straddles_page(at) {
        let past_boundary = at.next_multiple_of(PAGE);
        file.write_all_at(&TERMINATOR, past_boundary)
            .map_err(io_at(past_boundary))?;
        len = past_boundary + TERMINATOR.len() as u64;
    }
    file.write_all_at(&TERMINATOR, at).map_err(io_at(at))?;
    if len > end {
        file.set_len(end).map_err(io_at(end))?;
    }
    Ok(())
}

/// The page size the terminator rules assume (larger pages have their boundaries among
/// these).
const PAGE: u64 = 4096;

/// Whether the 11 bytes of a terminator at `offset` cross a 4 KiB page boundary (see
/// [`AppendPlan::tail_padding`](append::AppendPlan) and [`Container::end_with_terminator`]).
fn straddles_page(offset: u64) -> bool {
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
}
