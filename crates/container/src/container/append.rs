//! Appending one entry: what a new entry is, where its value must be aligned, and where
//! its bytes go (`AppendPlan`, a pure function tested without I/O); the writing itself is a
//! batch of one (`batch`).

use std::io;

use super::{straddles_page, Container, ValueSink};
use crate::error::{Error, ErrorKind};
use crate::layout::{
    self, encode_padding_entry, new_entry, new_entry_in, padding_len, push_entry_head, Entry,
    KeyArena, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, FRAME_HEAD_LEN, MAX_KEY_LEN,
};

/// Where an entry appended at some offset goes: a pure function of that offset and the new
/// entry, tested without I/O. The batch writes the bytes; the page rule for the terminator a
/// batch leaves is [`AppendPlan::tail_padding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AppendPlan {
    /// The padding entry that aligns the value, if it needs one (at the append's offset).
    pub(super) padding: Option<Entry>,
    /// The new entry.
    pub(super) entry: Entry,
}

impl AppendPlan {
    /// The plan for `new` appended at `offset`, in a table whose memo starts at
    /// `memo_start`; its entry's key is at `key_place` when it is given and holds the key
    /// (in an arena of its own otherwise). Refuses a key over [`MAX_KEY_LEN`] bytes and a
    /// bad alignment.
    pub(super) fn new(
        new: &NewEntry<'_>,
        offset: u64,
        memo_start: i32,
        key_place: Option<(KeyArena, u32)>,
    ) -> Result<AppendPlan, Error> {
        if new.key.len() > MAX_KEY_LEN {
            return Err(Error::unplaced(ErrorKind::KeyTooLong {
                len: new.key.len(),
            }));
        }
        let padding_len = match new.align {
            Some(alignment) => {
                if !alignment.align.is_power_of_two() || alignment.align > MAX_ALIGN {
                    return Err(Error::unplaced(ErrorKind::BadAlignment {
                        align: alignment.align,
                    }));
                }
                padding_len(
                    offset,
                    new.key.len() as u64,
                    alignment.value_relative_offset,
                    alignment.align,
                )
                .ok_or(Error::overflow(offset))?
            }
            None => 0,
        };
        let padding = match padding_len {
            0 => None,
            len => Some(padding_entry(offset, len, memo_start)?),
        };
        let entry_offset = offset
            .checked_add(padding_len)
            .ok_or(Error::overflow(offset))?;
        let (value_len, memo_max) = (new.value_len, new.memo_max);
        let entry = new_entry_in(key_place, new.key, entry_offset, value_len, memo_max, true)
            .ok_or(Error::overflow(entry_offset))?;
        Ok(AppendPlan { padding, entry })
    }

    /// Appends the bytes before the value to `out`: the padding entry, then the entry's
    /// head.
    pub(super) fn write_before_value(&self, key: &str, out: &mut Vec<u8>) -> Result<(), Error> {
        if let Some(padding) = &self.padding {
            out.extend(padding_bytes(padding)?);
        }
        // The frame counts every byte after its opcode and 8-byte length.
        push_entry_head(out, key.as_bytes(), self.entry.len() - FRAME_HEAD_LEN);
        Ok(())
    }

    /// The padding entry that keeps a terminator at `end` inside one page, if it needs one
    /// (and `page_safe_commit` asks for the rule). The next commit writes 11 bytes over that
    /// terminator; a SIGKILL tears a write where it crosses a page boundary (the kernel copies
    /// page by page), so the terminator must not straddle one: the padding moves it past.
    pub(super) fn tail_padding(
        end: u64,
        memo_max: i32,
        page_safe_commit: bool,
    ) -> Result<Option<Entry>, Error> {
        if page_safe_commit && straddles_page(end) {
            padding_entry(end, layout::MIN_PADDING_LEN, memo_max).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The table entry of a padding entry of `len` bytes at `offset`.
fn padding_entry(offset: u64, len: u64, memo_max: i32) -> Result<Entry, Error> {
    new_entry(
        "",
        offset,
        len - ENTRY_HEAD_LEN - ENTRY_TRAILER_LEN,
        memo_max,
        false,
    )
    .ok_or(Error::overflow(offset))
}

/// The bytes of the padding entry `padding`.
pub(super) fn padding_bytes(padding: &Entry) -> Result<Vec<u8>, Error> {
    encode_padding_entry(padding.len(), padding.memo_max()).ok_or(Error::overflow(padding.offset()))
}

/// The largest alignment an append may ask for.
pub const MAX_ALIGN: u64 = 1 << 20;

/// Where a byte of a new entry's value must sit: the byte at
/// `value_offset + value_relative_offset` is put at a multiple of `align` (a power of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    /// Offset of the byte to align, counted from the value's first byte.
    pub value_relative_offset: u64,
    /// The alignment, a power of two up to [`MAX_ALIGN`].
    pub align: u64,
}

/// A new entry to append: its key, the length of its value, the `memo_max` to record.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// The key (at most [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) UTF-8 bytes).
    pub key: &'a str,
    /// The exact number of value bytes the writer will write or skip.
    pub value_len: u64,
    /// The next free memo index after the value (see [`Table::memo_start`](crate::Table::memo_start)).
    pub memo_max: i32,
    /// Where the value must be aligned, if anywhere.
    pub align: Option<Alignment>,
}

impl Container {
    /// Appends an entry whose value `write_value` writes straight into the file, then deletes
    /// any older live entry with the same key. Returns the new entry. A batch of one (see
    /// [`Container::batch`]).
    ///
    /// On any error the file is as before: the old terminator is intact until the new entry
    /// is complete.
    pub fn append(
        &mut self,
        new: NewEntry<'_>,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        let mut batch = self.batch()?;
        let entry = batch.append(new, write_value)?;
        batch.commit()?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{MIN_PADDING_LEN, TERMINATOR};

    fn new(key: &str, value_len: u64, align: Option<Alignment>) -> NewEntry<'_> {
        NewEntry {
            key,
            value_len,
            memo_max: 1,
            align,
        }
    }

    // Without alignment, the entry sits on the old terminator.
    #[test]
    fn a_plain_append_starts_at_the_terminator() {
        let plan = AppendPlan::new(&new("k", 2, None), 24, 1, None).unwrap();
        assert_eq!(plan.padding, None);
        assert_eq!(plan.entry.offset(), 24);
        let mut bytes = Vec::new();
        plan.write_before_value("k", &mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, plan.entry.value_offset() - 24);
        assert_eq!(
            AppendPlan::tail_padding(plan.entry.end(), 1, false).unwrap(),
            None
        );
    }

    // The aligned byte of the value lands on a multiple of the alignment, whatever the start.
    #[test]
    fn aligned_values_get_a_padding_entry() {
        let align = Some(Alignment {
            value_relative_offset: 79,
            align: 64,
        });
        for offset in 24..300 {
            let plan = AppendPlan::new(&new("key", 100, align), offset, 1, None).unwrap();
            assert_eq!((plan.entry.value_offset() + 79) % 64, 0);
            match &plan.padding {
                Some(padding) => {
                    assert_eq!(padding.offset(), offset);
                    assert!(padding.len() >= MIN_PADDING_LEN);
                    assert_eq!(padding.end(), plan.entry.offset());
                }
                None => assert_eq!(plan.entry.offset(), offset),
            }
            let mut bytes = Vec::new();
            plan.write_before_value("key", &mut bytes).unwrap();
            assert_eq!(bytes.len() as u64, plan.entry.value_offset() - offset);
        }
    }

    // The page rule moves a terminator that would straddle a 4 KiB boundary past it.
    #[test]
    fn the_new_terminator_never_straddles_a_page() {
        for value_len in 4000..4100 {
            let plan = AppendPlan::new(&new("k", value_len, None), 24, 1, None).unwrap();
            let end = plan.entry.end();
            let terminator_offset = match AppendPlan::tail_padding(end, 1, true).unwrap() {
                Some(tail) => {
                    assert_eq!(tail.offset(), end);
                    assert_eq!(tail.len(), MIN_PADDING_LEN);
                    tail.end()
                }
                None => end,
            };
            assert!(!straddles_page(terminator_offset), "{value_len}");
            assert!(terminator_offset % 4096 <= 4096 - TERMINATOR.len() as u64);
        }
    }

    // Offsets near the end of the u64 range are an error, not a wrap.
    #[test]
    fn overflow_is_an_error() {
        let error = AppendPlan::new(&new("k", u64::MAX - 40, None), 24, 1, None).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Overflow));
    }

    // Long keys and bad alignments are refused before anything is planned.
    #[test]
    fn long_keys_and_bad_alignments_are_refused() {
        let long_key = "k".repeat(MAX_KEY_LEN + 1);
        let error = AppendPlan::new(&new(&long_key, 2, None), 24, 1, None).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::KeyTooLong { .. }));
        for align in [3, MAX_ALIGN * 2] {
            let bad = Some(Alignment {
                value_relative_offset: 0,
                align,
            });
            let error = AppendPlan::new(&new("k", 2, bad), 24, 1, None).unwrap_err();
            assert!(matches!(error.kind(), ErrorKind::BadAlignment { .. }));
        }
    }
}
