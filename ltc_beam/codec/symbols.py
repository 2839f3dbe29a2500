"""Lattice points ↔ integer symbols of the coding basis, one lattice coordinate per step.

For coordinate i with frame pivot p_i, a point's frame coordinate is ``m_i = offset_i +
p_i * k_i`` where ``offset_i`` depends on the earlier integer coordinates. The coded
symbol is ``s_i = floor(m_i / p_i)`` under the table of phase ``(m_i mod p_i) / g_i``: the
decoder knows that phase from the earlier coordinates before it needs it.
"""

from __future__ import annotations

import numpy as np

from ltc_beam.lattices import Lattice


class SymbolMapper:
    """Splits frame points into (symbol, phase) per coordinate, and rebuilds them step by step."""

    def __init__(self, lattice: Lattice):
        self.dim = lattice.dim
        self.basis = lattice.frame_basis
        self.pivots = np.diag(self.basis).copy()
        self.steps = lattice.phase_steps
        self.phase_counts = self.pivots // self.steps

    def split(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame points ``[P, n]`` (int64) → symbols ``[P, n]`` and phase indices ``[P, n]``."""
        symbols = np.floor_divide(frame, self.pivots)
        phases = np.mod(frame, self.pivots) // self.steps
        return symbols, phases

    def start(self, points: int) -> "PointBuilder":
        return PointBuilder(self, points)


class PointBuilder:
    """Rebuilds frame points coordinate by coordinate while symbols are decoded."""

    def __init__(self, mapper: SymbolMapper, points: int):
        self.mapper = mapper
        self.k = np.zeros((points, mapper.dim), dtype=np.int64)
        self.frame = np.zeros((points, mapper.dim), dtype=np.int64)
        self.coordinate = 0

    def _offset(self) -> np.ndarray:
        i = self.coordinate
        return self.k[:, :i] @ self.mapper.basis[:i, i]

    def phases(self) -> np.ndarray:
        """Phase index of the next coordinate of every point."""
        i = self.coordinate
        return np.mod(self._offset(), self.mapper.pivots[i]) // self.mapper.steps[i]

    def push(self, symbols: np.ndarray) -> None:
        """Add the decoded symbols of the next coordinate."""
        i = self.coordinate
        offset = self._offset()
        p = self.mapper.pivots[i]
        self.k[:, i] = symbols - np.floor_divide(offset, p)
        self.frame[:, i] = offset + p * self.k[:, i]
        self.coordinate += 1
