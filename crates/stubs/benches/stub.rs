//! Stub creation: writing a 1 GiB and a 1 TiB float64 stub into a fresh file
//! takes the same few writes whatever the size (the data is a hole), and the
//! cost of reserving the space (`fallocate`) for the 1 GiB one beside.

use std::fs::File;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mmappickle_array::FileSink;
use mmappickle_stubs::EmptyArray;

const GIB_OF_F64: usize = 1 << 27;
const TIB_OF_F64: usize = 1 << 37;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("stub");
    let mut group = c.benchmark_group("stub");
    for (name, stub) in [
        ("hole_1GiB", EmptyArray::new::<f64>(&[GIB_OF_F64])),
        ("hole_1TiB", EmptyArray::new::<f64>(&[TIB_OF_F64])),
        (
            "reserved_1GiB",
            EmptyArray::new::<f64>(&[GIB_OF_F64]).reserve(true),
        ),
    ] {
        group.bench_function(name, |b| {
            // A fresh (truncated) file per write, made outside the timed part.
            b.iter_batched(
                || File::create(&path).expect("create the stub file"),
                |file| {
                    stub.write_to(&mut FileSink::new(&file, 0, None))
                        .expect("write the stub")
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = stub;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(stub);
