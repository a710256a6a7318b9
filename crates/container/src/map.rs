//! Read maps of the file, made and read under its lock ([`FileLock`]) or copied from without it
//! (checked before and after), and the count of forks: the crate's only `unsafe` code.

#![allow(unsafe_code)]

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};

use memmap2::{Mmap, MmapOptions};

use crate::error::Error;
use crate::lock::FileLock;

/// A read-only map of the first bytes of a file, made and read only under the file's lock:
/// both need its [`FileLock`].
pub(crate) struct ReadMap {
    /// The mapped file: the one whose lock proves a read.
    file: Arc<File>,
    map: Option<Mmap>,
}

impl std::fmt::Debug for ReadMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.map.as_deref().map_or(0, <[u8]>::len);
        f.debug_struct("ReadMap").field("len", &len).finish()
    }
}

impl ReadMap {
    /// Maps the first `len` bytes of the file `lock` holds, read-only (nothing for 0). The
    /// caller found the file at least `len` bytes long under this lock hold.
    pub(crate) fn new(lock: &FileLock, len: u64) -> Result<Self, Error> {
        let file = Arc::clone(lock.file());
        if len == 0 {
            return Ok(ReadMap { file, map: None });
        }
        let len = usize::try_from(len).map_err(|_| Error::overflow(len))?;
        // SAFETY: a `Mmap` hands out `&[u8]` of the file's pages; that is sound while no page
        // under a live slice goes (a file cut short under a map faults: SIGBUS) and no byte
        // under it changes. What holds:
        // - Length: `len` was found under the lock `lock` proves, and the map's bytes are
        //   handed out only to a holder of a guard of this file (`bytes`), so only under the
        //   lock. The container keeps a map across lock holds, but reads it under a later
        //   hold only within a length an `fstat` of that hold found. Cooperating writers
        //   (this crate, Python's mmappickle) change the file's length only under the
        //   exclusive lock, and ours never cut below the length a table was scanned at (they
        //   cut only bytes after the terminator, and vacuum renames a new file over the
        //   path): not under a view begun under that same lock either.
        // - Bytes: they may change under a slice. Array regions are written through
        //   writable maps (the facade's, through the array crate, in this process; numpy's
        //   and other processes' too) without our lock, and this handle's own `pwrite`s
        //   under the exclusive lock (a commit over the old terminator, a live flag) may
        //   change bytes that a view begun under that lock reads. Reading such bytes
        //   through `&[u8]` is memmap2's cooperation rule: sound as long as every writer of
        //   the file cooperates (our processes, the Python library, numpy), each byte read
        //   being the old or the new one.
        // - A writer that does not cooperate, such as a process that truncates the file
        //   without the lock, makes a read of a cut page fault (SIGBUS); no mapping reader
        //   can prevent it, the crate's docs say so and RELIABILITY.md measures it.
        // - After a `fork` the parent and the child share the lock's open file description:
        //   a guard inherited by the child proves the lock the two hold together, as
        //   `flock` does (the container reopens the file before its next lock there).
        // Bit validity: bytes are valid whatever they hold.
        let map = unsafe { MmapOptions::new().len(len).map(&*file) }.map_err(Error::unplaced_io)?;
        Ok(ReadMap {
            file,
            map: Some(map),
        })
    }

    /// The mapped bytes, read under `lock`: none if it is not the lock of the mapped file
    /// (which the container never passes).
    pub(crate) fn bytes<'a>(&'a self, lock: &'a FileLock) -> &'a [u8] {
        if !Arc::ptr_eq(&self.file, lock.file()) {
            return &[];
        }
        self.map.as_deref().unwrap_or(&[])
    }

    /// How many bytes are mapped.
    pub(crate) fn len(&self) -> u64 {
        self.map.as_deref().map_or(0, <[u8]>::len) as u64
    }

    /// The mapped bytes at `offset`, `out.len()` of them, copied into `out` *without the
    /// lock*, from bytes that may be changing meanwhile: the caller compares what it checks
    /// ([`ReadMap::unlocked_equals`]) before and after the copy. False if they are not all
    /// mapped.
    pub(crate) fn copy_unlocked(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some(from) = self.unlocked_range(offset, out.len()) else {
            return false;
        };
        // SAFETY: `from` is `out.len()` bytes inside the live map (`unlocked_range`), and
        // `out` is another allocation. The pages stay mapped: a map is never cut short by
        // cooperating writers without their exclusive lock, and even then never below a
        // length a table of theirs or ours was scanned at (see `new`), except by vacuums in
        // place, which require that no other handle has the file open (the Python library's
        // rule, and our file-object rewrite's). The bytes may change under the copy (a
        // writer under its lock): a plain copy then reads each byte old or new, as a read of
        // memory another process writes does, and the caller throws such a copy away.
        unsafe { std::ptr::copy_nonoverlapping(from, out.as_mut_ptr(), out.len()) };
        true
    }

    /// Whether the mapped bytes at `offset` are `expected`, read *without the lock*: each
    /// byte is loaded from memory when this is called (a volatile read), so that a check
    /// before and after a copy sees changes in between.
    pub(crate) fn unlocked_equals(&self, offset: u64, expected: &[u8]) -> bool {
        let Some(from) = self.unlocked_range(offset, expected.len()) else {
            return false;
        };
        expected.iter().enumerate().all(|(idx, &byte)| {
            // SAFETY: `from + idx` is inside the live map (`unlocked_range` covers
            // `expected.len()` bytes), which stays mapped as argued in `copy_unlocked`; a
            // volatile read of a byte is valid whatever the byte holds.
            let found = unsafe { std::ptr::read_volatile(from.add(idx)) };
            found == byte
        })
    }

    /// The address of the `len` mapped bytes at `offset`, if all are mapped.
    fn unlocked_range(&self, offset: u64, len: usize) -> Option<*const u8> {
        let map = self.map.as_deref()?;
        let start = usize::try_from(offset).ok()?;
        map.get(start..start.checked_add(len)?).map(<[u8]>::as_ptr)
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
