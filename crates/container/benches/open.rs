//! Benchmarks: open a 100,000-entry file and list its keys; get one key; insert one entry.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mmappickle_container::{scan, Container, NewEntry};

const N_ENTRIES: usize = 100_000;

/// A 100,000-entry file with values of 100 bytes (SHORT_BINBYTES).
fn big_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("big.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let mut value = vec![b'C', 98];
    value.resize(100, 7);
    container
        .with_lock(|container| {
            for idx in 0..N_ENTRIES {
                let new = NewEntry {
                    key: &format!("key-{idx:06}"),
                    value_len: value.len() as u64,
                    memo_max: 1,
                    align: None,
                };
                container
                    .append(new, |sink| sink.write_all(&value))
                    .unwrap();
            }
        })
        .unwrap();
    path
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(&dir);
    c.bench_function("open_100k_and_list_keys", |b| {
        b.iter(|| {
            let mut container = Container::open_readonly(&path).unwrap();
            container.keys().unwrap().len()
        })
    });
    let bytes = std::fs::read(&path).unwrap();
    c.bench_function("scan_100k_in_memory", |b| {
        b.iter(|| scan(&bytes).unwrap().n_live())
    });
    c.bench_function("read_and_scan_100k", |b| {
        b.iter(|| scan(&std::fs::read(&path).unwrap()).unwrap().n_live())
    });
    let mut container = Container::open(&path).unwrap();
    c.bench_function("get_one_key_of_100k", |b| {
        b.iter(|| container.get("key-054321").unwrap().unwrap().value_len())
    });
    let mut idx = 0u64;
    c.bench_function("insert_into_100k", |b| {
        b.iter_batched(
            || {
                idx += 1;
                format!("new-{idx}")
            },
            |key| {
                let new = NewEntry {
                    key: &key,
                    value_len: 2,
                    memo_max: 1,
                    align: None,
                };
                container
                    .append(new, |sink| sink.write_all(b"K\x01"))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = open;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(open);
