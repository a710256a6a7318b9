//! The Rust side of `cargo xtask bench`: runs one benchmark workload through the
//! facade and prints its timings, one `sample NAME SECONDS` line per run (and
//! `info NAME VALUE` lines for figures that are not timings). `cargo xtask bench`
//! runs it beside `xtask/bench/bench_python.py`, which prints the same lines for
//! Python, and makes the table; see `BENCHMARKS.md`.
//!
//! ```text
//! bench_workloads WORKLOAD --dir DIR --runs N [--entries N] [--gets N] [--mib N] [--gib N] [--file PATH]
//! ```
//!
//! Workloads: `create` (N small int entries, one insert at a time), `open_keys`
//! (open `--file`, list its keys), `gets` (`--gets` random gets from `--file`),
//! `array_write` (one `--mib` MiB float64 array), `array_sum` (open + map + sum it,
//! warm page cache), `stub` (a `--gib` GiB stub, and a 1 TiB one), `vacuum` (delete
//! half the entries of a copy of `--file`, then vacuum), `pickle` (`loads` of the
//! pickle `--file`, and `dumps` of the result), `cli` (the `mmappickle` command `--cli`
//! run as a process on `--file` and on `--big-file`, and what the library does in-process
//! for each of its read commands).

use std::collections::HashMap;
use std::error::Error;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mmappickle::stubs::EmptyArray;
use mmappickle::{codec, MmapDict};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// The command line: a workload name and `--flag value` pairs.
struct Args {
    workload: String,
    flags: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut words = std::env::args().skip(1);
        let workload = words.next().ok_or("missing workload name")?;
        let mut flags = HashMap::new();
        while let Some(flag) = words.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected a --flag, found {flag:?}"))?;
            let value = words
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            flags.insert(name.to_owned(), value);
        }
        Ok(Args { workload, flags })
    }

    fn text(&self, name: &str) -> Result<&str> {
        self.flags
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{name}").into())
    }

    fn number(&self, name: &str) -> Result<usize> {
        let text = self.text(name)?;
        text.parse()
            .map_err(|e| format!("--{name} {text:?}: {e}").into())
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        self.text(name).map(PathBuf::from)
    }
}

fn main() -> Result {
    let args = Args::parse()?;
    let dir = args.path("dir")?;
    let runs = args.number("runs")?.max(1);
    match args.workload.as_str() {
        "create" => {
            let reference = args.path("file").ok();
            create(&dir, runs, args.number("entries")?, reference.as_deref())
        }
        "open_keys" => open_keys(&args.path("file")?, runs),
        "gets" => gets(&args.path("file")?, runs, args.number("gets")?),
        "array_write" => array_write(&dir, runs, args.number("mib")?),
        "array_sum" => array_sum(&dir, runs, args.number("mib")?),
        "stub" => stub(&dir, runs, args.number("gib")?),
        "vacuum" => vacuum(&dir, &args.path("file")?, runs),
        "pickle" => pickle(&args.path("file")?, runs),
        "cli" => cli(&args, runs),
        "bulk" => bulk(&dir, runs, args.number("mib")?, &args.path("cli")?),
        other => Err(format!("unknown workload {other:?}").into()),
    }
}

fn sample(name: &str, seconds: f64) {
    println!("sample {name} {seconds:e}");
}

fn info(name: &str, value: impl std::fmt::Display) {
    println!("info {name} {value}");
}

/// Runs `body` and returns its result and how long it took, in seconds.
fn timed<T>(body: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let result = body();
    (result, start.elapsed().as_secs_f64())
}

fn remove_if_present(path: &Path) -> Result {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// Row 1: a new file, then `entries` inserts of small ints (`key{i}` -> i), each its own
/// operation (own lock, own commit), as `m[key] = i` in Python. Also times single inserts:
/// the median of inserts 51..=150 ("the 100th") and of the last 100. With `--file`, says
/// whether the file made is byte for byte the one Python's mmappickle makes, and whether it
/// holds the same dict (`--file` is a file of as many entries written by
/// `bench_python.py prepare`).
fn create(dir: &Path, runs: usize, entries: usize, reference: Option<&Path>) -> Result {
    let path = dir.join("rust-create.mmdpickle");
    let mut insert_times = vec![0.0; entries];
    for _ in 0..runs {
        remove_if_present(&path)?;
        // Reading the clock around each insert costs some 50 ns of the microseconds an
        // insert takes.
        let (outcome, seconds) = timed(|| -> Result {
            let mut dict = MmapDict::open(&path)?;
            for (idx, slot) in insert_times.iter_mut().enumerate() {
                let key = format!("key{idx}");
                let start = Instant::now();
                dict.insert(&key, idx as i64)?;
                *slot = start.elapsed().as_secs_f64();
            }
            Ok(())
        });
        outcome?;
        sample(&format!("create.{entries}"), seconds);
        // Another file: the one of single inserts is compared with Python's below.
        let batch_path = dir.join("rust-create-batch.mmdpickle");
        remove_if_present(&batch_path)?;
        let (outcome, batch_seconds) = timed(|| -> Result {
            let mut dict = MmapDict::open(&batch_path)?;
            dict.write(|tx| {
                (0..entries).try_for_each(|idx| tx.insert(&format!("key{idx}"), idx as i64))
            })?;
            Ok(())
        });
        outcome?;
        sample(&format!("batch_create.{entries}"), batch_seconds);
        remove_if_present(&batch_path)?;
        if entries >= 200 {
            sample("insert_100th", median(&insert_times[50..150]));
            sample("insert_last", median(&insert_times[entries - 100..]));
        }
    }
    if let Some(reference) = reference {
        let same = std::fs::read(&path)? == std::fs::read(reference)?;
        info(&format!("create.{entries}.same_bytes_as_python"), same);
        info(
            &format!("create.{entries}.same_dict_as_python"),
            same_dict(&path, reference)?,
        );
    }
    remove_if_present(&path)?;
    Ok(())
}

/// Whether two files hold the same live keys, in the same order, with the same values.
fn same_dict(a: &Path, b: &Path) -> Result<bool> {
    let a = MmapDict::open_readonly(a)?;
    let b = MmapDict::open_readonly(b)?;
    let keys = a.keys()?;
    if keys != b.keys()? {
        return Ok(false);
    }
    for key in &keys {
        if a.value(key)? != b.value(key)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Row 2: open an existing file read-write (as Python's `mmapdict(path)`) and list its keys.
fn open_keys(file: &Path, runs: usize) -> Result {
    for _ in 0..runs {
        let (keys, seconds) = timed(|| -> Result<usize> {
            let dict = MmapDict::open(file)?;
            Ok(black_box(dict.keys()?).len())
        });
        info("open_keys.n_keys", keys?);
        sample("open_keys", seconds);
    }
    Ok(())
}

/// A small deterministic generator (xorshift64*), so runs pick the same keys.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound.max(1)
    }
}

/// Row 3: `gets` random gets of small values from an open dict (the open is not timed).
fn gets(file: &Path, runs: usize, n_gets: usize) -> Result {
    let dict = MmapDict::open(file)?;
    let keys = dict.keys()?;
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let picked: Vec<&str> = (0..n_gets)
        .map(|_| keys[rng.below(keys.len())].as_str())
        .collect();
    for _ in 0..runs {
        let (outcome, seconds) = timed(|| -> Result {
            for key in &picked {
                black_box(dict.get(key)?);
            }
            Ok(())
        });
        outcome?;
        sample("gets", seconds);
        let (outcome, seconds) = timed(|| -> Result {
            let snapshot = dict.read()?;
            for key in &picked {
                black_box(snapshot.get(key)?);
            }
            Ok(())
        });
        outcome?;
        sample("snapshot_gets", seconds);
    }
    // Throughput of threads sharing one dict, each read its own locked operation: the
    // same 4 x `n_gets` gets by one thread, then by four threads.
    let dict = std::sync::Arc::new(dict);
    let threads_gets = |threads: usize| -> Result<f64> {
        let (outcome, seconds) = timed(|| {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| -> std::result::Result<(), mmappickle::Error> {
                            for _ in 0..4 / threads {
                                for key in &picked {
                                    black_box(dict.get(key)?);
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                workers.into_iter().try_for_each(|worker| -> Result {
                    worker.join().map_err(|_| "a thread panicked")??;
                    Ok(())
                })
            })
        });
        outcome?;
        Ok(seconds)
    };
    for _ in 0..runs {
        sample("gets_1_thread", threads_gets(1)?);
        sample("gets_4_threads", threads_gets(4)?);
    }
    Ok(())
}

/// `mib` MiB of float64 (`i * 0.5`) in RAM. The memory is asked to be backed by transparent
/// huge pages, as numpy asks for every array of 4 MiB or more: otherwise the rows would
/// compare the page size of the source buffer (copying from 4 KiB pages costs 20 to 30 %
/// more here) rather than the writers and readers.
struct ArrayData {
    memory: memmap2::MmapMut,
}

impl ArrayData {
    fn new(mib: usize) -> Result<ArrayData> {
        let mut memory = memmap2::MmapMut::map_anon(mib << 20)?;
        // Best effort, as numpy's: without it the pages are 4 KiB.
        let _ = memory.advise(memmap2::Advice::HugePage);
        let values: &mut [f64] = bytemuck::try_cast_slice_mut(&mut memory[..])
            .map_err(|e| format!("a page-aligned map holds f64s: {e}"))?;
        for (idx, value) in values.iter_mut().enumerate() {
            *value = idx as f64 * 0.5;
        }
        Ok(ArrayData { memory })
    }

    /// How much of the process's memory is in transparent huge pages, in KiB.
    fn huge_kib() -> u64 {
        std::fs::read_to_string("/proc/self/smaps_rollup")
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("AnonHugePages:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or(0)
    }

    fn values(&self) -> &[f64] {
        bytemuck::cast_slice(&self.memory[..])
    }
}

/// Row 4: one float64 array of `mib` MiB into a new file, beside `std::fs::write` of the
/// same bytes (the machine's limit).
fn array_write(dir: &Path, runs: usize, mib: usize) -> Result {
    let data = ArrayData::new(mib)?;
    info("array.anon_huge_pages_kib", ArrayData::huge_kib());
    let data = data.values();
    let shape = [data.len()];
    let path = dir.join("rust-array.mmdpickle");
    let plain = dir.join("rust-array.raw");
    for _ in 0..runs {
        remove_if_present(&path)?;
        flush_page_cache()?;
        let (outcome, seconds) = timed(|| -> Result {
            let mut dict = MmapDict::open(&path)?;
            dict.insert_array("a", data, &shape)?;
            Ok(())
        });
        outcome?;
        sample("array_write", seconds);
        remove_if_present(&path)?;

        remove_if_present(&plain)?;
        flush_page_cache()?;
        let (outcome, seconds) = timed(|| std::fs::write(&plain, bytemuck_bytes(data)));
        outcome?;
        sample("std_fs_write", seconds);
        remove_if_present(&plain)?;
    }
    Ok(())
}

/// Writes the dirty pages of earlier runs back to disk (`sync(1)`), so that no write is
/// timed while the kernel flushes the previous one.
fn flush_page_cache() -> Result {
    let status = std::process::Command::new("sync").status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("sync failed ({status})").into())
    }
}

fn bytemuck_bytes(data: &[f64]) -> &[u8] {
    bytemuck::cast_slice(data)
}

/// A sum that does not wait on each addition: 8 independent lanes, which the compiler turns
/// into SIMD adds (numpy's `sum` is pairwise with 8 lanes too). Used for maps and for RAM.
fn sum_f64(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().sum::<f64>()
}

/// Row 5: open the dict (read-only) + map the array + sum it, with the file in the page
/// cache (it was just written and read once); beside summing a `Vec<f64>` in RAM.
fn array_sum(dir: &Path, runs: usize, mib: usize) -> Result {
    let data = ArrayData::new(mib)?;
    let data = data.values();
    let path = dir.join("rust-sum.mmdpickle");
    remove_if_present(&path)?;
    MmapDict::open(&path)?.insert_array("a", data, &[data.len()])?;
    // Warm the page cache.
    black_box(std::fs::read(&path)?.len());
    let expected = sum_f64(data);
    for _ in 0..runs {
        let (total, seconds) = timed(|| -> Result<f64> {
            let dict = MmapDict::open_readonly(&path)?;
            let array = dict.array::<f64>("a")?;
            Ok(sum_f64(array.as_slice()?))
        });
        let total = total?;
        if total != expected {
            return Err(format!("mapped sum {total} != RAM sum {expected}").into());
        }
        sample("map_sum", seconds);
        let (total, seconds) = timed(|| sum_f64(black_box(data)));
        black_box(total);
        sample("ram_sum", seconds);
    }
    remove_if_present(&path)?;
    Ok(())
}

/// The process's current and peak resident set, in KiB (from `/proc/self/status`).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Row 6: a `gib` GiB float64 stub in a new file (open included), its effect on the peak
/// RSS, and a 1 TiB stub (a hole: no disk space is used).
fn stub(dir: &Path, runs: usize, gib: usize) -> Result {
    let path = dir.join("rust-stub.mmdpickle");
    let (rss_before, _) = rss_kib();
    for (name, n_elements) in [
        ("stub", gib << 27), // GiB / 8 bytes
        ("stub_1tib", 1usize << 37),
    ] {
        for _ in 0..runs {
            remove_if_present(&path)?;
            let (outcome, seconds) = timed(|| -> Result {
                let mut dict = MmapDict::open(&path)?;
                dict.insert_stub("stub", EmptyArray::new::<f64>(&[n_elements]))?;
                Ok(())
            });
            outcome?;
            sample(name, seconds);
        }
    }
    let (_, peak) = rss_kib();
    info("stub.peak_rss_kib", peak);
    info("stub.rss_growth_kib", peak.saturating_sub(rss_before));
    remove_if_present(&path)?;
    Ok(())
}

/// Row 7: on a copy of `file`, delete every other key (each its own operation), then
/// vacuum; the copy is not timed.
fn vacuum(dir: &Path, file: &Path, runs: usize) -> Result {
    let path = dir.join("rust-vacuum.mmdpickle");
    for _ in 0..runs {
        std::fs::copy(file, &path)?;
        let mut dict = MmapDict::open(&path)?;
        let keys = dict.keys()?;
        let (outcome, seconds) = timed(|| -> Result {
            for key in keys.iter().step_by(2) {
                dict.remove(key)?;
            }
            Ok(())
        });
        outcome?;
        sample("delete_half", seconds);
        let (outcome, vacuum_seconds) = timed(|| dict.vacuum());
        outcome?;
        sample("vacuum", vacuum_seconds);
        sample("delete_and_vacuum", seconds + vacuum_seconds);
        info("vacuum.n_keys_after", dict.len()?);
        drop(dict);
        std::fs::copy(file, &path)?;
        let mut dict = MmapDict::open(&path)?;
        let keys = dict.keys()?;
        let (outcome, seconds) = timed(|| -> Result {
            dict.write(|tx| {
                keys.iter()
                    .step_by(2)
                    .try_for_each(|key| tx.remove(key).map(drop))
            })?;
            dict.vacuum()?;
            Ok(())
        });
        outcome?;
        sample("batch_delete_and_vacuum", seconds);
    }
    remove_if_present(&path)?;
    Ok(())
}

/// Row 8: `loads` of a pickle made by CPython (`pickle.dumps(d, 4)`), and `dumps` of the
/// value it gives.
fn pickle(file: &Path, runs: usize) -> Result {
    let bytes = std::fs::read(file)?;
    let value = codec::loads(&bytes)?;
    for _ in 0..runs {
        let (loaded, seconds) = timed(|| codec::loads(black_box(&bytes)));
        drop(black_box(loaded?));
        sample("loads", seconds);
        let (dumped, seconds) = timed(|| codec::dumps(black_box(&value)));
        info("dumps.len", dumped.len());
        drop(black_box(dumped));
        sample("dumps", seconds);
    }
    Ok(())
}

/// The read commands timed as processes: (metric name, arguments before the file, after it).
const CLI_COMMANDS: [(&str, &[&str], &[&str]); 6] = [
    ("ls", &["ls"], &[]),
    ("ls_json", &["ls", "--json"], &[]),
    ("info", &["info"], &[]),
    ("get", &["get"], &["key5000"]),
    ("dump_json", &["dump", "--json"], &[]),
    ("dis", &["dis"], &[]),
];

/// Rows 12 to 19: each read command of the `mmappickle` binary `--cli`, as a process (its
/// start included, output to `/dev/null`), on `--file`, `ls` also on `--big-file`; the
/// binary's start alone (`--version`); and what the library does in-process for each command
/// (`cli_lib.NAME`): open read-only + keys for `ls`, + the listing without kinds for `info`,
/// + one get, + every item, + every value's opcodes.
fn cli(args: &Args, runs: usize) -> Result {
    let binary = args.path("cli")?;
    let file = args.path("file")?;
    let big_file = args.path("big-file")?;
    let run = |name: &str, arguments: Vec<&std::ffi::OsStr>| -> Result {
        let mut command = std::process::Command::new(&binary);
        command.args(&arguments);
        // Once with its output kept: the command works and says something.
        let output = command.output()?;
        if !output.status.success() {
            return Err(format!("{name}: {command:?} failed ({})", output.status).into());
        }
        info(
            &format!("cli.{name}.output_lines"),
            output.stdout.iter().filter(|&&byte| byte == b'\n').count(),
        );
        command.stdout(std::process::Stdio::null());
        for _ in 0..runs {
            let (status, seconds) = timed(|| command.status());
            if !status?.success() {
                return Err(format!("{name}: {command:?} failed").into());
            }
            sample(&format!("cli.{name}"), seconds);
        }
        Ok(())
    };
    run("start", vec!["--version".as_ref()])?;
    for (name, before, after) in CLI_COMMANDS {
        let arguments = before
            .iter()
            .map(|word| word.as_ref())
            .chain([file.as_os_str()])
            .chain(after.iter().map(|word| word.as_ref()))
            .collect();
        run(name, arguments)?;
    }
    run("ls_big", vec!["ls".as_ref(), big_file.as_os_str()])?;
    for (name, path) in [("ls", &file), ("ls_big", &big_file)] {
        in_process(&format!("cli_lib.{name}"), runs, || {
            Ok(MmapDict::open_readonly(path)?.keys()?.len())
        })?;
    }
    in_process("cli_lib.ls_json", runs, || {
        Ok(MmapDict::open_readonly(&file)?.listing()?.entries().len())
    })?;
    in_process("cli_lib.info", runs, || {
        Ok(MmapDict::open_readonly(&file)?
            .listing_without_kinds()?
            .entries()
            .len())
    })?;
    in_process("cli_lib.get", runs, || {
        Ok(usize::from(matches!(
            MmapDict::open_readonly(&file)?.get("key5000")?,
            mmappickle::Item::Value(_)
        )))
    })?;
    in_process("cli_lib.dump_json", runs, || {
        let mut n_items = 0;
        MmapDict::open_readonly(&file)?.for_each_item(|_, item| -> Result {
            black_box(item);
            n_items += 1;
            Ok(())
        })??;
        Ok(n_items)
    })?;
    in_process("cli_lib.dis", runs, || {
        let mut n_ops = 0;
        MmapDict::open_readonly(&file)?.with_disassembly(|disassembly| {
            for info in disassembly.listing.entries() {
                n_ops += disassembly.value_ops(&info).map(black_box).count();
            }
        })?;
        Ok(n_ops)
    })
}

/// Times `body` `runs` times as the metric `name`; `body` returns a count, shown once.
fn in_process(name: &str, runs: usize, mut body: impl FnMut() -> Result<usize>) -> Result {
    for _ in 0..runs {
        let (count, seconds) = timed(&mut body);
        info(&format!("{name}.count"), count?);
        sample(name, seconds);
    }
    Ok(())
}

/// Bulk copies: `mmappickle import-npy` and `export-npy` of a float64 `.npy` of `mib` MiB
/// against `cp` of the same file, each a process of its own timed from here (the source in
/// the page cache, `sync` before each), with its peak RSS from GNU `time` when installed.
fn bulk(dir: &Path, runs: usize, mib: usize, cli: &Path) -> Result {
    let npy = dir.join("bulk.npy");
    let copy = dir.join("bulk-copy.npy");
    let dict = dir.join("bulk.mmdpickle");
    let exported = dir.join("bulk-exported.npy");
    let n = mib * (1 << 20) / 8;
    // The .npy header (version 1.0) padded to 64 bytes, then the data in 64 MiB pieces.
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({n},), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    {
        use std::io::Write as _;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&npy)?);
        file.write_all(&bytes)?;
        let piece: Vec<u8> = (0..(8 << 20))
            .flat_map(|idx: u64| (idx as f64 * 0.5).to_le_bytes())
            .collect();
        for _ in 0..(mib / 64).max(1) {
            file.write_all(&piece)?;
        }
    }
    let has_gnu_time = Path::new("/usr/bin/time").exists();
    // Runs `program args`; its seconds, and its peak RSS in KiB when known.
    let timed_process = |name: &str, program: &Path, args: &[&Path]| -> Result {
        let rss_file = dir.join("bulk-rss");
        let mut command = if has_gnu_time {
            let mut command = std::process::Command::new("/usr/bin/time");
            command
                .arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&rss_file)
                .arg(program);
            command
        } else {
            std::process::Command::new(program)
        };
        command.args(args);
        // Each starts with no dirty pages to write back (untimed): the writes of the one
        // before would otherwise throttle it.
        flush_page_cache()?;
        let (status, seconds) = timed(|| command.status());
        if !status?.success() {
            return Err(format!("{name}: {} failed", program.display()).into());
        }
        sample(name, seconds);
        if let Ok(text) = std::fs::read_to_string(&rss_file) {
            info(&format!("{name}.peak_rss_kib"), text.trim());
        }
        Ok(())
    };
    let cp = Path::new("cp");
    let cp_path = std::process::Command::new("sh")
        .args(["-c", "command -v cp"])
        .output()
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .unwrap_or_else(|_| cp.to_path_buf());
    for _ in 0..runs {
        for path in [&copy, &dict, &exported] {
            remove_if_present(path)?;
        }
        timed_process("bulk_cp", &cp_path, &[&npy, &copy])?;
        timed_process(
            "bulk_import",
            cli,
            &[Path::new("import-npy"), &dict, Path::new("data"), &npy],
        )?;
        timed_process(
            "bulk_export",
            cli,
            &[Path::new("export-npy"), &dict, Path::new("data"), &exported],
        )?;
    }
    let same = std::fs::read(&npy)? == std::fs::read(&exported)?;
    info("bulk.exported_equals_source", same);
    for path in [&npy, &copy, &dict, &exported] {
        remove_if_present(path)?;
    }
    Ok(())
}
