//! `cargo xtask venv`: the Python environments of the conformance suite and of the
//! remote crate's S3 tests (moto).
//!
//! They live under `target/` (never committed), are made with
//! `python3 -m venv` (or `virtualenv` where `venv` is missing) and `pip`, and
//! are reused when they already hold what they must.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::Command;

use crate::{parse_flags, run, say, succeeds, workspace_root, Result};

/// One virtual environment: where, what to install, how to tell it is ready.
pub(crate) struct Environment {
    pub(crate) dir: &'static str,
    pub(crate) packages: &'static [&'static str],
    pub(crate) ready_check: &'static str,
    /// The Python 3 minor versions its packages have wheels for.
    pub(crate) python_minors: RangeInclusive<u32>,
}

/// mmappickle 1.0's picklers need `numpy.float`, removed in numpy 1.24;
/// numpy 1.23.5 has wheels for Python 3.8 to 3.11 only.
const MMAPPICKLE: Environment = Environment {
    dir: "py-mmappickle",
    packages: &["mmappickle==1.0", "numpy==1.23.5"],
    python_minors: 8..=11,
    ready_check: "import mmappickle.picklers.numpy, numpy; assert numpy.__version__ == '1.23.5', numpy.__version__",
};

/// The newest numpy 2.x at creation time, without mmappickle.
const NUMPY2: Environment = Environment {
    dir: "py-numpy2",
    packages: &["numpy>=2,<3"],
    python_minors: 9..=u32::MAX,
    ready_check: "import numpy; assert numpy.__version__.startswith('2.'), numpy.__version__",
};

/// maturin (which builds our wheel) with zig (which links it against an old glibc: see
/// `xtask/src/wheel.rs`), ruff, and mypy with numpy's annotations (the package's
/// `mypy --strict` check), from pip.
pub(crate) const BUILD: Environment = Environment {
    dir: "py-build",
    packages: &["maturin[zig]>=1.7,<2", "ruff", "mypy", "numpy>=2,<3"],
    python_minors: 10..=u32::MAX,
    ready_check: "import maturin, ziglang, ruff, mypy, numpy",
};

/// Our package's test environments: pytest, one numpy and dask each (pip picks the newest
/// dask that accepts the numpy), nbclient, nbformat and ipykernel (a notebook run headless),
/// our wheel installed on top (never the Python library: the cross-checks run it from
/// `py-mmappickle`).
const OURS_NUMPY1: Environment = Environment {
    dir: "py-ours-numpy1",
    packages: &[
        "numpy==1.23.5",
        "pytest",
        "dask[array,distributed]",
        "nbclient",
        "nbformat",
        "ipykernel",
    ],
    python_minors: 9..=11,
    ready_check: "import pytest, numpy, dask.array, distributed, nbclient, nbformat, ipykernel; \
                  assert numpy.__version__ == '1.23.5', numpy.__version__",
};

/// Also the documentation's (`xtask/src/docs.rs`): Sphinx, and MyST for the pages in Markdown.
pub(crate) const OURS_NUMPY2: Environment = Environment {
    dir: "py-ours-numpy2",
    packages: &[
        "numpy>=2,<3",
        "pytest",
        "dask[array,distributed]",
        "nbclient",
        "nbformat",
        "ipykernel",
        "sphinx",
        "myst-parser",
    ],
    python_minors: 9..=u32::MAX,
    ready_check: "import pytest, numpy, dask.array, distributed, nbclient, nbformat, ipykernel, \
                  sphinx, myst_parser; \
                  assert numpy.__version__.startswith('2.'), numpy.__version__",
};

/// The interpreters of the Python package's build and test environments.
pub struct PackagePythons {
    /// `target/py-build/bin/python`: maturin, ruff and mypy.
    pub build: PathBuf,
    /// `(numpy version label, interpreter)` of each test environment; the numpy 2.x one is
    /// also the documentation's.
    pub tests: PackageTestPythons,
}

/// `(numpy version label, interpreter)` of each test environment of the package.
pub type PackageTestPythons = [(&'static str, PathBuf); 2];

/// Creates or reuses the build environment and both test environments of the package.
pub fn ensure_package() -> Result<PackagePythons> {
    Ok(PackagePythons {
        build: ensure_build()?,
        tests: ensure_package_tests()?,
    })
}

/// Creates or reuses the package's build environment (maturin, ruff, mypy).
pub fn ensure_build() -> Result<PathBuf> {
    ensure(&BUILD)
}

/// Creates or reuses both test environments of the package.
pub fn ensure_package_tests() -> Result<PackageTestPythons> {
    Ok([
        ("numpy 1.23.5", ensure(&OURS_NUMPY1)?),
        ("numpy 2.x", ensure(&OURS_NUMPY2)?),
    ])
}

/// moto's S3 server (`python -m moto.server`) and boto3, for the remote crate's S3 tests.
const MOTO: Environment = Environment {
    dir: "py-moto",
    packages: &["moto[server]==5.2.5"],
    python_minors: 9..=u32::MAX,
    ready_check: "import moto.server, boto3",
};

/// The interpreters of both environments.
pub struct Pythons {
    /// `target/py-mmappickle/bin/python`: mmappickle 1.0 and numpy 1.23.5.
    pub mmappickle: PathBuf,
    /// `target/py-numpy2/bin/python`: the newest numpy 2.x.
    pub numpy2: PathBuf,
}

impl Pythons {
    /// Points `command` at both interpreters, as the conformance tests read them.
    pub fn set_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("MMAPPICKLE_PYTHON", &self.mmappickle)
            .env("MMAPPICKLE_PYTHON_NUMPY2", &self.numpy2)
            .env("PYTHONDONTWRITEBYTECODE", "1")
    }
}

pub fn main(args: &[String]) -> Result {
    parse_flags(args, &[])?;
    let pythons = ensure_all()?;
    println!("MMAPPICKLE_PYTHON={}", pythons.mmappickle.display());
    println!("MMAPPICKLE_PYTHON_NUMPY2={}", pythons.numpy2.display());
    println!("{MOTO_PYTHON_VAR}={}", ensure_moto()?.display());
    Ok(())
}

/// Creates or reuses both environments.
pub fn ensure_all() -> Result<Pythons> {
    Ok(Pythons {
        mmappickle: ensure(&MMAPPICKLE)?,
        numpy2: ensure(&NUMPY2)?,
    })
}

/// The variable that gives the remote crate's tests the moto environment's interpreter.
pub const MOTO_PYTHON_VAR: &str = "MMAPPICKLE_MOTO_PYTHON";

/// Creates or reuses the moto environment (the remote crate's S3 tests).
pub fn ensure_moto() -> Result<PathBuf> {
    ensure(&MOTO)
}

/// Creates or reuses the mmappickle environment only (enough for fixtures).
pub fn ensure_mmappickle() -> Result<PathBuf> {
    ensure(&MMAPPICKLE)
}

/// The host interpreter that creates `environment`: `XTASK_PYTHON` when set,
/// else the first of `python3`, `python3.11`, `python3.10`, ... whose version
/// the environment's packages support.
pub(crate) fn host_python(environment: &Environment) -> Result<String> {
    if let Some(python) = std::env::var_os("XTASK_PYTHON") {
        return Ok(python.to_string_lossy().into_owned());
    }
    let mut candidates = vec!["python3".to_owned()];
    candidates.extend((8..=13).rev().map(|minor| format!("python3.{minor}")));
    for candidate in &candidates {
        let output = Command::new(candidate)
            .args(["-c", "import sys; print(sys.version_info[1])"])
            .output();
        let minor = output
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok());
        if minor.is_some_and(|minor| environment.python_minors.contains(&minor)) {
            return Ok(candidate.clone());
        }
    }
    Err(format!(
        "{} needs a Python 3.{}+ interpreter{}: none of {candidates:?} fits; \
         install one or set XTASK_PYTHON to it",
        environment.dir,
        environment.python_minors.start(),
        if *environment.python_minors.end() == u32::MAX {
            String::new()
        } else {
            format!(" up to 3.{}", environment.python_minors.end())
        },
    ))
}

pub(crate) fn ensure(environment: &Environment) -> Result<PathBuf> {
    let dir = workspace_root().join("target").join(environment.dir);
    let python = dir.join("bin").join("python");
    let is_ready = || succeeds(Command::new(&python).args(["-c", environment.ready_check]));
    if python.exists() && is_ready() {
        say(format!("reusing {}", dir.display()));
        return Ok(python);
    }
    if python.exists() && !succeeds(Command::new(&python).args(["-c", "pass"])) {
        // An environment whose interpreter no longer runs (the host Python
        // changed): start again.
        say(format!("{} is broken: recreating it", dir.display()));
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    if !python.exists() {
        let host = host_python(environment)?;
        say(format!("creating {} with {host}", dir.display()));
        let host_python = || Command::new(&host);
        let created = run(host_python().args(["-m", "venv"]).arg(&dir));
        if created.is_err() {
            // Debian without python3-venv: virtualenv needs no ensurepip.
            say("`python3 -m venv` failed, trying virtualenv");
            let _ = std::fs::remove_dir_all(&dir);
            if !succeeds(host_python().args(["-m", "virtualenv", "--version"])) {
                run(host_python().args(["-m", "pip", "install", "--user", "virtualenv"]))?;
            }
            run(host_python().args(["-m", "virtualenv"]).arg(&dir))?;
        }
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
        ])
        .args(environment.packages))?;
    if !is_ready() {
        return Err(format!(
            "{} still lacks {:?} after pip install",
            dir.display(),
            environment.packages
        ));
    }
    Ok(python)
}
