//! Appending an entry: padding for alignment and for the page rule, the value written in
//! place, then the committing write over the old terminator.

use std::io;

use super::{io_at, next_commit_number, straddles_page, Container, ValueSink};
use crate::error::{Error, ErrorKind};
use crate::layout::{
    self, encode_entry_head, encode_entry_trailer, encode_padding_entry, new_entry, padding_len,
    Entry, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, MAX_KEY_LEN, TERMINATOR,
};

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
        let key_len = new.key.len() as u64;
        let padding = match new.align {
            Some(alignment) => padding_len(
                terminator_offset,
                key_len,
                alignment.value_relative_offset,
                alignment.align,
            )
            .ok_or(Error::overflow(terminator_offset))?,
            None => 0,
        };
        let mut appended = Vec::new();
        let mut bytes_before_value = Vec::new();
        if padding > 0 {
            bytes_before_value = encode_padding_entry(padding, memo_start)
                .ok_or(Error::overflow(terminator_offset))?;
            appended.push(
                new_entry(
                    "",
                    terminator_offset,
                    padding - ENTRY_HEAD_LEN - ENTRY_TRAILER_LEN,
                    memo_start,
                    false,
                )
                .ok_or(Error::overflow(terminator_offset))?,
            );
        }
        let entry_offset = terminator_offset + padding;
        let entry = new_entry(new.key, entry_offset, new.value_len, new.memo_max, true)
            .ok_or(Error::overflow(entry_offset))?;
        // The next append commits with one 11-byte write over the terminator this one leaves;
        // a SIGKILL tears a write where it crosses a page boundary (the kernel copies page by
        // page), so that terminator must not straddle one: a padding entry moves it past.
        let tail_padding = if self.options.page_safe_commit && straddles_page(entry.end()) {
            layout::MIN_PADDING_LEN
        } else {
            0
        };
        let new_terminator_offset = entry
            .end()
            .checked_add(tail_padding)
            .ok_or(Error::overflow(entry_offset))?;
        let new_end = new_terminator_offset
            .checked_add(TERMINATOR.len() as u64)
            .ok_or(Error::overflow(entry_offset))?;
        bytes_before_value.extend(encode_entry_head(new.key.as_bytes(), entry.len() - 9));
        appended.push(entry.clone());
        let mut tail_bytes = Vec::new();
        if tail_padding > 0 {
            let memo_max = memo_start.max(new.memo_max);
            tail_bytes =
                encode_padding_entry(tail_padding, memo_max).ok_or(Error::overflow(entry.end()))?;
            appended.push(
                new_entry(
                    "",
                    entry.end(),
                    tail_padding - ENTRY_HEAD_LEN - ENTRY_TRAILER_LEN,
                    memo_max,
                    false,
                )
                .ok_or(Error::overflow(entry.end()))?,
            );
        }

        // The first 11 new bytes overwrite the old terminator: they go last, so until then the
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
