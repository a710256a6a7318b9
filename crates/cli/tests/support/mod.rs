//! What the CLI's test binaries (`cli/`, `show.rs`) share: the Python interpreters, found as
//! the conformance crate finds them (a missing one stops the binary with one line).

use std::path::{Path, PathBuf};

#[path = "../../../../tests/src/prerequisites.rs"]
mod prerequisites;

/// The Python of `variable`, or that of the environment `venv` under `target/`.
pub fn python(variable: &str, venv: &str) -> PathBuf {
    prerequisites::python(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
        variable,
        venv,
    )
}

/// Python with `mmappickle==1.0` and numpy 1.23.5.
pub fn python_mmappickle() -> PathBuf {
    python("MMAPPICKLE_PYTHON", "py-mmappickle")
}
