"""The Leech lattice Λ24 (unit volume: 1/√8 times its integer frame)."""

from __future__ import annotations

import numpy as np
import torch

from ltc_beam.lattices.base import Lattice, dn_generators
from ltc_beam.lattices.codes import gf2_basis, golay_code
from ltc_beam.lattices.leech_decoder import nearest_leech_frame


def leech_cosets() -> np.ndarray:
    """The 8192 representatives of Λ24 (√8 frame) modulo 4·D24: 2c and (-3, 1, …, 1) + 2c."""
    golay = golay_code()
    odd = np.ones(24, dtype=np.int64)
    odd[0] = -3
    return np.vstack([2 * golay, odd + 2 * golay])


class LeechLattice(Lattice):
    """Λ24 = 4·D24 + {2c, (-3, 1, …, 1) + 2c : c ∈ Golay}, with a fast exact soft decoder.

    The decoder (:mod:`ltc_beam.lattices.leech_decoder`) works through the MOG/hexacode
    structure of the Golay code; :class:`~ltc_beam.lattices.reference.ReferenceDecoder`
    is its slow exhaustive oracle.
    """

    name, nsm, reference_step = "leech", 0.065771, 4

    def __init__(self):
        golay = golay_code()
        odd = leech_cosets()[4096:4097]
        super().__init__(np.vstack([4 * dn_generators(24), 2 * gf2_basis(golay), odd]))

    def _nearest_frame(self, u: torch.Tensor) -> torch.Tensor:
        return nearest_leech_frame(u)
