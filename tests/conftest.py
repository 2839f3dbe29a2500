"""Shared fixtures: small real codecs trained once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ltc_beam
from ltc_beam.bitstream import pack, unpack

torch.set_num_threads(1)


def correlated_series(records: int, dim: int, seed: int) -> np.ndarray:
    """A smooth multichannel signal (AR(1) mixtures) standing in for telemetry.

    The mixing is fixed per ``dim`` (one source); ``seed`` draws a new realisation.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((records, dim))
    state = np.zeros(dim)
    mix = np.random.default_rng(dim).standard_normal((dim, dim))
    for t in range(records):
        state = 0.9 * state + rng.standard_normal(dim)
        out[t] = mix @ state
    return out


def switching_series(records: int, dim: int, seed: int, period: int = 150) -> list[np.ndarray]:
    """Non-stationary telemetry: :func:`correlated_series` whose amplitude jumps between
    quiet (×0.15) and busy (×2) stretches of ``period`` records; one series per stretch pair."""
    x = correlated_series(records, dim, seed)
    gain = np.where((np.arange(records) // period) % 2 == 0, 0.15, 2.0)[:, None]
    x = x * gain
    return [x[i : i + 2 * period] for i in range(0, records, 2 * period)]


def unbounded(blob: bytes) -> bytes:
    """``blob`` without its bounds block."""
    frame = unpack(blob)
    return pack(
        frame.codec_id, frame.shape, frame.payload, frame.specials, sample_coded=frame.sample_coded,
        segments=frame.segments, skipped=frame.skipped, repeated=np.asarray(frame.repeated) if frame.repeated else None,
    )


@pytest.fixture(scope="session")
def codecs() -> dict[str, ltc_beam.Codec]:
    """Small trained codecs: vector (e8), block (e8), window (d4, T=4), block+window (z1,
    T=3), and two trained on switching amplitudes (scale classes; e8 vector, e8 block T=2)."""
    data = correlated_series(4000, 6, seed=1)
    switching = switching_series(6000, 6, seed=2)
    common = dict(target_bits_per_value=2.0, steps=150, progress=False, seed=0)
    return {
        "vector": ltc_beam.train(data, lattice="e8", mode="vector", **common),
        "block": ltc_beam.train(data, lattice="e8", mode="block", **common),
        "window": ltc_beam.train(data, lattice="d4", mode="vector", window=4, **common),
        "block_window": ltc_beam.train(data, lattice="z1", mode="block", window=3, **common),
        "classes_vector": ltc_beam.train(switching, lattice="e8", mode="vector", **common),
        "classes_block": ltc_beam.train(switching, lattice="e8", mode="block", window=2, **common),
    }
