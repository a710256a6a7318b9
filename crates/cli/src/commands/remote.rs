//! The read commands (`ls`, `info`, `get`, `dump`, `dis`, `export-npy`) on a URL
//! (`http(s)://`, `s3://`, `file://`): the file is read through the remote crate, by ranged
//! requests, and printed by the same code as a local file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use mmappickle::{Disassembly, Listing};
use mmappickle_remote::{ErrorKind, RemoteDict, RemoteItem};

use super::{disasm, inspect, no_key, transfer};
use crate::error::{CliError, CliResult};
use crate::view::Viewed;
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

/// Runs `command` when it is a read command on a URL; `None` for everything else.
pub(super) fn run(command: &Command, out: &mut dyn Write) -> Option<CliResult> {
    let file = match command {
        Command::Ls { file, .. }
        | Command::Info { file, .. }
        | Command::Get { file, .. }
        | Command::Dump { file, .. }
        | Command::Dis { file }
        | Command::ExportNpy { file, .. } => file,
        _ => return None,
    };
    let url = url_of(file)?;
    let in_url = |err: mmappickle_remote::Error| CliError::from(err).context(url);
    let remote = match RemoteDict::open(url) {
        Ok(remote) => remote,
        Err(err) => return Some(Err(in_url(err))),
    };
    let item = |key: &str| {
        remote.get(key).map_err(|err| match err.kind() {
            ErrorKind::KeyNotFound { .. } => no_key(&url, key),
            _ => in_url(err),
        })
    };
    Some(match command {
        Command::Ls { all, json, .. } => listing(&remote)
            .map_err(in_url)
            .and_then(|listing| inspect::print_ls(&listing, *all, *json, out)),
        // Counts and lengths only: no value is fetched.
        Command::Info { json, .. } => {
            let listing = Listing::without_kinds(Arc::new(remote.table().clone()));
            inspect::print_info(&url, &listing, *json, out)
        }
        Command::Get { key, json, .. } => {
            item(key).and_then(|item| inspect::print_item(item.view(), *json, out))
        }
        Command::Dump { json, .. } => inspect::print_dump(*json, out, |each| {
            for key in remote.keys() {
                let item: RemoteItem = item(&key)?;
                each(&key, item)?;
            }
            Ok(())
        }),
        Command::Dis { .. } => dis(&remote, out).map_err(|err| err.context(url)),
        Command::ExportNpy {
            key,
            out: npy_path,
            mask,
            ..
        } => {
            item(key).and_then(|item| transfer::write_npy(key, item.view(), npy_path, *mask, None))
        }
        _ => return None,
    })
}

/// The facade's listing of the remote file: its table, each value's kind by the one
/// classifier over its head (array payloads are not fetched).
fn listing(remote: &RemoteDict) -> Result<Listing, mmappickle_remote::Error> {
    Listing::new(Arc::new(remote.table().clone()), |entry| {
        remote.value_kind(entry)
    })
}

/// `dis` of a remote file: read whole (up to [`MAX_DIS_LEN`]), then disassembled as a local
/// file's map is.
fn dis(remote: &RemoteDict, out: &mut dyn Write) -> CliResult {
    let file_len = remote.table().file_len();
    if file_len > MAX_DIS_LEN {
        return Err(CliError::new(format!(
            "dis reads a remote file whole: {file_len} bytes is over {MAX_DIS_LEN} \
             (download it, then run dis on the copy)"
        )));
    }
    let file = remote.read_range(0..file_len)?;
    disasm::list_entries(&Disassembly::from_bytes(&file)?, out)
}
