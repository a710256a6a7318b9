"""Cross-checks with the Python library (mmappickle 1.0, numpy 1.23.5), run in its own
environment as a subprocess: files we write it reads (and plain pickle.load reads), files it
writes we read, and generic values are stored byte for byte as it stores them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from conftest import library_python, run_library
from mmappickle import mmapdict
from mmappickle.stubs import EmptyNDArray

# Prints what the Python library (or plain pickle.load) sees in a file, as JSON.
DESCRIBE = """
    import json, pickle, sys
    import numpy as np

    def describe(value):
        if isinstance(value, np.ma.MaskedArray):
            return ["masked", type(value.data).__name__, value.data.tolist(), value.mask.tolist()]
        if isinstance(value, np.ndarray):
            return [type(value).__name__, str(value.dtype), list(value.shape), repr(value.tolist())]
        return ["value", repr(value)]

    def shared(d):
        (k, v), = d["same str"].items()
        return [k is v, d["loop"][1] is d["loop"]]

    if sys.argv[2] == "library":
        from mmappickle import mmapdict
        m = mmapdict(sys.argv[1], True)
        d = {k: m[k] for k in m.keys()}
    else:
        with open(sys.argv[1], "rb") as f:
            d = pickle.load(f)
    print(json.dumps({"keys": list(d), "shared": shared(d),
                      "values": {k: describe(v) for k, v in d.items()}}))
"""

ARRAYS = {
    "u8": np.array([1, 2, 3], dtype=np.uint8),
    "f8": np.arange(12, dtype=np.float64).reshape(3, 4),
    "big": np.arange(5, dtype=">i4"),
    "bool": np.array([True, False]),
    "c16": np.array([1 + 2j, 3j]),
    "f2": np.array([0.5, 1.5], dtype=np.float16),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
}


def fill_ours(path: str) -> None:
    m = mmapdict(path)
    s = "shared"
    m["same str"] = {s: s}
    loop: list = [1]
    loop.append(loop)
    m["loop"] = loop
    m["text"] = "value"
    m["replaced"] = 1
    m["replaced"] = [1, 2, 3]
    m["gone"] = "x"
    del m["gone"]
    for key, array in ARRAYS.items():
        m[key] = array
    m["masked"] = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False])
    m["stub"] = EmptyNDArray((2, 3), dtype=np.int32)


def test_library_reads_what_we_write(path: str) -> None:
    fill_ours(path)
    for reader in ("library", "pickle"):
        seen = run_library(DESCRIBE, path, reader)
        assert seen["keys"] == mmapdict(path).keys(), reader
        assert seen["shared"] == [True, True], reader
        values = seen["values"]
        assert values["text"] == ["value", "'value'"]
        assert values["replaced"] == ["value", "[1, 2, 3]"]
        array_type = "memmap" if reader == "library" else "ndarray"
        for key, array in ARRAYS.items():
            expected = [array_type, str(array.dtype), list(array.shape), repr(array.tolist())]
            assert values[key] == expected, (reader, key)
        assert values["masked"][2:] == [[1.0, 2.0, 3.0], [False, True, False]]
        assert values["stub"] == [array_type, "int32", [2, 3], repr([[0] * 3] * 2)]


WRITE_WITH_LIBRARY = """
    import json, sys
    import numpy as np
    from mmappickle import mmapdict
    from mmappickle.stubs import EmptyNDArray
    m = mmapdict(sys.argv[1])
    s = "shared"
    m["same str"] = {s: s}
    loop = [1]
    loop.append(loop)
    m["loop"] = loop
    m["text"] = "value"
    m["replaced"] = 1
    m["replaced"] = [1, 2, 3]
    m["gone"] = "x"
    del m["gone"]
    m["u8"] = np.array([1, 2, 3], dtype=np.uint8)
    m["f8"] = np.arange(12, dtype=np.float64).reshape(3, 4)
    m["big"] = np.arange(5, dtype=">i4")
    m["masked"] = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False])
    m["stub"] = EmptyNDArray((2, 3), dtype=np.int32)
    print(json.dumps(m.commit_number))
"""


def test_we_read_what_the_library_writes(path: str) -> None:
    commit_number = run_library(WRITE_WITH_LIBRARY, path)
    m = mmapdict(path)
    assert m.commit_number == commit_number
    assert m.keys() == ["same str", "loop", "text", "replaced", "u8", "f8", "big", "masked", "stub"]
    ((key, value),) = m["same str"].items()
    assert key is value
    loop = m["loop"]
    assert loop[1] is loop
    assert m["replaced"] == [1, 2, 3]
    for key in ("u8", "f8", "big"):
        assert isinstance(m[key], np.memmap)
    assert m["f8"].tolist() == np.arange(12.0).reshape(3, 4).tolist()
    assert m["big"].dtype == np.dtype(">i4") and m["big"].tolist() == [0, 1, 2, 3, 4]
    masked = m["masked"]
    assert masked.mask.tolist() == [False, True, False] and masked.sum() == 4.0
    assert m["stub"].shape == (2, 3) and not m["stub"].any()
    # And we keep writing to it, the library reading it back.
    m["u8"][0] = 9
    m["new"] = {"x": 1}
    m.vacuum()
    seen = run_library(DESCRIBE, path, "library")
    assert seen["values"]["u8"][3] == "[9, 2, 3]"
    assert seen["values"]["new"] == ["value", "{'x': 1}"]
    assert seen["shared"] == [True, True]


SAME_BYTES = """
    import json, sys
    from mmappickle import mmapdict
    m = mmapdict(sys.argv[1])
    exec(sys.argv[2])
    print(json.dumps(open(sys.argv[1], "rb").read().hex()))
"""

GENERIC_INSERTS = """
s = "shared"
m["a"] = {s: s}
loop = [1]
loop.append(loop)
m["b"] = loop
m["c"] = [("t", 1.5, None, True, b"x", 2**70)] * 3
m["d"] = {"k": list(range(300))}
m["c"] = "replaced"
del m["a"]
for i in range(300):
    t = f"memo {i}"
    m[f"many{i}"] = [t, t]
"""


def test_generic_values_are_byte_identical(path: str, tmp_path) -> None:
    library_file = str(tmp_path / "library.mmdpickle")
    library_bytes = bytes.fromhex(run_library(SAME_BYTES, library_file, GENERIC_INSERTS))
    m = mmapdict(path)
    exec(GENERIC_INSERTS, {"m": m})  # noqa: S102  (the very code the library ran)
    m.close()
    assert Path(path).read_bytes() == library_bytes


# Waits, after its mmapdict is constructed, for the go-file: no constructor runs while
# another process appends (the library's constructor writes a terminator without the lock).
BARRIER = """
    import os, sys, time
    from mmappickle import mmapdict
    path, name, directory = sys.argv[1], sys.argv[2], sys.argv[3]
    m = mmapdict(path)
    open(os.path.join(directory, "ready-" + name), "w").close()
    while not os.path.exists(os.path.join(directory, "go")):
        time.sleep(0.001)
    for i in range(100):
        m[f"{name}-{i}"] = [i, "x"]
"""


def start_behind_a_barrier(
    path: str, directory: Path, interpreters: dict[str, str]
) -> list[subprocess.Popen]:
    """Starts one process per ``name: interpreter``, each constructing its mmapdict of
    ``path`` and then inserting 100 keys ``name-i``; the inserts begin once every process
    has constructed its mmapdict."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    processes = [
        subprocess.Popen(
            [python, "-c", textwrap.dedent(BARRIER), path, name, str(directory)], env=env
        )
        for name, python in interpreters.items()
    ]
    while not all((directory / f"ready-{name}").exists() for name in interpreters):
        if any(process.poll() is not None for process in processes):
            for process in processes:
                process.kill()
            raise AssertionError("a process exited before the barrier")
        time.sleep(0.002)
    (directory / "go").touch()
    return processes


def test_library_and_our_processes_share_a_file(path: str, tmp_path: Path) -> None:
    mmapdict(path)["start"] = 0
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    interpreters = {"library0": library_python(), "library1": library_python()}
    interpreters |= {"ours0": sys.executable, "ours1": sys.executable}
    processes = start_behind_a_barrier(path, barrier, interpreters)
    assert [process.wait() for process in processes] == [0] * 4
    m = mmapdict(path)
    assert len(m) == 401
    for name in interpreters:
        for i in range(100):
            assert m[f"{name}-{i}"] == [i, "x"]
    count_keys = """
        import json, sys
        from mmappickle import mmapdict
        m = mmapdict(sys.argv[1], True)
        print(json.dumps([len(m.keys()), m["ours1-99"], m["library0-99"]]))
    """
    assert run_library(count_keys, path) == [401, [99, "x"], [99, "x"]]
