//! The table's rows: which figure of ours is compared with which reference, and the goal.

use super::measure::Side;
use super::render::format_seconds;
use super::Options;

/// What a row's Rust figure must achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Goal {
    /// No goal: shown for context.
    None,
    /// `reference / rust` at least this (10.0: ten times faster; 0.5: at most twice slower).
    RatioAtLeast(f64),
    /// The Rust figure under this many seconds.
    RustUnder(f64),
}

impl Goal {
    pub(super) fn describe(self) -> String {
        match self {
            Goal::None => String::new(),
            Goal::RatioAtLeast(ratio) if ratio >= 1.0 => format!(">= {ratio}x"),
            Goal::RatioAtLeast(ratio) => format!("within {:.1}x", 1.0 / ratio),
            Goal::RustUnder(seconds) => format!("< {}", format_seconds(seconds)),
        }
    }

    pub(super) fn met(self, reference: Option<f64>, rust: Option<f64>) -> Option<bool> {
        match self {
            Goal::None => None,
            Goal::RatioAtLeast(at_least) => Some(reference? / rust? >= at_least),
            Goal::RustUnder(seconds) => Some(rust? < seconds),
        }
    }
}

/// One line of the table: a reference figure against a Rust figure.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) id: &'static str,
    pub(super) workload: String,
    /// What the reference is, and the side and metric that measured it.
    pub(super) reference: String,
    pub(super) reference_metric: Option<(Side, String)>,
    /// Who measured the figure against the reference: Rust, or our Python package.
    pub(super) ours: Side,
    pub(super) rust_metric: String,
    pub(super) goal: Goal,
}

pub(super) fn row(
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
pub(super) fn package_row(
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

pub(super) fn pkg(name: &str) -> Option<(Side, &str)> {
    Some((Side::Package, name))
}

/// The Python package's table: the same script (`bench_python.py`) run once with the Python
/// library and once with our package, each with numpy 1.23.5.
pub(super) fn package_rows(options: &Options) -> Vec<Row> {
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

pub(super) fn py(name: &str) -> Option<(Side, &str)> {
    Some((Side::Python, name))
}

pub(super) fn own(name: &str) -> Option<(Side, &str)> {
    Some((Side::Rust, name))
}

/// `10000` as `10,000`.
pub(super) fn thousands(n: usize) -> String {
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

pub(super) fn rows(options: &Options) -> Vec<Row> {
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
pub(super) fn cli_rows(options: &Options) -> Vec<Row> {
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
            "open + listing_without_kinds",
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let driver = include_str!("../../bench/bench_python.py");
        for row in package_rows(&Options::default()) {
            let metric = row.rust_metric.split('.').next().unwrap_or_default();
            assert!(driver.contains(&format!("\"{metric}")), "{metric}");
            assert_eq!(row.ours, Side::Package);
        }
    }

    // Every row's Rust metric is one a workload of the driver prints.
    #[test]
    fn every_row_has_a_rust_metric_the_driver_prints() {
        let driver = include_str!("../../../bench/src/bin/bench_workloads.rs");
        let remote_driver = include_str!("../../../bench/src/bin/bench_remote.rs");
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
