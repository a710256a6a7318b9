"""Dask arrays over mmappickle arrays, local or remote: each chunk is read by the worker
that computes it (a map of the local file, or a ranged request of exactly its bytes).

Needs ``dask[array]``; ``import mmappickle`` does not import this module.
"""

from __future__ import annotations

import functools
import itertools
import os
from typing import Any

import dask.array
from dask.base import tokenize

from . import _native
from .remote import RemoteDict

__all__ = ["from_mmapdict"]


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
