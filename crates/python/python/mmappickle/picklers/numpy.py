"""The picklers of numpy arrays and masked arrays (markers: the format is written in Rust)."""

import numpy  # noqa: F401  (as in the Python library: this module needs numpy)

from .base import BasePickler


class ArrayPickler(BasePickler):
    """``numpy.ndarray``, ``numpy.memmap`` and ``EmptyNDArray`` stubs, stored memory-mappable."""

    kind = "array"
    priority = 100


class MaskedArrayPickler(BasePickler):
    """``numpy.ma.MaskedArray``: data and mask both memory-mappable."""

    kind = "masked"
    priority = 100
