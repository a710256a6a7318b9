//! `MmapDict`: the dictionary and its key set; options, items, inserting and reading live
//! in the submodules.

mod batch;
pub(crate) mod caller_bytes;
mod disassembly;
mod insert;
mod listing;
mod maps;
mod open;
mod options;
mod read;
mod rows;
mod snapshot;
mod unlocked;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mmappickle_container::{Container, Entry, FsckReport, VacuumReport, MAX_KEY_LEN};

use self::unlocked::Glances;

pub use self::batch::{LockHold, Transaction};
pub use self::disassembly::Disassembly;
pub use self::listing::{EntryInfo, Listing};
pub use self::open::loads;
pub use self::options::MmapDictOptions;
pub use self::snapshot::{Iter, ReadSnapshot, StoredValue};
pub use self::unlocked::{UnlockedValue, UNLOCKED_READ_MAX};

use crate::error::{Error, ErrorKind};
/// A dictionary stored in a file that is at once a Python pickle of the dict and a store of
/// memory-mapped numpy arrays (see the crate docs).
///
/// Every read takes the file's shared lock (but a small generic value or an array's place the
/// handle has seen, in a file that shows no change, is read without it: see the crate docs),
/// every change its exclusive lock, for the operation's duration ([`MmapDict::read`] and
/// [`MmapDict::write`]: for many operations), so several handles and processes can share a
/// file; changes made by one are seen by the others at their next operation. Reads take
/// `&self` and `MmapDict` is [`Send`] and [`Sync`]: threads share one `Arc<MmapDict>` and
/// read side by side; changes take `&mut self` (see the crate docs on threads).
#[derive(Debug)]
pub struct MmapDict {
    /// Behind a mutex for the cached table and the count of read snapshots; a snapshot
    /// holds it only to begin and to end, and reads without it.
    container: Mutex<Container>,
    /// The path opened (the container's, kept here to be reached without the mutex).
    path: std::path::PathBuf,
    options: MmapDictOptions,
    /// One clone lives in every map handed out: `strong_count - 1` maps are alive.
    maps: Arc<()>,
    /// The container's glance as the last read snapshot began: what reads without the lock
    /// read.
    glances: Glances,
}
fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::unplaced(ErrorKind::KeyTooLong { len: key.len() }));
    }
    Ok(())
}

fn key_not_found(key: &str) -> Error {
    Error::unplaced(ErrorKind::KeyNotFound {
        key: key.to_owned(),
    })
}
impl MmapDict {
    /// Opens `path` read-write, creating it if missing; a plain pickle of a dict is
    /// converted into the mmappickle format first (as Python's `mmapdict` does).
    ///
    /// ```
    /// use mmappickle::{MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("test.mmdpickle"))?;
    /// m.insert("a_sample_key", "value")?;
    /// m.insert("other_key", vec![1i64, 2, 3])?;
    /// assert_eq!(m.get("a_sample_key")?, Value::from("value"));
    /// assert_eq!(m.value("other_key")?, Value::from(vec![1i64, 2, 3]));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        MmapDictOptions::new().open(path)
    }

    /// Opens an existing `path` read-only: every change is [`ErrorKind::ReadOnly`] and
    /// arrays map read-only.
    ///
    /// ```
    /// use mmappickle::{ErrorKind, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ro.mmdpickle");
    /// MmapDict::open(&path)?.insert("key", 1)?;
    /// let mut ro = MmapDict::open_readonly(&path)?;
    /// assert_eq!(ro.value("key")?, 1.into());
    /// let refused = ro.insert("key", 2).unwrap_err();
    /// assert!(matches!(refused.kind(), ErrorKind::ReadOnly));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn open_readonly(path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        MmapDictOptions::new().readonly(true).open(path)
    }

    /// The options builder: `MmapDict::options().readonly(true).open(path)`.
    pub fn options() -> MmapDictOptions {
        MmapDictOptions::new()
    }

    /// The path the dict was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the dict was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.options.readonly
    }

    /// The options the dict was opened with.
    pub fn open_options(&self) -> &MmapDictOptions {
        &self.options
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.is_readonly() {
            Err(Error::unplaced(ErrorKind::ReadOnly))
        } else {
            Ok(())
        }
    }

    /// The container, for an operation of `&self` (a poisoned lock is taken over: the
    /// container's state is checked against the file at every lock of the file anyway).
    fn lock_container(&self) -> MutexGuard<'_, Container> {
        self.container
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The container, for a change.
    fn container_mut(&mut self) -> &mut Container {
        self.container
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ---- the key set ----

    /// Whether `key` is live.
    pub fn contains_key(&self, key: &str) -> Result<bool, Error> {
        self.read()?.contains_key(key)
    }

    /// The live keys, in file order (the order `pickle.load` gives).
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        self.read()?.keys()
    }

    /// The number of live keys.
    pub fn len(&self) -> Result<usize, Error> {
        self.read()?.len()
    }

    /// Where the file's end is torn, when it is (cut short by a full disk, a crash, a
    /// truncation): the table holds the complete entries before that offset (and a last
    /// entry cut only in its trailer, whose value is whole). A read-only handle leaves the
    /// file so; a read-write one repairs the tail at its first operation, as
    /// [`MmapDict::fsck`] does, and its next `fsck` reports what it did.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("torn.mmdpickle");
    /// let mut m = MmapDict::open(&path)?;
    /// m.insert("kept", 1)?;
    /// m.insert("cut", "a value cut in half by a full disk")?;
    /// drop(m);
    /// let len = std::fs::metadata(&path)?.len();
    /// std::fs::OpenOptions::new().write(true).open(&path)?.set_len(len - 30)?;
    ///
    /// let readonly = MmapDict::open_readonly(&path)?;
    /// assert!(readonly.torn_at()?.is_some());
    /// assert_eq!(readonly.keys()?, ["kept"]);
    /// let mut m = MmapDict::open(&path)?;
    /// assert_eq!(m.torn_at()?, None);
    /// assert_eq!(m.fsck()?.dropped_key.as_deref(), Some("cut"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn torn_at(&self) -> Result<Option<u64>, Error> {
        Ok(self.read()?.view()?.table().torn_at())
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Every entry in the file, deleted and padding entries included (for tools).
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        self.read()?.entries()
    }

    /// Deletes `key` (one byte flips in the file); returns whether it was there.
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        self.check_writable()?;
        Ok(self.container_mut().remove(key)?)
    }

    /// The commit number: it changes on every insert and remove, by any handle or process.
    pub fn commit_number(&self) -> Result<i32, Error> {
        self.read()?.commit_number()
    }

    /// How many maps handed out by this dict (arrays, masked parts) are still alive.
    pub fn live_maps(&self) -> usize {
        Arc::strong_count(&self.maps).saturating_sub(1)
    }

    /// Removes deleted entries and gives their space back (the file is rewritten beside and
    /// renamed over). Refused with [`ErrorKind::MapsAlive`] while maps from this dict are
    /// alive.
    ///
    /// ```
    /// use mmappickle::{ErrorKind, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("vacuum.mmdpickle"))?;
    /// m.insert_array("a", &[1.0f64, 2.0], &[2])?;
    /// m.insert("gone", "soon")?;
    /// m.remove("gone")?;
    /// let map = m.array::<f64>("a")?;
    /// assert!(matches!(m.vacuum().unwrap_err().kind(), ErrorKind::MapsAlive { count: 1 }));
    /// drop(map);
    /// let report = m.vacuum()?;
    /// assert!(report.len_after < report.len_before);
    /// assert_eq!(m.keys()?, ["a"]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn vacuum(&mut self) -> Result<VacuumReport, Error> {
        self.check_writable()?;
        let count = self.live_maps();
        if count > 0 {
            return Err(Error::unplaced(ErrorKind::MapsAlive { count }));
        }
        let report = self.container_mut().vacuum()?;
        // The old file's map goes now, not at the next read (its disk space with it).
        self.keep_glance(self.lock_container().glance());
        Ok(report)
    }

    /// Repairs a damaged file (a torn last entry, a missing terminator): keeps every complete
    /// entry, completes a last entry that was cut after its value, and reports what was
    /// dropped. Open with
    /// [`MmapDictOptions::allow_damaged`] to reach a file that fails to open otherwise.
    pub fn fsck(&mut self) -> Result<FsckReport, Error> {
        self.check_writable()?;
        // A last entry cut after its value is completed first (the file gets its old size
        // back); whatever else is torn, fsck drops.
        let limits = self.options.limits.clone();
        let container = self.container_mut();
        container.complete_torn_entry(|value, memo_start| {
            caller_bytes::whole_value_memo_max(value, memo_start, &limits)
        })?;
        let report = container.fsck()?;
        self.keep_glance(self.lock_container().glance());
        Ok(report)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    // The bound is the format's: 255 bytes of UTF-8, not 255 characters.
    #[test]
    fn key_length_is_counted_in_utf8_bytes() {
        assert!(check_key(&"k".repeat(255)).is_ok());
        let two_byte_chars = "é".repeat(128);
        let error = check_key(&two_byte_chars).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::KeyTooLong { len: 256 }));
    }
}
