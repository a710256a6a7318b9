//! The file as tools list it: every entry with what its value holds, and the file's facts,
//! read under one lock from one map of the file.

use mmappickle_array::{classify, ValueKind};
use mmappickle_container::{Entry, Table};

use super::MmapDict;
use crate::error::Error;

/// One entry of the file with what its value holds.
#[derive(Debug)]
pub struct EntryInfo {
    /// Where the entry is, its key, its flags.
    pub entry: Entry,
    /// What the value holds, from the one classifier ([`classify`]); `None` for a
    /// padding entry, and for every entry of an [`MmapDict::entry_listing`]. Offsets in a [`ValueKind::Malformed`] error and in headers are
    /// relative to the value (at [`Entry::value_offset`]).
    pub kind: Option<ValueKind>,
    /// A live entry that is not its key's value: an older duplicate left by an interrupted
    /// replace (a read-write open deletes it).
    pub shadowed: bool,
}

impl EntryInfo {
    /// The absolute file offset and length of the (data) array's raw bytes, for array
    /// entries; `None` for other entries.
    pub fn data_range(&self) -> Option<(u64, u64)> {
        let header = self.kind.as_ref()?.data_header()?;
        let offset = self.entry.value_offset().checked_add(header.raw_offset)?;
        Some((offset, header.raw_len))
    }
}

/// What [`MmapDict::listing`] reads: the file's facts and every entry, as of one moment.
#[derive(Debug)]
pub struct Listing {
    /// The commit number in the header.
    pub commit_number: i32,
    /// The file's length in bytes.
    pub file_len: u64,
    /// The number of live keys.
    pub n_live: usize,
    /// Every entry in file order: live, deleted and padding ones.
    pub entries: Vec<EntryInfo>,
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
    ///     .entries
    ///     .iter()
    ///     .filter(|info| info.entry.is_live())
    ///     .map(|info| (info.entry.key(), info.kind.as_ref().map(ValueKind::name)))
    ///     .collect();
    /// assert_eq!(kinds, [("name", Some("value")), ("grid", Some("array"))]);
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn listing(&self) -> Result<Listing, Error> {
        self.with_file_map(|listing, _| listing)
    }

    /// The listing without what values hold (every [`EntryInfo::kind`] is `None`): no value
    /// is read, for tools that count entries and bytes.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("entry_listing.mmdpickle"))?;
    /// m.insert("a", 1)?;
    /// m.insert("b", 2)?;
    /// m.remove("a")?;
    /// let listing = m.entry_listing()?;
    /// assert_eq!((listing.n_live, listing.entries.len()), (1, 2));
    /// assert!(listing.entries.iter().all(|info| info.kind.is_none()));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn entry_listing(&self) -> Result<Listing, Error> {
        let snapshot = self.read()?;
        listing_of(snapshot.view()?.table(), None)
    }

    /// Runs `read` over the listing and a read-only map of the whole file, both of one read
    /// snapshot.
    pub(super) fn with_file_map<R>(
        &self,
        read: impl FnOnce(Listing, &[u8]) -> R,
    ) -> Result<R, Error> {
        let snapshot = self.read()?;
        let view = snapshot.view()?;
        Ok(read(
            listing_of(view.table(), Some(view.bytes()))?,
            view.bytes(),
        ))
    }
}

/// The listing of `table`, with kinds when given `file`, the map of the whole file it was
/// scanned from.
pub(super) fn listing_of(table: &Table, file: Option<&[u8]>) -> Result<Listing, Error> {
    let mut entries = Vec::with_capacity(table.entries().len());
    // Without two live entries of one key (the usual case) no entry is shadowed: no lookups.
    let n_live_entries = table
        .entries()
        .iter()
        .filter(|entry| entry.is_live())
        .count();
    let may_shadow = n_live_entries != table.n_live();
    for entry in table.entries() {
        let kind = match file {
            Some(file) if !entry.is_padding() => {
                let value = value_bytes(file, entry);
                Some(
                    classify(&mut &value[..])
                        .map_err(|error| Error::array_at(error, entry.value_offset()))?,
                )
            }
            _ => None,
        };
        entries.push(EntryInfo {
            shadowed: may_shadow && entry.is_live() && table.get(entry.key()) != Some(entry),
            entry: entry.clone(),
            kind,
        });
    }
    Ok(Listing {
        commit_number: table.commit_number(),
        file_len: table.file_len(),
        n_live: table.n_live(),
        entries,
    })
}

/// The bytes of `entry`'s value in `file` (the scan checked that they lie inside it).
pub(super) fn value_bytes<'f>(file: &'f [u8], entry: &Entry) -> &'f [u8] {
    usize::try_from(entry.value_offset())
        .ok()
        .zip(usize::try_from(entry.value_len()).ok())
        .and_then(|(start, len)| file.get(start..start.checked_add(len)?))
        .unwrap_or_default()
}
