"""``EmptyNDArray``: a stub of a numpy array, stored in constant time and memory."""

from __future__ import annotations

from typing import Any

import numpy


class EmptyNDArray:
    """A stub of an empty :class:`numpy.ndarray`.

    Stored in an :class:`mmappickle.mmapdict`, it becomes an array of ``shape`` and ``dtype``
    whose data is a hole in the file: no RAM, no disk until written, zeros when read.

    :param shape: shape of the array (an int or a tuple of ints)
    :param dtype: element type (anything ``numpy.dtype`` accepts; ``float`` by default)
    """

    def __init__(self, shape: Any, dtype: Any = float) -> None:
        self._shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        self._dtype: numpy.dtype[Any] = numpy.dtype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the array."""
        return self._shape

    @property
    def dtype(self) -> numpy.dtype[Any]:
        """The element type of the array."""
        return self._dtype

    def __repr__(self) -> str:
        return f"EmptyNDArray({self._shape!r}, dtype={self._dtype})"
