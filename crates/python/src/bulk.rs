//! Many values through one call of Python's pickler or unpickler: a batch's generic values
//! pickled by one `pickle.dumps` of their list, then split into one pickle per entry
//! (`NativeDict.insert_values`); a snapshot's entries joined into the pickle of one dict
//! that one `pickle.loads` reads (`NativeDict.joined_items`).

use std::any::Any;

use mmappickle::{
    split_list_pickle, GenericPickler, JoinedEntries, Located, ReadSnapshot, SplitList,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::picklers::{self, Found};

/// The whole pickles of values (what `pickle.dumps(value, 4)` gives, up to the memo).
pub(crate) struct Pickled {
    /// Those split out of one pickle of the list of all the values.
    split: Option<SplitList>,
    /// Those pickled alone, by position.
    alone: Vec<Option<Vec<u8>>>,
}

impl Pickled {
    /// Pickles `values` with one `pickle.dumps` of their list, split at the opcode level; a
    /// value that cannot be split out (it shares a self-referring structure with an earlier
    /// value) is pickled alone.
    pub(crate) fn new(py: Python<'_>, values: &Bound<'_, PyList>) -> PyResult<Self> {
        let dumps = py.import("pickle")?.getattr("dumps")?;
        let split = match values.len() {
            // CPython writes a list of one item otherwise; one pickle is as fast.
            0 | 1 => None,
            _ => {
                let stream = dumps.call1((values, 4))?.cast_into::<PyBytes>()?;
                let stream = stream.as_bytes();
                // Not a list as CPython's pickler writes it: a replaced `pickle.dumps`.
                py.detach(|| split_list_pickle(stream))
                    .ok()
                    .filter(|split| split.len() == values.len())
            }
        };
        let alone = values
            .iter()
            .enumerate()
            .map(
                |(item, value)| match split.as_ref().and_then(|split| split.get(item)) {
                    Some(_) => Ok(None),
                    None => {
                        let stream = dumps.call1((value, 4))?.cast_into::<PyBytes>()?;
                        Ok(Some(stream.as_bytes().to_vec()))
                    }
                },
            )
            .collect::<PyResult<_>>()?;
        Ok(Pickled { split, alone })
    }

    /// The pickle of value `item`.
    pub(crate) fn get(&self, item: usize) -> Option<&[u8]> {
        match self.alone.get(item)? {
            Some(stream) => Some(stream),
            None => self.split.as_ref()?.get(item),
        }
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
    for key in snapshot.keys()? {
        let value = snapshot.stored(&key)?;
        let reader: &dyn Any = value.reader()?;
        let generic = reader.is::<GenericPickler>() && matches!(value.located(), Located::Value(_));
        if generic && joined.push(&key, value.bytes()) {
            continue;
        }
        drop(value);
        joined.push_none(&key);
        let found = picklers::read_by_picklers(snapshot, &key)?;
        others.push((key, found));
    }
    Ok((joined.finish(), others))
}
