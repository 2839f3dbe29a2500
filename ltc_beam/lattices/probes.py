"""Lattice probes for tests and benchmarks: short vectors by enumeration, and hard test points.

Independent of the nearest-point decoders: short vectors come from a Fincke–Pohst
enumeration over the triangular (Hermite) frame basis, so counting minimal vectors checks
the frame construction itself, and hard points (Voronoi-cell boundaries, ties) are built
from those vectors.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ltc_beam.lattices.base import Lattice

_MAX_NODES = 20_000_000  # refuse enumerations that would not fit in memory


def lattice_vectors(lattice: Lattice, max_norm: float, tol: float = 1e-9) -> np.ndarray:
    """All lattice points ``y`` with ``|y|² <= max_norm`` (rows, float64, unit-volume coordinates).

    Breadth-first enumeration over the frame's Hermite basis ``R`` (upper triangular, rows
    are basis vectors): frame coordinate ``j`` of ``k @ R`` depends on ``k_0..k_j`` only, so
    each level fixes one integer and prunes on the partial norm.
    """
    upper = lattice._upper
    n = lattice.dim
    weights = lattice._unit**2  # squared length of one frame unit, per axis
    bound = max_norm + tol
    centre = np.zeros((1, n), dtype=np.int64)  # frame coordinates contributed so far
    partial = np.zeros(1)
    for j in range(n):
        pivot = int(upper[j, j])
        radius = np.sqrt(np.maximum(bound - partial, 0.0) / weights[j])
        lo = np.ceil((-radius - centre[:, j]) / pivot).astype(np.int64)
        hi = np.floor((radius - centre[:, j]) / pivot).astype(np.int64)
        counts = np.maximum(hi - lo + 1, 0)
        total = int(counts.sum())
        if total > _MAX_NODES:
            raise MemoryError(f"enumeration of {lattice.name} up to norm {max_norm} is too large")
        parent = np.repeat(np.arange(len(counts)), counts)
        kj = lo[parent] + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        coordinate = centre[parent, j] + kj * pivot
        partial = partial[parent] + weights[j] * coordinate.astype(np.float64) ** 2
        keep = partial <= bound
        parent, kj, partial = parent[keep], kj[keep], partial[keep]
        centre = centre[parent]
        centre[:, j:] += kj[:, None] * upper[j, j:][None, :]
    return centre.astype(np.float64) * lattice._unit


@lru_cache(maxsize=None)
def minimal_vectors(lattice: Lattice, rel_tol: float = 1e-9) -> np.ndarray:
    """The minimal (shortest non-zero) vectors of ``lattice``, found by enumeration (read-only).

    The search radius grows by 10 % steps from 0.5 (unit volume), so the last enumeration
    reaches at most 10 % beyond the minimal norm (Λ24: 196,560 vectors in ~2 s).
    """
    radius = 0.5
    while True:
        vectors = lattice_vectors(lattice, radius)
        norms = (vectors**2).sum(1)
        nonzero = norms > rel_tol
        if nonzero.any():
            least = norms[nonzero].min()
            found = vectors[nonzero & (norms <= least * (1 + rel_tol))]
            found.flags.writeable = False
            return found
        radius *= 1.1


def hard_points(lattice: Lattice, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` float64 test points for a nearest-point decoder, shape ``[count, dim]``.

    Mix: Gaussian at scales 0.05–30 (40 %); exact midpoints between a lattice point and
    a neighbour along a minimal vector — two-way ties on the Voronoi boundary (15 %); the
    same perturbed by 1e-12..1e-6 (15 %); midpoints between a lattice point and a random
    nearby lattice point, ties between possibly more points (10 %); half-sums of two
    minimal vectors (5 %); lattice points themselves (15 %).
    """
    rng = np.random.default_rng(seed)
    n = lattice.dim
    minimal = minimal_vectors(lattice)

    def lattice_points(m: int) -> np.ndarray:
        k = rng.integers(-6, 7, size=(m, n))
        return lattice.from_integer(torch.from_numpy(k)).numpy()

    sizes = np.array([0.40, 0.15, 0.15, 0.10, 0.05, 0.15]) * count
    sizes = np.floor(sizes).astype(int)
    sizes[0] += count - sizes.sum()
    gauss, mid, near, pair, holes, fixed = sizes
    scales = np.array([0.05, 0.3, 1.0, 3.0, 30.0])
    parts = [rng.standard_normal((gauss, n)) * scales[rng.integers(0, len(scales), gauss)][:, None]]
    base = lattice_points(mid + near)
    edge = base + 0.5 * minimal[rng.integers(0, len(minimal), mid + near)]
    parts.append(edge[:mid])
    size = 10.0 ** rng.uniform(-12, -6, near)
    parts.append(edge[mid:] + rng.standard_normal((near, n)) * size[:, None])
    other = np.rint(rng.standard_normal((pair, n)) * 1.5).astype(np.int64)
    step = lattice.from_integer(torch.from_numpy(other)).numpy()
    parts.append(lattice_points(pair) + 0.5 * step)
    two = minimal[rng.integers(0, len(minimal), (holes, 2))]
    parts.append(lattice_points(holes) + 0.5 * two.sum(1))
    parts.append(lattice_points(fixed))
    return torch.from_numpy(np.concatenate(parts))
