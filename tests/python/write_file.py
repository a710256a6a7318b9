"""Writes a file with the Python library, from value descriptions.

Usage: python write_file.py FILE INPUT_JSON

INPUT_JSON holds {"entries": [[key, description], ...]}: each value is built
with `describe.build` (plain types, arrays given as
{"ndarray": {"dtype", "shape", "base64"}}, masked arrays as {"masked":
{"data": ..., "mask": ...}}; {"stub": {"dtype", "shape"}} makes an
`EmptyNDArray`) and written in order with `mmappickle.mmapdict(FILE)`.
Used by the byte-identity tests: the Rust crates write the same entries and
the two files must be equal byte for byte.
"""

import json
import os
import sys

import mmappickle
from mmappickle.stubs import EmptyNDArray

from describe import build


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, input_path = sys.argv[1:]
    with open(input_path, encoding="utf-8") as f:
        entries = json.load(f)["entries"]
    if os.path.exists(path):
        os.remove(path)
    m = mmappickle.mmapdict(path)
    for key, description in entries:
        if isinstance(description, dict) and "stub" in description:
            stub = description["stub"]
            m[key] = EmptyNDArray(tuple(stub["shape"]), dtype=stub["dtype"])
        else:
            m[key] = build(description)
    print("ok")


if __name__ == "__main__":
    main()
