"""``ltc_beam.evaluation``: figures counted on the bytes an archive would hold."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

import ltc_beam
from ltc_beam import Codec, arrow
from ltc_beam.codec.density import MIN_SCALE
from ltc_beam.errors import OffScaleWarning
from ltc_beam.evaluation import archive_chunks, evaluate, normalised_mse, snr_db
from tests.conftest import correlated_series, unbounded


def _series(count: int, length: int, dim: int = 6) -> list[np.ndarray]:
    return [correlated_series(length, dim, seed=10 + i) for i in range(count)]


@pytest.mark.parametrize("name", ["vector", "block", "window"])
def test_evaluate_counts_the_payload_bytes_of_the_chunk_layout(codecs, name):
    codec = codecs[name]
    series = _series(30, 57)  # many short series: packed into few bitstreams
    keys = [f"device-{i:03d}" for i in range(len(series))]  # the key column decides the packing
    result = evaluate(codec, series, voronoi=False, keys=keys)
    d = series[0].shape[1]
    table = pa.table({
        "k": np.repeat(keys, [len(s) for s in series]),
        "t": np.concatenate([np.arange(len(s)) for s in series]),
        "values": pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate(series).astype(np.float32).ravel()), d),
    })
    encoded = arrow.encode_table(table, codec, column="values", key="k", order_by="t")
    payload = pc.sum(pc.binary_length(encoded.column(arrow.PAYLOAD))).as_py()
    assert result["streams"] == encoded.num_rows < len(series)
    assert result["bits_per_value"] == pytest.approx(8 * payload / (table.num_rows * d), rel=1e-12)


def test_archive_chunks_keep_every_record_once(codecs):
    series = _series(5, 3000) + _series(7, 40)
    planned = archive_chunks(codecs["block"], series, chunk_size=1024)
    chunks = [x for x, _ in planned]
    assert sum(len(c) for c in chunks) == sum(len(s) for s in series)
    assert max(len(c) for c in chunks) <= 1024
    expected = np.sort(np.concatenate(series), axis=0)
    assert np.array_equal(np.sort(np.concatenate(chunks), axis=0), expected)
    # full chunks hold one series; packed tails state the lengths of theirs
    for x, segments in planned:
        assert segments is None or (len(segments) > 1 and sum(segments) == len(x))
    assert any(segments for _, segments in planned)  # 12 tails of 40 and 952 records share chunks


def test_evaluate_error_matches_decoding(codecs):
    codec = copy.copy(codecs["vector"])
    codec.sample_fallback = False  # one stream or two: records coded alike
    series = _series(2, 500)
    result = evaluate(codec, series, voronoi=False)
    x = np.concatenate(series)  # float64: the error is charged against the values as given
    x_hat = codec.decode(codec.encode(x))
    mse = ((x - x_hat) ** 2).mean(0)
    assert result["nmse"] == pytest.approx(float(np.mean(mse / x.var(0))), rel=1e-6)


def test_unconverged_voronoi_estimate_is_reported_as_a_note(codecs, tmp_path):
    codecs["vector"].save(str(tmp_path / "c.ltc"))
    codec = Codec.load(str(tmp_path / "c.ltc"))
    with torch.no_grad():  # densities far narrower than the lattice cell (as of unused channels)
        codec.model.density.log_scales.fill_(math.log(MIN_SCALE))
    result = evaluate(codec, _series(1, 800))
    assert result["estimated_bits_voronoi_per_value"] is None
    assert "not converged" in result["voronoi_note"]
    assert np.isfinite(result["bits_per_value"])


def test_snr_is_per_column_normalised_and_ignores_non_finite_values():
    rng = np.random.default_rng(0)
    x = np.stack([rng.standard_normal(1000) * 1e-6, rng.standard_normal(1000) * 1e6], axis=1)
    x_hat = x.copy()
    x_hat[:, 0] += 1e-7 * rng.standard_normal(1000)  # the small column: 20 dB
    x[5, 1] = x_hat[5, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from inf - inf
        nmse, _ = normalised_mse(x, x_hat)
    assert np.isclose(10 * np.log10(1 / nmse), 20 + 10 * np.log10(2), atol=0.3)  # pooled variance: ~260 dB
    assert snr_db(x, x) == np.inf


def test_data_far_off_the_training_scale_is_warned_about(codecs):
    codec = codecs["block"]
    x = correlated_series(2000, 6, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OffScaleWarning)
        codec.encode(x)  # data like the training data: silent
    with pytest.warns(OffScaleWarning, match="the 2,000 records of this bitstream are off the codec's training range"):
        blob = codec.encode(x * 1000)
    assert np.array_equal(codec.decode(blob)[np.abs(x * 1000) > 1e3], (x * 1000).astype(np.float32)[np.abs(x * 1000) > 1e3])
    with pytest.warns(OffScaleWarning, match=r"the 2,000 records of these bitstreams \(one each\) are off"):
        codecs["vector"].encode_each(x * 1000)  # a stream per record


def test_a_column_without_finite_values_is_left_out_of_the_snr():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 2))
    x_hat = x + 0.1 * rng.standard_normal((500, 2))
    both, _ = normalised_mse(x, x_hat)
    x[:, 1] = np.nan
    one, _ = normalised_mse(x, x_hat)
    assert np.isclose(one, np.mean((x_hat[:, 0] - x[:, 0]) ** 2) / x[:, 0].var())  # not halved by a "perfect" column
    assert one > 0.6 * both


def test_a_constant_column_is_left_out_of_the_snr():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 3))
    x_hat = x + 0.1 * rng.standard_normal((500, 3))
    varying, _ = normalised_mse(x, x_hat)
    x4, x4_hat = np.column_stack([x, np.full(500, 3.25)]), np.column_stack([x_hat, np.full(500, 3.25)])
    assert normalised_mse(x4, x4_hat)[0] == pytest.approx(varying)  # not lowered by 1/4
    x4_hat[:, 3] += 0.5  # all constant columns: their plain MSE
    assert normalised_mse(x4[:, 3:], x4_hat[:, 3:])[0] == pytest.approx(0.25)
    from ltc_beam.evaluation import constant_columns  # ... and reported on their own

    assert constant_columns(x4, x4_hat) == {"constant_columns": 1, "constant_columns_max_abs_error": pytest.approx(0.5)}


def test_baseline_is_uniform_zstd_at_the_same_snr(codecs):
    from ltc_beam.evaluation import coarsest_step, quantise_zstd, quantise_zstd_at

    x = correlated_series(3000, 6, seed=12)
    x[5, 1] = np.nan
    result = evaluate(codecs["block"], [x], voronoi=False, baseline=True)
    bits, snr = result["uniform_zstd_bits_per_value"], result["uniform_zstd_snr_db"]
    assert snr == pytest.approx(result["snr_db"]) and 0 < bits < 32  # at LTC's SNR: not above it
    step = coarsest_step(x, result["snr_db"])
    (fine_bits, fine), (coarse_bits, coarse) = quantise_zstd(x, step), quantise_zstd(x, step * 1.01)
    assert coarse < result["snr_db"] <= fine  # the SNR lies between the two steps
    share = (10 ** (-result["snr_db"] / 10) - 10 ** (-fine / 10)) / (10 ** (-coarse / 10) - 10 ** (-fine / 10))
    assert bits <= fine_bits + share * (coarse_bits - fine_bits) + 1e-12  # their mix, or a cheaper one
    assert bits >= min(quantise_zstd(x, step * f)[0] for f in (0.97, 1.0, 1.01, 1.02, 1.05, 1.1, 1.2)) - 1e-12
    assert quantise_zstd_at(x, snr + 6)[0] > bits + 0.5  # 6 dB more costs about a bit
    assert "uniform_zstd_bits_per_value" not in evaluate(codecs["block"], [x], voronoi=False)


def test_the_baseline_codes_data_on_a_grid_exactly_where_that_is_cheaper():
    """Digits' 8x8 images (integers 0-16), decoded exactly by LTC at 150 dB: the baseline's
    steps that reach 150 dB took 4.96 bits/value, where the integers themselves take 2.71.
    Data on a grid (integers, a few decimals) also try that grid; data off one do not."""
    from ltc_beam.evaluation import coarsest_step, grid_steps, quantise_zstd, quantise_zstd_at

    x = np.round(4 * correlated_series(3000, 6, seed=12)) + np.array([0, 0, 0, 0, 0, 100])  # integers
    x[:, 2] = np.round(10 * x[:, 2] + np.random.default_rng(1).integers(0, 10, 3000)) / 10  # one decimal
    steps = grid_steps(x)
    assert steps is not None and np.allclose(steps * x.std(axis=0), [1, 1, 0.1, 1, 1, 1])
    exact_bits, exact_snr = quantise_zstd(x, steps)
    assert exact_snr > 200
    bits, snr = quantise_zstd_at(x, 150.0)
    finest_bits, finest_snr = quantise_zstd(x, coarsest_step(x, 150.0))  # all the steps gave before: 11.3 bits, 131 dB
    assert snr >= 150 > finest_snr and bits <= exact_bits + 1e-12 and bits < finest_bits - 2
    assert quantise_zstd_at(x, 20.0)[0] < exact_bits  # at a low SNR the steps are cheaper still
    off = x + 1e-3 * np.random.default_rng(0).standard_normal(x.shape)
    assert grid_steps(off) is None and grid_steps(x, rows=(np.zeros_like(x), np.ones_like(x))) is None


def test_evaluate_warns_when_its_baseline_codes_the_data_in_clearly_fewer_bits():
    """LFW faces through a codec trained on 160 of them: 1.84 bits/value where the baseline
    beside it took 1.04, and nothing was said. Within 10 % nothing is."""
    from ltc_beam.evaluation import warn_if_baseline_wins

    def warned(ltc: float, plain: float, plain_snr: float = 20.0) -> bool:
        result = {"bits_per_value": ltc, "snr_db": 20.0, "uniform_zstd_bits_per_value": plain, "uniform_zstd_snr_db": plain_snr}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_baseline_wins(result)
        return any("uniform quantisation + zstd codes this data in" in str(w.message) for w in caught)

    assert warned(1.84, 1.04) and warned(2.0, 1.8) and not warned(2.0, 1.83) and not warned(1.0, 1.04)
    assert not warned(1.84, 1.04, plain_snr=19.0)  # short of the codec's SNR: no fair comparison


def test_glitches_sent_exactly_are_left_out_of_the_snr(codecs):
    """One 1e6 glitch travels exactly; counted, its variance would zero its column's share of
    the nmse (6 columns here: +0.8 dB; one column of ArrowHead: 38.5 → 111.9 dB)."""
    codec = codecs["block"]
    x = correlated_series(3000, 6, seed=13)
    clean = evaluate(codec, [x], voronoi=False)
    x[1000, 2] = 1e6
    assert codec.exactly_coded(x)[1000, 2] and codec.exactly_coded(x).sum() == 1
    glitched = evaluate(codec, [x], voronoi=False, baseline=True)
    assert glitched["exact_finite_values"] == 1 and clean["exact_finite_values"] == 0
    assert abs(glitched["snr_db"] - clean["snr_db"]) < 0.2
    assert snr_db(x, codec.decode(codec.encode(x))) > clean["snr_db"] + 0.6  # what the variance did
    assert abs(glitched["uniform_zstd_snr_db"] - glitched["snr_db"]) < 1.0  # the baseline is matched at it


def test_data_spread_unlike_the_training_data_is_reported(codecs):
    """The rate follows the data's spread: evaluate reports it against the training std and
    warns when a column spreads 1.5x wider (or narrower). The lattice path's rate, that is:
    the sample-coding fallback codes at the stream's SNR, where a wider column may cost less."""
    codec = copy.copy(codecs["block"])
    codec.sample_fallback = False
    x = correlated_series(3000, 6, seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = evaluate(codec, [x], voronoi=False)
    assert 0.8 < same["spread_vs_training"] < 1.25
    assert same["codec_calibrated_bits_per_value"] == codec.manifest["training"]["rate_calibration"]["bits_per_value"]
    wide = x.copy()
    wide[:, 4] *= 3
    with pytest.warns(UserWarning, match="column 'v4' spreads 3.*x its training std"):
        result = evaluate(codec, [wide], voronoi=False)
    assert result["spread_vs_training"] == pytest.approx(3 * same["spread_vs_training"], rel=0.3)
    assert result["bits_per_value"] > same["bits_per_value"]


def test_the_baseline_takes_the_shortest_layout_in_the_smallest_integers():
    """A slow random walk codes shortest as first differences, column by column, in int8;
    the yardstick is never longer than record-by-record int32 (its old single layout)."""
    import zstandard

    from ltc_beam.evaluation import _column_std, quantise_zstd

    rng = np.random.default_rng(0)
    x = 300.0 + np.cumsum(rng.standard_normal((20000, 4)), axis=0)  # a level: the first record is large
    step = 0.01
    q = np.round(x / (step * _column_std(x, np.isfinite(x)))).astype(np.int64)
    bits, _ = quantise_zstd(x, step)
    old = len(zstandard.ZstdCompressor(level=19).compress(q.astype("<i4").tobytes())) * 8 / x.size
    delta = np.diff(q, axis=0).T.astype("<i1")
    assert np.abs(np.diff(q, axis=0)).max() < 128
    first_record = 8 * x.shape[1]
    assert bits == (len(zstandard.ZstdCompressor(level=19).compress(np.ascontiguousarray(delta).tobytes())) + first_record) * 8 / x.size
    assert bits < 0.7 * old


def test_the_baseline_sends_missing_and_exact_values_as_ltc_does():
    """Missing values cost the baseline a zstd-coded mask, not 32 bits each (a price panel
    37 % NaN read 13.9 bits/value where 1.35 do), and exact values stay out of its error."""
    from ltc_beam.evaluation import quantise_zstd, quantise_zstd_at

    rng = np.random.default_rng(1)
    x = np.cumsum(rng.standard_normal((20000, 2)), axis=0)
    full_bits, full_snr = quantise_zstd(x, 0.05)
    gaps = x.copy()
    gaps[rng.random(len(x)) < 0.4, 0] = np.nan  # 20 % of the values missing
    gap_bits, gap_snr = quantise_zstd(gaps, 0.05)
    assert gap_bits < full_bits + 0.5  # the mask of 20,000 records costs under a bit per record
    assert gap_snr == pytest.approx(full_snr, abs=0.5)
    glitch = x.copy()
    glitch[::1000, 1] = 1e9
    exact = np.zeros(x.shape, bool)
    exact[::1000, 1] = True
    bits, snr = quantise_zstd_at(glitch, full_snr, exact)
    assert snr == pytest.approx(full_snr, abs=0.01) and bits < full_bits + 0.1


def test_evaluate_warns_about_data_far_from_the_training_mean(codecs):
    """The spread alone missed a level shift: the last 30 % of a CO2 record, 3.9 training
    std above the first 70 %'s mean, cost 3.00 bits/value for a codec calibrated to 1.95."""
    codec = codecs["block"]
    x = correlated_series(2000, 6, seed=11)
    std = np.asarray(codec.manifest["normalisation"]["std"])
    for offset, warned in ((0.0, False), (3.0, True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = evaluate(codec, [x + offset * std * (np.arange(6) == 2)], voronoi=False)
        said = [str(w.message) for w in caught if "training mean" in str(w.message)]
        assert bool(said) == warned and abs(report["mean_shift_vs_training"]) == pytest.approx(offset, abs=0.5)
    assert "column 'v2'" in said[0] and "normalise='series'" not in said[0]  # one series: its own mean would not help
    assert "in bits (more than the codec's calibrated" in said[0] and "or in SNR" in said[0]  # here SNR: 16.4 -> 13.4 dB
    shifted = x + 3.0 * std * (np.arange(6) == 2)
    with pytest.warns(UserWarning, match=r"training mean.*normalise='series' \(each series scaled"):  # several series: it may
        evaluate(codec, [shifted[:1000], shifted[1000:]], voronoi=False)
    with warnings.catch_warnings(record=True) as caught:  # ... not where they are short: their statistics would cost
        warnings.simplefilter("always")  # 32 bits per column over 40 records (grunfeld: 5.09 -> 11.27 bits/value)
        evaluate(codec, [shifted[i : i + 40] for i in range(0, 2000, 40)], voronoi=False)
    said = [str(w.message) for w in caught if "training mean" in str(w.message)]
    assert said and "normalise='series'" not in said[0]


def test_a_heavy_tailed_column_split_at_random_is_not_called_off_spread():
    """Training's statistics leave out rare absurd outliers; the test split's kept them, so a
    heavy-tailed column split at random (solar-module figures) read 2.07x its training std
    while its rate was on target. Both sides now take the same statistics."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8000, 2))
    x[:, 1] = rng.laplace(0, 0.2, 8000)
    moderate, far = rng.random(8000) < 0.03, rng.random(8000) < 0.003
    x[moderate, 1] = rng.normal(0, 3, moderate.sum())
    x[far, 1] = rng.choice([-1, 1], far.sum()) * rng.uniform(25, 50, far.sum())  # beyond 100 robust deviations
    train, test = x[:6400], x[6400:]
    codec = ltc_beam.train(train, steps=100, progress=False, target_bits_per_value=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(codec, [test], voronoi=False)
    assert not [w for w in caught if "spreads" in str(w.message)]
    assert 0.67 < result["spread_vs_training"] < 1.5 and result["bits_per_value"] == pytest.approx(2.0, rel=0.1)
    # nor where the test split's far values are a little over the share training leaves out
    # (CEC modules' R_s: 0.45 % in training, 0.62 % in the test split read 1.88x)
    over = test.copy()
    over[np.abs(over[:, 1]) > 20, 1] = 0.0
    over[::160, 1] = 40.0  # 10 of 1,600: 0.625 %
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(codec, [over], voronoi=False)
    assert not [w for w in caught if "spreads" in str(w.message)] and 0.67 < result["spread_vs_training"] < 1.5


def test_evaluate_warns_when_data_of_the_training_spread_costs_far_more(codecs):
    """White noise with the training data's per-column mean and std: spread and level look
    right, the rate does not (no correlations for the transform to use)."""
    codec = codecs["block"]
    mean, std = (np.asarray(codec.manifest["normalisation"][k]) for k in ("mean", "std"))
    like = correlated_series(2000, 6, seed=11)
    noise = mean + std * np.random.default_rng(0).standard_normal((2000, 6))
    for x, warned in ((like, False), (noise, True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            evaluate(codec, [x], voronoi=False)
        assert any("above the" in str(w.message) and "calibrated to" in str(w.message) for w in caught) == warned
    vector = codecs["vector"]  # the record layout never takes the fallback the calibration may have taken: no "retrain"
    mean, std = (np.asarray(vector.manifest["normalisation"][k]) for k in ("mean", "std"))
    noise = mean + std * np.random.default_rng(0).standard_normal((2000, 6))
    with pytest.warns(UserWarning, match="take no sample-coding fallback"):
        evaluate(vector, [noise], voronoi=False, layout="record")
    vector.sample_fallback = False  # as evaluate --no-sample-fallback: the calibration had it
    try:
        with pytest.warns(UserWarning, match="take no sample-coding fallback"):
            evaluate(vector, [noise], voronoi=False)
    finally:
        vector.sample_fallback = True


def test_a_narrower_spread_does_not_hide_a_rate_far_above(codecs):
    """A column spreading 0.43x its training std was warned of ("the rate follows the
    spread") and the rate warning left out, though the data cost 44 % more (pvlib's soiling
    inputs): a narrower spread lowers the rate, so it does not explain that. (Lattice-coded:
    the sample-coding fallback codes this noise at the stream's SNR near the calibrated rate.)"""
    codec = copy.copy(codecs["block"])
    codec.sample_fallback = False
    mean, std = (np.asarray(codec.manifest["normalisation"][k]) for k in ("mean", "std"))
    noise = mean + std * np.random.default_rng(0).standard_normal((2000, 6)) * np.array([0.4, 1, 1, 1, 1, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(codec, [noise], voronoi=False)
    said = [str(w.message) for w in caught]
    assert any("spreads 0.4" in m for m in said) and any("narrower spread, which lowers the rate" in m for m in said)


def test_a_shifted_or_wider_column_still_hears_what_the_data_costs_in_all(codecs):
    """The spread and level warnings name one column each, and the rate warning stayed
    silent beside them: a CO2 record 0.374x as spread (which reads as fewer bits) and 2.31
    training std above its training mean cost 2.9x the calibrated rate, and no warning said
    the figure. Now the rate warning gives it and names what raises the rate (the level, a
    wider spread; not the narrower one)."""
    codec = copy.copy(codecs["block"])
    codec.sample_fallback = False
    mean, std = (np.asarray(codec.manifest["normalisation"][k]) for k in ("mean", "std"))
    x = correlated_series(2000, 6, seed=11)
    calm = x.copy()
    calm[:, 0] = mean[0] + 0.4 * (x[:, 0] - mean[0])  # narrower: alone, it lowers the rate
    shifted = calm + 4.0 * std * (np.arange(6) == 2)
    for data, causes in (
        (x, []),
        (shifted, ["a column's mean lies +3.9", "training mean (the warnings above)"]),
        (x + 3.0 * (x - mean), ["a column spreads 4"]),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(codec, [data], voronoi=False)
        said = [str(w.message) for w in caught if "calibrated to on its training data" in str(w.message)]
        paid = result["bits_per_value"] - result["frame_bits_per_value"]
        assert bool(said) == bool(causes) == (paid > 1.25 * result["codec_calibrated_bits_per_value"])
        for cause in causes:
            assert cause in said[0] and f"costs {paid:.3g} bits/value" in said[0]
        if data is shifted:
            assert "spreads" not in said[0] and any("spreads 0.4" in str(w.message) for w in caught)


def test_the_rate_warning_names_series_short_for_the_codec_s_windows():
    """Fertility rates trained on 43-year series, tested on 11-year ones through windows of
    16: 31 % of the records coded only filled each series' last window, and the warning said
    "its structure differs"."""
    from ltc_beam.evaluation import padding_share, warn_if_rate_far

    assert padding_share([np.zeros((11, 1))] * 3, 16) == pytest.approx(5 / 16)
    assert padding_share([np.zeros((32, 1)), np.zeros((0, 1))], 16) == 0.0 and padding_share([], 4) == 0.0
    result = {"codec_calibrated_bits_per_value": 0.7, "n_values": 2409, "spread_vs_training": 1.0,
              "mean_shift_vs_training": 0.0, "bits_per_value": 1.4, "frame_bits_per_value": 0.01}
    for share, short in ((5 / 16, True), (0.1, False)):
        with pytest.warns(UserWarning) as caught:
            warn_if_rate_far(result, padded=(share, 16, 11.0))
        said = str(caught[0].message)
        assert ("short for the codec's windows of 16 records (11 records in the median: 31%" in said) == short
        assert ("its structure differs" in said) != short


def test_rate_warning_on_few_values_wants_a_larger_excess():
    """Under ``RATE_WARNING_VALUES`` values a stream's header and tables weigh more: 1.25x
    says nothing there, 2x and a bit per value more does (492 macro values at 3.6x said
    nothing before)."""
    from ltc_beam.evaluation import warn_if_rate_far

    def warned(values: int, paid: float) -> bool:
        result = {"codec_calibrated_bits_per_value": 2.0, "n_values": values, "spread_vs_training": 1.0,
                  "mean_shift_vs_training": 0.0, "bits_per_value": paid + 0.5, "frame_bits_per_value": 0.5}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_rate_far(result)
        return bool(caught)

    assert warned(1000, 2.6) and not warned(999, 2.6) and warned(999, 4.1) and not warned(999, 3.9)
    assert not warned(199, 7.2) and warned(492, 7.2)


def test_evaluate_says_when_stream_frames_take_much_of_the_rate(codecs):
    """A river's 254 test values in one stream missed the codec's rate by the frame's 28
    bytes (0.9 of 3.9 bits/value), and nothing said why."""
    codec = codecs["block"]
    for length, warned in ((12, True), (2000, False)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(codec, [correlated_series(length, 6, seed=11)], voronoi=False)
        said = [str(w.message) for w in caught if "fixed frames take" in str(w.message)]
        assert (result["frame_bits_per_value"] >= 0.2 * result["bits_per_value"]) == warned
        assert len(said) == warned
        if warned:
            assert said[0].startswith(f"the bitstreams' fixed frames take {result['frame_bits_per_value']:.3g} of these "
                                      f"{result['bits_per_value']:.3g} bits/value") and "72 values per stream" in said[0]


def test_series_snr_is_each_series_normalised_mse():
    """Each series' SNR is :func:`normalised_mse` of its records (missing, exact and constant
    columns left out as there; series with no varying column left out), worked out for all
    series at once."""
    from ltc_beam.evaluation import series_snr

    rng = np.random.default_rng(4)
    owners = rng.integers(0, 30, 600) * 3 - 7
    x = rng.standard_normal((600, 3)) * rng.uniform(0.1, 100, 600)[:, None]
    x[rng.random((600, 3)) < 0.1] = np.nan
    x[owners == -7, 1] = 2.5  # a column constant in one series
    x[owners == 20] = 4.0  # a series of nothing but constants: left out
    x_hat = x + rng.standard_normal((600, 3)) * 0.1
    exact = rng.random((600, 3)) < 0.05
    own = [snr_db(x[owners == o], x_hat[owners == o], exact[owners == o]) for o in np.unique(owners) if o != 20]
    result = series_snr(x, x_hat, exact, owners)
    assert result["series"] == len(own) == 29
    assert result["series_snr_db_median"] == pytest.approx(np.median(own), rel=1e-12)
    assert result["series_snr_db_lower_median"] == pytest.approx(np.sort(own)[14], rel=1e-12)  # 29 series: the median
    assert result["series_snr_db_min"] == pytest.approx(min(own), rel=1e-12)


def test_half_the_series_far_below_the_overall_snr_is_warned_of():
    """Two series, one at a tenth of the other's scale, coded with one error: the small one
    decodes about 17 dB below the overall SNR. Their median (their mean in dB) lay within 10
    dB of the overall figure and said nothing; half the series is warned of."""
    from types import SimpleNamespace

    from ltc_beam.evaluation import series_snr, warn_if_series_lost

    rng = np.random.default_rng(5)
    owners = np.repeat([0, 1], 500)
    x = rng.standard_normal((1000, 2)) * np.where(owners == 0, 10.0, 1.0)[:, None]
    x_hat = x + rng.standard_normal((1000, 2)) * 0.5
    result = {"snr_db": snr_db(x, x_hat, np.zeros_like(x, bool)), "n_values": x.size, **series_snr(x, x_hat, np.zeros_like(x, bool), owners)}
    codec = SimpleNamespace(series_scaled=False, config=SimpleNamespace(record_dim=2))
    assert result["snr_db"] - result["series_snr_db_median"] < 10 < result["snr_db"] - result["series_snr_db_lower_median"]
    with pytest.warns(UserWarning, match="half of the 2 series"):
        warn_if_series_lost(codec, result)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_series_lost(SimpleNamespace(series_scaled=True, config=codec.config), result)  # each series at its own scale there
        warn_if_series_lost(codec, {**result, "series_snr_db_lower_median": result["snr_db"] - 9})


def test_off_scale_warnings_are_said_once_per_kind(codecs):
    """Each chunk warned on its own: 37 near-identical lines for one compress. The warning
    names the stream's records, not the data: one artefact-laden series of 26 read as if the
    whole data set were off."""
    codec = codecs["block"]
    wide = [correlated_series(3000, 6, seed=s) * 50 for s in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(codec, wide, voronoi=False, warn_spread=False)
    said = [str(w.message) for w in caught if issubclass(w.category, OffScaleWarning)]
    assert len(said) == 1 and "(3 more like this" in said[0]
    assert said[0].startswith("the 3,000 records of this bitstream are off the codec's training range")
    with warnings.catch_warnings(record=True) as caught:  # a filter naming the module warned from still applies
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=OffScaleWarning, module=r"ltc_beam\.evaluation")
        evaluate(codec, wide, voronoi=False, warn_spread=False)
    assert not [w for w in caught if issubclass(w.category, OffScaleWarning)]


def test_grouped_warnings_say_the_other_columns_they_name():
    """A warning about column 'c7' was counted as "1 more like this" of one about column
    'c1', which left 'c7' unsaid."""
    from ltc_beam.errors import grouped_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with grouped_warnings():
            for name, shift, n in (("c1", 30, 2000), ("c7", 31, 26), ("c1", 29, 1500)):  # as the codec says it
                warnings.warn(f"the {n:,} records of this bitstream are off the codec's training range: column '{name}' lies +{shift} training std from its training mean", UserWarning)
    assert [str(w.message) for w in caught] == [
        "the 2,000 records of this bitstream are off the codec's training range: column 'c1' lies +30 training std from its training mean "
        "(2 more like this; also about 'c7')",
    ]


def test_spread_warnings_of_a_codec_trained_with_lmbda_name_no_missing_rate():
    """A codec trained with ``lmbda`` has no calibrated rate: the warning said "calibrated None bits/value"."""
    codec = ltc_beam.train(correlated_series(2000, 4, seed=2), lmbda=50.0, steps=50, progress=False, lattice="e8")
    with pytest.warns(UserWarning, match="spreads") as caught:
        evaluate(codec, [correlated_series(2000, 4, seed=3) * 3], voronoi=False)
    assert not any("None" in str(w.message) for w in caught)


def test_an_offset_signal_is_named_as_such(codecs):
    """Data shifted by 30 training std, its spread unchanged, was said to have heavy tails (on
    the lattice path: a sample-coded stream pays nothing for the escapes)."""
    codec = copy.copy(codecs["block"])
    codec.sample_fallback = False
    x = correlated_series(3000, 6, seed=3)
    x[:, 2] += 30 * np.asarray(codec.manifest["normalisation"]["std"])[2]
    with pytest.warns(OffScaleWarning, match=r"column 'v2' lies \+30 training std from its training mean"):
        codec.encode(x)


def test_a_column_constant_within_series_is_constant_to_the_snr_and_the_scale_warning():
    """A per-series label (a float constant in each series) read as varying 1e17x less than
    the column (its std 1e-17, not 0): train advised normalise='series', and the series' own
    SNR read -265 dB (its float32 decode's error against a variance of 1e-35)."""
    from ltc_beam.codec.training_data import warn_if_series_scales_differ
    from ltc_beam.evaluation import normalised_mse

    label = 0.7
    assert np.std(np.full(24, label)) > 0  # float64 rounding (1.1e-16): the cause
    x = np.stack([np.arange(24.0), np.full(24, label)], 1)
    assert normalised_mse(x, x + 0.01)[0] == pytest.approx(1e-4 / x[:, 0].var())
    rng = np.random.default_rng(0)
    levels = [v for v in np.round(np.arange(0.01, 5, 0.01), 2) if np.std(np.full(24, v)) > 0][:20]
    series = [np.stack([np.cumsum(rng.normal(size=24)), np.full(24, level)], 1) for level in levels]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_series_scales_differ(series, np.concatenate(series).std(0))


def test_integer_columns_are_scored_as_the_integers_their_type_holds():
    """evaluate rounded integer columns but did not clamp them to their type's range, which
    decompress does: a uint8 column near 255 was scored on 256, and near 0 on -1."""
    from ltc_beam import arrow

    rng = np.random.default_rng(0)
    x = np.clip(np.where(rng.random(3000) < 0.5, 255, 0) + rng.normal(0, 3, 3000), 0, 255).round()[:, None]
    # a codec whose decoded values overshoot the type's range both ways (λ given: no start check,
    # whose PCA start would decode this data within it)
    codec = ltc_beam.train(x, steps=20, progress=False, calibrate=False, columns=["u"], lmbda=3.0)
    codec.rd_quantization = False  # the nearest points overshoot; rate-distortion quantisation draws them in
    lossy = codec.decode(unbounded(codec.encode(x))).astype(np.float64)  # (the stream's bounds clamp these too)
    assert lossy.min() < -0.5 and lossy.max() > 255.5 and snr_db(x, np.round(lossy)) < snr_db(x, np.clip(np.round(lossy), 0, 255))  # rounding alone differs
    table = pa.table({"u": x[:, 0].astype(np.uint8)})
    written = arrow.decode_table(arrow.encode_table(table, codec, columns=["u"]), codec).column("u").to_numpy()
    assert written.dtype == np.uint8
    result = evaluate(codec, [x], voronoi=False, warn_spread=False, integers=[np.dtype(np.uint8)])
    assert result["snr_db"] == pytest.approx(snr_db(x, written[:, None].astype(np.float64)), abs=1e-9)
