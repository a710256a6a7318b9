//! Rendering: the Markdown table and report, the machine's facts, the JSON of a run.

use std::fmt::Write as _;
use std::process::Command;

use super::measure::{figures_of, Figures, Measurements, Side};
use super::rows::{package_rows, rows};
use super::run::Run;
use super::Options;
use crate::Result;

pub(super) fn format_seconds(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

pub(super) fn format_ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}x")
    } else {
        format!("{ratio:.2}x")
    }
}

/// The table, in Markdown (it goes as is into BENCHMARKS.md).
pub(super) fn table(figures: &[Figures<'_>], ours: &str) -> String {
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
pub(super) fn machine() -> Vec<(&'static str, String)> {
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

/// The load averages of 1, 5 and 15 minutes, as the kernel gives them.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn json_string(text: &str) -> String {
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

pub(super) fn json_number(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:e}"),
        _ => "null".to_owned(),
    }
}

pub(super) fn json_samples(samples: &[f64]) -> String {
    let items: Vec<String> = samples.iter().map(|&s| json_number(Some(s))).collect();
    format!("[{}]", items.join(", "))
}

pub(super) fn json_object(fields: &[(String, String)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}: {value}", json_string(name)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The whole run as JSON: machine, options, rows (medians and samples), driver facts.
pub(super) fn json(
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

/// Prints the report (and writes its JSON when asked): the tables and the notes under them.
pub(super) fn report(options: &Options, command_line: &str, run: &Run) -> Result {
    let measured = &run.measured;
    let load_before = &run.load_before;
    let rows = rows(options);
    let mut figures = figures_of(&rows, measured);
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
    let package_rows = package_rows(options);
    let package_figures = figures_of(&package_rows, measured);
    if run.package_ran {
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
                command_line,
                options,
                &machine,
                &[figures.clone(), package_figures.clone()].concat(),
                measured,
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

    // JSON strings escape quotes, backslashes and control characters.
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(json_number(Some(f64::NAN)), "null");
    }
}
