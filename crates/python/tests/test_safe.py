"""safe=True: values decoded in Rust into builtin objects; the unpickler never runs."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import mmappickle
import numpy as np
import pytest
from mmappickle import UnsafeValueError, mmapdict


class RunsCommand:
    """A value whose unpickling runs a shell command (`os.system`)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def test_os_system_never_runs(path: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    m = mmapdict(path)
    m["evil"] = RunsCommand(f"touch {marker}")
    m["fine"] = {"a": [1, 2.5, "x", b"y", None, True, (1,), {1}, frozenset(), 1 + 2j]}
    m.close()
    safe = mmapdict(path, safe=True)
    with pytest.raises(UnsafeValueError, match="posix.system") as refused:
        safe["evil"]
    assert isinstance(refused.value, ValueError)
    assert not marker.exists()
    assert safe["fine"] == {"a": [1, 2.5, "x", b"y", None, True, (1,), {1}, frozenset(), 1 + 2j]}
    assert not marker.exists()
    # The same file opened the ordinary way runs the command, as the Python library would:
    # that is what safe=True protects from.
    mmapdict(path)["evil"]
    assert marker.exists()


def test_safe_builds_builtins_exactly(path: str) -> None:
    values = {
        "ints": [0, -1, 2**62, 2**64, -(2**80)],
        "bytes": (b"\x00" * 3, bytearray(b"ab")),
        "nested": {"k": [{"s": {1, 2}}, ("t", 1.5)]},
        "text": "\u20ac",
        "none": None,
    }
    m = mmapdict(path, safe=True)
    for key, value in values.items():
        m[key] = value
    for key, value in values.items():
        got = m[key]
        assert got == value and type(got) is type(value), key
    assert type(m["bytes"][1]) is bytearray


def test_safe_reads_numpy_arrays_and_refuses_other_globals(path: str) -> None:
    m = mmapdict(path, safe=True)
    m["arrays"] = [np.arange(4, dtype=">i2"), np.ones((2, 2))]
    m["mapped"] = np.arange(3.0)
    m["ordered"] = collections.OrderedDict(a=1)
    m["scalar"] = np.float64(1.5)
    arrays = m["arrays"]
    assert arrays[0].dtype == np.dtype(">i2") and arrays[0].tolist() == [0, 1, 2, 3]
    assert arrays[1].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert type(m["mapped"]) is np.memmap
    with pytest.raises(UnsafeValueError, match="collections.OrderedDict"):
        m["ordered"]
    with pytest.raises(UnsafeValueError, match="numpy"):
        m["scalar"]
    assert mmappickle.UnsafeValueError is UnsafeValueError
