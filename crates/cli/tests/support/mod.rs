//! What the CLI's test binaries (`cli/`, `show.rs`) share: the Python interpreters, and one
//! line instead of a panic per test when one is missing.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The Python of `variable`, or that of the virtual environment `venv` that `cargo xtask venv`
/// makes under `target/`; the test binary stops with one line when it is not there.
pub fn python(variable: &str, venv: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        if !path.exists() {
            stop_missing(&format!(
                "{variable}={}: no such interpreter: unset it and run `cargo xtask venv`",
                path.display()
            ));
        }
        return path;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(venv)
        .join("bin/python");
    if !path.exists() {
        stop_missing(&format!(
            "missing target/{venv}: run `cargo xtask venv` (or `cargo xtask test`, which makes it)"
        ));
    }
    path
}

/// Python with `mmappickle==1.0` and numpy 1.23.5.
pub fn python_mmappickle() -> PathBuf {
    python("MMAPPICKLE_PYTHON", "py-mmappickle")
}

/// Ends the test binary with `message`: a panic in every test that needs what is missing
/// would bury the one thing to do.
fn stop_missing(message: &str) -> ! {
    static STOPPING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // Other tests stopping at once wait here while the first one exits.
    let _first = STOPPING.lock();
    // Straight to the file: the harness captures what a test prints with `eprintln!`.
    let _ = writeln!(std::io::stderr(), "{message}");
    std::process::exit(1)
}
