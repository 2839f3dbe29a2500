"""Exact integer Hermite normal form: the triangular coding basis of a lattice given by generators."""

from __future__ import annotations

from math import gcd

import numpy as np


def hermite_rows(generators: np.ndarray) -> np.ndarray:
    """Upper-triangular basis R (rows) of the integer lattice spanned by the rows of ``generators``.

    Pivots ``R[i, i]`` are positive and the entries above each pivot are reduced into
    ``[0, R[j, j])``. Exact: arithmetic on Python integers.
    """
    rows = [[int(v) for v in r] for r in np.asarray(generators)]
    n = len(rows[0])
    basis: list[list[int]] = []
    for col in range(n):
        pivot = None
        rest = []
        for r in rows:
            if r[col] == 0:
                rest.append(r)
                continue
            if pivot is None:
                pivot = r
                continue
            # Euclid on the two rows until r has a zero in this column.
            while r[col] != 0:
                q = pivot[col] // r[col]
                pivot, r = r, [a - q * b for a, b in zip(pivot, r)]
            if any(r):
                rest.append(r)
        if pivot is None:
            raise ValueError("generators do not span a full-rank lattice")
        if pivot[col] < 0:
            pivot = [-a for a in pivot]
        basis.append(pivot)
        rows = [r for r in rest if any(r)]
    for i in range(n):
        for j in range(i + 1, n):
            q = basis[i][j] // basis[j][j]
            if q:
                basis[i] = [a - q * b for a, b in zip(basis[i], basis[j])]
    return np.array(basis, dtype=np.int64)


def phase_steps(upper: np.ndarray) -> np.ndarray:
    """For each coordinate i, the gcd g_i of its pivot and the entries above it.

    The offset of coordinate i given the earlier integer coordinates, taken modulo the
    pivot, is always a multiple of g_i: coordinate i has ``pivot_i / g_i`` phases.
    """
    n = upper.shape[0]
    steps = np.empty(n, dtype=np.int64)
    for i in range(n):
        g = int(upper[i, i])
        for j in range(i):
            g = gcd(g, int(upper[j, i]))
        steps[i] = g
    return steps
