//! Walks of a damaged file for fsck and repairs: the complete entries up to the first
//! problem, and where whole entries resume after a damaged one.

use mmappickle_codec::opcode::{FRAME, SHORT_BINUNICODE};

use super::format::{
    ENTRY_HEAD_LEN, FRAME_HEAD_LEN, HEADER_LEN, KEY_LEN_IDX, KEY_OPCODE_IDX, TERMINATOR,
};
use super::keys::KeyWriter;
use super::remnants::restore_overwritten;
use super::scan::{parse_entry, parse_header, Step};
use super::source::{in_memory, ByteSource};
use super::table::{memo_start, Entry};
use crate::error::Error;

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
    let key_len = u64::from(head[KEY_LEN_IDX]);
    let key = file.get((damaged + ENTRY_HEAD_LEN) as usize..(damaged + 11 + key_len) as usize)?;
    let head_whole = head[0] == FRAME
        && head[KEY_OPCODE_IDX] == SHORT_BINUNICODE
        && head[KEY_LEN_IDX] != TERMINATOR[KEY_LEN_IDX]
        && std::str::from_utf8(key).is_ok();
    let frame_len = u64::from_le_bytes(head[1..KEY_OPCODE_IDX].try_into().ok()?);
    let end = damaged
        .checked_add(FRAME_HEAD_LEN)?
        .checked_add(frame_len)?;
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
        if head[KEY_OPCODE_IDX] != SHORT_BINUNICODE {
            return None;
        }
        let key = file
            .bytes_at(offset + ENTRY_HEAD_LEN, u64::from(head[KEY_LEN_IDX]))
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
    use crate::layout::scan::tests::file_with;
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
}
