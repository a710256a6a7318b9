"""Checks a file written by the Rust crates with a Python reader.

Usage: python check_file.py MODE FILE EXPECTED_JSON

MODE is one of
  mmapdict  read with `mmappickle.mmapdict(FILE, readonly=True)`: the keys in
            file order, every value, arrays (and the data and mask of masked
            arrays) come back as `numpy.memmap`, the commit number if given;
  pickle    read the whole file with plain `pickle.load`: keys in order and
            every value (works with any numpy that can load the values).

EXPECTED_JSON holds {"entries": [[key, description], ...], "commit_number": n,
"mmapdict_skip": [key, ...]} ("commit_number" and "mmapdict_skip" optional;
the latter lists keys that the library writes but cannot read back, such as
0-d arrays: mmapdict mode checks that they are present, not their values).
Descriptions as in `describe.py`. Prints `ok` and
exits 0 when everything matches; otherwise raises with what differed.
"""

import json
import pickle
import sys
import warnings

from describe import describe


def compare(entries, expected):
    keys = [key for key, _ in entries]
    expected_keys = [key for key, _ in expected]
    assert keys == expected_keys, f"keys differ: read {keys}, expected {expected_keys}"
    for (key, value), (_, description) in zip(entries, expected):
        got = describe(value)
        assert got == description, f"key {key!r}: read {got}, expected {description}"


def check_mmapdict(path, expected, commit_number, skip):
    import numpy
    import mmappickle

    m = mmappickle.mmapdict(path, readonly=True)
    keys = list(m.keys())
    expected_keys = [key for key, _ in expected]
    assert keys == expected_keys, f"keys differ: read {keys}, expected {expected_keys}"
    entries = [(key, m[key]) for key in keys if key not in skip]
    compare(entries, [entry for entry in expected if entry[0] not in skip])
    for key, value in entries:
        if isinstance(value, numpy.ma.MaskedArray):
            parts = [value.data, value.mask]
        elif isinstance(value, numpy.ndarray):
            parts = [value]
        else:
            continue
        for part in parts:
            # `.data` of a masked array is a view: its base is the memmap.
            mapped = part if isinstance(part, numpy.memmap) else getattr(part, "base", None)
            assert isinstance(mapped, numpy.memmap), f"key {key!r}: {type(part)} is not a memmap"
    if commit_number is not None:
        assert m.commit_number == commit_number, (
            f"commit number {m.commit_number}, expected {commit_number}")


def check_pickle(path, expected):
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 deprecates binary fromstring
        loaded = pickle.load(f)
    assert type(loaded) is dict, f"the file loads as {type(loaded)}, not a dict"
    compare(list(loaded.items()), expected)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    mode, path, expected_path = sys.argv[1:]
    with open(expected_path, encoding="utf-8") as f:
        spec = json.load(f)
    if mode == "mmapdict":
        check_mmapdict(path, spec["entries"], spec.get("commit_number"),
                       set(spec.get("mmapdict_skip", [])))
    elif mode == "pickle":
        check_pickle(path, spec["entries"])
    else:
        sys.exit(f"unknown mode {mode!r}\n{__doc__}")
    print("ok")


if __name__ == "__main__":
    main()
