//! The entry table: its entries (where each is, its key, its value's byte range, its flags),
//! and the index that finds the live entry of a key.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;

use hashbrown::hash_table::{self, HashTable};

use super::format::{ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, TERMINATOR, TRAILER_FLAG_IDX};
use super::keys::{arena_of, key_in, KeyArena};

/// One entry of the table: where it is, its key, its value's byte range, its flags.
///
/// Its lengths and offsets are derived from `offset`, the key's length and `value_len`:
/// every way of making an entry checked that `offset + len()` fits in a `u64`, so those sums
/// cannot overflow.
#[derive(Clone)]
pub struct Entry {
    // The key is `key_len` bytes at `key_start` in an arena shared with the other entries of
    // the same scan (see `keys`): no allocation per key, and a thin pointer (40-byte entries).
    pub(super) keys: KeyArena,
    pub(super) offset: u64,
    pub(super) value_len: u64,
    pub(super) memo_max: i32,
    pub(super) key_start: u32,
    pub(super) key_len: u8,
    pub(super) live: bool,
}

impl Entry {
    /// The key.
    pub fn key(&self) -> &str {
        key_in(&self.keys, self.key_start, self.key_len)
    }

    /// Offset of the entry's FRAME opcode.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Length of the whole entry (`9 + frame_len`).
    pub fn len(&self) -> u64 {
        ENTRY_HEAD_LEN + u64::from(self.key_len) + self.value_len + ENTRY_TRAILER_LEN
    }

    /// Whether the entry is empty (never: an entry has at least 19 bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset just past the entry (where the next entry or the terminator starts).
    pub fn end(&self) -> u64 {
        self.offset + self.len()
    }

    /// Offset of the value's first byte.
    pub fn value_offset(&self) -> u64 {
        self.offset + ENTRY_HEAD_LEN + u64::from(self.key_len)
    }

    /// Length of the value's bytes.
    pub fn value_len(&self) -> u64 {
        self.value_len
    }

    /// The value's byte range in the file.
    pub fn value_range(&self) -> Range<u64> {
        self.value_offset()..self.value_offset() + self.value_len
    }

    /// The next free memo index after this entry's value.
    pub fn memo_max(&self) -> i32 {
        self.memo_max
    }

    /// Whether the entry is live (NEWTRUE flag) rather than deleted (POP flag).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the entry is alignment padding (deleted, empty key).
    pub fn is_padding(&self) -> bool {
        !self.live && self.key_len == 0
    }

    /// Offset of the live flag byte.
    pub(crate) fn live_flag_offset(&self) -> u64 {
        self.end() - (ENTRY_TRAILER_LEN - TRAILER_FLAG_IDX as u64)
    }

    pub(crate) fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    /// Whether `other`'s key is in the same arena as this entry's.
    #[cfg(test)]
    pub(crate) fn shares_arena_with(&self, other: &Entry) -> bool {
        std::sync::Arc::ptr_eq(&self.keys, &other.keys)
    }
}

// Tables of many small entries are mostly entries: keep them small.
const _: () = assert!(std::mem::size_of::<Entry>() <= 40);

// By hand: entries are equal when their keys are, whichever arenas hold them.
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.offset == other.offset
            && self.value_len == other.value_len
            && self.memo_max == other.memo_max
            && self.live == other.live
            && self.key() == other.key()
    }
}

impl Eq for Entry {}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key())
            .field("offset", &self.offset)
            .field("len", &self.len())
            .field("value_offset", &self.value_offset())
            .field("value_len", &self.value_len)
            .field("memo_max", &self.memo_max)
            .field("live", &self.live)
            .finish()
    }
}

/// The entry table of a file: every entry in file order, the live keys, the commit number.
#[derive(Debug, Clone)]
pub struct Table {
    pub(super) entries: Vec<Entry>,
    /// The live entries by key: the last live entry of a key, as `pickle.load` keeps it.
    pub(super) live_index: KeyIndex,
    pub(super) commit_number: i32,
    pub(super) terminator_offset: u64,
    pub(super) file_len: u64,
    pub(super) memo_start: i32,
    /// Indices of the entries whose trailer a library constructor overwrote (their flag and
    /// `memo_max` are the restored ones; a read-write open writes them back).
    pub(super) overwritten: Vec<usize>,
    /// The file ends inside an entry or a terminator: see [`Table::is_torn`].
    pub(super) torn: bool,
}

// By hand: the same entries and facts, and the same entry indexed for each live key (the
// index's layout depends on its seed).
impl PartialEq for Table {
    fn eq(&self, other: &Table) -> bool {
        self.entries == other.entries
            && self.commit_number == other.commit_number
            && self.terminator_offset == other.terminator_offset
            && self.file_len == other.file_len
            && self.memo_start == other.memo_start
            && self.overwritten == other.overwritten
            && self.torn == other.torn
            && self.live_index.len() == other.live_index.len()
            && self.live_index.indices().all(|entry_idx| {
                let key = self.entries.get(entry_idx).map(Entry::key);
                key.and_then(|key| other.index_of(key)) == Some(entry_idx)
            })
    }
}

impl Eq for Table {}

impl Table {
    /// Every entry in file order, deleted and padding entries included.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The live entries in file order: each key's value, shadowed entries left out.
    pub fn live_entries(&self) -> impl Iterator<Item = &Entry> {
        // In the usual case (no key live twice) the live entries are exactly the indexed
        // ones, and no lookup is needed.
        let has_shadowed = self.has_shadowed();
        self.entries
            .iter()
            .enumerate()
            .filter(move |&(entry_idx, entry)| {
                entry.live && !(has_shadowed && self.is_shadowed(entry_idx))
            })
            .map(|(_, entry)| entry)
    }

    /// Whether some key has two live entries (a replace cut short): whether any entry may
    /// be [shadowed](Table::is_shadowed). Every indexed entry is live, so this is a count of
    /// live flags against the number of live keys.
    pub fn has_shadowed(&self) -> bool {
        self.entries.iter().filter(|entry| entry.live).count() != self.live_index.len()
    }

    /// Whether the entry at `entry_idx` is live but not its key's value: an older duplicate
    /// left by an interrupted replace (a read-write open deletes it).
    pub fn is_shadowed(&self, entry_idx: usize) -> bool {
        self.entries
            .get(entry_idx)
            .is_some_and(|entry| entry.live && self.index_of(entry.key()) != Some(entry_idx))
    }

    /// The live keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.live_entries().map(Entry::key)
    }

    /// Number of live keys.
    pub fn n_live(&self) -> usize {
        self.live_index.len()
    }

    /// The live entry of `key` (the last one, as `pickle.load` would keep it).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.index_of(key)
            .and_then(|entry_idx| self.entries.get(entry_idx))
    }

    /// The index in [`Table::entries`] of the live entry of `key`.
    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        self.live_index.get(&self.entries, key)
    }

    /// The commit number read from the header.
    pub fn commit_number(&self) -> i32 {
        self.commit_number
    }

    /// Offset of the terminator (where the next entry goes).
    pub fn terminator_offset(&self) -> u64 {
        self.terminator_offset
    }

    /// Length of the file scanned.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Bytes after the terminator: left by an append that was interrupted before it
    /// committed; a read-write open truncates them.
    pub fn trailing_len(&self) -> u64 {
        self.file_len
            .saturating_sub(self.terminator_offset + TERMINATOR.len() as u64)
    }

    /// Whether the file does not end with a whole terminator at
    /// [`terminator_offset`](Table::terminator_offset): bytes after it, or the remains of
    /// one a Python `mmapdict` constructor wrote without the lock. A read-write open writes
    /// the terminator whole and cuts the rest.
    pub fn has_untidy_tail(&self) -> bool {
        self.file_len != self.terminator_offset + TERMINATOR.len() as u64
    }

    /// Whether the file ends inside an entry or inside the terminator, at
    /// [`terminator_offset`](Table::terminator_offset): a torn tail (a full disk, a writer's
    /// crash, a truncation). The complete entries before it are the table; a read-write
    /// open repairs the tail under the lock at its first operation, as `fsck` does: the last
    /// entry completed when only its trailer or terminator was cut, else cut away.
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    /// Where a torn tail starts: the last entry when it is the one cut (in its trailer:
    /// it is read, its value being whole), else the terminator's place. `None` when the file
    /// is not torn.
    pub fn torn_at(&self) -> Option<u64> {
        self.torn.then(|| {
            let cut_entry = self
                .entries
                .last()
                .filter(|entry| entry.end() > self.file_len);
            cut_entry.map_or(self.terminator_offset, Entry::offset)
        })
    }

    /// The entries whose 8-byte trailer a Python `mmapdict` constructor overwrote with a
    /// terminator (the library's own damage, when its constructor runs beside its writers).
    /// Each is read as live with the `memo_max` its value needs, unless the library deleted
    /// it since or its value is not whole ops (then deleted); a read-write open writes that
    /// trailer back.
    pub fn overwritten_trailers(&self) -> impl Iterator<Item = &Entry> {
        self.overwritten
            .iter()
            .filter_map(|&entry_idx| self.entries.get(entry_idx))
    }

    /// The first memo index free for a new value: `max(memo_max of all entries, 1)`.
    pub fn memo_start(&self) -> i32 {
        self.memo_start
    }

    pub(crate) fn set_commit_number(&mut self, commit_number: i32) {
        self.commit_number = commit_number;
    }

    pub(crate) fn set_live(&mut self, entry_idx: usize, live: bool) {
        if let Some(entry) = self.entries.get_mut(entry_idx) {
            entry.set_live(live);
            if !live {
                self.live_index.remove_entry(&self.entries, entry_idx);
            }
        }
    }

    /// Records entries appended at the terminator's old place; the file now ends with a
    /// terminator right after them. The caller keeps the table under [`MAX_ENTRIES`].
    pub(crate) fn push_appended(&mut self, entries: Vec<Entry>) {
        self.entries.reserve(entries.len());
        self.live_index.reserve(&self.entries, entries.len());
        for entry in entries {
            self.terminator_offset = entry.end();
            self.memo_start = self.memo_start.max(entry.memo_max);
            let live = entry.live;
            self.entries.push(entry);
            if live {
                self.live_index
                    .insert(&self.entries, self.entries.len() - 1);
            }
        }
        self.file_len = self.terminator_offset + TERMINATOR.len() as u64;
    }

    /// As [`Table::push_appended`], with `index`, the index of the live ones among
    /// `entries`: a table that had no entry takes both as they are (no entry copied, no key
    /// hashed again).
    pub(crate) fn push_appended_indexed(&mut self, entries: Vec<Entry>, index: KeyIndex) {
        if !self.entries.is_empty() {
            return self.push_appended(entries);
        }
        let Some(last) = entries.last() else {
            return;
        };
        self.terminator_offset = last.end();
        self.memo_start = memo_start(&entries).max(self.memo_start);
        self.file_len = self.terminator_offset + TERMINATOR.len() as u64;
        self.entries = entries;
        self.live_index = index;
    }

    /// Forgets the bytes after the terminator (after they were truncated).
    pub(crate) fn drop_trailing(&mut self) {
        self.file_len = self.terminator_offset + TERMINATOR.len() as u64;
    }

    /// Forgets which trailers were overwritten (after they were written back).
    pub(crate) fn forget_overwritten(&mut self) {
        self.overwritten.clear();
    }
}

/// Builds the [`Entry`] of a new entry written at `offset` (`None` if its key is over
/// [`MAX_KEY_LEN`] bytes or its end past the `u64` range).
pub(crate) fn new_entry(
    key: &str,
    offset: u64,
    value_len: u64,
    memo_max: i32,
    live: bool,
) -> Option<Entry> {
    new_entry_in(None, key, offset, value_len, memo_max, live)
}

/// As [`new_entry`], with the key at `key_place` (an arena and a start there) when that
/// holds `key`: many new entries may then share one arena, as a scan's do.
pub(crate) fn new_entry_in(
    key_place: Option<(KeyArena, u32)>,
    key: &str,
    offset: u64,
    value_len: u64,
    memo_max: i32,
    live: bool,
) -> Option<Entry> {
    let key_len = u8::try_from(key.len()).ok()?;
    let len = (ENTRY_HEAD_LEN + u64::from(key_len))
        .checked_add(value_len)?
        .checked_add(ENTRY_TRAILER_LEN)?;
    offset.checked_add(len)?;
    let (keys, key_start) = key_place
        .filter(|(arena, start)| key_in(arena, *start, key_len) == key)
        .unwrap_or_else(|| (arena_of(key), 0));
    Some(Entry {
        keys,
        offset,
        value_len,
        memo_max,
        key_start,
        key_len,
        live,
    })
}

/// The first memo index free after `entries`: `max(memo_max of all, 1)`.
pub(crate) fn memo_start(entries: &[Entry]) -> i32 {
    entries.iter().map(Entry::memo_max).fold(1, i32::max)
}

/// The most entries a table (or a batch) may hold: the key index stores entry indices as
/// `u32`, half the size of a `usize` slot.
pub(crate) const MAX_ENTRIES: usize = u32::MAX as usize;

/// Entries found by key: indices into a slice of entries (a table's, a batch's), hashed with
/// foldhash (seeded per index) over each entry's key. A slot is a `u32` (the key is read from
/// the entry), so the index of 10,000 keys takes 80 KB, not 400 KB.
#[derive(Clone, Default)]
pub(crate) struct KeyIndex {
    slots: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

// By hand: slots in hash order and the seeds say nothing to a reader.
impl fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyIndex")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The hash of `key`: its bytes alone (`str`'s `Hash` adds a byte to keep tuples of strings
/// apart, one more round of the hasher for nothing here).
fn hash_key(hasher: &foldhash::fast::RandomState, key: &str) -> u64 {
    let mut hasher = hasher.build_hasher();
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// The key of `entries[entry_idx]` ("" past the end, which an index never points to).
fn key_at(entries: &[Entry], entry_idx: u32) -> &str {
    entries.get(entry_idx as usize).map_or("", Entry::key)
}

impl KeyIndex {
    /// An empty index with room for `capacity` keys.
    pub(crate) fn with_capacity(capacity: usize) -> KeyIndex {
        KeyIndex {
            slots: HashTable::with_capacity(capacity),
            hasher: Default::default(),
        }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Room for `additional` more keys of `entries` (whose keys the index holds), so that
    /// inserting them never grows it.
    pub(crate) fn reserve(&mut self, entries: &[Entry], additional: usize) {
        let hasher = &self.hasher;
        self.slots.reserve(additional, |&other| {
            hash_key(hasher, key_at(entries, other))
        });
    }

    /// The index in `entries` of the entry of `key`.
    pub(crate) fn get(&self, entries: &[Entry], key: &str) -> Option<usize> {
        self.slots
            .find(hash_key(&self.hasher, key), |&entry_idx| {
                key_at(entries, entry_idx) == key
            })
            .map(|&entry_idx| entry_idx as usize)
    }

    /// Makes `entries[entry_idx]` the entry of its key, in place of the one before, if any.
    /// Callers keep `entry_idx` under [`MAX_ENTRIES`].
    pub(crate) fn insert(&mut self, entries: &[Entry], entry_idx: usize) {
        let (Ok(slot_value), Some(entry)) = (u32::try_from(entry_idx), entries.get(entry_idx))
        else {
            return;
        };
        let key = entry.key();
        let hash = hash_key(&self.hasher, key);
        let hasher = &self.hasher;
        let slot = self.slots.entry(
            hash,
            |&other| key_at(entries, other) == key,
            |&other| hash_key(hasher, key_at(entries, other)),
        );
        match slot {
            hash_table::Entry::Occupied(mut slot) => *slot.get_mut() = slot_value,
            hash_table::Entry::Vacant(slot) => {
                slot.insert(slot_value);
            }
        }
    }

    /// Forgets `key`; returns the index of its entry.
    pub(crate) fn remove(&mut self, entries: &[Entry], key: &str) -> Option<usize> {
        self.remove_where(entries, key, |_| true)
    }

    /// Forgets the key of `entries[entry_idx]` if that entry is the one indexed for it.
    pub(crate) fn remove_entry(&mut self, entries: &[Entry], entry_idx: usize) {
        if let Some(entry) = entries.get(entry_idx) {
            self.remove_where(entries, entry.key(), |indexed| indexed == entry_idx);
        }
    }

    fn remove_where(
        &mut self,
        entries: &[Entry],
        key: &str,
        is_doomed: impl FnOnce(usize) -> bool,
    ) -> Option<usize> {
        let slot = self
            .slots
            .find_entry(hash_key(&self.hasher, key), |&entry_idx| {
                key_at(entries, entry_idx) == key
            })
            .ok()?;
        let entry_idx = *slot.get() as usize;
        if !is_doomed(entry_idx) {
            return None;
        }
        slot.remove();
        Some(entry_idx)
    }

    /// The indexed entry indices, in no particular order.
    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().map(|&entry_idx| entry_idx as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::format::MAX_KEY_LEN;
    use crate::layout::scan::scan;
    use crate::layout::scan::tests::file_with;
    use crate::{Container, NewEntry};
    #[test]
    fn entries_are_small_and_derive_their_ranges() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        let entry = new_entry("key", 100, 7, 2, true).unwrap();
        assert_eq!(entry.len(), ENTRY_HEAD_LEN + 3 + 7 + ENTRY_TRAILER_LEN);
        assert_eq!(entry.value_range(), 114..121);
        assert_eq!(entry.end(), 100 + entry.len());
        assert_eq!(entry.live_flag_offset(), entry.end() - 2);
        // Ends past the u64 range, and keys the format cannot store, make no entry.
        assert!(new_entry("key", u64::MAX - entry.len() + 1, 7, 2, true).is_none());
        assert!(new_entry("key", 0, u64::MAX - 20, 2, true).is_none());
        assert!(new_entry(&"k".repeat(MAX_KEY_LEN + 1), 0, 7, 2, true).is_none());
        assert!(new_entry(&"k".repeat(MAX_KEY_LEN), 0, 7, 2, true).is_some());
    }

    #[test]
    fn entries_from_different_arenas_compare_and_print_by_key() {
        let file = file_with(&[("one", b"N", true), ("two", b"N", false)]);
        let table = scan(&file).unwrap();
        let scanned = &table.entries()[1];
        let made = new_entry("two", scanned.offset(), 1, 3, false).unwrap();
        assert!(!made.shares_arena_with(scanned));
        assert_eq!(&made, scanned);
        assert_eq!(format!("{made:?}"), format!("{scanned:?}"));
        assert!(format!("{made:?}").contains("key: \"two\""));
        let other_key = new_entry("owt", scanned.offset(), 1, 3, false).unwrap();
        assert_ne!(&other_key, scanned);
        // Two scans: other arenas, other index seeds, equal tables.
        assert_eq!(scan(&file).unwrap(), table);
    }

    #[test]
    fn appended_entries_join_the_index_and_the_last_live_entry_wins() {
        let file = file_with(&[("a", b"N", true), ("b", b"N", true)]);
        let mut table = scan(&file).unwrap();
        let scanned = table.clone();
        let end = table.terminator_offset();
        let new_b = new_entry("b", end, 1, 4, true).unwrap();
        let c = new_entry("c", new_b.end(), 1, 4, true).unwrap();
        let c_end = c.end();
        table.push_appended(vec![new_b, c]);
        assert_ne!(table, scanned);
        assert_eq!(table.terminator_offset(), c_end);
        assert_eq!(table.memo_start(), 4);
        assert_eq!(table.get("b").unwrap().offset(), end);
        assert_eq!(table.index_of("c"), Some(3));
        // The older "b" is live too (a replace not yet finished): the newer one is listed.
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(table.n_live(), 3);
        // Deleting the shadowed older "b" keeps the newer one indexed.
        table.set_live(1, false);
        assert_eq!(table.index_of("b"), Some(2));
        table.set_live(2, false);
        assert_eq!(table.get("b"), None);
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a", "c"]);
        // Scanned and appended entries keep their keys.
        let keys: Vec<&str> = table.entries().iter().map(Entry::key).collect();
        assert_eq!(keys, ["a", "b", "b", "c"]);
    }

    #[test]
    fn the_index_finds_the_last_entry_of_a_key_while_it_grows() {
        let keys: Vec<String> = (0..2000).map(|idx| format!("key{}", idx % 1500)).collect();
        let entries: Vec<Entry> = keys
            .iter()
            .map(|key| new_entry(key, 0, 1, 1, true).unwrap())
            .collect();
        // From no room at all: every growth rehashes the slots through their entries' keys.
        let mut index = KeyIndex::default();
        for entry_idx in 0..entries.len() {
            index.insert(&entries, entry_idx);
        }
        assert_eq!(index.len(), 1500);
        for idx in 0..1500 {
            let last = if idx < 500 { idx + 1500 } else { idx };
            assert_eq!(index.get(&entries, &format!("key{idx}")), Some(last));
        }
        assert_eq!(index.get(&entries, "key1500"), None);
        // Removing an entry that is not the indexed one leaves the key.
        index.remove_entry(&entries, 3);
        assert_eq!(index.get(&entries, "key3"), Some(1503));
        index.remove_entry(&entries, 1503);
        assert_eq!(index.get(&entries, "key3"), None);
        assert_eq!(index.remove(&entries, "key4"), Some(1504));
        assert_eq!(index.remove(&entries, "key4"), None);
        assert_eq!(index.len(), 1498);
        let mut indices: Vec<usize> = index.indices().collect();
        indices.sort_unstable();
        assert_eq!(indices.len(), 1498);
        assert!(indices.iter().all(|&entry_idx| entry_idx >= 500));
    }

    #[test]
    fn keys_survive_appends_a_batch_and_a_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.mmdpickle");
        let mut container = Container::open(&path).unwrap();
        let insert = |container: &mut Container, key: &str| {
            let new = NewEntry {
                key,
                value_len: 1,
                memo_max: 1,
                align: None,
            };
            container.append(new, |sink| sink.write_all(b"N")).unwrap();
        };
        for idx in 0..50 {
            insert(&mut container, &format!("key{idx}"));
        }
        let mut batch = container.batch().unwrap();
        let mut appended = Vec::new();
        for key in ["key7", "batch", "key7"] {
            let new = NewEntry {
                key,
                value_len: 1,
                memo_max: 1,
                align: None,
            };
            appended.push(batch.append(new, |sink| sink.write_all(b"N")).unwrap());
        }
        assert!(batch.remove("key8").unwrap());
        assert!(batch.remove("batch").unwrap());
        assert_eq!(batch.get("batch"), None);
        assert_eq!(batch.get("key7"), appended.last());
        assert_eq!(batch.get("key9").unwrap().key(), "key9");
        batch.commit().unwrap();
        let expected: Vec<String> = (0..50)
            .filter(|&idx| idx != 7 && idx != 8)
            .map(|idx| format!("key{idx}"))
            .chain(["key7".to_owned()])
            .collect();
        assert_eq!(container.keys().unwrap(), expected);
        // The rescan of another handle, and the vacuum's rescan: one arena each.
        for reopened in [Container::open(&path).unwrap().table().unwrap().clone(), {
            container.vacuum().unwrap();
            container.table().unwrap().clone()
        }] {
            assert_eq!(reopened.keys().collect::<Vec<_>>(), expected);
            let first = &reopened.entries()[0];
            assert!(reopened
                .entries()
                .iter()
                .all(|entry| entry.shares_arena_with(first)));
            assert_eq!(reopened.get("key49").unwrap().key(), "key49");
        }
        assert_eq!(container.keys().unwrap(), expected);
    }
}
