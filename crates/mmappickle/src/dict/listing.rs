//! The file as tools list it: every entry with what its value holds, and the file's facts,
//! read under one lock from one map of the file.

use std::sync::Arc;

use mmappickle_array::{classify, ValueKind};
use mmappickle_container::{Entry, Table};

use super::MmapDict;
use crate::error::Error;

/// One entry of the file with what its value holds, borrowed from a [`Listing`].
#[derive(Debug, Clone, Copy)]
pub struct EntryInfo<'a> {
    /// Where the entry is, its key, its flags.
    pub entry: &'a Entry,
    /// What the value holds, from the one classifier ([`classify`]); `None` for a
    /// padding entry, and for every entry of an [`MmapDict::listing_without_kinds`]. Offsets
    /// in a [`ValueKind::Malformed`] error and in headers are relative to the value (at
    /// [`Entry::value_offset`]).
    pub kind: Option<&'a ValueKind>,
    /// A live entry that is not its key's value: an older duplicate left by an interrupted
    /// replace (a read-write open deletes it).
    pub shadowed: bool,
}

impl EntryInfo<'_> {
    /// The absolute file offset and length of the (data) array's raw bytes, for array
    /// entries; `None` for other entries.
    pub fn data_range(&self) -> Option<(u64, u64)> {
        let header = self.kind?.data_header()?;
        let offset = self.entry.value_offset().checked_add(header.raw_offset)?;
        Some((offset, header.raw_len))
    }
}

/// What [`MmapDict::listing`] reads: the file's facts and every entry, as of one moment. It
/// shares the table the read scanned (no entry is copied) and keeps the kinds of the values
/// that are not plain values (a dict of many small values costs no memory per entry).
#[derive(Debug)]
pub struct Listing {
    table: Arc<Table>,
    /// Whether values were classified (a listing, not an entry listing).
    with_kinds: bool,
    /// The kind of every value that is not a plain generic value (arrays, masked arrays,
    /// malformed headers, values that only start like arrays), after its entry's index, in
    /// file order.
    other_kinds: Vec<(usize, ValueKind)>,
}

impl Listing {
    /// The listing of `table` with what each value holds: `classify_value` is asked for
    /// every entry but padding (a remote file's listing classifies values it fetched).
    pub fn new<E>(
        table: Arc<Table>,
        mut classify_value: impl FnMut(&Entry) -> Result<ValueKind, E>,
    ) -> Result<Listing, E> {
        let mut other_kinds = Vec::new();
        for (entry_idx, entry) in table.entries().iter().enumerate() {
            if entry.is_padding() {
                continue;
            }
            match classify_value(entry)? {
                ValueKind::Generic { not_an_array: None } => {}
                kind => other_kinds.push((entry_idx, kind)),
            }
        }
        Ok(Listing {
            with_kinds: true,
            other_kinds,
            ..Listing::without_kinds(table)
        })
    }

    /// The listing of `table` without what values hold (every [`EntryInfo::kind`] is
    /// `None`).
    pub fn without_kinds(table: Arc<Table>) -> Listing {
        Listing {
            with_kinds: false,
            other_kinds: Vec::new(),
            table,
        }
    }

    /// Every entry in file order: live, deleted and padding ones.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = EntryInfo<'_>> + '_ {
        let table = &*self.table;
        let mut other_kinds = self.other_kinds.iter().peekable();
        // Only when some key is live twice is the key index asked whether an entry is shadowed.
        let may_shadow = table.has_shadowed();
        table
            .entries()
            .iter()
            .enumerate()
            .map(move |(entry_idx, entry)| EntryInfo {
                entry,
                kind: match other_kinds.next_if(|(at, _)| *at == entry_idx) {
                    Some((_, kind)) => Some(kind),
                    None if self.with_kinds && !entry.is_padding() => Some(&PLAIN_VALUE),
                    None => None,
                },
                shadowed: may_shadow && table.is_shadowed(entry_idx),
            })
    }

    /// The entry table the listing was made from.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The commit number in the header.
    pub fn commit_number(&self) -> i32 {
        self.table.commit_number()
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.table.file_len()
    }

    /// The number of live keys.
    pub fn n_live(&self) -> usize {
        self.table.n_live()
    }
}

impl MmapDict {
    /// Every entry of the file (deleted and padding entries too) with what it holds, and the
    /// file's facts, all read under one lock from one read-only map of the file: the heads
    /// of values are classified in memory, the raw data of arrays is never touched.
    ///
    /// ```
    /// use mmappickle::{MmapDict, ValueKind};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("listing.mmdpickle"))?;
    /// m.insert("name", "value")?;
    /// m.insert_array("grid", &[1i32, 2, 3, 4], &[2, 2])?;
    /// let listing = m.listing()?;
    /// let kinds: Vec<_> = listing
    ///     .entries()
    ///     .filter(|info| info.entry.is_live())
    ///     .map(|info| (info.entry.key(), info.kind.map(ValueKind::name)))
    ///     .collect();
    /// assert_eq!(kinds, [("name", Some("value")), ("grid", Some("array"))]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn listing(&self) -> Result<Listing, Error> {
        let snapshot = self.read()?;
        let view = snapshot.view()?;
        listing_of(view.table(), Some(view.bytes()))
    }

    /// The listing without what values hold (every [`EntryInfo::kind`] is `None`): no value
    /// is read, for tools that count entries and bytes.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("listing_without_kinds.mmdpickle"))?;
    /// m.insert("a", 1)?;
    /// m.insert("b", 2)?;
    /// m.remove("a")?;
    /// let listing = m.listing_without_kinds()?;
    /// assert_eq!((listing.n_live(), listing.entries().len()), (1, 2));
    /// assert!(listing.entries().all(|info| info.kind.is_none()));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn listing_without_kinds(&self) -> Result<Listing, Error> {
        let snapshot = self.read()?;
        listing_of(snapshot.view()?.table(), None)
    }
}

/// The kind of most values: a generic value that does not start like an array.
static PLAIN_VALUE: ValueKind = ValueKind::Generic { not_an_array: None };

/// The listing of `table`, with kinds when given `file`, the map of the whole file it was
/// scanned from.
pub(super) fn listing_of(table: &Arc<Table>, file: Option<&[u8]>) -> Result<Listing, Error> {
    let table = Arc::clone(table);
    match file {
        Some(file) => Listing::new(table, |entry| {
            classify(&mut value_bytes(file, entry))
                .map_err(|error| Error::array_at(error, entry.value_offset()))
        }),
        None => Ok(Listing::without_kinds(table)),
    }
}

/// The bytes of `entry`'s value in `file` (the scan checked that they lie inside it).
pub(super) fn value_bytes<'f>(file: &'f [u8], entry: &Entry) -> &'f [u8] {
    usize::try_from(entry.value_offset())
        .ok()
        .zip(usize::try_from(entry.value_len()).ok())
        .and_then(|(start, len)| file.get(start..start.checked_add(len)?))
        .unwrap_or_default()
}
