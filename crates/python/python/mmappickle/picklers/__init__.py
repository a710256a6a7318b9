"""The picklers: ``mmapdict(path, picklers=[...])`` selects which store and read values.

``GenericPickler`` (any picklable value), ``ArrayPickler`` (numpy arrays, memmaps and
stubs), ``MaskedArrayPickler`` (``numpy.ma.MaskedArray``), and any subclass of
:class:`BasePickler` written for the Python library (see :mod:`mmappickle.picklers.base`).
As in the library, the numpy picklers are names of this module only where numpy imports
(``import mmappickle`` does not import numpy: they are imported on first use).
"""

from __future__ import annotations

from .base import BasePickler, GenericPickler

__all__ = ["BasePickler", "GenericPickler"]

_NUMPY_PICKLERS = ("ArrayPickler", "MaskedArrayPickler")


def __getattr__(name: str) -> type[BasePickler]:
    if name in _NUMPY_PICKLERS:
        try:
            from . import numpy
        except ImportError:  # no numpy: generic values only
            pass
        else:
            pickler: type[BasePickler] = getattr(numpy, name)
            globals()[name] = pickler
            return pickler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_NUMPY_PICKLERS])
