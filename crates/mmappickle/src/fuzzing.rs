//! Fuzz target bodies: the cargo-fuzz `open` target in `fuzz/` is one call
//! into [`open`], so `cargo test` replays exactly what the fuzzer ran.
//!
//! A body returns `Err(description)` when a promise of this crate fails on
//! the input; a panic, or a signal from touching a map, is a finding too.
//! Not part of the public API (compiled with the `fuzzing` feature, or in
//! this crate's own tests).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::array::checked_raw_len;
use crate::{ArrayData, Item, MmapDict, ValueKind};

/// What a fuzz body reports when a property fails.
pub type Verdict = Result<(), String>;

/// `open` target: `data` written to a scratch file (under the temporary
/// directory), opened with [`MmapDict::open_readonly`], then every key read
/// with [`MmapDict::get`] and every mapped byte touched.
///
/// Checked: a mapped array has exactly the bytes its dtype and shape give,
/// and opening read-only leaves the file as it was.
pub fn open(data: &[u8]) -> Verdict {
    let path = scratch_path();
    std::fs::write(&path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let outcome = read_every_key(&path).and_then(|()| {
        let after = std::fs::read(&path).map_err(|e| format!("cannot read back: {e}"))?;
        if after == data {
            Ok(())
        } else {
            Err("opening read-only changed the file".to_owned())
        }
    });
    let _ = std::fs::remove_file(&path);
    outcome
}

/// A file name of its own for each call (tests replay in parallel threads).
fn scratch_path() -> PathBuf {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "mmappickle-fuzz-open-{}-{call}.mmdpickle",
        std::process::id()
    ))
}

fn read_every_key(path: &Path) -> Verdict {
    let Ok(dict) = MmapDict::open_readonly(path) else {
        return Ok(());
    };
    let keys = match dict.keys() {
        Ok(keys) => keys,
        Err(error) => {
            let _message = error.to_string();
            return Ok(());
        }
    };
    // The listing's kinds come from the same classifier as `get`: they agree.
    if let Ok(listing) = dict.listing() {
        for info in listing.entries().filter(|info| info.entry.is_live()) {
            let kind = info.kind.map(ValueKind::name);
            if info.shadowed || kind.is_none() {
                continue;
            }
            let got = match dict.get(info.entry.key()) {
                Ok(Item::Array(_)) => "array",
                Ok(Item::Masked(_)) => "masked",
                Ok(Item::Value(_)) => "value",
                Ok(Item::Other(_)) => {
                    return Err("the built-in picklers read an Item::Other".into())
                }
                Err(_) => "error",
            };
            let agrees = match (kind, got) {
                (Some("malformed"), got) => got == "error",
                (kind, "array" | "masked") => kind == Some(got),
                _ => true,
            };
            if !agrees {
                return Err(format!(
                    "key {:?}: listed as {kind:?}, read as {got}",
                    info.entry.key()
                ));
            }
        }
    }
    for key in keys {
        match dict.get(&key) {
            Ok(Item::Value(_) | Item::Other(_)) => {}
            Ok(Item::Array(array)) => touch(&array, &key)?,
            Ok(Item::Masked(masked)) => {
                touch(&masked.data, &key)?;
                touch(&masked.mask, &key)?;
            }
            Err(error) => {
                let _message = error.to_string();
            }
        }
    }
    Ok(())
}

/// Reads every byte of a map (a map past the file's end would fault here).
fn touch(array: &ArrayData, key: &str) -> Verdict {
    let bytes = array.bytes();
    let expected_len = checked_raw_len(array.dtype(), array.shape());
    if expected_len != u64::try_from(bytes.len()).ok() {
        return Err(format!(
            "key {key:?}: {} mapped bytes, dtype {} and shape {:?} give {expected_len:?}",
            bytes.len(),
            array.dtype().name(),
            array.shape()
        ));
    }
    let checksum = bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
    std::hint::black_box(checksum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Garbage, an empty file and a plain pickle are refused or read without a
    // finding, and the scratch file is removed.
    #[test]
    fn short_inputs_pass() {
        for input in [&b""[..], b"garbage", b"\x80\x04}\x94.", b"\x80\x04\x95"] {
            assert_eq!(open(input), Ok(()), "{input:?}");
        }
    }

    // A real file with a value and an array: every key is read and touched.
    #[test]
    fn written_file_passes() {
        let dir = tempfile::tempdir().expect("scratch dir");
        let path = dir.path().join("written.mmdpickle");
        {
            let mut dict = MmapDict::open(&path).expect("create");
            dict.insert("value", vec![1i64, 2, 3])
                .expect("insert value");
            dict.insert_array("array", &[1u16, 2, 3, 4], &[2, 2])
                .expect("insert array");
        }
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(open(&bytes), Ok(()));
    }
}
