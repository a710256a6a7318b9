//! Exit codes and one-line errors, and output bounded on a hostile pickle.

use crate::{fails, fixture, mmappickle, ok};

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
