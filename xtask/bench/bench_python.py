"""The Python side of `cargo xtask bench` (see BENCHMARKS.md).

Runs one benchmark workload through Python's mmappickle 1.0, numpy and CPython's
pickle, and prints one `sample NAME SECONDS` line per run (and `info NAME VALUE`
lines for figures that are not timings), the protocol of the Rust driver
`bench/src/bin/bench_workloads.rs`.

    python bench_python.py WORKLOAD --dir DIR --runs N [--entries N] [--gets N]
                           [--mib N] [--gib N] [--file PATH] [--dict-entries N]
                           [--big-entries N]

`prepare` writes the shared inputs into DIR: `entries.mmdpickle` (--entries small
int entries; with --big-entries also `entries-big.mmdpickle` of that many, written byte for byte as mmappickle writes them, but in linear time;
checked against mmappickle itself on a small file) and `dict.pickle`
(`pickle.dumps({f"key{i}": i ...}, 4)` of --dict-entries entries).
"""

import argparse
import gc
import os
import pickle
import random
import resource
import shutil
import struct
import subprocess
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")  # numpy.float and fromstring deprecations of mmappickle 1.0

from mmappickle import mmapdict  # noqa: E402
from mmappickle.stubs import EmptyNDArray  # noqa: E402


def sample(name, seconds):
    print(f"sample {name} {seconds:e}", flush=True)


def info(name, value):
    print(f"info {name} {value}", flush=True)


def remove_if_present(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ---- inputs -------------------------------------------------------------

def int_opcodes(value):
    """What pickle.dumps(value, 4) holds between PROTO/FRAME and STOP for 0 <= value < 2**31."""
    if value < 256:
        return b"K" + struct.pack("<B", value)
    if value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def write_int_entries(path, n_entries):
    """The file mmapdict makes from `m[f"key{i}"] = i` for i in range(n_entries), in linear time."""
    parts = [b"\x80\x04\x95" + struct.pack("<Q", 13)
             + b"J" + struct.pack("<i", 1) + b"0"
             + b"J" + struct.pack("<i", n_entries) + b"0" + b"("]
    for idx in range(n_entries):
        key = f"key{idx}".encode()
        value = int_opcodes(idx)
        frame_len = len(key) + len(value) + 10
        parts.append(b"\x95" + struct.pack("<Q", frame_len)
                     + b"\x8c" + struct.pack("<B", len(key)) + key + value
                     + b"J" + struct.pack("<i", 1) + b"0" + b"\x88" + b"0")
    parts.append(b"\x95" + struct.pack("<Q", 2) + b"d.")
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def prepare(args):
    # The linear writer must make the very bytes mmappickle makes: check on 300 entries.
    check = os.path.join(args.dir, "check-mmappickle.mmdpickle")
    check_fast = os.path.join(args.dir, "check-writer.mmdpickle")
    for path in (check, check_fast):
        remove_if_present(path)
    m = mmapdict(check)
    for idx in range(300):
        m[f"key{idx}"] = idx
    del m
    write_int_entries(check_fast, 300)
    with open(check, "rb") as a, open(check_fast, "rb") as b:
        if a.read() != b.read():
            sys.exit("bench_python.py: the linear writer differs from mmappickle's own file")
    for path in (check, check_fast):
        os.remove(path)

    entries = os.path.join(args.dir, "entries.mmdpickle")
    write_int_entries(entries, args.entries)
    with open(entries, "rb") as f:
        loaded = pickle.load(f)
    assert loaded == {f"key{i}": i for i in range(args.entries)}

    if args.big_entries:
        write_int_entries(os.path.join(args.dir, "entries-big.mmdpickle"), args.big_entries)

    d = {f"key{i}": i for i in range(args.dict_entries)}
    with open(os.path.join(args.dir, "dict.pickle"), "wb") as f:
        f.write(pickle.dumps(d, 4))
    info("python", sys.version.split()[0])
    info("numpy", np.__version__)


# ---- workloads ----------------------------------------------------------

def create(args):
    """Row 1: a new file, then --entries inserts of small ints, `m[key] = i`."""
    path = os.path.join(args.dir, "python-create.mmdpickle")
    for _ in range(args.runs):
        remove_if_present(path)
        start = time.perf_counter()
        m = mmapdict(path)
        for idx in range(args.entries):
            m[f"key{idx}"] = idx
        seconds = time.perf_counter() - start
        del m
        sample(f"create.{args.entries}", seconds)
    remove_if_present(path)


def open_keys(args):
    """Row 2: open an existing file and list its keys."""
    for _ in range(args.runs):
        start = time.perf_counter()
        m = mmapdict(args.file)
        keys = list(m.keys())
        seconds = time.perf_counter() - start
        del m
        info("open_keys.n_keys", len(keys))
        sample("open_keys", seconds)


def gets(args):
    """Row 3: --gets random gets of small values from an open dict (the open is not timed)."""
    m = mmapdict(args.file)
    keys = list(m.keys())
    rng = random.Random(0x9E3779B97F4A7C15)
    picked = [keys[rng.randrange(len(keys))] for _ in range(args.gets)]
    for _ in range(args.runs):
        start = time.perf_counter()
        for key in picked:
            m[key]
        sample("gets", time.perf_counter() - start)


def array_data(mib):
    return np.arange(mib * (1 << 20) // 8, dtype=np.float64) * 0.5


def huge_kib():
    """How much of the process's memory is in transparent huge pages, in KiB."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def array_write(args):
    """Row 4: one float64 array of --mib MiB into a new file; and np.save of it."""
    data = array_data(args.mib)
    info("array.anon_huge_pages_kib", huge_kib())
    path = os.path.join(args.dir, "python-array.mmdpickle")
    npy = os.path.join(args.dir, "python-array.npy")
    for _ in range(args.runs):
        remove_if_present(path)
        os.sync()  # no write is timed while the kernel flushes the previous one
        start = time.perf_counter()
        m = mmapdict(path)
        m["a"] = data
        del m
        sample("array_write", time.perf_counter() - start)
        remove_if_present(path)

        remove_if_present(npy)
        os.sync()
        start = time.perf_counter()
        np.save(npy, data)
        sample("np_save", time.perf_counter() - start)
        remove_if_present(npy)


def array_sum(args):
    """Row 5: open + map + sum, the file in the page cache; np.load(mmap_mode="r") + sum;
    and summing the array in RAM."""
    data = array_data(args.mib)
    path = os.path.join(args.dir, "python-sum.mmdpickle")
    npy = os.path.join(args.dir, "python-sum.npy")
    remove_if_present(path)
    m = mmapdict(path)
    m["a"] = data
    del m
    np.save(npy, data)
    for warm in (path, npy):
        with open(warm, "rb") as f:
            while f.read(1 << 24):
                pass
    expected = data.sum()
    for _ in range(args.runs):
        start = time.perf_counter()
        m = mmapdict(path, readonly=True)
        total = m["a"].sum()
        seconds = time.perf_counter() - start
        del m
        assert total == expected, (total, expected)
        sample("map_sum", seconds)

        start = time.perf_counter()
        total = np.load(npy, mmap_mode="r").sum()
        seconds = time.perf_counter() - start
        assert total == expected, (total, expected)
        sample("np_load_sum", seconds)

        start = time.perf_counter()
        data.sum()
        sample("ram_sum", time.perf_counter() - start)
    gc.collect()
    remove_if_present(path)
    remove_if_present(npy)


def rss_kib():
    """The current and peak resident set, in KiB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            fields[name] = rest.split()[0] if rest.split() else "0"
    return int(fields.get("VmRSS", 0)), int(fields.get("VmHWM", 0))


def stub(args):
    """Row 6: a --gib GiB float64 stub in a new file (open included), and a 1 TiB one."""
    path = os.path.join(args.dir, "python-stub.mmdpickle")
    rss_before, _ = rss_kib()
    for name, n_elements in (("stub", args.gib << 27), ("stub_1tib", 1 << 37)):
        for _ in range(args.runs):
            remove_if_present(path)
            start = time.perf_counter()
            m = mmapdict(path)
            m["stub"] = EmptyNDArray((n_elements,), dtype=np.float64)
            seconds = time.perf_counter() - start
            del m
            sample(name, seconds)
    _, peak = rss_kib()
    info("stub.peak_rss_kib", peak)
    info("stub.rss_growth_kib", max(peak - rss_before, 0))
    remove_if_present(path)


def vacuum(args):
    """Row 7: on a copy of --file, delete every other key, then vacuum."""
    path = os.path.join(args.dir, "python-vacuum.mmdpickle")
    for _ in range(args.runs):
        shutil.copyfile(args.file, path)
        m = mmapdict(path)
        keys = list(m.keys())
        start = time.perf_counter()
        for key in keys[::2]:
            del m[key]
        delete_seconds = time.perf_counter() - start
        sample("delete_half", delete_seconds)
        start = time.perf_counter()
        m.vacuum()
        vacuum_seconds = time.perf_counter() - start
        sample("vacuum", vacuum_seconds)
        sample("delete_and_vacuum", delete_seconds + vacuum_seconds)
        info("vacuum.n_keys_after", len(m.keys()))
        del m
    remove_if_present(path)


def pickle_rows(args):
    """Row 8: pickle.loads of --file and pickle.dumps(_, 4) of the result (C _pickle)."""
    assert pickle.Pickler is not pickle._Pickler, "CPython's C _pickle is missing"
    with open(args.file, "rb") as f:
        data = f.read()
    for _ in range(args.runs):
        start = time.perf_counter()
        value = pickle.loads(data)
        sample("loads", time.perf_counter() - start)
        start = time.perf_counter()
        dumped = pickle.dumps(value, 4)
        sample("dumps", time.perf_counter() - start)
        info("dumps.len", len(dumped))
        del value, dumped


# What a user scripts in Python for each read command of `mmappickle` (rows 12 to 19),
# run as `python -c CODE FILE`: the same command names as the Rust driver's.
CLI_PRELUDE = "import json, os, pickletools, sys\nfrom mmappickle import mmapdict\nf = sys.argv[1]\n"
CLI_EQUIVALENTS = {
    "start": "",
    "ls": "print('\\n'.join(mmapdict(f, True).keys()))",
    "ls_json": "print(json.dumps(list(mmapdict(f, True).keys()), indent=2))",
    "info": "m = mmapdict(f, True)\nprint(m.commit_number, len(m.keys()), os.path.getsize(f))",
    "get": "print(mmapdict(f, True)['key5000'])",
    "dump_json": "m = mmapdict(f, True)\nprint(json.dumps({k: m[k] for k in m.keys()}, indent=2))",
    "dis": "with open(f, 'rb') as file:\n    pickletools.dis(file)",
}


def cli(args):
    """Rows 12 to 19: each command's Python equivalent as a process (its start included,
    output to /dev/null), on --file."""
    for name, code in CLI_EQUIVALENTS.items():
        command = [sys.executable, "-W", "ignore", "-c", CLI_PRELUDE + code, args.file]
        output = subprocess.run(command, stdout=subprocess.PIPE, check=True).stdout
        info(f"cli.{name}.output_lines", output.count(b"\n"))
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            sample(f"cli.{name}", time.perf_counter() - start)


WORKLOADS = {
    "prepare": prepare,
    "create": create,
    "open_keys": open_keys,
    "gets": gets,
    "array_write": array_write,
    "array_sum": array_sum,
    "stub": stub,
    "vacuum": vacuum,
    "pickle": pickle_rows,
    "cli": cli,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--dir", required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--gets", type=int, default=1_000)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--gib", type=int, default=1)
    parser.add_argument("--dict-entries", type=int, default=1_000_000)
    parser.add_argument("--big-entries", type=int, default=0)
    parser.add_argument("--file")
    args = parser.parse_args()
    args.runs = max(args.runs, 1)
    WORKLOADS[args.workload](args)


if __name__ == "__main__":
    main()
