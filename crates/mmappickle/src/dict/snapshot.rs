//! Read snapshots: one state of the file under its shared lock, read from memory; what a key
//! holds is told apart by the one read core (`item`), and its arrays mapped under the map
//! claims (`maps`).

use mmappickle_array::{
    classify, Bool, DType, Element, MappedArray, MappedArrayMut, MappedBytes, ValueKind,
};
use mmappickle_codec::Value;
use mmappickle_container::{Entry, ReadView};

use super::maps::{Claim, MapRequest};
use super::{key_not_found, MmapDict};
use crate::error::{Error, ErrorKind};
use crate::item::{self, ArrayPlace, Item, Located, MaskedArray, ValuePlace};
use crate::picklers::{Pickler, Picklers};

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
        let view = {
            let mut container = self.lock_container();
            let view = container.begin_read()?;
            self.keep_glance(container.glance());
            view
        };
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

    /// Where the parts of the value of `entry` (an entry of this snapshot's table) are, by
    /// the one read core.
    pub(super) fn locate_entry(&self, entry: &Entry) -> Result<Located, Error> {
        item::locate_value(entry, self.classified(entry)?.1)
    }

    /// The value bytes of `entry` (an entry of this snapshot's table) and what they hold, by
    /// the one classifier (which reads only an array's head).
    fn classified(&self, entry: &Entry) -> Result<(&[u8], ValueKind), Error> {
        let bytes = self.view()?.value(entry)?;
        let kind =
            classify(&mut &*bytes).map_err(|error| Error::array_at(error, entry.value_offset()))?;
        Ok((bytes, kind))
    }

    /// As [`Self::classified`], for a read of the whole value: one that holds array bytes
    /// comes with a read claim on them, as a map does, so that no writable map of them lives
    /// in this process while they are read.
    fn claimed(&self, entry: &Entry) -> Result<(&[u8], ValueKind, Option<Claim>), Error> {
        let (bytes, kind) = self.classified(entry)?;
        let claim = match kind {
            ValueKind::Array(_) | ValueKind::Masked(_) => Some(Claim::read(
                self.view()?.file(),
                entry.key(),
                entry.value_offset(),
                &self.dict.maps,
            )?),
            _ => None,
        };
        Ok((bytes, kind, claim))
    }

    /// The bytes of a generic value this snapshot located.
    pub(super) fn value_bytes(&self, place: &ValuePlace) -> Result<&[u8], Error> {
        let file = self.view()?.bytes();
        // Inside the file: the place is that of an entry of this snapshot's table.
        let start = usize::try_from(place.offset).unwrap_or(usize::MAX);
        let end = usize::try_from(place.range().end).unwrap_or(usize::MAX);
        file.get(start..end).ok_or_else(|| {
            let stale = mmappickle_container::ErrorKind::StaleEntry;
            Error::from(mmappickle_container::Error::new(stale, place.offset))
        })
    }

    /// Whether `key` is live.
    pub fn contains_key(&self, key: &str) -> Result<bool, Error> {
        Ok(self.view()?.table().get(key).is_some())
    }

    /// The live keys, in file order.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        Ok(self.key_strs()?.map(str::to_owned).collect())
    }

    /// The live keys, in file order, borrowed from the snapshot (no `String` each).
    pub fn key_strs(&self) -> Result<impl Iterator<Item = &str>, Error> {
        Ok(self.view()?.table().keys())
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

    /// What the live `entry` of this snapshot holds, read by the first of the dict's
    /// picklers valid for it.
    pub(super) fn item_of(&self, entry: &Entry) -> Result<Item, Error> {
        let value = self.stored_value(entry)?;
        value.reader()?.read(&value)
    }

    /// The value of `key` as a [`Pickler`](crate::Pickler) sees it (for a binding that
    /// dispatches through the picklers itself).
    pub fn stored(&self, key: &str) -> Result<StoredValue<'_>, Error> {
        self.stored_value(self.entry(key)?)
    }

    /// The value of every live key, in file order, as [`ReadSnapshot::stored`] gives it
    /// (no lookup by key).
    pub fn stored_values(
        &self,
    ) -> Result<impl Iterator<Item = Result<StoredValue<'_>, Error>> + '_, Error> {
        Ok(self.live_entries()?.map(|entry| self.stored_value(entry)))
    }

    /// Every live key, in file order, with its value's bytes when the dict's picklers read it
    /// as a generic value with the built-in [`GenericPickler`](crate::GenericPickler); `None`
    /// for anything else (read it with [`ReadSnapshot::stored`]). A quick pass for readers
    /// of every value: it locates no array and asks no pickler.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("glance.mmdpickle"))?;
    /// m.insert("n", 7)?;
    /// m.insert_array("a", &[1.0f32, 2.0], &[2])?;
    /// let snapshot = m.read()?;
    /// let values: Vec<_> = snapshot.generic_value_bytes()?.collect::<Result<_, _>>()?;
    /// assert_eq!(values, [("n", Some(&b"K\x07"[..])), ("a", None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn generic_value_bytes(
        &self,
    ) -> Result<impl Iterator<Item = Result<(&str, Option<&[u8]>), Error>> + '_, Error> {
        let view = self.view()?;
        let builtin = self.dict.options.picklers.generic_reads_builtin();
        Ok(view.table().live_entries().map(move |entry| {
            let bytes = view.value(entry)?;
            // A value that fails to classify is read otherwise, which reports the error.
            let generic =
                builtin && matches!(classify(&mut &*bytes), Ok(ValueKind::Generic { .. }));
            Ok((entry.key(), generic.then_some(bytes)))
        }))
    }

    fn stored_value(&self, entry: &'d Entry) -> Result<StoredValue<'_>, Error> {
        let (bytes, kind, claim) = self.claimed(entry)?;
        Ok(StoredValue {
            snapshot: self,
            entry,
            bytes,
            located: item::locate_value(entry, kind)?,
            _claim: claim,
        })
    }

    /// Maps an array part of the value of `entry` read-only.
    fn map(&self, entry: &Entry, place: ArrayPlace) -> Result<MappedBytes, Error> {
        request(entry, place).map(self.view()?.file(), &self.dict.maps)
    }

    /// The value of `key` decoded as a generic value, whatever it holds (see
    /// [`MmapDict::value`]).
    pub fn value(&self, key: &str) -> Result<Value, Error> {
        let entry = self.entry(key)?;
        let (bytes, kind, _claim) = self.claimed(entry)?;
        item::refuse_malformed(entry, kind)?;
        item::decode_any_value(bytes, entry, &self.dict.options.limits)
    }

    /// The value bytes of `key` as stored (see [`MmapDict::raw_value`]).
    pub fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        let (bytes, _, _claim) = self.claimed(self.entry(key)?)?;
        Ok(bytes.to_vec())
    }

    /// The array of `key`, mapped read-only and typed (see [`MmapDict::array`]).
    pub fn array<T: Element>(&self, key: &str) -> Result<MappedArray<T>, Error> {
        let (entry, place) = self.array_place::<T>(key)?;
        Ok(self.map(entry, place)?.typed()?)
    }

    /// The array of `key`, mapped writable (see [`MmapDict::array_mut`]).
    pub fn array_mut<T: Element>(&self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.dict.check_writable()?;
        let (entry, place) = self.array_place::<T>(key)?;
        let file = self.view()?.file();
        Ok(request(entry, place)
            .map_mut(file, &self.dict.maps)?
            .typed()?)
    }

    /// The live entry of `key` and where its plain array is, checked to hold elements `T`.
    fn array_place<T: Element>(&self, key: &str) -> Result<(&Entry, ArrayPlace), Error> {
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let place = self.locate_entry(entry)?.into_array(key, value_offset)?;
        check_element::<T>(key, &place.dtype, value_offset)?;
        Ok((entry, place))
    }

    /// The masked array of `key`, data and mask mapped read-only and typed (see
    /// [`MmapDict::masked`]).
    pub fn masked<T: Element>(&self, key: &str) -> Result<MaskedArray<T>, Error> {
        let entry = self.entry(key)?;
        let value_offset = entry.value_offset();
        let (data, mask) = self.locate_entry(entry)?.into_masked(key, value_offset)?;
        check_element::<T>(key, &data.dtype, value_offset)?;
        Ok(MaskedArray {
            data: self.map(entry, data)?.typed::<T>()?,
            mask: self.map(entry, mask)?.typed::<Bool>()?,
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

/// The map request of an array part of the value of `entry`.
fn request(entry: &Entry, place: ArrayPlace) -> MapRequest<'_> {
    MapRequest {
        key: entry.key(),
        value_offset: entry.value_offset(),
        place,
    }
}

/// A stored value as a [`Pickler`](crate::Pickler) sees it: its key, its bytes and place in
/// the file, and what the one classifier found it holds. Array bytes are read under a read
/// claim while it lives (no writable map of them in this process meanwhile).
#[derive(Debug)]
pub struct StoredValue<'s> {
    snapshot: &'s ReadSnapshot<'s>,
    entry: &'s Entry,
    bytes: &'s [u8],
    located: Located,
    _claim: Option<Claim>,
}

impl<'s> StoredValue<'s> {
    /// The first of the dict's picklers valid for this value: the one
    /// [`MmapDict::get`] reads it with.
    pub fn reader(&self) -> Result<&'s dyn Pickler, Error> {
        let picklers: &'s Picklers = &self.snapshot.dict.options.picklers;
        picklers.reader_of(self)
    }

    /// The key.
    pub fn key(&self) -> &str {
        self.entry.key()
    }

    /// The file offset of the value's first byte (the library's `offset`).
    pub fn offset(&self) -> u64 {
        self.entry.value_offset()
    }

    /// The value's length in bytes (the library's `length`).
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the value has no bytes (never, in a valid file).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The value's bytes: pickle opcodes without `PROTO`, `FRAME` and `STOP`.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// What the one classifier found the value holds, and where its parts are.
    pub fn located(&self) -> &Located {
        &self.located
    }

    /// The value decoded as a generic value, whatever it holds (see [`MmapDict::value`]).
    pub fn decode(&self) -> Result<Value, Error> {
        item::decode_any_value(self.bytes, self.entry, &self.snapshot.dict.options.limits)
    }

    /// Maps `place`, which must lie inside this value, read-only under the map claims.
    pub fn map_array(&self, place: ArrayPlace) -> Result<MappedBytes, Error> {
        let range = place.range();
        if range.start < self.offset() || range.end > self.offset() + self.len() {
            return Err(Error::new(
                ErrorKind::PlaceOutsideValue { range },
                self.offset(),
            ));
        }
        self.snapshot.map(self.entry, place)
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
