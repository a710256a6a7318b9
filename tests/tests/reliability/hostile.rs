//! Hostile files: nothing gets in (`RELIABILITY.md`, section 3). The table runs in the
//! `hostile` child job, under a capped address space.

use std::path::Path;

use mmappickle::{EmptyArray, ErrorKind, Item, MmapDict, Value};
use mmappickle_conformance::sha256_hex;

use crate::workers::{lines_with_marker, worker_exe};
use crate::HOSTILE_ADDRESS_SPACE_KIB;

// The hostile table runs in a child process whose address space is capped: an allocation
// sized by a number from a hostile file aborts the child and fails this test.
#[test]
fn hostile_files_give_clear_errors() {
    let workers = worker_exe();
    let limit = format!("-v {HOSTILE_ADDRESS_SPACE_KIB}");
    let output = workers.limited_command("hostile", &limit).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the hostile table failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let cases: usize = lines_with_marker(stdout.lines().map(str::to_owned), "[hostile-cases] ")
        .next()
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no case count in {stdout}"));
    let sample_len: usize = lines_with_marker(stdout.lines().map(str::to_owned), "[sample-len] ")
        .next()
        .and_then(|len| len.parse().ok())
        .unwrap_or_else(|| panic!("no sample length in {stdout}"));
    // Headers, hand-made cases, every truncation point, 9 flips of every byte.
    let expected = bad_headers().len() + crafted_cases().len() + 10 * sample_len;
    assert_eq!(cases, expected, "not every hostile case ran");
}

/// A header as Python writes it, with `commit_number`.
pub fn header(commit_number: i32) -> Vec<u8> {
    let mut header = vec![0x80, 4, 0x95];
    header.extend(13u64.to_le_bytes());
    header.extend([0x4a, 1, 0, 0, 0, 0x30, 0x4a]);
    header.extend(commit_number.to_le_bytes());
    header.extend([0x30, 0x28]);
    header
}

pub const TERMINATOR: [u8; 11] = [0x95, 2, 0, 0, 0, 0, 0, 0, 0, 0x64, 0x2e];

/// A live entry of `key` (raw bytes, so that they may be invalid UTF-8) and `value`.
pub fn entry(key: &[u8], value: &[u8]) -> Vec<u8> {
    let frame_len = (key.len() + value.len() + 10) as u64;
    entry_with_frame_len(key, value, frame_len)
}

pub fn entry_with_frame_len(key: &[u8], value: &[u8], frame_len: u64) -> Vec<u8> {
    let mut bytes = vec![0x95];
    bytes.extend(frame_len.to_le_bytes());
    bytes.push(0x8c);
    bytes.push(key.len() as u8);
    bytes.extend(key);
    bytes.extend(value);
    bytes.extend([0x4a, 1, 0, 0, 0, 0x30, 0x88, 0x30]);
    bytes
}

/// A whole file of one entry.
pub fn file_of(entry: Vec<u8>) -> Vec<u8> {
    let mut file = header(1);
    file.extend(entry);
    file.extend(TERMINATOR);
    file
}

fn short_str(text: &str) -> Vec<u8> {
    let mut bytes = vec![0x8c, text.len() as u8];
    bytes.extend(text.as_bytes());
    bytes
}

/// An array value `reshape(fromstring(raw, dtype), shape)` with a declared raw length of
/// `declared` bytes followed by `raw`, and `shape_ops` (the shape tuple's opcodes).
pub fn array_value(declared: u64, raw: &[u8], dtype: &str, shape_ops: &[u8]) -> Vec<u8> {
    let mut value = short_str("numpy.core.fromnumeric");
    value.extend(short_str("reshape"));
    value.push(0x93);
    value.extend(short_str("numpy.core.multiarray"));
    value.extend(short_str("fromstring"));
    value.push(0x93);
    value.push(0x8e);
    value.extend(declared.to_le_bytes());
    value.extend(raw);
    value.extend(short_str(dtype));
    value.extend([0x86, 0x52]);
    value.extend(shape_ops);
    value.extend([0x86, 0x52]);
    value
}

fn binint(value: i32) -> Vec<u8> {
    let mut bytes = vec![0x4a];
    bytes.extend(value.to_le_bytes());
    bytes
}

/// How a hand-made case must fail.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Opening the file or reading any key gives an error.
    Error,
    /// Mapping key `x` as an array of this dtype gives an error, and so do `get` and
    /// `value` (a malformed array header is an error, not a generic value).
    ArrayError(&'static str),
    /// A torn tail (the file cut short): read as the complete entries, this many keys.
    Torn(usize),
}

/// The hand-made cases: a name, a file, and how it must fail.
pub fn crafted_cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let mut cases: Vec<(&'static str, Vec<u8>, Expect)> = Vec::new();
    let one_int = [0x4b, 7]; // BININT1 7
    cases.push((
        "entry frame length 2^63",
        file_of(entry_with_frame_len(b"x", &one_int, 1 << 63)),
        Expect::Error,
    ));
    cases.push((
        "entry frame length u64::MAX",
        file_of(entry_with_frame_len(b"x", &one_int, u64::MAX)),
        Expect::Error,
    ));
    cases.push((
        "entry frame length past the end",
        file_of(entry_with_frame_len(b"x", &one_int, 1 << 20)),
        Expect::Error,
    ));
    cases.push((
        "key of invalid UTF-8",
        file_of(entry(b"\xff\xfex", &one_int)),
        Expect::Error,
    ));
    cases.push((
        "key of a lone surrogate",
        file_of(entry(b"\xed\xa0\x80", &one_int)),
        Expect::Error,
    ));
    // Raw length 16 where shape (3,) of float64 needs 24, and the reverse.
    cases.push((
        "array raw length below shape x itemsize",
        file_of(entry(
            b"x",
            &array_value(16, &[0; 16], "float64", &[0x4b, 3, 0x85]),
        )),
        Expect::ArrayError("float64"),
    ));
    cases.push((
        "array raw length above shape x itemsize",
        file_of(entry(
            b"x",
            &array_value(32, &[0; 32], "float64", &[0x4b, 3, 0x85]),
        )),
        Expect::ArrayError("float64"),
    ));
    cases.push((
        "array raw length 2^63",
        file_of(entry(
            b"x",
            &array_value(1 << 63, &[0; 8], "float64", &[0x4b, 1, 0x85]),
        )),
        Expect::ArrayError("float64"),
    ));
    let mut huge_shape = Vec::new();
    for _ in 0..3 {
        huge_shape.extend(binint(i32::MAX));
    }
    huge_shape.push(0x87); // TUPLE3
    cases.push((
        "shape whose product overflows",
        file_of(entry(b"x", &array_value(0, &[], "float64", &huge_shape))),
        Expect::ArrayError("float64"),
    ));
    // MARK, 8 dimensions of 2^31 - 1 elements as LONG1, TUPLE.
    let mut long_shape = vec![0x28];
    for _ in 0..8 {
        long_shape.extend([0x8a, 8]);
        long_shape.extend((1u64 << 62).to_le_bytes());
    }
    long_shape.push(0x74);
    cases.push((
        "shape of LONG1 dimensions 2^62",
        file_of(entry(b"x", &array_value(0, &[], "uint8", &long_shape))),
        Expect::ArrayError("uint8"),
    ));
    cases.push((
        "array of a negative dimension",
        file_of(entry(
            b"x",
            &array_value(0, &[], "uint8", &[0x4a, 0xff, 0xff, 0xff, 0xff, 0x85]),
        )),
        Expect::ArrayError("uint8"),
    ));
    cases.push((
        "array of an unknown dtype",
        file_of(entry(
            b"x",
            &array_value(8, &[0; 8], "float1024", &[0x4b, 1, 0x85]),
        )),
        Expect::ArrayError("float64"),
    ));
    let depth = 1_000_000;
    let mut nested = vec![0x5d; depth]; // EMPTY_LIST
    nested.extend(vec![0x61; depth - 1]); // APPEND
    cases.push((
        "a million nested lists",
        file_of(entry(b"x", &nested)),
        Expect::Error,
    ));
    let mut marks = vec![0x28; depth]; // MARK
    marks.push(0x4e); // NONE
    cases.push((
        "a million open MARKs",
        file_of(entry(b"x", &marks)),
        Expect::Error,
    ));
    cases.push((
        "memo GET of a missing index",
        file_of(entry(b"x", &[0x68, 5])),
        Expect::Error,
    ));
    cases.push((
        "memo LONG_BINGET of index 2^31",
        file_of(entry(b"x", &[0x6a, 0, 0, 0, 0x80])),
        Expect::Error,
    ));
    cases.push(("NEXT_BUFFER", file_of(entry(b"x", &[0x97])), Expect::Error));
    cases.push((
        "READONLY_BUFFER on nothing",
        file_of(entry(b"x", &[0x98])),
        Expect::Error,
    ));
    cases.push((
        "unknown opcode 0xff",
        file_of(entry(b"x", &[0xff])),
        Expect::Error,
    ));
    cases.push((
        "STOP inside a value",
        file_of(entry(b"x", &[0x4b, 1, 0x2e])),
        Expect::Error,
    ));
    cases.push((
        "BINUNICODE8 of length 2^63",
        file_of(entry(b"x", &{
            let mut value = vec![0x8d];
            value.extend((1u64 << 63).to_le_bytes());
            value
        })),
        Expect::Error,
    ));
    cases.push((
        "BINBYTES of length 2^32 - 1",
        file_of(entry(b"x", &[0x42, 0xff, 0xff, 0xff, 0xff])),
        Expect::Error,
    ));
    cases.push((
        "a value that leaves two items",
        file_of(entry(b"x", &[0x4b, 1, 0x4b, 2])),
        Expect::Error,
    ));
    cases.push(("an empty value", file_of(entry(b"x", &[])), Expect::Error));
    let mut no_terminator = header(1);
    no_terminator.extend(entry(b"x", &one_int));
    cases.push(("no terminator", no_terminator, Expect::Torn(1)));
    cases
}

/// The 13 malformed headers of the Python library's test suite.
pub fn bad_headers() -> Vec<(&'static str, Vec<u8>)> {
    let good = {
        let mut file = header(0);
        file.extend(TERMINATOR);
        file
    };
    let with = |offset: usize, byte: u8| {
        let mut file = good.clone();
        file[offset] = byte;
        file
    };
    vec![
        ("one byte", vec![0x80]),
        ("not a pickle", b"hello world".to_vec()),
        ("wrong protocol", with(1, 3)),
        ("missing FRAME", with(2, 0x28)),
        ("frame length cut short", good[..7].to_vec()),
        ("wrong frame length", with(3, 12)),
        ("header frame cut short", good[..20].to_vec()),
        ("missing version BININT", with(11, 0x4b)),
        ("missing POP after version", with(16, 0x28)),
        ("wrong version", with(12, 2)),
        ("missing commit BININT", with(17, 0x4b)),
        ("missing POP after commit", with(22, 0x28)),
        ("missing MARK", with(23, 0x30)),
    ]
}

/// A small file of every kind of entry: generic values (memo included), arrays, a masked
/// array, a stub, a deleted entry, a replaced key.
pub fn sample_file(path: &Path) -> Vec<u8> {
    let mut dict = MmapDict::options().align(false).open(path).unwrap();
    let shared = Value::from("shared");
    dict.insert("ints", vec![1i64, -2, 300, 1 << 40]).unwrap();
    dict.insert(
        "nested",
        Value::Dict(vec![
            (Value::from("a"), Value::List(vec![shared.clone(), shared])),
            (
                Value::from("b"),
                Value::Tuple(vec![Value::Float(1.5), Value::None]),
            ),
            (Value::from("c"), Value::Bytes(vec![1, 2, 3])),
        ]),
    )
    .unwrap();
    dict.insert_array("f64", &[1.0f64, 2.0, 3.0, 4.0], &[2, 2])
        .unwrap();
    dict.insert_array("u8", &[9u8; 5], &[5]).unwrap();
    dict.insert_masked("masked", &[1i32, 2, 3], &[true, false, true], &[3])
        .unwrap();
    dict.insert_stub("stub", EmptyArray::new::<i16>(&[4, 3]))
        .unwrap();
    dict.insert("deleted", "gone").unwrap();
    dict.remove("deleted").unwrap();
    dict.insert("é", "first").unwrap();
    dict.insert("é", "second").unwrap();
    drop(dict);
    std::fs::read(path).unwrap()
}

/// Opens `bytes` (written at `path`) read-only and reads everything it holds, every array
/// byte included. Never panics on its own: returns the first error, or how many keys were
/// read. The file must be left unchanged (SHA-256 before and after).
pub fn read_everything(path: &Path, bytes: &[u8]) -> Result<usize, mmappickle::Error> {
    std::fs::write(path, bytes).unwrap();
    let before = sha256_hex(bytes);
    let outcome = (|| -> Result<usize, mmappickle::Error> {
        let dict = MmapDict::open_readonly(path)?;
        let keys = dict.keys()?;
        for key in &keys {
            match dict.get(key)? {
                Item::Value(_) | Item::Other(_) => {}
                Item::Array(map) => {
                    std::hint::black_box(map.bytes().iter().map(|&b| b as u64).sum::<u64>());
                }
                Item::Masked(masked) => {
                    std::hint::black_box(masked.data.bytes().len() + masked.mask.bytes().len());
                }
            }
            dict.value(key)?;
        }
        dict.entries()?;
        Ok(keys.len())
    })();
    let after = sha256_hex(&std::fs::read(path).unwrap());
    assert_eq!(before, after, "a read-only open changed the file");
    if let Err(error) = &outcome {
        let message = error.to_string();
        assert!(
            message.contains("at byte offset"),
            "unclear error: {message}"
        );
    }
    outcome
}

/// Maps key `x` of the file at `path` as an array of `dtype` (read-only).
fn map_as_array(path: &Path, dtype: &str) -> Result<usize, mmappickle::Error> {
    let dict = MmapDict::open_readonly(path)?;
    Ok(match dtype {
        "float64" => dict.array::<f64>("x")?.len(),
        _ => dict.array::<u8>("x")?.len(),
    })
}

/// Opens `bytes` read-write: must not panic; an error is fine.
fn open_read_write(path: &Path, bytes: &[u8]) -> Result<(), mmappickle::Error> {
    std::fs::write(path, bytes).unwrap();
    let dict = MmapDict::open(path)?;
    for key in dict.keys()? {
        dict.get(&key)?;
    }
    Ok(())
}

/// Runs the whole table; returns how many cases ran.
pub fn run_table() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.mmdpickle");
    let mut cases = 0;

    for (name, bytes) in bad_headers() {
        let error = read_everything(&path, &bytes).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                ErrorKind::Container(_) | ErrorKind::PlainPickleReadOnly
            ),
            "{name}: {error}"
        );
        let _ = open_read_write(&path, &bytes);
        cases += 1;
    }

    for (name, bytes, expect) in crafted_cases() {
        let outcome = read_everything(&path, &bytes);
        match &outcome {
            Ok(keys) => println!("[case] {name}: read, {keys} key(s)"),
            Err(error) => println!("[case] {name}: {error}"),
        }
        match expect {
            Expect::Error => assert!(outcome.is_err(), "{name}: read without an error"),
            Expect::Torn(keys) => assert_eq!(outcome.ok(), Some(keys), "{name}"),
            Expect::ArrayError(dtype) => {
                assert!(outcome.is_err(), "{name}: read without an error");
                let error = map_as_array(&path, dtype).unwrap_err();
                assert!(
                    error.to_string().contains("at byte offset"),
                    "{name}: {error}"
                );
            }
        }
        let _ = open_read_write(&path, &bytes);
        cases += 1;
    }

    let sample = sample_file(&dir.path().join("sample.mmdpickle"));
    assert_eq!(read_everything(&path, &sample).unwrap(), 7);
    // Every truncation point: an error, or a prefix of the keys (a cut inside the tail of
    // a terminator-less file is not: the terminator is required).
    for len in 0..sample.len() {
        let _ = read_everything(&path, &sample[..len]);
        let _ = open_read_write(&path, &sample[..len]);
        cases += 1;
    }
    // Every single-byte flip: each of its 8 bits, and all of them.
    for offset in 0..sample.len() {
        for mask in [1u8, 2, 4, 8, 16, 32, 64, 128, 0xff] {
            let mut flipped = sample.clone();
            flipped[offset] ^= mask;
            let _ = read_everything(&path, &flipped);
            cases += 1;
        }
    }
    println!("[sample-len] {}", sample.len());
    cases
}
