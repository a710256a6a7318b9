//! Read maps of the file, and the count of forks: the crate's only `unsafe` code.

#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use memmap2::{Mmap, MmapOptions};

use crate::container::Container;
use crate::error::Error;

/// A read-only map of the whole file, or an empty slice for an empty file.
pub(crate) struct ReadMap {
    map: Option<Mmap>,
}

impl std::fmt::Debug for ReadMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMap")
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl ReadMap {
    /// Maps the first `len` bytes of the file of `container`, read-only. Refused unless
    /// `container` holds its lock (exclusive, or shared by read views): the lock is the proof
    /// that no cooperating process changes the file meanwhile. The caller found the file at
    /// least `len` bytes long under this lock hold, and reads the map again later (the
    /// container keeps it across lock holds) only under the lock and after an `fstat` found
    /// the file still at least as long as the bytes read.
    pub(crate) fn new(container: &Container, len: u64) -> Result<Self, Error> {
        if !container.holds_lock() {
            return Err(Error::unplaced_io(io::Error::other(
                "a read map needs the container's lock",
            )));
        }
        if len == 0 {
            return Ok(ReadMap { map: None });
        }
        let len = usize::try_from(len).map_err(|_| Error::overflow(len))?;
        // SAFETY: the file stays whole under the map while it is read: the container holds
        // its `flock` (checked above; exclusive, or shared by read views) and reads the map
        // only under the lock and within the length an `fstat` under that lock hold gave;
        // cooperating processes (this crate, Python's mmappickle) change or shrink the file
        // only while they hold the exclusive lock. A process that ignores the lock could
        // truncate the file under us (SIGBUS): no mapping reader can prevent that, and the
        // crate documents it. Aliasing: the map is private to this crate and hands out
        // `&[u8]` borrowing it; this process changes the file only through `pwrite` under
        // the exclusive lock, while no read view (the only holder of a slice across calls)
        // is out, and makes no writable map of it. Bit validity: bytes are valid whatever
        // they hold.
        let map = unsafe { MmapOptions::new().len(len).map(container.file()) }
            .map_err(Error::unplaced_io)?;
        Ok(ReadMap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// How many `fork`s made this process (counted in each child by a `pthread_atfork` handler):
/// a handle compares it with the count at its open, without a system call (`getpid` is one,
/// and costs about half a microsecond on a virtual machine).
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in a child process made by `fork`, never in its parent: the forks
/// counted (from this crate's first call on), or, if the count could not be set up, the
/// process id (a system call each time).
pub(crate) fn forks() -> u64 {
    static WATCH: Once = Once::new();
    static WATCHING: AtomicBool = AtomicBool::new(false);
    WATCH.call_once(|| {
        // SAFETY: the child handler is async-signal-safe (one atomic add), as a handler that
        // runs in the child of a fork of a multithreaded process must be; the handlers stay
        // valid for the life of the process (a function of this crate, which is never
        // unloaded while a handle of it exists).
        let registered = unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
        WATCHING.store(registered == 0, Ordering::Relaxed);
    });
    if WATCHING.load(Ordering::Relaxed) {
        FORKS.load(Ordering::Relaxed)
    } else {
        (1 << 63) | u64::from(std::process::id())
    }
}
