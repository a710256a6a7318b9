//! The read-only dict over a remote file: [`AsyncRemoteDict`] and the blocking [`RemoteDict`].
//! What a value holds is told by the facade's read core, over bytes read through the block
//! cache; arrays come back read into memory.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use mmappickle::array::classify;
use mmappickle::container::{ByteSource, Entry, ScanProgress, Scanner, Table};
use mmappickle::{
    decode_any_value, decode_value, locate_value, refuse_malformed, ArrayData, ArrayPlace, Item,
    Listing, Located, MaskedBytes, OwnedArray, Value, ValueKind,
};

use crate::cache::{BlockCache, CachedValue};
use crate::error::{layout_error, Error, ErrorKind};
use crate::object::{RemoteObject, Transfer};
use crate::options::RemoteOptions;

/// The remote file's bytes: the object at the version first read, and the block cache.
#[derive(Debug)]
struct RemoteFile {
    object: RemoteObject,
    cache: Mutex<BlockCache>,
}

impl RemoteFile {
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
    /// likely in a block read already), else as [`RemoteFile::bytes_into`] reads them.
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
    file: RemoteFile,
    table: Arc<Table>,
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
        let file = RemoteFile {
            object,
            cache: Mutex::new(cache),
        };
        let mut scanner = Scanner::default();
        let table = loop {
            let progress = scanner.resume(&*file.cache()).map_err(layout_error)?;
            match progress {
                ScanProgress::Done(table) => break table,
                ScanProgress::NeedBytes(range) => file.load(range).await?,
            }
        };
        Ok(AsyncRemoteDict {
            file,
            table: Arc::new(table),
            options,
        })
    }

    /// The entry table read at the open (entries, commit number, lengths).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Every entry (deleted and padding ones too) with what its value holds, by the one
    /// classifier over its head (array payloads are not fetched), as
    /// [`MmapDict::listing`](mmappickle::MmapDict::listing) lists a local file.
    pub async fn listing(&self) -> Result<Listing, Error> {
        let mut kinds = Vec::new();
        for entry in self
            .table
            .entries()
            .iter()
            .filter(|entry| !entry.is_padding())
        {
            kinds.push(self.value_kind(entry).await?);
        }
        // Asked in the same order: every entry but padding.
        let mut kinds = kinds.into_iter();
        Listing::new(Arc::clone(&self.table), |entry| {
            kinds.next().ok_or_else(|| {
                let stale = mmappickle::container::ErrorKind::StaleEntry;
                layout_error(mmappickle::container::Error::new(stale, entry.offset()))
            })
        })
    }

    /// The listing without what values hold (no value is fetched), for tools that count
    /// entries and bytes.
    pub fn listing_without_kinds(&self) -> Listing {
        Listing::without_kinds(Arc::clone(&self.table))
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
        self.file.object.transfer()
    }

    /// The bytes the block cache holds now (at most the budget, plus small joined reads).
    pub fn cached_bytes(&self) -> u64 {
        self.file.cache().held()
    }

    fn entry(&self, key: &str) -> Result<&Entry, Error> {
        self.table.get(key).ok_or_else(|| {
            Error::unplaced(ErrorKind::KeyNotFound {
                key: key.to_owned(),
            })
        })
    }

    /// Where the parts of the value of `entry` are, by the read core over its head.
    async fn locate_entry(&self, entry: &Entry) -> Result<Located, Error> {
        locate_value(entry, self.value_kind(entry).await?)
    }

    /// What `key` holds, without reading a value or an array's payload: where a generic
    /// value's bytes are, or where an array's are.
    pub async fn locate(&self, key: &str) -> Result<Located, Error> {
        self.locate_entry(self.entry(key)?).await
    }

    /// What `key` holds: a generic value decoded, or an array read whole into memory.
    pub async fn get(&self, key: &str) -> Result<Item, Error> {
        let entry = self.entry(key)?;
        Ok(match self.locate_entry(entry).await? {
            Located::Value(place) => {
                let bytes = self.file.bytes(place.range(), self.is_small(entry)).await?;
                Item::Value(decode_value(&bytes, place, &self.options.limits)?)
            }
            Located::Array(place) => Item::Array(ArrayData::Owned(self.read_array(place).await?)),
            Located::Masked { data, mask } => Item::Masked(MaskedBytes {
                data: ArrayData::Owned(self.read_array(data).await?),
                mask: ArrayData::Owned(self.read_array(mask).await?),
            }),
        })
    }

    /// The value of `key` decoded as a generic pickled value, whatever the entry holds (an
    /// array gives its expression tree, read whole).
    pub async fn value(&self, key: &str) -> Result<Value, Error> {
        let entry = self.entry(key)?;
        // Refused before its bytes are fetched.
        refuse_malformed(entry, self.value_kind(entry).await?)?;
        let bytes = self
            .file
            .bytes(entry.value_range(), self.is_small(entry))
            .await?;
        decode_any_value(&bytes, entry, &self.options.limits)
    }

    /// What the value of `entry` (of [`AsyncRemoteDict::table`], deleted ones included) is,
    /// by the one classifier ([`classify`]) over its head read through the cache (an array's
    /// payload is not read). Offsets in headers and in a [`ValueKind::Malformed`] error are
    /// relative to the value.
    pub async fn value_kind(&self, entry: &Entry) -> Result<ValueKind, Error> {
        // The cache is the only source and never fails with I/O errors: bytes it lacks are
        // fetched and the classification run again.
        let kind = self
            .file
            .parse_value(entry, |value| classify(value))
            .await?;
        kind.map_err(|error| Error::array_at(error, entry.value_offset()))
    }

    /// The bytes `range` of the remote file (fetched exactly, in parallel pieces when large).
    pub async fn read_range(&self, range: Range<u64>) -> Result<Vec<u8>, Error> {
        if range.start > range.end || range.end > self.table.file_len() {
            return Err(past_the_end(&range, self.table.file_len()));
        }
        self.file.bytes(range, false).await
    }

    /// The value bytes of `key` as stored (pickle opcodes without `PROTO`, `FRAME`, `STOP`).
    pub async fn raw_value(&self, key: &str) -> Result<Vec<u8>, Error> {
        let entry = self.entry(key)?;
        self.file
            .bytes(entry.value_range(), self.is_small(entry))
            .await
    }

    /// The plain array of `key`, read whole.
    pub async fn array(&self, key: &str) -> Result<OwnedArray, Error> {
        self.read_array(self.array_place(key).await?).await
    }

    /// Rows `rows` of the plain array of `key` (its first axis; C order, so one contiguous
    /// byte range), fetched without the rest of the array.
    pub async fn array_rows(&self, key: &str, rows: Range<usize>) -> Result<OwnedArray, Error> {
        self.read_array(self.array_place(key).await?.rows(rows)?)
            .await
    }

    /// Where the plain array of `key` is: its dtype, shape and byte range (its payload is not
    /// read), what sizes a buffer for [`AsyncRemoteDict::read_into`].
    pub async fn array_place(&self, key: &str) -> Result<ArrayPlace, Error> {
        let entry = self.entry(key)?;
        self.locate_entry(entry)
            .await?
            .into_array(key, entry.value_offset())
    }

    /// The raw bytes (C order) of the array part at `place` (of [`Self::array_place`],
    /// or rows of it) into `out`, a buffer of the caller's (a numpy array's, a huge-page
    /// map), exactly as long as the part.
    pub async fn read_into(&self, place: &ArrayPlace, out: &mut [u8]) -> Result<(), Error> {
        if place.raw_len() != out.len() as u64 {
            return Err(Error::unplaced(ErrorKind::BufferLength {
                expected: place.raw_len(),
                found: out.len(),
            }));
        }
        self.file.bytes_into(place.data_offset, out).await
    }

    /// Whether the value of `entry` is read through the cache (at most a block long).
    fn is_small(&self, entry: &Entry) -> bool {
        entry.value_len() <= self.options.block_size
    }

    /// The array part at `place` (of [`Self::locate`] or [`Self::array_place`]), read into
    /// memory.
    pub async fn read_array(&self, place: ArrayPlace) -> Result<OwnedArray, Error> {
        let data_offset = place.data_offset;
        let data = self.file.bytes(place.range(), false).await?;
        OwnedArray::new(place.dtype, place.shape, data)
            .map_err(|error| Error::array_at(error, data_offset))
    }
}

/// The runtime every blocking handle runs its reads on, started at the first open.
fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mmappickle-remote")
        .enable_all()
        .build()
        .map_err(|error| Error::unplaced(ErrorKind::Io(error)))?;
    // Two first opens may race: one runtime is kept, the other dropped unused.
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The blocking face of [`AsyncRemoteDict`]: the same reads, run on one runtime shared by
/// every blocking handle of the process. The reads that need no request (keys, table,
/// counts) are those of the async dict, reached through `Deref`.
#[derive(Debug)]
pub struct RemoteDict {
    runtime: &'static tokio::runtime::Runtime,
    inner: AsyncRemoteDict,
}

impl std::ops::Deref for RemoteDict {
    type Target = AsyncRemoteDict;

    fn deref(&self) -> &AsyncRemoteDict {
        &self.inner
    }
}

/// Blocking methods running the async dict's method of the same name.
macro_rules! blocking {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $out:ty;)*) => {$(
        #[doc = concat!("See [`AsyncRemoteDict::", stringify!($name), "`].")]
        pub fn $name(&self $(, $arg: $ty)*) -> Result<$out, Error> {
            self.runtime.block_on(self.inner.$name($($arg),*))
        }
    )*};
}

impl RemoteDict {
    /// Opens `url` (`http(s)://`, `s3://`, `file://`) with the default options.
    pub fn open(url: &str) -> Result<RemoteDict, Error> {
        Self::open_with(url, RemoteOptions::default())
    }

    /// Opens `url` with `options`.
    pub fn open_with(url: &str, options: RemoteOptions) -> Result<RemoteDict, Error> {
        let runtime = runtime()?;
        let inner = runtime.block_on(AsyncRemoteDict::open_with(url, options))?;
        Ok(RemoteDict { runtime, inner })
    }

    /// The async dict inside.
    pub fn as_async(&self) -> &AsyncRemoteDict {
        &self.inner
    }

    blocking! {
        fn listing(&self) -> Listing;
        fn locate(&self, key: &str) -> Located;
        fn get(&self, key: &str) -> Item;
        fn value(&self, key: &str) -> Value;
        fn raw_value(&self, key: &str) -> Vec<u8>;
        fn value_kind(&self, entry: &Entry) -> ValueKind;
        fn read_range(&self, range: Range<u64>) -> Vec<u8>;
        fn array(&self, key: &str) -> OwnedArray;
        fn array_rows(&self, key: &str, rows: Range<usize>) -> OwnedArray;
        fn array_place(&self, key: &str) -> ArrayPlace;
        fn read_into(&self, place: &ArrayPlace, out: &mut [u8]) -> ();
        fn read_array(&self, place: ArrayPlace) -> OwnedArray;
    }
}
