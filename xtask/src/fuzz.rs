//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/`.
//!
//! - `--seed-corpus` writes `fuzz/corpus/<target>/seed-*` from the Python-made
//!   fixtures (`tests/fixtures/*.mmdpickle`, whole and entry by entry) and the
//!   codec's golden streams (`crates/codec/tests/golden/golden.json`).
//! - `--smoke [--time SECONDS]` seeds, then runs every target for a short
//!   time (10 s each by default); `cargo xtask test` runs it.
//! - `--target NAME --time SECONDS [--sanitizer none] [-- LIBFUZZER-ARGS]`
//!   runs one campaign (`--sanitizer none`: several times faster, for the
//!   targets that reach no `unsafe` code of ours; built in its own target dir).
//! - `--minutes N [--target NAME]... [--sanitizer none] [-- LIBFUZZER-ARGS]`:
//!   the long campaign, every target (or those named) for N minutes each, one
//!   after the other, with a 120 s time-out per input; then a table per target
//!   of executions, coverage (`cov`, `ft`), corpus files and seconds, as
//!   fuzz/README.md records it. A finding does not stop the other targets.
//!
//! cargo-fuzz is installed when missing. With a nightly toolchain the targets
//! build with the address sanitizer (`cargo +nightly fuzz`); without one they
//! build on stable with `-s none`. Every run has `-rss_limit_mb=2048`; a
//! crash, OOM or time-out fails the command and leaves its input in
//! `fuzz/artifacts/<target>/`: make it a regression test (see
//! `tests/tests/fuzz_regressions.rs`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{run, step, succeeds, workspace_root, Result};

/// Every target, in the order the smoke runs them.
pub const TARGETS: &[&str] = &[
    "ops",
    "loads",
    "roundtrip",
    "entry_value_from_pickle",
    "scan",
    "remote_scan",
    "array",
    "open",
    "repair",
];

/// Seconds per target in the smoke.
pub const SMOKE_SECONDS: u64 = 5;

/// Memory cap of a fuzzed process (libFuzzer reports an OOM past it).
const RSS_LIMIT_MB: u32 = 2048;

/// Time-out per input (wall clock) of the smoke and of `--target` runs.
const TIMEOUT_SECONDS: u32 = 30;
/// Time-out per input of the long campaign: it runs beside builds and tests, and a
/// fuzzer starved of CPU would report a slow input as a time-out (README.md).
const CAMPAIGN_TIMEOUT_SECONDS: u32 = 120;

/// The 3 bytes the `remote_scan` target reads before the file: block size, cache budget
/// and announced length (see `mmappickle_remote::fuzzing`). The seeds: the smallest
/// blocks and budget told truly, and another size with a lie.
const REMOTE_SCAN_PREFIXES: [[u8; 3]; 2] = [[0, 0, 0], [2, 1, 200]];

/// Seeds larger than this are left out: they slow every mutation.
const MAX_SEED_LEN: usize = 64 * 1024;

/// Length of the mmappickle header and of its terminator (FORMAT.md).
const HEADER_LEN: usize = 24;
const TERMINATOR_LEN: usize = 11;
/// The fixed prefix of an array value, and of a masked array value: their
/// lengths and how they start (FORMAT.md).
const ARRAY_PREFIX_LEN: usize = 70;
const MASKED_PREFIX_LEN: usize = 29;
const ARRAY_PREFIX_START: &[u8] = b"\x8c\x16numpy.core.fromnumeric";
const MASKED_PREFIX_START: &[u8] = b"\x8c\x0dnumpy.ma.core";

pub fn main(args: &[String]) -> Result {
    let options = Options::parse(args)?;
    let prepare = |sanitizer: Option<String>| -> Result<Toolchain> {
        let mut toolchain = Toolchain::prepare()?;
        if let Some(sanitizer) = sanitizer {
            toolchain.sanitizer = Some(sanitizer);
        }
        seed_corpus()?;
        Ok(toolchain)
    };
    match options.mode {
        Mode::SeedCorpus => seed_corpus().map(drop),
        Mode::Smoke => smoke(options.seconds.unwrap_or(SMOKE_SECONDS)),
        Mode::Campaign(target) => {
            let seconds = options.seconds.ok_or("--target needs --time SECONDS")?;
            let toolchain = prepare(options.sanitizer)?;
            campaign(
                &toolchain,
                &target,
                seconds,
                TIMEOUT_SECONDS,
                &options.extra,
                &mut RunStats::default(),
            )
        }
        Mode::Long { minutes, targets } => {
            let toolchain = prepare(options.sanitizer)?;
            long_campaign(&toolchain, minutes, &targets, &options.extra)
        }
    }
}

/// What one target's run reported (libFuzzer's last status line and final stats).
#[derive(Debug, Default, Clone)]
struct RunStats {
    executions: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    /// Units in the fuzzer's corpus at the end (`corp:`).
    corpus_units: Option<u64>,
    /// Files in `corpus/<target>/` after the run.
    corpus_files: usize,
    seconds: f64,
}

impl RunStats {
    /// Takes what a line of libFuzzer's output says.
    fn read_line(&mut self, line: &str) {
        if let Some(executions) = line.strip_prefix("stat::number_of_executed_units:") {
            self.executions = executions.trim().parse().ok();
        } else if line.starts_with('#') && line.contains(" cov: ") {
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                let value = || words.clone().next().unwrap_or_default();
                match word {
                    "cov:" => self.cov = value().parse().ok(),
                    "ft:" => self.ft = value().parse().ok(),
                    "corp:" => {
                        self.corpus_units = value().split('/').next().and_then(|n| n.parse().ok())
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The long campaign: each target for `minutes`, one after the other, then the table.
fn long_campaign(
    toolchain: &Toolchain,
    minutes: u64,
    targets: &[String],
    extra: &[String],
) -> Result {
    let all: Vec<String> = TARGETS.iter().map(|&target| target.to_owned()).collect();
    let targets = if targets.is_empty() {
        &all[..]
    } else {
        targets
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        let mut stats = RunStats::default();
        let outcome = step(&format!("fuzz {target} ({minutes} min)"), || {
            campaign(
                toolchain,
                target,
                minutes * 60,
                CAMPAIGN_TIMEOUT_SECONDS,
                extra,
                &mut stats,
            )
        });
        let verdict = match outcome {
            Ok(()) => "",
            Err(error) => {
                failures.push(error);
                "(FAILED) "
            }
        };
        rows.push((target.clone(), stats, verdict));
    }
    let sanitizer = toolchain.sanitizer.as_deref().unwrap_or("address");
    println!("\ncampaign: {minutes} min per target, sanitizer {sanitizer}\n");
    println!("| target | executions | cov | ft | corpus (units / files) | seconds |");
    println!("|---|---:|---:|---:|---:|---:|");
    let show = |figure: Option<u64>| figure.map_or("?".to_owned(), |figure| figure.to_string());
    for (target, stats, failed) in &rows {
        println!(
            "| `{target}` {failed}| {} | {} | {} | {} / {} | {:.0} |",
            show(stats.executions),
            show(stats.cov),
            show(stats.ft),
            show(stats.corpus_units),
            stats.corpus_files,
            stats.seconds
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// The smoke that `cargo xtask test` runs: every target for `seconds`.
pub fn smoke(seconds: u64) -> Result {
    let toolchain = Toolchain::prepare()?;
    seed_corpus()?;
    for target in TARGETS {
        step(&format!("fuzz {target} ({seconds} s)"), || {
            campaign(
                &toolchain,
                target,
                seconds,
                TIMEOUT_SECONDS,
                &[],
                &mut RunStats::default(),
            )
        })?;
    }
    Ok(())
}

enum Mode {
    SeedCorpus,
    Smoke,
    Campaign(String),
    /// `--minutes N`: every target (or those named) for N minutes each.
    Long {
        minutes: u64,
        targets: Vec<String>,
    },
}

struct Options {
    mode: Mode,
    seconds: Option<u64>,
    /// `-s` given to cargo-fuzz instead of the toolchain's default.
    sanitizer: Option<String>,
    /// Arguments after `--`, passed to libFuzzer.
    extra: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let usage = "expected --seed-corpus, --smoke [--time SECONDS], \
                     --target NAME --time SECONDS [-- LIBFUZZER-ARGS] or \
                     --minutes N [--target NAME]... [-- LIBFUZZER-ARGS]";
        let (ours, extra) = match args.iter().position(|arg| arg == "--") {
            Some(split) => (&args[..split], args[split + 1..].to_vec()),
            None => (args, Vec::new()),
        };
        let mut mode = None;
        let mut minutes = None;
        let mut targets = Vec::new();
        let mut seconds = None;
        let mut sanitizer = None;
        let mut words = ours.iter();
        while let Some(word) = words.next() {
            match word.as_str() {
                "--seed-corpus" => mode = Some(Mode::SeedCorpus),
                "--smoke" => mode = Some(Mode::Smoke),
                "--target" => {
                    let name = words.next().ok_or("--target needs a NAME")?;
                    if !TARGETS.contains(&name.as_str()) {
                        return Err(format!("unknown target {name:?} (targets: {TARGETS:?})"));
                    }
                    targets.push(name.clone());
                }
                "--minutes" => {
                    let value = words.next().ok_or("--minutes needs N")?;
                    let parsed: u64 = value
                        .parse()
                        .map_err(|_| format!("--minutes {value:?}: expected whole minutes"))?;
                    minutes = Some(parsed);
                }
                "--time" => {
                    let value = words.next().ok_or("--time needs SECONDS")?;
                    let parsed = value
                        .parse()
                        .map_err(|_| format!("--time {value:?}: expected whole seconds"))?;
                    seconds = Some(parsed);
                }
                "--sanitizer" => {
                    let name = words.next().ok_or("--sanitizer needs a NAME")?;
                    sanitizer = Some(name.clone());
                }
                other => return Err(format!("unexpected argument {other:?}: {usage}")),
            }
        }
        let mode = match (mode, minutes, &targets[..]) {
            (None, Some(minutes), _) => Mode::Long { minutes, targets },
            (None, None, [target]) => Mode::Campaign(target.clone()),
            (Some(mode), None, []) => mode,
            _ => return Err(usage.into()),
        };
        Ok(Options {
            mode,
            seconds,
            sanitizer,
            extra,
        })
    }
}

/// How targets are built: with the address sanitizer on nightly, else plain on stable.
struct Toolchain {
    nightly: bool,
    /// `-s` for cargo-fuzz when not its default (`address`).
    sanitizer: Option<String>,
}

impl Toolchain {
    /// Finds nightly and installs cargo-fuzz when missing.
    fn prepare() -> Result<Toolchain> {
        let nightly = succeeds(rustup_cargo(true).arg("--version"));
        if !succeeds(rustup_cargo(nightly).args(["fuzz", "--version"])) {
            step("installing cargo-fuzz", || {
                run(rustup_cargo(false).args(["install", "cargo-fuzz", "--locked"]))
            })?;
        }
        if !nightly {
            println!("no nightly toolchain: fuzzing on stable without a sanitizer (-s none)");
        }
        let sanitizer = (!nightly).then(|| "none".to_owned());
        Ok(Toolchain { nightly, sanitizer })
    }

    /// `cargo [+nightly] fuzz <subcommand> [-s SANITIZER]` in `fuzz/`; each
    /// sanitizer builds in a target dir of its own, so switching rebuilds nothing.
    fn fuzz(&self, subcommand: &str) -> Command {
        let mut command = rustup_cargo(self.nightly);
        command.args(["fuzz", subcommand]);
        if let Some(sanitizer) = &self.sanitizer {
            let target_dir = fuzz_dir()
                .join("target")
                .join(format!("sanitizer-{sanitizer}"));
            command
                .args(["-s", sanitizer])
                .arg("--target-dir")
                .arg(target_dir);
        }
        command
    }
}

/// `cargo` through rustup's proxy (so that `+nightly` works), with the
/// variables of the cargo that runs xtask removed: they would pin its toolchain.
fn rustup_cargo(nightly: bool) -> Command {
    let mut command = Command::new("cargo");
    if nightly {
        command.arg("+nightly");
    }
    for variable in [
        "CARGO",
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO_MANIFEST_DIR",
    ] {
        command.env_remove(variable);
    }
    command.current_dir(fuzz_dir());
    command
}

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// Runs `target` for `seconds`, its corpus in `fuzz/corpus/<target>/`, with a time-out of
/// `timeout` seconds per input; `stats` gets what libFuzzer reported, finding or not.
fn campaign(
    toolchain: &Toolchain,
    target: &str,
    seconds: u64,
    timeout: u32,
    extra: &[String],
    stats: &mut RunStats,
) -> Result {
    let mut command = toolchain.fuzz("run");
    command
        .args(["--release", "--debug-assertions", target])
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={timeout}"))
        .arg("-print_final_stats=1")
        .args(extra)
        .stderr(Stdio::piped());
    // `run` would go back to the workspace root; cargo-fuzz finds `fuzz/` from the crate dir.
    println!("$ (in fuzz/) {}", crate::describe(&command));
    let artifacts = fuzz_dir().join("artifacts").join(target);
    let artifacts_before = count_files(&artifacts);
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    // libFuzzer reports on stderr: passed on as it comes, and read for the figures.
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            stats.read_line(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for cargo fuzz: {e}"))?;
    stats.seconds = start.elapsed().as_secs_f64();
    stats.corpus_files = count_files(&fuzz_dir().join("corpus").join(target));
    if status.success() {
        Ok(())
    } else if count_files(&artifacts) > artifacts_before {
        Err(format!(
            "fuzz target {target} found a problem ({status}): its input is in \
             fuzz/artifacts/{target}/; add it to tests/fuzz-regressions/{target}/"
        ))
    } else {
        Err(format!(
            "cargo fuzz run {target} failed ({status}) without a finding: see its output"
        ))
    }
}

/// Number of files in `dir` (0 when it does not exist).
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |listing| listing.count())
}

/// Writes every target's seeds; returns how many each got.
pub fn seed_corpus() -> Result<BTreeMap<&'static str, usize>> {
    let root = workspace_root();
    let mut seeds: BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut add = |target: &'static str, name: String, bytes: &[u8]| {
        if bytes.len() <= MAX_SEED_LEN {
            seeds
                .entry(target)
                .or_default()
                .insert(name, bytes.to_vec());
        }
    };

    for (name, stream) in golden_streams(&root.join("crates/codec/tests/golden/golden.json"))? {
        for target in ["ops", "loads", "array", "entry_value_from_pickle"] {
            add(target, format!("golden-{name}"), &stream);
        }
    }

    for (file_name, file) in fixture_files(&root.join("tests/fixtures"))? {
        for target in ["ops", "scan", "open", "repair"] {
            add(target, format!("fixture-{file_name}"), &file);
        }
        for (prefix_idx, prefix) in REMOTE_SCAN_PREFIXES.iter().enumerate() {
            let served = [&prefix[..], &file].concat();
            add(
                "remote_scan",
                format!("fixture-{file_name}-{prefix_idx}"),
                &served,
            );
        }
        // What the repair target is for: a torn tail, and bytes after the terminator.
        let torn = &file[..file.len().saturating_sub(TERMINATOR_LEN + 3)];
        add("repair", format!("fixture-{file_name}-torn"), torn);
        let trailing = [&file[..], b"\x95\x00\x00"].concat();
        add("repair", format!("fixture-{file_name}-trailing"), &trailing);
        if let Some(after_header) = file.get(HEADER_LEN..) {
            // The scan target prepends a header itself.
            add(
                "scan",
                format!("fixture-{file_name}-noheader"),
                after_header,
            );
        }
        for (entry_idx, value) in entry_values(&file).into_iter().enumerate() {
            let name = format!("fixture-{file_name}-entry{entry_idx}");
            add("loads", name.clone(), value);
            add("array", name.clone(), value);
            // An entry's value with a STOP is a stream as `pickle.dumps` writes one.
            let stream = [value, b"."].concat();
            add("entry_value_from_pickle", name.clone(), &stream);
            // The array target prepends the prefixes itself.
            if value.starts_with(ARRAY_PREFIX_START) {
                let rest = value.get(ARRAY_PREFIX_LEN..).unwrap_or_default();
                add("array", format!("{name}-noprefix"), rest);
            }
            if value.starts_with(MASKED_PREFIX_START) {
                let rest = value
                    .get(MASKED_PREFIX_LEN + ARRAY_PREFIX_LEN..)
                    .unwrap_or_default();
                add("array", format!("{name}-nomaskedprefix"), rest);
            }
        }
    }

    let corpus_root = fuzz_dir().join("corpus");
    let mut counts = BTreeMap::new();
    for target in TARGETS {
        let dir = corpus_root.join(target);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let target_seeds = seeds.remove(target).unwrap_or_default();
        counts.insert(*target, target_seeds.len());
        for (name, bytes) in target_seeds {
            let path = dir.join(format!("seed-{name}"));
            std::fs::write(&path, bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    println!("seed corpora in {}: {counts:?}", corpus_root.display());
    Ok(counts)
}

/// `(case name, stream)` for every `"pickle":"<hex>"` of the golden file.
fn golden_streams(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut streams = Vec::new();
    let marker = "\"pickle\":\"";
    for (stream_idx, (start, _)) in text.match_indices(marker).enumerate() {
        let hex_start = start + marker.len();
        let hex = text[hex_start..].split('"').next().unwrap_or_default();
        let stream = decode_hex(hex)
            .ok_or_else(|| format!("{}: bad hex at byte {hex_start}", path.display()))?;
        streams.push((format!("{stream_idx:04}"), stream));
    }
    if streams.is_empty() {
        return Err(format!("{}: no \"pickle\" streams found", path.display()));
    }
    Ok(streams)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let pairs = hex.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// `(file name, bytes)` of every `*.mmdpickle` in `dir`, sorted by name.
fn fixture_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let listing =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in listing {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "mmdpickle") {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, bytes));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.mmdpickle fixtures in {}", dir.display()));
    }
    Ok(files)
}

/// The value bytes of each entry, walking frames from the header as
/// FORMAT.md says; stops quietly at the first thing that is not an entry.
fn entry_values(file: &[u8]) -> Vec<&[u8]> {
    let mut values = Vec::new();
    let mut offset = HEADER_LEN;
    let end_of_entries = file.len().saturating_sub(TERMINATOR_LEN);
    while offset < end_of_entries {
        let frame_len = file
            .get(offset + 1..offset + 9)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|len| usize::try_from(len).ok());
        let (Some(frame_len), Some(&key_len)) = (frame_len, file.get(offset + 10)) else {
            break;
        };
        let entry_end = offset.saturating_add(9).saturating_add(frame_len);
        let value_start = offset + 11 + usize::from(key_len);
        match file.get(value_start..entry_end.saturating_sub(8)) {
            Some(value) => values.push(value),
            None => break,
        }
        offset = entry_end;
    }
    values
}
