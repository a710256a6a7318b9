//! One scenario: prepare, record under strace, replay, and check every crash state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mmappickle::MmapDict;
use mmappickle_conformance::WorkerExe;

use crate::changes::{describe_difference, prepare, read_dict, Expectation};
use crate::crash_model::{crash_states, Fs};
use crate::kinds::Scenario;
use crate::trace::{Op, TraceReader};
use crate::{DATA_NAME, TRACED_CALLS};

/// What checking a state found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Checked {
    /// The read-only open refused it and the read-write open (or fsck) repaired it.
    pub(crate) repaired: bool,
    /// The read-write open refused it and fsck repaired it.
    pub(crate) fsck: bool,
}

/// Writes `files` into the empty directory `dir` and checks the dict found there.
pub(crate) fn check_state(
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
pub(crate) struct Figures {
    pub(crate) scenarios: usize,
    pub(crate) operations: usize,
    pub(crate) syncs: usize,
    pub(crate) states: usize,
    pub(crate) repaired: usize,
    pub(crate) fsck: usize,
    /// Failing states: what was wrong.
    pub(crate) failures: Vec<String>,
}

pub(crate) fn read_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
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
pub(crate) fn strace() -> PathBuf {
    for candidate in ["/usr/bin/strace", "/bin/strace"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    mmappickle_conformance::stop_missing(
        "missing strace, which records the system calls: run `apt-get install strace` (.ci/run does)",
    )
}

/// Runs `scenario` under strace and checks every crash state; adds to `figures`.
pub(crate) fn run_scenario(
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
