"""The views of ``mmapdict.values()`` and ``mmapdict.items()``, imported on first use: a
subclass of ``ValuesView`` or ``ItemsView`` costs a new process about a tenth of a
millisecond to make, which opening a file and listing its keys need not pay."""

from __future__ import annotations

from collections.abc import ItemsView, ValuesView

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from .dict import mmapdict

    _ValuesBase = ValuesView[Any]
    _ItemsBase = ItemsView[str, Any]
else:
    _ValuesBase, _ItemsBase = ValuesView, ItemsView


class _Values(_ValuesBase):
    """``mmapdict.values()``: each iteration reads from one state of the file."""

    def __init__(self, mapping: mmapdict) -> None:
        super().__init__(mapping)
        self._dict = mapping

    def __iter__(self) -> Iterator[Any]:
        return iter(self._dict._snapshot().values())


class _Items(_ItemsBase):
    """``mmapdict.items()``: each iteration reads from one state of the file."""

    def __init__(self, mapping: mmapdict) -> None:
        super().__init__(mapping)
        self._dict = mapping

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._dict._snapshot().items())
