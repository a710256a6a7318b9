"""Read-only mmappickle files over ``http(s)://``, ``s3://`` and ``file://`` URLs.

The file is read by ranged requests through the Rust crate ``mmappickle-remote`` (a block
cache for the entry table and small values; arrays fetched exactly, in parallel pieces,
straight into the buffer numpy wraps). Every request after the first is conditional on the
version first read: a file replaced while it is read raises ``OSError``, never a mix of
versions. S3 credentials and endpoint come from the ``AWS_*`` environment variables.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

from . import _native
from .dict import masked_array

__all__ = ["RemoteDict", "remotedict"]


def _not_writable() -> io.UnsupportedOperation:
    return io.UnsupportedOperation("not writable")


def _array(dtype: str, shape: list[int], raw: bytearray) -> Any:
    """A numpy array over ``raw`` (no copy; writable, as the bytearray is)."""
    import numpy

    return numpy.frombuffer(raw, dtype=numpy.dtype(dtype)).reshape(shape)


class RemoteDict(Mapping[str, Any]):
    """A read-only mapping over a remote mmappickle file: generic values come back through
    ``pickle.loads``, arrays as numpy arrays read into memory (``read_rows`` reads some rows
    only), masked arrays as ``numpy.ma.MaskedArray``.

    :param url: ``http://``, ``https://``, ``s3://`` or ``file://`` URL of the file.
    :param cache_size: the block cache's budget in bytes (64 MiB when ``None``).

    ``close()`` (or leaving a ``with`` block) releases the block cache and the connections;
    arrays already read stay valid.
    """

    def __init__(self, url: str, cache_size: int | None = None) -> None:
        self._native = _native.NativeRemote(url, cache_size)

    @property
    def url(self) -> str:
        return self._native.url()

    @property
    def commit_number(self) -> int:
        return self._native.commit_number()

    def writable(self) -> bool:
        """Always ``False``: a remote file is never written."""
        return False

    def __getitem__(self, key: str) -> Any:
        """The value of ``key``: an array read whole into memory, a masked array as a
        ``numpy.ma.MaskedArray``, anything else through ``pickle.loads``."""
        if not isinstance(key, str):
            raise KeyError(key)
        located = self._native.locate(key)
        if isinstance(located, _native.GenericValue):
            return pickle.loads(located.pickle)
        if isinstance(located, _native.RemoteArray):
            return _array(located.dtype, located.shape, self._native.read_rows(key))
        data = _array(located.data.dtype, located.data.shape, located.data.raw)
        mask = _array(located.mask.dtype, located.mask.shape, located.mask.raw)
        return masked_array(data, mask)

    def array_info(self, key: str) -> tuple[Any, tuple[int, ...]]:
        """``(numpy dtype, shape)`` of the plain array of ``key``, its data not read."""
        import numpy

        located = self._native.locate(key)
        if not isinstance(located, _native.RemoteArray):
            raise ValueError(f"key {key!r} does not hold a plain array")  # noqa: TRY004
        return numpy.dtype(located.dtype), tuple(located.shape)

    def read_rows(self, key: str, start: int, stop: int) -> Any:
        """Rows ``start:stop`` (first axis) of the array of ``key``, fetched without the rest
        of the array (one contiguous byte range: arrays are stored in C order)."""
        dtype, shape = self.array_info(key)
        rows = self._native.read_rows(key, start, stop)
        return _array(dtype, [stop - start, *shape[1:]], rows)

    def transfer(self) -> tuple[int, int]:
        """``(requests, bytes received)`` since the open."""
        return self._native.transfer()

    def __setitem__(self, key: str, value: Any) -> None:
        raise _not_writable()

    def __delitem__(self, key: str) -> None:
        raise _not_writable()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._native.contains(key)

    def keys(self) -> list[str]:  # type: ignore[override]
        """The live keys in file order."""
        return self._native.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self._native.keys())

    def __len__(self) -> int:
        return self._native.len()

    def close(self) -> None:
        """Releases the block cache and the connections; later reads raise ``ValueError``."""
        self._native.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed()

    def __enter__(self) -> RemoteDict:  # noqa: PYI034  (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<RemoteDict {self.url!r} closed>"
        return f"<RemoteDict {self.url!r} entries={len(self)}>"

    def _repr_html_(self) -> str:
        from ._display import html

        return html("RemoteDict", self.url, self._native)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from ._display import pretty

        pretty("RemoteDict", self.url, self._native, printer, cycle)


#: The name of :class:`RemoteDict` in earlier releases.
remotedict = RemoteDict
