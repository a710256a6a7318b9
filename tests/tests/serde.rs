//! serde types stored by the facade, against the Python library and `pickle.load`.
//!
//! Index:
//! - `python_reads_a_derived_struct_as_a_dict`: `insert_serde` of a derived struct
//!   (nested structs, enums, tuples, options, bytes, 128-bit ints); Python's
//!   `mmapdict` and plain `pickle.load` see exactly the expected dict literal.
//! - `python_written_dict_reads_into_the_struct`: the Python library writes the
//!   dict as a Python programmer would (tuples, a set, ints for floats);
//!   `get_serde` reads it into the struct, and a wrong field is named by path.

use std::collections::{BTreeMap, HashSet};

use mmappickle::{ErrorKind, MmapDict};
use mmappickle_conformance::{python_mmappickle, run_python};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Experiment {
    name: String,
    params: Params,
    tags: HashSet<String>,
    mode: Mode,
    #[serde(with = "serde_bytes")]
    checksum: Vec<u8>,
    seed: u128,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Params {
    scan: Vec<Step>,
    window: (u32, u32),
    weights: BTreeMap<String, f64>,
    comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    gain: f64,
    enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Mode {
    Idle,
    Sweep { from: f64, to: f64 },
}

fn experiment() -> Experiment {
    Experiment {
        name: "run \u{e9}".to_owned(),
        params: Params {
            scan: vec![
                Step {
                    gain: 0.5,
                    enabled: true,
                },
                Step {
                    gain: 2.0,
                    enabled: false,
                },
            ],
            window: (3, 640),
            weights: [("a".to_owned(), 0.25)].into_iter().collect(),
            comment: None,
        },
        tags: ["x".to_owned()].into_iter().collect(),
        mode: Mode::Sweep { from: 1.0, to: 2.5 },
        checksum: b"\x00\xff".to_vec(),
        seed: 1 << 100,
    }
}

/// The Python literal of `experiment()`, as a Python programmer would write it
/// (the `HashSet` is a list: serde does not tell sets from sequences).
const EXPECTED: &str = r#"{
    "name": "run \u00e9",
    "params": {
        "scan": [{"gain": 0.5, "enabled": True}, {"gain": 2.0, "enabled": False}],
        "window": (3, 640),
        "weights": {"a": 0.25},
        "comment": None,
    },
    "tags": ["x"],
    "mode": {"Sweep": {"from": 1.0, "to": 2.5}},
    "checksum": b"\x00\xff",
    "seed": 2**100,
}"#;

#[test]
fn python_reads_a_derived_struct_as_a_dict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serde.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_serde("experiment", &experiment()).unwrap();
    drop(m);
    let script = format!(
        r#"
import pickle, sys
import mmappickle
expected = {EXPECTED}
def same(a, b):
    # == alone would take 1 for 1.0 and a list for a tuple: compare types too.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
m = mmappickle.mmapdict(sys.argv[1], readonly=True)
assert same(m["experiment"], expected), m["experiment"]
with open(sys.argv[1], "rb") as f:
    plain = pickle.load(f)
assert same(plain["experiment"], expected), plain["experiment"]
print("ok")
"#
    );
    let output = run_python(&python_mmappickle(), &script, &[path.as_os_str()]);
    assert_eq!(output.trim(), "ok");
}

#[test]
fn python_written_dict_reads_into_the_struct() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serde.mmdpickle");
    let script = r#"
import sys
import mmappickle
m = mmappickle.mmapdict(sys.argv[1])
m["experiment"] = {
    "name": "run \u00e9",
    "params": {
        "scan": ({"gain": 0.5, "enabled": True}, {"gain": 2, "enabled": False}),
        "window": [3, 640],
        "weights": {"a": 0.25},
        "comment": None,
    },
    "tags": {"x"},
    "mode": {"Sweep": {"from": 1, "to": 2.5}},
    "checksum": bytearray(b"\x00\xff"),
    "seed": 2**100,
}
bad = dict(m["experiment"])
bad["params"] = dict(bad["params"], scan=[{"gain": 1.0, "enabled": True}] * 3 + [{"gain": "loud", "enabled": True}])
m["bad"] = bad
"#;
    run_python(&python_mmappickle(), script, &[path.as_os_str()]);
    let m = MmapDict::open_readonly(&path).unwrap();
    assert_eq!(
        m.get_serde::<Experiment>("experiment").unwrap(),
        experiment()
    );
    let error = m.get_serde::<Experiment>("bad").unwrap_err();
    let ErrorKind::Serde(serde_error) = error.kind() else {
        panic!("not a serde error: {error}");
    };
    assert_eq!(serde_error.path(), "bad.params.scan[3].gain");
    assert_eq!(
        error.kind().to_string(),
        "bad.params.scan[3].gain: expected float, found str"
    );
}
