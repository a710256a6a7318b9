//! Appending an entry: padding for alignment and for the page rule, the value written in
//! place, then the committing write over the old terminator.

use std::io;

use super::{io_at, next_commit_number, straddles_page, Container, ValueSink};
use crate::error::{Error, ErrorKind};
use crate::layout::{
    self, encode_entry_head, encode_entry_trailer, encode_padding_entry, new_entry, padding_len,
    Entry, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, MAX_KEY_LEN, TERMINATOR,
};

/// Where an append puts its entries: a pure function of the table's end and the new entry,
/// tested without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AppendPlan {
    /// The padding entry that aligns the value, if it needs one (at the old terminator).
    padding: Option<Entry>,
    /// The new entry.
    entry: Entry,
    /// The padding entry that keeps the new terminator inside one page, if it needs one.
    tail_padding: Option<Entry>,
    /// Where the new terminator goes.
    new_terminator_offset: u64,
    /// The file's length after the append.
    new_end: u64,
}

impl AppendPlan {
    /// The plan for `new` appended over the terminator at `terminator_offset`, in a table
    /// whose memo starts at `memo_start`.
    fn new(
        new: &NewEntry<'_>,
        terminator_offset: u64,
        memo_start: i32,
        page_safe_commit: bool,
    ) -> Result<AppendPlan, Error> {
        let overflow = || Error::overflow(terminator_offset);
        let key_len = new.key.len() as u64;
        let padding_len = match new.align {
            Some(alignment) => padding_len(
                terminator_offset,
                key_len,
                alignment.value_relative_offset,
                alignment.align,
            )
            .ok_or_else(overflow)?,
            None => 0,
        };
        let padding_entry = |offset: u64, len: u64, memo_max: i32| {
            new_entry(
                "",
                offset,
                len - ENTRY_HEAD_LEN - ENTRY_TRAILER_LEN,
                memo_max,
                false,
            )
            .ok_or_else(overflow)
        };
        let padding = match padding_len {
            0 => None,
            len => Some(padding_entry(terminator_offset, len, memo_start)?),
        };
        let entry_offset = terminator_offset
            .checked_add(padding_len)
            .ok_or_else(overflow)?;
        let entry = new_entry(new.key, entry_offset, new.value_len, new.memo_max, true)
            .ok_or_else(overflow)?;
        // The next append commits with one 11-byte write over the terminator this one leaves;
        // a SIGKILL tears a write where it crosses a page boundary (the kernel copies page by
        // page), so that terminator must not straddle one: a padding entry moves it past.
        let tail_padding = if page_safe_commit && straddles_page(entry.end()) {
            let memo_max = memo_start.max(new.memo_max);
            Some(padding_entry(
                entry.end(),
                layout::MIN_PADDING_LEN,
                memo_max,
            )?)
        } else {
            None
        };
        let new_terminator_offset = tail_padding.as_ref().map_or(entry.end(), Entry::end);
        let new_end = new_terminator_offset
            .checked_add(TERMINATOR.len() as u64)
            .ok_or_else(overflow)?;
        Ok(AppendPlan {
            padding,
            entry,
            tail_padding,
            new_terminator_offset,
            new_end,
        })
    }

    /// The entries appended, in file order.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.padding
            .iter()
            .chain(std::iter::once(&self.entry))
            .chain(&self.tail_padding)
    }

    /// The bytes before the value (padding entry and the entry's head) and the bytes after
    /// the entry (its tail padding).
    fn bytes(&self, key: &str) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let padding_bytes = |padding: &Option<Entry>| match padding {
            Some(entry) => encode_padding_entry(entry.len(), entry.memo_max())
                .ok_or(Error::overflow(entry.offset())),
            None => Ok(Vec::new()),
        };
        let mut before_value = padding_bytes(&self.padding)?;
        before_value.extend(encode_entry_head(key.as_bytes(), self.entry.len() - 9));
        Ok((before_value, padding_bytes(&self.tail_padding)?))
    }
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
    /// The key (at most 255 UTF-8 bytes).
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
    /// any older live entry with the same key. Returns the new entry.
    ///
    /// On any error the file is as before: the old terminator is intact until the new entry
    /// is complete.
    pub fn append(
        &mut self,
        new: NewEntry<'_>,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        self.check_writable()?;
        if new.key.len() > MAX_KEY_LEN {
            return Err(Error::unplaced(ErrorKind::KeyTooLong {
                len: new.key.len(),
            }));
        }
        if let Some(alignment) = new.align {
            if !alignment.align.is_power_of_two() || alignment.align > MAX_ALIGN {
                return Err(Error::unplaced(ErrorKind::BadAlignment {
                    align: alignment.align,
                }));
            }
        }
        self.locked(|container| container.append_locked(new, write_value))
    }

    fn append_locked(
        &mut self,
        new: NewEntry<'_>,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        let table = self.refresh()?;
        let terminator_offset = table.terminator_offset();
        let memo_start = table.memo_start();
        let table_commit_number = table.commit_number();
        let replaced: Vec<(usize, u64)> = table
            .index_of(new.key)
            .and_then(|entry_idx| Some((entry_idx, table.entries().get(entry_idx)?)))
            .map(|(entry_idx, entry)| (entry_idx, entry.live_flag_offset()))
            .into_iter()
            .collect();
        let plan = AppendPlan::new(
            &new,
            terminator_offset,
            memo_start,
            self.options.page_safe_commit,
        )?;
        let (bytes_before_value, tail_bytes) = plan.bytes(new.key)?;
        let AppendPlan {
            entry,
            new_terminator_offset,
            new_end,
            ..
        } = plan.clone();
        let appended: Vec<Entry> = plan.entries().cloned().collect();

        // Architecture invariant: the file is a valid pickle between two operations, and a
        // crash loses at most this one. The first 11 new bytes overwrite the old terminator:
        // they go last, so until then the
        // file is the old dict followed by bytes after its STOP.
        let (committing_bytes, rest) = bytes_before_value.split_at(TERMINATOR.len());
        // The new terminator goes first: the file keeps ending with a terminator during the
        // whole append, so a Python `mmapdict` opening it meanwhile (its constructor checks the
        // terminator without taking the lock) does not append one of its own.
        let written = self
            .write_at(&TERMINATOR, new_terminator_offset)
            .and_then(|()| self.write_at(rest, terminator_offset + TERMINATOR.len() as u64))
            .and_then(|()| {
                let mut sink = ValueSink::new(
                    &self.file,
                    entry.value_offset(),
                    entry.value_offset() + entry.value_len(),
                );
                write_value(&mut sink).map_err(io_at(sink.position()))?;
                if sink.position() != sink.end() {
                    return Err(Error::new(
                        ErrorKind::ValueLength {
                            expected: entry.value_len(),
                            written: sink.position() - entry.value_offset(),
                        },
                        sink.position(),
                    ));
                }
                Ok(())
            })
            .and_then(|()| {
                let value_end = entry.end() - ENTRY_TRAILER_LEN;
                self.write_at(&encode_entry_trailer(new.memo_max, true), value_end)?;
                self.write_at(&tail_bytes, entry.end())?;
                // A writer may have reserved space past the entry: the terminator ends the file.
                if self.current_len()? != new_end {
                    self.file.set_len(new_end).map_err(io_at(new_end))?;
                }
                self.sync()
            });
        if let Err(error) = written {
            // Best effort: the bytes after the old terminator are ignored by every reader and
            // removed by the next read-write open anyway.
            let _ = self
                .file
                .set_len(terminator_offset + TERMINATOR.len() as u64);
            return Err(error);
        }
        self.write_at(committing_bytes, terminator_offset)?;
        // The table was validated under this lock hold: its commit number is the file's.
        let commit_number = next_commit_number(table_commit_number);
        self.write_commit_number(commit_number)?;
        self.sync()?;
        if let Some(table) = self.cache.as_mut() {
            table.push_appended(appended);
            table.set_commit_number(commit_number);
        }
        // Replace: the older live entry of the key goes after the new one is in.
        self.delete_entries(&replaced)?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::MIN_PADDING_LEN;

    fn new(key: &str, value_len: u64, align: Option<Alignment>) -> NewEntry<'_> {
        NewEntry {
            key,
            value_len,
            memo_max: 1,
            align,
        }
    }

    // Without alignment or the page rule, the entry sits on the old terminator.
    #[test]
    fn a_plain_append_starts_at_the_terminator() {
        let plan = AppendPlan::new(&new("k", 2, None), 24, 1, false).unwrap();
        assert_eq!(plan.padding, None);
        assert_eq!(plan.entry.offset(), 24);
        assert_eq!(plan.new_terminator_offset, plan.entry.end());
        assert_eq!(plan.new_end, plan.entry.end() + 11);
        assert_eq!(plan.entries().count(), 1);
    }

    // The aligned byte of the value lands on a multiple of the alignment, whatever the start.
    #[test]
    fn aligned_values_get_a_padding_entry() {
        let align = Some(Alignment {
            value_relative_offset: 79,
            align: 64,
        });
        for terminator_offset in 24..300 {
            let plan =
                AppendPlan::new(&new("key", 100, align), terminator_offset, 1, false).unwrap();
            assert_eq!((plan.entry.value_offset() + 79) % 64, 0);
            match &plan.padding {
                Some(padding) => {
                    assert_eq!(padding.offset(), terminator_offset);
                    assert!(padding.len() >= MIN_PADDING_LEN);
                    assert_eq!(padding.end(), plan.entry.offset());
                }
                None => assert_eq!(plan.entry.offset(), terminator_offset),
            }
        }
    }

    // The page rule moves a terminator that would straddle a 4 KiB boundary past it.
    #[test]
    fn the_new_terminator_never_straddles_a_page() {
        for value_len in 4000..4100 {
            let plan = AppendPlan::new(&new("k", value_len, None), 24, 1, true).unwrap();
            assert!(!straddles_page(plan.new_terminator_offset), "{value_len}");
            if let Some(tail) = &plan.tail_padding {
                assert_eq!(tail.offset(), plan.entry.end());
                assert_eq!(tail.len(), MIN_PADDING_LEN);
            }
        }
    }

    // Offsets near the end of the u64 range are an error, not a wrap.
    #[test]
    fn overflow_is_an_error() {
        let error = AppendPlan::new(&new("k", u64::MAX - 40, None), 24, 1, false).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Overflow));
    }
}
