//! Read snapshots, write batches and shared reads of the facade, against other processes.
//!
//! - `a_snapshot_holds_writers_of_other_processes_off`: a writer in another process waits
//!   while a snapshot is open, the snapshot sees no change, and the change is there after it.
//! - `threads_read_one_shared_dict_while_python_writes`: four threads share one
//!   `Arc<MmapDict>` and read snapshots while a Python `mmapdict` process inserts keys: each
//!   snapshot sees a prefix of Python's inserts with their exact values, and the end state
//!   is exact.
//! - `a_batch_interrupted_by_an_error_or_a_panic_changes_nothing`: byte for byte.
//! - `batches_of_other_processes_are_seen_whole`: a reader in this process never sees half
//!   of a batch another process commits.
//! - `a_kill_inside_a_batch_leaves_its_inserts_and_a_prefix_of_its_removes`: kills aimed
//!   between a batch's commit and its last remove.
//!
//! - `map_claims_hold_across_snapshots_handles_and_threads`: a writable map of an array is
//!   refused while a map of it from any snapshot, handle or thread lives, and the other
//!   way round.
//!
//! Crash injection over batches is part of the crash plan of `reliability/` (`crash`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mmappickle::{ErrorKind, MmapDict, Value};
use mmappickle_conformance::{python_mmappickle, WorkerExe};

const WORKER_VARIABLE: &str = "MMAPPICKLE_SNAPSHOT_WORKER";

fn workers() -> WorkerExe {
    WorkerExe::new("snapshot_worker", WORKER_VARIABLE)
}

// The body of the child processes; run directly (no job), it checks nothing.
#[test]
fn snapshot_worker() {
    let Ok(job) = std::env::var(WORKER_VARIABLE) else {
        return;
    };
    let parts: Vec<&str> = job.split('|').collect();
    match parts.as_slice() {
        // Opens, says so, waits for a line on its input, then inserts `key`.
        ["insert", path, key] => {
            let mut dict = MmapDict::open(path).unwrap();
            println!("[opened]");
            std::io::stdout().flush().unwrap();
            std::io::stdin().read_line(&mut String::new()).unwrap();
            dict.insert(key, "from the other process").unwrap();
            println!("[inserted]");
        }
        // `rounds` batches, each of which rewrites every key `b0..b{n}` to the round number.
        ["batches", path, n, rounds] => {
            let mut dict = MmapDict::open(path).unwrap();
            let n: i64 = n.parse().unwrap();
            for round in 1..=rounds.parse::<i64>().unwrap() {
                dict.write(|tx| {
                    for idx in 0..n {
                        tx.insert(&format!("b{idx}"), round)?;
                    }
                    Ok(())
                })
                .unwrap();
            }
        }
        // A file of `n` keys, then one batch: insert `new`, remove every key in order.
        ["remove-all", path, n] => {
            let mut dict = MmapDict::open(path).unwrap();
            let n: usize = n.parse().unwrap();
            dict.write(|tx| (0..n).try_for_each(|idx| tx.insert(&format!("k{idx}"), idx as i64)))
                .unwrap();
            println!("[ready]");
            std::io::stdout().flush().unwrap();
            dict.write(|tx| {
                tx.insert("new", "batch")?;
                (0..n).try_for_each(|idx| tx.remove(&format!("k{idx}")).map(drop))
            })
            .unwrap();
            println!("[done]");
        }
        _ => panic!("unknown job {job}"),
    }
}

// A batch of one insert and 3,000 removes, killed at random moments: the file is always the
// state before the batch, or the insert with a prefix of the removes done (the promise of
// `RELIABILITY.md`), or the state after; the run goes on until kills landed between the
// commit and the last remove (most do: the removes are 3,000 writes after the commit).
#[test]
fn a_kill_inside_a_batch_leaves_its_inserts_and_a_prefix_of_its_removes() {
    let dir = tempfile::tempdir().unwrap();
    let workers = workers();
    let n = 3000;
    let (mut partial, mut attempts) = (0, 0);
    while partial < 3 && attempts < 100 {
        attempts += 1;
        let path = dir.path().join(format!("kill-{attempts}.mmdpickle"));
        let mut child = workers
            .command(&format!("remove-all|{}|{n}", path.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|line| line.unwrap().contains("[ready]")));
        std::thread::sleep(Duration::from_micros(attempts * 97 % 6000));
        child.kill().unwrap();
        child.wait().unwrap();
        let dict = MmapDict::open_readonly(&path).unwrap();
        let snapshot = dict.read().unwrap();
        let keys = snapshot.keys().unwrap();
        if !snapshot.contains_key("new").unwrap() {
            assert_eq!(
                keys.len(),
                n,
                "attempt {attempts}: keys removed before the commit"
            );
            continue;
        }
        assert_eq!(snapshot.value("new").unwrap(), Value::from("batch"));
        // The keys left are the last ones, in order: the removes done are a prefix.
        let left = keys.len() - 1;
        let expected: Vec<String> = (n - left..n).map(|idx| format!("k{idx}")).collect();
        assert_eq!(keys[..left], expected[..], "attempt {attempts}");
        for key in &expected {
            let idx: i64 = key[1..].parse().unwrap();
            assert_eq!(snapshot.value(key).unwrap(), Value::Int(idx));
        }
        if left > 0 {
            partial += 1;
        }
    }
    println!("{partial} of {attempts} kills between the commit and the last remove");
    assert!(
        partial > 0,
        "no kill landed between the commit and the last remove"
    );
}

#[test]
fn a_snapshot_holds_writers_of_other_processes_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("isolation.mmdpickle");
    let mut dict = MmapDict::open(&path).unwrap();
    dict.insert("a", 1).unwrap();
    let before = std::fs::read(&path).unwrap();

    let workers = workers();
    let mut child = workers
        .command(&format!("insert|{}|b", path.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // (An open takes the exclusive lock too: the writer opens before the snapshot.)
    let opened = lines.find(|line| line.as_ref().unwrap().contains("[opened]"));
    assert!(opened.is_some(), "the writer did not open the file");
    let snapshot = dict.read().unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    // The writer is now at its insert, which must wait for the snapshot's shared lock:
    // however long we wait, it neither finishes nor writes a byte.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the writer did not wait"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(snapshot.keys().unwrap(), ["a"]);
    assert!(!snapshot.contains_key("b").unwrap());
    assert_eq!(snapshot.value("a").unwrap(), Value::from(1));
    drop(snapshot);

    assert!(child.wait().unwrap().success());
    assert!(lines.any(|line| line.unwrap().contains("[inserted]")));
    assert_eq!(dict.keys().unwrap(), ["a", "b"]);
    assert_eq!(
        dict.value("b").unwrap(),
        Value::from("from the other process")
    );
}

const PYTHON_WRITER: &str = r#"
import sys
import mmappickle

m = mmappickle.mmapdict(sys.argv[1])
for i in range(int(sys.argv[2])):
    m[f"py{i}"] = i * 3
"#;

#[test]
fn threads_read_one_shared_dict_while_python_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.mmdpickle");
    let mut dict = MmapDict::open(&path).unwrap();
    dict.write(|tx| {
        for idx in 0..50 {
            tx.insert(&format!("rust{idx}"), format!("value {idx}"))?;
        }
        tx.insert_array("grid", &[1.5f64, 2.5, 3.5], &[3])
    })
    .unwrap();
    let dict = Arc::new(dict);
    let python_keys = 300;
    let mut python = Command::new(python_mmappickle())
        .arg("-c")
        .arg(PYTHON_WRITER)
        .arg(&path)
        .arg(python_keys.to_string())
        .spawn()
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|thread| {
            let dict = Arc::clone(&dict);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut snapshots = 0;
                let mut most_seen = 0;
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                    let snapshot = dict.read().unwrap();
                    let keys = snapshot.keys().unwrap();
                    let python_seen: Vec<&String> =
                        keys.iter().filter(|key| key.starts_with("py")).collect();
                    // One consistent state: Python's first n inserts, in order, exact values.
                    for (idx, key) in python_seen.iter().enumerate() {
                        assert_eq!(**key, format!("py{idx}"));
                        assert_eq!(snapshot.value(key).unwrap(), Value::Int(idx as i64 * 3));
                    }
                    let idx = (snapshots * 7 + thread) % 50;
                    assert_eq!(
                        dict.value(&format!("rust{idx}")).unwrap(),
                        Value::from(format!("value {idx}"))
                    );
                    assert_eq!(
                        snapshot.array::<f64>("grid").unwrap().to_vec(),
                        [1.5, 2.5, 3.5]
                    );
                    most_seen = most_seen.max(python_seen.len());
                    snapshots += 1;
                    drop(snapshot);
                    // Readers that always overlap would keep the shared lock forever, and
                    // the writer waiting (see `MmapDict::read`).
                    std::thread::sleep(Duration::from_millis(2));
                    if finished {
                        return (snapshots, most_seen);
                    }
                }
            })
        })
        .collect();
    assert!(python.wait().unwrap().success());
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for reader in readers {
        let (snapshots, most_seen) = reader.join().unwrap();
        assert!(snapshots > 0);
        // The last snapshot began after Python had finished.
        assert_eq!(most_seen, python_keys);
    }
    let keys = dict.keys().unwrap();
    assert_eq!(keys.len(), 50 + 1 + python_keys);
    for idx in 0..python_keys {
        assert_eq!(
            dict.value(&format!("py{idx}")).unwrap(),
            Value::Int(idx as i64 * 3)
        );
    }
}

#[test]
fn a_batch_interrupted_by_an_error_or_a_panic_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("interrupted.mmdpickle");
    let mut dict = MmapDict::open(&path).unwrap();
    dict.insert("kept", 1).unwrap();
    dict.insert("doomed", 2).unwrap();
    let before = std::fs::read(&path).unwrap();
    let big = vec![7.0f64; 100_000]; // over 64 KiB: written straight to the file

    let failed = dict.write(|tx| {
        tx.insert("kept", "replaced")?;
        tx.insert_array("big", &big, &[100_000])?;
        assert!(tx.remove("doomed")?);
        tx.insert("x".repeat(300).as_str(), 3) // a key over 255 bytes
    });
    let error = failed.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::KeyTooLong { len: 300 }));
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dict.write(|tx| -> Result<(), mmappickle::Error> {
            tx.insert("kept", "replaced")?;
            tx.insert_array("big", &big, &[100_000])?;
            tx.remove("doomed")?;
            panic!("inside a batch");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let mut transaction = dict.transaction().unwrap();
    transaction.insert("never", 1).unwrap();
    drop(transaction);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // The dict works on, and so does a batch after an error it recovered from.
    dict.write(|tx| {
        assert!(tx.insert("y".repeat(256).as_str(), 1).is_err());
        tx.insert("added", "yes")?;
        tx.remove("doomed")
    })
    .unwrap();
    assert_eq!(dict.keys().unwrap(), ["kept", "added"]);
    assert_eq!(dict.value("kept").unwrap(), Value::Int(1));
}

#[test]
fn batches_of_other_processes_are_seen_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole.mmdpickle");
    let n = 40;
    let dict = MmapDict::open(&path).unwrap();
    let workers = workers();
    let mut child = workers
        .command(&format!("batches|{}|{n}|60", path.display()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut distinct_states = Vec::new();
    loop {
        let finished = child.try_wait().unwrap().is_some();
        let snapshot = dict.read().unwrap();
        let keys = snapshot.keys().unwrap();
        // Before the first batch: nothing; after any batch: every key, all of one round.
        assert!(keys.is_empty() || keys.len() == n, "{} keys", keys.len());
        let mut rounds: Vec<Value> = keys
            .iter()
            .map(|key| snapshot.value(key).unwrap())
            .collect();
        rounds.dedup();
        assert!(rounds.len() <= 1, "a batch seen in part: {rounds:?}");
        distinct_states.extend(rounds);
        drop(snapshot);
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(child.wait().unwrap().success());
    assert!(distinct_states.contains(&Value::Int(60)));
    let values: Vec<Value> = dict
        .iter()
        .unwrap()
        .map(|item| item.unwrap().1.into_value().unwrap())
        .collect();
    assert_eq!(values, vec![Value::Int(60); n]);
}

// Asserted where the compiler can see it: threads share one dict without a Mutex.
#[test]
fn map_claims_hold_across_snapshots_handles_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &[1u8, 2, 3], &[3]).unwrap();
    m.insert_array("b", &[4u8], &[1]).unwrap();
    let m = Arc::new(m);
    let other_handle = MmapDict::open(&path).unwrap();
    fn is_conflict(error: mmappickle::Error) -> bool {
        matches!(error.kind(), ErrorKind::MapConflict { key } if key == "a")
    }

    // A reader from a snapshot of another thread: no writer in any snapshot or handle.
    let reader = std::thread::spawn({
        let m = Arc::clone(&m);
        move || m.read().unwrap().array::<u8>("a").unwrap()
    })
    .join()
    .unwrap();
    let snapshot = m.read().unwrap();
    assert!(is_conflict(snapshot.array_mut::<u8>("a").unwrap_err()));
    assert!(is_conflict(other_handle.array_mut::<u8>("a").unwrap_err()));
    // Other bytes are other claims.
    drop(snapshot.array_mut::<u8>("b").unwrap());
    drop(reader);

    // A writer from a snapshot: every other map of those bytes is refused until it goes.
    let mut writer = snapshot.array_mut::<u8>("a").unwrap();
    drop(snapshot);
    assert!(is_conflict(m.read().unwrap().array::<u8>("a").unwrap_err()));
    assert!(is_conflict(other_handle.get("a").unwrap_err()));
    let from_thread = std::thread::spawn({
        let m = Arc::clone(&m);
        move || m.array::<u8>("a").map(|map| map.to_vec())
    });
    assert!(is_conflict(from_thread.join().unwrap().unwrap_err()));
    writer.set(0, 9).unwrap();
    drop(writer);
    assert_eq!(other_handle.array::<u8>("a").unwrap().to_vec(), [9, 2, 3]);
}

#[test]
fn mmap_dict_and_its_snapshots_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MmapDict>();
    send_sync::<mmappickle::ReadSnapshot<'_>>();
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("sync.mmdpickle");
    let mut dict = MmapDict::open(path).unwrap();
    dict.write(|tx| (0..100).try_for_each(|idx| tx.insert(&format!("k{idx}"), idx)))
        .unwrap();
    let dict = Arc::new(dict);
    let sums: Vec<i64> = (0..4)
        .map(|thread| {
            let dict = Arc::clone(&dict);
            std::thread::spawn(move || {
                (0..500)
                    .map(|step| {
                        let idx = (step * 13 + thread * 31) % 100;
                        let Value::Int(value) = dict.value(&format!("k{idx}")).unwrap() else {
                            panic!("not an int");
                        };
                        assert_eq!(value, idx as i64);
                        value
                    })
                    .sum()
            })
        })
        .map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(sums.len(), 4);
}
