"""What an ``mmapdict`` opened from a file object needs beyond a path, imported on the first
such open: the file's path, the conversion of a plain pickle and the vacuum, both rewriting
the file in place so that the file object keeps naming it, and the scratch file that a
process killed during such a rewrite leaves."""

from __future__ import annotations

import os

from . import _native
from .dict import _flush, _forget_read_buffer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .dict import mmapdict


def path_of_file_object(file: Any) -> tuple[str, str | None, bool]:
    """``(path to open, path to reopen when unpickled or None, whether the file object is
    read-only)`` of an open binary file object."""
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise TypeError(
            f"mmapdict needs a path (str or os.PathLike) or a binary file object with "
            f"fileno(), not {type(file).__name__}"
        )
    try:
        fd = fileno()
    except (OSError, ValueError) as error:  # io.BytesIO, closed files
        raise TypeError(f"mmapdict needs a file object with a file descriptor: {error}") from None
    writable = getattr(file, "writable", None)
    readonly = writable is not None and not writable()
    name = getattr(file, "name", None)
    if isinstance(name, str):
        try:
            if os.path.samestat(os.stat(name), os.fstat(fd)):
                return os.path.abspath(name), os.path.abspath(name), readonly
        except OSError:
            pass
    # A file without a name (tempfile.TemporaryFile()): the descriptor's own path.
    return f"/proc/self/fd/{fd}", None, readonly


def convert_plain_pickle(
    file: Any, path: str, reopen_path: str | None, readonly: bool, encoding: str
) -> None:
    """Before an open from the file object ``file``: what it holds in its write buffer
    reaches the file, and a plain pickle of a dict (``pickle.dump(d, file)``) is converted
    in place, so that ``file`` still names the file (under the file's lock, as every
    change): ``ValueError`` if it is not one."""
    _flush(file)
    if readonly or _native.is_container(path) or not os.stat(path).st_size:
        return
    import fcntl

    fcntl.flock(file.fileno(), fcntl.LOCK_EX)
    try:
        if _native.is_container(path):  # converted by another process meanwhile
            return

        def convert(scratch: str) -> bool:
            _native.NativeDict(scratch, False, encoding == "portable", False).close()
            return True

        _rewrite_in_place(file, reopen_path, convert)
    finally:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def vacuum_in_place(m: mmapdict, file: Any) -> None:
    """``m.vacuum()`` of an mmapdict opened from the file object ``file``: the file is
    rewritten in place, refused while an array mapped from it is alive (the bytes move
    under it)."""
    if m._maps:
        raise ValueError(
            f"{len(m._maps)} array(s) mapped from this file are alive: a vacuum of a "
            "file opened from a file object rewrites it in place, under them"
        )
    portable = m._encoding == "portable"

    def vacuumed(scratch: str) -> bool:
        native = _native.NativeDict(scratch, False, portable, False)
        try:
            return native.vacuum()[0] > 0
        finally:
            native.close()

    _flush(file)
    try:
        m._native.locked(lambda: _rewrite_in_place(file, m._reopen_path, vacuumed))
    finally:
        _forget_read_buffer(file)


def _rewrite_in_place(file: Any, reopen_path: str | None, rewrite: Callable[[str], bool]) -> None:
    """Rewrites the file of the file object ``file`` in place, so that ``file`` keeps naming
    it: the file is copied to a scratch file, ``rewrite(scratch path)`` (the Rust half: a
    convert, a vacuum) turns the copy into the new file and returns whether it changed it,
    the new file is copied back over the old one from byte 0 and the rest is cut.

    Beside a named file, the copy is ``<path>.rewriting-<pid>``, synced and renamed
    ``<path>.rewrite-<pid>`` once it is the whole new file. A kill before the copy back
    leaves the file as it was; during it, the new file's head followed by the old file's
    tail (opening it fails at the first torn entry, naming ``<path>.rewrite-<pid>``, or
    reads it whole where the two meet between entries): ``mv`` that file over the path;
    after it, the old tail after the new terminator, which the next read-write open cuts.
    ``<path>.rewrite-<pid>`` is removed once the new file is synced.
    """
    fd = file.fileno()
    if reopen_path is None:  # a file without a name: nothing to recover after a crash
        import tempfile

        scratch_fd, work = tempfile.mkstemp(prefix="mmappickle-rewrite-")
        os.close(scratch_fd)
        whole = work
    else:
        work = f"{reopen_path}.rewriting-{os.getpid()}"
        whole = f"{reopen_path}.rewrite-{os.getpid()}"
    copying_back = False
    try:
        with open(work, "wb") as copy:
            _copy_bytes(fd, copy.fileno(), os.fstat(fd).st_size)
        if not rewrite(work):
            return
        # The Rust half renamed the new file over the scratch path: open it again.
        with open(work, "rb") as new:
            length = os.fstat(new.fileno()).st_size
            os.fsync(new.fileno())
            if whole != work:
                os.rename(work, whole)
                _sync_directory(whole)
            copying_back = True
            _copy_bytes(new.fileno(), fd, length)
        os.fsync(fd)
        os.ftruncate(fd, length)
        os.fsync(fd)
        copying_back = False
    except OSError as error:
        if copying_back and reopen_path is not None:
            raise OSError(
                error.errno,
                f"{error.strerror}: the file was rewritten in part; {whole} holds the whole "
                f"new file: move it over {reopen_path}",
            ) from error
        raise
    finally:
        for scratch in {work, whole}:
            if scratch == work or not copying_back or reopen_path is None:
                try:
                    os.unlink(scratch)
                except FileNotFoundError:
                    pass


def _copy_bytes(source: int, target: int, length: int) -> None:
    """Copies the first ``length`` bytes of the file ``source`` over those of ``target``."""
    offset = 0
    while offset < length:
        count = min(length - offset, 1 << 24)
        try:
            copied = os.copy_file_range(source, target, count, offset, offset)
        except (AttributeError, OSError):  # not Linux; file systems that refuse it
            copied = os.pwrite(target, os.pread(source, count, offset), offset)
        if copied == 0:
            raise OSError(f"the file ended at byte {offset} of {length} during a copy")
        offset += copied


def _sync_directory(path: str) -> None:
    """``fsync`` of the directory holding ``path`` (a rename into it survives a crash)."""
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def rewrite_scratch(path: str | None) -> str | None:
    """The scratch file left beside ``path`` by an in-place rewrite that was killed during
    its copy back, if any."""
    if path is None:
        return None
    directory, name = os.path.split(path)
    prefix = f"{name}.rewrite-"
    try:
        found = sorted(entry for entry in os.listdir(directory) if entry.startswith(prefix))
    except OSError:
        return None
    return os.path.join(directory, found[-1]) if found else None
