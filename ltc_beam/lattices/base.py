"""The Lattice object: nearest point, Voronoi sampling, and the triangular coding basis.

Every lattice is held as ``scale * diag(axis) * M`` where ``M`` is an integer lattice (the
*frame*). Decoders work on frame coordinates; the coding basis is the Hermite normal form
of ``M``, so integer coordinates ``k`` with ``y_hat = L @ k`` are computed exactly.
"""

from __future__ import annotations

import functools
import itertools
from abc import ABC, abstractmethod

import numpy as np
import torch

from ltc_beam.errors import InputError
from ltc_beam.lattices.hermite import hermite_rows, phase_steps
from ltc_beam.lattices.nearest import nearest_in_cosets, nearest_scaled_dn

#: Frame coordinates up to these sizes keep their sums (of up to 24 coordinates) exact in
#: float32 (2**24) and float64 (2**53): the nearest-point searches decide parities on them.
FLOAT32_EXACT_FRAME = 2.0**19
FLOAT64_EXACT_FRAME = 2.0**48


class Lattice(ABC):
    """A unit-volume lattice in R^dim with an exact nearest-point decoder."""

    name: str
    nsm: float  # textbook normalised second moment G
    reference_step: int  # the slow reference decoder enumerates cosets of reference_step * D_n

    def __init__(self, frame_generators: np.ndarray, axis: np.ndarray | None = None):
        upper = hermite_rows(frame_generators)
        self.dim = upper.shape[0]
        self.axis = np.ones(self.dim) if axis is None else np.asarray(axis, dtype=np.float64)
        frame_det = float(np.prod(np.diag(upper).astype(np.float64)) * np.prod(self.axis))
        self.scale = frame_det ** (-1.0 / self.dim)
        self._upper = upper
        self._steps = phase_steps(upper)
        self._unit = self.scale * self.axis  # Euclidean length of one frame unit, per axis
        self._weights = torch.from_numpy(self.axis**2)

    # ----------------------------------------------------------------- geometry
    @property
    def generator(self) -> np.ndarray:
        """Basis vectors as rows (float64, |det| = 1)."""
        return self._upper * self._unit

    @property
    def coding_basis(self) -> np.ndarray:
        """Lower-triangular L with ``y_hat = L @ k`` for integer k (columns are basis vectors)."""
        return self.generator.T.copy()

    @property
    def coding_pivots(self) -> np.ndarray:
        """diag(L): the grid step of each coordinate given the earlier ones."""
        return np.diag(self.coding_basis).copy()

    @property
    def frame_unit(self) -> np.ndarray:
        """Euclidean length of one frame unit along each axis (``y = frame * frame_unit``)."""
        return self._unit.copy()

    @property
    def frame_basis(self) -> np.ndarray:
        """Upper-triangular integer basis (rows) of the frame lattice; its diagonal holds the pivots."""
        return self._upper.copy()

    @functools.cached_property
    def frame_period(self) -> int:
        """The least m with m · Z^n inside the frame lattice: its points, and so the share of
        each coset in a coordinate's values, repeat with this period along every axis."""
        axes = torch.eye(self.dim, dtype=torch.float64) * torch.from_numpy(self._unit)
        for m in itertools.count(1):
            try:
                self.to_integer(m * axes)  # refuses a point off the lattice
            except ValueError:
                continue
            return m

    @property
    def phase_steps(self) -> np.ndarray:
        """Per coordinate, the frame spacing of its phases (phases = pivot / step of them)."""
        return self._steps.copy()

    @property
    def phases(self) -> list[np.ndarray]:
        """Per coordinate, the possible offsets (mod its pivot) given the earlier coordinates."""
        out = []
        for i in range(self.dim):
            count = int(self._upper[i, i] // self._steps[i])
            out.append(np.arange(count) * self._steps[i] * self._unit[i])
        return out

    # ----------------------------------------------------------------- decoding
    @abstractmethod
    def _nearest_frame(self, u: torch.Tensor) -> torch.Tensor:
        """Nearest point of the frame lattice to ``u`` (frame coordinates, float tensor)."""

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """Exact nearest lattice point of each vector in ``y[..., dim]``; same dtype and device."""
        self._check_last(y)
        unit = torch.as_tensor(self._unit, dtype=y.dtype, device=y.device)
        return self._nearest_frame(y / unit) * unit

    def quantize_frame(self, y: torch.Tensor) -> torch.Tensor:
        """Like :meth:`quantize` but returns integer frame coordinates as int64. Far out
        (beyond :data:`FLOAT32_EXACT_FRAME`) the search runs in float64: float32 sums of such
        coordinates round, and a parity decided on a rounded sum gives a point outside the
        lattice, which no decoder rebuilds. Beyond :data:`FLOAT64_EXACT_FRAME` none is: refused."""
        self._check_last(y)
        unit = torch.as_tensor(self._unit, dtype=torch.float64, device=y.device)
        far = float(y.abs().max()) / float(unit.min()) if y.numel() else 0.0
        if far < FLOAT32_EXACT_FRAME:
            return self._nearest_frame(y / unit.to(y.dtype)).to(torch.int64)
        if not far < FLOAT64_EXACT_FRAME:  # NaN included
            raise InputError(f"a latent of {far:.3g} lattice units is beyond what {self.name} codes exactly")
        return self._nearest_frame(y.to(torch.float64) / unit).to(torch.int64)

    def quantize_blocks(self, y: torch.Tensor, axis: int = -1) -> torch.Tensor:
        """Quantize consecutive groups of ``dim`` entries along ``axis`` as lattice points.

        ``axis=-1`` quantizes a latent longer than the lattice; ``axis=0`` on ``[records,
        channels]`` runs the lattice across records (block mode).
        """
        moved = torch.movedim(y, axis, -1)
        size = moved.shape[-1]
        if size % self.dim:
            raise ValueError(f"axis of length {size} is not a multiple of {self.name} dimension {self.dim}")
        grouped = moved.reshape(*moved.shape[:-1], size // self.dim, self.dim)
        return torch.movedim(self.quantize(grouped).reshape(moved.shape), -1, axis)

    # ----------------------------------------------------------------- coding basis
    def to_integer(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Integer coordinates k (int64) of lattice points ``y_hat``: ``y_hat = L @ k``."""
        self._check_last(y_hat)
        unit = torch.as_tensor(self._unit, dtype=torch.float64, device=y_hat.device)
        m = torch.round(y_hat.to(torch.float64) / unit).to(torch.int64)
        upper = torch.as_tensor(self._upper, device=y_hat.device)
        k = torch.empty_like(m)
        for i in range(self.dim):
            rest = m[..., i] - (k[..., :i] * upper[:i, i]).sum(-1)
            if bool((torch.remainder(rest, upper[i, i]) != 0).any()):
                raise ValueError(f"input is not a point of lattice {self.name}")
            k[..., i] = torch.div(rest, upper[i, i], rounding_mode="floor")
        return k

    def from_integer(self, k: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Lattice points ``L @ k`` for integer coordinates ``k[..., dim]``."""
        self._check_last(k)
        upper = torch.as_tensor(self._upper, device=k.device)
        m = (k.to(torch.int64).unsqueeze(-1) * upper).sum(-2)
        unit = torch.as_tensor(self._unit, dtype=torch.float64, device=k.device)
        return (m.to(torch.float64) * unit).to(dtype)

    def phase_index(self, k: torch.Tensor) -> torch.Tensor:
        """Index into :attr:`phases` of each coordinate's offset given the earlier coordinates."""
        upper = torch.as_tensor(self._upper, device=k.device)
        offset = (k.to(torch.int64).unsqueeze(-1) * torch.triu(upper, diagonal=1)).sum(-2)
        pivots = torch.as_tensor(np.diag(self._upper).copy(), device=k.device)
        steps = torch.as_tensor(self._steps, device=k.device)
        return torch.div(torch.remainder(offset, pivots), steps, rounding_mode="floor")

    def offsets(self, k: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``y_hat_i - L_ii * k_i``: each coordinate's grid offset given the earlier coordinates."""
        upper = torch.as_tensor(self._upper, device=k.device)
        m = (k.to(torch.int64).unsqueeze(-1) * torch.triu(upper, diagonal=1)).sum(-2)
        unit = torch.as_tensor(self._unit, dtype=torch.float64, device=k.device)
        return (m.to(torch.float64) * unit).to(dtype)

    # ----------------------------------------------------------------- sampling
    def sample_voronoi(self, m: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``m`` points uniform in the Voronoi cell of the origin (float64, CPU)."""
        t = torch.rand(m, self.dim, dtype=torch.float64, generator=generator)
        u = t @ torch.from_numpy(self.generator)
        return u - self.quantize(u)

    def _check_last(self, t: torch.Tensor) -> None:
        if t.shape[-1] != self.dim:
            raise ValueError(f"{self.name} expects a last axis of {self.dim}, got shape {tuple(t.shape)}")

    def __repr__(self) -> str:
        return f"Lattice({self.name!r}, dim={self.dim})"


class CosetUnionLattice(Lattice):
    """A lattice given as the union of cosets ``c + step * D_n`` (or ``Z^n``-like unions).

    The decoder evaluates every coset exhaustively: exact, and fast when there are few.
    """

    def __init__(
        self,
        representatives: np.ndarray,
        step: int,
        axis: np.ndarray | None = None,
        generators: np.ndarray | None = None,
    ):
        reps = np.asarray(representatives, dtype=np.int64)
        n = reps.shape[1]
        extra = reps if generators is None else np.asarray(generators, dtype=np.int64)
        super().__init__(np.vstack([step * dn_generators(n), extra]), axis)
        self._reps = torch.from_numpy(reps.astype(np.float64))
        self._step = float(step)

    def _nearest_frame(self, u: torch.Tensor) -> torch.Tensor:
        weights = None if np.all(self.axis == 1) else self._weights.to(u.device, u.dtype)
        if self._reps.shape[0] == 1 and not self._reps.any():
            return nearest_scaled_dn(u, self._step, weights)[0]
        return nearest_in_cosets(u, self._reps, self._step, weights)


def dn_generators(n: int) -> np.ndarray:
    """Generators of D_n (integer vectors with even coordinate sum)."""
    gens = [np.eye(n, dtype=np.int64)[0] * 2]
    for i in range(1, n):
        v = np.zeros(n, dtype=np.int64)
        v[i - 1], v[i] = -1, 1
        gens.append(v)
    if n == 1:
        return np.array([[2]], dtype=np.int64)
    return np.array(gens)

