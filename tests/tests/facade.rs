//! The facade (`mmappickle::MmapDict`) against the Python library and numpy.
//!
//! Index of the cases:
//! - `every_fixture_reads_through_mmapdict`: every Python-made fixture reads through
//!   `MmapDict` exactly as the manifest says: keys in order, commit number, deleted keys
//!   gone, generic values equal, arrays and masked arrays mapped with the manifest's dtype,
//!   shape and SHA-256 of the raw bytes (also the keys Python cannot read back itself).
//! - `python_reads_a_compatible_file_we_write`: generic values, arrays of every dtype,
//!   masked arrays, a stub, deleted and replaced keys, written with the default encoding:
//!   Python `mmapdict` reads every array as a `numpy.memmap`, `pickle.load` reads the file
//!   with numpy 1.23.5, and with numpy 2.x up to 2.2 (from 2.3 on it must fail: binary
//!   `fromstring` was removed).
//! - `python_reads_a_portable_file_we_write`: the same arrays in the portable encoding load
//!   with `pickle.load` on numpy 1.23.5 and on numpy 2.x; Python `mmapdict` reads the file
//!   (its arrays as ordinary values, which is why they are only checked for presence).
//! - `convert_python_plain_pickles`: `pickle.dump` of a dict with arrays (C and Fortran
//!   order, several dtypes) and masked arrays in protocols 0 to 5, converted by opening it with `MmapDict`;
//!   the result reads the same through `MmapDict` and through Python `mmapdict` (arrays and
//!   masked arrays as `numpy.memmap`).
//! - `python_writes_the_bytes_the_facade_writes`: with alignment off, generic values,
//!   arrays (native and byte-swapped), a replaced key, a masked array and a stub make a
//!   file byte-identical to the one the Python library writes from the same entries.
//! - `python_writes_the_bytes_the_facade_writes_past_page_boundaries`: 300 small values
//!   (over 8 KiB, some entry ending in the last 10 bytes of a 4 KiB page, which the default
//!   page rule would pad) with alignment off are byte-identical to Python's file.
//! - `python_and_rust_share_a_file`: a Rust handle stays open while a Python process
//!   changes the file; the handle sees the change at its next operation, and Python sees
//!   the handle's next change (both take the same `flock`).

use std::ffi::OsStr;
use std::path::Path;

use mmappickle::{ArrayData, ArrayEncoding, Bool, DType, EmptyArray, Item, MmapDict, Value};
use mmappickle_conformance::{
    base64_encode, check_file_with_python, check_value, fixtures_dir, manifest, numpy2_version,
    python_mmappickle, python_scripts_dir, run_python, sha256_hex, try_check_file_with_python,
    write_file_with_python, PythonReader,
};
use serde_json::{json, Value as Json};

/// Compares a mapped array with an `{"dtype", "shape", "sha256"}` description.
fn check_map(description: &Json, map: &ArrayData) -> Result<(), String> {
    let found = json!({
        "dtype": map.dtype().name(),
        "shape": map.shape(),
        "sha256": sha256_hex(map.bytes()),
    });
    if &found == description {
        Ok(())
    } else {
        Err(format!("array {found}, expected {description}"))
    }
}

/// Compares what a key holds with its manifest description.
fn check_item(description: &Json, item: &Item) -> Result<(), String> {
    match item {
        Item::Array(map) => match description.get("ndarray") {
            Some(array) => check_map(array, map),
            None => Err(format!("an array, expected {description}")),
        },
        Item::Masked(masked) => match description.get("masked") {
            Some(parts) => {
                check_map(&parts["data"], &masked.data).map_err(|e| format!("data: {e}"))?;
                check_map(&parts["mask"], &masked.mask).map_err(|e| format!("mask: {e}"))
            }
            None => Err(format!("a masked array, expected {description}")),
        },
        Item::Value(value) => check_value(description, value),
        Item::Other(other) => Err(format!(
            "read by {}, expected {description}",
            other.pickler()
        )),
    }
}

/// Checks every key of `dict` against `entries` (`[[key, description], ...]`, file order).
fn check_dict(dict: &mut MmapDict, entries: &[Json], context: &str) {
    let expected_keys: Vec<&str> = entries
        .iter()
        .map(|entry| entry[0].as_str().expect("a str key"))
        .collect();
    assert_eq!(dict.keys().unwrap(), expected_keys, "{context}: keys");
    for entry in entries {
        let key = entry[0].as_str().expect("a str key");
        let item = dict
            .get(key)
            .unwrap_or_else(|e| panic!("{context}: get({key:?}): {e}"));
        if let Err(explanation) = check_item(&entry[1], &item) {
            panic!("{context}: key {key:?}: {explanation}");
        }
    }
}

#[test]
fn every_fixture_reads_through_mmapdict() {
    let manifest = manifest();
    let files = manifest["files"].as_object().expect("files");
    assert!(!files.is_empty());
    for (name, spec) in files {
        let path = fixtures_dir().join(name);
        let mut dict =
            MmapDict::open_readonly(&path).unwrap_or_else(|e| panic!("{name}: open_readonly: {e}"));
        check_dict(
            &mut dict,
            spec["entries"].as_array().expect("entries"),
            name,
        );
        assert_eq!(
            Some(i64::from(dict.commit_number().unwrap())),
            spec["commit_number"].as_i64(),
            "{name}: commit number"
        );
        for deleted in spec["deleted"].as_array().expect("deleted") {
            let key = deleted.as_str().expect("a str key");
            if !spec["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .any(|entry| entry[0] == *deleted)
            {
                assert!(!dict.contains_key(key).unwrap(), "{name}: {key} is deleted");
            }
        }
    }
}

/// An `{"ndarray": ...}` description of raw bytes.
fn array_description(dtype: &str, shape: &[usize], raw: &[u8]) -> Json {
    json!({"ndarray": {"dtype": dtype, "shape": shape, "sha256": sha256_hex(raw)}})
}

fn le_bytes<T: bytemuck::Pod>(data: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(data).to_vec()
}

/// Writes a file of every kind of entry with `encoding`; returns the expected entries in
/// file order and the keys that hold arrays.
fn write_everything(path: &Path, encoding: ArrayEncoding) -> (Vec<Json>, Vec<String>) {
    let mut m = MmapDict::options().encoding(encoding).open(path).unwrap();
    let mut entries = Vec::new();
    let mut array_keys = Vec::new();

    m.insert("deleted", "soon gone").unwrap();
    m.insert("replaced", 1).unwrap();
    m.insert("text", "héllo").unwrap();
    entries.push(json!(["text", "héllo"]));
    m.insert("list", vec![1i64, 2, 3]).unwrap();
    entries.push(json!(["list", [1, 2, 3]]));
    m.insert(
        "nested",
        Value::Dict(vec![(
            Value::from("t"),
            Value::Tuple(vec![
                Value::None,
                Value::Float(2.5),
                Value::from(1u128 << 70),
            ]),
        )]),
    )
    .unwrap();
    entries.push(json!(["nested", {"dict": [["t", {"tuple": [null, 2.5, {"int": "1180591620717411303424"}]}]]}]));

    let mut push_array =
        |m: &mut MmapDict, key: &str, dtype: &str, shape: &[usize], raw: Vec<u8>| {
            m.insert_array_bytes(key, &DType::parse(dtype).unwrap(), shape, &raw)
                .unwrap();
            entries.push(json!([key, array_description(dtype, shape, &raw)]));
            array_keys.push(key.to_owned());
        };
    push_array(&mut m, "bool", "bool", &[4], vec![1, 0, 0, 1]);
    push_array(&mut m, "int8", "int8", &[2, 2], le_bytes(&[-1i8, 2, -3, 4]));
    push_array(&mut m, "int16", "int16", &[2], le_bytes(&[-300i16, 300]));
    push_array(
        &mut m,
        "int32",
        "int32",
        &[3],
        le_bytes(&[-1i32, 0, 70_000]),
    );
    push_array(
        &mut m,
        "int64",
        "int64",
        &[2, 1],
        le_bytes(&[i64::MIN, i64::MAX]),
    );
    push_array(&mut m, "uint8", "uint8", &[3], vec![0, 128, 255]);
    push_array(&mut m, "uint16", "uint16", &[1], le_bytes(&[65_535u16]));
    push_array(
        &mut m,
        "uint32",
        "uint32",
        &[2],
        le_bytes(&[0u32, u32::MAX]),
    );
    push_array(
        &mut m,
        "uint64",
        "uint64",
        &[2],
        le_bytes(&[1u64, u64::MAX]),
    );
    push_array(
        &mut m,
        "float16",
        "float16",
        &[2],
        le_bytes(&[0x3c00u16, 0xc000]),
    );
    push_array(
        &mut m,
        "float32",
        "float32",
        &[2, 3],
        le_bytes(&[1.5f32, -2.0, 0.0, 1e30, -1e-30, 7.0]),
    );
    push_array(
        &mut m,
        "float64",
        "float64",
        &[3],
        le_bytes(&[1.0f64, f64::MAX, -0.5]),
    );
    push_array(
        &mut m,
        "complex64",
        "complex64",
        &[1],
        le_bytes(&[1.0f32, -1.0]),
    );
    push_array(
        &mut m,
        "complex128",
        "complex128",
        &[2],
        le_bytes(&[1.0f64, 2.0, 3.0, 4.0]),
    );
    push_array(
        &mut m,
        "big_endian",
        ">i4",
        &[2],
        vec![0, 0, 1, 2, 255, 255, 255, 255],
    );
    push_array(
        &mut m,
        "unicode",
        "<U2",
        &[1],
        le_bytes(&[u32::from('a'), u32::from('é')]),
    );
    push_array(&mut m, "empty", "float64", &[0, 3], Vec::new());
    push_array(&mut m, "cube", "uint8", &[2, 2, 2, 2], (0..16).collect());

    m.insert("replaced", "new value").unwrap();
    entries.push(json!(["replaced", "new value"]));

    // Stubs: zeros that were never written.
    m.insert_stub("stub", EmptyArray::new::<f64>(&[10, 10]).encoding(encoding))
        .unwrap();
    entries.push(json!([
        "stub",
        array_description("float64", &[10, 10], &[0u8; 800])
    ]));
    array_keys.push("stub".to_owned());

    if encoding == ArrayEncoding::Compatible {
        // Masked arrays have one encoding, Python's.
        m.insert_masked("masked", &[1.0f64, 2.0, 3.0], &[false, true, false], &[3])
            .unwrap();
        entries.push(json!(["masked", {"masked": {
            "data": {"dtype": "float64", "shape": [3], "sha256": sha256_hex(&le_bytes(&[1.0f64, 2.0, 3.0]))},
            "mask": {"dtype": "bool", "shape": [3], "sha256": sha256_hex(&[0, 1, 0])},
        }}]));
        let mut data = m.array_mut::<u8>("uint8").unwrap();
        data.as_slice_mut().unwrap()[0] = 9;
        drop(data);
        let changed = entries
            .iter_mut()
            .find(|entry| entry[0] == "uint8")
            .expect("uint8 entry");
        *changed = json!(["uint8", array_description("uint8", &[3], &[9, 128, 255])]);
        let mut flags = m.array_mut::<Bool>("bool").unwrap();
        flags.set(1, Bool(1)).unwrap();
        drop(flags);
        let changed = entries
            .iter_mut()
            .find(|entry| entry[0] == "bool")
            .expect("bool entry");
        *changed = json!(["bool", array_description("bool", &[4], &[1, 1, 0, 1])]);
    }
    m.remove("deleted").unwrap();

    // Our own reader agrees before Python is asked.
    check_dict(&mut m, &entries, "written by the facade");
    (entries, array_keys)
}

#[test]
fn python_reads_a_compatible_file_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compatible.mmdpickle");
    let (entries, _) = write_everything(&path, ArrayEncoding::Compatible);
    let commit_number = MmapDict::open_readonly(&path)
        .unwrap()
        .commit_number()
        .unwrap();
    let spec = json!({"entries": entries, "commit_number": commit_number});
    check_file_with_python(PythonReader::MmapDict, &path, &spec);
    check_file_with_python(PythonReader::PickleNumpy1, &path, &spec);
    let numpy2 = try_check_file_with_python(PythonReader::PickleNumpy2, &path, &spec);
    if numpy2_version() < (2, 3) {
        numpy2.unwrap_or_else(|e| panic!("numpy 2.x before 2.3 must load the file: {e}"));
    } else {
        assert!(numpy2.is_err(), "numpy >= 2.3 has no binary fromstring");
    }
}

#[test]
fn python_reads_a_portable_file_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portable.mmdpickle");
    let (mut entries, array_keys) = write_everything(&path, ArrayEncoding::Portable);
    // numpy's own unpickling (`_reconstruct` + BUILD) turns a byte-swapped array into a
    // native one, as it does for the pickles numpy writes: same values, native bytes.
    let changed = entries
        .iter_mut()
        .find(|entry| entry[0] == "big_endian")
        .expect("big_endian entry");
    *changed = json!([
        "big_endian",
        array_description("int32", &[2], &[2, 1, 0, 0, 255, 255, 255, 255])
    ]);
    let spec = json!({"entries": entries, "mmapdict_skip": array_keys});
    check_file_with_python(PythonReader::PickleNumpy1, &path, &spec);
    check_file_with_python(PythonReader::PickleNumpy2, &path, &spec);
    check_file_with_python(PythonReader::MmapDict, &path, &spec);
}

/// Writes `pickle.dump` of a dict with arrays in `protocol` at `path`; returns its
/// description, `[[key, description], ...]`.
fn write_python_plain_pickle(path: &Path, protocol: u8) -> Vec<Json> {
    let script = r#"
import json, pickle, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from describe import describe
d = {
    "a": 1,
    "b": [1, 2, {"c": (3, "four")}],
    "floats": np.arange(5, dtype="float32"),
    "fortran": np.asfortranarray(np.arange(6, dtype="int64").reshape(2, 3)),
    "bools": np.array([True, False, True]),
    "matrix": np.linspace(0, 1, 12).reshape(3, 4),
    "big_endian": np.arange(3, dtype=">i4"),
    "masked": np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
    "masked_2d": np.ma.masked_array(np.arange(6, dtype="int16").reshape(2, 3), mask=[[1, 0, 0], [0, 0, 1]]),
    "s": "text",
}
with open(sys.argv[2], "wb") as f:
    pickle.dump(d, f, protocol=int(sys.argv[3]))
print(json.dumps([[k, describe(v)] for k, v in d.items()]))
"#;
    let protocol = protocol.to_string();
    let args = [
        python_scripts_dir().into_os_string(),
        path.as_os_str().to_owned(),
        protocol.into(),
    ];
    let args: Vec<&OsStr> = args.iter().map(|arg| arg.as_os_str()).collect();
    let output = run_python(&python_mmappickle(), script, &args);
    let entries: Json = serde_json::from_str(output.trim()).expect("JSON from Python");
    entries.as_array().expect("entries").clone()
}

#[test]
fn convert_python_plain_pickles() {
    for protocol in 0..=5u8 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("plain-{protocol}.pkl"));
        let entries = write_python_plain_pickle(&path, protocol);
        let context = format!("protocol {protocol}");
        // Read-only, the plain pickle is refused and left alone.
        assert!(MmapDict::open_readonly(&path).is_err(), "{context}");
        let mut dict = MmapDict::open(&path).unwrap_or_else(|e| panic!("{context}: {e}"));
        check_dict(&mut dict, &entries, &context);
        for key in ["floats", "fortran", "bools", "matrix", "big_endian"] {
            assert!(
                matches!(dict.get(key).unwrap(), Item::Array(_)),
                "{context}: {key} is a mapped array"
            );
        }
        assert_eq!(
            dict.array::<i64>("fortran").unwrap().to_vec(),
            [0, 1, 2, 3, 4, 5]
        );
        let masked = dict.masked::<i16>("masked_2d").unwrap();
        assert_eq!(masked.data.to_vec(), [0, 1, 2, 3, 4, 5]);
        let mask: Vec<u8> = masked
            .mask
            .to_vec()
            .into_iter()
            .map(|flag| flag.0)
            .collect();
        assert_eq!(mask, [1, 0, 0, 0, 0, 1]);
        drop(masked);
        drop(dict);
        let spec = json!({"entries": entries});
        check_file_with_python(PythonReader::MmapDict, &path, &spec);
        check_file_with_python(PythonReader::PickleNumpy1, &path, &spec);
    }
}

#[test]
fn python_and_rust_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("from_rust", 1).unwrap();
    m.insert_array("array", &[1.0f64, 2.0], &[2]).unwrap();
    let script = r#"
import sys
import numpy as np
import mmappickle
m = mmappickle.mmapdict(sys.argv[1])
assert m["from_rust"] == 1, m["from_rust"]
m["array"][1] = 5.0
m["from_python"] = [2, "two"]
del m["from_rust"]
print(m.commit_number)
"#;
    let output = run_python(&python_mmappickle(), script, &[path.as_os_str()]);
    let python_commit_number: i32 = output.trim().parse().expect("a commit number");
    assert_eq!(m.commit_number().unwrap(), python_commit_number);
    assert_eq!(m.keys().unwrap(), ["array", "from_python"]);
    assert_eq!(
        m.value("from_python").unwrap(),
        Value::List(vec![Value::Int(2), Value::from("two")])
    );
    assert_eq!(m.array::<f64>("array").unwrap().to_vec(), [1.0, 5.0]);
    m.insert("from_rust_again", "hello").unwrap();
    let script = r#"
import sys
import mmappickle
m = mmappickle.mmapdict(sys.argv[1], readonly=True)
print(sorted(m.keys()), m["from_rust_again"])
"#;
    let output = run_python(&python_mmappickle(), script, &[path.as_os_str()]);
    assert_eq!(
        output.trim(),
        "['array', 'from_python', 'from_rust_again'] hello"
    );
}

/// An `{"ndarray": {"dtype", "shape", "base64"}}` description, to build an array in Python.
fn array_to_build(dtype: &str, shape: &[usize], raw: &[u8]) -> Json {
    json!({"dtype": dtype, "shape": shape, "base64": base64_encode(raw)})
}

#[test]
fn python_writes_the_bytes_the_facade_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.mmdpickle");
    let theirs = dir.path().join("theirs.mmdpickle");
    // Python never aligns: with alignment off, the files must match byte for byte.
    let mut m = MmapDict::options().align(false).open(&ours).unwrap();
    let mut entries = Vec::new();

    m.insert("text", "héllo").unwrap();
    entries.push(json!(["text", "héllo"]));
    m.insert("list", vec![1i64, 2, 3]).unwrap();
    entries.push(json!(["list", [1, 2, 3]]));
    let floats = le_bytes(&[1.5f64, -2.0, 0.25, 8.0, 1e300, -0.0]);
    m.insert_array_bytes(
        "floats",
        &DType::parse("float64").unwrap(),
        &[2, 3],
        &floats,
    )
    .unwrap();
    entries.push(json!(["floats", {"ndarray": array_to_build("float64", &[2, 3], &floats)}]));
    let big_endian = vec![0, 0, 1, 2, 255, 255, 255, 255];
    m.insert_array_bytes(
        "big_endian",
        &DType::parse(">i4").unwrap(),
        &[2],
        &big_endian,
    )
    .unwrap();
    entries.push(json!(["big_endian", {"ndarray": array_to_build(">i4", &[2], &big_endian)}]));
    m.insert_array("bools", &[Bool(1), Bool(0)], &[2]).unwrap();
    entries.push(json!(["bools", {"ndarray": array_to_build("bool", &[2], &[1, 0])}]));
    m.insert("list", "replaced").unwrap();
    entries.push(json!(["list", "replaced"]));
    m.insert_masked("masked", &[1i32, 2, 3], &[true, false, false], &[3])
        .unwrap();
    entries.push(json!(["masked", {"masked": {
        "data": array_to_build("int32", &[3], &le_bytes(&[1i32, 2, 3])),
        "mask": array_to_build("bool", &[3], &[1, 0, 0]),
    }}]));
    m.insert_stub("stub", EmptyArray::new::<f64>(&[4, 5]))
        .unwrap();
    entries.push(json!(["stub", {"stub": {"dtype": "float64", "shape": [4, 5]}}]));
    drop(m);

    write_file_with_python(&theirs, &json!(entries));
    assert_same_bytes(
        &std::fs::read(&ours).unwrap(),
        &std::fs::read(&theirs).unwrap(),
    );
}

/// Fails with the first differing byte offset when our file and Python's differ.
fn assert_same_bytes(ours: &[u8], theirs: &[u8]) {
    if ours != theirs {
        let first_difference = ours
            .iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "files differ from byte {first_difference} (ours {} bytes, Python's {} bytes)",
            ours.len(),
            theirs.len()
        );
    }
}

#[test]
fn python_writes_the_bytes_the_facade_writes_past_page_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.mmdpickle");
    let theirs = dir.path().join("theirs.mmdpickle");
    let mut m = MmapDict::options().align(false).open(&ours).unwrap();
    let mut entries = Vec::new();
    for i in 0..300usize {
        let key = format!("key{i:03}");
        // Lengths vary so that entry ends fall at many offsets modulo a page.
        let value = "v".repeat(i % 13);
        m.insert(&key, value.as_str()).unwrap();
        entries.push(json!([key, value]));
    }
    drop(m);
    write_file_with_python(&theirs, &json!(entries));
    let (ours, theirs) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    // The case must exercise the page rule: some terminator of Python's layout (after an
    // entry) starts in the last 10 bytes of a page.
    let table = mmappickle_container::scan(&theirs).unwrap();
    assert!(theirs.len() > 8192);
    assert!(table
        .entries()
        .iter()
        .any(|entry| entry.end() % 4096 > 4096 - 11));
    assert_same_bytes(&ours, &theirs);
}
