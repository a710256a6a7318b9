//! One function per subcommand; each writes its output to `out`.

mod disasm;
mod edit;
mod inspect;
mod transfer;

use std::io::Write;
use std::path::Path;

use mmappickle::{ArrayEncoding, ErrorKind, Item, MmapDict};
use serde_json::Value as Json;

use crate::error::{CliError, CliResult};
use crate::{Cli, Command, Encoding};

/// Array data moves in pieces of this many bytes.
pub(crate) const CHUNK: usize = 8 << 20;

/// Runs the command `cli` names.
pub fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    let encoding = match cli.encoding {
        Encoding::Compatible => ArrayEncoding::Compatible,
        Encoding::Portable => ArrayEncoding::Portable,
    };
    match &cli.command {
        Command::Ls { file, all, json } => inspect::ls(file, *all, *json, out),
        Command::Info { file, json } => inspect::info(file, *json, out),
        Command::Get { file, key, json } => inspect::get(file, key, *json, out),
        Command::Dump { file, json } => inspect::dump(file, *json, out),
        Command::Unpickle { file, json } => inspect::unpickle(file, *json, out),
        Command::Dis { file } => disasm::disassemble(file, out),
        Command::Set { file, key, value } => edit::set(file, key, value, encoding),
        Command::Rm { file, key } => edit::rm(file, key),
        Command::Stub {
            file,
            key,
            dtype,
            shape,
        } => edit::stub(file, key, dtype, shape, encoding),
        Command::ImportNpy { file, key, npy } => transfer::import_npy(file, key, npy, encoding),
        Command::ExportNpy {
            file,
            key,
            out: npy_path,
            mask,
        } => transfer::export_npy(file, key, npy_path, *mask),
        Command::ImportNpz { file, npz } => transfer::import_npz(file, npz, encoding, out),
        Command::Fsck { file } => edit::fsck(file, out),
        Command::Vacuum { file } => edit::vacuum(file, out),
        Command::Convert { input, output } => {
            edit::convert(input, output.as_deref(), encoding, out)
        }
    }
}

/// Prints `json` pretty, with a final newline.
fn print_json(out: &mut dyn Write, json: &Json) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, json)?;
    writeln!(out)?;
    Ok(())
}

/// The item of `key`, with the file named in the error.
fn get_item(dict: &mut MmapDict, key: &str) -> CliResult<Item> {
    dict.get(key).map_err(|err| match err.kind() {
        ErrorKind::KeyNotFound(_) => no_key(dict.path(), key),
        _ => CliError::from(err).context(dict.path().display()),
    })
}

/// The error for a key that is not in the file.
fn no_key(path: &Path, key: &str) -> CliError {
    CliError::new(format!("no key {key:?} in {}", path.display()))
}
