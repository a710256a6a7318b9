//! Read snapshots: one state of the file under its shared lock, read from memory; what a key
//! holds is told apart here, by the one classifier, and its arrays mapped under the map
//! claims (`maps`).

use std::fs::File;

use mmappickle_array::{
    classify, ArrayHeader, Bool, DType, Element, MappedArray, MappedArrayMut, ValueKind,
};
use mmappickle_codec::{decode_entry_value, Value};
use mmappickle_container::{Entry, ReadView};

use super::maps::MapRequest;
use super::{key_not_found, Item, MaskedArray, MaskedBytes, MmapDict};
use crate::error::{Error, ErrorKind};

/// One consistent state of the dict, read under the file's shared lock: see
/// [`MmapDict::read`].
///
/// Every read of a snapshot is a lookup in the cached table and loads from a map of the file
/// (no system call, no re-validation); maps it hands out stay valid after it ends, and keep
/// their claims (a writable map of an array is refused while any other map of it lives, in
/// any snapshot of the process, and the other way round).
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
    pub(super) fn view(&self) -> Result<&ReadView, Error> {
        self.view.as_ref().ok_or_else(|| {
            Error::from(mmappickle_container::Error::unplaced(
                mmappickle_container::ErrorKind::StaleEntry,
            ))
        })
    }

    /// The live entry of `key`.
    pub(super) fn entry(&self, key: &str) -> Result<&Entry, Error> {
        self.view()?
            .table()
            .get(key)
            .ok_or_else(|| key_not_found(key))
    }

    /// The value bytes of `entry` (an entry of this snapshot's table) and what they hold,
    /// by the one classifier.
    pub(super) fn classified(&self, entry: &Entry) -> Result<(&[u8], ValueKind), Error> {
        let bytes = self.view()?.value(entry)?;
        let kind =
            classify(&mut &*bytes).map_err(|error| Error::array_at(error, entry.value_offset()))?;
        Ok((bytes, kind))
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

    /// The live entries, in file order.
    pub(super) fn live_entries(&self) -> Result<impl Iterator<Item = &Entry>, Error> {
        Ok(self.view()?.table().live_entries())
    }

    /// The commit number of this state.
    pub fn commit_number(&self) -> Result<i32, Error> {
        Ok(self.view()?.table().commit_number())
    }

    /// What `key` holds (see [`MmapDict::get`]).
    pub fn get(&self, key: &str) -> Result<Item, Error> {
        self.item_of(self.entry(key)?)
    }

    /// What the live `entry` of this snapshot holds.
    pub(super) fn item_of(&self, entry: &Entry) -> Result<Item, Error> {
        let (key, value_offset) = (entry.key(), entry.value_offset());
        let (bytes, kind) = self.classified(entry)?;
        let file = self.view()?.file();
        let counter = &self.dict.maps;
        Ok(match kind {
            ValueKind::Malformed(error) => return Err(Error::array_at(error, value_offset)),
            // A value that only starts like an array may still be an ordinary value; if
            // not, the array error says more.
            ValueKind::Generic { not_an_array } => Item::Value(
                decode_entry_value(bytes, &self.dict.options.limits).map_err(|error| {
                    match not_an_array {
                        Some(array_error) => Error::array_at(array_error, value_offset),
                        None => Error::codec_at(error, value_offset),
                    }
                })?,
            ),
            ValueKind::Array(header) => {
                Item::Array(request(key, value_offset, *header).map(file, counter)?)
            }
            ValueKind::Masked(header) => Item::Masked(MaskedBytes {
                data: request(key, value_offset, header.data).map(file, counter)?,
                mask: request(key, value_offset, header.mask).map(file, counter)?,
            }),
        })
    }

    /// The value of `key` decoded as a generic value, whatever it holds (see
    /// [`MmapDict::value`]).
    pub fn value(&self, key: &str) -> Result<Value, Error> {
        let entry = self.entry(key)?;
        let (bytes, kind) = self.classified(entry)?;
        if let ValueKind::Malformed(error) = kind {
            return Err(Error::array_at(error, entry.value_offset()));
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
        self.with_array::<T, _>(key, |file, request| {
            Ok(request.map(file, &self.dict.maps)?.typed()?)
        })
    }

    /// The array of `key`, mapped writable (see [`MmapDict::array_mut`]).
    pub fn array_mut<T: Element>(&self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.dict.check_writable()?;
        self.with_array::<T, _>(key, |file, request| {
            Ok(request.map_mut(file, &self.dict.maps)?.typed()?)
        })
    }

    /// Finds the plain array of `key`, checks its element type, and runs `map` on the file
    /// and where the array is.
    fn with_array<T: Element, R>(
        &self,
        key: &str,
        map: impl FnOnce(&File, MapRequest<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let ValueKind::Array(header) = self.mappable_kind(entry)? else {
            let key = key.to_owned();
            return Err(Error::new(ErrorKind::NotAnArray { key }, value_offset));
        };
        check_element::<T>(key, &header.dtype, value_offset)?;
        map(self.view()?.file(), request(key, value_offset, *header))
    }

    /// The masked array of `key`, data and mask mapped read-only and typed (see
    /// [`MmapDict::masked`]).
    pub fn masked<T: Element>(&self, key: &str) -> Result<MaskedArray<T>, Error> {
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let ValueKind::Masked(header) = self.mappable_kind(entry)? else {
            let key = key.to_owned();
            return Err(Error::new(ErrorKind::NotMasked { key }, value_offset));
        };
        check_element::<T>(key, &header.data.dtype, value_offset)?;
        let (file, counter) = (self.view()?.file(), &self.dict.maps);
        Ok(MaskedArray {
            data: request(key, value_offset, header.data)
                .map(file, counter)?
                .typed::<T>()?,
            mask: request(key, value_offset, header.mask)
                .map(file, counter)?
                .typed::<Bool>()?,
        })
    }

    /// What `entry` holds, for the typed readers: a malformed header, or a value that only
    /// starts like an array expression, is the error.
    fn mappable_kind(&self, entry: &Entry) -> Result<ValueKind, Error> {
        match self.classified(entry)?.1 {
            ValueKind::Malformed(error)
            | ValueKind::Generic {
                not_an_array: Some(error),
            } => Err(Error::array_at(error, entry.value_offset())),
            kind => Ok(kind),
        }
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

fn check_element<T: Element>(key: &str, dtype: &DType, offset: u64) -> Result<(), Error> {
    if T::matches(dtype) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::WrongElementType {
                key: key.to_owned(),
                requested: T::RUST_NAME,
                dtype: dtype.name(),
            },
            offset,
        ))
    }
}

/// Where an array part of the value of `key` at `value_offset` is.
pub(super) fn request(key: &str, value_offset: u64, header: ArrayHeader) -> MapRequest<'_> {
    MapRequest {
        key,
        value_offset,
        header,
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
