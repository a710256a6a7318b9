//! Opening files through `mmappickle::MmapDict`, with clear errors.

use std::path::Path;

use mmappickle::{ArrayEncoding, ErrorKind, MmapDict};
use mmappickle::{ArrayLayout, DType};

use crate::error::{CliError, CliResult};

/// A missing file said plainly, before a lower layer words it as an I/O error.
pub fn must_exist(path: &Path) -> CliResult {
    if path.exists() {
        Ok(())
    } else {
        Err(CliError::new(format!("{}: no such file", path.display())))
    }
}

/// Opens `path` through the facade, read-only; a torn end is said on standard error (the
/// complete entries are read).
pub fn open_dict_readonly(path: &Path) -> CliResult<MmapDict> {
    must_exist(path)?;
    let dict = MmapDict::open_readonly(path).map_err(|err| dict_open_error(path, err))?;
    if let Some(offset) = dict.torn_at()? {
        eprintln!(
            "mmappickle: warning: {}: the file's end is torn at byte offset {offset} (cut \
             short by a full disk or a crash): the complete entries are read; \
             `mmappickle fsck {}` repairs it",
            path.display(),
            path.display()
        );
    }
    Ok(dict)
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
    CliError::new(format!(
        "{}: {}{hint}",
        path.display(),
        mmappickle::message_with_sources(&err)
    ))
}

/// The array layout for `dtype` and `shape` in the chosen encoding.
pub fn layout(dtype: &DType, shape: &[u64], encoding: ArrayEncoding) -> CliResult<ArrayLayout> {
    let shape = shape
        .iter()
        .map(|&extent| usize::try_from(extent))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))?;
    ArrayLayout::new(dtype, &shape, encoding).map_err(|err| mmappickle::Error::from(err).into())
}
