//! What writers that do not follow our order leave behind, recognised by the scan: trailers
//! a Python `mmapdict` constructor overwrote with a terminator, trailers cut by the end of the
//! file, the remains of terminators at the end, and the `memo_max` a value needs when its own
//! was lost.

use mmappickle_codec::opcode::{NEWTRUE, POP};

use super::format::{
    i32_in, trailer_byte_fits, HEADER_LEN, TERMINATOR, TRAILER_FLAG_IDX, TRAILER_MEMO_MAX,
};
use super::source::{ByteSource, Stop};
use super::table::Entry;

/// What is left of an overwritten trailer.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrailerLeft {
    /// `memo_max`, if no terminator byte went over it.
    pub(super) memo_max: Option<i32>,
    /// The live flag, if the library wrote it (its append, or its delete since).
    pub(super) live: Option<bool>,
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
pub(super) fn overwritten_trailer(trailer: &[u8]) -> Option<TrailerLeft> {
    let trailer: [u8; 8] = trailer.try_into().ok()?;
    let fits = |start: i64| {
        let mut overlaps_memo_max = false;
        let all_explained = trailer.iter().enumerate().all(|(idx, &byte)| {
            let at = idx as i64 - start;
            let in_terminator = usize::try_from(at).ok().and_then(|at| TERMINATOR.get(at));
            overlaps_memo_max |= in_terminator.is_some() && TRAILER_MEMO_MAX.contains(&idx);
            trailer_byte_fits(idx, byte) || in_terminator == Some(&byte)
        });
        all_explained.then_some(overlaps_memo_max)
    };
    let overlaps_memo_max = (-10..=7).find_map(fits)?;
    let memo_max = (!overlaps_memo_max).then(|| i32_in(&trailer[TRAILER_MEMO_MAX]));
    // No terminator byte is NEWTRUE or POP: a flag byte that is one was written by the
    // library (its append, or its delete since).
    let live = match trailer[TRAILER_FLAG_IDX] {
        NEWTRUE => Some(true),
        POP => Some(false),
        _ => None,
    };
    Some(TrailerLeft { memo_max, live })
}

/// What is left of a trailer cut to `left` (fewer than 8 bytes), if those bytes are a start
/// of a trailer; a lost flag is live, but for a padding entry (`padding`: its key is empty).
pub(super) fn cut_trailer(left: &[u8], padding: bool) -> Option<TrailerLeft> {
    if !left
        .iter()
        .enumerate()
        .all(|(idx, &byte)| trailer_byte_fits(idx, byte))
    {
        return None;
    }
    let memo_max = left.get(TRAILER_MEMO_MAX).map(i32_in);
    let live = match left.get(TRAILER_FLAG_IDX) {
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

/// Whether the bytes from `offset` to the end of the file are the remains of terminators
/// that Python `mmapdict` constructors wrote without the lock (see [`overwritten_trailer`]),
/// the file ending with a whole one: the last 3 bytes of one whose first 8 lie over the
/// previous entry's trailer; or such remains followed by the terminator the library's append
/// wrote after them; or several constructors' terminators over each other.
///
/// Only bytes of a terminator (`95 02 00 64 2e`) may be there, and few of them: an entry
/// head has its key opcode (`8c`) 9 bytes after its FRAME, so no entry can hide in them.
pub(super) fn is_terminator_remnant<S: ByteSource + ?Sized>(
    file: &S,
    offset: u64,
) -> Result<bool, Stop> {
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
pub(super) fn restore_overwritten<S: ByteSource + ?Sized>(
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
pub(super) fn restore_cut<S: ByteSource + ?Sized>(
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
