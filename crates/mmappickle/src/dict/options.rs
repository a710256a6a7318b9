//! How a dict is opened: encoding, durability, alignment, limits (opening itself is in
//! `open`).

use std::sync::Arc;

use mmappickle_array::ArrayEncoding;
use mmappickle_codec::Limits;
use mmappickle_container::Durability;

use crate::picklers::{Pickler, Picklers};

/// Options for opening an [`MmapDict`](crate::MmapDict), in the style of [`std::fs::OpenOptions`].
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
    pub(super) picklers: Picklers,
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
            picklers: Picklers::default(),
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

    /// Opens read-only: every change is [`ErrorKind::ReadOnly`](crate::ErrorKind::ReadOnly), arrays map read-only, the
    /// file must exist.
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Accepts a file whose header is valid but whose entries are damaged, so that
    /// [`MmapDict::fsck`](crate::MmapDict::fsck) can repair it; other operations fail until then.
    pub fn allow_damaged(mut self, allow_damaged: bool) -> Self {
        self.allow_damaged = allow_damaged;
        self
    }

    /// The kinds of value the dict reads and stores, tried in decreasing
    /// [`Pickler::priority`] (ties in the order given): by default
    /// [`MmapDict::builtin_picklers`](crate::MmapDict::builtin_picklers). The list replaces
    /// the default, as the library's `picklers` argument does: leave out a built-in kind and
    /// its values are read by the others (an array by the generic pickler, as a [`Value`](crate::Value)).
    pub fn picklers(mut self, picklers: impl IntoIterator<Item = Arc<dyn Pickler>>) -> Self {
        self.picklers = Picklers::new(picklers);
        self
    }

    /// The unpickling limits set.
    pub(crate) fn open_limits(&self) -> &Limits {
        &self.limits
    }
}
