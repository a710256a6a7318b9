"""``BasePickler``, the library's extension point, and the built-in picklers.

A pickler written for the Python library works unchanged: a subclass of
:class:`BasePickler` with a ``priority``, ``is_picklable(obj)``, ``is_valid(offset, length)``,
``read(offset, length) -> (obj, length)`` and ``write(obj, offset, memo_start_idx) ->
(length, memo_max)`` working through ``self._file``. Every subclass is found when an
``mmapdict`` is made with ``picklers=None``, and tried in decreasing priority. The bytes a
pickler writes are checked by the Rust half before the entry is committed (one whole
pickled value, memo indices from ``memo_start_idx`` below ``memo_max``); on any error the
file is left as it was.

The built-in picklers (:class:`GenericPickler`, :class:`ArrayPickler`,
:class:`MaskedArrayPickler`) are recognised by the ``mmapdict`` and served by the Rust half;
their methods here answer as the library's do for code that calls them directly.

Opening a file does not import this module unless it was imported before: no subclass of
``BasePickler`` can exist until it is, so the ``mmapdict`` uses the built-in picklers then,
and makes their instances on first use.
"""

import io
import pickle
import sys
import weakref

from .. import _native

TYPE_CHECKING = False  # no ``typing`` at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import IO, Any

    from ..dict import mmapdict

__all__ = ["ArrayPickler", "BasePickler", "GenericPickler", "MaskedArrayPickler"]


class BasePickler:
    """Picklers are tried in decreasing priority order."""

    priority: int = 0

    def __init__(self, parent_object: "mmapdict") -> None:
        self._parent_object = weakref.ref(parent_object)

    @property
    def _file(self) -> "IO[bytes]":
        """The dict's file object: ``seek``, ``read``, ``write``, ``tell``, ``fileno``."""
        parent = self._parent_object()
        if parent is None:
            raise ValueError("the mmapdict of this pickler was freed")
        return parent._file

    def is_valid(self, offset: int, length: int) -> bool:
        """Whether the value of ``length`` bytes at ``offset`` is one this pickler reads."""
        return False

    def is_picklable(self, obj: "Any") -> bool:
        """Whether this pickler can write ``obj``."""
        return False

    def read(self, offset: int, length: int) -> "tuple[Any, int]":
        """The value at ``offset`` and the length read."""
        raise NotImplementedError("Should be subclassed")

    def write(self, obj: "Any", offset: int, memo_start_idx: int = 0) -> tuple[int, int]:
        """Writes ``obj`` at ``offset``: ``(number of bytes, next free memo index)``."""
        raise NotImplementedError("Should be subclassed")

    def _pickle_load_fix(self, p: bytes) -> "Any":
        """The value of the entry value bytes ``p`` (``pickle.loads`` of them made whole)."""
        return pickle.loads(_native.value_pickle(p))

    def _pickle_dump_fix(self, obj: "Any", memo_start_idx: int = 0) -> tuple[bytes, int]:
        """``obj`` pickled as entry value bytes whose memo indices start at
        ``memo_start_idx``: ``(bytes, next free memo index)``."""
        return _native.entry_value(pickle.dumps(obj, 4), memo_start_idx)


class GenericPickler(BasePickler):
    """Any picklable value: ``pickle.dumps(value, 4)``, framed into the file by Rust."""

    priority = -100

    def is_valid(self, offset: int, length: int) -> bool:
        return True

    def is_picklable(self, obj: "Any") -> bool:
        return True

    def read(self, offset: int, length: int) -> "tuple[Any, int]":
        file = self._file
        position = file.tell()
        try:
            file.seek(offset, io.SEEK_SET)
            return self._pickle_load_fix(file.read(length)), length
        finally:
            file.seek(position)

    def write(self, obj: "Any", offset: int, memo_start_idx: int = 0) -> tuple[int, int]:
        file = self._file
        position = file.tell()
        try:
            file.seek(offset, io.SEEK_SET)
            data, memo_max = self._pickle_dump_fix(obj, memo_start_idx)
            return file.write(data), memo_max
        finally:
            file.seek(position)


class ArrayPickler(BasePickler):
    """``numpy.ndarray``, ``numpy.memmap`` and ``EmptyNDArray`` stubs, stored
    memory-mappable (written and read by the Rust half)."""

    priority = 100

    def is_picklable(self, obj: "Any") -> bool:
        numpy = sys.modules.get("numpy")
        stubs = sys.modules.get("mmappickle.stubs.numpy")
        types = () if numpy is None else (numpy.ndarray, numpy.memmap)
        return type(obj) in types or (stubs is not None and type(obj) is stubs.EmptyNDArray)


class MaskedArrayPickler(BasePickler):
    """``numpy.ma.MaskedArray``: data and mask both memory-mappable (written and read by
    the Rust half)."""

    priority = 100

    def is_picklable(self, obj: "Any") -> bool:
        ma = sys.modules.get("numpy.ma")
        return ma is not None and type(obj) is ma.MaskedArray


# The built-in picklers, highest priority first (as ``_picklers_of`` orders them), read by
# the Rust half's own picklers (named for it).
_BUILTIN_PICKLERS: "tuple[type[BasePickler], ...]" = (
    ArrayPickler,
    MaskedArrayPickler,
    GenericPickler,
)


def _all_subclasses(cls: "type[BasePickler]") -> "list[type[BasePickler]]":
    """Every subclass of ``cls``, depth first (the library's ``utils.all_subclasses``)."""
    found: list[type[BasePickler]] = []
    for subclass in cls.__subclasses__():
        for each in (subclass, *_all_subclasses(subclass)):
            if each not in found:
                found.append(each)
    return found


def _picklers_of(
    parent: "mmapdict", picklers: "Sequence[type] | None"
) -> "tuple[list[BasePickler], list[object], bool]":
    """The pickler instances of ``parent``, highest priority first, as the library makes
    them (every subclass of ``BasePickler`` when ``picklers`` is ``None``); the list the
    Rust half takes (a built-in pickler's name, any other pickler itself); and whether they
    are the built-in ones only."""
    classes = _all_subclasses(BasePickler) if picklers is None else list(picklers)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BasePickler)):
            raise TypeError(f"a pickler is a subclass of BasePickler, not {cls!r}")
    instances = [cls(parent) for cls in classes]
    instances.sort(key=lambda pickler: pickler.priority, reverse=True)
    native = [
        type(pickler).__name__ if type(pickler) in _BUILTIN_PICKLERS else pickler
        for pickler in instances
    ]
    builtin_only = {type(pickler) for pickler in instances} == set(_BUILTIN_PICKLERS)
    return instances, native, builtin_only


def _new_value_by(parent: "mmapdict", key: str, value: "Any", kind: str) -> "_native.NewValue":
    """``value`` as the Rust half stores it, by the first of ``parent``'s picklers (highest
    priority first) that can pickle it, as the library chooses them (``kind`` is
    ``parent._kind_of(value)``)."""
    for pickler in parent._picklers:
        pickler_type = type(pickler)
        if pickler_type is GenericPickler:
            return _native.NewPickle(key, pickle.dumps(value, 4))
        if pickler_type is ArrayPickler:
            if kind == "array":
                return parent._new_array(key, value)
        elif pickler_type is MaskedArrayPickler:
            if kind == "masked":
                return parent._new_masked(key, value)
        elif pickler.is_picklable(value):
            return _native.NewWritten(key, _writer_of(parent, pickler, value))
    raise TypeError(f"Could not find a pickler for element of type {type(value)}")


def _writer_of(
    parent: "mmapdict", pickler: BasePickler, value: "Any"
) -> "Callable[[int, int, int], tuple[int, int]]":
    """The writer of ``value`` by a pickler written for the library: its
    ``write(obj, offset, memo_start_idx)`` through ``parent._file``, whose bytes then reach
    the file before the Rust half checks them."""

    def write(fd: int, offset: int, memo_start: int) -> tuple[int, int]:
        file = parent._file
        position = file.tell()
        try:
            written = pickler.write(value, offset, memo_start)
        finally:
            file.seek(position)
            file.flush()
        try:
            length, memo_max = written
            return int(length), int(memo_max)
        except (TypeError, ValueError):
            raise TypeError(
                f"{type(pickler).__name__}.write returned {written!r}, not (length, memo_max)"
            ) from None

    return write
