"""Our package writing beside the Python library's constructors, which write a terminator at
the end of the file without the lock whenever the file does not end with one: every value we
write (small, one page, many pages; bytes and arrays; single inserts and `update` batches)
is read back byte for byte by us, by the library and by plain `pickle.load`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
from conftest import library_python, run_library
from mmappickle import mmapdict

CONSTRUCT = """
    import os, sys
    from mmappickle import mmapdict
    while not os.path.exists(sys.argv[2]):
        mmapdict(sys.argv[1])
"""

DIGESTS = """
    import hashlib, json, pickle, sys
    import numpy
    from mmappickle import mmapdict
    def digest(value):
        raw = value if isinstance(value, bytes) else numpy.asarray(value).tobytes()
        return hashlib.sha256(raw).hexdigest()
    m = mmapdict(sys.argv[1], True)
    with open(sys.argv[1], "rb") as file:
        loaded = pickle.load(file)
    print(json.dumps([{k: digest(m[k]) for k in m.keys()}, {k: digest(v) for k, v in loaded.items()}]))
"""

SIZES = (100, 3000, 60_000, 200_000)


def payload(idx: int) -> bytes:
    return np.random.default_rng(idx).bytes(SIZES[idx % len(SIZES)])


def digest(value: object) -> str:
    raw = value if isinstance(value, bytes) else np.asarray(value).tobytes()
    return hashlib.sha256(raw).hexdigest()


def test_our_values_survive_library_constructors(path: str, tmp_path: Path) -> None:
    mmapdict(path).close()
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    constructors = [
        subprocess.Popen(
            [library_python(), "-c", textwrap.dedent(CONSTRUCT), path, str(stop)], env=env
        )
        for _ in range(2)
    ]
    written: dict[str, bytes] = {}
    try:
        m = mmapdict(path)
        for group in range(12):
            keys = [f"ours{group * 5 + i}" for i in range(5)]
            values = {key: payload(group * 5 + i) for i, key in enumerate(keys)}
            if group % 4 == 3:
                m.update(values)
            else:
                for i, (key, raw) in enumerate(values.items()):
                    m[key] = raw if i % 2 == 0 else np.frombuffer(raw, dtype=np.uint8)
            written.update(values)
        m.close()
    finally:
        stop.touch()
        assert [process.wait() for process in constructors] == [0, 0]
    m = mmapdict(path, True)
    assert sorted(m.keys()) == sorted(written)
    for key, raw in written.items():
        assert digest(m[key]) == digest(raw), key
    by_library, by_pickle = run_library(DIGESTS, path)
    expected = {key: digest(raw) for key, raw in written.items()}
    assert by_library == expected
    assert by_pickle == expected
