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
//! The modules, in the order a scenario uses them: `kinds` (the kinds of change and their
//! scenarios), `changes` (the values, each change through the facade and its model),
//! `trace` (strace lines to operations), `crash_model` (the states a power cut may leave) and
//! `scenario` (prepare, record, replay, check). The tests are here.
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

mod changes;
mod crash_model;
mod kinds;
mod scenario;
mod trace;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use mmappickle::MmapDict;
use mmappickle_conformance::WorkerExe;

use crate::changes::{perform, prepare, read_dict};
use crate::crash_model::{crash_states, sector_pieces, tears, CrashState, Fs};
use crate::kinds::{scenarios, Kind, Scenario, KINDS};
use crate::scenario::{run_scenario, Figures};
use crate::trace::{Op, TraceReader};

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
