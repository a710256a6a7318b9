"""The package used as a typed program uses it: ``mypy --strict`` checks this file against
the package's annotations and ``_native.pyi`` (``cargo xtask test --python``), and the test
suite runs it."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import ItemsView, ValuesView
from pathlib import Path

import numpy as np
from mmappickle import RemoteDict, mmapdict
from mmappickle.picklers import BasePickler, GenericPickler
from mmappickle.stubs import EmptyNDArray


def main(directory: Path) -> None:
    path = directory / "typed.mmdpickle"
    with mmapdict(path) as m:
        m["other_key"] = [1, 2, 3]
        m["test"] = np.array([1, 2, 3], dtype=np.uint8)
        m["test_large"] = EmptyNDArray((30, 30))
        keys: list[str] = m.keys()
        values: ValuesView[object] = m.values()
        items: ItemsView[str, object] = m.items()
        assert keys == ["other_key", "test", "test_large"]
        assert len(values) == len(items) == 3
        del m["test_large"]
        m.vacuum()
        picklers: list[BasePickler] = m._picklers
        assert any(isinstance(pickler, GenericPickler) for pickler in picklers)
    with RemoteDict(path.resolve().as_uri()) as remote:
        assert remote["other_key"] == [1, 2, 3]
    print("ok")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else directory))
