"""Slow, obviously correct nearest-point decoder: exhaustive search over cosets of a·D_n.

Used as the oracle in tests and benchmarks. The cosets of ``a·D_n`` in the lattice's
integer frame are enumerated generically from the frame basis, independently of the
structure each fast decoder exploits.
"""

from __future__ import annotations

import numpy as np
import torch

from ltc_beam.lattices.base import Lattice
from ltc_beam.lattices.nearest import nearest_in_cosets


def coset_representatives(lattice: Lattice, step: int) -> np.ndarray:
    """Canonical representatives of the frame lattice modulo ``step * D_n`` (breadth-first)."""
    basis = lattice._upper
    n = lattice.dim

    def canonical(x: np.ndarray) -> np.ndarray:
        r = np.mod(x, step)
        parity = ((x - r) // step).sum(-1) % 2
        r[:, 0] += parity * step
        return r

    seen = {tuple(np.zeros(n, dtype=np.int64))}
    frontier = np.zeros((1, n), dtype=np.int64)
    while len(frontier):
        candidates = canonical((frontier[:, None, :] + basis[None, :, :]).reshape(-1, n))
        fresh = []
        for row in np.unique(candidates, axis=0):
            key = tuple(row)
            if key not in seen:
                seen.add(key)
                fresh.append(row)
        frontier = np.array(fresh, dtype=np.int64).reshape(-1, n)
    return np.array(sorted(seen), dtype=np.int64)


class ReferenceDecoder:
    """Nearest point of ``lattice`` by exhaustive coset search (slow)."""

    def __init__(self, lattice: Lattice, step: int | None = None):
        self.lattice = lattice
        self.step = lattice.reference_step if step is None else step
        self.representatives = torch.from_numpy(coset_representatives(lattice, self.step).astype(np.float64))

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        unit = torch.as_tensor(self.lattice._unit, dtype=y.dtype, device=y.device)
        weights = torch.as_tensor(self.lattice.axis**2, dtype=y.dtype, device=y.device)
        return nearest_in_cosets(y / unit, self.representatives, float(self.step), weights) * unit
