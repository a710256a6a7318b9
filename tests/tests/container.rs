//! Container conformance: the layout, the lock and the crash safety of
//! `mmappickle-container`, checked against the real Python library.
//!
//! Index of the cases:
//! - `container_scans_every_fixture`: every Python-made fixture scans to the manifest's live
//!   keys, deleted keys and commit number.
//! - `python_reads_the_files_we_write`: a file with inserts, deletes, a replace and padding
//!   loads with `mmappickle.mmapdict` and with plain `pickle.load`.
//! - `python_flock_and_ours_exclude_each_other`: both directions, with a real Python process.
//! - `rust_and_python_processes_insert_concurrently`: 4 Rust processes x 200 inserts and a
//!   Python `mmapdict` inserting 200 at the same time: every key is present.
//! - `crash_images_load_with_pickle`: a Rust process killed at many points of its changes
//!   leaves a file that plain `pickle.load` reads.
//! - `fsck_repairs_python_torn_files`: files Python left torn (no terminator, torn last entry)
//!   are repaired as Python's own fsck repairs them, and Python then reads them.
//!
//! The Rust child processes re-run (a private copy of) this binary with
//! `container_worker_process` as the only test and their job in `MMAPPICKLE_CONTAINER_WORKER`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mmappickle_conformance::{fixtures_dir, python_mmappickle, run_python, WorkerExe};
use mmappickle_container::{scan, Alignment, Container, ContainerOptions, NewEntry};

const WORKER_VARIABLE: &str = "MMAPPICKLE_CONTAINER_WORKER";

/// A pickle value holding `payload` as bytes (SHORT_BINBYTES or BINBYTES).
fn bytes_value(payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    if payload.len() < 256 {
        value.push(b'C');
        value.push(payload.len() as u8);
    } else {
        value.push(b'B');
        value.extend((payload.len() as u32).to_le_bytes());
    }
    value.extend_from_slice(payload);
    value
}

fn insert(container: &mut Container, key: &str, value: &[u8], align: Option<Alignment>) {
    let new = NewEntry {
        key,
        value_len: value.len() as u64,
        memo_max: container.memo_start().unwrap(),
        align,
    };
    container.append(new, |sink| sink.write_all(value)).unwrap();
}

fn os(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// Prints the sorted keys of `mmapdict(path)` and of `pickle.load`, and each value's length.
const PYTHON_DESCRIBE: &str = r#"
import sys, pickle, mmappickle
m = mmappickle.mmapdict(sys.argv[1], readonly=True)
d = pickle.load(open(sys.argv[1], 'rb'))
assert sorted(m.keys()) == sorted(d.keys()), (sorted(m.keys()), sorted(d.keys()))
for k in sorted(d):
    assert m[k] == d[k]
    print(k, len(d[k]))
"#;

// Every fixture made by Python scans: live keys, deleted keys and commit number as the
// manifest says.
#[test]
fn container_scans_every_fixture() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let files = manifest["files"].as_object().unwrap();
    assert!(!files.is_empty());
    for (name, about) in files {
        let path = fixtures_dir().join(name);
        let table = scan(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let live: BTreeSet<&str> = table.keys().collect();
        let expected_live: BTreeSet<&str> = about["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry[0].as_str().unwrap())
            .collect();
        assert_eq!(live, expected_live, "{name}");
        let deleted: BTreeSet<&str> = table
            .entries()
            .iter()
            .filter(|entry| !entry.is_live())
            .map(|entry| entry.key())
            .collect();
        let expected_deleted: BTreeSet<&str> = about["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key.as_str().unwrap())
            .collect();
        assert_eq!(deleted, expected_deleted, "{name}");
        assert_eq!(
            i64::from(table.commit_number()),
            about["commit_number"].as_i64().unwrap(),
            "{name}"
        );
        // The read-only handle agrees with the pure scan.
        let mut container = Container::open_readonly(&path).unwrap();
        assert_eq!(container.table().unwrap(), &table, "{name}");
    }
}

// A file with inserts, a delete, a replace and aligned (padded) entries loads with Python's
// mmapdict and with pickle.load, with the expected keys and values.
#[test]
fn python_reads_the_files_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let align = Some(Alignment {
        value_relative_offset: 5,
        align: 64,
    });
    insert(&mut container, "a", &bytes_value(b"alpha"), None);
    insert(&mut container, "gone", &bytes_value(b"x"), None);
    insert(&mut container, "big", &bytes_value(&[1; 1000]), align);
    insert(&mut container, "é", &bytes_value(&[2; 3]), align);
    container.remove("gone").unwrap();
    insert(&mut container, "a", &bytes_value(b"replaced"), align);
    assert!(container
        .table()
        .unwrap()
        .entries()
        .iter()
        .any(|entry| entry.is_padding()));
    let output = run_python(&python_mmappickle(), PYTHON_DESCRIBE, &[os(&path)]);
    assert_eq!(output, "a 8\nbig 1000\né 3\n");
    // After a vacuum too.
    container.vacuum().unwrap();
    let output = run_python(&python_mmappickle(), PYTHON_DESCRIBE, &[os(&path)]);
    assert_eq!(output, "a 8\nbig 1000\né 3\n");
}

/// Tries a non-blocking `fcntl.flock` on the file and prints `busy` or `free`.
const PYTHON_TRY_LOCK: &str = r#"
import sys, fcntl
f = open(sys.argv[1], 'rb')
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print('free')
except BlockingIOError:
    print('busy')
"#;

// Our lock blocks Python's fcntl.flock, and Python's blocks ours.
#[test]
fn python_flock_and_ours_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lock.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let seen_by_python = container
        .with_lock(|_| run_python(&python_mmappickle(), PYTHON_TRY_LOCK, &[os(&path)]))
        .unwrap();
    assert_eq!(seen_by_python, "busy\n");
    assert_eq!(
        run_python(&python_mmappickle(), PYTHON_TRY_LOCK, &[os(&path)]),
        "free\n"
    );

    // Python holds the lock until we write a line to its stdin.
    let mut python = Command::new(python_mmappickle())
        .arg("-c")
        .arg(
            "import sys, fcntl\nf = open(sys.argv[1], 'rb')\nfcntl.flock(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\nsys.stdin.readline()\n",
        )
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(python.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "locked\n");
    let (sender, receiver) = std::sync::mpsc::channel();
    let path_for_thread = path.clone();
    let waiter = std::thread::spawn(move || {
        let mut other = Container::open(&path_for_thread).unwrap();
        let keys = other.keys().unwrap();
        sender.send(keys).unwrap();
    });
    // Our open waits for Python's lock.
    assert!(receiver.recv_timeout(Duration::from_millis(300)).is_err());
    python.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(python.wait().unwrap().success());
    let keys = receiver.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(keys.is_empty());
    waiter.join().unwrap();
}

/// A worker running `job`, its standard output piped.
fn run_worker(workers: &WorkerExe, job: &str) -> std::process::Child {
    workers
        .command(job)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn insert_many(path: &Path, prefix: &str, count: usize) {
    let mut container = Container::open(path).unwrap();
    for idx in 0..count {
        let align = (idx % 4 == 0).then_some(Alignment {
            value_relative_offset: 5,
            align: 64,
        });
        insert(
            &mut container,
            &format!("{prefix}-{idx}"),
            &bytes_value(prefix.as_bytes()),
            align,
        );
    }
}

/// Inserts, deletes and replaces keys forever, printing each step when done.
fn churn(path: &Path, steps: usize) {
    let mut container = Container::open(path).unwrap();
    for step in 0..steps {
        let key = format!("k{}", step % 5);
        if step % 3 == 1 {
            container.remove(&key).unwrap();
        } else {
            let value = bytes_value(&vec![step as u8; 100 + (step * 131) % 3000]);
            insert(&mut container, &key, &value, None);
        }
        println!("{step}");
    }
}

// The body of the Rust child processes. Run directly (no job given), it runs a short job
// in-process and checks Python reads the result.
#[test]
fn container_worker_process() {
    match std::env::var(WORKER_VARIABLE) {
        Ok(job) => match job.split('|').collect::<Vec<_>>().as_slice() {
            ["insert", path, prefix, count] => {
                insert_many(Path::new(path), prefix, count.parse().unwrap())
            }
            ["churn", path] => churn(Path::new(path), usize::MAX),
            _ => panic!("unknown job {job}"),
        },
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.mmdpickle");
            insert_many(&path, "p", 5);
            churn(&path, 7);
            let output = run_python(&python_mmappickle(), PYTHON_DESCRIBE, &[os(&path)]);
            // Steps 0, 2, 3, 5 and 6 leave k0, k2, k3 and k1.
            assert_eq!(output.lines().count(), 5 + 4, "{output}");
        }
    }
}

/// Opens the file with mmapdict, prints `ready`, then inserts `py-0` .. `py-199`.
const PYTHON_INSERTER: &str = r#"
import sys, mmappickle
m = mmappickle.mmapdict(sys.argv[1])
print('ready', flush=True)
for i in range(200):
    m['py-%d' % i] = b'python'
print('done', flush=True)
"#;

// 4 Rust processes insert 200 keys each while a Python mmapdict inserts 200: all 1000 keys
// are there, for us and for Python.
#[test]
fn rust_and_python_processes_insert_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.mmdpickle");
    Container::open(&path).unwrap();
    // Python opens the file before the Rust writers start: its constructor checks the
    // terminator without the lock.
    let mut python = Command::new(python_mmappickle())
        .arg("-c")
        .arg(PYTHON_INSERTER)
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut python_out = BufReader::new(python.stdout.take().unwrap());
    let mut line = String::new();
    python_out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let worker_exe = WorkerExe::new("container_worker_process", WORKER_VARIABLE);
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            run_worker(
                &worker_exe,
                &format!("insert|{}|w{worker}|200", path.display()),
            )
        })
        .collect();
    for mut worker in workers {
        assert!(worker.wait().unwrap().success());
    }
    assert!(python.wait().unwrap().success());

    let mut container = Container::open_readonly(&path).unwrap();
    let keys: BTreeSet<String> = container.keys().unwrap().into_iter().collect();
    assert_eq!(keys.len(), 1000);
    for idx in 0..200 {
        assert!(keys.contains(&format!("py-{idx}")));
        for worker in 0..4 {
            assert!(keys.contains(&format!("w{worker}-{idx}")));
        }
    }
    let output = run_python(
        &python_mmappickle(),
        "import sys, mmappickle\nprint(len(mmappickle.mmapdict(sys.argv[1], readonly=True).keys()))",
        &[os(&path)],
    );
    assert_eq!(output, "1000\n");
}

// Kill a Rust process at many points of inserts, deletes and replaces: each image is a pickle
// that `pickle.load` reads into a dict of at most 5 keys.
#[test]
fn crash_images_load_with_pickle() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    let workers = WorkerExe::new("container_worker_process", WORKER_VARIABLE);
    for run in 0..12u64 {
        let path = dir.path().join(format!("crash-{run}.mmdpickle"));
        let mut child = run_worker(&workers, &format!("churn|{}", path.display()));
        let mut steps = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.trim().parse::<usize>().is_ok());
        for _ in 0..(2 + run as usize * 5) {
            steps.next();
        }
        std::thread::sleep(Duration::from_micros(run * 211 % 2000));
        child.kill().unwrap();
        child.wait().unwrap();
        images.push(path);
    }
    let script = r#"
import sys, pickle
for path in sys.argv[1:]:
    d = pickle.load(open(path, 'rb'))
    assert isinstance(d, dict) and len(d) <= 5, d.keys()
    print(len(d))
"#;
    let args: Vec<&OsStr> = images.iter().map(|path| os(path)).collect();
    let output = run_python(&python_mmappickle(), script, &args);
    assert_eq!(output.lines().count(), images.len());
    // After our read-write open repaired them, Python's mmapdict reads them too.
    for path in &images {
        Container::open(path).unwrap();
    }
    let script = r#"
import sys, mmappickle
for path in sys.argv[1:]:
    print(len(mmappickle.mmapdict(path, readonly=True).keys()))
"#;
    let output = run_python(&python_mmappickle(), script, &args);
    assert_eq!(output.lines().count(), images.len());
}

/// Writes a dict of 4 keys with mmapdict.
const PYTHON_WRITE_FOUR: &str = r#"
import sys, mmappickle
m = mmappickle.mmapdict(sys.argv[1])
m['a'] = 1
m['b'] = 'two'
m['c'] = [3, 3, 3]
m['d'] = b'four' * 10
"#;

// A Python file whose terminator is missing, or whose last entry is torn: our fsck keeps the
// complete entries (the dict Python's own fsck gives when it succeeds), and Python reads it.
#[test]
fn fsck_repairs_python_torn_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.mmdpickle");
    run_python(&python_mmappickle(), PYTHON_WRITE_FOUR, &[os(&path)]);
    let full = std::fs::read(&path).unwrap();
    let table = scan(&full).unwrap();
    let last = table.entries().last().unwrap().offset() as usize;
    let cases = [
        (full.len() - 11, "a 1\nb two\nc [3, 3, 3]\nd 40\n"),
        (full.len() - 20, "a 1\nb two\nc [3, 3, 3]\n"),
        (last + 4, "a 1\nb two\nc [3, 3, 3]\n"),
    ];
    let describe = r#"
import sys, pickle, mmappickle
m = mmappickle.mmapdict(sys.argv[1], readonly=True)
d = pickle.load(open(sys.argv[1], 'rb'))
assert dict(m) == d
for k in sorted(d):
    print(k, len(d[k]) if isinstance(d[k], bytes) else d[k])
"#;
    for (cut, expected) in cases {
        std::fs::write(&path, &full[..cut]).unwrap();
        let mut container = ContainerOptions::new()
            .allow_damaged(true)
            .open(&path)
            .unwrap();
        let report = container.fsck().unwrap();
        assert!(!report.is_clean(), "cut at {cut}");
        drop(container);
        assert_eq!(
            run_python(&python_mmappickle(), describe, &[os(&path)]),
            expected,
            "cut at {cut}"
        );
    }
    // Python's own fsck on the file without terminator gives the same dict.
    std::fs::write(&path, &full[..full.len() - 11]).unwrap();
    let python_fsck = r#"
import sys, io, contextlib, mmappickle
with contextlib.redirect_stdout(io.StringIO()):
    m = mmappickle.mmapdict(sys.argv[1])
    m.fsck()
"#;
    run_python(&python_mmappickle(), python_fsck, &[os(&path)]);
    // (Python's repair leaves a stray 9-byte FRAME head before its terminator: pickle.load reads
    // the result, Python's own mmapdict does not.)
    let pickle_only = r#"
import sys, pickle
d = pickle.load(open(sys.argv[1], 'rb'))
for k in sorted(d):
    print(k, len(d[k]) if isinstance(d[k], bytes) else d[k])
"#;
    assert_eq!(
        run_python(&python_mmappickle(), pickle_only, &[os(&path)]),
        cases[0].1
    );
}
