//! Read views: one state of the file (its table and a map of it) under the shared lock; and
//! glances: the state a handle's last lock hold found, read without the lock.

use std::fmt;
use std::fs::File;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::Container;
use crate::error::{Error, ErrorKind};
use crate::layout::{
    encode_entry_trailer, entry_head_before_key, Entry, Table, COMMIT_NUMBER_OFFSET,
    ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, FRAME_HEAD_LEN,
};
use crate::lock::FileLock;
use crate::map::ReadMap;

/// One state of the file, read under the shared `flock` that [`Container::begin_read`] took:
/// the entry table and a read-only map of the whole file, so that values are read from
/// memory, without a system call. Hand it back to [`Container::end_read`].
pub struct ReadView {
    file: Arc<File>,
    /// The lock the view reads under: held while the view lives.
    lock: Arc<FileLock>,
    map: Arc<ReadMap>,
    table: Arc<Table>,
    /// `(device, inode)` of the file.
    file_id: (u64, u64),
    /// The view counts among the shared readers (it was not begun under the exclusive lock).
    counted: bool,
}

impl fmt::Debug for ReadView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadView")
            .field("file_len", &self.bytes().len())
            .field("entries", &self.table.entries().len())
            .finish_non_exhaustive()
    }
}

impl ReadView {
    /// The entry table (shared: a listing keeps it beyond the view).
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// The file the view reads (the array layer maps regions of it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// `(device, inode)` of the file the view reads: another one once a vacuum replaced the
    /// file (for a caller that keeps a map of the file beside the view's).
    pub fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    /// The whole file as this view sees it (as long as its table says).
    pub fn bytes(&self) -> &[u8] {
        let bytes = self.map.bytes(&self.lock);
        let len = usize::try_from(self.table.file_len()).unwrap_or(usize::MAX);
        bytes.get(..len).unwrap_or(bytes)
    }

    /// The value bytes of `entry`, an entry of this view's table.
    pub fn value(&self, entry: &Entry) -> Result<&[u8], Error> {
        let range = entry.value_range();
        usize::try_from(range.start)
            .ok()
            .zip(usize::try_from(range.end).ok())
            .and_then(|(start, end)| self.map.bytes(&self.lock).get(start..end))
            .ok_or_else(|| Error::new(ErrorKind::StaleEntry, entry.offset()))
    }
}

impl Container {
    /// Takes the *shared* `flock` (Python's writers take `LOCK_EX`, so they wait) and returns
    /// a view of the file's current state. Views of one handle share one lock: the first
    /// takes it and checks the cached table, the others reuse both; the last one handed back
    /// to [`Container::end_read`] releases it. While views are out, the exclusive operations
    /// of this handle return [`ErrorKind::ReadersActive`]. Begun under the exclusive lock
    /// (inside [`Container::with_lock`]), a view reads under that lock.
    ///
    /// A view that is dropped instead of handed back keeps the shared lock for the life of
    /// the handle.
    ///
    /// ```
    /// use mmappickle_container::{Container, NewEntry};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut container = Container::open(dir.path().join("view.mmdpickle"))?;
    /// let new = NewEntry { key: "answer", value_len: 2, memo_max: 1, align: None };
    /// container.append(new, |sink| sink.write_all(b"K\x2a"))?;
    /// let view = container.begin_read()?;
    /// let entry = view.table().get("answer").cloned().expect("a live key");
    /// assert_eq!(view.value(&entry)?, b"K\x2a");
    /// container.end_read(view);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin_read(&mut self) -> Result<ReadView, Error> {
        self.follow_fork()?;
        let counted = self.lock_depth == 0;
        if counted {
            if self.shared_readers == 0 {
                // A lock still held is the one a view begun under an operation holds.
                if self.lock.is_none() {
                    self.take_lock(false)?;
                }
                self.validated = false;
            }
            self.shared_readers += 1;
        }
        match self.view_of_current_state(counted) {
            Ok(view) => Ok(view),
            Err(error) => {
                self.validated = false;
                self.leave_shared(counted);
                Err(error)
            }
        }
    }

    fn view_of_current_state(&mut self, counted: bool) -> Result<ReadView, Error> {
        let (map, table) = self.current_map_and_table()?;
        Ok(ReadView {
            file: Arc::clone(&self.file),
            lock: self.held_lock()?,
            map,
            table,
            file_id: (self.identity.device, self.identity.inode),
            counted,
        })
    }

    /// Hands back a view of [`Container::begin_read`]; the last one out releases the shared
    /// lock.
    pub fn end_read(&mut self, view: ReadView) {
        let counted = view.counted;
        drop(view);
        self.leave_shared(counted);
    }

    fn leave_shared(&mut self, counted: bool) {
        if counted {
            self.shared_readers = self.shared_readers.saturating_sub(1);
        }
        // The last view out, or a view that outlived the operation it was begun under.
        if self.shared_readers == 0 && self.lock_depth == 0 {
            self.release_lock();
        }
    }
}

/// The file as this handle's last lock hold left it (its table and the map of it), to copy
/// values from *without the lock* and without a system call: see [`Glance::copy_value`].
///
/// A glance reads entries the handle has seen, in a file whose commit number is as it was.
/// Every change of the key set moves the commit number on (the format's rule, kept by the
/// Python library too), a vacuum by rename marks the old file's commit number before the
/// rename, the bytes of a value never change while it is live (a replace appends), and only
/// a vacuum in place moves them, which neither the Python library nor this crate runs while
/// other handles have the file open. So the copy of a live entry's value, with the commit
/// number, the entry's head and its trailer seen unchanged before and after it, is the
/// value a read under the lock would have given at that moment.
#[derive(Debug, Clone)]
pub struct Glance {
    map: Arc<ReadMap>,
    table: Arc<Table>,
    file_id: (u64, u64),
}

impl Glance {
    /// The entry table of the last lock hold.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Copies the value bytes of the live `entry` (an entry of [`Glance::table`]) into `out`
    /// (`entry.value_len()` bytes), without the lock: true if the file showed, before and
    /// after the copy, the commit number of the table and the entry's head and live trailer
    /// as the table has them. False otherwise (the file changed: read it under the lock), or
    /// when the entry is not mapped or `out` is not of its value's length.
    ///
    /// ```
    /// use mmappickle_container::{Container, NewEntry};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("glance.mmdpickle");
    /// let mut container = Container::open(&path)?;
    /// let new = NewEntry { key: "answer", value_len: 2, memo_max: 1, align: None };
    /// container.append(new, |sink| sink.write_all(b"K\x2a"))?;
    /// let view = container.begin_read()?; // maps the file as it is now
    /// container.end_read(view);
    /// let glance = container.glance().expect("a lock hold left a map");
    /// let entry = glance.table().get("answer").cloned().expect("a live key");
    /// let mut value = [0u8; 2];
    /// assert!(glance.copy_value(&entry, &mut value));
    /// assert_eq!(&value, b"K\x2a");
    ///
    /// // Another handle deletes the key: the glance sees the file changed.
    /// assert!(Container::open(&path)?.remove("answer")?);
    /// assert!(!glance.copy_value(&entry, &mut value));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_value(&self, entry: &Entry, out: &mut [u8]) -> bool {
        out.len() as u64 == entry.value_len()
            && self.is_unchanged(entry)
            && self.read_between_checks(entry, || self.copy_value_part(entry, 0, out))
    }

    /// Whether the file shows the commit number of the table and the live `entry`'s head
    /// (frame length, key) and trailer (memo index, live flag) as the table has them.
    pub fn is_unchanged(&self, entry: &Entry) -> bool {
        if !entry.is_live() {
            return false;
        }
        let head = entry_head_before_key(entry.key().len() as u8, entry.len() - FRAME_HEAD_LEN);
        let trailer = encode_entry_trailer(entry.memo_max(), true);
        let commit_number = self.table.commit_number().to_le_bytes();
        self.map
            .unlocked_equals(COMMIT_NUMBER_OFFSET, &commit_number)
            && self.map.unlocked_equals(entry.offset(), &head)
            && self
                .map
                .unlocked_equals(entry.offset() + ENTRY_HEAD_LEN, entry.key().as_bytes())
            && self
                .map
                .unlocked_equals(entry.end() - ENTRY_TRAILER_LEN, &trailer)
    }

    /// `read()`, which reads parts of the value of `entry` ([`Glance::copy_value_part`]),
    /// then whether the file still shows `entry` unchanged ([`Glance::is_unchanged`], which
    /// the caller checked before): true if both say so, and what was read is then what a
    /// read under the lock would have read.
    pub fn read_between_checks(&self, entry: &Entry, read: impl FnOnce() -> bool) -> bool {
        // The reads' loads come after the first check's, and before the second check's.
        fence(Ordering::Acquire);
        let read = read();
        fence(Ordering::Acquire);
        read && self.is_unchanged(entry)
    }

    /// Copies the bytes of the value of `entry` at `offset` (from the value's start) into
    /// `out`, without the lock and without a check: false if they are not all inside the
    /// value. Use it inside [`Glance::read_between_checks`].
    pub fn copy_value_part(&self, entry: &Entry, offset: u64, out: &mut [u8]) -> bool {
        let inside = offset
            .checked_add(out.len() as u64)
            .is_some_and(|end| end <= entry.value_len());
        inside && self.map.copy_unlocked(entry.value_offset() + offset, out)
    }

    /// `(device, inode)` of the file the glance reads.
    pub fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    /// Whether `other` glances at the very same state (the same table and map).
    pub fn is_same_state(&self, other: &Glance) -> bool {
        Arc::ptr_eq(&self.map, &other.map) && Arc::ptr_eq(&self.table, &other.table)
    }
}

impl Container {
    /// The file as this handle's last lock hold left it, for reads without the lock (see
    /// [`Glance`]); `None` when the map does not cover the table, as after this handle's
    /// own appends, until a read view ([`Container::begin_read`]) maps the file again. No
    /// system call.
    pub fn glance(&self) -> Option<Glance> {
        match (&self.map, &self.cache) {
            (Some(map), Some(table)) if map.len() >= table.file_len() => Some(Glance {
                map: Arc::clone(map),
                table: Arc::clone(table),
                file_id: (self.identity.device, self.identity.inode),
            }),
            _ => None,
        }
    }
}
