"""Reads of one mmapdict from several Python threads run in parallel, the GIL released: no
lock around the whole native handle. Counted by the handle itself (the most reads that ever
ran in it at once), never by wall-clock time."""

from __future__ import annotations

import fcntl
import os
import threading

from mmappickle import mmapdict


def test_reads_of_several_threads_overlap_in_the_handle(path: str) -> None:
    m = mmapdict(path)
    m.update({f"k{i}": i for i in range(100)})
    results: list[list[str]] = []
    answered: list[str] = []
    # Another open file description holds the exclusive lock: each read waits for the file
    # inside the handle. Every thread's read gets in (they overlap there); none is queued
    # behind a lock of the whole handle.
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    threads = [threading.Thread(target=lambda: results.append(m.keys())) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        while m._native.parallel_reads() < 4:
            # The handle answers what needs no file lock meanwhile.
            answered.append(os.fspath(m._native.path()))
            threading.Event().wait(0.001)
        waited = list(results)
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    for thread in threads:
        thread.join()
    assert waited == [] and set(answered) <= {path}
    assert results == [[f"k{i}" for i in range(100)]] * 4


def test_free_running_reads_overlap(path: str) -> None:
    m = mmapdict(path)
    m.update({f"key number {i}": i for i in range(20_000)})
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def read() -> None:
        barrier.wait()
        total = 0
        for _ in range(30):
            if m._native.parallel_reads() >= 2:
                break
            total += len(m.keys())
        counts.append(total)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert m._native.parallel_reads() >= 2, counts


def test_a_writer_thread_beside_reader_threads(path: str) -> None:
    m = mmapdict(path)
    m["start"] = 0
    stop = threading.Event()
    seen: list[list[int]] = [[], [], []]

    errors: list[BaseException] = []

    def read(lengths: list[int]) -> None:
        try:
            while not stop.is_set():
                keys = m.keys()
                lengths.append(len(keys))
                assert keys[0] == "start" and m[keys[-1]] is not None
        except BaseException as error:  # noqa: BLE001  (reported by the test's thread)
            errors.append(error)

    readers = [threading.Thread(target=read, args=(lengths,)) for lengths in seen]
    for reader in readers:
        reader.start()
    try:
        for i in range(300):
            m[f"k{i}"] = i
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert len(m) == 301 and m["k299"] == 299
    # Each reader saw the key set grow, one whole insert at a time.
    for lengths in seen:
        assert lengths == sorted(lengths) and all(1 <= n <= 301 for n in lengths)
