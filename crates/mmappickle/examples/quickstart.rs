//! The Python library's quick start, line by line, in Rust.
//!
//! Run it with `cargo run --example quickstart [PATH]` (default: a file in the system's
//! temporary directory). The crate's test `quickstart_example_runs` runs it too.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mmappickle::stubs::EmptyArray;
use mmappickle::{Item, MmapDict, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("test.mmdpickle"));
    run(&path)
}

/// Disk space the file really takes (holes take none).
fn disk_usage(path: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path)?.blocks() * 512)
}

/// Runs the quick start on a fresh file at `path`.
pub fn run(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // Start from scratch, as the Python session does on a new machine.
    if path.exists() {
        std::fs::remove_file(path)?;
    }

    // >>> m = mmapdict('/tmp/test.mmdpickle')
    println!("# m = mmapdict({:?})", path.display());
    let mut m = MmapDict::open(path)?;

    // >>> m['a_sample_key'] = 'value'
    // >>> m['other_key'] = [1,2,3]
    m.insert("a_sample_key", "value")?;
    m.insert("other_key", vec![1i64, 2, 3])?;
    println!("stored 'a_sample_key' and 'other_key'");

    // >>> print(m['a_sample_key'])
    let sample = m.value("a_sample_key")?;
    println!("m['a_sample_key'] = {sample:?}");
    assert_eq!(sample, Value::from("value"));

    // >>> m['other_key'][2]
    let Value::List(other) = m.value("other_key")? else {
        return Err("other_key should hold a list".into());
    };
    println!("m['other_key'][2] = {:?}", other.get(2));
    assert_eq!(other.get(2), Some(&Value::Int(3)));

    // >>> del m['a_sample_key']
    // >>> print(m.keys())
    m.remove("a_sample_key")?;
    let keys = m.keys()?;
    println!("after del: keys = {keys:?}");
    assert_eq!(keys, ["other_key"]);

    // In another interpreter: a second handle on the same file sees the same dict.
    let second = MmapDict::open(path)?;
    println!(
        "second handle: m['other_key'] = {:?}",
        second.value("other_key")?
    );
    drop(second);

    // Read-only: any change fails.
    let mut readonly = MmapDict::open_readonly(path)?;
    match readonly.insert("other_key", "a") {
        Err(error) => println!("read-only: m['other_key'] = 'a' refused: {error}"),
        Ok(()) => return Err("a read-only dict accepted a change".into()),
    }
    drop(readonly);

    // >>> m['test'] = np.array([1,2,3], dtype=np.uint8)
    // >>> m['test'][1] = 4
    m.insert_array("test", &[1u8, 2, 3], &[3])?;
    {
        let mut test = m.array_mut::<u8>("test")?;
        test.as_slice_mut()?[1] = 4;
    }
    let test = m.array::<u8>("test")?;
    println!(
        "m['test'] = {:?} (dtype {}, mapped from the file)",
        test.to_vec(),
        test.dtype()
    );
    assert_eq!(test.to_vec(), [1, 4, 3]);
    drop(test);

    // >>> m['test_large'] = EmptyNDArray((300,300,300))
    let before = disk_usage(path)?;
    m.insert_stub("test_large", EmptyArray::new::<f64>(&[300, 300, 300]))?;
    let file_len = std::fs::metadata(path)?.len();
    println!(
        "m['test_large']: a 300x300x300 float64 stub; the file is {} MB long but takes {} kB \
         more disk, and no RAM was allocated",
        file_len / 1_000_000,
        disk_usage(path)?.saturating_sub(before) / 1000
    );
    if let Item::Array(large) = m.get("test_large")? {
        println!(
            "m['test_large'] is mapped: dtype {}, shape {:?}",
            large.dtype(),
            large.shape()
        );
    }

    // >>> del m['test_large']
    // >>> m.vacuum()
    m.remove("test_large")?;
    let report = m.vacuum()?;
    println!(
        "after del and vacuum: {} -> {} bytes",
        report.len_before, report.len_after
    );
    assert!(report.len_after < 1_000_000);

    println!("keys = {:?}", m.keys()?);
    println!("Python reads this file too:");
    println!(
        "  python3 -c \"import mmappickle; m = mmappickle.mmapdict('{}', True); \
         print(m['other_key'], m['test'], type(m['test']))\"",
        path.display()
    );
    println!(
        "  python3 -c \"import pickle; print(pickle.load(open('{}', 'rb')))\"",
        path.display()
    );
    Ok(())
}
