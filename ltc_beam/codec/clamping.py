"""Per-column bounds a stream states, where they pay: each column's decoded values clamped to
the least and the greatest value it holds.

A lossy decoder overshoots bounded data: a non-negative count decodes below 0, a pixel of a
rarely lit border column above the brightest value it ever took. The true values lie within
their column's range, so clamping to it never moves a decoded value away from its true
value, and a stream may state that range (``float32`` each, in the bounds block:
:mod:`ltc_beam.bounds_block`). The encoder states a side of a column where its gain in
squared error pays for the bits at the codec's exchange of error for bits. Measured with
``ltc-beam evaluate`` on the sweeps' codecs (``docs/benchmarks.md``, "Column bounds"):
MNIST's pixels 1.105 bits/value at 20.0 dB -> 1.109 at 28.8, bokeh's world population 0.264
at 32.3 dB -> 0.268 at 32.7; 27 of 40 codecs state none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ltc_beam import bounds_block
from ltc_beam.bitstream import varint
from ltc_beam.codec import sample_coding

#: Shortest stream that may state bounds (the sample-coding fallback's: a bound costs 4 bytes).
MIN_RECORDS = sample_coding.MIN_RECORDS
#: Bits a stated bound costs (its float32), the bitmap and length apart.
BOUND_BITS = 32


def chosen_bounds(
    x: np.ndarray, decoded: np.ndarray, keep: np.ndarray, z_scores: Callable[[np.ndarray], np.ndarray], exchange: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per column of ``x`` ``[N, d]`` (float32 values; ``keep`` marks the lossy ones, the
    others travel exactly), the least and greatest value over ``keep`` (-inf / +inf where no
    bound is stated) that clamping ``decoded`` to is worth: a side whose gain in squared error
    (in the codec's normalised units, ``z_scores`` of data units) exceeds its ``BOUND_BITS``
    at the codec's ``exchange`` rate (squared error per bit:
    :func:`ltc_beam.codec.rd_quantization.multiplier`), and all of them together their whole
    block. None where no side pays. The codec's rate, not the stream's: a quiet stream's
    own error per bit is small, and BasicMotions' quiet recordings took bounds worth 27 %
    of their bytes for 0.8 dB of their own SNR and 0.01 dB of the split's."""
    x = x.astype(np.float64)
    decoded = decoded.astype(np.float64)
    if not keep.any():
        return None
    lower = np.where(keep, x, np.inf).min(axis=0)
    upper = np.where(keep, x, -np.inf).max(axis=0)
    with np.errstate(invalid="ignore", over="ignore"):
        zx = z_scores(x)
        error = np.where(keep, (z_scores(decoded) - zx) ** 2, 0.0)
        # a column of whole numbers may be written as integers, the nearest to each decoded
        # value (ltc_beam.arrow): what clamping gains there, where less (a wage panel's 0/1
        # and count columns: bounds took 0.676 to 0.691 bits/value for +0.02 dB, as the
        # integers are scored)
        whole = np.all(~keep | (x == np.round(x)), axis=0)
        rounded_error = np.where(keep, (z_scores(np.round(decoded)) - zx) ** 2, 0.0) if whole.any() else None

        def gain(bound: np.ndarray, beyond: np.ndarray) -> np.ndarray:
            outside = keep & beyond
            left = (z_scores(np.broadcast_to(bound, x.shape)) - zx) ** 2
            saved = np.where(outside, error - left, 0.0).sum(axis=0)
            if rounded_error is None:
                return saved
            return np.where(whole, np.minimum(saved, np.where(outside, rounded_error - left, 0.0).sum(axis=0)), saved)

        low_gain, high_gain = gain(lower, decoded < lower), gain(upper, decoded > upper)
    use_low, use_high = low_gain > exchange * BOUND_BITS, high_gain > exchange * BOUND_BITS
    if not (use_low.any() or use_high.any()):
        return None
    bounds = np.where(use_low, lower, -np.inf), np.where(use_high, upper, np.inf)
    block = bounds_block.to_bytes(*bounds)
    cost = 8 * (len(block) + len(varint(len(block))))
    if low_gain[use_low].sum() + high_gain[use_high].sum() <= exchange * cost:
        return None
    return bounds


def clamped(values: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``values`` ``[N, d]`` with each column clamped to its ``bounds`` (unchanged without)."""
    if bounds is None:
        return values
    return np.clip(values, *bounds).astype(values.dtype, copy=False)
