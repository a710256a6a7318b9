//! The unpickler's memo: what `PUT` / `MEMOIZE` store and `GET` reads, within `max_memo`.
//!
//! Memo and mutation: Python memoizes a container (a list right after
//! `EMPTY_LIST`) before filling it, and a later `GET` must see it full. A
//! memoized container therefore stays *pending* (a reference to its stack
//! slot) while it is on the stack and is copied into the memo when it leaves
//! the stack, complete. A `GET` of a pending container copies it as it is
//! then and remembers which slot it came from (its *taint*): if that copy is
//! later put into the very container it came from, the structure is
//! recursive and that is an error.
//!
//! A pre-scan finds the memo indices that some `GET` reads; other memo
//! entries are only counted (for `MEMOIZE` numbering), never copied.

use std::collections::{HashMap, HashSet};

use crate::op::{parse_op, Op};
use crate::opcode::{spec, ArgForm, MEMOIZE, SHORT_BINUNICODE, STOP};
use crate::{ErrorKind, Value};

/// One memo entry that some `GET` reads.
#[derive(Debug)]
pub(crate) enum MemoEntry {
    /// A value that is final.
    Ready { value: Value, depth: usize },
    /// A container still on the stack at `position`.
    Pending { position: usize },
}

/// Memo index -> entry id (or [`UNREAD`]); ids index `entries`.
#[derive(Debug)]
pub(crate) struct Memo {
    /// Indices 0, 1, 2, ... as `MEMOIZE` gives them.
    dense: Vec<u32>,
    /// Any other index (a `PUT` with an arbitrary number).
    sparse: HashMap<u64, u32>,
    entries: Vec<MemoEntry>,
    /// Pending entries `(stack position, memo index)`, by position.
    pending: Vec<(usize, u64)>,
    wanted: WantedIndices,
    max_memo: usize,
}

/// Marks a memo index that was set but that no `GET` reads.
const UNREAD: u32 = u32::MAX;

impl Memo {
    /// An empty memo for the stream `data`, of at most `max_memo` indices.
    pub(crate) fn new(data: &[u8], max_memo: usize) -> Self {
        Memo {
            dense: Vec::new(),
            sparse: HashMap::new(),
            entries: Vec::new(),
            pending: Vec::new(),
            wanted: WantedIndices::scan(data),
            max_memo,
        }
    }

    /// The index `MEMOIZE` stores at: the number of indices set.
    pub(crate) fn next_index(&self) -> u64 {
        (self.dense.len() + self.sparse.len()) as u64
    }

    /// Whether some `GET` of the stream reads `index`.
    pub(crate) fn is_read(&self, index: u64) -> bool {
        self.wanted.contains(index)
    }

    fn slot(&self, index: u64) -> Option<u32> {
        match usize::try_from(index).ok().and_then(|i| self.dense.get(i)) {
            Some(&id) => Some(id),
            None => self.sparse.get(&index).copied(),
        }
    }

    /// The entry at `index`; `None` when it was never set or no `GET` reads it.
    pub(crate) fn get(&self, index: u64) -> Option<&MemoEntry> {
        self.slot(index)
            .and_then(|id| self.entries.get(id as usize))
    }

    /// Sets the next `MEMOIZE` index as unread when it is `index`, within the
    /// limit, and no `GET` reads it: the common case, without a lookup.
    /// `false`: [`check_room`](Self::check_room) and [`set`](Self::set) do it.
    #[inline]
    pub(crate) fn set_unread_fast(&mut self, index: u64) -> bool {
        let next = self.dense.len();
        if self.sparse.is_empty()
            && index == next as u64
            && next < self.max_memo
            && !self.wanted.contains(index)
        {
            self.dense.push(UNREAD);
            return true;
        }
        false
    }

    /// Checks that setting `index` keeps within `max_memo`.
    pub(crate) fn check_room(&self, index: u64) -> Result<(), ErrorKind> {
        let len = self.dense.len() + self.sparse.len();
        if self.slot(index).is_none() && len >= self.max_memo {
            return Err(self.limit());
        }
        Ok(())
    }

    /// Sets `index` to `entry` (`None`: present but unread).
    pub(crate) fn set(&mut self, index: u64, entry: Option<MemoEntry>) -> Result<(), ErrorKind> {
        let limit = self.limit();
        if let Some(MemoEntry::Pending { position }) = entry {
            self.pending.push((position, index));
        }
        let id = match entry {
            None => UNREAD,
            Some(entry) => match self.slot(index) {
                Some(id) if id != UNREAD => {
                    let place = self.entries.get_mut(id as usize).ok_or(limit.clone())?;
                    *place = entry;
                    return Ok(());
                }
                _ => {
                    let id = u32::try_from(self.entries.len())
                        .ok()
                        .filter(|&id| id != UNREAD)
                        .ok_or(limit)?;
                    self.entries.push(entry);
                    id
                }
            },
        };
        match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => {
                if let Some(place) = self.dense.get_mut(i) {
                    *place = id;
                }
            }
            Ok(i) if i == self.dense.len() && !self.sparse.contains_key(&index) => {
                self.dense.push(id);
            }
            _ => {
                self.sparse.insert(index, id);
            }
        }
        Ok(())
    }

    /// Takes the last pending entry at stack position `start` or above whose
    /// index still refers to it (a later `PUT` at the index replaces it):
    /// its container is about to leave the stack.
    pub(crate) fn take_pending(&mut self, start: usize) -> Option<(usize, u64)> {
        while let Some(&(position, index)) = self.pending.last() {
            if position < start {
                break;
            }
            self.pending.pop();
            if matches!(
                self.get(index),
                Some(MemoEntry::Pending { position: p }) if *p == position
            ) {
                return Some((position, index));
            }
        }
        None
    }

    fn limit(&self) -> ErrorKind {
        ErrorKind::LimitExceeded {
            limit: "max_memo",
            max: self.max_memo,
        }
    }
}

/// The memo indices that some `GET` of the stream reads.
#[derive(Debug, Default)]
struct WantedIndices {
    /// Bit `i` set: index `i` is read (for indices below the input length).
    dense_bits: Vec<u64>,
    sparse: HashSet<u64>,
    bound: u64,
}

impl WantedIndices {
    /// Walks the ops without decoding their payloads (no UTF-8 checks), up to
    /// `STOP` or the first error (which the real run reports).
    fn scan(data: &[u8]) -> Self {
        let mut wanted = WantedIndices {
            bound: data.len() as u64,
            ..WantedIndices::default()
        };
        let mut offset = 0;
        while let Some(&code) = data.get(offset) {
            // The two ops that big pickles are mostly made of, without the general case's checks
            // (an offset past the end stops the loop all the same).
            match (code, data.get(offset + 1)) {
                (MEMOIZE, _) => {
                    offset += 1;
                    continue;
                }
                (SHORT_BINUNICODE, Some(&length)) => {
                    offset += 2 + usize::from(length);
                    continue;
                }
                _ => {}
            }
            let rest = data.get(offset..).unwrap_or_default();
            // Strings and bytes are skipped by their length, ops without an argument
            // by their byte; other ops are parsed.
            let used = match spec(code).map(|spec| spec.arg) {
                Some(ArgForm::Counted(width) | ArgForm::SignedCounted(width)) => {
                    counted_len(rest, width)
                }
                Some(ArgForm::Nothing) if code != STOP => Some(1),
                _ => match parse_op(rest) {
                    Ok((Op::Stop, _)) | Err(_) => break,
                    Ok((Op::Get(index), used)) => {
                        wanted.insert(index);
                        Some(used)
                    }
                    Ok((Op::BinGet(index), used)) => {
                        wanted.insert(index.into());
                        Some(used)
                    }
                    Ok((Op::LongBinGet(index), used)) => {
                        wanted.insert(index.into());
                        Some(used)
                    }
                    Ok((_, used)) => Some(used),
                },
            };
            match used.and_then(|used| offset.checked_add(used)) {
                Some(next) if next <= data.len() => offset = next,
                _ => break,
            }
        }
        wanted
    }

    fn insert(&mut self, index: u64) {
        if index < self.bound {
            let word = (index / 64) as usize;
            if word >= self.dense_bits.len() {
                self.dense_bits.resize(word + 1, 0);
            }
            if let Some(bits) = self.dense_bits.get_mut(word) {
                *bits |= 1 << (index % 64);
            }
        } else {
            self.sparse.insert(index);
        }
    }

    #[inline]
    fn contains(&self, index: u64) -> bool {
        if index < self.bound {
            self.dense_bits
                .get((index / 64) as usize)
                .is_some_and(|bits| bits & (1 << (index % 64)) != 0)
        } else {
            self.sparse.contains(&index)
        }
    }
}

/// The length of the counted op at the start of `op`: its byte, its length of `width`
/// bytes (read as unsigned, which a negative one only makes too long) and its payload.
pub(crate) fn counted_len(op: &[u8], width: usize) -> Option<usize> {
    let bytes = op.get(1..)?.get(..width)?;
    let mut word = [0u8; 8];
    word.get_mut(..width)?.copy_from_slice(bytes);
    let length = usize::try_from(u64::from_le_bytes(word)).ok()?;
    length.checked_add(1 + width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loads;

    #[test]
    fn memoized_list_seen_full_by_later_get() {
        // l = [1]; pickle.dumps({'a': l, 'b': l}, 2)
        let data =
            b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02K\x01aX\x01\x00\x00\x00bq\x03h\x02u.";
        let list = Value::List(vec![Value::Int(1)]);
        assert_eq!(
            loads(data),
            Ok(Value::Dict(vec![
                (Value::from("a"), list.clone()),
                (Value::from("b"), list)
            ]))
        );
    }

    #[test]
    fn unread_memo_entries_still_number_memoize() {
        // MEMOIZE twice then GET 1 reads the second value.
        assert_eq!(loads(b"K\x01\x94K\x02\x94h\x01."), Ok(Value::Int(2)));
    }

    // The scan skips payloads (a `h` inside a string is no GET) and stops at STOP.
    #[test]
    fn scan_finds_the_indices_gets_read() {
        let wanted = WantedIndices::scan(b"X\x02\x00\x00\x00h\x07h\x03j\x09\x01\x00\x00g5\n.h\x04");
        let read: Vec<u64> = (0..300).filter(|&i| wanted.contains(i)).collect();
        assert_eq!(read, [3, 5, 265]);
    }
}
