"""Dask arrays over mmappickle arrays, local or remote: each chunk is read by the worker
that computes it (a map of the local file, or a ranged request of exactly its bytes), and
written by the worker that computes it (``pwrite`` into the file, which the workers share).

Needs ``dask[array]``; ``import mmappickle`` does not import this module.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
from typing import Any

import dask.array
from dask.base import tokenize

from . import _native
from .remote import RemoteDict

__all__ = ["MmapDictTarget", "from_mmapdict", "to_mmapdict"]


def _is_url(source: str) -> bool:
    return source.startswith(_native.URL_SCHEMES)


@functools.lru_cache(maxsize=16)
def _opened(source: str) -> Any:
    """The file ``source`` names, opened once per process (each worker opens its own)."""
    if _is_url(source):
        return RemoteDict(source)
    from .dict import mmapdict

    return mmapdict(source, readonly=True)


def _read_chunk(source: str, key: str, index: tuple[slice, ...]) -> Any:
    """The chunk ``index`` (a slice per axis) of the array of ``key`` in ``source``."""
    import numpy

    opened = _opened(source)
    if isinstance(opened, RemoteDict):
        rows, rest = index[0], index[1:]
        within: tuple[slice, ...] = (slice(None), *rest)
        return opened.read_rows(key, rows.start, rows.stop)[within]
    # A copy: the chunk does not keep the map alive, nor see later changes of the file.
    return numpy.array(opened[key][index])


def from_mmapdict(source: str | os.PathLike[str], key: str, chunks: Any = "auto") -> Any:
    """The array of ``key`` in the mmappickle file ``source`` (a path, or an ``http(s)://``,
    ``s3://``, ``file://`` URL) as a ``dask.array.Array`` whose chunks are read where they
    are computed.

    A remote chunk is one ranged read of the rows it covers (arrays are stored in C order):
    chunk the first axis only to read each byte once (chunks split along other axes read
    their rows whole and keep their columns).
    """
    if not (isinstance(source, str) and _is_url(source)):
        source = os.path.abspath(os.fspath(source))
    opened = _opened(source)
    if isinstance(opened, RemoteDict):
        dtype, shape = opened.array_info(key)
    else:
        array = opened[key]
        dtype, shape = array.dtype, array.shape
    if not shape:
        raise ValueError(f"key {key!r} holds a 0-d array: nothing to chunk")
    chunks = dask.array.core.normalize_chunks(chunks, shape, dtype=dtype)
    name = "mmappickle-" + tokenize(source, key, chunks)
    graph = {}
    starts = [[sum(axis[:idx]) for idx in range(len(axis))] for axis in chunks]
    for block_idx in itertools.product(*(range(len(axis)) for axis in chunks)):
        index = tuple(
            slice(starts[axis][idx], starts[axis][idx] + chunks[axis][idx])
            for axis, idx in enumerate(block_idx)
        )
        block_key: tuple[Any, ...] = (name, *block_idx)
        graph[block_key] = (_read_chunk, source, key, index)
    return dask.array.Array(graph, name, chunks, dtype=dtype)


# The read-write handles of this process (each worker its own), by path, and the lock of
# the table (worker threads share it).
_writable: dict[str, Any] = {}
_writable_lock = threading.Lock()

# Tries of a write whose path keeps naming another file than the handle's.
_REOPEN_TRIES = 3


def _write_place(path: str, key: str) -> tuple[Any, Any]:
    """This process's read-write handle of ``path`` and the place of the array of ``key``
    in it. A handle whose file the path no longer names (deleted and made again, where a
    vacuum would have been followed) is replaced by a new one: it would write into the old
    file (threads still using it keep it until they are done)."""
    from .dict import mmapdict

    for _ in range(_REOPEN_TRIES):
        with _writable_lock:
            m = _writable.get(path)
            fresh = m is None
            if m is None:
                m = _writable[path] = mmapdict(path)
        located = m._native.locate(key)
        status = os.stat(path)
        if isinstance(located, _native.ArrayPlace):
            if tuple(located.file_id) == (status.st_dev, status.st_ino):
                return m, located
        elif fresh:
            raise ValueError(f"key {key!r} does not hold a plain array: expected one")
        with _writable_lock:
            if _writable.get(path) is m:
                del _writable[path]
    raise ValueError(f"{path}: made again {_REOPEN_TRIES} times while a block was written")


class MmapDictTarget:
    """The array of ``key`` in the mmappickle file at ``path`` as a target of
    ``dask.array.store``: ``target[region] = block`` writes the block straight into the
    file from the process that holds it, with ``pwrite`` under the file's shared lock (no
    map, no copy through another process). Pickled, it is ``(path, key)``: process workers
    open the file themselves, so they must share its file system. The array must exist
    (``to_mmapdict`` allocates it).
    """

    def __init__(self, path: str | os.PathLike[str], key: str) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.key = key

    def __setitem__(self, region: Any, block: Any) -> None:
        m, located = _write_place(self.path, self.key)
        _write_region(m, self.key, located, region, block)

    def __reduce__(self) -> tuple[Any, ...]:
        return (MmapDictTarget, (self.path, self.key))

    def __dask_tokenize__(self) -> Any:
        return ("mmappickle.dask.MmapDictTarget", self.path, self.key)

    def __repr__(self) -> str:
        return f"MmapDictTarget({self.path!r}, {self.key!r})"


def _write_region(m: Any, key: str, located: Any, region: Any, block: Any) -> None:
    """Writes ``block`` into ``region`` (a slice per leading axis, step 1) of the array of
    ``key`` in ``m``, at ``located``: one write of whole rows, the runs of each row that the
    region covers contiguous in the file (one ``pwrite`` each; one when the region cuts no
    row), under one hold of the lock."""
    import numpy

    from .dict import _c_order_bytes, _pwriter

    shape = tuple(located.shape)
    region = region if isinstance(region, tuple) else (region,)
    bounds = [axis.indices(n) for axis, n in zip(region, shape)]
    bounds += [(0, n, 1) for n in shape[len(bounds) :]]
    if not shape or any(step != 1 for _, _, step in bounds):
        raise ValueError(f"region {region!r} of key {key!r}: expected slices of step 1")
    extents = tuple(max(stop - start, 0) for start, stop, _ in bounds)
    block = numpy.asarray(block, dtype=numpy.dtype(located.dtype))
    if block.shape != extents:
        raise ValueError(
            f"a block of shape {block.shape} for region {region!r}: expected {extents}"
        )
    itemsize = block.dtype.itemsize
    strides = [math.prod(shape[axis + 1 :]) * itemsize for axis in range(len(shape))]
    # The last axis the region cuts: from there on, each run is contiguous in the file.
    cut = max((axis for axis in range(1, len(shape)) if extents[axis] != shape[axis]), default=0)
    if cut == 0:
        starts, run_len = [0], block.nbytes
    else:
        # The byte offset of each run within the rows written, in the block's C order.
        corners = numpy.indices(extents[:cut]).reshape(cut, -1)
        offsets = sum(
            (corners[axis] + (bounds[axis][0] if axis else 0)) * strides[axis]
            for axis in range(cut)
        )
        starts = (offsets + bounds[cut][0] * strides[cut]).tolist()
        run_len = extents[cut] * strides[cut]
    raw = memoryview(_c_order_bytes(block))

    def write(fd: int, offset: int, length: int) -> None:
        for run, start in enumerate(starts):
            _pwriter(raw[run * run_len : (run + 1) * run_len])(fd, offset + start, run_len)

    rows_len = extents[0] * strides[0]
    m._native.write_rows(key, bounds[0][0], located.dtype, rows_len, write)


def to_mmapdict(
    x: Any, path: str | os.PathLike[str], key: str, *, compute: bool = True, **kwargs: Any
) -> Any:
    """Stores the ``dask.array.Array`` ``x`` under ``key`` in the mmappickle file at
    ``path`` (created if missing; any value of ``key`` replaced) without passing its data
    through this process: the entry is allocated here once, as a stub of ``x``'s shape and
    dtype (the only step under the file's exclusive lock), then every chunk is written by
    the worker that computes it, straight into the file (``pwrite``, under the shared lock;
    see :class:`MmapDictTarget`). Process workers (``scheduler="processes"``, a
    ``distributed`` cluster) must share the file system, as the nodes of an HPC cluster
    share theirs.

    Chunks of whole rows (chunked along the first axis only) are one write each; chunks
    along later axes are written as the contiguous runs of their rows. ``compute=False``
    returns the ``Delayed`` of ``dask.array.store`` (the stub is allocated now); other
    keyword arguments go to it (``scheduler=...``).
    """
    from .dict import _mappable, mmapdict
    from .stubs import EmptyNDArray

    if not x.shape or any(math.isnan(n) for n in x.shape):
        raise ValueError(
            f"an array of shape {x.shape}: expected at least one axis, of known length "
            "(a 0-d array has no rows to write; compute_chunk_sizes() finds unknown lengths)"
        )
    if not _mappable(x.dtype):
        raise ValueError(f"dtype {x.dtype} cannot be mapped: store x.compute() instead")
    path = os.path.abspath(os.fspath(path))
    with mmapdict(path) as m:
        m[key] = EmptyNDArray(x.shape, x.dtype)
    return dask.array.store(x, MmapDictTarget(path, key), lock=False, compute=compute, **kwargs)
