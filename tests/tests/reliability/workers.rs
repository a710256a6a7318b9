//! The child processes: spawning a copy of this binary, reading its marked lines, the
//! jobs' bodies (the crash plan, the concurrent writers' plans), and the Python readers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mmappickle::{MmapDict, Value};
use mmappickle_conformance::{check_value, python_mmappickle, WorkerExe};
use serde_json::Value as Json;

use crate::plan::{apply_to_dict, planned_op, ArrayData, Content};
use crate::WORKER_VARIABLE;

/// The copy of this binary that runs `reliability_worker` as a child process.
pub(crate) fn worker_exe() -> WorkerExe {
    WorkerExe::new("reliability_worker", WORKER_VARIABLE)
}

/// A worker running `job`, its standard input and output piped.
pub(crate) fn spawn_worker(workers: &WorkerExe, job: &str) -> Child {
    workers
        .command(job)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// What follows `marker` in the lines of a child that have it. The test harness prints lines
/// of its own, and with one test thread the first line the test prints is glued to the
/// harness's `test reliability_worker ... `: the marker is looked for anywhere in the line.
pub(crate) fn lines_with_marker<'a>(
    lines: impl Iterator<Item = String> + 'a,
    marker: &'a str,
) -> impl Iterator<Item = String> + 'a {
    lines.filter_map(move |line| {
        let start = line.find(marker)? + marker.len();
        line.get(start..).map(str::to_owned)
    })
}

/// Whether a child's line carries `marker` (see [`lines_with_marker`]).
pub(crate) fn has_marker(line: &str, marker: &str) -> bool {
    line.contains(marker)
}

/// The crash job: the plan of `seed`, one acknowledged operation after the other, forever.
pub(crate) fn crash_child(path: &Path, seed: u64) {
    let mut dict = MmapDict::open(path).unwrap();
    let stdout = std::io::stdout();
    for step in 0.. {
        apply_to_dict(&mut dict, &planned_op(seed, step)).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "[ack] {step}").unwrap();
        out.flush().unwrap();
    }
}

/// What writer `prefix` stores under its `idx`-th key at `version` (the Python writers'
/// plan, `tests/python/reliability_writer.py`).
fn writer_content(prefix: &str, idx: usize, version: usize) -> Content {
    if idx % 20 == 5 {
        let data: Vec<f64> = (idx..idx + 8).map(|x| (x * version) as f64).collect();
        return ArrayData::F64(data).content(&[8]);
    }
    let tag = Value::Str(format!("{prefix}-tag"));
    Content::Generic(Value::Dict(vec![
        (Value::from("writer"), Value::from(prefix)),
        (Value::from("i"), Value::Int(idx as i64)),
        (Value::from("version"), Value::Int(version as i64)),
        (Value::from("tags"), Value::List(vec![tag.clone(), tag])),
    ]))
}

fn store(dict: &mut MmapDict, key: &str, content: &Content) -> Result<(), mmappickle::Error> {
    match content {
        Content::Generic(value) => dict.insert(key, value.clone()),
        Content::Array { raw, shape, .. } => {
            let data: Vec<f64> = raw
                .chunks_exact(8)
                .map(|chunk| f64::from_le_bytes(chunk.try_into().unwrap()))
                .collect();
            dict.insert_array(key, &data, shape)
        }
    }
}

/// The writers' plan: `(key, content)` stores and `(key, None)` deletes, in order.
fn writer_plan(prefix: &str, count: usize) -> Vec<(String, Option<Content>)> {
    let mut plan = Vec::new();
    for idx in 0..count {
        let key = format!("{prefix}-{idx}");
        plan.push((key.clone(), Some(writer_content(prefix, idx, 1))));
        if idx % 10 == 3 {
            plan.push((key.clone(), Some(writer_content(prefix, idx, 2))));
        }
        if idx % 10 == 7 {
            plan.push((key, None));
        }
    }
    plan
}

/// How much a writer's plan adds to the commit number: 1 per insert and delete, 2 per
/// replace (FORMAT.md).
pub(crate) fn plan_commits(prefix: &str, count: usize) -> i32 {
    let mut live = std::collections::BTreeSet::new();
    let mut commits = 0;
    for (key, content) in writer_plan(prefix, count) {
        commits += match content {
            Some(_) if !live.insert(key.clone()) => 2,
            Some(_) => 1,
            None => {
                live.remove(&key);
                1
            }
        };
    }
    commits
}

pub(crate) fn writer_expected(prefix: &str, count: usize) -> BTreeMap<String, Content> {
    let mut expected = BTreeMap::new();
    for (key, content) in writer_plan(prefix, count) {
        match content {
            Some(content) => expected.insert(key, content),
            None => expected.remove(&key),
        };
    }
    expected
}

pub(crate) fn run_writer_plan(dict: &Mutex<MmapDict>, prefix: &str, count: usize) {
    for (key, content) in writer_plan(prefix, count) {
        let mut dict = dict.lock().unwrap();
        match content {
            Some(content) => store(&mut dict, &key, &content).unwrap(),
            None => assert!(dict.remove(&key).unwrap(), "{key} was not there"),
        }
    }
}

/// Waits until `go` exists (every writer has opened the file by then); gives up after a
/// minute, so that a parent that died never leaves a writer behind.
pub(crate) fn wait_for(go: &Path) {
    let start = Instant::now();
    while !go.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {} after a minute",
            go.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn go_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".go");
    PathBuf::from(name)
}

/// Python's `pickle.load` and `mmapdict` of the file at `path` must both give `values`.
pub(crate) fn check_both_python_readers(dir: &Path, path: &Path, values: &BTreeMap<String, Value>) {
    let described =
        describe_with_python(dir, &[serde_json::json!({"path": path, "mmapdict": true})]);
    check_described(&described[0]["pickle"], values, "pickle.load");
    check_described(&described[0]["mmapdict"], values, "mmapdict");
}

/// Runs `reliability_describe.py` on `list`; its JSON answer.
pub(crate) fn describe_with_python(dir: &Path, list: &[Json]) -> Vec<Json> {
    let list_path = dir.join("describe.json");
    std::fs::write(&list_path, Json::Array(list.to_vec()).to_string()).unwrap();
    let output = mmappickle_conformance::run_python_script(
        &python_mmappickle(),
        "reliability_describe.py",
        &[list_path.as_os_str()],
    );
    match serde_json::from_str(&output) {
        Ok(Json::Array(items)) => items,
        other => panic!("reliability_describe.py: unexpected output {other:?}"),
    }
}

/// `described` (`{key: description}`) has exactly the keys of `values`, each as described.
pub(crate) fn check_described(described: &Json, values: &BTreeMap<String, Value>, context: &str) {
    let Some(described) = described.as_object() else {
        panic!("{context}: expected a JSON object, found {described}");
    };
    let keys: Vec<&String> = described.keys().collect();
    let expected: Vec<&String> = values.keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{context}: keys differ");
    for (key, value) in values {
        if let Err(difference) = check_value(&described[key], value) {
            panic!("{context}: key {key:?}: {difference}");
        }
    }
}
