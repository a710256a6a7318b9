//! The mmappickle file layout: header, entries, terminator, locking, commit number, vacuum, fsck.
//!
//! A file is `header | entry | ... | entry | terminator` (see the workspace's `FORMAT.md`);
//! this crate knows that layout and nothing of numpy: an entry's value is a byte range.
//!
//! - [`scan`] is a pure function from the file's bytes to its [`Table`] of entries; [`Scanner`]
//!   is the same walk over any [`ByteSource`] (a remote file's block cache), pausing for bytes.
//! - [`Container`] is an open file: an exclusive `flock` (compatible with Python's
//!   `fcntl.flock`) around every operation, a cached table re-read only when the commit number,
//!   the length or the identity of the file changed, and crash-safe changes: [`Container::append`]
//!   (with the value written straight into the file), [`Container::batch`] (many appends and
//!   removes, one commit), [`Container::remove`], [`Container::vacuum`] (by rename) and
//!   [`Container::fsck`]; [`Container::begin_read`] gives [`ReadView`]s under the shared
//!   lock, which read values from a map of the file.
//!
//! `FORMAT-NOTES.md` beside this crate's manifest describes the padding entries, the crash
//! safety protocol and vacuum-by-rename.
//!
//! Limits: Unix only (`flock(2)`, `pwrite`). [`Container::read_value`] allocates the value's
//! length (checked against the file's length): large values are better reached through maps
//! of [`Container::file`].
//!
//! Maps and the lock: the scan and [`ReadView`]s read the file through a read-only map, made
//! and read only under the file's lock (a guard only the locking code makes) and only within
//! the length found under it. Bytes of array regions may be written meanwhile through
//! writable maps, of this process (the facade's) or of others (numpy's), and a view begun
//! under a change's lock sees that change's writes: reading them through `&[u8]` follows
//! memmap2's rule, sound as long as every writer of the file cooperates (our processes, the
//! Python library, numpy). One that does not, such as a process that truncates the file
//! without the lock (or Python's in-place `vacuum` beside our maps), makes a read of a cut
//! page fault with SIGBUS; `RELIABILITY.md` in the repository measures it.
//!
//! ```
//! use mmappickle_container::{Container, NewEntry};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("example.mmdpickle");
//! let mut container = Container::open(&path)?;
//! // The value `K\x2a` is the pickle opcode BININT1 42: the entry's value is the int 42.
//! let new = NewEntry { key: "answer", value_len: 2, memo_max: container.memo_start()?, align: None };
//! let entry = container.append(new, |sink| sink.write_all(b"K\x2a"))?;
//! assert_eq!(container.read_value(&entry)?, b"K\x2a");
//! assert_eq!(container.keys()?, ["answer"]);
//!
//! // The whole file is a pickle of {'answer': 42}; the pure scan reads its layout back.
//! let table = mmappickle_container::scan(&std::fs::read(&path)?)?;
//! assert_eq!(table.get("answer").map(|entry| entry.value_len()), Some(2));
//!
//! assert!(container.remove("answer")?);
//! assert_eq!(container.vacuum()?.removed_entries, 1);
//! assert!(container.keys()?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod complete;
mod container;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod layout;
mod lock;
mod map;
mod scratch;

pub use crate::{
    container::{
        next_commit_number, Alignment, Batch, Container, ContainerOptions, DroppedEntry,
        Durability, FsckReport, Glance, NewEntry, ReadView, VacuumReport, ValueSink, MAX_ALIGN,
        VACUUM_ALIGNMENT,
    },
    error::{Error, ErrorKind},
    layout::{
        encode_header, parse_header, scan, ByteSource, Entry, NotLoaded, ScanProgress, Scanner,
        Table, COMMIT_NUMBER_OFFSET, FORMAT_VERSION, HEADER_LEN, MAX_KEY_LEN, MIN_PADDING_LEN,
        TERMINATOR,
    },
    scratch::{remove_stale_scratch_files, sync_parent_directory},
};
