//! Cross-language conformance: helpers shared by the test files under `tests/tests/`.
//!
//! Python is found through environment variables that `cargo xtask test` sets,
//! falling back to the virtual environments that `cargo xtask venv` creates
//! under `target/`:
//!
//! | variable | environment | what it has |
//! |---|---|---|
//! | `MMAPPICKLE_PYTHON` | `target/py-mmappickle` | `mmappickle==1.0`, `numpy==1.23.5` |
//! | `MMAPPICKLE_PYTHON_NUMPY2` | `target/py-numpy2` | the newest numpy 2.x |

#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the conformance crate lives one level below the workspace root")
        .to_path_buf()
}

/// `tests/fixtures/`: the Python-made fixture files and their manifest.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures")
}

fn python_from(variable: &str, venv: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let fallback = workspace_root()
        .join("target")
        .join(venv)
        .join("bin")
        .join("python");
    assert!(
        fallback.exists(),
        "no Python environment: set {variable} or run `cargo xtask venv` (expected {})",
        fallback.display()
    );
    fallback
}

/// The Python interpreter with `mmappickle==1.0` and `numpy==1.23.5`.
pub fn python_mmappickle() -> PathBuf {
    python_from("MMAPPICKLE_PYTHON", "py-mmappickle")
}

/// The Python interpreter with the newest numpy 2.x (no mmappickle).
pub fn python_numpy2() -> PathBuf {
    python_from("MMAPPICKLE_PYTHON_NUMPY2", "py-numpy2")
}

/// Runs `script` with `python` and the given arguments; panics with Python's
/// output when it exits non-zero, returns its standard output otherwise.
pub fn run_python(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "Python failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
