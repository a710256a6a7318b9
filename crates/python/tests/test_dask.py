"""``mmappickle.dask`` on a two-process ``LocalCluster``: ``from_mmapdict`` of a 256 MiB array
served by nginx, each chunk read on a worker by ranged requests of exactly its bytes, and the
same file by its path (maps on the workers); ``to_mmapdict`` writing each chunk from the
worker that computes it (threads, processes, a cluster whose workers hold a fraction of the
array), read back from the file, over HTTP and by numpy alone.

``MMAPPICKLE_DASK_ARRAY_MIB`` sets the size of the cluster's array (64 MiB here; ``cargo xtask
stress`` runs it with 2 GiB)."""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import numpy as np
import pytest
from mmappickle import _native as mmappickle_native
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

distributed = pytest.importorskip(
    "dask.distributed", reason="dask[distributed] does not install beside this numpy"
)
import dask
import dask.array
from mmappickle.dask import MmapDictTarget, from_mmapdict, to_mmapdict

ROWS, COLS = 8192, 4096  # int64: 256 MiB
CHUNK_ROWS = 512  # 16 MiB chunks: 16 of them
BLOCK = 1 << 20  # the remote cache's block size: the open's reads are whole blocks

ARRAY_MIB = int(os.environ.get("MMAPPICKLE_DASK_ARRAY_MIB", "64"))
WRITTEN_COLS = 1024  # float64: rows of 8 KiB, ARRAY_MIB * 128 of them
# Each worker's memory limit: a quarter of the array. Below what an interpreter with dask
# takes on its own (about 150 MiB), the nanny would stop the workers as they start: the
# limit is then recorded with the memory manager's thresholds off, and what is checked is
# each worker's peak RSS growth while it writes, below the limit (in both cases).
LIMIT_MIB = max(ARRAY_MIB // 4, 32)
LIMIT_ENFORCED = LIMIT_MIB >= 256


def make_big(path: str) -> tuple[int, int]:
    """Writes the array; returns its data offset and numpy's sum of it on the local file."""
    m = mmapdict(path)
    m["before"] = "small"
    m["big"] = EmptyNDArray((ROWS, COLS), dtype=np.int64)
    big = m["big"]
    for start in range(0, ROWS, 1024):
        values = np.arange(start * COLS, (start + 1024) * COLS, dtype=np.int64)
        big[start : start + 1024] = (values % 1_000_003).reshape(1024, COLS)
    big.flush()
    m["after"] = [1, 2, 3]
    data_offset = m._native.locate("big").data_offset
    expected = int(np.sum(mmapdict(path, readonly=True)["big"]))
    return data_offset, expected


def test_a_reduction_over_http_reads_each_chunk_once(nginx: Any) -> None:
    path = str(nginx.root / "big.mmdpickle")
    data_offset, expected = make_big(path)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = from_mmapdict(nginx.url("big.mmdpickle"), "big", chunks=(CHUNK_ROWS, COLS))
        assert remote.numblocks == (ROWS // CHUNK_ROWS, 1)
        assert int(remote.sum().compute()) == expected
        accesses = nginx.accesses()
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2
        local = from_mmapdict(path, "big", chunks=(CHUNK_ROWS, COLS))
        assert int(local.sum().compute()) == expected
        assert np.array_equal(local[100:700, 7].compute(), remote[100:700, 7].compute())
    ranges = []
    for status, sent, header in accesses:
        assert status == 206, accesses
        first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", header).groups())
        assert sent == last + 1 - first
        ranges.append((first, last + 1))
    # The opens (the client's, each worker's) read whole cache blocks; chunks are read
    # exactly, in pieces that start inside the array's data (never at a block boundary).
    blocks = [r for r in ranges if r[0] % BLOCK == 0]
    pieces = sorted(r for r in ranges if r[0] % BLOCK != 0)
    data_len = ROWS * COLS * 8
    chunk_len = CHUNK_ROWS * COLS * 8
    print(
        f"{len(ranges)} requests: {len(blocks)} block reads by the opens, "
        f"{len(pieces)} ranged reads for {ROWS // CHUNK_ROWS} chunks"
    )
    # Every byte of the array fetched exactly once: the pieces tile the data, no gap, no overlap.
    ends = [data_offset] + [end for _, end in pieces]
    assert [start for start, _ in pieces] == ends[:-1]
    assert ends[-1] == data_offset + data_len
    # And no piece crosses a chunk: each was one chunk's read.
    for start, end in pieces:
        assert (start - data_offset) // chunk_len == (end - 1 - data_offset) // chunk_len


def value_at(i: Any, j: Any) -> Any:
    """The source arrays' values (computed where each chunk is)."""
    return np.sin(i * 0.001) * 1000 + j


def source(shape: tuple[int, ...], chunks: Any) -> Any:
    return dask.array.fromfunction(value_at_any, shape=shape, dtype=np.float64, chunks=chunks)


def value_at_any(*index: Any) -> Any:
    """``value_at`` over the first and last axes, and the middle ones mixed in."""
    middle = sum((axis + 1) * 7 * i for axis, i in enumerate(index[1:-1]))
    return value_at(index[0], index[-1]) + middle


def status_bytes(field: str) -> int:
    """A memory figure of this process's ``/proc/self/status`` (given in KiB), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def reset_peak_rss() -> int:
    """Sets this process's peak resident memory (``VmHWM``) back to its current one, and
    returns that. (``getrusage``'s peak would not do: it survives ``exec``, so a worker
    started from this test process starts with the test process's peak.)"""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return status_bytes("VmRSS")


def peak_rss() -> int:
    """This process's peak resident memory since the last ``reset_peak_rss``."""
    return status_bytes("VmHWM")


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_to_mmapdict_writes_each_chunk_where_it_is_computed(path: str, scheduler: str) -> None:
    shape = (1000, 300)
    # Chunks that cut the rows: each is written as the runs of its rows.
    x = source(shape, chunks=(128, 100))
    mmapdict(path)["before"] = "kept"
    assert to_mmapdict(x, path, "x", scheduler=scheduler) is None
    expected = np.fromfunction(value_at_any, shape, dtype=np.float64)
    m = mmapdict(path, True)
    assert m["before"] == "kept"
    assert np.array_equal(m["x"], expected)
    back = from_mmapdict(path, "x", chunks=(256, -1)).compute(scheduler=scheduler)
    assert np.array_equal(back, expected)


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [
        ((6, 10, 4), (4, 3, 4)),  # cuts axis 1: runs of 3 x 4 elements
        ((6, 10, 4), (3, 10, 3)),  # cuts axis 2 only: runs of 3 elements
        ((6, 10, 4), (5, 4, 1)),  # cuts both
        ((7, 5), (7, 2)),  # one chunk of rows, cut along the columns
        ((9,), (4,)),  # 1-D: whole rows
        ((5, 0), (2, 0)),  # no elements
    ],
)
def test_chunks_along_any_axis_land_in_place(
    path: str, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> None:
    to_mmapdict(source(shape, chunks), path, "x", scheduler="threads")
    expected = np.fromfunction(value_at_any, shape, dtype=np.float64)
    assert np.array_equal(mmapdict(path, True)["x"], expected)


def test_a_file_made_again_at_the_path_gets_the_writes(path: str) -> None:
    """The handle a process keeps for its writes follows the path: a file deleted and made
    again at it gets the next writes, not the deleted one."""
    first = source((64, 8), chunks=(16, 8))
    to_mmapdict(first, path, "x", scheduler="threads")
    os.remove(path)
    to_mmapdict(first + 1, path, "x", scheduler="threads")
    expected = np.fromfunction(value_at_any, (64, 8), dtype=np.float64) + 1
    assert np.array_equal(mmapdict(path, True)["x"], expected)


def test_the_target_is_its_path_and_key(path: str) -> None:
    target = MmapDictTarget(path, "x")
    copy = pickle.loads(pickle.dumps(target))
    assert (copy.path, copy.key) == (os.path.abspath(path), "x")
    assert dask.base.tokenize(target) == dask.base.tokenize(copy)
    mmapdict(path)["x"] = np.zeros((4, 2))
    dask.array.store(dask.array.ones((4, 2), chunks=(2, 1)), target, lock=False)
    assert np.array_equal(mmapdict(path, True)["x"], np.ones((4, 2)))
    mmapdict(path)["x"] = "not an array"
    with pytest.raises(ValueError, match="does not hold a plain array"):
        target[0:1] = np.ones((1, 2))
    with pytest.raises(ValueError, match="0-d"):
        to_mmapdict(dask.array.ones(()), path, "scalar")
    with pytest.raises(ValueError, match="cannot be mapped"):
        objects = dask.array.from_array(np.array([None, 1], dtype=object), chunks=1)
        to_mmapdict(objects, path, "objects")


def test_to_mmapdict_on_a_cluster_whose_workers_hold_a_fraction_of_it(nginx: Any) -> None:
    rows = ARRAY_MIB * 128
    shape = (rows, WRITTEN_COLS)
    x = source(shape, chunks=(256, WRITTEN_COLS))  # 2 MiB chunks of whole rows
    path = str(nginx.root / "written.mmdpickle")
    thresholds = {
        f"distributed.worker.memory.{name}": False
        for name in ("target", "spill", "pause", "terminate")
    }
    with (
        dask.config.set({} if LIMIT_ENFORCED else thresholds),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=f"{LIMIT_MIB} MiB",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        before, client_before = client.run(reset_peak_rss), reset_peak_rss()
        to_mmapdict(x, path, "x")
        after, client_after = client.run(peak_rss), peak_rss()
        growth = {worker: after[worker] - before[worker] for worker in after}
        print(
            f"{ARRAY_MIB} MiB written by 2 workers with {LIMIT_MIB} MiB each "
            f"({'enforced' if LIMIT_ENFORCED else 'recorded'}): peak RSS "
            + ", ".join(f"{after[w] >> 20} MiB (+{growth[w] >> 20} MiB)" for w in after)
            + f"; the client +{(client_after - client_before) >> 20} MiB"
        )
        assert len(growth) == 2
        assert all(grown < LIMIT_MIB << 20 for grown in growth.values()), growth
        assert client_after - client_before < LIMIT_MIB << 20
        # Read back on the cluster, by maps of the file and over HTTP, against the source
        # computed again there.
        local = from_mmapdict(path, "x", chunks=(256, -1))
        assert bool((local == x).all().compute())
        remote = from_mmapdict(nginx.url("written.mmdpickle"), "x", chunks=(256, -1))
        assert bool((remote == x).all().compute())
    # And by numpy alone, a memmap at the array's offset, a slab at a time.
    offset = mmapdict(path, True)._native.locate("x")
    assert isinstance(offset, mmappickle_native.ArrayPlace)
    stored = np.memmap(path, np.float64, "r", offset=offset.data_offset, shape=shape)
    for start in range(0, rows, 8192):
        stop = min(start + 8192, rows)
        expected = value_at(np.arange(start, stop)[:, None], np.arange(WRITTEN_COLS))
        assert np.array_equal(stored[start:stop], expected), start
