"""The Python library's own damage, made deterministic with the library's own code.

The constructor of `mmappickle.mmapdict` (1.0) checks for a terminator at the end of the file
without the lock and, when there is none, seeks to the end and writes one. A library append
(under the lock) writes the value, the entry head and the trailer, and only then the
terminator. A constructor in another process that runs in between writes its terminator
where the file ended when it looked.

    constructor_race.py append PATH LOOK WRITE AFTER
        writes `before0`, `before1`, then `raced` while a real constructor process runs
        inside the append, then AFTER more entries `after{i}`; prints the values written as
        JSON. The library writes an entry's trailer in two parts (`BININT memo_max POP`, then
        the flag and `POP`); the constructor looks at the end of the file once LOOK parts
        are written, and writes its terminator there once WRITE parts are (0 <= LOOK <=
        WRITE <= 2).
    constructor_race.py construct PATH READY GO
        `mmapdict(PATH)`, pausing between finding the end of the file and writing its
        terminator there: creates READY, waits for GO.
    constructor_race.py keys PATH
        prints what a fresh library reader sees: its sorted keys, or its error.
    constructor_race.py items PATH
        prints every item as the library reads it, then as plain `pickle.load` does.
"""

import io
import json
import os
import subprocess
import sys
import time

import mmappickle.dict as library
from mmappickle import mmapdict


def wait_for(path: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.001)


def construct(path: str, ready: str, go: str) -> None:
    def write(self):
        # The library's `_terminator.write`, with a pause between its look at the end of the
        # file and its write there.
        if self.exists:
            return
        self._file.seek(0, io.SEEK_END)
        open(ready, "w").close()
        wait_for(go)
        self._file.write(self._data)
        self._file.flush()

    library._terminator.write = write
    mmapdict(path)


def append(path: str, look: int, write: int, after: int) -> None:
    values = {"before0": [0, "x"], "before1": {"k": 1.5}}
    m = mmapdict(path)
    for key, value in values.items():
        m[key] = value
    original = library._kvdata._write_if_allowed
    race_dir = os.path.dirname(os.path.abspath(path))
    ready, go = os.path.join(race_dir, "ready"), os.path.join(race_dir, "go")

    def write_if_allowed(self):
        # The library's `_kvdata._write_if_allowed` of a new entry (its trailer in two
        # writes: its `valid` property flushes the first), with a real constructor process
        # let in between them.
        if self._exists or not all(
            x in self._cache for x in ("valid", "key", "data_length", "memomaxidx")
        ):
            return original(self)
        import pickle
        import struct

        self._file.seek(self._offset, io.SEEK_SET)
        key = self.key.encode("utf8", "surrogatepass")
        self._file.write(
            pickle.FRAME
            + struct.pack("<Q", self._frame_length)
            + pickle.SHORT_BINUNICODE
            + struct.pack("<B", len(key))
            + key
        )
        self._file.seek(self.data_length, io.SEEK_CUR)
        parts = [
            pickle.BININT + struct.pack("<i", self.memomaxidx) + pickle.POP,
            pickle.NEWTRUE + pickle.POP,
        ]
        constructor = None
        for written in range(3):
            self._file.flush()
            if written == look:
                constructor = subprocess.Popen(
                    [sys.executable, __file__, "construct", path, ready, go]
                )
                wait_for(ready)
            if written == write:
                open(go, "w").close()
                assert constructor.wait() == 0
            if written < 2:
                self._file.write(parts[written])
        self._exists = True
        self._mmapdict()._terminator.write()

    library._kvdata._write_if_allowed = write_if_allowed
    values["raced"] = [list(range(40)), "raced", 2.5]
    m["raced"] = values["raced"]
    library._kvdata._write_if_allowed = original
    for i in range(after):
        values[f"after{i}"] = f"after {i}"
        m[f"after{i}"] = values[f"after{i}"]
    m._file.close()
    print(json.dumps(values))


def keys(path: str) -> None:
    try:
        print(json.dumps(sorted(mmapdict(path, True).keys())))
    except Exception as error:  # noqa: BLE001 (what the library does is the answer)
        print(json.dumps(f"{type(error).__name__}: {error}"))


def items(path: str) -> None:
    import pickle

    m = mmapdict(path, True)
    with open(path, "rb") as file:
        print(json.dumps([{key: m[key] for key in m.keys()}, pickle.load(file)]))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "append":
        append(args[0], *map(int, args[1:]))
    elif command == "construct":
        construct(*args)
    elif command == "keys":
        keys(args[0])
    elif command == "items":
        items(args[0])
    else:
        raise SystemExit(f"unknown command {command!r}")
