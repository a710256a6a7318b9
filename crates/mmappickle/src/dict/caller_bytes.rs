//! Bytes the caller makes or maps itself, as a binding to another language needs beyond the
//! Rust API: values pickled by that language's own pickler, arrays written by the caller
//! straight into the file, and where an entry's parts are so that the caller maps them
//! itself (as the Python package builds `numpy.memmap`s).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use mmappickle_array::{classify, ArrayLayout, DType, ValueKind};
use mmappickle_codec::{decode_entry_value, entry_value_from_pickle, ops, Limits, Op};
use mmappickle_container::COMMIT_NUMBER_OFFSET;

use super::{check_key, MmapDict, ReadSnapshot, Transaction};
use crate::error::{Error, ErrorKind};
use crate::item::{Located, ValuePlace};

/// The `memo_max` of an entry whose value is `value`, if `value` is exactly one whole value
/// (an array expression to its last byte, or a generic value that decodes): 0 for arrays, as
/// Python writes; else one past the largest memo index it stores, at least `memo_start`.
pub(super) fn whole_value_memo_max(value: &[u8], memo_start: i32, limits: &Limits) -> Option<i32> {
    let whole = |end: u64| (end == value.len() as u64).then_some(0);
    match classify(&mut &value[..]) {
        Ok(ValueKind::Array(header)) => whole(header.end),
        Ok(ValueKind::Masked(header)) => whole(header.end),
        _ => {
            decode_entry_value(value, limits).ok()?;
            let largest_stored = ops(value)
                .filter_map(|op| match op.ok()?.1 {
                    Op::Put(index) => Some(index),
                    Op::BinPut(index) => Some(u64::from(index)),
                    Op::LongBinPut(index) => Some(u64::from(index)),
                    _ => None,
                })
                .max();
            let after = largest_stored.map_or(0, |index| index.saturating_add(1));
            Some(i32::try_from(after).unwrap_or(i32::MAX).max(memo_start))
        }
    }
}

/// Whether `value`, written in place by a caller, is what an entry holds: one whole value,
/// every memo index explicit and in `memo_start..memo_max`. Else what was expected, and at
/// which byte of the value.
fn check_written(
    value: &[u8],
    memo_start: i32,
    memo_max: i32,
    limits: &Limits,
) -> Result<(), (&'static str, u64)> {
    let memo = u64::try_from(memo_start).unwrap_or(0)..u64::try_from(memo_max).unwrap_or(0);
    for op in ops(value) {
        let (at, op) = op.map_err(|error| ("whole pickle opcodes", error.offset()))?;
        let index = match op {
            Op::Proto(_) | Op::Frame(_) | Op::Stop => {
                return Err(("no PROTO, FRAME or STOP in an entry's value", at as u64))
            }
            Op::Memoize => return Err(("explicit memo indices (no MEMOIZE)", at as u64)),
            Op::Put(index) | Op::Get(index) => index,
            Op::BinPut(index) | Op::BinGet(index) => u64::from(index),
            Op::LongBinPut(index) | Op::LongBinGet(index) => u64::from(index),
            _ => continue,
        };
        if !memo.contains(&index) {
            return Err(("memo indices from the memo start up to memo_max", at as u64));
        }
    }
    // Every index stored is below `memo_max` (checked above): `memo_max` covers the value.
    match whole_value_memo_max(value, memo_start, limits) {
        Some(_) => Ok(()),
        None => Err(("one whole pickled value", 0)),
    }
}

impl MmapDict {
    /// Stores a value pickled by Python: `stream` is a whole pickle (what
    /// `pickle.dumps(value, 4)` gives), rewritten at the opcode level into the entry's value
    /// (see [`entry_value_from_pickle`](crate::codec::entry_value_from_pickle)), so that
    /// shared and self-referencing parts survive exactly. Replaces any value of `key`.
    ///
    /// ```
    /// use mmappickle::{MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("pickled.mmdpickle"))?;
    /// // pickle.dumps([1, 'a'], 4)
    /// m.insert_pickle("k", b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x01a\x94e.")?;
    /// assert_eq!(m.value("k")?, Value::List(vec![Value::Int(1), Value::from("a")]));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn insert_pickle(&mut self, key: &str, stream: &[u8]) -> Result<(), Error> {
        self.write(|tx| tx.insert_pickle(key, stream))
    }

    /// Stores an array of `dtype` and `shape` whose raw bytes (C order) `write_raw` writes
    /// itself: it is called once with the file, the offset of the first raw byte and their
    /// length, and must write exactly that range (with `pwrite`, say, from the caller's own
    /// buffer: no copy passes through this crate). An error from it abandons the insert and
    /// leaves the dict as it was. The dict's encoding and alignment apply.
    ///
    /// ```
    /// use std::os::unix::fs::FileExt;
    /// use mmappickle::{DType, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("in_place.mmdpickle"))?;
    /// let raw = [1u8, 2, 3, 4];
    /// m.insert_array_in_place("a", &DType::parse("uint8")?, &[2, 2], |file, offset, len| {
    ///     assert_eq!(len, 4);
    ///     file.write_all_at(&raw, offset)
    /// })?;
    /// assert_eq!(m.array::<u8>("a")?.to_vec(), raw);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_array_in_place(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        write_raw: impl FnOnce(&File, u64, u64) -> io::Result<()>,
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_array_in_place(key, dtype, shape, write_raw))
    }

    /// Stores a value that `write(file, value_offset, memo_start)` writes itself, straight at
    /// its final place in the file, returning `(value length, memo_max)`: the value's pickle
    /// opcodes (no PROTO, FRAME or STOP; memo indices from `memo_start`, `memo_max` the
    /// next free one), as a Python pickler class of the library's kind writes them. The
    /// bytes are checked before the commit (one whole value, explicit memo indices in
    /// `memo_start..memo_max`); an error of `write`, or bytes that fail the check, leave the
    /// dict and the file as they were. Replaces any value of `key`.
    ///
    /// ```
    /// use std::os::unix::fs::FileExt;
    /// use mmappickle::{MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("written.mmdpickle"))?;
    /// m.insert_written("k", |file, offset, memo_start| {
    ///     file.write_all_at(b"K\x07", offset)?; // BININT1 7
    ///     Ok((2, memo_start))
    /// })?;
    /// assert_eq!(m.value("k")?, Value::Int(7));
    /// let garbage = m.insert_written("bad", |file, offset, memo_start| {
    ///     file.write_all_at(b"K", offset)?; // cut short
    ///     Ok((1, memo_start))
    /// });
    /// assert!(garbage.is_err());
    /// assert_eq!(m.keys()?, ["k"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_written(
        &mut self,
        key: &str,
        write: impl FnOnce(&File, u64, i32) -> io::Result<(u64, i32)>,
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_written(key, write))
    }

    /// What `key` holds, without mapping or decoding anything: where a generic value's bytes
    /// are, or where an array's (or a masked array's two) raw bytes are, for a caller that
    /// reads or maps them itself. The places are valid until the file is vacuumed; read a
    /// generic value's bytes in the same snapshot ([`ReadSnapshot::value_bytes_at`]).
    ///
    /// ```
    /// use mmappickle::{Located, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("locate.mmdpickle"))?;
    /// m.insert("name", "value")?;
    /// m.insert_array("grid", &[1i32, 2, 3, 4], &[2, 2])?;
    /// let r = m.read()?;
    /// let Located::Value(place) = r.locate("name")? else { panic!("not a value") };
    /// assert_eq!(r.value_bytes_at(&place)?, b"\x8c\x05value");
    /// let Located::Array(place) = r.locate("grid")? else { panic!("not an array") };
    /// assert_eq!((place.dtype.name().as_str(), place.shape.as_slice()), ("int32", &[2, 2][..]));
    /// let mut raw = [0u8; 16];
    /// std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(m.path())?, &mut raw, place.data_offset)?;
    /// assert_eq!(raw[4], 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn locate(&self, key: &str) -> Result<Located, Error> {
        self.read()?.locate(key)
    }

    /// Writes `commit_number` into the file's header, as setting `commit_number` in Python
    /// does (readers re-read the entry table when it changes).
    pub fn set_commit_number(&mut self, commit_number: i32) -> Result<(), Error> {
        self.check_writable()?;
        self.container_mut()
            .with_lock(|container| {
                container
                    .file()
                    .write_all_at(&commit_number.to_le_bytes(), COMMIT_NUMBER_OFFSET)
            })?
            .map_err(Error::from)
    }
}

impl Transaction<'_> {
    /// As [`MmapDict::insert_pickle`], in the batch.
    pub fn insert_pickle(&mut self, key: &str, stream: &[u8]) -> Result<(), Error> {
        check_key(key)?;
        // Under the batch's lock: no other handle can raise the memo start in between.
        let memo_start = self.batch.memo_start();
        let (bytes, memo_max) =
            entry_value_from_pickle(stream, u32::try_from(memo_start).unwrap_or(1))
                .map_err(|error| Error::unplaced(ErrorKind::PickleStream(error)))?;
        // At most i32::MAX: the codec refuses indices past it.
        let memo_max = i32::try_from(memo_max).unwrap_or(i32::MAX);
        self.append_value(key, &bytes, memo_max)
    }

    /// As [`MmapDict::insert_written`], in the batch.
    pub fn insert_written(
        &mut self,
        key: &str,
        write: impl FnOnce(&File, u64, i32) -> io::Result<(u64, i32)>,
    ) -> Result<(), Error> {
        check_key(key)?;
        // Under the batch's lock: no other handle can raise the memo start in between.
        let memo_start = self.batch.memo_start();
        let limits = &self.options.limits;
        self.batch.append_written(
            key,
            |file, offset| write(file, offset, memo_start),
            |value, memo_max| check_written(value, memo_start, memo_max, limits),
        )?;
        Ok(())
    }

    /// As [`MmapDict::insert_array_in_place`], in the batch.
    pub fn insert_array_in_place(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        write_raw: impl FnOnce(&File, u64, u64) -> io::Result<()>,
    ) -> Result<(), Error> {
        check_key(key)?;
        let layout = ArrayLayout::new(dtype, shape, self.options.encoding)?;
        let raw_len = layout.raw_len();
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        self.batch.append(new, |sink| {
            sink.write_all(layout.prefix())?;
            sink.write_in_place(raw_len, write_raw)?;
            sink.write_all(layout.suffix())
        })?;
        Ok(())
    }
}

impl ReadSnapshot<'_> {
    /// What `key` holds, without mapping or decoding anything (see [`MmapDict::locate`]).
    pub fn locate(&self, key: &str) -> Result<Located, Error> {
        self.locate_entry(self.entry(key)?)
    }

    /// `(device, inode)` of the file this snapshot reads: another one once a vacuum (of any
    /// handle) replaced the file, for a binding that keeps a map of the file of its own.
    pub fn file_id(&self) -> Result<(u64, u64), Error> {
        Ok(self.view()?.file_id())
    }

    /// The bytes of a generic value this snapshot located (see [`MmapDict::locate`]).
    pub fn value_bytes_at(&self, place: &ValuePlace) -> Result<&[u8], Error> {
        self.value_bytes(place)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A writer that fails leaves the dict and the file as they were.
    #[test]
    fn failing_writer_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MmapDict::open(dir.path().join("fail.mmdpickle")).unwrap();
        let before = std::fs::read(m.path()).unwrap();
        let dtype = DType::parse("float64").unwrap();
        let error = m
            .insert_array_in_place("a", &dtype, &[3], |_, _, _| {
                Err(io::Error::other("writer refused"))
            })
            .unwrap_err();
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("writer refused"), "{error}");
        assert_eq!(std::fs::read(m.path()).unwrap(), before);
        assert!(m.keys().unwrap().is_empty());
    }

    #[test]
    fn commit_number_is_set_and_refused_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commit.mmdpickle");
        let mut m = MmapDict::open(&path).unwrap();
        m.insert("k", 1).unwrap();
        m.set_commit_number(41).unwrap();
        assert_eq!(m.commit_number().unwrap(), 41);
        m.insert("j", 2).unwrap();
        assert_eq!(m.commit_number().unwrap(), 42);
        assert_eq!(m.keys().unwrap(), ["k", "j"]);
        let mut ro = MmapDict::open_readonly(&path).unwrap();
        assert!(ro.set_commit_number(1).is_err());
    }

    // Memo indices continue from the file's previous entries.
    #[test]
    fn pickled_values_number_their_memo_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MmapDict::open(dir.path().join("memo.mmdpickle")).unwrap();
        // s = 'k'; pickle.dumps({s: s}, 4)
        let shared = b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01k\x94h\x01s.";
        m.insert_pickle("a", shared).unwrap();
        m.insert_pickle("b", shared).unwrap();
        let Located::Value(first) = m.locate("a").unwrap() else {
            panic!()
        };
        let Located::Value(second) = m.locate("b").unwrap() else {
            panic!()
        };
        let r = m.read().unwrap();
        assert_eq!(r.value_bytes_at(&first).unwrap(), b"}\x8c\x01kq\x01h\x01s");
        assert_eq!(r.value_bytes_at(&second).unwrap(), b"}\x8c\x01kq\x02h\x02s");
        drop(r);
        let error = m.insert_pickle("c", b"\x80\x04h\x09.").unwrap_err();
        assert!(error.to_string().contains("memo"), "{error}");
    }
}
