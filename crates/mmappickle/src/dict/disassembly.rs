//! The file disassembled: the listing, and each value's ops from the codec, at file offsets.

use std::sync::Arc;

use mmappickle_codec::{dis_ops, DisOp};

use super::listing::{listing_of, value_bytes, EntryInfo, Listing};
use super::maps::Claim;
use super::MmapDict;
use crate::error::Error;

/// The disassembly of a file: its [`Listing`], and the ops of every value read from one map
/// of the file (see [`MmapDict::with_disassembly`]).
#[derive(Debug)]
pub struct Disassembly<'f> {
    /// The file's facts and entries.
    pub listing: Listing,
    file: &'f [u8],
}

impl<'f> Disassembly<'f> {
    /// The disassembly of a whole file held in memory (a file read whole over the network, a
    /// download): its table is scanned from `file` as an open scans it.
    ///
    /// ```
    /// use mmappickle::{Disassembly, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("bytes.mmdpickle");
    /// MmapDict::open(&path)?.insert("answer", 42)?;
    /// let file = std::fs::read(&path)?;
    /// let dis = Disassembly::from_bytes(&file)?;
    /// let first = dis.listing.entries().next().expect("one entry");
    /// let ops: Vec<_> = dis.value_ops(&first).collect::<Result<_, _>>()?;
    /// assert_eq!(ops[0].to_string(), "BININT1 42");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(file: &'f [u8]) -> Result<Disassembly<'f>, Error> {
        let table = Arc::new(mmappickle_container::scan(file)?);
        Ok(Disassembly {
            listing: listing_of(&table, Some(file))?,
            file,
        })
    }

    /// The ops of `info`'s value as the codec reads them, offsets in the file; an undecodable
    /// op ends them with the codec's error (its offset in the file too).
    pub fn value_ops(
        &self,
        info: &EntryInfo<'_>,
    ) -> impl Iterator<Item = Result<DisOp<'f>, mmappickle_codec::Error>> + 'f {
        let value_offset = info.entry.value_offset();
        let shift = usize::try_from(value_offset).unwrap_or(usize::MAX);
        dis_ops(value_bytes(self.file, info.entry)).map(move |item| match item {
            Ok(op) => Ok(DisOp {
                offset: op.offset.saturating_add(shift),
                ..op
            }),
            Err(error) => Err(error.shifted(value_offset)),
        })
    }
}

impl MmapDict {
    /// Runs `read` over the disassembly of the file: its listing and the ops of each value,
    /// all read under one lock from one read-only map of the file. Refused
    /// ([`ErrorKind::MapConflict`](crate::ErrorKind::MapConflict)) while a writable map of
    /// an array of the file lives in this process, and no writable map can be made while
    /// `read` runs.
    ///
    /// ```
    /// use mmappickle::MmapDict;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("dis.mmdpickle"))?;
    /// m.insert("answer", 42)?;
    /// let lines = m.with_disassembly(|dis| {
    ///     let info = dis.listing.entries().next().expect("one entry");
    ///     dis.value_ops(&info)
    ///         .map(|op| op.map(|op| format!("{}: {op}", op.offset)))
    ///         .collect::<Result<Vec<_>, _>>()
    /// })??;
    /// assert_eq!(lines, ["41: BININT1 42"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_disassembly<R>(
        &self,
        read: impl FnOnce(&Disassembly<'_>) -> R,
    ) -> Result<R, Error> {
        let snapshot = self.read()?;
        let view = snapshot.view()?;
        // The closure may read any byte, those of arrays too: no writable map of them may
        // live meanwhile in this process (nor be made by the closure).
        let _claim = Claim::read_whole_file(view.file(), &self.maps)?;
        let file = view.bytes();
        Ok(read(&Disassembly {
            listing: listing_of(view.table(), Some(file))?,
            file,
        }))
    }
}
