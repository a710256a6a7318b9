"""One mmapdict handle shared by processes: passed to ``multiprocessing`` (``fork``,
``forkserver``, ``spawn``; ``Process`` and ``Pool``) or inherited through ``os.fork()``.
Under ``fork`` the handle is inherited, not pickled: the processes share one open file
description, and each must still lock the file apart from the others."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import library_python, run_library
from mmappickle import mmapdict

N_INSERTS = 300
N_CHILDREN = 3  # and the parent: four processes insert through the handle

CONTEXTS = ["fork", "forkserver", "spawn"]


def insert_all(m: mmapdict, name: str) -> None:
    for i in range(N_INSERTS):
        m[f"{name}-{i}"] = [i, name]


def check(path: str, names: list[str]) -> None:
    """Every process's keys, exactly, and every value, read back."""
    m = mmapdict(path, True)
    assert len(m) == 1 + N_INSERTS * len(names)
    assert m["start"] == 0
    for name in names:
        for i in range(N_INSERTS):
            assert m[f"{name}-{i}"] == [i, name]


def opened(path: str) -> mmapdict:
    m = mmapdict(path)
    m["start"] = 0
    return m


@pytest.mark.parametrize("method", CONTEXTS)
def test_process(path: str, method: str) -> None:
    m = opened(path)
    context = multiprocessing.get_context(method)
    names = [f"child{child}" for child in range(N_CHILDREN)]
    children = [context.Process(target=insert_all, args=(m, name)) for name in names]
    for child in children:
        child.start()
    insert_all(m, "parent")
    for child in children:
        child.join()
    assert [child.exitcode for child in children] == [0] * N_CHILDREN
    check(path, [*names, "parent"])


_handle: mmapdict | None = None


def keep_handle(m: mmapdict) -> None:
    global _handle
    _handle = m


def insert_through_kept_handle(name: str) -> None:
    assert _handle is not None
    insert_all(_handle, name)


@pytest.mark.parametrize("method", CONTEXTS)
def test_pool(path: str, method: str) -> None:
    m = opened(path)
    names = [f"worker{worker}" for worker in range(N_CHILDREN)]
    # The handle reaches the workers as the initializer's argument: inherited under fork,
    # pickled (a reopen of the path) otherwise.
    context = multiprocessing.get_context(method)
    with context.Pool(N_CHILDREN, initializer=keep_handle, initargs=(m,)) as pool:
        inserted = pool.map_async(insert_through_kept_handle, names, chunksize=1)
        insert_all(m, "parent")
        inserted.get(timeout=60)
    check(path, [*names, "parent"])


def fork_children(m: mmapdict, names: list[str]) -> list[int]:
    pids = []
    for name in names:
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            code = 1
            try:
                insert_all(m, name)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    return pids


def wait_all(pids: list[int]) -> list[int]:
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]


def test_os_fork(path: str) -> None:
    m = opened(path)
    names = [f"child{child}" for child in range(N_CHILDREN)]
    pids = fork_children(m, names)
    insert_all(m, "parent")
    assert wait_all(pids) == [0] * N_CHILDREN
    check(path, [*names, "parent"])


def test_os_fork_of_a_temporary_file() -> None:
    # Opened from a file object without a name: reopened through the inherited descriptor.
    with tempfile.TemporaryFile() as file:
        m = mmapdict(file)
        m["start"] = 0
        names = [f"child{child}" for child in range(N_CHILDREN)]
        pids = fork_children(m, names)
        insert_all(m, "parent")
        assert wait_all(pids) == [0] * N_CHILDREN
        check(f"/proc/self/fd/{file.fileno()}", [*names, "parent"])
        assert len(pickle.load(file)) == 1 + N_INSERTS * (N_CHILDREN + 1)


LIBRARY_WRITER = """
    import os, sys, time
    from mmappickle import mmapdict
    path, name, directory = sys.argv[1], sys.argv[2], sys.argv[3]
    m = mmapdict(path)
    open(os.path.join(directory, "ready"), "w").close()
    while not os.path.exists(os.path.join(directory, "go")):
        time.sleep(0.001)
    for i in range(int(sys.argv[4])):
        m[f"{name}-{i}"] = [i, name]
"""


def test_os_fork_beside_the_library(path: str, tmp_path: Path) -> None:
    m = opened(path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # The library's process constructs its mmapdict before ours insert (its constructor
    # writes without the lock), then inserts beside them.
    library = subprocess.Popen(
        [
            library_python(),
            "-c",
            textwrap.dedent(LIBRARY_WRITER),
            path,
            "library",
            str(barrier),
            str(N_INSERTS),
        ],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    while not (barrier / "ready").exists():
        assert library.poll() is None, "the library's process exited early"
        time.sleep(0.002)
    (barrier / "go").touch()
    names = [f"child{child}" for child in range(N_CHILDREN)]
    pids = fork_children(m, names)
    insert_all(m, "parent")
    assert wait_all(pids) == [0] * N_CHILDREN
    assert library.wait(timeout=60) == 0
    check(path, [*names, "parent", "library"])
    count_keys = """
        import json, sys
        from mmappickle import mmapdict
        m = mmapdict(sys.argv[1], True)
        print(json.dumps([len(m.keys()), m["child2-299"], m["library-299"]]))
    """
    expected = [1 + N_INSERTS * (N_CHILDREN + 2), [299, "child2"], [299, "library"]]
    assert run_library(count_keys, path) == expected
