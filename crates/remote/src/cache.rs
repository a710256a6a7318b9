//! The block cache: aligned blocks of the remote file kept within a byte budget, read by the
//! container's scan and the array layer's header parser as a "bytes at offset" source.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

use mmappickle::array::ValueSource;
use mmappickle::container::{ByteSource, NotLoaded};

/// Joined spans always kept, however large (see [`BlockCache::insert_and_join`]).
const SPANS_KEPT: usize = 4;

/// Blocks of `block_size` bytes (the last one shorter), dropped oldest first past the budget.
#[derive(Debug)]
pub(crate) struct BlockCache {
    file_len: u64,
    block_size: u64,
    budget: u64,
    blocks: HashMap<u64, Vec<u8>>,
    /// Block indices, oldest first.
    order: VecDeque<u64>,
    /// Copies of reads that cross a block boundary, by start offset.
    spans: BTreeMap<u64, Vec<u8>>,
    /// Start offsets of `spans`, oldest first.
    span_order: VecDeque<u64>,
    held: u64,
}

impl BlockCache {
    pub(crate) fn new(file_len: u64, block_size: u64, budget: u64) -> Self {
        BlockCache {
            file_len,
            block_size,
            budget,
            blocks: HashMap::new(),
            order: VecDeque::new(),
            spans: BTreeMap::new(),
            span_order: VecDeque::new(),
            held: 0,
        }
    }

    /// The bytes held: blocks and joined spans.
    pub(crate) fn held(&self) -> u64 {
        self.held
            + self
                .spans
                .values()
                .map(|span| span.len() as u64)
                .sum::<u64>()
    }

    /// The byte range of block `block_idx`.
    pub(crate) fn block_range(&self, block_idx: u64) -> Range<u64> {
        let start = block_idx.saturating_mul(self.block_size);
        start..start.saturating_add(self.block_size).min(self.file_len)
    }

    /// The blocks of `range` the cache lacks.
    pub(crate) fn missing_blocks(&self, range: &Range<u64>) -> Vec<u64> {
        self.block_indices(range)
            .filter(|block_idx| !self.blocks.contains_key(block_idx))
            .collect()
    }

    fn block_indices(&self, range: &Range<u64>) -> Range<u64> {
        if range.is_empty() {
            return 0..0;
        }
        range.start / self.block_size..(range.end - 1) / self.block_size + 1
    }

    /// Keeps a fetched block, dropping the oldest ones past the budget.
    pub(crate) fn insert(&mut self, block_idx: u64, bytes: Vec<u8>) {
        self.held += bytes.len() as u64;
        if let Some(old) = self.blocks.insert(block_idx, bytes) {
            self.held -= old.len() as u64;
        } else {
            self.order.push_back(block_idx);
        }
        while self.held > self.budget && self.order.len() > 1 {
            if let Some(oldest) = self.order.pop_front() {
                if let Some(old) = self.blocks.remove(&oldest) {
                    self.held -= old.len() as u64;
                }
            }
        }
    }

    /// Keeps the blocks `fetched` for `range` and makes the bytes of `range` readable as one
    /// slice. Joined before the blocks are kept: a range longer than the budget (a whole
    /// value the scan checks) would otherwise lose its first blocks to its last ones, and the
    /// scan would ask for it again forever.
    pub(crate) fn insert_and_join(&mut self, fetched: Vec<(u64, Vec<u8>)>, range: Range<u64>) {
        let joined = self.joined(&range, &fetched);
        for (block_idx, block) in fetched {
            self.insert(block_idx, block);
        }
        let Some(joined) = joined else {
            return;
        };
        if self.spans.insert(range.start, joined).is_some() {
            self.span_order.retain(|&start| start != range.start);
        }
        self.span_order.push_back(range.start);
        // Most joins are small (an entry's head, a trailer, an array header): the oldest
        // are dropped once they add up to a block. The newest few stay whatever their
        // size: one step of the scan (an entry read again from its head when it paused)
        // may need its head, its trailer and its whole value joined at once.
        let mut joined_len: usize = self.spans.values().map(Vec::len).sum();
        while joined_len as u64 > self.block_size && self.span_order.len() > SPANS_KEPT {
            if let Some(oldest) = self.span_order.pop_front() {
                joined_len -= self.spans.remove(&oldest).map_or(0, |span| span.len());
            }
        }
    }

    /// The bytes of `range` from the blocks `fetched` and those held; `None` when one lacks.
    fn joined(&self, range: &Range<u64>, fetched: &[(u64, Vec<u8>)]) -> Option<Vec<u8>> {
        let mut joined = Vec::with_capacity((range.end - range.start) as usize);
        for block_idx in self.block_indices(range) {
            let block_range = self.block_range(block_idx);
            let block = fetched
                .iter()
                .find(|(fetched_idx, _)| *fetched_idx == block_idx)
                .map(|(_, block)| block)
                .or_else(|| self.blocks.get(&block_idx))?;
            let from = range.start.max(block_range.start) - block_range.start;
            let to = range.end.min(block_range.end) - block_range.start;
            joined.extend_from_slice(block.get(from as usize..to as usize)?);
        }
        Some(joined)
    }

    /// The bytes of `range` when held in one piece, `None` when they are not.
    fn held_slice(&self, range: &Range<u64>) -> Option<&[u8]> {
        let blocks = self.block_indices(range);
        if blocks.end - blocks.start == 1 {
            let block_range = self.block_range(blocks.start);
            let block = self.blocks.get(&blocks.start)?;
            let from = (range.start - block_range.start) as usize;
            return block.get(from..from + (range.end - range.start) as usize);
        }
        let (start, span) = self.spans.range(..=range.start).next_back()?;
        let from = (range.start - start) as usize;
        span.get(from..from.checked_add((range.end - range.start) as usize)?)
    }
}

impl ByteSource for BlockCache {
    fn len(&self) -> u64 {
        self.file_len
    }

    fn bytes_at(&self, offset: u64, len: u64) -> Result<Option<&[u8]>, NotLoaded> {
        let Some(end) = offset.checked_add(len).filter(|&end| end <= self.file_len) else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(Some(&[]));
        }
        let range = offset..end;
        match self.held_slice(&range) {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(NotLoaded { range }),
        }
    }
}

/// One value of the file read through the cache, for the array layer's header parser; the
/// first read of bytes the cache lacks fails and is remembered, to be fetched before a retry.
pub(crate) struct CachedValue<'a> {
    pub(crate) cache: &'a BlockCache,
    pub(crate) value_range: Range<u64>,
    pub(crate) missing: Option<Range<u64>>,
}

impl ValueSource for CachedValue<'_> {
    fn value_len(&self) -> u64 {
        self.value_range.end - self.value_range.start
    }

    fn read_exact_at(
        &mut self,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), mmappickle::array::Error> {
        let eof = || {
            mmappickle::array::Error::new(
                mmappickle::array::ErrorKind::UnexpectedEof {
                    expected: "more bytes",
                },
                offset,
            )
        };
        let len = buf.len() as u64;
        let end = offset.checked_add(len).ok_or_else(eof)?;
        if end > self.value_len() {
            return Err(eof());
        }
        match self.cache.bytes_at(self.value_range.start + offset, len) {
            Ok(Some(bytes)) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            Ok(None) => Err(eof()),
            Err(NotLoaded { range }) => {
                self.missing.get_or_insert(range);
                Err(eof())
            }
        }
    }
}
