"""Arranging records into coder input vectors: windows of a series, blocks of vectors."""

from __future__ import annotations

import numpy as np


def to_windows(records: np.ndarray, window: int) -> np.ndarray:
    """``[N, d]`` records of one series → ``[ceil(N / window), window * d]`` vectors.

    The tail window is padded by repeating the last record (cheap to code); callers drop
    the padding with :func:`from_windows`.
    """
    n, d = records.shape
    if window == 1 or n == 0:
        return records.reshape(n, d * window) if window == 1 else np.zeros((0, window * d), records.dtype)
    count = -(-n // window)
    padded = np.concatenate([records, np.repeat(records[-1:], count * window - n, axis=0)])
    return padded.reshape(count, window * d)


def sliding_windows(records: np.ndarray, window: int) -> np.ndarray:
    """Every window of ``window`` consecutive records (stride 1): ``[N - window + 1, window * d]``.

    Training on all offsets shows the transform every phase of the signal, which the
    aligned windows of one series would not; series shorter than a window are padded.
    """
    n, d = records.shape
    if n < window:
        return to_windows(records, window)
    view = np.lib.stride_tricks.sliding_window_view(records, (window, d))[:, 0]
    return view.reshape(n - window + 1, window * d)


def from_windows(vectors: np.ndarray, records: int, record_dim: int) -> np.ndarray:
    """Inverse of :func:`to_windows`: the first ``records`` records."""
    return vectors.reshape(-1, record_dim)[:records]


def pad_rows(vectors: np.ndarray, multiple: int) -> np.ndarray:
    """Pad ``vectors`` to a multiple of ``multiple`` rows by repeating the last row (or zeros)."""
    n = vectors.shape[0]
    extra = -n % multiple
    if not extra:
        return vectors
    filler = vectors[-1:] if n else np.zeros((1, vectors.shape[1]), vectors.dtype)
    return np.concatenate([vectors, np.repeat(filler, extra, axis=0)])
