//! Changing a file: `set`, `rm`, `stub`, `fsck`, `vacuum`, `convert`.

use std::io::{self, Read, Write};
use std::path::Path;

use mmappickle::{ArrayEncoding, DType, MmapDict};
use serde_json::Value as Json;

use crate::error::{CliError, CliResult};
use crate::json::json_to_value;
use crate::progress;
use crate::scalars::str_repr;
use crate::store;

/// `set`: stores the value that a JSON text (or stdin, for `-`) describes.
pub(super) fn set(path: &Path, key: &str, text: &str, encoding: ArrayEncoding) -> CliResult {
    let text = if text == "-" {
        let mut stdin = String::new();
        io::stdin().read_to_string(&mut stdin)?;
        stdin
    } else {
        text.to_owned()
    };
    let json: Json = serde_json::from_str(&text)
        .map_err(|err| CliError::new(format!("the value is not valid JSON: {err}")))?;
    let value = json_to_value(&json)?;
    let mut dict = store::open_dict(path, encoding)?;
    dict.insert(key, value)?;
    Ok(())
}

/// `rm`: deletes keys in one batch; an error, and nothing deleted, when one is not there.
pub(super) fn rm(path: &Path, keys: &[String]) -> CliResult {
    let mut dict = store::open_dict(path, ArrayEncoding::default())?;
    let missing = dict.write(|tx| {
        if let Some(missing) = keys.iter().find(|key| !tx.contains_key(key)) {
            return Ok(Some(missing.clone()));
        }
        for key in keys {
            tx.remove(key)?;
        }
        Ok(None)
    })?;
    match missing {
        Some(key) => Err(store::no_key(&path.display(), &key)),
        None => Ok(()),
    }
}

fn parse_dtype(name: &str) -> CliResult<DType> {
    let dtype = DType::parse(name)
        .map_err(|err| CliError::from(mmappickle::Error::from(err)).context("--dtype"))?;
    if !dtype.is_writable() {
        return Err(CliError::new(format!(
            "dtype {name:?} cannot be stored as an array"
        )));
    }
    Ok(dtype)
}

/// `stub`: an array allocated on disk, never written (it reads as zeros).
pub(super) fn stub(
    path: &Path,
    key: &str,
    dtype: &str,
    shape: &[u64],
    encoding: ArrayEncoding,
) -> CliResult {
    let dtype = parse_dtype(dtype)?;
    let shape = shape
        .iter()
        .map(|&n| usize::try_from(n))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))?;
    let stub = mmappickle::EmptyArray::with_dtype(dtype, &shape).encoding(encoding);
    let mut dict = store::open_dict(path, encoding)?;
    dict.insert_stub(key, stub)?;
    Ok(())
}

/// `fsck`: repairs a torn file and says what it dropped.
pub(super) fn fsck(path: &Path, out: &mut dyn Write) -> CliResult {
    let mut dict = MmapDict::options()
        .allow_damaged(true)
        .open(path)
        .map_err(|err| CliError::from(err).context(path.display()))?;
    let report = dict.fsck()?;
    if report.is_clean() {
        writeln!(
            out,
            "{}: clean, {} entries",
            path.display(),
            report.kept_entries
        )?;
        return Ok(());
    }
    writeln!(out, "{}: repaired", path.display())?;
    writeln!(out, "  kept entries:        {}", report.kept_entries)?;
    if report.dropped_bytes > 0 {
        writeln!(
            out,
            "  dropped bytes:       {} (from offset {})",
            report.dropped_bytes, report.truncated_at
        )?;
    }
    if let Some(key) = &report.dropped_key {
        writeln!(out, "  dropped torn entry:  {}", str_repr(key))?;
    }
    if let Some(problem) = &report.problem {
        writeln!(out, "  problem:             {problem}")?;
    }
    if report.deleted_duplicates > 0 {
        writeln!(out, "  deleted duplicates:  {}", report.deleted_duplicates)?;
    }
    for dropped in &report.dropped_damaged {
        let key = dropped
            .key
            .as_deref()
            .map_or_else(|| "-".to_owned(), str_repr);
        writeln!(
            out,
            "  dropped damaged:     {key} ({} bytes at offset {}: {}); the entries after it kept",
            dropped.len, dropped.offset, dropped.problem
        )?;
    }
    for (key, live) in &report.restored_trailers {
        let state = if *live { "live" } else { "deleted" };
        writeln!(out, "  restored trailer:    {} ({state})", str_repr(key))?;
    }
    Ok(())
}

/// `vacuum`: gives the space of deleted entries back.
pub(super) fn vacuum(path: &Path, out: &mut dyn Write) -> CliResult {
    let mut dict = store::open_dict(path, ArrayEncoding::default())?;
    let spinner = progress::spinner("vacuuming");
    let report = dict.vacuum();
    spinner.finish_and_clear();
    let report = report?;
    writeln!(
        out,
        "{}: removed {} entries, {} -> {} bytes, commit number {}",
        path.display(),
        report.removed_entries,
        report.len_before,
        report.len_after,
        report.commit_number
    )?;
    Ok(())
}

/// Converts a plain pickle of a dict: in place, or into a copy at `output`.
pub(super) fn convert(
    input: &Path,
    output: Option<&Path>,
    encoding: ArrayEncoding,
    out: &mut dyn Write,
) -> CliResult {
    let target = match output {
        None => input,
        Some(output) => {
            if output.exists() {
                return Err(CliError::new(format!(
                    "{} exists: give a new path, or convert in place",
                    output.display()
                )));
            }
            std::fs::copy(input, output)
                .map_err(|err| CliError::from(err).context(input.display()))?;
            output
        }
    };
    if MmapDict::is_container(target)
        .map_err(|err| CliError::from(err).context(target.display()))?
    {
        writeln!(out, "{}: already an mmappickle file", target.display())?;
        return Ok(());
    }
    let spinner = progress::spinner("converting");
    let options = MmapDict::options().encoding(encoding);
    let result = MmapDict::convert(target, &options);
    spinner.finish_and_clear();
    if let Err(err) = result {
        if output.is_some() {
            // Leave no half-made copy behind.
            let _ = std::fs::remove_file(target);
        }
        return Err(CliError::from(err).context(input.display()));
    }
    let keys = store::open_dict_readonly(target)?.keys()?.len();
    writeln!(out, "{}: converted, {keys} keys", target.display())?;
    Ok(())
}
