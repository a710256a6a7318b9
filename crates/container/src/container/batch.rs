//! Batches: many appends and removes under one exclusive lock, made visible by one commit.
//!
//! The entries of a batch are written after the old terminator `T` (small values gathered
//! in memory and written in large pieces, large ones straight to the file), except their
//! first 11 bytes; the commit writes those over `T`, then the commit number, then flips the
//! live flags of the entries the batch removes or replaces, in the order asked.

use std::io;
use std::sync::Arc;

use super::append::{padding_bytes, AppendPlan, NewEntry};
use super::{io_at, next_commit_number, Container, ValueSink, PAGE};
use crate::error::{Error, ErrorKind};
use crate::layout::{
    encode_entry_head, encode_entry_trailer, live_flag, new_entry_in, Entry, KeyArena, KeyIndex,
    KeyWriter, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN, FRAME_HEAD_LEN, MAX_ENTRIES, MAX_KEY_LEN,
    TERMINATOR,
};
use crate::map::ReadMap;

/// Values up to this long are gathered in the batch's buffer; longer ones go straight to
/// their place in the file.
const BUFFERED_VALUE_MAX: u64 = 64 << 10;
/// The buffer is written out once it holds this many bytes: small enough that it stays in
/// the cache and its pages are reused (at 1 MiB a batch of 10,000 small values took fresh
/// pages, each a page fault, for most of its 300 KB), large enough that the two syscalls of a
/// write-out cost little.
const BUFFER_FLUSH_LEN: usize = 128 << 10;

/// Changes under one exclusive lock, made visible together by one commit: see
/// [`Container::batch`].
///
/// Dropped without [`Batch::commit`] (or after an error of `commit` before its commit
/// point), the file is left as it was and the lock is released.
#[derive(Debug)]
pub struct Batch<'c> {
    container: &'c mut Container,
    /// The old terminator's offset: the batch's first byte goes there.
    start: u64,
    /// Where the next entry goes.
    next: u64,
    /// Bytes not yet written, which go at `buffer_offset`.
    buffer: Vec<u8>,
    buffer_offset: u64,
    /// The batch's first 11 bytes, held back for the commit once the rest was written.
    commit_bytes: Option<[u8; TERMINATOR.len()]>,
    /// Entries written by the batch (padding included), in file order.
    appended: Vec<Entry>,
    /// The live ones among them by key (indices in `appended`).
    pending: KeyIndex,
    /// Where the keys of the next appends are, in one arena, if the caller said which
    /// ([`Batch::expect_keys`]).
    expected_keys: std::vec::IntoIter<(KeyArena, u32)>,
    /// The bytes of the expected keys' entries, but their values.
    expected_framing_len: usize,
    /// Committed entries the batch deletes, `(index in the table, offset of the live flag)`,
    /// in the order their deletes were asked; the set holds the same indices.
    doomed: Vec<(usize, u64)>,
    doomed_indices: foldhash::HashSet<usize>,
    memo_start: i32,
    /// Changes of the key set (the commit number moves on by this many).
    changes: u32,
    /// Bytes were written past the old terminator (dropping the batch cuts them).
    wrote: bool,
    /// The file may extend past the batch's end (a value written straight to the file, an
    /// abandoned append): the commit sets the length.
    may_overshoot: bool,
    /// The commit write happened: nothing is cut any more.
    committed: bool,
    /// The lock was left (commit done).
    finished: bool,
}

impl Container {
    /// Starts a batch: takes the exclusive lock (re-entrant, like every operation) until the
    /// batch is committed or dropped. Appends and removes inside it are seen by the batch
    /// ([`Batch::get`]) but by no reader until [`Batch::commit`]:
    ///
    /// - every entry the batch appends becomes visible at once, with one 11-byte write over
    ///   the old terminator (the commit point), as a single append does;
    /// - the commit number then moves on by the number of changes, in one write;
    /// - then the entries the batch removes or replaces are deleted, one live-flag byte each,
    ///   in the order asked. A replaced entry is shadowed by its newer one from the commit
    ///   point on, so a replace is atomic with the appends; a plain remove is not: a process
    ///   killed during these flips leaves the batch's appends and replaces and a prefix of
    ///   its removes.
    ///
    /// [`Durability::Flush`](crate::Durability::Flush) syncs twice per batch (before and
    /// after the commit point), whatever its size.
    ///
    /// ```
    /// use mmappickle_container::{Container, NewEntry};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut container = Container::open(dir.path().join("batch.mmdpickle"))?;
    /// let mut batch = container.batch()?;
    /// for key in ["a", "b", "c"] {
    ///     let new = NewEntry { key, value_len: 2, memo_max: batch.memo_start(), align: None };
    ///     batch.append(new, |sink| sink.write_all(b"K\x07"))?;
    /// }
    /// assert!(batch.remove("b")?);
    /// batch.commit()?;
    /// assert_eq!(container.keys()?, ["a", "c"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batch(&mut self) -> Result<Batch<'_>, Error> {
        self.check_writable()?;
        self.enter_lock()?;
        let (start, memo_start) = match self.refresh() {
            Ok(table) => (table.terminator_offset(), table.memo_start()),
            Err(error) => {
                self.leave_lock(true);
                return Err(error);
            }
        };
        Ok(Batch {
            container: self,
            start,
            next: start,
            buffer: Vec::new(),
            buffer_offset: start,
            commit_bytes: None,
            appended: Vec::new(),
            pending: Default::default(),
            expected_keys: Vec::new().into_iter(),
            expected_framing_len: 0,
            doomed: Vec::new(),
            doomed_indices: Default::default(),
            memo_start,
            changes: 0,
            wrote: false,
            may_overshoot: false,
            committed: false,
            finished: false,
        })
    }
}

impl Batch<'_> {
    /// The first memo index free for a new value, the batch's entries included.
    pub fn memo_start(&self) -> i32 {
        self.memo_start
    }

    /// Prepares for appends of `keys`, in this order: room for their entries, and their keys
    /// in one allocation (an entry appended otherwise holds its key in one of its own).
    /// Appends of other keys, or in another order, work as well, without that gain.
    pub fn expect_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        let mut writer = KeyWriter::default();
        let mut key_bytes = 0;
        let places: Vec<_> = keys
            .into_iter()
            .map(|key| {
                key_bytes += key.len();
                writer.push(key.as_bytes())
            })
            .collect();
        writer.finish();
        self.appended.reserve(places.len());
        self.pending.reserve(&self.appended, places.len());
        let framing = (ENTRY_HEAD_LEN + ENTRY_TRAILER_LEN) as usize;
        self.expected_framing_len = places.len().saturating_mul(framing) + key_bytes;
        self.expected_keys = places.into_iter();
    }

    /// Prepares for appends whose values take about `value_bytes` in all (with the keys
    /// told to [`Batch::expect_keys`] before): the batch's buffer takes its size at once,
    /// up to the size at which it is written out, instead of growing by copies.
    pub fn expect_value_bytes(&mut self, value_bytes: usize) {
        let len = value_bytes
            .saturating_add(self.expected_framing_len)
            .min(BUFFER_FLUSH_LEN + BUFFERED_VALUE_MAX as usize);
        self.buffer.reserve(len.saturating_sub(self.buffer.len()));
    }

    /// The container (for its path and options; its methods would wait for this batch).
    pub fn container(&self) -> &Container {
        self.container
    }

    /// The live entry of `key` as the batch sees it (its own appends and removes included).
    /// An entry appended by the batch is not readable through the container before the
    /// commit.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        if let Some(appended_idx) = self.pending.get(&self.appended, key) {
            return self.appended.get(appended_idx);
        }
        let table = self.container.cache.as_deref()?;
        let entry_idx = table.index_of(key)?;
        if self.doomed_indices.contains(&entry_idx) {
            return None;
        }
        table.entries().get(entry_idx)
    }

    /// Appends an entry whose value `write_value` writes (into the batch's buffer, or
    /// straight into the file for a value over 64 KiB), replacing any live entry of the
    /// same key at the commit. On an error the batch is as it was before this call.
    pub fn append(
        &mut self,
        new: NewEntry<'_>,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        self.check_room()?;
        let key_place = self.expected_keys.next();
        let plan = AppendPlan::new(&new, self.next, self.memo_start, key_place)?;
        let (next, buffer_len, buffer_offset) = (self.next, self.buffer.len(), self.buffer_offset);
        let (n_appended, memo_start) = (self.appended.len(), self.memo_start);
        match self.append_entry(new, plan, write_value) {
            Ok(entry) => Ok(entry),
            Err(error) => {
                self.rewind(next, buffer_len, buffer_offset, n_appended, memo_start);
                Err(error)
            }
        }
    }

    /// Appends an entry whose value `write_value(file, value_offset)` writes straight at its
    /// final place in the file, returning `(value length, memo_max)`: its length is known only
    /// once written (a Python pickler class of the library's kind writes so, and may map its
    /// own bytes). `check(value, memo_max)` then sees the bytes written, mapped from the
    /// file, and may refuse them with what it expected and at which byte of the value (a
    /// [`BadEntry`](ErrorKind::BadEntry) at that offset of the file). The entry replaces any
    /// live entry of the key at the commit.
    /// On an error (of either), the batch is as it was before this call and the bytes are cut
    /// with the batch's others.
    ///
    /// Unlike [`Batch::append`], the file does not end with a terminator while
    /// `write_value` writes (where its value ends is not known yet).
    ///
    /// ```
    /// use mmappickle_container::Container;
    /// use std::os::unix::fs::FileExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut container = Container::open(dir.path().join("written.mmdpickle"))?;
    /// let mut batch = container.batch()?;
    /// let memo_max = batch.memo_start();
    /// batch.append_written(
    ///     "answer",
    ///     |file, offset| file.write_all_at(b"K\x2a", offset).map(|()| (2, memo_max)),
    ///     |value, _| if value == b"K\x2a" { Ok(()) } else { Err(("K\x2a", 0)) },
    /// )?;
    /// batch.commit()?;
    /// assert_eq!(container.keys()?, ["answer"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_written(
        &mut self,
        key: &str,
        write_value: impl FnOnce(&std::fs::File, u64) -> io::Result<(u64, i32)>,
        check: impl FnOnce(&[u8], i32) -> Result<(), (&'static str, u64)>,
    ) -> Result<Entry, Error> {
        if key.len() > MAX_KEY_LEN {
            return Err(Error::unplaced(ErrorKind::KeyTooLong { len: key.len() }));
        }
        self.check_room()?;
        let (next, buffer_len, buffer_offset) = (self.next, self.buffer.len(), self.buffer_offset);
        let (n_appended, memo_start) = (self.appended.len(), self.memo_start);
        match self.append_written_entry(key, write_value, check) {
            Ok(entry) => Ok(entry),
            Err(error) => {
                self.rewind(next, buffer_len, buffer_offset, n_appended, memo_start);
                Err(error)
            }
        }
    }

    fn append_written_entry(
        &mut self,
        key: &str,
        write_value: impl FnOnce(&std::fs::File, u64) -> io::Result<(u64, i32)>,
        check: impl FnOnce(&[u8], i32) -> Result<(), (&'static str, u64)>,
    ) -> Result<Entry, Error> {
        let key_place = self.expected_keys.next();
        // What the batch gathered goes to the file first, a terminator after it.
        self.write_out(true)?;
        let offset = self.next;
        let value_offset = offset + ENTRY_HEAD_LEN + key.len() as u64;
        self.wrote = true;
        self.may_overshoot = true;
        let file = Arc::clone(&self.container.file);
        let (value_len, memo_max) =
            write_value(&file, value_offset).map_err(io_at(value_offset))?;
        let entry = new_entry_in(key_place, key, offset, value_len, memo_max, true)
            .ok_or(Error::overflow(value_offset))?;
        let value_end = entry.end() - ENTRY_TRAILER_LEN;
        let file_len = self.container.current_len()?;
        if file_len < value_end {
            let written = file_len.saturating_sub(value_offset);
            let kind = ErrorKind::ValueLength {
                expected: value_len,
                written,
            };
            return Err(Error::new(kind, value_offset.min(file_len)));
        }
        {
            let lock = self.container.held_lock()?;
            let map = ReadMap::new(&lock, value_end)?;
            let value = usize::try_from(value_offset)
                .ok()
                .zip(usize::try_from(value_end).ok())
                .and_then(|(start, end)| map.bytes(&lock).get(start..end))
                .ok_or(Error::overflow(value_offset))?;
            check(value, memo_max)
                .map_err(|(expected, at)| Error::bad_entry(expected, value_offset + at))?;
        }
        // Whatever the writer left past the value is cut; the file ends with a terminator
        // again, after the entry.
        self.container.end_with_terminator(entry.end())?;
        self.buffer.extend(encode_entry_head(
            key.as_bytes(),
            entry.len() - FRAME_HEAD_LEN,
        ));
        self.write_out(false)?;
        self.buffer_offset = value_end;
        self.buffer
            .extend_from_slice(&encode_entry_trailer(memo_max, true));
        self.next = entry.end();
        let replaced = self.retire(key)?;
        self.changes += 1 + u32::from(replaced);
        self.memo_start = self.memo_start.max(memo_max);
        self.appended.push(entry.clone());
        self.pending.insert(&self.appended, self.appended.len() - 1);
        Ok(entry)
    }

    /// Room in the table for one more entry, its padding and the batch's tail padding (the
    /// key indices are u32).
    fn check_room(&self) -> Result<(), Error> {
        let n_committed = self
            .container
            .cache
            .as_deref()
            .map_or(0, |table| table.entries().len());
        if n_committed.saturating_add(self.appended.len()) > MAX_ENTRIES - 3 {
            return Err(Error::overflow(self.next));
        }
        Ok(())
    }

    /// Undoes an append that failed: forgets its entries and bytes (those already in the
    /// file lie after the batch's end and are cut at the commit or the drop).
    fn rewind(
        &mut self,
        next: u64,
        buffer_len: usize,
        buffer_offset: u64,
        n_appended: usize,
        memo_start: i32,
    ) {
        if self.buffer_offset == buffer_offset {
            self.buffer.truncate(buffer_len);
        } else {
            // The buffer was written out meanwhile: what it held before is in the file.
            self.buffer.clear();
            self.buffer_offset = next;
            if next == self.start {
                self.commit_bytes = None;
            }
        }
        self.next = next;
        self.appended.truncate(n_appended);
        self.memo_start = memo_start;
        self.may_overshoot |= self.wrote;
        if self.wrote {
            // Best effort: the failed entry's bytes go, the file ends with a terminator.
            let _ = self.container.end_with_terminator(next.max(self.start));
        }
    }

    fn append_entry(
        &mut self,
        new: NewEntry<'_>,
        plan: AppendPlan,
        write_value: impl FnOnce(&mut ValueSink<'_>) -> io::Result<()>,
    ) -> Result<Entry, Error> {
        plan.write_before_value(new.key, &mut self.buffer)?;
        let AppendPlan { padding, entry } = plan;
        let value_end = entry.end() - ENTRY_TRAILER_LEN;
        let written_to = if new.value_len <= BUFFERED_VALUE_MAX {
            let file = &self.container.file;
            let mut sink =
                ValueSink::buffered(file, &mut self.buffer, entry.value_offset(), value_end);
            let written = write_value(&mut sink).map_err(io_at(sink.position()));
            if sink.wrote_in_file() {
                self.wrote = true;
                self.may_overshoot = true;
            }
            written?;
            sink.position()
        } else {
            // The file keeps ending with a terminator while the value is written (a Python
            // `mmapdict` constructor checks for one without the lock).
            self.wrote = true;
            self.may_overshoot = true;
            self.container.end_with_terminator(entry.end())?;
            self.write_out(false)?;
            let file = Arc::clone(&self.container.file);
            let mut sink = ValueSink::new(&file, entry.value_offset(), value_end);
            let written = write_value(&mut sink).map_err(io_at(sink.position()));
            self.buffer_offset = value_end;
            written?;
            sink.position()
        };
        if written_to != value_end {
            return Err(Error::new(
                ErrorKind::ValueLength {
                    expected: entry.value_len(),
                    written: written_to - entry.value_offset(),
                },
                written_to,
            ));
        }
        self.buffer
            .extend_from_slice(&encode_entry_trailer(new.memo_max, true));
        self.next = entry.end();
        if self.buffer.len() >= BUFFER_FLUSH_LEN {
            self.write_out(true)?;
        }
        // Only now that the entry is complete: what it replaces, and the batch's view.
        let replaced = self.retire(new.key)?;
        self.changes += 1 + u32::from(replaced);
        self.memo_start = self.memo_start.max(new.memo_max);
        self.appended.extend(padding);
        self.appended.push(entry.clone());
        self.pending.insert(&self.appended, self.appended.len() - 1);
        Ok(entry)
    }

    /// Deletes the live entry of `key` at the commit (or at once, in the batch's own
    /// bytes, if the batch appended it); returns whether there was one.
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        let removed = self.retire(key)?;
        self.changes += u32::from(removed);
        Ok(removed)
    }

    /// Marks the live entry of `key` deleted in the batch's view; returns whether there
    /// was one.
    fn retire(&mut self, key: &str) -> Result<bool, Error> {
        if let Some(appended_idx) = self.pending.remove(&self.appended, key) {
            self.kill_appended(appended_idx)?;
            return Ok(true);
        }
        let Some(table) = self.container.cache.as_deref() else {
            return Ok(false);
        };
        let Some(entry_idx) = table.index_of(key) else {
            return Ok(false);
        };
        if !self.doomed_indices.insert(entry_idx) {
            return Ok(false);
        }
        let flag_offset = table
            .entries()
            .get(entry_idx)
            .ok_or_else(|| Error::unplaced(ErrorKind::StaleEntry))?
            .live_flag_offset();
        self.doomed.push((entry_idx, flag_offset));
        Ok(true)
    }

    /// Deletes an entry the batch appended (not yet visible: its flag is simply rewritten).
    fn kill_appended(&mut self, appended_idx: usize) -> Result<(), Error> {
        let Some(entry) = self.appended.get_mut(appended_idx) else {
            return Ok(());
        };
        entry.set_live(false);
        let flag_offset = entry.live_flag_offset();
        match flag_offset
            .checked_sub(self.buffer_offset)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| self.buffer.get_mut(at))
        {
            Some(flag) => *flag = live_flag(false),
            None => self.container.write_at(&[live_flag(false)], flag_offset)?,
        }
        Ok(())
    }

    /// Writes the buffer at its place (holding back the batch's first 11 bytes), with a
    /// terminator after it when `then_terminator`: that one first, so that the buffer's
    /// bytes never grow the file (which must end with a terminator at every instant).
    fn write_out(&mut self, then_terminator: bool) -> Result<(), Error> {
        let written_len = self.buffer.len() as u64;
        let terminator_at = self.buffer_offset + written_len;
        // Nothing of the batch in the file yet: the file ends with the old terminator, which
        // the commit bytes held back keep whole, and the bytes go right after it.
        let at_old_end = !self.wrote && !self.may_overshoot;
        let mut held_back = 0;
        if self.buffer_offset == self.start
            && self.commit_bytes.is_none()
            && !self.buffer.is_empty()
        {
            let first = self
                .buffer
                .get(..TERMINATOR.len())
                .and_then(|first| first.try_into().ok());
            let first = first.ok_or(Error::bad_entry("an entry head of 11 bytes", self.start))?;
            self.commit_bytes = Some(first);
            held_back = TERMINATOR.len();
        }
        let offset = self.buffer_offset + held_back as u64;
        if then_terminator {
            self.wrote = true;
            let end = terminator_at + TERMINATOR.len() as u64;
            if at_old_end && offset / PAGE == (end - 1) / PAGE {
                // One write inside one page grows the file at once, the new terminator with
                // it: the file never ends without a whole terminator.
                self.buffer.extend_from_slice(&TERMINATOR);
            } else {
                self.container.end_with_terminator(terminator_at)?;
            }
        }
        if let Some(bytes) = self
            .buffer
            .get(held_back..)
            .filter(|bytes| !bytes.is_empty())
        {
            self.wrote = true;
            self.container.write_at(bytes, offset)?;
        }
        self.buffer_offset += written_len;
        self.buffer.clear();
        Ok(())
    }

    /// Makes every change of the batch visible (see [`Container::batch`] for the order), and
    /// releases the lock.
    pub fn commit(mut self) -> Result<(), Error> {
        let result = self.commit_changes();
        self.finished = true;
        if result.is_err() && !self.committed {
            self.cut();
        }
        self.container.leave_lock(result.is_err());
        result
    }

    fn commit_changes(&mut self) -> Result<(), Error> {
        if self.appended.is_empty() && self.doomed.is_empty() {
            return Ok(());
        }
        let table_commit_number = match self.container.cache.as_deref() {
            // Validated under this lock hold: its commit number is the file's.
            Some(table) => table.commit_number(),
            None => self.container.read_commit_number()?,
        };
        if !self.appended.is_empty() {
            // The next commit writes 11 bytes over the terminator this one leaves: it must
            // not straddle a page boundary (see `straddles_page`).
            let tail = AppendPlan::tail_padding(
                self.next,
                self.memo_start,
                self.container.options.page_safe_commit,
            )?;
            if let Some(tail) = tail {
                self.buffer.extend(padding_bytes(&tail)?);
                self.next = tail.end();
                self.appended.push(tail);
            }
            // Also sets the length, if a value writer reserved more.
            self.write_out(true)?;
            self.container.sync()?;
            let commit_bytes = self
                .commit_bytes
                .ok_or_else(|| Error::bad_entry("an entry head of 11 bytes", self.start))?;
            self.container.write_at(&commit_bytes, self.start)?;
        }
        self.committed = true;
        let mut commit_number = table_commit_number;
        for _ in 0..self.changes {
            commit_number = next_commit_number(commit_number);
        }
        self.container.write_commit_number(commit_number)?;
        if !self.appended.is_empty() && !self.doomed.is_empty() {
            // On a power loss, writes since the last sync land in any order: a flip must not
            // land without the commit before it (a replaced key would be gone).
            self.container.sync()?;
        }
        for &(_, flag_offset) in &self.doomed {
            self.container.write_at(&[live_flag(false)], flag_offset)?;
        }
        self.container.sync()?;
        if let Some(table) = self.container.cache.as_mut().map(Arc::make_mut) {
            let index = std::mem::take(&mut self.pending);
            table.push_appended_indexed(std::mem::take(&mut self.appended), index);
            for &(entry_idx, _) in &self.doomed {
                table.set_live(entry_idx, false);
            }
            table.set_commit_number(commit_number);
        }
        Ok(())
    }

    /// Cuts what the batch wrote after the old terminator (best effort: every reader ignores
    /// those bytes, and the next read-write open removes them anyway).
    fn cut(&mut self) {
        if self.wrote || self.may_overshoot {
            let _ = self
                .container
                .file
                .set_len(self.start + TERMINATOR.len() as u64);
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.cut();
            self.container.leave_lock(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `K <i>` under each of `keys` in one batch, told `expected` first.
    fn batch_file(dir: &std::path::Path, expected: &[&str], keys: &[&str]) -> Container {
        let mut container =
            Container::open(dir.join(format!("{}.mmdpickle", expected.len()))).expect("a new file");
        let mut batch = container.batch().unwrap();
        batch.expect_keys(expected.iter().copied());
        for (i, key) in keys.iter().enumerate() {
            let new = NewEntry {
                key,
                value_len: 2,
                memo_max: batch.memo_start(),
                align: None,
            };
            batch
                .append(new, |sink| sink.write_all(&[b'K', i as u8]))
                .unwrap();
        }
        batch.commit().unwrap();
        container
    }

    // Expected keys share one arena; a key out of order gets its own, and the file's bytes
    // are those of a batch told nothing.
    #[test]
    fn expected_keys_share_one_arena_and_change_no_byte() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ["a", "b", "x", "d", "b"];
        let mut told = batch_file(dir.path(), &["a", "b", "c", "d"], &keys);
        let mut untold = batch_file(dir.path(), &[], &keys);
        let bytes = |container: &Container| std::fs::read(container.path()).unwrap();
        assert_eq!(bytes(&told), bytes(&untold));
        assert_eq!(told.keys().unwrap(), ["a", "x", "d", "b"]);
        assert_eq!(told.table().unwrap(), untold.table().unwrap());
        // The table the batch left (the batch's own index adopted) is the file's.
        let scanned = crate::layout::scan(&bytes(&told)[..]).unwrap();
        assert_eq!(told.table().unwrap(), &scanned);
        assert_eq!(scanned.index_of("b"), Some(4));
        assert_eq!(told.table().unwrap().index_of("b"), Some(4));
        let entries = told.table().unwrap().entries().to_vec();
        let [a, b, x, d, b_again] = &entries[..] else {
            panic!("five entries: {entries:?}");
        };
        assert!(a.shares_arena_with(b) && a.shares_arena_with(d));
        assert!(!a.shares_arena_with(x) && !a.shares_arena_with(b_again));
        assert_eq!(told.read_value(b_again).unwrap(), b"K\x04");
    }
}
