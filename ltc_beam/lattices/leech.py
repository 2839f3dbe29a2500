"""The Leech lattice Λ24 (unit volume: 1/√8 times its integer frame)."""

from __future__ import annotations

import numpy as np
from ltc_beam.lattices.base import CosetUnionLattice
from ltc_beam.lattices.codes import gf2_basis, golay_code


def leech_cosets() -> np.ndarray:
    """The 8192 representatives of Λ24 (√8 frame) modulo 4·D24: 2c and (-3, 1, …, 1) + 2c."""
    golay = golay_code()
    odd = np.ones(24, dtype=np.int64)
    odd[0] = -3
    return np.vstack([2 * golay, odd + 2 * golay])


class LeechLattice(CosetUnionLattice):
    """Λ24, decoded by exhaustive search over its 8192 cosets of 4·D24."""

    name, nsm, reference_step = "leech", 0.065771, 4

    def __init__(self):
        reps = leech_cosets()
        generators = np.vstack([2 * gf2_basis(golay_code()), reps[4096:4097]])
        super().__init__(reps, step=4, generators=generators)
