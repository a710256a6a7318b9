//! Integration tests of `mmappickle-container`.
//!
//! Index:
//! - `bad_headers_*`: the 13 malformed headers of the Python library's test suite, each an
//!   error at its offset, the file untouched.
//! - `plain_pickles_*`: a plain pickle of a dict is reported as convertible.
//! - `table_is_rescanned_only_*`: the cache is keyed on the commit number and the length.
//! - `append_*`, `remove_*`, `replace_*`: changes, commit numbers, reopen.
//! - `readonly_*`: no change, no byte written.
//! - `alignment_*`: padding entries put the requested byte at a multiple of the alignment.
//! - `truncation_at_every_offset_*`: a read-only open of every prefix of a sample file.
//! - `torn_append_*`: bytes after the terminator are ignored, then truncated.
//! - `vacuum_*`: compaction by rename, the commit number rule, other handles follow, holes
//!   stay holes.
//! - `fsck_*`: repair of torn files; the terminator fsck writes keeps the page rule.
//! - `page_rule_*`: `ContainerOptions::page_safe_commit(false)` leaves the terminator where
//!   Python would (no tail padding), the default moves it past the page boundary.
//! - `read_write_open_removes_scratch_files_*`: stale vacuum scratch files go, live ones stay.
//! - `lock_*`: the flock excludes another handle; it is re-entrant.
//! - `processes_*`: 4 processes x 200 inserts; a process dying inside a value write; SIGKILL
//!   at many points of changes.
//!
//! The multi-process tests re-run this test binary with `worker_process` as the only test and
//! the worker's job in `MMAPPICKLE_CONTAINER_WORKER`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mmappickle_container::{
    scan, Alignment, Container, ContainerOptions, Durability, ErrorKind, NewEntry, TERMINATOR,
};

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

fn insert(container: &mut Container, key: &str, value: &[u8]) -> mmappickle_container::Entry {
    let new = NewEntry {
        key,
        value_len: value.len() as u64,
        memo_max: container.memo_start().unwrap(),
        align: None,
    };
    container.append(new, |sink| sink.write_all(value)).unwrap()
}

/// Every live key and its value bytes.
fn contents(container: &mut Container) -> BTreeMap<String, Vec<u8>> {
    let entries: Vec<_> = container.table().unwrap().live_entries().cloned().collect();
    entries
        .iter()
        .map(|entry| (entry.key().to_owned(), container.read_value(entry).unwrap()))
        .collect()
}

fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// A valid header, as Python writes it.
fn python_header() -> Vec<u8> {
    let mut header = vec![0x80, 4, 0x95];
    header.extend(13u64.to_le_bytes());
    header.extend([0x4a, 1, 0, 0, 0, 0x30, 0x4a, 0, 0, 0, 0, 0x30, 0x28]);
    header
}

// The 13 malformed headers: each is refused with the offset of the first wrong byte, and the
// file is left as it was.
#[test]
fn bad_headers_are_refused_at_their_offset_and_left_untouched() {
    let good = {
        let mut file = python_header();
        file.extend(TERMINATOR);
        file
    };
    let with = |offset: usize, byte: u8| {
        let mut file = good.clone();
        file[offset] = byte;
        file
    };
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("one byte", vec![0x80], 1),
        ("not a pickle", b"hello world".to_vec(), 0),
        ("wrong protocol", with(1, 3), 1),
        ("missing FRAME", with(2, 0x28), 2),
        ("frame length cut short", good[..7].to_vec(), 3),
        ("wrong frame length", with(3, 12), 3),
        ("header frame cut short", good[..20].to_vec(), 20),
        ("missing version BININT", with(11, 0x4b), 11),
        ("missing POP after version", with(16, 0x28), 16),
        ("wrong version", with(12, 2), 12),
        ("missing commit BININT", with(17, 0x4b), 17),
        ("missing POP after commit", with(22, 0x28), 22),
        ("missing MARK", with(23, 0x30), 23),
    ];
    assert_eq!(cases.len(), 13);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, offset) in cases {
        let path = temp_path(&dir, "bad");
        std::fs::write(&path, &bytes).unwrap();
        for readonly in [false, true] {
            let error = ContainerOptions::new()
                .readonly(readonly)
                .open(&path)
                .unwrap_err();
            // (Some of them are still a plain pickle of `{}`, which the error says.)
            assert!(
                matches!(error.kind(), ErrorKind::NotAContainer { .. }),
                "{name}: {error}"
            );
            assert_eq!(error.offset(), Some(offset), "{name}: {error}");
            assert!(error.to_string().contains("expected"), "{name}: {error}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: file changed");
        }
        // The pure scan agrees with the open.
        assert_eq!(scan(&bytes).unwrap_err().offset(), Some(offset), "{name}");
    }
}

// A plain pickle of a dict is reported as such (the facade converts it); a pickle of
// something else is not; neither file is touched.
#[test]
fn plain_pickles_are_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "plain.pickle");
    // pickle.dumps({'a': 1}, 2) and pickle.dumps([1], 2).
    let dict = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";
    let list = b"\x80\x02]q\x00K\x01a.";
    for (bytes, is_dict) in [(&dict[..], true), (&list[..], false)] {
        std::fs::write(&path, bytes).unwrap();
        let error = Container::open(&path).unwrap_err();
        assert_eq!(error.is_plain_pickle(), is_dict, "{error}");
        assert_eq!(error.offset(), Some(1), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}

// A new container is created (missing and empty files alike) and holds what was appended.
#[test]
fn append_creates_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "new.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    assert_eq!(container.commit_number().unwrap(), 0);
    insert(&mut container, "a", &bytes_value(b"first"));
    insert(&mut container, "é", &bytes_value(&[7; 300]));
    assert_eq!(container.commit_number().unwrap(), 2);
    drop(container);

    let mut reopened = Container::open(&path).unwrap();
    let expected: BTreeMap<String, Vec<u8>> = [
        ("a".to_owned(), bytes_value(b"first")),
        ("é".to_owned(), bytes_value(&[7; 300])),
    ]
    .into();
    assert_eq!(contents(&mut reopened), expected);

    let empty = temp_path(&dir, "empty.mmdpickle");
    std::fs::write(&empty, b"").unwrap();
    let mut created = Container::open(&empty).unwrap();
    assert!(created.keys().unwrap().is_empty());
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 24 + 11);
}

// Remove flips the flag (the file keeps its length) and bumps the commit number; replace is
// append + remove (+2).
#[test]
fn remove_and_replace_bump_the_commit_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "c.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "k", &bytes_value(b"1"));
    let len = container.file_len().unwrap();
    assert!(container.remove("k").unwrap());
    assert!(!container.remove("k").unwrap());
    assert_eq!(container.file_len().unwrap(), len);
    assert_eq!(container.commit_number().unwrap(), 2);
    insert(&mut container, "k", &bytes_value(b"2"));
    insert(&mut container, "k", &bytes_value(b"3"));
    assert_eq!(container.commit_number().unwrap(), 5);
    let table = container.table().unwrap();
    assert_eq!(table.entries().len(), 3);
    assert_eq!(table.n_live(), 1);
    assert_eq!(
        contents(&mut container),
        [("k".to_owned(), bytes_value(b"3"))].into()
    );
}

// The table is cached while the commit number and the length stay the same: a change of the
// bytes behind our back is not seen (no re-scan) until the commit number moves.
#[test]
fn table_is_rescanned_only_when_the_commit_number_or_length_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "cache.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let entry = insert(&mut container, "key", &bytes_value(b"v"));
    let mut bytes = std::fs::read(&path).unwrap();
    // Rename the key to "kez" without touching the commit number or the length.
    bytes[entry.offset() as usize + 13] = b'z';
    std::fs::write(&path, &bytes).unwrap();
    assert!(container.get("key").unwrap().is_some());
    assert!(container.get("kez").unwrap().is_none());
    bytes[18] += 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(container.get("key").unwrap().is_none());
    assert!(container.get("kez").unwrap().is_some());
}

// A key over 255 UTF-8 bytes, a value writer that writes too little, too much, or fails: each
// an error, and the file as before.
#[test]
fn append_errors_leave_the_file_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "e.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "keep", &bytes_value(b"x"));
    let before = std::fs::read(&path).unwrap();
    let long_key = "é".repeat(128);
    let new = |key| NewEntry {
        key,
        value_len: 10,
        memo_max: 1,
        align: None,
    };
    let error = container
        .append(new(&long_key), |sink| sink.write_all(&[0; 10]))
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::KeyTooLong { len: 256 }));
    let error = container
        .append(new("short"), |sink| sink.write_all(&[0; 9]))
        .unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::ValueLength {
            expected: 10,
            written: 9
        }
    ));
    assert!(container
        .append(new("long"), |sink| sink.write_all(&[0; 11]))
        .is_err());
    assert!(container
        .append(new("fails"), |_| Err(std::io::Error::other("disk on fire")))
        .is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(container.keys().unwrap(), ["keep"]);
}

// A read-only handle refuses every change and never writes, not even to repair a torn tail.
#[test]
fn readonly_refuses_changes_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "r.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "a", &bytes_value(b"1"));
    drop(container);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(b"left by a crash");
    std::fs::write(&path, &bytes).unwrap();

    let mut readonly = Container::open_readonly(&path).unwrap();
    assert!(readonly.is_readonly());
    assert_eq!(readonly.keys().unwrap(), ["a"]);
    let new = NewEntry {
        key: "b",
        value_len: 0,
        memo_max: 1,
        align: None,
    };
    for error in [
        readonly.append(new, |_| Ok(())).unwrap_err(),
        readonly.remove("a").map(|_| ()).unwrap_err(),
        readonly.vacuum().map(|_| ()).unwrap_err(),
        readonly.fsck().map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(error.kind(), ErrorKind::ReadOnly), "{error}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(Container::open_readonly(temp_path(&dir, "missing")).is_err());
    assert!(!temp_path(&dir, "missing").exists());
}

// The requested byte of the value lands on a multiple of the alignment, after a padding entry
// that is deleted, has an empty key, and is shown as padding.
#[test]
fn alignment_pads_with_deleted_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "a.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    for (idx, key) in ["x", "yy", "a_longer_key", "z"].iter().enumerate() {
        let value = bytes_value(&vec![idx as u8; 100 + idx * 7]);
        let new = NewEntry {
            key,
            value_len: value.len() as u64,
            memo_max: 1,
            align: Some(Alignment {
                value_relative_offset: 5,
                align: 64,
            }),
        };
        let entry = container
            .append(new, |sink| {
                assert_eq!((sink.position() + 5) % 64, 0);
                sink.write_all(&value)
            })
            .unwrap();
        assert_eq!((entry.value_offset() + 5) % 64, 0);
    }
    let table = container.table().unwrap().clone();
    assert_eq!(table.n_live(), 4);
    assert!(table.entries().iter().any(|entry| entry.is_padding()));
    assert!(table
        .entries()
        .iter()
        .all(|entry| entry.is_live() || entry.is_padding()));
    let error = container
        .append(
            NewEntry {
                key: "bad",
                value_len: 0,
                memo_max: 1,
                align: Some(Alignment {
                    value_relative_offset: 0,
                    align: 48,
                }),
            },
            |_| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::BadAlignment { align: 48 }
    ));
}

fn sample_file(dir: &tempfile::TempDir) -> (PathBuf, Vec<u8>) {
    let path = temp_path(dir, "sample.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "a", &bytes_value(b"alpha"));
    insert(&mut container, "b", &bytes_value(&[1; 40]));
    container.remove("a").unwrap();
    insert(&mut container, "c", &bytes_value(b""));
    drop(container);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

// Every prefix of a sample file: a read-only open gives an error or a valid prefix of the
// entries, never panics, never changes the file. A last entry cut in its trailer after its
// value is read; its flag, when cut, reads as live (what an append writes).
#[test]
fn truncation_at_every_offset_gives_an_error_or_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = sample_file(&dir);
    let full_keys = scan(&full).unwrap();
    let path = temp_path(&dir, "cut");
    for cut in 0..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        if let Ok(mut container) = Container::open_readonly(&path) {
            let table = container.table().unwrap();
            for (entry, full_entry) in table.entries().iter().zip(full_keys.entries()) {
                let flag_cut = entry.end() - 2 >= cut as u64;
                if flag_cut {
                    assert!(entry.is_live(), "cut at {cut}");
                    assert_eq!(entry.offset(), full_entry.offset(), "cut at {cut}");
                    assert_eq!(entry.value_range(), full_entry.value_range());
                } else {
                    assert_eq!(entry, full_entry, "cut at {cut}");
                }
            }
        }
        assert_eq!(std::fs::read(&path).unwrap(), &full[..cut], "cut at {cut}");
    }
}

// An append interrupted after writing past the old terminator: read-only sees the old dict,
// a read-write open truncates the stray bytes.
#[test]
fn torn_append_is_ignored_then_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (path, full) = sample_file(&dir);
    let mut torn = full.clone();
    torn.extend(&[0x42; 100]);
    torn.extend(TERMINATOR);
    std::fs::write(&path, &torn).unwrap();
    let mut readonly = Container::open_readonly(&path).unwrap();
    assert_eq!(readonly.keys().unwrap(), ["b", "c"]);
    assert_eq!(std::fs::read(&path).unwrap(), torn);
    let mut container = Container::open(&path).unwrap();
    assert_eq!(container.keys().unwrap(), ["b", "c"]);
    assert_eq!(std::fs::read(&path).unwrap(), full);
}

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

// fsck keeps every complete entry of a torn file, cuts the rest, writes a terminator.
#[test]
fn fsck_repairs_torn_files() {
    let dir = tempfile::tempdir().unwrap();
    let (path, full) = sample_file(&dir);
    let table = scan(&full).unwrap();
    let last = table.entries().last().unwrap().clone();
    for cut in [full.len() - 11, full.len() - 14, last.offset() as usize + 5] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let n_entries = table.entries().len();
        // Cut in the terminator, in the last trailer, in the last head.
        let (readable, kept) = match cut {
            cut if cut == full.len() - 11 => (n_entries, n_entries),
            // Its value whole: read, and completed by the read-write open.
            cut if cut == full.len() - 14 => (n_entries, n_entries),
            _ => (n_entries - 1, n_entries - 1),
        };
        // A torn tail: read-only, the complete entries are read and nothing is written.
        let mut readonly = Container::open_readonly(&path).unwrap();
        assert!(readonly.table().unwrap().is_torn());
        assert_eq!(
            readonly.table().unwrap().entries(),
            &table.entries()[..readable]
        );
        drop(readonly);
        assert_eq!(std::fs::read(&path).unwrap(), &full[..cut]);
        // Read-write, the open repairs it (a last entry cut after its value is completed)
        // and fsck reports what it did.
        let mut container = Container::open(&path).unwrap();
        let report = container.fsck().unwrap();
        assert_eq!(report.kept_entries, kept, "cut at {cut}: {report:?}");
        assert!(!report.is_clean());
        let repaired = std::fs::read(&path).unwrap();
        assert!(repaired.ends_with(&TERMINATOR));
        let rescanned = scan(&repaired).unwrap();
        assert_eq!(rescanned.entries(), &table.entries()[..kept]);
        assert!(container.fsck().unwrap().is_clean());
    }
}

// Damage in the middle of a file: the open refuses it and names the offset, the file left as
// it is; fsck makes the damaged entry (its head whole) a padding entry and keeps every entry
// after it (they chain to the terminator). A damaged head gives no proof of where its entry
// ends (and may be a commit torn by a power loss): fsck cuts there, as before.
#[test]
fn fsck_keeps_the_intact_entries_after_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "middle.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    for key in ["a", "b", "c", "d"] {
        insert(&mut container, key, &bytes_value(key.repeat(30).as_bytes()));
    }
    drop(container);
    let whole = std::fs::read(&path).unwrap();
    let table = scan(&whole).unwrap();
    let b = table.entries()[1].clone();
    let flag = b.end() - 2;
    for (case, damaged_at) in [("flag", flag), ("closing POP", b.end() - 1)] {
        let mut damaged = whole.clone();
        damaged[damaged_at as usize] = 0x42;
        std::fs::write(&path, &damaged).unwrap();
        let error = Container::open(&path).unwrap_err();
        assert!(error.to_string().contains("byte offset"), "{case}: {error}");
        assert_eq!(std::fs::read(&path).unwrap(), damaged, "{case}");
        let mut container = ContainerOptions::new()
            .allow_damaged(true)
            .open(&path)
            .unwrap();
        let report = container.fsck().unwrap();
        assert_eq!(report.dropped_damaged.len(), 1, "{case}: {report:?}");
        let dropped = &report.dropped_damaged[0];
        assert_eq!(
            (dropped.offset, dropped.len),
            (b.offset(), b.len()),
            "{case}"
        );
        assert_eq!(dropped.key.as_deref(), Some("b"), "{case}");
        assert_eq!(container.keys().unwrap(), ["a", "c", "d"], "{case}");
        let repaired = std::fs::read(&path).unwrap();
        assert_eq!(repaired.len(), whole.len(), "{case}: nothing cut");
        let rescanned = scan(&repaired).unwrap();
        assert!(rescanned.entries()[1].is_padding(), "{case}");
        for (idx, key) in [(2, "c"), (3, "d")] {
            let entry = rescanned.entries()[idx].clone();
            assert_eq!(entry.key(), key);
            let value = container.read_value(&entry).unwrap();
            assert_eq!(value, bytes_value(key.repeat(30).as_bytes()), "{case}");
        }
        assert!(container.fsck().unwrap().is_clean(), "{case}");
    }
    let mut damaged = whole.clone();
    damaged[b.offset() as usize + 3] = 0x42; // b's frame length
    std::fs::write(&path, &damaged).unwrap();
    let mut container = ContainerOptions::new()
        .allow_damaged(true)
        .open(&path)
        .unwrap();
    let report = container.fsck().unwrap();
    assert!(report.dropped_damaged.is_empty(), "{report:?}");
    assert_eq!(report.truncated_at, b.offset());
    assert_eq!(container.keys().unwrap(), ["a"]);
}

// fsck applies the page rule to the terminator it writes: a torn file whose last complete
// entry ends in the last 10 bytes of a 4 KiB page gets a padding entry before its new
// terminator, so the next commit's 11 bytes cannot cross the page boundary.
#[test]
fn fsck_keeps_its_terminator_off_page_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "fsck-page.mmdpickle");
    // The bytes an entry of key "k" adds around its value, measured on a small one.
    let overhead = {
        let mut container = Container::open(&path).unwrap();
        let entry = insert(&mut container, "k", &bytes_value(b"x"));
        entry.len() - bytes_value(b"x").len() as u64
    };
    for entry_end in [4090u64, 4095, 2 * 4096 - 5] {
        std::fs::remove_file(&path).unwrap();
        let mut container = Container::open(&path).unwrap();
        let payload_len = entry_end - 24 - overhead - 5; // BINBYTES: 5 bytes of opcode
        let value = bytes_value(&vec![7u8; payload_len as usize]);
        let entry = insert(&mut container, "k", &value);
        assert_eq!(entry.end(), entry_end);
        drop(container);
        // The append put a padding entry after it; cut inside that: a torn tail.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(entry_end + 5).unwrap();
        drop(file);
        let mut container = ContainerOptions::new()
            .allow_damaged(true)
            .open(&path)
            .unwrap();
        let report = container.fsck().unwrap();
        assert_eq!(report.truncated_at, entry_end);
        let repaired = std::fs::read(&path).unwrap();
        let table = scan(&repaired).unwrap();
        let terminator = table.terminator_offset();
        assert!(
            terminator % 4096 <= 4096 - 11,
            "terminator at {terminator} crosses a page boundary"
        );
        assert_eq!(table.keys().collect::<Vec<_>>(), ["k"]);
        assert_eq!(container.read_value(&entry).unwrap(), value);
        assert!(container.fsck().unwrap().is_clean());
    }
}

// A read-write open removes the vacuum scratch files (`.NAME.vacuum-PID`) of processes that
// are gone, and keeps those of live processes, of other files, and names that are no
// process id; a read-only open removes nothing.
#[test]
fn read_write_open_removes_scratch_files_of_dead_processes() {
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
    assert!(stale.exists(), "a read-only open removed a file");
    Container::open(&path).unwrap();
    assert!(
        !stale.exists(),
        "the dead process's scratch file is still there"
    );
    for file in &kept {
        assert!(file.exists(), "{} was removed", file.display());
    }
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

// While one handle holds the lock, a second file description cannot take it; the lock is
// re-entrant inside with_lock.
// The same entry, ending 5 bytes before a page boundary, appended with the page rule on (the
// default: a 21-byte padding entry follows it) and off (the terminator follows it directly,
// as in Python's layout); both files scan to the same live entry.
#[test]
fn page_rule_is_an_option() {
    const PAGE: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    for page_safe_commit in [true, false] {
        let path = temp_path(&dir, &format!("page-{page_safe_commit}.mmdpickle"));
        let mut container = ContainerOptions::new()
            .page_safe_commit(page_safe_commit)
            .open(&path)
            .unwrap();
        let terminator_offset = container.table().unwrap().terminator_offset();
        // FRAME (9) + key "k" (3) + BINBYTES (5 + n) + trailer (8) ends at PAGE - 5.
        let payload_len = PAGE - 5 - terminator_offset - 25;
        let entry = insert(
            &mut container,
            "k",
            &bytes_value(&vec![3; payload_len as usize]),
        );
        assert_eq!(entry.end() % PAGE, PAGE - 5);
        let bytes = std::fs::read(&path).unwrap();
        let table = scan(&bytes).unwrap();
        let padding = if page_safe_commit { 21 } else { 0 };
        assert_eq!(table.terminator_offset(), entry.end() + padding);
        assert_eq!(table.entries().len(), if page_safe_commit { 2 } else { 1 });
        assert_eq!(
            table.entries().last().unwrap().is_padding(),
            page_safe_commit
        );
        assert_eq!(table.get("k"), Some(&entry));
    }
}

#[test]
fn lock_excludes_other_handles_and_is_reentrant() {
    use fs2::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "l.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let probe = std::fs::File::open(&path).unwrap();
    container
        .with_lock(|container| {
            assert!(FileExt::try_lock_exclusive(&probe).is_err());
            insert(container, "inner", &bytes_value(b"1"));
            // Still locked after the nested operation released its level.
            assert!(FileExt::try_lock_exclusive(&probe).is_err());
        })
        .unwrap();
    FileExt::try_lock_exclusive(&probe).unwrap();
    FileExt::unlock(&probe).unwrap();
}

fn run_worker(job: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "worker_process",
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

// Two handles of one file in one thread: `flock` would make the thread wait for itself, so
// the lock that would wait is refused with a clear error; another thread's lock is waited
// for. Read-only handles take the shared lock, and read beside a read view.
#[test]
fn a_lock_held_by_this_thread_is_an_error_not_a_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "locks.mmdpickle");
    let mut first = Container::open(&path).unwrap();
    insert(&mut first, "a", &bytes_value(b"a"));
    let mut second = Container::open(&path).unwrap();
    let mut readonly = Container::open_readonly(&path).unwrap();

    let view = first.begin_read().unwrap();
    let new = NewEntry {
        key: "b",
        value_len: 2,
        memo_max: 1,
        align: None,
    };
    let error = second
        .append(new, |sink| sink.write_all(b"K\x01"))
        .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::LockedByThisThread),
        "{error}"
    );
    assert!(error.to_string().contains("this thread"), "{error}");
    // Shared beside shared: a read-only handle reads.
    assert_eq!(readonly.keys().unwrap(), ["a"]);
    first.end_read(view);
    second.append(new, |sink| sink.write_all(b"K\x01")).unwrap();

    // Inside a change on one handle, a read on another would wait too.
    first
        .with_lock(|first| {
            let error = readonly.keys().unwrap_err();
            assert!(matches!(error.kind(), ErrorKind::LockedByThisThread));
            first.keys().unwrap()
        })
        .unwrap();

    // Another thread's read view is waited for, not refused.
    let (held, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let reader_path = path.clone();
    let reader = std::thread::spawn(move || {
        let mut reader = Container::open_readonly(&reader_path).unwrap();
        let view = reader.begin_read().unwrap();
        held.0.send(()).unwrap();
        release.1.recv().unwrap();
        reader.end_read(view);
    });
    held.1.recv().unwrap();
    let writer = std::thread::spawn(move || {
        let new = NewEntry {
            key: "c",
            value_len: 2,
            memo_max: 1,
            align: None,
        };
        second.append(new, |sink| sink.write_all(b"K\x02")).unwrap();
        second
    });
    release.0.send(()).unwrap();
    reader.join().unwrap();
    let mut second = writer.join().unwrap();
    assert_eq!(second.keys().unwrap(), ["a", "b", "c"]);
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
