//! Inserting: generic values, arrays (whole, from raw bytes, streamed), masked arrays, stubs.

use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::Arc;

use mmappickle_array::{ArrayLayout, DType, Element, MaskedLayout, RawSink, DATA_ALIGN};
use mmappickle_codec::{encode_entry_value, Value};
use mmappickle_container::{Alignment, Batch, Entry, NewEntry, ValueSink, VACUUM_ALIGNMENT};
use mmappickle_stubs::EmptyArray;

use super::{check_key, MmapDict, Transaction};
use crate::error::{Error, ErrorKind};
use crate::picklers::{Pickler, Picklers};

// Architecture invariant: vacuum keeps each entry's offset modulo VACUUM_ALIGNMENT, so array
// data written at a multiple of DATA_ALIGN stays there only if DATA_ALIGN divides it.
const _: () = assert!(VACUUM_ALIGNMENT % DATA_ALIGN == 0);

/// [`MmapDict::insert_array_with`] gathers pieces smaller than this into writes of this size.
const STREAM_BUFFER_LEN: usize = 1 << 20;

/// The container's value sink seen as the array layer's [`RawSink`].
struct ContainerSink<'s, 'f> {
    sink: &'s mut ValueSink<'f>,
    path: &'s Path,
}

impl RawSink for ContainerSink<'_, '_> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sink.write_all(bytes)
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.sink.skip(n)
    }

    fn position(&self) -> u64 {
        self.sink.position()
    }

    fn file(&self) -> &std::fs::File {
        self.sink.file()
    }

    fn path(&self) -> Option<&Path> {
        Some(self.path)
    }
}

/// Appends an entry whose value an array-layer writer writes; a writer error comes back as
/// the array error it was rather than as the I/O error the container saw.
fn append_array_value(
    batch: &mut Batch<'_>,
    new: NewEntry<'_>,
    write: impl FnOnce(&mut ContainerSink<'_, '_>) -> Result<(), mmappickle_array::Error>,
) -> Result<Entry, Error> {
    let path = batch.container().path().to_path_buf();
    let mut writer_error = None;
    let appended = batch.append(new, |sink| {
        let mut adapter = ContainerSink { sink, path: &path };
        write(&mut adapter).map_err(|error| {
            let io_error = io::Error::other(error.to_string());
            writer_error = Some(error);
            io_error
        })
    });
    match (appended, writer_error) {
        (Err(_), Some(error)) => Err(error.into()),
        (appended, _) => appended.map_err(Error::from),
    }
}

impl MmapDict {
    /// Stores `value` under `key` as a generic pickled value (replacing any value the key
    /// had, as `m[key] = value` does in Python).
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> Result<(), Error> {
        self.write(|tx| tx.insert(key, value))
    }

    /// Stores the array `data` of `shape` (C order) under `key`, in the dict's
    /// [`ArrayEncoding`](crate::ArrayEncoding): Python's `mmapdict` reads it back as a `numpy.memmap`.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("array.mmdpickle"))?;
    /// m.insert_array("test", &[1u8, 2, 3], &[3])?;
    /// let mut a = m.array_mut::<u8>("test")?;
    /// a.as_slice_mut()?[1] = 4;
    /// drop(a);
    /// assert_eq!(m.array::<u8>("test")?.to_vec(), [1, 4, 3]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn insert_array<T: Element>(
        &mut self,
        key: &str,
        data: &[T],
        shape: &[usize],
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_array(key, data, shape))
    }

    /// Stores an array of any fixed-size `dtype` (strings, datetimes, other byte orders)
    /// from its raw bytes in C order; `raw` must be `product(shape) * item_size` bytes.
    pub fn insert_array_bytes(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        raw: &[u8],
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_array_bytes(key, dtype, shape, raw))
    }

    /// Stores an array whose raw bytes (C order) `write_raw` produces piece by piece: each
    /// call of `emit` writes the next bytes straight to their place in the file, so an
    /// array larger than RAM is stored in constant memory (from a reader, a generator, a
    /// simulation step by step). `write_raw` must emit exactly `product(shape) *
    /// item_size` bytes; too few or too many, or an error of its own, abandon the insert
    /// and leave the dict as it was.
    ///
    /// Pieces may be of any size: small ones are gathered into 1 MiB writes.
    ///
    /// ```
    /// use mmappickle::{Element, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("stream.mmdpickle"))?;
    /// // A 1000 x 3 float64 array, one value at a time.
    /// m.insert_array_with("rows", &f64::dtype(), &[1000, 3], |emit| {
    ///     for row in 0..1000 {
    ///         for value in [row as f64, 0.5, -1.0] {
    ///             emit(&value.to_ne_bytes())?;
    ///         }
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(m.array::<f64>("rows")?.get(3 * 999)?, 999.0);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn insert_array_with(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        write_raw: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_array_with(key, dtype, shape, write_raw))
    }

    /// Stores an array whose raw bytes (C order) are `product(shape) * item_size` bytes of
    /// `source` from `source_offset` on (say the data of a `.npy` file): copied inside the
    /// kernel (`copy_file_range`), so at the speed of `cp` and in constant memory. A source
    /// that ends early is an error, and the dict is left as it was.
    ///
    /// ```
    /// use std::os::unix::fs::FileExt;
    /// use mmappickle::{Element, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let raw = dir.path().join("raw.bin");
    /// std::fs::write(&raw, [0u8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0])?; // skip 4, then 2 x i32
    /// let mut m = MmapDict::open(dir.path().join("copy.mmdpickle"))?;
    /// m.insert_array_copy("ab", &i32::dtype(), &[2], &std::fs::File::open(&raw)?, 4)?;
    /// assert_eq!(m.array::<i32>("ab")?.to_vec(), [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_array_copy(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        source: &std::fs::File,
        source_offset: u64,
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_array_copy(key, dtype, shape, source, source_offset))
    }

    /// Stores an ndarray (any memory order: it is written in C order).
    #[cfg(feature = "ndarray")]
    pub fn insert_ndarray<T, S, D>(
        &mut self,
        key: &str,
        array: &ndarray::ArrayBase<S, D>,
    ) -> Result<(), Error>
    where
        T: Element,
        S: ndarray::Data<Elem = T>,
        D: ndarray::Dimension,
    {
        self.write(|tx| tx.insert_ndarray(key, array))
    }

    /// Stores a `numpy.ma.MaskedArray` of `data` and `mask` (same number of elements,
    /// `true` = masked), always in the compatible encoding (the only one Python reads).
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("masked.mmdpickle"))?;
    /// m.insert_masked("m", &[1.0f64, 2.0, 3.0], &[false, true, false], &[3])?;
    /// let masked = m.masked::<f64>("m")?;
    /// assert_eq!(masked.data.to_vec(), [1.0, 2.0, 3.0]);
    /// assert!(masked.mask.get(1)?.get()?);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn insert_masked<T: Element>(
        &mut self,
        key: &str,
        data: &[T],
        mask: &[bool],
        shape: &[usize],
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_masked(key, data, mask, shape))
    }

    /// Stores a masked array of any fixed-size `dtype` from the raw bytes of its data and
    /// of its mask (one byte per element, 0 or 1), both in C order.
    pub fn insert_masked_bytes(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        data: &[u8],
        mask: &[u8],
    ) -> Result<(), Error> {
        self.write(|tx| tx.insert_masked_bytes(key, dtype, shape, data, mask))
    }

    /// Stores a stub: an array whose raw bytes are never written (a hole in the file that
    /// reads as zeros), allocated in constant time and memory whatever its size. The stub's
    /// own encoding and reservation settings apply.
    ///
    /// ```
    /// use mmappickle::{stubs::EmptyArray, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("stub.mmdpickle"))?;
    /// m.insert_stub("test_large", EmptyArray::new::<f64>(&[300, 300, 300]))?;
    /// let big = m.array::<f64>("test_large")?;
    /// assert_eq!(big.len(), 27_000_000);
    /// assert_eq!(big.get(26_999_999)?, 0.0);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn insert_stub(&mut self, key: &str, stub: EmptyArray) -> Result<(), Error> {
        self.write(|tx| tx.insert_stub(key, stub))
    }

    /// Stores `value` as `key` by the first of the dict's picklers (in decreasing
    /// priority) whose [`Pickler::is_picklable`] takes it, as the library's `m[key] = value`
    /// chooses: with the built-in picklers, a [`Value`], an [`OwnedArray`](crate::OwnedArray)
    /// or an [`OwnedMasked`](crate::OwnedMasked); with others, what they take (see
    /// [`Pickler`]). None takes it: [`ErrorKind::NoPickler`](crate::ErrorKind::NoPickler).
    pub fn insert_any(&mut self, key: &str, value: &dyn Any) -> Result<(), Error> {
        self.write(|tx| tx.insert_any(key, value))
    }

    /// The built-in picklers, the default of
    /// [`MmapDictOptions::picklers`](crate::MmapDictOptions::picklers): arrays, masked
    /// arrays, generic values.
    pub fn builtin_picklers() -> Vec<Arc<dyn Pickler>> {
        Picklers::builtin()
    }
}

impl Transaction<'_> {
    /// The new entry of an array value whose raw data starts `raw_offset` bytes into it
    /// (aligned to [`DATA_ALIGN`] when the options say so). Arrays use no memo, as in Python.
    pub(super) fn array_entry<'k>(
        &self,
        key: &'k str,
        value_len: u64,
        raw_offset: u64,
    ) -> NewEntry<'k> {
        NewEntry {
            key,
            value_len,
            memo_max: 0,
            align: self.options.align.then_some(Alignment {
                value_relative_offset: raw_offset,
                align: DATA_ALIGN,
            }),
        }
    }

    /// As [`MmapDict::insert`], in the batch.
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> Result<(), Error> {
        check_key(key)?;
        // Under the batch's lock: no other handle can raise the memo start in between.
        let memo_start = self.batch.memo_start();
        let memo_start_index = u32::try_from(memo_start).unwrap_or(1);
        let (bytes, memo_max) = encode_entry_value(&value.into(), memo_start_index);
        let memo_max = i32::try_from(memo_max).unwrap_or(memo_start);
        self.append_value(key, &bytes, memo_max)
    }

    /// Appends the entry of a generic value whose bytes store memo indices below
    /// `memo_max`.
    pub(super) fn append_value(
        &mut self,
        key: &str,
        bytes: &[u8],
        memo_max: i32,
    ) -> Result<(), Error> {
        let new = NewEntry {
            key,
            value_len: bytes.len() as u64,
            memo_max,
            align: None,
        };
        self.batch.append(new, |sink| sink.write_all(bytes))?;
        Ok(())
    }

    /// As [`MmapDict::insert_array`], in the batch.
    pub fn insert_array<T: Element>(
        &mut self,
        key: &str,
        data: &[T],
        shape: &[usize],
    ) -> Result<(), Error> {
        self.insert_array_bytes(key, &T::dtype(), shape, bytemuck_bytes(data))
    }

    /// As [`MmapDict::insert_array_bytes`], in the batch.
    pub fn insert_array_bytes(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        raw: &[u8],
    ) -> Result<(), Error> {
        check_key(key)?;
        let layout = ArrayLayout::new(dtype, shape, self.options.encoding)?;
        if layout.raw_len() != raw.len() as u64 {
            return Err(data_length_error(raw.len() as u64, layout.raw_len()));
        }
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        append_array_value(&mut self.batch, new, |sink| layout.write_to(sink, raw))?;
        Ok(())
    }

    /// As [`MmapDict::insert_array_with`], in the batch.
    pub fn insert_array_with(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        write_raw: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> Result<(), Error> {
        check_key(key)?;
        let layout = ArrayLayout::new(dtype, shape, self.options.encoding)?;
        let raw_len = layout.raw_len();
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        // Bytes emitted, and how many were offered when that count came out wrong.
        let mut emitted = 0u64;
        let mut wrong_len = None;
        let appended = self.batch.append(new, |sink| {
            sink.write_all(layout.prefix())?;
            let mut pending = Vec::new();
            write_raw(&mut |chunk: &[u8]| {
                let offered = emitted.saturating_add(chunk.len() as u64);
                if offered > raw_len {
                    wrong_len = Some(offered);
                    return Err(io::Error::other("more array data than its shape holds"));
                }
                emitted = offered;
                if pending.len() + chunk.len() > STREAM_BUFFER_LEN {
                    sink.write_all(&pending)?;
                    pending.clear();
                }
                if chunk.len() >= STREAM_BUFFER_LEN {
                    sink.write_all(chunk)
                } else {
                    pending.extend_from_slice(chunk);
                    Ok(())
                }
            })?;
            if emitted != raw_len {
                wrong_len = Some(emitted);
                return Err(io::Error::other("less array data than its shape holds"));
            }
            sink.write_all(&pending)?;
            sink.write_all(layout.suffix())
        });
        match (appended, wrong_len) {
            (Err(_), Some(found)) => Err(data_length_error(found, raw_len)),
            (appended, _) => appended.map(drop).map_err(Error::from),
        }
    }

    /// As [`MmapDict::insert_array_copy`], in the batch.
    pub fn insert_array_copy(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        source: &std::fs::File,
        source_offset: u64,
    ) -> Result<(), Error> {
        check_key(key)?;
        let layout = ArrayLayout::new(dtype, shape, self.options.encoding)?;
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        self.batch.append(new, |sink| {
            sink.write_all(layout.prefix())?;
            sink.copy_from(source, source_offset, layout.raw_len())?;
            sink.write_all(layout.suffix())
        })?;
        Ok(())
    }

    /// As [`MmapDict::insert_ndarray`], in the batch.
    #[cfg(feature = "ndarray")]
    pub fn insert_ndarray<T, S, D>(
        &mut self,
        key: &str,
        array: &ndarray::ArrayBase<S, D>,
    ) -> Result<(), Error>
    where
        T: Element,
        S: ndarray::Data<Elem = T>,
        D: ndarray::Dimension,
    {
        let shape = array.shape().to_vec();
        match array.as_slice() {
            Some(data) => self.insert_array(key, data, &shape),
            None => {
                let data: Vec<T> = array.iter().copied().collect();
                self.insert_array(key, &data, &shape)
            }
        }
    }

    /// As [`MmapDict::insert_masked`], in the batch.
    pub fn insert_masked<T: Element>(
        &mut self,
        key: &str,
        data: &[T],
        mask: &[bool],
        shape: &[usize],
    ) -> Result<(), Error> {
        if data.len() != mask.len() {
            return Err(Error::unplaced(ErrorKind::MaskLength {
                data: data.len(),
                mask: mask.len(),
            }));
        }
        let mask_bytes: Vec<u8> = mask.iter().map(|&masked| u8::from(masked)).collect();
        self.insert_masked_bytes(key, &T::dtype(), shape, bytemuck_bytes(data), &mask_bytes)
    }

    /// As [`MmapDict::insert_masked_bytes`], in the batch.
    pub fn insert_masked_bytes(
        &mut self,
        key: &str,
        dtype: &DType,
        shape: &[usize],
        data: &[u8],
        mask: &[u8],
    ) -> Result<(), Error> {
        check_key(key)?;
        let layout = MaskedLayout::new(dtype, shape)?;
        for (raw, part) in [(data, &layout.header().data), (mask, &layout.header().mask)] {
            if part.raw_len != raw.len() as u64 {
                return Err(data_length_error(raw.len() as u64, part.raw_len));
            }
        }
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        append_array_value(&mut self.batch, new, |sink| {
            layout.write_to(sink, data, mask)
        })?;
        Ok(())
    }

    /// As [`MmapDict::insert_stub`], in the batch.
    pub fn insert_stub(&mut self, key: &str, stub: EmptyArray) -> Result<(), Error> {
        check_key(key)?;
        let layout = stub.layout()?;
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        append_array_value(&mut self.batch, new, |sink| stub.write_to(sink).map(drop))?;
        Ok(())
    }
}

/// Raw bytes given to a writer that do not fill the dtype and shape.
fn data_length_error(found: u64, expected: u64) -> Error {
    Error::from(mmappickle_array::Error::unplaced(
        mmappickle_array::ErrorKind::DataLength { found, expected },
    ))
}

fn bytemuck_bytes<T: Element>(data: &[T]) -> &[u8] {
    bytemuck::cast_slice(data)
}
