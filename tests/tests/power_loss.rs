//! Power loss, tested rather than argued (`RELIABILITY.md`, section 5).
//!
//! Each kind of change made through `MmapDict` with `Durability::Flush` runs once in a child
//! process under `strace`, which records the system calls that change the file system
//! (`pwrite64`/`write` with their bytes and offsets, `ftruncate`, `fallocate`,
//! `fsync`/`fdatasync` of files and of the directory, `openat` with `O_CREAT`/`O_TRUNC`,
//! `rename*`, `unlink*`). From the trace and a copy of the directory taken before, every state
//! a power cut may leave is built (the model is under *Crash states* below) and checked: a
//! read-only open sees a dict the change allows, the read-write open (with `fsck` when it
//! refuses the file) sees the same one, every value compared byte for byte.
//!
//! Index of the cases:
//! - `every_power_loss_state_of_every_change_is_consistent`: the short round, every kind of
//!   change with a few placements of the commit write across a 512-byte sector boundary;
//!   `MMAPPICKLE_POWER_LOSS_ROUND=full` (set by `cargo xtask stress`) runs every placement,
//!   larger values and `MMAPPICKLE_POWER_LOSS_SEEDS` seeds. Prints the figures per kind.
//! - `the_crash_model_reorders_tears_and_orders_renames`: the state enumeration on a
//!   hand-made trace: reorderings, sector tears, renames durable only after the directory's
//!   `fsync`.
//! - `the_trace_parser_follows_descriptors_and_offsets`: strace lines (`-X raw -xx`) to
//!   operations: descriptors to paths, `write` at the tracked offset, resumed calls.
//! - `power_loss_worker`: the body of the recorded child (run directly, it performs every
//!   change without `strace` and checks that the result is the model's).
//!
//! # Crash states
//!
//! A crash point is the moment just before each `fsync`/`fdatasync` of the trace, and the end.
//! At a crash point an operation is durable when an `fsync` of its file (data: writes,
//! truncations) or of the directory (names: create, rename, unlink) came after it; the others
//! are pending. A state applies every durable operation, then:
//! - of the pending data operations, any subset (all of them when there are at most 10,
//!   else every prefix and every single omission), in their order;
//! - each pending write that spans several 512-byte sectors torn: some of its sectors only
//!   (all proper subsets up to 6 sectors, else prefixes, suffixes, single omissions and single
//!   sectors), alone, with the pending operations before it, or with all the others;
//! - of the pending name operations, every prefix (a journal keeps them in order): a rename
//!   is atomic, and durable only once the directory is synced.
//!
//! Identical states are checked once. Before a state is counted the trace itself is checked:
//! replaying all of it onto the copy must give the directory the child left, byte for byte.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mmappickle::{codec, Durability, EmptyArray, Item, MmapDict, Value};
use mmappickle_conformance::WorkerExe;

const JOB_VARIABLE: &str = "MMAPPICKLE_POWER_LOSS_JOB";
const ROUND_VARIABLE: &str = "MMAPPICKLE_POWER_LOSS_ROUND";
const SEEDS_VARIABLE: &str = "MMAPPICKLE_POWER_LOSS_SEEDS";

/// The file every change works on, in its own directory.
const DATA_NAME: &str = "data.mmdpickle";
/// The unit a disk writes atomically (at least): a write across sectors may land in part.
const SECTOR: u64 = 512;
/// Pending data operations up to this many: every subset is a state.
const ALL_SUBSETS_MAX: usize = 10;
/// Sectors of one write up to this many: every proper subset is a tear.
const ALL_TEARS_MAX: usize = 6;

/// What the strace command line traces: every call that changes a file or a name, and the
/// ones that tell which file a descriptor is.
const TRACED_CALLS: &str = "openat,open,creat,close,lseek,pwrite64,write,ftruncate,fallocate,\
fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,pwritev,pwritev2,writev,\
copy_file_range,sendfile,splice";

// ---- the kinds of change and their scenarios ----

/// A kind of change made through the facade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
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

const KINDS: [Kind; 10] = [
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
    fn name(self) -> &'static str {
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

    fn parse(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|kind| kind.name() == name)
    }
}

/// One recorded change: its kind, a seed for its values, a size, and where the old
/// terminator (the commit write's place) sits: `split` bytes before a sector boundary (the
/// 11-byte commit is then cut after `split` bytes by that boundary; 0: inside one sector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scenario {
    kind: Kind,
    seed: u64,
    size: usize,
    split: u64,
}

impl Scenario {
    fn label(&self) -> String {
        format!(
            "{} (seed {}, size {}, commit split {})",
            self.kind.name(),
            self.seed,
            self.size,
            self.split
        )
    }

    fn job(&self, path: &Path) -> String {
        format!(
            "{}|{}|{}|{}",
            self.kind.name(),
            self.seed,
            self.size,
            path.display()
        )
    }

    fn parse_job(job: &str) -> Result<(Kind, u64, usize, PathBuf), String> {
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
fn scenarios(full: bool, seeds: u64) -> Vec<Scenario> {
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

// ---- values and the model of each change ----

/// What a key holds, compared byte for byte.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Value(Value),
    Array {
        dtype: String,
        shape: Vec<usize>,
        data: Vec<u8>,
    },
}

type Dict = BTreeMap<String, Held>;

fn small_value(seed: u64) -> Value {
    Value::List(vec![
        Value::from(format!("value {seed} é")),
        Value::Int(seed as i64 * 7 - 3),
        Value::Bytes((0..40).map(|i| (i as u64 * 13 + seed) as u8).collect()),
    ])
}

/// `n` float64 values that differ from those of any other seed.
fn floats(seed: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (seed * 1_000_003 + i as u64) as f64 * 0.5)
        .collect()
}

fn float_array(seed: u64, n: usize) -> Held {
    Held::Array {
        dtype: "float64".to_owned(),
        shape: vec![n],
        data: floats(seed, n)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    }
}

/// The shape of the stub of a scenario of `size` bytes.
fn stub_shape(size: usize) -> [usize; 2] {
    [size / 64, 8]
}

/// The entries every initial file starts with.
fn base_entries(seed: u64) -> Vec<(String, Held)> {
    vec![
        ("k0".to_owned(), Held::Value(Value::from("zero"))),
        (
            "k1".to_owned(),
            Held::Value(Value::from(vec![1i64, 2, seed as i64])),
        ),
        ("k2".to_owned(), float_array(seed + 100, 40)),
        ("k3".to_owned(), Held::Value(Value::Bytes(vec![7; 300]))),
    ]
}

fn insert_held(dict: &mut MmapDict, key: &str, held: &Held) -> Result<(), mmappickle::Error> {
    match held {
        Held::Value(value) => dict.insert(key, value.clone()),
        Held::Array { data, shape, .. } => {
            let values: Vec<f64> = data
                .chunks_exact(8)
                .map(|chunk| f64::from_le_bytes(chunk.try_into().unwrap_or_default()))
                .collect();
            dict.insert_array(key, &values, shape)
        }
    }
}

/// The value a replace or a batch puts under `k1` (generic) or `k2` (array) for `seed`.
fn replacement(seed: u64, size: usize) -> (&'static str, Held) {
    if seed % 2 == 1 {
        ("k2", float_array(seed + 50, size / 8))
    } else {
        ("k1", Held::Value(small_value(seed + 50)))
    }
}

/// What the change does, as the test sees it: the dicts a state may hold.
#[derive(Debug, Clone)]
struct Expectation {
    /// The dict before the change (acknowledged before it began).
    before: Dict,
    /// The dict after it (acknowledged when it returned).
    after: Dict,
    /// A batch: its inserts and replaces, without its removes of keys that were there
    /// before; a state may hold these with any subset of the removes done.
    batch_removes: Option<(Dict, Vec<String>)>,
}

impl Expectation {
    /// Whether `dict` is allowed: while the change is in flight (`returned` false) the dict
    /// before or after it (a batch: also its inserts with any subset of its removes); once
    /// it returned, only the dict after.
    fn check(&self, dict: &Dict, returned: bool) -> Result<(), String> {
        if dict == &self.after {
            return Ok(());
        }
        if returned {
            return Err(format!(
                "the change had returned, yet the dict differs from its result: {}",
                describe_difference(dict, &self.after)
            ));
        }
        if dict == &self.before {
            return Ok(());
        }
        if let Some((committed, removes)) = &self.batch_removes {
            let partial = committed.iter().all(|(key, held)| {
                dict.get(key) == Some(held) || (removes.contains(key) && !dict.contains_key(key))
            }) && dict.keys().all(|key| committed.contains_key(key));
            if partial {
                return Ok(());
            }
        }
        Err(format!(
            "neither the dict before nor the one after: against before, {}; against after, {}",
            describe_difference(dict, &self.before),
            describe_difference(dict, &self.after)
        ))
    }
}

/// What differs between `found` and `wanted`, key by key (values shortened).
fn describe_difference(found: &Dict, wanted: &Dict) -> String {
    let mut parts = Vec::new();
    for (key, held) in found {
        match wanted.get(key) {
            None => parts.push(format!("{key:?} present but not expected")),
            Some(other) if other != held => {
                parts.push(format!("{key:?} holds {} instead", short(held)))
            }
            _ => {}
        }
    }
    for key in wanted.keys() {
        if !found.contains_key(key) {
            parts.push(format!("{key:?} missing"));
        }
    }
    if parts.is_empty() {
        "the same".to_owned()
    } else {
        parts.join(", ")
    }
}

fn short(held: &Held) -> String {
    let text = format!("{held:?}");
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn dict_of(entries: &[(String, Held)]) -> Dict {
    entries.iter().cloned().collect()
}

/// The initial directory of `scenario` built in `dir` (no strace), and what the change must
/// do to it.
fn prepare(scenario: &Scenario, dir: &Path) -> Result<Expectation, String> {
    let path = dir.join(DATA_NAME);
    let seed = scenario.seed;
    let error = |what: &str, e: mmappickle::Error| format!("preparing {what}: {e}");
    match scenario.kind {
        Kind::Create => {
            return Ok(Expectation {
                before: Dict::new(),
                after: dict_of(&[("new".to_owned(), Held::Value(small_value(seed)))]),
                batch_removes: None,
            })
        }
        Kind::Convert => {
            // What `pickle.dump(d, f, 4)` of a dict of generic values writes.
            let pairs: Vec<(String, Held)> = base_entries(seed)
                .into_iter()
                .filter(|(_, held)| matches!(held, Held::Value(_)))
                .chain([("new".to_owned(), Held::Value(small_value(seed)))])
                .collect();
            let dict = Value::Dict(
                pairs
                    .iter()
                    .filter_map(|(key, held)| match held {
                        Held::Value(value) => Some((Value::from(key.as_str()), value.clone())),
                        Held::Array { .. } => None,
                    })
                    .collect(),
            );
            std::fs::write(&path, codec::dumps(&dict)).map_err(|e| e.to_string())?;
            let converted = dict_of(&pairs);
            return Ok(Expectation {
                before: converted.clone(),
                after: converted,
                batch_removes: None,
            });
        }
        _ => {}
    }
    let mut entries = base_entries(seed);
    // Vacuum needs entries to drop: removed keys and a replaced one.
    let mut doomed = Vec::new();
    if scenario.kind == Kind::Vacuum {
        doomed = (0..3)
            .map(|i| (format!("gone{i}"), Held::Value(small_value(seed + i))))
            .collect();
    }
    let filler_for = |len: usize| {
        (
            "filler".to_owned(),
            Held::Value(Value::Bytes(vec![b'f'; len])),
        )
    };
    // Build with a filler that puts the old terminator `split` bytes before a sector
    // boundary, trying lengths until the page rule (padding near 4 KiB boundaries) agrees.
    let build = |filler_len: usize| -> Result<u64, String> {
        let _ = std::fs::remove_file(&path);
        let mut dict = MmapDict::open(&path).map_err(|e| error("open", e))?;
        for (key, held) in entries.iter().chain(&doomed) {
            insert_held(&mut dict, key, held).map_err(|e| error("insert", e))?;
        }
        for (key, _) in &doomed {
            dict.remove(key).map_err(|e| error("remove", e))?;
        }
        if scenario.kind == Kind::Vacuum {
            let (key, held) = &entries[1];
            insert_held(&mut dict, key, held).map_err(|e| error("replace", e))?;
        }
        let (key, held) = filler_for(filler_len);
        insert_held(&mut dict, &key, &held).map_err(|e| error("filler", e))?;
        drop(dict);
        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        Ok(len - 11)
    };
    let want = if scenario.split == 0 {
        100
    } else {
        SECTOR - scenario.split
    };
    let probe = build(300)?;
    let mut filler_len = 300 + ((want + SECTOR - probe % SECTOR) % SECTOR) as usize;
    let mut placed = false;
    for _ in 0..8 {
        if build(filler_len)? % SECTOR == want {
            placed = true;
            break;
        }
        filler_len += SECTOR as usize;
    }
    if !placed {
        return Err(format!(
            "no filler puts the terminator at {want} mod {SECTOR}"
        ));
    }
    entries.push(filler_for(filler_len));
    let before = dict_of(&entries);
    let mut after = before.clone();
    let mut batch_removes = None;
    match scenario.kind {
        Kind::Insert => {
            after.insert("new".to_owned(), Held::Value(small_value(seed)));
        }
        Kind::InsertPages => {
            after.insert("new".to_owned(), float_array(seed, scenario.size / 8));
        }
        Kind::Replace => {
            let (key, held) = replacement(seed, scenario.size);
            after.insert(key.to_owned(), held);
        }
        Kind::Remove => {
            after.remove("k1");
        }
        Kind::Batch => {
            let (key, held) = replacement(seed, scenario.size);
            after.insert(key.to_owned(), held);
            after.insert("b0".to_owned(), Held::Value(small_value(seed + 1)));
            after.insert("b1".to_owned(), float_array(seed + 2, 100));
            let committed = after.clone();
            after.remove("k0");
            after.remove("k3");
            batch_removes = Some((committed, vec!["k0".to_owned(), "k3".to_owned()]));
        }
        Kind::Stub => {
            let shape = stub_shape(scenario.size);
            after.insert(
                "new".to_owned(),
                Held::Array {
                    dtype: "float64".to_owned(),
                    shape: shape.to_vec(),
                    data: vec![0; shape[0] * shape[1] * 8],
                },
            );
        }
        Kind::Fsck => {
            // A last entry torn: cut in its value (dropped by fsck, size 0) or in its
            // trailer (completed, size 1).
            let torn = Held::Value(Value::Bytes(vec![b't'; 200]));
            let mut dict = MmapDict::open(&path).map_err(|e| error("open", e))?;
            insert_held(&mut dict, "torn", &torn).map_err(|e| error("torn", e))?;
            drop(dict);
            let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
            let cut = if scenario.size == 0 { 11 + 8 + 50 } else { 15 };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            file.set_len(len - cut).map_err(|e| e.to_string())?;
            if scenario.size != 0 {
                after.insert("torn".to_owned(), torn);
            }
            return Ok(Expectation {
                before: after.clone(),
                after,
                batch_removes: None,
            });
        }
        Kind::Vacuum | Kind::Create | Kind::Convert => {}
    }
    Ok(Expectation {
        before,
        after,
        batch_removes,
    })
}

/// The change of a job, made with `Durability::Flush` (the child's body).
fn perform(kind: Kind, seed: u64, size: usize, path: &Path) -> Result<(), mmappickle::Error> {
    let options = MmapDict::options().durability(Durability::Flush);
    if kind == Kind::Fsck {
        options.allow_damaged(true).open(path)?.fsck()?;
        return Ok(());
    }
    let mut dict = options.open(path)?;
    match kind {
        Kind::Insert | Kind::Create => dict.insert("new", small_value(seed)),
        Kind::InsertPages => dict.insert_array("new", &floats(seed, size / 8), &[size / 8]),
        Kind::Replace => {
            let (key, held) = replacement(seed, size);
            insert_held(&mut dict, key, &held)
        }
        Kind::Remove => dict.remove("k1").map(|_| ()),
        Kind::Batch => dict.write(|tx| {
            tx.insert("b0", small_value(seed + 1))?;
            match replacement(seed, size) {
                (key, Held::Value(value)) => tx.insert(key, value)?,
                (key, Held::Array { shape, .. }) => {
                    tx.insert_array(key, &floats(seed + 50, shape[0]), &shape)?
                }
            }
            tx.remove("k0")?;
            tx.insert_array("b1", &floats(seed + 2, 100), &[100])?;
            tx.remove("k3")?;
            Ok(())
        }),
        Kind::Vacuum => dict.vacuum().map(|_| ()),
        Kind::Stub => dict.insert_stub("new", EmptyArray::new::<f64>(&stub_shape(size))),
        // Opening converted it.
        Kind::Convert => Ok(()),
        Kind::Fsck => Ok(()),
    }
}

/// Every live key of `dict` with what it holds.
fn read_dict(dict: &MmapDict) -> Result<Dict, String> {
    let mut read = Dict::new();
    for entry in dict.iter().map_err(|e| format!("listing: {e}"))? {
        let (key, item) = entry.map_err(|e| format!("reading a key: {e}"))?;
        let held = match item {
            Item::Value(value) => Held::Value(value),
            Item::Array(map) => Held::Array {
                dtype: map.dtype().name(),
                shape: map.shape().to_vec(),
                data: map.bytes().to_vec(),
            },
            Item::Masked(_) => return Err(format!("{key:?}: a masked array, never written here")),
        };
        if read.insert(key.clone(), held).is_some() {
            return Err(format!("{key:?} listed twice"));
        }
    }
    Ok(read)
}

// ---- the trace: strace lines to operations ----

/// A change of the file system, as the crash model sees it. Files are inodes (numbered in
/// the order the trace meets them), names are file names in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Write {
        inode: usize,
        offset: u64,
        data: Vec<u8>,
    },
    SetLen {
        inode: usize,
        len: u64,
    },
    /// `fallocate` without `KEEP_SIZE`: the file grows to at least `len`.
    Extend {
        inode: usize,
        len: u64,
    },
    Create {
        name: String,
        inode: usize,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        name: String,
    },
    SyncFile {
        inode: usize,
    },
    SyncDir,
}

impl Op {
    fn is_sync(&self) -> bool {
        matches!(self, Op::SyncFile { .. } | Op::SyncDir)
    }

    fn is_name_op(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Rename { .. } | Op::Unlink { .. }
        )
    }

    /// Whether `sync` makes this operation durable.
    fn synced_by(&self, sync: &Op) -> bool {
        match (self, sync) {
            (
                Op::Write { inode, .. } | Op::SetLen { inode, .. } | Op::Extend { inode, .. },
                Op::SyncFile { inode: synced },
            ) => inode == synced,
            (_, Op::SyncDir) => self.is_name_op(),
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Op::Write {
                inode,
                offset,
                data,
            } => format!(
                "write of {} bytes at {offset} (to {}) into file #{inode}",
                data.len(),
                offset + data.len() as u64
            ),
            Op::SetLen { inode, len } => format!("ftruncate of file #{inode} to {len}"),
            Op::Extend { inode, len } => format!("fallocate of file #{inode} to {len}"),
            Op::Create { name, inode } => format!("create {name:?} (file #{inode})"),
            Op::Rename { from, to } => format!("rename {from:?} -> {to:?}"),
            Op::Unlink { name } => format!("unlink {name:?}"),
            Op::SyncFile { inode } => format!("fsync of file #{inode}"),
            Op::SyncDir => "fsync of the directory".to_owned(),
        }
    }
}

/// What a traced descriptor refers to.
#[derive(Debug, Clone, Copy)]
enum Target {
    File { inode: usize, position: u64 },
    Dir,
}

/// Reads a trace of `strace -f -X raw -xx -s N` into the operations on the directory `dir`
/// (whose files at the start are `initial`, numbered as inodes in name order). Calls on other
/// paths and descriptors are skipped; a call this model does not know on a tracked
/// descriptor is an error.
#[derive(Debug)]
struct TraceReader {
    dir: String,
    names: BTreeMap<String, usize>,
    n_inodes: usize,
    descriptors: HashMap<i64, Target>,
    /// Calls cut by another thread's (`<unfinished ...>`), by process id.
    unfinished: HashMap<String, String>,
    ops: Vec<Op>,
}

/// One argument of a traced call.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Bytes(Vec<u8>),
    Int(i64),
    Other(String),
}

impl TraceReader {
    fn new(dir: &Path, initial: &[String]) -> TraceReader {
        let names: BTreeMap<String, usize> = initial
            .iter()
            .enumerate()
            .map(|(inode, name)| (name.clone(), inode))
            .collect();
        TraceReader {
            dir: dir.to_string_lossy().trim_end_matches('/').to_owned(),
            n_inodes: names.len(),
            names,
            descriptors: HashMap::new(),
            unfinished: HashMap::new(),
            ops: Vec::new(),
        }
    }

    fn read(&mut self, trace: &str) -> Result<(), String> {
        for (line_idx, line) in trace.lines().enumerate() {
            self.line(line)
                .map_err(|e| format!("trace line {}: {e}: {}", line_idx + 1, clip(line)))?;
        }
        if let Some((pid, call)) = self.unfinished.iter().next() {
            return Err(format!(
                "process {pid} never finished the call {}",
                clip(call)
            ));
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim_end();
        let (pid, rest) = match line.split_once(' ') {
            Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => (pid, rest.trim()),
            _ => ("", line),
        };
        if rest.starts_with("+++") || rest.starts_with("---") || rest.is_empty() {
            return Ok(());
        }
        if let Some(start) = rest.strip_suffix("<unfinished ...>") {
            self.unfinished
                .insert(pid.to_owned(), start.trim_end().to_owned());
            return Ok(());
        }
        let whole;
        let call = if let Some(resumed) = rest.strip_prefix("<... ") {
            let (_, tail) = resumed
                .split_once(" resumed>")
                .ok_or("a resumed call without `resumed>`")?;
            let start = self
                .unfinished
                .remove(pid)
                .ok_or("a resumed call that never started")?;
            whole = format!("{start}{tail}");
            whole.as_str()
        } else {
            rest
        };
        self.call(call)
    }

    fn call(&mut self, call: &str) -> Result<(), String> {
        let open = call.find('(').ok_or("no `(`")?;
        let name = &call[..open];
        // The `)` closing the arguments, then (after alignment spaces) `= RESULT [ERRNO (text)]`.
        let (close, result_part) = call
            .match_indices(')')
            .rev()
            .find_map(|(idx, _)| Some((idx, call[idx + 1..].trim_start().strip_prefix("= ")?)))
            .ok_or("no result")?;
        let result_text = result_part.split_whitespace().next().unwrap_or("");
        let result: i64 = if result_text == "?" {
            -1
        } else {
            parse_int(result_text).ok_or_else(|| format!("result {result_text:?}"))?
        };
        let args = parse_args(&call[open + 1..close])?;
        if result < 0 {
            // A failed call changed nothing (`unlink` of a missing scratch file, say).
            return Ok(());
        }
        let int = |idx: usize| match args.get(idx) {
            Some(Arg::Int(value)) => Ok(*value),
            other => Err(format!("argument {idx} of {name}: {other:?}, not a number")),
        };
        let bytes = |idx: usize| match args.get(idx) {
            Some(Arg::Bytes(bytes)) => Ok(bytes.clone()),
            other => Err(format!("argument {idx} of {name}: {other:?}, not a string")),
        };
        let at_cwd = |idx: usize| -> Result<(), String> {
            match int(idx)? {
                -100 => Ok(()),
                fd if self.descriptors.contains_key(&fd) => {
                    Err(format!("{name} relative to a traced descriptor"))
                }
                _ => Ok(()),
            }
        };
        match name {
            "openat" => {
                at_cwd(0)?;
                self.opened(&bytes(1)?, int(2)?, result)
            }
            "open" => self.opened(&bytes(0)?, int(1)?, result),
            // creat(path, mode) is open(path, O_CREAT | O_WRONLY | O_TRUNC, mode).
            "creat" => self.opened(&bytes(0)?, 0o1101, result),
            "close" => {
                self.descriptors.remove(&int(0)?);
                Ok(())
            }
            "lseek" => {
                if let Some(Target::File { position, .. }) = self.descriptors.get_mut(&int(0)?) {
                    *position = result as u64;
                }
                Ok(())
            }
            "pwrite64" => {
                if let Some(inode) = self.file_of(int(0)?)? {
                    let data = bytes(1)?;
                    self.write(inode, int(3)? as u64, &data, result)?;
                }
                Ok(())
            }
            "write" => {
                let fd = int(0)?;
                if let Some(Target::File { inode, position }) = self.descriptors.get(&fd).copied() {
                    let data = bytes(1)?;
                    self.write(inode, position, &data, result)?;
                    self.descriptors.insert(
                        fd,
                        Target::File {
                            inode,
                            position: position + result as u64,
                        },
                    );
                } else if matches!(self.descriptors.get(&fd), Some(Target::Dir)) {
                    return Err("write to a directory".to_owned());
                }
                Ok(())
            }
            "ftruncate" => {
                if let Some(inode) = self.file_of(int(0)?)? {
                    let len = int(1)? as u64;
                    self.ops.push(Op::SetLen { inode, len });
                }
                Ok(())
            }
            "fallocate" => {
                if let Some(inode) = self.file_of(int(0)?)? {
                    const KEEP_SIZE: i64 = 1;
                    let (mode, offset, len) = (int(1)?, int(2)?, int(3)?);
                    match mode {
                        // Space only: no byte and no length changes.
                        KEEP_SIZE => {}
                        0 => self.ops.push(Op::Extend {
                            inode,
                            len: (offset + len) as u64,
                        }),
                        _ => return Err(format!("fallocate mode {mode:#x} is not modelled")),
                    }
                }
                Ok(())
            }
            "fsync" | "fdatasync" => {
                match self.descriptors.get(&int(0)?) {
                    Some(Target::File { inode, .. }) => {
                        self.ops.push(Op::SyncFile { inode: *inode })
                    }
                    Some(Target::Dir) => self.ops.push(Op::SyncDir),
                    None => {}
                }
                Ok(())
            }
            "rename" => self.renamed(&bytes(0)?, &bytes(1)?),
            "renameat" | "renameat2" => {
                at_cwd(0)?;
                at_cwd(2)?;
                if name == "renameat2" && int(4)? != 0 {
                    return Err("renameat2 flags are not modelled".to_owned());
                }
                self.renamed(&bytes(1)?, &bytes(3)?)
            }
            "unlink" => self.unlinked(&bytes(0)?),
            "unlinkat" => {
                at_cwd(0)?;
                self.unlinked(&bytes(1)?)
            }
            "pwritev" | "pwritev2" | "writev" | "copy_file_range" | "sendfile" | "splice" => {
                let touches = args.iter().any(|arg| match arg {
                    Arg::Int(fd) => self.descriptors.contains_key(fd),
                    _ => false,
                });
                if touches {
                    Err(format!("{name} on a traced file is not modelled"))
                } else {
                    Ok(())
                }
            }
            _ => Err(format!("{name} was not asked for")),
        }
    }

    /// The file name in the directory that `path` names, `Ok(None)` for a path elsewhere.
    fn name_in_dir(&self, path: &[u8]) -> Result<Option<String>, String> {
        let path = String::from_utf8(path.to_vec()).map_err(|_| "a path of invalid UTF-8")?;
        let path = if path.starts_with('/') {
            path
        } else {
            // The child runs in `/`.
            format!("/{path}")
        };
        let path = path.trim_end_matches('/');
        if path == self.dir {
            return Ok(Some(String::new()));
        }
        match path
            .strip_prefix(&self.dir)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(name) if !name.contains('/') && name != "." && name != ".." => {
                Ok(Some(name.to_owned()))
            }
            Some(name) => Err(format!("{name:?} is not a plain name in the directory")),
            None => Ok(None),
        }
    }

    fn opened(&mut self, path: &[u8], flags: i64, fd: i64) -> Result<(), String> {
        const O_CREAT: i64 = 0o100;
        const O_TRUNC: i64 = 0o1000;
        const O_APPEND: i64 = 0o2000;
        let Some(name) = self.name_in_dir(path)? else {
            self.descriptors.remove(&fd);
            return Ok(());
        };
        if name.is_empty() {
            self.descriptors.insert(fd, Target::Dir);
            return Ok(());
        }
        if flags & O_APPEND != 0 {
            return Err("O_APPEND is not modelled".to_owned());
        }
        let inode = match self.names.get(&name) {
            Some(&inode) => {
                if flags & O_TRUNC != 0 {
                    self.ops.push(Op::SetLen { inode, len: 0 });
                }
                inode
            }
            None if flags & O_CREAT != 0 => {
                let inode = self.n_inodes;
                self.n_inodes += 1;
                self.names.insert(name.clone(), inode);
                self.ops.push(Op::Create { name, inode });
                inode
            }
            None => return Err(format!("{name:?} opened, but it does not exist")),
        };
        self.descriptors
            .insert(fd, Target::File { inode, position: 0 });
        Ok(())
    }

    fn file_of(&self, fd: i64) -> Result<Option<usize>, String> {
        match self.descriptors.get(&fd) {
            Some(Target::File { inode, .. }) => Ok(Some(*inode)),
            Some(Target::Dir) => Err("a file operation on the directory".to_owned()),
            None => Ok(None),
        }
    }

    fn write(
        &mut self,
        inode: usize,
        offset: u64,
        data: &[u8],
        written: i64,
    ) -> Result<(), String> {
        let written = usize::try_from(written).map_err(|_| "a negative count")?;
        let data = data
            .get(..written)
            .ok_or("more bytes written than the buffer holds (is -s too small?)")?;
        if !data.is_empty() {
            self.ops.push(Op::Write {
                inode,
                offset,
                data: data.to_vec(),
            });
        }
        Ok(())
    }

    fn renamed(&mut self, from: &[u8], to: &[u8]) -> Result<(), String> {
        match (self.name_in_dir(from)?, self.name_in_dir(to)?) {
            (None, None) => Ok(()),
            (Some(from), Some(to)) if !from.is_empty() && !to.is_empty() => {
                let inode = self
                    .names
                    .remove(&from)
                    .ok_or_else(|| format!("rename of {from:?}, which does not exist"))?;
                self.names.insert(to.clone(), inode);
                self.ops.push(Op::Rename { from, to });
                Ok(())
            }
            _ => Err("a rename into or out of the directory".to_owned()),
        }
    }

    fn unlinked(&mut self, path: &[u8]) -> Result<(), String> {
        match self.name_in_dir(path)? {
            None => Ok(()),
            Some(name) if !name.is_empty() => {
                self.names.remove(&name);
                self.ops.push(Op::Unlink { name });
                Ok(())
            }
            Some(_) => Err("unlink of the directory".to_owned()),
        }
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -value } else { value })
}

/// The arguments of a call printed with `-xx` (every string byte as `\xNN`).
fn parse_args(text: &str) -> Result<Vec<Arg>, String> {
    let bytes = text.as_bytes();
    let mut args = Vec::new();
    let mut idx = 0;
    while idx < bytes.len() {
        while bytes.get(idx) == Some(&b' ') {
            idx += 1;
        }
        if bytes.get(idx) == Some(&b'"') {
            idx += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(idx..idx + 4) {
                    Some([b'\\', b'x', high, low]) => {
                        let hex = [*high, *low];
                        let hex = std::str::from_utf8(&hex).map_err(|_| "a bad escape")?;
                        value.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad escape")?);
                        idx += 4;
                    }
                    _ if bytes.get(idx) == Some(&b'"') => {
                        idx += 1;
                        break;
                    }
                    _ => return Err("a string not printed with -xx".to_owned()),
                }
            }
            if bytes.get(idx..idx + 3) == Some(b"...") {
                return Err("a string cut short (is -s too small?)".to_owned());
            }
            args.push(Arg::Bytes(value));
        } else {
            let start = idx;
            let mut depth = 0i32;
            while let Some(&byte) = bytes.get(idx) {
                match byte {
                    b'{' | b'[' | b'(' => depth += 1,
                    b'}' | b']' | b')' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                idx += 1;
            }
            let token = text[start..idx].trim();
            args.push(match parse_int(token) {
                Some(value) => Arg::Int(value),
                None => Arg::Other(token.to_owned()),
            });
        }
        while bytes.get(idx) == Some(&b' ') {
            idx += 1;
        }
        match bytes.get(idx) {
            Some(b',') => idx += 1,
            None => {}
            Some(_) => return Err(format!("unexpected text at {idx} of the arguments")),
        }
    }
    Ok(args)
}

// ---- the crash model ----

/// The files of the directory: names to inodes, inodes to bytes.
#[derive(Debug, Clone, Default)]
struct Fs {
    names: BTreeMap<String, usize>,
    inodes: Vec<Vec<u8>>,
}

impl Fs {
    fn from_files(files: &BTreeMap<String, Vec<u8>>) -> Fs {
        Fs {
            names: files.keys().cloned().zip(0..).collect(),
            inodes: files.values().cloned().collect(),
        }
    }

    fn inode(&mut self, inode: usize) -> &mut Vec<u8> {
        if self.inodes.len() <= inode {
            self.inodes.resize(inode + 1, Vec::new());
        }
        &mut self.inodes[inode]
    }

    /// Applies `op`; `sectors` keeps only those 512-byte pieces of a write (a tear).
    fn apply(&mut self, op: &Op, sectors: Option<&[bool]>) {
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
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
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

    fn digest(&self) -> u64 {
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
fn sector_pieces(offset: u64, len: usize) -> Vec<(usize, usize)> {
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
fn tears(n: usize) -> Vec<Vec<bool>> {
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
enum Landing {
    Lost,
    Whole,
    Torn(Vec<bool>),
}

/// One state a power cut may leave.
#[derive(Debug)]
struct CrashState {
    /// Operations issued before the cut (the crash point).
    crash_point: usize,
    /// Whether the change had returned (the cut came after its last call).
    returned: bool,
    /// How each pending data operation landed, by its index in the trace.
    landings: Vec<(usize, Landing)>,
    /// The pending name operations, by index in the trace, and how many of them landed.
    pending_names: Vec<usize>,
    names_landed: usize,
    fs: Fs,
}

impl CrashState {
    fn describe(&self, ops: &[Op]) -> String {
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
fn crash_states(initial: &Fs, ops: &[Op]) -> Vec<CrashState> {
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
fn data_landings(ops: &[Op], pending: &[usize]) -> Vec<Vec<(usize, Landing)>> {
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

// ---- checking one state ----

/// What checking a state found.
#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    /// The read-only open refused it and the read-write open (or fsck) repaired it.
    repaired: bool,
    /// The read-write open refused it and fsck repaired it.
    fsck: bool,
}

/// Writes `files` into the empty directory `dir` and checks the dict found there.
fn check_state(
    files: &BTreeMap<String, Vec<u8>>,
    dir: &Path,
    expectation: &Expectation,
    returned: bool,
) -> Result<Checked, String> {
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::remove_file(entry.path()).map_err(|e| e.to_string())?;
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).map_err(|e| e.to_string())?;
    }
    let path = dir.join(DATA_NAME);
    let mut checked = Checked::default();
    let read_only = match MmapDict::open_readonly(&path) {
        Ok(dict) => {
            let read = read_dict(&dict).map_err(|e| format!("read-only open: {e}"))?;
            expectation
                .check(&read, returned)
                .map_err(|e| format!("read-only open: {e}"))?;
            Some(read)
        }
        Err(_) => {
            checked.repaired = true;
            None
        }
    };
    let dict = match MmapDict::open(&path) {
        Ok(dict) => dict,
        Err(open_error) => {
            checked.fsck = true;
            let mut damaged = MmapDict::options()
                .allow_damaged(true)
                .open(&path)
                .map_err(|e| format!("open refused it ({open_error}), and so did fsck's: {e}"))?;
            damaged
                .fsck()
                .map_err(|e| format!("open refused it ({open_error}), fsck failed: {e}"))?;
            drop(damaged);
            MmapDict::open(&path).map_err(|e| format!("refused even after fsck: {e}"))?
        }
    };
    let read = read_dict(&dict).map_err(|e| format!("read-write open: {e}"))?;
    expectation
        .check(&read, returned)
        .map_err(|e| format!("read-write open: {e}"))?;
    if let Some(read_only) = read_only {
        if read_only != read {
            return Err(format!(
                "the read-only open and the read-write open disagree: {}",
                describe_difference(&read, &read_only)
            ));
        }
    }
    Ok(checked)
}

// ---- one scenario: prepare, record, replay, check ----

/// Figures of one kind of change.
#[derive(Debug, Default, Clone)]
struct Figures {
    scenarios: usize,
    operations: usize,
    syncs: usize,
    states: usize,
    repaired: usize,
    fsck: usize,
    /// Failing states: what was wrong.
    failures: Vec<String>,
}

fn read_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        files.insert(
            name,
            std::fs::read(entry.path()).map_err(|e| e.to_string())?,
        );
    }
    Ok(files)
}

/// strace, or a clear reason why the test cannot run.
fn strace() -> PathBuf {
    for candidate in ["/usr/bin/strace", "/bin/strace"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "strace is needed to record system calls (`apt-get install strace`; .ci/run installs it)"
    );
}

/// Runs `scenario` under strace and checks every crash state; adds to `figures`.
fn run_scenario(
    scenario: &Scenario,
    workers: &WorkerExe,
    figures: &mut Figures,
) -> Result<(), String> {
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let work = root.path().join("work");
    let check_dir = root.path().join("check");
    std::fs::create_dir(&work).map_err(|e| e.to_string())?;
    std::fs::create_dir(&check_dir).map_err(|e| e.to_string())?;
    let expectation = prepare(scenario, &work)?;
    let initial = read_files(&work)?;
    let trace_path = root.path().join("trace");
    let worker = workers.command(&scenario.job(&work.join(DATA_NAME)));
    let mut command = Command::new(strace());
    command
        .args(["-f", "-X", "raw", "-xx", "-s", "100000000", "-e"])
        .arg(format!("trace={TRACED_CALLS}"))
        .arg("-o")
        .arg(&trace_path)
        .arg("--")
        .arg(worker.get_program())
        .args(worker.get_args())
        .current_dir("/");
    for (key, value) in worker.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the recorded change failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let trace = std::fs::read_to_string(&trace_path).map_err(|e| e.to_string())?;
    let names: Vec<String> = initial.keys().cloned().collect();
    let mut reader = TraceReader::new(&work, &names);
    reader.read(&trace)?;
    let ops = reader.ops;
    // The recording is checked against the real outcome before any state is built from it.
    let initial_fs = Fs::from_files(&initial);
    let mut replayed = initial_fs.clone();
    for op in &ops {
        replayed.apply(op, None);
    }
    let result = read_files(&work)?;
    if replayed.files() != result {
        return Err(format!(
            "replaying the {} recorded operations does not give the directory the change left \
             (names {:?} vs {:?}): a system call escaped the trace",
            ops.len(),
            replayed.files().keys().collect::<Vec<_>>(),
            result.keys().collect::<Vec<_>>()
        ));
    }
    let dict = MmapDict::open_readonly(work.join(DATA_NAME))
        .map_err(|e| format!("the result does not open: {e}"))?;
    let after = read_dict(&dict)?;
    drop(dict);
    if after != expectation.after {
        return Err(format!(
            "the change did not do what the model says: {}",
            describe_difference(&after, &expectation.after)
        ));
    }
    if !ops.iter().any(Op::is_sync) {
        return Err("no fsync in the trace: is the change made with Durability::Flush?".into());
    }
    figures.scenarios += 1;
    figures.operations += ops.len();
    figures.syncs += ops.iter().filter(|op| op.is_sync()).count();
    for state in crash_states(&initial_fs, &ops) {
        figures.states += 1;
        match check_state(&state.fs.files(), &check_dir, &expectation, state.returned) {
            Ok(checked) => {
                figures.repaired += usize::from(checked.repaired);
                figures.fsck += usize::from(checked.fsck);
            }
            Err(problem) => figures.failures.push(format!(
                "{}: {}: {problem}",
                scenario.label(),
                state.describe(&ops)
            )),
        }
    }
    Ok(())
}

// ---- the tests ----

#[test]
fn every_power_loss_state_of_every_change_is_consistent() {
    let full = std::env::var(ROUND_VARIABLE).is_ok_and(|round| round == "full");
    let seeds = match std::env::var(SEEDS_VARIABLE) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{SEEDS_VARIABLE} must be a number, found {text:?}")),
        Err(_) if full => 4,
        Err(_) => 2,
    };
    let start = Instant::now();
    let workers = WorkerExe::new("power_loss_worker", JOB_VARIABLE);
    let mut by_kind: BTreeMap<Kind, Figures> = BTreeMap::new();
    for scenario in scenarios(full, seeds) {
        let figures = by_kind.entry(scenario.kind).or_default();
        if let Err(problem) = run_scenario(&scenario, &workers, figures) {
            panic!("{}: {problem}", scenario.label());
        }
    }
    println!(
        "power loss, {} round: kind | recorded changes | operations | fsyncs | crash states | \
         read-only open refused | needed fsck | failing",
        if full { "full" } else { "short" }
    );
    for (kind, figures) in &by_kind {
        println!(
            "{} | {} | {} | {} | {} | {} | {} | {}",
            kind.name(),
            figures.scenarios,
            figures.operations,
            figures.syncs,
            figures.states,
            figures.repaired,
            figures.fsck,
            figures.failures.len()
        );
    }
    let total: usize = by_kind.values().map(|figures| figures.states).sum();
    println!(
        "{total} crash states checked in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let failures: Vec<&String> = by_kind
        .values()
        .flat_map(|figures| &figures.failures)
        .collect();
    assert!(
        failures.is_empty(),
        "{} crash states fail (showing 20):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .map(|failure| failure.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// The body of the recorded child. Run directly (no job given), it makes every kind of change
// in this process, without strace, and checks that each gives the model's dict.
#[test]
fn power_loss_worker() {
    let Ok(job) = std::env::var(JOB_VARIABLE) else {
        for kind in KINDS {
            let scenario = Scenario {
                kind,
                seed: 3,
                size: if kind == Kind::Fsck { 1 } else { 4096 },
                split: 4,
            };
            let dir = tempfile::tempdir().unwrap();
            let expectation = prepare(&scenario, dir.path()).unwrap();
            let path = dir.path().join(DATA_NAME);
            perform(kind, scenario.seed, scenario.size, &path).unwrap();
            let after = read_dict(&MmapDict::open_readonly(&path).unwrap()).unwrap();
            assert_eq!(after, expectation.after, "{}", scenario.label());
            if !matches!(kind, Kind::Vacuum | Kind::Fsck | Kind::Convert) {
                assert_ne!(
                    expectation.before,
                    expectation.after,
                    "{}",
                    scenario.label()
                );
            }
        }
        return;
    };
    let (kind, seed, size, path) = Scenario::parse_job(&job).unwrap();
    perform(kind, seed, size, &path).unwrap_or_else(|e| panic!("{job}: {e}"));
}

#[test]
fn the_trace_parser_follows_descriptors_and_offsets() {
    let dir = Path::new("/d");
    let mut reader = TraceReader::new(dir, &["a".to_owned()]);
    let trace = [
        r#"10 openat(-100, "\x2f\x64\x2f\x61", 0x80002) = 3"#,
        r#"10 openat(-100, "\x2f\x65\x74\x63", 0x80000) = 4"#,
        r#"10 pwrite64(4, "\x00", 1, 0) = 1"#,
        r#"10 pwrite64(3, "\x41\x42\x43", 3, 7) = 2"#,
        r#"10 write(3, "\x58\x59", 2) = 2"#,
        r#"10 lseek(3, 100, 0) = 100"#,
        r#"11 write(3, "\x5a", 1 <unfinished ...>"#,
        r#"10 fsync(3) = 0"#,
        r#"11 <... write resumed>) = 1"#,
        r#"10 openat(-100, "\x2f\x64\x2f\x62", 0x80241, 0666) = 5"#,
        r#"10 unlink("\x2f\x64\x2f\x7a") = -1 ENOENT (No such file or directory)"#,
        r#"10 rename("\x2f\x64\x2f\x62", "\x2f\x64\x2f\x61") = 0"#,
        r#"10 openat(-100, "\x2f\x64", 0x10000) = 6"#,
        r#"10 fsync(6) = 0"#,
        r#"10 ftruncate(5, 0x10) = 0"#,
        "10 +++ exited with 0 +++",
    ]
    .join("\n");
    reader.read(&trace).unwrap();
    let write = |offset: u64, data: &[u8]| Op::Write {
        inode: 0,
        offset,
        data: data.to_vec(),
    };
    assert_eq!(
        reader.ops,
        [
            write(7, b"AB"),
            write(0, b"XY"),
            Op::SyncFile { inode: 0 },
            write(100, b"Z"),
            Op::Create {
                name: "b".to_owned(),
                inode: 1
            },
            Op::Rename {
                from: "b".to_owned(),
                to: "a".to_owned()
            },
            Op::SyncDir,
            Op::SetLen { inode: 1, len: 16 },
        ]
    );
    // What the model does not know is an error, not a silent gap.
    for bad in [
        r#"1 pwritev(3, [], 0, 0) = 0"#,
        r#"1 pwrite64(3, "\x41"..., 1, 0) = 1"#,
        r#"1 openat(-100, "\x2f\x64\x2f\x78\x2f\x79", 0x41) = 3"#,
    ] {
        let mut reader = TraceReader::new(dir, &["a".to_owned()]);
        reader
            .read(r#"1 openat(-100, "\x2f\x64\x2f\x61", 0x2) = 3"#)
            .unwrap();
        assert!(reader.read(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_crash_model_reorders_tears_and_orders_renames() {
    let initial = Fs::from_files(&BTreeMap::from([("f".to_owned(), vec![b'.'; 1024])]));
    let write = |inode: usize, offset: u64, data: &[u8]| Op::Write {
        inode,
        offset,
        data: data.to_vec(),
    };
    // Two writes, then a sync: every subset, and the second write (across a sector
    // boundary) torn.
    let ops = [
        write(0, 0, b"A"),
        write(0, 510, b"BBBB"),
        Op::SyncFile { inode: 0 },
    ];
    let states = crash_states(&initial, &ops);
    let contents: Vec<Vec<u8>> = states
        .iter()
        .map(|state| state.fs.files()["f"].clone())
        .collect();
    let with = |a: bool, b: &[u8]| {
        let mut file = vec![b'.'; 1024];
        if a {
            file[0] = b'A';
        }
        file[510..514].copy_from_slice(b);
        file
    };
    for wanted in [
        with(false, b"...."),
        with(true, b"...."),
        with(false, b"BBBB"),
        with(true, b"BBBB"),
        with(false, b"BB.."),
        with(true, b"..BB"),
    ] {
        assert!(contents.contains(&wanted), "{:?}", &wanted[508..516]);
    }
    // The end point holds only the synced result.
    let at_end: Vec<&CrashState> = states.iter().filter(|state| state.returned).collect();
    assert_eq!(at_end.len(), 1);
    assert_eq!(at_end[0].fs.files()["f"], with(true, b"BBBB"));
    // A rename is pending until the directory is synced, and names land in order.
    let ops = [
        Op::Create {
            name: "s".to_owned(),
            inode: 1,
        },
        write(1, 0, b"new"),
        Op::SyncFile { inode: 1 },
        Op::Rename {
            from: "s".to_owned(),
            to: "f".to_owned(),
        },
        Op::SyncDir,
    ];
    let states = crash_states(&initial, &ops);
    // (Identical states are kept once, at the first crash point that leaves them.)
    let at_dir_sync: Vec<BTreeMap<String, Vec<u8>>> = states
        .iter()
        .filter(|state| !state.returned)
        .map(|state| state.fs.files())
        .collect();
    assert!(at_dir_sync
        .iter()
        .any(|files| files.len() == 1 && files["f"][0] == b'.'));
    assert!(at_dir_sync
        .iter()
        .any(|files| files.len() == 1 && files["f"] == b"new"));
    assert!(at_dir_sync
        .iter()
        .any(|files| files.len() == 2 && files["s"] == b"new"));
    let end: Vec<&CrashState> = states.iter().filter(|state| state.returned).collect();
    assert_eq!(end.len(), 1);
    assert_eq!(
        end[0].fs.files(),
        BTreeMap::from([("f".to_owned(), b"new".to_vec())])
    );
    // Many sectors: tears are bounded (prefixes, suffixes, single omissions and singles).
    assert_eq!(tears(3).len(), 6);
    assert_eq!(tears(20).len(), 2 * 19 + 2 * 20);
    assert_eq!(sector_pieces(500, 600), [(0, 12), (12, 524), (524, 600)]);
}
