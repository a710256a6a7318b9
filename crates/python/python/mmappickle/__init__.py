"""mmappickle: a dict stored in a file that is at once a pickle of the dict and a store of
memory-mapped numpy arrays.

A drop-in for the Python library ``mmappickle`` 1.0 (same file format, same API), built on
the Rust crates of mmappickle-rs: the file format lives in Rust (``mmappickle._native``);
this package is the glue (``pickle.dumps``/``loads`` of generic values, ``numpy.memmap``
of arrays). numpy is optional: without it, generic values only.
"""

from . import remote
from ._native import UnsafeValueError, __version__
from .dict import mmapdict
from .http import httpdict
from .remote import RemoteDict

__all__ = ["RemoteDict", "UnsafeValueError", "__version__", "httpdict", "mmapdict", "remote"]
