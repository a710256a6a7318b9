//! Vacuum by rename, and the scratch files it leaves behind.

use std::path::Path;
use std::process::Command;

use mmappickle_container::{Alignment, Container, NewEntry};

use super::{bytes_value, contents, insert, temp_path};

// Vacuum drops deleted entries, sets the commit number as Python does, keeps aligned data
// aligned, and a second handle follows the renamed file.
#[test]
fn vacuum_compacts_and_other_handles_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "v.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let mut other = Container::open(&path).unwrap();
    for key in ["a", "b", "c", "d"] {
        insert(&mut container, key, &bytes_value(&[9; 1000]));
    }
    let aligned_value = bytes_value(&[3; 500]);
    let aligned = NewEntry {
        key: "aligned",
        value_len: aligned_value.len() as u64,
        memo_max: 1,
        align: Some(Alignment {
            value_relative_offset: 5,
            align: 64,
        }),
    };
    container
        .append(aligned, |sink| sink.write_all(&aligned_value))
        .unwrap();
    container.remove("b").unwrap();
    container.remove("c").unwrap();
    let expected = contents(&mut container);
    assert_ne!(container.commit_number().unwrap(), 0);
    let report = container.vacuum().unwrap();
    assert!(report.removed_entries >= 2);
    assert!(report.len_after < report.len_before);
    assert_eq!(report.commit_number, 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), report.len_after);
    assert_eq!(contents(&mut container), expected);
    let entry = container.get("aligned").unwrap().unwrap();
    assert_eq!((entry.value_offset() + 5) % 64, 0);
    // The other handle noticed the new inode.
    assert_eq!(contents(&mut other), expected);
    insert(&mut other, "e", &bytes_value(b"after"));
    assert!(container.get("e").unwrap().is_some());
    // Nothing to remove: nothing changes. Then 0 becomes 1.
    let commit = container.commit_number().unwrap();
    assert_eq!(container.vacuum().unwrap().removed_entries, 0);
    assert_eq!(container.commit_number().unwrap(), commit);
    container.remove("e").unwrap();
    container.commit_number().unwrap();
    let report = container.vacuum().unwrap();
    assert_eq!(report.commit_number, 0);
    container.remove("d").unwrap();
    std::fs::write(&path, {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[18..22].copy_from_slice(&0i32.to_le_bytes());
        bytes
    })
    .unwrap();
    let mut reopened = Container::open(&path).unwrap();
    assert_eq!(reopened.vacuum().unwrap().commit_number, 1);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no scratch file left behind");
}

// A value left as a hole (a stub's data) takes no disk space, before and after a vacuum.
#[test]
fn vacuum_keeps_holes() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "h.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "gone", &bytes_value(b"x"));
    const HOLE: u64 = 16 << 20;
    let new = NewEntry {
        key: "stub",
        value_len: 5 + HOLE,
        memo_max: 1,
        align: None,
    };
    container
        .append(new, |sink| {
            sink.write_all(&[b'B', 0, 0, 0, 1])?;
            sink.skip(HOLE)
        })
        .unwrap();
    container.remove("gone").unwrap();
    let allocated = |path: &Path| std::fs::metadata(path).unwrap().blocks() * 512;
    assert!(allocated(&path) < HOLE / 2, "{} bytes", allocated(&path));
    assert_eq!(container.vacuum().unwrap().removed_entries, 1);
    assert!(allocated(&path) < HOLE / 2, "{} bytes", allocated(&path));
    assert_eq!(
        container.get("stub").unwrap().unwrap().value_len(),
        5 + HOLE
    );
}

// Vacuum and fsck remove the vacuum scratch files (`.NAME.vacuum-PID`) of processes that are
// gone, and keep those of live processes, of other files, and names that are no process id;
// opens remove nothing (a read-write open listing the directory cost as much as the
// directory is large).
#[test]
fn vacuum_and_fsck_remove_scratch_files_of_dead_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "data.mmdpickle");
    Container::open(&path).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let alive = sleeper.id();
    let name = |suffix: String| temp_path(&dir, &suffix);
    let stale = name(format!(".data.mmdpickle.vacuum-{dead}"));
    let kept = [
        name(format!(".data.mmdpickle.vacuum-{}", std::process::id())),
        name(format!(".data.mmdpickle.vacuum-{alive}")),
        name(format!(".other.mmdpickle.vacuum-{dead}")),
        name(format!(".data.mmdpickle.vacuum-{dead}x")),
    ];
    for file in kept.iter().chain([&stale]) {
        std::fs::write(file, b"scratch").unwrap();
    }
    Container::open_readonly(&path).unwrap();
    let mut container = Container::open(&path).unwrap();
    assert!(stale.exists(), "an open removed a file");
    // A vacuum with nothing to remove, then fsck of a clean file, each with a stale file.
    for run in [
        |container: &mut Container| {
            container.vacuum().unwrap();
        },
        |container: &mut Container| {
            container.fsck().unwrap();
        },
    ] {
        std::fs::write(&stale, b"scratch").unwrap();
        run(&mut container);
        assert!(
            !stale.exists(),
            "the dead process's scratch file is still there"
        );
        for file in &kept {
            assert!(file.exists(), "{} was removed", file.display());
        }
    }
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}
