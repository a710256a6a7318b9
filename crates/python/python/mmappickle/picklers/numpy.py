"""The picklers of numpy arrays and masked arrays (as in the library, this module needs
numpy; the classes live in :mod:`mmappickle.picklers.base`, so that an ``mmapdict`` finds
them without importing numpy)."""

import numpy  # noqa: F401  (as in the Python library: this module needs numpy)

from .base import ArrayPickler, MaskedArrayPickler

__all__ = ["ArrayPickler", "MaskedArrayPickler"]
