//! Reading: each read of `MmapDict` is a read snapshot of one read (`snapshot`, where what a
//! key holds is told apart and arrays are mapped).

use mmappickle_array::{Element, MappedArray, MappedArrayMut};
use mmappickle_codec::Value;

use super::{Iter, MmapDict};
use crate::error::Error;
use crate::item::{self, Item, MaskedArray};

impl MmapDict {
    /// What `key` holds: a generic value, a mapped array, or a mapped masked array.
    ///
    /// A generic value that holds numpy arrays pickled by numpy itself stays a
    /// [`Value`]; [`OwnedArray::from_value`](crate::OwnedArray::from_value) reads them.
    ///
    /// ```
    /// use mmappickle::{Item, MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("get.mmdpickle"))?;
    /// m.insert("name", "value")?;
    /// m.insert_array("grid", &[1i32, 2, 3, 4], &[2, 2])?;
    /// assert_eq!(m.get("name")?, Value::from("value"));
    /// match m.get("grid")? {
    ///     Item::Array(array) => {
    ///         assert_eq!(array.dtype().name(), "int32");
    ///         assert_eq!(array.shape(), [2, 2]);
    ///         assert_eq!(array.to_vec::<i32>()?, [1, 2, 3, 4]);
    ///     }
    ///     other => panic!("expected an array, found {other:?}"),
    /// }
    /// for entry in m.iter()? {
    ///     let (key, item) = entry?;
    ///     println!("{key}: {item:?}");
    /// }
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Result<Item, Error> {
        // A small generic value of an entry this handle has seen, in a file that shows no
        // change, is copied without the lock.
        let unlocked = self.with_unlocked_value(key, |value| {
            let mut bytes = vec![0; value.generic_len()?];
            value.copy_generic(&mut bytes).then(|| {
                item::decode_any_value(&bytes, value.entry(), &self.options.limits).map(Item::Value)
            })
        });
        match unlocked.flatten() {
            Some(item) => item,
            None => self.read()?.get(key),
        }
    }

    /// Calls `visit` with every live key and what it holds, in file order, all read from one
    /// snapshot (so that they are of one moment, and read without a lock per key).
    ///
    /// ```
    /// use mmappickle::{Item, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("each.mmdpickle"))?;
    /// m.insert("a", 1)?;
    /// m.insert_array("b", &[1u8, 2], &[2])?;
    /// let mut seen = Vec::new();
    /// m.for_each_item(|key, item| -> Result<(), std::convert::Infallible> {
    ///     seen.push((key.to_owned(), matches!(item, Item::Array(_))));
    ///     Ok(())
    /// })??;
    /// assert_eq!(seen, [("a".to_owned(), false), ("b".to_owned(), true)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_each_item<E>(
        &self,
        mut visit: impl FnMut(&str, Item) -> Result<(), E>,
    ) -> Result<Result<(), E>, Error> {
        let snapshot = self.read()?;
        for entry in snapshot.live_entries()? {
            let item = snapshot.item_of(entry)?;
            if let Err(error) = visit(entry.key(), item) {
                return Ok(Err(error));
            }
        }
        Ok(Ok(()))
    }

    /// The value of `key` decoded as a generic pickled value, whatever the entry holds: an
    /// array entry gives its expression tree (`reshape(fromstring(raw, dtype), shape)`),
    /// read whole into memory; prefer [`MmapDict::array`] for arrays.
    pub fn value(&self, key: &str) -> Result<Value, Error> {
        self.read()?.value(key)
    }

    /// The value bytes of `key` as stored (pickle opcodes without `PROTO`, `FRAME` and
    /// `STOP`), for tools that disassemble them.
    pub fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.read()?.raw_value(key)
    }

    /// The array of `key`, mapped read-only and typed: [`ErrorKind::NotAnArray`] when the key
    /// holds something else, [`ErrorKind::WrongElementType`] when its dtype is not `T`'s.
    ///
    /// [`ErrorKind::NotAnArray`]: crate::ErrorKind::NotAnArray
    /// [`ErrorKind::WrongElementType`]: crate::ErrorKind::WrongElementType
    pub fn array<T: Element>(&self, key: &str) -> Result<MappedArray<T>, Error> {
        self.read()?.array(key)
    }

    /// The array of `key`, mapped writable: changes go straight to the file (and to every
    /// process mapping it). [`ErrorKind::ReadOnly`] on a read-only dict;
    /// [`ErrorKind::MapConflict`] while another map of the array lives in this process
    /// (from any snapshot or handle).
    ///
    /// [`ErrorKind::ReadOnly`]: crate::ErrorKind::ReadOnly
    /// [`ErrorKind::MapConflict`]: crate::ErrorKind::MapConflict
    ///
    /// ```
    /// use mmappickle::{ErrorKind, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("conflict.mmdpickle"))?;
    /// m.insert_array("a", &[1u8, 2, 3], &[3])?;
    /// let reader = m.array::<u8>("a")?;
    /// let refused = m.array_mut::<u8>("a").unwrap_err();
    /// assert!(matches!(refused.kind(), ErrorKind::MapConflict { .. }));
    /// drop(reader);
    /// let mut writer = m.array_mut::<u8>("a")?;
    /// assert!(matches!(m.get("a").unwrap_err().kind(), ErrorKind::MapConflict { .. }));
    /// let r = m.read()?;
    /// assert!(matches!(r.array::<u8>("a").unwrap_err().kind(), ErrorKind::MapConflict { .. }));
    /// drop(r);
    /// writer.set(0, 9)?;
    /// drop(writer);
    /// assert_eq!(m.array::<u8>("a")?.to_vec(), [9, 2, 3]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn array_mut<T: Element>(&self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.check_writable()?;
        self.read()?.array_mut(key)
    }

    /// The masked array of `key`, data and mask mapped read-only and typed.
    pub fn masked<T: Element>(&self, key: &str) -> Result<MaskedArray<T>, Error> {
        self.read()?.masked(key)
    }

    /// Every key with what it holds, in file order, from one snapshot (the shared lock is
    /// held until the iterator is dropped).
    pub fn iter(&self) -> Result<Iter<'_>, Error> {
        self.read()?.into_iter_owned()
    }
}
