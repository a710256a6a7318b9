//! Reading: `ls`, `info`, `get`, `dump`, `unpickle`.

use std::io::Write;
use std::path::Path;

use mmappickle::{loads, ArrayData, ArrayHeader, Item, DATA_ALIGN};
use mmappickle::{EntryInfo, Listing, ValueKind, FORMAT_VERSION};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::json;

use super::print_json;
use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::json::JsonOf;
use crate::pretty::{push_repr, repr};
use crate::scalars::push_str_repr;
use crate::store::ReadDict;

/// One row of `ls`, borrowing from the listing: nothing is allocated for a row of a value.
struct Row<'a> {
    key: &'a str,
    kind: &'static str,
    /// The (data) array's header, for array entries.
    array: Option<&'a ArrayHeader>,
    bytes: u64,
    offset: u64,
}

impl<'a> Row<'a> {
    /// The row of an entry: its kind from the one classifier, and where its data is.
    #[inline]
    fn of(info: EntryInfo<'a>) -> Row<'a> {
        let entry = info.entry;
        let kind = match info.kind {
            _ if !entry.is_live() && !entry.is_padding() => "deleted",
            None => "padding",
            Some(kind) => kind.name(),
        };
        let (offset, bytes) = info
            .data_range()
            .unwrap_or((entry.value_offset(), entry.value_len()));
        Row {
            key: entry.key(),
            kind,
            array: info.kind.and_then(ValueKind::data_header),
            bytes,
            offset,
        }
    }

    fn aligned(&self) -> Option<bool> {
        self.array.map(|_| self.offset % DATA_ALIGN == 0)
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", self.key)?;
        map.serialize_entry("kind", self.kind)?;
        if let (Some(header), Some(aligned)) = (self.array, self.aligned()) {
            map.serialize_entry("dtype", &header.dtype.name())?;
            map.serialize_entry("shape", &header.shape)?;
            map.serialize_entry("aligned", &aligned)?;
        }
        map.serialize_entry("bytes", &self.bytes)?;
        map.serialize_entry("offset", &self.offset)?;
        map.end()
    }
}

/// `ls --json`: the rows as one array, serialized as they are made.
struct RowsJson<'a> {
    listing: &'a Listing,
    all: bool,
}

impl Serialize for RowsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(rows(self.listing, self.all))
    }
}

/// The rows `ls` shows: the live entries, or every entry with `all`.
fn rows(listing: &Listing, all: bool) -> impl Iterator<Item = Row<'_>> {
    listing
        .entries()
        .filter(move |info| all || info.entry.is_live())
        .map(Row::of)
}

/// `ls`: the entry table, as text columns or a JSON array.
pub(super) fn ls(path: &Path, all: bool, as_json: bool, out: &mut dyn Write) -> CliResult {
    let dict = ReadDict::open(path)?;
    let listing = dict.listing()?;
    print_ls(&listing, all, as_json, out)?;
    super::free_at_exit((dict, listing));
    Ok(())
}

/// `ls`'s table of `listing`.
fn print_ls(listing: &Listing, all: bool, as_json: bool, out: &mut dyn Write) -> CliResult {
    if as_json {
        return print_json(out, &RowsJson { listing, all });
    }
    const HEADER: [&str; 7] = [
        "KEY", "KIND", "DTYPE", "SHAPE", "BYTES", "OFFSET", "ALIGNED",
    ];
    // The widths come from one pass over the rows: a key's characters are counted only when
    // it has more bytes than the widest key so far, numbers are measured once from the
    // largest, and only array cells (dtype and shape) are drawn, kept for the second pass.
    let mut widths = HEADER.map(str::len);
    let (mut max_bytes, mut max_offset) = (0, 0);
    let mut array_cells = Vec::new();
    for row in rows(listing, all) {
        if row.key.len() > widths[0] {
            widths[0] = widths[0].max(char_len(row.key));
        }
        widths[1] = widths[1].max(row.kind.len());
        max_bytes = max_bytes.max(row.bytes);
        max_offset = max_offset.max(row.offset);
        if let Some(header) = row.array {
            let cells = (header.dtype.name(), arrays::shape_repr(&header.shape));
            widths[2] = widths[2].max(cells.0.len());
            widths[3] = widths[3].max(cells.1.len());
            array_cells.push(cells);
        }
    }
    widths[4] = widths[4].max(decimal_len(max_bytes));
    widths[5] = widths[5].max(decimal_len(max_offset));
    let [key_w, kind_w, dtype_w, shape_w, bytes_w, offset_w, _] = widths;
    let mut table = Columns::new(out);
    for (cell, width) in HEADER.iter().zip(widths).take(4) {
        table.left(cell, cell.len(), width);
    }
    table.right(HEADER[4], bytes_w);
    table.right(HEADER[5], offset_w);
    table.end_line(HEADER[6])?;
    let mut plain_cells = PlainCells {
        widths: [kind_w, dtype_w, shape_w],
        drawn: Vec::new(),
    };
    let mut array_cells = array_cells.iter();
    for row in rows(listing, all) {
        table.left(row.key, char_len(row.key), key_w);
        match row.array.and_then(|_| array_cells.next()) {
            Some((dtype, shape)) => {
                table.left(row.kind, row.kind.len(), kind_w);
                table.left(dtype, dtype.len(), dtype_w);
                table.left(shape, shape.len(), shape_w);
            }
            None => table.buffer.extend_from_slice(plain_cells.of(row.kind)),
        }
        table.end_row([row.bytes, row.offset], [bytes_w, offset_w], row.aligned())?;
    }
    table.finish()
}

/// The kind, dtype and shape cells of rows without an array: the same for every row of a
/// kind, so drawn once per kind.
struct PlainCells {
    /// The widths of the kind, dtype and shape columns.
    widths: [usize; 3],
    /// The cells drawn so far, after their kind's name.
    drawn: Vec<(&'static str, Vec<u8>)>,
}

impl PlainCells {
    fn of(&mut self, kind: &'static str) -> &[u8] {
        // Kind names are static strings: the same address is the same name.
        let known = self
            .drawn
            .iter()
            .position(|(drawn, _)| std::ptr::eq(*drawn, kind) || *drawn == kind);
        let idx = known.unwrap_or_else(|| {
            let [kind_w, dtype_w, shape_w] = self.widths;
            let mut cells = Vec::new();
            push_left(&mut cells, kind, kind.len(), kind_w);
            push_left(&mut cells, "-", 1, dtype_w);
            push_left(&mut cells, "-", 1, shape_w);
            self.drawn.push((kind, cells));
            self.drawn.len() - 1
        });
        &self.drawn[idx].1
    }
}

/// Characters in `text` (its length, for ASCII).
fn char_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// Digits of `n` in decimal.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Spaces between columns.
const GAP: usize = 2;

/// A left-aligned cell of `chars` characters in a column `width` wide, and the gap.
fn push_left(buffer: &mut Vec<u8>, cell: &str, chars: usize, width: usize) {
    buffer.extend_from_slice(cell.as_bytes());
    push_spaces(buffer, width.saturating_sub(chars) + GAP);
}

fn push_spaces(buffer: &mut Vec<u8>, n: usize) {
    buffer.resize(buffer.len() + n, b' ');
}

/// Text columns drawn into one byte buffer and written out in large pieces: no formatting
/// machinery and no allocation per cell.
struct Columns<'w> {
    out: &'w mut dyn Write,
    buffer: Vec<u8>,
}

impl<'w> Columns<'w> {
    /// Bytes gathered before they are written out.
    const CHUNK: usize = 64 * 1024;

    fn new(out: &'w mut dyn Write) -> Self {
        let buffer = Vec::with_capacity(Self::CHUNK + 1024);
        Columns { out, buffer }
    }

    /// A left-aligned cell of `chars` characters in a column `width` wide, and the gap.
    fn left(&mut self, cell: &str, chars: usize, width: usize) {
        push_left(&mut self.buffer, cell, chars, width);
    }

    /// A right-aligned (ASCII) cell in a column `width` wide, and the gap.
    fn right(&mut self, cell: &str, width: usize) {
        push_spaces(&mut self.buffer, width.saturating_sub(cell.len()));
        self.buffer.extend_from_slice(cell.as_bytes());
        push_spaces(&mut self.buffer, GAP);
    }

    /// The end of a row: `numbers` right-aligned in columns `widths` wide, then whether the
    /// data is `aligned` and the line's end, drawn on the stack and copied once (this runs
    /// for every row).
    fn end_row(
        &mut self,
        numbers: [u64; 2],
        widths: [usize; 2],
        aligned: Option<bool>,
    ) -> CliResult {
        // Two columns of at most 20 digits (u64::MAX), their gaps, "yes" and the newline.
        let mut tail = [b' '; 2 * (20 + GAP) + 4];
        let mut column_end = 0;
        for (mut n, width) in numbers.into_iter().zip(widths) {
            column_end += width.min(20);
            let mut at = column_end;
            loop {
                at -= 1;
                tail[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 || at == 0 {
                    break;
                }
            }
            column_end += GAP;
        }
        let last: &[u8] = match aligned {
            None => b"-",
            Some(true) => b"yes",
            Some(false) => b"no",
        };
        tail[column_end..column_end + last.len()].copy_from_slice(last);
        tail[column_end + last.len()] = b'\n';
        self.buffer
            .extend_from_slice(&tail[..=column_end + last.len()]);
        self.flush_full()
    }

    /// The last cell of a line, unpadded, and the line's end.
    fn end_line(&mut self, cell: &str) -> CliResult {
        self.buffer.extend_from_slice(cell.as_bytes());
        self.buffer.push(b'\n');
        self.flush_full()
    }

    /// Writes the buffer out once it holds a chunk.
    fn flush_full(&mut self) -> CliResult {
        if self.buffer.len() >= Self::CHUNK {
            self.out.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes what is left.
    fn finish(self) -> CliResult {
        self.out.write_all(&self.buffer)?;
        Ok(())
    }
}

/// `info`: the file's facts; `reclaimable` counts deleted, padding and shadowed entries.
pub(super) fn info(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    // Counts and lengths only: no value is read.
    let dict = ReadDict::open(path)?;
    let listing = dict.listing_without_kinds()?;
    print_info(&dict.name(), &listing, as_json, out)?;
    super::free_at_exit((dict, listing));
    Ok(())
}

/// `info`'s facts of `listing`, of the file called `name` (a path or a URL).
fn print_info(
    name: &dyn std::fmt::Display,
    listing: &Listing,
    as_json: bool,
    out: &mut dyn Write,
) -> CliResult {
    let format_version = FORMAT_VERSION;
    let (file_len, commit_number, live) = (
        listing.file_len(),
        listing.commit_number(),
        listing.n_live(),
    );
    let (mut deleted, mut padding, mut shadowed, mut reclaimable) = (0usize, 0usize, 0usize, 0u64);
    for info in listing.entries() {
        let entry = info.entry;
        if entry.is_padding() {
            padding += 1;
        } else if !entry.is_live() {
            deleted += 1;
        } else if info.shadowed {
            shadowed += 1; // an older live duplicate left by an interrupted replace
        } else {
            continue;
        }
        reclaimable = reclaimable.saturating_add(entry.len());
    }
    if as_json {
        return print_json(
            out,
            &json!({
                "format_version": format_version,
                "commit_number": commit_number,
                "live_entries": live,
                "deleted_entries": deleted,
                "padding_entries": padding,
                "shadowed_entries": shadowed,
                "reclaimable_bytes": reclaimable,
                "file_size": file_len,
            }),
        );
    }
    writeln!(out, "file:               {name}")?;
    writeln!(out, "format version:     {format_version}")?;
    writeln!(out, "commit number:      {commit_number}")?;
    writeln!(out, "live entries:       {live}")?;
    writeln!(out, "deleted entries:    {deleted}")?;
    writeln!(out, "padding entries:    {padding}")?;
    if shadowed > 0 {
        writeln!(out, "shadowed entries:   {shadowed} (run fsck)")?;
    }
    writeln!(
        out,
        "reclaimable bytes:  {reclaimable} (an upper bound: vacuum may re-pad)"
    )?;
    writeln!(out, "file size:          {file_len}")?;
    Ok(())
}

/// An item in the JSON mapping: a value serialized as it is written, an array
/// as its digest.
struct ItemJson<'a>(&'a Item);

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let digest =
            |array: &ArrayData| arrays::digest(array.dtype(), array.shape(), array.bytes());
        match self.0 {
            Item::Value(value) => JsonOf(value).serialize(serializer),
            Item::Array(array) => json!({ "ndarray": digest(array) }).serialize(serializer),
            Item::Masked(masked) => arrays::masked_json(digest(&masked.data), digest(&masked.mask))
                .serialize(serializer),
            Item::Other(other) => json!({ "read_by": other.pickler() }).serialize(serializer),
        }
    }
}

/// The Python-like form of `item`, pushed onto `out`.
fn push_item_repr(item: &Item, out: &mut String) {
    match item {
        Item::Value(value) => push_repr(value, out),
        Item::Array(array) => {
            out.push_str(&arrays::summary(
                array.dtype(),
                array.shape(),
                array.bytes(),
            ));
        }
        Item::Masked(masked) => {
            let (data, mask) = (&masked.data, &masked.mask);
            out.push_str(&arrays::masked_summary(
                data.dtype(),
                data.shape(),
                data.bytes(),
                mask.shape(),
                mask.bytes(),
            ))
        }
        Item::Other(other) => out.push_str(&format!("<value read by {}>", other.pickler())),
    }
}

/// `get`: one key's value, Python-like or as JSON.
pub(super) fn get(path: &Path, key: &str, as_json: bool, out: &mut dyn Write) -> CliResult {
    let dict = ReadDict::open(path)?;
    print_item(&dict.get(key)?, as_json, out)?;
    super::free_at_exit(dict);
    Ok(())
}

/// `get`'s printing of an item.
fn print_item(item: &Item, as_json: bool, out: &mut dyn Write) -> CliResult {
    if as_json {
        print_json(out, &ItemJson(item))
    } else {
        let mut line = String::new();
        push_item_repr(item, &mut line);
        line.push('\n');
        out.write_all(line.as_bytes())?;
        Ok(())
    }
}

/// `dump`: every live key in file order, all read from one snapshot (one shared lock).
pub(super) fn dump(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let dict = ReadDict::open(path)?;
    // Read under the lock, printed after it is released: a reader paused on its output (a
    // pager) must not hold writers off.
    let mut text = Vec::new();
    print_dump(as_json, &mut text, |each| dict.for_each_item(each))?;
    out.write_all(&text)?;
    super::free_at_exit(dict);
    Ok(())
}

/// `dump`'s printing of the items `read_items` hands, each with its key, in file order, to
/// the function it is given.
fn print_dump(
    as_json: bool,
    out: &mut dyn Write,
    read_items: impl FnOnce(&mut dyn FnMut(&str, Item) -> CliResult) -> CliResult,
) -> CliResult {
    if as_json {
        // The mapping key -> item in file order, serialized as the items are read (only its
        // text is kept) and printed once whole: a value that fails prints nothing.
        let mut text = Vec::new();
        let mut serializer = super::json_serializer(&mut text);
        let mut map = serializer.serialize_map(None)?;
        read_items(&mut |key, item| {
            map.serialize_entry(key, &ItemJson(&item))?;
            Ok(())
        })?;
        SerializeMap::end(map)?;
        text.push(b'\n');
        out.write_all(&text)?;
        return Ok(());
    }
    writeln!(out, "{{")?;
    // Each line is drawn into one reused buffer.
    let mut line = String::new();
    read_items(&mut |key, item| {
        line.clear();
        line.push_str("    ");
        push_str_repr(key, &mut line);
        line.push_str(": ");
        push_item_repr(&item, &mut line);
        line.push_str(",\n");
        out.write_all(line.as_bytes())?;
        Ok(())
    })?;
    writeln!(out, "}}")?;
    Ok(())
}

/// `unpickle`: a plain pickle, read without running anything.
pub(super) fn unpickle(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let data = std::fs::read(path).map_err(|err| CliError::from(err).context(path.display()))?;
    let value = loads(&data).map_err(|err| CliError::from(err).context(path.display()))?;
    if as_json {
        print_json(out, &JsonOf(&value))
    } else {
        writeln!(out, "{}", repr(&value))?;
        Ok(())
    }
}
