//! The crash model: every state a power cut may leave, from a trace (see *Crash states* in
//! `main.rs`).

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::trace::Op;
use crate::{ALL_SUBSETS_MAX, ALL_TEARS_MAX, SECTOR};

/// The files of the directory: names to inodes, inodes to bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fs {
    pub(crate) names: BTreeMap<String, usize>,
    pub(crate) inodes: Vec<Vec<u8>>,
}

impl Fs {
    pub(crate) fn from_files(files: &BTreeMap<String, Vec<u8>>) -> Fs {
        Fs {
            names: files.keys().cloned().zip(0..).collect(),
            inodes: files.values().cloned().collect(),
        }
    }

    pub(crate) fn inode(&mut self, inode: usize) -> &mut Vec<u8> {
        if self.inodes.len() <= inode {
            self.inodes.resize(inode + 1, Vec::new());
        }
        &mut self.inodes[inode]
    }

    /// Applies `op`; `sectors` keeps only those 512-byte pieces of a write (a tear).
    pub(crate) fn apply(&mut self, op: &Op, sectors: Option<&[bool]>) {
        match op {
            Op::Write {
                inode,
                offset,
                data,
            } => {
                let pieces = sector_pieces(*offset, data.len());
                let file = self.inode(*inode);
                for (piece_idx, &(start, end)) in pieces.iter().enumerate() {
                    if sectors.is_some_and(|keep| !keep[piece_idx]) {
                        continue;
                    }
                    let at = (*offset as usize) + start;
                    let stop = (*offset as usize) + end;
                    if file.len() < stop {
                        file.resize(stop, 0);
                    }
                    file[at..stop].copy_from_slice(&data[start..end]);
                }
            }
            Op::SetLen { inode, len } => self.inode(*inode).resize(*len as usize, 0),
            Op::Extend { inode, len } => {
                let file = self.inode(*inode);
                if file.len() < *len as usize {
                    file.resize(*len as usize, 0);
                }
            }
            Op::Create { name, inode } => {
                // A new inode: its bytes are those of its own data operations.
                self.inode(*inode);
                self.names.insert(name.clone(), *inode);
            }
            Op::Rename { from, to } => {
                if let Some(inode) = self.names.remove(from) {
                    self.names.insert(to.clone(), inode);
                }
            }
            Op::Unlink { name } => {
                self.names.remove(name);
            }
            Op::SyncFile { .. } | Op::SyncDir => {}
        }
    }

    /// The directory's files by name.
    pub(crate) fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.names
            .iter()
            .map(|(name, &inode)| {
                (
                    name.clone(),
                    self.inodes.get(inode).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    pub(crate) fn digest(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (name, &inode) in &self.names {
            name.hash(&mut hasher);
            let bytes = self.inodes.get(inode).map(Vec::as_slice).unwrap_or(&[]);
            bytes.len().hash(&mut hasher);
            // Eight bytes at a time: a debug build hashes a few MB per state set.
            for chunk in bytes.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                hasher.write_u64(u64::from_le_bytes(word));
            }
        }
        hasher.finish()
    }
}

/// The pieces of a write of `len` bytes at `offset` between 512-byte sector boundaries, as
/// ranges of the written bytes.
pub(crate) fn sector_pieces(offset: u64, len: usize) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0usize;
    while start < len {
        let at = offset + start as u64;
        let boundary = (at / SECTOR + 1) * SECTOR;
        let end = ((boundary - offset) as usize).min(len);
        pieces.push((start, end));
        start = end;
    }
    pieces
}

/// The tears of a write of `n` sectors: which sectors land.
pub(crate) fn tears(n: usize) -> Vec<Vec<bool>> {
    if n < 2 {
        return Vec::new();
    }
    if n <= ALL_TEARS_MAX {
        return (1..(1u32 << n) - 1)
            .map(|mask| (0..n).map(|bit| mask & (1 << bit) != 0).collect())
            .collect();
    }
    let mut all = Vec::new();
    for cut in 1..n {
        all.push((0..n).map(|i| i < cut).collect());
        all.push((0..n).map(|i| i >= cut).collect());
    }
    for one in 0..n {
        all.push((0..n).map(|i| i != one).collect());
        all.push((0..n).map(|i| i == one).collect());
    }
    all
}

/// How one pending data operation lands in a state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Landing {
    Lost,
    Whole,
    Torn(Vec<bool>),
}

/// One state a power cut may leave.
#[derive(Debug)]
pub(crate) struct CrashState {
    /// Operations issued before the cut (the crash point).
    pub(crate) crash_point: usize,
    /// Whether the change had returned (the cut came after its last call).
    pub(crate) returned: bool,
    /// How each pending data operation landed, by its index in the trace.
    pub(crate) landings: Vec<(usize, Landing)>,
    /// The pending name operations, by index in the trace, and how many of them landed.
    pub(crate) pending_names: Vec<usize>,
    pub(crate) names_landed: usize,
    pub(crate) fs: Fs,
}

impl CrashState {
    pub(crate) fn describe(&self, ops: &[Op]) -> String {
        let next = match ops.get(self.crash_point) {
            Some(op) => format!("just before op {} ({})", self.crash_point, op.describe()),
            None => "after the last operation (the change had returned)".to_owned(),
        };
        let mut text = format!("power cut {next}; pending operations: ");
        let pending: Vec<String> = self
            .landings
            .iter()
            .map(|(op_idx, landing)| {
                let how = match landing {
                    Landing::Lost => "lost".to_owned(),
                    Landing::Whole => "landed".to_owned(),
                    Landing::Torn(keep) => format!(
                        "torn, sectors landed {:?}",
                        keep.iter()
                            .enumerate()
                            .filter(|(_, &kept)| kept)
                            .map(|(idx, _)| idx)
                            .collect::<Vec<_>>()
                    ),
                };
                format!("op {op_idx} ({}) {how}", ops[*op_idx].describe())
            })
            .collect();
        if pending.is_empty() {
            text.push_str("none");
        } else {
            text.push_str(&pending.join("; "));
        }
        for (pos, op_idx) in self.pending_names.iter().enumerate() {
            let how = if pos < self.names_landed {
                "landed"
            } else {
                "lost"
            };
            text.push_str(&format!(
                "; op {op_idx} ({}) {how}",
                ops[*op_idx].describe()
            ));
        }
        text
    }
}

/// Every crash state of `ops` applied to `initial`, identical ones once.
pub(crate) fn crash_states(initial: &Fs, ops: &[Op]) -> Vec<CrashState> {
    // For each operation, the index of the first sync after it that makes it durable.
    let synced_at: Vec<usize> = ops
        .iter()
        .enumerate()
        .map(|(idx, op)| {
            ops.iter()
                .enumerate()
                .skip(idx + 1)
                .find(|(_, sync)| sync.is_sync() && op.synced_by(sync))
                .map_or(usize::MAX, |(sync_idx, _)| sync_idx)
        })
        .collect();
    let mut crash_points: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.is_sync())
        .map(|(idx, _)| idx)
        .collect();
    crash_points.push(ops.len());
    let mut seen = HashSet::new();
    let mut states = Vec::new();
    for &point in &crash_points {
        let mut durable = initial.clone();
        let mut pending_data = Vec::new();
        let mut pending_names = Vec::new();
        for (idx, op) in ops.iter().enumerate().take(point) {
            if op.is_sync() {
                continue;
            }
            if synced_at[idx] < point {
                durable.apply(op, None);
            } else if op.is_name_op() {
                pending_names.push(idx);
            } else {
                pending_data.push(idx);
            }
        }
        for landings in data_landings(ops, &pending_data) {
            for names_landed in 0..=pending_names.len() {
                let mut fs = durable.clone();
                // Names first: data operations address inodes, not names.
                for &idx in &pending_names[..names_landed] {
                    fs.apply(&ops[idx], None);
                }
                for (idx, landing) in &landings {
                    match landing {
                        Landing::Lost => {}
                        Landing::Whole => fs.apply(&ops[*idx], None),
                        Landing::Torn(keep) => fs.apply(&ops[*idx], Some(keep)),
                    }
                }
                if seen.insert((point == ops.len(), fs.digest())) {
                    states.push(CrashState {
                        crash_point: point,
                        returned: point == ops.len(),
                        landings: landings.clone(),
                        pending_names: pending_names.clone(),
                        names_landed,
                        fs,
                    });
                }
            }
        }
    }
    states
}

/// The ways the pending data operations `pending` (indices into `ops`) may land.
pub(crate) fn data_landings(ops: &[Op], pending: &[usize]) -> Vec<Vec<(usize, Landing)>> {
    let n = pending.len();
    let with = |whole: &dyn Fn(usize) -> bool| -> Vec<(usize, Landing)> {
        pending
            .iter()
            .enumerate()
            .map(|(pos, &idx)| {
                let landing = if whole(pos) {
                    Landing::Whole
                } else {
                    Landing::Lost
                };
                (idx, landing)
            })
            .collect()
    };
    let mut all = Vec::new();
    if n <= ALL_SUBSETS_MAX {
        for mask in 0..(1u32 << n) {
            all.push(with(&|pos| mask & (1 << pos) != 0));
        }
    } else {
        for cut in 0..=n {
            all.push(with(&|pos| pos < cut));
        }
        for omitted in 0..n {
            all.push(with(&|pos| pos != omitted));
        }
    }
    for (pos, &idx) in pending.iter().enumerate() {
        let Op::Write { offset, data, .. } = &ops[idx] else {
            continue;
        };
        for keep in tears(sector_pieces(*offset, data.len()).len()) {
            // Alone, after the pending operations before it, and with all the others.
            for others in 0..3 {
                let mut landings = with(&|other| match others {
                    0 => false,
                    1 => other < pos,
                    _ => other != pos,
                });
                landings[pos].1 = Landing::Torn(keep.clone());
                all.push(landings);
            }
        }
    }
    all
}
