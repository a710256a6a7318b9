//! The keys of an entry table: the arena that holds every key of a scan in one allocation,
//! gathered by a walk over the entries.
//!
//! Opening a file of many small entries is mostly building its table: one allocation per key
//! and a map holding a key handle per slot cost more instructions and touch more memory
//! (page faults) than reading the entries themselves.

use std::sync::{Arc, OnceLock};

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

#[cfg(test)]
mod tests {
    use super::*;
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
}
