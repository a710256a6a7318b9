//! Integration tests of `mmappickle-container`: one test binary, one module per subject.
//! This file holds the helpers they share.
//!
//! Index:
//! - `glance`: values copied without the lock while another handle holds it, refused once the
//!   commit number or an entry's head, key or trailer changed, across other handles'
//!   replaces and vacuums.
//! - `headers`: the 13 malformed headers of the Python library's test suite, each an error at
//!   its offset, the file untouched (`bad_headers_*`); a plain pickle of a dict is reported
//!   as convertible (`plain_pickles_*`).
//! - `changes`: appends, removes and replaces, commit numbers, reopen (`append_*`,
//!   `remove_*`); the cache keyed on the commit number and the length
//!   (`table_is_rescanned_only_*`); no change and no byte written by a read-only handle
//!   (`readonly_*`); padding entries put the requested byte at a multiple of the alignment
//!   (`alignment_*`); `ContainerOptions::page_safe_commit(false)` leaves the terminator where
//!   Python would, the default moves it past the page boundary (`page_rule_*`).
//! - `repair`: a read-only open of every prefix of a sample file
//!   (`truncation_at_every_offset_*`); bytes after the terminator ignored, then truncated
//!   (`torn_append_*`); fsck of torn and damaged files, its terminator off page boundaries
//!   (`fsck_*`).
//! - `vacuum`: compaction by rename, the commit number rule, other handles follow, holes stay
//!   holes (`vacuum_*`); stale vacuum scratch files go, live ones stay
//!   (`read_write_open_removes_scratch_files_*`).
//! - `lock`: the flock excludes another handle and is re-entrant (`lock_*`); a lock that would
//!   wait for one this thread holds is an error; a view begun under an operation's lock
//!   keeps it until it is gone.
//! - `processes`: 4 processes x 200 inserts; fork children get a lock of their own; a process
//!   dying inside a value write; SIGKILL at many points of changes. The children re-run this
//!   test binary with `processes::worker_process` as the only test and the worker's job in
//!   `MMAPPICKLE_CONTAINER_WORKER`.

mod changes;
mod glance;
mod headers;
mod lock;
mod processes;
mod repair;
mod vacuum;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mmappickle_container::{Container, NewEntry};

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
