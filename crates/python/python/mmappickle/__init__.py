"""mmappickle: a dict stored in a file that is at once a pickle of the dict and a store of
memory-mapped numpy arrays.

A drop-in for the Python library ``mmappickle`` 1.0 (same file format, same API), built on
the Rust crates of mmappickle-rs: the file format lives in Rust (``mmappickle._native``);
this package is the glue (``pickle.dumps``/``loads`` of generic values, ``numpy.memmap``
of arrays). numpy is optional: without it, generic values only.

``import mmappickle`` imports what a local ``mmapdict`` needs; the remote readers
(``RemoteDict``, ``httpdict``, ``remote``) are imported on first use, and
``UnsafeValueError`` is made on first use (as every class of ``mmappickle._native``).
"""

from ._native import __version__
from .dict import mmapdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import remote
    from ._native import UnsafeValueError
    from .http import httpdict
    from .remote import RemoteDict

__all__ = ["RemoteDict", "UnsafeValueError", "__version__", "httpdict", "mmapdict", "remote"]


def __getattr__(name: str) -> object:
    value: object
    if name == "remote":
        from . import remote

        value = remote
    elif name == "RemoteDict":
        from .remote import RemoteDict

        value = RemoteDict
    elif name == "UnsafeValueError":
        from ._native import UnsafeValueError

        value = UnsafeValueError
    elif name == "httpdict":
        from .http import httpdict

        value = httpdict
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
