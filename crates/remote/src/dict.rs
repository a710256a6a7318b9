//! The read-only dict over a remote file: [`AsyncRemoteDict`] and the blocking [`RemoteDict`].

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use mmappickle_array::{checked_raw_len, classify, ArrayHeader, OwnedArray, ValueKind};
use mmappickle_codec::{decode_entry_value, Value};
use mmappickle_container::{ByteSource, Entry, ScanProgress, Scanner, Table};

use crate::cache::{BlockCache, CachedValue};
use crate::error::{Error, ErrorKind};
use crate::object::{RemoteObject, Transfer};
use crate::options::RemoteOptions;

/// What a key holds, read into memory: a generic value, an array, or a masked array.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteItem {
    /// A generic Python value, decoded (never run).
    Value(Value),
    /// A numpy array.
    Array(OwnedArray),
    /// A `numpy.ma.MaskedArray`: its data and its mask (dtype `bool`, the data's shape or 0-d).
    Masked {
        /// The data.
        data: OwnedArray,
        /// The mask.
        mask: OwnedArray,
    },
}

/// The remote file's bytes: the object at the version first read, and the block cache.
#[derive(Debug)]
struct Source {
    object: RemoteObject,
    cache: Mutex<BlockCache>,
}

impl Source {
    fn cache(&self) -> MutexGuard<'_, BlockCache> {
        // A panic elsewhere cannot leave the cache half-changed: every change is one insert.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches the blocks of `range` the cache lacks (at once), and joins them when the range
    /// crosses a block boundary.
    async fn load(&self, range: Range<u64>) -> Result<(), Error> {
        let wanted: Vec<(u64, Range<u64>)> = {
            let cache = self.cache();
            let missing = cache.missing_blocks(&range);
            missing
                .into_iter()
                .map(|block_idx| (block_idx, cache.block_range(block_idx)))
                .collect()
        };
        let fetched = futures::future::try_join_all(wanted.into_iter().map(
            |(block_idx, block_range)| async move {
                let mut block = vec![0; (block_range.end - block_range.start) as usize];
                self.object.read_exact(block_range, &mut block).await?;
                Ok::<_, Error>((block_idx, block))
            },
        ))
        .await?;
        self.cache().insert_and_join(fetched, range);
        Ok(())
    }

    /// The bytes of `range` (inside the file) through the cache.
    async fn cached_bytes(&self, range: Range<u64>) -> Result<Vec<u8>, Error> {
        loop {
            let missing = match self.cache().bytes_at(range.start, range.end - range.start) {
                Ok(Some(bytes)) => return Ok(bytes.to_vec()),
                Ok(None) => return Err(past_the_end(&range, self.object.len())),
                Err(not_loaded) => not_loaded.range,
            };
            self.load(missing).await?;
        }
    }

    /// The bytes of `range` (inside the file): through the cache when `cached` (small values,
    /// likely in a block read already), else as [`Source::bytes_into`] reads them.
    async fn bytes(&self, range: Range<u64>, cached: bool) -> Result<Vec<u8>, Error> {
        if cached {
            return self.cached_bytes(range).await;
        }
        let mut out = zeroed(range.end - range.start, range.start)?;
        self.bytes_into(range.start, &mut out).await?;
        Ok(out)
    }

    /// Fills `out` with the bytes at `offset`: from the cache when it holds them, else fetched
    /// exactly, in parallel pieces when large.
    async fn bytes_into(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        if let Ok(Some(bytes)) = self.cache().bytes_at(offset, out.len() as u64) {
            out.copy_from_slice(bytes);
            return Ok(());
        }
        self.object.read_into(offset, out).await
    }

    /// Runs `parse` over the value of `entry` read through the cache, fetching what it asks
    /// for until it has all it needs.
    async fn parse_value<T>(
        &self,
        entry: &Entry,
        mut parse: impl FnMut(&mut CachedValue<'_>) -> T,
    ) -> Result<T, Error> {
        loop {
            let missing = {
                let cache = self.cache();
                let mut value = CachedValue {
                    cache: &cache,
                    value_range: entry.value_range(),
                    missing: None,
                };
                let parsed = parse(&mut value);
                match value.missing {
                    None => return Ok(parsed),
                    Some(missing) => missing,
                }
            };
            self.load(missing).await?;
        }
    }
}

fn past_the_end(range: &Range<u64>, file_len: u64) -> Error {
    Error::new(
        ErrorKind::BadResponse {
            requested: range.clone(),
            problem: format!("past the end of the {file_len}-byte object"),
        },
        range.start,
    )
}

/// A zeroed buffer of `len` bytes, or an error when this machine cannot hold it (the length
/// comes from the remote file).
fn zeroed(len: u64, offset: u64) -> Result<Vec<u8>, Error> {
    let too_large = || Error::new(ErrorKind::TooLarge { len }, offset);
    let len = usize::try_from(len).map_err(|_| too_large())?;
    // Asked first without touching memory, so that an impossible length is an error; the
    // zeroed buffer then comes from the allocator's zeroed pages (no memset of gigabytes).
    Vec::<u8>::new()
        .try_reserve_exact(len)
        .map_err(|_| too_large())?;
    Ok(vec![0; len])
}

/// A read-only dict over a remote mmappickle file (HTTP(S), S3, local files), for async
/// callers: the table is read at the open, values and arrays on demand.
///
/// Every request after the first is conditional on the version the first one saw: a file
/// replaced while it is read gives an [`ErrorKind::Changed`] error, never a mix of versions.
#[derive(Debug)]
pub struct AsyncRemoteDict {
    source: Source,
    table: Table,
    options: RemoteOptions,
}

impl AsyncRemoteDict {
    /// Opens `url` with the default options.
    pub async fn open(url: &str) -> Result<AsyncRemoteDict, Error> {
        Self::open_with(url, RemoteOptions::default()).await
    }

    /// Opens `url`: reads its first block (one request), then the entry heads and trailers
    /// through the block cache, never the values.
    pub async fn open_with(url: &str, options: RemoteOptions) -> Result<AsyncRemoteDict, Error> {
        let (object, first_block) = RemoteObject::open(url, &options).await?;
        let mut cache =
            BlockCache::new(object.len(), options.block_size, options.effective_budget());
        cache.insert(0, first_block);
        let source = Source {
            object,
            cache: Mutex::new(cache),
        };
        let mut scanner = Scanner::default();
        let table = loop {
            let progress = scanner.resume(&*source.cache())?;
            match progress {
                ScanProgress::Done(table) => break table,
                ScanProgress::NeedBytes(range) => source.load(range).await?,
            }
        };
        Ok(AsyncRemoteDict {
            source,
            table,
            options,
        })
    }

    /// The entry table read at the open (entries, commit number, lengths).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The live keys in file order.
    pub fn keys(&self) -> Vec<String> {
        self.table.keys().map(str::to_owned).collect()
    }

    /// Whether `key` has a live entry.
    pub fn contains_key(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.table.n_live()
    }

    /// Whether the dict has no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests made and bytes received since the open (the open included).
    pub fn transfer(&self) -> Transfer {
        self.source.object.transfer()
    }

    /// The bytes the block cache holds now (at most the budget, plus small joined reads).
    pub fn cached_bytes(&self) -> u64 {
        self.source.cache().held()
    }

    fn entry(&self, key: &str) -> Result<&Entry, Error> {
        self.table.get(key).ok_or_else(|| {
            Error::unplaced(ErrorKind::KeyNotFound {
                key: key.to_owned(),
            })
        })
    }

    /// What `key` holds: a generic value decoded, or an array read whole into memory.
    pub async fn get(&self, key: &str) -> Result<RemoteItem, Error> {
        let entry = self.entry(key)?;
        match self.value_kind(entry).await? {
            ValueKind::Malformed(error) => Err(Error::array(error, entry.value_offset())),
            ValueKind::Generic { not_an_array } => self
                .decode(entry, not_an_array)
                .await
                .map(RemoteItem::Value),
            ValueKind::Array(header) => self
                .read_array(entry, &header, None)
                .await
                .map(RemoteItem::Array),
            ValueKind::Masked(header) => Ok(RemoteItem::Masked {
                data: self.read_array(entry, &header.data, None).await?,
                mask: self.read_array(entry, &header.mask, None).await?,
            }),
        }
    }

    /// The value of `key` decoded as a generic pickled value, whatever the entry holds (an
    /// array gives its expression tree, read whole).
    pub async fn value(&self, key: &str) -> Result<Value, Error> {
        let entry = self.entry(key)?;
        match self.value_kind(entry).await? {
            ValueKind::Malformed(error) => Err(Error::array(error, entry.value_offset())),
            ValueKind::Generic { not_an_array } => self.decode(entry, not_an_array).await,
            ValueKind::Array(_) | ValueKind::Masked(_) => self.decode(entry, None).await,
        }
    }

    /// What the value of `entry` (of [`AsyncRemoteDict::table`], deleted ones included) is,
    /// by the one classifier ([`classify`]) over its head read through the cache (an array's
    /// payload is not read). Offsets in headers and in a [`ValueKind::Malformed`] error are
    /// relative to the value.
    pub async fn value_kind(&self, entry: &Entry) -> Result<ValueKind, Error> {
        // The cache is the only source and never fails with I/O errors: bytes it lacks are
        // fetched and the classification run again.
        let kind = self
            .source
            .parse_value(entry, |value| classify(value))
            .await?;
        kind.map_err(|error| Error::array(error, entry.value_offset()))
    }

    /// The bytes `range` of the remote file (fetched exactly, in parallel pieces when large).
    pub async fn read_range(&self, range: Range<u64>) -> Result<Vec<u8>, Error> {
        if range.start > range.end || range.end > self.table.file_len() {
            return Err(past_the_end(&range, self.table.file_len()));
        }
        self.source.bytes(range, false).await
    }

    /// The value bytes of `key` as stored (pickle opcodes without `PROTO`, `FRAME`, `STOP`).
    pub async fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        let entry = self.entry(key)?;
        self.source
            .bytes(entry.value_range(), self.small(entry))
            .await
    }

    /// The plain array of `key`, read whole.
    pub async fn array(&self, key: &str) -> Result<OwnedArray, Error> {
        let (entry, header) = self.entry_and_header(key).await?;
        self.read_array(entry, &header, None).await
    }

    /// Rows `rows` of the plain array of `key` (its first axis; C order, so one contiguous
    /// byte range), fetched without the rest of the array.
    pub async fn array_rows(&self, key: &str, rows: Range<usize>) -> Result<OwnedArray, Error> {
        let (entry, header) = self.entry_and_header(key).await?;
        self.read_array(entry, &header, Some(rows)).await
    }

    /// The dtype, shape and raw length of the plain array of `key` (its payload is not read):
    /// what sizes a buffer for [`AsyncRemoteDict::array_into`].
    pub async fn array_header(&self, key: &str) -> Result<ArrayHeader, Error> {
        Ok(self.entry_and_header(key).await?.1)
    }

    /// The raw bytes (C order) of the plain array of `key` into `out`, a buffer of the
    /// caller's (a numpy array's, a huge-page map), exactly `raw_len` bytes long.
    pub async fn array_into(&self, key: &str, out: &mut [u8]) -> Result<(), Error> {
        self.read_array_into(key, None, out).await
    }

    /// The raw bytes of rows `rows` of the plain array of `key` into `out`, exactly their
    /// length.
    pub async fn array_rows_into(
        &self,
        key: &str,
        rows: Range<usize>,
        out: &mut [u8],
    ) -> Result<(), Error> {
        self.read_array_into(key, Some(rows), out).await
    }

    async fn read_array_into(
        &self,
        key: &str,
        rows: Option<Range<usize>>,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let (entry, header) = self.entry_and_header(key).await?;
        let (_, range) = array_part(entry, &header, rows)?;
        if range.end - range.start != out.len() as u64 {
            return Err(Error::unplaced(ErrorKind::BufferLength {
                expected: range.end - range.start,
                found: out.len(),
            }));
        }
        self.source.bytes_into(range.start, out).await
    }

    async fn entry_and_header(&self, key: &str) -> Result<(&Entry, ArrayHeader), Error> {
        let entry = self.entry(key)?;
        match self.value_kind(entry).await? {
            ValueKind::Array(header) => Ok((entry, *header)),
            // Starts like an array but is not one: the array error says why.
            ValueKind::Malformed(error)
            | ValueKind::Generic {
                not_an_array: Some(error),
            } => Err(Error::array(error, entry.value_offset())),
            _ => Err(Error::new(
                ErrorKind::NotAnArray {
                    key: key.to_owned(),
                },
                entry.value_offset(),
            )),
        }
    }

    /// Whether the value of `entry` is read through the cache (at most a block long).
    fn small(&self, entry: &Entry) -> bool {
        entry.value_len() <= self.options.block_size
    }

    /// The value of `entry` decoded as a generic value. One that only starts like an array
    /// (`not_an_array` says why it is not one) and does not decode either is the array error.
    async fn decode(
        &self,
        entry: &Entry,
        not_an_array: Option<mmappickle_array::Error>,
    ) -> Result<Value, Error> {
        let bytes = self
            .source
            .bytes(entry.value_range(), self.small(entry))
            .await?;
        let value_offset = entry.value_offset();
        decode_entry_value(&bytes, &self.options.limits).map_err(|error| match not_an_array {
            Some(array_error) => Error::array(array_error, value_offset),
            None => Error::codec(error, value_offset),
        })
    }

    /// The array of `header` in the value of `entry`, whole or only `rows`.
    async fn read_array(
        &self,
        entry: &Entry,
        header: &ArrayHeader,
        rows: Option<Range<usize>>,
    ) -> Result<OwnedArray, Error> {
        let (shape, range) = array_part(entry, header, rows)?;
        let data_offset = range.start;
        let data = self.source.bytes(range, false).await?;
        OwnedArray::new(header.dtype.clone(), shape, data)
            .map_err(|error| Error::array(error, data_offset))
    }
}

/// The shape and the file's byte range of the array of `header` in the value of `entry`,
/// whole or only `rows`.
fn array_part(
    entry: &Entry,
    header: &ArrayHeader,
    rows: Option<Range<usize>>,
) -> Result<(Vec<usize>, Range<u64>), Error> {
    let value_offset = entry.value_offset();
    let overflow = || {
        Error::array(
            mmappickle_array::Error::new(mmappickle_array::ErrorKind::Overflow, header.raw_offset),
            value_offset,
        )
    };
    // Within the value, itself within the file (both checked by the parsers).
    let data_offset = value_offset
        .checked_add(header.raw_offset)
        .ok_or_else(overflow)?;
    let Some(rows) = rows else {
        return Ok((
            header.shape.clone(),
            data_offset..data_offset + header.raw_len,
        ));
    };
    let n_rows = header.shape.first().copied().unwrap_or(0);
    if rows.start > rows.end || rows.end > n_rows {
        return Err(Error::unplaced(ErrorKind::RowsOutOfRange { rows, n_rows }));
    }
    let row_len = checked_raw_len(&header.dtype, &header.shape[1..]).ok_or_else(overflow)?;
    let start = data_offset + rows.start as u64 * row_len;
    let end = data_offset + rows.end as u64 * row_len;
    let mut shape = header.shape.clone();
    shape[0] = rows.end - rows.start;
    Ok((shape, start..end))
}

/// The blocking face of [`AsyncRemoteDict`]: the same reads, run on a runtime of its own.
#[derive(Debug)]
pub struct RemoteDict {
    runtime: tokio::runtime::Runtime,
    inner: AsyncRemoteDict,
}

impl RemoteDict {
    /// Opens `url` (`http(s)://`, `s3://`, `file://`) with the default options.
    pub fn open(url: &str) -> Result<RemoteDict, Error> {
        Self::open_with(url, RemoteOptions::default())
    }

    /// Opens `url` with `options`.
    pub fn open_with(url: &str, options: RemoteOptions) -> Result<RemoteDict, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|error| Error::unplaced(ErrorKind::Runtime(error)))?;
        let inner = runtime.block_on(AsyncRemoteDict::open_with(url, options))?;
        Ok(RemoteDict { runtime, inner })
    }

    /// The async dict inside.
    pub fn as_async(&self) -> &AsyncRemoteDict {
        &self.inner
    }

    /// The entry table read at the open.
    pub fn table(&self) -> &Table {
        self.inner.table()
    }

    /// The live keys in file order.
    pub fn keys(&self) -> Vec<String> {
        self.inner.keys()
    }

    /// Whether `key` has a live entry.
    pub fn contains_key(&self, key: &str) -> bool {
        self.inner.contains_key(key)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the dict has no live key.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Requests made and bytes received since the open (the open included).
    pub fn transfer(&self) -> Transfer {
        self.inner.transfer()
    }

    /// See [`AsyncRemoteDict::cached_bytes`].
    pub fn cached_bytes(&self) -> u64 {
        self.inner.cached_bytes()
    }

    /// See [`AsyncRemoteDict::get`].
    pub fn get(&self, key: &str) -> Result<RemoteItem, Error> {
        self.runtime.block_on(self.inner.get(key))
    }

    /// See [`AsyncRemoteDict::value`].
    pub fn value(&self, key: &str) -> Result<Value, Error> {
        self.runtime.block_on(self.inner.value(key))
    }

    /// See [`AsyncRemoteDict::raw_value`].
    pub fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.runtime.block_on(self.inner.raw_value(key))
    }

    /// See [`AsyncRemoteDict::value_kind`].
    pub fn value_kind(&self, entry: &Entry) -> Result<ValueKind, Error> {
        self.runtime.block_on(self.inner.value_kind(entry))
    }

    /// See [`AsyncRemoteDict::read_range`].
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<u8>, Error> {
        self.runtime.block_on(self.inner.read_range(range))
    }

    /// See [`AsyncRemoteDict::array`].
    pub fn array(&self, key: &str) -> Result<OwnedArray, Error> {
        self.runtime.block_on(self.inner.array(key))
    }

    /// See [`AsyncRemoteDict::array_header`].
    pub fn array_header(&self, key: &str) -> Result<ArrayHeader, Error> {
        self.runtime.block_on(self.inner.array_header(key))
    }

    /// See [`AsyncRemoteDict::array_into`].
    pub fn array_into(&self, key: &str, out: &mut [u8]) -> Result<(), Error> {
        self.runtime.block_on(self.inner.array_into(key, out))
    }

    /// See [`AsyncRemoteDict::array_rows_into`].
    pub fn array_rows_into(
        &self,
        key: &str,
        rows: Range<usize>,
        out: &mut [u8],
    ) -> Result<(), Error> {
        self.runtime
            .block_on(self.inner.array_rows_into(key, rows, out))
    }

    /// See [`AsyncRemoteDict::array_rows`].
    pub fn array_rows(&self, key: &str, rows: Range<usize>) -> Result<OwnedArray, Error> {
        self.runtime.block_on(self.inner.array_rows(key, rows))
    }
}
