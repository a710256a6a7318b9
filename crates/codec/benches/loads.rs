//! `loads` of large pickles shaped exactly as CPython's protocol 4 pickler
//! writes them (frames of about 64 KiB, `MEMOIZE` after every string, items in
//! `MARK ... SETITEMS` / `APPENDS` batches of 1000), generated here without Python.
//!
//! Set `MMAPPICKLE_BENCH_DUMP=dir` to also write the inputs to `dir/dict.pickle`
//! and `dir/list.pickle`, to time CPython on the same bytes:
//! `python3 -m timeit -s "import pickle; d=open('dir/dict.pickle','rb').read()" "pickle.loads(d)"`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mmappickle_codec::{encode_op, loads, Op};

/// CPython's `_FRAME_SIZE_TARGET`.
const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// CPython's `_BATCHSIZE`.
const BATCH_SIZE: usize = 1000;

/// Writes ops into frames the way CPython's framer does: a frame is closed at
/// the end of the first object (`save()` call) after which it holds at least
/// `FRAME_SIZE_TARGET` bytes.
struct Framer {
    out: Vec<u8>,
    frame: Vec<u8>,
}

impl Framer {
    fn new() -> Self {
        let mut out = Vec::new();
        encode_op(&Op::Proto(4), &mut out);
        Framer {
            out,
            frame: Vec::new(),
        }
    }

    fn op(&mut self, op: Op<'_>) {
        encode_op(&op, &mut self.frame);
    }

    /// The end of one object's ops.
    fn object_end(&mut self) {
        if self.frame.len() >= FRAME_SIZE_TARGET {
            self.commit();
        }
    }

    fn commit(&mut self) {
        if !self.frame.is_empty() {
            encode_op(&Op::Frame(self.frame.len() as u64), &mut self.out);
            self.out.append(&mut self.frame);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        encode_op(&Op::Stop, &mut self.frame);
        self.commit();
        self.out
    }
}

/// CPython's int opcode choice for a non-negative int below 2^31.
fn int_op(value: u32) -> Op<'static> {
    match value {
        0..=0xff => Op::BinInt1(value as u8),
        0x100..=0xffff => Op::BinInt2(value as u16),
        _ => Op::BinInt(value as i32),
    }
}

/// `pickle.dumps({f"key{i}": i for i in range(n)}, 4)`.
fn dict_pickle(n_entries: u32) -> Vec<u8> {
    let keys: Vec<String> = (0..n_entries).map(|i| format!("key{i}")).collect();
    let mut framer = Framer::new();
    framer.op(Op::EmptyDict);
    framer.op(Op::Memoize);
    for (batch_idx, batch) in keys.chunks(BATCH_SIZE).enumerate() {
        if batch.len() > 1 {
            framer.op(Op::Mark);
        }
        for (idx_in_batch, key) in batch.iter().enumerate() {
            framer.op(Op::ShortBinUnicode(key));
            framer.op(Op::Memoize);
            framer.object_end();
            framer.op(int_op((batch_idx * BATCH_SIZE + idx_in_batch) as u32));
            framer.object_end();
        }
        framer.op(if batch.len() > 1 {
            Op::SetItems
        } else {
            Op::SetItem
        });
    }
    // CPython's batch_dict_exact ends a dict of a multiple of 1000 items with an empty batch.
    if n_entries > 1 && n_entries as usize % BATCH_SIZE == 0 {
        framer.op(Op::Mark);
        framer.op(Op::SetItems);
    }
    framer.finish()
}

/// `pickle.dumps([f"s{i}" for i in range(n)], 4)`.
fn list_pickle(n_items: u32) -> Vec<u8> {
    let items: Vec<String> = (0..n_items).map(|i| format!("s{i}")).collect();
    let mut framer = Framer::new();
    framer.op(Op::EmptyList);
    framer.op(Op::Memoize);
    for batch in items.chunks(BATCH_SIZE) {
        if batch.len() > 1 {
            framer.op(Op::Mark);
        }
        for item in batch {
            framer.op(Op::ShortBinUnicode(item));
            framer.op(Op::Memoize);
            framer.object_end();
        }
        framer.op(if batch.len() > 1 {
            Op::Appends
        } else {
            Op::Append
        });
    }
    framer.finish()
}

fn bench_loads(c: &mut Criterion) {
    let dict = dict_pickle(1_000_000);
    let list = list_pickle(2_000_000);
    if let Some(dir) = std::env::var_os("MMAPPICKLE_BENCH_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("dict.pickle"), &dict).expect("write dict.pickle");
        std::fs::write(dir.join("list.pickle"), &list).expect("write list.pickle");
    }
    let mut group = c.benchmark_group("loads");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(dict.len() as u64));
    group.bench_function("dict_1M_str_int", |b| b.iter(|| loads(&dict)));
    group.throughput(Throughput::Bytes(list.len() as u64));
    group.bench_function("list_2M_short_str", |b| b.iter(|| loads(&list)));
    group.finish();
}

criterion_group!(benches, bench_loads);
criterion_main!(benches);
