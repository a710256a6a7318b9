//! Integration tests of the facade, without Python (the cross-language checks live in the
//! conformance crate, `tests/tests/facade.rs`).
//!
//! Index:
//! - generic values: round trip, replace, remove, order, two handles, iteration;
//! - arrays: every dtype in both encodings, alignment property test, byte-swapped and
//!   string dtypes, masked arrays, stubs (holes), maps after the dict is dropped;
//! - convert of plain pickles made by the codec's pickler;
//! - errors, one by one (malformed array headers included);
//! - stale scratch files of dead processes removed at a read-write open; an empty file;
//! - vacuum refused while a map is alive, then allowed;
//! - `MmapDict: Send`; the quick start example runs.
//!
//! Modules: `errors` (convert of plain pickles, errors one by one), `picklers` (value kinds
//! through the `Pickler` trait), `files` (scratch files, empty and torn files, streams,
//! listings, values written in place), `rows` (writes of rows with `pwrite`: stubs, byte
//! orders, refusals, claims, locking), `unlocked` (small generic values read without the
//! lock); the rest is here.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use half::f16;
use mmappickle::{
    codec, ArrayEncoding, Bool, DType, Element, EmptyArray, ErrorKind, Item, Limits, MmapDict,
    Value, ValueKind,
};
use num_complex::Complex;
use proptest::prelude::*;

#[allow(dead_code)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

mod errors;
mod files;
mod picklers;
mod rows;
mod unlocked;

fn temp_file(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    (dir, path)
}

fn sample_values() -> Vec<(&'static str, Value)> {
    vec![
        ("none", Value::None),
        ("bool", Value::Bool(true)),
        ("int", Value::Int(-7)),
        ("big", Value::from(u128::MAX)),
        ("float", Value::Float(1.5)),
        ("str", Value::from("héllo")),
        ("bytes", Value::Bytes(vec![0, 1, 255])),
        (
            "nested",
            Value::Dict(vec![
                (Value::from("list"), Value::from(vec![1i64, 2, 3])),
                (
                    Value::from("tuple"),
                    Value::Tuple(vec![Value::None, Value::from("x")]),
                ),
            ]),
        ),
    ]
}

// Every generic value comes back equal, through `get` and `value`, in insertion order.
#[test]
fn generic_values_round_trip() {
    let (_dir, path) = temp_file("generic.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    for (key, value) in sample_values() {
        m.insert(key, value).unwrap();
    }
    let expected_keys: Vec<&str> = sample_values().iter().map(|(key, _)| *key).collect();
    assert_eq!(m.keys().unwrap(), expected_keys);
    for (key, value) in sample_values() {
        assert_eq!(m.get(key).unwrap(), value, "get({key})");
        assert_eq!(m.value(key).unwrap(), value, "value({key})");
    }
    assert_eq!(m.len().unwrap(), expected_keys.len());
    // The whole file is one pickle of the dict.
    let whole = codec::loads(&std::fs::read(&path).unwrap()).unwrap();
    let Value::Dict(pairs) = whole else {
        panic!("the file is not a pickle of a dict")
    };
    assert_eq!(pairs.len(), expected_keys.len());
}

// Replacing a key keeps one live entry with the new value, moved to the end (as Python
// does), and moves the commit number by 2; removing moves it by 1.
#[test]
fn replace_and_remove() {
    let (_dir, path) = temp_file("replace.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("a", 1).unwrap();
    m.insert("b", 2).unwrap();
    let before = m.commit_number().unwrap();
    m.insert("a", "new").unwrap();
    assert_eq!(m.commit_number().unwrap(), before + 2);
    assert_eq!(m.keys().unwrap(), ["b", "a"]);
    assert_eq!(m.value("a").unwrap(), Value::from("new"));
    assert!(m.remove("b").unwrap());
    assert_eq!(m.commit_number().unwrap(), before + 3);
    assert!(!m.remove("b").unwrap());
    assert!(!m.contains_key("b").unwrap());
    assert!(m.contains_key("a").unwrap());
    assert_eq!(m.len().unwrap(), 1);
    assert!(!m.is_empty().unwrap());
}

// A second handle sees the first one's changes at its next operation.
#[test]
fn two_handles_see_each_other() {
    let (_dir, path) = temp_file("shared.mmdpickle");
    let mut first = MmapDict::open(&path).unwrap();
    let mut second = MmapDict::open(&path).unwrap();
    first.insert("k", 1).unwrap();
    assert_eq!(second.value("k").unwrap(), Value::Int(1));
    second.insert("k", 2).unwrap();
    assert_eq!(first.value("k").unwrap(), Value::Int(2));
    assert_eq!(
        first.commit_number().unwrap(),
        second.commit_number().unwrap()
    );
}

// `iter` yields every key with what it holds, in file order.
#[test]
fn iteration_gives_values_and_arrays() {
    let (_dir, path) = temp_file("iter.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("v", "text").unwrap();
    m.insert_array("a", &[1i32, 2], &[2]).unwrap();
    let items: Vec<(String, Item)> = m.iter().unwrap().map(Result::unwrap).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].0, "v");
    assert_eq!(items[0].1, Value::from("text"));
    assert_eq!(items[1].0, "a");
    let Item::Array(array) = &items[1].1 else {
        panic!("an array, found {:?}", items[1].1)
    };
    assert_eq!(array.dtype().name(), "int32");
    assert_eq!(array.shape(), [2]);
}

/// Inserts `data` under `key` and checks the typed map gives it back, as a slice too.
fn check_array_round_trip<T: Element>(m: &mut MmapDict, key: &str, data: &[T], shape: &[usize]) {
    m.insert_array(key, data, shape).unwrap();
    let map = m.array::<T>(key).unwrap();
    assert_eq!(map.shape(), shape, "{key}");
    assert_eq!(map.to_vec(), data, "{key}");
    assert_eq!(map.as_slice().unwrap(), data, "{key}: as_slice");
    let Item::Array(bytes) = m.get(key).unwrap() else {
        panic!("{key}: not an array")
    };
    let data_offset = bytes.as_mapped().map(|map| map.data_offset());
    assert_eq!(
        data_offset.map(|offset| offset % 64),
        Some(0),
        "{key}: not aligned"
    );
    assert_eq!(bytes.dtype(), &T::dtype());
}

// Arrays of every dtype with a Rust element, in both encodings, map back equal.
#[test]
fn arrays_of_every_dtype_in_both_encodings() {
    for encoding in [ArrayEncoding::Compatible, ArrayEncoding::Portable] {
        let (_dir, path) = temp_file("arrays.mmdpickle");
        let mut m = MmapDict::options().encoding(encoding).open(&path).unwrap();
        check_array_round_trip(&mut m, "bool", &[Bool(1), Bool(0), Bool(1)], &[3]);
        check_array_round_trip(&mut m, "i8", &[-1i8, 2, 3, 4], &[2, 2]);
        check_array_round_trip(&mut m, "i16", &[-1i16, 300], &[2]);
        check_array_round_trip(&mut m, "i32", &[-1i32, 70_000, 5], &[3, 1]);
        check_array_round_trip(&mut m, "i64", &[i64::MIN, i64::MAX], &[2]);
        check_array_round_trip(&mut m, "u8", &[0u8, 255], &[2]);
        check_array_round_trip(&mut m, "u16", &[0u16, 65_535], &[2]);
        check_array_round_trip(&mut m, "u32", &[0u32, u32::MAX], &[1, 2]);
        check_array_round_trip(&mut m, "u64", &[0u64, u64::MAX], &[2, 1, 1]);
        check_array_round_trip(&mut m, "f16", &[f16::from_f32(1.5), f16::ZERO], &[2]);
        check_array_round_trip(&mut m, "f32", &[1.5f32, -0.0, f32::INFINITY], &[3]);
        check_array_round_trip(&mut m, "f64", &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        check_array_round_trip(&mut m, "c64", &[Complex::new(1.0f32, -2.0)], &[1]);
        check_array_round_trip(&mut m, "c128", &[Complex::new(1.0f64, -2.0)], &[1]);
        check_array_round_trip(&mut m, "empty", &[0f64; 0], &[0, 3]);
        check_array_round_trip(&mut m, "zero_d", &[42i64], &[]);
        check_array_round_trip(&mut m, "many_dims", &[7u8; 24], &[2, 3, 2, 1, 2]);
    }
}

// Dtypes without a Rust element (byte-swapped, unicode) are stored from raw bytes and map
// back as raw bytes; typed access to a byte-swapped array still reads the right values.
#[test]
fn raw_dtypes_round_trip() {
    let (_dir, path) = temp_file("raw.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let big_endian = DType::parse(">i4").unwrap();
    m.insert_array_bytes("be", &big_endian, &[2], &[0, 0, 1, 2, 255, 255, 255, 255])
        .unwrap();
    assert_eq!(m.array::<i32>("be").unwrap().to_vec(), [258, -1]);
    let unicode = DType::parse("<U2").unwrap();
    let text: Vec<u8> = "abcd"
        .chars()
        .flat_map(|c| u32::from(c).to_le_bytes())
        .collect();
    m.insert_array_bytes("text", &unicode, &[2], &text).unwrap();
    let Item::Array(map) = m.get("text").unwrap() else {
        panic!("not an array")
    };
    assert_eq!(map.dtype().name(), "<U2");
    assert_eq!(map.bytes(), text.as_slice());
}

fn aligned_round_trip<T: Element>(
    data: Vec<T>,
    shape: &[usize],
    encoding: ArrayEncoding,
    prefix_len: usize,
) {
    let (_dir, path) = temp_file("prop.mmdpickle");
    let mut m = MmapDict::options().encoding(encoding).open(&path).unwrap();
    // A value of varying length before the array moves its offset in the file.
    m.insert("before", "x".repeat(prefix_len)).unwrap();
    check_array_round_trip(&mut m, "array", &data, shape);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // Every array written maps with `as_slice()` working: its data offset is a multiple of
    // 64 whatever precedes it, for every dtype and both encodings.
    #[test]
    fn every_written_array_is_aligned(
        dims in proptest::collection::vec(0usize..5, 0..4),
        prefix_len in 0usize..300,
        portable in any::<bool>(),
        dtype_idx in 0usize..13,
    ) {
        let n: usize = dims.iter().product();
        let encoding = if portable { ArrayEncoding::Portable } else { ArrayEncoding::Compatible };
        match dtype_idx {
            0 => aligned_round_trip((0..n).map(|i| Bool((i % 2) as u8)).collect(), &dims, encoding, prefix_len),
            1 => aligned_round_trip((0..n).map(|i| i as i8).collect(), &dims, encoding, prefix_len),
            2 => aligned_round_trip((0..n).map(|i| i as i16).collect(), &dims, encoding, prefix_len),
            3 => aligned_round_trip((0..n).map(|i| i as i32).collect(), &dims, encoding, prefix_len),
            4 => aligned_round_trip((0..n).map(|i| i as i64).collect(), &dims, encoding, prefix_len),
            5 => aligned_round_trip((0..n).map(|i| i as u8).collect(), &dims, encoding, prefix_len),
            6 => aligned_round_trip((0..n).map(|i| i as u16).collect(), &dims, encoding, prefix_len),
            7 => aligned_round_trip((0..n).map(|i| i as u32).collect(), &dims, encoding, prefix_len),
            8 => aligned_round_trip((0..n).map(|i| i as u64).collect(), &dims, encoding, prefix_len),
            9 => aligned_round_trip((0..n).map(|i| f16::from_f32(i as f32)).collect(), &dims, encoding, prefix_len),
            10 => aligned_round_trip((0..n).map(|i| i as f32).collect(), &dims, encoding, prefix_len),
            11 => aligned_round_trip((0..n).map(|i| i as f64).collect(), &dims, encoding, prefix_len),
            _ => aligned_round_trip((0..n).map(|i| Complex::new(i as f64, -(i as f64))).collect(), &dims, encoding, prefix_len),
        }
    }
}

// Masked arrays: data and mask map back, through `masked` and `get`.
#[test]
fn masked_arrays_round_trip() {
    let (_dir, path) = temp_file("masked.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_masked(
        "m",
        &[1.0f64, 2.0, 3.0, 4.0],
        &[false, true, false, true],
        &[2, 2],
    )
    .unwrap();
    let masked = m.masked::<f64>("m").unwrap();
    assert_eq!(masked.data.to_vec(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(masked.data.shape(), [2, 2]);
    let mask: Vec<bool> = masked
        .mask
        .to_vec()
        .into_iter()
        .map(|b| b.get().unwrap())
        .collect();
    assert_eq!(mask, [false, true, false, true]);
    assert!(matches!(m.get("m").unwrap(), Item::Masked(_)));
}

// A huge stub is written in constant time and disk: the file is long, its blocks few, and
// it reads as zeros; writes through a map land in the file.
#[test]
fn stubs_are_holes() {
    use std::os::unix::fs::MetadataExt;
    let (_dir, path) = temp_file("stub.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let shape = [1024, 1024, 512]; // 4 GiB of f64
    m.insert_stub("big", EmptyArray::new::<f64>(&shape))
        .unwrap();
    let metadata = std::fs::metadata(&path).unwrap();
    assert!(metadata.len() > 4 << 30);
    assert!(
        metadata.blocks() * 512 < 1 << 20,
        "{} bytes on disk",
        metadata.blocks() * 512
    );
    let mut big = m.array_mut::<f64>("big").unwrap();
    assert_eq!(big.get(123_456_789).unwrap(), 0.0);
    big.set(5, 2.5).unwrap();
    drop(big);
    assert_eq!(m.array::<f64>("big").unwrap().get(5).unwrap(), 2.5);
}

// Maps outlive the dict that made them; vacuum is refused while one is alive, then allowed.
#[test]
fn vacuum_refused_while_maps_alive() {
    let (_dir, path) = temp_file("vacuum.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &[1u16, 2, 3], &[3]).unwrap();
    m.insert_masked("m", &[1u8], &[true], &[1]).unwrap();
    m.insert("gone", 1).unwrap();
    m.remove("gone").unwrap();
    let array = m.array::<u16>("a").unwrap();
    let masked = m.masked::<u8>("m").unwrap();
    assert_eq!(m.live_maps(), 3);
    let refused = m.vacuum().unwrap_err();
    assert!(
        matches!(refused.kind(), ErrorKind::MapsAlive { count: 3 }),
        "{refused}"
    );
    drop(masked);
    let refused = m.vacuum().unwrap_err();
    assert!(
        matches!(refused.kind(), ErrorKind::MapsAlive { count: 1 }),
        "{refused}"
    );
    drop(m);
    // The dict is gone, its map is still good.
    assert_eq!(array.to_vec(), [1, 2, 3]);
    let mut m = MmapDict::open(&path).unwrap();
    drop(array);
    let report = m.vacuum().unwrap();
    assert!(report.len_after < report.len_before);
    assert_eq!(m.keys().unwrap(), ["a", "m"]);
    assert_eq!(m.array::<u16>("a").unwrap().to_vec(), [1, 2, 3]);
}

// An array's bytes are never read beside a writable map of them in this process: `value`,
// `raw_value` and a disassembly are refused while one lives, and no writable map is made
// while a disassembly runs; generic values are read as ever.
#[test]
fn reads_of_array_bytes_are_claimed_as_maps_are() {
    let (_dir, path) = temp_file("claims.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &[1u8, 2, 3], &[3]).unwrap();
    m.insert("v", 1).unwrap();
    let writer = m.array_mut::<u8>("a").unwrap();
    let refused = [
        m.value("a").unwrap_err(),
        m.raw_value("a").unwrap_err(),
        m.with_disassembly(|_| ()).unwrap_err(),
    ];
    for error in refused {
        assert!(
            matches!(error.kind(), ErrorKind::MapConflict { .. }),
            "{error}"
        );
    }
    assert_eq!(m.value("v").unwrap(), Value::Int(1));
    drop(writer);
    let during = m
        .with_disassembly(|_| m.array_mut::<u8>("a").map(drop))
        .unwrap();
    assert!(matches!(
        during.unwrap_err().kind(),
        ErrorKind::MapConflict { .. }
    ));
    assert!(m.value("a").is_ok() && m.raw_value("a").is_ok());
    assert!(m.array_mut::<u8>("a").is_ok());
}
