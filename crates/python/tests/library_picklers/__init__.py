"""Two picklers written against the Python library's pickler API (``mmappickle`` 1.0), used
unchanged by the library and by our package on the same files. Imported by the
subprocesses of ``test_picklers.py`` only: a pickler class is found by every ``mmapdict``
made in a process that defined it, as in the library.

- ``BytesPickler`` stores ``bytes`` and ``bytearray`` as ``BINBYTES8`` and reads them back as
  a ``memoryview`` of a ``numpy.memmap`` of the file (of ``self._file``): changes made
  through it reach the file.
- ``PointPickler`` stores a ``Point`` in a layout of its own (a marker, two floats, a memo
  slot): plain ``pickle.load`` of the file reads it as an ``(x, y)`` tuple.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import numpy
from mmappickle.picklers.base import BasePickler
from mmappickle.utils import save_file_position


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Point({self.x!r}, {self.y!r})"


class BytesPickler(BasePickler):
    priority = 50

    def is_picklable(self, obj: Any) -> bool:
        return type(obj) in (bytes, bytearray)

    @save_file_position
    def is_valid(self, offset: int, length: int) -> bool:
        self._file.seek(offset, io.SEEK_SET)
        head = self._file.read(9)
        return (
            len(head) == 9
            and head[:1] == pickle.BINBYTES8
            and 9 + struct.unpack("<Q", head[1:])[0] == length
        )

    @save_file_position
    def read(self, offset: int, length: int) -> tuple[Any, int]:
        if length == 9:
            return memoryview(b""), length
        mode = "r+" if self._file.writable() else "r"
        array = numpy.memmap(
            self._file, dtype=numpy.uint8, mode=mode, offset=offset + 9, shape=(length - 9,)
        )
        return memoryview(array), length

    @save_file_position
    def write(self, obj: Any, offset: int, memo_start_idx: int = 0) -> tuple[int, int]:
        self._file.seek(offset, io.SEEK_SET)
        written = self._file.write(pickle.BINBYTES8 + struct.pack("<Q", len(obj)))
        written += self._file.write(bytes(obj))
        return written, memo_start_idx


_POINT = pickle.SHORT_BINBYTES + b"\x05point" + pickle.POP


class PointPickler(BasePickler):
    priority = 10

    def is_picklable(self, obj: Any) -> bool:
        return type(obj) is Point

    @save_file_position
    def is_valid(self, offset: int, length: int) -> bool:
        self._file.seek(offset, io.SEEK_SET)
        return length == len(_POINT) + 24 and self._file.read(len(_POINT)) == _POINT

    @save_file_position
    def read(self, offset: int, length: int) -> tuple[Any, int]:
        self._file.seek(offset + len(_POINT), io.SEEK_SET)
        raw = self._file.read(18)
        return Point(struct.unpack(">d", raw[1:9])[0], struct.unpack(">d", raw[10:18])[0]), length

    @save_file_position
    def write(self, obj: Any, offset: int, memo_start_idx: int = 0) -> tuple[int, int]:
        data = (
            _POINT
            + pickle.BINFLOAT
            + struct.pack(">d", obj.x)
            + pickle.BINFLOAT
            + struct.pack(">d", obj.y)
            + pickle.TUPLE2
            + pickle.LONG_BINPUT
            + struct.pack("<I", memo_start_idx)
        )
        self._file.seek(offset, io.SEEK_SET)
        return self._file.write(data), memo_start_idx + 1
