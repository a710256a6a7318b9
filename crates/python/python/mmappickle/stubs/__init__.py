"""Stubs: arrays allocated in the file without being allocated in RAM."""

__all__ = []

try:
    from .numpy import EmptyNDArray as EmptyNDArray
except ImportError:  # no numpy
    pass
else:
    __all__.append("EmptyNDArray")
