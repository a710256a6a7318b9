//! numpy scalars (written by numpy 1.23.5 and numpy 2), `datetime`, `Decimal`, `complex`,
//! `OrderedDict` and numpy dtypes: `get`, `dump` and `unpickle` print what Python's `repr()`
//! prints in numpy 2's environment, and their JSON is what `known_forms.py` computes from
//! the values Python loads. Malformed ones stay the calls they are.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use crate::{json_of, ok, python_mmappickle, python_numpy2, run_python, run_python_with};

/// Runs `known_forms.py` with `args` in `dir`; its stdout.
pub(crate) fn run_script(python: &Path, dir: &Path, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/known_forms.py");
    let mut script_args = vec![script.to_str().expect("a UTF-8 path")];
    script_args.extend_from_slice(args);
    run_python_with(python, dir, &script_args)
}

/// `got` equals `expected`, or a panic showing where they part.
fn assert_same_text(got: &str, expected: &str, what: &str) {
    if got == expected {
        return;
    }
    let at = got
        .chars()
        .zip(expected.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let context =
        |text: &str| -> String { text.chars().skip(at.saturating_sub(60)).take(120).collect() };
    panic!(
        "{what}: differs at character {at}\n     got: ...{}...\nexpected: ...{}...",
        context(got),
        context(expected)
    );
}

/// `got` is the JSON `expected`; an expected `{"structural": callable}` (a `ZoneInfo`, or a
/// datetime in one: their pickles differ between protocols) is an object built by that
/// callable (by any when it is null).
fn assert_json(got: &Json, expected: &Json, what: &str) {
    match expected.get("structural") {
        Some(Json::Null) => assert!(got["object"]["callable"].is_object(), "{what}: {got}"),
        Some(callable) => assert_eq!(&got["object"]["callable"], callable, "{what}"),
        None => assert_eq!(got, expected, "{what}"),
    }
}

/// Python's expectations for one file: the dict's repr, and per key its repr and JSON.
struct Expected {
    dict_repr: String,
    keys: Vec<(String, String, Json)>,
}

fn expectations(dir: &Path, files: &[&str]) -> BTreeMap<String, Expected> {
    let mut args = vec!["expect"];
    args.extend_from_slice(files);
    let all = json_of(&run_script(&python_numpy2(), dir, &args));
    files
        .iter()
        .map(|file| {
            let record = &all[*file];
            let keys = record["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|row| {
                    let key = row[0].as_str().expect("a key").to_owned();
                    let repr = row[1].as_str().expect("a repr").to_owned();
                    (key, repr, row[2].clone())
                })
                .collect();
            let dict_repr = record["dict"].as_str().expect("a repr").to_owned();
            (file.to_string(), Expected { dict_repr, keys })
        })
        .collect()
}

#[test]
fn known_objects_print_as_python_does() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    // numpy 1.23.5 with Python mmappickle 1.0 (`numpy.core.multiarray.scalar`), then numpy 2
    // (`numpy._core.multiarray.scalar`), whose dict `convert` turns into an mmappickle file.
    run_script(&python_mmappickle(), dir, &["write", "."]);
    run_script(&python_numpy2(), dir, &["write", "."]);
    ok(&["convert", "numpy2-4.pkl", "numpy2.mmdpickle"], dir);
    let files = [
        "numpy1.mmdpickle",
        "numpy2.mmdpickle",
        "numpy1-0.pkl",
        "numpy1-2.pkl",
        "numpy1-4.pkl",
        "numpy2-0.pkl",
        "numpy2-2.pkl",
        "numpy2-4.pkl",
    ];
    let expected = expectations(dir, &files);
    let mut n_checked = 0;
    for file in files {
        let expected = &expected[file];
        assert!(expected.keys.len() > 150, "{file}: every case is there");
        if file.ends_with(".mmdpickle") {
            // One `'key': repr,` line per entry, then the JSON of each.
            let dump = ok(&["dump", file], dir);
            let lines: Vec<&str> = dump.lines().collect();
            assert_eq!(lines.len(), expected.keys.len() + 2, "{file}: {dump}");
            for ((key, repr, _), line) in expected.keys.iter().zip(&lines[1..]) {
                let key_repr = format!("'{key}'");
                assert_same_text(line, &format!("    {key_repr}: {repr},"), file);
                n_checked += 1;
            }
            let json = json_of(&ok(&["dump", "--json", file], dir));
            for (key, _, value) in &expected.keys {
                assert_json(&json[key], value, &format!("{file}: JSON of {key}"));
            }
        } else {
            // The whole dict on one line; JSON where Python wrote protocol 4 (what the
            // descriptions of other objects are for: protocol 2 writes complex as NEWOBJ).
            let text = ok(&["unpickle", file], dir);
            assert_same_text(&text, &format!("{}\n", expected.dict_repr), file);
            if file.ends_with("-4.pkl") {
                let json = json_of(&ok(&["unpickle", "--json", file], dir));
                let pairs = json["dict"].as_array().expect("a dict");
                assert_eq!(pairs.len(), expected.keys.len(), "{file}");
                for (pair, (key, _, value)) in pairs.iter().zip(&expected.keys) {
                    assert_eq!(pair[0], Json::from(key.as_str()), "{file}: key order");
                    assert_json(&pair[1], value, &format!("{file}: JSON of {key}"));
                }
            }
        }
    }
    assert!(n_checked > 300, "{n_checked} lines compared");
    // `get` prints one key as `dump` does.
    let numpy1 = &expected["numpy1.mmdpickle"];
    for (key, repr, value) in &numpy1.keys {
        if [
            "float32_0",
            "datetime_zoneinfo",
            "complex128_3",
            "decimal_big",
        ]
        .contains(&key.as_str())
        {
            assert_eq!(
                ok(&["get", "numpy1.mmdpickle", key], dir),
                format!("{repr}\n")
            );
            let json = json_of(&ok(&["get", "--json", "numpy1.mmdpickle", key], dir));
            assert_json(&json, value, &format!("get --json {key}"));
        }
    }
}

// Every float16, and random float32, float64 and complex bit patterns (NaNs of every
// payload, subnormals, both zeros): digits, positional or scientific, as numpy 2 prints them.
#[test]
fn floats_of_every_width_print_as_numpy_does() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    let expected = run_script(&python_numpy2(), dir, &["floats", "floats.pkl"]);
    assert!(
        expected.len() > 1_500_000,
        "{} bytes of reprs",
        expected.len()
    );
    assert_same_text(&ok(&["unpickle", "floats.pkl"], dir), &expected, "floats");
}

// Bytes that are not one element of the dtype, a dtype numpy pickles but the array crate
// does not read, a month 13, a Decimal of no number: shown as the calls they are.
#[test]
fn malformed_known_objects_stay_calls() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    run_python(
        &python_numpy2(),
        dir,
        "import datetime, decimal, pickle, numpy as np\n\
         from numpy._core.multiarray import scalar\n\
         class Reduced:\n\
         \x20   def __init__(self, *reduced): self.reduced = reduced\n\
         \x20   def __reduce__(self): return self.reduced\n\
         values = [Reduced(scalar, (np.dtype('f4'), b'\\x00\\x00 ')),\n\
         \x20         Reduced(scalar, (np.dtype('O'), b'12345678')),\n\
         \x20         Reduced(scalar, (np.dtype('f4'), 'not bytes')),\n\
         \x20         Reduced(datetime.datetime, (b'\\x07\\xe5\\x0d\\x04\\x05\\x06\\x07\\x00\\x00\\x00',)),\n\
         \x20         Reduced(decimal.Decimal, ('garbage',))]\n\
         open('bad.pkl', 'wb').write(pickle.dumps(values, 4))\n",
    );
    let text = ok(&["unpickle", "bad.pkl"], dir);
    for shown in [
        "numpy._core.multiarray.scalar(dtype('float32'), b'\\x00\\x00 ')",
        "numpy._core.multiarray.scalar(numpy.dtype('O8', False, True)",
        "numpy._core.multiarray.scalar(dtype('float32'), 'not bytes')",
        "datetime.datetime(b'\\x07\\xe5\\r\\x04\\x05\\x06\\x07\\x00\\x00\\x00')",
        "decimal.Decimal('garbage')",
    ] {
        assert!(text.contains(shown), "{shown} in {text}");
    }
    let json = json_of(&ok(&["unpickle", "--json", "bad.pkl"], dir));
    let callables: Vec<&Json> = json
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| &item["object"]["callable"]["global"])
        .collect();
    assert_eq!(
        callables,
        [
            &serde_json::json!(["numpy._core.multiarray", "scalar"]),
            &serde_json::json!(["numpy._core.multiarray", "scalar"]),
            &serde_json::json!(["numpy._core.multiarray", "scalar"]),
            &serde_json::json!(["datetime", "datetime"]),
            &serde_json::json!(["decimal", "Decimal"]),
        ]
    );
}
