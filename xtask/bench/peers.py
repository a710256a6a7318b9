"""The Python side of `cargo xtask peers` (see BENCHMARKS.md, "Against other storage libraries").

Runs the same workloads through our package and through the storage libraries a scientist
would pick instead, each used its own idiomatic way, and prints tab-separated lines for the
Rust side to put in tables (progress goes to stderr):

    info    NAME    VALUE
    workload        ID      TITLE
    result  ID      LIBRARY RUNS    SECONDS BOUND   NOTE    (BOUND: "=" or ">" for a lower bound)
    na      ID      LIBRARY REASON

    python peers.py --dir DIR [--runs N] [--budget SECONDS] [--process-runs N]

Every timed function returns what it read, checked after the clock stops against what was
written (sums against numpy's own), so that a fast wrong answer fails the run instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import h5py
import joblib
import numpy as np
import zarr
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray
from safetensors import safe_open
from safetensors.numpy import save_file

ARRAYS = 64
ARRAY_ELEMENTS = 1 << 20  # float32: 4 MiB
SLICE_ELEMENTS = 1 << 14  # float32: 64 KiB
SMALL_IN_STORE = 1_000
SMALL_VALUES = 10_000
GETS = 1_000
SPARSE_ELEMENTS = 1 << 34  # float32: 64 GiB
TAIL_ELEMENTS = 1 << 18  # float32: 1 MiB
ONE_BY_ONE_SECONDS = 5.0  # past this, single inserts stop and are extrapolated

Small = dict[str, Any]
Arrays = dict[str, np.ndarray]


def emit(*fields: object) -> None:
    print("\t".join(str(field) for field in fields), flush=True)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def small_value(i: int) -> Any:
    """Ints, strings and dicts in turn: the metadata a store keeps beside its arrays."""
    if i % 3 == 0:
        return i
    if i % 3 == 1:
        return f"value {i}"
    return {"gain": i * 0.5, "name": f"scan{i}", "ids": [i, i + 1]}


def encode(value: Any) -> Any:
    """Dicts as JSON text, where a library's attributes take only scalars and strings."""
    return json.dumps(value) if isinstance(value, dict) else value


def decode(value: Any) -> Any:
    # No string value starts with "{" (see small_value): those are encoded dicts.
    return json.loads(value) if isinstance(value, str) and value.startswith("{") else value


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def disk_bytes(path: str) -> int:
    """Bytes the file (or every file under the directory) holds on disk."""
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512
    return sum(
        os.stat(os.path.join(root, name)).st_blocks * 512
        for root, _, names in os.walk(path)
        for name in names
    )


class Peer:
    """One library: its way of doing each workload. The workloads in `cannot` are those it
    cannot do (their methods are not defined); the reason goes into the table."""

    key = ""
    label = ""
    suffix = ""
    cannot: dict[str, str] = {}  # noqa: RUF012 (read-only, per class)

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        raise NotImplementedError

    def open_keys(self, path: str) -> list[str]:
        raise NotImplementedError

    def keys_code(self) -> str:
        """Python code run by `python -c` in a new process, `P` being the path: opens the
        store and prints how many keys it lists."""
        raise NotImplementedError

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        raise NotImplementedError

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        raise NotImplementedError

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        raise NotImplementedError

    def add(self, path: str, key: str, array: np.ndarray) -> None:
        raise NotImplementedError

    def one_by_one(self, path: str, small: Small, deadline: float) -> int:
        """Inserts `small` one value at a time; returns how many went in before `deadline`."""
        raise NotImplementedError

    def batch(self, path: str, small: Small) -> None:
        raise NotImplementedError

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        raise NotImplementedError

    def sparse(self, path: str, tail: np.ndarray) -> None:
        """A float32 array of SPARSE_ELEMENTS that is never filled, then `tail` at its end."""
        raise NotImplementedError

    def read_tail(self, path: str) -> np.ndarray:
        raise NotImplementedError


def past(deadline: float, i: int) -> bool:
    return i % 100 == 99 and time.perf_counter() > deadline


class Ours(Peer):
    key, label, suffix = "ours", "mmappickle-rs (ours)", ".mmdpickle"

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        with mmapdict(path) as m:
            m.update(arrays)
            m.update(small)

    def open_keys(self, path: str) -> list[str]:
        with mmapdict(path, True) as m:
            return m.keys()

    def keys_code(self) -> str:
        return "from mmappickle import mmapdict; print(len(mmapdict(P, True).keys()))"

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        with mmapdict(path, True) as m:
            return [np.array(m[k][a:b]) for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        with mmapdict(path, True) as m:
            return np.array(m[key])

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        with mmapdict(path, True) as m:
            return [m[k].sum(dtype=np.float64) for k in keys]

    def add(self, path: str, key: str, array: np.ndarray) -> None:
        with mmapdict(path) as m:
            m[key] = array

    def one_by_one(self, path: str, small: Small, deadline: float) -> int:
        with mmapdict(path) as m:
            for i, (k, v) in enumerate(small.items()):
                m[k] = v
                if past(deadline, i):
                    return i + 1
        return len(small)

    def batch(self, path: str, small: Small) -> None:
        with mmapdict(path) as m:
            m.update(small)

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        with mmapdict(path, True) as m:
            return [m[k] for k in keys]

    def sparse(self, path: str, tail: np.ndarray) -> None:
        with mmapdict(path) as m:
            m["big"] = EmptyNDArray((SPARSE_ELEMENTS,), np.float32)
            m["big"][-len(tail) :] = tail

    def read_tail(self, path: str) -> np.ndarray:
        with mmapdict(path, True) as m:
            return np.array(m["big"][-TAIL_ELEMENTS:])


class OursWriteRows(Ours):
    """Ours writing the rows with ``pwrite`` (``m.write_rows``) instead of through a map."""

    key, label = "ours-write-rows", "mmappickle-rs (ours, `write_rows`)"

    def sparse(self, path: str, tail: np.ndarray) -> None:
        with mmapdict(path) as m:
            m["big"] = EmptyNDArray((SPARSE_ELEMENTS,), np.float32)
            m.write_rows("big", -len(tail), tail)


class H5py(Peer):
    key, label, suffix = "h5py", "h5py", ".h5"
    cannot = {  # noqa: RUF012
        "6b": "n/a: no batch form (`attrs.update` sets one attribute at a time, as 6a)",
    }

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        with h5py.File(path, "w") as f:
            for k, a in arrays.items():
                f.create_dataset(k, data=a)
            for k, v in small.items():
                f.attrs[k] = encode(v)

    def open_keys(self, path: str) -> list[str]:
        with h5py.File(path, "r") as f:
            return list(f) + list(f.attrs)

    def keys_code(self) -> str:
        return "import h5py; f = h5py.File(P, 'r'); print(len(list(f) + list(f.attrs)))"

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        with h5py.File(path, "r") as f:
            return [f[k][a:b] for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        with h5py.File(path, "r") as f:
            return f[key][()]

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        with h5py.File(path, "r") as f:
            return [f[k][()].sum(dtype=np.float64) for k in keys]

    def add(self, path: str, key: str, array: np.ndarray) -> None:
        with h5py.File(path, "a") as f:
            f.create_dataset(key, data=array)

    def one_by_one(self, path: str, small: Small, deadline: float) -> int:
        with h5py.File(path, "w") as f:
            for i, (k, v) in enumerate(small.items()):
                f.attrs[k] = encode(v)
                if past(deadline, i):
                    return i + 1
        return len(small)

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        with h5py.File(path, "r") as f:
            return [decode(f.attrs[k]) for k in keys]

    def sparse(self, path: str, tail: np.ndarray) -> None:
        with h5py.File(path, "w") as f:
            f.create_dataset("big", shape=(SPARSE_ELEMENTS,), dtype=np.float32)[-len(tail) :] = tail

    def read_tail(self, path: str) -> np.ndarray:
        with h5py.File(path, "r") as f:
            return f["big"][-TAIL_ELEMENTS:]


class Zarr(Peer):
    suffix = ".zarr"

    def __init__(self, compressed: bool) -> None:
        self.compressors: Any = "auto" if compressed else None
        self.key = "zarr" if compressed else "zarr-raw"
        self.label = "zarr (default codecs)" if compressed else "zarr (no compressor)"

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        g = zarr.open_group(path, mode="w")
        for k, a in arrays.items():
            g.create_array(k, data=a, compressors=self.compressors)
        g.update_attributes(small)

    def open_keys(self, path: str) -> list[str]:
        g = zarr.open_group(path, mode="r")
        return list(g.keys()) + list(g.attrs)

    def keys_code(self) -> str:
        return (
            "import zarr; g = zarr.open_group(P, mode='r'); "
            "print(len(list(g.keys()) + list(g.attrs)))"
        )

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        g = zarr.open_group(path, mode="r")
        return [g[k][a:b] for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        return zarr.open_group(path, mode="r")[key][:]

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        g = zarr.open_group(path, mode="r")
        return [g[k][:].sum(dtype=np.float64) for k in keys]

    def add(self, path: str, key: str, array: np.ndarray) -> None:
        zarr.open_group(path, mode="a").create_array(key, data=array, compressors=self.compressors)

    def one_by_one(self, path: str, small: Small, deadline: float) -> int:
        g = zarr.open_group(path, mode="w")
        for i, (k, v) in enumerate(small.items()):
            g.attrs[k] = v
            if past(deadline, i):
                return i + 1
        return len(small)

    def batch(self, path: str, small: Small) -> None:
        zarr.open_group(path, mode="w").update_attributes(small)

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        attrs = zarr.open_group(path, mode="r").attrs
        return [attrs[k] for k in keys]

    def sparse(self, path: str, tail: np.ndarray) -> None:
        z = zarr.create_array(
            path,
            shape=(SPARSE_ELEMENTS,),
            dtype=np.float32,
            fill_value=0,
            compressors=self.compressors,
        )
        z[-len(tail) :] = tail

    def read_tail(self, path: str) -> np.ndarray:
        return zarr.open_array(path, mode="r")[-TAIL_ELEMENTS:]


class Safetensors(Peer):
    key, label, suffix = "safetensors", "safetensors", ".safetensors"
    cannot = {  # noqa: RUF012
        "5": "rewrites the file: safetensors cannot add to one",
        "6a": "rewrites the file: safetensors cannot add to one",
        "7": "n/a: save_file needs the whole array in RAM (64 GiB)",
    }

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        save_file(arrays, path, metadata={k: json.dumps(v) for k, v in small.items()})

    def open_keys(self, path: str) -> list[str]:
        with safe_open(path, "np") as f:
            return list(f.keys()) + list(f.metadata())

    def keys_code(self) -> str:
        return (
            "from safetensors import safe_open\n"
            "with safe_open(P, 'np') as f: print(len(list(f.keys()) + list(f.metadata())))"
        )

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        with safe_open(path, "np") as f:
            return [f.get_slice(k)[a:b] for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        with safe_open(path, "np") as f:
            return f.get_tensor(key)

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        with safe_open(path, "np") as f:
            return [f.get_tensor(k).sum(dtype=np.float64) for k in keys]

    def batch(self, path: str, small: Small) -> None:
        save_file({}, path, metadata={k: json.dumps(v) for k, v in small.items()})

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        with safe_open(path, "np") as f:
            metadata = f.metadata()
        return [json.loads(metadata[k]) for k in keys]


class Npz(Peer):
    key, label, suffix = "npz", "numpy .npz", ".npz"
    cannot = {  # noqa: RUF012
        "5": "rewrites the file: np.savez cannot add to an archive",
        "6a": "rewrites the file: np.savez cannot add to an archive",
        "7": "n/a: np.savez needs the whole array in RAM (64 GiB)",
    }

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        np.savez(path, **arrays, meta=np.array(small, dtype=object))

    def open_keys(self, path: str) -> list[str]:
        with np.load(path, allow_pickle=True) as z:
            return [k for k in z.files if k != "meta"] + list(z["meta"].item())

    def keys_code(self) -> str:
        return (
            "with numpy.load(P, allow_pickle=True) as z:"
            " print(len([k for k in z.files if k != 'meta'] + list(z['meta'].item())))"
        )

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        with np.load(path) as z:
            return [z[k][a:b] for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        with np.load(path) as z:
            return z[key]

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        with np.load(path) as z:
            return [z[k].sum(dtype=np.float64) for k in keys]

    def batch(self, path: str, small: Small) -> None:
        np.savez(path, meta=np.array(small, dtype=object))

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        with np.load(path, allow_pickle=True) as z:
            meta = z["meta"].item()
        return [meta[k] for k in keys]


class NpyDir(Peer):
    key, label, suffix = "npy", "numpy .npy files", ".npydir"
    cannot = {"6a": "rewrites the file: the small values are one meta.json"}  # noqa: RUF012

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        os.makedirs(path, exist_ok=True)
        for k, a in arrays.items():
            np.save(os.path.join(path, k + ".npy"), a)
        with open(os.path.join(path, "meta.json"), "w") as f:
            json.dump(small, f)

    def open_keys(self, path: str) -> list[str]:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        return [n[:-4] for n in os.listdir(path) if n.endswith(".npy")] + list(meta)

    def keys_code(self) -> str:
        return (
            "import os, json\n"
            "with open(os.path.join(P, 'meta.json')) as f: meta = json.load(f)\n"
            "print(len([n[:-4] for n in os.listdir(P) if n.endswith('.npy')] + list(meta)))"
        )

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        return [
            np.array(np.load(os.path.join(path, k + ".npy"), mmap_mode="r")[a:b])
            for k, a, b in spans
        ]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        return np.load(os.path.join(path, key + ".npy"))

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        return [
            np.load(os.path.join(path, k + ".npy"), mmap_mode="r").sum(dtype=np.float64)
            for k in keys
        ]

    def add(self, path: str, key: str, array: np.ndarray) -> None:
        np.save(os.path.join(path, key + ".npy"), array)

    def batch(self, path: str, small: Small) -> None:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "meta.json"), "w") as f:
            json.dump(small, f)

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        return [meta[k] for k in keys]

    def sparse(self, path: str, tail: np.ndarray) -> None:
        os.makedirs(path, exist_ok=True)
        big = np.lib.format.open_memmap(
            os.path.join(path, "big.npy"), mode="w+", dtype=np.float32, shape=(SPARSE_ELEMENTS,)
        )
        big[-len(tail) :] = tail
        del big

    def read_tail(self, path: str) -> np.ndarray:
        return np.array(np.load(os.path.join(path, "big.npy"), mmap_mode="r")[-TAIL_ELEMENTS:])


class Joblib(Peer):
    key, label, suffix = "joblib", "joblib", ".joblib"
    cannot = {  # noqa: RUF012
        "5": "rewrites the file: joblib.dump writes one object whole",
        "6a": "rewrites the file: joblib.dump writes one object whole",
        "7": "n/a: joblib.dump needs the whole array in RAM (64 GiB)",
    }

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        joblib.dump({**arrays, **small}, path)

    def open_keys(self, path: str) -> list[str]:
        return list(joblib.load(path, mmap_mode="r"))

    def keys_code(self) -> str:
        return "import joblib; print(len(joblib.load(P, mmap_mode='r')))"

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        store = joblib.load(path, mmap_mode="r")
        return [np.array(store[k][a:b]) for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        return np.array(joblib.load(path, mmap_mode="r")[key])

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        store = joblib.load(path, mmap_mode="r")
        return [store[k].sum(dtype=np.float64) for k in keys]

    def batch(self, path: str, small: Small) -> None:
        joblib.dump(small, path)

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        store = joblib.load(path)
        return [store[k] for k in keys]


class Pickle(Peer):
    key, label, suffix = "pickle", "pickle", ".pickle"
    cannot = {  # noqa: RUF012
        "5": "rewrites the file: a pickle is one object",
        "6a": "rewrites the file: a pickle is one object",
        "7": "n/a: pickle.dump needs the whole array in RAM (64 GiB)",
    }

    @staticmethod
    def load(path: str) -> dict[str, Any]:
        with open(path, "rb") as f:
            store: dict[str, Any] = pickle.load(f)
        return store

    def write(self, path: str, arrays: Arrays, small: Small) -> None:
        with open(path, "wb") as f:
            pickle.dump({**arrays, **small}, f, protocol=pickle.HIGHEST_PROTOCOL)

    def open_keys(self, path: str) -> list[str]:
        return list(self.load(path))

    def keys_code(self) -> str:
        return "import pickle\nwith open(P, 'rb') as f: print(len(pickle.load(f)))"

    def slices(self, path: str, spans: list[tuple[str, int, int]]) -> list[np.ndarray]:
        store = self.load(path)
        return [np.array(store[k][a:b]) for k, a, b in spans]

    def one_to_ram(self, path: str, key: str) -> np.ndarray:
        return np.asarray(self.load(path)[key])

    def sum_all(self, path: str, keys: list[str]) -> list[float]:
        store = self.load(path)
        return [store[k].sum(dtype=np.float64) for k in keys]

    def batch(self, path: str, small: Small) -> None:
        with open(path, "wb") as f:
            pickle.dump(small, f, protocol=pickle.HIGHEST_PROTOCOL)

    def gets(self, path: str, keys: list[str]) -> list[Any]:
        store = self.load(path)
        return [store[k] for k in keys]


@dataclass
class Cell:
    """One library's timing of one workload (see `Bench.time`)."""

    peer: Peer
    body: Callable[[int], Any]
    check: Callable[[Any], None]
    setup: Callable[[int], None]
    note: str
    cannot: str | None
    samples: list[float] = field(default_factory=list)
    spent: float = 0.0


class Bench:
    def __init__(self, directory: str, runs: int, budget: float, process_runs: int) -> None:
        self.dir = directory
        self.runs = runs
        self.budget = budget
        self.process_runs = process_runs
        self.peers: list[Peer] = [
            Ours(),
            H5py(),
            Zarr(compressed=True),
            Zarr(compressed=False),
            Safetensors(),
            Npz(),
            NpyDir(),
            Joblib(),
            Pickle(),
        ]
        rng = np.random.default_rng(0)
        self.arrays: Arrays = {
            f"array{i:02}": rng.standard_normal(ARRAY_ELEMENTS, dtype=np.float32)
            for i in range(ARRAYS)
        }
        self.sums = {k: a.sum(dtype=np.float64) for k, a in self.arrays.items()}
        self.small: Small = {f"meta{i:04}": small_value(i) for i in range(SMALL_IN_STORE)}
        self.many: Small = {f"key{i:05}": small_value(i) for i in range(SMALL_VALUES)}
        self.extra = rng.standard_normal(ARRAY_ELEMENTS, dtype=np.float32)
        self.tail = rng.standard_normal(TAIL_ELEMENTS, dtype=np.float32)
        self.random = random.Random(0)
        self.order = random.Random(1)
        self.cells: list[Cell] = []

    def path(self, peer: Peer, name: str) -> str:
        return os.path.join(self.dir, f"{peer.key}-{name}{peer.suffix}")

    def time(
        self,
        workload: str,
        peer: Peer,
        body: Callable[[int], Any],
        check: Callable[[Any], None],
        *,
        setup: Callable[[int], None] = lambda run: None,
        note: str = "",
    ) -> None:
        """Registers `peer`'s timing of `workload`, run by `measure`: `body(run)` after an
        untimed `setup(run)`, its outcome checked by `check` once the clock stopped."""
        self.cells.append(Cell(peer, body, check, setup, note, peer.cannot.get(workload)))

    def measure(self, workload: str) -> None:
        """Runs the registered timings in turns, one run of each library per round, so that a
        change of the machine's load hits them alike; a library stops repeating once its runs
        took `self.budget` seconds. Emits each one's median, in the libraries' order."""
        cells, self.cells = self.cells, []
        for run in range(self.runs):
            active = [c for c in cells if c.cannot is None and c.spent < self.budget]
            if not active:
                break
            # Each round runs the libraries in a new random order: what a library leaves behind
            # (memory the allocator gave back to the kernel and must fault in again, pages the
            # kernel is still reclaiming) lands on a different successor each time, not always
            # on the same one, as a fixed cyclic order did.
            self.order.shuffle(active)
            for cell in active:
                cell.setup(run)
                gc.collect()
                # The previous library's dirty pages written back first: their writeback would
                # throttle whatever writes next (it did, by up to 70 ms in row 1).
                os.sync()
                start = time.perf_counter()
                outcome = cell.body(run)
                cell.samples.append(time.perf_counter() - start)
                cell.check(outcome)
                # Freed now: freeing it when the next library's outcome replaces it would be
                # timed as that library's (64 arrays of 4 MiB take about 20 ms to unmap).
                del outcome
                cell.spent += time.perf_counter() - start
            progress(
                f"  [{workload}] run {run + 1} of {self.runs}: "
                + ", ".join(f"{c.peer.key} {c.samples[-1] * 1e3:.2f} ms" for c in active)
            )
        for cell in cells:
            if cell.cannot is not None:
                self.not_applicable(workload, cell.peer, cell.cannot)
                continue
            median = statistics.median(cell.samples)
            runs = len(cell.samples)
            emit("result", workload, cell.peer.label, runs, f"{median:e}", "=", cell.note)
            progress(f"  [{workload}] {cell.peer.label}: {median * 1e3:.3f} ms (median of {runs})")

    def not_applicable(self, workload: str, peer: Peer, reason: str) -> None:
        emit("na", workload, peer.label, reason)
        progress(f"  [{workload}] {peer.label}: {reason}")

    def run(self) -> None:
        self.versions()
        self.write_store()
        self.open_keys()
        self.new_process()
        self.slices()
        self.to_ram()
        self.add()
        self.small_values()
        self.sparse()

    def versions(self) -> None:
        emit("info", "python", platform.python_version())
        for package in ["numpy", "mmappickle-rs", "h5py", "zarr", "safetensors", "joblib"]:
            emit("info", package, version(package))
        emit("info", "hdf5", h5py.version.hdf5_version)

    def workload(self, workload: str, title: str) -> None:
        emit("workload", workload, title)
        progress(f"[{workload}] {title}")

    def write_store(self) -> None:
        self.workload(
            "1",
            f"write {ARRAYS} float32 arrays of 4 MiB + {SMALL_IN_STORE:,} small values "
            "(ints, strings, dicts) into a new store",
        )
        expected = sorted([*self.arrays, *self.small])
        for peer in self.peers:
            path = self.path(peer, "store")

            def check(_: Any, peer: Peer = peer, path: str = path) -> None:
                assert sorted(peer.open_keys(path)) == expected, peer.label

            note = {
                "h5py": "dicts as JSON text attributes",
                "safetensors": "small values as JSON text metadata",
                "npz": "small values in one pickled object array",
                "npy": "small values in one meta.json",
            }.get(peer.key, "")
            self.time(
                "1",
                peer,
                lambda run, peer=peer, path=path: peer.write(path, self.arrays, self.small),
                check,
                setup=lambda run, path=path: remove(path),
                note=note,
            )
        self.measure("1")

    def open_keys(self) -> None:
        self.workload("2a", f"open + list the {ARRAYS + SMALL_IN_STORE:,} keys, in process")
        count = ARRAYS + SMALL_IN_STORE
        for peer in self.peers:
            path = self.path(peer, "store")

            def check(keys: list[str]) -> None:
                assert len(keys) == count

            self.time("2a", peer, lambda run, peer=peer, path=path: peer.open_keys(path), check)
        self.measure("2a")

    def new_process(self) -> None:
        self.workload(
            "2b",
            "new process, numpy already imported: import the library, open, list the keys",
        )

        def spawn(code: str) -> tuple[float, float]:
            """The process's wall time, and the time its own clock gave to `code` after
            `import numpy`."""
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            )
            seconds = time.perf_counter() - start
            lines = out.stdout.split()
            if lines:
                assert int(lines[0]) == ARRAYS + SMALL_IN_STORE, out.stdout
                return seconds, float(lines[-1])
            return seconds, 0.0

        baselines: list[float] = []
        for peer in self.peers:
            progress(f"  [2b] {peer.label} ...")
            # Timed by the child itself: the start of the interpreter and numpy's import vary
            # by tens of ms from one process to the next on a loaded machine.
            code = (
                f"import numpy, time\nP = {self.path(peer, 'store')!r}\n"
                f"started = time.perf_counter()\n{peer.keys_code()}\n"
                "print(time.perf_counter() - started)"
            )
            spawn(code)  # warms the page cache
            # In turns with `python -c 'import numpy'`, for the whole processes' difference.
            pairs = [(spawn(code), spawn("import numpy")[0]) for _ in range(self.process_runs)]
            baselines.extend(numpy for _, numpy in pairs)
            inner = statistics.median(inner for (_, inner), _ in pairs)
            whole = min(wall for (wall, _), _ in pairs) - min(numpy for _, numpy in pairs)
            note = f"whole process minus `import numpy`, fastest of each: {whole * 1e3:.1f} ms"
            emit("result", "2b", peer.label, self.process_runs, f"{inner:e}", "=", note)
            progress(f"  [2b] {peer.label}: {inner * 1e3:.2f} ms ({note})")
        emit(
            "info",
            "python -c 'import numpy'",
            f"{min(baselines) * 1e3:.0f} to {max(baselines) * 1e3:.0f} ms "
            f"(median {statistics.median(baselines) * 1e3:.0f} ms)",
        )

    def slices(self) -> None:
        self.workload(
            "3",
            f"open + {ARRAYS} random 64 KiB slices, one per array, copied out (`np.array(x[a:b])`)",
        )
        spans_of_run = []
        for _ in range(self.runs):
            starts = [self.random.randrange(ARRAY_ELEMENTS - SLICE_ELEMENTS) for _ in self.arrays]
            spans_of_run.append([(k, a, a + SLICE_ELEMENTS) for k, a in zip(self.arrays, starts)])

        for peer in self.peers:
            path = self.path(peer, "store")

            def check(
                outcome: tuple[list[tuple[str, int, int]], list[np.ndarray]], peer: Peer = peer
            ) -> None:
                spans, slices = outcome
                for got, (k, a, b) in zip(slices, spans):
                    assert isinstance(got, np.ndarray) and np.array_equal(
                        got, self.arrays[k][a:b]
                    ), peer.label

            self.time(
                "3",
                peer,
                lambda run, peer=peer, path=path: (
                    spans_of_run[run],
                    peer.slices(path, spans_of_run[run]),
                ),
                check,
            )
        self.measure("3")

    def to_ram(self) -> None:
        key = "array07"
        self.workload("4a", "open + one 4 MiB array read into RAM (`np.array(x)`) + its sum")
        for peer in self.peers:
            path = self.path(peer, "store")

            def check(total: float) -> None:
                assert total == self.sums[key], (total, self.sums[key])

            self.time(
                "4a",
                peer,
                lambda run, peer=peer, path=path: peer.one_to_ram(path, key).sum(dtype=np.float64),
                check,
            )
        self.measure("4a")
        self.workload(
            "4b", f"open + the sum of each of the {ARRAYS} arrays (where mapped, summed in place)"
        )
        keys = list(self.arrays)
        for peer in self.peers:
            path = self.path(peer, "store")

            def check_all(totals: list[float]) -> None:
                assert totals == [self.sums[k] for k in keys]

            self.time(
                "4b", peer, lambda run, peer=peer, path=path: peer.sum_all(path, keys), check_all
            )
        self.measure("4b")

    def add(self) -> None:
        self.workload("5", "open an existing store, add one 4 MiB array, close")
        for peer in self.peers:
            path = self.path(peer, "store")
            added: list[str] = []

            def body(
                run: int, peer: Peer = peer, path: str = path, added: list[str] = added
            ) -> None:
                added.append(f"added{run}")
                peer.add(path, added[-1], self.extra)

            def check(
                _: None, peer: Peer = peer, path: str = path, added: list[str] = added
            ) -> None:
                total = peer.one_to_ram(path, added[-1]).sum(dtype=np.float64)
                assert total == self.extra.sum(dtype=np.float64), peer.label

            self.time("5", peer, body, check)
        self.measure("5")

    def small_values(self) -> None:
        n = len(self.many)
        self.workload(
            "6a", f"{n:,} small values inserted one by one into a new store (each its own write)"
        )
        for peer in self.peers:
            path = self.path(peer, "small")
            if "6a" in peer.cannot:
                self.not_applicable("6a", peer, peer.cannot["6a"])
                continue
            progress(f"  [6a] {peer.label} ...")
            samples: list[float] = []
            spent = time.perf_counter()
            for _ in range(self.runs):
                remove(path)
                gc.collect()
                start = time.perf_counter()
                done = peer.one_by_one(path, self.many, start + ONE_BY_ONE_SECONDS)
                seconds = time.perf_counter() - start
                if done < n:
                    # Stopped early: each insert rewrites more than the last, so a linear
                    # extrapolation is a lower bound.
                    estimate = seconds * n / done
                    note = (
                        f"stopped after {done:,} of {n:,} in {seconds:.1f} s; linear extrapolation"
                    )
                    emit("result", "6a", peer.label, 1, f"{estimate:e}", ">", note)
                    progress(f"  [6a] {peer.label}: > {estimate:.1f} s ({note})")
                    break
                samples.append(seconds)
                if time.perf_counter() - spent > self.budget:
                    break
            else:
                done = n
            if samples and done == n:
                median = statistics.median(samples)
                emit("result", "6a", peer.label, len(samples), f"{median:e}", "=", "")
                progress(f"  [6a] {peer.label}: {median * 1e3:.3f} ms (median of {len(samples)})")

        self.workload("6b", f"the same {n:,} small values in one batch into a new store")
        for peer in self.peers:
            path = self.path(peer, "small")
            note = {
                "ours": "`m.update(d)`",
                "zarr": "`g.update_attributes(d)`: one JSON document",
                "zarr-raw": "`g.update_attributes(d)`: one JSON document",
                "safetensors": "JSON text metadata of an empty file",
                "npz": "one pickled object array",
                "npy": "`json.dump` into meta.json",
            }.get(peer.key, "")
            self.time(
                "6b",
                peer,
                lambda run, peer=peer, path=path: peer.batch(path, self.many),
                lambda _: None,
                setup=lambda run, path=path: remove(path),
                note=note,
            )
        self.measure("6b")

        self.workload("6c", f"open the batch-written store + {GETS:,} random gets of small values")
        keys = self.random.sample(list(self.many), GETS)
        expected = [self.many[k] for k in keys]
        for peer in self.peers:
            path = self.path(peer, "small")
            if "6b" in peer.cannot:
                progress(f"  [6c] {peer.label}: storing the values one by one first (untimed)")
                remove(path)
                peer.one_by_one(path, self.many, float("inf"))

            def check(values: list[Any]) -> None:
                assert values == expected

            note = {
                "pickle": "the open reads every value",
                "joblib": "the open reads every value",
                "npz": "the open reads every value",
                "npy": "the open reads every value",
                "safetensors": "the open reads every value",
            }.get(peer.key, "")
            self.time(
                "6c",
                peer,
                lambda run, peer=peer, path=path: peer.gets(path, keys),
                check,
                note=note,
            )
        self.measure("6c")

    def sparse(self) -> None:
        self.workload(
            "7",
            "a new store holding a 64 GiB float32 array never filled (a stub), "
            "then 1 MiB written at its end",
        )
        # Ours twice: through a map (`m[k][a:b] = tail`) and with `write_rows`.
        for peer in [self.peers[0], OursWriteRows(), *self.peers[1:]]:
            path = self.path(peer, "sparse")

            def check(_: None, peer: Peer = peer, path: str = path) -> None:
                assert np.array_equal(peer.read_tail(path), self.tail), peer.label
                assert disk_bytes(path) < 64 << 20, (peer.label, disk_bytes(path))

            how = {
                "ours": "`EmptyNDArray`, then `m[k][a:b] = tail` (a map)",
                "ours-write-rows": "`EmptyNDArray`, then `m.write_rows(k, a, tail)` (`pwrite`)",
                "h5py": "`create_dataset` without data",
                "zarr": "`create_array`, chunks not written",
                "zarr-raw": "`create_array`, chunks not written",
                "npy": "`open_memmap` (a sparse file)",
            }.get(peer.key, "")
            self.time(
                "7",
                peer,
                lambda run, peer=peer, path=path: peer.sparse(path, self.tail),
                check,
                setup=lambda run, path=path: remove(path),
                note=how,
            )
        self.measure("7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, help="scratch directory (emptied, then removed)")
    parser.add_argument("--runs", type=int, default=7, help="runs of each timing at most")
    parser.add_argument(
        "--budget", type=float, default=8.0, help="seconds after which a timing stops repeating"
    )
    parser.add_argument("--process-runs", type=int, default=15, help="runs of each new process")
    args = parser.parse_args()
    remove(args.dir)
    os.makedirs(args.dir)
    try:
        Bench(args.dir, args.runs, args.budget, args.process_runs).run()
    finally:
        remove(args.dir)


if __name__ == "__main__":
    main()
