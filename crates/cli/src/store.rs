//! Opening files with clear errors, and what the commands need below the
//! facade: the entry table with each entry's kind (for `ls`, `info`, `dis`).
//! Everything else goes through `mmappickle::MmapDict`.

use std::path::Path;

use mmappickle::array::{
    read_array_header, read_masked_header, ArrayHeader, ArrayLayout, DType, FileValue, MaskedHeader,
};
use mmappickle::container::{Container, Entry};
use mmappickle::{ArrayEncoding, ErrorKind, MmapDict};

use crate::error::{CliError, CliResult};

/// What an entry's value is.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// A generic pickled value.
    Value,
    /// A memory-mappable array.
    Array(ArrayHeader),
    /// A masked array: data and mask, both mappable.
    Masked(MaskedHeader),
}

/// Opens `path` read-only, saying which file could not be opened.
pub fn open_readonly(path: &Path) -> CliResult<Container> {
    must_exist(path)?;
    Container::open_readonly(path).map_err(|err| open_error(path, err))
}

/// A missing file said plainly, before a lower layer words it as an I/O error.
pub fn must_exist(path: &Path) -> CliResult {
    if path.exists() {
        Ok(())
    } else {
        Err(CliError::new(format!("{}: no such file", path.display())))
    }
}

/// Opens `path` through the facade, read-only.
pub fn open_dict_readonly(path: &Path) -> CliResult<MmapDict> {
    must_exist(path)?;
    MmapDict::open_readonly(path).map_err(|err| dict_open_error(path, err))
}

/// Opens `path` through the facade, read-write (created when missing; a plain
/// pickle is converted), writing arrays in `encoding`.
pub fn open_dict(path: &Path, encoding: ArrayEncoding) -> CliResult<MmapDict> {
    MmapDict::options()
        .encoding(encoding)
        .open(path)
        .map_err(|err| dict_open_error(path, err))
}

fn dict_open_error(path: &Path, err: mmappickle::Error) -> CliError {
    let hint = match err.kind() {
        ErrorKind::PlainPickleReadOnly | ErrorKind::NotADict { .. } => {
            " (read a plain pickle with `mmappickle unpickle`; `mmappickle convert` converts a dict)"
        }
        _ => "",
    };
    CliError::new(format!("{}: {err}{hint}", path.display()))
}

fn open_error(path: &Path, err: mmappickle::container::Error) -> CliError {
    let hint = if err.is_plain_pickle() {
        " (a plain pickle: read it with `unpickle`, or `convert` it)"
    } else {
        ""
    };
    CliError::from(err).context(format!("{}{hint}", path.display()))
}

/// Classifies `entry` by reading only its value's head.
pub fn entry_kind(container: &Container, entry: &Entry) -> CliResult<EntryKind> {
    let file = container.file();
    let mut source = FileValue::new(file, entry.value_offset(), entry.value_len());
    let shift = |err: mmappickle::array::Error| {
        CliError::from(err.shifted(entry.value_offset())).context(format!("key {:?}", entry.key()))
    };
    if let Some(header) = read_array_header(&mut source).map_err(shift)? {
        return Ok(EntryKind::Array(header));
    }
    let mut source = FileValue::new(file, entry.value_offset(), entry.value_len());
    if let Some(header) = read_masked_header(&mut source).map_err(shift)? {
        return Ok(EntryKind::Masked(header));
    }
    Ok(EntryKind::Value)
}

/// The array layout for `dtype` and `shape` in the chosen encoding.
pub fn layout(dtype: &DType, shape: &[u64], encoding: ArrayEncoding) -> CliResult<ArrayLayout> {
    let shape = shape
        .iter()
        .map(|&extent| usize::try_from(extent))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))?;
    Ok(ArrayLayout::new(dtype, &shape, encoding)?)
}
