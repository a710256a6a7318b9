//! Mapped data and a shrinking file (`RELIABILITY.md`, section 4).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use mmappickle::{EmptyArray, ErrorKind, MmapDict};

use crate::workers::{has_marker, worker_exe};

fn inode_len(file: &std::fs::File) -> u64 {
    file.metadata().unwrap().len()
}

// While maps are alive, no operation of this process shrinks the inode they map: inserts,
// replaces, removes, fsck and reopening only grow it or flip bytes; vacuum by the mapping
// handle is refused, vacuum by another handle writes a new inode and leaves the old one whole.
#[test]
fn our_operations_never_shrink_a_mapped_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrink.mmdpickle");
    let mut dict = MmapDict::open(&path).unwrap();
    let data: Vec<i64> = (0..10_000).collect();
    dict.insert_array("tail", &data, &[10_000]).unwrap();
    dict.insert("small", 1).unwrap();
    dict.insert_stub("stub", EmptyArray::new::<f32>(&[100, 100]))
        .unwrap();
    let map = dict.array::<i64>("tail").unwrap();
    let stub = dict.array::<f32>("stub").unwrap();
    // The mapped inode, held open through a handle of its own to watch its length.
    let mapped = std::fs::File::open(&path).unwrap();
    let mapped_inode = mapped.metadata().unwrap().ino();
    let mut min_len = inode_len(&mapped);
    let mut check = |what: &str| {
        let len = inode_len(&mapped);
        assert!(
            len >= min_len,
            "{what} shrank the mapped file: {min_len} -> {len}"
        );
        min_len = len;
        assert_eq!(map.to_vec(), data, "{what}");
        assert!(stub.to_vec().iter().all(|&x| x == 0.0), "{what}");
    };

    dict.insert("small", 2).unwrap();
    check("a replace");
    dict.remove("small").unwrap();
    check("a remove");
    dict.insert_array("more", &[1u8; 4096], &[4096]).unwrap();
    check("an array insert");
    dict.fsck().unwrap();
    check("fsck");
    let mut second = MmapDict::open(&path).unwrap();
    check("a read-write open");
    second.insert("from-second", "x").unwrap();
    second.remove("more").unwrap();
    check("changes by a second handle");
    let refused = dict.vacuum().unwrap_err();
    assert!(
        matches!(refused.kind(), ErrorKind::MapsAlive { count: 2 }),
        "{refused}"
    );
    check("a refused vacuum");
    second.vacuum().unwrap();
    check("a vacuum by another handle");
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), mapped_inode);
    drop(second);
    drop(map);
    drop(stub);
    // With no map alive, vacuum by the dict itself also goes through a new inode.
    dict.insert("x", 1).unwrap();
    dict.remove("x").unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    dict.vacuum().unwrap();
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode);
}

// A file cut short by someone else (without our lock) after we opened it: the next `array`
// or `get` finds the length changed under the lock, reads the file as torn (the cut entry is
// not among the complete ones) and reports the key missing instead of mapping past the end
// of the file. A read-write handle repairs the tail as fsck would.
#[test]
fn a_file_truncated_before_mapping_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.mmdpickle");
    for readonly in [true, false] {
        let mut dict = MmapDict::open(&path).unwrap();
        dict.insert_array("big", &vec![1.0f64; 100_000], &[100_000])
            .unwrap();
        let dict = MmapDict::options().readonly(readonly).open(&path).unwrap();
        assert_eq!(dict.keys().unwrap(), ["big"]);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 4096).unwrap();
        let error = dict.array::<f64>("big").unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::KeyNotFound { .. }),
            "{error}"
        );
        let error = dict.get("big").unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::KeyNotFound { .. }),
            "{error}"
        );
        assert!(dict.torn_at().unwrap().is_some());
        drop(dict);
        if !readonly {
            // The first change repairs the tail (reads leave it, under the shared lock).
            let mut dict = MmapDict::open(&path).unwrap();
            dict.insert("after", 1).unwrap();
            assert_eq!(dict.torn_at().unwrap(), None);
            assert_eq!(dict.keys().unwrap(), ["after"]);
        }
        std::fs::remove_file(&path).unwrap();
    }
}

// The hazard we cannot prevent, shown: a process that truncates the file (without our lock,
// as no mmappickle operation does) under a live map makes the reader fault with SIGBUS.
#[test]
fn a_foreign_truncation_under_a_live_map_raises_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigbus.mmdpickle");
    let mut dict = MmapDict::open(&path).unwrap();
    dict.insert_array("big", &vec![1.0f64; 100_000], &[100_000])
        .unwrap();
    drop(dict);
    let workers = worker_exe();
    // No core dump of the expected SIGBUS.
    let mut child = workers
        .limited_command(&format!("map-and-read|{}", path.display()), "-c 0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|line| line.is_ok_and(|line| has_marker(&line, "[mapped]"))));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = child.wait().unwrap();
    const SIGBUS: i32 = 7;
    assert_eq!(status.signal(), Some(SIGBUS), "{status}");
}
