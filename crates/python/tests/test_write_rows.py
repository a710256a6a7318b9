"""``mmapdict.write_rows``: rows written with ``pwrite`` into a stub (64 GiB, its last MiB),
into 2-D and byte-swapped arrays, from any array-like; read back by us and by the Python
library; every refusal leaves the file as it was; threads write side by side."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import run_library
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

# float32 rows of 64 KiB, 64 GiB in all (2-D: the library reads no dimension >= 2**31).
SPARSE_SHAPE = (1 << 20, 1 << 14)
TAIL_ROWS = 16  # 1 MiB

LIBRARY_READS_TAIL = """
import json, sys
import numpy as np
from mmappickle import mmapdict
path, expected = sys.argv[1], np.load(sys.argv[2])
big = mmapdict(path, True)["big"]
print(json.dumps({
    "shape": list(big.shape),
    "tail_equal": bool(np.array_equal(big[-len(expected):], expected)),
    "before_tail": float(abs(big[-len(expected) - 1]).max()),
}))
"""


def test_a_mib_at_the_end_of_a_64_gib_stub_takes_a_mib_and_the_library_reads_it(
    path: str, tmp_path: Path
) -> None:
    tail = np.random.default_rng(0).standard_normal((TAIL_ROWS, SPARSE_SHAPE[1]), np.float32)
    with mmapdict(path) as m:
        m["big"] = EmptyNDArray(SPARSE_SHAPE, np.float32)
        m.write_rows("big", -TAIL_ROWS, tail)
    stat = os.stat(path)
    assert stat.st_size > 64 << 30
    allocated = stat.st_blocks * 512
    print(f"64 GiB stub + 1 MiB written: {allocated} bytes allocated on disk")
    assert allocated < 2 << 20
    assert np.array_equal(mmapdict(path, True)["big"][-TAIL_ROWS:], tail)
    np.save(tmp_path / "tail.npy", tail)
    seen = run_library(LIBRARY_READS_TAIL, path, str(tmp_path / "tail.npy"))
    assert seen == {"shape": list(SPARSE_SHAPE), "tail_equal": True, "before_tail": 0.0}


def test_rows_from_any_array_like_land_along_the_first_axis(path: str) -> None:
    m = mmapdict(path)
    m["grid"] = np.zeros((6, 3), dtype=np.float32)
    m.write_rows("grid", 1, [[1, 2, 3], [4, 5, 6]])  # a list of lists, ints to float32
    m.write_rows("grid", 3, np.array([7.5, 8.5, 9.5]))  # one row without its axis, float64
    every_other = np.arange(12, dtype=np.float32).reshape(4, 3)[::2]  # not C-contiguous
    m.write_rows("grid", -2, every_other)  # from the end, as an index
    expected = np.zeros((6, 3), dtype=np.float32)
    expected[1:3] = [[1, 2, 3], [4, 5, 6]]
    expected[3] = [7.5, 8.5, 9.5]
    expected[4:6] = every_other
    assert np.array_equal(m["grid"], expected)
    m.write_rows("grid", 6, np.zeros((0, 3)))  # no rows, at the end: nothing to do
    assert np.array_equal(m["grid"], expected)


def test_a_transposed_view_is_written_in_c_order(path: str) -> None:
    m = mmapdict(path)
    m["a"] = EmptyNDArray((4, 3), np.int64)
    source = np.arange(12, dtype=np.int64).reshape(3, 4).T  # F-contiguous
    assert not source.flags.c_contiguous
    m.write_rows("a", 0, source)
    assert np.array_equal(m["a"], source)


def test_the_other_byte_order_gets_the_values(path: str) -> None:
    m = mmapdict(path)
    m["be"] = np.zeros(5, dtype=">i4")
    m.write_rows("be", 2, np.array([1, -2, 300], dtype=np.int32))
    assert m["be"].dtype == np.dtype(">i4")
    assert m["be"].tolist() == [0, 0, 1, -2, 300]


def test_refusals_leave_the_file_as_it_was(path: str) -> None:
    m = mmapdict(path)
    m["grid"] = np.zeros((4, 3), dtype=np.uint16)
    m["generic"] = [1, 2]
    m["masked"] = np.ma.MaskedArray([1.0, 2.0], mask=[True, False])
    m["scalar"] = np.array(5, dtype=np.uint8)
    before = Path(path).read_bytes()
    refusals = [
        ("grid", 3, np.ones((2, 3)), ValueError, "rows 3..5 asked of an array of 4 rows"),
        ("grid", 5, np.ones((0, 3)), ValueError, "rows 5..5 asked of an array of 4 rows"),
        ("grid", -5, np.ones((1, 3)), ValueError, "start row -5"),
        ("grid", 0, np.ones((2, 4)), ValueError, "rows of shape (4,)"),
        ("generic", 0, [1], ValueError, "does not hold a plain array"),
        ("masked", 0, [1.0], ValueError, "does not hold a plain array"),
        ("scalar", 0, 1, ValueError, "rows 0..0 asked of an array of 0 rows"),
        ("missing", 0, [1], KeyError, "missing"),
    ]
    for key, start, values, error, message in refusals:
        with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
            m.write_rows(key, start, values)
    with pytest.raises(ValueError):
        m.write_rows("grid", 0, [["a", "b", "c"]])
    with pytest.raises(TypeError):
        m.write_rows("grid", 0.5, np.ones((1, 3)))  # type: ignore[arg-type]
    assert Path(path).read_bytes() == before
    m.close()
    with pytest.raises(io.UnsupportedOperation):
        mmapdict(path, True).write_rows("grid", 0, np.ones((1, 3)))
    assert Path(path).read_bytes() == before


def test_threads_write_their_rows_side_by_side_while_others_read(path: str) -> None:
    m = mmapdict(path)
    m["a"] = EmptyNDArray((8, 1 << 16), np.float64)
    barrier = threading.Barrier(10)
    writing = threading.Event()
    errors: list[Exception] = []

    def write(row: int) -> None:
        barrier.wait()
        for round in range(20):
            m.write_rows("a", row, np.full(1 << 16, row * 100 + round, dtype=np.float64))

    def read() -> None:
        # Each m["a"] claims a read of the array's bytes: it waits for the writes under
        # way, and they for it, instead of failing.
        barrier.wait()
        try:
            while writing.is_set():
                assert m["a"].shape == (8, 1 << 16)
        except (ValueError, AssertionError) as error:
            errors.append(error)

    writing.set()
    writers = [threading.Thread(target=write, args=(row,)) for row in range(8)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    for thread in readers:
        thread.join()
    assert errors == []
    assert np.array_equal(m["a"][:, 0], [row * 100 + 19 for row in range(8)])
    assert np.array_equal(m["a"][:, -1], m["a"][:, 0])


def test_through_a_file_object(path: str) -> None:
    with open(path, "w+b") as f:
        m = mmapdict(f)
        m["a"] = np.zeros(4, dtype=np.uint8)
        m.write_rows("a", 1, [1, 2])
        assert m["a"].tolist() == [0, 1, 2, 0]
    assert mmapdict(path, True)["a"].tolist() == [0, 1, 2, 0]
