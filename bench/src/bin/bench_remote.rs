//! The remote rows of `cargo xtask bench`: nginx on loopback (started here, stopped at the
//! end) serves a 1 GiB array file and the 10,000-entry file of row 2; each run times
//! `curl` downloading the array file to `/dev/null` and into memory (a file of `/dev/shm`),
//! [`RemoteDict`] opening the file and reading the array into a new `OwnedArray`, and open +
//! keys of the entries file remotely and locally. Prints `sample NAME SECONDS` and `info NAME VALUE`
//! lines, as the other drivers do.
//!
//! `bench_remote remote --dir DIR --runs N --file ENTRIES_FILE [--mib 1024]` (the workload
//! name first, as `cargo xtask bench` calls its drivers)

#[path = "../../../crates/remote/tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use mmappickle::stubs::EmptyArray;
use mmappickle::MmapDict;
use mmappickle_remote::RemoteDict;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let mut args = std::env::args().skip(1).peekable();
    args.next_if(|arg| arg == "remote");
    let (mut runs, mut file, mut mib) = (5usize, None, 1024usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => runs = value.parse()?,
            "--file" => file = Some(PathBuf::from(value)),
            "--mib" => mib = value.parse()?,
            "--dir" => {}
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let entries_file = file.ok_or("--file is required")?;
    let nginx = support::Nginx::start();
    std::fs::copy(&entries_file, nginx.root().join("entries.mmdpickle"))?;
    // The array as a stub: a hole on disk, so that neither side waits for the disk.
    let mut m = MmapDict::open(nginx.root().join("array.mmdpickle"))?;
    let n_rows = mib * 128;
    m.insert_stub("array", EmptyArray::new::<f64>(&[n_rows, 1024]))?;
    drop(m);
    let array_url = nginx.url("array.mmdpickle");
    let entries_url = nginx.url("entries.mmdpickle");
    println!("info remote.array_mib {mib}");
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new("curl")
            .args(["--silent", "--fail", "--output", "/dev/null", &array_url])
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("curl {array_url} failed: {status}").into());
        }
        println!("sample remote.curl_array {}", start.elapsed().as_secs_f64());

        // The same into memory (a tmpfs file), as the reads below land in memory.
        let start = Instant::now();
        let in_memory = std::path::Path::new("/dev/shm/mmappickle-bench-curl");
        let status = Command::new("curl")
            .args(["--silent", "--fail", "--output"])
            .arg(in_memory)
            .arg(&array_url)
            .stdin(Stdio::null())
            .status()?;
        let _ = std::fs::remove_file(in_memory);
        if !status.success() {
            return Err(format!("curl {array_url} failed: {status}").into());
        }
        println!(
            "sample remote.curl_array_memory {}",
            start.elapsed().as_secs_f64()
        );

        let start = Instant::now();
        let array = RemoteDict::open(&array_url)?.array("array")?;
        println!("sample remote.array {}", start.elapsed().as_secs_f64());
        if array.data.len() != n_rows * 8192 {
            return Err("the array read back has the wrong length".into());
        }
        drop(array);

        let start = Instant::now();
        let remote = RemoteDict::open(&entries_url)?;
        let n_keys = remote.keys().len();
        println!("sample remote.open_keys {}", start.elapsed().as_secs_f64());
        println!(
            "info remote.open_keys_requests {}",
            remote.transfer().requests
        );

        let start = Instant::now();
        let n_local_keys = MmapDict::open_readonly(&entries_file)?.keys()?.len();
        println!(
            "sample remote.local_open_keys {}",
            start.elapsed().as_secs_f64()
        );
        if n_keys != n_local_keys {
            return Err("remote and local keys differ".into());
        }
    }
    Ok(())
}
