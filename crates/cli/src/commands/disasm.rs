//! `dis`: the annotated disassembly.

use std::io::Write;
use std::path::Path;

use mmappickle::{dis, DisOp, Disassembly, EntryInfo, MmapDict, ValueKind, DATA_ALIGN};

use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::scalars::str_repr;
use crate::store::ReadDict;

/// Values longer than this are listed op by op without indentation, showing big payloads by
/// size only.
const MAX_FULL_VALUE: u64 = 1 << 20;

/// Ops of a large value longer than this (with their argument) are shown by size.
const MAX_SHOWN_OP: usize = 128;

/// `dis`: the header, then each entry's framing and its value's opcodes, then the
/// terminator; a file that is not an mmappickle file is listed as a plain pickle.
pub(super) fn disassemble(path: &Path, out: &mut dyn Write) -> CliResult {
    let dict = if ReadDict::is_remote(path) {
        ReadDict::open(path)?
    } else {
        match MmapDict::open_readonly(path) {
            Ok(dict) => ReadDict::Local(dict),
            Err(err) => return disassemble_plain(path, &err, out),
        }
    };
    // Listed under the lock, printed after it is released (see `dump`).
    let mut text = Vec::new();
    dict.with_disassembly(|disassembly| list_entries(disassembly, &mut text))?;
    out.write_all(&text)?;
    super::free_at_exit(dict);
    Ok(())
}

/// Not an mmappickle file: the plain pickle it may be.
fn disassemble_plain(path: &Path, err: &mmappickle::Error, out: &mut dyn Write) -> CliResult {
    let data =
        std::fs::read(path).map_err(|io_err| CliError::from(io_err).context(path.display()))?;
    writeln!(out, "{}: {err}; as a plain pickle:", path.display())?;
    let listing = dis(&data);
    out.write_all(listing.as_bytes())?;
    // The listing shows where it stopped; the exit code says it failed.
    match listing
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
    {
        Some(problem) => Err(CliError::new(format!(
            "{}: not a valid pickle: {problem}",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// The listing of an mmappickle file.
fn list_entries(disassembly: &Disassembly<'_>, out: &mut dyn Write) -> CliResult {
    let listing = &disassembly.listing;
    writeln!(
        out,
        "{:>10}: header: PROTO 4, FRAME 13, format version {}, commit number {}, MARK",
        0,
        mmappickle::FORMAT_VERSION,
        listing.commit_number()
    )?;
    for (entry_idx, info) in listing.entries().enumerate() {
        let entry = info.entry;
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
        annotate_arrays(&info, out)?;
        let full = entry.value_len() <= MAX_FULL_VALUE;
        for op in disassembly.value_ops(&info) {
            match op {
                Ok(op) => {
                    write_offset_column(out, op.offset as u64)?;
                    if full {
                        writeln!(out, "{op}")?;
                    } else {
                        writeln!(out, "{}", flat_op(&op))?;
                    }
                }
                Err(err) => writeln!(out, "        error: {err}")?,
            }
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
        listing.file_len().saturating_sub(11)
    )?;
    Ok(())
}

/// `{offset:>10}:    `, the column every op line starts with, drawn without the
/// formatting machinery when the offset fits its ten places (it is written once per op).
fn write_offset_column(out: &mut dyn Write, mut offset: u64) -> std::io::Result<()> {
    if offset >= 10_000_000_000 {
        return write!(out, "{offset:>10}:    ");
    }
    let mut column = *b"          :    ";
    let mut at = 10;
    loop {
        at -= 1;
        column[at] = b'0' + (offset % 10) as u8;
        offset /= 10;
        if offset == 0 {
            break;
        }
    }
    out.write_all(&column)
}

/// An op of a large value: not indented, and a long one shown by its size only.
fn flat_op(op: &DisOp<'_>) -> String {
    let name = op.op.name();
    if op.len > MAX_SHOWN_OP {
        return format!("{name} <{} bytes with its argument>", op.len);
    }
    match op.argument() {
        Some(argument) => format!("{name} {argument}"),
        None => name.to_owned(),
    }
}

/// For an array or masked array value: a line per array with its dtype, shape,
/// and where its raw data lies in the file.
fn annotate_arrays(info: &EntryInfo<'_>, out: &mut dyn Write) -> CliResult {
    let headers = match info.kind {
        Some(ValueKind::Array(header)) => vec![("array", &**header)],
        Some(ValueKind::Masked(masked)) => {
            vec![("masked data", &masked.data), ("masked mask", &masked.mask)]
        }
        _ => return Ok(()),
    };
    for (what, header) in headers {
        let data_offset = info.entry.value_offset().saturating_add(header.raw_offset);
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

#[cfg(test)]
mod tests {
    use super::*;

    // The column is what `{offset:>10}:    ` prints.
    #[test]
    fn offset_column_is_right_aligned() {
        for offset in [0, 7, 35, 4096, 9_999_999_999, 10_000_000_000, u64::MAX] {
            let mut column = Vec::new();
            write_offset_column(&mut column, offset).unwrap();
            assert_eq!(column, format!("{offset:>10}:    ").as_bytes(), "{offset}");
        }
    }
}
