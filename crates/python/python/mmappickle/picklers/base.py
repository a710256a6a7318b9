"""The base of the pickler markers, and the pickler of generic values."""

from __future__ import annotations

from typing import ClassVar


class BasePickler:
    """A kind of value an mmapdict may store (see :mod:`mmappickle.picklers`).

    The Python library's picklers wrote the file themselves; here the file format is written
    in Rust, so a pickler only names a kind. Subclasses other than the three of this package
    are refused by :class:`mmappickle.mmapdict` with a ``TypeError``.
    """

    kind: ClassVar[str] = ""
    priority: ClassVar[int] = 0

    def __init__(self, parent_object: object = None) -> None:
        self._parent_object = parent_object


class GenericPickler(BasePickler):
    """Any picklable value: ``pickle.dumps(value, 4)``, framed into the file by Rust."""

    kind = "generic"
    priority = -100
