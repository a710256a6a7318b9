//! The `flock`s this process's handles hold, by file and thread.
//!
//! A `flock` belongs to an open file description, not to a process: two handles of one file
//! in one process exclude each other like two processes. Within one thread that is a
//! deadlock, the thread waiting for itself: a read snapshot on one handle (shared lock) and
//! a change on another (exclusive), or a batch on one and a read on the other. Each handle
//! registers the lock it takes here; a lock that would wait for one held by the same thread
//! is refused with [`ErrorKind::LockedByThisThread`](crate::ErrorKind::LockedByThisThread).
//! Other threads' locks are waited for, as other processes' are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;

use super::Identity;
use crate::error::{Error, ErrorKind};

/// One lock held: which handle, on which file, taken by which thread, of which kind.
struct Hold {
    handle: u64,
    file: Identity,
    thread: ThreadId,
    exclusive: bool,
}

static HOLDS: Mutex<Vec<Hold>> = Mutex::new(Vec::new());
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(0);

/// A number for a new handle, by which its holds are known.
pub(super) fn new_handle() -> u64 {
    NEXT_HANDLE.fetch_add(1, Ordering::Relaxed)
}

fn holds() -> std::sync::MutexGuard<'static, Vec<Hold>> {
    // A panic while the list was held leaves it whole (every change is one push or retain).
    HOLDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records that `handle` is about to lock `file` (`exclusive` or shared) in this thread;
/// refuses when another handle of this thread holds a lock the new one would wait for.
pub(super) fn register(handle: u64, file: Identity, exclusive: bool) -> Result<(), Error> {
    let thread = std::thread::current().id();
    let mut holds = holds();
    let conflict = holds.iter().any(|hold| {
        hold.handle != handle
            && hold.file == file
            && hold.thread == thread
            && (exclusive || hold.exclusive)
    });
    if conflict {
        return Err(Error::unplaced(ErrorKind::LockedByThisThread));
    }
    holds.push(Hold {
        handle,
        file,
        thread,
        exclusive,
    });
    Ok(())
}

/// Forgets the lock `handle` held (released, or never taken after all).
pub(super) fn unregister(handle: u64) {
    holds().retain(|hold| hold.handle != handle);
}

/// The lock of `handle` is now on `file` (it followed the path to a new file, keeping its
/// lock's kind).
pub(super) fn moved(handle: u64, file: Identity) {
    for hold in holds().iter_mut().filter(|hold| hold.handle == handle) {
        hold.file = file;
    }
}
