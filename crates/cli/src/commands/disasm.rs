//! `dis`: the annotated disassembly.

use std::io::Write;
use std::path::Path;

use mmappickle::codec::dis;
use mmappickle::container::{Container, Entry};

use mmappickle::array::{parse_array_value, parse_masked_value, DATA_ALIGN};

use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::pretty::str_repr;

/// Values longer than this are disassembled op by op, without copying them.
const MAX_COPIED_VALUE: u64 = 1 << 20;

/// The codec's listing of `value` (given without PROTO or STOP), its offsets
/// moved to file offsets and indented under the entry line.
fn dis_value(value: &[u8], value_offset: u64, out: &mut dyn Write) -> CliResult {
    let mut stream = value.to_vec();
    stream.push(b'.'); // STOP, so the listing ends cleanly
    let listing = dis(&stream);
    let stop_offset = value.len();
    for line in listing.lines() {
        let Some((offset_text, rest)) = line.split_once(':') else {
            writeln!(out, "        {line}")?;
            continue;
        };
        match offset_text.trim().parse::<usize>() {
            Ok(offset) if offset == stop_offset => {} // our STOP
            Ok(offset) => {
                let file_offset = value_offset.saturating_add(offset as u64);
                writeln!(
                    out,
                    "{file_offset:>10}:    {}",
                    rest.strip_prefix(' ').unwrap_or(rest)
                )?;
            }
            Err(_) => writeln!(out, "        {line}")?,
        }
    }
    Ok(())
}

/// Lists a large value op by op from the file map, showing big payloads by size.
fn dis_large_value(value: &[u8], value_offset: u64, out: &mut dyn Write) -> CliResult {
    let mut ops = mmappickle::codec::ops(value).peekable();
    while let Some(item) = ops.next() {
        let (offset, op) = match item {
            Ok(pair) => pair,
            Err(err) => {
                // The value has no STOP of its own: the end of input is its end.
                if err.offset() < value.len() {
                    writeln!(out, "        error: {}", err.shifted(value_offset as usize))?;
                }
                break;
            }
        };
        let file_offset = value_offset.saturating_add(offset as u64);
        // The op's length, from where the next one starts: no payload is copied.
        let next_offset = match ops.peek() {
            Some(Ok((next, _))) => *next,
            _ => value.len(),
        };
        let op_len = next_offset.saturating_sub(offset);
        if op_len > 128 {
            writeln!(
                out,
                "{file_offset:>10}:    {} <{op_len} bytes with its argument>",
                op.name()
            )?;
            continue;
        }
        let mut encoded = Vec::with_capacity(op_len + 1);
        mmappickle::codec::encode_op(&op, &mut encoded);
        encoded.push(b'.');
        let listing = dis(&encoded);
        let first = listing.lines().next().unwrap_or("");
        let text = first
            .split_once(':')
            .map_or(first, |(_, rest)| rest.trim_start());
        writeln!(out, "{file_offset:>10}:    {text}")?;
    }
    Ok(())
}

/// `dis`: the header, then each entry's framing and its value's opcodes, then the
/// terminator; a file that is not an mmappickle file is listed as a plain pickle.
pub(super) fn disassemble(path: &Path, out: &mut dyn Write) -> CliResult {
    let mut container = match Container::open_readonly(path) {
        Ok(container) => container,
        Err(err) => {
            // Not an mmappickle file: show it as the plain pickle it may be.
            let data = std::fs::read(path)
                .map_err(|io_err| CliError::from(io_err).context(path.display()))?;
            writeln!(out, "{}: {err}; as a plain pickle:", path.display())?;
            let listing = dis(&data);
            out.write_all(listing.as_bytes())?;
            // The listing shows where it stopped; the exit code says it failed.
            return match listing
                .lines()
                .find_map(|line| line.strip_prefix("error: "))
            {
                Some(problem) => Err(CliError::new(format!(
                    "{}: not a valid pickle: {problem}",
                    path.display()
                ))),
                None => Ok(()),
            };
        }
    };
    // One lock (re-entrant) for the header, the table and the map, so they agree.
    container.with_lock(|container| -> CliResult {
        let commit_number = container.commit_number()?;
        let entries: Vec<Entry> = container.table()?.entries().to_vec();
        let file_len = container.file_len()?;
        container
            .with_read_map(|file| list_entries(file, commit_number, &entries, file_len, out))?
    })?
}

/// The listing of an mmappickle file from a map of all of it.
pub(super) fn list_entries(
    file: &[u8],
    commit_number: i32,
    entries: &[Entry],
    file_len: u64,
    out: &mut dyn Write,
) -> CliResult {
    writeln!(
        out,
        "{:>10}: header: PROTO 4, FRAME 13, format version 1, commit number {commit_number}, MARK",
        0
    )?;
    for (entry_idx, entry) in entries.iter().enumerate() {
        let state = if entry.is_padding() {
            "padding"
        } else if entry.is_live() {
            "live"
        } else {
            "deleted"
        };
        writeln!(
                out,
                "{:>10}: entry {entry_idx}: key {} ({state}), FRAME {}, value {} bytes at {}, memo_max {}",
                entry.offset(),
                str_repr(entry.key()),
                entry.len().saturating_sub(9),
                entry.value_len(),
                entry.value_offset(),
                entry.memo_max()
            )?;
        let range = usize::try_from(entry.value_offset())
            .ok()
            .zip(usize::try_from(entry.value_offset().saturating_add(entry.value_len())).ok());
        let Some(value) = range.and_then(|(start, end)| file.get(start..end)) else {
            writeln!(out, "        error: the value lies outside the file")?;
            continue;
        };
        annotate_arrays(value, entry.value_offset(), out)?;
        if entry.value_len() <= MAX_COPIED_VALUE {
            dis_value(value, entry.value_offset(), out)?;
        } else {
            dis_large_value(value, entry.value_offset(), out)?;
        }
        writeln!(
            out,
            "{:>10}:    end of entry: BININT {} POP, {}, POP",
            entry.end().saturating_sub(8),
            entry.memo_max(),
            if entry.is_live() {
                "NEWTRUE"
            } else {
                "POP (deleted)"
            }
        )?;
    }
    writeln!(
        out,
        "{:>10}: terminator: FRAME 2, DICT, STOP",
        file_len.saturating_sub(11)
    )?;
    Ok(())
}

/// For an array or masked array value: a line per array with its dtype, shape,
/// and where its raw data lies in the file.
fn annotate_arrays(value: &[u8], value_offset: u64, out: &mut dyn Write) -> CliResult {
    let headers = match (parse_array_value(value), parse_masked_value(value)) {
        (Ok(Some(header)), _) => vec![("array", header)],
        (_, Ok(Some(masked))) => vec![("masked data", masked.data), ("masked mask", masked.mask)],
        _ => return Ok(()),
    };
    for (what, header) in headers {
        let data_offset = value_offset.saturating_add(header.raw_offset);
        let aligned = if data_offset % DATA_ALIGN == 0 {
            ""
        } else {
            "not "
        };
        writeln!(
            out,
            "            = {what} {} {}: {} raw bytes at {data_offset}, {aligned}{DATA_ALIGN}-aligned",
            header.dtype.name(),
            arrays::shape_repr(&header.shape),
            header.raw_len,
        )?;
    }
    Ok(())
}
