//! `cargo xtask bench`: the benchmark workloads (see BENCHMARKS.md), through our crates and through Python,
//! on the same machine in one run, as one table of medians with the ratio per row. Its
//! modules: `run` (the drivers run per workload), `measure` (their samples, the medians),
//! `rows` (what each row compares), `render` (the tables, the JSON).
//!
//! The Rust side is `bench/src/bin/bench_workloads.rs` (the unpublished crate
//! `mmappickle-bench`, built `--release` here), the Python side is
//! `xtask/bench/bench_python.py` run by the mmappickle environment of `cargo xtask venv`
//! (mmappickle 1.0, numpy 1.23.5, CPython's C `_pickle`). Both print the same line
//! protocol, `sample NAME SECONDS` per run and `info NAME VALUE`; each workload runs in a
//! process of its own (so peak RSS figures are the workload's), Python first, then Rust.
//! Inputs both sides share (a 10,000-entry file, a pickled 1,000,000-entry dict) are made
//! once by `bench_python.py prepare`, into `target/bench/`, removed at the end.
//!
//! The remote rows (9, 10) are Rust against `curl` and against the local open, both timed by
//! `bench/src/bin/bench_remote.rs`, which starts nginx on loopback itself.

mod measure;
mod render;

pub(crate) use render::load_average;
mod rows;
mod run;

use std::path::PathBuf;

use crate::Result;

/// The sizes and settings; `--name value` flags, defaults as in BENCHMARKS.md.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    /// Runs per measurement; each figure is their median.
    runs: usize,
    /// Python's row 1 is quadratic (about 13 s at 1,000 entries): at most this many runs.
    python_create_runs: usize,
    /// Rows 1 (Rust), 2, 3 and 7: entries in the file.
    entries: usize,
    /// Row 1 at equal sizes: entries Python (and Rust again) insert.
    python_entries: usize,
    /// Row 3: gets.
    gets: usize,
    /// Rows 4 and 5: the array's size in MiB.
    array_mib: usize,
    /// Row 6: the stub's size in GiB (a 1 TiB stub is timed too).
    stub_gib: usize,
    /// Row 8: entries of the pickled dict.
    dict_entries: usize,
    /// Row 9: the size in MiB of the array read over HTTP.
    remote_mib: usize,
    /// Row 18: entries of the big file `mmappickle ls` lists.
    big_entries: usize,
    /// Run only these workloads (`cli`, `open_keys`, `remote`...); all when empty.
    only: Vec<String>,
    /// Row 9: the array copied in and out by the CLI, in MiB.
    bulk_mib: usize,
    /// Where to write the results as JSON.
    json: Option<PathBuf>,
    /// Skip Python's workloads (its columns stay empty, except the machine's limits); Python
    /// still makes the inputs.
    rust_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runs: 7,
            python_create_runs: 3,
            entries: 10_000,
            python_entries: 1_000,
            gets: 1_000,
            array_mib: 256,
            stub_gib: 1,
            dict_entries: 1_000_000,
            remote_mib: 1024,
            big_entries: 100_000,
            only: Vec::new(),
            bulk_mib: 1024,
            json: None,
            rust_only: false,
        }
    }
}

pub const USAGE: &str =
    "bench [--runs N] [--python-create-runs N] [--entries N] [--python-entries N] [--gets N] \
[--array-mib N] [--stub-gib N] [--dict-entries N] [--remote-mib N] [--bulk-mib N] \
[--big-entries N] [--only WORKLOAD,...] [--json FILE] [--rust-only]   the benchmark workloads \
through our crates and through Python, remote reads over nginx against curl, the CLI's bulk \
copies against cp and its read commands against Python (--only cli: those rows alone; \
--only takes workload names, remote and bulk among them), one table of medians (see \
BENCHMARKS.md)";

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options::default();
    let mut words = args.iter();
    while let Some(flag) = words.next() {
        if flag == "--rust-only" {
            options.rust_only = true;
            continue;
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> Result<usize> {
            match value.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag} {value:?}: expected a positive integer")),
            }
        };
        match flag.as_str() {
            "--runs" => options.runs = number()?,
            "--python-create-runs" => options.python_create_runs = number()?,
            "--entries" => options.entries = number()?.max(2),
            "--python-entries" => options.python_entries = number()?,
            "--gets" => options.gets = number()?,
            "--array-mib" => options.array_mib = number()?,
            "--stub-gib" => options.stub_gib = number()?,
            "--dict-entries" => options.dict_entries = number()?,
            "--remote-mib" => options.remote_mib = number()?,
            "--big-entries" => options.big_entries = number()?,
            "--only" => options.only = value.split(',').map(str::to_owned).collect(),
            "--bulk-mib" => options.bulk_mib = number()?.max(64),
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => {
                return Err(format!(
                    "unexpected argument {flag:?}\nusage: cargo xtask {USAGE}"
                ))
            }
        }
    }
    Ok(options)
}

impl Options {
    /// Whether `--only` lets `workload` run.
    fn selects(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|name| name == workload)
    }
}

pub fn main(args: &[String]) -> Result {
    let options = parse_options(args)?;
    let command_line = std::iter::once("cargo xtask bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let run = run::run_workloads(&options)?;
    render::report(&options, &command_line, &run)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Flags override the defaults; unknown flags and zero sizes are refused.
    #[test]
    fn options_parse_and_refuse() {
        let args: Vec<String> = ["--runs", "3", "--json", "out.json", "--rust-only"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = parse_options(&args).unwrap();
        assert_eq!(options.runs, 3);
        assert_eq!(options.json, Some(PathBuf::from("out.json")));
        assert!(options.rust_only);
        assert!(options.selects("pickle"));
        let only = parse_options(&["--only".to_owned(), "cli,remote".to_owned()]).unwrap();
        assert!(only.selects("cli") && only.selects("remote") && !only.selects("pickle"));
        assert_eq!(options.entries, Options::default().entries);
        assert!(parse_options(&["--frobnicate".to_owned(), "1".to_owned()]).is_err());
        assert!(parse_options(&["--runs".to_owned(), "0".to_owned()]).is_err());
        assert!(parse_options(&["--runs".to_owned()]).is_err());
    }
}
