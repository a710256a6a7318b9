//! The read commands (`ls`, `info`, `get`, `dump`, `dis`, `export-npy`) on a URL
//! (`http(s)://`, `s3://`, `file://`): the file is read through the remote crate, by ranged
//! requests, and printed by the same code as a local file.

use std::io::Write;
use std::path::Path;

use mmappickle::container::Entry;
use mmappickle_remote::{RemoteDict, RemoteItem, ValueKind};
use serde_json::json;

use super::{disasm, inspect, print_json, transfer};
use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::json::JsonOf;
use crate::pretty::{repr, str_repr};
use crate::store::EntryKind;
use crate::Command;

/// Schemes read through the remote crate.
const SCHEMES: [&str; 5] = ["http://", "https://", "s3://", "s3a://", "file://"];

/// `dis` of a remote file reads all of it: up to this many bytes.
const MAX_DIS_LEN: u64 = 256 << 20;

/// The URL `file` gives, when it is one.
fn url_of(file: &Path) -> Option<&str> {
    let text = file.to_str()?;
    SCHEMES
        .iter()
        .any(|scheme| text.starts_with(scheme))
        .then_some(text)
}

/// A read command's body, given the URL and the opened file.
type Read<'a> = Box<dyn FnOnce(&str, &RemoteDict) -> CliResult + 'a>;

/// Runs `command` when it is a read command on a URL; `None` for everything else.
pub(super) fn run(command: &Command, out: &mut dyn Write) -> Option<CliResult> {
    let (file, read): (&Path, Read<'_>) = match command {
        Command::Ls { file, all, json } => (
            file,
            Box::new(move |_, remote| ls(remote, *all, *json, out)),
        ),
        Command::Info { file, json } => (
            file,
            Box::new(move |url, remote| info(url, remote, *json, out)),
        ),
        Command::Get { file, key, json } => (
            file,
            Box::new(move |_, remote| get(remote, key, *json, out)),
        ),
        Command::Dump { file, json } => (file, Box::new(move |_, remote| dump(remote, *json, out))),
        Command::Dis { file } => (file, Box::new(move |_, remote| dis(remote, out))),
        Command::ExportNpy {
            file,
            key,
            out: npy_path,
            mask,
        } => (
            file,
            Box::new(move |_, remote| export_npy(remote, key, npy_path, *mask)),
        ),
        _ => return None,
    };
    let url = url_of(file)?;
    let result = open(url).and_then(|remote| read(url, &remote));
    Some(result)
}

fn open(url: &str) -> CliResult<RemoteDict> {
    RemoteDict::open(url).map_err(|err| CliError::new(format!("{url}: {err}")))
}

fn remote_error(err: mmappickle_remote::Error) -> CliError {
    CliError::new(err.to_string())
}

fn ls(remote: &RemoteDict, all: bool, as_json: bool, out: &mut dyn Write) -> CliResult {
    let rows = remote
        .table()
        .entries()
        .iter()
        .filter(|entry| all || entry.is_live())
        .map(|entry| {
            let kind = (!entry.is_padding()).then(|| match remote.value_kind(entry) {
                Ok(ValueKind::Array(header)) => EntryKind::Array(header),
                Ok(ValueKind::Masked(header)) => EntryKind::Masked(header),
                // As locally: a value that only starts like an array is listed as a value.
                _ => EntryKind::Value,
            });
            inspect::describe_entry(entry, kind)
        })
        .collect();
    inspect::print_rows(rows, as_json, out)
}

fn info(url: &str, remote: &RemoteDict, as_json: bool, out: &mut dyn Write) -> CliResult {
    let table = remote.table();
    // The table's scan checked the header, format version 1 included.
    inspect::print_info(&url, 1, table.file_len(), table, as_json, out)
}

fn item(remote: &RemoteDict, key: &str) -> CliResult<RemoteItem> {
    remote.get(key).map_err(remote_error)
}

fn item_json(item: &RemoteItem) -> serde_json::Value {
    let digest = |array: &mmappickle::array::OwnedArray| {
        arrays::digest(&array.dtype, &array.shape, &array.data)
    };
    match item {
        RemoteItem::Value(value) => json!(JsonOf(value)),
        RemoteItem::Array(array) => json!({ "ndarray": digest(array) }),
        RemoteItem::Masked { data, mask } => arrays::masked_json(digest(data), digest(mask)),
    }
}

fn item_repr(item: &RemoteItem) -> String {
    match item {
        RemoteItem::Value(value) => repr(value),
        RemoteItem::Array(array) => arrays::summary(&array.dtype, &array.shape, &array.data),
        RemoteItem::Masked { data, mask } => arrays::masked_summary(
            &data.dtype,
            &data.shape,
            &data.data,
            &mask.shape,
            &mask.data,
        ),
    }
}

fn get(remote: &RemoteDict, key: &str, as_json: bool, out: &mut dyn Write) -> CliResult {
    let item = item(remote, key)?;
    if as_json {
        return print_json(out, &item_json(&item));
    }
    writeln!(out, "{}", item_repr(&item))?;
    Ok(())
}

fn dump(remote: &RemoteDict, as_json: bool, out: &mut dyn Write) -> CliResult {
    if as_json {
        let mut items = serde_json::Map::new();
        for key in remote.keys() {
            let item = item(remote, &key)?;
            items.insert(key, item_json(&item));
        }
        return print_json(out, &items);
    }
    writeln!(out, "{{")?;
    for key in remote.keys() {
        let item = item(remote, &key)?;
        writeln!(out, "    {}: {},", str_repr(&key), item_repr(&item))?;
    }
    writeln!(out, "}}")?;
    Ok(())
}

fn dis(remote: &RemoteDict, out: &mut dyn Write) -> CliResult {
    let table = remote.table();
    let file_len = table.file_len();
    if file_len > MAX_DIS_LEN {
        return Err(CliError::new(format!(
            "dis reads a remote file whole: {file_len} bytes is over {MAX_DIS_LEN}; download it"
        )));
    }
    let file = remote.read_range(0..file_len).map_err(remote_error)?;
    let entries: Vec<Entry> = table.entries().to_vec();
    disasm::list_entries(&file, table.commit_number(), &entries, file_len, out)
}

fn export_npy(remote: &RemoteDict, key: &str, npy_path: &Path, want_mask: bool) -> CliResult {
    let array = match (item(remote, key)?, want_mask) {
        (RemoteItem::Array(array), false) => array,
        (RemoteItem::Masked { data, .. }, false) => data,
        (RemoteItem::Masked { mask, .. }, true) => mask,
        (_, true) => {
            return Err(CliError::new(format!(
                "key {key:?} is not a masked array: no --mask"
            )))
        }
        (RemoteItem::Value(value), false) => {
            match mmappickle::array::OwnedArray::from_value(&value) {
                Some(array) => array?,
                None => return Err(CliError::new(format!("key {key:?} is not an array"))),
            }
        }
    };
    transfer::write_npy(key, &array.dtype, &array.shape, &array.data, npy_path)
}
