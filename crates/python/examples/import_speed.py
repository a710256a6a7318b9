"""What a new process pays to use mmappickle: the peers benchmark's row 2b, taken apart.

    python crates/python/examples/import_speed.py [processes] [--file FILE]

Each figure is timed inside new ``python -c`` processes, from after their ``import numpy``
(the interpreter's start and numpy's import vary by more than what is measured), and is the
median (and the fastest) of ``processes`` runs (default 30), the rows in turns: loading the
extension module alone, ``import mmappickle``, then that plus ``mmapdict(FILE, True)``, plus
``.keys()``, and safetensors' ``safe_open(..., "np").keys()`` on the same arrays where
safetensors is installed. Without ``--file``, a file of 64 arrays of 1 MiB and 1,000 small
values is made in a temporary directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from mmappickle import mmapdict

START = "import importlib.util, numpy, time\nstarted = time.perf_counter()\n"
STOP = "\nprint(time.perf_counter() - started)"


def make_file(directory: str) -> tuple[str, str | None]:
    """A file of 64 arrays and 1,000 small values, and the same arrays as safetensors (or
    None without safetensors)."""
    arrays = {f"array{i}": np.full(1 << 17, i, dtype=np.float64) for i in range(64)}
    path = os.path.join(directory, "import_speed.mmdpickle")
    m = mmapdict(path)
    m.update(arrays)
    m.update({f"value{i}": {"index": i, "name": f"scan{i}"} for i in range(1000)})
    m.close()
    if importlib.util.find_spec("safetensors") is None:
        return path, None
    safetensors_path = os.path.join(directory, "import_speed.safetensors")
    importlib.import_module("safetensors.numpy").save_file(arrays, safetensors_path)
    return path, safetensors_path


def rows(path: str, safetensors_path: str | None) -> dict[str, str]:
    native = importlib.util.find_spec("mmappickle._native")
    assert native is not None and native.origin is not None
    found = {
        "extension module alone": "importlib.util.module_from_spec(importlib.util."
        f"spec_from_file_location('mmappickle._native', {native.origin!r}))",
        "import mmappickle": "import mmappickle",
        "import + open": f"from mmappickle import mmapdict\nm = mmapdict({path!r}, True)",
        "import + open + keys": f"from mmappickle import mmapdict\nmmapdict({path!r}, True).keys()",
    }
    if safetensors_path is not None:
        found["safetensors open + keys"] = (
            f"from safetensors import safe_open\nsafe_open({safetensors_path!r}, 'np').keys()"
        )
    return found


def main() -> None:
    args = sys.argv[1:]
    path = None
    if "--file" in args:
        at = args.index("--file")
        path = args[at + 1]
        del args[at : at + 2]
    processes = int(args[0]) if args else 30
    directory = tempfile.mkdtemp()
    try:
        safetensors_path = None
        if path is None:
            path, safetensors_path = make_file(directory)
        codes = rows(path, safetensors_path)
        seconds: dict[str, list[float]] = {row: [] for row in codes}
        for _ in range(processes):
            for row, code in codes.items():
                out = subprocess.run(
                    [sys.executable, "-c", START + code + STOP],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                seconds[row].append(float(out.split()[-1]))
        print(f"after `import numpy`, {processes} processes each:")
        for row, times in seconds.items():
            median, fastest = statistics.median(times) * 1e3, min(times) * 1e3
            print(f"  {row:<26} median {median:5.2f} ms   fastest {fastest:5.2f} ms")
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
