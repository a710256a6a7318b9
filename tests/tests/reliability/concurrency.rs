//! Concurrency: processes and threads (`RELIABILITY.md`, section 2).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use mmappickle::{Item, MmapDict};
use mmappickle_conformance::{python_mmappickle, python_scripts_dir};

use crate::plan::{read_state, read_values};
use crate::workers::{
    check_both_python_readers, go_path, has_marker, plan_commits, run_writer_plan, spawn_worker,
    worker_exe, writer_expected,
};
use crate::{DEFAULT_PYTHON_KEYS, PYTHON_KEYS_VARIABLE};

// 4 Rust processes and 4 Python mmapdict processes store, replace and delete 200 keys each in
// one file at the same time: exactly the expected keys and values, for us and for Python.
#[test]
fn rust_and_python_processes_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.mmdpickle");
    drop(MmapDict::open(&path).unwrap());
    let count = 200;
    let python_count = python_keys_from_env();
    // Found before any worker starts: a missing one stops this binary, orphaning them.
    let python = python_mmappickle();
    let workers = worker_exe();
    let mut children = Vec::new();
    for writer in 0..4 {
        let job = format!("writer|{}|rust{writer}|{count}", path.display());
        children.push(spawn_worker(&workers, &job));
    }
    for writer in 0..4 {
        let script = python_scripts_dir().join("reliability_writer.py");
        let child = Command::new(&python)
            .arg(script)
            .args([path.as_os_str(), OsStr::new(&format!("py{writer}"))])
            .arg(python_count.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        children.push(child);
    }
    // Every writer has opened the file before any writes.
    let mut outputs = Vec::new();
    for child in &mut children {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| has_marker(&line, "[ready]"));
        assert!(ready, "a writer died before it was ready");
        outputs.push(lines);
    }
    std::fs::write(go_path(&path), b"").unwrap();
    for (child, lines) in children.iter_mut().zip(outputs) {
        // Read to the end: a pipe closed early would fail the writer's last prints.
        let done = lines
            .map_while(Result::ok)
            .filter(|line| has_marker(line, "[done]"))
            .count();
        let status = child.wait().unwrap();
        assert!(done == 1 && status.success(), "a writer failed: {status}");
    }

    let mut expected = BTreeMap::new();
    for writer in 0..4 {
        expected.extend(writer_expected(&format!("rust{writer}"), count));
        expected.extend(writer_expected(&format!("py{writer}"), python_count));
    }
    let mut dict = MmapDict::open_readonly(&path).unwrap();
    let state = read_state(&mut dict).unwrap();
    assert_eq!(state.len(), expected.len());
    assert!(
        state == expected,
        "the file differs from the writers' plans"
    );
    let expected_commits = 4 * (plan_commits("rust0", count) + plan_commits("py0", python_count));
    assert_eq!(dict.commit_number().unwrap(), expected_commits);
    let values = read_values(&mut dict);
    drop(dict);
    check_both_python_readers(dir.path(), &path, &values);
}

// Threads: 4 share one dict behind a Mutex, 4 more open a handle each; same plans, one file.
#[test]
fn threads_share_a_dict_and_open_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threads.mmdpickle");
    let shared = Arc::new(Mutex::new(MmapDict::open(&path).unwrap()));
    let count = 200;
    let mut threads = Vec::new();
    for writer in 0..4 {
        let shared = Arc::clone(&shared);
        threads.push(std::thread::spawn(move || {
            run_writer_plan(&shared, &format!("shared{writer}"), count)
        }));
        let path = path.clone();
        threads.push(std::thread::spawn(move || {
            let own = Mutex::new(MmapDict::open(&path).unwrap());
            run_writer_plan(&own, &format!("own{writer}"), count)
        }));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let mut expected = BTreeMap::new();
    for prefix in (0..4).flat_map(|w| [format!("shared{w}"), format!("own{w}")]) {
        expected.extend(writer_expected(&prefix, count));
    }
    let state = read_state(&mut shared.lock().unwrap()).unwrap();
    assert!(
        state == expected,
        "the file differs from the threads' plans"
    );
    let mut reopened = MmapDict::open_readonly(&path).unwrap();
    assert!(read_state(&mut reopened).unwrap() == expected);
}

// A reader holds maps while a writer process appends 400 keys and another handle vacuums: the
// maps keep their data throughout, and the reader's next `get` sees the new file.
#[test]
fn maps_stay_valid_while_others_append_and_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maps.mmdpickle");
    let mut reader = MmapDict::open(&path).unwrap();
    let data: Vec<f64> = (0..50_000).map(|x| x as f64 * 0.5).collect();
    reader.insert_array("held", &data, &[250, 200]).unwrap();
    reader.insert("gone", "soon").unwrap();
    let held = reader.array::<f64>("held").unwrap();
    let held_bytes = reader.get("held").unwrap();
    let mapped_inode = std::fs::metadata(&path).unwrap().ino();

    let workers = worker_exe();
    let mut writer = spawn_worker(&workers, &format!("writer|{}|w|400", path.display()));
    std::fs::write(go_path(&path), b"").unwrap();
    let mut checks = 0;
    while writer.try_wait().unwrap().is_none() {
        assert_eq!(held.to_vec(), data);
        checks += 1;
    }
    assert!(writer.wait().unwrap().success());
    assert!(checks > 0);

    // Another handle vacuums: the path now names a new inode; the maps still read the old one.
    let mut other = MmapDict::open(&path).unwrap();
    other.remove("gone").unwrap();
    let report = other.vacuum().unwrap();
    assert!(report.removed_entries > 0);
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), mapped_inode);
    assert_eq!(held.to_vec(), data);
    let Item::Array(bytes) = &held_bytes else {
        panic!("expected an array, found {held_bytes:?}")
    };
    assert_eq!(bytes.bytes(), bytemuck::cast_slice::<f64, u8>(&data));
    // The reader follows the path to the new file.
    assert!(!reader.contains_key("gone").unwrap());
    assert_eq!(reader.array::<f64>("held").unwrap().to_vec(), data);
    assert_eq!(
        read_state(&mut reader).unwrap().len(),
        1 + writer_expected("w", 400).len()
    );
}

fn python_keys_from_env() -> usize {
    std::env::var(PYTHON_KEYS_VARIABLE)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_PYTHON_KEYS)
}
