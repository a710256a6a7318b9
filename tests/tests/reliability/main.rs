//! Reliability of the facade (`mmappickle::MmapDict`) under crashes, concurrency and hostile
//! files (`RELIABILITY.md` at the workspace root says what we promise and how it is tested).
//!
//! One module per section of `RELIABILITY.md` (`crash`, `concurrency`, `hostile`, `mapped`),
//! beside `plan` (random plans and their model) and `workers` (the child processes and the
//! Python readers). Index of the cases:
//! - `crash::crash_injection_loses_no_acknowledged_operation`: a child process runs a random plan of
//!   inserts (generic values and arrays), replaces, deletes, stub inserts, vacuums and
//!   batches of the others (`MmapDict::write`), acknowledging each finished operation on its standard output (a pipe); the parent
//!   SIGKILLs it at a random moment, then checks that a read-only open sees every
//!   acknowledged operation (and at most the one in flight) without changing a byte, that a
//!   read-write open (with fsck where needed) keeps exactly that, and that Python's
//!   `pickle.load` (the crash image and the repaired file) and `mmappickle.mmapdict` read it
//!   with the same values; a kill inside a batch may also leave its inserts with a prefix
//!   of its removes (`partial_states`, the promise of `RELIABILITY.md`). 50 kills here (`MMAPPICKLE_RELIABILITY_KILLS` overrides, which
//!   `cargo xtask stress --kills N` sets); the figures are printed.
//! - `crash::a_commit_torn_at_a_page_boundary_reads_as_the_old_dict`: the 11-byte commit of an
//!   append torn after 1 to 9 bytes (SIGKILL between two pages of one `pwrite`, which the crash
//!   test met) reads as the old dict, read-only and for `pickle.load`; a read-write open
//!   restores the old file byte for byte.
//! - `crash::changes_never_leave_a_terminator_across_a_page`: appends and vacuum move a terminator
//!   that would cross a 4 KiB boundary past it with a padding entry, so no commit can tear.
//! - `concurrency::rust_and_python_processes_write_concurrently`: 4 Rust processes (200 keys each) and 4
//!   Python `mmapdict` processes (50 keys each here, 200 under `cargo xtask stress`:
//!   `MMAPPICKLE_RELIABILITY_PYTHON_KEYS`) store, replace and delete keys in one file at once:
//!   exactly the expected keys, values and commit number, read by us, by `pickle.load` and by
//!   `mmapdict`.
//! - `concurrency::threads_share_a_dict_and_open_their_own`: 4 threads behind one `Mutex<MmapDict>` and 4
//!   threads with a handle each, same plan: exactly the expected keys and values.
//! - `concurrency::maps_stay_valid_while_others_append_and_vacuum`: maps held by a reader keep their data
//!   while a writer process appends and another handle vacuums (the file is replaced, the
//!   mapped inode lives on), and the reader then sees the new file.
//! - `hostile::hostile_files_give_clear_errors`: the malformed headers of the Python suite, every
//!   truncation point and single-byte flips of a sample file, and hand-made entries (frame
//!   length 2^63, a key of invalid UTF-8, an array whose raw length disagrees with its shape,
//!   a shape whose product overflows, a million nested lists, a memo GET of a missing index,
//!   NEXT_BUFFER, ...): every one is an `Err` or a consistent read, never a panic, never a
//!   byte changed by a read-only open (SHA-256 before and after). The table runs in a child
//!   process limited to 1 GiB of address space (`ulimit -v`), so an allocation sized by a
//!   hostile number aborts it and fails the test.
//! - `mapped::our_operations_never_shrink_a_mapped_file`: while maps are alive, every operation of
//!   this process (insert, replace, remove, fsck, reopen, vacuum by another handle) leaves the
//!   mapped inode at least as long as every map; vacuum makes a new inode.
//! - `mapped::a_file_truncated_before_mapping_is_an_error`: a file cut short by someone else is
//!   an error at `get`, not a fault (the length is checked under the lock before mapping).
//! - `mapped::a_foreign_truncation_under_a_live_map_raises_sigbus`: the hazard we document but
//!   cannot prevent: a process that truncates the file under a live map kills the reader with
//!   SIGBUS (as in any language).
//! - `reliability_worker`: the body of the child processes (run directly, it checks that the
//!   crash plan and its model agree in one process).
//!
//! The Rust child processes re-run (a private copy of) this test binary with
//! `reliability_worker` as the only test and their job in `MMAPPICKLE_RELIABILITY_WORKER`.

mod concurrency;
mod crash;
mod hostile;
mod mapped;
mod plan;
mod workers;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use mmappickle::MmapDict;

use crate::plan::{apply_to_dict, model_after, planned_op, read_state};
use crate::workers::{crash_child, go_path, run_writer_plan, wait_for};

const WORKER_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_WORKER";
const KILLS_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_KILLS";
const SEED_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_SEED";
/// Kills of the crash test in the test command.
const DEFAULT_KILLS: usize = 50;
const PYTHON_KEYS_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_PYTHON_KEYS";
/// Keys per Python writer in the test command. Python's `mmapdict` re-reads every entry
/// header whenever another process changed the file, so its cost grows with the square of the
/// keys: the full 200 run in `cargo xtask stress`.
const DEFAULT_PYTHON_KEYS: usize = 50;
/// Address space of the hostile-file child, in KiB (`ulimit -v`): 1 GiB.
const HOSTILE_ADDRESS_SPACE_KIB: u64 = 1 << 20;

// The body of the child processes. Run directly (no job given), it runs 60 steps of a crash
// plan in this process and checks that the dict agrees with the model.
#[test]
fn reliability_worker() {
    let Ok(job) = std::env::var(WORKER_VARIABLE) else {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.mmdpickle");
        let mut dict = MmapDict::open(&path).unwrap();
        let mut kinds = BTreeMap::new();
        for step in 0..60 {
            let op = planned_op(7, step);
            *kinds.entry(op.kind()).or_insert(0) += 1;
            apply_to_dict(&mut dict, &op).unwrap();
        }
        assert_eq!(read_state(&mut dict).unwrap(), model_after(7, 60));
        // The plan exercises every kind of operation.
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        return;
    };
    let parts: Vec<&str> = job.split('|').collect();
    match parts.as_slice() {
        ["crash", path, seed] => crash_child(Path::new(path), seed.parse().unwrap()),
        ["writer", path, prefix, count] => {
            let path = Path::new(path);
            let dict = Mutex::new(MmapDict::open(path).unwrap());
            println!("[ready]");
            wait_for(&go_path(path));
            run_writer_plan(&dict, prefix, count.parse().unwrap());
            println!("[done]");
        }
        ["hostile"] => {
            // The parent's address-space limit is in force: a 2 GiB allocation fails.
            let refused = Vec::<u8>::new().try_reserve(2 << 30).is_err();
            assert!(
                refused,
                "the address-space limit (ulimit -v) is not in force"
            );
            let cases = hostile::run_table();
            println!("[hostile-cases] {cases}");
        }
        ["map-and-read", path] => {
            let dict = MmapDict::open_readonly(Path::new(path)).unwrap();
            let map = dict.array::<f64>("big").unwrap();
            println!("[mapped]");
            // Wait for the parent to truncate the file, then touch every page.
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            let sum: f64 = map.to_vec().iter().sum();
            println!("sum {sum}");
        }
        _ => panic!("unknown job {job}"),
    }
}
