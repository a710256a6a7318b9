"""How fast 10,000 small values go in and out, against plain pickle of the same dict.

    python crates/python/examples/bulk_speed.py [runs] [--import FILE]

Each row times ours and pickle back to back, ``runs`` times (default 21), and prints the
medians and the median of the ratios (CPU time of this thread, which a loaded machine
disturbs less, and wall time): ``m.update(d)`` against ``pickle.dump(d, f)``,
``dict(m.items())`` against ``pickle.load(f)``, 1,000 ``m[k]`` against 1,000
``pickle.loads`` of each value's own pickle. The values are ints, floats, short strings,
small lists and dicts, one in 100 a numpy scalar. With ``--import FILE``: the time a new
process takes, after ``import numpy``, to import mmappickle, open FILE and list its keys
(median of 50 processes).
"""

from __future__ import annotations

import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mmappickle import mmapdict


def small_value(i: int) -> Any:
    if i % 100 == 99:
        return np.float64(i) if i % 200 == 99 else np.int32(i)
    return [i, i * 0.25, f"value {i}", [i, i + 1, "x"], {"gain": i * 0.5, "name": f"scan{i}"}][
        i % 5
    ]


def paired(ours: Callable[[], object], theirs: Callable[[], object], runs: int) -> str:
    samples: dict[str, list[float]] = {name: [] for name in ("ours", "theirs", "cpu", "wall")}
    for _ in range(runs):
        times = {}
        for name, body in (("theirs", theirs), ("ours", ours)):
            cpu, wall = time.thread_time(), time.perf_counter()
            body()
            times[name] = (time.thread_time() - cpu, time.perf_counter() - wall)
        samples["ours"].append(times["ours"][1])
        samples["theirs"].append(times["theirs"][1])
        samples["cpu"].append(times["ours"][0] / times["theirs"][0])
        samples["wall"].append(times["ours"][1] / times["theirs"][1])
    median = {name: statistics.median(values) for name, values in samples.items()}
    return (
        f"ours {median['ours'] * 1e3:7.2f} ms, theirs {median['theirs'] * 1e3:6.2f} ms (wall); "
        f"ratio {median['cpu']:.2f}x cpu, {median['wall']:.2f}x wall"
    )


def bulk(runs: int) -> None:
    d = {f"key{i}": small_value(i) for i in range(10_000)}
    directory = tempfile.mkdtemp()
    pickled, path = os.path.join(directory, "d.pickle"), os.path.join(directory, "d.mmdpickle")

    def dump() -> None:
        with open(pickled, "wb") as f:
            pickle.dump(d, f, 4)

    def load() -> object:
        with open(pickled, "rb") as f:
            return pickle.load(f)

    def update() -> None:
        if os.path.exists(path):
            os.remove(path)
        with mmapdict(path) as m:
            m.update(d)

    try:
        print("m.update(d) / pickle.dump(d, f):  ", paired(update, dump, runs))
        m = mmapdict(path, True)
        assert dict(m.items()) == d
        print("dict(m.items()) / pickle.load(f): ", paired(lambda: dict(m.items()), load, runs))
        keys = list(d)[::10]
        pickles = {key: pickle.dumps(d[key], 4) for key in keys}
        print(
            "1,000 m[k] / pickle.loads:        ",
            paired(
                lambda: [m[key] for key in keys],
                lambda: [pickle.loads(pickles[key]) for key in keys],
                runs,
            ),
        )
        m.close()
    finally:
        shutil.rmtree(directory)


def new_process(path: str, runs: int = 50) -> None:
    code = (
        "import numpy, time\n"
        "start = time.perf_counter()\n"
        "from mmappickle import mmapdict\n"
        f"mmapdict({path!r}, True).keys()\n"
        "print(time.perf_counter() - start)\n"
    )
    seconds = [
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout)
        for _ in range(runs)
    ]
    print(
        f"import mmappickle + open + keys() after import numpy: median "
        f"{statistics.median(seconds) * 1e3:.2f} ms, least {min(seconds) * 1e3:.2f} ms "
        f"({runs} processes)"
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--import"]:
        new_process(arguments[1])
    else:
        bulk(int(arguments[0]) if arguments else 21)
