//! The Python package of `crates/python`: its wheel, built by maturin (from pip, in
//! `target/py-build`), installed into one environment per numpy version, and its pytest suite
//! run in each (`cargo xtask test` calls [`test()`]; `cargo xtask bench` installs the wheel).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::venv::{self, PackagePythons, Pythons};
use crate::{run, wheel, workspace_root, Result};

pub const PACKAGE_DIR: &str = "crates/python";

/// Builds the release wheel into `target/wheels/mmappickle-rs/` and returns its path: the
/// wheel users get (`xtask/src/wheel.rs`: abi3, manylinux_2_17).
pub fn build_wheel(build_python: &Path) -> Result<PathBuf> {
    let out_dir = workspace_root().join("target/wheels/mmappickle-rs");
    // One wheel in the directory: the one built now (the sdist beside it stays).
    wheel::remove_files_ending(&out_dir, ".whl")?;
    run(wheel::maturin(build_python, "build")?
        .args(["--release", "--quiet"])
        .args(wheel::MANYLINUX_OPTIONS)
        .arg("-o")
        .arg(&out_dir))?;
    match wheel::files_ending(&out_dir, ".whl")?.as_slice() {
        [built] => wheel::check_tags(built).map(|()| built.clone()),
        wheels => Err(format!(
            "expected one wheel in {}, found {wheels:?}",
            out_dir.display()
        )),
    }
}

/// Installs `wheel` (replacing any earlier build) into the environment of `python`.
pub fn install_wheel(python: &Path, wheel: &Path) -> Result {
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--force-reinstall", "--no-deps"])
        .arg(wheel))
}

/// Environments, ruff, `mypy --strict` (the package and its typed example, as configured in
/// its pyproject), the wheel, pytest on numpy 1.23.5 and 2.x, and the wheel in a fresh
/// environment without a Rust toolchain; returns the wheel.
pub fn test(library_pythons: &Pythons) -> Result<PathBuf> {
    let PackagePythons { build, tests } = venv::ensure_package()?;
    let sources =
        ["python", "tests", "examples", "docs"].map(|dir| Path::new(PACKAGE_DIR).join(dir));
    run(Command::new(&build)
        .args(["-m", "ruff", "check", "--quiet"])
        .args(&sources))?;
    run(Command::new(&build)
        .args(["-m", "ruff", "format", "--check", "--quiet"])
        .args(&sources))?;
    run(Command::new(&build)
        .args(["-m", "mypy", "--config-file"])
        .arg(Path::new(PACKAGE_DIR).join("pyproject.toml")))?;
    let wheel = build_wheel(&build)?;
    for (label, python) in &tests {
        println!("pytest with {label}");
        install_wheel(python, &wheel)?;
        run(library_pythons.set_env(
            Command::new(python)
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                .arg(Path::new(PACKAGE_DIR).join("tests")),
        ))?;
    }
    println!("the wheel in a fresh environment, without a Rust toolchain");
    wheel::check_without_toolchain(&wheel, &build)?;
    Ok(wheel)
}
