"""Per-column bounds a stream states, where they pay: each column's decoded values clamped to
the least and the greatest value it holds.

A lossy decoder overshoots bounded data: a non-negative count decodes below 0, a pixel of a
rarely lit border column above the brightest value it ever took. The true values lie within
their column's range, so clamping to it never moves a decoded value away from its true
value, and a stream may state that range (``float32`` each, in the bounds block:
:mod:`ltc_beam.bounds_block`). The encoder states a side of a column where its gain in
squared error pays for the bits at the stream's own rate-distortion slope. Measured with
``ltc-beam evaluate`` on the sweeps' codecs (``docs/benchmarks.md``, "Column bounds"):
MNIST's pixels 1.105 bits/value at 20.0 dB -> 1.108 at 28.4, bokeh's world population 0.264
at 32.3 dB -> 0.268 at 32.7; 23 of 40 codecs state none.
"""

from __future__ import annotations

import math

import numpy as np

from ltc_beam import bounds_block
from ltc_beam.bitstream import varint

#: Shortest stream that may state bounds (the sample-coding fallback's: a bound costs 4 bytes).
MIN_RECORDS = 16
#: Bits a stated bound costs (its float32), the bitmap and length apart.
BOUND_BITS = 32


def chosen_bounds(x: np.ndarray, decoded: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per column of ``x`` ``[N, d]`` (float32 values; ``keep`` marks the lossy ones, the
    others travel exactly), the least and greatest value over ``keep`` (-inf / +inf where no
    bound is stated) that clamping ``decoded`` to is worth: a side whose gain in squared error
    (relative to each column's variance over ``keep``, as the SNR weighs it) exceeds its
    ``BOUND_BITS`` at the stream's slope ``2 ln 2 * D / values`` (high-rate theory: each bit
    spread over the stream cuts its error ``D`` by that), and all of them together their
    whole block. None where no side pays."""
    x = x.astype(np.float64)
    decoded = decoded.astype(np.float64)
    count = keep.sum(axis=0)
    if not count.any():
        return None
    mean = np.where(keep, x, 0.0).sum(axis=0) / np.maximum(count, 1)
    variance = np.where(keep, (x - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
    weight = 1.0 / np.where(variance > 0, variance, 1.0)
    error = np.where(keep, (decoded - x) ** 2, 0.0)
    slope = 2 * math.log(2) * float((error.sum(axis=0) * weight).sum()) / int(count.sum())  # error per bit
    lower = np.where(keep, x, np.inf).min(axis=0)
    upper = np.where(keep, x, -np.inf).max(axis=0)

    # a column of whole numbers may be written as integers, the nearest to each decoded value
    # (ltc_beam.arrow): what clamping gains there, where less (a wage panel's 0/1 and count
    # columns: bounds took 0.676 to 0.691 bits/value for +0.02 dB, as the integers are scored)
    whole = np.all(~keep | (x == np.round(x)), axis=0)
    rounded_error = np.where(keep, (np.round(decoded) - x) ** 2, 0.0)

    def gain(bound: np.ndarray, beyond: np.ndarray) -> np.ndarray:
        outside = keep & beyond
        saved = np.where(outside, error - (bound - x) ** 2, 0.0).sum(axis=0)
        saved_rounded = np.where(outside, rounded_error - (bound - x) ** 2, 0.0).sum(axis=0)
        return np.where(whole, np.minimum(saved, saved_rounded), saved) * weight

    low_gain, high_gain = gain(lower, decoded < lower), gain(upper, decoded > upper)
    use_low, use_high = low_gain > slope * BOUND_BITS, high_gain > slope * BOUND_BITS
    if not (use_low.any() or use_high.any()):
        return None
    bounds = np.where(use_low, lower, -np.inf), np.where(use_high, upper, np.inf)
    block = bounds_block.to_bytes(*bounds)
    cost = 8 * (len(block) + len(varint(len(block))))
    if low_gain[use_low].sum() + high_gain[use_high].sum() <= slope * cost:
        return None
    return bounds


def clamped(values: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``values`` ``[N, d]`` with each column clamped to its ``bounds`` (unchanged without)."""
    if bounds is None:
        return values
    return np.clip(values, *bounds).astype(values.dtype, copy=False)
