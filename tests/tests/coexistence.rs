//! Our writers beside the Python library's processes on one file, and the library's own
//! damage repaired.
//!
//! The library's `mmapdict` constructor writes a terminator at the end of the file without
//! the lock whenever the file does not end with one. Index of the cases:
//! - `library_constructor_damage_is_read_then_repaired`: every way a constructor damages a
//!   library append (its terminator before, between or after the two writes of the trailer),
//!   made deterministic with the library's own code (`tests/python/constructor_race.py`),
//!   with and without later entries: a read-only open reads every entry and writes nothing,
//!   a read-write open restores the entry (the library had lost it) and moves the commit
//!   number on, fsck reports it, and the library and `pickle.load` then read every value.
//! - `our_values_survive_library_constructors`: our appends (single values of one and of
//!   many pages, arrays, batches) while library processes construct `mmapdict(path)` in a
//!   loop: every value is read back byte for byte by us, by the library and by
//!   `pickle.load`. `cargo xtask stress` runs more rounds with more values.
//! - `library_writers_constructors_and_ours_share_a_file`: library writers, library
//!   constructors and our writer at once: after our read-write open, every key of every
//!   writer is there with its value.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mmappickle::{ErrorKind, MmapDict, Value};
use mmappickle_conformance::{python_mmappickle, python_numpy2, run_python, run_python_script};
use serde_json::Value as Json;

fn os(path: &Path) -> &OsStr {
    path.as_os_str()
}

fn library_script(args: &[&OsStr]) -> Json {
    let output = run_python_script(&python_mmappickle(), "constructor_race.py", args);
    serde_json::from_str(&output).unwrap_or_else(|e| panic!("not JSON ({e}): {output}"))
}

#[test]
fn library_constructor_damage_is_read_then_repaired() {
    // When the constructor looks at the end of the file and when it writes there, in parts
    // of the trailer the library's append had written (see `constructor_race.py`).
    for (look, write) in [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)] {
        for after in [0, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("raced.mmdpickle");
            let case = format!("look {look}, write {write}, {after} entries after");
            let args = [look, write, after].map(|n| n.to_string());
            let written = library_script(&[
                OsStr::new("append"),
                os(&path),
                OsStr::new(&args[0]),
                OsStr::new(&args[1]),
                OsStr::new(&args[2]),
            ]);
            let mut written_keys: Vec<&String> = written.as_object().unwrap().keys().collect();
            written_keys.sort();
            let damaged = std::fs::read(&path).unwrap();
            // The terminator went over trailer bytes already written.
            let trailer_overwritten = write > look;
            if (look, write) == (0, 2) {
                // Its terminator over the whole trailer: the library lost the entry.
                let library_keys = library_script(&[OsStr::new("keys"), os(&path)]);
                let lost = Json::from(["before0", "before1"].as_slice());
                let lost_after = Json::from(["after0", "after1", "before0", "before1"].as_slice());
                assert!(library_keys == lost || library_keys == lost_after, "{case}");
            }

            let readonly = MmapDict::open_readonly(&path).unwrap();
            let mut keys = readonly.keys().unwrap();
            keys.sort();
            assert_eq!(keys.iter().collect::<Vec<_>>(), written_keys, "{case}");
            let raced = readonly.value("raced").unwrap();
            assert!(
                matches!(&raced, Value::List(items) if items.len() == 3),
                "{case}: {raced:?}"
            );
            let commit_number = readonly.commit_number().unwrap();
            drop(readonly);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                damaged,
                "{case}: read-only wrote"
            );

            let copy = dir.path().join("copy.mmdpickle");
            std::fs::copy(&path, &copy).unwrap();
            let repaired = MmapDict::open(&path).unwrap();
            let changes = i32::from(trailer_overwritten);
            assert_eq!(
                repaired.commit_number().unwrap(),
                commit_number + changes,
                "{case}"
            );
            drop(repaired);
            let [by_library, by_pickle] = library_script(&[OsStr::new("items"), os(&path)])
                .as_array()
                .cloned()
                .unwrap()
                .try_into()
                .unwrap();
            assert_eq!(by_library, written, "{case}: the library after the repair");
            assert_eq!(by_pickle, written, "{case}: pickle.load after the repair");

            let mut dict = MmapDict::options().open(&copy).unwrap();
            let report = dict.fsck().unwrap();
            let restored = trailer_overwritten.then(|| ("raced".to_owned(), true));
            assert_eq!(report.restored_trailers, Vec::from_iter(restored), "{case}");
        }
    }
}

/// Library processes constructing `mmapdict(path)` until `stop` exists.
fn library_constructors(path: &Path, stop: &Path, count: usize) -> Vec<Child> {
    const CONSTRUCT: &str = "
import os, sys
from mmappickle import mmapdict
while not os.path.exists(sys.argv[2]):
    mmapdict(sys.argv[1])
";
    (0..count)
        .map(|_| {
            Command::new(python_mmappickle())
                .args([OsStr::new("-c"), OsStr::new(CONSTRUCT), os(path), os(stop)])
                .env("PYTHONWARNINGS", "ignore")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn stop_all(stop: &Path, children: Vec<Child>) {
    std::fs::write(stop, b"").unwrap();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
}

/// The payload of our `idx`th value: `len` bytes that differ from value to value.
fn payload(idx: usize, len: usize) -> Vec<u8> {
    let mut state = (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The sizes of the values of a round: small, about one page, many pages.
const SIZES: [usize; 4] = [100, 3000, 60_000, 200_000];

/// Writes `count` values with our facade: bytes values and `uint8` arrays (copied, or written
/// in place by the caller) of [`SIZES`], by single inserts and in batches of 5 (every 4th
/// group).
fn write_ours(path: &Path, prefix: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut dict = MmapDict::open(path).unwrap();
    let uint8 = mmappickle::DType::parse("uint8").unwrap();
    let values: Vec<(String, Vec<u8>)> = (0..count)
        .map(|idx| {
            (
                format!("{prefix}{idx}"),
                payload(idx, SIZES[idx % SIZES.len()]),
            )
        })
        .collect();
    for (group_idx, group) in values.chunks(5).enumerate() {
        if group_idx % 4 == 3 {
            let mut transaction = dict.transaction().unwrap();
            for (key, bytes) in group {
                transaction
                    .insert(key, Value::bytes(bytes.clone()))
                    .unwrap();
            }
            transaction.commit().unwrap();
            continue;
        }
        for (idx, (key, bytes)) in group.iter().enumerate() {
            match idx % 3 {
                0 => dict.insert(key, Value::bytes(bytes.clone())).unwrap(),
                1 => dict.insert_array(key, bytes, &[bytes.len()]).unwrap(),
                // The array's bytes written by the caller at their place (as the Python
                // package writes arrays, with `pwrite` from the array's buffer).
                _ => dict
                    .insert_array_in_place(key, &uint8, &[bytes.len()], |file, offset, _| {
                        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
                    })
                    .unwrap(),
            }
        }
    }
    values
}

/// Checks every value of `ours` byte for byte: with our facade, with the library's
/// `mmapdict` and with plain `pickle.load`; returns the number of keys in the file.
fn check_ours(path: &Path, ours: &[(String, Vec<u8>)]) -> usize {
    let dict = MmapDict::open_readonly(path).unwrap();
    for (key, bytes) in ours {
        let read = match dict.value(key).unwrap() {
            Value::Bytes(read) => read,
            _ => dict.array::<u8>(key).unwrap().as_slice().unwrap().to_vec(),
        };
        assert!(read == *bytes, "{key}: read back wrong by us");
    }
    const DIGESTS: &str = "
import hashlib, json, pickle, sys
import numpy
from mmappickle import mmapdict
def digest(value):
    return hashlib.sha256(value if isinstance(value, bytes) else numpy.asarray(value).tobytes()).hexdigest()
m = mmapdict(sys.argv[1], True)
by_library = {key: digest(m[key]) for key in m.keys()}
with open(sys.argv[1], 'rb') as file:
    by_pickle = {key: digest(value) for key, value in pickle.load(file).items()}
print(json.dumps([by_library, by_pickle]))
";
    for python in [python_mmappickle(), python_numpy2()] {
        if python == python_numpy2() && !numpy2_reads_compatible_arrays() {
            continue;
        }
        let output = run_python(&python, DIGESTS, &[os(path)]);
        let [by_library, by_pickle]: [Json; 2] = serde_json::from_str(&output).unwrap();
        for (key, bytes) in ours {
            let expected = Json::from(mmappickle_conformance::sha256_hex(bytes));
            if python == python_mmappickle() {
                assert_eq!(
                    by_library[key], expected,
                    "{key}: read back wrong by the library"
                );
            }
            assert_eq!(
                by_pickle[key], expected,
                "{key}: read back wrong by pickle.load"
            );
        }
    }
    dict.len().unwrap()
}

/// Whether plain `pickle.load` of the newest numpy reads the library's array encoding
/// (binary `fromstring` was removed in numpy 2.3).
fn numpy2_reads_compatible_arrays() -> bool {
    mmappickle_conformance::numpy2_version() < (2, 3)
}

/// The number of rounds and of values per round (`cargo xtask stress` raises them).
const ROUNDS_VARIABLE: &str = "MMAPPICKLE_COEXISTENCE_ROUNDS";
const VALUES_VARIABLE: &str = "MMAPPICKLE_COEXISTENCE_VALUES";

fn number_from_env(variable: &str, default: usize) -> usize {
    match std::env::var(variable) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{variable} must be a number, found {text:?}")),
        Err(_) => default,
    }
}

#[test]
fn our_values_survive_library_constructors() {
    let rounds = number_from_env(ROUNDS_VARIABLE, 1);
    let count = number_from_env(VALUES_VARIABLE, 60);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ours.mmdpickle");
        let stop = dir.path().join("stop");
        MmapDict::open(&path).unwrap();
        let children = library_constructors(&path, &stop, 2);
        let ours = write_ours(&path, "ours", count);
        stop_all(&stop, children);
        assert_eq!(check_ours(&path, &ours), count, "round {round}");
    }
    println!("{rounds} rounds of {count} values beside 2 constructing processes: all read back");
}

#[test]
fn library_writers_constructors_and_ours_share_a_file() {
    // Each writer prints a key once the library acknowledged it. The library's writers can
    // fail on the damage its constructors do (`KeyError: 'key'` when it reads its table):
    // that is the library's own bug; what it acknowledged must be there.
    const LIBRARY_WRITER: &str = "
import sys
from mmappickle import mmapdict
m = mmapdict(sys.argv[1])
for i in range(int(sys.argv[3])):
    m[f'{sys.argv[2]}{i}'] = [i, sys.argv[2]]
    print(i, flush=True)
";
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("shared.mmdpickle");
    let stop = dir.path().join("stop");
    MmapDict::open(&path).unwrap();
    let constructors = library_constructors(&path, &stop, 1);
    let writers: Vec<(&str, Child)> = ["libraryA", "libraryB"]
        .into_iter()
        .map(|prefix| {
            let child = Command::new(python_mmappickle())
                .args(["-c", LIBRARY_WRITER])
                .arg(&path)
                .args([prefix, "60"])
                .env("PYTHONWARNINGS", "ignore")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (prefix, child)
        })
        .collect();
    let ours = write_ours(&path, "ours", 40);
    let acknowledged: Vec<(&str, usize)> = writers
        .into_iter()
        .flat_map(|(prefix, child)| {
            let output = child.wait_with_output().unwrap();
            let lines = String::from_utf8(output.stdout).unwrap();
            let indices: Vec<usize> = lines.lines().map(|line| line.parse().unwrap()).collect();
            indices.into_iter().map(move |idx| (prefix, idx))
        })
        .collect();
    stop_all(&stop, constructors);
    // Our read-write open repairs what the library's constructors did to its own entries;
    // under load they can also write over a library writer's entry in a way the open refuses
    // (`BadEntry` at its offset, the file unchanged), which fsck then repairs. An entry the
    // library itself destroyed may be gone, but never read back wrong, and ours all stay.
    let mut dict = match MmapDict::open(&path) {
        Ok(dict) => dict,
        Err(error) => {
            eprintln!("the library's constructors damaged its entries: {error}");
            MmapDict::options().allow_damaged(true).open(&path).unwrap()
        }
    };
    dict.fsck().unwrap();
    let mut lost = 0;
    for &(prefix, idx) in &acknowledged {
        let key = format!("{prefix}{idx}");
        match dict.value(&key) {
            Ok(value) => {
                let expected = Value::List(vec![Value::from(idx as i64), Value::from(prefix)]);
                assert_eq!(value, expected, "{key}");
            }
            Err(error) if matches!(error.kind(), ErrorKind::KeyNotFound { .. }) => lost += 1,
            Err(error) => panic!("{key}: {error}"),
        }
    }
    if lost > 0 {
        eprintln!("{lost} library entries destroyed by the library's own constructors");
    }
    drop(dict);
    assert!(check_ours(&path, &ours) >= 40 + acknowledged.len() - lost);
}
