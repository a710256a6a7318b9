//! Appending one entry: what a new entry is, and where its value must be aligned; the
//! writing itself is a batch of one (`batch`).

use std::io;

use super::{Container, ValueSink};
use crate::error::Error;
use crate::layout::Entry;

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
