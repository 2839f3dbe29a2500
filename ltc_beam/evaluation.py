"""Rate and distortion of a codec on a dataset, counted on the actual bytes it writes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa
import zstandard

from ltc_beam import arrow, specials_block
from ltc_beam.bitstream import record_payload, unpack
from ltc_beam.codec.codec import Codec, column_name
from ltc_beam.codec.config import OUTLIER_FRACTION
from ltc_beam.codec.scaling import robust_statistics
from ltc_beam.codec.sample_coding import grid_quanta, packed_ints
from ltc_beam.codec.training_data import STATISTICS_WARNING, series_scaling_advice, statistics_bits
from ltc_beam.codec.window_choice import padding_share
from ltc_beam.errors import grouped_warnings

_SERIES, _ORDER, _VALUES, _INDEX = "series", "order", "values", "index"
VORONOI_UNRELIABLE = (
    "Monte-Carlo Voronoi estimate not converged: some latent densities are far narrower than "
    "the lattice cell (unused channels); the exact figures above are unaffected"
)


def archive_chunks(
    codec: Codec,
    series: list[np.ndarray],
    chunk_size: int | None = None,
    keys: list | None = None,
    pack_shards: int = arrow.DEFAULT_PACK_SHARDS,
) -> list[tuple[np.ndarray, tuple[int, ...] | None]]:
    """The ``[records, d]`` chunks that ``ltc-beam compress`` would code, one bitstream each,
    with the lengths of the series each holds (``arrow.series_lengths``: several where short
    tails are packed together, else None).

    Series are chunked as the Beam pipeline and :func:`ltc_beam.arrow.encode_table` chunk
    them (``ltc_beam.arrow`` module docstring): full chunks of each series, then the short
    tails packed together (in ``pack_shards`` groups: ``compress`` packs per output file),
    so a dataset of many short series is not charged a bitstream header per series. With
    the series' ``keys`` (the key column's values) the packing is exactly the archive's;
    without, series are keyed by their index. Values keep their
    precision (the codec itself codes float32).
    """
    return [_chunk(c, series[0].shape[1]) for c in _planned(codec, series, chunk_size, keys, pack_shards)]


def _chunk(table: pa.Table, d: int) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """A planned chunk's records ``[N, d]`` and its series' lengths."""
    return np.asarray(table.column(_VALUES).combine_chunks().flatten()).reshape(-1, d), arrow.series_lengths(table, _SERIES)


def _planned(codec: Codec, series: list[np.ndarray], chunk_size, keys, pack_shards) -> list[pa.Table]:
    """:func:`archive_chunks`' chunks as tables, each record with its series' index."""
    d = series[0].shape[1]
    lengths = [len(s) for s in series]
    stacked = np.concatenate(series).astype(np.float64)
    key_values = list(range(len(series))) if keys is None else list(keys)
    table = pa.table({
        _SERIES: pa.array([k for k, n in zip(key_values, lengths) for _ in range(n)]),
        _ORDER: np.concatenate([np.arange(n) for n in lengths]),
        _VALUES: pa.FixedSizeListArray.from_arrays(pa.array(stacked.reshape(-1)), d),
        _INDEX: np.repeat(np.arange(len(series)), lengths),
    })
    rows = arrow.chunk_rows(codec, chunk_size)
    return arrow.plan_chunks([table], key=_SERIES, order_by=_ORDER, rows=rows, pack_shards=pack_shards)


def normalised_mse(x: np.ndarray, x_hat: np.ndarray, exact: np.ndarray | None = None) -> tuple[float, float]:
    """``(nmse, mse)`` of a reconstruction over the finite entries of ``x`` ``[N, d]`` (and
    not in ``exact``, values the codec sent exactly: one 1e6 glitch among 43,925 ArrowHead
    values lifted a 38.5 dB SNR to 111.9 dB through the variance): nmse
    is the mean over columns of MSE / variance (this data's variance), the SNR every
    ltc-beam command reports is ``-10 log10 nmse``. Columns constant in this data have no
    variance to compare with and are left out (counted, a decoded constant column's error
    would have lowered nmse by 1/d per column: 4 columns of which 1 constant read 49.98
    dB where the 3 others give 48.74); so are columns without finite values. Where every
    column is constant, nmse is their mean plain MSE."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) if exact is None else np.isfinite(x) & ~exact
    if not len(x):
        return 0.0, 0.0
    err, variance, count, varying = (a[0] for a in _segment_columns(x, x_hat, ok, np.zeros(1, np.int64)))
    mse_col = err / np.maximum(count, 1)
    present = count > 0  # a column without finite values has no error to count
    if varying.any():
        nmse = float(np.mean(mse_col[varying] / variance[varying]))
    else:
        nmse = float(np.mean(mse_col[present])) if present.any() else 0.0
    return nmse, float(err.sum() / max(count.sum(), 1))


def _segment_columns(x: np.ndarray, x_hat: np.ndarray, ok: np.ndarray, starts: np.ndarray):
    """For each segment of rows of float64 ``x`` (from each of ``starts`` to the next) and
    each column, over its ``ok`` values: the squared error's sum, the variance, the count,
    and whether two of them differ (told by the values, not the variance: a constant
    column's float64 variance can read 1e-35, and its float32 decode's error then -265 dB)."""
    lengths = np.diff(np.append(starts, len(x)))
    count = np.add.reduceat(ok, starts, axis=0)
    mean = np.add.reduceat(np.where(ok, x, 0.0), starts, axis=0) / np.maximum(count, 1)
    variance = np.add.reduceat(np.where(ok, x - np.repeat(mean, lengths, axis=0), 0.0) ** 2, starts, axis=0) / np.maximum(count, 1)
    err = np.add.reduceat(np.where(ok, x - np.where(ok, x_hat, 0), 0.0) ** 2, starts, axis=0)
    varying = np.maximum.reduceat(np.where(ok, x, -np.inf), starts, axis=0) > np.minimum.reduceat(np.where(ok, x, np.inf), starts, axis=0)
    return err, variance, count, varying


def constant_columns(x: np.ndarray, x_hat: np.ndarray) -> dict:
    """Columns the SNR leaves out (constant in ``x``, some value finite) and the largest
    absolute error on their finite values (0.0 where there are none)."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    low = np.where(ok, x, np.inf).min(0)
    high = np.where(ok, x, -np.inf).max(0)
    constant = ok.any(0) & (low == high)
    err = np.where(ok, np.abs(np.where(ok, x, 0.0) - np.where(ok, x_hat, 0.0)), 0.0)[:, constant]
    return {"constant_columns": int(constant.sum()), "constant_columns_max_abs_error": float(err.max()) if err.size else 0.0}


#: ``evaluate`` compares a column's spread with training's also with far values left out up to
#: this many times the share training leaves out (:func:`training_spread`).
OUTLIER_SLACK = 4
#: ``evaluate`` warns when a column's std is this many times its training std (or under 1 / it) ...
SPREAD_WARNING = 1.5
#: ... or when its mean lies this many training std from the training mean.
SHIFT_WARNING = 1.0


def training_spread(codec: Codec, x: np.ndarray, exact: np.ndarray, warn: bool = True, series: int = 1) -> dict:
    """The largest ratio of a column's std in ``x`` (exact values and, as in training, rare
    absurd outliers left out) to its training std, the largest shift of a column's mean from
    its training mean (in training std), and
    the codec's calibrated rate; a warning when the data spreads much wider or narrower than
    the training data, or lies far from it: the rate follows (ElectricDevices, test split
    2.4x the training std: 2.72 bits/value coded with a codec calibrated to 1.51; the last
    30 % of a CO2 record, 3.9 training std above the first 70 %'s mean: 3.00 for 1.95). An
    offset may be paid in SNR instead (a sample-coded stream 3 std off in one column: 1.69
    bits/value for 2.00, 13.4 dB for 16.4), so the warning names both: sea-surface
    temperatures 1.2 std below their training mean, 0.2x as spread, coded at 1.55 bits/value
    for a codec calibrated to 1.96, where "more bits" alone was wrong."""
    norm = codec.manifest["normalisation"]
    varying = ~np.asarray(norm.get("constant") or [False] * x.shape[1], bool)
    std = np.asarray(norm["std"])
    kept = np.where(np.isfinite(x) & ~exact, x, np.nan)
    # as training took its own (rare absurd outliers left out): a heavy-tailed column split at
    # random read 2.07x its training std, 1.02x by the plain std of both splits. Whether the
    # far values were rare enough to leave out may differ between two splits of one file (CEC
    # modules' R_s, 0.45 % far in training, 0.62 % in the test split: 1.88x, plain stds 0.96x),
    # so the test split's are also left out up to OUTLIER_SLACK times that share, and the
    # statistics nearer the training ones count
    with np.errstate(invalid="ignore", divide="ignore"):
        views = [
            ((mean - np.asarray(norm["mean"])) / std, spread / std)
            for mean, spread in (robust_statistics(kept, fraction=f) for f in (OUTLIER_FRACTION, OUTLIER_SLACK * OUTLIER_FRACTION))
        ]
        nearer = np.abs(np.log(views[1][1])) < np.abs(np.log(views[0][1]))
    shift, spread = (np.where(nearer, wide, strict) for strict, wide in zip(*views))
    present = np.isfinite(kept).any(axis=0)
    spread = np.where(varying & present & np.isfinite(spread) & (spread > 0), spread, 1.0)
    shift = np.where(varying & present & np.isfinite(shift), shift, 0.0)
    far = np.maximum(spread, 1 / spread)
    worst, moved = int(np.argmax(far)), int(np.argmax(np.abs(shift)))
    calibrated = (codec.manifest.get("training", {}).get("rate_calibration") or {}).get("bits_per_value")
    rate = "the training data's rate" if calibrated is None else f"the codec's calibrated {round(calibrated, 3)} bits/value"
    if warn and far[worst] > SPREAD_WARNING:
        warnings.warn(
            f"column {column_name(codec, worst)} spreads {spread[worst]:.3g}x its training std: the rate follows the spread "
            f"(about log2 of it more or fewer bits per coded latent value) away from {rate}; retrain on data like this for that rate",
            UserWarning,
            stacklevel=3,
        )
    if warn and abs(shift[moved]) > SHIFT_WARNING:
        # one series' own mean helps only where the series are many (one trending series: 19.5 ->
        # 12.6 dB) and long enough for their statistics to cost little (grunfeld's 11 firms, 4
        # test years each: 5.09 -> 11.27 bits/value, 27.1 -> 11.9 dB, following this advice)
        own_mean = not codec.series_scaled and series >= 2 and statistics_bits(len(x) / series) <= STATISTICS_WARNING
        warnings.warn(
            f"the mean of column {column_name(codec, moved)} lies {shift[moved]:+.3g} training std from its training mean: "
            f"the codec pays for the offset, in bits (more than {rate}) or in SNR; retrain on data like this"
            + (", or with normalise='series' (each series scaled by its own mean)" if own_mean else ""),
            UserWarning,
            stacklevel=3,
        )
    return {
        "spread_vs_training": float(spread[worst]), "mean_shift_vs_training": float(shift[moved]),
        "codec_calibrated_bits_per_value": calibrated,
    }


def training_snr(codec: Codec, x: np.ndarray, x_hat: np.ndarray, exact: np.ndarray) -> float | None:
    """The SNR with each column's error weighed by its training variance instead of this
    data's (None for series-scaled codecs, whose scale is each series'): where some column
    of the data is far quieter than in training, its small errors set ``snr_db`` (a weather
    station's night-time tail: -43.8 dB, 14.1 dB by the training variance)."""
    if codec.series_scaled or not len(x):
        return None
    std = np.asarray(codec.manifest["normalisation"]["std"], np.float64)
    ok = np.isfinite(np.asarray(x, np.float64)) & ~exact
    error, _, count, _ = (a[0] for a in _segment_columns(np.asarray(x, np.float64), x_hat, ok, np.zeros(1, np.int64)))
    used = (std > 0) & (count > 0)
    if not used.any():
        return None
    return _decibels(float(np.mean(error[used] / count[used] / std[used] ** 2)))


def series_snr(x: np.ndarray, x_hat: np.ndarray, exact: np.ndarray, owners: np.ndarray) -> dict:
    """The SNR of each series of its own (records ``owners`` of it; series with no varying
    column left out): their median, lower median and the lowest, where there are several.
    The SNR over all series weighs each column's series by their variance, so a panel of
    series of very different scales can read 50 dB while most series decode below 0 dB of
    their own (M1 yearly; ``train(normalise="series")`` codes each at its own scale)."""
    order = np.argsort(owners, kind="stable")
    if not len(order):
        return {}
    # :func:`normalised_mse` of every series at once (one call per series took 13 s of 100,000)
    x, ok = np.asarray(x, np.float64)[order], np.isfinite(x[order]) & ~exact[order]
    starts = np.flatnonzero(np.diff(owners[order], prepend=owners[order][:1] - 1))
    err, variance, count, varying = _segment_columns(x, x_hat[order], ok, starts)
    kept = varying.any(axis=1)  # series with no varying column left out
    ratios = np.where(varying, err / np.maximum(count, 1) / np.where(varying, variance, 1.0), 0.0)[kept]
    snrs = [_decibels(v) for v in ratios.sum(axis=1) / varying[kept].sum(axis=1)]
    if len(snrs) < 2:
        return {}
    ordered = np.sort(snrs)
    return {
        "series": len(snrs), "series_snr_db_median": float(np.median(ordered)),
        "series_snr_db_lower_median": float(ordered[(len(snrs) - 1) // 2]),  # half the series at or below it: of 2, the lower
        "series_snr_db_min": float(ordered[0]),
    }


#: ``evaluate`` warns when data like the training data's in spread and level costs this many
#: times the codec's calibrated rate (frames aside), on at least ``RATE_WARNING_VALUES`` values;
#: on fewer (a stream's header and tables weigh more there) from ``SMALL_RATE_WARNING`` times
#: and a bit per value more, on at least ``SMALL_RATE_WARNING_VALUES`` (quarterly macro data,
#: 492 values: 7.69 bits/value for a series-scaled codec calibrated to 2.0 said nothing).
RATE_WARNING, RATE_WARNING_VALUES = 1.25, 1000
SMALL_RATE_WARNING, SMALL_RATE_WARNING_VALUES = 2.0, 200


#: Share of padding records among the coded ones (each series' last window filled up) above
#: which the rate warning names short series as the likely cause.
PADDING_WARNING = 0.2


def warn_if_rate_far(
    result: dict, layout: str = "chunk", sample_fallback: bool = True, padded: tuple[float, int, float] | None = None
) -> None:
    """Warn when the data costs far more than the codec's calibrated rate. Where its spread
    and level are the training data's, or its spread is narrower, which lowers the rate, its
    structure differs (white noise of the training data's std and mean: 2.78 bits/value for
    a codec calibrated to 2.04, which the spread did not show; a series-scaled codec's data is
    always at unit scale), or its streams lack the sample-coding fallback the calibration's
    had (the record layout, ``sample_fallback`` off), or, where ``padded`` (the share of
    padding records, the window, the median series length) says a good part of the coded
    records only fill each series' last window, its series are short for the codec's
    windows (fertility rates, 11-year test series in windows of 16: 1.39 bits/value for a
    codec calibrated to 0.70; windows of 1 coded them at 23.2 dB where the windowed codec
    needed about 16 % more bits). Where a column spreads wider or lies off
    its training mean, the other warnings name it column by column; this one gives what it
    costs in all (a CO2 record 0.374x as spread and 2.31 training std above its training mean
    cost 2.9x the calibrated rate, and the spread's warning alone read as fewer bits)."""
    calibrated, values = result.get("codec_calibrated_bits_per_value"), result["n_values"]
    if not calibrated or values < SMALL_RATE_WARNING_VALUES:
        return
    # one stream per record (the record layout) flushes the coder, about 5 bytes, each time:
    # that says nothing of the data's structure, so there the code length alone is compared
    paid = result["model_bits_per_value"] if layout == "record" else result["bits_per_value"] - result["frame_bits_per_value"]
    far = paid > RATE_WARNING * calibrated if values >= RATE_WARNING_VALUES else paid > max(SMALL_RATE_WARNING * calibrated, calibrated + 1)
    if not far:
        return
    spread, shift = result["spread_vs_training"], result["mean_shift_vs_training"]
    off = [f"a column spreads {spread:.3g}x its training std"] if spread > SPREAD_WARNING else []
    off += [f"a column's mean lies {shift:+.3g} training std from its training mean"] if abs(shift) > SHIFT_WARNING else []
    if off:
        why = f"{' and '.join(off)} (the warnings above); retrain on data like this for that rate"
    elif layout == "record" or not sample_fallback:
        # the calibration coded streams as the chunk layout does, sample-coding fallback included, which
        # record-layout streams never take: the codec's own training data paid 45 % more that way
        # (appliance power lattice-coded: 1.88 bits/value against 0.48 calibrated, fallback on)
        why = (
            "these streams take no sample-coding fallback (layout='record', or the fallback turned off), which the "
            "calibration's streams may have taken (evaluating with layout='chunk' and the fallback on tells the two apart), or its "
            "structure differs"
        )
    elif padded is not None and padded[0] > PADDING_WARNING:
        share, window, median = padded
        why = (
            f"its series are short for the codec's windows of {window} records ({median:g} records in the median: "
            f"{share:.0%} of the records coded only fill a series' last window); a codec trained with a shorter "
            "window= codes series like these in fewer bits"
        )
    else:
        why = "its structure differs (correlations, shape, series lengths); retrain on data like this for that rate"
    if off:
        like = ""
    elif 1 / spread > SPREAD_WARNING:
        like = ", at a level like that data's and a narrower spread, which lowers the rate"
    else:
        like = ", at a spread and level like that data's"
    warnings.warn(
        f"this data costs {paid:.3g} bits/value (stream frames aside), {100 * (paid / calibrated - 1):.0f} % above the "
        f"{calibrated:.3g} the codec was calibrated to on its training data{like}: {why}",
        UserWarning,
        stacklevel=3,
    )


#: ``evaluate --baseline`` warns when the codec's bits are over this many times the baseline's.
BASELINE_WARNING = 1.1


def warn_if_baseline_wins(result: dict) -> None:
    """Warn when uniform quantisation + zstd, the baseline ``evaluate`` was asked for, codes
    the data in clearly fewer bits at the same SNR: the report put the two figures side by
    side and said nothing (LFW faces, 160 training images: 1.84 bits/value against 1.04)."""
    ltc, plain = result["bits_per_value"], result["uniform_zstd_bits_per_value"]
    if not (ltc > BASELINE_WARNING * plain and result["uniform_zstd_snr_db"] >= result["snr_db"] - 0.01):
        return
    warnings.warn(
        f"uniform quantisation + zstd codes this data in {plain:.3g} bits/value at the same SNR, {100 * (1 - plain / ltc):.0f} % "
        f"fewer than the codec's {ltc:.3g}: a codec trained on more data like this, at this rate (and for series in "
        "time order with window='auto'), may do better; else a classical codec serves this data better",
        UserWarning,
        stacklevel=3,
    )


#: ``evaluate`` says so when the streams' fixed frames take this share of the rate or more
#: (a river's 254 test values in one stream: 0.9 of its 3.9 bits/value).
FRAME_SHARE_NOTE = 0.2


def warn_if_frames_dominate(result: dict, layout: str = "chunk") -> None:
    """Warn when the bitstreams' fixed frames (magic, codec id, shape, checksum: about 28
    bytes each) take a good part of the rate: a cost of too few values per stream, which no
    codec setting (nor the training's calibrated rate) accounts for."""
    share = result["frame_bits_per_value"] / result["bits_per_value"] if result["bits_per_value"] else 0.0
    if layout != "chunk" or share < FRAME_SHARE_NOTE:
        return
    warnings.warn(
        f"the bitstreams' fixed frames take {result['frame_bits_per_value']:.3g} of these {result['bits_per_value']:.3g} "
        f"bits/value ({100 * share:.0f} %): {result['n_values'] / result['streams']:.0f} values per stream. A frame's cost is "
        "fixed: it weighs less on more values per stream (longer series, or where series are longer than a chunk, larger "
        "chunks: chunk_size=)",
        UserWarning,
        stacklevel=3,
    )


#: ``evaluate`` warns when half the series' own SNRs (their lower median) lie this many dB
#: below the overall SNR (Grunfeld's 11 firms: 3.0 dB against 21.2; BasicMotions' recordings:
#: 14.5 against 18.5; two EEG recordings, one full of artifacts: 7.3 and about 26 dB against
#: 24.7, whose median, their mean, had said nothing).
SERIES_SNR_GAP = 10.0


def warn_if_series_lost(codec: Codec, result: dict) -> None:
    """Warn when half the series or more decode far below the SNR over all of them: the
    column's spread, which sets the step, is mostly the series' differences in level or
    scale, and each series varies far less (a codec normalised per column spends its bits on
    the largest). ``normalise='series'`` is advised only where the series are long enough
    for their own statistics (about 4 bytes per column and series) to cost little
    (:func:`~ltc_beam.codec.training_data.series_scaling_advice`). Not for a
    series-scaled codec: each series is at its own scale there, and the overall SNR also
    counts the series' levels (a panel coded at 23 dB a series read 66 dB overall)."""
    median, lower = result.get("series_snr_db_median"), result.get("series_snr_db_lower_median")
    if codec.series_scaled or lower is None or not result["snr_db"] - lower > SERIES_SNR_GAP:
        return  # a series-scaled codec codes each at its own scale: the overall figure then weighs levels
    records = result["n_values"] / (result["series"] * codec.config.record_dim)
    warnings.warn(
        f"the series' own SNR (half of the {result['series']} series at {lower:.1f} dB or below, median {median:.1f} "
        f"dB, lowest {result['series_snr_db_min']:.1f} dB) lies far below the {result['snr_db']:.1f} dB over all of them: "
        "the column's spread, which sets the step, is mostly the series' differences in level or scale, and each "
        f"varies far less; {series_scaling_advice(records, 'retrain')}",
        UserWarning,
        stacklevel=3,
    )


def snr_db(x: np.ndarray, x_hat: np.ndarray, exact: np.ndarray | None = None) -> float:
    """``-10 log10 nmse`` (:func:`normalised_mse`); ``inf`` for an exact reconstruction."""
    return _decibels(normalised_mse(x, x_hat, exact)[0])


def _decibels(nmse: float) -> float:
    if not 0 < nmse < math.inf:  # exact; or a decoded value infinite (--verify said "math domain error")
        return math.inf if nmse == 0 else -math.inf
    return -10 * math.log10(nmse)


def quantise_zstd(x: np.ndarray, step: float | np.ndarray, exact: np.ndarray | None = None, rows=None) -> tuple[float, float]:
    """The classical yardstick: uniform scalar quantisation of ``x`` ``[N, d]`` (per-column
    step ``step``, one for all or one per column, x the column's std) + zstd-19 over the integers, in the shortest of three
    layouts (record by record; column by column; column by column as first differences
    along the records), each in the smallest integer type that holds it:
    ``(bits per value, SNR dB)``. Record by record in int32 alone, it read Daphnet at 4.79
    bits where column by column in int16 needs 3.85. Non-finite values and those in
    ``exact`` travel as LTC's do, in its specials block (:mod:`ltc_beam.specials_block`),
    and are left out of the error; in the integers each repeats its column's previous value.
    Charged 32 bits each before, a price panel 37 % NaN read 13.9 bits/value where 1.35 do.
    ``rows``: ``(centre, unit)`` ``[N, d]``, each record's grid centre and the std its step
    is a multiple of (a series-scaled codec's series statistics), instead of 0 and the
    column's std."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) if exact is None else np.isfinite(x) & ~exact
    centre, unit = _grid(x, ok, rows)
    scale = step * unit
    q = _held(np.round(np.where(ok, x - centre, 0.0) / scale).astype(np.int64), ok)

    def size(a: np.ndarray, extra: int = 0) -> int:
        return len(zstandard.ZstdCompressor(level=19).compress(packed_ints(a, (1, 2, 4, 8))[1])) + extra

    body = min(size(q), size(q.T), size(np.diff(q, axis=0).T, 8 * q.shape[1]))  # differences: the first record as int64
    if not ok.all():
        bits = x[~ok].astype(np.float32).view(np.uint32)
        body += len(specials_block.to_bytes(np.flatnonzero(~ok.reshape(-1)), bits, x.size))
    return body * 8 / x.size, snr_db(x, q * scale + centre, ~ok)


def _grid(x: np.ndarray, ok: np.ndarray, rows) -> tuple:
    """The yardstick's grid centre and step unit (:func:`quantise_zstd`)."""
    if rows is None:
        return 0.0, _column_std(x, ok)
    centre, unit = rows
    return centre, np.where(unit > 0, unit, 1.0)


def _held(q: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``q`` with each entry outside ``ok`` replaced by its column's previous one inside (0
    before the first)."""
    rows = np.where(ok, np.arange(len(q))[:, None], -1)
    last = np.maximum.accumulate(rows, axis=0)
    held = np.take_along_axis(q, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, held, 0)


def _column_std(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Std of each column's finite values (1 where that is 0 or undefined)."""
    with warnings.catch_warnings():  # an all-NaN column: nanstd warns, the result is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(np.where(ok, x, np.nan), axis=0) if ok.any() else np.ones(x.shape[1])
    return np.where(np.isfinite(std) & (std > 0), std, 1.0)


#: The coarsest baseline step, in column std.
MAX_BASELINE_STEP = 4.0


#: Steps tried around the coarsest that reaches the asked SNR, as multiples of it: on integer
#: data neither the SNR nor zstd's size falls steadily with the step (TMY2: 10 % coarser
#: lost 0.06 dB and saved 4.7 % of the bits, 3 % coarser lost 1.1 dB).
BASELINE_STEP_FACTORS = (0.97, 1.0, 1.01, 1.02, 1.05, 1.1, 1.2)


def quantise_zstd_at(x: np.ndarray, snr: float, exact: np.ndarray | None = None, rows=None) -> tuple[float, float]:
    """:func:`quantise_zstd` at ``snr`` dB: the cheapest time-sharing of a step that reaches it
    with one that falls short (a share of the data coded with each: bits and MSE mix
    linearly), among ``BASELINE_STEP_FACTORS`` times the coarsest step that reaches it; a
    step alone where none falls short. One step alone overshot by up to 0.4 dB on real data
    (its bits then flattered the codec it is compared with). Data whose columns all lie on a
    grid (integers, a few decimals) also try that grid (:func:`grid_steps`): coded exactly,
    digits' 8x8 images took 2.71 bits/value, where the steps that reach 150 dB took 4.96."""
    step = coarsest_step(x, snr, exact, rows)
    if step >= MAX_BASELINE_STEP:
        return quantise_zstd(x, step, exact, rows)
    points = [quantise_zstd(x, step * f, exact, rows) for f in BASELINE_STEP_FACTORS if step * f <= MAX_BASELINE_STEP]
    if (on_grid := grid_steps(x, exact, rows)) is not None:
        points.append(quantise_zstd(x, on_grid, exact, rows))
    target = 10 ** (-snr / 10)
    best = min(((bits, reached) for bits, reached in points if reached >= snr), default=max(points, key=lambda p: p[1]))
    for bits, reached in points:
        for coarse_bits, coarser in points:
            fine, coarse = 10 ** (-reached / 10), 10 ** (-coarser / 10)
            if fine <= target < coarse:
                share = (target - fine) / (coarse - fine)  # of the data coded with the coarser step
                best = min(best, (bits + share * (coarse_bits - bits), snr))
    return best


def grid_steps(x: np.ndarray, exact: np.ndarray | None = None, rows=None) -> np.ndarray | None:
    """Per column, the step (in column std, as :func:`quantise_zstd` takes it) of the grid its
    values lie on (:func:`~ltc_beam.codec.sample_coding.grid_quanta`: integers or a few
    decimals), which codes them exactly; None where some column lies on none, or for a
    series-scaled codec's ``rows`` (a grid per series)."""
    if rows is not None:
        return None
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) if exact is None else np.isfinite(x) & ~exact
    quanta = grid_quanta(x, ok)
    if not (quanta[ok.any(axis=0)] > 0).all():
        return None
    return np.where(quanta > 0, quanta, 1.0) / _column_std(x, ok)


def coarsest_step(x: np.ndarray, snr: float, exact: np.ndarray | None = None, rows=None) -> float:
    """The coarsest :func:`quantise_zstd` step (to 1 %, at most 4 std) whose SNR is at least ``snr``."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) if exact is None else np.isfinite(x) & ~exact
    centre, std = _grid(x, ok, rows)

    def reaches(step: float) -> bool:
        return snr_db(x, np.round(np.where(ok, x - centre, 0.0) / (step * std)) * (step * std) + centre, ~ok) >= snr

    lo, hi = 1e-6, MAX_BASELINE_STEP
    if reaches(hi):
        return hi
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if reaches(mid) else (lo, mid)
    return lo


def evaluate(
    codec: Codec,
    series: list[np.ndarray],
    *,
    voronoi: bool = True,
    chunk_size: int | None = None,
    keys: list | None = None,
    baseline: bool = False,
    pack_shards: int = arrow.DEFAULT_PACK_SHARDS,
    warn_spread: bool = True,
    layout: str = "chunk",
    integers: list[np.dtype | None] | None = None,
) -> dict:
    """Encode and decode every series as the archive would; report bits per value and error.

    ``integers``: per column, its integer type or None; such columns are scored as the
    nearest integers their type holds, as ``decompress`` writes them (15.45 dB said before
    rounding where the file held 13.72).

    ``layout="record"``: one bitstream per record, as the record layout stores them (less
    what its rows share: ``ltc_beam.bitstream.record_payload``); ``streams`` counts records.

    ``bits_per_value`` counts every byte of every bitstream (headers included) of the
    chunks :func:`archive_chunks` forms (``streams`` of them; pass the series ``keys`` and
    the archive's number of files as ``pack_shards`` for its exact packing): the ``ltc_payload`` bytes of a compressed archive;
    ``frame_bits_per_value`` of it are the streams' fixed frames (a cost of the stream count);
    ``sample_coded_streams`` of them took the sample-coding fallback; ``repeated_records``
    were left out of them as repeats of the record before them (:mod:`ltc_beam.repeats`);
    ``model_bits_per_value`` is the exact LTC code length under the codec's tables; with
    ``baseline``, ``uniform_zstd_bits_per_value`` is what :func:`quantise_zstd_at` needs for
    the same data at the same SNR (is LTC the right codec for this data?); ``nmse`` is the mean over columns of MSE / variance (variance of this
    data); non-finite inputs and glitches (restored exactly, ``exact_finite_values`` of the
    latter) are left out of the error and the variance; columns constant
    in this data are left out of nmse and reported as ``constant_columns`` with their
    ``constant_columns_max_abs_error``; with several series, each one's own SNR
    (:func:`series_snr`); ``spread_vs_training`` and the codec's calibrated rate. Warnings
    (unless ``warn_spread`` is False: training codes its own splits): data spread far from
    the training data's, series decoded far below the overall SNR, and stream frames that
    take a good part of the rate.
    """
    values = sum(s.size for s in series)
    if not values:
        raise ValueError("nothing to evaluate: the input has no records")
    kept = [i for i, s in enumerate(series) if len(s)]
    planned = _planned(codec, [series[i] for i in kept], chunk_size, None if keys is None else [keys[i] for i in kept], pack_shards)
    chunks = [_chunk(c, series[kept[0]].shape[1]) for c in planned]
    nbytes, frame_bytes, model_bits, decoded, exactly, sample_coded, repeated = 0, 0, 0.0, [], [], 0, 0
    scales = [codec.series_scales(x, segments) for x, segments in chunks]  # None unless series-scaled
    arrow.check_layout(codec, layout)
    with grouped_warnings():  # once per kind, not once per chunk
        coded = [(x, segments, codec.encode_each(x) if layout == "record" else [codec.encode(x, segments)]) for x, segments in chunks]
    for x, segments, blobs in coded:
        for blob in blobs:
            frame = unpack(blob)
            stored = len(record_payload(blob, x.shape[1])) if layout == "record" else len(blob)
            nbytes += stored
            frame_bytes += frame.fixed_bytes - (len(blob) - stored)
            sample_coded += frame.sample_coded
            repeated += len(frame.repeated)
        model_bits += codec.code_length_bits(x, segments)
        decoded.append(np.concatenate(codec.decode_each(blobs)))
        exactly.append(codec.exactly_coded(x, segments))
    stacked = np.concatenate([x for x, _ in chunks])
    x_hat = np.concatenate(decoded)
    for j, kind in enumerate(integers or []):
        if kind is not None:
            x_hat[:, j] = arrow.nearest_integers(x_hat[:, j], kind)
    exact = np.concatenate(exactly) & np.isfinite(stacked)
    owners = np.concatenate([c.column(_INDEX).to_numpy() for c in planned])
    # the data the column normalisation sees: each series at unit scale for a series-scaled codec
    unit = np.concatenate([x if s is None else s.normalise(x.astype(np.float32)) for (x, _), s in zip(chunks, scales)])
    nmse, mse = normalised_mse(stacked, x_hat, exact)
    result = {
        "n_values": int(values),
        "streams": sum(len(blobs) for _, _, blobs in coded),
        "sample_coded_streams": int(sample_coded),
        "repeated_records": int(repeated),
        "bits_per_value": 8.0 * nbytes / values,
        "frame_bits_per_value": 8.0 * frame_bytes / values,
        "model_bits_per_value": model_bits / values,
        "estimated_bits_voronoi_per_value": None,
        "mse": mse,
        "nmse": nmse,
        "snr_db": _decibels(nmse),
        "snr_vs_training_db": training_snr(codec, stacked, x_hat, exact),
        "exact_finite_values": int(exact.sum()),
        **constant_columns(stacked, x_hat),
        **series_snr(stacked, x_hat, exact, owners),
        **training_spread(codec, unit, exact, warn_spread, len(kept)),
    }
    if warn_spread:
        warn_if_series_lost(codec, result)
        coded = [series[i] for i in kept]
        padded = (padding_share(coded, codec.config.window), codec.config.window, float(np.median([len(s) for s in coded])))
        warn_if_rate_far(result, layout, codec.sample_fallback, padded)
        warn_if_frames_dominate(result, layout)
    if baseline:  # the values LTC sends exactly travel exactly in the baseline too
        rows, stated = None, 0
        if codec.series_scaled:  # a grid per series, its statistics paid as LTC pays them
            rows = tuple(np.concatenate(parts) for parts in zip(*(s.per_record() for s in scales)))
            stated = sum(len(s.to_bytes()) for s in scales)
        bits, snr = quantise_zstd_at(stacked, result["snr_db"], exact, rows)
        result["uniform_zstd_bits_per_value"], result["uniform_zstd_snr_db"] = bits + 8 * stated / values, snr
        if warn_spread:
            warn_if_baseline_wins(result)
    if voronoi:
        estimate = codec.voronoi_bits_estimate(max((x for x, _ in chunks), key=len))
        if math.isfinite(estimate):
            result["estimated_bits_voronoi_per_value"] = estimate
        else:
            result["voronoi_note"] = VORONOI_UNRELIABLE
    return result
