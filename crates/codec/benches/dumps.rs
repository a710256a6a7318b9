//! `dumps` of a 1,000,000-entry `str -> int` dict, the shape of a big
//! metadata dict. CPython's `pickle.dumps(d, 4)` of the same dict is the
//! reference figure (see the codec's report in the README).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mmappickle_codec::{dumps, Value};

/// `{f"key{i}": i for i in range(n)}`.
fn str_to_int_dict(n_entries: i64) -> Value {
    (0..n_entries).map(|i| (format!("key{i}"), i)).collect()
}

fn bench_dumps(c: &mut Criterion) {
    let dict = str_to_int_dict(1_000_000);
    let pickled_len = dumps(&dict).len();
    let mut group = c.benchmark_group("dumps");
    group.throughput(Throughput::Bytes(pickled_len as u64));
    group.sample_size(10);
    group.bench_function("dict_str_int_1M", |b| b.iter(|| dumps(&dict)));
    group.finish();
}

criterion_group!(benches, bench_dumps);
criterion_main!(benches);
