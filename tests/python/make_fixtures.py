"""Writes the conformance fixtures with the real Python mmappickle 1.0.

Usage: python make_fixtures.py OUTPUT_DIR

Run through `cargo xtask fixtures` (regenerate `tests/fixtures/`) or
`cargo xtask fixtures --check` (regenerate into a temporary directory and
compare byte for byte). Needs mmappickle==1.0 and numpy==1.23.5 (the
`target/py-mmappickle` environment). Deterministic: fixed data, fixed dates,
sets of ints only, PYTHONHASHSEED fixed by the caller anyway.

Besides the `.mmdpickle` files it writes `manifest.json` (what each file must
contain, as `describe.py` descriptions) and `README.md`.
"""

import collections
import datetime
import json
import os
import pickle
import sys
import warnings

import numpy
import mmappickle
from mmappickle.stubs import EmptyNDArray

from describe import describe

COMMAND = "cargo xtask fixtures"


class Recorder:
    """An mmapdict plus what it must contain, kept in step with every change."""

    def __init__(self, path):
        self.path = path
        self.dict = mmappickle.mmapdict(path)
        self.expected = {}

    def __setitem__(self, key, value):
        self.dict[key] = value
        self.expected[key] = value

    def __delitem__(self, key):
        del self.dict[key]
        del self.expected[key]

    def manifest(self, about):
        entries = []
        deleted = []
        for kv in self.dict._kv_all:  # file order, deleted entries included
            if kv.valid:
                entries.append([kv.key, describe(self.expected[kv.key])])
            else:
                deleted.append(kv.key)
        unreadable = []
        for key, value in self.expected.items():
            try:
                read_back = self.dict[key]
            except Exception:  # the library writes these but cannot read them back
                unreadable.append(key)
                continue
            # The description must hold for what the library reads, too.
            assert describe(read_back) == describe(value), key
        # And for plain pickle.load of the whole file (which turns a 0-d mask
        # into a full one: only the keys are compared for what mmapdict
        # cannot read).
        self.dict._file.flush()
        with open(self.path, "rb") as f:
            loaded = pickle.load(f)
        assert list(loaded) == [key for key, _ in entries], self.path
        for key, description in entries:
            if key not in unreadable:
                assert describe(loaded[key]) == description, (self.path, key)
        return {
            "about": about,
            "commit_number": self.dict.commit_number,
            "entries": entries,
            "deleted": deleted,
            "python_mmapdict_cannot_read": unreadable,
        }


def generic_values():
    # No shared sub-objects here (see shared.mmdpickle): the Rust side
    # re-encodes these entries and expects the very same bytes.
    return {
        "none": None,
        "true": True,
        "false": False,
        "zero": 0,
        "small": 7,
        "byte_max": 255,
        "int2": 65535,
        "negative": -1,
        "negative_big": -123456789,
        "i32_max": 2**31 - 1,
        "i32_over": 2**31,
        "safe_edge": 2**53,
        "i64_max": 2**63 - 1,
        "i64_min": -(2**63),
        "u64_over": 2**64,
        "huge": 10**40,
        "huge_negative": -(10**40),
        "float_zero": 0.0,
        "float_negative_zero": -0.0,
        "float": 1.5,
        "float_tiny": -2.25e-300,
        "float_big": 1e300,
        "float_pi": 3.141592653589793,
        "nan": float("nan"),
        "inf": float("inf"),
        "negative_inf": float("-inf"),
        "str_empty": "",
        "str": "hello",
        "str_non_ascii": "héllo wörld ∑ 日本語 🎉",
        "str_long": "long " * 60,
        "bytes_empty": b"",
        "bytes": b"\x00\x01\xfe\xff",
        "bytes_long": bytes(range(256)) + b"tail",
        "bytearray": bytearray(b"mutable"),
        "list_empty": [],
        "list": [1, "a", None, 2.5],
        "list_nested": [[1, [2, [3, []]]], ["x"]],
        "list_1001": list(range(1001)),
        "tuple_empty": (),
        "tuple1": (1,),
        "tuple2": (1, "b"),
        "tuple3": (1, "b", None),
        "tuple4": (1, 2, 3, 4),
        "dict_empty": {},
        "dict_nested": {"a": {"b": {"c": [1, 2, {"d": None}]}}, 1: "int key", (1, 2): "tuple key"},
        "dict_1001": {i: -i for i in range(1001)},
        "set_empty": set(),
        "set": {3, 1, 2},
        "frozenset_empty": frozenset(),
        "frozenset": frozenset({5, 4}),
        "datetime": datetime.datetime(2021, 3, 4, 5, 6, 7, 890123),
        "date": datetime.date(2020, 2, 29),
        "ordered_dict": collections.OrderedDict([("z", 1), ("a", 2)]),
        "complex": complex(1.5, -2.0),
        "global_class": collections.OrderedDict,
        "global_function": len,
    }


def fixture_empty(rec):
    return rec.manifest("an empty dict: header and terminator only")


def fixture_generic(rec):
    for key, value in generic_values().items():
        rec[key] = value
    return rec.manifest("generic (non-array) values, one per key")


def fixture_shared(rec):
    shared = [1, 2]
    rec["shared_list"] = {"x": shared, "y": shared, "t": (shared, shared)}
    text = "shared string"
    rec["shared_str"] = [text, text]
    strings = [f"s{i:03d}" for i in range(300)]
    rec["long_memo"] = {"forward": {f"k{i:03d}": s for i, s in enumerate(strings)}, "again": strings}
    after = ["after"]
    rec["after_long_memo"] = [after, after]  # memo starts above 255: LONG_BINPUT in a small value
    return rec.manifest("shared sub-objects: BINPUT/BINGET, LONG_BINPUT/LONG_BINGET, memo numbered across entries")


def fixture_arrays(rec):
    for name in ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "float16", "float32", "float64", "complex64", "complex128"]:
        values = numpy.arange(-3, 3) * 7 + 1
        if name == "bool":
            rec[name] = values % 3 == 0
        elif name.startswith("complex"):
            rec[name] = (values + 0.5j * values).astype(name)
        else:
            rec[name] = values.astype(name)
    rec["big_endian_i4"] = numpy.arange(-2, 3, dtype=">i4")
    rec["big_endian_f8"] = numpy.linspace(-1, 1, 5).astype(">f8")
    rec["unicode"] = numpy.array(["a", "héllo", "xyz12"], dtype="<U5")
    rec["zero_d"] = numpy.array(42, dtype="int64")
    rec["shape_0x3"] = numpy.zeros((0, 3), dtype="float64")
    rec["three_d"] = numpy.arange(24, dtype="int32").reshape(2, 3, 4)
    rec["eight_d"] = numpy.arange(48, dtype="int16").reshape(2, 1, 2, 1, 2, 1, 2, 3)
    rec["fortran"] = numpy.asfortranarray(numpy.arange(12, dtype="float64").reshape(3, 4))
    rec["non_contiguous"] = numpy.arange(40, dtype="int32").reshape(4, 10)[::2, 1::3]
    rec["dim_bigger_than_65535"] = numpy.arange(65536, dtype="uint16").astype("uint8")
    rec["dim_bigger_than_255"] = numpy.arange(300, dtype="int8")
    rec["generic_after_arrays"] = "still generic"
    return rec.manifest("arrays of every basic dtype, byte orders, unicode, 0-d, empty, 3-d, 8-d, Fortran order, slices")


def fixture_masked(rec):
    rec["masked"] = numpy.ma.array([1.0, 2.0, 3.0, 4.0], mask=[0, 1, 0, 1])
    rec["masked_2d"] = numpy.ma.array(numpy.arange(6, dtype="int32").reshape(2, 3),
                                      mask=[[1, 0, 0], [0, 0, 1]])
    rec["masked_no_mask"] = numpy.ma.array([1, 2, 3], dtype="int16")
    return rec.manifest("masked arrays, with a mask and without one (0-d mask)")


def fixture_stub(rec):
    rec["before"] = "before the stub"
    rec["stub"] = EmptyNDArray((10, 10), dtype="float64")
    rec["stub_int32"] = EmptyNDArray((3, 4), dtype="int32")
    rec["after"] = "after the stub"
    return rec.manifest("EmptyNDArray stubs: zeros never written (holes)")


def fixture_keys(rec):
    rec["clé ünïcødé 日本"] = 1
    rec["k" * 255] = 2
    rec["é" * 127 + "x"] = 3  # 255 bytes of UTF-8
    rec[""] = 4
    rec["🎉"] = 5
    return rec.manifest("non-ASCII, 255-byte and empty keys")


def edits(rec):
    shared = ["shared"]
    rec["a"] = 1
    rec["uses_memo"] = [shared, shared]
    rec["b"] = [1, 2]
    del rec["uses_memo"]  # its memo indices stay taken
    rec["c"] = "three"
    rec["c"] = "THREE"  # replace: delete + append
    rec["array"] = numpy.arange(4, dtype="int64")
    rec["array"] = numpy.arange(4, dtype="int64") * 10
    again = ["again"]
    rec["after"] = [again, again]


def fixture_deleted(rec):
    edits(rec)
    return rec.manifest("deleted and replaced keys (generic and array), not vacuumed")


def fixture_vacuumed(rec):
    edits(rec)
    rec.dict.vacuum()
    return rec.manifest("the edits of deleted.mmdpickle, then vacuum")


def fixture_converted(rec_path):
    plain = {"a": 1, "b": [1, 2], "array": numpy.arange(5, dtype="float32"), "s": "text"}
    with open(rec_path, "wb") as f:
        pickle.dump(plain, f, protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Converting to new format..."
        rec = Recorder(rec_path)
    rec.expected = dict(plain)
    return rec.manifest("a plain pickle.dump of a dict, converted by opening it with mmapdict")


def fixture_many(rec):
    for i in range(300):
        rec[f"key{i:03d}"] = i if i % 2 else f"value {i}"
    rec["key007"] = "replaced"
    return rec.manifest("more than 256 entries")


FIXTURES = [
    ("empty.mmdpickle", fixture_empty),
    ("generic.mmdpickle", fixture_generic),
    ("shared.mmdpickle", fixture_shared),
    ("arrays.mmdpickle", fixture_arrays),
    ("masked.mmdpickle", fixture_masked),
    ("stub.mmdpickle", fixture_stub),
    ("keys.mmdpickle", fixture_keys),
    ("deleted.mmdpickle", fixture_deleted),
    ("vacuumed.mmdpickle", fixture_vacuumed),
    ("converted.mmdpickle", None),
    ("many.mmdpickle", fixture_many),
]

README = """# Fixtures made by the Python library

Generated, do not edit: every file here is written by
`tests/python/make_fixtures.py` with mmappickle {mmappickle} and numpy {numpy}.
Made by:

    {command}

`cargo xtask fixtures --check` (part of `cargo xtask test`) regenerates them in
a temporary directory and fails if a byte differs. `manifest.json` says what
each file contains: per file, its live entries in file order (key and value
description, see `tests/python/describe.py`), its deleted keys, its commit
number, and the keys that the Python library writes but cannot read back.
"""


def format_manifest(manifest):
    """JSON with one line per entry: readable, and diffs stay small."""
    def dump(value):
        return json.dumps(value, ensure_ascii=False)

    files = []
    for name, record in manifest["files"].items():
        fields = []
        for field, value in record.items():
            if field == "entries" and value:
                lines = ",\n".join("        " + dump(entry) for entry in value)
                fields.append(f'      "entries": [\n{lines}\n      ]')
            else:
                fields.append(f"      {dump(field)}: {dump(value)}")
        files.append(f"    {dump(name)}: {{\n" + ",\n".join(fields) + "\n    }")
    head = [f"  {dump(k)}: {dump(v)}" for k, v in manifest.items() if k != "files"]
    body = ",\n".join(files)
    return "{\n" + ",\n".join(head) + f',\n  "files": {{\n{body}\n  }}\n}}\n'


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    manifest = {"command": COMMAND, "generator": "tests/python/make_fixtures.py",
                "mmappickle": "1.0", "numpy": numpy.__version__, "files": {}}
    for name, make in FIXTURES:
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            os.remove(path)
        if make is None:
            record = fixture_converted(path)
        else:
            rec = Recorder(path)
            record = make(rec)
            rec.dict._file.close()
        manifest["files"][name] = record
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        f.write(format_manifest(manifest))
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(README.format(mmappickle="1.0", numpy=numpy.__version__, command=COMMAND))


if __name__ == "__main__":
    main()
