//! Writing a 256 MiB float64 array and mapping + summing it, each beside
//! the same bytes written / read with plain `std::fs`.

use std::fs::File;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mmappickle_array::{ArrayEncoding, ArrayLayout, FileSink, MappedArray};

/// 32 Mi float64 = 256 MiB.
const N: usize = 32 << 20;
/// Where the value starts so that its raw bytes (at 79 in the value) start at
/// 128, as the container places arrays we write.
const ALIGNED_START: u64 = 49;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("array");
    let plain_path = dir.path().join("plain");
    let data: Vec<f64> = (0..N).map(|i| i as f64 * 0.5).collect();
    let raw: &[u8] = bytemuck::cast_slice(&data);
    let layout = ArrayLayout::for_slice(&data, &[N], ArrayEncoding::Compatible).unwrap();

    let mut group = c.benchmark_group("256MiB_f64");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("write_array", |b| {
        b.iter(|| {
            let file = File::create(&path).unwrap();
            let mut sink = FileSink::new(&file, ALIGNED_START, None);
            layout.write_to(&mut sink, raw).unwrap();
        })
    });
    group.bench_function("write_std_fs", |b| {
        b.iter(|| std::fs::write(&plain_path, raw).unwrap())
    });

    let file = File::open(&path).unwrap();
    let header = layout.header().clone();
    let data_offset = ALIGNED_START + header.raw_offset;
    group.bench_function("map_and_sum", |b| {
        b.iter(|| {
            let array = {
                // SAFETY: a temporary file of this test that nothing shrinks, with no other map of these bytes alive.
                unsafe {
                    MappedArray::<f64>::map(&file, data_offset, header.dtype.clone(), &header.shape)
                }
            }
            .unwrap();
            array.as_slice().unwrap().iter().sum::<f64>()
        })
    });
    // Raw bytes at an odd offset, as Python writes them: no slice, copied elements.
    group.bench_function("map_unaligned_and_sum_to_vec", |b| {
        b.iter(|| {
            let dtype = header.dtype.clone();
            let array = {
                // SAFETY: a temporary file of this test that nothing shrinks, with no other map of these bytes alive.
                unsafe { MappedArray::<f64>::map(&file, data_offset - 1, dtype, &header.shape) }
            }
            .unwrap();
            array.to_vec().iter().sum::<f64>()
        })
    });
    group.bench_function("read_std_fs_and_sum", |b| {
        b.iter(|| {
            let bytes = std::fs::read(&plain_path).unwrap();
            bytes
                .chunks_exact(8)
                .map(|chunk| f64::from_le_bytes(chunk.try_into().unwrap()))
                .sum::<f64>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
