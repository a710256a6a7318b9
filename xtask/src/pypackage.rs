//! The Python package of `crates/python`: its wheel, built by maturin (from pip, in
//! `target/py-build`), installed into one environment per numpy version, and its pytest suite
//! run in each (`cargo xtask test` calls [`test()`]; `cargo xtask bench` installs the wheel).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::venv::{PackagePythons, Pythons};
use crate::{docs, run, spawn_step, step, wheel, workspace_root, Result};

pub const PACKAGE_DIR: &str = "crates/python";

/// Builds the wheel into `target/wheels/mmappickle-rs/` and returns its path: the wheel users
/// get (`xtask/src/wheel.rs`: abi3, manylinux_2_17), with the Cargo profile `wheel` that the
/// package's pyproject names (so that pip building the sdist uses it too).
pub fn build_wheel(build_python: &Path) -> Result<PathBuf> {
    let out_dir = workspace_root().join("target/wheels/mmappickle-rs");
    // One wheel in the directory: the one built now (the sdist beside it stays).
    wheel::remove_files_ending(&out_dir, ".whl")?;
    run(wheel::maturin(build_python, "build")?
        .arg("--quiet")
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

/// What `cargo xtask test` runs of the documentation (`xtask/src/docs.rs`).
pub const DOCS_STEP: &str =
    "Python docs (cargo xtask docs; its examples by sphinx's doctest builder)";

/// ruff, `mypy --strict` (the package and its typed example, as configured in its
/// pyproject), the wheel, pytest on numpy 1.23.5 and 2.x, the wheel in a fresh environment
/// without a Rust toolchain, and the documentation (its command-line examples run `cli`).
///
/// The fresh environment's install (network-bound) and the documentation run in the
/// background beside pytest; the fresh environment's own pytest runs after the others (it
/// runs the quick start, which uses a fixed path, `/tmp/test.mmdpickle`).
pub fn test(package: &PackagePythons, library_pythons: &Pythons, cli: PathBuf) -> Result {
    let PackagePythons { build, tests } = package;
    let sources =
        ["python", "tests", "examples", "docs"].map(|dir| Path::new(PACKAGE_DIR).join(dir));
    run(Command::new(build)
        .args(["-m", "ruff", "check", "--quiet"])
        .args(&sources))?;
    run(Command::new(build)
        .args(["-m", "ruff", "format", "--check", "--quiet"])
        .args(&sources))?;
    run(Command::new(build)
        .args(["-m", "mypy", "--config-file"])
        .arg(Path::new(PACKAGE_DIR).join("pyproject.toml")))?;
    let wheel = build_wheel(build)?;
    for (_, python) in tests {
        install_wheel(python, &wheel)?;
    }
    let fresh = spawn_step(
        "the wheel in a fresh environment, without a Rust toolchain: install",
        {
            let (wheel, build) = (wheel.clone(), build.clone());
            move || wheel::fresh_environment(&wheel, &build)
        },
    );
    let docs = spawn_step(DOCS_STEP, {
        let python = tests[1].1.clone();
        move || docs::check(&python, &cli)
    });
    for (label, python) in tests {
        step(&format!("pytest with {label}"), || {
            run(library_pythons.set_env(
                Command::new(python)
                    .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                    .arg(Path::new(PACKAGE_DIR).join("tests")),
            ))
        })?;
    }
    let fresh = fresh.join()?;
    step(
        "the wheel in a fresh environment, without a Rust toolchain: pytest",
        || fresh.run_tests(),
    )?;
    docs.join()
}
