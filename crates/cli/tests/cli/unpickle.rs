//! `unpickle` of plain pickles made by CPython and of arrays pickled by numpy.

use std::path::Path;

use crate::{json_of, ok, python_mmappickle, python_numpy2, run_python};

// Plain pickles of every protocol read safely to the same JSON (protocol 5
// for `bytearray`: before it, CPython pickles one as a `builtins.bytearray` call).
#[test]
fn unpickle_reads_every_protocol() {
    let dir = tempfile::tempdir().expect("a temp dir");
    run_python(
        Path::new("python3"),
        dir.path(),
        "import pickle\n\
         value = [1, 'é', (1, 2), {'k': None}, 2**70, -1.5, True, None, [[]]]\n\
         for protocol in range(6):\n\
         \x20   open('p%d.pkl' % protocol, 'wb').write(pickle.dumps(value, protocol))\n\
         open('bytes.pkl', 'wb').write(pickle.dumps([b'\\x00a', bytearray(b'z'), {3}, frozenset()], 5))\n\
         open('evil.pkl', 'wb').write(b\"cos\\nsystem\\n(S'echo pwned > pwned'\\ntR.\")\n",
    );
    let expected = serde_json::json!([1, "é", {"tuple": [1, 2]}, {"dict": [["k", null]]},
        {"int": "1180591620717411303424"}, -1.5, true, null, [[]]]);
    for protocol in 0..6 {
        let file = format!("p{protocol}.pkl");
        assert_eq!(
            json_of(&ok(&["unpickle", "--json", &file], dir.path())),
            expected,
            "{file}"
        );
    }
    assert_eq!(
        json_of(&ok(&["unpickle", "--json", "bytes.pkl"], dir.path())),
        serde_json::json!([{"bytes": "AGE="}, {"bytearray": "eg=="}, {"set": [3]}, {"frozenset": []}])
    );
    // A pickle that would run a shell command is only described.
    let evil = json_of(&ok(&["unpickle", "--json", "evil.pkl"], dir.path()));
    assert_eq!(
        evil["object"]["callable"],
        serde_json::json!({"global": ["os", "system"]})
    );
    assert!(!dir.path().join("pwned").exists());
    assert_eq!(
        ok(&["unpickle", "p2.pkl"], dir.path()),
        "[1, 'é', (1, 2), {'k': None}, 1180591620717411303424, -1.5, True, None, [[]]]\n"
    );
    let listing = ok(&["dis", "p4.pkl"], dir.path());
    assert!(
        listing.contains("as a plain pickle:") && listing.contains("STOP"),
        "{listing}"
    );
}

// Arrays that numpy pickled itself (protocols 2, 4, 5; numpy 1.x and 2.x;
// Fortran order) are digested as numpy sees them.
#[test]
fn unpickle_digests_numpy_arrays() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let script = "import hashlib, json, pickle, numpy as np\n\
        arrays = [np.arange(6, dtype='>i4').reshape(2, 3), np.asfortranarray(np.arange(12.0).reshape(3, 4)),\n\
        \x20         np.array(['a', 'bc'], dtype='<U2'), np.array(2.5), np.zeros((0, 2), dtype=bool)]\n\
        expected = [{'ndarray': {'dtype': str(a.dtype), 'shape': list(a.shape),\n\
        \x20   'sha256': hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}} for a in arrays]\n\
        for protocol in (2, 4, 5):\n\
        \x20   open('%s-%d.pkl' % (np.__version__[0], protocol), 'wb').write(pickle.dumps(arrays, protocol))\n\
        print(json.dumps(expected))\n";
    let mut expectations = Vec::new();
    for python in [python_mmappickle(), python_numpy2()] {
        expectations.push(json_of(&run_python(&python, dir.path(), script)));
    }
    assert_eq!(
        expectations[0], expectations[1],
        "both numpys describe the same arrays"
    );
    for major in ["1", "2"] {
        for protocol in [2, 4, 5] {
            let file = format!("{major}-{protocol}.pkl");
            let got = json_of(&ok(&["unpickle", "--json", &file], dir.path()));
            assert_eq!(got, expectations[0], "{file}");
        }
    }
}
