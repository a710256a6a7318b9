//! The keys of an entry table: the arena that holds every key of a scan in one allocation,
//! and the index that finds an entry by its key.
//!
//! Opening a file of many small entries is mostly building its table: one allocation per key
//! and a map holding a key handle per slot cost more instructions and touch more memory
//! (page faults) than reading the entries themselves.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use hashbrown::hash_table::{self, HashTable};

use crate::layout::Entry;

/// The most entries a table (or a batch) may hold: the key index stores entry indices as
/// `u32`, half the size of a `usize` slot.
pub(crate) const MAX_ENTRIES: usize = u32::MAX as usize;

/// The keys of many entries, one after the other in one string that the entries share: all
/// the keys of a scan live in one (one allocation instead of one per key), and an entry made
/// later has one of its own. A walk hands its entries the arena before it holds their keys
/// (its length is not known until the walk ends); [`KeyWriter::finish`] fills it before any
/// of those entries leaves the walk. A thin pointer (to a sized `OnceLock`, where an
/// `Arc<str>` is two words): an [`Entry`] stays small.
pub(crate) type KeyArena = Arc<OnceLock<Box<str>>>;

/// The arena of a single key.
pub(crate) fn arena_of(key: &str) -> KeyArena {
    Arc::new(OnceLock::from(Box::from(key)))
}

/// Where the key of an entry is: `len` bytes at `start` in `arena`.
pub(crate) fn key_in(arena: &KeyArena, start: u32, len: u8) -> &str {
    let start = start as usize;
    arena
        .get()
        .and_then(|keys| keys.get(start..start + usize::from(len)))
        .unwrap_or_default()
}

/// Gathers the keys of a walk over the entries into an arena. It outlives a pause of a
/// resumable scan (the keys gathered so far stay here).
#[derive(Debug, Default)]
pub(crate) struct KeyWriter {
    /// The arena the keys pushed since the last [`KeyWriter::finish`] go to.
    arena: KeyArena,
    /// Those keys, one after the other.
    keys: Vec<u8>,
}

impl KeyWriter {
    /// Stores `key` (UTF-8, which the caller checked): the arena that will hold it, and its
    /// start there.
    pub(crate) fn push(&mut self, key: &[u8]) -> (KeyArena, u32) {
        // Starts are u32 (smaller entries): past 4 GiB of keys, a new arena.
        if self.keys.len() + key.len() > u32::MAX as usize {
            self.finish();
        }
        let start = self.keys.len() as u32;
        self.keys.extend_from_slice(key);
        (Arc::clone(&self.arena), start)
    }

    /// Fills the arena with the keys pushed so far; the next key goes to a new one.
    pub(crate) fn finish(&mut self) {
        // One check of all the keys at once (vectorized: a fraction of an instruction a
        // byte) instead of one per key. Each key was checked when pushed, so this never
        // fails; if it did, the bytes that are not ASCII would read as '?' (one byte each,
        // so that every key stays in its place).
        let keys = match String::from_utf8(std::mem::take(&mut self.keys)) {
            Ok(keys) => keys,
            Err(error) => error
                .as_bytes()
                .iter()
                .map(|&byte| {
                    if byte.is_ascii() {
                        char::from(byte)
                    } else {
                        '?'
                    }
                })
                .collect(),
        };
        // The arena was never filled: each one is filled once and then replaced.
        let _ = std::mem::take(&mut self.arena).set(keys.into_boxed_str());
    }
}

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
    use crate::layout::new_entry;
    use crate::{Container, NewEntry};

    #[test]
    fn keys_pushed_on_both_sides_of_a_finish_stay_readable() {
        let keys = ["α", "", "beta", "γγ", "key9999"];
        let mut writer = KeyWriter::default();
        let mut places = Vec::new();
        for (key_idx, key) in keys.iter().enumerate() {
            if key_idx == 2 {
                writer.finish();
            }
            let (arena, start) = writer.push(key.as_bytes());
            places.push((arena, start, key.len() as u8));
        }
        // Not filled before the finish: an entry never sees it so, and it reads as empty.
        assert_eq!(key_in(&places[4].0, places[4].1, places[4].2), "");
        writer.finish();
        let read: Vec<&str> = places
            .iter()
            .map(|(arena, start, len)| key_in(arena, *start, *len))
            .collect();
        assert_eq!(read, keys);
        assert!(Arc::ptr_eq(&places[0].0, &places[1].0));
        assert!(!Arc::ptr_eq(&places[1].0, &places[2].0));
        assert!(Arc::ptr_eq(&places[2].0, &places[4].0));
        assert_eq!(places[2].1, 0);
    }

    #[test]
    fn keys_pushed_unchecked_stay_in_their_places() {
        let mut writer = KeyWriter::default();
        let places = [&b"ab"[..], b"\xffc", b"d"].map(|key| (writer.push(key), key.len() as u8));
        writer.finish();
        let read: Vec<&str> = places
            .iter()
            .map(|((arena, start), len)| key_in(arena, *start, *len))
            .collect();
        assert_eq!(read, ["ab", "?c", "d"]);
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
