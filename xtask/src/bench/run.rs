//! Running: the Python environments and our drivers built, the shared inputs prepared, and
//! every workload run by each side, one process per workload.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::measure::{Measurements, Side};
use super::render::load_average;
use super::Options;
use crate::{cargo, run, step, venv, workspace_root, Result};

/// Runs a driver, echoing the command; its stdout, for [`Measurements::parse`].
pub(super) fn capture(command: &mut Command) -> Result<String> {
    command
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    println!("$ {}", crate::describe(command));
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", crate::describe(command)))?;
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({})",
            crate::describe(command),
            output.status
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One workload: its name and the flags both drivers take for it.
pub(super) struct Workload {
    pub(super) name: &'static str,
    pub(super) flags: Vec<(&'static str, String)>,
    pub(super) python_runs: usize,
}

pub(super) fn workloads(options: &Options, dir: &Path) -> Vec<Workload> {
    let entries_file = dir.join("entries.mmdpickle").display().to_string();
    let dict_file = dir.join("dict.pickle").display().to_string();
    let runs = options.runs;
    let workload = |name, flags: &[(&'static str, String)], python_runs| Workload {
        name,
        flags: flags.to_vec(),
        python_runs,
    };
    vec![
        workload(
            "create",
            &[("entries", options.python_entries.to_string())],
            options.python_create_runs.min(runs),
        ),
        workload("open_keys", &[("file", entries_file.clone())], runs),
        workload(
            "gets",
            &[
                ("file", entries_file.clone()),
                ("gets", options.gets.to_string()),
            ],
            runs,
        ),
        workload(
            "array_write",
            &[("mib", options.array_mib.to_string())],
            runs,
        ),
        workload("array_sum", &[("mib", options.array_mib.to_string())], runs),
        workload("stub", &[("gib", options.stub_gib.to_string())], runs),
        workload("vacuum", &[("file", entries_file.clone())], runs),
        workload("pickle", &[("file", dict_file)], runs),
        workload("cli", &[("file", entries_file)], runs),
    ]
    .into_iter()
    .filter(|workload| options.selects(workload.name))
    .collect()
}

pub(super) fn driver_command(
    program: &Path,
    prefix: &[&str],
    workload: &str,
    dir: &Path,
    runs: usize,
) -> Command {
    let mut command = Command::new(program);
    command
        .args(prefix)
        .arg(workload)
        .arg("--dir")
        .arg(dir)
        .arg("--runs")
        .arg(runs.to_string());
    command
}

pub(super) fn add_flags(command: &mut Command, flags: &[(&str, String)]) {
    for (name, value) in flags {
        command.arg(format!("--{name}")).arg(value);
    }
}

/// What a run measured, and how loaded the machine was before it.
pub(super) struct Run {
    pub(super) measured: Measurements,
    /// Whether our Python package ran (its table is printed then).
    pub(super) package_ran: bool,
    pub(super) load_before: String,
}

/// Runs every workload `options` selects; the inputs are removed at the end.
pub(super) fn run_workloads(options: &Options) -> Result<Run> {
    let root = workspace_root();
    // Even without the Python rows, Python makes the shared inputs (the pickle must be
    // CPython's own bytes).
    let python = step("python environment", venv::ensure_mmappickle)?;
    // Our package, from the same script, in its numpy 1.23.5 environment with the wheel of
    // this tree.
    let package_workloads = [
        "create",
        "open_keys",
        "gets",
        "array_write",
        "array_sum",
        "vacuum",
    ];
    let package_python =
        if options.rust_only || !package_workloads.iter().any(|w| options.selects(w)) {
            None
        } else {
            Some(step("python package (maturin wheel)", || {
                let pythons = venv::ensure_package()?;
                let wheel = crate::pypackage::build_wheel(&pythons.build)?;
                let [(_, numpy1), _] = pythons.tests;
                crate::pypackage::install_wheel(&numpy1, &wheel)?;
                Ok(numpy1)
            })?)
        };
    step("build the Rust drivers and the CLI (release)", || {
        run(cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "mmappickle-bench",
            "-p",
            "mmappickle-cli",
        ]))
    })?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let driver = target.join("release").join("bench_workloads");
    let script = root.join("xtask").join("bench").join("bench_python.py");
    let dir = root.join("target").join("bench");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let load_before = load_average();
    let mut measured = Measurements::default();
    step("prepare the inputs", || {
        let mut command = driver_command(
            &python,
            &[&script.display().to_string()],
            "prepare",
            &dir,
            1,
        );
        add_flags(
            &mut command,
            &[
                ("entries", options.entries.to_string()),
                // Row 8's pickle only when row 8 runs.
                (
                    "dict-entries",
                    if options.selects("pickle") {
                        options.dict_entries
                    } else {
                        1
                    }
                    .to_string(),
                ),
                ("big-entries", options.big_entries.to_string()),
            ],
        );
        measured.parse(Side::Python, &capture(&mut command)?)
    })?;
    let script_arg = script.display().to_string();
    for workload in workloads(options, &dir) {
        step(workload.name, || {
            if !options.rust_only {
                let mut command = driver_command(
                    &python,
                    &[&script_arg],
                    workload.name,
                    &dir,
                    workload.python_runs,
                );
                add_flags(&mut command, &workload.flags);
                measured.parse(Side::Python, &capture(&mut command)?)?;
            }
            // Row 8 measures CPython's pickle: nothing of ours.
            let package_python = package_python
                .as_ref()
                .filter(|_| !["pickle", "cli"].contains(&workload.name));
            if let Some(package_python) = package_python {
                // Row 1 at both sizes: ours is linear.
                let sizes: &[usize] = if workload.name == "create" {
                    &[options.python_entries, options.entries]
                } else {
                    &[0]
                };
                for &entries in sizes {
                    let mut command = driver_command(
                        package_python,
                        &[&script_arg],
                        workload.name,
                        &dir,
                        options.runs,
                    );
                    add_flags(&mut command, &workload.flags);
                    if entries > 0 {
                        add_flags(&mut command, &[("entries", entries.to_string())]);
                    }
                    measured.parse(Side::Package, &capture(&mut command)?)?;
                }
            }
            let mut command = driver_command(&driver, &[], workload.name, &dir, options.runs);
            add_flags(&mut command, &workload.flags);
            if workload.name == "cli" {
                add_flags(
                    &mut command,
                    &[
                        (
                            "cli",
                            target
                                .join("release")
                                .join("mmappickle")
                                .display()
                                .to_string(),
                        ),
                        (
                            "big-file",
                            dir.join("entries-big.mmdpickle").display().to_string(),
                        ),
                    ],
                );
            }
            measured.parse(Side::Rust, &capture(&mut command)?)?;
            if workload.name == "create" {
                // Row 1 at the full size, Rust only (Python would take some 20 minutes);
                // the file is compared with the one Python's writer made.
                let mut command = driver_command(&driver, &[], "create", &dir, options.runs);
                add_flags(
                    &mut command,
                    &[
                        ("entries", options.entries.to_string()),
                        ("file", dir.join("entries.mmdpickle").display().to_string()),
                    ],
                );
                measured.parse(Side::Rust, &capture(&mut command)?)?;
            }
            Ok(())
        })?;
    }
    if options.selects("remote") {
        step("remote reads (nginx on loopback)", || {
            let remote_driver = target.join("release").join("bench_remote");
            let mut command = driver_command(&remote_driver, &[], "remote", &dir, options.runs);
            add_flags(
                &mut command,
                &[
                    ("file", dir.join("entries.mmdpickle").display().to_string()),
                    ("mib", options.remote_mib.to_string()),
                ],
            );
            measured.parse(Side::Rust, &capture(&mut command)?)
        })?;
    }
    if options.selects("bulk") {
        step("bulk copies (Rust only)", || {
            run(cargo().args(["build", "--release", "--quiet", "-p", "mmappickle-cli"]))?;
            let cli = target.join("release").join("mmappickle");
            let mut command = driver_command(&driver, &[], "bulk", &dir, options.runs.min(3));
            add_flags(
                &mut command,
                &[
                    ("mib", options.bulk_mib.to_string()),
                    ("cli", cli.display().to_string()),
                ],
            );
            measured.parse(Side::Rust, &capture(&mut command)?)
        })?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        measured,
        package_ran: package_python.is_some(),
        load_before,
    })
}
