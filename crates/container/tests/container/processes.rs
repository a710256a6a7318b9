//! Several processes: concurrent inserts, forks, deaths inside a value write, SIGKILL at
//! any point. The children are this test binary, re-run with `processes::worker_process` as
//! the only test and the job in `MMAPPICKLE_CONTAINER_WORKER`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mmappickle_container::{Container, ContainerOptions, Durability, NewEntry};

use super::{bytes_value, contents, insert, temp_path};

const WORKER_VARIABLE: &str = "MMAPPICKLE_CONTAINER_WORKER";

fn run_worker(job: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "processes::worker_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_VARIABLE, job)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The value of the `step`-th change of the churn job.
fn churn_value(step: usize) -> Vec<u8> {
    bytes_value(&vec![step as u8; 200 + (step * 131) % 3000])
}

/// The churn job's `step`-th change applied to a model of the dict.
fn churn_model_step(model: &mut BTreeMap<String, Vec<u8>>, step: usize) {
    let key = format!("k{}", step % 5);
    match step % 3 {
        1 => {
            model.remove(&key);
        }
        _ => {
            model.insert(key, churn_value(step));
        }
    }
}

/// The churn job: inserts, deletes and replaces keys, printing each step when it is done.
fn churn(path: &Path, durability: Durability, steps: usize) {
    let mut container = ContainerOptions::new()
        .durability(durability)
        .open(path)
        .unwrap();
    for step in 0..steps {
        let key = format!("k{}", step % 5);
        if step % 3 == 1 {
            container.remove(&key).unwrap();
        } else {
            insert(&mut container, &key, &churn_value(step));
        }
        println!("{step}");
    }
}

fn insert_many(path: &Path, prefix: &str, count: usize) {
    let mut container = Container::open(path).unwrap();
    for idx in 0..count {
        insert(
            &mut container,
            &format!("{prefix}-{idx}"),
            &bytes_value(prefix.as_bytes()),
        );
    }
}

// The body of the child processes. Run directly (no job given), it runs both jobs in-process
// and checks their result.
#[test]
fn worker_process() {
    match std::env::var(WORKER_VARIABLE) {
        Ok(job) => {
            let parts: Vec<&str> = job.split('|').collect();
            match parts.as_slice() {
                ["insert", path, prefix, count] => {
                    insert_many(Path::new(path), prefix, count.parse().unwrap())
                }
                ["churn", path, durability] => {
                    let durability = if *durability == "flush" {
                        Durability::Flush
                    } else {
                        Durability::None
                    };
                    churn(Path::new(path), durability, usize::MAX)
                }
                ["abort-in-value", path] => {
                    let mut container = Container::open(Path::new(path)).unwrap();
                    insert(&mut container, "kept", &bytes_value(b"kept"));
                    // Over 64 KiB, so that it goes straight to the file (smaller values are
                    // gathered and written with the commit).
                    let value = bytes_value(&[5; 100_000]);
                    let new = NewEntry {
                        key: "torn",
                        value_len: value.len() as u64,
                        memo_max: 1,
                        align: None,
                    };
                    let _ = container.append(new, |sink| {
                        sink.write_all(&value[..50_000])?;
                        std::process::abort()
                    });
                }
                ["fork", path] => fork_and_insert(Path::new(path)),
                _ => panic!("unknown job {job}"),
            }
        }
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            let path = temp_path(&dir, "w.mmdpickle");
            insert_many(&path, "p", 10);
            churn(&path, Durability::None, 20);
            let mut model = BTreeMap::new();
            for step in 0..20 {
                churn_model_step(&mut model, step);
            }
            let mut container = Container::open(&path).unwrap();
            let mut got = contents(&mut container);
            got.retain(|key, _| key.starts_with('k'));
            assert_eq!(got, model);
            assert_eq!(container.keys().unwrap().len(), 10 + model.len());
        }
    }
}

/// The fork job (run in a worker process, whose only thread is the test's): one handle
/// opened, then 3 children forked that insert through the inherited handle while the parent
/// inserts through its own, 300 keys each.
fn fork_and_insert(path: &Path) {
    let mut container = Container::open(path).unwrap();
    insert(&mut container, "start", &bytes_value(b"start"));
    let mut children = Vec::new();
    for child_idx in 0..3 {
        // SAFETY: the worker process has one thread (the harness runs the test on its main
        // thread with --test-threads=1), so the child inherits no lock held by another thread.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let inserted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let prefix = format!("child{child_idx}");
                for idx in 0..300 {
                    insert(
                        &mut container,
                        &format!("{prefix}-{idx}"),
                        &bytes_value(prefix.as_bytes()),
                    );
                }
            }));
            // SAFETY: leaves the child at once, without running the parent's exit handlers.
            unsafe { libc::_exit(i32::from(inserted.is_err())) };
        }
        children.push(pid);
    }
    for idx in 0..300 {
        insert(
            &mut container,
            &format!("parent-{idx}"),
            &bytes_value(b"parent"),
        );
    }
    for pid in children {
        let mut status = 0;
        // SAFETY: waits for a child of this process; `status` is a valid place to write.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed"
        );
    }
}

// A handle inherited through `fork` shares its parent's open file description, and so its
// `flock`: without a description of their own, parent and children append over each other
// (hundreds of keys lost, or a file that no longer opens). Every key is there.
#[test]
fn fork_children_get_their_own_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "forked.mmdpickle");
    let status = run_worker(&format!("fork|{}", path.display()))
        .wait()
        .unwrap();
    assert!(status.success());
    let mut container = Container::open_readonly(&path).unwrap();
    let got = contents(&mut container);
    assert_eq!(got.len(), 1 + 4 * 300);
    for prefix in ["parent", "child0", "child1", "child2"] {
        for idx in 0..300 {
            let value = got.get(&format!("{prefix}-{idx}")).map(Vec::as_slice);
            assert_eq!(value, Some(bytes_value(prefix.as_bytes()).as_slice()));
        }
    }
    assert_eq!(container.commit_number().unwrap(), 1 + 4 * 300);
}

// 4 processes insert 200 keys each into the same file at the same time: every key is there.
#[test]
fn processes_insert_concurrently_without_losing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "m.mmdpickle");
    Container::open(&path).unwrap();
    let children: Vec<_> = (0..4)
        .map(|worker| run_worker(&format!("insert|{}|w{worker}|200", path.display())))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut container = Container::open_readonly(&path).unwrap();
    let keys = container.keys().unwrap();
    assert_eq!(keys.len(), 800);
    for worker in 0..4 {
        for idx in 0..200 {
            assert!(container
                .get(&format!("w{worker}-{idx}"))
                .unwrap()
                .is_some());
        }
    }
    assert_eq!(container.commit_number().unwrap(), 800);
}

// A process dies in the middle of writing a value: the file is the dict before the append
// (read-only), and a read-write open truncates the torn bytes.
#[test]
fn processes_dying_inside_a_value_write_lose_only_that_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "abort.mmdpickle");
    let status = run_worker(&format!("abort-in-value|{}", path.display()))
        .wait()
        .unwrap();
    assert!(!status.success());
    let torn = std::fs::read(&path).unwrap();
    let mut readonly = Container::open_readonly(&path).unwrap();
    assert_eq!(readonly.keys().unwrap(), ["kept"]);
    let trailing = readonly.table().unwrap().trailing_len();
    assert!(trailing > 50_000, "{trailing} bytes after the terminator");
    assert_eq!(std::fs::read(&path).unwrap(), torn);
    let mut container = Container::open(&path).unwrap();
    assert_eq!(container.keys().unwrap(), ["kept"]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        torn.len() as u64 - trailing
    );
}

// SIGKILL a process at many points of a stream of inserts, deletes and replaces: the file
// always opens read-only (a valid pickle), holds the state after the last change reported done
// or after the one in flight, and a read-write open leaves it clean.
#[test]
fn processes_killed_at_any_point_lose_at_most_one_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "k.mmdpickle");
    let mut states_checked = 0;
    for run in 0..40u64 {
        let _ = std::fs::remove_file(&path);
        let durability = if run % 3 == 2 { "flush" } else { "none" };
        let mut child = run_worker(&format!("churn|{}|{durability}", path.display()));
        let stdout = child.stdout.take().unwrap();
        // Wait for a few steps, then a varying delay, so the kill lands anywhere.
        // The test harness prints lines of its own: the steps are the numeric lines.
        let mut steps = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.trim().parse::<usize>().ok());
        let wait_steps = 3 + (run as usize * 7) % 40;
        let mut last_done = None;
        for _ in 0..wait_steps {
            last_done = steps.next();
        }
        std::thread::sleep(Duration::from_micros((run * 397) % 3000));
        child.kill().unwrap();
        child.wait().unwrap();
        for step in steps {
            last_done = Some(step);
        }
        let done = last_done.map_or(0, |step| step + 1);
        let mut model = BTreeMap::new();
        for step in 0..done {
            churn_model_step(&mut model, step);
        }
        let mut model_next = model.clone();
        churn_model_step(&mut model_next, done);

        let before = std::fs::read(&path).unwrap();
        let mut readonly = Container::open_readonly(&path).unwrap();
        let seen = contents(&mut readonly);
        assert!(
            seen == model || seen == model_next,
            "run {run}: after {done} steps, found {:?}",
            seen.keys().collect::<Vec<_>>()
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let mut container = Container::open(&path).unwrap();
        assert_eq!(contents(&mut container), seen);
        assert_eq!(container.table().unwrap().trailing_len(), 0);
        assert!(container.fsck().unwrap().is_clean());
        states_checked += 1;
    }
    assert_eq!(states_checked, 40);
}
