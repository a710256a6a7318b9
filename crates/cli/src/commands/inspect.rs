//! Reading: `ls`, `info`, `get`, `dump`, `unpickle`.

use std::io::Write;
use std::path::Path;

use mmappickle::loads;
use mmappickle::DATA_ALIGN;
use mmappickle::{DType, EntryInfo, Item, MappedBytes, ValueKind, FORMAT_VERSION};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value as Json};

use super::{get_item, print_json};
use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::json::JsonOf;
use crate::pretty::repr;
use crate::scalars::str_repr;
use crate::store;

/// One row of `ls`.
struct Row {
    key: String,
    kind: &'static str,
    dtype: String,
    shape: String,
    bytes: u64,
    offset: u64,
    aligned: &'static str,
    json: Json,
}

/// The `ls` row of an entry: its kind from the one classifier, and where its data is.
fn describe_entry(info: &EntryInfo) -> Row {
    let entry = &info.entry;
    let header = info.kind.as_ref().and_then(ValueKind::data_header);
    let (bytes, offset) = info.data_range().map_or(
        (entry.value_len(), entry.value_offset()),
        |(offset, len)| (len, offset),
    );
    let kind_name = match &info.kind {
        _ if !entry.is_live() && !entry.is_padding() => "deleted",
        None => "padding",
        Some(kind) => kind.name(),
    };
    let dtype = header.map(|header| &header.dtype);
    let shape = header.map(|header| &header.shape);
    let aligned = match dtype {
        None => "-",
        Some(_) if offset % DATA_ALIGN == 0 => "yes",
        Some(_) => "no",
    };
    let mut json = Map::new();
    json.insert("key".into(), json!(entry.key()));
    json.insert("kind".into(), json!(kind_name));
    if let (Some(dtype), Some(shape)) = (dtype, shape) {
        json.insert("dtype".into(), json!(dtype.name()));
        json.insert("shape".into(), json!(shape));
        json.insert("aligned".into(), json!(aligned == "yes"));
    }
    json.insert("bytes".into(), json!(bytes));
    json.insert("offset".into(), json!(offset));
    Row {
        key: entry.key().to_owned(),
        kind: kind_name,
        dtype: dtype.map_or("-".into(), DType::name),
        shape: shape.map_or("-".into(), |s| arrays::shape_repr(s)),
        bytes,
        offset,
        aligned,
        json: Json::Object(json),
    }
}

/// `ls`: the entry table, as text columns or a JSON array.
pub(super) fn ls(path: &Path, all: bool, as_json: bool, out: &mut dyn Write) -> CliResult {
    let listing = store::open_dict_readonly(path)?.listing()?;
    let rows: Vec<Row> = listing
        .entries
        .iter()
        .filter(|info| all || info.entry.is_live())
        .map(describe_entry)
        .collect();
    if as_json {
        return print_json(
            out,
            &Json::Array(rows.into_iter().map(|r| r.json).collect()),
        );
    }
    let table: Vec<[String; 7]> = std::iter::once(
        [
            "KEY", "KIND", "DTYPE", "SHAPE", "BYTES", "OFFSET", "ALIGNED",
        ]
        .map(String::from),
    )
    .chain(rows.into_iter().map(|row| {
        [
            row.key,
            row.kind.into(),
            row.dtype,
            row.shape,
            row.bytes.to_string(),
            row.offset.to_string(),
            row.aligned.into(),
        ]
    }))
    .collect();
    let mut widths = [0usize; 7];
    for row in &table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &table {
        let mut line = String::new();
        for (col, (cell, width)) in row.iter().zip(widths).enumerate() {
            if col == 6 {
                line.push_str(cell);
            } else if col == 4 || col == 5 {
                line.push_str(&format!("{cell:>width$}  "));
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `info`: the file's facts; `reclaimable` counts deleted, padding and shadowed entries.
pub(super) fn info(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let listing = store::open_dict_readonly(path)?.listing()?;
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
    writeln!(out, "file:               {}", path.display())?;
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
            |array: &MappedBytes| arrays::digest(array.dtype(), array.shape(), array.bytes());
        match self.0 {
            Item::Value(value) => JsonOf(value).serialize(serializer),
            Item::Array(array) => json!({ "ndarray": digest(array) }).serialize(serializer),
            Item::Masked(masked) => arrays::masked_json(digest(&masked.data), digest(&masked.mask))
                .serialize(serializer),
            #[allow(unreachable_patterns)]
            other => json!({ "unknown": format!("{other:?}") }).serialize(serializer),
        }
    }
}

/// The whole dict for `dump --json`: key -> item, in file order.
struct DumpJson<'a>(&'a [(String, Item)]);

impl Serialize for DumpJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, item)| (key, ItemJson(item))))
    }
}

fn item_repr(item: &Item) -> String {
    match item {
        Item::Value(value) => repr(value),
        Item::Array(array) => arrays::summary(array.dtype(), array.shape(), array.bytes()),
        Item::Masked(masked) => arrays::masked_summary(
            masked.data.dtype(),
            masked.data.shape(),
            masked.data.bytes(),
            masked.mask.shape(),
            masked.mask.bytes(),
        ),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// `get`: one key's value, Python-like or as JSON.
pub(super) fn get(path: &Path, key: &str, as_json: bool, out: &mut dyn Write) -> CliResult {
    let mut dict = store::open_dict_readonly(path)?;
    let item = get_item(&mut dict, key)?;
    if as_json {
        print_json(out, &ItemJson(&item))
    } else {
        writeln!(out, "{}", item_repr(&item))?;
        Ok(())
    }
}

/// `dump`: every live key in file order.
pub(super) fn dump(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let mut dict = store::open_dict_readonly(path)?;
    let keys = dict.keys()?;
    if as_json {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let item = get_item(&mut dict, &key)?;
            items.push((key, item));
        }
        return print_json(out, &DumpJson(&items));
    }
    writeln!(out, "{{")?;
    for key in keys {
        let item = get_item(&mut dict, &key)?;
        writeln!(out, "    {}: {},", str_repr(&key), item_repr(&item))?;
    }
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
