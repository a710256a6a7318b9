//! How a dict is opened: encoding, durability, alignment, limits; opening itself (with the
//! conversion of a plain pickle) and the scratch files beside the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mmappickle_array::ArrayEncoding;
use mmappickle_codec::Limits;
use mmappickle_container::{remove_stale_scratch_files, ContainerOptions, Durability};

use super::MmapDict;
use crate::convert;
use crate::error::{Error, ErrorKind};

/// Options for opening an [`MmapDict`], in the style of [`std::fs::OpenOptions`].
///
/// ```
/// use mmappickle::{ArrayEncoding, Durability, Limits, MmapDict};
///
/// let dir = tempfile::tempdir()?;
/// let m = MmapDict::options()
///     .encoding(ArrayEncoding::Portable)
///     .durability(Durability::Flush)
///     .align(true)
///     .limits(Limits { max_depth: 100, ..Limits::default() })
///     .open(dir.path().join("options.mmdpickle"))?;
/// assert!(!m.is_readonly());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MmapDictOptions {
    pub(super) encoding: ArrayEncoding,
    pub(super) durability: Durability,
    pub(super) align: bool,
    pub(super) limits: Limits,
    pub(super) readonly: bool,
    pub(super) allow_damaged: bool,
}

impl Default for MmapDictOptions {
    fn default() -> Self {
        MmapDictOptions {
            encoding: ArrayEncoding::Compatible,
            durability: Durability::None,
            align: true,
            limits: Limits::default(),
            readonly: false,
            allow_damaged: false,
        }
    }
}

impl MmapDictOptions {
    /// Read-write, compatible array encoding, no fsync, array data aligned to 64 bytes,
    /// default unpickling limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// How arrays inserted from now on are encoded ([`ArrayEncoding::Compatible`], the
    /// Python library's own form, by default).
    pub fn encoding(mut self, encoding: ArrayEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Whether changes are `fsync`ed ([`Durability::None`] by default).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether the raw data of inserted arrays starts at a multiple of 64 bytes in the file
    /// (on by default), so that [`MappedArray::as_slice`](crate::MappedArray::as_slice) works. The container writes a
    /// deleted padding entry before the array when needed; every reader skips it.
    ///
    /// `align(false)` writes exactly the layout Python mmappickle writes: no padding entries
    /// of any kind (neither before arrays nor the 21-byte entries that keep a terminator
    /// inside one 4 KiB page); a commit write torn at a page boundary by power loss is then
    /// detected on open (reader rule) for cuts of 1 to 9 bytes only.
    pub fn align(mut self, align: bool) -> Self {
        self.align = align;
        self
    }

    /// Bounds on what decoding a generic value may build (depth, memo, elements).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens read-only: every change is [`ErrorKind::ReadOnly`], arrays map read-only, the
    /// file must exist.
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Accepts a file whose header is valid but whose entries are damaged, so that
    /// [`MmapDict::fsck`] can repair it; other operations fail until then.
    pub fn allow_damaged(mut self, allow_damaged: bool) -> Self {
        self.allow_damaged = allow_damaged;
        self
    }

    /// The unpickling limits set.
    pub(crate) fn open_limits(&self) -> &Limits {
        &self.limits
    }

    /// Opens the dict at `path`. Read-write, a missing or empty file is created; a plain
    /// pickle of a dict is converted into the mmappickle format first.
    pub fn open(self, path: impl AsRef<Path>) -> Result<MmapDict, Error> {
        let path = path.as_ref();
        let container_options = ContainerOptions::new()
            .durability(self.durability)
            .readonly(self.readonly)
            .allow_damaged(self.allow_damaged)
            .page_safe_commit(self.align);
        let mut container = match container_options.clone().open(path) {
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
                    convert::refuse_non_dict(path, &self.limits)?;
                    return Err(error.into());
                }
                if self.readonly {
                    return Err(Error::new(ErrorKind::PlainPickleReadOnly, 0));
                }
                convert::convert_plain_pickle(path, &self)?;
                container_options.open(path)?
            }
        };
        if !self.readonly {
            // A convert killed before its rename left `<path>.converting-<pid>` (the
            // container's open did the same for vacuum's scratch files).
            container.with_lock(|_| {
                remove_stale_scratch_files(&scratch_prefix(path, "converting"));
            })?;
        }
        Ok(MmapDict {
            container: Mutex::new(container),
            path: path.to_path_buf(),
            options: self,
            maps: Arc::new(()),
        })
    }
}

/// The path `<path>.<what>-<pid>` beside `path`.
pub(crate) fn scratch_path(path: &Path, what: &str) -> PathBuf {
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
}
