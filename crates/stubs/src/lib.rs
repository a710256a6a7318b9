//! Arrays allocated on disk without touching RAM.

#![deny(missing_docs)]
