//! Read snapshots: one state of the file under its shared lock, read from memory.

use std::sync::Arc;

use mmappickle_array::{Bool, Element, MappedArray, MappedArrayMut};
use mmappickle_codec::{decode_entry_value, Value};
use mmappickle_container::{Entry, ReadView};

use super::read::{
    check_element, checked_data_offset, is_malformed_array_header, map_bytes, value_form_of,
    ValueForm,
};
use super::{key_not_found, Item, MaskedArray, MaskedBytes, MmapDict};
use crate::error::{Error, ErrorKind};

/// One consistent state of the dict, read under the file's shared lock: see
/// [`MmapDict::read`].
///
/// Every read of a snapshot is a lookup in the cached table and loads from a map of the file
/// (no system call, no re-validation); maps it hands out stay valid after it ends.
#[derive(Debug)]
pub struct ReadSnapshot<'d> {
    dict: &'d MmapDict,
    /// Handed back to the container when the snapshot ends (`None` only while dropping).
    view: Option<ReadView>,
}

impl MmapDict {
    /// A snapshot: takes the file's *shared* lock until the snapshot is dropped, and sees
    /// one state of the file through all its reads. Snapshots of any number of threads and
    /// processes read side by side (the threads of one handle share one lock); a writer, of
    /// this crate or Python's `mmapdict` (`LOCK_EX`), waits until they end. While readers
    /// keep overlapping, a writer keeps waiting: keep snapshots short.
    ///
    /// ```
    /// use mmappickle::{MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("read.mmdpickle"))?;
    /// m.insert("a", 1)?;
    /// m.insert_array("grid", &[1.0f64, 2.0], &[2])?;
    /// let r = m.read()?;                     // one lock for all of these
    /// assert_eq!(r.keys()?, ["a", "grid"]);
    /// assert_eq!(r.value("a")?, Value::from(1));
    /// let grid = r.array::<f64>("grid")?;
    /// drop(r);                               // the lock is released; the map stays valid
    /// assert_eq!(grid.to_vec(), [1.0, 2.0]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn read(&self) -> Result<ReadSnapshot<'_>, Error> {
        let view = self.lock_container().begin_read()?;
        Ok(ReadSnapshot {
            dict: self,
            view: Some(view),
        })
    }
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        if let Some(view) = self.view.take() {
            self.dict.lock_container().end_read(view);
        }
    }
}

impl<'d> ReadSnapshot<'d> {
    fn view(&self) -> Result<&ReadView, Error> {
        self.view.as_ref().ok_or_else(|| {
            Error::from(mmappickle_container::Error::new(
                mmappickle_container::ErrorKind::StaleEntry,
                0,
            ))
        })
    }

    /// The live entry of `key`.
    fn entry(&self, key: &str) -> Result<&Entry, Error> {
        self.view()?
            .table()
            .get(key)
            .ok_or_else(|| key_not_found(key))
    }

    /// Whether `key` is live.
    pub fn contains_key(&self, key: &str) -> Result<bool, Error> {
        Ok(self.view()?.table().get(key).is_some())
    }

    /// The live keys, in file order.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        Ok(self.view()?.table().keys().map(str::to_owned).collect())
    }

    /// The number of live keys.
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.view()?.table().n_live())
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Every entry in the file, deleted and padding entries included (for tools).
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        Ok(self.view()?.table().entries().to_vec())
    }

    /// The commit number of this state.
    pub fn commit_number(&self) -> Result<i32, Error> {
        Ok(self.view()?.table().commit_number())
    }

    /// What `key` holds (see [`MmapDict::get`]).
    pub fn get(&self, key: &str) -> Result<Item, Error> {
        let view = self.view()?;
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let bytes = view.value(entry)?;
        let limits = &self.dict.options.limits;
        let form = match value_form_of(&mut &*bytes, value_offset) {
            Ok(form) => form,
            // An array expression whose header numpy would refuse.
            Err(array_error) if is_malformed_array_header(&array_error) => return Err(array_error),
            // Starts like an array but is not one we can map: it may still be an ordinary
            // value; if not, the array error says more.
            Err(array_error) => {
                return decode_entry_value(bytes, limits)
                    .map(Item::Value)
                    .map_err(|_| array_error);
            }
        };
        let token = || Box::new(Arc::clone(&self.dict.maps));
        Ok(match form {
            ValueForm::Generic => Item::Value(
                decode_entry_value(bytes, limits)
                    .map_err(|error| Error::codec_at(error, value_offset))?,
            ),
            ValueForm::Array(header) => {
                Item::Array(map_bytes(view.file(), value_offset, header)?.with_keep_alive(token()))
            }
            ValueForm::Masked(header) => Item::Masked(MaskedBytes {
                data: map_bytes(view.file(), value_offset, header.data)?.with_keep_alive(token()),
                mask: map_bytes(view.file(), value_offset, header.mask)?.with_keep_alive(token()),
            }),
        })
    }

    /// The value of `key` decoded as a generic value, whatever it holds (see
    /// [`MmapDict::value`]).
    pub fn value(&self, key: &str) -> Result<Value, Error> {
        let entry = self.entry(key)?;
        let bytes = self.view()?.value(entry)?;
        if let Err(array_error) = value_form_of(&mut &*bytes, entry.value_offset()) {
            if is_malformed_array_header(&array_error) {
                return Err(array_error);
            }
        }
        decode_entry_value(bytes, &self.dict.options.limits)
            .map_err(|error| Error::codec_at(error, entry.value_offset()))
    }

    /// The value bytes of `key` as stored (see [`MmapDict::raw_value`]).
    pub fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        let entry = self.entry(key)?;
        Ok(self.view()?.value(entry)?.to_vec())
    }

    /// The array of `key`, mapped read-only and typed (see [`MmapDict::array`]).
    pub fn array<T: Element>(&self, key: &str) -> Result<MappedArray<T>, Error> {
        let (data_offset, header) = self.array_header::<T>(key)?;
        let map = MappedArray::<T>::map(
            self.view()?.file(),
            data_offset,
            header.dtype,
            &header.shape,
        )?;
        Ok(map.with_keep_alive(Box::new(Arc::clone(&self.dict.maps))))
    }

    /// The array of `key`, mapped writable (see [`MmapDict::array_mut`]).
    pub fn array_mut<T: Element>(&self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.dict.check_writable()?;
        let (data_offset, header) = self.array_header::<T>(key)?;
        let map = MappedArrayMut::<T>::map(
            self.view()?.file(),
            data_offset,
            header.dtype,
            &header.shape,
        )?;
        Ok(map.with_keep_alive(Box::new(Arc::clone(&self.dict.maps))))
    }

    /// Finds the plain array of `key` and checks its element type: its data's offset and
    /// its header.
    fn array_header<T: Element>(
        &self,
        key: &str,
    ) -> Result<(u64, mmappickle_array::ArrayHeader), Error> {
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let bytes = self.view()?.value(entry)?;
        let ValueForm::Array(header) = value_form_of(&mut &*bytes, value_offset)? else {
            let key = key.to_owned();
            return Err(Error::new(ErrorKind::NotAnArray { key }, value_offset));
        };
        check_element::<T>(key, &header.dtype, value_offset)?;
        Ok((checked_data_offset(value_offset, &header)?, header))
    }

    /// The masked array of `key`, data and mask mapped read-only and typed (see
    /// [`MmapDict::masked`]).
    pub fn masked<T: Element>(&self, key: &str) -> Result<MaskedArray<T>, Error> {
        let view = self.view()?;
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let bytes = view.value(entry)?;
        let ValueForm::Masked(header) = value_form_of(&mut &*bytes, value_offset)? else {
            let key = key.to_owned();
            return Err(Error::new(ErrorKind::NotMasked { key }, value_offset));
        };
        check_element::<T>(key, &header.data.dtype, value_offset)?;
        let data = map_bytes(view.file(), value_offset, header.data)?.typed::<T>()?;
        let mask = map_bytes(view.file(), value_offset, header.mask)?.typed::<Bool>()?;
        Ok(MaskedArray {
            data: data.with_keep_alive(Box::new(Arc::clone(&self.dict.maps))),
            mask: mask.with_keep_alive(Box::new(Arc::clone(&self.dict.maps))),
        })
    }

    /// Every key with what it holds, in file order, all from this snapshot's state.
    pub fn iter(&self) -> Result<Iter<'_>, Error> {
        Ok(Iter {
            snapshot: Snapshot::Borrowed(self),
            keys: self.keys()?.into_iter(),
        })
    }

    /// Every key with what it holds, the snapshot owned by the iterator (its lock held
    /// until the iterator is dropped).
    pub(super) fn into_iter_owned(self) -> Result<Iter<'d>, Error> {
        let keys = self.keys()?.into_iter();
        Ok(Iter {
            snapshot: Snapshot::Owned(self),
            keys,
        })
    }
}

/// The snapshot an [`Iter`] reads: its own, or one it borrows.
#[derive(Debug)]
enum Snapshot<'s> {
    Owned(ReadSnapshot<'s>),
    Borrowed(&'s ReadSnapshot<'s>),
}

/// Every key with what it holds, from one snapshot: see [`MmapDict::iter`] and
/// [`ReadSnapshot::iter`].
#[derive(Debug)]
pub struct Iter<'s> {
    snapshot: Snapshot<'s>,
    keys: std::vec::IntoIter<String>,
}

impl Iterator for Iter<'_> {
    type Item = Result<(String, Item), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.keys.next()?;
        let snapshot = match &self.snapshot {
            Snapshot::Owned(snapshot) => snapshot,
            Snapshot::Borrowed(snapshot) => *snapshot,
        };
        Some(snapshot.get(&key).map(|item| (key, item)))
    }
}
