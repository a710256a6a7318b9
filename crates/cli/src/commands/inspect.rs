//! Reading: `ls`, `info`, `get`, `dump`, `unpickle`.

use std::io::Write;
use std::path::Path;

use mmappickle::codec::loads;
use mmappickle::container::{Container, Entry};
use mmappickle::{DType, Item, MappedBytes};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value as Json};

use super::{get_item, print_json};
use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::json::JsonOf;
use crate::pretty::{repr, str_repr};
use crate::store::{self, EntryKind};

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

/// The `ls` row of `entry`: its kind from its value's head, and where its data is.
fn describe_entry(container: &Container, entry: &Entry) -> Row {
    let kind = if entry.is_padding() {
        None
    } else {
        // A value that starts like an array but is not a mappable one may still
        // be an ordinary value, as the facade's `get` reads it.
        Some(store::entry_kind(container, entry).unwrap_or(EntryKind::Value))
    };
    let data = |header: &mmappickle::array::ArrayHeader| {
        let offset = entry.value_offset().saturating_add(header.raw_offset);
        (offset, header.raw_len)
    };
    let (kind_name, dtype, shape, bytes, offset) = match &kind {
        None => (
            "padding",
            None,
            None,
            entry.value_len(),
            entry.value_offset(),
        ),
        Some(EntryKind::Value) => ("value", None, None, entry.value_len(), entry.value_offset()),
        Some(EntryKind::Array(header)) => {
            let (offset, bytes) = data(header);
            (
                "array",
                Some(&header.dtype),
                Some(&header.shape),
                bytes,
                offset,
            )
        }
        Some(EntryKind::Masked(header)) => {
            let (offset, bytes) = data(&header.data);
            (
                "masked",
                Some(&header.data.dtype),
                Some(&header.data.shape),
                bytes,
                offset,
            )
        }
    };
    let kind_name = if entry.is_live() || entry.is_padding() {
        kind_name
    } else {
        "deleted"
    };
    let aligned = match dtype {
        None => "-",
        Some(_) if offset % mmappickle::array::DATA_ALIGN == 0 => "yes",
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
    let mut container = store::open_readonly(path)?;
    // One lock for the table and every entry's head, so they agree.
    let rows = container.with_lock(|container| -> CliResult<Vec<Row>> {
        let entries: Vec<Entry> = container.table()?.entries().to_vec();
        Ok(entries
            .iter()
            .filter(|entry| all || entry.is_live())
            .map(|entry| describe_entry(container, entry))
            .collect())
    })??;
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
    let mut container = store::open_readonly(path)?;
    // The BININT after the header's FRAME: its i32 is at offset 12.
    let format_version = container
        .with_read_map(|file| file.get(12..16).and_then(|b| <[u8; 4]>::try_from(b).ok()))?
        .map(i32::from_le_bytes)
        .ok_or_else(|| CliError::new(format!("{}: header cut short", path.display())))?;
    let file_len = container.file_len()?;
    let table = container.table()?;
    let commit_number = table.commit_number();
    let live = table.n_live();
    let live_offsets: Vec<u64> = table.live_entries().map(Entry::offset).collect();
    let (mut deleted, mut padding, mut shadowed, mut reclaimable) = (0usize, 0usize, 0usize, 0u64);
    for entry in table.entries() {
        if entry.is_padding() {
            padding += 1;
        } else if !entry.is_live() {
            deleted += 1;
        } else if live_offsets.binary_search(&entry.offset()).is_err() {
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
    let dict = store::open_dict_readonly(path)?;
    let item = get_item(&dict, key)?;
    if as_json {
        print_json(out, &ItemJson(&item))
    } else {
        writeln!(out, "{}", item_repr(&item))?;
        Ok(())
    }
}

/// `dump`: every live key in file order.
pub(super) fn dump(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let dict = store::open_dict_readonly(path)?;
    // One shared lock and one state of the file for every key (reads below join it).
    let snapshot = dict.read()?;
    let keys = snapshot.keys()?;
    if as_json {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let item = get_item(&dict, &key)?;
            items.push((key, item));
        }
        return print_json(out, &DumpJson(&items));
    }
    writeln!(out, "{{")?;
    for key in keys {
        let item = get_item(&dict, &key)?;
        writeln!(out, "    {}: {},", str_repr(&key), item_repr(&item))?;
    }
    writeln!(out, "}}")?;
    drop(snapshot);
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
