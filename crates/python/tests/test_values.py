"""Generic values: pickled by Python, framed by Rust at the opcode level; shared references and
self-references survive, and the whole file stays one pickle."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import pickle
from pathlib import Path

from mmappickle import mmapdict


class Point:
    """A user class (pickled by reference to this module)."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


VALUES = {
    "none": None,
    "bools": [True, False],
    "ints": [0, 1, -1, 255, 65536, -(2**31), 2**63, -(2**100), 10**50],
    "floats": [0.0, -1.5, float("inf"), 1e300],
    "complex": 1 + 2j,
    "str": "héllo \u20ac \U0001f600",
    "bytes": b"\x00\xff" * 300,
    "bytearray": bytearray(b"abc"),
    "tuple": (1, (2, (3,)), ()),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "dict": {"a": 1, 2: "b", (3, 4): [5]},
    "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "decimal": decimal.Decimal("1.10"),
    "fraction": fractions.Fraction(1, 3),
    "point": Point(1, 2),
    "big list": list(range(10_000)),
    "long text": "x" * 100_000,
}


def test_values_round_trip(path: str) -> None:
    m = mmapdict(path)
    for key, value in VALUES.items():
        m[key] = value
    reopened = mmapdict(path)
    for key, value in VALUES.items():
        got = reopened[key]
        assert got == value, key
        assert type(got) is type(value), key
    assert type(reopened["ordered"]) is collections.OrderedDict


def test_shared_and_recursive_references(path: str) -> None:
    m = mmapdict(path)
    s = "shared string"
    m["same str"] = {s: s}
    inner = [1, 2]
    m["shared list"] = [inner, inner, {"k": inner}]
    selfref: list = [1]
    selfref.append(selfref)
    m["self"] = selfref
    d: dict = {}
    d["me"] = d
    m["dict self"] = d
    point = Point(1, 2)
    m["points"] = (point, [point])

    ((key, value),) = m["same str"].items()
    assert key is value
    shared = m["shared list"]
    assert shared[0] is shared[1] is shared[2]["k"]
    loop = m["self"]
    assert loop[1] is loop
    loaded = m["dict self"]
    assert loaded["me"] is loaded
    points = m["points"]
    assert points[0] is points[1][0]

    # The memo indices of entries never collide: the whole file is one pickle.
    with open(path, "rb") as file:
        whole = pickle.load(file)
    assert list(whole) == m.keys()
    ((key, value),) = whole["same str"].items()
    assert key is value
    assert whole["self"][1] is whole["self"]
    assert whole["points"][0] is whole["points"][1][0]


def test_memo_continues_across_entries(path: str) -> None:
    m = mmapdict(path)
    for i in range(300):  # past 256: LONG_BINPUT / LONG_BINGET
        s = f"value {i}"
        m[f"k{i}"] = [s, s]
    with open(path, "rb") as file:
        whole = pickle.load(file)
    assert len(whole) == 300
    for i in (0, 255, 256, 299):
        pair = whole[f"k{i}"]
        assert pair == [f"value {i}"] * 2 and pair[0] is pair[1]
        pair = m[f"k{i}"]
        assert pair[0] is pair[1]


def test_plain_pickle_of_a_dict_is_converted(path: str) -> None:
    with open(path, "wb") as file:
        pickle.dump({"a": 1, "b": [1, 2]}, file)
    m = mmapdict(path)
    assert m.keys() == ["a", "b"] and m["b"] == [1, 2]
    m["c"] = 3
    assert mmapdict(path)["c"] == 3


def test_plain_pickles_of_other_things_are_refused(path: str) -> None:
    import pytest

    for value in ([1, 2], "text", {1: "non-str key"}):
        with open(path, "wb") as file:
            pickle.dump(value, file)
        before = Path(path).read_bytes()
        with pytest.raises(ValueError):
            mmapdict(path)
        assert Path(path).read_bytes() == before
