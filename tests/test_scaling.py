"""Per-series scaling (``train(normalise="series")``): statistics in the stream, each series
coded at its own scale, exact values kept exact."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ltc_beam
from ltc_beam.arrow import check_layout
from ltc_beam.bitstream import unpack
from ltc_beam.codec.scaling import SeriesScales
from ltc_beam.errors import FormatError, InputError
from ltc_beam.evaluation import evaluate
from tests.conftest import correlated_series


def panel(count: int, seed: int, records: int = 120) -> list[np.ndarray]:
    """Series of 2 values per record whose levels and spreads span six orders of magnitude
    (M1-like panels: one column normalisation codes the small ones far below their scale)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        scale = 10 ** rng.uniform(-2, 4, size=2)
        out.append(scale * (rng.uniform(-3, 10, size=2) + correlated_series(records, 2, seed=seed * 1000 + i)))
    return out


@pytest.fixture(scope="module")
def panel_codecs() -> dict[str, ltc_beam.Codec]:
    common = dict(mode="block", window=2, target_bits_per_value=2.0, steps=150, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the column codec is warned about the scales
        return {norm: ltc_beam.train(panel(40, seed=1), normalise=norm, **common) for norm in ("column", "series")}


def own_snr(x: np.ndarray, x_hat: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.var(0) / ((x - x_hat) ** 2).mean(0))))


def test_statistics_travel_in_few_bytes_and_read_back_equal():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.normal(5e6, 3e5, (30, 2)), np.full((5, 2), 7.25), rng.normal(0, 1e-3, (10, 2)), [[1.0, np.nan]],
    ]).astype(np.float32)
    lengths = (30, 5, 10, 1)
    scales = SeriesScales.of(x, lengths)
    data = scales.to_bytes()
    assert len(data) <= 6 * x.shape[1] * len(lengths)  # two float32 each would take 8
    back, rest = SeriesScales.read(data + b"payload", lengths, 2)
    assert rest == b"payload"
    assert np.array_equal(back.mean, scales.mean) and np.array_equal(back.std, scales.std)
    assert np.array_equal(scales.std[1:4:2], np.zeros((2, 2)))  # constant and one-record series: no spread
    assert scales.mean[1].tolist() == [7.25, 7.25] and scales.mean[3, 0] == 1.0  # ... and their exact value
    assert np.allclose(scales.std[0], x[:30].std(0), rtol=0.005)  # bfloat16: 8 bits of precision
    assert np.all(np.abs(scales.mean[0] - x[:30].mean(0)) <= scales.std[0] / 32)
    unit = scales.normalise(x)
    assert np.allclose(scales.restore(unit)[np.isfinite(x)], x[np.isfinite(x)], rtol=1e-6)
    with pytest.raises(FormatError, match="cut short"):
        SeriesScales.read(data[:-1], lengths, 2)


def test_each_series_is_coded_at_its_own_scale(panel_codecs):
    test = panel(12, seed=2)
    snrs = {}
    for norm, codec in panel_codecs.items():
        snrs[norm] = [own_snr(s, codec.decode(codec.encode(s))) for s in test]
    assert min(snrs["series"]) > 8  # every series near the codec's SNR ...
    # ... where one normalisation loses most (its median 15 dB lower, some series below 0 dB)
    assert np.median(snrs["column"]) < np.median(snrs["series"]) - 8 and min(snrs["column"]) < 0


def test_exact_values_stay_exact_and_decode_equals_reconstruct(panel_codecs, tmp_path):
    codec = panel_codecs["series"]
    a, b = panel(2, seed=3)
    stuck = np.full((40, 2), 123.456)  # a stuck sensor, with a step of 0.5 once and a glitch
    stuck[3, 0], stuck[7, 1] = 123.956, 1e12
    one = np.array([[3.0e7, -2.5]])  # a series of one record
    a[5, 0], a[7, 1] = np.nan, -np.inf
    b[9, 1] = 1e12  # a glitch
    x = np.concatenate([a, stuck, one, b])
    segments = [len(a), len(stuck), 1, len(b)]
    blob = codec.encode(x, segments)
    assert unpack(blob).segments == tuple(segments)
    y = codec.decode(blob)
    assert np.array_equal(y, codec.reconstruct(x, segments), equal_nan=True)
    x32 = x.astype(np.float32)
    exact = codec.exactly_coded(x, segments)
    assert exact[5, 0] and exact[7, 1] and exact[len(a) + len(stuck) + 1 + 9, 1]
    assert np.array_equal(y[exact].view(np.uint32), x32[exact].view(np.uint32))
    assert np.array_equal(y[len(a) : len(a) + 41], x32[len(a) : len(a) + 41])  # stuck and one-record series exact
    codec.save(str(tmp_path / "series.ltc"))
    loaded = ltc_beam.Codec.load(str(tmp_path / "series.ltc"))
    assert loaded.manifest["format_version"] == 3 and loaded.series_scaled
    assert np.array_equal(loaded.decode(blob), y, equal_nan=True)


def test_one_record_streams_are_refused():
    codec = ltc_beam.train(panel(6, seed=4), mode="vector", steps=20, progress=False, normalise="series")
    with pytest.raises(InputError, match="chunk layout"):
        codec.encode_each(panel(1, seed=4)[0])
    with pytest.raises(InputError, match="normalise='series'"):
        check_layout(codec, "record")
    check_layout(codec, "chunk")


def test_evaluate_reports_each_series_snr(panel_codecs):
    test = panel(12, seed=5)
    reports = {}
    for norm, codec in panel_codecs.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reports[norm] = evaluate(codec, test, voronoi=False)
        said = [str(w.message) for w in caught if "own SNR" in str(w.message)]
        assert len(said) == (norm == "column") and all("retrain with normalise='series'" in m for m in said)
    for report in reports.values():
        assert report["series"] == 12 and report["series_snr_db_min"] <= report["series_snr_db_median"]
    assert reports["series"]["series_snr_db_min"] > 8 > reports["column"]["series_snr_db_median"]
    # the SNR over all series is the largest series' own: it hides the rest
    assert reports["column"]["snr_db"] > reports["column"]["series_snr_db_median"] + 10


def test_the_series_advice_weighs_what_short_series_pay_for_their_statistics(panel_codecs):
    """Fertility rates of 219 countries, 11-year test series: the warning advised
    normalise='series', which took 2.85 bits/value to 7.10 (4 bytes per column and series
    on 11 records), where a column codec at a higher rate did better for every series. The
    same panel in 120-record series is advised to; in 12-record pieces it is told the cost."""
    codec = panel_codecs["column"]
    for records, advised in ((120, True), (12, False)):
        test = [s[:records] for s in panel(12, seed=5)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            evaluate(codec, test, voronoi=False)
        said = [str(w.message) for w in caught if "own SNR" in str(w.message)]
        assert len(said) == 1 and ("retrain with normalise='series'" in said[0]) == advised
        assert advised or ("these series are short (12 records" in said[0] and "2.7 bits/value on top" in said[0])


def test_packed_series_keep_their_own_statistics_through_compress(tmp_path):
    """A window-1 series-scaled codec: compress packs short series into shared chunks, whose
    streams must scale each series apart (they were scaled together: a series at level 1e3
    packed with one at 1e6 lost its own SNR)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ltc_beam.cli import main

    codec = ltc_beam.train(panel(30, seed=10), mode="block", window=1, steps=150, progress=False, normalise="series")
    codec.save(str(tmp_path / "w1.ltc"))
    test = panel(6, seed=11, records=40)
    table = pa.table({
        "dev": np.repeat([f"d{i}" for i in range(6)], 40), "t": np.tile(np.arange(40), 6),
        "a": np.concatenate([s[:, 0] for s in test]), "b": np.concatenate([s[:, 1] for s in test]),
    })
    pq.write_table(table, tmp_path / "in.parquet")
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", str(tmp_path / "w1.ltc"), "--output", str(tmp_path / "c"),
                 "--columns", "a,b", "--key", "dev", "--order-by", "t", "--quiet"]) == 0
    compressed = pq.read_table(str(tmp_path / "c"))
    assert compressed.num_rows == 1  # one chunk of six packed series
    assert unpack(compressed.column("ltc_payload")[0].as_py()).segments == (40,) * 6
    back = ltc_beam.read_parquet(str(tmp_path / "c")).sort_by([("dev", "ascending"), ("t", "ascending")])
    decoded = np.stack([back.column("a").to_numpy(), back.column("b").to_numpy()], axis=1)
    for i, s in enumerate(test):
        assert own_snr(s, decoded[40 * i : 40 * (i + 1)]) > 8


def test_bad_segments_and_damaged_statistics_are_named(panel_codecs):
    codec = panel_codecs["series"]
    x = panel(1, seed=12)[0][:10]
    for call in (codec.exactly_coded, codec.series_scales, codec.code_length_bits, codec.encode):
        with pytest.raises(InputError, match="segments must be positive series lengths"):
            call(x, (3, 3))
        with pytest.raises(InputError, match=r"segments must be whole numbers of records, got \[7.5, 2.5\]"):  # truncated: a stream
            call(x, (7.5, np.float64(2.5)))
    assert codec.encode(x, np.array([7.0, 3.0])) == codec.encode(x, [7, 3])  # whole numbers as floats are lengths
    good = SeriesScales.of(x.astype(np.float32), (10,)).to_bytes()
    negative = bytes([good[0], good[1] | 0x80]) + good[2:]  # the std's sign bit
    with pytest.raises(FormatError, match="negative std"):
        SeriesScales.read(negative, (10,), 2)


def test_the_baseline_of_a_series_scaled_codec_quantises_each_series_on_its_own_grid(panel_codecs):
    """One grid per column would reach the overall SNR while losing the small series, which
    the series-scaled codec does not: its yardstick takes a grid per series (step a multiple
    of the series' std, centred on its mean) and pays the same statistics."""
    from ltc_beam.evaluation import quantise_zstd_at

    codec = panel_codecs["series"]
    test = panel(12, seed=13)
    report = evaluate(codec, test, voronoi=False, baseline=True, warn_spread=False)
    assert report["uniform_zstd_snr_db"] == pytest.approx(report["snr_db"], abs=0.01)
    stated = sum(len(codec.series_scales(s).to_bytes()) for s in test) * 8 / report["n_values"]
    one_grid = quantise_zstd_at(np.concatenate(test), report["snr_db"])[0]
    assert report["uniform_zstd_bits_per_value"] > one_grid + stated  # the small series cost their bits too


def test_training_warns_when_the_statistics_of_short_series_cost_much():
    short = [s[:3] for s in panel(40, seed=14)]
    with pytest.warns(UserWarning, match=r"statistics \(normalise='series'\) cost about \d"):
        ltc_beam.train(short, steps=5, progress=False, normalise="series", calibrate=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ltc_beam.train(panel(10, seed=14, records=400), steps=5, progress=False, normalise="series", calibrate=False)
    assert not [w for w in caught if "statistics (normalise='series')" in str(w.message)]


def test_a_stuck_negative_zero_keeps_its_sign(panel_codecs):
    codec = panel_codecs["series"]
    x = np.concatenate([panel(1, seed=15)[0][:50], np.full((30, 2), -0.0)])
    y = codec.decode(codec.encode(x, [50, 30]))
    assert np.signbit(y[50:]).all() and (y[50:] == 0).all()


def test_series_of_missing_rows_keep_their_statistics_when_the_rows_are_left_out(panel_codecs):
    codec = panel_codecs["series"]
    a, b = panel(2, seed=16)
    a[10:40] = np.nan
    x = np.concatenate([a, np.full((20, 2), np.nan), b])  # a series of missing rows only, between two
    segments = [len(a), 20, len(b)]
    blob = codec.encode(x, segments)
    assert unpack(blob).skipped
    y = codec.decode(blob)
    assert np.array_equal(np.isnan(y), np.isnan(x)) and np.array_equal(y, codec.reconstruct(x, segments), equal_nan=True)
    assert own_snr(b, y[-len(b):]) > 8


def test_series_codecs_calibrate_on_whole_series(monkeypatch):
    """Prefixes of series misrepresent a series-scaled codec (each is scaled by its own,
    narrower statistics): 50 random-walk devices asked 1 bit/value were calibrated to 1.02
    on 43 % prefixes and coded whole at 0.78. They take 4x the calibration budget."""
    from ltc_beam.codec import finishing
    from ltc_beam.evaluation import evaluate

    monkeypatch.setattr(finishing, "CALIBRATION_VALUES", 20_000)  # the data: 3.2x that, prefixes before
    rng = np.random.default_rng(0)
    walks = [np.cumsum(rng.standard_normal((4000, 4)), axis=0) * rng.uniform(1, 50) + 0.3 * rng.standard_normal((4000, 4))
             for _ in range(4)]  # before: calibrated to 1.03, coded at 0.655
    codec = ltc_beam.train(walks, target_bits_per_value=1.0, normalise="series", steps=150, progress=False, lattice="e8", window=16)
    calibrated = codec.manifest["training"]["rate_calibration"]["bits_per_value"]
    coded = evaluate(codec, walks, voronoi=False, warn_spread=False)["bits_per_value"]
    assert abs(coded - calibrated) < 0.05 * calibrated
