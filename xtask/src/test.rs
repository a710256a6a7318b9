//! `cargo xtask test`: THE test command (the README and `.ci/run` give it).
//!
//! pip's work (the Python environments) starts in the background at once and is joined
//! where it is first needed. Fast checks first: the tidy rules (`xtask/src/tidy.rs`), formatting, clippy with `-D warnings`, docs without warnings; then the Python
//! environments, the fixture drift check, and `cargo test --workspace` (doc
//! tests included) with `MMAPPICKLE_PYTHON` / `MMAPPICKLE_PYTHON_NUMPY2` set,
//! so that the conformance tests run the Python half of the suite, and
//! `MMAPPICKLE_MOTO_PYTHON` for the remote crate's S3 tests (they start nginx
//! too, which `.ci/run` installs). Stops at
//! the first failing step; within the test step every test binary runs
//! (`--no-fail-fast`) so that one run reports every failure.
//! Then the Python package: ruff, its wheel built by maturin, and its pytest suite in one
//! environment per numpy version (1.23.5 and the newest 2.x; `xtask/src/pypackage.rs`), then
//! in a fresh environment without a Rust toolchain (`xtask/src/wheel.rs`); its documentation
//! site, warnings denied, and every example in it (`xtask/src/docs.rs`), beside pytest.
//! Last, the fuzz smoke: every target of `fuzz/` for 5 s (`xtask/src/fuzz.rs`).

use std::time::Instant;

use crate::venv::PackagePythons;
use crate::{
    cargo, docs, fixtures, parse_flags, pypackage, run, spawn_step, step, tidy, venv, Result,
};

const PACKAGE_STEP: &str = "Python package (ruff; mypy; maturin wheel; pytest on numpy 1.23.5 \
                            and 2.x; the wheel without a toolchain; its docs)";

pub fn main(args: &[String]) -> Result {
    let flags = parse_flags(args, &["--python"])?;
    // pip's work (network and disk) runs in the background from the start, beside the
    // builds (CPU); each is joined where its environments are first needed.
    let environments = spawn_step("Python environments", venv::ensure_all);
    let build_environment = spawn_step(
        "the Python package's build environment (maturin, ruff, mypy)",
        venv::ensure_build,
    );
    let package_environments = spawn_step(
        "the Python package's test environments (numpy 1.23.5, numpy 2.x and Sphinx)",
        venv::ensure_package_tests,
    );
    if flags.contains(&"--python") {
        // The Python package's step alone, for work on it.
        let cli = step("the command line of the docs' examples", docs::build_cli)?;
        let pythons = environments.join()?;
        let package = PackagePythons {
            build: build_environment.join()?,
            tests: package_environments.join()?,
        };
        return step(PACKAGE_STEP, || pypackage::test(&package, &pythons, cli));
    }
    let moto = spawn_step(
        "moto environment (S3 server of the remote tests)",
        venv::ensure_moto,
    );
    let start = Instant::now();
    step("tidy (cargo xtask tidy)", tidy::check)?;
    step("formatting (cargo fmt --check)", || {
        run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("lints (cargo clippy -D warnings)", || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("docs (cargo doc, warnings denied)", || {
        run(cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    let pythons = environments.join()?;
    step(
        "fixtures drift check (cargo xtask fixtures --check)",
        fixtures::check,
    )?;
    let moto = moto.join()?;
    step(
        "tests (cargo test --workspace, Python conformance included)",
        || {
            run(pythons
                .set_env(cargo().args(["test", "--workspace", "--no-fail-fast"]))
                .env(venv::MOTO_PYTHON_VAR, &moto))
        },
    )?;
    let package = PackagePythons {
        build: build_environment.join()?,
        tests: package_environments.join()?,
    };
    step(PACKAGE_STEP, || {
        pypackage::test(&package, &pythons, docs::cli_built_by_tests()?)
    })?;
    step("fuzz smoke (cargo xtask fuzz --smoke)", || {
        crate::fuzz::smoke(crate::fuzz::SMOKE_SECONDS)
    })?;
    println!(
        "\nall checks passed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
