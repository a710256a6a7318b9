"""The mapping API: keys, values, read-only, commit number, vacuum, file objects."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import tempfile
import weakref
from collections.abc import ItemsView, ValuesView

import mmappickle
import pytest
from mmappickle import mmapdict


def test_version() -> None:
    assert mmappickle.__version__ == "2.0.0"


def test_mapping_methods(path: str) -> None:
    m = mmapdict(path)
    assert len(m) == 0 and list(m) == [] and m.keys() == []
    m["a"] = 1
    m["b"] = "two"
    m.update({"c": [3]}, d=4.0)
    assert len(m) == 4
    assert list(m) == m.keys() == ["a", "b", "c", "d"]
    values, items = m.values(), m.items()
    assert isinstance(values, ValuesView) and isinstance(items, ItemsView)
    assert list(values) == [1, "two", [3], 4.0] and len(values) == 4
    assert list(items) == [("a", 1), ("b", "two"), ("c", [3]), ("d", 4.0)] and len(items) == 4
    assert "two" in values and 5 not in values
    assert ("c", [3]) in items and ("c", [4]) not in items and ("zz", 1) not in items
    assert dict(m) == {"a": 1, "b": "two", "c": [3], "d": 4.0}
    assert m.get("a") == 1 and m.get("zz") is None and m.get("zz", 5) == 5
    assert "a" in m and "zz" not in m and 1 not in m
    m["a"] = "replaced"
    assert list(values)[-1] == "replaced"  # a view: it sees the change
    assert m.keys() == ["b", "c", "d", "a"] and m["a"] == "replaced"
    del m["b"]
    assert "b" not in m
    assert m.pop("c") == [3]
    assert m.setdefault("e", 5) == 5


def test_update_is_one_batch(path: str) -> None:
    m = mmapdict(path)
    m["kept"] = 0
    commit_number = m.commit_number
    m.update([("a", 1), ("b", 2)], c=3)
    assert m.keys() == ["kept", "a", "b", "c"]
    # One commit for the batch: the number moves on by its three changes at once.
    assert m.commit_number == commit_number + 3
    other = mmapdict(path + ".other")
    other.update(m)  # an mmapdict as the source: read from one state of it
    assert list(other.items()) == list(m.items())

    class KeysOnly:
        def keys(self) -> list:
            return ["k"]

        def __getitem__(self, key: str) -> str:
            return key * 2

    m.update(KeysOnly())
    assert m["k"] == "kk"
    # A bad key or an unpicklable value stores nothing, not even the values before it.
    before = pathlib.Path(path).read_bytes()
    with pytest.raises(ValueError):
        m.update({"x": 1, "é" * 128: 2})
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        m.update({"y": 1, "z": lambda: None})
    assert pathlib.Path(path).read_bytes() == before
    assert "x" not in m and "y" not in m
    m.update()
    assert pathlib.Path(path).read_bytes() == before


def test_missing_keys_and_bad_keys(path: str) -> None:
    m = mmapdict(path)
    with pytest.raises(KeyError) as missing:
        m["nope"]
    assert missing.value.args == ("nope",)
    with pytest.raises(KeyError):
        del m["nope"]
    with pytest.raises(TypeError):
        m[1] = 1
    with pytest.raises(TypeError):
        m[b"k"] = 1
    before = pathlib.Path(path).read_bytes()
    with pytest.raises(ValueError):
        m["é" * 128] = 1  # 256 UTF-8 bytes
    assert pathlib.Path(path).read_bytes() == before
    m["é" * 127 + "x"] = 1  # 255 bytes
    assert m["é" * 127 + "x"] == 1


def test_readonly_refuses_every_change(path: str) -> None:
    import numpy as np

    m = mmapdict(path)
    m["k"] = 1
    m["a"] = np.arange(3)
    m.close()
    before = pathlib.Path(path).read_bytes()
    ro = mmapdict(path, True)
    assert not ro.writable
    changes = [
        lambda: ro.__setitem__("k", 2),
        lambda: ro.__delitem__("k"),
        lambda: ro.update(x=1),
        lambda: ro.vacuum(),
        lambda: ro.fsck(),
        lambda: setattr(ro, "commit_number", 7),
        lambda: ro.pop("k"),
    ]
    for change in changes:
        with pytest.raises(io.UnsupportedOperation, match="not writable"):
            change()
    array = ro["a"]
    with pytest.raises(ValueError):
        array[0] = 5
    assert pathlib.Path(path).read_bytes() == before
    assert ro["k"] == 1


def test_open_arguments(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.mmdpickle"
    with pytest.raises(FileNotFoundError):
        mmapdict(str(missing), readonly=True)
    assert not missing.exists()
    m = mmapdict(missing)  # os.PathLike, read-write: created
    assert m.writable and missing.exists()
    for bad in (42, None, io.BytesIO(), 3.5):
        with pytest.raises(TypeError):
            mmapdict(bad)
    with pytest.raises(ValueError):
        mmapdict(missing, encoding="fast")


def test_commit_number(path: str) -> None:
    m = mmapdict(path)
    start = m.commit_number
    m["a"] = 1
    assert m.commit_number == start + 1
    m["a"] = 2  # replace: delete + insert
    assert m.commit_number == start + 3
    del m["a"]
    assert m.commit_number == start + 4
    m.commit_number = 100
    assert m.commit_number == 100
    assert mmapdict(path).commit_number == 100
    with pytest.raises(TypeError):
        m.commit_number = "1"
    with pytest.raises(TypeError):
        m.commit_number = 1.0


def test_vacuum_shrinks_and_changes_the_commit_number(path: str) -> None:
    m = mmapdict(path)
    for i in range(10):
        m[f"k{i}"] = "x" * 1000
    for i in range(5):
        del m[f"k{i}"]
    size = os.path.getsize(path)
    number = m.commit_number
    m.vacuum()
    assert os.path.getsize(path) < size - 4000
    assert m.commit_number != number
    assert m.keys() == [f"k{i}" for i in range(5, 10)]
    assert m["k7"] == "x" * 1000
    # Nothing to remove: nothing changes.
    size, number = os.path.getsize(path), m.commit_number
    m.vacuum()
    assert (os.path.getsize(path), m.commit_number) == (size, number)


def test_temporary_file_reads_and_writes_through_the_descriptor() -> None:
    with tempfile.TemporaryFile() as file:
        m = mmapdict(file)
        m["a"] = {"x": [1, 2]}
        m["b"] = "text"
        del m["b"]
        assert m.keys() == ["a"] and m["a"] == {"x": [1, 2]}
        assert os.fstat(file.fileno()).st_size > 0
        file.seek(0)
        assert pickle.load(file) == {"a": {"x": [1, 2]}}
        # A second mmapdict on the same descriptor sees the first one's changes.
        assert mmapdict(file)["a"] == {"x": [1, 2]}
        m.vacuum()  # in place
        file.seek(0)
        assert pickle.load(file) == {"a": {"x": [1, 2]}}
        with pytest.raises(TypeError):
            pickle.dumps(m)


def test_temporary_file_arrays() -> None:
    import numpy as np

    with tempfile.TemporaryFile() as file:
        m = mmapdict(file)
        m["a"] = np.arange(5.0)
        a = m["a"]
        assert isinstance(a, np.memmap)
        a[2] = 10
        assert m["a"].tolist() == [0.0, 1.0, 10.0, 3.0, 4.0]


def test_named_file_object(path: str) -> None:
    with open(path, "wb+") as file:
        m = mmapdict(file)
        m["a"] = 1
        m.vacuum()
        assert m["a"] == 1
    with open(path, "rb") as file:
        ro = mmapdict(file)
        assert not ro.writable and ro["a"] == 1


def test_close_and_context_manager(path: str) -> None:
    with mmapdict(path) as m:
        m["a"] = 1
        assert "entries=1" in repr(m) and path in repr(m) and "'r+'" in repr(m)
    assert "closed" in repr(m)
    with pytest.raises(ValueError):
        m["a"]
    ro = mmapdict(path, True)
    assert "'r'" in repr(ro)


def test_weakref_collectable(path: str) -> None:
    m = mmapdict(path)
    m["a"] = 1
    ref = weakref.ref(m)
    del m
    # No reference cycle: freed at once, without the cycle collector.
    assert ref() is None


def test_module_layout() -> None:
    import mmappickle.dict
    import mmappickle.picklers
    import mmappickle.picklers.base

    assert mmappickle.dict.mmapdict is mmapdict
    assert mmappickle.picklers.base.GenericPickler is mmappickle.picklers.GenericPickler
    import mmappickle.picklers.numpy
    import mmappickle.stubs
    import mmappickle.stubs.numpy

    assert mmappickle.stubs.EmptyNDArray is mmappickle.stubs.numpy.EmptyNDArray
    assert mmappickle.picklers.ArrayPickler is mmappickle.picklers.numpy.ArrayPickler
    assert mmappickle.picklers.MaskedArrayPickler is mmappickle.picklers.numpy.MaskedArrayPickler
