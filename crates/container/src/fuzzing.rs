//! Fuzz target bodies: the cargo-fuzz `scan` target in `fuzz/` is one call
//! into [`scan`], so `cargo test` replays exactly what the fuzzer ran.
//!
//! A body returns `Err(description)` when a promise of this crate fails on
//! the input; a panic inside it is a finding too. Not part of the public API
//! (compiled with the `fuzzing` feature, or in this crate's own tests).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mmappickle_codec::{decode_entry_value, Limits};

use crate::container::scan_reading_past;
use crate::layout::salvage;
use crate::{encode_header, Container, Error, Table, HEADER_LEN, TERMINATOR};

/// What a fuzz body reports when a property fails.
pub type Verdict = Result<(), String>;

/// `scan` target: the container scan (and the fsck walk) on `data` as a
/// whole file, then with a valid 24-byte header prepended so the fuzzer
/// reaches the entries, then with the terminator appended as well.
///
/// Checked: a table found tiles the file from the header to the terminator
/// with entries whose parts lie inside them, its live keys lead to live
/// entries, and errors point inside the file. The value bytes of each live
/// entry go through the codec's entry decoder, as a reader would. The scan of a local open,
/// which reads bytes far ahead with `pread` instead of the map, gives the same table or error.
pub fn scan(data: &[u8]) -> Verdict {
    let with_header = [&encode_header(1)[..], data].concat();
    let terminated = [&with_header[..], &TERMINATOR[..]].concat();
    for file in [data, &with_header, &terminated] {
        let scanned = crate::scan(file);
        match &scanned {
            Ok(table) => check_table(table, file)?,
            Err(error) => check_error(error, file.len())?,
        }
        // A local open reads the bytes far ahead with `pread`: here all but the header's.
        let by_reads =
            scan_reading_past(file, |buffer, offset| read_slice(file, buffer, offset), 0);
        let agree = match (&scanned, &by_reads) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a.to_string() == b.to_string() && a.offset() == b.offset(),
            _ => false,
        };
        if !agree {
            return Err(format!(
                "scan of the map {scanned:?}, by reads {by_reads:?}"
            ));
        }
        if let Ok(salvaged) = salvage(file) {
            if salvaged.end > file.len() as u64 {
                return Err(format!("salvage ends at {} past the file", salvaged.end));
            }
        }
    }
    Ok(())
}

/// `pread` of `file` held in memory.
fn read_slice(file: &[u8], buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    let start = usize::try_from(offset).map_err(std::io::Error::other)?;
    let bytes = file
        .get(start..start + buffer.len())
        .ok_or_else(|| std::io::Error::other("read past the end"))?;
    buffer.copy_from_slice(bytes);
    Ok(())
}

/// A table describes the file it came from.
fn check_table(table: &Table, file: &[u8]) -> Verdict {
    let file_len = file.len() as u64;
    if table.file_len() != file_len {
        return Err(format!(
            "table of {} bytes for a {file_len}-byte file",
            table.file_len()
        ));
    }
    let mut expected_offset = HEADER_LEN;
    for entry in table.entries() {
        let value = entry.value_range();
        let parts_inside = entry.offset() == expected_offset
            && entry.offset() < value.start
            && value.start <= value.end
            && value.end < entry.end()
            && entry.end() <= table.terminator_offset();
        if !parts_inside {
            return Err(format!(
                "{entry:?} does not follow offset {expected_offset} inside the file"
            ));
        }
        expected_offset = entry.end();
        if entry.is_live() {
            let bytes = usize::try_from(value.start)
                .ok()
                .zip(usize::try_from(value.end).ok())
                .and_then(|(start, end)| file.get(start..end))
                .ok_or_else(|| format!("value of {entry:?} outside the file"))?;
            let _ = decode_entry_value(bytes, &Limits::default());
        }
    }
    // A torn tail, or the remains of a library constructor's terminator, end the file before
    // a whole terminator would.
    let terminator_end = table
        .terminator_offset()
        .checked_add(TERMINATOR.len() as u64);
    let whole_terminator = !table.is_torn() && !table.has_untidy_tail();
    if table.terminator_offset() != expected_offset
        || (table.terminator_offset() > file_len && !table.is_torn())
        || (whole_terminator && terminator_end != Some(file_len))
    {
        return Err(format!(
            "terminator at {} after entries ending at {expected_offset} in {file_len} bytes",
            table.terminator_offset()
        ));
    }
    let _ = table.trailing_len();
    for key in table.keys() {
        if !table
            .get(key)
            .is_some_and(|entry| entry.is_live() && entry.key() == key)
        {
            return Err(format!("live key {key:?} does not lead to its live entry"));
        }
    }
    if table.keys().count() != table.n_live() {
        return Err(format!(
            "{} keys listed, {} counted live",
            table.keys().count(),
            table.n_live()
        ));
    }
    Ok(())
}

/// An error of the scan points inside the file (or just past its end), and displays.
fn check_error(error: &Error, file_len: usize) -> Verdict {
    match error.offset() {
        Some(offset) if offset <= file_len as u64 => {}
        offset => {
            return Err(format!(
                "error {error} at {offset:?}, not in the {file_len}-byte file"
            ))
        }
    }
    let _message = error.to_string();
    Ok(())
}

/// `repair` target: `data` written to a file in a scratch directory of its own, opened
/// read-only ([`Container::open_readonly`]), then read-write ([`Container::open`], which
/// repairs a torn tail, trailers a library constructor overwrote and bytes after the
/// terminator), then checked with [`Container::fsck`].
///
/// Checked: the read-only open leaves the file as it was; after the read-write open the
/// file scans without a torn or untidy tail, every key the read-only open read (with its
/// value) is still there with the same value bytes, and `fsck` (after a first one, which
/// reports what the open repaired) finds nothing left to repair.
pub fn repair(data: &[u8]) -> Verdict {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("repair.mmdpickle");
    let outcome = std::fs::write(&path, data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
        .and_then(|()| check_repair(&path, data));
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// A directory of its own for each call (tests replay in parallel threads, and a
/// read-write open may leave scratch files of its own beside the file).
fn scratch_dir() -> PathBuf {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "mmappickle-fuzz-repair-{}-{call}",
        std::process::id()
    ))
}

fn check_repair(path: &Path, data: &[u8]) -> Verdict {
    let read_only = read_every_value(path);
    let after = std::fs::read(path).map_err(|e| format!("cannot read back: {e}"))?;
    if after != data {
        return Err("opening read-only changed the file".to_owned());
    }
    let Ok(mut container) = Container::open(path) else {
        return Ok(());
    };
    let repaired = std::fs::read(path).map_err(|e| format!("cannot read back: {e}"))?;
    let table = crate::scan(&repaired)
        .map_err(|error| format!("the read-write open left a file that does not scan: {error}"))?;
    if table.is_torn() || table.has_untidy_tail() {
        return Err(format!(
            "the read-write open left a torn ({}) or untidy ({}) tail in {} bytes",
            table.is_torn(),
            table.has_untidy_tail(),
            repaired.len()
        ));
    }
    for (key, value) in &read_only {
        let Some(entry) = table.get(key) else {
            return Err(format!(
                "key {key:?} read before the repair is gone after it"
            ));
        };
        let now = usize::try_from(entry.value_offset())
            .ok()
            .zip(usize::try_from(entry.value_range().end).ok())
            .and_then(|(start, end)| repaired.get(start..end));
        if now != Some(&value[..]) {
            return Err(format!(
                "key {key:?} has other value bytes after the repair"
            ));
        }
    }
    // The first fsck reports what the open repaired; the next one must find nothing.
    let first = container
        .fsck()
        .map_err(|error| format!("fsck after the read-write open failed: {error}"))?;
    let report = container
        .fsck()
        .map_err(|error| format!("fsck after the read-write open failed: {error}"))?;
    if !report.is_clean() {
        return Err(format!(
            "fsck after the read-write open and a first fsck ({first:?}) repaired more: {report:?}"
        ));
    }
    Ok(())
}

/// Every live key the read-only open reads, with its value bytes (none when it fails).
fn read_every_value(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(mut container) = Container::open_readonly(path) else {
        return Vec::new();
    };
    let Ok(keys) = container.keys() else {
        return Vec::new();
    };
    let mut values = Vec::new();
    for key in keys {
        let Ok(Some(entry)) = container.get(&key) else {
            continue;
        };
        if let Ok(value) = container.read_value(&entry) {
            values.push((key, value));
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    // Empty, header-only and terminator-only inputs are checked without a finding.
    #[test]
    fn short_inputs_pass() {
        for input in [
            &b""[..],
            &TERMINATOR[..],
            &encode_header(3)[..],
            b"\x95\x00",
        ] {
            assert_eq!(scan(input), Ok(()), "{input:?}");
            assert_eq!(repair(input), Ok(()), "{input:?}");
        }
    }

    // One live entry after the prepended header: the table is checked and its
    // value decoded.
    #[test]
    fn entry_after_prepended_header_passes() {
        // FRAME 13, key "k", value BININT1 42, memo 1, live.
        let entry = b"\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x8c\x01kK\x2aJ\x01\x00\x00\x000\x880";
        let file = [&encode_header(1)[..], &entry[..], &TERMINATOR[..]].concat();
        let table = crate::scan(&file).expect("a valid file");
        assert_eq!(table.keys().collect::<Vec<_>>(), ["k"]);
        assert_eq!(scan(&entry[..]), Ok(()));
    }

    // The same file, torn in its trailer, behind bytes after the terminator, and whole:
    // the read-write open repairs it and keeps the key.
    #[test]
    fn repair_keeps_the_entry() {
        let entry = b"\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x8c\x01kK\x2aJ\x01\x00\x00\x000\x880";
        let file = [&encode_header(1)[..], &entry[..], &TERMINATOR[..]].concat();
        let torn = &file[..file.len() - TERMINATOR.len() - 2];
        let trailing = [&file[..], b"junk"].concat();
        for input in [&file[..], torn, &trailing] {
            assert_eq!(repair(input), Ok(()), "{input:?}");
        }
    }
}
