//! `mmappickle._native`: the Rust half of the Python package `mmappickle` (distribution
//! `mmappickle-rs`), a drop-in for Python's `mmappickle` 1.0.
//!
//! Everything the file format needs happens here, through the [`mmappickle`] facade: opening,
//! locking, the entry table, framing values pickled by Python's `pickle`, writing arrays,
//! finding where an array's bytes are, vacuum, fsck, and the safe decoding of values that
//! never runs Python's unpickler. The Python half (`python/mmappickle/`) is glue: the
//! `mmapdict` class, `numpy.memmap` construction, `pickle.dumps` / `loads` calls.
//!
//! Built by maturin (`pip install ./crates/python`) as one abi3 wheel for CPython >= 3.9;
//! tested by the pytest suite under `crates/python/tests`, which `cargo xtask test` runs.

#![deny(missing_docs)]

mod bulk;
mod errors;
mod picklers;
mod plain;
mod records;
mod remote;
mod safe;
mod scalars;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::ThreadId;

use mmappickle::{
    ArrayEncoding, EmptyArray, EncodedValue, Located, MmapDict, SplitList, ValueWriter,
};
use pyo3::exceptions::{PyAttributeError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::{PyOnceLock, RwLockExt};
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};

use crate::errors::{not_writable, to_py_err, UnsafeValueError};
use crate::picklers::Found;
use crate::records::{
    ArrayBytes, ArrayPlace, EntrySummary, GenericValue, MaskedArrayBytes, MaskedPlace, NewArray,
    NewMasked, NewPickle, NewStub, NewWritten, RemoteArray,
};

/// An open mmappickle file (the `mmapdict` class of the Python half wraps one).
///
/// Reads share the handle (`MmapDict` reads take `&self` and it is `Sync`): each takes a read
/// guard and runs with the Python runtime detached, so reads of several Python threads run
/// side by side. Changes take the write guard (`&mut MmapDict`).
#[pyclass(module = "mmappickle._native", frozen)]
struct NativeDict {
    /// `None` once closed.
    dict: RwLock<Option<MmapDict>>,
    /// The thread that holds the write guard, if any: a read or a change that thread asks
    /// for (from a callback of its own change) is an error, not a deadlock.
    writer: Mutex<Option<ThreadId>>,
    /// The encoding of arrays and stubs written.
    encoding: ArrayEncoding,
    /// Reads running now, and the most that ever ran at once (see `parallel_reads`).
    reads_now: AtomicUsize,
    reads_peak: AtomicUsize,
}

fn closed() -> PyErr {
    PyValueError::new_err("I/O operation on a closed mmapdict")
}

fn poisoned() -> PyErr {
    PyValueError::new_err("mmapdict poisoned by a panic")
}

/// The error of an insert or a write whose writer may have raised: the Python exception first.
fn insert_result<R>(inserted: PyResult<R>, python_error: Option<PyErr>) -> PyResult<R> {
    match (inserted, python_error) {
        (Err(_), Some(error)) => Err(error),
        (inserted, _) => inserted,
    }
}

/// Counts a read while it runs.
struct ReadCount<'a>(&'a NativeDict);

impl<'a> ReadCount<'a> {
    fn begin(native: &'a NativeDict) -> Self {
        let now = native.reads_now.fetch_add(1, Ordering::SeqCst) + 1;
        native.reads_peak.fetch_max(now, Ordering::SeqCst);
        ReadCount(native)
    }
}

impl Drop for ReadCount<'_> {
    fn drop(&mut self) {
        self.0.reads_now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The write guard of a change; the thread that holds it is remembered meanwhile.
struct WriteGuard<'a> {
    native: &'a NativeDict,
    guard: RwLockWriteGuard<'a, Option<MmapDict>>,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut writer) = self.native.writer.lock() {
            *writer = None;
        }
    }
}

impl WriteGuard<'_> {
    fn dict(&mut self) -> PyResult<&mut MmapDict> {
        self.guard.as_mut().ok_or_else(closed)
    }
}

impl NativeDict {
    /// Refuses a use of the handle by the thread that is changing it (a callback of the
    /// change, such as a pickler's `write`, that reads the dict).
    fn check_not_reentrant(&self) -> PyResult<()> {
        let writer = self.writer.lock().map_err(|_| poisoned())?;
        if *writer == Some(std::thread::current().id()) {
            return Err(PyRuntimeError::new_err(
                "the mmapdict is used from inside one of its own changes (a callback of it)",
            ));
        }
        Ok(())
    }

    /// The read guard, waited for with the Python runtime detached.
    fn read_guard(&self, py: Python<'_>) -> PyResult<RwLockReadGuard<'_, Option<MmapDict>>> {
        self.check_not_reentrant()?;
        self.dict.read_py_attached(py).map_err(|_| poisoned())
    }

    /// The write guard, waited for with the Python runtime detached.
    fn write_guard(&self, py: Python<'_>) -> PyResult<WriteGuard<'_>> {
        self.check_not_reentrant()?;
        let guard = self.dict.write_py_attached(py).map_err(|_| poisoned())?;
        *self.writer.lock().map_err(|_| poisoned())? = Some(std::thread::current().id());
        Ok(WriteGuard {
            native: self,
            guard,
        })
    }

    /// Runs the read `operation` with the Python runtime detached: other Python threads run
    /// meanwhile, and so do their reads of this handle.
    fn read<R: Send>(
        &self,
        py: Python<'_>,
        operation: impl FnOnce(&MmapDict) -> Result<R, mmappickle::Error> + Send,
    ) -> PyResult<R> {
        let guard = self.read_guard(py)?;
        let dict = guard.as_ref().ok_or_else(closed)?;
        py.detach(|| {
            let _count = ReadCount::begin(self);
            operation(dict)
        })
        // A Python pickler's exception is raised as it was raised.
        .map_err(|error| picklers::take_failure().unwrap_or_else(|| to_py_err(error)))
    }

    /// Runs the change `operation`, the Python runtime attached (it may call Python).
    ///
    /// The file's lock is waited for first, detached: another handle of the file may hold it
    /// across Python code (its own change calling a pickler, a `locked` callback) that needs
    /// the runtime to finish and release it. The operation then reuses the lock held.
    fn change<R>(
        &self,
        py: Python<'_>,
        operation: impl FnOnce(&mut MmapDict) -> Result<R, mmappickle::Error>,
    ) -> PyResult<R> {
        let mut guard = self.write_guard(py)?;
        let dict = guard.dict()?;
        if dict.is_readonly() {
            // Refused without a lock (io.UnsupportedOperation, as the library raises).
            return operation(dict).map_err(to_py_err);
        }
        let mut held = py.detach(|| dict.hold_lock()).map_err(to_py_err)?;
        operation(&mut held).map_err(to_py_err)
    }

    /// Runs the change `operation` with the Python runtime detached (long changes).
    fn change_detached<R: Send>(
        &self,
        py: Python<'_>,
        operation: impl FnOnce(&mut MmapDict) -> Result<R, mmappickle::Error> + Send,
    ) -> PyResult<R> {
        let mut guard = self.write_guard(py)?;
        let dict = guard.dict()?;
        py.detach(|| operation(dict)).map_err(to_py_err)
    }
}

/// A value of a batch ([`NativeDict::store`]), checked before the batch begins.
enum NewValue<'a> {
    /// Written by [`plain::write_plain`].
    Plain {
        key: &'a str,
        value: EncodedValue<'a>,
    },
    Pickle {
        key: &'a str,
        stream: &'a [u8],
    },
    /// Item `item` of a batch's list pickle, split.
    Split {
        key: &'a str,
        split: &'a SplitList,
        item: usize,
    },
    Array(&'a NewArray),
    Masked(&'a NewMasked, &'a [u8], &'a [u8]),
    Stub(&'a NewStub),
    Written(&'a NewWritten),
}

impl NewValue<'_> {
    /// The length of its pickle, if it has one (about its value's length in the file).
    fn pickle_len(&self) -> usize {
        match self {
            NewValue::Plain { value, .. } => value.as_bytes().len(),
            NewValue::Pickle { stream, .. } => stream.len(),
            NewValue::Split { split, item, .. } => split.get(*item).map_or(0, <[u8]>::len),
            _ => 0,
        }
    }

    fn key(&self) -> &str {
        match self {
            NewValue::Plain { key, .. }
            | NewValue::Pickle { key, .. }
            | NewValue::Split { key, .. } => key,
            NewValue::Array(new) => &new.key,
            NewValue::Masked(new, ..) => &new.key,
            NewValue::Stub(new) => &new.key,
            NewValue::Written(new) => &new.key,
        }
    }
}

/// The result of a Python callback of a change as an I/O result: a Python exception it
/// raised is kept in `python_error` (and becomes the change's error).
fn kept<R>(result: PyResult<R>, python_error: &mut Option<PyErr>) -> std::io::Result<R> {
    result.map_err(|error| {
        let message = error.to_string();
        *python_error = Some(error);
        std::io::Error::other(message)
    })
}

#[pymethods]
impl NativeDict {
    /// Opens `path` (read-write creates it; a plain pickle of a dict is converted).
    #[new]
    #[pyo3(signature = (path, readonly, portable, allow_damaged, picklers=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        readonly: bool,
        portable: bool,
        allow_damaged: bool,
        picklers: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Self> {
        let encoding = if portable {
            ArrayEncoding::Portable
        } else {
            ArrayEncoding::Compatible
        };
        let mut options = MmapDict::options()
            .readonly(readonly)
            .encoding(encoding)
            .allow_damaged(allow_damaged);
        if let Some(picklers) = picklers {
            options = options.picklers(picklers::facade_picklers(&picklers)?);
        }
        let dict = py.detach(|| options.open(&path)).map_err(to_py_err)?;
        Ok(NativeDict {
            dict: RwLock::new(Some(dict)),
            writer: Mutex::new(None),
            encoding,
            reads_now: AtomicUsize::new(0),
            reads_peak: AtomicUsize::new(0),
        })
    }

    /// The path the file was opened with, as a `str` (a `PathBuf` would import `pathlib`).
    fn path(&self, py: Python<'_>) -> PyResult<OsString> {
        self.read(py, |dict| Ok(dict.path().as_os_str().to_owned()))
    }

    /// Whether the file was opened read-only.
    fn readonly(&self, py: Python<'_>) -> PyResult<bool> {
        self.read(py, |dict| Ok(dict.is_readonly()))
    }

    /// Whether the dict was closed.
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.read_guard(py)?.is_none())
    }

    /// Closes the file (later operations raise `ValueError`).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        *self.write_guard(py)?.guard = None;
        Ok(())
    }

    /// The most reads of this handle that ever ran at the same time (the Python runtime
    /// detached during each): a diagnostic of parallel reads.
    fn parallel_reads(&self) -> usize {
        self.reads_peak.load(Ordering::SeqCst)
    }

    /// The live keys in file order.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let keys = self.read(py, |dict| Ok(bulk::Keys::of_strs(dict.read()?.key_strs()?)))?;
        PyList::new(py, (0..keys.len()).map(|index| keys.get(index)))
    }

    /// The number of live keys.
    fn len(&self, py: Python<'_>) -> PyResult<usize> {
        self.read(py, |dict| dict.len())
    }

    /// Whether `key` is live.
    fn contains(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.read(py, |dict| dict.contains_key(key))
    }

    /// The commit number in the file's header.
    fn commit_number(&self, py: Python<'_>) -> PyResult<i32> {
        self.read(py, |dict| dict.commit_number())
    }

    /// Writes the commit number.
    fn set_commit_number(&self, py: Python<'_>, commit_number: i32) -> PyResult<()> {
        self.change(py, |dict| dict.set_commit_number(commit_number))
    }

    /// Deletes `key`; returns whether it was there.
    fn remove(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.change(py, |dict| dict.remove(key))
    }

    /// Removes deleted entries: `(removed entries, length before, length after)`.
    fn vacuum(&self, py: Python<'_>) -> PyResult<(usize, u64, u64)> {
        self.change_detached(py, |dict| {
            let report = dict.vacuum()?;
            Ok((report.removed_entries, report.len_before, report.len_after))
        })
    }

    /// Repairs a damaged file: `(kept entries, dropped bytes, dropped key or None)`.
    fn fsck(&self, py: Python<'_>) -> PyResult<(usize, u64, Option<String>)> {
        self.change_detached(py, |dict| {
            let report = dict.fsck()?;
            Ok((
                report.kept_entries,
                report.dropped_bytes,
                report.dropped_key,
            ))
        })
    }

    /// Where the file's end is torn (`None` when it is not): a read-only handle reads the
    /// complete entries; a read-write one repaired the tail at its open.
    fn torn_at(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.read(py, |dict| dict.torn_at())
    }

    /// Calls `callback()` while this handle holds the file's exclusive lock (a batch with no
    /// change, dropped without a commit), and returns what it returns: the Python half
    /// rewrites a file opened from a file object in place under it. The handle reads the
    /// file's table again at its next operation.
    fn locked(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.change(py, |dict| {
            let transaction = dict.transaction()?;
            let result = callback.call0().map(Bound::unbind);
            drop(transaction);
            Ok(result)
        })?
    }

    /// What `key` holds, as the first of the handle's picklers valid for it reads it: a
    /// `GenericValue`, an `ArrayPlace` or a `MaskedPlace` for the built-in kinds, the value
    /// itself for a pickler written for the library.
    fn locate(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        let found = self.read(py, |dict| picklers::read_by_picklers(&dict.read()?, key))?;
        found_record(py, found)
    }

    /// The value of `key` (`pickle.loads` of its bytes) when it is a small generic value this
    /// handle has seen, copied without the lock from a file that shows no change (see the
    /// facade's `MmapDict::with_unlocked_value`); otherwise, or when `key` is not a `str`, the
    /// module's `UNREAD`: `locate` reads it under the lock (and says what is wrong).
    fn unlocked_get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let unread = || Ok(unread_sentinel(py)?.clone_ref(py));
        let Some(key) = key
            .cast::<PyString>()
            .ok()
            .and_then(|key| key.to_cow().ok())
        else {
            return unread();
        };
        // Held by a change (maybe of this thread, from a callback), closed, or poisoned:
        // the locked path waits, or says so.
        let Ok(guard) = self.dict.try_read() else {
            return unread();
        };
        let Some(dict) = guard.as_ref() else {
            return unread();
        };
        // Allocating a `bytes` runs no Python code (it is not tracked by the collector).
        let copied = dict.with_unlocked_value(&key, |value| -> PyResult<Option<_>> {
            let Some(len) = value.generic_len() else {
                return Ok(None);
            };
            if len <= SCALAR_MAX {
                let mut buffer = [0; SCALAR_MAX];
                let copied = value.copy_generic(&mut buffer[..len]);
                return Ok(copied.then_some(Copied::Short(buffer, len)));
            }
            let (pickle, copied) =
                records::value_pickle_with(py, len, |buffer| value.copy_generic(buffer))?;
            Ok(copied.then_some(Copied::Pickle(pickle)))
        });
        // `pickle.loads` may run any Python code, this dict's methods too: not under the guard.
        drop(guard);
        let pickle = match copied.transpose()?.flatten() {
            Some(Copied::Short(buffer, len)) => {
                let value_bytes = &buffer[..len];
                if let Some(value) = scalars::scalar_value(py, value_bytes) {
                    return value;
                }
                records::value_pickle(py, value_bytes)?
            }
            Some(Copied::Pickle(pickle)) => pickle,
            None => return unread(),
        };
        pickle_loads(py)?.call1(py, (pickle,))
    }

    /// Where the array or masked array of `key` is (an `ArrayPlace` or a `MaskedPlace`, as
    /// `locate` gives them) when this handle has seen it, found without the lock in a file
    /// that shows no change (see the facade's `UnlockedValue::locate_array`); `None`
    /// otherwise: `locate` finds it under the lock.
    fn unlocked_locate(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyAny>>> {
        let Ok(guard) = self.dict.try_read() else {
            return Ok(None);
        };
        let located = guard.as_ref().and_then(|dict| {
            dict.with_unlocked_value(key, |value| Some((value.locate_array()?, value.file_id())))
        });
        drop(guard);
        let found = match located.flatten() {
            Some((Located::Array(place), file_id)) => Found::Array(place, file_id),
            Some((Located::Masked { data, mask }, file_id)) => Found::Masked(data, mask, file_id),
            _ => return Ok(None),
        };
        found_record(py, found).map(Some)
    }

    /// Every live key with what it holds (as `locate`), in file order, all from one read
    /// snapshot of the file (one shared lock).
    fn locate_all(&self, py: Python<'_>) -> PyResult<Vec<(String, Py<PyAny>)>> {
        let found = self.read(py, |dict| {
            let snapshot = dict.read()?;
            snapshot
                .keys()?
                .into_iter()
                .map(|key| Ok((picklers::read_by_picklers(&snapshot, &key)?, key)))
                .collect::<Result<Vec<_>, mmappickle::Error>>()
        })?;
        found
            .into_iter()
            .map(|(found, key)| Ok((key, found_record(py, found)?)))
            .collect()
    }

    /// `(live keys, file length, the first `limit` live entries)`, from one snapshot: what a
    /// notebook shows (no array's data is mapped or read).
    fn summary(&self, py: Python<'_>, limit: usize) -> PyResult<(usize, u64, Vec<EntrySummary>)> {
        self.read(py, |dict| {
            let snapshot = dict.read()?;
            // The state `snapshot` sees: its shared lock is held meanwhile.
            let listing = dict.listing_without_kinds()?;
            let value_bytes = |_: &str, place: &_| Ok(snapshot.value_bytes_at(place)?.to_vec());
            records::summary(&listing, limit, |key| snapshot.locate(key), value_bytes)
        })
    }

    /// Writes whole rows of the plain array of `key` from row `start`: `length` bytes of
    /// `dtype` (C order) that `write_raw(fd, offset, length)` writes itself into the rows'
    /// place in the file (`os.pwrite` from the caller's buffer: no copy, the Python runtime
    /// released while it writes), under the file's shared lock (no vacuum and no replace of
    /// the key meanwhile); the lock is waited for with the Python runtime detached.
    fn write_rows(
        &self,
        py: Python<'_>,
        key: &str,
        start: usize,
        dtype: &str,
        length: usize,
        write_raw: Py<PyAny>,
    ) -> PyResult<()> {
        let dtype = records::parse_dtype(dtype)?;
        let mut python_error = None;
        let written = self.read(py, |dict| {
            dict.write_rows_in_place(key, start, &dtype, length, |file, offset, len| {
                use std::os::fd::AsRawFd;
                Python::attach(|py| {
                    let called = write_raw.call1(py, (file.as_raw_fd(), offset, len));
                    kept(called.map(drop), &mut python_error)
                })
            })
        });
        insert_result(written, python_error)
    }

    /// Stores many values in one batch (one lock, one commit: all of them or, on an error,
    /// none): each a `NewPickle`, `NewArray`, `NewMasked`, `NewStub` or `NewWritten`.
    fn insert_many(&self, py: Python<'_>, values: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let records = values
            .iter()
            .map(Record::of)
            .collect::<PyResult<Vec<_>>>()?;
        let new_values = records.iter().map(|record| record.new_value(py)).collect();
        self.store(py, new_values)
    }

    /// Stores `values[i]` under `keys[i]` (a `str`), or with `values` `None` the items of
    /// the dict `keys` (read from it: no lists are made of them), in order and in one batch
    /// (as `insert_many`): a value whose type is one of `special_types` as the record
    /// `new_record(key, value)` makes (an array, a stub...), the others as generic values:
    /// plain ones written here ([`plain::write_plain`]), the rest pickled by one
    /// `pickle.dumps` of their list.
    fn insert_values(
        &self,
        py: Python<'_>,
        keys: Bound<'_, PyAny>,
        values: Option<Bound<'_, PyList>>,
        special_types: Vec<Bound<'_, PyType>>,
        new_record: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (keys, values) = match values {
            None => {
                let dict = keys.cast::<PyDict>()?;
                let mut values = Vec::with_capacity(dict.len());
                let pairs = dict.iter().map(|(key, value)| {
                    values.push(value);
                    key
                });
                (bulk::Keys::new(pairs, dict.len())?, values)
            }
            Some(values) => {
                let keys = keys.cast::<PyList>()?;
                let keys = bulk::Keys::new(keys.iter(), keys.len())?;
                (keys, values.iter().collect::<Vec<_>>())
            }
        };
        if keys.len() != values.len() {
            return Err(PyValueError::new_err(format!(
                "{} keys for {} values",
                keys.len(),
                values.len()
            )));
        }
        if keys.is_empty() {
            return Ok(());
        }
        if self.read(py, |dict| Ok(dict.is_readonly()))? {
            return Err(not_writable());
        }
        // Each value goes in as a plain value written here, by Python's pickler, or (a value
        // of a special type, usually none) as the record `new_record` makes of it.
        enum Way {
            Plain(usize),
            Pickled(usize),
            Special(usize),
        }
        let mut plain = ValueWriter::with_capacity(32 * values.len(), values.len());
        let (mut seen, mut to_pickle, mut special) = (Vec::new(), Vec::new(), Vec::new());
        let mut ways = Vec::with_capacity(values.len());
        for (index, value) in values.into_iter().enumerate() {
            let value_type = value.get_type();
            if special_types.iter().any(|special| value_type.is(special)) {
                ways.push(Way::Special(special.len()));
                special.push((index, value));
            } else if let Some(written) = plain::write_plain(&mut plain, &value, &mut seen) {
                ways.push(Way::Plain(written));
            } else {
                ways.push(Way::Pickled(to_pickle.len()));
                to_pickle.push(value);
            }
        }
        let pickled = bulk::Pickled::new(py, &PyList::new(py, to_pickle)?)?;
        let made = special
            .iter()
            .map(|(index, value)| new_record.call1((keys.get(*index), value)))
            .collect::<PyResult<Vec<_>>>()?;
        let records = made.iter().map(Record::of).collect::<PyResult<Vec<_>>>()?;
        // Every value has its record (a missing one would silently drop its key).
        let new_values = ways
            .iter()
            .enumerate()
            .map(|(index, way)| {
                let key = keys.get(index);
                match *way {
                    Way::Plain(written) => plain
                        .get(written)
                        .map(|value| NewValue::Plain { key, value }),
                    Way::Pickled(item) => pickled.new_value(py, item, key),
                    Way::Special(record) => records.get(record).map(|record| record.new_value(py)),
                }
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PyRuntimeError::new_err("a value of the batch was not pickled"))?;
        self.store(py, new_values)
    }

    /// One pickle of the dict of every live key, in file order, with its value (generic
    /// values that stand alone; `None` for the others), for one `pickle.loads`; and those
    /// others as `(key, what locate gives)`; all from one read snapshot of the file.
    #[allow(clippy::type_complexity)]
    fn joined_items<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<(String, Py<PyAny>)>)> {
        let (stream, others) = self.read(py, |dict| bulk::joined_items(&dict.read()?))?;
        let others = others
            .into_iter()
            .map(|(key, found)| Ok((key, found_record(py, found)?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((PyBytes::new(py, &stream), others))
    }
}

impl NativeDict {
    /// Stores `new_values` in one batch (one lock, one commit: all of them or, on an error,
    /// none).
    fn store(&self, py: Python<'_>, new_values: Vec<NewValue<'_>>) -> PyResult<()> {
        let mut python_error = None;
        let encoding = self.encoding;
        let inserted = self.change(py, |dict| {
            dict.write(|tx| {
                tx.expect_keys(new_values.iter().map(NewValue::key));
                tx.expect_value_bytes(new_values.iter().map(NewValue::pickle_len).sum());
                for value in new_values {
                    match value {
                        NewValue::Plain { key, value } => tx.insert_encoded(key, value)?,
                        NewValue::Pickle { key, stream } => tx.insert_pickle(key, stream)?,
                        NewValue::Split { key, split, item } => {
                            if !tx.insert_split(key, split, item)? {
                                let missing = "a value of the batch was not split out";
                                return Err(std::io::Error::other(missing).into());
                            }
                        }
                        NewValue::Array(new) => {
                            let write_raw = new.write_raw.bind(py);
                            tx.insert_array_in_place(
                                &new.key,
                                &new.dtype,
                                &new.shape,
                                |file, offset, len| {
                                    use std::os::fd::AsRawFd;
                                    let called = write_raw.call1((file.as_raw_fd(), offset, len));
                                    kept(called.map(drop), &mut python_error)
                                },
                            )?
                        }
                        NewValue::Masked(new, data, mask) => {
                            tx.insert_masked_bytes(&new.key, &new.dtype, &new.shape, data, mask)?
                        }
                        NewValue::Stub(new) => {
                            let stub = EmptyArray::with_dtype(new.dtype.clone(), &new.shape)
                                .encoding(encoding);
                            tx.insert_stub(&new.key, stub)?
                        }
                        NewValue::Written(new) => {
                            let write = new.write.bind(py);
                            tx.insert_written(&new.key, |file, offset, memo_start| {
                                use std::os::fd::AsRawFd;
                                let called = write
                                    .call1((file.as_raw_fd(), offset, memo_start))
                                    .and_then(|result| result.extract::<(u64, i32)>());
                                kept(called, &mut python_error)
                            })?
                        }
                    }
                }
                Ok(())
            })
        });
        insert_result(inserted, python_error)
    }
}

/// A record of [`NativeDict::insert_many`], borrowed from its Python object.
enum Record<'a> {
    Pickle(&'a NewPickle),
    Array(&'a NewArray),
    Masked(&'a NewMasked),
    Stub(&'a NewStub),
    Written(&'a NewWritten),
}

/// The record of what a pickler found: a `GenericValue`, an `ArrayPlace`, a `MaskedPlace`,
/// or the value a Python pickler read.
fn found_record(py: Python<'_>, found: Found) -> PyResult<Py<PyAny>> {
    match found {
        Found::Generic {
            offset,
            bytes,
            holds_array,
        } => Ok(Py::new(py, GenericValue::new(py, offset, &bytes, holds_array)?)?.into_any()),
        Found::Array(place, file_id) => {
            Ok(Py::new(py, ArrayPlace::new(place, file_id))?.into_any())
        }
        Found::Masked(data, mask, file_id) => {
            let data = Py::new(py, ArrayPlace::new(data, file_id))?;
            let mask = Py::new(py, ArrayPlace::new(mask, file_id))?;
            Ok(Py::new(py, MaskedPlace { data, mask })?.into_any())
        }
        Found::Read(value) => Ok(value),
    }
}

impl<'a> Record<'a> {
    /// The record `value` is: a `NewPickle`, `NewArray`, `NewMasked`, `NewStub` or
    /// `NewWritten`.
    fn of(value: &'a Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(record) = value.cast::<NewPickle>() {
            Ok(Record::Pickle(record.get()))
        } else if let Ok(record) = value.cast::<NewArray>() {
            Ok(Record::Array(record.get()))
        } else if let Ok(record) = value.cast::<NewMasked>() {
            Ok(Record::Masked(record.get()))
        } else if let Ok(record) = value.cast::<NewStub>() {
            Ok(Record::Stub(record.get()))
        } else if let Ok(record) = value.cast::<NewWritten>() {
            Ok(Record::Written(record.get()))
        } else {
            Err(PyTypeError::new_err(format!(
                "insert_many takes NewPickle, NewArray, NewMasked, NewStub or NewWritten \
                 records, not {}",
                value.get_type()
            )))
        }
    }

    /// The value the record stores, its bytes borrowed.
    fn new_value(&self, py: Python<'a>) -> NewValue<'a> {
        match *self {
            Record::Pickle(new) => NewValue::Pickle {
                key: &new.key,
                stream: new.stream.as_bytes(py),
            },
            Record::Array(new) => NewValue::Array(new),
            Record::Masked(new) => {
                NewValue::Masked(new, new.data.as_bytes(py), new.mask.as_bytes(py))
            }
            Record::Stub(new) => NewValue::Stub(new),
            Record::Written(new) => NewValue::Written(new),
        }
    }
}

/// The value bytes `(bytes, memo_max)` of the pickle `stream` for an entry whose memo indices
/// start at `memo_start` (the Python library's `BasePickler._pickle_dump_fix`).
#[pyfunction]
fn entry_value<'py>(
    py: Python<'py>,
    stream: &[u8],
    memo_start: u32,
) -> PyResult<(Bound<'py, PyBytes>, u32)> {
    let (bytes, memo_max) = mmappickle::entry_value_from_pickle(stream, memo_start)
        .map_err(|error| PyValueError::new_err(error.to_string()))?;
    Ok((PyBytes::new(py, &bytes), memo_max))
}

/// The whole pickle of an entry's value bytes (`PROTO 4`, the bytes, `STOP`): what
/// `pickle.loads` reads (the Python library's `BasePickler._pickle_load_fix`).
#[pyfunction]
fn value_pickle<'py>(py: Python<'py>, value_bytes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    records::value_pickle(py, value_bytes)
}

/// Whether the file at `path` starts with the mmappickle header (a plain pickle does not).
#[pyfunction]
fn is_container(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
    py.detach(|| MmapDict::is_container(&path))
        .map_err(to_py_err)
}

/// Values of up to this many bytes are copied to the stack, where a scalar's is decoded
/// without an unpickler (see `scalars`).
const SCALAR_MAX: usize = 64;

/// A small value copied without the lock: short bytes, or the whole pickle of a longer one.
enum Copied<'py> {
    Short([u8; SCALAR_MAX], usize),
    Pickle(Bound<'py, PyBytes>),
}

/// `unlocked_get`'s answer for a value it did not read: a unique object.
fn unread_sentinel(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static UNREAD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    UNREAD.get_or_try_init(py, || {
        Ok(py.import("builtins")?.getattr("object")?.call0()?.unbind())
    })
}

/// `pickle.loads`.
fn pickle_loads(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOADS.get_or_try_init(py, || Ok(py.import("pickle")?.getattr("loads")?.unbind()))
}

/// Makes a class of the module (or finds it made).
type ClassMaker = for<'py> fn(Python<'py>) -> Bound<'py, PyType>;

/// The classes of the module, made on first use rather than at import: making a class costs a
/// new process tens of microseconds, and importing the package, opening a file and listing
/// its keys needs none but `NativeDict`.
const LAZY_CLASSES: [(&str, ClassMaker); 15] = [
    ("NativeDict", |py| py.get_type::<NativeDict>()),
    ("NativeRemote", |py| py.get_type::<remote::NativeRemote>()),
    ("GenericValue", |py| py.get_type::<GenericValue>()),
    ("ArrayPlace", |py| py.get_type::<ArrayPlace>()),
    ("MaskedPlace", |py| py.get_type::<MaskedPlace>()),
    ("RemoteArray", |py| py.get_type::<RemoteArray>()),
    ("ArrayBytes", |py| py.get_type::<ArrayBytes>()),
    ("MaskedArrayBytes", |py| py.get_type::<MaskedArrayBytes>()),
    ("EntrySummary", |py| py.get_type::<EntrySummary>()),
    ("NewPickle", |py| py.get_type::<NewPickle>()),
    ("NewArray", |py| py.get_type::<NewArray>()),
    ("NewMasked", |py| py.get_type::<NewMasked>()),
    ("NewStub", |py| py.get_type::<NewStub>()),
    ("NewWritten", |py| py.get_type::<NewWritten>()),
    ("UnsafeValueError", |py| py.get_type::<UnsafeValueError>()),
];

/// The module's `__getattr__` (PEP 562): a class of [`LAZY_CLASSES`], made and added to the
/// module, where later lookups find it.
#[pyfunction]
#[pyo3(pass_module, name = "__getattr__")]
fn module_getattr<'py>(module: &Bound<'py, PyModule>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let (_, make_class) = LAZY_CLASSES
        .iter()
        .find(|(class_name, _)| *class_name == name)
        .ok_or_else(|| {
            PyAttributeError::new_err(format!(
                "module 'mmappickle._native' has no attribute '{name}'"
            ))
        })?;
    let class = make_class(module.py());
    module.setattr(name, &class)?;
    Ok(class)
}

/// The module's `__dir__`: its attributes and the classes not made yet.
#[pyfunction]
#[pyo3(pass_module, name = "__dir__")]
fn module_dir(module: &Bound<'_, PyModule>) -> PyResult<Vec<String>> {
    let mut names: Vec<String> = module.dict().keys().extract()?;
    names.extend(LAZY_CLASSES.iter().map(|(name, _)| name.to_string()));
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// The module `mmappickle._native`.
///
/// Its attributes are set, not added: `PyModule::add` keeps an `__all__`, whose first lookup
/// fails, and taking that error makes pyo3's `PanicException` class (tens of microseconds).
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.setattr("__version__", env!("CARGO_PKG_VERSION"))?;
    let schemes = pyo3::types::PyTuple::new(py, mmappickle_remote::SCHEMES)?;
    module.setattr("URL_SCHEMES", schemes)?;
    module.setattr("UNREAD", unread_sentinel(py)?)?;
    module.setattr("__getattr__", wrap_pyfunction!(module_getattr, module)?)?;
    module.setattr("__dir__", wrap_pyfunction!(module_dir, module)?)?;
    module.setattr("entry_value", wrap_pyfunction!(entry_value, module)?)?;
    module.setattr("value_pickle", wrap_pyfunction!(value_pickle, module)?)?;
    module.setattr("safe_loads", wrap_pyfunction!(safe::safe_loads, module)?)?;
    module.setattr("is_container", wrap_pyfunction!(is_container, module)?)?;
    Ok(())
}
