//! `cargo xtask peers`: our Python package against the storage libraries a scientist would
//! pick instead (h5py, zarr, safetensors, numpy's `.npz` / `.npy`, joblib, pickle), on the
//! workloads of `xtask/bench/peers.py`, in one environment of its own (`target/py-peers`)
//! with our wheel installed. The tables replace their section of BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::bench::load_average;
use crate::{step, venv, workspace_root, Result};

pub const USAGE: &str =
    "peers [--runs N] [--process-runs N] [--budget SECONDS] [--wheel PATH] [--no-write]   \
our Python package against h5py, zarr, safetensors, .npz/.npy, joblib, pickle (BENCHMARKS.md)";

/// Numpy 2 and the peers, newest releases at creation time (zarr 3 needs Python 3.11).
const PEERS: venv::Environment = venv::Environment {
    dir: "py-peers",
    packages: &["numpy>=2,<3", "h5py", "zarr>=3,<4", "safetensors", "joblib"],
    python_minors: 11..=u32::MAX,
    ready_check: "import numpy, h5py, zarr, safetensors.numpy, joblib; \
        assert numpy.__version__.startswith('2.') and zarr.__version__.startswith('3.')",
};

const BEGIN: &str = "<!-- cargo xtask peers: begin (generated, replaced on each run) -->";
const END: &str = "<!-- cargo xtask peers: end -->";

struct Options {
    runs: usize,
    process_runs: usize,
    budget: f64,
    wheel: Option<PathBuf>,
    write: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 7,
        process_runs: 15,
        budget: 8.0,
        wheel: None,
        write: true,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .cloned()
        };
        let number = |text: String| {
            text.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0)
                .ok_or_else(|| format!("{flag}: {text:?} is not a positive number"))
        };
        match flag.as_str() {
            "--runs" => options.runs = number(value()?)? as usize,
            "--process-runs" => options.process_runs = number(value()?)? as usize,
            "--budget" => options.budget = number(value()?)?,
            "--wheel" => options.wheel = Some(PathBuf::from(value()?)),
            "--no-write" => options.write = false,
            _ => return Err(format!("unexpected argument {flag:?}\nusage: {USAGE}")),
        }
    }
    Ok(options)
}

pub fn main(args: &[String]) -> Result {
    let options = parse_options(args)?;
    let root = workspace_root();
    let python = step("peers environment (target/py-peers)", || {
        venv::ensure(&PEERS)
    })?;
    step("our wheel, installed into target/py-peers", || {
        let wheel = match &options.wheel {
            Some(wheel) => wheel.clone(),
            None => crate::pypackage::build_wheel(&crate::venv::ensure_package()?.build)?,
        };
        crate::pypackage::install_wheel(&python, &wheel)
    })?;
    // Under target/, not /tmp: /tmp may be a tmpfs, where "on disk" would mean RAM.
    let scratch = root.join("target").join("peers");
    let load_before = load_average();
    let output = step("workloads (xtask/bench/peers.py)", || {
        let mut command = Command::new(&python);
        command
            .arg(root.join("xtask").join("bench").join("peers.py"))
            .arg("--dir")
            .arg(&scratch)
            .args(["--runs", &options.runs.to_string()])
            .args(["--process-runs", &options.process_runs.to_string()])
            .args(["--budget", &options.budget.to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(&root)
            // Progress goes to the terminal through stderr; stdout is the results.
            .stderr(Stdio::inherit());
        let output = command
            .output()
            .map_err(|e| format!("cannot run peers.py: {e}"))?;
        if !output.status.success() {
            return Err(format!("peers.py failed ({})", output.status));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    })?;
    let _ = std::fs::remove_dir_all(&scratch);
    let results = Results::parse(&output)?;
    let context = Context {
        command: std::iter::once("cargo xtask peers")
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        commit: head_commit(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        load: format!("{load_before} / {}", load_average()),
        runs: options.runs,
        budget: options.budget,
    };
    let section = section(&results, &context);
    println!("\n{}", summary(&results));
    if options.write {
        let path = root.join("BENCHMARKS.md");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        std::fs::write(&path, replace_section(&text, &section))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote its section of {}", path.display());
    }
    Ok(())
}

/// The short hash of the commit measured (our wheel is built from the working tree).
fn head_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// What one library did in one workload.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The median of `runs`; `lower_bound` when the runs stopped early and were extrapolated.
    Timed {
        runs: usize,
        seconds: f64,
        lower_bound: bool,
    },
    /// Why the library cannot do it.
    Cannot(String),
}

#[derive(Debug)]
struct Row {
    library: String,
    outcome: Outcome,
    note: String,
}

#[derive(Debug)]
struct Workload {
    id: String,
    title: String,
    rows: Vec<Row>,
}

/// The script's output: `info`, `workload`, `result` and `na` lines, tab-separated.
#[derive(Debug, Default)]
struct Results {
    info: Vec<(String, String)>,
    workloads: Vec<Workload>,
}

/// Ours is the first library of every workload (the script's order); a workload may time
/// other ways of ours after it (`OURS` followed by `, how)`).
const OURS: &str = "mmappickle-rs (ours)";

/// Whether `library` is ours, done the main way or another.
fn is_ours(library: &str) -> bool {
    library == OURS || library.starts_with("mmappickle-rs (ours, ")
}

impl Results {
    fn parse(output: &str) -> Result<Self> {
        let mut results = Results::default();
        for line in output.lines().filter(|line| !line.trim().is_empty()) {
            let fields: Vec<&str> = line.split('\t').collect();
            let bad = || format!("unexpected line from peers.py: {line:?}");
            match fields.as_slice() {
                ["info", name, value] => results.info.push((name.to_string(), value.to_string())),
                ["workload", id, title] => results.workloads.push(Workload {
                    id: id.to_string(),
                    title: title.to_string(),
                    rows: Vec::new(),
                }),
                [kind @ ("result" | "na"), id, library, rest @ ..] => {
                    let (outcome, note) = match (*kind, rest) {
                        ("result", [runs, seconds, bound, note]) => (
                            Outcome::Timed {
                                runs: runs.parse().map_err(|_| bad())?,
                                seconds: seconds.parse().map_err(|_| bad())?,
                                lower_bound: *bound == ">",
                            },
                            note.to_string(),
                        ),
                        ("na", [reason]) => (Outcome::Cannot(reason.to_string()), String::new()),
                        _ => return Err(bad()),
                    };
                    let workload = results
                        .workloads
                        .iter_mut()
                        .find(|w| w.id == *id)
                        .ok_or_else(bad)?;
                    workload.rows.push(Row {
                        library: library.to_string(),
                        outcome,
                        note,
                    });
                }
                _ => return Err(bad()),
            }
        }
        Ok(results)
    }

    fn info(&self, name: &str) -> &str {
        self.info
            .iter()
            .find(|(n, _)| n == name)
            .map_or("?", |(_, value)| value)
    }
}

impl Row {
    fn timed(&self) -> Option<(f64, bool)> {
        match self.outcome {
            Outcome::Timed {
                seconds,
                lower_bound,
                ..
            } => Some((seconds, lower_bound)),
            Outcome::Cannot(_) => None,
        }
    }
}

impl Workload {
    /// Our fastest way of doing the job: its row and its time.
    fn ours(&self) -> Option<(&Row, f64)> {
        self.rows
            .iter()
            .filter(|row| is_ours(&row.library))
            .filter_map(|row| row.timed().map(|(seconds, _)| (row, seconds)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The fastest peer that did the job: its row and its time.
    fn fastest_peer(&self) -> Option<(&Row, f64, bool)> {
        self.rows
            .iter()
            .filter(|row| !is_ours(&row.library))
            .filter_map(|row| row.timed().map(|(s, bound)| (row, s, bound)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

fn format_seconds(seconds: f64) -> String {
    let (value, unit) = match seconds.abs() {
        s if s >= 1.0 => (seconds, "s"),
        s if s >= 1e-3 => (seconds * 1e3, "ms"),
        _ => (seconds * 1e6, "µs"),
    };
    let digits = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{value:.digits$} {unit}")
}

/// `peer / ours`: below 1, the peer is faster and we lose.
fn format_ratio(peer: f64, ours: f64, lower_bound: bool) -> String {
    let ratio = peer / ours;
    let bound = if lower_bound { "> " } else { "" };
    if ours <= 0.0 || peer <= 0.0 {
        "-".to_owned()
    } else if ratio >= 10.0 {
        format!("{bound}{ratio:.0}x")
    } else {
        format!("{bound}{ratio:.2}x")
    }
}

/// One line per workload: ours, the fastest peer, the ratio (bold where we lose).
fn summary(results: &Results) -> String {
    let mut text = String::from(
        "| workload | ours | fastest peer | its time | ratio (peer / ours) |\n|---|---:|---|---:|---:|\n",
    );
    for workload in &results.workloads {
        let ours_row = workload.ours();
        let ours = ours_row.map(|(_, seconds)| seconds);
        let fastest = workload.fastest_peer();
        let ratio = match (ours, fastest) {
            (Some(ours), Some((_, peer, bound))) => {
                let ratio = format_ratio(peer, ours, bound);
                if peer < ours && ratio != "-" {
                    format!("**{ratio}**")
                } else {
                    ratio
                }
            }
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            text,
            "| {} {} | {} | {} | {} | {ratio} |",
            workload.id,
            workload.title,
            ours_row.map_or("-".to_owned(), |(row, seconds)| {
                match row.library.strip_prefix("mmappickle-rs (ours, ") {
                    Some(how) => format!("{} ({}", format_seconds(seconds), how),
                    None => format_seconds(seconds),
                }
            }),
            fastest.map_or("-", |(row, _, _)| row.library.as_str()),
            fastest.map_or("-".to_owned(), |(_, s, bound)| {
                format!("{}{}", if bound { "> " } else { "" }, format_seconds(s))
            }),
        );
    }
    text
}

/// Every library's row of one workload.
fn workload_table(workload: &Workload) -> String {
    let ours = workload.ours().map(|(_, seconds)| seconds);
    let mut text = format!(
        "**{} {}**\n\n| library | median | runs | ratio (peer / ours) | note |\n|---|---:|---:|---:|---|\n",
        workload.id, workload.title
    );
    for row in &workload.rows {
        let (time, runs, ratio) = match &row.outcome {
            Outcome::Timed {
                runs,
                seconds,
                lower_bound,
            } => (
                format!(
                    "{}{}",
                    if *lower_bound { "> " } else { "" },
                    format_seconds(*seconds)
                ),
                runs.to_string(),
                match ours {
                    Some(ours) if !is_ours(&row.library) => {
                        format_ratio(*seconds, ours, *lower_bound)
                    }
                    _ => "-".to_owned(),
                },
            ),
            Outcome::Cannot(reason) => (reason.clone(), "-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            text,
            "| {} | {time} | {runs} | {ratio} | {} |",
            row.library, row.note
        );
    }
    text
}

struct Context {
    command: String,
    commit: String,
    cores: usize,
    load: String,
    runs: usize,
    budget: f64,
}

/// The whole section of BENCHMARKS.md, markers included.
fn section(results: &Results, context: &Context) -> String {
    let mut text = format!("{BEGIN}\n## Against other storage libraries (`cargo xtask peers`)\n\n");
    text.push_str(INTRO);
    let _ = writeln!(
        text,
        "\nThis run: `{}` at commit {}, {} cores, load average before / after {}; CPython {}, numpy {}, \
         mmappickle-rs {}, h5py {} (HDF5 {}), zarr {}, safetensors {}, joblib {}. \
         `python -c 'import numpy'` took {}. Medians of {} runs, fewer \
         where a library's runs took more than {} s in all (the runs column). One run on a \
         shared 2-core machine (the load averages say how busy it was): re-run before \
         relying on the figures.\n",
        context.command,
        context.commit,
        context.cores,
        context.load,
        results.info("python"),
        results.info("numpy"),
        results.info("mmappickle-rs"),
        results.info("h5py"),
        results.info("hdf5"),
        results.info("zarr"),
        results.info("safetensors"),
        results.info("joblib"),
        results.info("python -c 'import numpy'"),
        context.runs,
        context.budget,
    );
    text.push_str(&summary(results));
    text.push_str("\nEvery library, workload by workload:\n");
    for workload in &results.workloads {
        text.push('\n');
        text.push_str(&workload_table(workload));
    }
    text.push('\n');
    text.push_str(NOT_COMPARABLE);
    text.push_str(END);
    text.push('\n');
    text
}

const INTRO: &str = "\
`cargo xtask peers` (a few minutes) builds our wheel (`crates/python`, as `cargo xtask test`
does; `--wheel PATH` installs a built one instead), installs it into `target/py-peers` beside
numpy 2, h5py, zarr 3, safetensors and joblib from pip, and runs `xtask/bench/peers.py`: each
library does each workload its own idiomatic way (the script is the reference), in one
process, warm page cache, scratch files under `target/peers/` (removed after). Sizes: 64
float32 arrays of 4 MiB (1 Mi elements, 256 MiB in all, random normal values) and 1,000 small
values (ints, strings and dicts in turn); 10,000 small values for rows 6; 64 KiB slices; a 64
GiB float32 stub. The libraries run in turns, one run of each per round, so that a change of
the machine's load hits them alike; each round runs them in a new random order (a library
that gives much memory back to the kernel makes its successor fault fresh pages in: in a
fixed order, always the same successor, ours after pickle), each outcome is freed before the
next timing starts (freeing 64 arrays of 4 MiB takes about 20 ms, which was once timed as the
next library's), and the dirty pages of the writes before are written back (`os.sync()`,
untimed: their writeback throttled the next writer, by up to 70 ms in row 1). Each timing
opens the store itself (rows 3 to 6c include the open), and each outcome is checked after the
clock stops: keys listed, slices equal to what was
written, sums equal to numpy's sums of the arrays written, values got equal to those put,
the stub's last MiB read back and the store's disk use under 64 MiB. The ratio is the peer's
time over ours: below 1 (bold in the summary) the peer is faster and we lose. Row 7 times
ours two ways, through a map (`m[k][a:b] = tail`, a page fault per page of the hole) and with
`m.write_rows` (`pwrite`); the summary gives our faster way, named.
";

const NOT_COMPARABLE: &str = "\
What is not comparable:
- pickle reads the whole file at the open, joblib unpickles every value and maps every
  array at the open, `.npz` reads (and inflates, if compressed) a whole member at each
  access even for a slice: their rows 2 to 4 and 6c pay that every time.
- safetensors and `.npz` hold no small values, so they are stored as JSON text metadata
  (safetensors) and one pickled object array (`.npz`); `.npy` files keep them in one
  `meta.json` and h5py keeps dicts as JSON text attributes. Each of those reads all the
  small values at the open (row 6c).
- \"rewrites the file\": the library cannot add to a store it wrote (safetensors, `.npz`,
  joblib, pickle; the small values of `.npy` files are one `meta.json`), so the only way is
  to write the whole store again; \"n/a\" rows cannot do the job at all (a 64 GiB array
  that is not in RAM).
- Row 6a stops a library after 5 s and extrapolates linearly: a lower bound (\"> \"), as
  each of those inserts (h5py's attributes, zarr's `zarr.json`) rewrites more than the last.
- h5py and zarr keep the small values as attributes of the root (the idiomatic place):
  zarr rewrites its whole `zarr.json` per attribute set, h5py has no batch form.
- Nobody calls fsync: every write ends in the page cache, as ours does by default.
- Row 2b is timed inside each new `python -c` process, from after its `import numpy` to
  the keys listed (median of `--process-runs` processes): the start of the interpreter and
  numpy's own import vary by tens of ms between processes here (the range is above), which
  would drown a few ms. Its note gives the whole-process figure too: the fastest process
  minus the fastest `python -c 'import numpy'` run in turns with it. Interpreter teardown
  is in that figure only. The `.npy` directory needs no library to import.
";

/// `text` with its section replaced, or with the section appended if it has none.
fn replace_section(text: &str, section: &str) -> String {
    match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            let after = text[end + END.len()..]
                .strip_prefix('\n')
                .unwrap_or(&text[end + END.len()..]);
            format!("{}{section}{after}", &text[..begin])
        }
        _ => format!(
            "{}\n{section}",
            text.trim_end_matches('\n').to_owned() + "\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "info\tpython\t3.11.7\n\
        workload\t3\tslices\n\
        result\t3\tmmappickle-rs (ours)\t7\t6.0e-03\t=\t\n\
        result\t3\tmmappickle-rs (ours, `other`)\t7\t5.0e-03\t=\t\n\
        result\t3\tsafetensors\t7\t3.0e-03\t=\tnote\n\
        na\t3\tpickle\trewrites the file\n\
        workload\t6a\tone by one\n\
        result\t6a\tmmappickle-rs (ours)\t7\t1.0e-01\t=\t\n\
        result\t6a\tzarr\t1\t8.0e+01\t>\tstopped\n";

    #[test]
    fn parses_the_protocol_and_finds_the_fastest_peer() {
        let results = Results::parse(OUTPUT).unwrap();
        assert_eq!(results.info("python"), "3.11.7");
        let slices = &results.workloads[0];
        assert_eq!(slices.rows.len(), 4);
        // Our fastest way is ours; it is never a peer.
        let (ours, seconds) = slices.ours().unwrap();
        assert_eq!(
            (ours.library.as_str(), seconds),
            ("mmappickle-rs (ours, `other`)", 5.0e-3)
        );
        let (row, seconds, bound) = slices.fastest_peer().unwrap();
        assert_eq!(
            (row.library.as_str(), seconds, bound),
            ("safetensors", 3.0e-3, false)
        );
        assert!(Results::parse("result\t9\tx\t1\t1\t=\t\n").is_err());
        assert!(Results::parse("bogus\n").is_err());
    }

    #[test]
    fn summary_marks_losses_and_lower_bounds() {
        let summary = summary(&Results::parse(OUTPUT).unwrap());
        assert!(summary
            .contains("| 3 slices | 5.00 ms (`other`) | safetensors | 3.00 ms | **0.60x** |"));
        assert!(summary.contains("| 6a one by one | 100 ms | zarr | > 80.0 s | > 800x |"));
    }

    #[test]
    fn the_section_is_replaced_in_place_or_appended() {
        let section = format!("{BEGIN}\nnew\n{END}\n");
        let appended = replace_section("# B\n\ntext\n", &section);
        assert_eq!(appended, format!("# B\n\ntext\n\n{section}"));
        let old = format!("# B\n\n{BEGIN}\nold\n{END}\n\n## after\n");
        assert_eq!(
            replace_section(&old, &section),
            format!("# B\n\n{section}\n## after\n")
        );
    }

    #[test]
    fn options_parse_and_refuse() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let options = parse_options(&args(&["--runs", "3", "--no-write"])).unwrap();
        assert_eq!((options.runs, options.write), (3, false));
        assert!(parse_options(&args(&["--runs"])).is_err());
        assert!(parse_options(&args(&["--runs", "0"])).is_err());
        assert!(parse_options(&args(&["--bogus"])).is_err());
    }
}
