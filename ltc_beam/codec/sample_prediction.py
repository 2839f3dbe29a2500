"""Per-column polynomial prediction of sample-coding integers down the records.

A column of order ``k`` is coded as its ``k``-th differences: order 0 the integers as they
are (noise, or runs), 1 the change from the record before (a random walk), 2 the change of
that change (a smooth signal sampled finely: each value predicted by ``2 q[t-1] - q[t-2]``).
The decoder sums them back up exactly, so prediction costs no error. Each column takes the
order whose differences have the least order-0 entropy: on PigCVP blood pressure at 40 dB,
second differences hold 9 % fewer bits than first ones; on hourly weather (TMY3) a mix of
orders 3 % fewer than first differences throughout; a third order won on neither.
"""

from __future__ import annotations

import numpy as np

from ltc_beam.codec.sample_tables import column_entropies

#: Highest order a column may take.
MAX_ORDER = 2


def predictor_orders(q: np.ndarray) -> np.ndarray:
    """Each column's order (0 … ``MAX_ORDER``, the lowest of equals): the one whose
    differences, from record ``MAX_ORDER`` on, have the least order-0 entropy."""
    if len(q) <= MAX_ORDER:
        return np.zeros(q.shape[1], np.int64)
    bits = np.stack([column_entropies(np.diff(q, k, axis=0)[MAX_ORDER - k :]) for k in range(MAX_ORDER + 1)])
    return np.argmin(bits, axis=0)


def residuals(q: np.ndarray, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers ``[N, d]`` → (their first ``K = max(orders)`` records as they are, the
    ``[N - K, d]`` differences of each column's order from record ``K`` on)."""
    first = int(orders.max(initial=0))
    out = np.empty((max(len(q) - first, 0), q.shape[1]), np.int64)
    for k in np.unique(orders):
        columns = orders == k
        out[:, columns] = np.diff(q[first - k :, columns], int(k), axis=0)
    return q[:first], out


def restored(first: np.ndarray, differences: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Inverse of :func:`residuals`: the integers ``[K + M, d]``."""
    out = np.concatenate([first, np.empty_like(differences)])
    start = len(first)
    for k in np.unique(orders):
        columns = orders == k
        values = differences[:, columns]
        for j in range(int(k) - 1, -1, -1):  # the j-th differences at record start - 1 begin each sum
            values = np.diff(first[:, columns], j, axis=0)[-1] + np.cumsum(values, axis=0)
        out[start:, columns] = values
    return out
