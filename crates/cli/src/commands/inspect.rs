//! Reading: `ls`, `info`, `get`, `dump`, `unpickle`.

use std::io::Write;
use std::path::Path;

use mmappickle::loads;
use mmappickle::DATA_ALIGN;
use mmappickle::{EntryInfo, Listing, ValueKind, FORMAT_VERSION};
use serde::{Serialize, Serializer};
use serde_json::json;

use super::{get_item, print_json};
use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::json::JsonOf;
use crate::pretty::repr;
use crate::scalars::str_repr;
use crate::store;
use crate::view::{ArrayView, ItemView, Viewed};

/// One row of `ls`, borrowing its key from the listing.
struct Row<'a> {
    key: &'a str,
    kind: &'static str,
    /// Dtype name and shape, for array entries.
    array: Option<(String, &'a [usize])>,
    bytes: u64,
    offset: u64,
}

impl<'a> Row<'a> {
    /// The row of an entry: its kind from the one classifier, and where its data is.
    fn of(info: &'a EntryInfo) -> Row<'a> {
        let entry = &info.entry;
        let kind = match &info.kind {
            _ if !entry.is_live() && !entry.is_padding() => "deleted",
            None => "padding",
            Some(kind) => kind.name(),
        };
        let header = info.kind.as_ref().and_then(ValueKind::data_header);
        let (offset, bytes) = info
            .data_range()
            .unwrap_or((entry.value_offset(), entry.value_len()));
        Row {
            key: entry.key(),
            kind,
            array: header.map(|header| (header.dtype.name(), header.shape.as_slice())),
            bytes,
            offset,
        }
    }

    fn aligned(&self) -> Option<bool> {
        self.array.as_ref().map(|_| self.offset % DATA_ALIGN == 0)
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", self.key)?;
        map.serialize_entry("kind", self.kind)?;
        if let (Some((dtype, shape)), Some(aligned)) = (&self.array, self.aligned()) {
            map.serialize_entry("dtype", dtype)?;
            map.serialize_entry("shape", shape)?;
            map.serialize_entry("aligned", &aligned)?;
        }
        map.serialize_entry("bytes", &self.bytes)?;
        map.serialize_entry("offset", &self.offset)?;
        map.end()
    }
}

/// Digits of `n` in decimal.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// `ls`: the entry table, as text columns or a JSON array.
pub(super) fn ls(path: &Path, all: bool, as_json: bool, out: &mut dyn Write) -> CliResult {
    let listing = store::open_dict_readonly(path)?.listing()?;
    print_ls(&listing, all, as_json, out)
}

/// `ls`'s table of `listing` (of a local or a remote file).
pub(super) fn print_ls(
    listing: &Listing,
    all: bool,
    as_json: bool,
    out: &mut dyn Write,
) -> CliResult {
    let rows: Vec<Row<'_>> = listing
        .entries
        .iter()
        .filter(|info| all || info.entry.is_live())
        .map(Row::of)
        .collect();
    if as_json {
        return print_json(out, &rows);
    }
    // Shapes are drawn once; the other cells are written straight from the row.
    let shapes: Vec<Option<String>> = rows
        .iter()
        .map(|row| {
            row.array
                .as_ref()
                .map(|(_, shape)| arrays::shape_repr(shape))
        })
        .collect();
    const HEADER: [&str; 7] = [
        "KEY", "KIND", "DTYPE", "SHAPE", "BYTES", "OFFSET", "ALIGNED",
    ];
    let mut widths = HEADER.map(str::len);
    for (row, shape) in rows.iter().zip(&shapes) {
        let cells = [
            row.key.chars().count(),
            row.kind.len(),
            row.array.as_ref().map_or(1, |(dtype, _)| dtype.len()),
            shape.as_ref().map_or(1, String::len),
            decimal_len(row.bytes),
            decimal_len(row.offset),
        ];
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell);
        }
    }
    let [key_w, kind_w, dtype_w, shape_w, bytes_w, offset_w, _] = widths;
    // Each line is drawn into one reused buffer: no formatting machinery per cell.
    let mut line = String::new();
    let mut digits = [0u8; 20];
    for (cell, width) in HEADER.iter().zip(widths).take(4) {
        push_left(&mut line, cell, cell.len(), width);
    }
    push_right(&mut line, HEADER[4], bytes_w);
    push_right(&mut line, HEADER[5], offset_w);
    line.push_str(HEADER[6]);
    line.push('\n');
    out.write_all(line.as_bytes())?;
    for (row, shape) in rows.iter().zip(&shapes) {
        let dtype = row.array.as_ref().map_or("-", |(dtype, _)| dtype.as_str());
        let shape = shape.as_deref().unwrap_or("-");
        line.clear();
        push_left(&mut line, row.key, row.key.chars().count(), key_w);
        push_left(&mut line, row.kind, row.kind.len(), kind_w);
        push_left(&mut line, dtype, dtype.len(), dtype_w);
        push_left(&mut line, shape, shape.len(), shape_w);
        push_right(&mut line, decimal(row.bytes, &mut digits), bytes_w);
        push_right(&mut line, decimal(row.offset, &mut digits), offset_w);
        line.push_str(match row.aligned() {
            None => "-",
            Some(true) => "yes",
            Some(false) => "no",
        });
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Spaces to pad cells with.
const SPACES: &str = "                                                                ";

/// Pushes `n` spaces.
fn push_spaces(line: &mut String, mut n: usize) {
    while n > 0 {
        let run = n.min(SPACES.len());
        line.push_str(&SPACES[..run]);
        n -= run;
    }
}

/// A left-aligned cell of `chars` characters in a column `width` wide, and the gap after it.
fn push_left(line: &mut String, cell: &str, chars: usize, width: usize) {
    line.push_str(cell);
    push_spaces(line, width.saturating_sub(chars) + 2);
}

/// A right-aligned (ASCII) cell in a column `width` wide, and the gap after it.
fn push_right(line: &mut String, cell: &str, width: usize) {
    push_spaces(line, width.saturating_sub(cell.len()));
    line.push_str(cell);
    push_spaces(line, 2);
}

/// `n` in decimal, drawn into `digits`.
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &str {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[start..]).unwrap_or_default()
}

/// `info`: the file's facts; `reclaimable` counts deleted, padding and shadowed entries.
pub(super) fn info(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    // Counts and lengths only: no value is read.
    let listing = store::open_dict_readonly(path)?.entry_listing()?;
    print_info(&path.display(), &listing, as_json, out)
}

/// `info`'s facts of `listing`, of the file called `name` (a path or a URL).
pub(super) fn print_info(
    name: &dyn std::fmt::Display,
    listing: &Listing,
    as_json: bool,
    out: &mut dyn Write,
) -> CliResult {
    let format_version = FORMAT_VERSION;
    let (file_len, commit_number, live) = (listing.file_len, listing.commit_number, listing.n_live);
    let (mut deleted, mut padding, mut shadowed, mut reclaimable) = (0usize, 0usize, 0usize, 0u64);
    for info in &listing.entries {
        let entry = &info.entry;
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
struct ItemJson<'a>(ItemView<'a>);

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let digest = |array: ArrayView<'_>| arrays::digest(array.dtype, array.shape, array.bytes);
        match self.0 {
            ItemView::Value(value) => JsonOf(value).serialize(serializer),
            ItemView::Array(array) => json!({ "ndarray": digest(array) }).serialize(serializer),
            ItemView::Masked { data, mask } => {
                arrays::masked_json(digest(data), digest(mask)).serialize(serializer)
            }
        }
    }
}

/// The whole dict for `dump --json`: key -> item, in file order.
struct DumpJson<'a, I>(&'a [(String, I)]);

impl<I: Viewed> Serialize for DumpJson<'_, I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|(key, item)| (key, ItemJson(item.view()))),
        )
    }
}

fn item_repr(item: ItemView<'_>) -> String {
    match item {
        ItemView::Value(value) => repr(value),
        ItemView::Array(array) => arrays::summary(array.dtype, array.shape, array.bytes),
        ItemView::Masked { data, mask } => {
            arrays::masked_summary(data.dtype, data.shape, data.bytes, mask.shape, mask.bytes)
        }
    }
}

/// `get`: one key's value, Python-like or as JSON.
pub(super) fn get(path: &Path, key: &str, as_json: bool, out: &mut dyn Write) -> CliResult {
    let dict = store::open_dict_readonly(path)?;
    print_item(get_item(&dict, key)?.view(), as_json, out)
}

/// `get`'s printing of an item (of a local or a remote file).
pub(super) fn print_item(item: ItemView<'_>, as_json: bool, out: &mut dyn Write) -> CliResult {
    if as_json {
        print_json(out, &ItemJson(item))
    } else {
        writeln!(out, "{}", item_repr(item))?;
        Ok(())
    }
}

/// `dump`: every live key in file order, all read from one snapshot (one shared lock).
pub(super) fn dump(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let dict = store::open_dict_readonly(path)?;
    let in_file = |err: mmappickle::Error| CliError::from(err).context(path.display());
    print_dump(as_json, out, |each| {
        dict.for_each_item(|key, item| each(key, item))
            .map_err(in_file)?
    })
}

/// `dump`'s printing of the items `read_items` hands, each with its key, in file order, to
/// the function it is given (items of a local or a remote file).
pub(super) fn print_dump<I: Viewed>(
    as_json: bool,
    out: &mut dyn Write,
    read_items: impl FnOnce(&mut dyn FnMut(&str, I) -> CliResult) -> CliResult,
) -> CliResult {
    if as_json {
        let mut items = Vec::new();
        read_items(&mut |key, item| {
            items.push((key.to_owned(), item));
            Ok(())
        })?;
        return print_json(out, &DumpJson(&items));
    }
    writeln!(out, "{{")?;
    read_items(&mut |key, item| {
        writeln!(out, "    {}: {},", str_repr(key), item_repr(item.view()))?;
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
