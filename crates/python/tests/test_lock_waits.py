"""Two handles of one file in one process, used from two Python threads: one holds the file's
lock across Python code (a ``locked`` callback, a pickler's ``read`` or ``write``) while the
other asks for the lock. The second waits for the file's lock with the GIL released, so the
first runs its Python code, finishes and lets it in: no deadlock. Each scenario runs in a
fresh process with a deadline (its threads' tracebacks printed when it is reached), so a deadlock
fails the test instead of hanging the suite.

A thread that would wait for a lock it holds itself (through another handle) is refused,
and nothing changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from mmappickle import mmapdict

SCENARIO = """
    import faulthandler, os, sys, threading, time
    import numpy as np
    from mmappickle import mmapdict
    from mmappickle.picklers.base import BasePickler

    faulthandler.dump_traceback_later(30, exit=True)
    path, holder_kind, waiter_kind = sys.argv[1:]
    inode = str(os.stat(path).st_ino)
    MARK = b"\\x8c\\x04mark"
    armed, holding, waiter_done = threading.Event(), threading.Event(), threading.Event()

    def waiter_is_blocked():
        # A flock waited for is listed in /proc/locks with "->" (fields: ... dev:inode ...).
        with open("/proc/locks") as locks:
            for fields in map(str.split, locks):
                if "->" in fields and fields[-3].rsplit(":", 1)[-1] == inode:
                    return True
        return False

    def wait_for_waiter():
        # Python code under the holder's lock: it needs the GIL while the waiter waits.
        if not armed.is_set():
            return
        holding.set()
        while not waiter_is_blocked():
            if waiter_done.is_set():
                raise AssertionError("the waiter never waited for the file's lock")
            time.sleep(0.001)

    class Marked:
        pass

    class WaitingPickler(BasePickler):
        priority = 1000

        def is_picklable(self, obj):
            return type(obj) is Marked

        def is_valid(self, offset, length):
            self._file.seek(offset)
            return self._file.read(length) == MARK

        def read(self, offset, length):
            wait_for_waiter()
            return Marked(), length

        def write(self, obj, offset, memo_start_idx=0):
            wait_for_waiter()
            self._file.seek(offset)
            return self._file.write(MARK), memo_start_idx

    holder, waiter = mmapdict(path), mmapdict(path)
    holder["marked"] = Marked()
    holder["old"] = 1
    holders = {
        "locked": lambda: holder._native.locked(wait_for_waiter),
        "pickler read": lambda: holder["marked"],
        "pickler write": lambda: holder.__setitem__("written", Marked()),
    }
    # Each waiter's operation, and what the file holds after it.
    waiters = {
        "insert": (lambda: waiter.__setitem__("new", 2), lambda m: m["new"] == 2),
        "array": (
            lambda: waiter.__setitem__("new", np.arange(2)),
            lambda m: m["new"].tolist() == [0, 1],
        ),
        "update": (lambda: waiter.update({"new": 2, "other": 3}), lambda m: m["other"] == 3),
        "delete": (lambda: waiter.__delitem__("old"), lambda m: "old" not in m),
        "commit number": (
            lambda: setattr(waiter, "commit_number", 7),
            lambda m: m.commit_number == 7,
        ),
        "locked": (lambda: waiter._native.locked(lambda: None), lambda m: m["old"] == 1),
        "read": (lambda: waiter["old"], lambda m: m["old"] == 1),
    }
    waiter_operation, waiter_check = waiters[waiter_kind]
    errors = []

    def run(operation, done):
        try:
            operation()
        except BaseException as error:
            errors.append(repr(error))
        finally:
            done.set()

    armed.set()
    holder_done = threading.Event()
    holder_thread = threading.Thread(target=run, args=(holders[holder_kind], holder_done))
    holder_thread.start()
    while not (holding.is_set() or holder_done.is_set()):
        time.sleep(0.001)
    waiter_thread = threading.Thread(target=run, args=(waiter_operation, waiter_done))
    waiter_thread.start()
    holder_thread.join()
    waiter_thread.join()
    assert errors == [], errors
    armed.clear()
    after = mmapdict(path)
    assert waiter_check(after), waiter_kind
    assert holder_kind != "pickler write" or "written" in after
    print("ok")
"""

SCENARIOS = [
    (holder, waiter)
    for holder in ("locked", "pickler read", "pickler write")
    for waiter in ("insert", "array", "update", "delete", "commit number", "locked", "read")
    # Two shared locks: nobody waits.
    if (holder, waiter) != ("pickler read", "read")
]


@pytest.mark.parametrize(("holder", "waiter"), SCENARIOS)
def test_a_thread_waiting_for_the_lock_lets_the_holder_run(
    path: str, holder: str, waiter: str
) -> None:
    mmapdict(path).close()
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCENARIO), path, holder, waiter],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "ok\n", completed.stdout


def test_a_thread_waiting_for_its_own_lock_is_refused(path: str) -> None:
    first, second = mmapdict(path), mmapdict(path)
    second["k"] = 1
    refused: list[Exception] = []

    def use_the_other_handle() -> None:
        for operation in (
            lambda: second.__setitem__("k", 2),
            lambda: second.update({"k": 3}),
            lambda: second.__delitem__("k"),
            lambda: setattr(second, "commit_number", 9),
            lambda: second._native.locked(lambda: None),
            lambda: second["k"],
        ):
            with pytest.raises(ValueError, match="in this thread") as raised:
                operation()
            refused.append(raised.value)

    first._native.locked(use_the_other_handle)
    assert len(refused) == 6
    assert second["k"] == 1 and mmapdict(path)["k"] == 1
