#![cfg(unix)]
//! Stubs on a real file system: holes, sizes, reservation.
//!
//! - `terabyte_stub_is_a_hole`: a 1 TiB stub writes only its header, takes
//!   kilobytes of disk and reads as zeros through a map.
//! - `reserve_refuses_without_space`: reserving more than the disk has is a
//!   clear `NoSpace` error, before anything is written.
//! - `reserve_allocates`: a reserved stub takes its disk space.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use mmappickle_array::{ErrorKind, FileSink, MappedArray, MappedArrayMut};
use mmappickle_stubs::EmptyArray;

fn open_rw(path: &std::path::Path) -> File {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

#[test]
fn terabyte_stub_is_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stub");
    let file = open_rw(&path);
    let n = 1usize << 37; // 2^37 float64 = 1 TiB
    let header = EmptyArray::new::<f64>(&[n])
        .write_to(&mut FileSink::new(&file, 0, Some(&path)))
        .unwrap();
    let meta = file.metadata().unwrap();
    assert_eq!(meta.len(), header.end);
    assert!(meta.len() > 1 << 40);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes on disk",
        meta.blocks() * 512
    );
    // Reads as zeros, and a write through a map lands (taking one page).
    let mut map = {
        // SAFETY: a temporary file of this test that nothing shrinks, with no other map of these bytes alive.
        unsafe {
            MappedArrayMut::<f64>::map(
                &file,
                header.raw_offset,
                header.dtype.clone(),
                &header.shape,
            )
        }
    }
    .unwrap();
    assert_eq!(map.get(0).unwrap(), 0.0);
    assert_eq!(map.get(n - 1).unwrap(), 0.0);
    map.set(n / 2, 4.5).unwrap();
    map.flush().unwrap();
    drop(map);
    let read = {
        // SAFETY: a temporary file of this test that nothing shrinks, with no other map of these bytes alive.
        unsafe { MappedArray::<f64>::map(&file, header.raw_offset, header.dtype, &header.shape) }
    }
    .unwrap();
    assert_eq!(read.get(n / 2).unwrap(), 4.5);
}

#[test]
fn reserve_refuses_without_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stub");
    let file = open_rw(&path);
    let available = fs2::available_space(&path).unwrap();
    let too_many = usize::try_from(available / 8 + (1 << 30)).unwrap();
    let err = EmptyArray::new::<f64>(&[too_many])
        .reserve(true)
        .write_to(&mut FileSink::new(&file, 0, Some(&path)))
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NoSpace { needed, available: a } if *needed > *a));
    assert_eq!(file.metadata().unwrap().len(), 0);
    // Without a path, the same check goes through the open file.
    let err = EmptyArray::new::<f64>(&[too_many])
        .reserve(true)
        .write_to(&mut FileSink::new(&file, 0, None))
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NoSpace { .. }));
}

#[test]
fn reserve_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stub");
    let file = open_rw(&path);
    let header = EmptyArray::new::<u8>(&[1 << 20])
        .reserve(true)
        .write_to(&mut FileSink::new(&file, 0, Some(&path)))
        .unwrap();
    assert!(file.metadata().unwrap().blocks() * 512 >= header.raw_len);
}
