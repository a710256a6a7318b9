//! `cargo xtask stress [--kills N] [--seed S] [--python-keys K]`: the long versions of the
//! reliability tests (`tests/tests/reliability/`, `RELIABILITY.md`).
//!
//! - crash injection with N SIGKILLs (1000 by default; the test command runs 50), every
//!   crash image and repaired file read back by Python's `pickle.load` and `mmapdict`;
//! - 4 Rust and 4 Python writers in one file with K keys per Python writer (200 by
//!   default; the test command runs 50, as Python's reader cost grows with the square of
//!   the keys);
//! - every power-loss crash state of every kind of change (`xtask/src/power_loss.rs`);
//! - our writers beside the Python library's constructors: 20 rounds of 300 values
//!   (`tests/tests/coexistence.rs`; the test command runs one round of 60);
//! - a 2 GiB Dask array written by `mmappickle.dask.to_mmapdict` on a `LocalCluster` of two
//!   workers limited to 512 MiB each, read back from the file, over HTTP and by numpy
//!   (`crates/python/tests/test_dask.py`; the test command writes 64 MiB).
//!
//! All run the same test functions as `cargo xtask test`, with their sizes raised through
//! environment variables, and print their figures (copy them into `RELIABILITY.md`).

use std::time::Instant;

use crate::{cargo, run, step, venv, Result};

/// The environment variables the reliability tests read.
const KILLS_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_KILLS";
const SEED_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_SEED";
const PYTHON_KEYS_VARIABLE: &str = "MMAPPICKLE_RELIABILITY_PYTHON_KEYS";
const DASK_ARRAY_MIB_VARIABLE: &str = "MMAPPICKLE_DASK_ARRAY_MIB";

struct Options {
    kills: u64,
    seed: Option<u64>,
    python_keys: u64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options {
            kills: 1000,
            seed: None,
            python_keys: 200,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut number = || -> Result<u64> {
                let text = args
                    .next()
                    .ok_or_else(|| format!("{flag} needs a number"))?;
                text.parse()
                    .map_err(|_| format!("{flag} needs a number, found {text:?}"))
            };
            match flag.as_str() {
                "--kills" => options.kills = number()?,
                "--seed" => options.seed = Some(number()?),
                "--python-keys" => options.python_keys = number()?,
                other => {
                    return Err(format!(
                    "unexpected argument {other:?} (expected --kills N, --seed S, --python-keys K)"
                ))
                }
            }
        }
        if options.kills == 0 {
            return Err("--kills must be at least 1".to_owned());
        }
        Ok(options)
    }
}

/// `cargo test -p mmappickle-conformance --test FILE -- TEST --exact --nocapture`.
pub fn conformance_test(file: &str, test: &str) -> std::process::Command {
    let mut command = cargo();
    command.args(["test", "-p", "mmappickle-conformance", "--test", file]);
    command.args(["--", test, "--exact", "--nocapture"]);
    command
}

pub fn main(args: &[String]) -> Result {
    let options = Options::parse(args)?;
    let start = Instant::now();
    let pythons = step("Python environments", venv::ensure_all)?;
    step(&format!("crash injection, {} kills", options.kills), || {
        let mut command = conformance_test(
            "reliability",
            "crash::crash_injection_loses_no_acknowledged_operation",
        );
        command.env(KILLS_VARIABLE, options.kills.to_string());
        if let Some(seed) = options.seed {
            command.env(SEED_VARIABLE, seed.to_string());
        }
        run(pythons.set_env(&mut command))
    })?;
    crate::power_loss::stress()?;
    step(
        &format!(
            "concurrency, 4 Rust writers x 200 keys and 4 Python writers x {} keys",
            options.python_keys
        ),
        || {
            let mut command = conformance_test(
                "reliability",
                "concurrency::rust_and_python_processes_write_concurrently",
            );
            command.env(PYTHON_KEYS_VARIABLE, options.python_keys.to_string());
            run(pythons.set_env(&mut command))
        },
    )?;
    step(
        "beside the library's constructors, 20 rounds x 300 values",
        || {
            let mut command =
                conformance_test("coexistence", "our_values_survive_library_constructors");
            command
                .env("MMAPPICKLE_COEXISTENCE_ROUNDS", "20")
                .env("MMAPPICKLE_COEXISTENCE_VALUES", "300");
            run(pythons.set_env(&mut command))
        },
    )?;
    step(
        "Dask: 2 GiB written on a cluster of two 512 MiB workers",
        || {
            let package = venv::ensure_package()?;
            let wheel = crate::pypackage::build_wheel(&package.build)?;
            let [_, (_, python)] = &package.tests;
            crate::pypackage::install_wheel(python, &wheel)?;
            let mut command = std::process::Command::new(python);
            command
                .args(["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"])
                .arg("crates/python/tests/test_dask.py")
                .args(["-k", "to_mmapdict_on_a_cluster"])
                .env(DASK_ARRAY_MIB_VARIABLE, "2048")
                .current_dir(crate::workspace_root());
            run(pythons.set_env(&mut command))
        },
    )?;
    println!("\nstress passed in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
