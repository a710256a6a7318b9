//! Typed numpy arrays over memory maps of an mmappickle file.

#![deny(missing_docs)]
