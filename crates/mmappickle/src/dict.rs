//! `MmapDict`: the dictionary, its options, and what a key holds.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmappickle_array::{
    read_array_header, read_masked_header, ArrayEncoding, ArrayHeader, ArrayLayout, Bool, DType,
    Element, FileValue, MappedArray, MappedArrayMut, MappedBytes, MaskedHeader, MaskedLayout,
    RawSink, ValueSource, DATA_ALIGN,
};
use mmappickle_codec::{decode_entry_value, encode_entry_value, Limits, Value};
use mmappickle_container::{
    remove_stale_scratch_files, Alignment, Container, ContainerOptions, Durability, Entry,
    FsckReport, NewEntry, VacuumReport, ValueSink,
};
use mmappickle_stubs::EmptyArray;

use crate::convert;
use crate::error::{Error, ErrorKind};

pub(crate) mod bindings;

/// The longest key the format can store, in UTF-8 bytes.
pub const MAX_KEY_LEN: usize = 255;

/// [`MmapDict::get`] reads a value up to this long whole at once (one read) instead of its
/// head first: as long as the window in which the array layer reads a head.
const SMALL_VALUE_LEN: u64 = 4096;

/// [`MmapDict::insert_array_with`] gathers pieces smaller than this into writes of this size.
const STREAM_BUFFER_LEN: usize = 1 << 20;

/// Options for opening an [`MmapDict`], in the style of [`std::fs::OpenOptions`].
///
/// ```
/// use mmappickle::{ArrayEncoding, Durability, Limits, MmapDict};
///
/// let dir = tempfile::tempdir()?;
/// let m = MmapDict::options()
///     .encoding(ArrayEncoding::Portable)
///     .durability(Durability::Flush)
///     .align(true)
///     .limits(Limits { max_depth: 100, ..Limits::default() })
///     .open(dir.path().join("options.mmdpickle"))?;
/// assert!(!m.is_readonly());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MmapDictOptions {
    encoding: ArrayEncoding,
    durability: Durability,
    align: bool,
    limits: Limits,
    readonly: bool,
    allow_damaged: bool,
}

impl Default for MmapDictOptions {
    fn default() -> Self {
        MmapDictOptions {
            encoding: ArrayEncoding::Compatible,
            durability: Durability::None,
            align: true,
            limits: Limits::default(),
            readonly: false,
            allow_damaged: false,
        }
    }
}

impl MmapDictOptions {
    /// Read-write, compatible array encoding, no fsync, array data aligned to 64 bytes,
    /// default unpickling limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// How arrays inserted from now on are encoded ([`ArrayEncoding::Compatible`], the
    /// Python library's own form, by default).
    pub fn encoding(mut self, encoding: ArrayEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Whether changes are `fsync`ed ([`Durability::None`] by default).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether the raw data of inserted arrays starts at a multiple of 64 bytes in the file
    /// (on by default), so that [`MappedArray::as_slice`] works. The container writes a
    /// deleted padding entry before the array when needed; every reader skips it.
    ///
    /// `align(false)` writes exactly the layout Python mmappickle writes: no padding entries
    /// of any kind (neither before arrays nor the 21-byte entries that keep a terminator
    /// inside one 4 KiB page); a commit write torn at a page boundary by power loss is then
    /// detected on open (reader rule) for cuts of 1 to 9 bytes only.
    pub fn align(mut self, align: bool) -> Self {
        self.align = align;
        self
    }

    /// Bounds on what decoding a generic value may build (depth, memo, elements).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens read-only: every change is [`ErrorKind::ReadOnly`], arrays map read-only, the
    /// file must exist.
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Accepts a file whose header is valid but whose entries are damaged, so that
    /// [`MmapDict::fsck`] can repair it; other operations fail until then.
    pub fn allow_damaged(mut self, allow_damaged: bool) -> Self {
        self.allow_damaged = allow_damaged;
        self
    }

    /// The unpickling limits set.
    pub(crate) fn open_limits(&self) -> &Limits {
        &self.limits
    }

    /// Opens the dict at `path`. Read-write, a missing or empty file is created; a plain
    /// pickle of a dict is converted into the mmappickle format first.
    pub fn open(self, path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        let path = path.as_ref();
        let container_options = ContainerOptions::new()
            .durability(self.durability)
            .readonly(self.readonly)
            .allow_damaged(self.allow_damaged)
            .page_safe_commit(self.align);
        let mut container = match container_options.clone().open(path) {
            Ok(container) => container,
            Err(error) => {
                if !matches!(
                    error.kind(),
                    mmappickle_container::ErrorKind::NotAContainer { .. }
                ) {
                    return Err(error.into());
                }
                if !error.is_plain_pickle() {
                    // A plain pickle of something else is worth a precise message.
                    convert::refuse_non_dict(path, &self.limits)?;
                    return Err(error.into());
                }
                if convert::is_damaged_header(path) {
                    return Err(error.into());
                }
                if self.readonly {
                    return Err(Error::new(ErrorKind::PlainPickleReadOnly, 0));
                }
                convert::convert_plain_pickle(path, &self)?;
                container_options.open(path)?
            }
        };
        if !self.readonly {
            // A convert killed before its rename left `<path>.converting-<pid>` (the
            // container's open did the same for vacuum's scratch files).
            container.with_lock(|_| {
                remove_stale_scratch_files(&scratch_prefix(path, "converting"));
            })?;
        }
        Ok(MmapDict {
            container,
            options: self,
            maps: Arc::new(()),
        })
    }
}

/// What a key holds: a generic value, a mapped array, or a mapped masked array.
///
/// Maps stay valid after the dict is dropped; while one is alive, [`MmapDict::vacuum`] is
/// refused.
#[derive(Debug)]
pub enum Item {
    /// A generic Python value, decoded (never run: objects stay [`Value::Object`] nodes).
    Value(Value),
    /// A numpy array, mapped read-only whatever its dtype; [`MappedBytes::typed`] gives a
    /// typed view, [`MmapDict::array`] maps it typed directly.
    Array(MappedBytes),
    /// A `numpy.ma.MaskedArray`: data and mask, both mapped read-only.
    Masked(MaskedBytes),
}

impl Item {
    /// The generic value, if the key holds one.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            Item::Value(value) => Some(value),
            _ => None,
        }
    }

    /// The generic value, if the key holds one.
    pub fn into_value(self) -> Option<Value> {
        match self {
            Item::Value(value) => Some(value),
            _ => None,
        }
    }

    /// The mapped array, if the key holds a plain array.
    pub fn as_array(&self) -> Option<&MappedBytes> {
        match self {
            Item::Array(array) => Some(array),
            _ => None,
        }
    }

    /// The mapped data and mask, if the key holds a masked array.
    pub fn as_masked(&self) -> Option<&MaskedBytes> {
        match self {
            Item::Masked(masked) => Some(masked),
            _ => None,
        }
    }
}

impl PartialEq<Value> for Item {
    /// An item equals a value when it is that generic value (arrays never do).
    fn eq(&self, other: &Value) -> bool {
        self.as_value() == Some(other)
    }
}

/// A masked array's two maps (untyped).
#[derive(Debug)]
pub struct MaskedBytes {
    /// The data.
    pub data: MappedBytes,
    /// The mask (dtype `bool`): the data's shape, or 0-d when the array had no mask.
    pub mask: MappedBytes,
}

/// A masked array's two maps, typed: elements of `T` and a `bool` mask.
#[derive(Debug)]
pub struct MaskedArray<T: Element> {
    /// The data.
    pub data: MappedArray<T>,
    /// The mask: the data's shape, or 0-d when the array had no mask.
    pub mask: MappedArray<Bool>,
}

/// What an entry's value is, found from its first bytes.
enum ValueForm {
    Array(ArrayHeader),
    Masked(MaskedHeader),
    Generic,
}

/// A dictionary stored in a file that is at once a Python pickle of the dict and a store of
/// memory-mapped numpy arrays (see the crate docs).
///
/// Every operation takes the file's exclusive lock for its duration, so several handles and
/// processes can share a file; changes made by one are seen by the others at their next
/// operation. `MmapDict` is [`Send`]: move it to another thread, share it behind a
/// [`Mutex`](std::sync::Mutex), or open one per thread (each handle locks on its own).
#[derive(Debug)]
pub struct MmapDict {
    container: Container,
    options: MmapDictOptions,
    /// One clone lives in every map handed out: `strong_count - 1` maps are alive.
    maps: Arc<()>,
}

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
    container: &mut Container,
    new: NewEntry<'_>,
    write: impl FnOnce(&mut ContainerSink<'_, '_>) -> Result<(), mmappickle_array::Error>,
) -> Result<Entry, Error> {
    let path = container.path().to_path_buf();
    let mut writer_error = None;
    let appended = container.append(new, |sink| {
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

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::new(ErrorKind::KeyTooLong { len: key.len() }, 0));
    }
    Ok(())
}

fn key_not_found(key: &str) -> Error {
    Error::new(ErrorKind::KeyNotFound(key.to_owned()), 0)
}

impl MmapDict {
    /// Opens `path` read-write, creating it if missing; a plain pickle of a dict is
    /// converted into the mmappickle format first (as Python's `mmapdict` does).
    ///
    /// ```
    /// use mmappickle::{MmapDict, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("test.mmdpickle"))?;
    /// m.insert("a_sample_key", "value")?;
    /// m.insert("other_key", vec![1i64, 2, 3])?;
    /// assert_eq!(m.get("a_sample_key")?, Value::from("value"));
    /// assert_eq!(m.value("other_key")?, Value::from(vec![1i64, 2, 3]));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        MmapDictOptions::new().open(path)
    }

    /// Opens an existing `path` read-only: every change is [`ErrorKind::ReadOnly`] and
    /// arrays map read-only.
    ///
    /// ```
    /// use mmappickle::{ErrorKind, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ro.mmdpickle");
    /// MmapDict::open(&path)?.insert("key", 1)?;
    /// let mut ro = MmapDict::open_readonly(&path)?;
    /// assert_eq!(ro.value("key")?, 1.into());
    /// let refused = ro.insert("key", 2).unwrap_err();
    /// assert!(matches!(refused.kind(), ErrorKind::ReadOnly));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn open_readonly(path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        MmapDictOptions::new().readonly(true).open(path)
    }

    /// The options builder: `MmapDict::options().readonly(true).open(path)`.
    pub fn options() -> MmapDictOptions {
        MmapDictOptions::new()
    }

    /// The path the dict was opened with.
    pub fn path(&self) -> &Path {
        self.container.path()
    }

    /// Whether the dict was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.container.is_readonly()
    }

    /// The options the dict was opened with.
    pub fn open_options(&self) -> &MmapDictOptions {
        &self.options
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.is_readonly() {
            Err(Error::new(ErrorKind::ReadOnly, 0))
        } else {
            Ok(())
        }
    }

    /// The new entry of an array value whose raw data starts `raw_offset` bytes into it
    /// (aligned to [`DATA_ALIGN`] when the options say so). Arrays use no memo, as in Python.
    fn array_entry<'k>(&self, key: &'k str, value_len: u64, raw_offset: u64) -> NewEntry<'k> {
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

    // ---- inserting ----

    /// Stores `value` under `key` as a generic pickled value (replacing any value the key
    /// had, as `m[key] = value` does in Python).
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> Result<(), Error> {
        check_key(key)?;
        self.check_writable()?;
        let value = value.into();
        self.container
            .with_lock(|container| -> Result<(), Error> {
                // Under one lock: no other handle can raise the memo start in between.
                let memo_start = container.memo_start()?;
                let memo_start_index = u32::try_from(memo_start).unwrap_or(1);
                let (bytes, memo_max) = encode_entry_value(&value, memo_start_index);
                let memo_max = i32::try_from(memo_max).unwrap_or(memo_start);
                let new = NewEntry {
                    key,
                    value_len: bytes.len() as u64,
                    memo_max,
                    align: None,
                };
                container.append(new, |sink| sink.write_all(&bytes))?;
                Ok(())
            })
            .map_err(Error::from)?
    }

    /// Stores the array `data` of `shape` (C order) under `key`, in the dict's
    /// [`ArrayEncoding`]: Python's `mmapdict` reads it back as a `numpy.memmap`.
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
        self.insert_array_bytes(key, &T::dtype(), shape, bytemuck_bytes(data))
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
        check_key(key)?;
        self.check_writable()?;
        let layout = ArrayLayout::new(dtype, shape, self.options.encoding)?;
        if layout.raw_len() != raw.len() as u64 {
            return Err(data_length_error(raw.len() as u64, layout.raw_len()));
        }
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        append_array_value(&mut self.container, new, |sink| layout.write_to(sink, raw))?;
        Ok(())
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
        check_key(key)?;
        self.check_writable()?;
        let layout = ArrayLayout::new(dtype, shape, self.options.encoding)?;
        let raw_len = layout.raw_len();
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        // Bytes emitted, and how many were offered when that count came out wrong.
        let mut emitted = 0u64;
        let mut wrong_len = None;
        let appended = self.container.append(new, |sink| {
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
        let shape = array.shape().to_vec();
        match array.as_slice() {
            Some(data) => self.insert_array(key, data, &shape),
            None => {
                let data: Vec<T> = array.iter().copied().collect();
                self.insert_array(key, &data, &shape)
            }
        }
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
        if data.len() != mask.len() {
            return Err(Error::new(
                ErrorKind::MaskLength {
                    data: data.len(),
                    mask: mask.len(),
                },
                0,
            ));
        }
        let mask_bytes: Vec<u8> = mask.iter().map(|&masked| u8::from(masked)).collect();
        self.insert_masked_bytes(key, &T::dtype(), shape, bytemuck_bytes(data), &mask_bytes)
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
        check_key(key)?;
        self.check_writable()?;
        let layout = MaskedLayout::new(dtype, shape)?;
        for (raw, part) in [(data, &layout.header().data), (mask, &layout.header().mask)] {
            if part.raw_len != raw.len() as u64 {
                return Err(data_length_error(raw.len() as u64, part.raw_len));
            }
        }
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        append_array_value(&mut self.container, new, |sink| {
            layout.write_to(sink, data, mask)
        })?;
        Ok(())
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
        check_key(key)?;
        self.check_writable()?;
        let layout = stub.layout()?;
        let new = self.array_entry(key, layout.value_len(), layout.raw_offset());
        append_array_value(&mut self.container, new, |sink| {
            stub.write_to(sink).map(drop)
        })?;
        Ok(())
    }

    // ---- reading ----

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
        let token = Arc::clone(&self.maps);
        self.container
            .with_lock(|container| -> Result<Item, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                let value_offset = entry.value_offset();
                // A small value is read once, whole, and told apart from those bytes; a
                // large one (maybe an array to map) only has its head read first.
                let small_value = if entry.value_len() <= SMALL_VALUE_LEN {
                    Some(container.read_value(&entry)?)
                } else {
                    None
                };
                let form = match &small_value {
                    Some(bytes) => value_form_of(&mut bytes.as_slice(), value_offset),
                    None => value_form(container.file(), &entry),
                };
                // The whole value: the small one already read, or a large one read now.
                let mut whole_value = |small_value: Option<Vec<u8>>| match small_value {
                    Some(bytes) => Ok(bytes),
                    None => container.read_value(&entry),
                };
                let form = match form {
                    Ok(form) => form,
                    // An array expression whose header numpy would refuse.
                    Err(array_error) if is_malformed_array_header(&array_error) => {
                        return Err(array_error)
                    }
                    // Starts like an array but is not one we can map: it may still be an
                    // ordinary value; if not, the array error says more.
                    Err(array_error) => {
                        let bytes = whole_value(small_value)?;
                        return decode_entry_value(&bytes, &limits)
                            .map(Item::Value)
                            .map_err(|_| array_error);
                    }
                };
                Ok(match form {
                    ValueForm::Generic => {
                        let bytes = whole_value(small_value)?;
                        let value = decode_entry_value(&bytes, &limits)
                            .map_err(|error| Error::codec_at(error, value_offset))?;
                        Item::Value(value)
                    }
                    ValueForm::Array(header) => Item::Array(
                        map_bytes(container, value_offset, header)?
                            .with_keep_alive(Box::new(token)),
                    ),
                    ValueForm::Masked(header) => Item::Masked(MaskedBytes {
                        data: map_bytes(container, value_offset, header.data)?
                            .with_keep_alive(Box::new(Arc::clone(&token))),
                        mask: map_bytes(container, value_offset, header.mask)?
                            .with_keep_alive(Box::new(token)),
                    }),
                })
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
                if let Err(array_error) = value_form(container.file(), &entry) {
                    if is_malformed_array_header(&array_error) {
                        return Err(array_error);
                    }
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
        let token = Arc::clone(&self.maps);
        self.with_array::<T, _>(key, |file, data_offset, header| {
            let map = MappedArray::<T>::map(file, data_offset, header.dtype, &header.shape)?;
            Ok(map.with_keep_alive(Box::new(token)))
        })
    }

    /// The array of `key`, mapped writable: changes go straight to the file (and to every
    /// process mapping it). [`ErrorKind::ReadOnly`] on a read-only dict.
    pub fn array_mut<T: Element>(&mut self, key: &str) -> Result<MappedArrayMut<T>, Error> {
        self.check_writable()?;
        let token = Arc::clone(&self.maps);
        self.with_array::<T, _>(key, |file, data_offset, header| {
            let map = MappedArrayMut::<T>::map(file, data_offset, header.dtype, &header.shape)?;
            Ok(map.with_keep_alive(Box::new(token)))
        })
    }

    /// The masked array of `key`, data and mask mapped read-only and typed.
    pub fn masked<T: Element>(&mut self, key: &str) -> Result<MaskedArray<T>, Error> {
        let token = Arc::clone(&self.maps);
        self.container
            .with_lock(|container| -> Result<MaskedArray<T>, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                let value_offset = entry.value_offset();
                let ValueForm::Masked(header) = value_form(container.file(), &entry)? else {
                    let key = key.to_owned();
                    return Err(Error::new(ErrorKind::NotMasked { key }, value_offset));
                };
                check_element::<T>(key, &header.data.dtype, value_offset)?;
                let data = map_bytes(container, value_offset, header.data)?.typed::<T>()?;
                let mask = map_bytes(container, value_offset, header.mask)?.typed::<Bool>()?;
                Ok(MaskedArray {
                    data: data.with_keep_alive(Box::new(Arc::clone(&token))),
                    mask: mask.with_keep_alive(Box::new(token)),
                })
            })
            .map_err(Error::from)?
    }

    /// Finds the plain array of `key`, checks its element type, and runs `map` on the file,
    /// the data's offset and the header, all under the lock (the region cannot move).
    fn with_array<T: Element, R>(
        &mut self,
        key: &str,
        map: impl FnOnce(&std::fs::File, u64, ArrayHeader) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.container
            .with_lock(|container| -> Result<R, Error> {
                let entry = container.get(key)?.ok_or_else(|| key_not_found(key))?;
                let value_offset = entry.value_offset();
                let ValueForm::Array(header) = value_form(container.file(), &entry)? else {
                    let key = key.to_owned();
                    return Err(Error::new(ErrorKind::NotAnArray { key }, value_offset));
                };
                check_element::<T>(key, &header.dtype, value_offset)?;
                let data_offset = checked_data_offset(value_offset, &header)?;
                map(container.file(), data_offset, header)
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

    // ---- the key set ----

    /// Whether `key` is live.
    pub fn contains_key(&mut self, key: &str) -> Result<bool, Error> {
        Ok(self.container.get(key)?.is_some())
    }

    /// The live keys, in file order (the order `pickle.load` gives).
    pub fn keys(&mut self) -> Result<Vec<String>, Error> {
        Ok(self.container.keys()?)
    }

    /// The number of live keys.
    pub fn len(&mut self) -> Result<usize, Error> {
        Ok(self.container.table()?.n_live())
    }

    /// Whether there are no live keys.
    pub fn is_empty(&mut self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Every entry in the file, deleted and padding entries included (for tools).
    pub fn entries(&mut self) -> Result<Vec<Entry>, Error> {
        Ok(self.container.table()?.entries().to_vec())
    }

    /// Deletes `key` (one byte flips in the file); returns whether it was there.
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        self.check_writable()?;
        Ok(self.container.remove(key)?)
    }

    /// The commit number: it changes on every insert and remove, by any handle or process.
    pub fn commit_number(&mut self) -> Result<i32, Error> {
        Ok(self.container.commit_number()?)
    }

    /// How many maps handed out by this dict (arrays, masked parts) are still alive.
    pub fn live_maps(&self) -> usize {
        Arc::strong_count(&self.maps).saturating_sub(1)
    }

    /// Removes deleted entries and gives their space back (the file is rewritten beside and
    /// renamed over). Refused with [`ErrorKind::MapsAlive`] while maps from this dict are
    /// alive.
    ///
    /// ```
    /// use mmappickle::{ErrorKind, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("vacuum.mmdpickle"))?;
    /// m.insert_array("a", &[1.0f64, 2.0], &[2])?;
    /// m.insert("gone", "soon")?;
    /// m.remove("gone")?;
    /// let map = m.array::<f64>("a")?;
    /// assert!(matches!(m.vacuum().unwrap_err().kind(), ErrorKind::MapsAlive { count: 1 }));
    /// drop(map);
    /// let report = m.vacuum()?;
    /// assert!(report.len_after < report.len_before);
    /// assert_eq!(m.keys()?, ["a"]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn vacuum(&mut self) -> Result<VacuumReport, Error> {
        self.check_writable()?;
        let count = self.live_maps();
        if count > 0 {
            return Err(Error::new(ErrorKind::MapsAlive { count }, 0));
        }
        Ok(self.container.vacuum()?)
    }

    /// Repairs a damaged file (a torn last entry, a missing terminator): keeps every complete
    /// entry, completes a last entry that was cut after its value, and reports what was
    /// dropped. Open with
    /// [`MmapDictOptions::allow_damaged`] to reach a file that fails to open otherwise.
    pub fn fsck(&mut self) -> Result<FsckReport, Error> {
        self.check_writable()?;
        // A last entry cut after its value is completed first (the file gets its old size
        // back); whatever else is torn, fsck drops.
        let limits = &self.options.limits;
        self.container.complete_torn_entry(|value, memo_start| {
            bindings::whole_value_memo_max(value, memo_start, limits)
        })?;
        Ok(self.container.fsck()?)
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

/// Raw bytes given to a writer that do not fill the dtype and shape.
fn data_length_error(found: u64, expected: u64) -> Error {
    Error::from(mmappickle_array::Error::new(
        mmappickle_array::ErrorKind::DataLength { found, expected },
        0,
    ))
}

fn bytemuck_bytes<T: Element>(data: &[T]) -> &[u8] {
    bytemuck::cast_slice(data)
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

/// Reads the head of `entry`'s value to tell an array, a masked array and a generic value
/// apart (only the expression's opcodes are read, never the raw data).
fn value_form(file: &std::fs::File, entry: &Entry) -> Result<ValueForm, Error> {
    let value_offset = entry.value_offset();
    value_form_of(
        &mut FileValue::new(file, value_offset, entry.value_len()),
        value_offset,
    )
}

/// [`value_form`] of a value's bytes from any source (`value_offset` places its errors).
fn value_form_of<S: ValueSource + ?Sized>(
    source: &mut S,
    value_offset: u64,
) -> Result<ValueForm, Error> {
    if let Some(header) =
        read_array_header(source).map_err(|error| Error::array_at(error, value_offset))?
    {
        return Ok(ValueForm::Array(header));
    }
    if let Some(header) =
        read_masked_header(source).map_err(|error| Error::array_at(error, value_offset))?
    {
        return Ok(ValueForm::Masked(header));
    }
    Ok(ValueForm::Generic)
}

/// Whether `error` (from [`value_form`]) says that the value is an array expression whose
/// header numpy would refuse (raw length against shape x itemsize, a shape that overflows or
/// is negative, too many dimensions, a number dtype of no numpy size): such an entry is an
/// error, not a value. Other array errors (an opcode where the fixed form has another) leave
/// a value that only starts like an array, read as a generic value.
fn is_malformed_array_header(error: &Error) -> bool {
    use mmappickle_array::ErrorKind as Kind;
    let ErrorKind::Array(array_error) = error.kind() else {
        return false;
    };
    matches!(
        array_error.kind(),
        Kind::LengthMismatch { .. }
            | Kind::Overflow
            | Kind::NegativeDim(_)
            | Kind::TooManyDims(_)
            | Kind::BadDType(_)
    )
}

fn checked_data_offset(value_offset: u64, header: &ArrayHeader) -> Result<u64, Error> {
    value_offset.checked_add(header.raw_offset).ok_or_else(|| {
        Error::array_at(
            mmappickle_array::Error::new(mmappickle_array::ErrorKind::Overflow, header.raw_offset),
            value_offset,
        )
    })
}

/// Maps an array part of a value read-only (called under the container's lock).
fn map_bytes(
    container: &Container,
    value_offset: u64,
    header: ArrayHeader,
) -> Result<MappedBytes, Error> {
    let data_offset = checked_data_offset(value_offset, &header)?;
    Ok(MappedBytes::map(
        container.file(),
        data_offset,
        header.dtype,
        &header.shape,
    )?)
}

/// The path `<path>.<what>-<pid>` beside `path`.
pub(crate) fn scratch_path(path: &Path, what: &str) -> PathBuf {
    let mut name = scratch_prefix(path, what).into_os_string();
    name.push(std::process::id().to_string());
    PathBuf::from(name)
}

/// `<path>.<what>-`: the scratch files of `what` are this and a process id.
fn scratch_prefix(path: &Path, what: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The bound is the format's: 255 bytes of UTF-8, not 255 characters.
    #[test]
    fn key_length_is_counted_in_utf8_bytes() {
        assert!(check_key(&"k".repeat(255)).is_ok());
        let two_byte_chars = "é".repeat(128);
        let error = check_key(&two_byte_chars).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::KeyTooLong { len: 256 }));
    }

    // The scratch file of a convert sits beside the original, in the same directory.
    #[test]
    fn scratch_path_is_beside_the_file() {
        let scratch = scratch_path(Path::new("/data/x.pkl"), "converting");
        assert_eq!(scratch.parent(), Some(Path::new("/data")));
        let name = scratch.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("x.pkl.converting-"), "{name}");
    }
}
