//! The Python-made fixtures read by `dump --json`, `get`, `ls`, `info` and `dis`.

use serde_json::Value as Json;

use crate::{fixture, json_of, manifest, native_builtins, ok, printed_manifest};

// Every fixture dumps to exactly its manifest entries, in file order (dates as ISO 8601).
#[test]
fn dump_json_of_every_fixture_equals_the_manifest() {
    let manifest = printed_manifest();
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
    let manifest = printed_manifest();
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
    assert_eq!(get("generic.mmdpickle", "complex"), "(1.5-2j)\n");
    assert_eq!(
        get("generic.mmdpickle", "datetime"),
        "datetime.datetime(2021, 3, 4, 5, 6, 7, 890123)\n"
    );
    assert_eq!(
        get("generic.mmdpickle", "ordered_dict"),
        "OrderedDict([('z', 1), ('a', 2)])\n"
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
