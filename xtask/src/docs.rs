//! `cargo xtask docs`: the Python package's documentation site (Sphinx, `crates/python/docs`)
//! into `target/docs/python`, warnings as errors. [`check`] builds it again and runs every
//! example in it with Sphinx's doctest builder (`cargo xtask test`).
//!
//! Sphinx runs in the package's numpy 2 test environment (`target/py-ours-numpy2`: numpy and
//! dask for the examples, Sphinx and MyST from pip) with the package's wheel installed:
//! autodoc documents the real package, and the examples run it.
//! The command-line examples run the `mmappickle` binary of the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::venv;
use crate::{cargo, parse_flags, pypackage, run, workspace_root, Result};

pub const USAGE: &str = "docs                the Python package's documentation site (Sphinx, warnings as errors) into target/docs/python";

/// Where the console examples find the command-line tool (`docs/_ext/console_doctest.py`).
const CLI_VARIABLE: &str = "MMAPPICKLE_CLI";

pub fn main(args: &[String]) -> Result {
    parse_flags(args, &[])?;
    let wheel = pypackage::build_wheel(&venv::ensure(&venv::BUILD)?)?;
    let python = docs_python(&wheel)?;
    let out_dir = sphinx(&python, "html", None)?;
    println!("\nthe site: {}", out_dir.join("index.html").display());
    Ok(())
}

/// Builds the site (warnings as errors) and runs its examples, with `python`, the docs
/// environment's interpreter, the wheel installed there (`pypackage::test`), and the
/// command-line examples run by `cli`.
pub fn check(python: &Path, cli: &Path) -> Result {
    sphinx(python, "html", None)?;
    sphinx(python, "doctest", Some(cli)).map(|_| ())
}

/// The `mmappickle` binary that `cargo test --workspace` built (the CLI's tests run it): a
/// `cargo build -p mmappickle-cli` would build its dependencies again without the features
/// the workspace's tests turn on.
pub fn cli_built_by_tests() -> Result<PathBuf> {
    let cli = workspace_root().join("target/debug/mmappickle");
    if cli.exists() {
        Ok(cli)
    } else {
        Err(format!("{} is missing after the tests", cli.display()))
    }
}

/// Builds the `mmappickle` binary (for `cargo xtask test --python`, which runs no Rust tests).
pub fn build_cli() -> Result<PathBuf> {
    run(cargo().args([
        "build",
        "--quiet",
        "-p",
        "mmappickle-cli",
        "--bin",
        "mmappickle",
    ]))?;
    cli_built_by_tests()
}

/// The docs environment's interpreter, `wheel` installed in it.
fn docs_python(wheel: &Path) -> Result<PathBuf> {
    let python = venv::ensure(&venv::OURS_NUMPY2)?;
    pypackage::install_wheel(&python, wheel)?;
    Ok(python)
}

/// Runs one Sphinx builder over the whole site, from a fresh environment (autodoc reads the
/// installed wheel, which Sphinx does not watch), warnings as errors; returns its output
/// directory.
fn sphinx(python: &Path, builder: &str, cli: Option<&Path>) -> Result<PathBuf> {
    let out_dir = workspace_root().join(match builder {
        "html" => "target/docs/python".to_owned(),
        other => format!("target/docs/python-{other}"),
    });
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            builder,
        ])
        .arg(Path::new(pypackage::PACKAGE_DIR).join("docs"))
        .arg(&out_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if let Some(cli) = cli {
        command.env(CLI_VARIABLE, cli);
    }
    run(&mut command)?;
    Ok(out_dir)
}
