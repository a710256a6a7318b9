//! Reading: what a key holds, told apart from the head of its value, and maps of arrays.

use std::sync::Arc;

use mmappickle_array::{
    classify, ArrayHeader, Bool, DType, Element, FileValue, MappedArray, MappedArrayMut, ValueKind,
    ValueSource,
};
use mmappickle_codec::{decode_entry_value, Limits, Value};
use mmappickle_container::{Container, Entry};

use super::maps::MapRequest;
use super::{key_not_found, Item, MaskedArray, MaskedBytes, MmapDict};
use crate::error::{Error, ErrorKind};

/// [`MmapDict::get`] reads a value up to this long whole at once (one read) instead of its
/// head first: as long as the window in which the array layer reads a head.
pub(super) const SMALL_VALUE_LEN: u64 = 4096;

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
    ///     Item::Array(map) => {
    ///         assert_eq!(map.dtype().name(), "int32");
    ///         assert_eq!(map.shape(), [2, 2]);
    ///         assert_eq!(map.typed::<i32>()?.to_vec(), [1, 2, 3, 4]);
    ///     }
    ///     other => panic!("expected an array, found {other:?}"),
    /// }
    /// for entry in m.iter()? {
    ///     let (key, item) = entry?;
    ///     println!("{key}: {item:?}");
    /// }
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn get(&mut self, key: &str) -> Result<Item, Error> {
        let limits = self.options.limits.clone();
        let counter = Arc::clone(&self.maps);
        self.container
            .with_lock(|container| -> Result<Item, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                item_of(container, &entry, &limits, &counter)
            })
            .map_err(Error::from)?
    }

    /// Calls `visit` with every live key and what it holds, in file order, all read under
    /// one lock (so that they are of one moment, and read without a lock per key).
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
        &mut self,
        mut visit: impl FnMut(&str, Item) -> Result<(), E>,
    ) -> Result<Result<(), E>, Error> {
        let limits = self.options.limits.clone();
        let counter = Arc::clone(&self.maps);
        self.container
            .with_lock(|container| -> Result<Result<(), E>, Error> {
                let live: Vec<Entry> = container.table()?.live_entries().cloned().collect();
                for entry in &live {
                    let item = item_of(container, entry, &limits, &counter)?;
                    if let Err(error) = visit(entry.key(), item) {
                        return Ok(Err(error));
                    }
                }
                Ok(Ok(()))
            })
            .map_err(Error::from)?
    }

    /// The value of `key` decoded as a generic pickled value, whatever the entry holds: an
    /// array entry gives its expression tree (`reshape(fromstring(raw, dtype), shape)`),
    /// read whole into memory; prefer [`MmapDict::array`] for arrays.
    pub fn value(&mut self, key: &str) -> Result<Value, Error> {
        let limits = self.options.limits.clone();
        self.container
            .with_lock(|container| -> Result<Value, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                if let ValueKind::Malformed(error) = entry_kind(container.file(), &entry)? {
                    return Err(Error::array_at(error, entry.value_offset()));
                }
                let bytes = container.read_value(&entry)?;
                decode_entry_value(&bytes, &limits)
                    .map_err(|error| Error::codec_at(error, entry.value_offset()))
            })
            .map_err(Error::from)?
    }

    /// The value bytes of `key` as stored (pickle opcodes without `PROTO`, `FRAME` and
    /// `STOP`), for tools that disassemble them.
    pub fn raw_value(&mut self, key: &str) -> Result<Vec<u8>, Error> {
        self.container
            .with_lock(|container| -> Result<Vec<u8>, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                Ok(container.read_value(&entry)?)
            })
            .map_err(Error::from)?
    }

    /// The array of `key`, mapped read-only and typed: [`ErrorKind::NotAnArray`] when the key
    /// holds something else, [`ErrorKind::WrongElementType`] when its dtype is not `T`'s.
    pub fn array<T: Element>(&mut self, key: &str) -> Result<MappedArray<T>, Error> {
        let counter = Arc::clone(&self.maps);
        self.with_array::<T, _>(key, |container, request| {
            Ok(request.map(container, &counter)?.typed()?)
        })
    }

    /// The array of `key`, mapped writable: changes go straight to the file (and to every
    /// process mapping it). [`ErrorKind::ReadOnly`] on a read-only dict;
    /// [`ErrorKind::MapConflict`] while another map of the array lives in this process.
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
    /// writer.set(0, 9)?;
    /// drop(writer);
    /// assert_eq!(m.array::<u8>("a")?.to_vec(), [9, 2, 3]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn array_mut<T: Element>(&mut self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.check_writable()?;
        let counter = Arc::clone(&self.maps);
        self.with_array::<T, _>(key, |container, request| {
            Ok(request.map_mut(container, &counter)?.typed()?)
        })
    }

    /// The masked array of `key`, data and mask mapped read-only and typed.
    pub fn masked<T: Element>(&mut self, key: &str) -> Result<MaskedArray<T>, Error> {
        let counter = Arc::clone(&self.maps);
        self.container
            .with_lock(|container| -> Result<MaskedArray<T>, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                let value_offset = entry.value_offset();
                let ValueKind::Masked(header) = mappable_kind(container.file(), &entry)? else {
                    let key = key.to_owned();
                    return Err(Error::new(ErrorKind::NotMasked { key }, value_offset));
                };
                check_element::<T>(key, &header.data.dtype, value_offset)?;
                Ok(MaskedArray {
                    data: request(key, value_offset, header.data)
                        .map(container, &counter)?
                        .typed::<T>()?,
                    mask: request(key, value_offset, header.mask)
                        .map(container, &counter)?
                        .typed::<Bool>()?,
                })
            })
            .map_err(Error::from)?
    }

    /// Finds the plain array of `key`, checks its element type, and runs `map` on the
    /// container and where the array is, all under the lock (the region cannot move).
    fn with_array<T: Element, R>(
        &mut self,
        key: &str,
        map: impl FnOnce(&Container, MapRequest<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.container
            .with_lock(|container| -> Result<R, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                let value_offset = entry.value_offset();
                let ValueKind::Array(header) = mappable_kind(container.file(), &entry)? else {
                    let key = key.to_owned();
                    return Err(Error::new(ErrorKind::NotAnArray { key }, value_offset));
                };
                check_element::<T>(key, &header.dtype, value_offset)?;
                map(container, request(key, value_offset, header))
            })
            .map_err(Error::from)?
    }

    /// Every key with what it holds, in file order (each read under its own lock).
    pub fn iter(&mut self) -> Result<Iter<'_>, Error> {
        let keys = self.keys()?;
        Ok(Iter {
            dict: self,
            keys: keys.into_iter(),
        })
    }
}

/// Every key with what it holds: see [`MmapDict::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    dict: &'a mut MmapDict,
    keys: std::vec::IntoIter<String>,
}

impl Iterator for Iter<'_> {
    type Item = Result<(String, Item), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.keys.next()?;
        Some(self.dict.get(&key).map(|item| (key, item)))
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

/// What the live `entry` (of a locked `container`) holds: a small value is read once, whole,
/// and told apart from those bytes; a large one (maybe an array to map) only has its head
/// read first.
fn item_of(
    container: &mut Container,
    entry: &Entry,
    limits: &Limits,
    counter: &Arc<()>,
) -> Result<Item, Error> {
    let key = entry.key();
    let value_offset = entry.value_offset();
    // A small value is read once, whole, and told apart from those bytes; a
    // large one (maybe an array to map) only has its head read first.
    let small_value = if entry.value_len() <= SMALL_VALUE_LEN {
        Some(container.read_value(entry)?)
    } else {
        None
    };
    let kind = match &small_value {
        Some(bytes) => kind_of(&mut bytes.as_slice(), value_offset)?,
        None => entry_kind(container.file(), entry)?,
    };
    // The whole value: the small one already read, or a large one read now.
    let mut whole_value = |small_value: Option<Vec<u8>>| match small_value {
        Some(bytes) => Ok(bytes),
        None => container.read_value(entry),
    };
    Ok(match kind {
        ValueKind::Malformed(error) => return Err(Error::array_at(error, value_offset)),
        // A value that only starts like an array may still be an ordinary value;
        // if not, the array error says more.
        ValueKind::Generic { not_an_array } => {
            let bytes = whole_value(small_value)?;
            let value = decode_entry_value(&bytes, limits).map_err(|error| match not_an_array {
                Some(array_error) => Error::array_at(array_error, value_offset),
                None => Error::codec_at(error, value_offset),
            })?;
            Item::Value(value)
        }
        ValueKind::Array(header) => {
            Item::Array(request(key, value_offset, header).map(container, counter)?)
        }
        ValueKind::Masked(header) => Item::Masked(MaskedBytes {
            data: request(key, value_offset, header.data).map(container, counter)?,
            mask: request(key, value_offset, header.mask).map(container, counter)?,
        }),
    })
}

/// The one classifier's verdict on a value's bytes from any source (`value_offset` places its
/// errors in the file).
pub(super) fn kind_of<S: ValueSource + ?Sized>(
    source: &mut S,
    value_offset: u64,
) -> Result<ValueKind, Error> {
    classify(source).map_err(|error| Error::array_at(error, value_offset))
}

/// [`kind_of`] `entry`'s value, reading only its head from the file, never the raw data.
pub(crate) fn entry_kind(file: &std::fs::File, entry: &Entry) -> Result<ValueKind, Error> {
    let value_offset = entry.value_offset();
    kind_of(
        &mut FileValue::new(file, value_offset, entry.value_len()),
        value_offset,
    )
}

/// [`entry_kind`] for the typed readers: a malformed header, or a value that only starts like
/// an array expression, is the error.
fn mappable_kind(file: &std::fs::File, entry: &Entry) -> Result<ValueKind, Error> {
    match entry_kind(file, entry)? {
        ValueKind::Malformed(error)
        | ValueKind::Generic {
            not_an_array: Some(error),
        } => Err(Error::array_at(error, entry.value_offset())),
        kind => Ok(kind),
    }
}

/// Where an array part of the value of `key` at `value_offset` is.
fn request(key: &str, value_offset: u64, header: ArrayHeader) -> MapRequest<'_> {
    MapRequest {
        key,
        value_offset,
        header,
    }
}
