//! The `mmappickle` binary, run as a user would: one module per kind of case, the helpers here.
//!
//! Index of cases:
//! - `fixtures`: `dump --json` of every Python-made fixture equals its manifest;
//!   golden `ls`, `ls --all`, `info` and `get` output on fixtures;
//!   `dis` lists every entry with its key and live flag.
//! - `unpickle`: `unpickle --json` of plain pickles of protocols 0 to 5 made by CPython, and
//!   of numpy arrays pickled by numpy 1.x and 2.x (digests computed by numpy).
//! - `known_forms`: numpy scalars of every dtype written by numpy 1.23.5 (Python mmappickle)
//!   and numpy 2 (plain pickles of protocols 0, 2, 4, and `convert`ed), `datetime`, `Decimal`,
//!   `complex`, `OrderedDict` and dtypes: `get`, `dump`, `unpickle` print Python's `repr()`
//!   (numpy 2's), their JSON is the plain value; malformed ones stay calls.
//! - `editing`: `set` then `get --json` and Python `mmappickle` read the value;
//!   `rm`, `stub`, `vacuum`, `fsck` of a torn file, `convert`; a paused reader does not hold
//!   a writer off.
//! - `arrays`: `.npy` (versions 1 to 3, Fortran order, big-endian, unicode,
//!   0-d, empty) and `.npz` made by numpy, imported, exported, compared by
//!   numpy; the portable encoding loads with plain `pickle.load` on numpy 2.
//! - `errors`: exit code 1 with one line on stderr (byte offsets for format
//!   errors), exit code 2 for usage errors; a small hostile pickle (wide and 500 levels
//!   deep) prints in bounded space.
//! - `urls`: the read commands on every fixture served by nginx (and on `file://` URLs) print
//!   what they print for the local file, errors included; `ls` over HTTP does not fetch
//!   array payloads.

mod arrays;
mod editing;
mod errors;
mod fixtures;
mod known_forms;
mod unpickle;
mod urls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

// The Python interpreters, shared with show.rs.
#[path = "../support/mod.rs"]
mod support;
use support::{python, python_mmappickle};

// The servers the remote crate's tests start (this binary uses nginx only). They stop on a
// missing prerequisite as `support` does, with their own copy of its module.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../remote/tests/support/mod.rs"]
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

/// Python with numpy 2.x.
fn python_numpy2() -> PathBuf {
    python("MMAPPICKLE_PYTHON_NUMPY2", "py-numpy2")
}

/// Runs `script` in `dir` with `python`; its stdout, or a panic with its stderr.
fn run_python(python: &Path, dir: &Path, script: &str) -> String {
    run_python_with(python, dir, &["-c", script])
}

/// Runs `python` with `args` in `dir`; its stdout, or a panic with its stderr.
fn run_python_with(python: &Path, dir: &Path, args: &[&str]) -> String {
    let output = Command::new(python)
        .args(args)
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

/// The manifest as the JSON output shows its values: dates and datetimes (described as the
/// calls that pickle them) as Python's `isoformat()` of them.
fn printed_manifest() -> Json {
    let manifest = fixture("manifest.json");
    let args = ["printed-manifest", manifest.to_str().expect("a UTF-8 path")];
    json_of(&known_forms::run_script(
        &python_numpy2(),
        &fixture(""),
        &args,
    ))
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
