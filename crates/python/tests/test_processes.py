"""mmapdict across processes: pickled as "reopen this path", shared by a Pool; numpy-free."""

from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
from conftest import run_ours
from mmappickle import mmapdict


def test_pickles_as_reopen_path(path: str) -> None:
    m = mmapdict(path)
    m["a"] = 1
    copy = pickle.loads(pickle.dumps(m))
    assert copy is not m and copy.keys() == ["a"] and copy.writable
    copy["b"] = 2
    assert m["b"] == 2
    ro = pickle.loads(pickle.dumps(mmapdict(path, True)))
    assert not ro.writable and ro["b"] == 2


def add_one(args: tuple) -> None:
    m, index = args
    m["counts"][index] += 1


def test_pool_of_four_workers(path: str) -> None:
    m = mmapdict(path)
    m["counts"] = np.zeros(4, dtype=np.int64)
    for method in ("fork", "spawn"):
        m["counts"][:] = 0
        with multiprocessing.get_context(method).Pool(4) as pool:
            pool.map(add_one, [(m, index) for index in range(4)])
        assert m["counts"].tolist() == [1, 1, 1, 1], method


def test_concurrent_writers(path: str) -> None:
    mmapdict(path)
    script = """
        import sys
        from mmappickle import mmapdict
        m = mmapdict(sys.argv[1])
        for i in range(200):
            m[f"{sys.argv[2]}-{i}"] = i
    """
    import subprocess
    import sys
    import textwrap

    workers = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), path, str(worker)])
        for worker in range(4)
    ]
    assert [worker.wait() for worker in workers] == [0] * 4
    m = mmapdict(path)
    assert len(m) == 800
    with open(path, "rb") as file:
        assert len(pickle.load(file)) == 800


def test_import_without_numpy(path: str) -> None:
    completed = run_ours(
        """
        import sys
        sys.modules["numpy"] = None  # import numpy now fails
        sys.modules["dask"] = None
        import mmappickle, mmappickle.stubs, mmappickle.picklers
        from mmappickle import mmapdict
        m = mmapdict(sys.argv[1])
        m["a"] = [1, "two"]
        assert m["a"] == [1, "two"]
        del m
        remote = mmappickle.RemoteDict("file://" + sys.argv[1])
        assert remote["a"] == [1, "two"]
        assert not hasattr(mmappickle.stubs, "EmptyNDArray")
        assert not hasattr(mmappickle.picklers, "ArrayPickler")
        print("ok")
        """,
        path,
    )
    assert completed.stdout.strip() == "ok", completed.stderr


def test_writes_when_an_import_hook_blocks_numpy_submodules(path: str) -> None:
    # numpy 2 imports numpy.ma (and more) lazily, on first use: storing plain arrays and
    # generic values must not need a numpy import that a plain array never needed.
    completed = run_ours(
        """
        import sys
        import numpy as np

        class BlockNumpySubmodules:
            def find_spec(self, name, path=None, target=None):
                if name.startswith("numpy."):
                    raise ImportError(f"blocked: {name}")
                return None

        already = set(sys.modules)
        sys.meta_path.insert(0, BlockNumpySubmodules())
        from mmappickle import mmapdict
        from mmappickle.stubs import EmptyNDArray
        m = mmapdict(sys.argv[1])
        m["array"] = np.arange(6, dtype=np.int32).reshape(2, 3)
        m["generic"] = {"a": [1, 2]}
        m["stub"] = EmptyNDArray((3,), dtype=np.float32)
        m["object array"] = np.array([1, "x"], dtype=object)
        m.update(more=np.zeros(2), text="t")
        m["array"] = np.ones(2)
        del m["text"]
        m.vacuum()
        assert m["array"].tolist() == [1.0, 1.0] and m["generic"] == {"a": [1, 2]}
        assert m["stub"].tolist() == [0.0] * 3 and m["more"].tolist() == [0.0, 0.0]
        assert m["object array"].tolist() == [1, "x"]
        new = sorted(name for name in set(sys.modules) - already if name.startswith("numpy."))
        print("ok", new)
        """,
        path,
    )
    assert completed.stdout.startswith("ok []"), completed.stderr
    m = mmapdict(path)
    assert m.keys() == ["generic", "stub", "object array", "more", "array"]


def test_import_is_lean() -> None:
    completed = run_ours(
        """
        import sys
        before = set(sys.modules)
        import mmappickle
        new = set(sys.modules) - before
        heavy = {"pathlib", "numpy", "tempfile", "fcntl", "shutil", "json", "urllib", "dask"}
        print(sorted(name for name in new if name.split(".")[0] in heavy))
        """
    )
    assert completed.stdout.strip() == "[]", completed.stderr
