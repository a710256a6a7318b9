//! The system calls of single operations, counted from outside: run under `strace -c -f`,
//! once with `N` operations and once with 0, and divide the difference by `N`
//! (`BENCHMARKS.md`, *System calls per operation*).
//!
//! `cargo run --release --example syscalls -- PHASE FILE N`, where PHASE is `get`
//! (N gets of small ints, each its own locked operation), `insert`, `remove`,
//! `snapshot_get` (N gets in one snapshot) or `batch_insert` (N inserts in one batch).
//! FILE is made first with N small int entries (`key0`...), outside the counted phase only
//! in the sense that the 0 run makes the same file.

use std::hint::black_box;

use mmappickle::MmapDict;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [phase, file, n] = args.as_slice() else {
        return Err("usage: syscalls PHASE FILE N".into());
    };
    let n: usize = n.parse()?;
    let _ = std::fs::remove_file(file);
    let mut dict = MmapDict::open(file)?;
    dict.write(|tx| (0..n.max(1)).try_for_each(|idx| tx.insert(&format!("key{idx}"), idx as i64)))?;
    // The phase: N operations; the keys and values are made before it.
    let keys: Vec<String> = (0..n).map(|idx| format!("key{idx}")).collect();
    eprintln!("[phase start]");
    match phase.as_str() {
        "get" => {
            for key in &keys {
                black_box(dict.get(key)?);
            }
        }
        "insert" => {
            for key in &keys {
                dict.insert(key, 7)?;
            }
        }
        "remove" => {
            for key in &keys {
                dict.remove(key)?;
            }
        }
        "snapshot_get" => {
            let snapshot = dict.read()?;
            for key in &keys {
                black_box(snapshot.get(key)?);
            }
        }
        "batch_insert" => dict.write(|tx| keys.iter().try_for_each(|key| tx.insert(key, 7)))?,
        other => return Err(format!("unknown phase {other:?}").into()),
    }
    Ok(())
}
