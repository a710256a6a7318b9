"""Picklers as the library defines them: ``picklers=`` selects the built-in ones; pickler
classes written for the library (``library_picklers``) are found, ordered by priority,
listed in ``m._picklers``, and used by the library and by our package on the same file; a
pickler that raises or writes garbage leaves the file unchanged."""

from __future__ import annotations

import gc
import json
import pathlib
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_library, run_ours
from mmappickle import mmapdict
from mmappickle.picklers import ArrayPickler, GenericPickler, MaskedArrayPickler
from mmappickle.picklers.base import BasePickler

TESTS = str(Path(__file__).resolve().parent)


def test_no_pickler_refuses_everything(path: str) -> None:
    full = mmapdict(path)
    full["v"] = 1
    full["a"] = np.arange(3)
    m = mmapdict(path, picklers=[])
    assert m._picklers == []
    for value in (1, np.arange(3), np.ma.MaskedArray([1])):
        with pytest.raises(TypeError):
            m["x"] = value
    for key in ("v", "a"):
        with pytest.raises(ValueError):
            m[key]
    assert "x" not in m


def test_array_pickler_only(path: str) -> None:
    m = mmapdict(path, picklers=[ArrayPickler])
    m["a"] = np.arange(3)
    assert isinstance(m["a"], np.memmap)
    with pytest.raises(TypeError):
        m["v"] = [1]
    with pytest.raises(TypeError):
        m["masked"] = np.ma.MaskedArray([1])
    both = mmapdict(path, picklers=[GenericPickler, MaskedArrayPickler])
    assert [type(p) for p in both._picklers] == [MaskedArrayPickler, GenericPickler]
    both["masked"] = np.ma.MaskedArray([1, 2], mask=[True, False])
    both["v"] = [1]
    # The generic pickler is the library's catch-all: it reads an array as pickle.loads does.
    read = both["a"]
    assert type(read) is np.ndarray and read.tolist() == [0, 1, 2]


def test_picklers_are_found_and_ordered_as_in_the_library(path: str) -> None:
    m = mmapdict(path)
    types = [type(p) for p in m._picklers]
    assert {ArrayPickler, MaskedArrayPickler, GenericPickler} <= set(types)
    priorities = [p.priority for p in m._picklers]
    assert priorities == sorted(priorities, reverse=True)
    assert all(p._parent_object() is m for p in m._picklers)
    with pytest.raises(TypeError):
        mmapdict(path, picklers=[object])  # type: ignore[list-item]


class Marked:
    """Values only the faulty picklers below take (every mmapdict of this process finds
    them while they live)."""

    def __init__(self, how: str) -> None:
        self.how = how


@pytest.fixture
def faulty() -> Iterator[type[BasePickler]]:
    """A pickler of ``Marked`` values that fails as each value says; found by every mmapdict
    while it lives, and gone after the test."""

    class FaultyPickler(BasePickler):
        priority = 1000

        def is_picklable(self, obj: Any) -> bool:
            return type(obj) is Marked

        def write(self, obj: Any, offset: int, memo_start_idx: int = 0) -> Any:
            file = self._file
            file.seek(offset)
            if obj.how == "raises":
                file.write(b"\x8c\x05hal")  # half a value, then an error
                raise RuntimeError("the pickler failed")
            if obj.how == "garbage":
                return file.write(b"\xff\xfe\xfd"), memo_start_idx
            if obj.how == "two values":
                return file.write(b"K\x01K\x02"), memo_start_idx
            if obj.how == "short length":
                return file.write(b"\x8c\x05hello") - 2, memo_start_idx
            if obj.how == "memo out of range":
                return file.write(b"K\x01h\xf0"), memo_start_idx  # BINGET 240, never put
            if obj.how == "memo_max too low":
                put = b"K\x01r" + struct.pack("<I", memo_start_idx + 5)
                return file.write(put), memo_start_idx
            if obj.how == "reads the dict":
                parent = self._parent_object()
                assert parent is not None
                len(parent)
            if obj.how == "not a tuple":
                file.write(b"K\x01")
                return "two"
            return file.write(b"K\x07"), memo_start_idx

    yield FaultyPickler
    del FaultyPickler
    gc.collect()


@pytest.mark.parametrize(
    "how",
    [
        "raises",
        "garbage",
        "two values",
        "short length",
        "memo out of range",
        "memo_max too low",
        "reads the dict",
        "not a tuple",
    ],
)
def test_a_faulty_pickler_leaves_the_file_unchanged(
    path: str, how: str, faulty: type[BasePickler]
) -> None:
    m = mmapdict(path)
    m["kept"] = [1, 2]
    before = pathlib.Path(path).read_bytes()
    with pytest.raises((ValueError, RuntimeError, TypeError)) as raised:
        m["bad"] = Marked(how)
    if how == "raises":
        assert str(raised.value) == "the pickler failed"
    assert pathlib.Path(path).read_bytes() == before
    assert m.keys() == ["kept"] and "bad" not in m
    # The dict works on: a good value of the same pickler, then a plain one.
    m["good"] = Marked("good")
    m["after"] = "x"
    with open(path, "rb") as file:
        assert pickle.load(file) == {"kept": [1, 2], "good": 7, "after": "x"}


def test_an_exception_of_a_picklers_is_valid_reaches_the_caller_as_raised(path: str) -> None:
    class Broken(Exception):
        pass

    class RaisingPickler(BasePickler):
        priority = 500

        def is_valid(self, offset: int, length: int) -> bool:
            raise Broken(f"is_valid({offset}, {length})")

    try:
        m = mmapdict(path, picklers=[GenericPickler, RaisingPickler])
        m["v"] = [1, 2]
        with pytest.raises(Broken, match=r"is_valid\(\d+, \d+\)"):
            m["v"]
        with pytest.raises(Broken):
            dict(m.items())
        del m
    finally:
        # Found by every mmapdict of the process while the class lives.
        del RaisingPickler
        gc.collect()
    assert mmapdict(path, readonly=True)["v"] == [1, 2]


def test_a_pickler_reads_only_what_it_says_is_valid(path: str, faulty: type[BasePickler]) -> None:
    m = mmapdict(path)
    assert faulty in [type(p) for p in m._picklers] and m._picklers[0].priority == 1000
    m["good"] = Marked("good")
    # FaultyPickler is_valid is the library's default (False): the generic pickler reads it.
    assert m["good"] == 7


# The library and our package, each in a process of its own, on one file, with the same
# pickler classes (library_picklers); each prints what it reads as JSON.
SCRIPT = """
import json, pickle, sys
sys.path.insert(0, sys.argv[2])
import numpy
from mmappickle import mmapdict
from library_picklers import BytesPickler, Point, PointPickler

m = mmapdict(sys.argv[1])
names = [type(p).__name__ for p in m._picklers]
me = sys.argv[3]
m[me + " bytes"] = b"bytes of " + me.encode()
m[me + " bytearray"] = bytearray(b"a bytearray of " + me.encode())
m[me + " point"] = Point(1.5, -2.0)
m[me + " list"] = [1, {"two": (3, 3)}]
m[me + " array"] = numpy.arange(4, dtype=numpy.int16)
seen = {}
for key in m.keys():
    value = m[key]
    if isinstance(value, memoryview):
        seen[key] = ["memoryview", bytes(value).decode()]
    elif isinstance(value, Point):
        seen[key] = ["Point", value.x, value.y]
    elif isinstance(value, numpy.ndarray):
        seen[key] = [type(value).__name__, value.tolist()]
    else:
        seen[key] = [type(value).__name__, repr(value)]
# A change through the memoryview (a map of the file) reaches the file.
view = m[me + " bytearray"]
view[0:1] = b"A"
del view
print(json.dumps({"picklers": names, "seen": seen}))
"""


def test_library_picklers_used_by_the_library_and_by_us(path: str) -> None:
    library = run_library(SCRIPT, path, TESTS, "library")
    completed = run_ours(SCRIPT, path, TESTS, "ours")
    assert completed.returncode == 0, completed.stderr
    ours = json.loads(completed.stdout)
    # The same picklers, found and ordered alike.
    assert ours["picklers"] == library["picklers"]
    assert ours["picklers"] == [
        "ArrayPickler",
        "MaskedArrayPickler",
        "BytesPickler",
        "PointPickler",
        "GenericPickler",
    ]
    # The library wrote first; we read its values as it does, then wrote ours beside.
    expected = {}
    for who in ("library", "ours"):
        expected[who + " bytes"] = ["memoryview", "bytes of " + who]
        expected[who + " bytearray"] = ["memoryview", "a bytearray of " + who]
        expected[who + " point"] = ["Point", 1.5, -2.0]
        expected[who + " list"] = ["list", "[1, {'two': (3, 3)}]"]
        expected[who + " array"] = ["memmap", [0, 1, 2, 3]]
    changed = dict(expected)
    changed["library bytearray"] = ["memoryview", "A bytearray of library"]
    assert ours["seen"] == changed
    library_only = {key: value for key, value in expected.items() if key.startswith("library")}
    assert library["seen"] == library_only
    # The library reads what we wrote, through the same picklers.
    again = run_library(SCRIPT, path, TESTS, "again")
    for who in ("library", "ours"):
        assert again["seen"][who + " bytearray"] == ["memoryview", "A bytearray of " + who]
        assert again["seen"][who + " point"] == ["Point", 1.5, -2.0]
    # Without those picklers, their values are plain pickles: a tuple, bytes.
    m = mmapdict(path, readonly=True)
    assert m["ours point"] == (1.5, -2.0) and m["library point"] == (1.5, -2.0)
    assert m["ours bytes"] == b"bytes of ours"
    assert m["library bytearray"] == b"A bytearray of library"


def test_pickler_file_is_the_dict_file(path: str) -> None:
    with open(path, "w+b") as file:
        m = mmapdict(file)
        assert m._file is file
    m = mmapdict(path)
    m["a"] = "value"
    file = m._file
    assert file.writable() and not mmapdict(path, readonly=True)._file.writable()
    # What the Rust half wrote is what the pickler's file reads (no stale buffer).
    file.seek(0)
    assert pickle.load(file) == {"a": "value"}
    m["b"] = 2
    file.seek(0)
    assert pickle.load(file) == {"a": "value", "b": 2}
    m.close()
    assert file.closed


def test_a_pickler_writes_through_the_callers_file_object(
    path: str, faulty: type[BasePickler]
) -> None:
    with open(path, "w+b") as file:
        m = mmapdict(file)
        m["before"] = 1
        m["good"] = Marked("good")  # written through `file`, flushed before the check
        file.seek(0)
        assert pickle.load(file) == {"before": 1, "good": 7}
        before = pathlib.Path(path).read_bytes()
        with pytest.raises(ValueError):
            m["bad"] = Marked("garbage")
        assert pathlib.Path(path).read_bytes() == before
