//! Opening a dict, and converting a plain pickle of a dict (`pickle.dump(d, f)`, any
//! protocol) into the mmappickle format, as Python's `mmapdict` does when it opens one.
//!
//! Python converts in place and can lose the file if it fails halfway; here the new file is
//! written beside the original (`<path>.converting-<pid>`), synced, and renamed over it, so
//! the original stays whole until the new file is complete.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mmappickle_array::{OwnedArray, OwnedMasked};
use mmappickle_codec::{loads_with, Limits, Value};
use mmappickle_container::{
    encode_header, parse_header, remove_stale_scratch_files, sync_parent_directory,
    ContainerOptions, HEADER_LEN,
};

use super::unlocked::Glances;
use super::{MmapDict, MmapDictOptions};
use crate::error::{Error, ErrorKind};

impl MmapDictOptions {
    /// Opens the dict at `path`. Read-write, a missing or empty file is created; a plain
    /// pickle of a dict is converted into the mmappickle format first.
    pub fn open(self, path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        let path = path.as_ref();
        let container_options = ContainerOptions::new()
            .durability(self.durability)
            .readonly(self.readonly)
            .allow_damaged(self.allow_damaged)
            .page_safe_commit(self.align);
        let container = match container_options.clone().open(path) {
            Ok(container) => container,
            Err(error) => {
                if !matches!(
                    error.kind(),
                    mmappickle_container::ErrorKind::NotAContainer { .. }
                ) {
                    return Err(error.into());
                }
                if !error.is_plain_pickle() {
                    // A plain pickle of something else is worth a precise message.
                    refuse_non_dict(path, &self.limits)?;
                    return Err(error.into());
                }
                if is_damaged_header(path) {
                    return Err(error.into());
                }
                if self.readonly {
                    // Where the header differs from the mmappickle header.
                    let offset = error.offset().unwrap_or(0);
                    return Err(Error::new(ErrorKind::PlainPickleReadOnly, offset));
                }
                convert_plain_pickle(path, &self)?;
                container_options.open(path)?
            }
        };
        Ok(MmapDict {
            glances: Glances::new(container.glance()),
            container: Mutex::new(container),
            path: path.to_path_buf(),
            options: self,
            maps: Arc::new(()),
        })
    }
}

/// Reads a plain pickle (any protocol, a whole file's bytes) without running or importing
/// anything: Python objects stay [`Value::Object`] nodes. Errors say at which byte offset.
///
/// ```
/// assert_eq!(mmappickle::loads(b"\x80\x04K\x2a.")?, mmappickle::Value::Int(42));
/// # Ok::<(), mmappickle::Error>(())
/// ```
pub fn loads(data: &[u8]) -> Result<Value, Error> {
    mmappickle_codec::loads(data).map_err(|error| Error::codec_at(error, 0))
}

/// Reads `path` as a plain pickle: its pairs when it is a dict with `str` keys only.
fn load_dict(path: &Path, limits: &Limits) -> Result<Vec<(String, Value)>, Error> {
    let bytes = std::fs::read(path).map_err(Error::io)?;
    let loaded = loads_with(&bytes, limits).map_err(|error| Error::codec_at(error, 0))?;
    let Value::Dict(pairs) = loaded else {
        let found = loaded.kind_name();
        return Err(Error::unplaced(ErrorKind::NotADict { found }));
    };
    pairs
        .into_iter()
        .map(|(key, value)| match key {
            Value::Str(key) => Ok((key, value)),
            other => Err(Error::unplaced(ErrorKind::NonStrKey {
                found: other.kind_name(),
            })),
        })
        .collect()
}

/// Returns [`ErrorKind::NotADict`] when `path` is a plain pickle of something other than a
/// dict; `Ok` otherwise (the caller then reports that the file is not an mmappickle file).
fn refuse_non_dict(path: &Path, limits: &Limits) -> Result<(), Error> {
    match load_dict(path, limits) {
        Err(error) if matches!(error.kind(), ErrorKind::NotADict { .. }) => Err(error),
        _ => Ok(()),
    }
}

/// Whether `path` starts like an mmappickle header (`PROTO`, `FRAME`, then the `BININT` of
/// the format version) that the container refused: a damaged mmappickle file, reported and
/// never converted, even when it still happens to load as a pickle of `{}` (a wrong version
/// or protocol, a missing `POP`). A plain pickle of a dict never starts its first frame with
/// `BININT`: `pickle.dump` writes the dict's opcode first.
pub(crate) fn is_damaged_header(path: &Path) -> bool {
    let mut head = [0u8; 12];
    let read = File::open(path).and_then(|mut file| file.read_exact(&mut head));
    let header = encode_header(0);
    let same = |offset: usize| head.get(offset) == header.get(offset);
    read.is_ok() && same(0) && same(2) && same(11)
}

/// Converts the plain pickle of a dict at `path` into an mmappickle file with the same keys
/// in the same order. Top-level numpy arrays (pickled by numpy: `_reconstruct` + `BUILD`,
/// `_frombuffer`) become mapped array entries; every other value is stored as it is.
fn convert_plain_pickle(path: &Path, options: &MmapDictOptions) -> Result<(), Error> {
    let pairs = load_dict(path, options.open_limits())?;
    let scratch = scratch_path(path, "converting");
    // A convert killed before its rename left `<path>.converting-<pid>` (the original is
    // still the plain pickle, so the next read-write open converts again and gets here); one
    // of the same process id is ours to replace.
    remove_stale_scratch_files(&scratch_prefix(path, "converting"));
    let _ = std::fs::remove_file(&scratch);
    let permissions = std::fs::metadata(path).map_err(Error::io)?.permissions();
    let converted = write_converted(&scratch, pairs, options)
        .and_then(|()| {
            // The converted file replaces the original: it keeps its permissions.
            std::fs::set_permissions(&scratch, permissions).map_err(Error::io)?;
            File::open(&scratch)
                .and_then(|file| file.sync_all())
                .map_err(Error::io)
        })
        .and_then(|()| std::fs::rename(&scratch, path).map_err(Error::io));
    if let Err(error) = converted {
        let _ = std::fs::remove_file(&scratch);
        return Err(error);
    }
    sync_parent_directory(path).map_err(Error::io)
}

fn write_converted(
    scratch: &Path,
    pairs: Vec<(String, Value)>,
    options: &MmapDictOptions,
) -> Result<(), Error> {
    let mut dict = options.clone().readonly(false).open(scratch)?;
    for (key, value) in pairs {
        if let Some(OwnedMasked { data, mask }) = OwnedMasked::from_numpy_pickle(&value) {
            dict.insert_masked_bytes(&key, &data.dtype, &data.shape, &data.data, &mask.data)?;
            continue;
        }
        match OwnedArray::from_value(&value) {
            Some(Ok(array)) if array.dtype.is_writable() => {
                dict.insert_array_bytes(&key, &array.dtype, &array.shape, &array.data)?
            }
            // Not an array, or one that cannot be mapped (object, structured dtypes): the
            // value is kept as it was pickled.
            _ => dict.insert(&key, value)?,
        }
    }
    Ok(())
}

impl MmapDict {
    /// Converts the plain pickle of a dict at `path` into the mmappickle format, as opening
    /// it read-write does (for an explicit `convert` command). Returns whether it converted:
    /// a file that already is an mmappickle file is left as it is.
    ///
    /// ```
    /// use mmappickle::{codec, MmapDict, MmapDictOptions, Value};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("plain.pkl");
    /// // What `pickle.dump({'a': 1}, f, 4)` writes.
    /// let dict = Value::Dict(vec![(Value::from("a"), Value::Int(1))]);
    /// std::fs::write(&path, codec::dumps(&dict))?;
    /// assert!(MmapDict::convert(&path, &MmapDictOptions::new())?);
    /// assert!(!MmapDict::convert(&path, &MmapDictOptions::new())?);
    /// assert_eq!(MmapDict::open_readonly(&path)?.value("a")?, Value::Int(1));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn convert(path: impl AsRef<Path>, options: &MmapDictOptions) -> Result<bool, Error> {
        let path = path.as_ref();
        if MmapDict::is_container(path)? {
            return Ok(false);
        }
        convert_plain_pickle(path, options)?;
        Ok(true)
    }

    /// Whether the file at `path` starts with the mmappickle header (its entries are not
    /// checked: [`MmapDict::open`] does that); a plain pickle is not.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("header.mmdpickle");
    /// MmapDict::open(&path)?;
    /// assert!(MmapDict::is_container(&path)?);
    /// std::fs::write(&path, b"\x80\x04N.")?;
    /// assert!(!MmapDict::is_container(&path)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_container(path: impl AsRef<Path>) -> Result<bool, Error> {
        let mut header = Vec::new();
        File::open(path.as_ref())
            .and_then(|file| file.take(HEADER_LEN).read_to_end(&mut header))
            .map_err(Error::io)?;
        Ok(parse_header(&header).is_ok())
    }
}

/// The path `<path>.<what>-<pid>` beside `path`.
fn scratch_path(path: &Path, what: &str) -> PathBuf {
    let mut name = scratch_prefix(path, what).into_os_string();
    name.push(std::process::id().to_string());
    PathBuf::from(name)
}

/// `<path>.<what>-`: the scratch files of `what` are this and a process id.
fn scratch_prefix(path: &Path, what: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The scratch file of a convert sits beside the original, in the same directory.
    #[test]
    fn scratch_path_is_beside_the_file() {
        let scratch = scratch_path(Path::new("/data/x.pkl"), "converting");
        assert_eq!(scratch.parent(), Some(Path::new("/data")));
        let name = scratch.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("x.pkl.converting-"), "{name}");
    }

    // Headers damaged so that the file still loads as a pickle of `{}` (a wrong version, a
    // wrong protocol, a missing POP) are errors, not plain pickles to convert: the file stays.
    #[test]
    fn damaged_headers_that_still_load_are_not_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.mmdpickle");
        for (offset, byte) in [(12, 2u8), (1, 3), (16, 0x28), (22, 0x28), (3, 12)] {
            let mut file = encode_header(0).to_vec();
            file.extend_from_slice(&mmappickle_container::TERMINATOR);
            file[offset] = byte;
            std::fs::write(&path, &file).unwrap();
            assert!(is_damaged_header(&path));
            assert!(MmapDict::open(&path).is_err(), "byte {offset} = {byte}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                file,
                "byte {offset} changed the file"
            );
        }
        // pickle.dumps({'a': 1}, 4) starts its frame with the dict's opcode.
        std::fs::write(
            &path,
            b"\x80\x04\x95\n\0\0\0\0\0\0\0}\x94\x8c\x01a\x94K\x01s.",
        )
        .unwrap();
        assert!(!is_damaged_header(&path));
        assert_eq!(MmapDict::open(&path).unwrap().keys().unwrap(), ["a"]);
    }
}
