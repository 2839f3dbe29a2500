"""The lattices of the paper, each with its frame and fast exact decoder."""

from __future__ import annotations

import numpy as np
import torch

from ltc_beam.lattices.base import CosetUnionLattice, Lattice
from ltc_beam.lattices.codes import reed_muller_1_4
from ltc_beam.lattices.nearest import nearest_code_union


class IntegerLattice(Lattice):
    """Z^n: rounding (plain neural transform coding)."""

    nsm = 1.0 / 12.0
    reference_step = 1

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("Z^n needs n >= 1")
        self.name = f"z{n}"
        super().__init__(np.eye(n, dtype=np.int64))

    def _nearest_frame(self, u: torch.Tensor) -> torch.Tensor:
        return torch.round(u)


class CheckerboardD4(CosetUnionLattice):
    """D4: integer vectors with even sum."""

    name, nsm, reference_step = "d4", 0.076603, 2

    def __init__(self):
        super().__init__(np.zeros((1, 4)), step=1)


class DualD4(CosetUnionLattice):
    """D4* = Z^4 ∪ (Z^4 + ½), framed as 2Z^4 ∪ (2Z^4 + 1)."""

    name, nsm, reference_step = "d4*", 0.076603, 4

    def __init__(self):
        e1 = np.eye(4, dtype=np.int64)[0]
        ones = np.ones(4, dtype=np.int64)
        super().__init__(np.array([0 * ones, 2 * e1, ones, ones + 2 * e1]), step=2)


class HexagonalA2(CosetUnionLattice):
    """A2, the hexagonal lattice, framed as diag(1, √3)·D2."""

    name, nsm, reference_step = "a2", 0.080188, 2

    def __init__(self):
        super().__init__(np.zeros((1, 2)), step=1, axis=np.array([1.0, np.sqrt(3.0)]))


class GossetE8(CosetUnionLattice):
    """E8 = D8 ∪ (D8 + ½), framed as 2D8 ∪ (2D8 + 1)."""

    name, nsm, reference_step = "e8", 0.071682, 4

    def __init__(self):
        super().__init__(np.array([np.zeros(8), np.ones(8)]), step=2)


class BarnesWall16(CosetUnionLattice):
    """BW16: the 32 cosets of 2·D16 indexed by the Reed–Muller code RM(1,4).

    Decoded by soft-decision over the code (:func:`nearest_code_union`).
    """

    name, nsm, reference_step = "bw16", 0.068299, 2

    def __init__(self):
        super().__init__(reed_muller_1_4(), step=2)

    def _nearest_frame(self, u: torch.Tensor) -> torch.Tensor:
        return nearest_code_union(u, self._reps)
