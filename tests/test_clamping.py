"""Tests of per-column bounds (ltc_beam.codec.clamping): chosen where they pay, stated in the
stream (version 7, flags bit 6), clamped to by the decoder."""

from __future__ import annotations

import copy

import numpy as np

from ltc_beam.bitstream import unpack
from ltc_beam.codec import clamping
from tests.conftest import correlated_series, unbounded


def test_non_negative_features_decode_within_the_bounds_their_stream_states(codecs):
    """ReLU-like features (a third exact zeros) through a codec trained on signed data: the
    decoder overshoots below 0, the stream states the columns' least values and decodes at
    less error within them; the encoder knows what the decoder gives."""
    codec = copy.copy(codecs["vector"])
    codec.leave_out_repeats = False
    codec.sample_fallback = False  # (which codes these on a grid through 0: no value below it)
    x = np.maximum(correlated_series(3000, 6, seed=11), 0).astype(np.float32)
    x[5, 2] = np.nan
    blob = codec.encode(x)
    frame = unpack(blob)
    assert blob[3] == 7 and frame.bounds is not None
    lower, upper = frame.bounds
    assert np.isfinite(lower).all() and (lower == 0).all()  # every column's least, 0, pays
    assert (upper[np.isfinite(upper)] == np.nanmax(x, axis=0)[np.isfinite(upper)]).all()
    out = codec.decode(blob)
    np.testing.assert_array_equal(out, codec.reconstruct(x))
    assert np.isnan(out[5, 2])
    finite = np.isfinite(x)
    assert (out[finite] >= np.broadcast_to(lower, x.shape)[finite]).all()
    raw = codec.decode(unbounded(blob))
    assert (raw[finite] < 0).mean() > 0.05
    error, raw_error = (np.nanmean((y - x) ** 2, axis=0) for y in (out, raw))
    assert (error <= raw_error).all() and error.sum() < 0.9 * raw_error.sum()


def test_streams_whose_decoded_values_stay_in_range_state_no_bounds(codecs):
    from ltc_beam.codec import sample_coding

    codec = codecs["block"]
    assert unpack(codec.encode(correlated_series(3000, 6, seed=9))).bounds is None  # signed, as trained
    short = np.maximum(correlated_series(clamping.MIN_RECORDS - 1, 6, seed=11), 0)
    assert unpack(codec.encode(short)).bounds is None and clamping.MIN_RECORDS == sample_coding.MIN_RECORDS


def slope(x: np.ndarray, decoded: np.ndarray) -> float:
    """The high-rate exchange of these values' own error: 2 ln 2 x squared error per value, per bit."""
    return 2 * np.log(2) * float(((decoded - x) ** 2).mean())


def same(a: np.ndarray) -> np.ndarray:
    return a


def test_a_bound_is_stated_where_its_gain_pays_its_bits():
    """A side is stated where it saves more squared error than its 32 bits are worth at the
    exchange rate given, and all of them together must pay the whole block."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(4000, 3)).astype(np.float32)
    decoded = x + rng.normal(0, 0.05, size=x.shape)
    keep = np.ones(x.shape, bool)
    rate = slope(x, decoded)
    lower, upper = clamping.chosen_bounds(x, decoded, keep, same, rate)
    # uniform values: many decoded beyond both ends, each side's gain pays
    assert np.array_equal(lower, x.min(axis=0)) and np.array_equal(upper, x.max(axis=0))
    assert clamping.chosen_bounds(x, decoded, keep, same, 1000 * rate) is None  # bits worth far more error
    assert clamping.chosen_bounds(x, decoded, keep, lambda a: a / 100, rate) is None  # the same in units 100x as coarse
    decoded[:, 1] = np.clip(decoded[:, 1], x[:, 1].min(), x[:, 1].max())
    decoded[0, 1] = x[:, 1].max() + 1e-4  # one value just beyond: not worth 4 bytes
    lower, upper = clamping.chosen_bounds(x, decoded, keep, same, rate)
    assert np.isfinite(lower[[0, 2]]).all() and not np.isfinite(lower[1]) and not np.isfinite(upper[1])
    assert clamping.chosen_bounds(x, np.clip(decoded, x.min(axis=0), x.max(axis=0)), keep, same, rate) is None
    assert clamping.chosen_bounds(x, decoded, np.zeros(x.shape, bool), same, rate) is None
    few = x[:40]  # 40 records: a bound's 4 bytes are 0.27 bits a value of its column
    assert clamping.chosen_bounds(few, few + 0.001, np.ones(few.shape, bool), same, slope(few, few + 0.001)) is None


def test_the_exchange_rate_is_the_codecs(codecs, monkeypatch):
    """Bounds are bought at the codec's exchange of error for bits (its rate-distortion
    quantiser's), not at the stream's own: a quiet stream's own error per bit is small, and
    BasicMotions' quiet recordings at 0.5 bits/value, at their own rate, took bounds worth
    27 % of their bytes for 0.01 dB of the split's SNR."""
    from ltc_beam.codec import rd_quantization

    codec = copy.copy(codecs["vector"])
    codec.sample_fallback = False
    x = np.maximum(correlated_series(3000, 6, seed=13), 0).astype(np.float32)
    assert unpack(codec.encode(x)).bounds is not None
    rate = rd_quantization.multiplier(codec.lattice, codec._column_energies())
    monkeypatch.setattr(rd_quantization, "multiplier", lambda lattice, energies: 1e4 * rate)
    assert unpack(codec.encode(x)).bounds is None


def test_values_sent_exactly_are_never_clamped(codecs):
    """Outliers and NaN/inf travel in the specials, outside the bounds of the lossy values."""
    codec = copy.copy(codecs["vector"])
    codec.leave_out_repeats = False
    codec.sample_fallback = False
    x = np.maximum(correlated_series(3000, 6, seed=12), 0).astype(np.float32)
    x[100, 0], x[200, 1], x[300, 2] = np.inf, -np.inf, 1e6
    frame_out = codec.decode(blob := codec.encode(x))
    assert unpack(blob).bounds is not None
    assert frame_out[100, 0] == np.inf and frame_out[200, 1] == -np.inf and frame_out[300, 2] == 1e6
    lower, upper = unpack(blob).bounds
    assert lower[1] == 0 and not (upper[np.isfinite(upper)] >= 1e6).any()  # the lossy values' bounds, not the specials'
    assert (frame_out[np.isfinite(x) & (x < 1e6)] >= 0).all()


def test_whole_numbers_count_only_what_clamping_gains_over_rounding():
    """A column of whole numbers may be written as integers (the nearest to each decoded
    value): overshoots that round back to the bound gain nothing there, and state no bound."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, size=(4000, 1)).astype(np.float32)
    keep = np.ones(x.shape, bool)
    noise = np.where(x == 5, 0.0, rng.normal(0, 0.2, x.shape))  # the greatest, 5, decoded exactly
    near = x + np.where(x == 0, -0.3, noise)  # zeros decoded 0.3 below: round to 0
    assert clamping.chosen_bounds(x, near, keep, same, slope(x, near)) is None
    assert clamping.chosen_bounds(x + 0.5, near + 0.5, keep, same, slope(x, near)) is not None  # the same, off the whole numbers
    far = x + np.where(x == 0, -0.8, noise)  # round to -1: clamping to 0 gains
    lower, _ = clamping.chosen_bounds(x, far, keep, same, slope(x, far))
    assert lower[0] == 0
