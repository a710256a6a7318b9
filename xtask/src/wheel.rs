//! `cargo xtask wheel`: the Python package as users install it, a wheel that needs no Rust
//! toolchain, and the source distribution that builds one with it.
//!
//! The wheel is abi3 (every CPython >= 3.9) and tagged `manylinux_2_17`: maturin links it with
//! zig (`maturin[zig]` in `target/py-build`) against the symbols of glibc 2.17, so pip installs
//! it on RHEL / CentOS 7 and every later distribution, and its auditwheel check fails the build
//! if the extension needs anything newer. Linked by the linker of a recent host, it would
//! require glibc 2.34 (the symbol versions of `pthread_*` since they moved into libc), which
//! RHEL 8 and Ubuntu 20.04, common on clusters, do not have. `cargo xtask test` installs the same wheel into a fresh
//! environment without a toolchain ([`fresh_environment`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, parse_flags, pypackage, run, say, venv, workspace_root, Result};

pub const USAGE: &str = "wheel               the Python package's abi3 wheel (manylinux_2_17: no Rust needed to install it) and sdist, into target/wheels/mmappickle-rs/";

/// maturin's options for the wheel users get: linked by zig for glibc 2.17, checked by
/// maturin's auditwheel (no repair: it links no library to bundle).
pub const MANYLINUX_OPTIONS: &[&str] = &[
    "--zig",
    "--compatibility",
    "manylinux2014",
    "--auditwheel",
    "check",
];

/// The tags every wheel of ours carries (`pip` on glibc >= 2.17 and CPython >= 3.9).
const EXPECTED_TAGS: [&str; 2] = ["-cp39-abi3-", "manylinux_2_17_x86_64"];

/// The extras of the fresh-environment check: everything optional, as a user would install it.
const EXTRAS: &str = "[dask,test]";

/// The package's tests that the fresh environment runs: the quick start (the Python
/// library's, verbatim, and the typed example), the dict's API, arrays, Dask. The whole suite
/// runs in the environments of `pypackage::test`, with the same wheel.
const FRESH_TESTS: &[&str] = &[
    "test_quickstart.py",
    "test_dict.py",
    "test_arrays.py",
    "test_dask.py",
];

pub fn main(args: &[String]) -> Result {
    parse_flags(args, &[])?;
    let build = venv::ensure(&venv::BUILD)?;
    let wheel = pypackage::build_wheel(&build)?;
    let sdist = build_sdist(&build, wheel.parent().unwrap_or(Path::new(".")))?;
    check_sdist(&sdist)?;
    println!("\nwheel: {}", wheel.display());
    println!("sdist: {}", sdist.display());
    println!(
        "install: pip install \"{}{EXTRAS}\"   (extras: numpy, remote, dask, test)",
        wheel.display()
    );
    Ok(())
}

/// `python -m maturin SUBCOMMAND -m crates/python/Cargo.toml`, run by the build environment's
/// interpreter, whose `bin` comes first on `PATH` (maturin finds zig as `python3 -m ziglang`).
pub fn maturin(build_python: &Path, subcommand: &str) -> Result<Command> {
    let bin = build_python
        .parent()
        .ok_or_else(|| format!("{} has no directory", build_python.display()))?;
    let mut command = Command::new(build_python);
    command
        .args(["-m", "maturin", subcommand, "-m"])
        .arg(Path::new(pypackage::PACKAGE_DIR).join("Cargo.toml"))
        .env("PATH", path_starting_with(bin, |_| true)?);
    Ok(command)
}

/// Fails unless `wheel`'s file name carries the tags of [`EXPECTED_TAGS`].
pub fn check_tags(wheel: &Path) -> Result {
    let name = wheel
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    match EXPECTED_TAGS.iter().find(|tag| !name.contains(*tag)) {
        None => Ok(()),
        Some(tag) => Err(format!("the wheel {name} lacks the tag {tag}")),
    }
}

/// Builds the source distribution into `out_dir`; returns its path.
fn build_sdist(build_python: &Path, out_dir: &Path) -> Result<PathBuf> {
    remove_files_ending(out_dir, ".tar.gz")?;
    run(maturin(build_python, "sdist")?.arg("-o").arg(out_dir))?;
    let mut sdists = files_ending(out_dir, ".tar.gz")?;
    match (sdists.pop(), sdists.is_empty()) {
        (Some(sdist), true) => Ok(sdist),
        _ => Err(format!("expected one sdist in {}", out_dir.display())),
    }
}

/// Unpacks `sdist` and resolves its Cargo workspace offline from its own `Cargo.lock`
/// (`cargo metadata --offline`, which only prunes the lock's entries of crates left out):
/// every crate the extension needs is in it. Building from it is `pip install SDIST` with a
/// Rust toolchain.
fn check_sdist(sdist: &Path) -> Result {
    let dir = workspace_root().join("target/tmp/sdist-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(sdist)
        .arg("-C")
        .arg(&dir))?;
    let root = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .find_map(|entry| entry.ok().map(|entry| entry.path()))
        .ok_or_else(|| format!("{} unpacked nothing", sdist.display()))?;
    let metadata = cargo()
        .args(["metadata", "--format-version", "1", "--offline"])
        .arg("--manifest-path")
        .arg(root.join(pypackage::PACKAGE_DIR).join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !metadata.status.success() {
        return Err(format!(
            "the sdist's workspace does not resolve: {}",
            String::from_utf8_lossy(&metadata.stderr)
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}: its Cargo workspace resolves", sdist.display());
    Ok(())
}

/// A new environment with the wheel and all its extras installed, as a user would install
/// them (pip reads the extras' requirements from the wheel; binary packages only, from a
/// local copy of what the package index served, `target/wheelhouse`), whose commands run with
/// no Rust toolchain on `PATH`.
pub struct FreshEnvironment {
    python: PathBuf,
    without_toolchain: OsString,
}

/// Makes the [`FreshEnvironment`] of `wheel` (the pip of `build_python` installs into it), and
/// checks there that `cargo` and `rustc` cannot be found and that `mmappickle` is the
/// installed wheel. Network-bound on a clean clone: `cargo xtask test` runs it beside pytest.
pub fn fresh_environment(wheel: &Path, build_python: &Path) -> Result<FreshEnvironment> {
    let target = workspace_root().join("target");
    let env_dir = target.join("py-wheel-check");
    let wheelhouse = target.join("wheelhouse");
    let _ = std::fs::remove_dir_all(&env_dir);
    // Without pip (ensurepip takes longer than all the rest): the build environment's pip
    // installs into it.
    run(Command::new(venv::host_python(&venv::BUILD)?)
        .args(["-m", "venv", "--without-pip"])
        .arg(&env_dir))?;
    let python = env_dir.join("bin").join("python");
    let requirement = format!("{}{EXTRAS}", wheel.display());
    let pip = |subcommand: &str| {
        let mut command = Command::new(build_python);
        command
            .args(["-m", "pip", "--python"])
            .arg(&python)
            .args([subcommand, "--quiet", "--disable-pip-version-check"])
            .args(["--only-binary", ":all:"]);
        command
    };
    let install = || {
        run(pip("install")
            .args(["--no-compile", "--no-index", "--find-links"])
            .arg(&wheelhouse)
            .arg(&requirement))
    };
    if install().is_err() {
        say("(the wheelhouse lacks a package: filling it from the package index)");
        run(pip("download").arg("-d").arg(&wheelhouse).arg(&requirement))?;
        install()?;
    }
    let without_toolchain = path_starting_with(&env_dir.join("bin"), |dir| {
        !dir.join("cargo").exists() && !dir.join("rustc").exists()
    })?;
    let fresh = FreshEnvironment {
        python,
        without_toolchain,
    };
    run(fresh.python().args([
        "-c",
        "import shutil, sys, mmappickle\n\
         assert shutil.which('cargo') is None and shutil.which('rustc') is None, 'a toolchain'\n\
         assert mmappickle.__file__.startswith(sys.prefix), mmappickle.__file__\n\
         print('no cargo, no rustc; mmappickle', mmappickle.__version__, 'from', sys.prefix)",
    ]))?;
    Ok(fresh)
}

impl FreshEnvironment {
    /// The environment's interpreter, without a Rust toolchain on `PATH` or in the environment.
    fn python(&self) -> Command {
        let mut command = Command::new(&self.python);
        command
            .env("PATH", &self.without_toolchain)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("CARGO") || text.starts_with("RUST") {
                command.env_remove(&name);
            }
        }
        command
    }

    /// Runs [`FRESH_TESTS`] there.
    pub fn run_tests(&self) -> Result {
        let tests = workspace_root().join(pypackage::PACKAGE_DIR).join("tests");
        run(self
            .python()
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .args(FRESH_TESTS.iter().map(|test| tests.join(test))))
    }
}

/// `bin`, then the directories of `PATH` that `keep` accepts.
fn path_starting_with(bin: &Path, keep: impl Fn(&Path) -> bool) -> Result<OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept = std::env::split_paths(&path).filter(|dir| keep(dir));
    std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(kept))
        .map_err(|e| format!("cannot make a PATH: {e}"))
}

/// Removes the files of `dir` whose names end with `suffix` (nothing if `dir` is missing).
pub fn remove_files_ending(dir: &Path, suffix: &str) -> Result {
    if !dir.exists() {
        return Ok(());
    }
    for file in files_ending(dir, suffix)? {
        std::fs::remove_file(&file)
            .map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
    }
    Ok(())
}

/// The files of `dir` whose names end with `suffix`.
pub fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect())
}
