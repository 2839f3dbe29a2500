"""``window="auto"``: how many consecutive records form one input vector.

Longer windows let the transform use the correlation of a series in time (slow telemetry
gains a lot), but the transform and the tables then have more parameters per training
vector and overfit short recordings. The choice weighs both, before any training:

* the gain: the Gaussian rate–distortion function (reverse water-filling over the
  eigenvalues of the windows' covariance) at the distortion where the best window costs the
  target rate (where the trained codec will code), in bits per value, for each candidate T,
  less the same estimate on the records shuffled across the whole data set, in series of
  the same lengths (what sampling noise alone would show);
* the padding: each series is windowed on its own (also where short series share a
  bitstream), its last window padded to T records by repeating its last record, which
  costs about ``PADDING_COST`` of a record of its own (an estimate): series of 5 records in
  windows of 4 cost 1.3 times their values; and where series share a bitstream, each whose
  length is not a whole number of windows adds its length to the stream (about
  ``SEGMENT_BITS``; 0.53 bit/value for series of 5 records of 3 values);
* the data: what a transform fitted to few windows loses on new data, taken as a relative
  rate cost of ``OVERFIT_COST / w``, where w is the number of non-overlapping training
  windows per input dimension (T × values per record); a candidate needs
  ``w >= MIN_WINDOWS_PER_DIM`` and at most ``MAX_INPUT_DIM`` values per window.

The smallest T whose penalised estimate is within ``TOLERANCE`` (relative) of the lowest
wins. ``OVERFIT_COST`` is set from BasicMotions, where T=8 (8.5 windows per dimension,
6 % lower Gaussian estimate) cost 4-5 % more bits than T=4 on held-out data at 12 and
20 dB. Measured on held-out data (e8 block, 1,500 steps unless said): smooth synthetic
telemetry (sines and random walks, 20,000 records) T=8 vs 4: 2.33 bits/value at 32.9 vs
29.8 dB; a real physiological signal (UCR anomaly archive InternalBleeding16, 1,200
training records of 1 value, 3,000 steps) T=8 vs 4 (the old 16-window floor's choice):
1.38 bits/value at 35.7 dB vs 1.29 at 25.3 dB; BasicMotions and Daphnet stay at 4,
i.i.d. data at 1.

Until session 22 the estimates were taken at the distortion where single records (T=1)
cost the target, many dB coarser than a windowed codec then codes at on slow series, and
with a 3 % tolerance; there the long windows' gain looks small next to their data penalty.
Measured on held-out splits (``ltc-beam train --target-bits-per-value B --window T``, then
``evaluate``): hourly temperatures (7,007 / 1,752 records) B=0.5 T=8 (then chosen) 1.14
bits/value at 18.7 dB vs T=32 (now) 0.77 at 19.1 dB, B=1 T=16 1.50 at 25.2 vs T=32 1.28 at
25.8; ECG (6,000 / 1,500) B=0.5 T=8 0.79 at 17.2 vs T=16 0.77 at 18.4, B=1 1.22 at 24.0 vs
1.35 at 25.9; BasicMotions B=4 T=2 4.11 at 30.6 vs T=4 4.04 at 30.7. Ties within 2 %
(BasicMotions B=3 T=4/2, Daphnet B=3 and 4 T=4/2, B=0.5 T=4/8) went either way.

T=64 is a candidate from session 23 (for records of at most 4 values, with at least about
19,300 records of one value). On held-out data (CLI defaults, ``--window 32`` against
``--window 64``, bits/value at equal SNR interpolated along 7-point curves): a PPG pulse
recording (54,780 / 13,696 records), where the rule now picks 64 at 0.5-2 bits/value,
−12 / −9 / −9 / −7 % at 20 / 25 / 30 / 35 dB (1 bit/value asked: 0.82 at 25.0 dB with
T=32, 0.84 at 27.5 with T=64); PigCVP (26 series of 2,000 records), 64 at every rate,
−4 to −5 % at 20-30 dB, −1 % from 35 dB. i.i.d. data stays at 1, AR(1) at 16-32.
"""

from __future__ import annotations

import math

import numpy as np

from ltc_beam.codec.training import principal_variances
from ltc_beam.codec.training_data import column_statistics

CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
MAX_INPUT_DIM = 256
MIN_WINDOWS_PER_DIM = 4
OVERFIT_COST = 1.0
TOLERANCE = 0.01
PADDING_COST = 0.5
SEGMENT_BITS = 8.0  # one varint per series in a segmented stream (series under 128 records)


def gaussian_rate(eigenvalues: np.ndarray, distortion: float) -> float:
    """Bits per vector of a Gaussian with these covariance eigenvalues at MSE ``distortion``
    per component (reverse water-filling, the water level solved exactly)."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    n = lam.size
    if n == 0 or distortion >= lam.mean():
        return 0.0
    below = np.concatenate([[0.0], np.cumsum(lam)[:-1]])  # sum of the k smallest, k = 0 … n-1
    level_at = (below + (n - np.arange(n)) * lam) / n  # mean(min(λ_k, λ)): the distortion at water level λ_k
    k = int(np.searchsorted(level_at, distortion, side="right"))  # components under the water
    theta = (n * distortion - below[k]) / (n - k)
    return float(0.5 * np.log2(np.maximum(lam[k:], theta) / theta).sum())


def windows_per_dim(series: list[np.ndarray], window: int, train_fraction: float) -> float:
    """Non-overlapping training windows of length ``window`` per input dimension."""
    d = series[0].shape[1]
    return sum(len(s) // window for s in series) * train_fraction / (window * d)


def padding_records(series: list[np.ndarray], window: int) -> tuple[int, int]:
    """``(records, padding records)`` of ``series`` coded in whole windows (each series'
    last window filled up)."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    return int(lengths.sum()), int((-lengths % window).sum())


def padding(series: list[np.ndarray], window: int) -> float:
    """Relative cost of coding ``series`` in whole windows: 1 plus ``PADDING_COST`` per
    padding record per record."""
    records, pad = padding_records(series, window)
    return float(1 + PADDING_COST * pad / max(1, records))


def padding_share(series: list[np.ndarray], window: int) -> float:
    """Share of the records a windowed codec codes that only fill each series' last window."""
    records, pad = padding_records(series, window)
    return pad / (records + pad) if records + pad else 0.0


def segment_bits(series: list[np.ndarray], window: int) -> float:
    """Bits per value that the series lengths of segmented streams add (series that are not
    a whole number of windows; an upper bound: long series have streams of their own)."""
    if window == 1:
        return 0.0
    lengths = np.array([len(s) for s in series])
    return float(SEGMENT_BITS * np.count_nonzero(lengths % window) / max(1, sum(s.size for s in series)))


def feasible(series: list[np.ndarray], window: int, train_fraction: float) -> bool:
    d = series[0].shape[1]
    return window * d <= MAX_INPUT_DIM and windows_per_dim(series, window, train_fraction) >= MIN_WINDOWS_PER_DIM


def choose_window(
    series: list[np.ndarray],
    *,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    bits_per_value: float | None = None,
    lmbda: float | None = None,
    train_fraction: float = 0.85,
) -> tuple[int, dict, dict]:
    """``(T, estimated bits/value per candidate T, the same with the padding, segment and
    data penalties: what T is chosen on)`` for data coded at about ``bits_per_value``, or at
    the distortion a rate–distortion weight ``lmbda`` picks; ``stats``: the columns'
    ``(mean, std)`` when already known (``column_statistics``).

    Each estimate is corrected by the same estimate on the records shuffled across the data
    set, in series of the same lengths (no correlation in time, same sample size): the
    sample covariance of few long windows looks more structured than it is, and without the
    correction i.i.d. data at 0.1-0.25 bits/value got T=8-16. (Shuffled within each series,
    the null kept what short series share, their level, which windows use and single
    records cannot: 10,000 series of 5 records at their own levels got T=1, 11.0 dB at 2.05
    bits/value on held-out data, where T=4 gives 18.1 dB at 2.12.)
    """
    d = series[0].shape[1]
    mean, std = stats if stats is not None else column_statistics(series)
    single = principal_variances(series, 1, mean, std)
    rng = np.random.default_rng(0)
    lengths = np.cumsum([len(s) for s in series])[:-1]
    shuffled = np.split(np.concatenate(series)[rng.permutation(int(sum(len(s) for s in series)))], lengths)
    spectra = {1: (single, single)}
    for t in CANDIDATES[1:]:
        if not feasible(series, t, train_fraction):
            break
        spectra[t] = (principal_variances(series, t, mean, std), principal_variances(shuffled, t, mean, std))

    def estimates_at(distortion: float) -> dict[int, float]:
        first = gaussian_rate(single, distortion) / d
        return {t: first + (gaussian_rate(real, distortion) - gaussian_rate(null, distortion)) / (t * d) for t, (real, null) in spectra.items()}

    if lmbda is not None:
        distortion = 1.0 / (2 * math.log(2) * lmbda)  # where d(bits/value)/d(MSE) = -λ at high rate
    else:  # where the best window costs the target: the distortion the codec will code at
        lo, hi = 1e-12, float(single.max()) or 1.0
        for _ in range(100):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if min(estimates_at(mid).values()) > bits_per_value else (lo, mid)
        distortion = math.sqrt(lo * hi)
    estimates = estimates_at(distortion)
    scores = {
        t: (bits * padding(series, t) + segment_bits(series, t)) * (1 + OVERFIT_COST / windows_per_dim(series, t, train_fraction))
        for t, bits in estimates.items()
    }
    best = min(scores.values())
    chosen = min(t for t, score in scores.items() if score <= best * (1 + TOLERANCE) + 1e-12)
    return chosen, {str(t): round(b, 4) for t, b in estimates.items()}, {str(t): round(b, 4) for t, b in scores.items()}
