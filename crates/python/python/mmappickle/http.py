"""``httpdict``: the Python library's reading of an mmappickle file over HTTP(S), here by
ranged requests through the Rust crate ``mmappickle-remote`` (see :mod:`mmappickle.remote`,
which also reads ``s3://`` and ``file://`` URLs)."""

from __future__ import annotations

from .remote import RemoteDict

__all__ = ["httpdict"]


def httpdict(url: str, cache_size: int | None = None) -> RemoteDict:
    """A read-only mapping over the mmappickle file at ``url``: generic values come back
    through ``pickle.loads``, arrays as numpy arrays. ``cache_size`` bounds the block cache
    in bytes (64 MiB when ``None``)."""
    return RemoteDict(url, cache_size)
