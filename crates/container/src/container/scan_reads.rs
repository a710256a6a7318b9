//! The scan of a local file: from the map while the walk goes on near where it was, by
//! `pread` where it jumps far (over an array's data to its trailer).
//!
//! Touching a map page far from the pages touched before costs a page fault, a page table
//! for its 2 MiB, the mapping of its neighbours (fault-around) and their unmapping at close:
//! about 7 µs each on a virtual machine, where a `pread` of 4 KiB costs 1 to 2 µs. A file of
//! 64 arrays of 4 MiB and 1,000 small values took 0.6 ms to open through the map alone, 0.47
//! ms of it in the 64 jumps; a file of 1,064 small values, 0.13 ms.

use std::cell::Cell;
use std::io;
use std::ops::Range;

use crate::error::Error;
use crate::layout::{ByteSource, NotLoaded, ScanProgress, Scanner, Table};

/// How far past the furthest byte handed out the walk still reads the map: a run of small
/// entries after it, whose pages the fault-around maps together.
const NEAR: u64 = 64 << 10;

/// The least a `pread` reads, aligned: the trailer sought and the heads after it.
const BLOCK: u64 = 4 << 10;

/// Blocks kept: more than the parse of one entry asks for (its head, key, trailer and the
/// tail of a torn one).
const KEPT_BLOCKS: usize = 8;

/// [`scan`](crate::scan) of `map`, the whole file, reading what lies far ahead with
/// `read_at(buffer, offset)` (`pread` of the same file) instead of touching the map there.
/// Gives the table (or the error) the scan of the map gives.
pub(crate) fn scan_reading_jumps(
    map: &[u8],
    read_at: impl Fn(&mut [u8], u64) -> io::Result<()>,
) -> Result<Table, Error> {
    scan_reading_past(map, read_at, NEAR)
}

/// [`scan_reading_jumps`] reading what lies more than `near` bytes past the frontier (the
/// fuzz target reads all but the header this way, with a `near` of 0).
pub(crate) fn scan_reading_past(
    map: &[u8],
    read_at: impl Fn(&mut [u8], u64) -> io::Result<()>,
    near: u64,
) -> Result<Table, Error> {
    let mut source = MapAndReads {
        map,
        near,
        frontier: Cell::new(0),
        blocks: Vec::new(),
        blocks_end: 0,
    };
    let mut scanner = Scanner::default();
    loop {
        match scanner.resume(&source)? {
            ScanProgress::Done(table) => return Ok(table),
            ScanProgress::NeedBytes(wanted) => source.read(&read_at, wanted)?,
        }
    }
}

/// The file's bytes: the map near the frontier, and blocks read far past it.
///
/// The walk ends: a block read covers the bytes wanted, which the scanner asks for again at
/// once (it restarts the entry it stopped in, whose earlier bytes it was given already), and
/// handing the block out moves the frontier past it, so that those bytes are never read again.
struct MapAndReads<'map> {
    map: &'map [u8],
    /// How far past the frontier the map is read ([`NEAR`]).
    near: u64,
    /// The end of the furthest bytes handed out.
    frontier: Cell<u64>,
    /// Blocks read, oldest first, with their offsets.
    blocks: Vec<(u64, Vec<u8>)>,
    /// Where the furthest block read ends: bytes from there on are in none (the run of small
    /// entries after the last jump skips the search).
    blocks_end: u64,
}

impl MapAndReads<'_> {
    fn read(
        &mut self,
        read_at: impl Fn(&mut [u8], u64) -> io::Result<()>,
        wanted: Range<u64>,
    ) -> Result<(), Error> {
        let start = wanted.start - wanted.start % BLOCK;
        let end = wanted
            .end
            .max(start + BLOCK)
            .next_multiple_of(BLOCK)
            .min(self.len());
        // `bytes_at` asks only for bytes inside the map, whose length fits in a usize.
        let mut block = vec![0; usize::try_from(end - start).unwrap_or_default()];
        read_at(&mut block, start).map_err(|error| Error::io(error, start))?;
        if self.blocks.len() == KEPT_BLOCKS {
            self.blocks.remove(0);
        }
        self.blocks.push((start, block));
        self.blocks_end = self.blocks_end.max(end);
        Ok(())
    }
}

impl ByteSource for MapAndReads<'_> {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded> {
        let Some(end) = offset.checked_add(len).filter(|&end| end <= self.len()) else {
            return Ok(None);
        };
        // Newest first: the walk goes on in the block read last.
        let blocks = if offset < self.blocks_end {
            &self.blocks[..]
        } else {
            &[]
        };
        let in_block = blocks.iter().rev().find_map(|(start, block)| {
            let block_end = start + block.len() as u64;
            (*start <= offset && end <= block_end).then(|| {
                let from = (offset - start) as usize;
                (block_end, &block[from..from + len as usize])
            })
        });
        let (reached, bytes) = match in_block {
            Some(found) => found,
            // A long read (the tail of a torn entry) is one range of the map, whatever its place.
            None if offset <= self.frontier.get().saturating_add(self.near) || len > NEAR => {
                (end, &self.map[offset as usize..end as usize])
            }
            None => return Err(NotLoaded { range: offset..end }),
        };
        self.frontier.set(self.frontier.get().max(reached));
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::error::ErrorKind;
    use crate::layout::{
        encode_entry_head, encode_entry_trailer, encode_header, scan, ENTRY_TRAILER_LEN, TERMINATOR,
    };

    fn entry(key: &str, value_len: usize) -> Vec<u8> {
        let frame_len = (key.len() + value_len) as u64 + 10;
        let mut bytes = encode_entry_head(key.as_bytes(), frame_len);
        bytes.extend(vec![b'N'; value_len]);
        bytes.extend(encode_entry_trailer(0, true));
        bytes
    }

    /// Runs of small entries, each followed by an entry of `big[i]` value bytes.
    fn file_of(big: &[usize]) -> Vec<u8> {
        let mut file = encode_header(7).to_vec();
        for (i, &len) in big.iter().enumerate() {
            for j in 0..20 {
                file.extend(entry(&format!("small{i}-{j}"), 12));
            }
            file.extend(entry(&format!("big{i}"), len));
        }
        file.extend(TERMINATOR);
        file
    }

    /// The scan of `file` by reads of what lies more than `near` bytes ahead, with how many
    /// reads it took.
    fn scan_counting(file: &[u8], near: u64) -> (Result<Table, Error>, usize) {
        let reads = Cell::new(0);
        let table = scan_reading_past(
            file,
            |buffer, offset| {
                reads.set(reads.get() + 1);
                buffer.copy_from_slice(&file[offset as usize..offset as usize + buffer.len()]);
                Ok(())
            },
            near,
        );
        (table, reads.get())
    }

    #[test]
    fn jumps_over_big_values_are_read_and_the_table_is_the_scans() {
        let file = file_of(&[300_000, 1 << 20, 200_000]);
        let (table, reads) = scan_counting(&file, NEAR);
        assert_eq!(table.unwrap(), scan(&file).unwrap());
        // One read per jump (the trailer and the small entries after it share a block).
        assert_eq!(reads, 3);
    }

    #[test]
    fn small_values_are_read_from_the_map_alone() {
        let file = file_of(&[100, 5_000, 60_000]);
        let (table, reads) = scan_counting(&file, NEAR);
        assert_eq!(table.unwrap(), scan(&file).unwrap());
        assert_eq!(reads, 0);
    }

    #[test]
    fn damaged_and_torn_files_give_what_the_scan_gives() {
        let whole = file_of(&[300_000, 1 << 20]);
        let trailer_of_last_big = whole.len() - TERMINATOR.len() - ENTRY_TRAILER_LEN as usize;
        let mut bad_flag = whole.clone();
        bad_flag[trailer_of_last_big + 6] = b'X';
        let mut bad_trailer = whole.clone();
        bad_trailer[trailer_of_last_big] = b'X';
        let mut files = vec![bad_flag, bad_trailer];
        for cut in [
            whole.len() - 1,
            trailer_of_last_big + 3,
            trailer_of_last_big - 10,
            400_000,
        ] {
            files.push(whole[..cut].to_vec());
        }
        for file in files {
            // Reading the far bytes only, and reading every byte past the header.
            for near in [NEAR, 0] {
                match (scan_counting(&file, near).0, scan(&file)) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    (Err(a), Err(b)) => {
                        assert_eq!((a.to_string(), a.offset()), (b.to_string(), b.offset()))
                    }
                    (a, b) => panic!("scan by reads {a:?}, scan of the map {b:?}"),
                }
            }
        }
    }

    #[test]
    fn a_failed_read_is_an_error_at_its_offset() {
        let file = file_of(&[300_000]);
        let error = scan_reading_jumps(&file, |_, _| Err(io::Error::other("disk gone")));
        let error = error.unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Io(io) if io.to_string() == "disk gone"),
            "{error:?}"
        );
        // The read of the block holding the big entry's trailer.
        let trailer = (file.len() - TERMINATOR.len()) as u64 - ENTRY_TRAILER_LEN;
        assert_eq!(error.offset(), Some(trailer - trailer % BLOCK));
    }
}
