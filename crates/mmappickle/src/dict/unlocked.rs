//! Reads without the lock: an entry the handle has seen, read from the map of its last lock
//! hold when the file shows no change before and after (the container's `Glance`): a small
//! generic value copied, or where an array's parts are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, TryLockError};

use mmappickle_array::{classify, ValueKind, ValueSource};
use mmappickle_container::{Entry, Glance};

use super::MmapDict;
use crate::item::{self, Located};

/// The largest generic value copied without the lock: beyond it, the lock's two system calls
/// cost little beside the copy and the decoding.
pub const UNLOCKED_READ_MAX: u64 = 64 * 1024;

/// The value of a live entry this handle has seen, to be read without the lock: see
/// [`MmapDict::with_unlocked_value`].
#[derive(Debug, Clone, Copy)]
pub struct UnlockedValue<'g> {
    glance: &'g Glance,
    entry: &'g Entry,
}

impl MmapDict {
    /// Calls `read` with the value of `key` as this handle's last read found it, to be read
    /// without the lock and without a system call: a small generic value copied
    /// ([`UnlockedValue::copy_generic`]), or where an array's parts are
    /// ([`UnlockedValue::locate_array`]). `None` (and `read` is not called) when the handle's
    /// last read did not see a live entry of `key` mapped (as after its own insert, until a
    /// read maps the file again), or when the dict's picklers are not the built-in ones (a
    /// value is then not necessarily read by them). Read under the lock then, as
    /// [`MmapDict::get`] does by itself. Threads read side by side.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("unlocked.mmdpickle"))?;
    /// m.insert("answer", 42)?;
    /// // Not yet: the handle's map of the file does not cover its own append yet.
    /// assert!(m.with_unlocked_value("answer", |_| ()).is_none());
    /// m.get("answer")?; // read under the lock, which maps the file as it is
    /// let bytes = m.with_unlocked_value("answer", |value| {
    ///     let mut bytes = vec![0; value.generic_len().expect("a small value")];
    ///     value.copy_generic(&mut bytes).then_some(bytes)
    /// });
    /// assert_eq!(bytes, Some(Some(b"K\x2a".to_vec()))); // BININT1 42
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_unlocked_value<R>(
        &self,
        key: &str,
        read: impl FnOnce(UnlockedValue<'_>) -> R,
    ) -> Option<R> {
        if !self.options.picklers.generic_reads_builtin() {
            return None;
        }
        let glance = self.glances.of_this_thread();
        let glance = glance.as_ref()?;
        let entry = glance.table().get(key)?;
        Some(read(UnlockedValue { glance, entry }))
    }

    /// Keeps `glance` for reads without the lock (see [`MmapDict::with_unlocked_value`]).
    pub(super) fn keep_glance(&self, glance: Option<Glance>) {
        self.glances.keep(glance);
    }
}

/// The glance that reads without the lock read, in a copy per few threads: threads on
/// different cores then rarely count themselves into the same lock (a count that moves from
/// core to core costs more than the read itself).
#[derive(Debug)]
pub(super) struct Glances([Padded; GLANCE_COPIES]);

/// How many copies [`Glances`] keeps.
const GLANCE_COPIES: usize = 8;

/// A copy on a cache line of its own.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(RwLock<Option<Glance>>);

impl Glances {
    pub(super) fn new(glance: Option<Glance>) -> Glances {
        Glances(std::array::from_fn(|_| Padded(RwLock::new(glance.clone()))))
    }

    /// The copy of this thread, read-locked.
    fn of_this_thread(&self) -> RwLockReadGuard<'_, Option<Glance>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static COPY: usize = NEXT.fetch_add(1, Ordering::Relaxed) % GLANCE_COPIES;
        }
        let copy = COPY.with(|copy| *copy);
        let Padded(glance) = &self.0[copy];
        glance.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `glance` the one of every copy not being read now: a copy read now keeps its
    /// glance, and the reads that find the file changed since read under the lock, and keep
    /// again. Never waits, so a read snapshot begun inside
    /// [`MmapDict::with_unlocked_value`] cannot deadlock.
    ///
    /// A read snapshot of an unchanged file keeps what is kept already: no counter moves.
    fn keep(&self, glance: Option<Glance>) {
        for Padded(kept) in &self.0 {
            let mut kept = match kept.try_write() {
                Ok(kept) => kept,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            let same =
                matches!((&*kept, &glance), (Some(old), Some(new)) if old.is_same_state(new));
            if !same {
                *kept = glance.clone();
            }
        }
    }
}

impl<'g> UnlockedValue<'g> {
    /// The value's length in bytes, if it is at most [`UNLOCKED_READ_MAX`]: the length of the
    /// buffer [`UnlockedValue::copy_generic`] fills.
    pub fn generic_len(&self) -> Option<usize> {
        let len = self.entry().value_len();
        (len <= UNLOCKED_READ_MAX).then_some(len as usize)
    }

    /// The entry.
    pub(super) fn entry(&self) -> &'g Entry {
        self.entry
    }

    /// The file offset of the value's first byte.
    pub fn offset(&self) -> u64 {
        self.entry().value_offset()
    }

    /// `(device, inode)` of the file the value is in.
    pub fn file_id(&self) -> (u64, u64) {
        self.glance.file_id()
    }

    /// Copies the value's bytes (pickle opcodes without `PROTO`, `FRAME` and `STOP`) into
    /// `out`, of [`UnlockedValue::generic_len`] bytes: true when they are what a read under
    /// the lock would have read at that moment (the file showed no change before and after
    /// the copy) and hold a generic value, which the [`GenericPickler`](crate::GenericPickler)
    /// reads. False when the file changed, or the value holds an array: read it under the
    /// lock, or [`UnlockedValue::locate_array`].
    pub fn copy_generic(&self, out: &mut [u8]) -> bool {
        self.generic_len().is_some()
            && self.glance.copy_value(self.entry(), out)
            && matches!(classify(&mut &*out), Ok(ValueKind::Generic { .. }))
    }

    /// Where the parts of the value are, when it holds an array or a masked array (the
    /// classifier reads only its header, from the map) and the file showed no change before
    /// and after: what a read under the lock would have located at that moment. `None`
    /// otherwise: read it under the lock.
    pub fn locate_array(&self) -> Option<Located> {
        if !self.glance.is_unchanged(self.entry()) {
            return None;
        }
        let mut kind = None;
        let read = self.glance.read_between_checks(self.entry(), || {
            kind = classify(&mut GlancedValue(*self)).ok();
            kind.is_some()
        });
        match kind.filter(|_| read)? {
            kind @ (ValueKind::Array(_) | ValueKind::Masked(_)) => {
                item::locate_value(self.entry(), kind).ok()
            }
            _ => None,
        }
    }
}

/// The value of an [`UnlockedValue`] as the classifier reads it: copied from the map part
/// by part, between the glance's checks.
struct GlancedValue<'v>(UnlockedValue<'v>);

impl ValueSource for GlancedValue<'_> {
    fn value_len(&self) -> u64 {
        self.0.entry().value_len()
    }

    fn read_exact_at(
        &mut self,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), mmappickle_array::Error> {
        if self.0.glance.copy_value_part(self.0.entry(), offset, buf) {
            Ok(())
        } else {
            let expected = "more bytes";
            let eof = mmappickle_array::ErrorKind::UnexpectedEof { expected };
            Err(mmappickle_array::Error::new(eof, offset))
        }
    }
}
