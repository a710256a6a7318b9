//! The scan: the header checked, the entries walked by their frame lengths (head and trailer
//! read, never a value), up to the terminator; pausing where a [`ByteSource`] lacks bytes.

use std::ops::Range;

use mmappickle_codec::opcode::{BININT, FRAME, MARK, NEWTRUE, POP, PROTO, SHORT_BINUNICODE};

use super::format::{
    i32_in, trailer_byte_fits, COMMIT_NUMBER_OFFSET, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN,
    FORMAT_VERSION, FORMAT_VERSION_OFFSET, FRAME_HEAD_LEN, HEADER_FRAME_LEN,
    HEADER_FRAME_LEN_OFFSET, HEADER_LEN, KEY_LEN_IDX, KEY_OPCODE_IDX, TERMINATOR, TRAILER_FLAG_IDX,
    TRAILER_MEMO_MAX,
};
use super::keys::KeyWriter;
use super::remnants::{
    cut_trailer, is_terminator_remnant, overwritten_trailer, restore_cut, restore_overwritten,
    TrailerLeft,
};
use super::source::{byte_at, i32_at, in_memory, u64_at, ByteSource, NotLoaded, Stop};
use super::table::{memo_start, Entry, KeyIndex, Table, MAX_ENTRIES};
use crate::error::{Error, ErrorKind};

fn not_a_container(expected: &'static str, offset: u64) -> Error {
    Error::new(
        ErrorKind::NotAContainer {
            expected,
            plain_pickle: false,
        },
        offset,
    )
}

/// Checks the 24-byte header in the order the Python library does and returns the commit number.
pub fn parse_header(file: &[u8]) -> Result<i32, Error> {
    in_memory(header_at(file), file.len() as u64)
}

fn header_at<S: ByteSource + ?Sized>(file: &S) -> Result<i32, Stop> {
    let expect = |offset: u64, byte: u8, expected: &'static str| -> Result<(), Stop> {
        if byte_at(file, offset)? == Some(byte) {
            Ok(())
        } else {
            Err(not_a_container(expected, offset).into())
        }
    };
    expect(0, PROTO, "PROTO opcode (0x80)")?;
    expect(1, 4, "pickle protocol 4")?;
    expect(2, FRAME, "FRAME opcode (0x95) opening the header")?;
    let frame_len = u64_at(file, HEADER_FRAME_LEN_OFFSET)?.ok_or_else(|| {
        not_a_container("the header's 8-byte frame length", HEADER_FRAME_LEN_OFFSET)
    })?;
    if frame_len != HEADER_FRAME_LEN {
        return Err(not_a_container("header frame length 13", HEADER_FRAME_LEN_OFFSET).into());
    }
    if file.len() < HEADER_LEN {
        return Err(not_a_container("13 bytes of header frame", file.len()).into());
    }
    expect(FORMAT_VERSION_OFFSET - 1, BININT, "BININT (format version)")?;
    expect(
        FORMAT_VERSION_OFFSET + 4,
        POP,
        "POP after the format version",
    )?;
    if i32_at(file, FORMAT_VERSION_OFFSET)? != Some(FORMAT_VERSION) {
        return Err(not_a_container("format version 1", FORMAT_VERSION_OFFSET).into());
    }
    expect(COMMIT_NUMBER_OFFSET - 1, BININT, "BININT (commit number)")?;
    expect(COMMIT_NUMBER_OFFSET + 4, POP, "POP after the commit number")?;
    expect(HEADER_LEN - 1, MARK, "MARK opening the dict")?;
    let commit_number = i32_at(file, COMMIT_NUMBER_OFFSET)?;
    Ok(commit_number.ok_or_else(|| not_a_container("commit number", COMMIT_NUMBER_OFFSET))?)
}

/// The outcome of parsing one entry at an offset.
pub(super) enum Step {
    /// A complete, well-formed entry.
    Entry(Entry),
    /// The terminator starts here.
    Terminator,
    /// The remnant of a terminator that a Python `mmapdict` constructor wrote over the
    /// previous entry's trailer (or just before the terminator of its own append): the
    /// terminator belongs here; the bytes from here to the end of the file are its remains.
    TerminatorRemnant,
    /// The file ends here, inside an entry or a terminator (cut short: a full disk, a crash
    /// of a writer without our terminator-first order, a truncation); the error says how.
    TornTail(Error),
    /// The file ends inside this entry's trailer (the value is all there): the entry is read
    /// if its value is whole, with what is left of its trailer; the error says how it ends.
    TornEntry {
        entry: Entry,
        left: TrailerLeft,
        cut: Error,
    },
    /// An entry whose trailer a Python `mmapdict` constructor overwrote, in part or whole,
    /// with a terminator (see [`overwritten_trailer`]). Its `live` and `memo_max` are still
    /// to be restored.
    OverwrittenTrailer { entry: Entry, left: TrailerLeft },
}

/// Parses the entry at `offset`; its key goes to `keys` once the entry proved complete.
pub(super) fn parse_entry<S: ByteSource + ?Sized>(
    file: &S,
    offset: u64,
    keys: &mut KeyWriter,
) -> Result<Step, Stop> {
    let file_len = file.len();
    // Only the head and the trailer are read: a value (an array's payload) is never touched.
    let head_len = ENTRY_HEAD_LEN.min(file_len.saturating_sub(offset));
    let head = file.bytes_at(offset, head_len)?.unwrap_or_default();
    if head == TERMINATOR {
        return Ok(Step::Terminator);
    }
    // An append commits by overwriting the old terminator with the new entry's first 11 bytes
    // in one `pwrite`, but a SIGKILL can still tear that write where it crosses a page
    // boundary (the kernel copies page by page and stops at a fatal signal): a new prefix
    // before the old `DICT STOP`. A frame whose key opcode is still `DICT STOP` is that
    // terminator, and the append did not commit (`pickle.load` reads the old dict there too).
    if head.first() == Some(&FRAME)
        && head.get(KEY_OPCODE_IDX..) == TERMINATOR.get(KEY_OPCODE_IDX..)
    {
        return Ok(Step::Terminator);
    }
    if is_terminator_remnant(file, offset)? {
        return Ok(Step::TerminatorRemnant);
    }
    if offset >= file_len {
        return Ok(Step::TornTail(Error::new(
            ErrorKind::MissingTerminator,
            offset,
        )));
    }
    if head.first() != Some(&FRAME) {
        return Err(Error::bad_entry("FRAME opcode (0x95) opening an entry", offset).into());
    }
    // A file cut short has lost its terminator; one that still ends with a whole terminator
    // has an entry that claims too much (damage, or a hostile file), not a torn tail.
    let cut_short = || -> Result<bool, NotLoaded> {
        let ending = file.bytes_at(file_len.saturating_sub(TERMINATOR.len() as u64), 11)?;
        Ok(ending != Some(&TERMINATOR[..]))
    };
    if head.len() < ENTRY_HEAD_LEN as usize && cut_short()? {
        // The start of an entry head or of a terminator, cut.
        let entry_end = offset + FRAME_HEAD_LEN;
        let cut = ErrorKind::TruncatedEntry {
            entry_end,
            file_len,
        };
        return Ok(Step::TornTail(Error::new(cut, offset)));
    }
    let frame_len = head
        .get(1..KEY_OPCODE_IDX)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(Error::new(
            ErrorKind::TruncatedEntry {
                entry_end: offset + FRAME_HEAD_LEN,
                file_len,
            },
            offset,
        ))?;
    let entry_len = frame_len
        .checked_add(FRAME_HEAD_LEN)
        .ok_or(Error::overflow(offset + 1))?;
    let entry_end = offset
        .checked_add(entry_len)
        .ok_or(Error::overflow(offset + 1))?;
    if head.get(KEY_OPCODE_IDX) != Some(&SHORT_BINUNICODE) {
        let at = offset + KEY_OPCODE_IDX as u64;
        return Err(Error::bad_entry("SHORT_BINUNICODE opcode (0x8c) for the key", at).into());
    }
    let key_len = head.get(KEY_LEN_IDX).copied().unwrap_or(0);
    let value_offset = offset + ENTRY_HEAD_LEN + u64::from(key_len);
    let cut = || {
        let kind = ErrorKind::TruncatedEntry {
            entry_end,
            file_len,
        };
        Error::new(kind, offset)
    };
    let torn = entry_end > file_len;
    if torn && !cut_short()? {
        return Err(cut().into());
    }
    if torn && (value_offset > file_len || entry_end - ENTRY_TRAILER_LEN > file_len) {
        return Ok(Step::TornTail(cut()));
    }
    let value_end = value_offset
        .checked_add(ENTRY_TRAILER_LEN)
        .filter(|&trailer_end| trailer_end <= entry_end)
        .map(|_| entry_end - ENTRY_TRAILER_LEN)
        .ok_or_else(|| {
            Error::bad_entry(
                "a frame length covering the key and the 8-byte trailer",
                offset + 1,
            )
        })?;
    let key_bytes = file
        .bytes_at(offset + ENTRY_HEAD_LEN, u64::from(key_len))?
        .ok_or_else(|| Error::bad_entry("key bytes", offset + ENTRY_HEAD_LEN))?;
    // Most keys are ASCII: checked at a few instructions a byte, where `from_utf8` costs
    // a hundred instructions on the short key of a small entry.
    if !key_bytes.is_ascii() && std::str::from_utf8(key_bytes).is_err() {
        return Err(Error::bad_entry("a UTF-8 key", offset + ENTRY_HEAD_LEN).into());
    }
    let entry = |keys: &mut KeyWriter, memo_max: i32, live: bool| {
        // `entry_end` fits in a u64 and is `offset + len()`: what `Entry` relies on.
        let (keys, key_start) = keys.push(key_bytes);
        Entry {
            keys,
            offset,
            value_len: value_end - value_offset,
            memo_max,
            key_start,
            key_len,
            live,
        }
    };
    if torn {
        let left = file
            .bytes_at(value_end, file_len - value_end)?
            .and_then(|left| cut_trailer(left, key_len == 0));
        return Ok(match left {
            Some(left) => {
                let entry = entry(keys, 0, false);
                Step::TornEntry {
                    entry,
                    left,
                    cut: cut(),
                }
            }
            None => Step::TornTail(cut()),
        });
    }
    let trailer = file
        .bytes_at(value_end, ENTRY_TRAILER_LEN)?
        .ok_or_else(|| Error::bad_entry("the 8-byte trailer", value_end))?;
    let well_formed = (0..trailer.len()).all(|idx| trailer_byte_fits(idx, trailer[idx]));
    if !well_formed {
        if let Some(left) = overwritten_trailer(trailer) {
            let entry = entry(keys, 0, false);
            return Ok(Step::OverwrittenTrailer { entry, left });
        }
    }
    if trailer[0] != BININT {
        return Err(Error::bad_entry("BININT (memo_max) in the trailer", value_end).into());
    }
    let memo_max = i32_in(&trailer[TRAILER_MEMO_MAX]);
    if trailer[5] != POP {
        return Err(Error::bad_entry("POP after memo_max", value_end + 5).into());
    }
    let live = match trailer[TRAILER_FLAG_IDX] {
        NEWTRUE => true,
        POP => false,
        _ => {
            return Err(
                Error::bad_entry("live flag NEWTRUE (0x88) or POP (0x30)", value_end + 6).into(),
            )
        }
    };
    if trailer[7] != POP {
        return Err(Error::bad_entry("POP closing the entry", value_end + 7).into());
    }
    Ok(Step::Entry(entry(keys, memo_max, live)))
}

/// Reads the header, walks the entries by their frame lengths, checks each one and the
/// terminator, and returns the entry table.
///
/// Bytes after the terminator (an append interrupted before it committed) are allowed and
/// reported by [`Table::trailing_len`].
pub fn scan(file: &[u8]) -> Result<Table, Error> {
    let mut scanner = Scanner::default();
    in_memory(scanner.walk(file), file.len() as u64)
}

/// What [`Scanner::resume`] reached.
#[derive(Debug)]
pub enum ScanProgress {
    /// The whole table.
    Done(Table),
    /// The scan needs these bytes: fetch them into the source and resume.
    NeedBytes(Range<u64>),
}

/// The [`scan`] of a file whose bytes arrive piecemeal (a remote file's block cache): it reads
/// the header, then each entry's head and trailer only, and pauses where its source lacks bytes.
///
/// ```
/// use mmappickle_container::{ScanProgress, Scanner};
///
/// # let file = {
/// #     let mut file = mmappickle_container::encode_header(0).to_vec();
/// #     file.extend(mmappickle_container::TERMINATOR);
/// #     file
/// # };
/// let mut scanner = Scanner::default();
/// match scanner.resume(&file[..])? {
///     ScanProgress::Done(table) => assert_eq!(table.n_live(), 0),
///     ScanProgress::NeedBytes(range) => unreachable!("a slice holds all its bytes: {range:?}"),
/// }
/// # Ok::<(), mmappickle_container::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Scanner {
    commit_number: Option<i32>,
    entries: Vec<Entry>,
    /// The keys of `entries`, kept over pauses.
    keys: KeyWriter,
    offset: u64,
    /// Indices of the entries whose trailer a library constructor overwrote.
    overwritten: Vec<usize>,
    /// The file ends inside an entry or a terminator.
    torn: bool,
}

impl Scanner {
    /// Goes on from where the last call stopped, with the bytes `source` holds now.
    pub fn resume<S: ByteSource + ?Sized>(&mut self, source: &S) -> Result<ScanProgress, Error> {
        match self.walk(source) {
            Ok(table) => Ok(ScanProgress::Done(table)),
            Err(Stop::Invalid(error)) => Err(error),
            Err(Stop::NotLoaded(NotLoaded { range })) => Ok(ScanProgress::NeedBytes(range)),
        }
    }

    fn walk<S: ByteSource + ?Sized>(&mut self, file: &S) -> Result<Table, Stop> {
        let commit_number = match self.commit_number {
            Some(commit_number) => commit_number,
            None => {
                let commit_number = header_at(file)?;
                self.commit_number = Some(commit_number);
                self.offset = HEADER_LEN;
                commit_number
            }
        };
        loop {
            let entry = match parse_entry(file, self.offset, &mut self.keys)? {
                Step::Terminator | Step::TerminatorRemnant => break,
                Step::TornTail(_) => {
                    self.torn = true;
                    break;
                }
                Step::TornEntry {
                    mut entry, left, ..
                } => {
                    self.torn = true;
                    let memo_start = memo_start(&self.entries);
                    if restore_cut(file, &mut entry, left, memo_start)? {
                        self.offset = entry.end();
                        self.entries.push(entry);
                    }
                    break;
                }
                Step::Entry(entry) => entry,
                Step::OverwrittenTrailer { mut entry, left } => {
                    restore_overwritten(file, &mut entry, left, memo_start(&self.entries))?;
                    self.overwritten.push(self.entries.len());
                    entry
                }
            };
            if self.entries.len() == MAX_ENTRIES {
                return Err(Error::overflow(self.offset).into());
            }
            self.offset = entry.end();
            self.entries.push(entry);
        }
        self.keys.finish();
        let entries = std::mem::take(&mut self.entries);
        // Indexed after the walk, so that the index is sized once (by entries really in the
        // file) instead of growing and rehashing every key along the way. In file order: the
        // last live entry of a key wins, as in `pickle.load`.
        let n_live_flags = entries.iter().filter(|entry| entry.live).count();
        let mut live_index = KeyIndex::with_capacity(n_live_flags);
        for (entry_idx, entry) in entries.iter().enumerate() {
            if entry.live {
                live_index.insert(&entries, entry_idx);
            }
        }
        Ok(Table {
            memo_start: memo_start(&entries),
            entries,
            live_index,
            commit_number,
            terminator_offset: self.offset,
            file_len: file.len(),
            overwritten: std::mem::take(&mut self.overwritten),
            torn: self.torn,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::layout::format::{
        encode_entry_head, encode_entry_trailer, encode_header, encode_padding_entry, padding_len,
        MIN_PADDING_LEN,
    };
    use crate::layout::salvage::salvage;

    pub(crate) fn file_with(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut file = encode_header(7).to_vec();
        for (key, value, live) in entries {
            file.extend(encode_entry(key.as_bytes(), value, *live));
        }
        file.extend(TERMINATOR);
        file
    }

    pub(crate) fn encode_entry(key: &[u8], value: &[u8], live: bool) -> Vec<u8> {
        let frame_len = key.len() as u64 + value.len() as u64 + 10;
        let mut entry = encode_entry_head(key, frame_len);
        entry.extend_from_slice(value);
        entry.extend(encode_entry_trailer(3, live));
        entry
    }

    /// A file whose 16-byte blocks are held only once asked for.
    struct Blocks {
        file: Vec<u8>,
        loaded: Vec<bool>,
    }

    impl ByteSource for Blocks {
        fn len(&self) -> u64 {
            self.file.len() as u64
        }

        fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded> {
            let Some(bytes) = self.file[..].bytes_at(offset, len)? else {
                return Ok(None);
            };
            let mut blocks = offset / 16..(offset + len).div_ceil(16);
            match blocks.all(|block| self.loaded[block as usize]) {
                true => Ok(Some(bytes)),
                false => Err(NotLoaded {
                    range: offset..offset + len,
                }),
            }
        }
    }

    #[test]
    fn empty_file_scans_to_an_empty_table() {
        let file = file_with(&[]);
        let table = scan(&file).unwrap();
        assert_eq!(table.entries().len(), 0);
        assert_eq!(table.commit_number(), 7);
        assert_eq!(table.terminator_offset(), HEADER_LEN);
        assert_eq!(table.memo_start(), 1);
    }

    #[test]
    fn entries_give_keys_ranges_and_flags() {
        let file = file_with(&[
            ("a", b"K\x01", true),
            ("bb", b"N", false),
            ("a", b"N", true),
        ]);
        let table = scan(&file).unwrap();
        assert_eq!(table.entries().len(), 3);
        let first = &table.entries()[0];
        assert_eq!(first.offset(), 24);
        assert_eq!(first.value_offset(), 24 + 11 + 1);
        assert_eq!(first.value_len(), 2);
        assert_eq!(&file[first.value_range().start as usize..][..2], b"K\x01");
        assert!(!table.entries()[1].is_live());
        // The later live entry of a key wins, as in pickle.load.
        assert_eq!(
            table.get("a").unwrap().offset(),
            table.entries()[2].offset()
        );
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(table.memo_start(), 3);
    }

    #[test]
    fn padding_entries_have_the_requested_length_and_scan_as_padding() {
        for len in [21u64, 22, 100, 276, 277, 278, 5000] {
            let padding = encode_padding_entry(len, 1).unwrap();
            assert_eq!(padding.len() as u64, len);
            let mut file = encode_header(0).to_vec();
            file.extend(&padding);
            file.extend(TERMINATOR);
            let table = scan(&file).unwrap();
            assert!(table.entries()[0].is_padding(), "len {len}");
            assert_eq!(table.entries()[0].len(), len);
        }
        assert!(encode_padding_entry(20, 1).is_none());
    }

    #[test]
    fn padding_len_aligns_the_requested_byte() {
        for entry_offset in 24..200u64 {
            for key_len in [0u64, 1, 5, 255] {
                let padding = padding_len(entry_offset, key_len, 79, 64).unwrap();
                assert!(padding == 0 || padding >= MIN_PADDING_LEN);
                let value_offset = entry_offset + padding + ENTRY_HEAD_LEN + key_len;
                assert_eq!((value_offset + 79) % 64, 0);
            }
        }
    }

    #[test]
    fn bytes_after_the_terminator_are_reported() {
        let mut file = file_with(&[("a", b"N", true)]);
        let clean_len = file.len() as u64;
        file.extend_from_slice(b"garbage");
        let table = scan(&file).unwrap();
        assert_eq!(table.trailing_len(), 7);
        assert_eq!(table.terminator_offset() + 11, clean_len);
    }

    #[test]
    fn malformed_entries_give_their_offset() {
        let good = file_with(&[("a", b"N", true)]);
        // Live flag neither NEWTRUE nor POP.
        let mut bad = good.clone();
        let flag = good.len() - 11 - 2;
        bad[flag] = b'X';
        let error = scan(&bad).unwrap_err();
        assert_eq!(error.offset(), Some(flag as u64));
        // Invalid UTF-8 key.
        let mut bad = good.clone();
        bad[35] = 0xff;
        assert_eq!(scan(&bad).unwrap_err().offset(), Some(35));
        // Frame length past the end of a file that ends with its terminator: damage, not a
        // file cut short.
        let mut bad = good.clone();
        bad[25] = 0xf0;
        assert!(matches!(
            scan(&bad).unwrap_err().kind(),
            ErrorKind::TruncatedEntry { .. }
        ));
        // The same entry in a file cut short (no terminator): a torn tail, the entries before
        // it kept; fsck says how it ends.
        let cut = &bad[..bad.len() - 11];
        let table = scan(cut).unwrap();
        assert!(table.is_torn() && table.entries().is_empty());
        assert!(matches!(
            salvage(cut).unwrap().problem.unwrap().kind(),
            ErrorKind::TruncatedEntry { .. }
        ));
        // Frame length too short for key and trailer.
        let mut bad = good.clone();
        bad[25] = 3;
        assert!(scan(&bad).is_err());
        // No terminator: a torn tail at the end of the last entry.
        let cut = &good[..good.len() - 11];
        let table = scan(cut).unwrap();
        assert!(table.is_torn());
        assert_eq!(table.terminator_offset(), cut.len() as u64);
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a"]);
        let problem = salvage(cut).unwrap().problem.unwrap();
        assert!(matches!(problem.kind(), ErrorKind::MissingTerminator));
        assert_eq!(problem.offset(), Some(good.len() as u64 - 11));
    }

    #[test]
    fn scanner_over_missing_bytes_pauses_and_ends_like_scan() {
        let big_value = vec![b'N'; 200];
        let file = file_with(&[
            ("a", b"K\x01", true),
            ("big", &big_value, true),
            ("c", b"N", false),
        ]);
        let mut source = Blocks {
            loaded: vec![false; file.len().div_ceil(16)],
            file: file.clone(),
        };
        let mut scanner = Scanner::default();
        let mut n_pauses = 0;
        let table = loop {
            match scanner.resume(&source).unwrap() {
                ScanProgress::Done(table) => break table,
                ScanProgress::NeedBytes(range) => {
                    n_pauses += 1;
                    for block in range.start / 16..range.end.div_ceil(16) {
                        source.loaded[block as usize] = true;
                    }
                }
            }
        };
        assert_eq!(table, scan(&file).unwrap());
        assert!(n_pauses >= 3, "{n_pauses}");
        // The keys gathered before each pause are all there, in the scan's one arena.
        let keys: Vec<&str> = table.entries().iter().map(Entry::key).collect();
        assert_eq!(keys, ["a", "big", "c"]);
        let first = &table.entries()[0];
        assert!(table
            .entries()
            .iter()
            .all(|entry| entry.shares_arena_with(first)));
        // The big value's inner blocks were never asked for.
        let value = table.get("big").unwrap().value_range();
        let inner = value.start.div_ceil(16)..value.end / 16;
        assert!(inner.end - inner.start >= 10);
        assert!(inner.clone().all(|block| !source.loaded[block as usize]));
    }

    #[test]
    fn keys_are_checked_one_by_one_as_utf8() {
        let file = file_with(&[
            ("αβ", b"N", true),
            ("key", b"N", true),
            ("日本", b"N", false),
        ]);
        let table = scan(&file).unwrap();
        let keys: Vec<&str> = table.entries().iter().map(Entry::key).collect();
        assert_eq!(keys, ["αβ", "key", "日本"]);
        // "€" cut in two keys: each is invalid though the two together are valid.
        let mut file = encode_header(0).to_vec();
        file.extend(encode_entry(b"ok", b"N", true));
        let bad_key_offset = file.len() as u64 + ENTRY_HEAD_LEN;
        file.extend(encode_entry(&[0xe2, 0x82], b"N", true));
        file.extend(encode_entry(&[0xac], b"N", true));
        file.extend(TERMINATOR);
        let error = scan(&file).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::BadEntry { .. }),
            "{error}"
        );
        assert_eq!(error.offset(), Some(bad_key_offset));
        let salvaged = salvage(&file).unwrap();
        assert_eq!(salvaged.entries.len(), 1);
        assert_eq!(salvaged.entries[0].key(), "ok");
        assert_eq!(salvaged.problem.unwrap().offset(), Some(bad_key_offset));
    }

    #[test]
    fn huge_frame_length_is_an_error_not_an_overflow() {
        let mut file = file_with(&[]);
        file.truncate(24);
        file.push(FRAME);
        file.extend(u64::MAX.to_le_bytes());
        file.extend([SHORT_BINUNICODE, 0]);
        assert!(scan(&file).is_err());
    }
}
