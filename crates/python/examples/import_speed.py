"""What a new process pays to use mmappickle: the peers benchmark's row 2b, taken apart.

    python crates/python/examples/import_speed.py [processes] [--file FILE] [--against PYTHON]

Each figure is timed inside new ``python -c`` processes, from after their ``import numpy``
(the interpreter's start and numpy's import vary by more than what is measured), and is the
median (and the fastest) of ``processes`` runs (default 30), the rows in turns: loading and
initialising the extension module alone, ``import mmappickle``, then that plus ``mmapdict(FILE, True)``, plus
``.keys()``, and safetensors' ``safe_open(..., "np").keys()`` on the same arrays where
safetensors is installed. Without ``--file``, a file of 64 arrays of 1 MiB and 1,000 small
values is made in a temporary directory.

``--against PYTHON`` times our rows with that interpreter too (another build of the package
in its own environment), each process of one in turn with the same of the other: a change
is measured against what it changes under the same load.
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


FIND_NATIVE = "import importlib.util; print(importlib.util.find_spec('mmappickle._native').origin)"


def native_origin(python: str) -> str:
    """The file of the extension module that ``python`` imports."""
    return subprocess.run(
        [python, "-c", FIND_NATIVE], check=True, capture_output=True, text=True
    ).stdout.strip()


def rows(path: str, native: str) -> dict[str, str]:
    """Our rows, for the interpreter whose extension module is the file ``native``."""
    return {
        "extension module alone": "spec = importlib.util.spec_from_file_location("
        f"'mmappickle._native', {native!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))",
        "import mmappickle": "import mmappickle",
        "import + open": f"from mmappickle import mmapdict\nm = mmapdict({path!r}, True)",
        "import + open + keys": f"from mmappickle import mmapdict\nmmapdict({path!r}, True).keys()",
    }


def timed(python: str, code: str) -> float:
    """Seconds that ``code`` takes in a new process of ``python``, after ``import numpy``."""
    out = subprocess.run(
        [python, "-c", START + code + STOP], check=True, capture_output=True, text=True
    ).stdout
    return float(out.split()[-1])


def main() -> None:
    args = sys.argv[1:]
    options = {}
    for option in ("--file", "--against"):
        if option in args:
            at = args.index(option)
            options[option] = args[at + 1]
            del args[at : at + 2]
    processes = int(args[0]) if args else 30
    pythons = [sys.executable]
    if "--against" in options:
        pythons.append(options["--against"])
    directory = tempfile.mkdtemp()
    try:
        path, safetensors_path = options.get("--file"), None
        if path is None:
            path, safetensors_path = make_file(directory)
        # (row, interpreter) -> code, each row timed with every interpreter in turn;
        # safetensors with this interpreter only.
        ours = {python: rows(path, native_origin(python)) for python in pythons}
        codes = {
            (row, python): ours[python][row] for row in ours[sys.executable] for python in pythons
        }
        if safetensors_path is not None:
            codes["safetensors open + keys", sys.executable] = (
                f"from safetensors import safe_open\nsafe_open({safetensors_path!r}, 'np').keys()"
            )
        seconds: dict[tuple[str, str], list[float]] = {row_python: [] for row_python in codes}
        for _ in range(processes):
            for row_python, code in codes.items():
                seconds[row_python].append(timed(row_python[1], code))
        print(f"after `import numpy`, {processes} processes each:")
        for (row, python), times in seconds.items():
            median, fastest = statistics.median(times) * 1e3, min(times) * 1e3
            label = f"  [{pythons.index(python) + 1}]" if len(pythons) > 1 else ""
            print(f"  {row:<26}{label} median {median:5.2f} ms   fastest {fastest:5.2f} ms")
        if len(pythons) > 1:
            for number, python in enumerate(pythons, 1):
                print(f"  [{number}] {python}")
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
