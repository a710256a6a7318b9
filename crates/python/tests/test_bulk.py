"""Many values at once: ``update`` has the Rust half write its plain values (no pickler run)
and pickles the other generic values with one ``pickle.dumps`` of their list, which the Rust
half splits into one pickle per entry (what an entry shares with earlier ones copied in);
``items``/``values`` load every generic value with one ``pickle.loads``. The entries are those the Python library writes key by key, byte for
byte, and read back as each key alone reads."""

from __future__ import annotations

import datetime
import pathlib
import pickle
import random
import struct

import numpy as np
import pytest
from conftest import run_library
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

# Values that share objects within one value and across values (interned strings, globals,
# a date, lists, structures that refer back to themselves), `n` of them past the 1000-item
# batches of the list's pickle, and its 64 KiB frames. Run as is by the Python library and
# by us.
SHARING = """
import collections, datetime
shared = ["shared", 1]
x = "aaa"
y = ("x", "y")
inner = [y]
loop = [1]
loop.append(loop)
a = []
b = [a]
a.append(b)
lst = []
t = (lst,)
lst.append(t)
when = datetime.date(2020, 1, 2)
d = {}
for i in range(n):
    d[f"k{i}"] = [i, {"gain": i * 0.5, "name": f"s{i}", "ids": [i]}, i * 0.25, f"v{i}"][i % 4]
d.update({
    "shared": shared, "shared twice": [shared, shared], "interned": {"gain": 1, x: x},
    "parts": inner, "part": y, "part then whole": [y, inner], "whole then part": [inner, y],
    "loop": loop, "a": a, "b": b, "t": t, "t again": [t, 5], "when": when,
    "whens": [when, when], "ordered": collections.OrderedDict(a=when), "big": b"x" * 70000,
    "bigs": ["y" * 70000] * 2, "set": {1, 2}, "frozen": frozenset([when]), "empty": [],
})
"""

UPDATE_BYTES = """
    import json, sys
    from mmappickle import mmapdict
    m = mmapdict(sys.argv[1])
    m["before"] = "x"
    n = 40  # the library's inserts take quadratic time: a few values
    exec(sys.argv[2])
    for key, value in d.items():  # the library has no update
        m[key] = value
    print(json.dumps(open(sys.argv[1], "rb").read().hex()))
"""


def sharing_values(n: int = 2500) -> dict:
    scope: dict = {"n": n}
    exec(SHARING, scope)  # noqa: S102  (the very code the library runs)
    return scope["d"]


def test_update_writes_what_the_library_writes_key_by_key(path: str, tmp_path) -> None:
    library_file = str(tmp_path / "library.mmdpickle")
    library_bytes = bytes.fromhex(run_library(UPDATE_BYTES, library_file, SHARING))
    m = mmapdict(path)
    m["before"] = "x"
    m.update(sharing_values(40))
    m.close()
    assert pathlib.Path(path).read_bytes() == library_bytes
    # Past the list's batches: the entries of our own inserts key by key (the library's, as
    # above and in test_cross); only the padding that keeps each commit's terminator within a
    # page differs, one per commit.
    pathlib.Path(path).unlink()
    assert_batch_stored_as_key_by_key(sharing_values(), path, str(tmp_path / "key by key"))


# Plain values (None, bool, int, float, str, bytes, and list, tuple, dict of them), which the
# Rust half writes without Python's pickler, at the edges of each opcode choice; and values
# it leaves to the pickler: subclasses, big ints, lone surrogates, an object twice (Python
# writes a GET), nesting past 32. Run as is by the Python library and by us.
PLAIN = """
import collections, http, time
shared, pair = "shared", (1, 2)
nested = []
for _ in range(40):
    nested = [nested]
d = {
    "none": None, "true": True, "false": False,
    "ints": [0, 1, 255, 256, 65535, 65536, -1, -256, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
             2**63 - 1, -2**63],
    "big ints": [2**63, -2**63 - 1, 2**100],
    "floats": (0.0, -0.0, float("nan"), float("inf"), 1e308, 5e-324),
    "strings": ["", "a", "é" * 127, "é" * 128, "x" * 300, "\\U0001f600"],
    "surrogate": ["\\ud800"], "bytes": [b"", b"x" * 255, b"y" * 256],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)], "empty twice": [(), ()],
    "shared": [shared, shared], "pair twice": [pair, pair], "in a dict": {"k": shared, "j": shared},
    "keys": {1: "a", (1, 2): b"x", None: 0.5, 2.5: [], "s": {}},
    "enum": http.HTTPStatus.OK,
    "ordered": collections.OrderedDict(a=1), "counts": collections.defaultdict(int, a=1),
    "struct": time.gmtime(0), "nested": nested, "inner subclass": [1, {"e": http.HTTPStatus.OK}],
}
"""


def plain_values() -> dict:
    scope: dict = {}
    exec(PLAIN, scope)  # noqa: S102  (the very code the library runs)
    values = scope["d"]
    for n in (0, 1, 2, 999, 1000, 1001, 2000):
        values[f"list {n}"] = list(range(n))
        values[f"tuple {n}"] = tuple(range(n))
        values[f"dict {n}"] = {f"k{i}": i for i in range(n)}
    # Subclasses of str and float (their pickles name numpy's modules, which differ between
    # numpy versions: not compared with the library's).
    values["text"], values["float"] = np.str_("t"), np.float64(0.5)
    values["long text"] = "x" * 70000
    values["long bytes"] = b"y" * 70000
    return values


def test_plain_values_are_stored_as_pickle_stores_them(path: str, tmp_path) -> None:
    library_file = str(tmp_path / "library.mmdpickle")
    library_bytes = bytes.fromhex(run_library(UPDATE_BYTES, library_file, PLAIN))
    m = mmapdict(path)
    m["before"] = "x"
    scope: dict = {}
    exec(PLAIN, scope)  # noqa: S102
    m.update(scope["d"])
    m.close()
    assert pathlib.Path(path).read_bytes() == library_bytes
    # With long containers and payloads: as our own inserts key by key store them (each
    # value through pickle.dumps).
    values, batch = plain_values(), str(tmp_path / "batch")
    assert_batch_stored_as_key_by_key(values, batch, str(tmp_path / "key by key"))
    with open(batch, "rb") as file:
        whole = pickle.load(file)
    assert repr(whole) == repr(values)


def assert_batch_stored_as_key_by_key(values: dict, batch: str, key_by_key: str) -> None:
    """``update(values)`` into a new file at ``batch`` stores the entries that inserts key by
    key (each value through its own ``pickle.dumps``) store at ``key_by_key``."""
    mmapdict(batch).update(values)
    m = mmapdict(key_by_key)
    for key, value in values.items():
        m[key] = value
    m.close()
    assert entries(batch) == entries(key_by_key)


def entries(path: str) -> dict[str, bytes]:
    """The value bytes of every live key (generic values only), as stored."""
    m = mmapdict(path, True)
    return {key: m._native.locate(key).value_bytes for key in m}


def random_values(rng: random.Random, n: int) -> dict:
    """Values of random shapes that share parts at random: with one another (strings,
    tuples, lists, dicts, dates, numpy scalars of a common pool) and within themselves."""
    pool: list = ["s", "t" * 300, ("a", 1), datetime.date(2021, 5, 6), np.float32(1.5)]
    for _ in range(4):
        pool.append(rng.choice([list, tuple])(rng.sample(pool, 2)))
        pool.append({f"k{rng.randrange(3)}": rng.choice(pool), "x": rng.choice(pool)})

    def value(depth: int):
        kind = rng.randrange(8)
        if kind == 0 or depth > 3:
            return rng.choice([rng.randrange(-(2**70), 2**70), rng.random(), f"v{rng.random()}"])
        if kind < 3:
            return rng.choice(pool)
        items = [value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 3:
            return tuple(items)
        if kind == 4:
            return {f"f{i}": item for i, item in enumerate(items)}
        if kind == 5 and items:
            return [items[0], items]  # within the value: shared
        return items

    values = {f"k{i}": value(0) for i in range(n)}
    loop: list = [rng.choice(pool)]
    loop.append(loop)
    values["loop"] = loop
    values["in loop"] = [loop, rng.choice(pool)]
    return values


def test_random_sharing_is_stored_as_key_by_key(path: str, tmp_path) -> None:
    rng = random.Random(7)
    for run in range(200):
        values = random_values(rng, rng.randrange(2, 60))
        batch, key_by_key = str(tmp_path / f"batch{run}"), str(tmp_path / f"alone{run}")
        assert_batch_stored_as_key_by_key(values, batch, key_by_key)


def test_values_read_back_as_each_pickled_alone(path: str) -> None:
    values = sharing_values()
    m = mmapdict(path)
    m.update(values)
    expected = {key: pickle.loads(pickle.dumps(value, 4)) for key, value in values.items()}
    items = dict(m.items())
    assert list(items) == list(values) == m.keys()
    for key in ("loop", "a", "b", "t", "t again"):  # they hold themselves: compared apart
        expected.pop(key)
    for read in (items, {key: m[key] for key in m}, dict(zip(m.keys(), m.values()))):
        loop, a, b, t = read.pop("loop"), read.pop("a"), read.pop("b"), read.pop("t")
        assert loop[1] is loop
        assert a[0][0] is a and b[0][0] is b
        assert t[0][0] is t
        t_again = read.pop("t again")
        assert t_again[0][0][0] is t_again[0] and t_again[1] == 5
        assert read == expected
        # What an entry shares within itself stays shared; nothing is shared across entries.
        assert read["shared twice"][0] is read["shared twice"][1]
        assert read["shared twice"][0] is not read["shared"]
        assert read["whens"][0] is read["whens"][1]
        assert read["part then whole"][0] is read["part then whole"][1][0]
    # And the whole file is one pickle.
    with open(path, "rb") as file:
        whole = pickle.load(file)
    assert list(whole) == m.keys()
    assert whole["b"][0][0] is whole["b"]


def test_update_mixes_arrays_with_values(path: str) -> None:
    masked = np.ma.MaskedArray([1.0, 2.0], mask=[True, False])
    values = {
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "number": np.float64(2.5),
        "masked": masked,
        "text": "t",
        "stub": EmptyNDArray((4,), dtype=np.float32),
        "objects": np.array([None, "x"], dtype=object),
        "zero-d": np.array(7),
        "nested": [np.arange(3)],
    }
    m = mmapdict(path)
    m.update(values)
    for read in (dict(m.items()), {key: m[key] for key in m}):
        assert isinstance(read["array"], np.memmap) and read["array"].tolist() == [
            [0, 1, 2],
            [3, 4, 5],
        ]
        assert type(read["number"]) is np.float64 and read["number"] == 2.5
        assert read["masked"].mask.tolist() == [True, False] and read["masked"][1] == 2.0
        assert read["text"] == "t"
        assert read["stub"].shape == (4,) and not read["stub"].any()
        assert read["objects"].tolist() == [None, "x"]
        assert read["zero-d"].shape == () and int(read["zero-d"]) == 7
        assert read["nested"][0].tolist() == [0, 1, 2]


def test_items_are_the_live_keys_in_file_order(path: str) -> None:
    m = mmapdict(path)
    for i in range(600):  # commits enough for padding entries (each keeps a terminator in a page)
        m[f"k{i % 7}"] = "x" * (i % 300)
    m.update(a=1, b=np.arange(2), c=[3])
    m["a"] = "replaced"  # moves to the end
    del m["k3"]
    m.update({"b": 2, "d": 4})
    read = {key: m[key] for key in m}
    assert list(read) == m.keys() == ["k5", "k6", "k0", "k1", "k2", "k4", "c", "a", "b", "d"]
    assert dict(m.items()) == read
    assert list(m.values()) == list(read.values())


def test_update_checks_everything_before_it_stores(path: str) -> None:
    m = mmapdict(path)
    m["kept"] = 1
    before = pathlib.Path(path).read_bytes()
    with pytest.raises(TypeError, match="keys are str, not int"):
        m.update({"a": 1, 2: 2})
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        m.update({"a": 1, "b": [lambda: None], "c": np.arange(3)})
    assert pathlib.Path(path).read_bytes() == before
    ro = mmapdict(path, True)
    with pytest.raises(TypeError):
        ro.update({1: 1})
    ro.update({})
    # Pairs: the later of two equal keys wins, as in a dict.
    m.update([("k", 1), ("j", [2]), ("k", 3)])
    assert m["k"] == 3 and m["j"] == [2] and m.keys() == ["kept", "j", "k"]


def entry(key: str, value: bytes, memo_max: int) -> bytes:
    """An entry's bytes as FORMAT.md lays them out (live)."""
    key_bytes = key.encode()
    body = b"\x8c" + bytes([len(key_bytes)]) + key_bytes + value
    body += b"J" + struct.pack("<i", memo_max) + b"0" + b"\x88" + b"0"
    return b"\x95" + struct.pack("<Q", len(body)) + body


def test_values_that_do_not_stand_alone_are_read_alone(path: str) -> None:
    # Entries a writer other than ours may leave: a MEMOIZE (numbered by the memo's size, so
    # it reads otherwise within a larger stream), a FRAME inside a value, two values' memo
    # indices that overlap (each reading its own store). Read as each key alone reads them.
    header = b"\x80\x04\x95" + struct.pack("<Q", 13) + b"J\x01\x00\x00\x000J\x04\x00\x00\x000("
    terminator = b"\x95" + struct.pack("<Q", 2) + b"d."
    entries = [
        entry("memoize", b"\x8c\x01a\x94\x8c\x01bh\x00\x87", 1),  # ('a', 'b', 'a')
        entry("framed", b"\x95\x02\x00\x00\x00\x00\x00\x00\x00K\x05", 1),
        entry("own memo", b"]q\x05(\x8c\x01cq\x06h\x06e", 7),  # ['c', 'c']
        entry("same memo", b"\x8c\x01dq\x06h\x06\x86", 7),  # ('d', 'd')
    ]
    pathlib.Path(path).write_bytes(header + b"".join(entries) + terminator)
    m = mmapdict(path, True)
    alone = {key: m[key] for key in m}
    assert alone == {
        "memoize": ("a", "b", "a"),
        "framed": 5,
        "own memo": ["c", "c"],
        "same memo": ("d", "d"),
    }
    assert dict(m.items()) == alone
    assert list(m.values()) == list(alone.values())
