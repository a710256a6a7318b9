"""The Python library's picklers, as markers of the kinds of values an mmapdict stores.

``mmapdict(path, picklers=[...])`` restricts what may be written and read: ``GenericPickler``
(any picklable value), ``ArrayPickler`` (numpy arrays, memmaps and stubs),
``MaskedArrayPickler`` (``numpy.ma.MaskedArray``). The format itself is written in Rust.
The numpy picklers are imported on first use (``import mmappickle`` does not import numpy).
"""

from __future__ import annotations

from .base import BasePickler, GenericPickler

__all__ = ["BasePickler", "GenericPickler"]

_NUMPY_PICKLERS = ("ArrayPickler", "MaskedArrayPickler")


def __getattr__(name: str) -> type:
    if name in _NUMPY_PICKLERS:
        try:
            from . import numpy
        except ImportError:  # no numpy: generic values only
            pass
        else:
            pickler = globals()[name] = getattr(numpy, name)
            return pickler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_NUMPY_PICKLERS])
