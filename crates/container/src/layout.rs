//! The file layout of FORMAT.md: header, entries, terminator, and the pure scan of a whole file.

use std::fmt;
use std::ops::Range;

use crate::error::{Error, ErrorKind};
use crate::keys::{arena_of, key_in, KeyArena, KeyIndex, KeyWriter, MAX_ENTRIES};

use mmappickle_codec::opcode::{
    BINBYTES, BININT, DICT, FRAME, MARK, NEWTRUE, POP, PROTO, SHORT_BINBYTES, SHORT_BINUNICODE,
    STOP,
};

/// The format version in the header (the only one there is).
pub const FORMAT_VERSION: i32 = 1;
/// The longest key the format can store, in UTF-8 bytes (its length is one byte).
pub const MAX_KEY_LEN: usize = 255;
/// Length of the header (PROTO 4, FRAME 13, version, commit number, MARK).
pub const HEADER_LEN: u64 = 24;
/// Offset of the commit number's i32 inside the header.
pub const COMMIT_NUMBER_OFFSET: u64 = 18;
/// The terminator: FRAME 2, DICT, STOP.
pub const TERMINATOR: [u8; 11] = [FRAME, 2, 0, 0, 0, 0, 0, 0, 0, DICT, STOP];
/// Length of an entry's head before its key bytes: FRAME + u64 + SHORT_BINUNICODE + u8.
pub const ENTRY_HEAD_LEN: u64 = 11;
/// Length of an entry's trailer: BININT memo_max POP, live flag, POP.
pub const ENTRY_TRAILER_LEN: u64 = 8;
/// The smallest padding entry: head with an empty key, empty SHORT_BINBYTES, trailer.
pub const MIN_PADDING_LEN: u64 = ENTRY_HEAD_LEN + 2 + ENTRY_TRAILER_LEN;

/// The header of a new file with the given commit number.
pub fn encode_header(commit_number: i32) -> [u8; 24] {
    let mut header = [0u8; 24];
    header[..3].copy_from_slice(&[PROTO, 4, FRAME]);
    header[3..11].copy_from_slice(&13u64.to_le_bytes());
    header[11] = BININT;
    header[12..16].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16] = POP;
    header[17] = BININT;
    header[18..22].copy_from_slice(&commit_number.to_le_bytes());
    header[22] = POP;
    header[23] = MARK;
    header
}

/// An entry's first 11 bytes plus its key: FRAME frame_len, SHORT_BINUNICODE len key.
///
/// The caller has checked that the key is at most [`MAX_KEY_LEN`] bytes.
pub fn encode_entry_head(key: &[u8], frame_len: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(11 + key.len());
    head.push(FRAME);
    head.extend_from_slice(&frame_len.to_le_bytes());
    head.push(SHORT_BINUNICODE);
    head.push(key.len() as u8);
    head.extend_from_slice(key);
    head
}

/// An entry's last 8 bytes: BININT memo_max POP, NEWTRUE or POP, POP.
pub fn encode_entry_trailer(memo_max: i32, live: bool) -> [u8; 8] {
    let mut trailer = [0u8; 8];
    trailer[0] = BININT;
    trailer[1..5].copy_from_slice(&memo_max.to_le_bytes());
    trailer[5] = POP;
    trailer[6] = if live { NEWTRUE } else { POP };
    trailer[7] = POP;
    trailer
}

/// The byte of the live flag for a live or a deleted entry.
pub fn live_flag(live: bool) -> u8 {
    if live {
        NEWTRUE
    } else {
        POP
    }
}

/// A complete padding entry of exactly `len` bytes (`len >= MIN_PADDING_LEN`): deleted,
/// empty key, a bytes value, so every reader skips it.
pub fn encode_padding_entry(len: u64, memo_max: i32) -> Option<Vec<u8>> {
    let value_len = len.checked_sub(ENTRY_HEAD_LEN + ENTRY_TRAILER_LEN)?;
    let mut entry = encode_entry_head(b"", len.checked_sub(9)?);
    entry.reserve(usize::try_from(value_len).ok()?);
    if value_len < 2 {
        return None;
    } else if value_len <= 2 + u8::MAX as u64 {
        entry.push(SHORT_BINBYTES);
        entry.push((value_len - 2) as u8);
        entry.resize(entry.len() + (value_len - 2) as usize, 0);
    } else {
        let payload = u32::try_from(value_len - 5).ok()?;
        entry.push(BINBYTES);
        entry.extend_from_slice(&payload.to_le_bytes());
        entry.resize(entry.len() + payload as usize, 0);
    }
    entry.extend_from_slice(&encode_entry_trailer(memo_max, false));
    Some(entry)
}

/// The length of the padding entry to put at `entry_offset` so that the new entry after it has
/// the byte `value_relative_offset` of its value at a multiple of `align`; 0 when no padding
/// is needed.
pub fn padding_len(
    entry_offset: u64,
    key_len: u64,
    value_relative_offset: u64,
    align: u64,
) -> Option<u64> {
    let target = entry_offset
        .checked_add(ENTRY_HEAD_LEN)?
        .checked_add(key_len)?
        .checked_add(value_relative_offset)?;
    padding_to(target, 0, align)
}

/// The padding rule, for appends and vacuum alike: the shortest padding (0, or a padding
/// entry of at least [`MIN_PADDING_LEN`] bytes) that moves `position` to the same remainder
/// modulo `align` as `like`.
pub(crate) fn padding_to(position: u64, like: u64, align: u64) -> Option<u64> {
    if align <= 1 {
        return Some(0);
    }
    let mut padding = (like % align + align - position % align) % align;
    if padding == 0 {
        return Some(0);
    }
    while padding < MIN_PADDING_LEN {
        padding = padding.checked_add(align)?;
    }
    Some(padding)
}

/// One entry of the table: where it is, its key, its value's byte range, its flags.
///
/// Its lengths and offsets are derived from `offset`, the key's length and `value_len`:
/// every way of making an entry checked that `offset + len()` fits in a `u64`, so those sums
/// cannot overflow.
#[derive(Clone)]
pub struct Entry {
    // The key is `key_len` bytes at `key_start` in an arena shared with the other entries of
    // the same scan (see `keys`): no allocation per key, and a thin pointer (40-byte entries).
    keys: KeyArena,
    offset: u64,
    value_len: u64,
    memo_max: i32,
    key_start: u32,
    key_len: u8,
    live: bool,
}

impl Entry {
    /// The key.
    pub fn key(&self) -> &str {
        key_in(&self.keys, self.key_start, self.key_len)
    }

    /// Offset of the entry's FRAME opcode.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Length of the whole entry (`9 + frame_len`).
    pub fn len(&self) -> u64 {
        ENTRY_HEAD_LEN + u64::from(self.key_len) + self.value_len + ENTRY_TRAILER_LEN
    }

    /// Whether the entry is empty (never: an entry has at least 19 bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset just past the entry (where the next entry or the terminator starts).
    pub fn end(&self) -> u64 {
        self.offset + self.len()
    }

    /// Offset of the value's first byte.
    pub fn value_offset(&self) -> u64 {
        self.offset + ENTRY_HEAD_LEN + u64::from(self.key_len)
    }

    /// Length of the value's bytes.
    pub fn value_len(&self) -> u64 {
        self.value_len
    }

    /// The value's byte range in the file.
    pub fn value_range(&self) -> Range<u64> {
        self.value_offset()..self.value_offset() + self.value_len
    }

    /// The next free memo index after this entry's value.
    pub fn memo_max(&self) -> i32 {
        self.memo_max
    }

    /// Whether the entry is live (NEWTRUE flag) rather than deleted (POP flag).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the entry is alignment padding (deleted, empty key).
    pub fn is_padding(&self) -> bool {
        !self.live && self.key_len == 0
    }

    /// Offset of the live flag byte.
    pub(crate) fn live_flag_offset(&self) -> u64 {
        self.end() - 2
    }

    pub(crate) fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    /// Whether `other`'s key is in the same arena as this entry's.
    #[cfg(test)]
    pub(crate) fn shares_arena_with(&self, other: &Entry) -> bool {
        std::sync::Arc::ptr_eq(&self.keys, &other.keys)
    }
}

// Tables of many small entries are mostly entries: keep them small.
const _: () = assert!(std::mem::size_of::<Entry>() <= 40);

// By hand: entries are equal when their keys are, whichever arenas hold them.
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.offset == other.offset
            && self.value_len == other.value_len
            && self.memo_max == other.memo_max
            && self.live == other.live
            && self.key() == other.key()
    }
}

impl Eq for Entry {}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key())
            .field("offset", &self.offset)
            .field("len", &self.len())
            .field("value_offset", &self.value_offset())
            .field("value_len", &self.value_len)
            .field("memo_max", &self.memo_max)
            .field("live", &self.live)
            .finish()
    }
}

/// The entry table of a file: every entry in file order, the live keys, the commit number.
#[derive(Debug, Clone)]
pub struct Table {
    entries: Vec<Entry>,
    /// The live entries by key: the last live entry of a key, as `pickle.load` keeps it.
    live_index: KeyIndex,
    commit_number: i32,
    terminator_offset: u64,
    file_len: u64,
    memo_start: i32,
    /// Indices of the entries whose trailer a library constructor overwrote (their flag and
    /// `memo_max` are the restored ones; a read-write open writes them back).
    overwritten: Vec<usize>,
    /// The file ends inside an entry or a terminator: see [`Table::is_torn`].
    torn: bool,
}

// By hand: the same entries and facts, and the same entry indexed for each live key (the
// index's layout depends on its seed).
impl PartialEq for Table {
    fn eq(&self, other: &Table) -> bool {
        self.entries == other.entries
            && self.commit_number == other.commit_number
            && self.terminator_offset == other.terminator_offset
            && self.file_len == other.file_len
            && self.memo_start == other.memo_start
            && self.overwritten == other.overwritten
            && self.torn == other.torn
            && self.live_index.len() == other.live_index.len()
            && self.live_index.indices().all(|entry_idx| {
                let key = self.entries.get(entry_idx).map(Entry::key);
                key.and_then(|key| other.index_of(key)) == Some(entry_idx)
            })
    }
}

impl Eq for Table {}

impl Table {
    /// Every entry in file order, deleted and padding entries included.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The live entries in file order: each key's value, shadowed entries left out.
    pub fn live_entries(&self) -> impl Iterator<Item = &Entry> {
        // In the usual case (no key live twice) the live entries are exactly the indexed
        // ones, and no lookup is needed.
        let has_shadowed = self.has_shadowed();
        self.entries
            .iter()
            .enumerate()
            .filter(move |&(entry_idx, entry)| {
                entry.live && !(has_shadowed && self.is_shadowed(entry_idx))
            })
            .map(|(_, entry)| entry)
    }

    /// Whether some key has two live entries (a replace cut short): whether any entry may
    /// be [shadowed](Table::is_shadowed). Every indexed entry is live, so this is a count of
    /// live flags against the number of live keys.
    pub fn has_shadowed(&self) -> bool {
        self.entries.iter().filter(|entry| entry.live).count() != self.live_index.len()
    }

    /// Whether the entry at `entry_idx` is live but not its key's value: an older duplicate
    /// left by an interrupted replace (a read-write open deletes it).
    pub fn is_shadowed(&self, entry_idx: usize) -> bool {
        self.entries
            .get(entry_idx)
            .is_some_and(|entry| entry.live && self.index_of(entry.key()) != Some(entry_idx))
    }

    /// The live keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.live_entries().map(Entry::key)
    }

    /// Number of live keys.
    pub fn n_live(&self) -> usize {
        self.live_index.len()
    }

    /// The live entry of `key` (the last one, as `pickle.load` would keep it).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.index_of(key)
            .and_then(|entry_idx| self.entries.get(entry_idx))
    }

    /// The index in [`Table::entries`] of the live entry of `key`.
    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        self.live_index.get(&self.entries, key)
    }

    /// The commit number read from the header.
    pub fn commit_number(&self) -> i32 {
        self.commit_number
    }

    /// Offset of the terminator (where the next entry goes).
    pub fn terminator_offset(&self) -> u64 {
        self.terminator_offset
    }

    /// Length of the file scanned.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Bytes after the terminator: left by an append that was interrupted before it
    /// committed; a read-write open truncates them.
    pub fn trailing_len(&self) -> u64 {
        self.file_len
            .saturating_sub(self.terminator_offset + TERMINATOR.len() as u64)
    }

    /// Whether the file does not end with a whole terminator at
    /// [`terminator_offset`](Table::terminator_offset): bytes after it, or the remains of
    /// one a Python `mmapdict` constructor wrote without the lock. A read-write open writes
    /// the terminator whole and cuts the rest.
    pub fn has_untidy_tail(&self) -> bool {
        self.file_len != self.terminator_offset + TERMINATOR.len() as u64
    }

    /// Whether the file ends inside an entry or inside the terminator, at
    /// [`terminator_offset`](Table::terminator_offset): a torn tail (a full disk, a writer's
    /// crash, a truncation). The complete entries before it are the table; a read-write
    /// open repairs the tail under the lock at its first operation, as `fsck` does: the last
    /// entry completed when only its trailer or terminator was cut, else cut away.
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    /// Where a torn tail starts: the last entry when it is the one cut (in its trailer:
    /// it is read, its value being whole), else the terminator's place. `None` when the file
    /// is not torn.
    pub fn torn_at(&self) -> Option<u64> {
        self.torn.then(|| {
            let cut_entry = self
                .entries
                .last()
                .filter(|entry| entry.end() > self.file_len);
            cut_entry.map_or(self.terminator_offset, Entry::offset)
        })
    }

    /// The entries whose 8-byte trailer a Python `mmapdict` constructor overwrote with a
    /// terminator (the library's own damage, when its constructor runs beside its writers).
    /// Each is read as live with the `memo_max` its value needs, unless the library deleted
    /// it since or its value is not whole ops (then deleted); a read-write open writes that
    /// trailer back.
    pub fn overwritten_trailers(&self) -> impl Iterator<Item = &Entry> {
        self.overwritten
            .iter()
            .filter_map(|&entry_idx| self.entries.get(entry_idx))
    }

    /// The first memo index free for a new value: `max(memo_max of all entries, 1)`.
    pub fn memo_start(&self) -> i32 {
        self.memo_start
    }

    pub(crate) fn set_commit_number(&mut self, commit_number: i32) {
        self.commit_number = commit_number;
    }

    pub(crate) fn set_live(&mut self, entry_idx: usize, live: bool) {
        if let Some(entry) = self.entries.get_mut(entry_idx) {
            entry.set_live(live);
            if !live {
                self.live_index.remove_entry(&self.entries, entry_idx);
            }
        }
    }

    /// Records entries appended at the terminator's old place; the file now ends with a
    /// terminator right after them. The caller keeps the table under [`MAX_ENTRIES`].
    pub(crate) fn push_appended(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            self.terminator_offset = entry.end();
            self.memo_start = self.memo_start.max(entry.memo_max);
            let live = entry.live;
            self.entries.push(entry);
            if live {
                self.live_index
                    .insert(&self.entries, self.entries.len() - 1);
            }
        }
        self.file_len = self.terminator_offset + TERMINATOR.len() as u64;
    }

    /// Forgets the bytes after the terminator (after they were truncated).
    pub(crate) fn drop_trailing(&mut self) {
        self.file_len = self.terminator_offset + TERMINATOR.len() as u64;
    }

    /// Forgets which trailers were overwritten (after they were written back).
    pub(crate) fn forget_overwritten(&mut self) {
        self.overwritten.clear();
    }
}

/// Builds the [`Entry`] of a new entry written at `offset` (`None` if its key is over
/// [`MAX_KEY_LEN`] bytes or its end past the `u64` range).
pub(crate) fn new_entry(
    key: &str,
    offset: u64,
    value_len: u64,
    memo_max: i32,
    live: bool,
) -> Option<Entry> {
    let key_len = u8::try_from(key.len()).ok()?;
    let len = (ENTRY_HEAD_LEN + u64::from(key_len))
        .checked_add(value_len)?
        .checked_add(ENTRY_TRAILER_LEN)?;
    offset.checked_add(len)?;
    Some(Entry {
        keys: arena_of(key),
        offset,
        value_len,
        memo_max,
        key_start: 0,
        key_len,
        live,
    })
}

/// A file's bytes read at offsets: the whole file in memory (a map, a slice), or a cache of a
/// remote file's blocks that fetches what [`Scanner::resume`] asks for.
pub trait ByteSource {
    /// The file's length.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `len` bytes at `offset`: `Ok(None)` when they run past the end of the file,
    /// `Err(NotLoaded)` when the source holds them only once they are fetched.
    fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded>;
}

/// Bytes of the file that a [`ByteSource`] does not hold yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoaded {
    /// The bytes wanted (inside the file).
    pub range: Range<u64>,
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded> {
        let slice = (|| {
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            self.get(start..end)
        })();
        Ok(slice)
    }
}

fn byte_at<S: ByteSource + ?Sized>(file: &S, offset: u64) -> Result<Option<u8>, NotLoaded> {
    Ok(file.bytes_at(offset, 1)?.map(|bytes| bytes[0]))
}

fn u64_at<S: ByteSource + ?Sized>(file: &S, offset: u64) -> Result<Option<u64>, NotLoaded> {
    Ok(file
        .bytes_at(offset, 8)?
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_le_bytes))
}

fn i32_at<S: ByteSource + ?Sized>(file: &S, offset: u64) -> Result<Option<i32>, NotLoaded> {
    Ok(file
        .bytes_at(offset, 4)?
        .and_then(|bytes| bytes.try_into().ok())
        .map(i32::from_le_bytes))
}

/// Why a parse over a [`ByteSource`] stopped: bad bytes, or bytes still to fetch.
enum Stop {
    Invalid(Error),
    NotLoaded(NotLoaded),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Invalid(error)
    }
}

impl From<NotLoaded> for Stop {
    fn from(not_loaded: NotLoaded) -> Self {
        Stop::NotLoaded(not_loaded)
    }
}

/// The outcome of a parse over bytes that are all in memory, where nothing is ever missing
/// (an impossible miss reads as bytes past the end of the file).
fn in_memory<T>(result: Result<T, Stop>, file_len: u64) -> Result<T, Error> {
    result.map_err(|stop| match stop {
        Stop::Invalid(error) => error,
        Stop::NotLoaded(NotLoaded { range }) => Error::new(
            ErrorKind::TruncatedEntry {
                entry_end: range.end,
                file_len,
            },
            range.start,
        ),
    })
}

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
    let frame_len =
        u64_at(file, 3)?.ok_or_else(|| not_a_container("the header's 8-byte frame length", 3))?;
    if frame_len != 13 {
        return Err(not_a_container("header frame length 13", 3).into());
    }
    if file.len() < HEADER_LEN {
        return Err(not_a_container("13 bytes of header frame", file.len()).into());
    }
    expect(11, BININT, "BININT (format version)")?;
    expect(16, POP, "POP after the format version")?;
    if i32_at(file, 12)? != Some(FORMAT_VERSION) {
        return Err(not_a_container("format version 1", 12).into());
    }
    expect(17, BININT, "BININT (commit number)")?;
    expect(22, POP, "POP after the commit number")?;
    expect(23, MARK, "MARK opening the dict")?;
    Ok(i32_at(file, COMMIT_NUMBER_OFFSET)?.ok_or_else(|| not_a_container("commit number", 18))?)
}

/// The outcome of parsing one entry at an offset.
enum Step {
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

/// What is left of an overwritten trailer.
#[derive(Debug, Clone, Copy)]
struct TrailerLeft {
    /// `memo_max`, if no terminator byte went over it.
    memo_max: Option<i32>,
    /// The live flag, if the library wrote it (its append, or its delete since).
    live: Option<bool>,
}

/// Whether `trailer` (an entry's last 8 bytes) holds bytes of a terminator written over
/// it, at an offset from 10 bytes before it to 7 bytes into it, every other byte being the
/// trailer's own; if so, what is left of the trailer.
///
/// The Python library's constructor checks for a terminator at the end of the file without
/// the lock, and writes one at the end when it finds none. A library append (under the lock)
/// writes the value, the head, the trailer in two writes (`BININT memo_max POP`, then the
/// flag and `POP`) and only then the terminator, so a constructor in another process that
/// looked while the file ended before the trailer's end writes its terminator where the
/// trailer is or goes, before or after either part of it. When the appender then finds a
/// terminator at the end it leaves it, and the library reads that entry as deleted (its flag
/// byte is not NEWTRUE): the whole file is no longer a pickle. The entry's length (in its
/// head) is whole, and so is its value when the terminator starts at or after the trailer.
fn overwritten_trailer(trailer: &[u8]) -> Option<TrailerLeft> {
    let trailer: [u8; 8] = trailer.try_into().ok()?;
    let fits = |start: i64| {
        let mut overlaps_memo_max = false;
        let all_explained = trailer.iter().enumerate().all(|(idx, &byte)| {
            let at = idx as i64 - start;
            let in_terminator = usize::try_from(at).ok().and_then(|at| TERMINATOR.get(at));
            overlaps_memo_max |= in_terminator.is_some() && (1..5).contains(&idx);
            trailer_byte_fits(idx, byte) || in_terminator == Some(&byte)
        });
        all_explained.then_some(overlaps_memo_max)
    };
    let overlaps_memo_max = (-10..=7).find_map(fits)?;
    let memo_max = (!overlaps_memo_max)
        .then(|| i32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]));
    // No terminator byte is NEWTRUE or POP: a flag byte that is one was written by the
    // library (its append, or its delete since).
    let live = match trailer[6] {
        NEWTRUE => Some(true),
        POP => Some(false),
        _ => None,
    };
    Some(TrailerLeft { memo_max, live })
}

/// Whether `byte` may be the trailer's byte at `idx`: `BININT memo_max POP`, the live flag
/// (NEWTRUE or POP), `POP`.
fn trailer_byte_fits(idx: usize, byte: u8) -> bool {
    match idx {
        0 => byte == BININT,
        5 | 7 => byte == POP,
        6 => byte == NEWTRUE || byte == POP,
        _ => true,
    }
}

/// What is left of a trailer cut to `left` (fewer than 8 bytes), if those bytes are a start
/// of a trailer; a lost flag is live, but for a padding entry (`padding`: its key is empty).
fn cut_trailer(left: &[u8], padding: bool) -> Option<TrailerLeft> {
    if !left
        .iter()
        .enumerate()
        .all(|(idx, &byte)| trailer_byte_fits(idx, byte))
    {
        return None;
    }
    let memo_max = left
        .get(1..5)
        .map(|bytes| i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    let live = match left.get(6) {
        Some(&flag) => Some(flag == NEWTRUE),
        None => padding.then_some(false),
    };
    Some(TrailerLeft { memo_max, live })
}

/// The `memo_max` of an entry whose value is `value`, if `value` is a sequence of whole ops
/// as an entry holds them (no PROTO, FRAME, STOP or MEMOIZE): the memo index after the
/// largest it stores, at least `memo_start` (the first index free before it).
pub(crate) fn value_memo_max(value: &[u8], memo_start: i32) -> Option<i32> {
    use mmappickle_codec::Op;
    let mut ops = mmappickle_codec::ops(value);
    let mut largest_stored = None;
    for op in ops.by_ref() {
        let index = match op.ok()?.1 {
            Op::Proto(_) | Op::Frame(_) | Op::Stop | Op::Memoize => return None,
            Op::Put(index) => index,
            Op::BinPut(index) => u64::from(index),
            Op::LongBinPut(index) => u64::from(index),
            _ => continue,
        };
        largest_stored = largest_stored.max(Some(index));
    }
    if ops.position() != value.len() {
        return None;
    }
    let after = largest_stored.map_or(0, |index| index.saturating_add(1));
    Some(i32::try_from(after).ok()?.max(memo_start))
}

/// Parses the entry at `offset`; its key goes to `keys` once the entry proved complete.
fn parse_entry<S: ByteSource + ?Sized>(
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
    if head.first() == Some(&FRAME) && head.get(9..) == TERMINATOR.get(9..) {
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
        let entry_end = offset + 9;
        let cut = ErrorKind::TruncatedEntry {
            entry_end,
            file_len,
        };
        return Ok(Step::TornTail(Error::new(cut, offset)));
    }
    let frame_len = head
        .get(1..9)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(Error::new(
            ErrorKind::TruncatedEntry {
                entry_end: offset + 9,
                file_len,
            },
            offset,
        ))?;
    let entry_len = frame_len
        .checked_add(9)
        .ok_or(Error::overflow(offset + 1))?;
    let entry_end = offset
        .checked_add(entry_len)
        .ok_or(Error::overflow(offset + 1))?;
    if head.get(9) != Some(&SHORT_BINUNICODE) {
        return Err(
            Error::bad_entry("SHORT_BINUNICODE opcode (0x8c) for the key", offset + 9).into(),
        );
    }
    let key_len = head.get(10).copied().unwrap_or(0);
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
    let memo_max = i32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]);
    if trailer[5] != POP {
        return Err(Error::bad_entry("POP after memo_max", value_end + 5).into());
    }
    let live = match trailer[6] {
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

/// Whether the bytes from `offset` to the end of the file are the remains of terminators
/// that Python `mmapdict` constructors wrote without the lock (see [`overwritten_trailer`]),
/// the file ending with a whole one: the last 3 bytes of one whose first 8 lie over the
/// previous entry's trailer; or such remains followed by the terminator the library's append
/// wrote after them; or several constructors' terminators over each other.
///
/// Only bytes of a terminator (`95 02 00 64 2e`) may be there, and few of them: an entry
/// head has its key opcode (`8c`) 9 bytes after its FRAME, so no entry can hide in them.
fn is_terminator_remnant<S: ByteSource + ?Sized>(file: &S, offset: u64) -> Result<bool, Stop> {
    const MAX_REMNANT_LEN: u64 = 64;
    let whole = TERMINATOR.len() as u64;
    let left = file.len().saturating_sub(offset);
    if left == 0 || left > MAX_REMNANT_LEN || file.len() < HEADER_LEN + whole {
        return Ok(false);
    }
    let ending = file.bytes_at(file.len() - whole, whole)?;
    let remains = file.bytes_at(offset, left)?.unwrap_or_default();
    Ok(ending == Some(&TERMINATOR[..]) && remains.iter().all(|byte| TERMINATOR.contains(byte)))
}

/// [`value_memo_max`] of `entry`'s value in `file` (`None` for a value cut by the end of
/// the file).
fn entry_value_memo_max<S: ByteSource + ?Sized>(
    file: &S,
    entry: &Entry,
    memo_start: i32,
) -> Result<Option<i32>, Stop> {
    let value = file.bytes_at(entry.value_offset(), entry.value_len())?;
    Ok(value.and_then(|value| value_memo_max(value, memo_start)))
}

/// Gives an entry whose trailer a library constructor overwrote its `live` flag and
/// `memo_max` back. Its value must be whole ops (else it is deleted: a terminator over the
/// value's end, or other damage); then the entry is what the writer stored (the value was
/// written before the trailer) and is live, unless the flag tells otherwise (the library's
/// delete writes it after the damage). `memo_max` is the one left, or the one the value
/// needs after `memo_start` (the first memo index free before the entry).
fn restore_overwritten<S: ByteSource + ?Sized>(
    file: &S,
    entry: &mut Entry,
    left: TrailerLeft,
    memo_start: i32,
) -> Result<(), Stop> {
    let needed = entry_value_memo_max(file, entry, memo_start)?;
    entry.live = needed.is_some() && left.live.unwrap_or(true);
    entry.memo_max = left.memo_max.or(needed).unwrap_or(memo_start);
    Ok(())
}

/// Reads an entry cut in its trailer as [`Container::complete_torn_entry`] would complete it:
/// whether its value is whole ops (else the entry is not read), its `memo_max` the one left
/// or the one its value needs, live unless its flag (or its empty key) says otherwise.
///
/// [`Container::complete_torn_entry`]: crate::Container::complete_torn_entry
fn restore_cut<S: ByteSource + ?Sized>(
    file: &S,
    entry: &mut Entry,
    left: TrailerLeft,
    memo_start: i32,
) -> Result<bool, Stop> {
    let Some(needed) = entry_value_memo_max(file, entry, memo_start)? else {
        return Ok(false);
    };
    entry.memo_max = left.memo_max.unwrap_or(needed);
    entry.live = left.live.unwrap_or(true);
    Ok(true)
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

/// The first memo index free after `entries`: `max(memo_max of all, 1)`.
pub(crate) fn memo_start(entries: &[Entry]) -> i32 {
    entries.iter().map(Entry::memo_max).fold(1, i32::max)
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

/// What a walk of a damaged file kept: every complete entry up to the first problem.
pub(crate) struct Salvage {
    /// The complete entries.
    pub entries: Vec<Entry>,
    /// Where the kept entries end.
    pub end: u64,
    /// The first problem, if the walk did not reach a terminator.
    pub problem: Option<Error>,
    /// The key of the torn entry at `end`, when its head was readable.
    pub torn_key: Option<String>,
}

/// Where whole entries resume after a damaged entry at `damaged`: its end, when its head is
/// whole and from there entries follow one another, each well formed, up to a whole
/// terminator that ends the file (the proof that they are intact); `None` otherwise, or when
/// only the terminator follows.
///
/// No search for entries past a head that is not whole: the head of a batch's first entry
/// is the 11-byte commit over the old terminator, and a commit torn by a power loss (some of
/// its bytes still the terminator's, such as the key length `2e`) is followed by the
/// batch's entries, which were never committed and must not appear.
pub(crate) fn entries_resume_at(file: &[u8], damaged: u64) -> Option<u64> {
    let len = file.len() as u64;
    let terminator_at = len.checked_sub(TERMINATOR.len() as u64)?;
    if file.get(terminator_at as usize..) != Some(&TERMINATOR[..]) {
        return None;
    }
    let head = file.get(damaged as usize..(damaged + ENTRY_HEAD_LEN) as usize)?;
    let key_len = u64::from(head[10]);
    let key = file.get((damaged + ENTRY_HEAD_LEN) as usize..(damaged + 11 + key_len) as usize)?;
    let head_whole = head[0] == FRAME
        && head[9] == SHORT_BINUNICODE
        && head[10] != TERMINATOR[10]
        && std::str::from_utf8(key).is_ok();
    let frame_len = u64::from_le_bytes(head[1..9].try_into().ok()?);
    let end = damaged.checked_add(9)?.checked_add(frame_len)?;
    if !head_whole || end >= terminator_at || end < damaged + ENTRY_HEAD_LEN + key_len {
        return None;
    }
    let mut keys = KeyWriter::default();
    let mut offset = end;
    loop {
        match in_memory(parse_entry(file, offset, &mut keys), len) {
            Ok(Step::Terminator) => return (offset == terminator_at).then_some(end),
            Ok(Step::Entry(entry)) => offset = entry.end(),
            _ => return None,
        }
    }
}

/// Walks the entries like [`scan`] but stops at the first problem instead of failing.
pub(crate) fn salvage(file: &[u8]) -> Result<Salvage, Error> {
    parse_header(file)?;
    let mut entries = Vec::new();
    let mut keys = KeyWriter::default();
    let mut offset = HEADER_LEN;
    let len = file.len() as u64;
    let problem = loop {
        let entry = match in_memory(parse_entry(file, offset, &mut keys), len) {
            Ok(Step::Terminator | Step::TerminatorRemnant) => break None,
            Ok(Step::TornTail(problem) | Step::TornEntry { cut: problem, .. }) => {
                break Some(problem)
            }
            Ok(Step::Entry(entry)) => entry,
            Ok(Step::OverwrittenTrailer { mut entry, left }) => {
                let memo_start = memo_start(&entries);
                let restored = restore_overwritten(file, &mut entry, left, memo_start);
                if let Err(problem) = in_memory(restored, len) {
                    break Some(problem);
                }
                entry
            }
            Err(problem) => break Some(problem),
        };
        offset = entry.end();
        entries.push(entry);
    };
    keys.finish();
    let torn_key = problem.as_ref().and_then(|_| {
        let head = file.bytes_at(offset, ENTRY_HEAD_LEN).ok()??;
        if head[9] != SHORT_BINUNICODE {
            return None;
        }
        let key = file
            .bytes_at(offset + ENTRY_HEAD_LEN, u64::from(head[10]))
            .ok()??;
        Some(String::from_utf8_lossy(key).into_owned())
    });
    Ok(Salvage {
        entries,
        end: offset,
        problem,
        torn_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut file = encode_header(7).to_vec();
        for (key, value, live) in entries {
            file.extend(encode_entry(key.as_bytes(), value, *live));
        }
        file.extend(TERMINATOR);
        file
    }

    fn encode_entry(key: &[u8], value: &[u8], live: bool) -> Vec<u8> {
        let frame_len = key.len() as u64 + value.len() as u64 + 10;
        let mut entry = encode_entry_head(key, frame_len);
        entry.extend_from_slice(value);
        entry.extend(encode_entry_trailer(3, live));
        entry
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
    fn entries_are_small_and_derive_their_ranges() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        let entry = new_entry("key", 100, 7, 2, true).unwrap();
        assert_eq!(entry.len(), ENTRY_HEAD_LEN + 3 + 7 + ENTRY_TRAILER_LEN);
        assert_eq!(entry.value_range(), 114..121);
        assert_eq!(entry.end(), 100 + entry.len());
        assert_eq!(entry.live_flag_offset(), entry.end() - 2);
        // Ends past the u64 range, and keys the format cannot store, make no entry.
        assert!(new_entry("key", u64::MAX - entry.len() + 1, 7, 2, true).is_none());
        assert!(new_entry("key", 0, u64::MAX - 20, 2, true).is_none());
        assert!(new_entry(&"k".repeat(MAX_KEY_LEN + 1), 0, 7, 2, true).is_none());
        assert!(new_entry(&"k".repeat(MAX_KEY_LEN), 0, 7, 2, true).is_some());
    }

    #[test]
    fn entries_from_different_arenas_compare_and_print_by_key() {
        let file = file_with(&[("one", b"N", true), ("two", b"N", false)]);
        let table = scan(&file).unwrap();
        let scanned = &table.entries()[1];
        let made = new_entry("two", scanned.offset(), 1, 3, false).unwrap();
        assert!(!made.shares_arena_with(scanned));
        assert_eq!(&made, scanned);
        assert_eq!(format!("{made:?}"), format!("{scanned:?}"));
        assert!(format!("{made:?}").contains("key: \"two\""));
        let other_key = new_entry("owt", scanned.offset(), 1, 3, false).unwrap();
        assert_ne!(&other_key, scanned);
        // Two scans: other arenas, other index seeds, equal tables.
        assert_eq!(scan(&file).unwrap(), table);
    }

    #[test]
    fn appended_entries_join_the_index_and_the_last_live_entry_wins() {
        let file = file_with(&[("a", b"N", true), ("b", b"N", true)]);
        let mut table = scan(&file).unwrap();
        let scanned = table.clone();
        let end = table.terminator_offset();
        let new_b = new_entry("b", end, 1, 4, true).unwrap();
        let c = new_entry("c", new_b.end(), 1, 4, true).unwrap();
        let c_end = c.end();
        table.push_appended(vec![new_b, c]);
        assert_ne!(table, scanned);
        assert_eq!(table.terminator_offset(), c_end);
        assert_eq!(table.memo_start(), 4);
        assert_eq!(table.get("b").unwrap().offset(), end);
        assert_eq!(table.index_of("c"), Some(3));
        // The older "b" is live too (a replace not yet finished): the newer one is listed.
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(table.n_live(), 3);
        // Deleting the shadowed older "b" keeps the newer one indexed.
        table.set_live(1, false);
        assert_eq!(table.index_of("b"), Some(2));
        table.set_live(2, false);
        assert_eq!(table.get("b"), None);
        assert_eq!(table.keys().collect::<Vec<_>>(), ["a", "c"]);
        // Scanned and appended entries keep their keys.
        let keys: Vec<&str> = table.entries().iter().map(Entry::key).collect();
        assert_eq!(keys, ["a", "b", "b", "c"]);
    }

    #[test]
    fn salvaged_entries_keep_their_keys() {
        let good = file_with(&[("first", b"N", true), ("second", b"N", false)]);
        for salvaged in [
            salvage(&good).unwrap(),
            salvage(&good[..good.len() - 5]).unwrap(),
        ] {
            let keys: Vec<&str> = salvaged.entries.iter().map(Entry::key).collect();
            assert_eq!(keys, ["first", "second"]);
        }
        let torn = salvage(&good[..good.len() - 15]).unwrap();
        assert_eq!(torn.entries.len(), 1);
        assert_eq!(torn.entries[0].key(), "first");
        assert_eq!(torn.torn_key.as_deref(), Some("second"));
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
