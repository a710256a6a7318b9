"""Describes files of the reliability suite with Python's readers.

Usage: python reliability_describe.py LIST_JSON

LIST_JSON holds [{"path": FILE, "mmapdict": true|false}, ...]. For each file
prints, as one JSON list on standard output, {"pickle": {key: description},
"mmapdict": {key: description} or null}: `pickle.load` of the whole file
(numpy of this interpreter), and `mmappickle.mmapdict(FILE, readonly=True)`
when asked. Descriptions as in `describe.py`. A reader that fails raises:
the Rust side reports Python's traceback.
"""

import gc
import json
import pickle
import sys
import warnings

from describe import describe


def read_pickle(path):
    with open(path, "rb") as f:
        loaded = pickle.load(f)
    assert isinstance(loaded, dict), f"{path}: pickle.load gave a {type(loaded)}"
    return {key: describe(value) for key, value in loaded.items()}


def read_mmapdict(path):
    import mmappickle

    m = mmappickle.mmapdict(path, readonly=True)
    described = {key: describe(m[key]) for key in m.keys()}
    del m
    return described


def main():
    # numpy 1.x warns on binary `fromstring`: the arrays still load.
    warnings.simplefilter("ignore")
    with open(sys.argv[1]) as f:
        files = json.load(f)
    out = []
    for item in files:
        path = item["path"]
        try:
            entry = {"pickle": read_pickle(path), "mmapdict": None}
            if item["mmapdict"]:
                entry["mmapdict"] = read_mmapdict(path)
        except Exception as error:
            raise RuntimeError(f"{path}: {error!r}") from error
        out.append(entry)
        gc.collect()  # memmaps hold the file open: let them go
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
