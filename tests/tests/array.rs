//! Array conformance: the array crate against Python-made fixtures, the
//! Python library, and real numpy 1.23.5 and 2.x.
//!
//! Files here are laid out by a small function of this test (`FileBuilder`)
//! until the container and facade take its place.
//!
//! - `fixture_arrays_read_and_re_encode`: every array and masked array of every
//!   fixture parses, its mapped bytes match the manifest's sha256, typed
//!   access matches the raw bytes, and re-encoding gives the same bytes.
//! - `dtype_names_match_numpy`: `DType::name()` is numpy's `str(dtype)` for
//!   many type strings, in numpy 1.23.5 and 2.x.
//! - `python_writes_the_bytes_we_write`: the Python library writing arrays
//!   and stubs gives, byte for byte, the file we lay out.
//! - `python_reads_our_aligned_arrays`: arrays and masked arrays we write
//!   with alignment padding entries read back in Python `mmapdict` (as
//!   memmaps) and `pickle.load` (numpy 1.23.5); every array maps with
//!   `as_slice()`.
//! - `portable_encoding_loads_in_numpy`: the portable encoding loads with
//!   plain `pickle.load` on numpy 1.23.5 and 2.x, warning-free and
//!   writable; Python `mmapdict` reads it as an ordinary value; our reader
//!   finds its raw bytes.
//! - `numpy_pickled_arrays_decode_to_owned_arrays`: arrays pickled by numpy
//!   1.23.5 and 2.x in protocols 0 to 5, decoded by the codec, become owned
//!   arrays with numpy's dtype, shape and C-order bytes.

use mmappickle_array::{
    half, num_complex::Complex, parse_array_value, parse_masked_value, ArrayEncoding, ArrayHeader,
    ArrayLayout, Bool, DType, Element, Kind, MappedArray, MappedBytes, MaskedLayout, OwnedArray,
    DATA_ALIGN,
};
use mmappickle_conformance::{
    base64_encode, check_file_with_python, fixtures_dir, manifest, python_mmappickle,
    python_numpy2, run_python, sha256_hex, write_file_with_python, PythonReader,
};
use serde_json::{json, Value as Json};

/// One entry of a file, as laid out on disk.
struct RawEntry {
    key: String,
    live: bool,
    value_offset: u64,
    value: Vec<u8>,
}

/// The entries of an mmappickle file, walked by their frame lengths.
fn entries_of(bytes: &[u8]) -> Vec<RawEntry> {
    let mut entries = Vec::new();
    let mut pos = 24usize;
    while pos + 11 < bytes.len() {
        assert_eq!(bytes[pos], 0x95, "a FRAME at {pos}");
        let frame_len = u64::from_le_bytes(bytes[pos + 1..pos + 9].try_into().unwrap()) as usize;
        let end = pos + 9 + frame_len;
        let key_len = usize::from(bytes[pos + 10]);
        let value_start = pos + 11 + key_len;
        entries.push(RawEntry {
            key: String::from_utf8(bytes[pos + 11..value_start].to_vec()).unwrap(),
            live: bytes[end - 2] == 0x88,
            value_offset: value_start as u64,
            value: bytes[value_start..end - 8].to_vec(),
        });
        pos = end;
    }
    assert_eq!(pos + 11, bytes.len(), "entries end at the terminator");
    entries
}

/// Lays out a file as FORMAT.md says: header, entries, terminator.
struct FileBuilder {
    bytes: Vec<u8>,
    commit: i32,
}

impl FileBuilder {
    fn new() -> Self {
        FileBuilder {
            bytes: Vec::new(),
            commit: 0,
        }
    }

    fn entry(&mut self, key: &str, value: &[u8], memo_max: i32, live: bool) {
        let frame_len = (key.len() + value.len() + 10) as u64;
        self.bytes.push(0x95);
        self.bytes.extend_from_slice(&frame_len.to_le_bytes());
        self.bytes.extend_from_slice(&[0x8c, key.len() as u8]);
        self.bytes.extend_from_slice(key.as_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.push(0x4a);
        self.bytes.extend_from_slice(&memo_max.to_le_bytes());
        self.bytes
            .extend_from_slice(&[0x30, if live { 0x88 } else { 0x30 }, 0x30]);
    }

    /// An array entry; with `align`, a padding entry (deleted, empty key,
    /// SHORT_BINBYTES value) first so that the raw bytes start at a multiple of 64.
    fn array(&mut self, key: &str, value: &[u8], raw_offset: u64, align: bool) {
        if align {
            // File offset of the raw bytes if a padding entry of `pad` bytes comes first.
            let entry_start = 24 + self.bytes.len() as u64;
            let raw_at = |pad: u64| entry_start + pad + 11 + key.len() as u64 + raw_offset;
            let min_pad = 21; // FRAME 9 + empty key 2 + SHORT_BINBYTES 2 + tail 8
            let pad = min_pad + (DATA_ALIGN - raw_at(min_pad) % DATA_ALIGN) % DATA_ALIGN;
            let filler = vec![0u8; (pad - min_pad) as usize];
            let mut padding = vec![0x43, filler.len() as u8];
            padding.extend_from_slice(&filler);
            self.entry("", &padding, 1, false);
            let raw_in_file = 24 + self.bytes.len() as u64 + 11 + key.len() as u64 + raw_offset;
            assert_eq!(raw_in_file % DATA_ALIGN, 0);
        }
        self.entry(key, value, 0, true);
        self.commit += 1;
    }

    fn finish(&self) -> Vec<u8> {
        let mut file = vec![
            0x80, 0x04, 0x95, 13, 0, 0, 0, 0, 0, 0, 0, 0x4a, 1, 0, 0, 0, 0x30, 0x4a,
        ];
        file.extend_from_slice(&self.commit.to_le_bytes());
        file.extend_from_slice(&[0x30, 0x28]);
        file.extend_from_slice(&self.bytes);
        file.extend_from_slice(&[0x95, 2, 0, 0, 0, 0, 0, 0, 0, 0x64, 0x2e]);
        file
    }
}

/// Deterministic raw bytes for `len` bytes of `dtype` (bools stay 0 or 1).
fn raw_bytes(dtype: &DType, len: u64, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let byte = (i.wrapping_mul(7).wrapping_add(seed * 13 + 3) % 251) as u8;
            if dtype.kind() == Kind::Bool {
                byte % 2
            } else if dtype.kind() == Kind::Unicode {
                // Valid code points: the low byte of each UCS-4 unit only.
                if i % 4 == 0 {
                    b'a' + byte % 26
                } else {
                    0
                }
            } else {
                byte
            }
        })
        .collect()
}

/// Checks typed access to a mapped array of `T` against the raw bytes.
fn check_typed<T: Element>(
    file: &std::fs::File,
    data_offset: u64,
    header: &ArrayHeader,
    raw: &[u8],
) {
    let array = {
        // SAFETY: a temporary file of this test that nothing shrinks, with no other map of these bytes alive.
        unsafe { MappedArray::<T>::map(file, data_offset, header.dtype.clone(), &header.shape) }
    }
    .unwrap();
    let native = header.dtype.is_native();
    let back: Vec<u8> = array
        .to_vec()
        .iter()
        .flat_map(|&x| {
            mmappickle_array::bytemuck::bytes_of(&if native { x } else { x.swap_bytes() }).to_vec()
        })
        .collect();
    assert_eq!(back, raw, "{}", header.dtype);
    if native && data_offset.checked_rem(std::mem::align_of::<T>() as u64) == Some(0) {
        assert_eq!(array.as_slice().unwrap().len(), header.n_elements());
    }
}

/// Typed access for every dtype with a Rust element; false for the others.
fn check_any_typed(
    file: &std::fs::File,
    data_offset: u64,
    header: &ArrayHeader,
    raw: &[u8],
) -> bool {
    let dtype = &header.dtype;
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if <$t>::matches(dtype) {
                check_typed::<$t>(file, data_offset, header, raw);
                return true;
            }
        )*};
    }
    try_types!(
        Bool,
        i8,
        i16,
        i32,
        i64,
        u8,
        u16,
        u32,
        u64,
        half::f16,
        f32,
        f64,
        Complex<f32>,
        Complex<f64>
    );
    false
}

fn array_description(header: &ArrayHeader, raw: &[u8]) -> Json {
    json!({"dtype": header.dtype.name(), "shape": header.shape, "sha256": sha256_hex(raw)})
}

fn slice_of(bytes: &[u8], header: &ArrayHeader) -> Vec<u8> {
    bytes[header.raw_offset as usize..][..header.raw_len as usize].to_vec()
}

#[test]
fn fixture_arrays_read_and_re_encode() {
    let manifest = manifest();
    let mut n_arrays = 0;
    let mut n_masked = 0;
    for (name, spec) in manifest["files"].as_object().unwrap() {
        let path = fixtures_dir().join(name);
        let bytes = std::fs::read(&path).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let expected: Vec<(String, Json)> = spec["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_owned(), pair[1].clone()))
            .collect();
        for entry in entries_of(&bytes).into_iter().filter(|e| e.live) {
            let description = &expected
                .iter()
                .find(|(key, _)| *key == entry.key)
                .unwrap()
                .1;
            if let Some(array) = description.get("ndarray") {
                let header = parse_array_value(&entry.value).unwrap().expect("an array");
                let raw = slice_of(&entry.value, &header);
                assert_eq!(
                    &array_description(&header, &raw),
                    array,
                    "{name} {}",
                    entry.key
                );
                // The map of the region holds the same bytes.
                let data_offset = entry.value_offset + header.raw_offset;
                let mapped = {
                    // SAFETY: a temporary file of this test that nothing shrinks, with no other map of these bytes alive.
                    unsafe {
                        MappedBytes::map(&file, data_offset, header.dtype.clone(), &header.shape)
                    }
                }
                .unwrap();
                assert_eq!(mapped.bytes(), &raw[..]);
                assert!(
                    check_any_typed(&file, data_offset, &header, &raw)
                        || header.dtype.kind() == Kind::Unicode
                );
                // Re-encoding gives Python's bytes.
                let layout =
                    ArrayLayout::new(&header.dtype, &header.shape, ArrayEncoding::Compatible)
                        .unwrap();
                assert_eq!(
                    layout.to_value_bytes(&raw).unwrap(),
                    entry.value,
                    "{name} {}",
                    entry.key
                );
                n_arrays += 1;
            } else if let Some(masked) = description.get("masked") {
                let header = parse_masked_value(&entry.value)
                    .unwrap()
                    .expect("a masked array");
                let data = slice_of(&entry.value, &header.data);
                let mask = slice_of(&entry.value, &header.mask);
                assert_eq!(array_description(&header.data, &data), masked["data"]);
                assert_eq!(array_description(&header.mask, &mask), masked["mask"]);
                check_typed::<Bool>(
                    &file,
                    entry.value_offset + header.mask.raw_offset,
                    &header.mask,
                    &mask,
                );
                if header.mask.shape == header.data.shape {
                    let layout = MaskedLayout::new(&header.data.dtype, &header.data.shape).unwrap();
                    assert_eq!(layout.to_value_bytes(&data, &mask).unwrap(), entry.value);
                }
                n_masked += 1;
            } else {
                assert_eq!(
                    parse_array_value(&entry.value),
                    Ok(None),
                    "{name} {}",
                    entry.key
                );
            }
        }
    }
    assert!(n_arrays >= 30, "{n_arrays} arrays");
    assert!(n_masked >= 3, "{n_masked} masked arrays");
}

#[test]
fn dtype_names_match_numpy() {
    let type_strings = [
        "?",
        "b1",
        "i1",
        "u1",
        "<i2",
        ">i2",
        "<i4",
        ">i4",
        "<i8",
        ">i8",
        "<u2",
        ">u2",
        "<u4",
        ">u4",
        "<u8",
        ">u8",
        "<f2",
        ">f2",
        "<f4",
        ">f4",
        "<f8",
        ">f8",
        "<c8",
        ">c8",
        "<c16",
        ">c16",
        "S3",
        "S1",
        "<U5",
        ">U2",
        "V4",
        "<M8[ns]",
        ">M8[s]",
        "<m8[25ms]",
        "M8",
        "<f16",
    ];
    let script = "import sys, numpy\nfor t in sys.argv[1:]: print(str(numpy.dtype(t)))";
    let args: Vec<&std::ffi::OsStr> = type_strings.iter().map(std::ffi::OsStr::new).collect();
    for python in [python_mmappickle(), python_numpy2()] {
        let names = run_python(&python, script, &args);
        for (type_string, numpy_name) in type_strings.iter().zip(names.lines()) {
            let dtype = DType::parse(type_string).unwrap();
            assert_eq!(
                dtype.name(),
                numpy_name,
                "str(numpy.dtype({type_string:?}))"
            );
            assert_eq!(DType::parse(numpy_name).unwrap(), dtype, "{numpy_name}");
        }
    }
}

/// The array cases written by the Python library and by us.
fn cases() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("float64", vec![2, 3]),
        ("bool", vec![5]),
        (">i4", vec![2, 2, 2]),
        ("<U3", vec![2]),
        ("|S4", vec![3]),
        ("complex64", vec![4, 1, 1, 1]),
        ("float16", vec![300]),
        ("uint8", vec![70000]),
        ("int64", vec![0, 3]),
        ("int16", vec![1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]),
    ]
}

#[test]
fn python_writes_the_bytes_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let python_file = dir.path().join("python.mmdpickle");
    let mut entries = Vec::new();
    let mut ours = FileBuilder::new();
    for (index, (name, shape)) in cases().into_iter().enumerate() {
        let dtype = DType::parse(name).unwrap();
        let layout = ArrayLayout::new(&dtype, &shape, ArrayEncoding::Compatible).unwrap();
        let raw = raw_bytes(&dtype, layout.raw_len(), index as u64);
        let key = format!("a{index}");
        entries.push(json!([key, {"ndarray": {"dtype": name, "shape": shape, "base64": base64_encode(&raw)}}]));
        ours.array(
            &key,
            &layout.to_value_bytes(&raw).unwrap(),
            layout.raw_offset(),
            false,
        );
    }
    // A stub: Python skips the raw bytes (a hole of zeros).
    let stub_dtype = DType::parse("float32").unwrap();
    let stub = mmappickle_stubs::EmptyArray::with_dtype(stub_dtype, &[10, 10])
        .layout()
        .unwrap();
    entries.push(json!(["stub", {"stub": {"dtype": "float32", "shape": [10, 10]}}]));
    ours.array(
        "stub",
        &stub.to_value_bytes(&vec![0; 400]).unwrap(),
        stub.raw_offset(),
        false,
    );
    write_file_with_python(&python_file, &Json::Array(entries));
    let python_bytes = std::fs::read(&python_file).unwrap();
    let our_bytes = ours.finish();
    assert_eq!(python_bytes.len(), our_bytes.len());
    assert!(python_bytes == our_bytes, "the files differ");
}

#[test]
fn python_reads_our_aligned_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.mmdpickle");
    let mut builder = FileBuilder::new();
    let mut expected = Vec::new();
    // Every dtype with a Rust element, several shapes, keys of several lengths
    // (so the padding varies): every array's raw bytes land on a multiple of 64.
    let names = [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ];
    let shapes: [&[usize]; 4] = [&[3], &[2, 5], &[], &[1, 2, 3, 2]];
    for (index, name) in names.iter().enumerate() {
        for (shape_index, shape) in shapes.iter().enumerate() {
            let dtype = DType::parse(name).unwrap();
            let layout = ArrayLayout::new(&dtype, shape, ArrayEncoding::Compatible).unwrap();
            let raw = raw_bytes(&dtype, layout.raw_len(), index as u64);
            let key = format!("{name}{}", "_".repeat(index + shape_index * 3));
            builder.array(
                &key,
                &layout.to_value_bytes(&raw).unwrap(),
                layout.raw_offset(),
                true,
            );
            expected.push(json!([key, {"ndarray": array_description(layout.header(), &raw)}]));
        }
    }
    let masked = MaskedLayout::new(&DType::parse("float64").unwrap(), &[2, 3]).unwrap();
    let data = raw_bytes(&DType::parse("float64").unwrap(), 48, 5);
    let mask = [1, 0, 0, 1, 1, 0];
    builder.array(
        "masked",
        &masked.to_value_bytes(&data, &mask).unwrap(),
        masked.raw_offset(),
        true,
    );
    expected.push(json!(["masked", {"masked": {
        "data": array_description(&masked.header().data, &data),
        "mask": array_description(&masked.header().mask, &mask),
    }}]));
    let bytes = builder.finish();
    std::fs::write(&path, &bytes).unwrap();

    // Every array (0-d ones included) maps as an aligned slice.
    let file = std::fs::File::open(&path).unwrap();
    let mut n_checked = 0;
    for entry in entries_of(&bytes).into_iter().filter(|e| e.live) {
        let header = match parse_array_value(&entry.value).unwrap() {
            Some(header) => header,
            None => parse_masked_value(&entry.value).unwrap().unwrap().data,
        };
        let data_offset = entry.value_offset + header.raw_offset;
        assert_eq!(data_offset % DATA_ALIGN, 0, "{}", entry.key);
        let raw = slice_of(&entry.value, &header);
        assert!(check_any_typed(&file, data_offset, &header, &raw));
        n_checked += 1;
    }
    assert_eq!(n_checked, names.len() * shapes.len() + 1);

    // The Python library cannot read 0-d arrays back (it writes them, though).
    let skip: Vec<&Json> = expected
        .iter()
        .filter(|pair| {
            pair[1]["ndarray"]["shape"]
                .as_array()
                .is_some_and(|s| s.is_empty())
        })
        .map(|pair| &pair[0])
        .collect();
    assert_eq!(skip.len(), names.len());
    let spec = json!({"entries": expected, "commit_number": builder.commit, "mmapdict_skip": skip});
    check_file_with_python(PythonReader::MmapDict, &path, &spec);
    check_file_with_python(PythonReader::PickleNumpy1, &path, &spec);
}

const PORTABLE_CHECK: &str = r#"
import pickle, sys, warnings, hashlib, json
warnings.simplefilter("error")
import numpy
path, expected = sys.argv[1], json.loads(sys.argv[2])
with open(path, "rb") as f:
    loaded = pickle.load(f)
assert list(loaded) == [k for k, _ in expected], list(loaded)
for key, (dtype, shape, sha) in expected:
    a = loaded[key]
    assert type(a) is numpy.ndarray, type(a)
    assert str(a.dtype) == dtype and list(a.shape) == shape, (key, a.dtype, a.shape)
    assert hashlib.sha256(a.tobytes()).hexdigest() == sha, key
    assert a.flags.writeable, key
    if a.size:
        a.reshape(-1)[0] = a.reshape(-1)[-1]
if len(sys.argv) > 3:
    warnings.resetwarnings()  # the library itself uses numpy.float, deprecated
    import mmappickle
    m = mmappickle.mmapdict(path, readonly=True)
    for key, (dtype, shape, sha) in expected:
        a = m[key]
        assert type(a) is numpy.ndarray and str(a.dtype) == dtype, (key, type(a))
        assert hashlib.sha256(a.tobytes()).hexdigest() == sha, key
print("ok")
"#;

#[test]
fn portable_encoding_loads_in_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portable.mmdpickle");
    let mut builder = FileBuilder::new();
    let mut expected = Vec::new();
    let mut cases = cases();
    cases.push(("int32", vec![]));
    for (index, (name, shape)) in cases.into_iter().enumerate() {
        let dtype = DType::parse(name).unwrap();
        let layout = ArrayLayout::new(&dtype, &shape, ArrayEncoding::Portable).unwrap();
        let raw = raw_bytes(&dtype, layout.raw_len(), index as u64);
        let value = layout.to_value_bytes(&raw).unwrap();
        // Our reader finds the raw bytes of the portable form.
        let header = parse_array_value(&value).unwrap().unwrap();
        assert_eq!(&header, layout.header());
        let key = format!("p{index}");
        builder.array(&key, &value, layout.raw_offset(), true);
        // numpy byte-swaps non-native arrays when it unpickles them: same
        // values, native dtype.
        let (loaded_dtype, loaded_raw) = if dtype.is_native() {
            (dtype.clone(), raw.clone())
        } else {
            let swapped: Vec<u8> = raw
                .chunks(dtype.item_size())
                .flat_map(|item| item.iter().rev().copied())
                .collect();
            (dtype.byte_swapped(), swapped)
        };
        expected.push(json!([
            key,
            [loaded_dtype.name(), shape, sha256_hex(&loaded_raw)]
        ]));
    }
    std::fs::write(&path, builder.finish()).unwrap();
    let expected = Json::Array(expected).to_string();
    let path_arg = path.as_os_str();
    let args = [
        path_arg,
        std::ffi::OsStr::new(&expected),
        std::ffi::OsStr::new("mmapdict"),
    ];
    assert_eq!(
        run_python(&python_mmappickle(), PORTABLE_CHECK, &args).trim(),
        "ok"
    );
    assert_eq!(
        run_python(&python_numpy2(), PORTABLE_CHECK, &args[..2]).trim(),
        "ok"
    );
}

const NUMPY_PICKLES: &str = r#"
import base64, hashlib, json, pickle, numpy
arrays = {
    "f8_2x3": numpy.arange(6, dtype="f8").reshape(2, 3) * 1.5,
    "big_i4": numpy.arange(3, dtype=">i4") - 1,
    "fortran": numpy.asfortranarray(numpy.arange(12, dtype="<u2").reshape(3, 4)),
    "bool": numpy.array([True, False, True]),
    "unicode": numpy.array(["ab", "c", "def"]),
    "datetime": numpy.array(["2020-01-01", "2021-06-30"], dtype="M8[ns]"),
    "zero_d": numpy.array(7, dtype="i2"),
    "empty": numpy.zeros((0, 4), dtype="c16"),
    "big": numpy.arange(2000, dtype="f4"),
}
for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
    for name, a in arrays.items():
        description = {"dtype": str(a.dtype), "shape": list(a.shape),
                       "sha256": hashlib.sha256(a.tobytes(order="C")).hexdigest()}
        data = base64.b64encode(pickle.dumps({"x": a}, protocol)).decode()
        print(json.dumps([protocol, name, data, description]))
"#;

/// Arrays pickled by numpy itself (1.23.5 and 2.x, protocols 0 to 5) inside
/// a dict decode to owned arrays with numpy's dtype, shape and C-order bytes.
#[test]
fn numpy_pickled_arrays_decode_to_owned_arrays() {
    let mut n_checked = 0;
    for python in [python_mmappickle(), python_numpy2()] {
        for line in run_python(&python, NUMPY_PICKLES, &[]).lines() {
            let case: Json = serde_json::from_str(line).unwrap();
            let label = format!("{} protocol {} {}", python.display(), case[0], case[1]);
            let pickle = mmappickle_conformance::base64_decode(case[2].as_str().unwrap()).unwrap();
            let value = mmappickle_codec::loads(&pickle).unwrap_or_else(|e| panic!("{label}: {e}"));
            let mmappickle_codec::Value::Dict(items) = value else {
                panic!("{label}: not a dict")
            };
            let array = OwnedArray::from_value(&items[0].1)
                .unwrap_or_else(|| panic!("{label}: not recognised as an array"))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let description = json!({
                "dtype": array.dtype.name(), "shape": array.shape, "sha256": sha256_hex(&array.data),
            });
            assert_eq!(description, case[3], "{label}");
            n_checked += 1;
        }
    }
    assert_eq!(n_checked, 2 * 6 * 9);
}
