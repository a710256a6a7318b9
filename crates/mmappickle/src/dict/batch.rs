//! Write batches: many changes under one exclusive lock, made visible by one commit.

use std::any::Any;
use std::ops::{Deref, DerefMut};

use mmappickle_codec::{EncodedValue, SplitList};
use mmappickle_container::Batch;

use super::{check_key, MmapDict, MmapDictOptions};
use crate::error::{Error, ErrorKind};

/// Changes under one exclusive lock, committed together: see [`MmapDict::write`] and
/// [`MmapDict::transaction`].
///
/// Its inserts are those of [`MmapDict`] (`insert`, `insert_array`, `insert_array_with`,
/// `insert_masked`, `insert_stub`, ...). Dropped without [`Transaction::commit`], it leaves
/// the file as it was.
#[derive(Debug)]
pub struct Transaction<'d> {
    pub(super) batch: Batch<'d>,
    pub(super) options: &'d MmapDictOptions,
}

impl MmapDict {
    /// Runs `changes` as one batch under the file's exclusive lock, and commits them
    /// together if it returns `Ok`: every insert and replace of the batch becomes visible at
    /// once, with one write; then its removes are done, one byte each. If `changes` returns
    /// an error or panics, the file is left as it was and the error is returned.
    ///
    /// What a crash in the middle leaves is said in the crate docs (*Batches*).
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("batch.mmdpickle"))?;
    /// m.write(|tx| {
    ///     for i in 0..1000 {
    ///         tx.insert(&format!("key{i}"), i)?;
    ///     }
    ///     tx.insert_array("grid", &[1.0f64, 2.0], &[2])?;
    ///     tx.remove("key0")?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(m.len()?, 1000);
    ///
    /// // An error inside changes nothing.
    /// let failed = m.write(|tx| {
    ///     tx.insert("key1", "changed")?;
    ///     tx.insert_array("bad", &[1u8, 2, 3], &[4]) // 3 elements for a shape of 4
    /// });
    /// assert!(failed.is_err());
    /// assert_eq!(m.value("key1")?, 1.into());
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn write<R>(
        &mut self,
        changes: impl FnOnce(&mut Transaction<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut transaction = self.transaction()?;
        let result = changes(&mut transaction)?;
        transaction.commit()?;
        Ok(result)
    }

    /// Begins a batch (see [`MmapDict::write`]) to commit with [`Transaction::commit`];
    /// dropped without it, nothing changes.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("tx.mmdpickle"))?;
    /// let mut tx = m.transaction()?;
    /// tx.insert("a", 1)?;
    /// drop(tx);                   // not committed
    /// assert!(m.is_empty()?);
    /// let mut tx = m.transaction()?;
    /// tx.insert("a", 1)?;
    /// assert!(tx.contains_key("a"));
    /// tx.commit()?;
    /// assert_eq!(m.keys()?, ["a"]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        self.check_writable()?;
        let options = &self.options;
        let batch = self
            .container
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .batch()?;
        Ok(Transaction { batch, options })
    }
}

/// The file's exclusive lock held across operations of the dict: see [`MmapDict::hold_lock`].
/// Derefs to the dict; dropping it releases the lock.
#[derive(Debug)]
pub struct LockHold<'d> {
    dict: &'d mut MmapDict,
}

impl MmapDict {
    /// Takes the file's lock (exclusive; shared for a read-only dict) and holds it until the
    /// returned guard is dropped: the dict's operations through the guard reuse it without
    /// waiting, and no other handle changes the file in between. Unlike [`MmapDict::write`],
    /// nothing is batched: each change commits on its own.
    ///
    /// This is where the wait for the lock happens, so a caller can wait in one context and
    /// operate in another (a Python binding waits with the interpreter released). As for
    /// every operation, a lock that another handle of this thread holds is refused (the
    /// container's `LockedByThisThread` error) rather than waited for forever.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("held.mmdpickle"))?;
    /// let mut held = m.hold_lock()?;
    /// held.insert("a", 1)?;
    /// held.remove("a")?;
    /// held.set_commit_number(7)?;
    /// drop(held);
    /// assert!(m.is_empty()?);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn hold_lock(&mut self) -> Result<LockHold<'_>, Error> {
        self.container_mut().hold_lock()?;
        Ok(LockHold { dict: self })
    }
}

impl Deref for LockHold<'_> {
    type Target = MmapDict;

    fn deref(&self) -> &MmapDict {
        self.dict
    }
}

impl DerefMut for LockHold<'_> {
    fn deref_mut(&mut self) -> &mut MmapDict {
        self.dict
    }
}

impl Drop for LockHold<'_> {
    fn drop(&mut self) {
        self.dict.container_mut().release_held_lock();
    }
}

impl Transaction<'_> {
    /// Deletes `key` when the batch commits (at once in the batch's own view); returns
    /// whether it was there, in that view.
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        Ok(self.batch.remove(key)?)
    }

    /// Stores `value` as `key` by the first of the dict's picklers whose
    /// [`Pickler::is_picklable`](crate::Pickler::is_picklable) takes it (see
    /// [`MmapDict::insert_any`]).
    pub fn insert_any(&mut self, key: &str, value: &dyn Any) -> Result<(), Error> {
        let options = self.options;
        options
            .picklers
            .writer_of(key, value)?
            .write(key, value, self)
    }

    /// Prepares for inserts of `keys`, in this order (a hint: see
    /// [`Batch::expect_keys`](mmappickle_container::Batch::expect_keys)).
    pub fn expect_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        self.batch.expect_keys(keys);
    }

    /// Prepares for inserts whose values take about `value_bytes` in all (a hint: see
    /// [`Batch::expect_value_bytes`](mmappickle_container::Batch::expect_value_bytes)).
    pub fn expect_value_bytes(&mut self, value_bytes: usize) {
        self.batch.expect_value_bytes(value_bytes);
    }

    /// Stores `value`, written by a [`ValueWriter`](crate::ValueWriter), as `key`: the
    /// bytes [`Transaction::insert_pickle`] stores for the same value's pickle, with no
    /// pickle made or read.
    ///
    /// ```
    /// use mmappickle::{MmapDict, Value, ValueWriter};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("encoded.mmdpickle"))?;
    /// let mut writer = ValueWriter::new();
    /// writer.begin_list(2)?;
    /// writer.int(1)?;
    /// writer.str("two")?;
    /// writer.end()?;
    /// let index = writer.finish_value()?;
    /// m.write(|tx| tx.insert_encoded("a", writer.get(index).expect("finished")))?;
    /// assert_eq!(m.get("a")?, Value::List(vec![Value::Int(1), Value::from("two")]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_encoded(&mut self, key: &str, value: EncodedValue<'_>) -> Result<(), Error> {
        check_key(key)?;
        // No memo: the entry's memo_max is its start.
        let memo_max = self.batch.memo_start();
        self.append_value(key, value.as_bytes(), memo_max)
    }

    /// Stores item `item` of `split` (the pickle of a list cut by
    /// [`split_list_pickle`](crate::split_list_pickle)) as `key`, as
    /// [`Transaction::insert_pickle`] stores that item's pickle, without reading its ops
    /// again when it uses no memo. Returns `false` (and stores nothing) when the item was not
    /// split out.
    pub fn insert_split(
        &mut self,
        key: &str,
        split: &SplitList,
        item: usize,
    ) -> Result<bool, Error> {
        check_key(key)?;
        // Under the batch's lock: no other handle can raise the memo start in between.
        let memo_start = self.batch.memo_start();
        let Some(entry_value) = split.entry_value(item, u32::try_from(memo_start).unwrap_or(1))
        else {
            return Ok(false);
        };
        let (bytes, memo_max) =
            entry_value.map_err(|error| Error::unplaced(ErrorKind::PickleStream(error)))?;
        // At most i32::MAX: the codec refuses indices past it.
        let memo_max = i32::try_from(memo_max).unwrap_or(i32::MAX);
        self.append_value(key, &bytes, memo_max)?;
        Ok(true)
    }

    /// Whether `key` is live in the batch's view (the file's state and the batch's changes).
    pub fn contains_key(&self, key: &str) -> bool {
        self.batch.get(key).is_some()
    }

    /// Makes the batch's changes visible and releases the lock.
    pub fn commit(self) -> Result<(), Error> {
        Ok(self.batch.commit()?)
    }
}
