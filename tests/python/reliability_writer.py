"""A Python writer of the reliability suite's concurrency test.

Usage: python reliability_writer.py FILE PREFIX COUNT

Opens FILE with `mmappickle.mmapdict`, prints `[ready]`, waits until FILE.go
exists (at most a minute) (so that every writer has opened the file before any writes: the
library's constructor checks the terminator without taking the lock), then
for i in 0..COUNT stores key PREFIX-i, replaces it when i % 10 == 3 and
deletes it when i % 10 == 7. The same plan as the Rust writers
(`tests/tests/reliability/workers.rs`, `writer_plan`): a dict holding the same
string object twice (so the pickle uses the memo), or for i % 20 == 5 a
float64 array arange(i, i + 8) times the version.
"""

import os
import sys
import time

import numpy
import mmappickle


def value(prefix, i, version):
    if i % 20 == 5:
        return numpy.arange(i, i + 8, dtype=numpy.float64) * version
    tag = prefix + "-tag"
    return {"writer": prefix, "i": i, "version": version, "tags": [tag, tag]}


def main():
    path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = mmappickle.mmapdict(path)
    print("[ready]", flush=True)
    start = time.monotonic()
    while not os.path.exists(path + ".go"):
        if time.monotonic() - start > 60:
            sys.exit(f"no {path}.go after a minute")  # the parent died: do not linger
        time.sleep(0.001)
    for i in range(count):
        key = f"{prefix}-{i}"
        m[key] = value(prefix, i, 1)
        if i % 10 == 3:
            m[key] = value(prefix, i, 2)
        if i % 10 == 7:
            del m[key]
    print("[done]", flush=True)


if __name__ == "__main__":
    main()
