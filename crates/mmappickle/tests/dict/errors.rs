//! Convert of plain pickles made by the codec's pickler, and the errors one by one.

use super::*;

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
