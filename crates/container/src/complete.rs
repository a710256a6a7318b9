//! Completing a last entry cut after its value: the first step of a repair, before
//! [`Container::fsck`] drops what cannot be completed.
//!
//! A file cut by 1 to 19 bytes at its end (a full disk, a truncation) has lost its terminator
//! and maybe some of its last entry's 8-byte trailer, but every byte of that entry's value is
//! still there. The trailer holds nothing that the value and the entries before it do not
//! tell: so the entry is completed and the file gets its old size back, instead of losing
//! the key.

use std::os::unix::fs::FileExt;

use crate::container::{Container, Durability};
use crate::error::Error;
use crate::layout::{
    encode_entry_head, encode_entry_trailer, i32_in, live_flag, memo_start, salvage,
    ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, FRAME_HEAD_LEN, TERMINATOR, TRAILER_FLAG_IDX,
    TRAILER_MEMO_MAX,
};
use crate::map::ReadMap;

/// A last entry whose head and value are whole but whose trailer (or the terminator after it)
/// is cut.
struct TornTail<'f> {
    /// Where the value's bytes are in the file.
    value: &'f [u8],
    /// Offset just past the value.
    value_end: u64,
    /// The trailer bytes still in the file (a prefix of the trailer).
    trailer_left: &'f [u8],
    /// The terminator is in place after the entry, and the trailer's bytes that are not
    /// there yet are zeros (a completion cut short by a power loss).
    terminator_after: bool,
    key_is_empty: bool,
}

/// Finds the torn last entry at `start` of `file`, if it is cut after its value.
fn torn_tail(file: &[u8], start: u64) -> Option<TornTail<'_>> {
    let len = file.len() as u64;
    let start_idx = usize::try_from(start).ok()?;
    let head = file.get(start_idx..start_idx.checked_add(ENTRY_HEAD_LEN as usize)?)?;
    let frame_len = u64::from_le_bytes(head.get(1..9)?.try_into().ok()?);
    let key_len = u64::from(*head.get(10)?);
    let key = file.get(
        usize::try_from(start + ENTRY_HEAD_LEN).ok()?
            ..usize::try_from(start + ENTRY_HEAD_LEN + key_len).ok()?,
    )?;
    // The head must be exactly what the writer writes for this key and frame length.
    if encode_entry_head(key, frame_len).get(..ENTRY_HEAD_LEN as usize) != Some(head) {
        return None;
    }
    let value_offset = start + ENTRY_HEAD_LEN + key_len;
    let entry_end = start.checked_add(FRAME_HEAD_LEN)?.checked_add(frame_len)?;
    let value_end = entry_end.checked_sub(ENTRY_TRAILER_LEN)?;
    let clean_len = entry_end + TERMINATOR.len() as u64;
    // A completion writes the terminator before the trailer: a power loss in between may
    // leave the terminator in place and the trailer's bytes (some or all) still zeros.
    let terminator_after = len == clean_len && file.ends_with(&TERMINATOR);
    if value_end < value_offset || value_end > len || (len >= clean_len && !terminator_after) {
        return None;
    }
    let value = file.get(usize::try_from(value_offset).ok()?..usize::try_from(value_end).ok()?)?;
    let trailer_left =
        file.get(usize::try_from(value_end).ok()?..usize::try_from(len.min(entry_end)).ok()?)?;
    std::str::from_utf8(key).ok()?;
    Some(TornTail {
        value,
        value_end,
        trailer_left,
        terminator_after,
        key_is_empty: key.is_empty(),
    })
}

/// The bytes of the memo_max (little-endian, from its lowest) that a cut trailer still has.
fn memo_max_left(trailer_left: &[u8]) -> &[u8] {
    let end = trailer_left.len().min(TRAILER_MEMO_MAX.end);
    trailer_left
        .get(TRAILER_MEMO_MAX.start..end)
        .unwrap_or_default()
}

/// The memo_max of a completed trailer: as written when the cut left all four of its bytes,
/// else the smallest at least `computed` (what the value needs) whose lowest bytes are
/// `kept` (those the cut left); `None` when none fits in an `i32`.
fn memo_max_keeping(kept: &[u8], computed: i32) -> Option<i32> {
    if kept.len() == TRAILER_MEMO_MAX.len() {
        return Some(i32_in(kept));
    }
    let mut bytes = computed.to_le_bytes();
    bytes.get_mut(..kept.len())?.copy_from_slice(kept);
    let mut memo_max = i64::from(i32::from_le_bytes(bytes));
    if memo_max < i64::from(computed) {
        // The next value with the same lowest bytes.
        memo_max += 1i64 << (8 * kept.len());
    }
    i32::try_from(memo_max).ok()
}

impl Container {
    /// Completes the last entry of a file that was cut after that entry's value (in its
    /// 8-byte trailer or in the terminator): writes the trailer and the terminator back, so
    /// that [`fsck`](Self::fsck) keeps the entry. Returns whether an entry was completed;
    /// a file with its terminator, or cut inside a value, is left as it is.
    ///
    /// `memo_max_of(value, memo_start)` checks the value: `Some(memo_max)` when the bytes are
    /// exactly one whole value (the entry then records that `memo_max`; `memo_start` is the
    /// first memo index free after the entries before it), `None` to leave the entry to fsck.
    /// A `memo_max` or live flag still in the file is kept as it is; a lost flag is live
    /// (deleted for a padding entry, whose key is empty).
    pub fn complete_torn_entry(
        &mut self,
        memo_max_of: impl FnOnce(&[u8], i32) -> Option<i32>,
    ) -> Result<bool, Error> {
        self.check_writable()?;
        self.with_lock(|container| container.complete_torn_locked(memo_max_of))?
    }

    /// [`complete_torn_entry`](Self::complete_torn_entry) under the exclusive lock.
    pub(crate) fn complete_torn_locked(
        &mut self,
        memo_max_of: impl FnOnce(&[u8], i32) -> Option<i32>,
    ) -> Result<bool, Error> {
        let lock = self.held_lock()?;
        let map = ReadMap::new(&lock, self.current_len()?)?;
        let salvaged = salvage(map.bytes(&lock))?;
        if salvaged.problem.is_none() {
            return Ok(false);
        }
        let Some(torn) = torn_tail(map.bytes(&lock), salvaged.end) else {
            return Ok(false);
        };
        let memo_start = memo_start(&salvaged.entries);
        let Some(computed_memo_max) = memo_max_of(torn.value, memo_start) else {
            return Ok(false);
        };
        let trailer = if torn.terminator_after {
            // Any byte may still be a zero: the flag is known only if it is not.
            let live = match torn.trailer_left.get(TRAILER_FLAG_IDX) {
                Some(&0) | None => !torn.key_is_empty,
                Some(&flag) => flag == live_flag(true),
            };
            // The memo_max bytes that are not zeros are those the cut left or the
            // completion wrote (in one write: all or none of them).
            let memo_left = memo_max_left(torn.trailer_left);
            let kept_len = memo_left
                .iter()
                .rposition(|&byte| byte != 0)
                .map_or(0, |at| at + 1);
            let Some(memo_max) = memo_max_keeping(&memo_left[..kept_len], computed_memo_max) else {
                return Ok(false);
            };
            let trailer = encode_entry_trailer(memo_max, live);
            let landed = |(&left, &expected): (&u8, &u8)| left == 0 || left == expected;
            if !torn.trailer_left.iter().zip(&trailer).all(landed) {
                return Ok(false);
            }
            trailer
        } else {
            // What the cut left of the memo_max is kept: the key is completed whatever
            // memo_max its writer recorded, as a read-only open reads it.
            let Some(memo_max) =
                memo_max_keeping(memo_max_left(torn.trailer_left), computed_memo_max)
            else {
                return Ok(false);
            };
            let live = match torn.trailer_left.get(TRAILER_FLAG_IDX) {
                Some(&flag) => flag == live_flag(true),
                None => !torn.key_is_empty,
            };
            let trailer = encode_entry_trailer(memo_max, live);
            if !trailer.starts_with(torn.trailer_left) {
                return Ok(false);
            }
            trailer
        };
        let value_end = torn.value_end;
        drop(map);
        // The terminator first: the file keeps ending with one (see
        // `end_with_terminator`).
        self.end_with_terminator(value_end + ENTRY_TRAILER_LEN)?;
        self.file()
            .write_all_at(&trailer, value_end)
            .map_err(|error| Error::io(error, value_end))?;
        if self.durability() == Durability::Flush {
            self.file().sync_all().map_err(Error::unplaced_io)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContainerOptions, NewEntry};

    // The bytes a cut left are kept; the rest come from what the value needs, raised to the
    // next value with those bytes when lower; all four bytes are kept as written.
    #[test]
    fn a_cut_memo_max_keeps_its_bytes() {
        assert_eq!(memo_max_keeping(&[], 7), Some(7));
        assert_eq!(memo_max_keeping(&[0x01, 0x6d], 1), Some(0x6d01));
        assert_eq!(memo_max_keeping(&[0x00], 0x0102), Some(0x0200));
        assert_eq!(memo_max_keeping(&[0, 0, 0, 0], 5), Some(0));
        assert_eq!(memo_max_keeping(&[0x00], i32::MAX), None);
        assert_eq!(memo_max_left(b"J\x01\x6d"), [0x01, 0x6d]);
        assert_eq!(memo_max_left(b"J\x01\x00\x00\x000\x88"), [1, 0, 0, 0]);
    }

    // Cut by 12 to 19 bytes, the last entry is completed; then fsck gives back the file's old
    // bytes for every cut of 1 to 19, and drops the last key for a cut into its value.
    #[test]
    fn cuts_after_the_value_are_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("torn.mmdpickle");
        let mut container = Container::open(&path).unwrap();
        for (key, value) in [("a", b"K\x01"), ("b", b"K\x02")] {
            let memo_max = container.memo_start().unwrap();
            let new = NewEntry {
                key,
                value_len: 2,
                memo_max,
                align: None,
            };
            container.append(new, |sink| sink.write_all(value)).unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        for cut in 1..=20u64 {
            std::fs::write(&path, &whole).unwrap();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(whole.len() as u64 - cut).unwrap();
            // A read-write open repairs a torn tail at once (completing what it can), and
            // the next fsck reports it.
            let mut container = ContainerOptions::new().open(&path).unwrap();
            let report = container.fsck().unwrap();
            let completed = report.completed_key.is_some();
            assert_eq!(completed, cut > 11 && cut < 20, "cut {cut}: {report:?}");
            assert!(report.problem.is_some(), "cut {cut}");
            let completed = container
                .complete_torn_entry(|value, memo_start| (value.len() == 2).then_some(memo_start))
                .unwrap();
            assert!(!completed, "cut {cut}: nothing left to complete");
            if cut < 20 {
                // The same bytes, but for the commit number fsck changes when it writes a
                // terminator itself.
                let mut repaired = std::fs::read(&path).unwrap();
                repaired[18..22].copy_from_slice(&whole[18..22]);
                assert_eq!(repaired, whole, "cut {cut}");
                assert_eq!(container.keys().unwrap(), ["a", "b"], "cut {cut}");
            } else {
                assert_eq!(container.keys().unwrap(), ["a"], "cut {cut}");
            }
        }
    }
}
