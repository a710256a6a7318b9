"""mmapdicts opened from file objects: the caller's buffers stay coherent with the file around
every operation, and a plain pickled dict is converted, a file vacuumed, in place (the file
object keeps naming the file)."""

from __future__ import annotations

import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_library
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

# Offset of the commit number in the header (FORMAT.md).
COMMIT_NUMBER_OFFSET = 18

# Masked arrays have one encoding, which plain pickle.load reads with numpy < 2.3 only.
LOADS_MASKED = tuple(int(part) for part in np.__version__.split(".")[:2]) < (2, 3)


LIBRARY_KEYS = """
    import json, sys
    from mmappickle import mmapdict
    print(json.dumps(list(mmapdict(sys.argv[1], True).keys())))
"""


def file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def assert_coherent(file: Any, path: str, position: int) -> None:
    """``file`` sees what is on disk, from where the caller left it."""
    assert file.tell() == position
    file.seek(0)  # within what the file object read ahead: its buffer is read again
    assert file.read() == file_bytes(path)
    assert file.seek(0, io.SEEK_END) == os.path.getsize(path)
    file.seek(position)


def loaded(file: Any) -> dict:
    file.seek(0)
    return pickle.load(file)


def test_pending_writes_reach_the_file_before_it_is_opened(path: str) -> None:
    with open(path, "w+b") as file:
        file.write(b"x" * 10)
        # Not a pickle: refused, and the caller's bytes are not overwritten later.
        with pytest.raises(ValueError):
            mmapdict(file)
    assert file_bytes(path) == b"x" * 10


def test_unflushed_pickle_of_a_dict_is_converted_in_place(path: str) -> None:
    values = {"a": 1, "b": [1, "two"], "array": np.arange(6, dtype=np.int32).reshape(2, 3)}
    with open(path, "w+b") as file:
        pickle.dump(values, file)  # still in the file object's buffer
        inode = os.fstat(file.fileno()).st_ino
        m = mmapdict(file, encoding="portable")  # arrays that pickle.load reads on any numpy
        assert m.keys() == ["a", "b", "array"]
        assert m["b"] == [1, "two"]
        assert isinstance(m["array"], np.memmap)
        assert m["array"].tolist() == [[0, 1, 2], [3, 4, 5]]
        # The caller's file object names the converted file, and sees it whole.
        assert os.stat(path).st_ino == inode
        assert_coherent(file, path, file.tell())
        assert loaded(file)["b"] == [1, "two"]
        m["c"] = 3
        assert loaded(file)["c"] == 3
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
    assert run_library(LIBRARY_KEYS, path) == ["a", "b", "array", "c"]


def test_pickle_of_a_temporary_file_is_converted_in_place() -> None:
    with tempfile.TemporaryFile() as file:
        pickle.dump({"a": 1, "b": "two"}, file)
        m = mmapdict(file)
        assert m.keys() == ["a", "b"] and m["b"] == "two"
        m["c"] = 3
        assert loaded(file) == {"a": 1, "b": "two", "c": 3}


@pytest.mark.parametrize("value", [[1, 2], "text", 3.5, None])
def test_pickle_of_a_non_dict_is_a_value_error(path: str, value: Any) -> None:
    with open(path, "w+b") as file:
        pickle.dump(value, file)
        with pytest.raises(ValueError):
            mmapdict(file)
    assert file_bytes(path) == pickle.dumps(value)
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]


def test_a_read_only_file_object_is_not_converted(path: str) -> None:
    Path(path).write_bytes(pickle.dumps({"a": 1}))
    with open(path, "rb") as file, pytest.raises(ValueError):
        mmapdict(file)
    assert file_bytes(path) == pickle.dumps({"a": 1})


def insert(m: mmapdict, path: str) -> None:
    m["new"] = {"x": 1}


def replace(m: mmapdict, path: str) -> None:
    m["base"] = "replaced"


def delete(m: mmapdict, path: str) -> None:
    del m["base"]


def update(m: mmapdict, path: str) -> None:
    m.update({"u1": 1, "u2": [2]}, u3=3)


def vacuum(m: mmapdict, path: str) -> None:
    del m["gone"]
    m.vacuum()


def fsck(m: mmapdict, path: str) -> None:
    os.truncate(path, os.path.getsize(path) - 3)  # a cut inside the terminator
    m.fsck()


def insert_array(m: mmapdict, path: str) -> None:
    m["array"] = np.arange(4, dtype=np.float64)


def insert_masked(m: mmapdict, path: str) -> None:
    m["masked"] = np.ma.MaskedArray([1, 2, 3], mask=[False, True, False])


def insert_stub(m: mmapdict, path: str) -> None:
    m["stub"] = EmptyNDArray((2, 2), dtype=np.int16)


def set_commit_number(m: mmapdict, path: str) -> None:
    m.commit_number = 77


CHANGES: list[Callable[[mmapdict, str], None]] = [
    insert,
    replace,
    delete,
    update,
    vacuum,
    fsck,
    insert_array,
    insert_masked,
    insert_stub,
    set_commit_number,
]


# Plain pickle.load of a masked array on numpy < 2.3 warns of binary fromstring.
@pytest.mark.filterwarnings("ignore:The binary mode of fromstring:DeprecationWarning")
@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
@pytest.mark.parametrize("named", [True, False], ids=["named", "temporary"])
def test_reads_through_the_file_object_see_every_change(
    path: str, change: Callable[[mmapdict, str], None], named: bool
) -> None:
    with open(path, "w+b") if named else tempfile.TemporaryFile() as file:
        real_path = path if named else f"/proc/self/fd/{file.fileno()}"
        m = mmapdict(file, encoding="portable")  # arrays that pickle.load reads on any numpy
        m["base"] = 1
        m["gone"] = "x" * 5000
        file.seek(0)
        file.read(1)  # the file object reads ahead: the whole file is in its buffer
        change(m, real_path)
        assert_coherent(file, real_path, 1)
        expected = {key: m[key] for key in m.keys()}  # noqa: SIM118
        if change is insert_masked and not LOADS_MASKED:
            return
        seen = loaded(file)
        assert list(seen) == list(expected)
        for key, value in expected.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(seen[key], value), key
            else:
                assert seen[key] == value, key
        assert file.tell() == os.path.getsize(real_path)


def test_writes_through_the_file_object_reach_the_next_operation(path: str) -> None:
    with open(path, "w+b") as file:
        m = mmapdict(file)
        m["a"] = 1
        number = m.commit_number
        file.seek(COMMIT_NUMBER_OFFSET)
        file.write(struct.pack("<i", 1000))  # buffered, not flushed
        assert m.commit_number == 1000
        file.seek(COMMIT_NUMBER_OFFSET)
        file.write(struct.pack("<i", number))
        m["b"] = 2  # the insert counts from the number the caller wrote
        assert m.commit_number == number + 1
        # The caller writes a whole other file through its file object.
        other = str(Path(path).with_name("other.mmdpickle"))
        mmapdict(other)["other"] = [1, 2]
        file.seek(0)
        file.write(file_bytes(other))
        file.truncate()
        assert m.keys() == ["other"] and m["other"] == [1, 2]
        assert "other" in m and len(m) == 1 and list(m) == ["other"]
        assert list(m.items()) == [("other", [1, 2])]


def test_file_object_position_is_kept(path: str) -> None:
    with open(path, "w+b") as file:
        m = mmapdict(file)
        file.seek(5)
        m["a"] = 1
        m["b"] = np.arange(3)
        del m["a"]
        m.vacuum()
        assert file.tell() == 5


def test_vacuum_in_place_keeps_the_file_object_naming_the_file(path: str) -> None:
    with open(path, "w+b") as file:
        m = mmapdict(file, encoding="portable")
        for i in range(10):
            m[f"k{i}"] = "x" * 1000
        m["array"] = np.arange(100, dtype=np.int64)
        for i in range(8):
            del m[f"k{i}"]
        inode = os.fstat(file.fileno()).st_ino
        size = os.path.getsize(path)
        number = m.commit_number
        m.vacuum()
        assert os.stat(path).st_ino == inode
        assert file.seek(0, io.SEEK_END) == os.path.getsize(path) < size - 7000
        assert m.commit_number != number
        assert m.keys() == ["k8", "k9", "array"]
        assert m["array"].tolist() == list(range(100))
        m["after"] = 1
        assert loaded(file)["after"] == 1
        # Nothing to remove: nothing changes.
        before = file_bytes(path)
        m.vacuum()
        assert file_bytes(path) == before
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
    describe = """
        import json, sys
        from mmappickle import mmapdict
        m = mmapdict(sys.argv[1], True)
        print(json.dumps([list(m.keys()), m["array"].tolist()[-1], m["k9"][:3]]))
    """
    assert run_library(describe, path) == [["k8", "k9", "array", "after"], 99, "xxx"]


def test_vacuum_of_a_temporary_file() -> None:
    with tempfile.TemporaryFile() as file:
        m = mmapdict(file)
        m["a"] = "x" * 10000
        m["b"] = 2
        del m["a"]
        size = os.fstat(file.fileno()).st_size
        m.vacuum()
        assert file.seek(0, io.SEEK_END) == os.fstat(file.fileno()).st_size < size - 9000
        assert loaded(file) == {"b": 2}


def test_vacuum_in_place_is_refused_while_arrays_map_the_file(path: str) -> None:
    with open(path, "w+b") as file:
        m = mmapdict(file)
        m["array"] = np.arange(10.0)
        m["gone"] = 1
        del m["gone"]
        view = m["array"][2:]
        with pytest.raises(ValueError, match="mapped"):
            m.vacuum()
        del view
        m.vacuum()
        assert m["array"].tolist() == list(np.arange(10.0))


# Rewrites a file in place through a file object (a vacuum, or the convert of a plain
# pickle) and kills itself at one point of the rewrite: in the middle of the copy to the
# scratch file ("out") or of the copy back ("back"), or at the n-th fsync: "fsync1" the
# scratch file rewritten, "fsync2" renamed as whole (its directory synced), "fsync3" the
# copy back done, "fsync4" the old tail cut.
KILLED_REWRITE = """
    import os, signal, sys
    import mmappickle._file_objects
    from mmappickle import mmapdict

    path, rewrite, kill_at = sys.argv[1:4]
    copy_bytes, fsync = mmappickle._file_objects._copy_bytes, os.fsync
    calls = {"copy": 0, "fsync": 0}

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    def copy_and_kill(source, target, length):
        calls["copy"] += 1
        if ["out", "back"][calls["copy"] - 1] == kill_at:
            copy_bytes(source, target, length // 2)
            kill()
        copy_bytes(source, target, length)

    def fsync_and_kill(fd):
        calls["fsync"] += 1
        if f"fsync{calls['fsync']}" == kill_at:
            kill()
        fsync(fd)

    mmappickle._file_objects._copy_bytes = copy_and_kill
    os.fsync = fsync_and_kill
    with open(path, "r+b") as file:
        m = mmapdict(file)
        if rewrite == "vacuum":
            m.vacuum()
"""

KILL_POINTS = ["out", "fsync1", "fsync2", "back", "fsync3", "fsync4"]


def contents(path: str, readonly: bool = False) -> dict:
    m = mmapdict(path, readonly)
    return {key: getattr(value, "tolist", lambda v=value: v)() for key, value in m.items()}


@pytest.mark.parametrize("kill_at", KILL_POINTS)
@pytest.mark.parametrize("rewrite", ["vacuum", "convert"])
def test_a_kill_during_an_in_place_rewrite_loses_nothing(
    tmp_path: Path, rewrite: str, kill_at: str
) -> None:
    path = str(tmp_path / "killed.mmdpickle")
    values = {f"k{i}": [i, "x" * (100 * i)] for i in range(20)}
    values["array"] = np.arange(1000, dtype=np.int64)
    if rewrite == "vacuum":
        m = mmapdict(path)
        m.update(values)
        for i in range(0, 20, 2):
            del m[f"k{i}"]
            del values[f"k{i}"]
        m.close()
    else:
        Path(path).write_bytes(pickle.dumps(values, 4))
    expected = {key: getattr(value, "tolist", lambda v=value: v)() for key, value in values.items()}
    before = file_bytes(path)
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_REWRITE), path, rewrite, kill_at],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    scratches = list(tmp_path.glob("killed.mmdpickle.rewrite-*"))
    if kill_at in ("out", "fsync1", "fsync2"):
        assert file_bytes(path) == before  # not touched yet
    if kill_at in ("out", "fsync1"):
        assert scratches == []
    else:
        # The scratch file holds the whole new file until the new file is synced.
        (scratch,) = scratches
        assert contents(str(scratch), readonly=True) == expected
    if kill_at == "back":
        # The file's head is new, its tail old: it is refused (or read whole, where the two
        # meet between entries), never read in part.
        try:
            seen = contents(path)
        except ValueError as error:
            assert f"{scratch} holds the whole file" in str(error)
            return
        assert seen == expected
    else:
        # A plain pickle left whole is converted by this open; trailing old bytes are cut.
        assert contents(path) == expected


def test_the_dict_knows_the_path_and_mode_the_rust_half_opened(path: str) -> None:
    mmapdict(path).close()
    with open(path, "rb") as read_only, tempfile.TemporaryFile() as unnamed:
        for m in (mmapdict(path), mmapdict(path, True), mmapdict(read_only), mmapdict(unnamed)):
            assert (m._path, m._readonly) == (m._native.path(), m._native.readonly())
            m.close()
