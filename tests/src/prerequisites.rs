//! What the tests need from outside the workspace (the Python environments under `target/`):
//! found, or named in one line with the command that makes it. The CLI's test binaries,
//! which do not depend on this crate, compile this file too (`crates/cli/tests/support`).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The Python of `variable`, or that of the virtual environment `venv` that
/// `cargo xtask venv` makes under `root/target/`; the test binary stops with one line
/// ([`stop_missing`]) when it is not there.
pub fn python(root: &Path, variable: &str, venv: &str) -> PathBuf {
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
    let path = root.join("target").join(venv).join("bin").join("python");
    if !path.exists() {
        stop_missing(&format!(
            "missing target/{venv}: run `cargo xtask venv` (or `cargo xtask test`, which makes it)"
        ));
    }
    path
}

/// Ends the test binary with one line saying what is missing and which command prepares it:
/// a panic in every test that needs it would bury that line under their reports.
pub fn stop_missing(message: &str) -> ! {
    static STOPPING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // Other tests stopping at once wait here while the first one exits.
    let _first = STOPPING.lock();
    // Straight to the file: the harness captures what a test prints with `eprintln!`.
    let _ = writeln!(std::io::stderr(), "{message}");
    std::process::exit(1)
}
