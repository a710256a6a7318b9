//! The format's facts: the header, an entry's head and trailer, the terminator, padding
//! entries and the padding rule. Every offset, length and opcode sequence of the layout is
//! defined here once; the table, the scan and the writers use these.

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
/// Offset of the header's u64 frame length (after PROTO 4 FRAME).
pub(crate) const HEADER_FRAME_LEN_OFFSET: u64 = 3;
/// The header's frame length: the bytes after the frame length, up to MARK.
pub(crate) const HEADER_FRAME_LEN: u64 = HEADER_LEN - HEADER_FRAME_LEN_OFFSET - 8;
/// Offset of the format version's i32 inside the header.
pub(crate) const FORMAT_VERSION_OFFSET: u64 = 12;
/// Length of FRAME and its u64 frame length: an entry (or a terminator) is this many bytes
/// plus its frame length.
pub(crate) const FRAME_HEAD_LEN: u64 = 9;
/// Where an entry's head holds the key opcode (SHORT_BINUNICODE) and the key's length.
pub(crate) const KEY_OPCODE_IDX: usize = FRAME_HEAD_LEN as usize;
/// See [`KEY_OPCODE_IDX`].
pub(crate) const KEY_LEN_IDX: usize = KEY_OPCODE_IDX + 1;
/// Where an entry's trailer holds its `memo_max` (an i32 after BININT).
pub(crate) const TRAILER_MEMO_MAX: std::ops::Range<usize> = 1..5;
/// Where an entry's trailer holds its live flag.
pub(crate) const TRAILER_FLAG_IDX: usize = 6;
/// The terminator: FRAME 2, DICT, STOP.
pub const TERMINATOR: [u8; 11] = [FRAME, 2, 0, 0, 0, 0, 0, 0, 0, DICT, STOP];
/// Length of an entry's head before its key bytes: FRAME + u64 + SHORT_BINUNICODE + u8.
pub const ENTRY_HEAD_LEN: u64 = KEY_LEN_IDX as u64 + 1;
/// Length of an entry's trailer: BININT memo_max POP, live flag, POP.
pub const ENTRY_TRAILER_LEN: u64 = 8;
/// The smallest padding entry: head with an empty key, empty SHORT_BINBYTES, trailer.
pub const MIN_PADDING_LEN: u64 = ENTRY_HEAD_LEN + 2 + ENTRY_TRAILER_LEN;

/// The header of a new file with the given commit number.
pub fn encode_header(commit_number: i32) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    let frame_len_at = HEADER_FRAME_LEN_OFFSET as usize;
    header[..frame_len_at].copy_from_slice(&[PROTO, 4, FRAME]);
    header[frame_len_at..frame_len_at + 8].copy_from_slice(&HEADER_FRAME_LEN.to_le_bytes());
    for (offset, value) in [
        (FORMAT_VERSION_OFFSET, FORMAT_VERSION),
        (COMMIT_NUMBER_OFFSET, commit_number),
    ] {
        let at = offset as usize;
        header[at - 1] = BININT;
        header[at..at + 4].copy_from_slice(&value.to_le_bytes());
        header[at + 4] = POP;
    }
    header[HEADER_LEN as usize - 1] = MARK;
    header
}

/// An entry's first 11 bytes plus its key: FRAME frame_len, SHORT_BINUNICODE len key.
///
/// The caller has checked that the key is at most [`MAX_KEY_LEN`] bytes.
pub fn encode_entry_head(key: &[u8], frame_len: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(ENTRY_HEAD_LEN as usize + key.len());
    push_entry_head(&mut head, key, frame_len);
    head
}

/// [`encode_entry_head`] appended to `out` (no allocation of its own).
pub(crate) fn push_entry_head(out: &mut Vec<u8>, key: &[u8], frame_len: u64) {
    out.extend_from_slice(&entry_head_before_key(key.len() as u8, frame_len));
    out.extend_from_slice(key);
}

/// An entry's first 11 bytes, those before its key: FRAME frame_len, SHORT_BINUNICODE len.
pub(crate) fn entry_head_before_key(key_len: u8, frame_len: u64) -> [u8; ENTRY_HEAD_LEN as usize] {
    let mut head = [0u8; ENTRY_HEAD_LEN as usize];
    head[0] = FRAME;
    head[1..KEY_OPCODE_IDX].copy_from_slice(&frame_len.to_le_bytes());
    head[KEY_OPCODE_IDX] = SHORT_BINUNICODE;
    head[KEY_LEN_IDX] = key_len;
    head
}

/// An entry's last 8 bytes: BININT memo_max POP, NEWTRUE or POP, POP.
pub fn encode_entry_trailer(memo_max: i32, live: bool) -> [u8; 8] {
    let mut trailer = [0u8; 8];
    trailer[0] = BININT;
    trailer[TRAILER_MEMO_MAX].copy_from_slice(&memo_max.to_le_bytes());
    trailer[5] = POP;
    trailer[TRAILER_FLAG_IDX] = live_flag(live);
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
    let mut entry = encode_entry_head(b"", len.checked_sub(FRAME_HEAD_LEN)?);
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

/// Whether `byte` may be the trailer's byte at `idx`: `BININT memo_max POP`, the live flag
/// (NEWTRUE or POP), `POP`.
pub(super) fn trailer_byte_fits(idx: usize, byte: u8) -> bool {
    if TRAILER_MEMO_MAX.contains(&idx) {
        return true;
    }
    if idx == TRAILER_FLAG_IDX {
        return byte == live_flag(true) || byte == live_flag(false);
    }
    encode_entry_trailer(0, true).get(idx) == Some(&byte)
}

/// The little-endian i32 of 4 bytes (0 for any other length, which no caller passes).
pub(crate) fn i32_in(bytes: &[u8]) -> i32 {
    bytes.try_into().map(i32::from_le_bytes).unwrap_or_default()
}
