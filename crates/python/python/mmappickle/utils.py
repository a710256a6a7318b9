"""The decorators of the library's ``mmappickle.utils`` that picklers written for the library
use."""

from __future__ import annotations

import functools
import io

TYPE_CHECKING = False  # no ``typing`` at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    _Method = TypeVar("_Method", bound=Callable[..., Any])

__all__ = ["require_writable", "save_file_position"]


def save_file_position(method: _Method) -> _Method:
    """Keeps ``self._file``'s position across a call of ``method``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        position = self._file.tell()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._file.seek(position, io.SEEK_SET)

    return wrapper  # type: ignore[return-value]


def require_writable(method: _Method) -> _Method:
    """Raises ``io.UnsupportedOperation`` when ``self._file`` is not writable."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._file.writable():
            raise io.UnsupportedOperation("not writable")
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
