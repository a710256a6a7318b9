"""``mmappickle.dask.from_mmapdict`` on a two-process ``LocalCluster``: a 256 MiB array served
by nginx, each chunk read on a worker by ranged requests of exactly its bytes, and the same
file by its path (maps on the workers)."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pytest
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

distributed = pytest.importorskip(
    "dask.distributed", reason="dask[distributed] does not install beside this numpy"
)
from mmappickle.dask import from_mmapdict

ROWS, COLS = 8192, 4096  # int64: 256 MiB
CHUNK_ROWS = 512  # 16 MiB chunks: 16 of them
BLOCK = 1 << 20  # the remote cache's block size: the open's reads are whole blocks


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
