//! How a container is opened: durability, read-only, damaged files, the page rule.

use std::path::Path;

use super::Container;
use crate::error::Error;

/// Whether changes are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Changes reach the page cache only: they survive a crash of the process, not of the
    /// machine.
    #[default]
    None,
    /// Every change is `fsync`ed (data and metadata) before and after its committing write.
    Flush,
}

/// Options for opening a [`Container`], in the style of [`std::fs::OpenOptions`].
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    pub(super) durability: Durability,
    pub(super) readonly: bool,
    pub(super) allow_damaged: bool,
    pub(super) page_safe_commit: bool,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        Self {
            durability: Durability::None,
            readonly: false,
            allow_damaged: false,
            page_safe_commit: true,
        }
    }
}

impl ContainerOptions {
    /// Read-write, [`Durability::None`], damaged files refused, page-safe commits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether appends, vacuum and fsck keep every terminator inside one 4 KiB page
    /// (default `true`): a terminator that would end in a page's last 10 bytes is moved past
    /// the boundary by a 21-byte padding entry, so the next commit's 11-byte write cannot be
    /// torn at a page boundary. With `false` the layout is exactly Python mmappickle's (no
    /// such padding); a commit torn after 1 to 9 bytes is still detected by the scan.
    pub fn page_safe_commit(mut self, page_safe_commit: bool) -> Self {
        self.page_safe_commit = page_safe_commit;
        self
    }

    /// Sets whether changes are `fsync`ed.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens read-only: every change returns [`ErrorKind::ReadOnly`](crate::ErrorKind::ReadOnly) and no byte is written.
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Accepts a file with a valid header but damaged entries (to run [`Container::fsck`]);
    /// reading its table fails until it is repaired.
    pub fn allow_damaged(mut self, allow_damaged: bool) -> Self {
        self.allow_damaged = allow_damaged;
        self
    }

    /// Opens (read-write: creating if missing or empty) the container at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Container, Error> {
        Container::open_with(path.as_ref(), self)
    }
}
