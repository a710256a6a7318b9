//! Fuzz target bodies: the cargo-fuzz `scan` target in `fuzz/` is one call
//! into [`scan`], so `cargo test` replays exactly what the fuzzer ran.
//!
//! A body returns `Err(description)` when a promise of this crate fails on
//! the input; a panic inside it is a finding too. Not part of the public API
//! (compiled with the `fuzzing` feature, or in this crate's own tests).

use mmappickle_codec::{decode_entry_value, Limits};

use crate::layout::salvage;
use crate::{encode_header, Error, Table, HEADER_LEN, TERMINATOR};

/// What a fuzz body reports when a property fails.
pub type Verdict = Result<(), String>;

/// `scan` target: the container scan (and the fsck walk) on `data` as a
/// whole file, then with a valid 24-byte header prepended so the fuzzer
/// reaches the entries, then with the terminator appended as well.
///
/// Checked: a table found tiles the file from the header to the terminator
/// with entries whose parts lie inside them, its live keys lead to live
/// entries, and errors point inside the file. The value bytes of each live
/// entry go through the codec's entry decoder, as a reader would.
pub fn scan(data: &[u8]) -> Verdict {
    let with_header = [&encode_header(1)[..], data].concat();
    let terminated = [&with_header[..], &TERMINATOR[..]].concat();
    for file in [data, &with_header, &terminated] {
        match crate::scan(file) {
            Ok(table) => check_table(&table, file)?,
            Err(error) => check_error(&error, file.len())?,
        }
        if let Ok(salvaged) = salvage(file) {
            if salvaged.end > file.len() as u64 {
                return Err(format!("salvage ends at {} past the file", salvaged.end));
            }
        }
    }
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
}
