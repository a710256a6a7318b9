//! The mmappickle file layout: header, entries, terminator, locking, commit number, vacuum, fsck.

#![deny(missing_docs)]
