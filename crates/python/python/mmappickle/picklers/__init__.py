"""The Python library's picklers, as markers of the kinds of values an mmapdict stores.

``mmapdict(path, picklers=[...])`` restricts what may be written and read: ``GenericPickler``
(any picklable value), ``ArrayPickler`` (numpy arrays, memmaps and stubs),
``MaskedArrayPickler`` (``numpy.ma.MaskedArray``). The format itself is written in Rust.
"""

from .base import BasePickler, GenericPickler

__all__ = ["BasePickler", "GenericPickler"]

try:
    from .numpy import ArrayPickler, MaskedArrayPickler
except ImportError:  # no numpy: generic values only
    pass
else:
    __all__ += ["ArrayPickler", "MaskedArrayPickler"]
