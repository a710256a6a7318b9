//! The kinds of change and their scenarios: sizes, seeds and where the commit write falls.

use std::hash::Hash;
use std::path::{Path, PathBuf};

/// A kind of change made through the facade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// A new key with a small generic value.
    Insert,
    /// A new key with an array of several pages.
    InsertPages,
    /// A key replaced (a generic value by a generic value, or an array by an array).
    Replace,
    /// A key removed.
    Remove,
    /// `MmapDict::write`: inserts, a replace, removes, an array.
    Batch,
    /// Vacuum by rename, with its scratch file.
    Vacuum,
    /// `fsck` of a file whose last entry is torn: cut inside its value (size 0) or inside
    /// its trailer (size 1, which fsck completes).
    Fsck,
    /// Opening a plain pickle of a dict, which converts it (scratch file, rename).
    Convert,
    /// `insert_stub`: an array allocated as a hole.
    Stub,
    /// The first open of a missing file (created), then one insert.
    Create,
}

pub(crate) const KINDS: [Kind; 10] = [
    Kind::Insert,
    Kind::InsertPages,
    Kind::Replace,
    Kind::Remove,
    Kind::Batch,
    Kind::Vacuum,
    Kind::Fsck,
    Kind::Convert,
    Kind::Stub,
    Kind::Create,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Insert => "insert",
            Kind::InsertPages => "insert-pages",
            Kind::Replace => "replace",
            Kind::Remove => "remove",
            Kind::Batch => "batch",
            Kind::Vacuum => "vacuum",
            Kind::Fsck => "fsck",
            Kind::Convert => "convert",
            Kind::Stub => "stub",
            Kind::Create => "create",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|kind| kind.name() == name)
    }
}

/// One recorded change: its kind, a seed for its values, a size, and where the old
/// terminator (the commit write's place) sits: `split` bytes before a sector boundary (the
/// 11-byte commit is then cut after `split` bytes by that boundary; 0: inside one sector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scenario {
    pub(crate) kind: Kind,
    pub(crate) seed: u64,
    pub(crate) size: usize,
    pub(crate) split: u64,
}

impl Scenario {
    pub(crate) fn label(&self) -> String {
        format!(
            "{} (seed {}, size {}, commit split {})",
            self.kind.name(),
            self.seed,
            self.size,
            self.split
        )
    }

    pub(crate) fn job(&self, path: &Path) -> String {
        format!(
            "{}|{}|{}|{}",
            self.kind.name(),
            self.seed,
            self.size,
            path.display()
        )
    }

    pub(crate) fn parse_job(job: &str) -> Result<(Kind, u64, usize, PathBuf), String> {
        let mut parts = job.splitn(4, '|');
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| format!("job {job:?}: too few parts"))
        };
        let kind = next()?;
        let kind = Kind::parse(kind).ok_or_else(|| format!("job {job:?}: no kind {kind:?}"))?;
        let seed = next()?
            .parse()
            .map_err(|_| format!("job {job:?}: bad seed"))?;
        let size = next()?
            .parse()
            .map_err(|_| format!("job {job:?}: bad size"))?;
        Ok((kind, seed, size, PathBuf::from(next()?)))
    }
}

/// The scenarios of a round: the short one of the test command, or the full one.
pub(crate) fn scenarios(full: bool, seeds: u64) -> Vec<Scenario> {
    let mut all = Vec::new();
    let splits: Vec<u64> = if full {
        (0..=10).collect()
    } else {
        vec![0, 10]
    };
    // The short round: seed 1, and seed 0 too for replace and batch (an even seed replaces
    // a generic value, an odd one an array).
    let seeds = if full { seeds } else { 2 };
    for seed in 0..seeds {
        for kind in KINDS {
            if !full && seed == 0 && !matches!(kind, Kind::Replace | Kind::Batch) {
                continue;
            }
            let sizes: &[usize] = match (kind, full) {
                // Multi-page values: buffered (<= 64 KiB) and written straight to the file.
                (Kind::InsertPages, false) => &[12 << 10],
                (Kind::InsertPages, true) => &[12 << 10, 70 << 10],
                (Kind::Replace | Kind::Batch, false) => &[6 << 10],
                (Kind::Replace | Kind::Batch, true) => &[6 << 10, 70 << 10],
                (Kind::Stub, _) => &[40 << 10],
                (Kind::Fsck, _) => &[0, 1],
                _ => &[64],
            };
            // Where the old terminator lies matters for appends (their commit is written over
            // it): every placement; the other kinds get a few.
            let kind_splits: Vec<u64> = match kind {
                Kind::Insert | Kind::InsertPages | Kind::Replace | Kind::Batch | Kind::Stub => {
                    splits.clone()
                }
                Kind::Create | Kind::Convert => vec![0],
                _ if full => vec![0, 5, 10],
                _ => vec![0],
            };
            for &size in sizes {
                for &split in &kind_splits {
                    all.push(Scenario {
                        kind,
                        seed,
                        size,
                        split,
                    });
                }
            }
        }
    }
    all
}
