//! Many values through one call of Python's pickler or unpickler: a batch's generic values
//! that are not plain (`plain.rs`) pickled by one `pickle.dumps` of their list, then split
//! into one pickle per entry
//! (`NativeDict.insert_values`); a snapshot's entries joined into the pickle of one dict
//! that one `pickle.loads` reads (`NativeDict.joined_items`).

use mmappickle::{split_list_pickle, JoinedEntries, ReadSnapshot, SplitList};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use crate::picklers::{self, Found};
use crate::NewValue;

/// Values whose pickle is at least this long are pickled alone (a value of a batch's list
/// pickle is held twice, in the list's pickle and in its own, while the list is split).
const ALONE_LEN: usize = 64 << 10;

/// The whole pickles of values (what `pickle.dumps(value, 4)` gives, up to the memo).
pub(crate) struct Pickled {
    /// Those split out of one pickle of the list of all the others.
    split: Option<SplitList>,
    /// The values left out of that list (long strings and bytes), by index, in order.
    long: Vec<usize>,
    /// The values pickled alone (left out of the list, or not split out of it), by index,
    /// in order.
    alone: Vec<(usize, Py<PyBytes>)>,
}

impl Pickled {
    /// Pickles `values` (given as the list of all of them, to use as it is when it can):
    /// with one `pickle.dumps` of their list, split at the opcode level; a value that
    /// cannot be split out (it shares a self-referring structure with an earlier value) and
    /// a long string or bytes are pickled alone.
    pub(crate) fn new(py: Python<'_>, values: &Bound<'_, PyList>) -> PyResult<Self> {
        let dumps = py.import("pickle")?.getattr("dumps")?;
        let is_long = |value: &Bound<'_, PyAny>| {
            (value.is_instance_of::<PyBytes>()
                || value.is_instance_of::<PyString>()
                || value.is_instance_of::<PyByteArray>())
                && value.len().is_ok_and(|len| len >= ALONE_LEN)
        };
        let long: Vec<usize> = values
            .iter()
            .enumerate()
            .filter_map(|(index, value)| is_long(&value).then_some(index))
            .collect();
        let batched = values.len() - long.len();
        let split = match batched {
            // CPython writes a list of one item otherwise; one pickle is as fast.
            0 | 1 => None,
            _ => {
                let list = if long.is_empty() {
                    values.clone()
                } else {
                    let short = values
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| long.binary_search(index).is_err());
                    PyList::new(py, short.map(|(_, value)| value))?
                };
                let stream = dumps.call1((list, 4))?.cast_into::<PyBytes>()?;
                let stream = stream.as_bytes();
                // Not a list as CPython's pickler writes it: a replaced `pickle.dumps`.
                py.detach(|| split_list_pickle(stream))
                    .ok()
                    .filter(|split| split.len() == batched)
            }
        };
        let mut pickled = Pickled {
            split,
            long,
            alone: Vec::new(),
        };
        // Only the values pickled alone are taken from the list again.
        for index in 0..values.len() {
            if pickled.split_position(index).is_none() {
                let stream = dumps.call1((values.get_item(index)?, 4))?;
                pickled
                    .alone
                    .push((index, stream.cast_into::<PyBytes>()?.unbind()));
            }
        }
        Ok(pickled)
    }

    /// Where value `index` is in the split list, if it was split out of it.
    fn split_position(&self, index: usize) -> Option<usize> {
        let long_before = self.long.binary_search(&index).err()?;
        let position = index - long_before;
        self.split.as_ref()?.get(position).map(|_| position)
    }

    /// What stores value `item` as `key`: its item of the split list, or its own pickle.
    pub(crate) fn new_value<'a>(
        &'a self,
        py: Python<'a>,
        item: usize,
        key: &'a str,
    ) -> Option<NewValue<'a>> {
        if let Ok(at) = self.alone.binary_search_by_key(&item, |(index, _)| *index) {
            let stream = self.alone.get(at)?.1.as_bytes(py);
            return Some(NewValue::Pickle { key, stream });
        }
        Some(NewValue::Split {
            key,
            split: self.split.as_ref()?,
            item: self.split_position(item)?,
        })
    }
}

/// Keys in one string (one allocation, where a `String` each is one per key): a batch's, or
/// a listing's.
pub(crate) struct Keys {
    all: String,
    /// Where each key ends in `all` (the next one starts there).
    ends: Vec<usize>,
}

impl Keys {
    /// The keys of `keys` (about `len` of them), each a `str` (`TypeError` otherwise).
    pub(crate) fn new<'py>(
        keys: impl Iterator<Item = Bound<'py, PyAny>>,
        len: usize,
    ) -> PyResult<Self> {
        let mut all = Vec::new();
        let mut ends = Vec::with_capacity(len);
        for key in keys {
            let Ok(key) = key.cast::<PyString>() else {
                let type_name = key.get_type().name()?;
                return Err(PyTypeError::new_err(format!(
                    "keys are str, not {type_name}"
                )));
            };
            all.extend_from_slice(key.encode_utf8()?.as_bytes());
            ends.push(all.len());
        }
        // Pieces of UTF-8 make UTF-8: this never fails.
        let all = String::from_utf8(all)
            .map_err(|error| PyValueError::new_err(format!("keys not in UTF-8: {error}")))?;
        Ok(Keys { all, ends })
    }

    /// The keys of `keys`, as they are.
    pub(crate) fn of_strs<'k>(keys: impl Iterator<Item = &'k str>) -> Self {
        let mut joined = Keys {
            all: String::new(),
            ends: Vec::new(),
        };
        for key in keys {
            joined.all.push_str(key);
            joined.ends.push(joined.all.len());
        }
        joined
    }

    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Key `index` ("" past the end).
    pub(crate) fn get(&self, index: usize) -> &str {
        let start = index
            .checked_sub(1)
            .and_then(|before| self.ends.get(before))
            .copied()
            .unwrap_or(0);
        let end = self.ends.get(index).copied().unwrap_or(start);
        self.all.get(start..end).unwrap_or_default()
    }
}

/// One pickle of the dict of every live key of `snapshot`, in file order, with its value:
/// the generic values that stand alone as they are, the others `None`; and those others,
/// by key, as the handle's picklers found them.
#[allow(clippy::type_complexity)]
pub(crate) fn joined_items(
    snapshot: &ReadSnapshot<'_>,
) -> Result<(Vec<u8>, Vec<(String, Found)>), mmappickle::Error> {
    let mut joined = JoinedEntries::new();
    let mut others = Vec::new();
    for value in snapshot.generic_value_bytes()? {
        let (key, generic) = value?;
        if generic.is_some_and(|bytes| joined.push(key, bytes)) {
            continue;
        }
        joined.push_none(key);
        let value = snapshot.stored(key)?;
        let found = picklers::read_by(snapshot, &value, value.reader()?)?;
        others.push((key.to_owned(), found));
    }
    Ok((joined.finish(), others))
}
