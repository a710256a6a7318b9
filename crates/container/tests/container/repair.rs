//! Damaged and torn files: every prefix of a file, interrupted appends, fsck.

use std::path::PathBuf;

use mmappickle_container::{scan, Container, ContainerOptions, TERMINATOR};

use super::{bytes_value, insert, temp_path};

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
