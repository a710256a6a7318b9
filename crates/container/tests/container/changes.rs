//! Changes: appends, removes, replaces, the cached table, read-only handles, alignment and
//! the page rule.

use std::collections::BTreeMap;

use mmappickle_container::{scan, Alignment, Container, ContainerOptions, ErrorKind, NewEntry};

use super::{bytes_value, contents, insert, temp_path};

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
