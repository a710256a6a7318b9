//! The pickler and the entry encoding against CPython and against `loads`.
//!
//! Index:
//! - `golden_*`: `tests/golden/golden.json` (checked in) and the big cases
//!   that `make_golden.py --big` writes at run time: `loads` of every
//!   protocol 0-5 stream gives the recorded value; `dumps` reproduces the
//!   protocol 4 bytes exactly whenever no object appears twice; the entry
//!   encoding is those bytes without PROTO, FRAME, MEMOIZE and STOP.
//! - `golden_script_is_reproducible`: the script still writes `golden.json`
//!   byte for byte (the checked-in data is what the script says).
//! - `prop_*`: `loads(dumps(v)) == v` and the entry encoding round trip for
//!   arbitrary bounded values.

use std::path::{Path, PathBuf};
use std::process::Command;

use mmappickle_codec::{
    decode_entry_value, dumps, encode_entry_value, loads, BigInt, Construct, Global, Limits,
    Object, Value,
};
use proptest::prelude::*;
use serde_json::Value as Json;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn hex_decode(text: &str) -> Vec<u8> {
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => panic!("not a lowercase hex digit: {digit}"),
    };
    let digits = text.as_bytes();
    assert!(digits.len() % 2 == 0, "odd hex length");
    digits
        .chunks_exact(2)
        .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1]))
        .collect()
}

fn json_list(json: &Json) -> &[Json] {
    json.as_array().expect("a JSON array")
}

fn values_of(json: &Json) -> Vec<Value> {
    json_list(json).iter().map(value_of).collect()
}

fn pairs_of(json: &Json) -> Vec<(Value, Value)> {
    json_list(json)
        .iter()
        .map(|pair| match json_list(pair) {
            [key, value] => (value_of(key), value_of(value)),
            other => panic!("a pair, found {other:?}"),
        })
        .collect()
}

/// Builds the [`Value`] a tagged description of `make_golden.py` stands for.
fn value_of(json: &Json) -> Value {
    let object = match json {
        Json::Null => return Value::None,
        Json::Bool(flag) => return Value::Bool(*flag),
        Json::Object(object) => object,
        other => panic!("unexpected description {other}"),
    };
    let (tag, body) = object.iter().next().expect("one tag");
    match tag.as_str() {
        "int" => Value::Int(body.as_str().and_then(|t| t.parse().ok()).expect("i64")),
        "long" => BigInt::value_from_le_bytes(&hex_decode(body.as_str().expect("hex"))),
        "float" => {
            let bits: [u8; 8] = hex_decode(body.as_str().expect("hex"))
                .try_into()
                .expect("8 bytes");
            Value::Float(f64::from_be_bytes(bits))
        }
        "str" => Value::Str(body.as_str().expect("str").to_owned()),
        "bytes" => Value::Bytes(hex_decode(body.as_str().expect("hex"))),
        "bytearray" => Value::ByteArray(hex_decode(body.as_str().expect("hex"))),
        "list" => Value::List(values_of(body)),
        "tuple" => Value::Tuple(values_of(body)),
        "set" => Value::Set(values_of(body)),
        "frozenset" => Value::FrozenSet(values_of(body)),
        "dict" => Value::Dict(pairs_of(body)),
        "global" => match json_list(body) {
            [module, name] => Value::Global(Global::new(
                module.as_str().expect("module"),
                name.as_str().expect("name"),
            )),
            other => panic!("a global, found {other:?}"),
        },
        "object" => {
            let construct = match body["construct"].as_str().expect("construct") {
                "reduce" => Construct::Reduce,
                "newobj" => Construct::NewObj,
                "newobj_ex" => Construct::NewObjEx,
                "inst" => Construct::Inst,
                "obj" => Construct::Obj,
                other => panic!("unknown construct {other}"),
            };
            let mut node = Object::new(
                construct,
                value_of(&body["callable"]),
                values_of(&body["args"]),
            );
            node.kwargs = pairs_of(&body["kwargs"]);
            node.list_items = values_of(&body["list_items"]);
            node.dict_items = pairs_of(&body["dict_items"]);
            node.state = body.get("state").map(value_of);
            Value::from(node)
        }
        other => panic!("unknown tag {other}"),
    }
}

/// Removes PROTO, FRAME, MEMOIZE and STOP from a protocol 4 stream without
/// GETs: what Python mmappickle stores as an entry's value. Walks the
/// opcodes by their argument sizes (only those CPython's protocol 4 writes).
fn strip_to_entry_value(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    let mut pos = 0;
    let read_len = |at: usize, width: usize| -> usize {
        let mut buf = [0u8; 8];
        buf[..width].copy_from_slice(&stream[at..at + width]);
        usize::try_from(u64::from_le_bytes(buf)).expect("length fits")
    };
    while pos < stream.len() {
        let opcode = stream[pos];
        let arg_len = match opcode {
            // PROTO, BININT1 / BININT2 / BININT, BINFLOAT, FRAME.
            0x80 | b'K' => 1,
            b'M' => 2,
            b'J' => 4,
            b'G' | 0x95 => 8,
            // SHORT_BINBYTES, SHORT_BINUNICODE, LONG1: u8 length.
            b'C' | 0x8c | 0x8a => 1 + read_len(pos + 1, 1),
            // BINBYTES, BINUNICODE, LONG4: u32 length.
            b'B' | b'X' | 0x8b => 4 + read_len(pos + 1, 4),
            // BINUNICODE8, BINBYTES8: u64 length.
            0x8d | 0x8e => 8 + read_len(pos + 1, 8),
            _ => 0,
        };
        let end = pos + 1 + arg_len;
        if !matches!(opcode, 0x80 | 0x95 | 0x94 | b'.') {
            out.extend_from_slice(&stream[pos..end]);
        }
        pos = end;
    }
    out
}

/// Checks every case of a golden document; returns how many streams were checked.
fn check_golden_document(document: &Json) -> usize {
    let mut n_streams = 0;
    for case in json_list(&document["cases"]) {
        let name = case["name"].as_str().expect("name");
        let value4 = value_of(&case["value"]);
        for protocol in json_list(&case["protocols"]) {
            let stream = hex_decode(protocol["pickle"].as_str().expect("hex"));
            let expected = protocol
                .get("value")
                .map_or_else(|| value4.clone(), value_of);
            let loaded = loads(&stream).unwrap_or_else(|e| {
                panic!(
                    "{name}, protocol {}: loads failed: {e}",
                    protocol["protocol"]
                )
            });
            assert!(
                loaded == expected,
                "{name}, protocol {}: loads gave {loaded:?}",
                protocol["protocol"]
            );
            n_streams += 1;
        }
        if !case["exact"].as_bool().expect("exact") {
            continue;
        }
        let stream4 = hex_decode(
            json_list(&case["protocols"])
                .iter()
                .find(|p| p["protocol"] == 4)
                .and_then(|p| p["pickle"].as_str())
                .expect("a protocol 4 stream"),
        );
        assert_same_bytes(&dumps(&value4), &stream4, name);
        if let Some(native) = case.get("native") {
            assert_same_bytes(&dumps(&value_of(native)), &stream4, name);
        }
        let (entry_bytes, memo_max) = encode_entry_value(&value4, 1);
        assert!(
            entry_bytes == strip_to_entry_value(&stream4),
            "{name}: entry value bytes differ"
        );
        assert_eq!(memo_max, 1, "{name}");
    }
    n_streams
}

/// Asserts `ours == cpython`, showing where they first differ.
fn assert_same_bytes(ours: &[u8], cpython: &[u8], name: &str) {
    if ours == cpython {
        return;
    }
    let at = ours
        .iter()
        .zip(cpython)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(cpython.len()));
    let window = |bytes: &[u8]| bytes[at.saturating_sub(16)..(at + 16).min(bytes.len())].to_vec();
    panic!(
        "{name}: dumps differs from CPython at byte {at} (lengths {} and {}):\n ours   {:02x?}\n cpython {:02x?}",
        ours.len(),
        cpython.len(),
        window(ours),
        window(cpython)
    );
}

fn read_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).expect("readable golden file");
    serde_json::from_str(&text).expect("valid JSON")
}

fn run_make_golden(args: &[&str]) {
    let status = Command::new("python3")
        .arg(golden_dir().join("make_golden.py"))
        .args(args)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "make_golden.py {args:?} failed");
}

// Every checked-in case: loads of protocols 0-5, dumps and entry bytes at protocol 4.
#[test]
fn golden_checked_in_cases() {
    let document = read_json(&golden_dir().join("golden.json"));
    let n_streams = check_golden_document(&document);
    assert!(n_streams >= 6 * 70, "only {n_streams} streams");
}

// The big cases (frames over 64 KiB, batches over 1000 items), made at run time.
#[test]
fn golden_big_cases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.json");
    run_make_golden(&["--big", path.to_str().expect("utf-8 path")]);
    let n_streams = check_golden_document(&read_json(&path));
    assert!(n_streams >= 60, "only {n_streams} streams");
}

// The checked-in data is exactly what the script writes today.
#[test]
fn golden_script_is_reproducible() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("golden.json");
    run_make_golden(&[path.to_str().expect("utf-8 path")]);
    let fresh = std::fs::read(&path).expect("fresh output");
    let checked_in = std::fs::read(golden_dir().join("golden.json")).expect("checked-in file");
    assert!(
        fresh == checked_in,
        "golden.json is stale: rerun the command in tests/golden/README.md"
    );
}

// The entry decoder reports offsets relative to the value bytes.
#[test]
fn entry_decode_error_offsets_are_relative() {
    // EMPTY_LIST, MARK, BININT1 cut short: the argument is missing at offset 3.
    let error = decode_entry_value(b"](K", &Limits::default()).expect_err("truncated");
    assert!(
        error.offset() <= 3,
        "offset {} past the input",
        error.offset()
    );
}

fn arbitrary_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<i128>().prop_map(Value::from),
        any::<f64>().prop_map(Value::Float),
        ".{0,40}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteArray),
        ("[a-z._]{1,12}", "[A-Za-z_]{1,12}")
            .prop_filter("a builtin call's module", |(module, _)| {
                !matches!(module.as_str(), "builtins" | "__builtin__" | "_codecs")
            })
            .prop_map(|(m, n)| Value::Global(Global::new(m, n))),
    ]
}

fn arbitrary_construct() -> impl Strategy<Value = Construct> {
    prop_oneof![
        Just(Construct::Reduce),
        Just(Construct::NewObj),
        Just(Construct::NewObjEx),
        Just(Construct::Inst),
        Just(Construct::Obj),
    ]
}

fn arbitrary_value() -> impl Strategy<Value = Value> {
    arbitrary_scalar().prop_recursive(4, 64, 8, |inner| {
        let items = proptest::collection::vec(inner.clone(), 0..8);
        let pairs = proptest::collection::vec((inner.clone(), inner.clone()), 0..6);
        prop_oneof![
            items.clone().prop_map(Value::List),
            items.clone().prop_map(Value::Tuple),
            items.clone().prop_map(Value::Set),
            items.clone().prop_map(Value::FrozenSet),
            pairs.clone().prop_map(Value::Dict),
            (
                arbitrary_construct(),
                inner.clone(),
                items.clone(),
                pairs.clone(),
                items,
                pairs,
                proptest::option::of(inner)
            )
                .prop_map(
                    |(construct, callable, args, kwargs, list_items, dict_items, state)| {
                        let mut node = Object::new(construct, callable, args);
                        if construct == Construct::NewObjEx {
                            node.kwargs = kwargs;
                        }
                        node.list_items = list_items;
                        node.dict_items = dict_items;
                        node.state = state;
                        Value::from(node)
                    }
                ),
        ]
    })
}

/// What `loads(dumps(value))` gives: an `INST` / `OBJ` object is written,
/// and so reads back, as a `REDUCE` one. (An object node that is exactly a
/// builtin call such as `builtins.set([..])` would read back native, but the
/// generated globals are never in those modules.)
fn as_read_back(value: &Value) -> Value {
    let all = |items: &[Value]| items.iter().map(as_read_back).collect();
    let all_pairs = |pairs: &[(Value, Value)]| {
        pairs
            .iter()
            .map(|(k, v)| (as_read_back(k), as_read_back(v)))
            .collect()
    };
    match value {
        Value::List(items) => Value::List(all(items)),
        Value::Tuple(items) => Value::Tuple(all(items)),
        Value::Set(items) => Value::Set(all(items)),
        Value::FrozenSet(items) => Value::FrozenSet(all(items)),
        Value::Dict(pairs) => Value::Dict(all_pairs(pairs)),
        Value::Object(node) => {
            let mut node = (**node).clone();
            if matches!(node.construct, Construct::Inst | Construct::Obj) {
                node.construct = Construct::Reduce;
            }
            node.callable = as_read_back(&node.callable);
            node.args = all(&node.args);
            node.kwargs = all_pairs(&node.kwargs);
            node.list_items = all(&node.list_items);
            node.dict_items = all_pairs(&node.dict_items);
            node.state = node.state.as_ref().map(as_read_back);
            Value::from(node)
        }
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Whatever we write, our unpickler reads back unchanged.
    #[test]
    fn prop_loads_dumps_roundtrip(value in arbitrary_value()) {
        let loaded = loads(&dumps(&value)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(loaded, as_read_back(&value));
    }

    // The entry encoding reads back unchanged and needs no memo.
    #[test]
    fn prop_entry_value_roundtrip(value in arbitrary_value(), memo_start in 0u32..100_000) {
        let (bytes, memo_max) = encode_entry_value(&value, memo_start);
        prop_assert_eq!(memo_max, memo_start);
        let decoded = decode_entry_value(&bytes, &Limits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded, as_read_back(&value));
    }
}
