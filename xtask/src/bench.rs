//! `cargo xtask bench`: the benchmark workloads (see BENCHMARKS.md), through our crates and through Python,
//! on the same machine in one run, as one table of medians with the ratio per row.
//!
//! The Rust side is the example `crates/mmappickle/examples/bench_workloads.rs` (built
//! `--release` here, so that `cargo xtask test` never builds it), the Python side is
//! `xtask/bench/bench_python.py` run by the mmappickle environment of `cargo xtask venv`
//! (mmappickle 1.0, numpy 1.23.5, CPython's C `_pickle`). Both print the same line
//! protocol, `sample NAME SECONDS` per run and `info NAME VALUE`; each workload runs in a
//! process of its own (so peak RSS figures are the workload's), Python first, then Rust.
//! Inputs both sides share (a 10,000-entry file, a pickled 1,000,000-entry dict) are made
//! once by `bench_python.py prepare`, into `target/bench/`, removed at the end.
//!
//! The remote rows (9, 10) are Rust against `curl` and against the local open, both timed by
//! `crates/remote/examples/bench_remote.rs`, which starts nginx on loopback itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{cargo, run, step, venv, workspace_root, Result};

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

/// Which side measured a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Python,
    Rust,
    /// Our Python package (`crates/python`), driven by the same script as Python's.
    Package,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Python => "python",
            Side::Rust => "rust",
            Side::Package => "package",
        }
    }
}

/// Everything both drivers printed.
#[derive(Debug, Default)]
struct Measurements {
    samples: BTreeMap<(Side, String), Vec<f64>>,
    info: BTreeMap<(Side, String), String>,
}

impl Measurements {
    /// Reads a driver's output: `sample NAME SECONDS` and `info NAME VALUE` lines.
    fn parse(&mut self, side: Side, output: &str) -> Result {
        for line in output.lines() {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("sample"), Some(name), Some(value)) => {
                    let seconds: f64 = value
                        .trim()
                        .parse()
                        .map_err(|e| format!("bad sample line {line:?}: {e}"))?;
                    self.samples
                        .entry((side, name.to_owned()))
                        .or_default()
                        .push(seconds);
                }
                (Some("info"), Some(name), Some(value)) => {
                    self.info
                        .insert((side, name.to_owned()), value.trim().to_owned());
                }
                _ => {
                    return Err(format!(
                        "unexpected line from the {} driver: {line:?}",
                        side.name()
                    ))
                }
            }
        }
        Ok(())
    }

    fn samples(&self, side: Side, name: &str) -> &[f64] {
        self.samples
            .get(&(side, name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    fn info(&self, side: Side, name: &str) -> Option<&str> {
        self.info.get(&(side, name.to_owned())).map(String::as_str)
    }
}

fn fastest(values: &[f64]) -> Option<f64> {
    values.iter().copied().min_by(f64::total_cmp)
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2.0),
    }
}

/// What a row's Rust figure must achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Goal {
    /// No goal: shown for context.
    None,
    /// `reference / rust` at least this (10.0: ten times faster; 0.5: at most twice slower).
    RatioAtLeast(f64),
    /// The Rust figure under this many seconds.
    RustUnder(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::None => String::new(),
            Goal::RatioAtLeast(ratio) if ratio >= 1.0 => format!(">= {ratio}x"),
            Goal::RatioAtLeast(ratio) => format!("within {:.1}x", 1.0 / ratio),
            Goal::RustUnder(seconds) => format!("< {}", format_seconds(seconds)),
        }
    }

    fn met(self, reference: Option<f64>, rust: Option<f64>) -> Option<bool> {
        match self {
            Goal::None => None,
            Goal::RatioAtLeast(at_least) => Some(reference? / rust? >= at_least),
            Goal::RustUnder(seconds) => Some(rust? < seconds),
        }
    }
}

/// One line of the table: a reference figure against a Rust figure.
#[derive(Debug, Clone)]
struct Row {
    id: &'static str,
    workload: String,
    /// What the reference is, and the side and metric that measured it.
    reference: String,
    reference_metric: Option<(Side, String)>,
    /// Who measured the figure against the reference: Rust, or our Python package.
    ours: Side,
    rust_metric: String,
    goal: Goal,
}

fn row(
    id: &'static str,
    workload: String,
    reference: &str,
    metric: Option<(Side, &str)>,
    rust: &str,
    goal: Goal,
) -> Row {
    Row {
        id,
        workload,
        reference: reference.to_owned(),
        reference_metric: metric.map(|(side, name)| (side, name.to_owned())),
        ours: Side::Rust,
        rust_metric: rust.to_owned(),
        goal,
    }
}

/// A row of the Python package's table: our package's `metric` against a reference.
fn package_row(
    workload: String,
    reference: &str,
    reference_metric: Option<(Side, &str)>,
    metric: &str,
    goal: Goal,
) -> Row {
    Row {
        ours: Side::Package,
        ..row("P", workload, reference, reference_metric, metric, goal)
    }
}

fn pkg(name: &str) -> Option<(Side, &str)> {
    Some((Side::Package, name))
}

/// The Python package's table: the same script (`bench_python.py`) run once with the Python
/// library and once with our package, each with numpy 1.23.5.
fn package_rows(options: &Options) -> Vec<Row> {
    let small = thousands(options.python_entries);
    let entries = thousands(options.entries);
    let create_small = format!("create.{}", options.python_entries);
    let create_entries = format!("create.{}", options.entries);
    let mib = options.array_mib;
    vec![
        package_row(
            format!("insert {small} small int values"),
            "mmappickle 1.0",
            py(&create_small),
            &create_small,
            Goal::None,
        ),
        package_row(
            format!("insert {entries} small int values"),
            "",
            None,
            &create_entries,
            Goal::RustUnder(1.0),
        ),
        package_row(
            format!("open + keys(), {entries} entries"),
            "mmappickle 1.0",
            py("open_keys"),
            "open_keys",
            Goal::RatioAtLeast(50.0),
        ),
        package_row(
            format!("{} random gets", thousands(options.gets)),
            "mmappickle 1.0",
            py("gets"),
            "gets",
            Goal::RatioAtLeast(5.0),
        ),
        package_row(
            format!("write a {mib} MiB float64 array"),
            "np.save",
            pkg("np_save"),
            "array_write",
            Goal::RatioAtLeast(1.0),
        ),
        package_row(
            format!("open + map + sum {mib} MiB (warm cache)"),
            "np.load(mmap_mode=\"r\") + sum",
            pkg("np_load_sum"),
            "map_sum",
            Goal::RatioAtLeast(1.0 / 1.2),
        ),
        package_row(
            format!(
                "delete {} of {entries} + vacuum",
                thousands(options.entries / 2)
            ),
            "mmappickle 1.0",
            py("delete_and_vacuum"),
            "delete_and_vacuum",
            Goal::RatioAtLeast(10.0),
        ),
    ]
}

fn py(name: &str) -> Option<(Side, &str)> {
    Some((Side::Python, name))
}

fn own(name: &str) -> Option<(Side, &str)> {
    Some((Side::Rust, name))
}

/// `10000` as `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut groups = Vec::new();
    let mut rest = digits.as_str();
    while rest.len() > 3 {
        let (head, last_three) = rest.split_at(rest.len() - 3);
        groups.push(last_three);
        rest = head;
    }
    groups.push(rest);
    groups.reverse();
    groups.join(",")
}

fn rows(options: &Options) -> Vec<Row> {
    let small = thousands(options.python_entries);
    let entries = thousands(options.entries);
    let create_small = format!("create.{}", options.python_entries);
    let create_entries = format!("create.{}", options.entries);
    let mib = options.array_mib;
    let gib = options.stub_gib;
    vec![
        row(
            "1",
            format!("create, {small} small int entries"),
            "mmappickle 1.0",
            py(&create_small),
            &create_small,
            Goal::None,
        ),
        row(
            "1",
            format!("create, {entries} small int entries"),
            "",
            None,
            &create_entries,
            Goal::RustUnder(1.0),
        ),
        row(
            "1",
            format!("{entries} inserts in one batch"),
            "single inserts (Rust)",
            own(&create_entries),
            &format!("batch_create.{}", options.entries),
            Goal::RatioAtLeast(10.0),
        ),
        row(
            "1",
            format!("one insert: #{entries} vs #100"),
            "insert #100 (Rust)",
            own("insert_100th"),
            "insert_last",
            Goal::RatioAtLeast(0.5),
        ),
        row(
            "2",
            format!("open + list keys, {entries} entries"),
            "mmappickle 1.0",
            py("open_keys"),
            "open_keys",
            Goal::RatioAtLeast(100.0),
        ),
        row(
            "3",
            format!("{} random gets", thousands(options.gets)),
            "mmappickle 1.0",
            py("gets"),
            "gets",
            Goal::RatioAtLeast(20.0),
        ),
        row(
            "3",
            format!("{} random gets in one snapshot", thousands(options.gets)),
            "mmappickle 1.0",
            py("gets"),
            "snapshot_gets",
            Goal::RatioAtLeast(100.0),
        ),
        row(
            "3",
            format!(
                "{} random gets: 4 threads, one shared dict",
                thousands(4 * options.gets)
            ),
            "1 thread (Rust)",
            own("gets_1_thread"),
            "gets_4_threads",
            Goal::RatioAtLeast(1.6),
        ),
        row(
            "4",
            format!("write a {mib} MiB float64 array"),
            "mmappickle 1.0",
            py("array_write"),
            "array_write",
            Goal::None,
        ),
        row(
            "4",
            String::new(),
            "np.save",
            py("np_save"),
            "array_write",
            Goal::RatioAtLeast(1.0),
        ),
        row(
            "4",
            String::new(),
            "limit: std::fs::write",
            own("std_fs_write"),
            "array_write",
            Goal::None,
        ),
        row(
            "5",
            format!("open + map + sum {mib} MiB (warm cache)"),
            "mmappickle 1.0",
            py("map_sum"),
            "map_sum",
            Goal::None,
        ),
        row(
            "5",
            String::new(),
            "np.load(mmap_mode=\"r\")",
            py("np_load_sum"),
            "map_sum",
            Goal::None,
        ),
        row(
            "5",
            String::new(),
            "numpy sum in RAM",
            py("ram_sum"),
            "map_sum",
            Goal::None,
        ),
        row(
            "5",
            String::new(),
            "limit: sum in RAM (Rust)",
            own("ram_sum"),
            "map_sum",
            Goal::RatioAtLeast(1.0 / 1.2),
        ),
        row(
            "6",
            format!("a {gib} GiB stub"),
            "mmappickle 1.0",
            py("stub"),
            "stub",
            Goal::RustUnder(1e-3),
        ),
        row(
            "6",
            "a 1 TiB stub".to_owned(),
            "mmappickle 1.0",
            py("stub_1tib"),
            "stub_1tib",
            Goal::RustUnder(1e-3),
        ),
        row(
            "7",
            format!(
                "delete {} of {entries} entries",
                thousands(options.entries / 2)
            ),
            "mmappickle 1.0",
            py("delete_half"),
            "delete_half",
            Goal::None,
        ),
        row(
            "7",
            "then vacuum".to_owned(),
            "mmappickle 1.0",
            py("vacuum"),
            "vacuum",
            Goal::RatioAtLeast(10.0),
        ),
        row(
            "7",
            "delete half + vacuum".to_owned(),
            "mmappickle 1.0",
            py("delete_and_vacuum"),
            "delete_and_vacuum",
            Goal::RatioAtLeast(10.0),
        ),
        row(
            "7",
            "delete half in one batch + vacuum".to_owned(),
            "mmappickle 1.0",
            py("delete_and_vacuum"),
            "batch_delete_and_vacuum",
            Goal::RatioAtLeast(10.0),
        ),
        row(
            "8",
            format!("loads, {} str -> int dict", thousands(options.dict_entries)),
            "pickle.loads (C)",
            py("loads"),
            "loads",
            Goal::RatioAtLeast(1.0),
        ),
        row(
            "8",
            format!("dumps, {} str -> int dict", thousands(options.dict_entries)),
            "pickle.dumps (C)",
            py("dumps"),
            "dumps",
            Goal::RatioAtLeast(1.0),
        ),
        row(
            "9",
            format!(
                "read a {} MiB array over loopback HTTP (nginx) into memory",
                options.remote_mib
            ),
            "curl -o /dev/shm/...",
            own("remote.curl_array_memory"),
            "remote.array",
            Goal::RatioAtLeast(1.0),
        ),
        row(
            "9",
            String::new(),
            "curl -o /dev/null",
            own("remote.curl_array"),
            "remote.array",
            Goal::None,
        ),
        row(
            "10",
            format!("open + list keys over loopback HTTP, {entries} entries"),
            "local open (Rust)",
            own("remote.local_open_keys"),
            "remote.open_keys",
            Goal::RatioAtLeast(1.0 / 3.0),
        ),
        row(
            "11",
            format!("import-npy, {} MiB float64 (CLI)", options.bulk_mib),
            "cp of the .npy",
            own("bulk_cp"),
            "bulk_import",
            Goal::RatioAtLeast(1.0 / 1.3),
        ),
        row(
            "11",
            format!("export-npy, {} MiB float64 (CLI)", options.bulk_mib),
            "cp of the .npy",
            own("bulk_cp"),
            "bulk_export",
            Goal::RatioAtLeast(1.0 / 1.3),
        ),
    ]
    .into_iter()
    .chain(cli_rows(options))
    .collect()
}

/// Rows 12 to 19: the read commands of `mmappickle` as processes, against the Python a user
/// scripts (a process too) and against the library's in-process time.
fn cli_rows(options: &Options) -> Vec<Row> {
    let entries = thousands(options.entries);
    let python = |name| format!("python -c: {name} (process)");
    let library = |name| format!("library in-process: {name}");
    let mut rows = Vec::new();
    for (id, command, metric, python_equivalent, library_equivalent, goals) in [
        (
            "12",
            "ls",
            "ls",
            "mmapdict(f, True).keys()",
            "open + keys",
            [Goal::RatioAtLeast(100.0), Goal::RatioAtLeast(1.0 / 3.0)],
        ),
        (
            "13",
            "ls --json",
            "ls_json",
            "json.dumps of keys()",
            "open + listing",
            [Goal::None, Goal::None],
        ),
        (
            "14",
            "info",
            "info",
            "commit_number, len(keys())",
            "open + entry_listing",
            [Goal::None, Goal::None],
        ),
        (
            "15",
            "get FILE key5000",
            "get",
            "m['key5000']",
            "open + get",
            [Goal::None, Goal::None],
        ),
        (
            "16",
            "dump --json",
            "dump_json",
            "json.dumps of every value",
            "open + for_each_item",
            [Goal::RatioAtLeast(50.0), Goal::None],
        ),
        (
            "17",
            "dis",
            "dis",
            "pickletools.dis",
            "open + every value's ops",
            [Goal::None, Goal::None],
        ),
    ] {
        let rust = format!("cli.{metric}");
        let library_metric = format!("cli_lib.{metric}");
        rows.push(row(
            id,
            format!("`mmappickle {command}`, {entries} entries"),
            &python(python_equivalent),
            py(&rust),
            &rust,
            goals[0],
        ));
        rows.push(row(
            id,
            String::new(),
            &library(library_equivalent),
            own(&library_metric),
            &rust,
            goals[1],
        ));
    }
    rows.push(row(
        "18",
        format!(
            "`mmappickle ls`, {} entries",
            thousands(options.big_entries)
        ),
        &library("open + keys"),
        own("cli_lib.ls_big"),
        "cli.ls_big",
        Goal::RustUnder(0.05),
    ));
    rows.push(row(
        "19",
        "process start: `mmappickle --version`".to_owned(),
        "python -c 'import mmappickle'",
        py("cli.start"),
        "cli.start",
        Goal::None,
    ));
    rows
}

/// A row with its figures.
#[derive(Debug, Clone)]
struct Figures<'a> {
    row: &'a Row,
    reference: Option<f64>,
    rust: Option<f64>,
    reference_samples: &'a [f64],
    rust_samples: &'a [f64],
}

impl Figures<'_> {
    fn ratio(&self) -> Option<f64> {
        Some(self.reference? / self.rust?)
    }

    /// The ratio of the best runs: what each side does when the machine interferes least.
    fn best_ratio(&self) -> Option<f64> {
        Some(fastest(self.reference_samples)? / fastest(self.rust_samples)?)
    }

    fn met(&self) -> Option<bool> {
        self.row.goal.met(self.reference, self.rust)
    }
}

fn figures_of<'a>(rows: &'a [Row], measured: &'a Measurements) -> Vec<Figures<'a>> {
    rows.iter()
        .map(|row| {
            let reference_samples = row
                .reference_metric
                .as_ref()
                .map_or(&[][..], |(side, name)| measured.samples(*side, name));
            let rust_samples = measured.samples(row.ours, &row.rust_metric);
            Figures {
                row,
                reference: median(reference_samples),
                rust: median(rust_samples),
                reference_samples,
                rust_samples,
            }
        })
        .collect()
}

fn format_seconds(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

fn format_ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}x")
    } else {
        format!("{ratio:.2}x")
    }
}

/// The table, in Markdown (it goes as is into BENCHMARKS.md).
fn table(figures: &[Figures<'_>], ours: &str) -> String {
    let mut lines = vec![
        format!(
            "| row | workload | reference | reference | {ours} | ratio | goal | met | best runs' ratio |"
        ),
        "|---|---|---|---:|---:|---:|---|---|---:|".to_owned(),
    ];
    let or_dash = |text: Option<String>| text.unwrap_or_else(|| "-".to_owned());
    for figure in figures {
        let row = figure.row;
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.id,
            row.workload,
            if row.reference.is_empty() {
                "-"
            } else {
                &row.reference
            },
            or_dash(figure.reference.map(format_seconds)),
            or_dash(figure.rust.map(format_seconds)),
            or_dash(figure.ratio().map(format_ratio)),
            row.goal.describe(),
            match figure.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            },
            or_dash(figure.best_ratio().map(format_ratio)),
        ));
    }
    lines.join("\n") + "\n"
}

/// Facts from `/proc` and the tools: where and with what the run happened.
fn machine() -> Vec<(&'static str, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    vec![
        ("cpu", cpu),
        ("cores", cores.to_string()),
        ("memory", memory),
        (
            "kernel",
            read("/proc/sys/kernel/osrelease").trim().to_owned(),
        ),
        ("rustc", rustc),
    ]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:e}"),
        _ => "null".to_owned(),
    }
}

fn json_samples(samples: &[f64]) -> String {
    let items: Vec<String> = samples.iter().map(|&s| json_number(Some(s))).collect();
    format!("[{}]", items.join(", "))
}

fn json_object(fields: &[(String, String)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}: {value}", json_string(name)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The whole run as JSON: machine, options, rows (medians and samples), driver facts.
fn json(
    command_line: &str,
    options: &Options,
    machine: &[(&'static str, String)],
    figures: &[Figures<'_>],
    measured: &Measurements,
) -> String {
    let machine = json_object(
        &machine
            .iter()
            .map(|(name, value)| (name.to_string(), json_string(value)))
            .collect::<Vec<_>>(),
    );
    let sizes = json_object(&[
        ("runs".to_owned(), options.runs.to_string()),
        (
            "python_create_runs".to_owned(),
            options.python_create_runs.to_string(),
        ),
        ("entries".to_owned(), options.entries.to_string()),
        (
            "python_entries".to_owned(),
            options.python_entries.to_string(),
        ),
        ("gets".to_owned(), options.gets.to_string()),
        ("array_mib".to_owned(), options.array_mib.to_string()),
        ("stub_gib".to_owned(), options.stub_gib.to_string()),
        ("dict_entries".to_owned(), options.dict_entries.to_string()),
        ("bulk_mib".to_owned(), options.bulk_mib.to_string()),
    ]);
    let rows: Vec<String> = figures
        .iter()
        .map(|figure| {
            let row = figure.row;
            json_object(&[
                ("row".to_owned(), json_string(row.id)),
                ("workload".to_owned(), json_string(&row.workload)),
                ("reference".to_owned(), json_string(&row.reference)),
                (
                    "reference_seconds".to_owned(),
                    json_number(figure.reference),
                ),
                ("rust_seconds".to_owned(), json_number(figure.rust)),
                ("ratio".to_owned(), json_number(figure.ratio())),
                ("best_ratio".to_owned(), json_number(figure.best_ratio())),
                ("goal".to_owned(), json_string(&row.goal.describe())),
                (
                    "met".to_owned(),
                    figure
                        .met()
                        .map_or("null".to_owned(), |met| met.to_string()),
                ),
                (
                    "reference_samples".to_owned(),
                    json_samples(figure.reference_samples),
                ),
                ("rust_samples".to_owned(), json_samples(figure.rust_samples)),
            ])
        })
        .collect();
    let info = json_object(
        &measured
            .info
            .iter()
            .map(|((side, name), value)| (format!("{}.{name}", side.name()), json_string(value)))
            .collect::<Vec<_>>(),
    );
    json_object(&[
        ("command".to_owned(), json_string(command_line)),
        ("machine".to_owned(), machine),
        ("options".to_owned(), sizes),
        ("rows".to_owned(), format!("[\n  {}\n]", rows.join(",\n  "))),
        ("info".to_owned(), info),
    ]) + "\n"
}

/// Runs a driver, echoing the command; its stdout, for [`Measurements::parse`].
fn capture(command: &mut Command) -> Result<String> {
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
struct Workload {
    name: &'static str,
    flags: Vec<(&'static str, String)>,
    python_runs: usize,
}

fn workloads(options: &Options, dir: &Path) -> Vec<Workload> {
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

impl Options {
    /// Whether `--only` lets `workload` run.
    fn selects(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|name| name == workload)
    }
}

fn driver_command(
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

fn add_flags(command: &mut Command, flags: &[(&str, String)]) {
    for (name, value) in flags {
        command.arg(format!("--{name}")).arg(value);
    }
}

pub fn main(args: &[String]) -> Result {
    let options = parse_options(args)?;
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
    step("build the Rust driver (release)", || {
        run(cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "mmappickle",
            "--example",
            "bench_workloads",
        ]))?;
        run(cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "mmappickle-remote",
            "--example",
            "bench_remote",
        ]))?;
        run(cargo().args(["build", "--release", "--quiet", "-p", "mmappickle-cli"]))
    })?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let driver = target
        .join("release")
        .join("examples")
        .join("bench_workloads");
    let script = root.join("xtask").join("bench").join("bench_python.py");
    let dir = root.join("target").join("bench");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let command_line = std::iter::once("cargo xtask bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
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
    for workload in workloads(&options, &dir) {
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
            let remote_driver = target.join("release").join("examples").join("bench_remote");
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

    let rows = rows(&options);
    let mut figures = figures_of(&rows, &measured);
    // Rows of workloads that did not run (`--only`) are left out.
    figures.retain(|figure| figure.rust.is_some() || figure.reference.is_some());
    let machine = machine();
    let mut report = format!("- command: `{command_line}`\n");
    for (name, value) in &machine {
        let _ = writeln!(report, "- {name}: {value}");
    }
    for name in ["python", "numpy"] {
        if let Some(version) = measured.info(Side::Python, name) {
            let _ = writeln!(report, "- {name}: {version}");
        }
    }
    let _ = writeln!(
        report,
        "- load average before / after: {load_before} / {}",
        load_average()
    );
    let _ = writeln!(
        report,
        "- medians of {} runs (Python's row 1: {})\n",
        options.runs,
        options.python_create_runs.min(options.runs)
    );
    report.push_str(&table(&figures, "Rust"));
    let package_rows = package_rows(&options);
    let package_figures = figures_of(&package_rows, &measured);
    if package_python.is_some() {
        let _ = writeln!(
            report,
            "\nThe Python package (`crates/python`, numpy 1.23.5), same script as mmappickle 1.0:\n"
        );
        report.push_str(&table(&package_figures, "ours (Python)"));
    }
    report.push('\n');
    for side in [Side::Python, Side::Rust] {
        if let (Some(peak), Some(growth)) = (
            measured.info(side, "stub.peak_rss_kib"),
            measured.info(side, "stub.rss_growth_kib"),
        ) {
            let _ = writeln!(
                report,
                "- row 6, {}: peak RSS of the process making the stubs {peak} KiB, {growth} KiB of it grown while making them",
                side.name()
            );
        }
    }
    let entries = options.entries;
    if let (Some(same_bytes), Some(same_dict)) = (
        measured.info(
            Side::Rust,
            &format!("create.{entries}.same_bytes_as_python"),
        ),
        measured.info(Side::Rust, &format!("create.{entries}.same_dict_as_python")),
    ) {
        let _ = writeln!(
            report,
            "- row 1: the file Rust made holds the same dict as mmappickle 1.0's: {same_dict}; \
             is byte for byte mmappickle 1.0's: {same_bytes}"
        );
    }
    println!("\n{report}");
    if let Some(path) = &options.json {
        std::fs::write(
            path,
            json(
                &command_line,
                &options,
                &machine,
                &[figures.clone(), package_figures.clone()].concat(),
                &measured,
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The median of an even count is the mean of the middle two; none of nothing.
    #[test]
    fn median_and_fastest_of_odd_even_and_empty() {
        assert_eq!(fastest(&[3.0, 1.0, 2.0]), Some(1.0));
        assert_eq!(fastest(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

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

    // Driver lines are read per side; anything else is an error, not silently dropped.
    #[test]
    fn measurements_parse_the_line_protocol() {
        let mut measured = Measurements::default();
        measured
            .parse(Side::Rust, "sample gets 1e-3\nsample gets 3e-3\ninfo n 5\n")
            .unwrap();
        assert_eq!(measured.samples(Side::Rust, "gets"), [1e-3, 3e-3]);
        assert!(measured.samples(Side::Python, "gets").is_empty());
        assert_eq!(measured.info(Side::Rust, "n"), Some("5"));
        assert!(measured
            .parse(Side::Rust, "Traceback (most recent call last):")
            .is_err());
    }

    // A ratio goal compares reference / Rust; a missing figure decides nothing.
    #[test]
    fn goals_are_judged_on_the_medians() {
        assert_eq!(
            Goal::RatioAtLeast(10.0).met(Some(1.0), Some(0.05)),
            Some(true)
        );
        assert_eq!(
            Goal::RatioAtLeast(10.0).met(Some(1.0), Some(0.2)),
            Some(false)
        );
        assert_eq!(
            Goal::RatioAtLeast(0.5).met(Some(1.0), Some(1.9)),
            Some(true)
        );
        assert_eq!(Goal::RustUnder(1e-3).met(None, Some(2e-3)), Some(false));
        assert_eq!(Goal::RatioAtLeast(1.0).met(None, Some(1.0)), None);
        assert_eq!(Goal::None.met(Some(1.0), Some(1.0)), None);
        assert_eq!(Goal::RatioAtLeast(1.0 / 1.2).describe(), "within 1.2x");
    }

    // Labels group digits by three.
    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(123_456), "123,456");
    }

    // Every package row's metric is one the Python driver prints (run with our package).
    #[test]
    fn every_package_row_has_a_metric_the_python_driver_prints() {
        let driver = include_str!("../bench/bench_python.py");
        for row in package_rows(&Options::default()) {
            let metric = row.rust_metric.split('.').next().unwrap_or_default();
            assert!(driver.contains(&format!("\"{metric}")), "{metric}");
            assert_eq!(row.ours, Side::Package);
        }
    }

    // JSON strings escape quotes, backslashes and control characters.
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(json_number(Some(f64::NAN)), "null");
    }

    // Every row's Rust metric is one a workload of the driver prints.
    #[test]
    fn every_row_has_a_rust_metric_the_driver_prints() {
        let driver = include_str!("../../crates/mmappickle/examples/bench_workloads.rs");
        let remote_driver = include_str!("../../crates/remote/examples/bench_remote.rs");
        let options = Options::default();
        for row in rows(&options) {
            let metric = row.rust_metric.split('.').next().unwrap_or_default();
            assert!(
                driver.contains(&format!("\"{metric}"))
                    || remote_driver.contains(&format!("sample {} ", row.rust_metric)),
                "{metric}"
            );
        }
    }
}
