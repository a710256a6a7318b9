//! Reads without the lock: a small generic value of an entry the handle has seen, copied from
//! the map of its last lock hold when the file shows no change (the container's `Glance`).

use mmappickle_array::{classify, ValueKind};
use mmappickle_container::{Entry, Glance};

use super::MmapDict;

/// The largest value read without the lock: beyond it, the lock's two system calls cost
/// little beside the copy and the decoding.
pub const UNLOCKED_READ_MAX: u64 = 64 * 1024;

/// The value of a live entry this handle has seen, to be copied without the lock: see
/// [`MmapDict::unlocked_value`].
#[derive(Debug, Clone)]
pub struct UnlockedValue {
    glance: Glance,
    entry: Entry,
}

impl MmapDict {
    /// The value of `key` as this handle's last read or change found it, to be copied
    /// without the lock and without a system call ([`UnlockedValue::copy_generic`]):
    /// `None` when the handle's last lock hold did not map a live entry of `key` (as after
    /// its own insert, until a read maps the file again), when its value is larger than
    /// [`UNLOCKED_READ_MAX`], or when the dict's picklers are not the built-in ones (a
    /// generic value is then not necessarily read by the [`GenericPickler`]). Read under the
    /// lock then, as [`MmapDict::get`] does by itself.
    ///
    /// [`GenericPickler`]: crate::GenericPickler
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("unlocked.mmdpickle"))?;
    /// m.insert("answer", 42)?;
    /// // Not yet: the handle's map of the file does not cover its own append yet.
    /// assert!(m.unlocked_value("answer").is_none());
    /// m.get("answer")?; // read under the lock, which maps the file as it is
    /// let value = m.unlocked_value("answer").expect("seen by the read");
    /// let mut bytes = vec![0; value.len()];
    /// assert!(value.copy_generic(&mut bytes));
    /// assert_eq!(bytes, b"K\x2a"); // BININT1 42
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlocked_value(&self, key: &str) -> Option<UnlockedValue> {
        if !self.options.picklers.generic_reads_builtin() {
            return None;
        }
        let glance = self.lock_container().glance()?;
        let entry = glance.table().get(key)?.clone();
        (entry.value_len() <= UNLOCKED_READ_MAX).then_some(UnlockedValue { glance, entry })
    }
}

impl UnlockedValue {
    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        // At most `UNLOCKED_READ_MAX`.
        self.entry.value_len() as usize
    }

    /// Whether the value has no bytes (never, in a valid file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry.
    pub(super) fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The file offset of the value's first byte.
    pub fn offset(&self) -> u64 {
        self.entry.value_offset()
    }

    /// Copies the value's bytes (pickle opcodes without `PROTO`, `FRAME` and `STOP`) into
    /// `out`, of [`UnlockedValue::len`] bytes: true when they are what a read under the lock
    /// would have read at that moment (the file showed no change before and after the copy)
    /// and hold a generic value, which the [`GenericPickler`](crate::GenericPickler) reads.
    /// False when the file changed, or the value holds an array: read it under the lock.
    pub fn copy_generic(&self, out: &mut [u8]) -> bool {
        self.glance.copy_value(&self.entry, out)
            && matches!(classify(&mut &*out), Ok(ValueKind::Generic { .. }))
    }
}
