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
#[path = "../examples/quickstart.rs"]
mod quickstart;

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

/// A plain `pickle.dump` of `value` (the codec's pickler writes protocol 4, as Python does).
fn write_plain_pickle(path: &Path, value: &Value) {
    std::fs::write(path, codec::dumps(value)).unwrap();
}

/// numpy's own pickle of a 1-d float64 array, as `pickle.dumps(array, 4)` builds it.
fn numpy_pickled_array(values: &[f64]) -> Value {
    use codec::{Construct, Global, Object};
    let mut dtype = Object::new(
        Construct::Reduce,
        Value::Global(Global::new("numpy", "dtype")),
        vec![Value::from("f8"), Value::Bool(false), Value::Bool(true)],
    );
    dtype.state = Some(Value::Tuple(vec![
        Value::Int(3),
        Value::from("<"),
        Value::None,
        Value::None,
        Value::None,
        Value::Int(-1),
        Value::Int(-1),
        Value::Int(0),
    ]));
    let mut array = Object::new(
        Construct::Reduce,
        Value::Global(Global::new("numpy.core.multiarray", "_reconstruct")),
        vec![
            Value::Global(Global::new("numpy", "ndarray")),
            Value::Tuple(vec![Value::Int(0)]),
            Value::Bytes(b"b".to_vec()),
        ],
    );
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    array.state = Some(Value::Tuple(vec![
        Value::Int(1),
        Value::Tuple(vec![Value::Int(values.len() as i64)]),
        Value::from(dtype),
        Value::Bool(false),
        Value::Bytes(raw),
    ]));
    Value::from(array)
}

// Opening a plain pickle of a dict converts it: same keys in order, values equal, numpy
// arrays become mapped entries, the permissions are kept, no scratch file is left.
#[test]
fn convert_plain_pickle() {
    let (dir, path) = temp_file("plain.pkl");
    let dict = Value::Dict(vec![
        (Value::from("a"), Value::Int(1)),
        (Value::from("array"), numpy_pickled_array(&[1.0, 2.0, 3.0])),
        (Value::from("list"), Value::from(vec![1i64, 2])),
    ]);
    write_plain_pickle(&path, &dict);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let m = MmapDict::open(&path).unwrap();
    assert_eq!(m.keys().unwrap(), ["a", "array", "list"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the converted file keeps the permissions"
    );
    assert_eq!(m.value("a").unwrap(), Value::Int(1));
    assert_eq!(m.value("list").unwrap(), Value::from(vec![1i64, 2]));
    assert_eq!(m.array::<f64>("array").unwrap().to_vec(), [1.0, 2.0, 3.0]);
    assert_eq!(m.commit_number().unwrap(), 3);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("plain.pkl")]);
}

// Opened read-only, a plain pickle is an error that says so, and the file is untouched.
#[test]
fn convert_refused_read_only() {
    let (_dir, path) = temp_file("plain.pkl");
    let dict = Value::Dict(vec![(Value::from("a"), Value::Int(1))]);
    write_plain_pickle(&path, &dict);
    let before = std::fs::read(&path).unwrap();
    let error = MmapDict::open_readonly(&path).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::PlainPickleReadOnly),
        "{error}"
    );
    assert!(error.to_string().contains("convert"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

// A plain pickle of a list is not a dict; a dict with an int key cannot be converted; both
// leave the file untouched.
#[test]
fn convert_refuses_non_dicts_and_non_str_keys() {
    let (_dir, path) = temp_file("list.pkl");
    write_plain_pickle(&path, &Value::from(vec![1i64]));
    let before = std::fs::read(&path).unwrap();
    let error = MmapDict::open(&path).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NotADict { found: "list" }),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let (_dir, path) = temp_file("intkey.pkl");
    write_plain_pickle(&path, &Value::Dict(vec![(Value::Int(1), Value::Int(2))]));
    let before = std::fs::read(&path).unwrap();
    let error = MmapDict::open(&path).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NonStrKey { found: "int" }),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

// A missing key: its own error, naming the key.
#[test]
fn error_key_not_found() {
    let (_dir, path) = temp_file("e.mmdpickle");
    let m = MmapDict::open(&path).unwrap();
    for error in [
        m.get("nope").unwrap_err(),
        m.value("nope").unwrap_err(),
        m.array::<u8>("nope").unwrap_err(),
        m.masked::<u8>("nope").unwrap_err(),
        m.raw_value("nope").unwrap_err(),
    ] {
        assert!(
            matches!(error.kind(), ErrorKind::KeyNotFound { key } if key == "nope"),
            "{error}"
        );
    }
}

// A key over 255 UTF-8 bytes is refused by every insert; 255 bytes is fine.
#[test]
fn error_key_too_long() {
    let (_dir, path) = temp_file("e.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let long = "é".repeat(128);
    for error in [
        m.insert(&long, 1).unwrap_err(),
        m.insert_array(&long, &[1u8], &[1]).unwrap_err(),
        m.insert_masked(&long, &[1u8], &[false], &[1]).unwrap_err(),
        m.insert_stub(&long, EmptyArray::new::<u8>(&[1]))
            .unwrap_err(),
    ] {
        assert!(
            matches!(error.kind(), ErrorKind::KeyTooLong { len: 256 }),
            "{error}"
        );
    }
    m.insert(&"k".repeat(255), 1).unwrap();
    assert_eq!(m.len().unwrap(), 1);
}

// Asking for the wrong element type names the dtype and the type asked for.
#[test]
fn error_wrong_element_type() {
    let (_dir, path) = temp_file("e.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &[1.0f64], &[1]).unwrap();
    m.insert_masked("m", &[1.0f32], &[false], &[1]).unwrap();
    let error = m.array::<f32>("a").unwrap_err();
    let ErrorKind::WrongElementType {
        key,
        requested,
        dtype,
    } = error.kind()
    else {
        panic!("{error}")
    };
    assert_eq!(
        (key.as_str(), *requested, dtype.as_str()),
        ("a", "f32", "float64")
    );
    let error = m.masked::<f64>("m").unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WrongElementType { .. }),
        "{error}"
    );
}

// An entry of another kind than asked for.
#[test]
fn error_not_an_array_not_masked() {
    let (_dir, path) = temp_file("e.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("v", 1).unwrap();
    m.insert_array("a", &[1u8], &[1]).unwrap();
    let error = m.array::<u8>("v").unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NotAnArray { key } if key == "v"),
        "{error}"
    );
    let error = m.masked::<u8>("a").unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NotMasked { key } if key == "a"),
        "{error}"
    );
}

// A read-only dict refuses every change and maps read-only; the file is untouched.
#[test]
fn error_read_only() {
    let (_dir, path) = temp_file("ro.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("k", 1).unwrap();
    m.insert_array("a", &[1u8], &[1]).unwrap();
    drop(m);
    let before = std::fs::read(&path).unwrap();
    let mut ro = MmapDict::open_readonly(&path).unwrap();
    assert!(ro.is_readonly());
    for error in [
        ro.insert("k", 2).unwrap_err(),
        ro.insert_array("b", &[1u8], &[1]).unwrap_err(),
        ro.insert_masked("c", &[1u8], &[true], &[1]).unwrap_err(),
        ro.insert_stub("d", EmptyArray::new::<u8>(&[1]))
            .unwrap_err(),
        ro.remove("k").unwrap_err(),
        ro.array_mut::<u8>("a").map(drop).unwrap_err(),
        ro.vacuum().unwrap_err(),
        ro.fsck().unwrap_err(),
    ] {
        assert!(matches!(error.kind(), ErrorKind::ReadOnly), "{error}");
    }
    assert_eq!(ro.array::<u8>("a").unwrap().to_vec(), [1]);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

// Read-only open of a missing file fails (nothing is created).
#[test]
fn error_read_only_missing_file() {
    let (_dir, path) = temp_file("missing.mmdpickle");
    let error = MmapDict::open_readonly(&path).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Container(_)), "{error}");
    assert!(!path.exists());
}

// Data that does not fill the shape, and a mask of another length.
#[test]
fn error_data_and_mask_lengths() {
    let (_dir, path) = temp_file("e.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let error = m.insert_array("a", &[1u8, 2], &[3]).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Array(_)), "{error}");
    let error = m.insert_masked("m", &[1u8, 2], &[true], &[2]).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::MaskLength { data: 2, mask: 1 }),
        "{error}"
    );
    assert!(m.is_empty().unwrap());
}

// A file that is neither mmappickle nor a pickle is refused as not a container.
#[test]
fn error_not_a_container() {
    let (_dir, path) = temp_file("junk.bin");
    std::fs::write(&path, b"this is not a pickle at all").unwrap();
    let error = MmapDict::open(&path).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Container(_)), "{error}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"this is not a pickle at all"
    );
}

// The dict's limits bound decoding: a nested value deeper than max_depth is an error.
#[test]
fn error_limits_exceeded() {
    let (_dir, path) = temp_file("deep.mmdpickle");
    let mut deep = Value::None;
    for _ in 0..50 {
        deep = Value::List(vec![deep]);
    }
    MmapDict::open(&path).unwrap().insert("deep", deep).unwrap();
    let limits = Limits {
        max_depth: 10,
        ..Limits::default()
    };
    let m = MmapDict::options().limits(limits).open(&path).unwrap();
    let error = m.get("deep").unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Codec(_)), "{error}");
}

/// Replaces the first occurrence of `from` in the file at `path` by `to` (same length);
/// gives the offset of the change.
fn patch_file(path: &Path, from: &[u8], to: &[u8]) -> u64 {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (0..bytes.len())
        .find(|&at| bytes[at..].starts_with(from))
        .unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
    std::fs::write(path, bytes).unwrap();
    at as u64
}

// An array expression whose header numpy would refuse (raw length against shape x
// itemsize, a dtype name of no numpy size), plain or inside a masked array, is an error of
// `get` and `value` at the offset of the bad part, not a generic value; the other entries
// still read. (Well-formed dtypes this crate does not know read as raw bytes:
// `raw_dtypes_round_trip`.)
#[test]
fn error_malformed_array_header() {
    let cases: [(&str, &[u8], &[u8], bool); 3] = [
        (
            "shape (2,) for 3 float64",
            b"K\x03\x85\x86R",
            b"K\x02\x85\x86R",
            false,
        ),
        ("dtype float65", b"float64", b"float65", false),
        (
            "masked data of shape (2,)",
            b"K\x03\x85\x86R",
            b"K\x02\x85\x86R",
            true,
        ),
    ];
    for (name, from, to, masked) in cases {
        let (_dir, path) = temp_file("malformed.mmdpickle");
        let mut m = MmapDict::options().align(false).open(&path).unwrap();
        if masked {
            m.insert_masked("x", &[1i32, 2, 3], &[true, false, true], &[3])
                .unwrap();
        } else {
            m.insert_array("x", &[1.0f64, 2.0, 3.0], &[3]).unwrap();
        }
        m.insert("after", "kept").unwrap();
        drop(m);
        let at = patch_file(&path, from, to);
        let m = MmapDict::open_readonly(&path).unwrap();
        for error in [m.get("x").unwrap_err(), m.value("x").unwrap_err()] {
            assert!(
                matches!(error.kind(), ErrorKind::Array(_)),
                "{name}: {error}"
            );
            // The error points at the dtype name, just before the shape.
            let offset = error.offset().unwrap_or(u64::MAX);
            assert!(
                offset + 12 >= at && offset <= at,
                "{name}: {error} (patched at {at})"
            );
            assert!(error.to_string().contains("at byte offset"), "{error}");
        }
        assert!(
            matches!(m.get("after").unwrap(), Item::Value(value) if value == Value::from("kept")),
            "{name}"
        );
        // The listing's classifier is `get`'s: the entry is malformed there too.
        let listing = m.listing().unwrap();
        let kinds: Vec<_> = listing
            .entries()
            .filter(|info| info.entry.is_live())
            .map(|info| (info.entry.key(), info.kind.map(ValueKind::name)))
            .collect();
        assert_eq!(
            kinds,
            [("x", Some("malformed")), ("after", Some("value"))],
            "{name}"
        );
    }
}

// A read-write open removes the scratch files that a killed convert
// (`<path>.converting-<pid>`) or vacuum (`.<name>.vacuum-<pid>`) left, when their process
// is gone; those of a live process stay, and a read-only open removes nothing.
#[test]
fn read_write_open_removes_stale_scratch_files() {
    let (dir, path) = temp_file("scratch.mmdpickle");
    MmapDict::open(&path).unwrap().insert("k", 1).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let live = std::process::id();
    let stale = [
        dir.path()
            .join(format!("scratch.mmdpickle.converting-{dead}")),
        dir.path().join(format!(".scratch.mmdpickle.vacuum-{dead}")),
    ];
    let kept = [
        dir.path()
            .join(format!("scratch.mmdpickle.converting-{live}")),
        dir.path().join(format!(".scratch.mmdpickle.vacuum-{live}")),
    ];
    for file in stale.iter().chain(&kept) {
        std::fs::write(file, b"partial").unwrap();
    }
    MmapDict::open_readonly(&path).unwrap();
    assert!(stale.iter().all(|file| file.exists()));
    let m = MmapDict::open(&path).unwrap();
    for file in &stale {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    for file in &kept {
        assert!(file.exists(), "{} was removed", file.display());
    }
    assert_eq!(m.get("k").unwrap().as_value(), Some(&Value::Int(1)));
}

// A kill inside the very first open can leave an empty file (created, not yet written):
// a read-only open refuses it with an error at byte 0, a read-write open initialises it.
#[test]
fn an_empty_file_is_refused_read_only_and_initialised_read_write() {
    let (_dir, path) = temp_file("empty.mmdpickle");
    std::fs::write(&path, b"").unwrap();
    let error = MmapDict::open_readonly(&path).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Container(_)), "{error}");
    assert_eq!(error.offset(), Some(0));
    assert!(error.to_string().contains("at byte offset 0"), "{error}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    let mut m = MmapDict::open(&path).unwrap();
    assert!(m.keys().unwrap().is_empty());
    m.insert("k", "v").unwrap();
    assert_eq!(
        MmapDict::open_readonly(&path).unwrap().keys().unwrap(),
        ["k"]
    );
}

// A torn last entry: read-only, the complete entries are read and the file is left as it
// is; read-write, the open repairs it and fsck reports what was dropped.
#[test]
fn fsck_repairs_a_torn_entry() {
    let (_dir, path) = temp_file("torn.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("kept", 1).unwrap();
    m.insert("torn", "x".repeat(100)).unwrap();
    drop(m);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 40).unwrap();
    drop(file);
    let torn = std::fs::read(&path).unwrap();
    let readonly = MmapDict::open_readonly(&path).unwrap();
    assert_eq!(readonly.keys().unwrap(), ["kept"]);
    let torn_at = readonly.torn_at().unwrap().unwrap();
    assert_eq!(readonly.value("kept").unwrap(), Value::Int(1));
    drop(readonly);
    assert_eq!(std::fs::read(&path).unwrap(), torn);
    let mut m = MmapDict::open(&path).unwrap();
    let report = m.fsck().unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.truncated_at, torn_at);
    assert_eq!(report.dropped_key.as_deref(), Some("torn"));
    assert_eq!(m.keys().unwrap(), ["kept"]);
    assert!(m.fsck().unwrap().is_clean());
}

// `MmapDict` can move to another thread.
#[test]
fn mmap_dict_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<MmapDict>();
    let (_dir, path) = temp_file("send.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("k", 1).unwrap();
    let value = std::thread::spawn(move || m.value("k").unwrap())
        .join()
        .unwrap();
    assert_eq!(value, Value::Int(1));
}

// The quick start example runs to the end (its own asserts check each step).
#[test]
fn quickstart_example_runs() {
    let (_dir, path) = temp_file("quickstart.mmdpickle");
    quickstart::run(&path).unwrap();
    let m = MmapDict::open_readonly(&path).unwrap();
    assert_eq!(m.keys().unwrap(), ["other_key", "test"]);
}

// ndarray in, ndarray view out; a Fortran-ordered array is stored in C order
// (`cargo test -p mmappickle --features ndarray`).
#[cfg(feature = "ndarray")]
#[test]
fn ndarray_round_trip() {
    let (_dir, path) = temp_file("ndarray.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let c_order = ndarray::Array2::from_shape_fn((2, 3), |(i, j)| (i * 10 + j) as f64);
    m.insert_ndarray("c", &c_order).unwrap();
    m.insert_ndarray("f", &c_order.t()).unwrap();
    let map = m.array::<f64>("c").unwrap();
    assert_eq!(map.view().unwrap(), c_order.view().into_dyn());
    let map = m.array::<f64>("f").unwrap();
    assert_eq!(map.shape(), [3, 2]);
    assert_eq!(map.view().unwrap(), c_order.t().into_dyn());
}

/// The raw-data length in a `DataLength` error.
fn data_length(error: &mmappickle::Error) -> Option<(u64, u64)> {
    match error.kind() {
        ErrorKind::Array(array_error) => match array_error.kind() {
            mmappickle::array::ErrorKind::DataLength { found, expected } => {
                Some((*found, *expected))
            }
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn streamed_arrays_are_written_as_whole_ones() {
    let (_dir, whole_path) = temp_file("whole.mmdpickle");
    let streamed_path = whole_path.with_file_name("streamed.mmdpickle");
    // 3 MiB + a bit: pieces below, at and above the 1 MiB gathering size.
    let data: Vec<f64> = (0..400_003).map(|i| f64::from(i) * 0.25).collect();
    let raw: &[u8] = bytemuck::cast_slice(&data);
    for encoding in [ArrayEncoding::Compatible, ArrayEncoding::Portable] {
        let open = |path: &Path| MmapDict::options().encoding(encoding).open(path).unwrap();
        let mut whole = open(&whole_path);
        whole.insert("before", 1i64).unwrap();
        whole.insert_array("a", &data, &[data.len()]).unwrap();
        let mut streamed = open(&streamed_path);
        streamed.insert("before", 1i64).unwrap();
        streamed
            .insert_array_with("a", &f64::dtype(), &[data.len()], |emit| {
                let (small, rest) = raw.split_at(13);
                for byte in small.chunks(1) {
                    emit(byte)?;
                }
                let (large, rest) = rest.split_at((1 << 20) + 5);
                emit(large)?;
                for piece in rest.chunks(70_000) {
                    emit(piece)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            streamed.array::<f64>("a").unwrap().as_slice().unwrap(),
            data
        );
        drop((whole, streamed));
        assert!(
            std::fs::read(&whole_path).unwrap() == std::fs::read(&streamed_path).unwrap(),
            "{encoding:?}: the streamed file differs from the one written whole"
        );
        std::fs::remove_file(&whole_path).unwrap();
        std::fs::remove_file(&streamed_path).unwrap();
    }
}

#[test]
fn a_stream_of_the_wrong_length_or_failing_changes_nothing() {
    let (_dir, path) = temp_file("stream.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("kept", "value").unwrap();
    let before = std::fs::read(&path).unwrap();
    let dtype = i32::dtype();

    let short = m
        .insert_array_with("a", &dtype, &[4, 4], |emit| emit(&[0; 60]))
        .unwrap_err();
    assert_eq!(data_length(&short), Some((60, 64)), "{short}");

    let long = m
        .insert_array_with("a", &dtype, &[4, 4], |emit| {
            emit(&[0; 40])?;
            emit(&[0; 40])
        })
        .unwrap_err();
    assert_eq!(data_length(&long), Some((80, 64)), "{long}");

    let failed = m
        .insert_array_with("a", &dtype, &[4, 4], |emit| {
            emit(&[0; 16])?;
            Err(std::io::Error::other("the source went away"))
        })
        .unwrap_err();
    // The writer's own I/O error is the source, said once.
    let source = std::error::Error::source(&failed).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("the source went away"), "{failed}");
    assert!(!failed.to_string().contains("went away"), "{failed}");

    assert_eq!(m.keys().unwrap(), ["kept"]);
    drop(m);
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
}

// An older live entry of a key (a replace cut short by a crash) is listed as shadowed by a
// read-only handle (a read-write open deletes it).
#[test]
fn listing_marks_an_older_live_duplicate_as_shadowed() {
    let (_dir, path) = temp_file("shadowed.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("k", 1).unwrap();
    m.insert("k", 2).unwrap();
    m.insert("other", 3).unwrap();
    let old = m.listing().unwrap().table().entries()[0].clone();
    assert!(!old.is_live());
    drop(m);
    assert!(MmapDict::open_readonly(&path)
        .unwrap()
        .listing()
        .unwrap()
        .entries()
        .all(|info| !info.shadowed));
    // The live flag is the entry's second-to-last byte (NEWTRUE when live).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(old.end() - 2) as usize] = 0x88;
    std::fs::write(&path, &bytes).unwrap();
    let listing = MmapDict::open_readonly(&path).unwrap().listing().unwrap();
    let shadowed: Vec<_> = listing
        .entries()
        .map(|info| (info.entry.key(), info.entry.is_live(), info.shadowed))
        .collect();
    assert_eq!(
        shadowed,
        [
            ("k", true, true),
            ("k", true, false),
            ("other", true, false)
        ]
    );
    assert_eq!(listing.n_live(), 2);
}

// The listing keeps kinds only for values that are not plain values: each entry still gets
// its own kind, in file order, and padding and entry listings get none.
#[test]
fn listing_gives_every_entry_its_kind() {
    let (_dir, path) = temp_file("kinds.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("a", 1).unwrap();
    m.insert_array("grid", &[1i32, 2, 3, 4], &[2, 2]).unwrap();
    m.insert("b", "text").unwrap();
    m.insert_masked("masked", &[1.5f64, 2.5], &[false, true], &[2])
        .unwrap();
    m.insert("c", vec![1, 2, 3]).unwrap();
    m.remove("a").unwrap();
    let listing = m.listing().unwrap();
    let kinds: Vec<_> = listing
        .entries()
        .map(|info| {
            let name = if info.entry.is_padding() {
                "padding".to_owned()
            } else {
                info.entry.key().to_owned()
            };
            (name, info.kind.map(ValueKind::name))
        })
        .collect();
    let expected: Vec<_> = [
        ("a", Some("value")),
        ("grid", Some("array")),
        ("b", Some("value")),
        ("masked", Some("masked")),
        ("c", Some("value")),
    ]
    .map(|(key, kind)| (key.to_owned(), kind))
    .into();
    let without_padding: Vec<_> = kinds
        .iter()
        .filter(|(name, _)| name != "padding")
        .cloned()
        .collect();
    assert_eq!(without_padding, expected);
    assert!(kinds
        .iter()
        .all(|(name, kind)| (name == "padding") == kind.is_none()));
    assert_eq!(listing.entries().len(), kinds.len());
    let array = listing
        .entries()
        .find(|info| info.entry.key() == "grid")
        .unwrap();
    let (offset, len) = array.data_range().unwrap();
    assert_eq!((offset % 64, len), (0, 16));
    assert!(m
        .entry_listing()
        .unwrap()
        .entries()
        .all(|info| info.kind.is_none()));
}

// Values written in place by a caller, their length known only afterwards (as a Python
// pickler class writes): first in a batch, between buffered values, with memo indices; bytes
// that are not one whole value, memo indices out of range, MEMOIZE, a failing writer or a
// short write leave the file as it was.
#[test]
fn values_written_in_place_are_checked_before_the_commit() {
    use std::os::unix::fs::FileExt;

    let (_dir, path) = temp_file("written.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    // s = 'x'; [s, s]: EMPTY_LIST MARK SHORT_BINUNICODE 'x' BINPUT i BINGET i APPENDS
    let shared = |memo_start: i32| {
        let index = u8::try_from(memo_start).unwrap();
        let mut value = b"](\x8c\x01xq".to_vec();
        value.extend([index, b'h', index, b'e']);
        value
    };
    m.write(|tx| {
        tx.insert_written("first", |file, offset, memo_start| {
            let value = shared(memo_start);
            file.write_all_at(&value, offset)?;
            Ok((value.len() as u64, memo_start + 1))
        })?;
        tx.insert("between", 5)?;
        tx.insert_written("second", |file, offset, memo_start| {
            let value = shared(memo_start);
            file.write_all_at(&value, offset)?;
            Ok((value.len() as u64, memo_start + 1))
        })?;
        Ok(())
    })
    .unwrap();
    let pair = Value::List(vec![Value::from("x"), Value::from("x")]);
    assert_eq!(m.value("first").unwrap(), pair);
    assert_eq!(m.value("second").unwrap(), pair);
    assert_eq!(m.value("between").unwrap(), Value::Int(5));
    let before = std::fs::read(&path).unwrap();

    let cases: [(&str, Vec<u8>, i32); 4] = [
        ("cut short", b"](\x8c\x01x".to_vec(), 0),
        ("memo index below the start", b"\x8c\x01xq\x00".to_vec(), 1),
        ("memo_max too low", shared(2), 0),
        ("MEMOIZE", b"\x8c\x01x\x94".to_vec(), 1),
    ];
    for (case, value, memo_past_start) in cases {
        let error = m
            .insert_written("bad", |file, offset, memo_start| {
                file.write_all_at(&value, offset)?;
                Ok((value.len() as u64, memo_start + memo_past_start))
            })
            .unwrap_err();
        assert!(
            error.to_string().contains("at byte offset"),
            "{case}: {error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{case}");
    }
    let error = m
        .insert_written("bad", |_, _, _| {
            Err(std::io::Error::other("pickler failed"))
        })
        .unwrap_err();
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("pickler failed"), "{error}");
    // Claims more bytes than it wrote.
    m.insert_written("bad", |file, offset, memo_start| {
        file.write_all_at(b"K\x01", offset)?;
        Ok((1000, memo_start))
    })
    .unwrap_err();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(m.keys().unwrap(), ["first", "between", "second"]);
}
