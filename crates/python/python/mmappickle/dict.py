"""``mmapdict``: the dict stored in a file (the file format itself is handled in Rust)."""

import io
import os
import pickle
import sys
import weakref
from collections.abc import Mapping, MutableMapping

from . import _native

# Neither ``typing`` nor ``__future__`` is imported at run time (opening a file and listing its
# keys needs nothing but this module and the Rust half): the annotations that Python 3.9
# cannot evaluate when a function is defined are quoted.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import mmap
    from collections.abc import Callable, ItemsView, Iterator, Sequence, ValuesView
    from typing import IO, Any, TypeVar
    from weakref import WeakSet

    from .picklers.base import BasePickler

    _T = TypeVar("_T")
    _MappingBase = MutableMapping[str, Any]
else:
    _MappingBase = MutableMapping


class _Replaced(Exception):
    """The file was replaced (vacuumed) between finding a place and mapping it."""


# What ``NativeDict.unlocked_get`` answers for a value it leaves to the locked path.
_UNREAD = _native.UNREAD

# Tries of a read whose file vacuums keep replacing meanwhile.
_REPLACED_TRIES = 3

# The built-in picklers, highest priority first, by the names the Rust half knows them by.
_BUILTIN_PICKLER_NAMES = ("ArrayPickler", "MaskedArrayPickler", "GenericPickler")

_PICKLER_CLASSES = ("BasePickler", "GenericPickler", "ArrayPickler", "MaskedArrayPickler")


def __getattr__(name: str) -> "type[BasePickler]":
    """The pickler classes, names of this module too (they live in
    :mod:`mmappickle.picklers.base`, imported on first use)."""
    if name in _PICKLER_CLASSES:
        from .picklers import base

        pickler: type[BasePickler] = getattr(base, name)
        return pickler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _not_writable() -> "io.UnsupportedOperation":
    return io.UnsupportedOperation("not writable")


def _path_of(file: "Any") -> "tuple[str, str | None, bool]":
    """``(path to open, path to reopen when unpickled or None, whether the file object is
    read-only)`` of a path or an open binary file object."""
    if isinstance(file, (str, os.PathLike)):
        # Absolute: arrays are mapped, and the file reopened, by this path later.
        path = os.path.abspath(os.fsdecode(os.fspath(file)))
        return path, path, False
    from ._file_objects import path_of_file_object

    return path_of_file_object(file)


def _numpy() -> "Any":
    """numpy if it was imported (an array can only exist if it was)."""
    return sys.modules.get("numpy")


def _flush(file: "Any") -> None:
    """Before an operation on a file opened from a file object: the bytes it holds in its
    write buffer reach the file (the Rust half writes and reads through its own
    descriptor)."""
    if not file.closed:
        file.flush()


def _forget_read_buffer(file: "Any") -> None:
    """After a change: the file object forgets what it read ahead, so that its next read
    sees the change; its position stays. ``io.BufferedRandom.flush`` drops the read-ahead
    (``seek`` within the buffered range keeps it); other objects seek to the end and back."""
    if file.closed:
        return
    file.flush()
    if type(file) is not io.BufferedRandom and file.readable():
        position = file.tell()
        file.seek(0, io.SEEK_END)
        file.seek(position)


class mmapdict(_MappingBase):
    """A dict stored in a file that is a pickle of the dict; numpy arrays are memory-mapped.

    :param file: a path (``str`` or ``os.PathLike``) or an open binary file object with a
        ``fileno()`` (a ``tempfile.TemporaryFile()`` works: keep it open while in use).
    :param readonly: open read-only: every change raises ``io.UnsupportedOperation``, arrays
        are read-only maps. A missing path is then ``FileNotFoundError``; read-write, it is
        created.
    :param picklers: the pickler classes that store and read values, as in the library: by
        default every subclass of :class:`mmappickle.picklers.BasePickler` (the built-in
        ``GenericPickler``, ``ArrayPickler``, ``MaskedArrayPickler`` and any written for the
        library), tried in decreasing ``priority``; see :mod:`mmappickle.picklers`.
    :param encoding: ``"compatible"`` (default: arrays byte-identical to the Python library's)
        or ``"portable"`` (numpy's own pickle form, which plain ``pickle.load`` reads on
        numpy 1.x and 2.x).
    :param safe: build generic values with the Rust decoder instead of Python's unpickler:
        only builtin values and numpy arrays, anything else raises
        :class:`mmappickle.UnsafeValueError`; nothing a file names is imported or run.
    :param allow_damaged: open a file whose entries are damaged, so that :meth:`fsck` can
        repair it.

    Generic values are written with ``pickle.dumps(value, 4)`` and read with
    ``pickle.loads`` (unless ``safe``): reading a file runs Python's unpickler on its values,
    exactly as the Python library does, so open untrusted files with ``safe=True``.
    """

    def __init__(
        self,
        file: "Any",
        readonly: "bool | None" = False,
        picklers: "Sequence[type[BasePickler]] | None" = None,
        *,
        encoding: str = "compatible",
        safe: bool = False,
        allow_damaged: bool = False,
    ) -> None:
        if encoding not in ("compatible", "portable"):
            raise ValueError(f"encoding must be 'compatible' or 'portable', not {encoding!r}")
        path, reopen_path, file_readonly = _path_of(file)
        self._pickler_classes = None if picklers is None else list(picklers)
        # Only the built-in picklers: generic values go to and come from Python's pickle in
        # batches (``update``, ``items``), arrays to the Rust half.
        self._builtin_picklers = True
        # The pickler instances (``_picklers``), and what the Rust half takes of them.
        self._pickler_instances: list[BasePickler] | None = None
        native_picklers: list[object] = list(_BUILTIN_PICKLER_NAMES)
        if picklers is not None or "mmappickle.picklers.base" in sys.modules:
            from .picklers.base import _picklers_of

            self._pickler_instances, native_picklers, self._builtin_picklers = _picklers_of(
                self, picklers
            )
        # Else no pickler class exists yet, so none was written for the library: the
        # built-in ones, whose instances are made on first use.
        # The file object that picklers written for the library use (``self._file``), opened
        # when one first asks for it.
        self._pickler_file: IO[bytes] | None = None
        self._pickler_file_pid = 0
        self._encoding = encoding
        self._safe = bool(safe)
        # A file object: its buffers are kept coherent with the file around every operation
        # (``None`` when opened by path: then there is nothing to do).
        self._fileobj: IO[bytes] | None = None if isinstance(file, (str, os.PathLike)) else file
        self._reopen_path = reopen_path
        readonly = bool(readonly) or file_readonly
        if self._fileobj is not None:
            from ._file_objects import convert_plain_pickle

            convert_plain_pickle(self._fileobj, path, reopen_path, readonly, encoding)
        try:
            self._native = _native.NativeDict(
                path,
                readonly,
                encoding == "portable",
                bool(allow_damaged),
                native_picklers,
            )
        except ValueError as error:
            from ._file_objects import rewrite_scratch

            scratch = rewrite_scratch(reopen_path)
            if scratch is None:
                raise
            raise ValueError(
                f"{error}; {scratch} holds the whole file as a process killed while it "
                f"rewrote the file in place left it: move it over {reopen_path}"
            ) from error
        # What the Rust half opened (``NativeDict.path()`` and ``readonly()`` answer the same).
        self._path = path
        self._readonly = readonly
        # A small value or an array the handle has seen is read without the lock while the
        # file shows no change (a file object's buffers are flushed first instead, under the
        # lock).
        unlocked_reads = self._fileobj is None and not self._safe and self._builtin_picklers
        self._unlocked_get = self._native.unlocked_get if unlocked_reads else None
        if self._readonly:
            torn_at = self._native.torn_at()
            if torn_at is not None:
                import warnings

                warnings.warn(
                    f"{self._path}: the file's end is torn at byte offset {torn_at} (cut short "
                    "by a full disk or a crash): the complete entries are read; open it "
                    "read-write (which repairs it) and call fsck() to see what was kept",
                    RuntimeWarning,
                    stacklevel=2,
                )
        # Arrays mapped from a file object's file: an in-place vacuum is refused while any
        # is alive (it moves the bytes under them).
        self._maps: WeakSet[Any] | None = None
        # The one map of the whole file that arrays are views of, and its file's
        # (device, inode): mapped again when the file grows past it or is replaced.
        self._whole_map: mmap.mmap | None = None
        self._whole_map_id: tuple[int, ...] = ()
        self._whole_map_name = ""
        if self._fileobj is not None and not self._readonly:
            self._maps = weakref.WeakSet()
        if self._fileobj is not None:
            _forget_read_buffer(self._fileobj)

    # ---- the Python library's API ----

    @property
    def _picklers(self) -> "list[BasePickler]":
        """The pickler instances, highest priority first (the built-in ones are made on
        first use)."""
        if self._pickler_instances is None:
            from .picklers.base import _BUILTIN_PICKLERS

            self._pickler_instances = [pickler(self) for pickler in _BUILTIN_PICKLERS]
        return self._pickler_instances

    @property
    def writable(self) -> bool:
        """True if the file is writable, False otherwise."""
        return not self._readonly

    @property
    def commit_number(self) -> int:
        """The commit number: it changes whenever the key set changes (any process)."""
        if self._fileobj is not None:
            _flush(self._fileobj)
        return self._native.commit_number()

    @commit_number.setter
    def commit_number(self, value: int) -> None:
        if type(value) is not int:
            raise TypeError("commit_number should be an int")
        self._check_writable()
        if self._fileobj is not None:
            _flush(self._fileobj)
        self._native.set_commit_number(value)
        if self._fileobj is not None:
            _forget_read_buffer(self._fileobj)

    def _check_writable(self) -> None:
        if self._readonly:
            raise _not_writable()

    def _check_key(self, key: "Any") -> None:
        # The key's length is checked by the Rust half (a ValueError, the file unchanged).
        if not isinstance(key, str):
            raise TypeError(f"keys are str, not {type(key).__name__}")

    @property
    def _file(self) -> "IO[bytes]":
        """The file object of the library's picklers (``BasePickler._file``): the file object
        the dict was opened with, or the file opened unbuffered (so that it always sees what
        the Rust half wrote) in the dict's mode, again in a process of its own after a fork."""
        if self._fileobj is not None:
            return self._fileobj
        if self._pickler_file is None or self._pickler_file_pid != os.getpid():
            mode = "rb" if self._readonly else "r+b"
            self._pickler_file = open(self._path, mode, buffering=0)  # noqa: SIM115
            self._pickler_file_pid = os.getpid()
        return self._pickler_file

    def __contains__(self, key: object) -> bool:
        if self._fileobj is not None:
            _flush(self._fileobj)
        return isinstance(key, str) and self._native.contains(key)

    def keys(self) -> list[str]:  # type: ignore[override]
        """The keys, in file order (a list, as the Python library's quick start prints)."""
        if self._fileobj is not None:
            _flush(self._fileobj)
        return self._native.keys()

    def __setitem__(self, key: str, value: "Any") -> None:
        """Stores ``value`` under ``key`` (replacing it: the old entry is deleted and the new
        one appended, in one commit). numpy arrays (memmaps included) and masked arrays, but
        for object and structured dtypes, and :class:`~mmappickle.stubs.EmptyNDArray` stubs
        are stored memory-mappable; anything else as ``pickle.dumps(value, 4)``."""
        self._check_key(key)
        self._check_writable()
        new_value = self._new_value(key, value)
        self._store(lambda: self._native.insert_many([new_value]))

    def __getitem__(self, key: str) -> "Any":
        """The value of ``key``: an array as a ``numpy.memmap`` of the file (read-only if the
        dict is), a masked array as a ``numpy.ma.MaskedArray`` over maps, anything else
        through ``pickle.loads`` (the Rust decoder when ``safe``). A small value or an array
        this handle has seen is read without the file's lock while the file shows no change."""
        unlocked_get = self._unlocked_get
        if unlocked_get is not None:
            value = unlocked_get(key)
            if value is not _UNREAD:
                return value
        return self._mapped_or_locked(key)

    def _mapped_or_locked(self, key: str) -> "Any":
        """``m[key]`` of what ``unlocked_get`` does not read: an array mapped without the
        lock, or anything under the lock (apart, so that ``__getitem__`` makes no closure)."""
        if self._unlocked_get is not None and isinstance(key, str):
            located = self._native.unlocked_locate(key)
            if located is not None:
                try:
                    return self._value_of(located)
                except _Replaced:
                    pass  # read again under the lock
        if not isinstance(key, str):
            raise KeyError(key)
        if self._fileobj is not None:
            _flush(self._fileobj)
        return self._replaced_again(lambda: self._value_of(self._native.locate(key)))

    def _value_of(self, located: "_native.Located | Any") -> "Any":
        """The value of what the Rust half found: the first pickler (highest priority
        first) valid for it chose it, as the library chooses them, and a pickler written for
        the library has read it already."""
        if isinstance(located, _native.ArrayPlace):
            return self._memmap(located)
        if isinstance(located, _native.MaskedPlace):
            return self._masked(located.data, located.mask)
        if isinstance(located, _native.GenericValue):
            if self._safe or located.holds_array:
                return _native.safe_loads(located.value_bytes, _make_array)
            return pickle.loads(located.pickle)
        return located

    def __delitem__(self, key: str) -> None:
        """Deletes ``key`` (one byte flips; :meth:`vacuum` gives the space back)."""
        self._check_writable()
        if not isinstance(key, str):
            raise KeyError(key)
        if self._fileobj is None:
            removed = self._native.remove(key)
        else:
            _flush(self._fileobj)
            try:
                removed = self._native.remove(key)
            finally:
                _forget_read_buffer(self._fileobj)
        if not removed:
            raise KeyError(key)

    def vacuum(self, chunk_size: int = 1048576) -> None:
        """Frees the space of deleted and replaced values (``chunk_size`` is accepted for
        compatibility).

        Opened by path, the file is rewritten beside and renamed over the path: arrays
        mapped before keep mapping the old file, and no longer see changes. Opened from a
        file object, the file is rewritten in place (the file object keeps naming it), which
        moves bytes under any array mapped from it: refused while one is alive; as the
        library requires for its own vacuum, no other handle (of any process) may have the
        file open meanwhile, since values are read without the lock.
        """
        self._check_writable()
        if self._fileobj is None:
            self._native.vacuum()
            return
        from ._file_objects import vacuum_in_place

        vacuum_in_place(self, self._fileobj)

    def fsck(self) -> None:
        """Repairs a file whose end was cut (a full disk, a truncation): a last entry cut
        after its value is completed (the file gets its old size back), one cut inside its
        value is dropped, every other entry is kept, and the file is a valid pickle again.
        Open a file that fails to open with ``allow_damaged=True`` to reach it."""
        self._check_writable()
        if self._fileobj is None:
            self._native.fsck()
            return
        _flush(self._fileobj)
        try:
            self._native.fsck()
        finally:
            _forget_read_buffer(self._fileobj)

    # ---- beyond the Python library ----

    def __len__(self) -> int:
        if self._fileobj is not None:
            _flush(self._fileobj)
        return self._native.len()

    def __iter__(self) -> "Iterator[str]":
        return iter(self.keys())

    def values(self) -> "ValuesView[Any]":
        """A view of the values, in file order; each iteration reads every value from one
        state of the file (one shared lock)."""
        return _Values(self)

    def items(self) -> "ItemsView[str, Any]":
        """A view of the ``(key, value)`` pairs, in file order; each iteration reads every
        value from one state of the file (one shared lock)."""
        return _Items(self)

    def _snapshot(self) -> "dict[str, Any]":
        """Every key, in file order, with its value, all read from one state of the file."""
        if self._fileobj is not None:
            _flush(self._fileobj)
        return self._replaced_again(self._snapshot_once)

    def _snapshot_once(self) -> "dict[str, Any]":
        if not self._builtin_picklers or self._safe:
            return {key: self._value_of(place) for key, place in self._native.locate_all()}
        # The generic values come in one pickle of the dict, ``None`` in the others' places.
        stream, others = self._native.joined_items()
        values: dict[str, Any] = pickle.loads(stream)
        for key, place in others:
            values[key] = self._value_of(place)
        return values

    def update(self, other: "Any" = (), /, **kwargs: "Any") -> None:
        """Stores every ``(key, value)`` of ``other`` (a mapping or pairs) and ``kwargs``,
        as ``dict.update``, in one batch: one lock and one commit, so that other readers see
        all of them at once; on an error, none is stored."""
        if isinstance(other, mmapdict):
            other = other._snapshot()  # read from one state of its file
        keys: Any = other  # a dict, whose items the Rust half reads itself
        values: list[Any] | None = None
        if type(other) is not dict or kwargs:
            if isinstance(other, Mapping):
                pairs = list(other.items())
            elif hasattr(other, "keys"):
                pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118 (as dict.update)
            else:
                pairs = list(other)
            pairs.extend(kwargs.items())
            keys = [key for key, _ in pairs]
            values = [value for _, value in pairs]
        if self._builtin_picklers:
            # Plain values written by the Rust half, the other generic values pickled by one
            # pickle.dumps of their list (the Rust half checks the keys, and that the dict is
            # writable, first).
            self._store(
                lambda: self._native.insert_values(keys, values, _special_types(), self._new_value)
            )
            return
        if values is None:
            keys, values = list(other), list(other.values())
        for key in keys:
            self._check_key(key)
        if not keys:
            return
        self._check_writable()
        new_values = [self._new_value(key, value) for key, value in zip(keys, values)]
        self._store(lambda: self._native.insert_many(new_values))

    def _store(self, insert: "Callable[[], None]") -> None:
        """Runs ``insert`` (a change by the Rust half), with a file object kept coherent."""
        if self._fileobj is None:
            insert()
            return
        _flush(self._fileobj)
        try:
            insert()
        finally:
            _forget_read_buffer(self._fileobj)

    def write_rows(self, key: str, start: int, values: "Any") -> None:
        """Writes ``values`` into the array of ``key`` as its rows (first axis) from row
        ``start`` on (negative: counted from the end, as an index), with ``pwrite`` from the
        values' buffer: a stub gets only the pages written, without the page faults of
        ``m[key][start:stop] = values``, and the file's shared lock is held meanwhile (no
        vacuum and no replace of the key can run; the Python runtime is released while the
        bytes are written).

        ``values`` is anything ``numpy.asarray`` turns into the array's dtype (a copy only
        when it is not already C-contiguous of that dtype): whole rows, ``(n, *row_shape)``,
        or one row without its axis. ``ValueError`` for a key that holds no plain array, rows
        of another shape, or rows past the array's end (a 0-d array has none).
        """
        from operator import index

        self._check_writable()
        if not isinstance(key, str):
            raise KeyError(key)
        if self._fileobj is not None:
            _flush(self._fileobj)
        located = self._native.locate(key)
        if not isinstance(located, _native.ArrayPlace):
            raise ValueError(f"key {key!r} does not hold a plain array: expected one")  # noqa: TRY004
        numpy = _import_numpy()
        rows = numpy.asarray(values, dtype=_dtype_named(located.dtype))
        shape = tuple(located.shape)
        if shape:
            if rows.shape == shape[1:]:
                rows = rows[numpy.newaxis]
            if rows.shape[1:] != shape[1:]:
                raise ValueError(
                    f"rows of shape {rows.shape[1:]} for key {key!r}: expected rows of shape "
                    f"{shape[1:]} (the array is {shape})"
                )
        n_rows = shape[0] if shape else 0
        first = index(start)
        first += n_rows if first < 0 else 0
        if first < 0:
            raise ValueError(f"start row {start} of key {key!r}: the array has {n_rows} rows")
        raw = _c_order_bytes(rows)
        try:
            self._native.write_rows(key, first, located.dtype, len(raw), _pwriter(raw))
        finally:
            if self._fileobj is not None:
                _forget_read_buffer(self._fileobj)

    def close(self) -> None:
        """Closes the file; the mmapdict is unusable afterwards (maps stay valid)."""
        self._native.close()
        self._whole_map = None
        if self._pickler_file is not None:
            self._pickler_file.close()
            self._pickler_file = None

    def __enter__(self) -> "mmapdict":  # noqa: PYI034  (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "r" if self._readonly else "r+"
        if self._native.closed():
            return f"<mmapdict {self._path!r} mode={mode!r} closed>"
        return f"<mmapdict {self._path!r} mode={mode!r} entries={len(self)}>"

    def _repr_html_(self) -> str:
        from ._display import html

        return html("mmapdict", self._path, self._native)

    def _repr_pretty_(self, printer: "Any", cycle: bool) -> None:
        from ._display import pretty

        pretty("mmapdict", self._path, self._native, printer, cycle)

    def __reduce__(self) -> "tuple[Any, ...]":
        if self._reopen_path is None:
            raise TypeError(
                "an mmapdict opened from a file object without a path cannot be pickled"
            )
        return (
            _reopen,
            (
                self._reopen_path,
                self._readonly,
                self._pickler_classes,
                self._encoding,
                self._safe,
            ),
        )

    # ---- arrays ----

    def _kind_of(self, value: "Any") -> str:
        # Only modules already imported are looked at: a value's class can only come from one,
        # and an import here (numpy 2 imports ``numpy.ma`` lazily) may be refused by an import
        # hook that a plain array never met.
        modules = sys.modules
        numpy = modules.get("numpy")
        if numpy is None:
            return "generic"
        value_type = type(value)
        if value_type is numpy.ndarray or value_type is numpy.memmap or value_type is _stub_type():
            return "array" if _mappable(value.dtype) else "generic"
        ma = modules.get("numpy.ma")
        if ma is not None and value_type is ma.MaskedArray:
            return "masked" if _mappable(value.dtype) else "generic"
        return "generic"

    def _new_value(self, key: str, value: "Any") -> "_native.NewValue":
        """``value`` as the Rust half stores it, by the first pickler (highest priority
        first) that can pickle it, as the library chooses them."""
        kind = self._kind_of(value)
        if self._builtin_picklers:  # their choice, without their instances
            if kind == "array":
                return self._new_array(key, value)
            if kind == "masked":
                return self._new_masked(key, value)
            return _native.NewPickle(key, pickle.dumps(value, 4))
        from .picklers.base import _new_value_by

        return _new_value_by(self, key, value, kind)

    def _new_array(self, key: str, value: "Any") -> "_native.NewValue":
        shape = [int(dim) for dim in value.shape]
        if type(value) is _stub_type():
            return _native.NewStub(key, str(value.dtype), shape)
        return _native.NewArray(key, str(value.dtype), shape, _pwriter(_c_order_bytes(value)))

    def _new_masked(self, key: str, value: "Any") -> "_native.NewValue":
        data = value.data
        mask = sys.modules["numpy.ma"].getmaskarray(value)
        return _native.NewMasked(
            key,
            str(data.dtype),
            [int(dim) for dim in data.shape],
            _c_order_bytes(data).tobytes(),
            _c_order_bytes(mask.astype(bool, copy=False)).tobytes(),
        )

    def _memmap(self, place: "_native.ArrayPlace") -> "Any":
        """The array at ``place``: a ``numpy.memmap`` view of the handle's one map of the
        file (no open, no map, no page fault again per ``m[key]``)."""
        numpy = _import_numpy()
        dtype = _dtype_named(place.dtype)
        shape = tuple(place.shape)
        start = place.data_offset
        if self._maps is not None:
            # A file object's file is vacuumed in place: each array keeps a map of its own,
            # so that a vacuum knows whether any is alive.
            array = numpy.memmap(
                self._path, dtype=dtype, mode=self._map_mode(), offset=start, shape=shape
            )
            self._maps.add(array.base if array.base is not None else array)
            return array
        length = dtype.itemsize
        for dim in shape:
            length *= dim
        end = start + length
        whole = self._whole_map
        if whole is None or self._whole_map_id != place.file_id or end > len(whole):
            whole = self._map_whole_file(place.file_id)
            if end > len(whole):
                raise ValueError(
                    f"{self._path}: an array at bytes {start}..{end} of a file of {len(whole)}"
                )
        array = numpy.ndarray.__new__(numpy.memmap, shape, dtype=dtype, buffer=whole, offset=start)
        # What ``numpy.memmap(path, offset=...)`` sets: slices of it stay memmaps, flush()
        # syncs the map (the array's base).
        array._mmap = whole
        array.filename = self._whole_map_name
        array.offset = start
        array.mode = self._map_mode()
        return array

    def _replaced_again(self, read: "Callable[[], _T]") -> "_T":
        """``read()``, done again when a vacuum replaced the file between finding a place
        and mapping it."""
        for _ in range(_REPLACED_TRIES):
            try:
                return read()
            except _Replaced:
                pass
        raise ValueError(
            f"{self._path}: vacuums replaced the file {_REPLACED_TRIES} times while it was read"
        )

    def _map_mode(self) -> str:
        return "r" if self._readonly else "r+"

    def _map_whole_file(self, file_id: tuple[int, int]) -> "Any":
        """A new map of the whole file that ``file_id`` names (``(device, inode)``), kept by
        the handle; ``_Replaced`` if the path names another file now (a vacuum ran after
        the place was found)."""
        import mmap

        # An `mmap` of a descriptor, not `numpy.memmap(path)`: a tenth of the time.
        descriptor = os.open(self._path, os.O_RDONLY if self._readonly else os.O_RDWR)
        try:
            status = os.fstat(descriptor)
            if (status.st_dev, status.st_ino) != tuple(file_id):
                raise _Replaced
            access = mmap.ACCESS_READ if self._readonly else mmap.ACCESS_WRITE
            whole = mmap.mmap(descriptor, status.st_size, access=access)
        finally:
            os.close(descriptor)
        self._whole_map = whole
        self._whole_map_id = tuple(file_id)
        self._whole_map_name = os.path.abspath(self._path)
        return whole

    def _masked(self, data_place: "_native.ArrayPlace", mask_place: "_native.ArrayPlace") -> "Any":
        return masked_array(self._memmap(data_place), self._memmap(mask_place))


def _Values(mapping: "mmapdict") -> "ValuesView[Any]":
    """``mmapdict.values()`` (its class is made on first use: see :mod:`mmappickle._views`)."""
    from ._views import _Values

    return _Values(mapping)


def _Items(mapping: "mmapdict") -> "ItemsView[str, Any]":
    """``mmapdict.items()`` (its class is made on first use: see :mod:`mmappickle._views`)."""
    from ._views import _Items

    return _Items(mapping)


def _reopen(
    path: str,
    readonly: bool,
    picklers: "Sequence[type[BasePickler]] | None",
    encoding: str,
    safe: bool,
) -> "mmapdict":
    """Unpickles an mmapdict: reopens its path in its mode."""
    return mmapdict(path, readonly, picklers, encoding=encoding, safe=safe)


def masked_array(data: "Any", mask: "Any") -> "Any":
    """The ``numpy.ma.MaskedArray`` of a masked entry's two parts (local or remote)."""
    ma = _import_numpy().ma
    if mask.shape != data.shape:
        # Written by the Python library without a mask (0-d mask).
        return ma.MaskedArray(data, mask=bool(mask))
    # copy=False: a mapped mask stays a view of its map, so that changes reach the file.
    return ma.MaskedArray(data, mask=mask, copy=False)


def _special_types() -> tuple[type, ...]:
    """The types of values that are not generic (``mmapdict._kind_of``): arrays, memmaps,
    stubs and masked arrays, of the modules imported."""
    modules = sys.modules
    numpy = modules.get("numpy")
    if numpy is None:
        return ()
    special = [numpy.ndarray, numpy.memmap]
    stub = _stub_type()
    if stub is not None:
        special.append(stub)
    ma = modules.get("numpy.ma")
    if ma is not None:
        special.append(ma.MaskedArray)
    return tuple(special)


def _stub_type() -> "Any":
    """``EmptyNDArray`` if its module was imported (a stub can only exist if it was)."""
    stubs = sys.modules.get("mmappickle.stubs.numpy")
    return None if stubs is None else stubs.EmptyNDArray


def _import_numpy() -> "Any":
    import numpy

    return numpy


# numpy's dtypes by name: parsing a name costs a microsecond, an array get about six.
_DTYPES: "dict[str, Any]" = {}


def _dtype_named(name: str) -> "Any":
    dtype = _DTYPES.get(name)
    if dtype is None:
        dtype = _DTYPES[name] = _import_numpy().dtype(name)
    return dtype


def _mappable(dtype: "Any") -> bool:
    """Whether arrays of ``dtype`` are stored as mapped arrays (fixed-size, unstructured);
    others (object, structured) are pickled as generic values."""
    return not dtype.hasobject and dtype.fields is None and dtype.kind != "V"


def _c_order_bytes(array: "Any") -> "Any":
    """The array's bytes in C order, as a flat ``uint8`` view (a copy only when the array is
    not C-contiguous)."""
    numpy = _numpy()
    if not array.flags.c_contiguous:
        array = numpy.array(array, order="C")
    return array.reshape(-1).view(numpy.uint8)


def _pwriter(raw: "Any") -> "Any":
    """A writer of ``raw`` into the file: ``os.pwrite`` from the array's own buffer (it
    releases the GIL while it writes)."""
    view = memoryview(raw)

    def write(fd: int, offset: int, length: int) -> None:
        if length != len(view):
            raise ValueError(f"array of {len(view)} bytes where {length} are expected")
        done = 0
        while done < length:
            done += os.pwrite(fd, view[done:], offset + done)

    return write


def _make_array(dtype: str, shape: list[int], raw: bytes) -> "Any":
    """A numpy array pickled by numpy, built by a safe mmapdict from its decoded parts."""
    numpy = _import_numpy()
    return numpy.frombuffer(raw, dtype=_dtype_named(dtype)).reshape(shape).copy()


__all__ = ["GenericPickler", "mmapdict"]  # noqa: F822  (GenericPickler: by __getattr__)
