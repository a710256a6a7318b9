"""picklers=: the kinds of values that may be stored and read."""

from __future__ import annotations

import numpy as np
import pytest
from mmappickle import mmapdict
from mmappickle.picklers import ArrayPickler, GenericPickler, MaskedArrayPickler
from mmappickle.picklers.base import BasePickler


def test_no_pickler_refuses_everything(path: str) -> None:
    full = mmapdict(path)
    full["v"] = 1
    full["a"] = np.arange(3)
    m = mmapdict(path, picklers=[])
    for value in (1, np.arange(3), np.ma.MaskedArray([1])):
        with pytest.raises(TypeError):
            m["x"] = value
    for key in ("v", "a"):
        with pytest.raises(ValueError):
            m[key]
    assert "x" not in m


def test_array_pickler_only(path: str) -> None:
    m = mmapdict(path, picklers=[ArrayPickler])
    m["a"] = np.arange(3)
    assert isinstance(m["a"], np.memmap)
    with pytest.raises(TypeError):
        m["v"] = [1]
    with pytest.raises(TypeError):
        m["masked"] = np.ma.MaskedArray([1])
    both = mmapdict(path, picklers=[GenericPickler, MaskedArrayPickler])
    both["masked"] = np.ma.MaskedArray([1, 2], mask=[True, False])
    both["v"] = [1]
    with pytest.raises(ValueError):
        both["a"]


def test_custom_picklers_are_refused(path: str) -> None:
    class Custom(BasePickler):
        pass

    with pytest.raises(TypeError, match="unsupported pickler"):
        mmapdict(path, picklers=[Custom])
    with pytest.raises(TypeError):
        mmapdict(path, picklers=[object])
