//! The `mmappickle` binary, run as a user would.
//!
//! Index of cases:
//! - fixtures: `dump --json` of every Python-made fixture equals its manifest;
//!   golden `ls`, `ls --all`, `info` and `get` output on fixtures;
//!   `dis` lists every entry with its key and live flag.
//! - `unpickle --json` of plain pickles of protocols 0 to 5 made by CPython, and
//!   of numpy arrays pickled by numpy 1.x and 2.x (digests computed by numpy).
//! - editing: `set` then `get --json` and Python `mmappickle` read the value;
//!   `rm`, `stub`, `vacuum`, `fsck` of a torn file, `convert`.
//! - arrays: `.npy` (versions 1 to 3, Fortran order, big-endian, unicode,
//!   0-d, empty) and `.npz` made by numpy, imported, exported, compared by
//!   numpy; the portable encoding loads with plain `pickle.load` on numpy 2.
//! - errors: exit code 1 with one line on stderr (byte offsets for format
//!   errors), exit code 2 for usage errors.
//! - a small hostile pickle (wide and 500 levels deep) prints in bounded space.
//! - URLs: the read commands on every fixture served by nginx (and on `file://` URLs) print
//!   what they print for the local file, errors included; `ls` over HTTP does not fetch
//!   array payloads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

// The servers the remote crate's tests start (this binary uses nginx only).
#[allow(dead_code)]
#[path = "../../remote/tests/support/mod.rs"]
mod remote_support;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests").join("fixtures").join(name)
}

/// The Python of `variable`, or the virtual environment `cargo xtask` makes.
fn python(variable: &str, venv: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(
        || {
            workspace_root()
                .join("target")
                .join(venv)
                .join("bin")
                .join("python")
        },
        PathBuf::from,
    )
}

/// Python with `mmappickle==1.0` and numpy 1.23.5.
fn python_mmappickle() -> PathBuf {
    python("MMAPPICKLE_PYTHON", "py-mmappickle")
}

/// Python with numpy 2.x.
fn python_numpy2() -> PathBuf {
    python("MMAPPICKLE_PYTHON_NUMPY2", "py-numpy2")
}

/// Runs `script` in `dir` with `python`; its stdout, or a panic with its stderr.
fn run_python(python: &Path, dir: &Path, script: &str) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", python.display()));
    assert!(
        output.status.success(),
        "Python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn mmappickle(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmappickle"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// Runs the binary, asserts success, returns stdout.
fn ok(args: &[&str], dir: &Path) -> String {
    let output = mmappickle(args, dir);
    assert!(
        output.status.success(),
        "mmappickle {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stderr.is_empty(), "no progress bars off a terminal");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs the binary, asserts exit code `code` and one line on stderr; returns it.
fn fails(args: &[&str], dir: &Path, code: i32) -> String {
    let output = mmappickle(args, dir);
    assert_eq!(output.status.code(), Some(code), "mmappickle {args:?}");
    assert!(output.stdout.is_empty(), "nothing on stdout for a failure");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 errors");
    if code == 1 {
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("mmappickle: error: "), "{stderr}");
    }
    stderr
}

fn json_of(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

fn manifest() -> Json {
    json_of(&std::fs::read_to_string(fixture("manifest.json")).expect("the fixtures' manifest"))
}

/// The manifest as the codec reads values: it may describe a protocol 4
/// `bytearray` as the call CPython pickles (`builtins.bytearray(b'..')`),
/// which the codec decodes as the bytearray it builds.
fn native_builtins(json: &Json) -> Json {
    match json {
        Json::Array(items) => Json::Array(items.iter().map(native_builtins).collect()),
        Json::Object(fields) => {
            let object = &json["object"];
            if fields.len() == 1
                && object.as_object().map(|o| o.len()) == Some(2)
                && object["callable"] == serde_json::json!({"global": ["builtins", "bytearray"]})
            {
                if let Some(bytes) = object["args"][0]["bytes"].as_str() {
                    return serde_json::json!({ "bytearray": bytes });
                }
            }
            Json::Object(
                fields
                    .iter()
                    .map(|(key, value)| (key.clone(), native_builtins(value)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

// Every fixture dumps to exactly its manifest entries, in file order.
#[test]
fn dump_json_of_every_fixture_equals_the_manifest() {
    let manifest = manifest();
    let files = manifest["files"].as_object().expect("manifest files");
    assert!(files.len() >= 10, "the fixtures are there");
    for (name, description) in files {
        let dump = json_of(&ok(&["dump", "--json", name], &fixture("")));
        let dumped: Vec<(&String, &Json)> = dump.as_object().expect("an object").iter().collect();
        let expected: Vec<(&str, &Json)> = description["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|pair| (pair[0].as_str().expect("a key"), &pair[1]))
            .collect();
        assert_eq!(dumped.len(), expected.len(), "{name}: number of keys");
        for ((key, value), (expected_key, expected_value)) in dumped.into_iter().zip(expected) {
            assert_eq!(key, expected_key, "{name}: key order");
            assert_eq!(
                value,
                &native_builtins(expected_value),
                "{name}: key {key:?}"
            );
        }
    }
}

// `get --json` of single keys agrees with the manifest too (arrays, masked, values).
#[test]
fn get_json_agrees_with_the_manifest() {
    let manifest = manifest();
    for (file, key) in [
        ("generic.mmdpickle", "huge_negative"),
        ("generic.mmdpickle", "nan"),
        ("generic.mmdpickle", "datetime"),
        ("arrays.mmdpickle", "fortran"),
        ("arrays.mmdpickle", "zero_d"),
        ("masked.mmdpickle", "masked_no_mask"),
        ("keys.mmdpickle", "🎉"),
    ] {
        let expected = manifest["files"][file]["entries"]
            .as_array()
            .and_then(|entries| entries.iter().find(|pair| pair[0] == key))
            .map(|pair| pair[1].clone())
            .unwrap_or_else(|| panic!("{file} {key} in the manifest"));
        let got = json_of(&ok(&["get", "--json", file, key], &fixture("")));
        assert_eq!(got, expected, "{file} {key}");
    }
}

// Columns are as wide as their widest cell in characters (a key of two-byte characters is
// not wider than its letters), padding entries show with --all, an aligned array says yes.
#[test]
fn ls_pads_columns_by_characters() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    ok(&["set", "u.mmdpickle", "clé_été", "--json", "1"], dir);
    ok(&["set", "u.mmdpickle", "k", "--json", "\"text\""], dir);
    ok(
        &[
            "stub",
            "u.mmdpickle",
            "grille_ü",
            "--dtype",
            "int16",
            "--shape",
            "3",
            "4",
        ],
        dir,
    );
    ok(&["set", "u.mmdpickle", "clé_été", "--json", "2"], dir);
    assert_eq!(
        ok(&["ls", "--all", "u.mmdpickle"], dir),
        "\
KEY       KIND     DTYPE  SHAPE   BYTES  OFFSET  ALIGNED
clé_été   deleted  -      -           2      45  -
k         value    -      -           6      67  -
          padding  -      -          57      92  -
grille_ü  array    int16  (3, 4)     24     256  yes
clé_été   value    -      -           2     325  -
"
    );
}

// Golden tables: the fixtures are byte-for-byte stable, so is this output.
#[test]
fn ls_and_info_print_golden_tables() {
    let dir = fixture("");
    assert_eq!(
        ok(&["ls", "masked.mmdpickle"], &dir),
        "\
KEY             KIND    DTYPE    SHAPE   BYTES  OFFSET  ALIGNED
masked          masked  float64  (4,)       32     149  no
masked_2d       masked  int32    (2, 3)     24     431  no
masked_no_mask  masked  int16    (3,)        6     714  no
"
    );
    assert_eq!(
        ok(&["ls", "--all", "deleted.mmdpickle"], &dir),
        "\
KEY        KIND     DTYPE  SHAPE  BYTES  OFFSET  ALIGNED
a          value    -      -          2      36  -
uses_memo  deleted  -      -         17      66  -
b          value    -      -          7     103  -
c          deleted  -      -          7     130  -
c          value    -      -          7     157  -
array      deleted  int64  (4,)      32     267  no
array      array    int64  (4,)      32     416  no
after      value    -      -         16     486  -
"
    );
    assert_eq!(
        ok(&["info", "deleted.mmdpickle"], &dir),
        "\
file:               deleted.mmdpickle
format version:     1
commit number:      11
live entries:       5
deleted entries:    3
padding entries:    0
reclaimable bytes:  221 (an upper bound: vacuum may re-pad)
file size:          521
"
    );
    // The JSON forms carry the same facts.
    let info = json_of(&ok(&["info", "--json", "deleted.mmdpickle"], &dir));
    let manifest = manifest();
    let deleted = &manifest["files"]["deleted.mmdpickle"];
    assert_eq!(info["commit_number"], deleted["commit_number"]);
    assert_eq!(
        info["live_entries"].as_u64(),
        deleted["entries"].as_array().map(|e| e.len() as u64)
    );
    assert_eq!(
        info["file_size"].as_u64(),
        std::fs::metadata(fixture("deleted.mmdpickle"))
            .ok()
            .map(|m| m.len())
    );
    let rows = json_of(&ok(&["ls", "--json", "--all", "arrays.mmdpickle"], &dir));
    let fortran = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["key"] == "fortran"))
        .expect("a fortran row");
    assert_eq!(fortran["kind"], "array");
    assert_eq!(fortran["dtype"], "float64");
    assert_eq!(fortran["shape"], serde_json::json!([3, 4]));
    assert_eq!(fortran["bytes"], 96);
}

// Readable values: Python's repr for generic values, summaries for arrays.
#[test]
fn get_prints_python_like_values() {
    let dir = fixture("");
    let get = |file: &str, key: &str| ok(&["get", file, key], &dir);
    assert_eq!(
        get("generic.mmdpickle", "dict_nested"),
        "{'a': {'b': {'c': [1, 2, {'d': None}]}}, 1: 'int key', (1, 2): 'tuple key'}\n"
    );
    assert_eq!(get("generic.mmdpickle", "float_big"), "1e+300\n");
    assert_eq!(
        get("generic.mmdpickle", "complex"),
        "builtins.complex(1.5, -2.0)\n"
    );
    assert_eq!(
        get("arrays.mmdpickle", "big_endian_i4"),
        "array(dtype=>i4, shape=(5,), [-2, -1, 0, 1, 2])\n"
    );
    assert!(get("arrays.mmdpickle", "dim_bigger_than_65535")
        .starts_with("array(dtype=uint8, shape=(65536,), ["));
    assert!(get("masked.mmdpickle", "masked").starts_with("masked_array(dtype=float64, shape=(4,)"));
    let dump = ok(&["dump", "keys.mmdpickle"], &dir);
    assert!(dump.contains("    '🎉': 5,\n"), "{dump}");
}

// The annotated disassembly names every entry, and the opcodes of its value.
#[test]
fn dis_lists_entries_then_opcodes() {
    let dir = fixture("");
    let listing = ok(&["dis", "deleted.mmdpickle"], &dir);
    assert!(listing
        .starts_with("         0: header: PROTO 4, FRAME 13, format version 1, commit number 11"));
    for (key, state) in [
        ("'a' (live)", 1),
        ("'uses_memo' (deleted)", 1),
        ("'c' (deleted)", 1),
        ("'c' (live)", 1),
    ] {
        assert_eq!(listing.matches(key).count(), state, "{key} in\n{listing}");
    }
    assert!(listing.contains("SHORT_BINUNICODE \"numpy.core.fromnumeric\""));
    // Array entries say where their raw data is (the fixture's manifest agrees
    // with `ls`, whose offsets are checked above).
    assert!(
        listing.contains("= array int64 (4,): 32 raw bytes at 416, not 64-aligned"),
        "{listing}"
    );
    assert!(listing
        .trim_end()
        .ends_with("terminator: FRAME 2, DICT, STOP"));
    // Every value opcode line is at a file offset inside the file.
    let file_len = std::fs::metadata(fixture("deleted.mmdpickle"))
        .map(|m| m.len())
        .unwrap_or(0);
    for line in listing.lines() {
        if let Some((offset, _)) = line.split_once(':') {
            if let Ok(offset) = offset.trim().parse::<u64>() {
                assert!(offset < file_len, "{line}");
            }
        }
    }
}

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

// set stores what JSON describes; get and Python mmappickle read it back.
#[test]
fn set_then_read_back_here_and_in_python() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let value = r#"{"name": "x", "n": [1, 2.5, {"int": "-99999999999999999999"}],
        "t": {"tuple": [true, null]}, "b": {"bytes": "AAEC"},
        "d": {"dict": [[{"tuple": [1, 2]}, {"set": [3]}]]}, "f": {"float": "-inf"}}"#;
    ok(&["set", "new.mmdpickle", "k", "--json", value], dir.path());
    ok(
        &["set", "new.mmdpickle", "s", "--json", "\"text\""],
        dir.path(),
    );
    // An object node becomes the call Python makes when it loads it.
    let ordered_dict = r#"{"object": {"callable": {"global": ["collections", "OrderedDict"]},
        "args": [], "dictitems": [["z", 1], ["a", 2]]}}"#;
    ok(
        &["set", "new.mmdpickle", "od", "--json", ordered_dict],
        dir.path(),
    );
    // Replacing a key keeps one live entry.
    ok(
        &["set", "new.mmdpickle", "s", "--json", "\"again\""],
        dir.path(),
    );
    let got = json_of(&ok(&["get", "--json", "new.mmdpickle", "k"], dir.path()));
    // Plain objects come back in the general dict form.
    let expected = json_of(
        r#"{"dict": [["name", "x"], ["n", [1, 2.5, {"int": "-99999999999999999999"}]],
        ["t", {"tuple": [true, null]}], ["b", {"bytes": "AAEC"}],
        ["d", {"dict": [[{"tuple": [1, 2]}, {"set": [3]}]]}], ["f", {"float": "-inf"}]]}"#,
    );
    assert_eq!(got, expected);
    let printed = run_python(
        &python_mmappickle(),
        dir.path(),
        "from mmappickle import mmapdict\n\
         m = mmapdict('new.mmdpickle', True)\n\
         print(sorted(m.keys()), m['s'], repr(m['od']))\n\
         print(m['k'])\n",
    );
    assert_eq!(
        printed,
        "['k', 'od', 's'] again OrderedDict([('z', 1), ('a', 2)])\n{'name': 'x', 'n': [1, 2.5, -99999999999999999999], 't': (True, None), \
         'b': b'\\x00\\x01\\x02', 'd': {(1, 2): {3}}, 'f': -inf}\n"
    );
    // `--json -` reads the value from stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
        .args(["set", "new.mmdpickle", "from_stdin", "--json", "-"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(b"{\"tuple\": [1e-7]}")
            .expect("write stdin");
    }
    assert!(child.wait().expect("it ends").success());
    assert_eq!(
        ok(&["get", "new.mmdpickle", "from_stdin"], dir.path()),
        "(1e-07,)\n"
    );
    ok(&["rm", "new.mmdpickle", "from_stdin"], dir.path());
    // A value starting with `-` is a value, not a flag.
    for (json, printed) in [("-7", "-7\n"), ("-2.5e3", "-2500.0\n")] {
        ok(
            &["set", "new.mmdpickle", "negative", "--json", json],
            dir.path(),
        );
        assert_eq!(
            ok(&["get", "new.mmdpickle", "negative"], dir.path()),
            printed
        );
    }
    ok(&["rm", "new.mmdpickle", "negative"], dir.path());
    // rm, then the key is gone and a second rm fails.
    ok(&["rm", "new.mmdpickle", "s"], dir.path());
    let err = fails(&["rm", "new.mmdpickle", "s"], dir.path(), 1);
    assert!(err.contains("no key \"s\""), "{err}");
    let n_keys = || {
        json_of(&ok(&["ls", "--json", "new.mmdpickle"], dir.path()))
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(n_keys(), Some(2));
    // Several keys go in one batch: a missing one fails it, and none is deleted.
    let err = fails(
        &["rm", "new.mmdpickle", "k", "missing", "od"],
        dir.path(),
        1,
    );
    assert!(err.contains("no key \"missing\""), "{err}");
    assert_eq!(n_keys(), Some(2));
    ok(&["rm", "new.mmdpickle", "k", "od"], dir.path());
    assert_eq!(n_keys(), Some(0));
}

// Stubs, vacuum, fsck and convert change the file as they say.
#[test]
fn stub_vacuum_fsck_convert() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path();
    ok(
        &[
            "stub",
            "f.mmdpickle",
            "big",
            "--dtype",
            "float32",
            "--shape",
            "200,300,400",
        ],
        path,
    );
    ok(&["set", "f.mmdpickle", "small", "--json", "[1]"], path);
    let rows = json_of(&ok(&["ls", "--json", "f.mmdpickle"], path));
    assert_eq!(rows[0]["shape"], serde_json::json!([200, 300, 400]));
    assert_eq!(rows[0]["bytes"], 200 * 300 * 400 * 4);
    assert_eq!(rows[0]["aligned"], true);
    assert!(
        ok(&["get", "f.mmdpickle", "big"], path).contains("[0.0, 0.0, 0.0, ..., 0.0, 0.0, 0.0]")
    );
    // Vacuum gives the stub's space back once it is deleted.
    ok(&["rm", "f.mmdpickle", "big"], path);
    let report = ok(&["vacuum", "f.mmdpickle"], path);
    assert!(report.contains("removed"), "{report}");
    let size = std::fs::metadata(path.join("f.mmdpickle"))
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    assert!(size < 1000, "vacuumed to {size} bytes");
    // A torn last entry is cut by fsck; the complete ones survive.
    ok(
        &[
            "set",
            "f.mmdpickle",
            "tail",
            "--json",
            "\"some text to tear\"",
        ],
        path,
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path.join("f.mmdpickle"))
        .expect("open");
    file.set_len(size + 20).expect("truncate");
    drop(file);
    let listed = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
        .args(["ls", "f.mmdpickle"])
        .current_dir(path)
        .output()
        .expect("run ls");
    assert!(listed.status.success());
    let warning = String::from_utf8_lossy(&listed.stderr);
    assert!(warning.contains("torn at byte offset"), "{warning}");
    assert!(warning.contains("mmappickle fsck"), "{warning}");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("tail"));
    let report = ok(&["fsck", "f.mmdpickle"], path);
    assert!(report.contains("repaired"), "{report}");
    assert_eq!(ok(&["get", "f.mmdpickle", "small"], path), "[1]\n");
    assert!(ok(&["fsck", "f.mmdpickle"], path).contains("clean"));
    // convert: a plain pickle of a dict, with a numpy array that becomes mapped.
    run_python(
        &python_mmappickle(),
        path,
        "import pickle, numpy as np\n\
         pickle.dump({'a': 1, 'arr': np.arange(6.0).reshape(2, 3)}, open('plain.pkl', 'wb'), protocol=5)\n",
    );
    ok(&["convert", "plain.pkl", "out.mmdpickle"], path);
    let rows = json_of(&ok(&["ls", "--json", "out.mmdpickle"], path));
    assert_eq!(rows[1]["kind"], "array");
    assert_eq!(ok(&["get", "out.mmdpickle", "a"], path), "1\n");
    let err = fails(&["convert", "plain.pkl", "out.mmdpickle"], path, 1);
    assert!(err.contains("exists"), "{err}");
    ok(&["convert", "plain.pkl"], path);
    assert!(ok(&["convert", "plain.pkl"], path).contains("already"));
}

// .npy and .npz files made by numpy go in and come out unchanged, in both encodings.
#[test]
fn npy_and_npz_round_trip_through_numpy() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path();
    let cases = [
        "c_order",
        "fortran",
        "big_endian",
        "unicode",
        "zero_d",
        "empty",
        "v2",
        "v3",
        "bools",
    ];
    run_python(
        &python_numpy2(),
        path,
        "import numpy as np\n\
         f = np.lib.format\n\
         np.save('c_order.npy', np.arange(24, dtype='<f4').reshape(2, 3, 4))\n\
         np.save('fortran.npy', np.asfortranarray(np.arange(60, dtype='>i8').reshape(3, 4, 5)))\n\
         np.save('big_endian.npy', np.arange(5, dtype='>f8'))\n\
         np.save('unicode.npy', np.array(['ab', 'cdé', ''], dtype='<U3'))\n\
         np.save('zero_d.npy', np.float64(3.5))\n\
         np.save('empty.npy', np.zeros((0, 3), dtype='u2'))\n\
         f.write_array(open('v2.npy', 'wb'), np.arange(7, dtype='i2'), version=(2, 0))\n\
         f.write_array(open('v3.npy', 'wb'), np.arange(9, dtype='c8').reshape(3, 3), version=(3, 0))\n\
         np.save('bools.npy', np.array([[True, False], [False, True]]))\n\
         np.savez_compressed('archive.npz', x=np.arange(10), y=np.asfortranarray(np.ones((3, 2), dtype='c16')))\n",
    );
    for encoding in ["compatible", "portable"] {
        let file = format!("{encoding}.mmdpickle");
        for case in cases {
            ok(
                &[
                    "--encoding",
                    encoding,
                    "import-npy",
                    &file,
                    case,
                    &format!("{case}.npy"),
                ],
                path,
            );
        }
        let imported = ok(
            &["--encoding", encoding, "import-npz", &file, "archive.npz"],
            path,
        );
        assert!(
            imported.contains("imported \"y\": complex128 (3, 2)"),
            "{imported}"
        );
        for key in cases.iter().chain(&["x", "y"]) {
            ok(
                &["export-npy", &file, key, &format!("{encoding}_{key}.npy")],
                path,
            );
        }
        // What we export is byte for byte what numpy 2 saves, for C-ordered
        // arrays numpy writes as version 1.0.
        for case in [
            "c_order",
            "big_endian",
            "unicode",
            "zero_d",
            "empty",
            "bools",
        ] {
            let ours = std::fs::read(path.join(format!("{encoding}_{case}.npy"))).expect("ours");
            let numpy = std::fs::read(path.join(format!("{case}.npy"))).expect("numpy's");
            assert!(
                ours == numpy,
                "{encoding} {case}: exported bytes differ from numpy's"
            );
        }
        // Every written array is aligned for as_slice.
        let rows = json_of(&ok(&["ls", "--json", &file], path));
        assert!(rows
            .as_array()
            .is_some_and(|rows| rows.iter().all(|row| row["aligned"] == true)));
    }
    let checked = run_python(
        &python_numpy2(),
        path,
        "import numpy as np, pickle, warnings\n\
         warnings.simplefilter('error')\n\
         z = np.load('archive.npz')\n\
         for enc in ['compatible', 'portable']:\n\
         \x20   for key in ['c_order', 'fortran', 'big_endian', 'unicode', 'zero_d', 'empty', 'v2', 'v3', 'bools', 'x', 'y']:\n\
         \x20       a = z[key] if key in ('x', 'y') else np.load(key + '.npy')\n\
         \x20       b = np.load('%s_%s.npy' % (enc, key))\n\
         \x20       assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), (enc, key)\n\
         d = pickle.load(open('portable.mmdpickle', 'rb'))\n\
         assert (d['fortran'] == np.load('fortran.npy')).all() and d['fortran'].flags.writeable\n\
         print('ok', len(d))\n",
    );
    assert_eq!(checked, "ok 11\n");
    // Python mmappickle maps the compatible arrays.
    let mapped = run_python(
        &python_mmappickle(),
        path,
        "from mmappickle import mmapdict\n\
         m = mmapdict('compatible.mmdpickle', True)\n\
         print(type(m['c_order']).__name__, m['fortran'][2, 3, 4], m['unicode'][1])\n",
    );
    assert_eq!(mapped, "memmap 59 cdé\n");
}

// Failures: exit 1 with one clear line; usage errors: exit 2.
#[test]
fn errors_have_exit_codes_and_one_line() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path();
    let err = fails(&["ls", "missing.mmdpickle"], path, 1);
    assert_eq!(err, "mmappickle: error: missing.mmdpickle: no such file\n");
    // Neither an mmappickle file nor a pickle: dis lists what it can, then fails.
    std::fs::write(path.join("text.txt"), b"hello").expect("write");
    let output = mmappickle(&["dis", "text.txt"], path);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid pickle"));
    let err = fails(&["unpickle", "text.txt"], path, 1);
    assert!(
        err.contains("text.txt") && err.contains("byte offset"),
        "{err}"
    );
    let err = fails(
        &[
            "get",
            &fixture("generic.mmdpickle").to_string_lossy(),
            "nope",
        ],
        path,
        1,
    );
    assert!(err.contains("no key \"nope\""), "{err}");
    std::fs::write(
        path.join("garbage.mmdpickle"),
        b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00Jxxxx",
    )
    .expect("write");
    let err = fails(&["info", "garbage.mmdpickle"], path, 1);
    assert!(err.contains("byte offset"), "{err}");
    let err = fails(&["set", "s.mmdpickle", "k", "--json", "{oops"], path, 1);
    assert!(err.contains("not valid JSON"), "{err}");
    let err = fails(
        &["set", "s.mmdpickle", "k", "--json", r#"{"bytes": "%%"}"#],
        path,
        1,
    );
    assert!(err.contains("$.bytes") && err.contains("base64"), "{err}");
    let err = fails(
        &["set", "s.mmdpickle", &"k".repeat(256), "--json", "1"],
        path,
        1,
    );
    assert!(err.contains("255") || err.contains("long"), "{err}");
    std::fs::write(
        path.join("bad.npy"),
        b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'",
    )
    .expect("write");
    let err = fails(&["import-npy", "s.mmdpickle", "k", "bad.npy"], path, 1);
    assert!(
        err.contains("bad.npy") && err.contains("byte offset"),
        "{err}"
    );
    let err = fails(
        &[
            "stub",
            "s.mmdpickle",
            "k",
            "--dtype",
            "float7",
            "--shape",
            "2",
        ],
        path,
        1,
    );
    assert!(err.contains("float7"), "{err}");
    let err = fails(
        &[
            "export-npy",
            &fixture("generic.mmdpickle").to_string_lossy(),
            "str",
            "o.npy",
        ],
        path,
        1,
    );
    assert!(err.contains("not an array"), "{err}");
    // Usage errors.
    fails(&["frobnicate"], path, 2);
    fails(&["get", "only-a-file"], path, 2);
    fails(&["--encoding", "fancy", "ls", "x"], path, 2);
    fails(&["stub", "s.mmdpickle", "k", "--shape", "3,x"], path, 2);
    fails(&["stub", "s.mmdpickle", "k"], path, 2);
}

// Indenting every level would print each of the 65,536 leaves of this 70-byte
// pickle after some 1,000 spaces (680 MB in all); the JSON output stops indenting
// past 16 levels and stays small.
#[test]
fn a_deep_and_wide_pickle_prints_in_bounded_space() {
    let dir = tempfile::tempdir().unwrap();
    let mut pickle = b"\x80\x04N".to_vec();
    for _ in 0..16 {
        pickle.extend_from_slice(b"2\x86"); // DUP TUPLE2: twice as many leaves
    }
    pickle.extend(std::iter::repeat_n(0x85u8, 500)); // TUPLE1: one level deeper
    pickle.push(b'.');
    std::fs::write(dir.path().join("deep.pickle"), &pickle).unwrap();
    let json = ok(&["unpickle", "deep.pickle", "--json"], dir.path());
    assert!(json.len() < 4 << 20, "{} bytes of JSON", json.len());
    assert_eq!(json.matches("null").count(), 1 << 16);
    let repr = ok(&["unpickle", "deep.pickle"], dir.path());
    assert_eq!(repr.matches("None").count(), 1 << 16);
}

/// The binary's exit code, stdout and stderr for `args` with `file` last but one (or last).
fn run_on(args: &[&str], file: &str, dir: &Path) -> (Option<i32>, String, String) {
    let mut full: Vec<&str> = vec![args[0], file];
    full.extend_from_slice(&args[1..]);
    let output = mmappickle(&full, dir);
    (
        output.status.code(),
        String::from_utf8(output.stdout).expect("UTF-8 output"),
        String::from_utf8(output.stderr).expect("UTF-8 errors"),
    )
}

#[test]
fn read_commands_on_urls_print_what_they_print_locally() {
    let nginx = remote_support::Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = std::fs::read_dir(workspace_root().join("tests/fixtures"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".mmdpickle"))
        .collect();
    assert!(names.len() >= 10);
    for name in &names {
        let local = fixture(name);
        std::fs::copy(&local, nginx.root().join(name)).unwrap();
        let local = local.to_str().unwrap();
        let keys = json_of(&ok(&["ls", "--all", "--json", local], dir.path()));
        let mut commands: Vec<Vec<&str>> = vec![
            vec!["ls"],
            vec!["ls", "--all"],
            vec!["ls", "--all", "--json"],
            vec!["info"],
            vec!["info", "--json"],
            vec!["dump"],
            vec!["dump", "--json"],
            vec!["dis"],
            vec!["get", "no such key"],
        ];
        for row in keys.as_array().unwrap() {
            let key = row["key"].as_str().unwrap();
            commands.push(vec!["get", key]);
            commands.push(vec!["get", key, "--json"]);
        }
        // `file://` takes the same path past the store (the remote crate reads every
        // fixture through it): one fixture is enough here.
        let mut urls = vec![nginx.url(name)];
        if name == "masked.mmdpickle" {
            urls.push(format!("file://{local}"));
        }
        for url in urls {
            for command in &commands {
                let (code, stdout, stderr) = run_on(command, local, dir.path());
                let remote = run_on(command, &url, dir.path());
                // The file is named as it was given.
                let expected = (
                    code,
                    stdout.replace(local, &url),
                    stderr.replace(local, &url),
                );
                assert_eq!(remote, expected, "{command:?} {url}");
            }
        }
        for row in keys.as_array().unwrap() {
            let key = row["key"].as_str().unwrap();
            for mask in [&[][..], &["--mask"]] {
                let npy = |file: &str, out: &str| {
                    let args = [&["export-npy", file, key, out][..], mask].concat();
                    let output = mmappickle(&args, dir.path());
                    (
                        output.status.code(),
                        std::fs::read(dir.path().join(out)).ok(),
                    )
                };
                let url = nginx.url(name);
                assert_eq!(
                    npy(&url, "remote.npy"),
                    npy(local, "local.npy"),
                    "{name} {key}"
                );
                let _ = std::fs::remove_file(dir.path().join("remote.npy"));
                let _ = std::fs::remove_file(dir.path().join("local.npy"));
            }
        }
    }
}

#[test]
fn ls_over_http_reads_the_table_not_the_arrays() {
    let nginx = remote_support::Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let path = nginx.root().join("big.mmdpickle");
    let path_text = path.to_str().unwrap();
    ok(&["set", path_text, "before", "--json", "1"], dir.path());
    ok(
        &[
            "stub",
            path_text,
            "big",
            "--dtype",
            "float64",
            "--shape",
            "4096,2048",
        ],
        dir.path(),
    );
    ok(&["set", path_text, "after", "--json", "2"], dir.path());
    let url = nginx.url("big.mmdpickle");
    let listed = ok(&["ls", &url], dir.path());
    assert_eq!(listed, ok(&["ls", path_text], dir.path()));
    let received: u64 = nginx.accesses().iter().map(|access| access.bytes).sum();
    // 64 MiB of array, a block or two of table.
    assert!(received <= 2 << 20, "{received} bytes for ls");
    assert_eq!(ok(&["get", &url, "after"], dir.path()), "2\n");
    let unreachable = "http://127.0.0.1:9/none.mmdpickle";
    let error = fails(&["ls", unreachable], dir.path(), 1);
    assert!(error.contains(unreachable), "{error}");
    let error = fails(&["ls", "s3a://"], dir.path(), 1);
    assert!(error.contains("cannot open"), "{error}");
}

// `dump` and `dis` read under the lock and print after releasing it: a reader whose output
// is not read (a paused pager) does not hold a writer off. The reader's first output byte is
// read (so it is printing), then a writer must finish while its output sits in a full pipe.
#[test]
fn paused_readers_do_not_hold_writers_off() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let mut m = mmappickle::MmapDict::open(path.join("big.mmdpickle")).expect("open");
    let mut transaction = m.transaction().expect("transaction");
    for idx in 0..4000 {
        let text = format!("a string long enough to fill the output pipe, number {idx}");
        transaction
            .insert(&format!("key{idx}"), text)
            .expect("insert");
    }
    transaction.commit().expect("commit");
    drop(m);
    for command in ["dump", "dis"] {
        let mut reader = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
            .args([command, "big.mmdpickle"])
            .current_dir(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut first = [0u8; 1];
        let mut stdout = reader.stdout.take().expect("piped");
        stdout.read_exact(&mut first).expect("the reader prints");
        let mut writer = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
            .args(["set", "big.mmdpickle", "during", "--json", "1"])
            .current_dir(path)
            .spawn()
            .expect("the binary runs");
        // Generous: a writer held off by the reader would wait forever.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = writer.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{command}: the writer is held off"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{command}");
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).expect("read");
        assert!(reader.wait().expect("wait").success());
        assert!(rest.len() > 64 << 10, "{command}: {} bytes", rest.len());
    }
}
