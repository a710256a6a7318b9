"""A lean import: ``import mmappickle``, opening a file and listing its keys import nothing
the call does not need (no ``pathlib``, no ``typing`` of our own, no ``numpy.ma``, no remote
readers, no module of file objects or of views), in a new process, with and without numpy, and
make no class of the extension module but ``NativeDict``; the rest comes on first use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mmappickle
import numpy as np
from conftest import run_ours
from mmappickle import mmapdict

# What a new process imports, past what it had, to import mmappickle, open a file and list
# its keys: three modules of ours (each costs a new process a fraction of a millisecond), not
# even ``__future__``.
ALLOWED = {"mmappickle", "mmappickle._native", "mmappickle.dict"}

# The classes of ``mmappickle._native`` (those its stub describes), each made on first use.
NATIVE_STUB = (Path(mmappickle.__file__).parent / "_native.pyi").read_text()
NATIVE_CLASSES = set(re.findall(r"^class (\w+)", NATIVE_STUB, re.MULTILINE))

NEW_MODULES = """
    import json, sys
    {first}
    before = set(sys.modules)
    from mmappickle import mmapdict
    made_by_import = sorted(vars(sys.modules["mmappickle._native"]))
    m = mmapdict(sys.argv[1], True)
    keys = m.keys()
    print(json.dumps({{"keys": keys, "new": sorted(set(sys.modules) - before),
                      "loaded": sorted(sys.modules), "made_by_import": made_by_import,
                      "made": sorted(vars(sys.modules["mmappickle._native"]))}}))
"""


def new_modules(path: str, first: str) -> dict:
    completed = run_ours(NEW_MODULES.format(first=first), path)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_open_and_keys_import_only_the_package(path: str) -> None:
    assert {"NativeDict", "ArrayPlace", "UnsafeValueError"} <= NATIVE_CLASSES
    m = mmapdict(path)
    m.update({"text": "x", "array": np.arange(3), "masked": np.ma.MaskedArray([1, 2])})
    m.close()
    after_numpy = new_modules(path, "import numpy")
    assert after_numpy["keys"] == ["text", "array", "masked"]
    assert set(after_numpy["new"]) <= ALLOWED, after_numpy["new"]
    # Without numpy, numpy stays out, and so does typing.
    alone = new_modules(path, "")
    assert set(alone["new"]) - ALLOWED <= {
        "_collections",
        "_compat_pickle",
        "_operator",
        "_pickle",
        "_struct",
        "collections",
        "collections.abc",
        "copyreg",
        "functools",
        "itertools",
        "keyword",
        "operator",
        "pickle",
        "reprlib",
        "struct",
        "weakref",
        "_weakrefset",
        "types",
        "_functools",
        "re",
        "re._casefix",
        "re._compiler",
        "re._constants",
        "re._parser",
        "_sre",
        "enum",
        "copy",
        "org",
        "org.python",
        "org.python.core",
    }, alone["new"]
    for module in ("numpy", "typing", "pathlib", "numpy.ma", "dask", "mmappickle.remote"):
        assert module not in alone["loaded"], module
        assert module not in after_numpy["new"], module
    for run in (after_numpy, alone):
        assert not NATIVE_CLASSES & set(run["made_by_import"]), run["made_by_import"]
        assert NATIVE_CLASSES & set(run["made"]) == {"NativeDict"}, run["made"]


def test_native_classes_come_on_first_use(path: str) -> None:
    completed = run_ours(
        """
        import json, pickle, sys
        import mmappickle
        from mmappickle import _native, mmapdict
        m = mmapdict(sys.argv[1])
        m["array"] = __import__("numpy").arange(3)
        located = m._native.locate("array")
        error = mmappickle.UnsafeValueError("refused")
        try:
            _native.Nothing
        except AttributeError as missing:
            missing_message = str(missing)
        print(json.dumps({
            "is_place": isinstance(located, _native.ArrayPlace),
            "same_type": type(located) is _native.ArrayPlace,
            "imported": __import__("mmappickle._native", fromlist=["NewStub"]).NewStub
                is _native.NewStub,
            "error_same": mmappickle.UnsafeValueError is _native.UnsafeValueError,
            "error_round_trip": type(pickle.loads(pickle.dumps(error))).__name__,
            "listed": sorted(set(dir(_native)) & set(sys.argv[2:])),
            "missing": missing_message,
        }))
        """,
        path,
        *sorted(NATIVE_CLASSES),
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {
        "is_place": True,
        "same_type": True,
        "imported": True,
        "error_same": True,
        "error_round_trip": "UnsafeValueError",
        "listed": sorted(NATIVE_CLASSES),
        "missing": "module 'mmappickle._native' has no attribute 'Nothing'",
    }


def test_remote_readers_come_on_first_use() -> None:
    completed = run_ours(
        """
        import sys
        import mmappickle
        assert "mmappickle.remote" not in sys.modules
        from mmappickle import RemoteDict, httpdict
        assert mmappickle.RemoteDict is RemoteDict is mmappickle.remote.RemoteDict
        assert httpdict is mmappickle.http.httpdict
        try:
            mmappickle.nothing
        except AttributeError as error:
            print(error)
        """
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "module 'mmappickle' has no attribute 'nothing'"
