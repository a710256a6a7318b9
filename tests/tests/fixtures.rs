//! Fixture conformance: files written by the Python library, read by our crates,
//! and files written by our crates, read by the Python library.
//!
//! Index of the cases:
//! - `manifest_lists_every_fixture_file`: `tests/fixtures/` and its manifest agree.
//! - `fixture_*` (one per fixture file): the whole file loads as ONE pickle with
//!   `mmappickle_codec::loads` into the manifest's dict; the layout (header,
//!   entries, terminator) walks to the manifest's live and deleted keys and
//!   commit number; every live entry's value, decoded alone with
//!   `decode_entry_value`, matches the manifest too; the container crate
//!   (`scan`, `Container::open_readonly`) finds the same keys and commit
//!   number, and the array crate finds every array (dtype, shape, SHA-256 of
//!   the raw bytes) and no array in generic values.
//! - `python_fixtures_re_encode_byte_for_byte`: the all-generic fixtures,
//!   re-encoded from their manifest with `encode_entry_value`, are the same
//!   bytes as the Python-made files.
//! - `python_writes_the_bytes_we_write`: live, through the Python library: the
//!   same generic values give byte-identical files.
//! - `numpy2_reads_python_made_files`: plain `pickle.load` with numpy 2.x reads
//!   the generic fixtures; the array fixtures load up to numpy 2.2 and fail
//!   from numpy 2.3 on (binary `fromstring` was removed).
//! - `python_writes_the_array_bytes_we_write`: arrays, masked arrays and a stub
//!   written by the array crate's `ArrayLayout` / `MaskedLayout` (compatible
//!   encoding) give the file the Python library writes for the same arrays.
//! - `python_reads_the_arrays_we_write`: `mmapdict` gives them back as
//!   memmaps, `pickle.load` with numpy 1.23.5 too; numpy 2.x from 2.3 on fails.
//! - `python_reads_what_we_write`: a file we write is read back by
//!   `mmappickle.mmapdict`, by `pickle.load` with numpy 1.23.5 and with numpy 2.x.
//!
//! Typed views over the maps of these fixtures belong to the array and facade
//! tests (`tests/array.rs`, the facade's own tests), with the same helpers.

use std::path::Path;

use mmappickle_array::{
    parse_array_value, parse_masked_value, ArrayEncoding, ArrayHeader, ArrayLayout, DType,
    MaskedLayout,
};
use mmappickle_codec::{decode_entry_value, encode_entry_value, loads, Limits, Value};
use mmappickle_conformance::{
    base64_encode, check_file_with_python, check_value, fixtures_dir, manifest, numpy2_version,
    sha256_hex, try_check_file_with_python, value_from_json, write_file_with_python, PythonReader,
};
use mmappickle_container::{scan, Container};
use serde_json::{json, Value as Json};

/// One entry of an mmappickle file (FORMAT.md, "Entry").
#[derive(Debug, Clone, PartialEq)]
struct RawEntry {
    key: String,
    value_bytes: Vec<u8>,
    memo_max: i32,
    live: bool,
}

const HEADER_LEN: usize = 24;
const TERMINATOR: [u8; 11] = [0x95, 2, 0, 0, 0, 0, 0, 0, 0, b'd', b'.'];

/// The whole file layout, both ways, in one place: the container crate
/// replaces it once it lands. Returns the commit number and the entries.
fn split_file(file: &[u8]) -> (i32, Vec<RawEntry>) {
    let header = &file[..HEADER_LEN];
    assert_eq!(
        &header[..11],
        b"\x80\x04\x95\x0d\0\0\0\0\0\0\0",
        "PROTO 4, FRAME 13"
    );
    assert_eq!(&header[11..17], b"\x4a\x01\0\0\0\x30", "format version 1");
    let commit_number = i32::from_le_bytes(header[18..22].try_into().unwrap());
    let end = file.len() - TERMINATOR.len();
    assert_eq!(&file[end..], TERMINATOR, "terminator");
    let mut entries = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < end {
        assert_eq!(file[offset], 0x95, "FRAME at {offset}");
        let frame_len = u64::from_le_bytes(file[offset + 1..offset + 9].try_into().unwrap());
        let entry_end = offset + 9 + usize::try_from(frame_len).unwrap();
        assert_eq!(file[offset + 9], 0x8c, "SHORT_BINUNICODE key at {offset}");
        let key_len = usize::from(file[offset + 10]);
        let value_start = offset + 11 + key_len;
        let tail = &file[entry_end - 8..entry_end];
        assert_eq!(
            (tail[0], tail[5], tail[7]),
            (0x4a, 0x30, 0x30),
            "entry tail at {entry_end}"
        );
        entries.push(RawEntry {
            key: String::from_utf8(file[offset + 11..value_start].to_vec()).unwrap(),
            value_bytes: file[value_start..entry_end - 8].to_vec(),
            memo_max: i32::from_le_bytes(tail[1..5].try_into().unwrap()),
            live: tail[6] == 0x88,
        });
        offset = entry_end;
    }
    assert_eq!(offset, end, "the last entry ends at the terminator");
    (commit_number, entries)
}

/// The file bytes for `entries` (the inverse of [`split_file`]).
fn join_file(commit_number: i32, entries: &[RawEntry]) -> Vec<u8> {
    let mut file = b"\x80\x04\x95\x0d\0\0\0\0\0\0\0\x4a\x01\0\0\0\x30\x4a".to_vec();
    file.extend_from_slice(&commit_number.to_le_bytes());
    file.extend_from_slice(b"\x30\x28");
    for entry in entries {
        let key = entry.key.as_bytes();
        let frame_len = key.len() + entry.value_bytes.len() + 10;
        file.push(0x95);
        file.extend_from_slice(&(frame_len as u64).to_le_bytes());
        file.push(0x8c);
        file.push(u8::try_from(key.len()).expect("a key is at most 255 bytes"));
        file.extend_from_slice(key);
        file.extend_from_slice(&entry.value_bytes);
        file.push(0x4a);
        file.extend_from_slice(&entry.memo_max.to_le_bytes());
        file.push(0x30);
        file.push(if entry.live { 0x88 } else { 0x30 });
        file.push(0x30);
    }
    file.extend_from_slice(&TERMINATOR);
    file
}

/// Asserts that `theirs` is the file of `entries`; when it is not, names the first entry
/// that differs before the files.
fn assert_same_file(context: &str, commit_number: i32, entries: &[RawEntry], theirs: &[u8]) {
    let ours = join_file(commit_number, entries);
    if ours != theirs {
        let (_, their_entries) = split_file(theirs);
        for (our, their) in entries.iter().zip(&their_entries) {
            assert_eq!(our, their, "{context}: first entry that differs");
        }
        assert_eq!(ours, theirs, "{context}: files differ");
    }
}

/// Encodes generic values as live entries the way the Python library numbers
/// the memo: each entry starts at max(memo_max of the entries before, 1).
fn encode_generic_entries(entries: &[(String, Value)]) -> Vec<RawEntry> {
    let mut memo_start = 1u32;
    entries
        .iter()
        .map(|(key, value)| {
            let (value_bytes, memo_max) = encode_entry_value(value, memo_start);
            memo_start = memo_start.max(memo_max);
            RawEntry {
                key: key.clone(),
                value_bytes,
                memo_max: i32::try_from(memo_max).unwrap(),
                live: true,
            }
        })
        .collect()
}

/// `[[key, description], ...]` as (key, value) pairs.
fn values_of(entries: &Json) -> Vec<(String, Value)> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let key = entry[0].as_str().unwrap().to_owned();
            let value = value_from_json(&entry[1]).unwrap_or_else(|e| panic!("{key}: {e}"));
            (key, value)
        })
        .collect()
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn manifest_lists_every_fixture_file() {
    let manifest = manifest();
    let mut listed: Vec<&String> = manifest["files"].as_object().unwrap().keys().collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".mmdpickle"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk.iter().collect::<Vec<_>>());
}

/// Every check of one Python-made fixture against its manifest record.
fn check_fixture(name: &str) {
    let manifest = manifest();
    let record = &manifest["files"][name];
    assert!(record.is_object(), "{name} is not in the manifest");
    let expected = record["entries"].as_array().unwrap();
    let file = read_fixture(name);
    let mut failures = Vec::new();

    // The whole file is one pickle of a dict with the live entries, in file order.
    match loads(&file) {
        Ok(Value::Dict(pairs)) => {
            let keys: Vec<&Value> = pairs.iter().map(|(key, _)| key).collect();
            let expected_keys: Vec<Value> = expected
                .iter()
                .map(|e| value_from_json(&e[0]).unwrap())
                .collect();
            if keys != expected_keys.iter().collect::<Vec<_>>() {
                failures.push(format!(
                    "whole-file keys {keys:?}, expected {expected_keys:?}"
                ));
            }
            for ((key, value), entry) in pairs.iter().zip(expected) {
                if let Err(e) = check_value(&entry[1], value) {
                    failures.push(format!("whole file, key {key:?}: {e}"));
                }
            }
        }
        Ok(other) => failures.push(format!("the whole file loads as {other:?}, not a dict")),
        Err(e) => failures.push(format!("the whole file does not load: {e}")),
    }

    // The layout: commit number, live and deleted keys in file order.
    let (commit_number, entries) = split_file(&file);
    assert_eq!(
        i64::from(commit_number),
        record["commit_number"].as_i64().unwrap(),
        "{name}: commit number"
    );
    let live: Vec<&str> = entries
        .iter()
        .filter(|e| e.live)
        .map(|e| e.key.as_str())
        .collect();
    let deleted: Vec<&str> = entries
        .iter()
        .filter(|e| !e.live)
        .map(|e| e.key.as_str())
        .collect();
    let expected_live: Vec<&str> = expected.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert_eq!(live, expected_live, "{name}: live keys");
    assert_eq!(json!(deleted), record["deleted"], "{name}: deleted keys");

    // Each live value decoded alone, as a reader of one key does.
    for (entry, description) in entries.iter().filter(|e| e.live).zip(expected) {
        match decode_entry_value(&entry.value_bytes, &Limits::default()) {
            Ok(value) => {
                if let Err(e) = check_value(&description[1], &value) {
                    failures.push(format!("entry {:?} alone: {e}", entry.key));
                }
            }
            Err(e) => failures.push(format!("entry {:?} alone does not decode: {e}", entry.key)),
        }
    }
    failures.extend(check_fixture_with_crates(name, record, &file));
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

/// The container and array crates read the fixture as the manifest says.
fn check_fixture_with_crates(name: &str, record: &Json, file: &[u8]) -> Vec<String> {
    let mut failures = Vec::new();
    let expected = record["entries"].as_array().unwrap();
    let expected_keys: Vec<&str> = expected.iter().map(|e| e[0].as_str().unwrap()).collect();
    let expected_commit = record["commit_number"].as_i64().unwrap();

    match Container::open_readonly(fixtures_dir().join(name)) {
        Ok(mut container) => {
            match container.keys() {
                Ok(keys) if keys == expected_keys => {}
                other => failures.push(format!("Container::keys: {other:?}")),
            }
            match container.commit_number() {
                Ok(commit) if i64::from(commit) == expected_commit => {}
                other => failures.push(format!("Container::commit_number: {other:?}")),
            }
        }
        Err(e) => failures.push(format!("Container::open_readonly: {e}")),
    }

    let table = match scan(file) {
        Ok(table) => table,
        Err(e) => {
            failures.push(format!("container scan: {e}"));
            return failures;
        }
    };
    if i64::from(table.commit_number()) != expected_commit {
        failures.push(format!("scan: commit number {}", table.commit_number()));
    }
    let deleted: Vec<&str> = table
        .entries()
        .iter()
        .filter(|entry| !entry.is_live() && !entry.is_padding())
        .map(|entry| entry.key())
        .collect();
    if json!(deleted) != record["deleted"] {
        failures.push(format!("scan: deleted keys {deleted:?}"));
    }
    let live: Vec<_> = table.live_entries().collect();
    if live.iter().map(|entry| entry.key()).collect::<Vec<_>>() != expected_keys {
        failures.push("scan: live keys differ from the manifest".to_owned());
    }
    for (entry, description) in live.iter().zip(expected) {
        let key = entry.key();
        let range = entry.value_range();
        let Some(value) = file.get(range.start as usize..range.end as usize) else {
            failures.push(format!(
                "scan: {key:?}: value range {range:?} is outside the file"
            ));
            continue;
        };
        let outcome = if let Some(array) = description[1].get("ndarray") {
            match parse_array_value(value) {
                Ok(Some(header)) => check_array_header(array, &header, value),
                other => Err(format!("not read as an array: {other:?}")),
            }
        } else if let Some(masked) = description[1].get("masked") {
            match parse_masked_value(value) {
                Ok(Some(header)) => check_array_header(&masked["data"], &header.data, value)
                    .and_then(|()| check_array_header(&masked["mask"], &header.mask, value)),
                other => Err(format!("not read as a masked array: {other:?}")),
            }
        } else {
            match parse_array_value(value) {
                Ok(None) => Ok(()),
                other => Err(format!("a generic value read as an array: {other:?}")),
            }
        };
        if let Err(e) = outcome {
            failures.push(format!("array crate, key {key:?}: {e}"));
        }
    }
    failures
}

/// An array found by the array crate against its manifest description.
fn check_array_header(
    description: &Json,
    header: &ArrayHeader,
    value: &[u8],
) -> Result<(), String> {
    let dtype = header.dtype.name();
    if dtype != description["dtype"] {
        return Err(format!("dtype {dtype}, expected {}", description["dtype"]));
    }
    if json!(header.shape) != description["shape"] {
        return Err(format!(
            "shape {:?}, expected {}",
            header.shape, description["shape"]
        ));
    }
    let raw = usize::try_from(header.raw_offset)
        .ok()
        .zip(usize::try_from(header.raw_len).ok())
        .and_then(|(start, len)| value.get(start..start.checked_add(len)?))
        .ok_or_else(|| format!("raw bytes {header:?} outside the value"))?;
    if sha256_hex(raw) != description["sha256"] {
        return Err(format!(
            "raw bytes hash to {}, expected {}",
            sha256_hex(raw),
            description["sha256"]
        ));
    }
    Ok(())
}

macro_rules! fixture_tests {
    ($($test:ident => $file:literal,)*) => {$(
        #[test]
        fn $test() {
            check_fixture($file);
        }
    )*};
}

fixture_tests! {
    fixture_empty => "empty.mmdpickle",
    fixture_generic => "generic.mmdpickle",
    fixture_shared => "shared.mmdpickle",
    fixture_arrays => "arrays.mmdpickle",
    fixture_masked => "masked.mmdpickle",
    fixture_stub => "stub.mmdpickle",
    fixture_keys => "keys.mmdpickle",
    fixture_deleted => "deleted.mmdpickle",
    fixture_vacuumed => "vacuumed.mmdpickle",
    fixture_converted => "converted.mmdpickle",
    fixture_many => "many.mmdpickle",
}

#[test]
fn python_fixtures_re_encode_byte_for_byte() {
    // Fixtures whose values are all generic, with no shared sub-objects and no
    // deleted entries: our encoding of the manifest must give the same file.
    let manifest = manifest();
    for name in ["empty.mmdpickle", "generic.mmdpickle", "keys.mmdpickle"] {
        let record = &manifest["files"][name];
        let entries = encode_generic_entries(&values_of(&record["entries"]));
        let commit_number = i32::try_from(record["commit_number"].as_i64().unwrap()).unwrap();
        assert_same_file(name, commit_number, &entries, &read_fixture(name));
    }
}

#[test]
fn numpy2_reads_python_made_files() {
    let manifest = manifest();
    let arrays_load = numpy2_version() < (2, 3);
    for (name, has_arrays) in [
        ("generic.mmdpickle", false),
        ("shared.mmdpickle", false),
        ("arrays.mmdpickle", true),
    ] {
        let spec = json!({"entries": manifest["files"][name]["entries"]});
        let file = fixtures_dir().join(name);
        let outcome = try_check_file_with_python(PythonReader::PickleNumpy2, &file, &spec);
        if has_arrays && !arrays_load {
            let explanation = outcome.expect_err(name);
            assert!(explanation.contains("fromstring"), "{name}: {explanation}");
        } else {
            outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// Generic values without shared sub-objects, for the live round trips.
fn generic_sample() -> Json {
    json!([
        ["none", null],
        ["bools", [true, false]],
        ["ints", [0, 1, -1, 255, 256, 65535, 65536, -65536, 2147483647, -2147483648, 4294967296_i64]],
        ["big_ints", [{"int": "9223372036854775807"}, {"int": "-9223372036854775809"}, {"int": "340282366920938463463374607431768211456"}]],
        ["floats", [0.0, -0.0, 1.5, -1e-300, 1e300, {"float": "nan"}, {"float": "inf"}, {"float": "-inf"}]],
        ["strs", ["", "ascii", "ünïcødé 日本 🎉", "x".repeat(300)]],
        ["bytes", [{"bytes": ""}, {"bytes": "AAH+/w=="}, {"bytes": "QUJD".repeat(100)}]],
        ["tuples", {"tuple": [{"tuple": []}, {"tuple": [1]}, {"tuple": [1, 2]}, {"tuple": [1, 2, 3]}, {"tuple": [1, 2, 3, 4]}]}],
        ["dict", {"dict": [["a", 1], [2, "b"], [{"tuple": [3]}, [4]]]}],
        ["sets", [{"set": []}, {"set": [1, 2, 3]}, {"frozenset": []}, {"frozenset": [4, 5]}]],
        ["globals", [{"global": ["collections", "OrderedDict"]}, {"global": ["builtins", "len"]}]],
        ["long_list", (0..1500).collect::<Vec<i32>>()],
        ["clé ünïcødé", "non-ASCII key"],
        ["k".repeat(255), "255-byte key"],
    ])
}

#[test]
fn python_writes_the_bytes_we_write() {
    let sample = generic_sample();
    let dir = tempfile::tempdir().unwrap();
    let python_file = dir.path().join("python.mmdpickle");
    write_file_with_python(&python_file, &sample);
    let entries = encode_generic_entries(&values_of(&sample));
    let theirs = std::fs::read(&python_file).unwrap();
    assert_same_file("python.mmdpickle", entries.len() as i32, &entries, &theirs);
}

#[test]
fn python_reads_what_we_write() {
    let sample = generic_sample();
    let entries = encode_generic_entries(&values_of(&sample));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.mmdpickle");
    std::fs::write(&file, join_file(entries.len() as i32, &entries)).unwrap();
    let spec = json!({"entries": sample, "commit_number": entries.len()});
    check_python_readers(&file, &spec);
}

/// Every Python reader of the matrix must read `file` as `spec` says.
fn check_python_readers(file: &Path, spec: &Json) {
    for reader in [
        PythonReader::MmapDict,
        PythonReader::PickleNumpy1,
        PythonReader::PickleNumpy2,
    ] {
        check_file_with_python(reader, file, spec);
    }
}

/// One array of the array samples: dtype, shape, raw bytes.
struct ArraySample {
    key: &'static str,
    dtype: &'static str,
    shape: Vec<usize>,
    raw: Vec<u8>,
}

/// Deterministic raw bytes for `n_elements` of `dtype` (0/1 for bools).
fn pattern(dtype: &str, n_bytes: usize) -> Vec<u8> {
    (0..n_bytes)
        .map(|i| {
            if dtype == "bool" {
                (i % 3 == 0) as u8
            } else {
                (i * 37 + 11) as u8
            }
        })
        .collect()
}

fn array_samples() -> Vec<ArraySample> {
    let sample = |key, dtype: &'static str, shape: &[usize], item_size: usize| {
        let n_bytes = shape.iter().product::<usize>() * item_size;
        ArraySample {
            key,
            dtype,
            shape: shape.to_vec(),
            raw: pattern(dtype, n_bytes),
        }
    };
    let unicode: Vec<u8> = "abcdeé😀xyz"
        .chars()
        .chain(std::iter::repeat('\0'))
        .take(10)
        .flat_map(|c| u32::from(c).to_le_bytes())
        .collect();
    vec![
        sample("bool", "bool", &[3], 1),
        sample("int8", "int8", &[5], 1),
        sample("uint16_empty", "uint16", &[0, 3], 2),
        sample("int64", "int64", &[2, 2], 8),
        sample("float32", "float32", &[3], 4),
        sample("float64_2d", "float64", &[2, 3], 8),
        sample("complex128", "complex128", &[2], 16),
        sample("big_endian", ">i4", &[4], 4),
        sample("eight_d", "int16", &[2, 1, 2, 1, 2, 1, 1, 3], 2),
        sample("long_dim", "uint8", &[70_000], 1),
        sample("zero_d", "float64", &[], 8),
        ArraySample {
            key: "unicode",
            dtype: "<U5",
            shape: vec![2],
            raw: unicode,
        },
    ]
}

/// Our entries and the matching (Python input, expected description) pairs
/// for the array samples, a masked array and a stub.
fn encode_array_entries() -> (Vec<RawEntry>, Json, Json) {
    let mut entries = Vec::new();
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    let described = |dtype: &str, shape: &[usize], raw: &[u8]| json!({"dtype": dtype, "shape": shape, "sha256": sha256_hex(raw)});
    for sample in array_samples() {
        let dtype = DType::parse(sample.dtype).unwrap();
        let layout = ArrayLayout::new(&dtype, &sample.shape, ArrayEncoding::Compatible).unwrap();
        entries.push(RawEntry {
            key: sample.key.to_owned(),
            value_bytes: layout.to_value_bytes(&sample.raw).unwrap(),
            memo_max: 0,
            live: true,
        });
        let input = json!({"dtype": sample.dtype, "shape": sample.shape, "base64": base64_encode(&sample.raw)});
        inputs.push(json!([sample.key, {"ndarray": input}]));
        let description = described(sample.dtype, &sample.shape, &sample.raw);
        expected.push(json!([sample.key, {"ndarray": description}]));
    }

    let (data, mask) = (pattern("float64", 4 * 8), pattern("bool", 4));
    let masked = MaskedLayout::new(&DType::parse("float64").unwrap(), &[4]).unwrap();
    entries.push(RawEntry {
        key: "masked".to_owned(),
        value_bytes: masked.to_value_bytes(&data, &mask).unwrap(),
        memo_max: 0,
        live: true,
    });
    inputs.push(json!(["masked", {"masked": {
        "data": {"dtype": "float64", "shape": [4], "base64": base64_encode(&data)},
        "mask": {"dtype": "bool", "shape": [4], "base64": base64_encode(&mask)},
    }}]));
    expected.push(json!(["masked", {"masked": {
        "data": described("float64", &[4], &data),
        "mask": described("bool", &[4], &mask),
    }}]));

    // A stub is an array whose raw bytes read as zeros.
    let zeros = vec![0u8; 10 * 10 * 4];
    let stub = ArrayLayout::new(
        &DType::parse("int32").unwrap(),
        &[10, 10],
        ArrayEncoding::Compatible,
    )
    .unwrap();
    entries.push(RawEntry {
        key: "stub".to_owned(),
        value_bytes: stub.to_value_bytes(&zeros).unwrap(),
        memo_max: 0,
        live: true,
    });
    inputs.push(json!(["stub", {"stub": {"dtype": "int32", "shape": [10, 10]}}]));
    expected.push(json!(["stub", {"ndarray": described("int32", &[10, 10], &zeros)}]));
    (entries, json!(inputs), json!(expected))
}

#[test]
fn python_writes_the_array_bytes_we_write() {
    let (entries, inputs, _) = encode_array_entries();
    let dir = tempfile::tempdir().unwrap();
    let python_file = dir.path().join("python.mmdpickle");
    write_file_with_python(&python_file, &inputs);
    let theirs = std::fs::read(&python_file).unwrap();
    assert_same_file("python.mmdpickle", entries.len() as i32, &entries, &theirs);
}

#[test]
fn python_reads_the_arrays_we_write() {
    let (entries, _, expected) = encode_array_entries();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.mmdpickle");
    std::fs::write(&file, join_file(entries.len() as i32, &entries)).unwrap();
    // The library writes 0-d arrays but cannot read them back.
    let spec =
        json!({"entries": expected, "commit_number": entries.len(), "mmapdict_skip": ["zero_d"]});
    check_file_with_python(PythonReader::MmapDict, &file, &spec);
    check_file_with_python(PythonReader::PickleNumpy1, &file, &spec);
    let numpy2 = try_check_file_with_python(PythonReader::PickleNumpy2, &file, &spec);
    if numpy2_version() < (2, 3) {
        numpy2.unwrap();
    } else {
        let explanation = numpy2.expect_err("numpy >= 2.3 cannot load binary fromstring");
        assert!(explanation.contains("fromstring"), "{explanation}");
    }
}
