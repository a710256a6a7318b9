//! What the commands need below the facade: the entry table with each entry's
//! kind (for `ls`, `info`, `dis`), and arrays streamed into a new entry in
//! pieces (the facade's `insert_array_bytes` wants the whole array in memory).
//! Everything else goes through `mmappickle::MmapDict`.

use std::io;
use std::path::Path;

use mmappickle::array::{
    read_array_header, read_masked_header, ArrayHeader, ArrayLayout, DType, FileValue,
    MaskedHeader, DATA_ALIGN,
};
use mmappickle::container::{Alignment, Container, Entry, NewEntry};
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

/// Opens `path` read-write, creating an empty file when it is missing and
/// converting a plain pickle of a dict as the facade does.
pub fn open_writable(path: &Path, encoding: ArrayEncoding) -> CliResult<Container> {
    // The facade's open creates or converts; its handle is closed (and its lock
    // released) before the container takes the file.
    drop(open_dict(path, encoding)?);
    Container::open(path).map_err(|err| open_error(path, err))
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

/// Stores an array under `key` whose raw bytes (C order, `layout.raw_len()` of
/// them) `write_raw` writes in pieces, so no array needs to fit in memory.
/// The raw bytes are aligned to 64 bytes in the file.
pub fn insert_array(
    container: &mut Container,
    key: &str,
    layout: &ArrayLayout,
    write_raw: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
) -> CliResult {
    let new = NewEntry {
        key,
        value_len: layout.value_len(),
        // Python writes 0 for arrays: they use no memo.
        memo_max: 0,
        align: Some(Alignment {
            value_relative_offset: layout.raw_offset(),
            align: DATA_ALIGN,
        }),
    };
    container.append(new, |sink| {
        sink.write_all(layout.prefix())?;
        let raw_end = sink
            .position()
            .checked_add(layout.raw_len())
            .ok_or_else(|| io::Error::other("array too large"))?;
        write_raw(&mut |chunk: &[u8]| sink.write_all(chunk))?;
        if sink.position() != raw_end {
            return Err(io::Error::other(format!(
                "the array data ended {} bytes short",
                raw_end.saturating_sub(sink.position())
            )));
        }
        sink.write_all(layout.suffix())
    })?;
    Ok(())
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
