//! The file's `flock` as a value: a [`FileLock`] exists only while its open file description
//! holds the lock (shared or exclusive), so a read map asks for one to be made or read.
//!
//! Only this module takes or releases the lock through a guard. A guard is shared (`Arc`) by
//! the container and the read views begun under its hold, and [`FileLock::release`] unlocks
//! only through its last holder. A guard dropped without a release leaves the lock to the
//! open file description, which the guard keeps open: the lock goes when the description is
//! closed, with the last guard or view of it. So no `Drop` unlocks: after a `fork` the child
//! drops guards whose description (and lock) its parent shares and still uses.

use std::fs::File;
use std::io;
use std::sync::Arc;

/// Proof that the `flock` of [`file`](FileLock::file) is held by this process (through that
/// open file description), for as long as the guard lives.
pub(crate) struct FileLock {
    file: Arc<File>,
}

impl std::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLock").finish_non_exhaustive()
    }
}

impl FileLock {
    /// Takes the `flock` of `file`, exclusive or shared, waiting for other holders. The
    /// caller holds no other guard of this open file description (a second `flock` on it
    /// would only convert the first lock, which a release of either would then end).
    pub(crate) fn acquire(file: &Arc<File>, exclusive: bool) -> io::Result<Arc<FileLock>> {
        if exclusive {
            fs2::FileExt::lock_exclusive(&**file)?;
        } else {
            fs2::FileExt::lock_shared(&**file)?;
        }
        Ok(Arc::new(FileLock {
            file: Arc::clone(file),
        }))
    }

    /// The locked file.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Unlocks, if `lock` is the guard's last holder; else gives it back: a read view still
    /// reads under it.
    pub(crate) fn release(lock: Arc<FileLock>) -> Result<(), Arc<FileLock>> {
        let lock = Arc::try_unwrap(lock)?;
        let _ = fs2::FileExt::unlock(&*lock.file);
        Ok(())
    }
}
