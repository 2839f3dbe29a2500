"""Lattices for lattice transform coding: ``get(name)`` returns a unit-volume :class:`Lattice`.

Names: ``z<n>`` (any n >= 1), ``a2``, ``d4``, ``d4*``, ``e8``, ``bw16``, ``leech``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ltc_beam.lattices.base import Lattice
from ltc_beam.lattices.catalog import (
    BarnesWall16,
    CheckerboardD4,
    DualD4,
    GossetE8,
    HexagonalA2,
    IntegerLattice,
)
from ltc_beam.lattices.leech import LeechLattice

_NAMED = {
    "a2": HexagonalA2,
    "d4": CheckerboardD4,
    "d4*": DualD4,
    "e8": GossetE8,
    "bw16": BarnesWall16,
    "leech": LeechLattice,
}
NAMES = ("z<n>", *_NAMED)


@lru_cache(maxsize=None)
def get(name: str) -> Lattice:
    """The lattice called ``name`` (case-insensitive); raises ValueError for unknown names."""
    if not isinstance(name, str):  # None, 8: an AttributeError on .strip
        raise ValueError(f"a lattice is named by text, such as 'e8' or 'z8' ({', '.join(NAMES)}); got {name!r}")
    key = name.strip().lower()
    match = re.fullmatch(r"z(\d+)", key)
    if match:
        return IntegerLattice(int(match.group(1)))
    if key in _NAMED:
        return _NAMED[key]()
    raise ValueError(f"unknown lattice {name!r}; choose one of {', '.join(NAMES)}")


__all__ = ["Lattice", "get", "NAMES"]
