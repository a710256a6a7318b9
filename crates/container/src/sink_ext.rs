//! [`ValueSink`] for callers that write a value's bytes themselves through
//! [`ValueSink::file`] (a binding writing straight from its own buffer).

use crate::container::ValueSink;

impl ValueSink<'_> {
    /// Asks the file system to allocate the next `len` bytes of the value in one go, as
    /// [`ValueSink::write_all`] does before a large write, for a caller about to write them
    /// itself through [`ValueSink::file`] (then [`ValueSink::skip`] past them). On Linux
    /// `fallocate` with `FALLOC_FL_KEEP_SIZE`: the file's length does not change. An
    /// optimisation only: errors are ignored, and nothing happens elsewhere.
    pub fn preallocate_next(&self, len: u64) {
        #[cfg(target_os = "linux")]
        {
            let len = len.min(self.remaining());
            let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
            let _ = rustix::fs::fallocate(self.file(), flags, self.position(), len);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = len;
    }
}
