"""Rate–distortion quantisation: the encoder's choice of cheaper lattice points."""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest

import ltc_beam
from ltc_beam import Codec
from ltc_beam.codec import rd_quantization
from ltc_beam import lattices
from ltc_beam.codec.codec import RD_EXCHANGE_DB
from ltc_beam.codec.rd_quantization import cheapest_points, granular_error, multiplier
from ltc_beam.codec.finishing import scale_latents
from ltc_beam.data import load



def test_each_point_takes_the_candidate_of_least_error_plus_rate():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(500, 4)) * 3
    nearest = np.rint(latents)
    zero, half = np.zeros_like(nearest), np.rint(latents * 0.5)
    weights = rng.uniform(0.5, 2.0, size=latents.shape)

    def bits(frame):
        return np.abs(frame).sum(axis=1) * 1.5 + 1.0

    lam = 2.0
    chosen = cheapest_points(latents, nearest, [zero, half], 1.0, weights, bits, lam)
    error = [(weights * (latents - f) ** 2).sum(axis=1) for f in (nearest, zero, half)]
    costs = np.stack([e + lam * bits(f) for e, f in zip(error, (nearest, zero, half))])
    expected = np.stack([nearest, zero, half])[costs.argmin(axis=0), np.arange(len(latents))]
    np.testing.assert_array_equal(chosen, expected)
    assert 0 < (costs.argmin(axis=0) > 0).sum() < len(latents)  # some points move, not all
    # Rate free: every point stays the nearest one (ties and better errors keep it).
    np.testing.assert_array_equal(cheapest_points(latents, nearest, [zero, half], 1.0, weights, lambda f: np.zeros(len(f)), lam), nearest)


def test_the_multiplier_is_the_high_rate_slope_of_the_lattice():
    """λ = 2 ln 2 times the error per coordinate of fine quantisation: 1/12 on the integers,
    E8's and the Leech lattice's normalised second moments (0.0717, 0.0658) at unit volume."""
    for name, second_moment in (("z1", 1 / 12), ("e8", 0.071682), ("leech", 0.065771)):
        lattice = lattices.get(name)
        assert granular_error(lattice) == pytest.approx(second_moment, rel=0.01)
        weights = np.array([0.5, 1.5])
        assert multiplier(lattice, weights) == pytest.approx(rd_quantization.FACTOR * 2 * math.log(2) * granular_error(lattice))


def test_the_encoder_codes_below_the_nearest_point_curve():
    """Daphnet's accelerometers (the shipped split) near 10 dB: the chosen points' stream lies
    well below the rate–distortion curve of nearest-point quantisation (the same model at
    finer and coarser quantizer steps): fewer bits at its SNR. It decodes to what the encoder
    reconstructs, and code_length_bits counts the chosen points."""
    root = os.path.join(os.path.dirname(__file__), "..", "data", "daphnet")
    fit, validation = (load(os.path.join(root, f"daphnet_s06r02e0_{name}.parquet"), column="values", key="segment",
                            order_by="step").series for name in ("train", "test"))
    trained = ltc_beam.train(fit, lattice="e8", mode="vector", window=8, target_bits_per_value=0.5, steps=300,
                             progress=False, seed=0)
    assert trained.rd_quantization and trained.manifest["encoder"]["rd_quantization"]  # chosen on its validation split
    x = np.concatenate(validation)
    lengths = [len(s) for s in validation]

    def point(octaves: float, rd: bool) -> tuple[float, float]:
        model = copy.deepcopy(trained.model)
        scale_latents(model, octaves)
        codec = Codec.from_model(model, fit_series=fit[:8], validation_series=fit[8:])
        codec.sample_fallback, codec.rd_quantization = False, rd
        blob = codec.encode(x, lengths)
        decoded = codec.decode(blob)
        np.testing.assert_array_equal(decoded, codec.reconstruct(x, lengths))
        assert 0 < 8 * len(blob) - codec.code_length_bits(x, lengths) < 8 * 64  # the framing and the coder's flush
        return 8 * len(blob) / x.size, 10 * math.log10(np.mean(x.var(axis=0)) / np.mean((decoded - x) ** 2))

    curve = sorted(point(octaves, rd=False) for octaves in (-0.5, -0.25, 0.0))
    bits, snr = point(0.0, rd=True)
    assert bits < curve[-1][0] and curve[0][1] < snr < curve[-1][1]
    assert bits < 0.96 * np.interp(snr, [s for _, s in curve], [b for b, _ in curve])


def test_a_codec_keeps_it_only_where_it_codes_its_validation_split_better():
    """On i.i.d. Gaussian records the choice trades SNR for bits at more than 6.02 dB per
    bit (the high-rate exchange), worse than a finer step would: the codec keeps the nearest
    points, and says why in its manifest."""
    rng = np.random.default_rng(0)
    codec = ltc_beam.train(rng.standard_normal((20_000, 16)), lattice="e8", mode="block", target_bits_per_value=2.0,
                           steps=300, progress=False, seed=0)
    chosen = codec.manifest["encoder"]
    nearest, rd = chosen["validation"]["nearest"], chosen["validation"]["rd"]
    assert rd["bits_per_value"] < nearest["bits_per_value"] and rd["snr_db"] < nearest["snr_db"]
    assert rd["bits_per_value"] + (nearest["snr_db"] - rd["snr_db"]) / RD_EXCHANGE_DB > nearest["bits_per_value"]
    assert not chosen["rd_quantization"] and not codec.rd_quantization
    assert not Codec.from_model(codec.model).rd_quantization  # no validation split: nearest points
