"""Every query of the state store. (Being written.)"""

from __future__ import annotations


class Store:
    """Facade over the state store engine; every SQL statement lives in this module."""
