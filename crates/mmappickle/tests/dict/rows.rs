//! Writes of rows with `pwrite` (`write_rows`, `write_rows_bytes`, `write_rows_in_place`):
//! into a 64 GiB stub's end, in the middle of a 2-D array, into the other byte order; every
//! refusal with the file unchanged; the claim that keeps them off live maps; the lock that
//! keeps them off a replace and on the file a vacuum by another handle put in place.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{mpsc, Arc, Barrier};

use mmappickle::{ArrayPlace, Durability};

use super::*;

const MIB: usize = 1 << 20;

/// The file's bytes, to check that a refused write changed none.
fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

// The workload of `cargo xtask peers` row 7 in Rust: a 64 GiB float32 stub, 1 MiB written at
// its end. The file keeps its holes: its blocks are the written MiB and the headers, not
// the 64 GiB.
#[test]
fn a_mib_written_at_the_end_of_a_64_gib_stub_takes_a_mib_of_disk() {
    let (_dir, path) = temp_file("sparse.mmdpickle");
    let n_rows = 1usize << 34;
    let tail: Vec<f32> = (0..MIB / 4).map(|i| i as f32 * 0.5 - 7.0).collect();
    let m = {
        let mut m = MmapDict::open(&path).unwrap();
        m.insert_stub("big", EmptyArray::new::<f32>(&[n_rows]))
            .unwrap();
        m
    };
    m.write_rows("big", n_rows - tail.len(), &tail).unwrap();
    let metadata = std::fs::metadata(&path).unwrap();
    assert!(metadata.len() > 64 << 30);
    let allocated = metadata.blocks() * 512;
    assert!(allocated < 2 * MIB as u64, "{allocated} bytes allocated");
    let big = MmapDict::open_readonly(&path)
        .unwrap()
        .array::<f32>("big")
        .unwrap();
    for (i, expected) in tail.iter().enumerate() {
        assert_eq!(big.get(n_rows - tail.len() + i).unwrap(), *expected);
    }
    assert_eq!(big.get(n_rows - tail.len() - 1).unwrap(), 0.0);
}

// Rows are whole rows of the first axis, C order: rows 2..4 of a 5 x 3 array, the other
// rows untouched; then the last row, by bytes and by a writer of its own.
#[test]
fn rows_land_where_the_first_axis_puts_them() {
    let (_dir, path) = temp_file("rows.mmdpickle");
    let mut m = MmapDict::options()
        .durability(Durability::Flush)
        .open(&path)
        .unwrap();
    m.insert_array("grid", &[-1i32; 15], &[5, 3]).unwrap();
    m.write_rows("grid", 2, &[1i32, 2, 3, 4, 5, 6]).unwrap();
    let int32 = DType::parse("int32").unwrap();
    let last_row: Vec<u8> = [7i32, 8, 9].iter().flat_map(|v| v.to_ne_bytes()).collect();
    m.write_rows_bytes("grid", 4, &int32, &last_row).unwrap();
    assert_eq!(
        m.array::<i32>("grid").unwrap().to_vec(),
        [-1, -1, -1, -1, -1, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    );
    let mut called = None;
    m.write_rows_in_place("grid", 0, &int32, 12, |file, offset, len| {
        called = Some((offset, len));
        file.write_all_at(&[0u8; 12], offset)
    })
    .unwrap();
    let data_offset = m.locate("grid").unwrap().into_array("grid", 0).unwrap();
    assert_eq!(called, Some((data_offset.data_offset, 12)));
    assert_eq!(m.array::<i32>("grid").unwrap().get(2).unwrap(), 0);
    // No rows at all is a write of nothing, anywhere up to the end.
    m.write_rows::<i32>("grid", 5, &[]).unwrap();
}

// A typed write into an array of the other byte order stores the values, swapped, in
// pieces of the swap buffer (here more than one).
#[test]
fn typed_rows_are_swapped_into_the_other_byte_order() {
    let (_dir, path) = temp_file("swapped.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let other_order = f64::dtype().byte_swapped();
    let n = 300_000; // 2.4 MB: three pieces of 1 MiB
    m.insert_array_bytes("be", &other_order, &[n], &vec![0u8; n * 8])
        .unwrap();
    let values: Vec<f64> = (0..n).map(|i| i as f64 / 3.0).collect();
    m.write_rows("be", 0, &values).unwrap();
    let read = m.get("be").unwrap();
    let array = read.as_array().unwrap();
    assert_eq!(array.dtype(), &other_order);
    assert_eq!(array.to_vec::<f64>().unwrap(), values);
    assert_eq!(
        &array.bytes()[8..16],
        (1.0f64 / 3.0).to_bits().swap_bytes().to_ne_bytes()
    );
}

// Every refusal says what, and changes no byte of the file.
#[test]
fn refused_writes_change_nothing() {
    let (_dir, path) = temp_file("refused.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("grid", &[0u16; 12], &[4, 3]).unwrap();
    m.insert("generic", vec![1i64, 2]).unwrap();
    m.insert_masked("masked", &[1.0f32, 2.0], &[true, false], &[2])
        .unwrap();
    m.insert_array("scalar", &[5u8], &[]).unwrap();
    let before = file_bytes(&path);
    let uint16 = DType::parse("uint16").unwrap();
    let refusals = [
        (
            "past the end",
            m.write_rows("grid", 3, &[1u16; 6]).unwrap_err(),
        ),
        (
            "start past the end",
            m.write_rows::<u16>("grid", 5, &[]).unwrap_err(),
        ),
        (
            "start overflows",
            m.write_rows("grid", usize::MAX, &[1u16; 3]).unwrap_err(),
        ),
        (
            "part of a row",
            m.write_rows("grid", 0, &[1u16; 4]).unwrap_err(),
        ),
        (
            "wrong element",
            m.write_rows("grid", 0, &[1i16; 3]).unwrap_err(),
        ),
        (
            "wrong dtype",
            m.write_rows_bytes("grid", 0, &DType::parse(">u2").unwrap(), &[0; 6])
                .unwrap_err(),
        ),
        (
            "generic value",
            m.write_rows("generic", 0, &[1i64]).unwrap_err(),
        ),
        (
            "masked array",
            m.write_rows("masked", 0, &[1.0f32]).unwrap_err(),
        ),
        ("0-d array", m.write_rows("scalar", 0, &[1u8]).unwrap_err()),
        (
            "missing key",
            m.write_rows_bytes("missing", 0, &uint16, &[0; 6])
                .unwrap_err(),
        ),
        (
            "writer error",
            m.write_rows_in_place("grid", 0, &uint16, 6, |_, _, _| {
                Err(std::io::Error::other("no"))
            })
            .unwrap_err(),
        ),
    ];
    for (what, error) in &refusals {
        let expected = match *what {
            "past the end" | "start past the end" | "start overflows" | "0-d array" => {
                matches!(error.kind(), ErrorKind::RowsOutOfRange { .. })
            }
            "part of a row" => matches!(
                error.kind(),
                ErrorKind::BufferLength {
                    expected: 6,
                    found: 8
                }
            ),
            "wrong element" => matches!(error.kind(), ErrorKind::WrongElementType { .. }),
            "wrong dtype" => matches!(error.kind(), ErrorKind::WrongDType { .. }),
            "generic value" | "masked array" => {
                matches!(error.kind(), ErrorKind::NotAnArray { .. })
            }
            "missing key" => matches!(error.kind(), ErrorKind::KeyNotFound { .. }),
            _ => matches!(error.kind(), ErrorKind::Io(_)) && error.offset().is_some(),
        };
        assert!(expected, "{what}: {error:?}");
    }
    let messages: Vec<String> = refusals.iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(messages[0], "rows 3..5 asked of an array of 4 rows");
    assert_eq!(messages[8], "rows 0..0 asked of an array of 0 rows");
    assert!(
        messages[5].contains("dtype uint16: bytes of dtype >u2"),
        "{}",
        messages[5]
    );
    assert_eq!(file_bytes(&path), before);
    drop(m);
    let ro = MmapDict::open_readonly(&path).unwrap();
    let refused = ro.write_rows("grid", 0, &[1u16; 3]).unwrap_err();
    assert!(matches!(refused.kind(), ErrorKind::ReadOnly));
    assert_eq!(file_bytes(&path), before);
}

// Rows of a 0-d array are out of range whatever is asked, `0..0` included (it used to be
// an index out of bounds, a panic).
#[test]
fn a_0d_array_has_no_rows() {
    let place = ArrayPlace {
        data_offset: 100,
        dtype: f64::dtype(),
        shape: Vec::new(),
    };
    let error = place.rows(0..0).unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::RowsOutOfRange { n_rows: 0, .. }
    ));
}

// A map of the array in this process refuses the write (its bytes would change under a
// `&[u8]`), and the thread that writes cannot map or read the array meanwhile; writes of
// several threads run side by side, and once they are done maps come back.
#[test]
fn writes_keep_off_live_maps_and_run_beside_each_other() {
    let (_dir, path) = temp_file("claims.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_stub("a", EmptyArray::new::<u64>(&[4, 1000]))
        .unwrap();
    let reader = m.array::<u64>("a").unwrap();
    let refused = m.write_rows("a", 0, &[1u64; 1000]).unwrap_err();
    assert!(
        matches!(refused.kind(), ErrorKind::MapConflict { .. }),
        "{refused}"
    );
    drop(reader);

    let uint64 = u64::dtype();
    m.write_rows_in_place("a", 0, &uint64, 8000, |file, offset, _| {
        for during in [m.array::<u64>("a").unwrap_err(), m.value("a").unwrap_err()] {
            assert!(
                matches!(during.kind(), ErrorKind::MapConflict { .. }),
                "{during}"
            );
        }
        // Another write runs beside this one.
        m.write_rows("a", 1, &[2u64; 1000]).unwrap();
        file.write_all_at(&[1u8; 8000], offset)
    })
    .unwrap();

    let m = Arc::new(m);
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4u64)
        .map(|row| {
            let (m, barrier) = (Arc::clone(&m), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for round in 0..50 {
                    m.write_rows("a", row as usize, &[row * 100 + round; 1000])
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let values = m.array::<u64>("a").unwrap().to_vec();
    for row in 0..4 {
        assert!(values[row * 1000..(row + 1) * 1000]
            .iter()
            .all(|&v| v == row as u64 * 100 + 49));
    }
    assert_eq!(m.live_maps(), 0);
}

// Reads of the array's bytes in other threads (here a pickler's view of the stored value,
// held a while) and writes wait for each other instead of failing: the write starts once
// the read ends, and a read asked during a write sees it whole.
#[test]
fn reads_and_writes_of_other_threads_wait_for_each_other() {
    let (_dir, path) = temp_file("waits.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &[0u8; 64], &[64]).unwrap();
    let m = Arc::new(m);
    let (reading, read_held) = mpsc::channel();
    let reader = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || {
            let snapshot = m.read().unwrap();
            let stored = snapshot.stored("a").unwrap();
            reading.send(()).unwrap();
            // Long enough for the write below to be waiting for this read.
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(stored);
        })
    };
    read_held.recv().unwrap();
    m.write_rows("a", 0, &[1u8; 64]).unwrap();
    reader.join().unwrap();

    let (writing, write_held) = mpsc::channel();
    let reader = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || {
            write_held.recv().unwrap();
            m.value("a").unwrap()
        })
    };
    m.write_rows_in_place("a", 0, &u8::dtype(), 64, |file, offset, _| {
        writing.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        file.write_all_at(&[2u8; 64], offset)
    })
    .unwrap();
    let read = reader.join().unwrap();
    assert_eq!(m.array::<u8>("a").unwrap().to_vec(), [2u8; 64]);
    assert!(read.to_string().contains(r"\x02\x02"), "{read}");
}

// The write holds the shared lock: a replace of the key by another handle (exclusive lock)
// either ends before the write finds the array, and the rows go into the new array, or
// starts after it; never is the write's array deleted under it. Here the replace holds
// the lock first; the write waits and lands in the new array, the old one untouched.
#[test]
fn a_write_waits_for_a_replace_and_lands_in_the_new_array() {
    let (_dir, path) = temp_file("replace.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &[0u8; 4096], &[4096]).unwrap();
    let old = m.locate("a").unwrap().into_array("a", 0).unwrap();
    let (locked, lock_held) = mpsc::channel();
    let replacer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut other = MmapDict::open(&path).unwrap();
            other
                .write(|tx| {
                    locked.send(()).unwrap();
                    // Long enough for the write below to be waiting on the lock.
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    tx.insert_array("a", &[9u8; 4096], &[4096])
                })
                .unwrap();
        })
    };
    lock_held.recv().unwrap();
    m.write_rows("a", 0, &[1u8; 16]).unwrap();
    replacer.join().unwrap();
    let new = m.array::<u8>("a").unwrap().to_vec();
    assert!(new[..16].iter().all(|&b| b == 1) && new[16..].iter().all(|&b| b == 9));
    let bytes = file_bytes(&path);
    let old_start = old.data_offset as usize;
    assert!(bytes[old_start..old_start + 4096].iter().all(|&b| b == 0));
}

// A vacuum by another handle renames a new file over the path: a write afterwards goes to
// that file (which every later open reads), not to the old inode this handle had open.
#[test]
fn a_write_after_another_handles_vacuum_reaches_the_new_file() {
    let (_dir, path) = temp_file("vacuumed.mmdpickle");
    let m = {
        let mut m = MmapDict::open(&path).unwrap();
        m.insert("gone", "soon").unwrap();
        m.insert_stub("a", EmptyArray::new::<i64>(&[100])).unwrap();
        m
    };
    let inode_before = std::fs::metadata(&path).unwrap().ino();
    {
        let mut other = MmapDict::open(&path).unwrap();
        other.remove("gone").unwrap();
        assert!(other.vacuum().unwrap().removed_entries > 0);
    }
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode_before);
    m.write_rows("a", 99, &[42i64]).unwrap();
    let reopened = MmapDict::open_readonly(&path).unwrap();
    assert_eq!(reopened.array::<i64>("a").unwrap().get(99).unwrap(), 42);
}
