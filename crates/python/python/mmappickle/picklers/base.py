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
"""

from ..dict import ArrayPickler, BasePickler, GenericPickler, MaskedArrayPickler

__all__ = ["ArrayPickler", "BasePickler", "GenericPickler", "MaskedArrayPickler"]
