"""The data training learns from: the caller's arrays and frames as series, the checks
that warn about them before any step, the validation split, and the evenly spread pieces of
data too large to learn from whole (:func:`~ltc_beam.codec.training.train` calls these in
that order)."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ltc_beam import repeats
from ltc_beam.codec.scaling import robust_statistics
from ltc_beam.errors import BEYOND_FLOAT32, InputError, WindowHint, beyond_float32, column_label, names_said, numeric_array


def frame_columns_chosen(data, columns: list[str], given: bool = True):
    """``data`` with a pandas DataFrame's (or each of a list of them) ``columns`` taken by
    name, in that order, as ``encode`` takes them: ``columns=`` relabelled a frame's columns
    by position (its own names in another order gave each column another's statistics:
    3.9 dB where 13.2 was due, and no warning), and frames of one list were joined by
    position whatever their columns' order. ``given``: whether the caller named ``columns``
    (else they are the first frame's)."""
    from ltc_beam.codec.codec import frame_columns

    frames = data if isinstance(data, (list, tuple)) and data and all(frame_columns(f) is not None for f in data) else [data]
    if frame_columns(frames[0]) is None:
        return data
    chosen, wanted = [], [str(c) for c in columns]
    for number, frame in enumerate(frames):
        names = frame_columns(frame)
        missing = [c for c in wanted if c not in names]
        if missing and not given:  # said "columns= names …" where no columns= was given
            raise InputError(
                f"frame {number} lacks the first frame's columns {names_said(missing)} (its columns: {names_said(names)}): "
                "give frames of the same columns, or name the ones to code with columns="
            )
        if missing:
            raise InputError(f"columns= names {names_said(missing)}, which the frame lacks (its columns: {names_said(names)})")
        twice = sorted({c for c in wanted if names.count(c) > 1 or wanted.count(c) > 1})
        if twice:
            raise InputError(f"columns {names_said(twice)} appear more than once (in the frame or in columns=): name each column once")
        chosen.append(frame.iloc[:, [names.index(c) for c in wanted]].set_axis(wanted, axis=1))
    return chosen if frames is data else chosen[0]


def whole_number(value) -> bool:
    """Whether ``value`` is an integer (a numpy one too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


#: Sampled records per series for :func:`warn_if_records_follow_each_other`.
ORDER_SAMPLE = 100_000


def records_follow_each_other(series: list[np.ndarray]) -> float | None:
    """The lag-1 correlation of consecutive records (of each series), where it reaches
    ``ltc_beam.data.HINT_MIN_CORRELATION``; else None."""
    from ltc_beam.data import HINT_MIN_CORRELATION, lag_correlation

    parts = [s[:ORDER_SAMPLE] for s in series]
    codes = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    with np.errstate(invalid="ignore"):
        correlation = lag_correlation(np.concatenate(parts), codes if len(parts) > 1 else None)
    return correlation if correlation >= HINT_MIN_CORRELATION else None


def warn_if_records_follow_each_other(series: list[np.ndarray]) -> None:
    """A :class:`~ltc_beam.errors.WindowHint` where consecutive records correlate (series in
    time order coded one record at a time): Seattle's hourly temperatures at window 1 took
    31 % more bits than uniform quantisation + zstd at the same SNR, at ``window="auto"`` 13 %
    fewer. The CLI says it its own way (it knows the order column, or that none is given)."""
    correlation = records_follow_each_other(series)
    if correlation is not None:
        warnings.warn(
            f"consecutive records correlate (lag-1 correlation {correlation:.2f}), and window=1 codes each on its own: "
            "window='auto' (or window=T) codes windows of consecutive records, and time series often take far fewer bits so",
            WindowHint,
            stacklevel=3,
        )


def as_series(data, columns: list[str] | None = None) -> list[np.ndarray]:
    """One ``[N, d]`` array or a list of them (one per series) → list of float64 arrays
    (``columns``: their names, for messages)."""
    items = data if isinstance(data, (list, tuple)) else [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, (list, tuple)) and np.ndim(s) == 1 for s in data):
        items = [data]  # a list of records (rows, as lists), not of series (arrays)
    if isinstance(data, (list, tuple)) and data and all(np.ndim(v) == 0 for v in data):
        items = [data]  # one signal's values
    if not len(items):
        raise InputError("no data: give an array [records, values] (or [records] for one signal) or a list of series")
    series = [numeric_array(s, np.float64) for s in items]
    if items is not data:  # one array, Series or list given: a 1-D one is a signal, one value per record
        series = [s[:, None] if s.ndim == 1 else s for s in series]
    elif any(s.ndim == 1 for s in series):  # rows to encode(), one-value series to the line below
        raise InputError("a list of 1-D arrays is ambiguous: np.stack(them) for records of several values, or give each series as [records, 1]")
    for i, s in enumerate(series):
        if s.ndim != 2:
            raise InputError(f"each series must be a 2-D array [records, values], got shape {s.shape}")
        wide = np.argwhere(beyond_float32(s))
        if len(wide):
            row, col = map(int, wide[0])
            where = f"series {i}, record {row}, column {column_label(columns, col)}"
            raise InputError(f"{where} ({float(s[row, col])!r}; {len(wide)} such values): {BEYOND_FLOAT32}")
    if len({s.shape[1] for s in series}) != 1:
        raise InputError("all series must have the same number of values per record")
    return [s for s in series if len(s)] or series[:1]  # empty series hold nothing to learn


#: The model learns from the records that do not repeat the one before where at least this
#: many remain (else, e.g. for a constant stream, from the records as given).
MIN_DISTINCT_RECORDS = 512


def distinct_series(series: list[np.ndarray]) -> list[np.ndarray]:
    """Each series less the records that repeat the record before them (what ``encode``
    codes, :mod:`ltc_beam.repeats`), where ``MIN_DISTINCT_RECORDS`` remain; else ``series``."""
    distinct = [repeats.distinct(s) for s in series]
    return distinct if sum(len(s) for s in distinct) >= MIN_DISTINCT_RECORDS else series


def split_series(series: list[np.ndarray], fraction: float, seed: int, window: int = 1) -> tuple[list, list]:
    """Hold out whole series when there are several; of one or two series, the tail of each
    where windows of records are coded (``window`` > 1: they need consecutive records),
    else records spread evenly through it (``fraction`` of them, in order). A tail misleads
    on tables sorted by something else: wine's rows, sorted by class, held out one class
    (validation 3.5 dB against 13.5 on new data, and training fell back to its start)."""
    if len(series) >= 3:
        order = np.random.default_rng(seed).permutation(len(series))
        held = max(1, int(round(fraction * len(series))))
        return [series[i] for i in sorted(order[held:])], [series[i] for i in sorted(order[:held])]
    train, val = [], []
    for s in series:
        held = np.zeros(len(s), bool)
        if len(s) > 1:
            count = max(1, int(round(fraction * len(s))))
            if window > 1:
                held[len(s) - count :] = True
            else:  # evenly spaced, the last record among them (as in the tail split)
                held[len(s) - 1 - np.round(np.arange(count) * (len(s) / count)).astype(int)] = True
        train.append(s[~held])
        val.append(s[held])
    return train, [v for v in val if len(v)]


def column_statistics(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation over finite values (std of a constant is 1),
    leaving out rare absurd outliers (:func:`~ltc_beam.codec.scaling.outlier_mask`): ten 1e6 glitches among 5,000
    unit-scale values made the std 45,000 and the codec reconstructed the rest of that
    column at −77 dB."""
    stacked = np.concatenate(series) if series else np.zeros((0, 0))
    if stacked.size == 0:
        raise InputError("training data holds no records")
    if not np.isfinite(stacked).any():
        raise InputError("training data has no finite values")
    mean, std = robust_statistics(stacked)  # a column with no finite value: 0 and 1
    return mean, np.where(std > 0, std, 1.0)


def warn_if_columns_hold_no_values(series: list[np.ndarray], columns: list[str] | None = None) -> None:
    """Warn about columns with no finite value in the training data (all NaN, say): the
    codec learns nothing of them; they are coded as constant columns."""
    finite = np.zeros(series[0].shape[1], bool)
    for s in series:
        finite |= np.isfinite(s).any(axis=0)
    for j in np.flatnonzero(~finite):
        name = column_label(columns, j)
        warnings.warn(
            f"column {name} holds no finite value in the training data: the codec treats it as a constant "
            "column, so its NaN and infinite values decode exactly and any finite value it holds later is sent "
            "exactly (32 bits each); leave it out (columns=) if it carries nothing",
            UserWarning,
            stacklevel=3,
        )


#: A varying column of at most this many distinct values (a flag, a category) is warned about ...
FEW_LEVELS = 4
#: ... where a second value takes at least this share of the first records: MNIST's border
#: pixels, 0 but in a handful of 4,000 digits, are no flags (51 were named, on one line).
FLAG_SHARE = 0.01
#: Columns named in the warning, the rest counted.
FLAGS_NAMED = 6


def warn_if_flag_columns(series: list[np.ndarray], columns: list[str] | None = None, sample: int = 4096) -> None:
    """Warn, once, about coded columns that take only a few distinct values (flags,
    categories) among others that do not: inside the coded vector they draw bits and error
    from the others (electricity demand with a 0/1 work-day flag, 4 bits/value asked: 1.53
    bits/value at 28.6 dB; without it 4.21 at 39.6). Not where they are most of the columns
    (a binary image: nothing else to take bits from), nor where one value is nearly all of
    the first ``sample`` records (``FLAG_SHARE``). Columns showing more levels there are not
    counted further; the rest are counted in blocks, until they show more."""
    head, rows = [], 0
    for s in series:
        if rows >= sample:
            break
        head.append(s[: sample - rows])
        rows += len(head[-1])
    head = np.concatenate(head)
    flags = {}
    for j in range(head.shape[1]):
        values, counts = np.unique(head[:, j], return_counts=True)
        if len(values) > FEW_LEVELS or len(values) < 2 or np.sort(counts)[-2] < FLAG_SHARE * len(head):
            continue
        levels = _few_levels(series, j)
        if levels is not None and len(levels) > 1:  # (missing values are no level)
            flags[f"column {column_label(columns, j)}"] = levels
    if flags and 2 * len(flags) < head.shape[1]:
        said = "; ".join(f"{name}: {', '.join(f'{v:g}' for v in levels)}" for name, levels in list(flags.items())[:FLAGS_NAMED])
        if len(flags) > FLAGS_NAMED:
            said += f"; and {len(flags) - FLAGS_NAMED} more"
        warnings.warn(
            f"{len(flags)} coded column(s) take only {FEW_LEVELS} or fewer distinct values ({said}): a flag or category "
            "codes poorly inside the vector, drawing bits and error from the other columns; keep it out of the coded "
            "values (a column of its own, which compress passes through exactly) unless it must be coded",
            UserWarning,
            stacklevel=3,
        )


def _few_levels(series: list[np.ndarray], j: int, block: int = 1 << 14) -> list[float] | None:
    """The distinct finite values of column ``j``, counted block by block; None as soon as
    there are more than ``FEW_LEVELS``."""
    levels: set = set()
    for s in series:
        for start in range(0, len(s), block):
            values = s[start : start + block, j]
            levels.update(np.unique(values[np.isfinite(values)])[: FEW_LEVELS + 1].tolist())
            if len(levels) > FEW_LEVELS:
                return None
    return sorted(levels)


#: A column whose float32 resolution caps its SNR below this (dB) is warned about.
FLOAT32_CAP_DB = 40.0


def warn_if_float32_limits(mean: np.ndarray, std: np.ndarray, columns: list[str] | None = None) -> None:
    """Warn about columns whose spread is small next to their level (meter readings, epoch
    times): values are coded as float32, whose spacing near the level caps the SNR. A sine
    of amplitude 2 on an offset of 1e8 decoded at 0 dB without a word."""
    level = np.maximum(np.abs(mean) + 3 * std, np.finfo(np.float32).tiny)
    spacing = 2.0 ** (np.floor(np.log2(level)) - 23)  # float32's (24-bit significands; np.spacing overflows near its limit)
    with np.errstate(divide="ignore"):
        cap = 10 * np.log10(12 * std**2 / spacing**2)
    for j in np.flatnonzero(cap < FLOAT32_CAP_DB):
        name = column_label(columns, j)
        warnings.warn(
            f"column {name}: values near {mean[j]:.7g} spread only {std[j]:.3g}; as float32 (the codec's value "
            f"type) they are {spacing[j]:.3g} apart there, which caps the SNR near {cap[j]:.0f} dB. Subtract the "
            f"level (e.g. store the value minus {mean[j]:.4g}) before training and compressing.",
            UserWarning,
            stacklevel=3,
        )


#: A series varying this many times less than its column loses ~40 dB of SNR of its own ...
SERIES_SCALE_GAP = 100.0
#: ... and a warning is due when at least this share of the series (of 3 values or more) do.
SERIES_SCALE_SHARE = 0.1


#: ``train(normalise="series")`` warns when the series' statistics alone take this many bits per value.
STATISTICS_WARNING = 0.5


def statistics_bits(records: float) -> float:
    """Bits per value that a series' own statistics (4 bytes per column) cost over ``records``
    records."""
    return 32.0 / max(records, 1.0)


def series_scaling_advice(records: float, verb: str = "train") -> str:
    """What ``normalise='series'`` offers series of ``records`` records in the mean, for the
    warnings of ``train`` and ``evaluate`` (``verb`` "retrain") alike. Where their statistics cost over
    ``STATISTICS_WARNING`` it says so and advises neither way: fertility rates (11-year
    series) went from 2.85 to 7.10 bits/value, where a column codec at 5.13 coded the series
    at a higher median SNR; Gapminder's populations (12 records) at 3.54 bits/value
    series-scaled had the median of a column codec at 4.07 and a minimum 16 dB higher (its
    floor: 2.8 bits/value, asked 0.5)."""
    bits = statistics_bits(records)
    if bits <= STATISTICS_WARNING:
        return f"{verb} with normalise='series' to code each series at its own scale"
    return (
        f"normalise='series' would code each at its own scale, but these series are short ({records:.3g} records in the "
        f"mean) and their own statistics would cost about {bits:.2g} bits/value on top, below which no such codec goes: "
        "above it, weigh it against a codec trained for a higher rate"
    )


def warn_if_statistics_cost(bits: float, series: list[np.ndarray]) -> None:
    """Warn when the series' own statistics (``bits`` per value of ``series``) cost much of
    the rate: short series pay about 4 bytes per column each (300 series of 1-3 records:
    19.8 bits/value; El Niño as 12-month years: 4.67 where one normalisation per column pays
    2.11)."""
    if bits > STATISTICS_WARNING:
        median = float(np.median([len(s) for s in series]))
        warnings.warn(
            f"the series' own statistics (normalise='series') cost about {bits:.2g} bits/value here, on top of the "
            f"codec's ({len(series)} series of {median:g} records in the median; a one-record series travels exactly): "
            "with normalise='column' they cost nothing, though series far smaller than their column lose their SNR",
            UserWarning,
            stacklevel=3,
        )


def warn_if_series_scales_differ(series: list[np.ndarray], std: np.ndarray, columns: list[str] | None = None) -> None:
    """Warn about columns where many series vary ``SERIES_SCALE_GAP`` times less than the
    column: one normalisation per column codes them at an SNR of their own that much lower.
    M1 yearly (181 series, values 2 to 2e7) read 50 dB over the test split while 38 of its
    41 series decoded below 0 dB of their own."""
    long = [s for s in series if len(s) >= 3]
    if len(long) < 3:
        return
    finite = [np.where(np.isfinite(s), s, np.nan) for s in long]
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series
        own = np.array([np.nanstd(f, axis=0) for f in finite])
        # a constant series (a stuck or idle sensor, a per-series label) has no scale of its own
        # to restore: told by its values, not its std (1e-17 for 24 equal floats)
        varies = np.array([np.nanmax(f, axis=0) > np.nanmin(f, axis=0) for f in finite])
    small = varies & (own * SERIES_SCALE_GAP < std)
    records = sum(len(s) for s in series) / len(series)
    for j in np.flatnonzero(small.mean(0) >= SERIES_SCALE_SHARE):
        name = column_label(columns, j)
        warnings.warn(
            f"column {name}: {small[:, j].sum()} of {len(long)} series vary over {SERIES_SCALE_GAP:g}x less than "
            f"the column (std {std[j]:.3g}; theirs down to {own[small[:, j], j].min():.3g}): one normalisation per column "
            f"codes them {20 * math.log10(SERIES_SCALE_GAP):.0f} dB or more below the SNR the column reports; "
            f"{series_scaling_advice(records)}",
            UserWarning,
            stacklevel=3,
        )


#: Most values ``train`` learns from by default: 4e6 records of 8 values held 15 GB (every
#: window as float64, the tables' symbols) and ran past 5 minutes, where 1,500 steps of 256
#: vectors see about 400,000 vectors whatever the data size.
MAX_TRAINING_VALUES = 1 << 22
#: Values per piece of a sampled series (at least ``MIN_PIECE_RECORDS`` records, so windows
#: and series structure survive).
PIECE_VALUES, MIN_PIECE_RECORDS = 1 << 16, 256


def spread_pieces(series: list[np.ndarray], budget: int) -> tuple[list[np.ndarray], int, int]:
    """Evenly spread pieces of ``series`` holding about ``budget`` values: each series cut into
    pieces of ``PIECE_VALUES`` values (at least ``MIN_PIECE_RECORDS`` records; a shorter
    series is one piece, whole), every k-th piece kept in data order; with the pieces' length
    in records and how many pieces there were. At least one piece is kept (the middle one
    where the budget holds less than a piece: records of thousands of values)."""
    rows = max(MIN_PIECE_RECORDS, PIECE_VALUES // series[0].shape[1])
    pieces = [s[i : i + rows] for s in series for i in range(0, len(s), rows)]
    keep = budget / sum(s.size for s in series)
    chosen = [p for j, p in enumerate(pieces) if math.floor((j + 1) * keep) > math.floor(j * keep)]
    return chosen or [pieces[len(pieces) // 2]], rows, len(pieces)


def training_sample(series: list[np.ndarray], budget: int | None) -> tuple[list[np.ndarray], dict | None]:
    """``series``, or where they hold over ``budget`` values, evenly spread pieces of them
    (:func:`spread_pieces`), with a warning; and what was kept (None where all was)."""
    total = sum(s.size for s in series)
    if budget is None or total <= budget:
        return series, None
    chosen, rows, count = spread_pieces(series, budget)
    kept = sum(p.size for p in chosen)
    warnings.warn(
        f"training on {kept:,} of the data's {total:,} values: {len(chosen):,} of its {count:,} pieces of up to "
        f"{rows:,} records, evenly spread (max_training_values={budget:,}; "
        "max_training_values=None trains on all of it, at about 4 GB of memory per 1e7 values)",
        UserWarning,
        stacklevel=3,
    )
    return chosen, {"values": kept, "of": total, "pieces": len(chosen), "piece_records": rows}
