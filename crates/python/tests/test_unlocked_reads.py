"""Small generic values read without the lock: ``m[k]`` of a value the handle has seen
returns while another process holds the file's exclusive lock, and sees at once what the
Python library's processes and our other handles change, replace, delete and vacuum."""

from __future__ import annotations

import fcntl
import threading

import numpy as np
from conftest import run_library
from mmappickle import mmapdict
from mmappickle.picklers import ArrayPickler, GenericPickler, MaskedArrayPickler

# Only the built-in picklers (by default a handle uses every subclass of ``BasePickler``,
# which other test modules define): values are then read without the lock.
BUILTIN = [ArrayPickler, MaskedArrayPickler, GenericPickler]

LIBRARY_CHANGES = """
import json, sys
from mmappickle import mmapdict
m = mmapdict(sys.argv[1])
m["a"] = "replaced by the library"
del m["gone"]
m["new"] = [1, 2]
print(json.dumps(m.commit_number))
"""


def test_a_seen_value_is_read_while_another_process_holds_the_lock(path: str) -> None:
    m = mmapdict(path, picklers=BUILTIN)
    m["a"] = {"seen": True}
    m["array"] = np.arange(6.0).reshape(2, 3)
    m["masked"] = np.ma.masked_array([1, 2, 3], mask=[False, True, False])
    assert m["a"] == {"seen": True}
    read: list[object] = []
    with open(path, "rb") as other:
        # Another open file description: its flock excludes ours as another process's does.
        fcntl.flock(other, fcntl.LOCK_EX)
        try:
            reader = threading.Thread(target=lambda: read.extend([m["a"], m["array"], m["masked"]]))
            reader.start()
            # A read under the lock would wait until the lock is released below.
            reader.join(timeout=60)
            assert not reader.is_alive(), "the read waited for the lock"
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
    value, array, masked = read
    assert value == {"seen": True}
    assert isinstance(array, np.memmap) and array.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert masked.tolist() == [1, None, 3]


def test_the_library_processes_changes_are_seen_at_the_next_read(path: str) -> None:
    m = mmapdict(path, picklers=BUILTIN)
    m["a"], m["gone"], m["kept"] = "ours", 3, (1, "x")
    assert [m[key] for key in ("a", "gone", "kept")] == ["ours", 3, (1, "x")]
    commit_number = run_library(LIBRARY_CHANGES, path)
    assert m["a"] == "replaced by the library"
    assert m["kept"] == (1, "x")
    assert m["new"] == [1, 2]
    assert "gone" not in m
    try:
        m["gone"]
    except KeyError:
        pass
    else:
        raise AssertionError("a key the library deleted is still read")
    assert m.commit_number == commit_number
    # Another handle's vacuum replaces the file: reads follow it.
    other = mmapdict(path, picklers=BUILTIN)
    other.vacuum()
    other["after"] = np.arange(3)
    assert m["kept"] == (1, "x")
    assert m["after"].tolist() == [0, 1, 2]
    # An array seen before another handle's vacuum and replace: the new one is mapped.
    other.vacuum()
    other["after"] = np.arange(4)
    assert m["after"].tolist() == [0, 1, 2, 3]


def test_values_left_to_the_locked_path_read_as_before(path: str) -> None:
    with mmapdict(path) as m:
        m["array"] = np.arange(4.0)
        m["large"] = "x" * 100_000
        m[""] = None
    m = mmapdict(path, True, BUILTIN)
    assert isinstance(m["array"], np.memmap) and m["array"].tolist() == [0, 1, 2, 3]
    assert m["large"] == "x" * 100_000
    assert m[""] is None
    for missing in (1, b"array", "absent"):
        try:
            m[missing]
        except KeyError:
            pass
        else:
            raise AssertionError(f"{missing!r} was read")
    with open(path, "rb") as file:
        assert mmapdict(file, True)["large"] == "x" * 100_000
    assert mmapdict(path, True, safe=True)["large"] == "x" * 100_000


# Scalars whose pickle is one opcode, which the Rust half builds without an unpickler: each
# must come back as `pickle.loads` gives it (type, value, sign of zero, text that is not
# strict UTF-8, ints of every width of BININT1/BININT2/BININT/LONG1).
SCALARS = """[
    0, 1, 255, 256, 65535, 65536, -1, -256, 2**31 - 1, -2**31, 2**31, -2**31 - 1, -2**40,
    2**63 - 1, -2**63,
    2**63, 2**64, -2**70, 10**40, 0.0, -0.0, 1.5, -2.25e-300, float("inf"), float("-inf"),
    float("nan"), "", "a", "é日本", "x" * 61, "y" * 300, "\\ud800", "a\\udcffb", b"", b"\\x00\\xff",
    b"z" * 60, b"w" * 300, None, True, False, (1,), [], 3 + 4j,
]"""

LIBRARY_SCALARS = f"""
import sys
from mmappickle import mmapdict
m = mmapdict(sys.argv[1])
for i, value in enumerate({SCALARS}):
    m[f"v{{i}}"] = value
print("null")
"""


def test_scalars_read_without_an_unpickler_are_what_pickle_loads_gives(path: str) -> None:
    expected = [(type(value), repr(value)) for value in eval(SCALARS)]
    ours = path + ".ours"
    with mmapdict(ours) as m:
        for i, value in enumerate(eval(SCALARS)):
            m[f"v{i}"] = value
    run_library(LIBRARY_SCALARS, path)
    for file in (ours, path):
        m = mmapdict(file, True, picklers=BUILTIN)
        keys = [f"v{i}" for i in range(len(expected))]
        # Under the lock the first time, then without it (where the Rust half decodes).
        locked = [m[key] for key in keys]
        unlocked = [m._native.unlocked_get(key) for key in keys]
        assert [(type(value), repr(value)) for value in locked] == expected, file
        assert [(type(value), repr(value)) for value in unlocked] == expected, file
        assert [(type(m[key]), repr(m[key])) for key in keys] == expected, file
