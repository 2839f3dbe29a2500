"""Rate–distortion quantisation: the encoder trades a little error for fewer bits, point by point.

The nearest lattice point is the point of least error, not of least cost: at low rate a
latent vector just past a cell boundary pays for a point the entropy model finds unlikely,
when the origin, or the nearest point of the vector drawn towards it, would code in far
fewer bits for a little more error (as video encoders' rate–distortion optimised
quantisation does). For every lattice point the encoder weighs the nearest point against
the origin and the nearest points of the latent vector scaled by ``SHRINK``, and keeps the
one of least ``D + λ R``: ``D`` the squared error it leaves in normalised data units (each
latent coordinate's error weighted by the energy of its synthesis column), ``R`` its code
length under the codec's tables (with scale classes, the class that the energy of its
nearest point alone picks: the segment's class saved 1.3 % more at 10 dB on Daphnet,
but then a record's reconstruction would depend on the stream it is coded in). ``λ = FACTOR · 2 ln 2 · σ² · w̄``, ``σ²`` the lattice's error per coordinate under
fine quantisation and ``w̄`` the mean column energy: the slope of the high-rate D(R) curve
(6.02 dB per bit). It is the codec's, not the stream's, so a record codes alike in any
stream (``encode_each`` gives the streams of one-record ``encode``). A point moves only where
it saves more bits than its extra error is worth. At high rate that is rare (Daphnet, E8
block T=4 at 23 and 29 dB: within ±0.5 % at equal SNR); at low rate it is the largest single
gain measured (Daphnet, E8 vector T=8, five codecs of 0.4–0.8 bits/value on the test
split: 1.078 → 0.986 bits/value at 10 dB, −8.5 %; FACTOR 0.5 / 1.5 / 2: 1.013 / 0.979 /
0.984).

It does not help everywhere: on i.i.d. Gaussian records it trades SNR for bits at over 8 dB
per bit, worse than a finer step (+1.4 % bits at equal SNR at 11 dB). A codec therefore keeps
it only where freezing finds it coding the validation split better
(:meth:`ltc_beam.codec.codec.Codec._choose_rd_quantization`).

The decoder is unchanged: it reads points, whichever the encoder chose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from ltc_beam.lattices.base import Lattice

SHRINK = (0.8, 0.6)  # the latent vector is also quantised at these scales (and at 0)
FACTOR = 1.0
GRANULAR_SAMPLES = 1 << 14


def squared_errors(latents: np.ndarray, frame: np.ndarray, unit: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each point's weighted squared error ``[P]``: latents ``[P, n]``, its frame ``[P, n]``
    (``unit`` maps frame to latent coordinates), each coordinate's weight ``[P, n]``."""
    return (weights * (latents - frame * unit) ** 2).sum(axis=1)


@functools.cache
def granular_error(lattice: Lattice) -> float:
    """Mean squared error per coordinate of nearest-point quantisation on ``lattice`` (latent
    units), over vectors spread uniformly across many cells (``E8``: 0.0717 times its cell
    volume to the 2/8, the lattice's normalised second moment). A fixed sample: every encoder
    gets the same value."""
    u = np.random.default_rng(0).uniform(-8.0, 8.0, size=(GRANULAR_SAMPLES, lattice.dim)) * lattice.frame_unit
    y = torch.as_tensor(u)
    return float(((lattice.quantize(y) - y) ** 2).mean())


def multiplier(lattice: Lattice, weights: np.ndarray) -> float:
    """``λ`` of a codec: ``FACTOR · 2 ln 2`` times the weighted squared error per coordinate
    of fine quantisation (:func:`granular_error` times the mean of the coordinates' weights)."""
    return FACTOR * 2.0 * np.log(2.0) * granular_error(lattice) * float(np.mean(weights))


def cheapest_points(
    latents: np.ndarray,
    nearest: np.ndarray,
    candidates: list[np.ndarray],
    unit: np.ndarray,
    weights: np.ndarray,
    bits: Callable[[np.ndarray], np.ndarray],
    lam: float,
) -> np.ndarray:
    """The frame of least ``D + lam R`` for each point: of ``nearest`` and each of
    ``candidates`` (frames ``[P, n]``; the others as :func:`squared_errors`'), ``bits(frame)``
    each point's code length ``[P]``; ties keep the nearest point."""
    best, cost = nearest.copy(), squared_errors(latents, nearest, unit, weights) + lam * bits(nearest)
    for frame in candidates:
        other = squared_errors(latents, frame, unit, weights) + lam * bits(frame)
        better = other < cost
        best[better], cost = frame[better], np.where(better, other, cost)
    return best
