"""Training an LTC model on the exact code length (rate) plus λ·MSE.

Generalisation is part of training: a validation split is held out (whole series when
there are several), the best checkpoint by validation loss is kept, and training stops
early when validation stops improving. ``target_bits_per_value`` adapts λ by dual ascent
during the first part of training, then freezes it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ltc_beam import lattices, repeats
from ltc_beam.codec.adaptive import CLASS_COUNT
from ltc_beam.codec.config import OUTLIER_Z, CodecConfig, default_latent_dim
from ltc_beam.codec.layout import filled, pad_rows, series_windows
from ltc_beam.codec.model import LtcModel, float32_default
from ltc_beam.codec.scaling import NORMALISATIONS, robust_statistics, scaled_pieces
from ltc_beam.codec.tables import MAX_SYMBOLS, symbol_cap, table_count
from ltc_beam.codec.transforms import init_from_pca, principal_axes
from ltc_beam.errors import (
    BEYOND_FLOAT32, InputError, OffScaleWarning, WindowHint, beyond_float32, column_label, named_series_as_frame, names_said, numeric_array,
)
from ltc_beam.progress import progress_bar
from ltc_beam.storage import exists, read_bytes, write_bytes

if TYPE_CHECKING:
    from ltc_beam.codec.codec import Codec

REFIT_LATENT_VALUES = 1 << 18  # latent values the final density refit optimises over


@dataclass
class TrainingOptions:
    """Everything that steers optimisation (not the architecture)."""

    lmbda: float | None = None
    target_bits_per_value: float | None = None
    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = "auto"
    validation_fraction: float = 0.15
    eval_every: int = 100
    patience: int = 8  # evaluations without improvement before stopping
    checkpoint: str | None = None
    progress: bool | None = None  # None: on a terminal only
    normalise: str = "column"  # how the series were scaled (what the warnings advise)


@dataclass
class TrainingSummary:
    steps_run: int = 0
    best_step: int = 0
    lmbda: float = 0.0
    train_vectors: int = 0
    validation_vectors: int = 0
    validation: dict = field(default_factory=dict)
    #: Target mode: validation SNR at the target rate of the PCA start and of the trained
    #: model, and whether the start was kept (:meth:`Trainer.keep_the_start_if_far_better`).
    start_check: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _frame_columns_chosen(data, columns: list[str], given: bool = True):
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


def _whole(value) -> bool:
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


#: Adapting λ stays within this factor of the high-resolution estimate it starts from
#: (±6.6 bits per latent channel: far beyond any target the estimate could miss).
MAX_LMBDA_FACTOR = 1e4
#: Below both, training warns that its validation figures are unreliable (vectors of long
#: windows hold many values: 39 windows of 32 records, 1,248 values, warned needlessly).
FEW_VALIDATION_VECTORS = 100
FEW_VALIDATION_VALUES = 1000


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


#: A varying column of at most this many distinct values (a flag, a category) is warned about.
FEW_LEVELS = 4


def warn_if_flag_columns(series: list[np.ndarray], columns: list[str] | None = None, sample: int = 4096) -> None:
    """Warn, once, about coded columns that take only a few distinct values (flags,
    categories) among others that do not: inside the coded vector they draw bits and error
    from the others (electricity demand with a 0/1 work-day flag, 4 bits/value asked: 1.53
    bits/value at 28.6 dB; without it 4.21 at 39.6). Not where they are most of the columns
    (a binary image: nothing else to take bits from). Columns showing more levels in the
    first ``sample`` records are not counted further; the rest are counted in blocks, until
    they show more."""
    head, rows = [], 0
    for s in series:
        if rows >= sample:
            break
        head.append(s[: sample - rows])
        rows += len(head[-1])
    head = np.concatenate(head)
    flags = {}
    for j in range(head.shape[1]):
        levels = _few_levels(series, j) if len(np.unique(head[:, j])) <= FEW_LEVELS else None
        if levels is not None and len(levels) > 1:
            flags[f"column {column_label(columns, j)}"] = levels
    if flags and 2 * len(flags) < head.shape[1]:
        said = "; ".join(f"{name}: {', '.join(f'{v:g}' for v in levels)}" for name, levels in flags.items())
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


def warn_if_statistics_cost(stated: int, series: list[np.ndarray]) -> None:
    """Warn when the series' own statistics (``stated`` bytes) cost much of the rate: short
    series pay about 4 bytes per column each (300 series of 1-3 records: 19.8 bits/value;
    El Niño as 12-month years: 4.67 where one normalisation per column pays 2.11)."""
    values = sum(s.size for s in series)
    bits = 8 * stated / max(values, 1)
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
    for j in np.flatnonzero(small.mean(0) >= SERIES_SCALE_SHARE):
        name = column_label(columns, j)
        warnings.warn(
            f"column {name}: {small[:, j].sum()} of {len(long)} series vary over {SERIES_SCALE_GAP:g}x less than "
            f"the column (std {std[j]:.3g}; theirs down to {own[small[:, j], j].min():.3g}): one normalisation per column "
            f"codes them {20 * math.log10(SERIES_SCALE_GAP):.0f} dB or more below the SNR the column reports. Train "
            "with normalise='series' (--normalise series): each series is then coded at its own scale.",
            UserWarning,
            stacklevel=3,
        )


def vectors_of(
    series: list[np.ndarray], window: int, mean: np.ndarray, std: np.ndarray, sliding: bool = False, hold: bool = True
) -> np.ndarray:
    """Normalised input vectors of all series. Non-finite values, and values beyond
    ``OUTLIER_Z`` standard deviations, which the codec sends exactly, hold what the codec
    codes in their place: with ``hold`` (codecs that code records together) the column's
    neighbouring value (:func:`~ltc_beam.codec.layout.filled`), else the mean. Training
    put the mean there whatever the codec: a jump at each edge of every gap, which the
    transforms and density learnt and the codec never met (BasicMotions with 9.5 % of its
    values missing in bursts, E8 window 4: 1.925 → 1.891 bits/value at 15.7 → 15.8 dB;
    monthly stock prices, 37 % missing, 1 bit/value asked: 34.5 → 36.5 dB at 0.84).

    ``sliding`` takes every window offset (training); otherwise windows are aligned as the
    codec forms them (validation).
    """
    if not series:
        return np.zeros((0, window * len(mean)))
    lengths = [len(s) for s in series]
    with np.errstate(invalid="ignore", over="ignore"):
        z = (np.concatenate(series) - mean) / std
        exact = ~np.isfinite(z) | (np.abs(z) > OUTLIER_Z)
    z = np.where(exact, 0.0, z)
    if hold:
        z = filled(z, exact, lengths)
    return series_windows(z, lengths, window, sliding)


def parameter_groups(model: LtcModel, lr: float, step: float) -> list[dict]:
    """Adam groups whose step sizes follow each tensor's natural scale.

    The PCA start puts the quantizer step into the weights (analysis ~ 1/step, synthesis
    ~ step), and Adam moves every weight by about ``lr`` whatever its size. One step size
    for all is then a relative perturbation that grows with the rate: at 8 bits/value on
    Daphnet (step ~0.02) the synthesis weights jittered by ~1 % per update and the
    transforms alone could not reconstruct beyond ~39 dB. Tensors in latent units
    (the analysis output side, the synthesis input side) get ``lr / step`` and
    ``lr * step``; the rest (hidden MLP layers, data-unit biases, the density) ``lr``.
    """
    analysis, synthesis = model.analysis, model.synthesis
    latent_out = [analysis.linear.weight, analysis.linear.bias]
    latent_in = [synthesis.linear.weight]
    if analysis.mlp is not None:
        latent_out += list(analysis.mlp[-1].parameters())
        latent_in.append(synthesis.mlp[0].weight)
    special = {id(p) for p in latent_out + latent_in}
    rest = [p for p in model.parameters() if id(p) not in special]
    return [
        {"params": latent_out, "lr": lr / step},
        {"params": latent_in, "lr": lr * step},
        {"params": rest, "lr": lr},
    ]


def initial_step(variances: torch.Tensor, nsm: float, options: TrainingOptions, values_per_latent: float) -> float:
    """Quantizer step for the PCA start, from λ (high-rate optimum) or the target rate."""
    if options.target_bits_per_value is None:
        return math.sqrt(1.0 / (2.0 * options.lmbda * nsm * math.log(2)))
    sigma = variances.clamp_min(1e-12).sqrt().double()
    target = options.target_bits_per_value * values_per_latent * len(sigma)

    def rate(step: float) -> float:  # high-rate Gaussian estimate, zero for small components
        return float(torch.clamp(torch.log2(sigma * math.sqrt(2 * math.pi * math.e) / step), min=0).sum())

    lo, hi = 1e-6, 1e6
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if rate(mid) > target else (lo, mid)
    return math.sqrt(lo * hi)


#: How much better (dB, validation, at the target rate) the PCA start must be for training to
#: go back to it (:meth:`Trainer.keep_the_start_if_far_better`).
START_MARGIN_DB = 3.0

#: From this share of the steps on, target-mode training stops once it is ``EARLY_STOP_MARGIN_DB``
#: below its start (both at the target rate): the start check would most likely keep the start.
EARLY_STOP_FRACTION = 0.3

#: Share of validation values beyond the training split's range above which the warning
#: that training fell behind its start names that as the likely cause.
BEYOND_TRAINING_SHARE = 0.05
#: ... and above which it suggests ``normalise="series"``: a level that moved away, as a
#: trend's does. A seasonal tail lies a little beyond (hourly temperatures: 6 %), where series
#: normalisation cost 25 % more bits than the column's.
SERIES_ADVICE_SHARE = 0.5
EARLY_STOP_MARGIN_DB = 2 * START_MARGIN_DB

#: Training vectors the least-squares decoder refit uses (the fit has ``input_dim + 1``
#: unknowns per output; quantizing and solving for 200k vectors of a T=32 window took 9 s).
REFIT_ROWS = 1 << 16


class Trainer:
    """Holds the model, optimiser and data of one training run (checkpointable)."""

    def __init__(self, config: CodecConfig, series: list[np.ndarray], options: TrainingOptions):
        self.options = options
        self.config = config
        self.device = resolve_device(options.device)
        torch.manual_seed(options.seed)
        train_series, val_series = split_series(series, options.validation_fraction, options.seed, config.window)
        # the whole data's statistics: a column mostly missing from the training split (a
        # wide table's late starter, its tail held out) was normalised by a few values, and
        # evaluating the very file trained on warned that it spread 5.7x the training std
        mean, std = column_statistics(series)
        n = config.vectors_per_block
        hold = not config.per_record  # as the codec fills what it sends exactly
        train_x = vectors_of(train_series, config.window, mean, std, sliding=True, hold=hold)
        self.train_x = torch.as_tensor(train_x, dtype=torch.float32)
        val = vectors_of(val_series, config.window, mean, std, hold=hold) if val_series else np.zeros((0, config.input_dim))
        self.val_x = torch.as_tensor(pad_rows(val[:50_000], n), dtype=torch.float32)
        self.validation_vectors = len(val)  # before padding to whole blocks
        if len(self.train_x) < max(n, MIN_TRAINING_VECTORS):  # vector mode trained on one window of 20,000 values for minutes
            fewer = f": windows of {config.window} records make few vectors, give a smaller window" if config.window > 1 else ""
            raise InputError(f"need at least {max(n, MIN_TRAINING_VECTORS)} training vectors, got {len(self.train_x)}{fewer}")
        if len(val) < FEW_VALIDATION_VECTORS and len(val) * config.input_dim < FEW_VALIDATION_VALUES:
            warnings.warn(
                f"only {len(val)} validation vectors (and {len(self.train_x)} training vectors): the validation "
                "figures are noisy and the codec may code new data worse than they say; train on more records",
                UserWarning,
                stacklevel=2,
            )
        self.model = LtcModel(config, mean, std)
        lat = lattices.get(config.lattice)
        axes, variances = principal_axes(self.train_x, config.latent_dim)
        step = initial_step(variances, lat.nsm, options, config.input_dim / config.latent_dim)
        init_from_pca(self.model.analysis, self.model.synthesis, self.train_x.mean(0), axes, step)
        with torch.no_grad():
            self.model.density.fit_initial(self.model.analysis(self.train_x[:20_000]))
        self.start_state = copy.deepcopy(self.model.state_dict())
        self.lmbda = options.lmbda if options.lmbda is not None else 1.0 / (2 * lat.nsm * step**2 * math.log(2))
        # where the rate barely answers λ (latents that need many steps to grow), adapting λ
        # ran away (8e13 from 1.5e3 on ACSF1 asked for 4 bits/value), towards overflow
        self.lmbda_range = (self.lmbda / MAX_LMBDA_FACTOR, self.lmbda * MAX_LMBDA_FACTOR)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, options.learning_rate, step))
        self.generator = torch.Generator().manual_seed(options.seed)
        self.step = 0
        self.best_loss = math.inf
        self.best_step = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.stale = 0
        self.rate_ema: float | None = None
        self._recent: list[tuple[float, float]] = []
        self.postfix: dict = {}
        self._start_snr: float | None = None  # the start's validation SNR at the target rate, once measured
        self.stopped_below_start = False

    # ------------------------------------------------------------------ loop
    @property
    def adapting(self) -> bool:
        return self.options.target_bits_per_value is not None and self.step < int(0.6 * self.options.steps)

    def batch(self) -> torch.Tensor:
        n = self.config.vectors_per_block
        size = max(n, self.options.batch_size // n * n)
        index = torch.randint(len(self.train_x), (size,), generator=self.generator)
        return self.train_x[index].to(self.device)

    def train_step(self) -> tuple[float, float]:
        self.model.train()
        x = self.batch()
        out = self.model(x)
        rate = out.bits / x.numel()
        loss = rate + self.lmbda * out.mse
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.optimizer.step()
        self.step += 1
        r = float(rate.detach())
        if self.adapting:
            self.rate_ema = r if self.rate_ema is None else 0.95 * self.rate_ema + 0.05 * r
            gap = self.options.target_bits_per_value - self.rate_ema
            self.lmbda = float(np.clip(self.lmbda * math.exp(float(np.clip(0.05 * gap, -0.1, 0.1))), *self.lmbda_range))
        return r, float(out.mse.detach())

    @torch.no_grad()
    def validate(self) -> dict:
        """Exact (quantized) bits per value, MSE and loss on the validation vectors."""
        x = self.val_x if len(self.val_x) else self.train_x[: 8192 // 8 * 8]
        self.model.eval()
        bits, sq = 0.0, 0.0
        n = self.config.vectors_per_block
        chunk = 8192 // n * n or n
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].to(self.device)
            out = self.model(part)
            bits += float(out.bits)
            sq += float(out.mse) * part.numel()
        values = x.numel()
        result = {"bits_per_value": bits / values, "mse": sq / values}
        result["loss"] = result["bits_per_value"] + self.lmbda * result["mse"]
        result["snr_db"] = 10 * math.log10(1.0 / max(result["mse"], 1e-300))
        return result

    def advance(self) -> bool:
        """One optimisation step plus, every ``eval_every`` steps, validation, best-model
        bookkeeping and a checkpoint. Returns False when training should stop."""
        opts = self.options
        r, m = self.train_step()
        self._recent.append((r, m))
        if self.step % opts.eval_every and self.step != opts.steps:
            return self.step < opts.steps
        val = self.validate()
        rates, mses = zip(*self._recent)
        self._recent = []
        self.postfix = {
            "bits": f"{np.mean(rates):.3f}",
            "snr": f"{10 * math.log10(1 / max(np.mean(mses), 1e-300)):.2f}dB",
            "val_bits": f"{val['bits_per_value']:.3f}",
            "val_snr": f"{val['snr_db']:.2f}dB",
        }
        if self.adapting:
            self.best_loss = math.inf  # λ still moves: losses are not comparable yet
        elif val["loss"] < self.best_loss - 1e-6:
            self.best_loss, self.best_step, self.stale = val["loss"], self.step, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.stale += 1
        if opts.checkpoint:
            self.save_checkpoint(opts.checkpoint)
        if self.far_below_start(val):
            self.stopped_below_start = True
            return False
        return self.step < opts.steps and self.stale < opts.patience

    def snr_at_target(self, val: dict) -> float:
        """Validation SNR brought to the target rate at 6.02 dB per bit per value."""
        return val["snr_db"] + 6.02 * (self.options.target_bits_per_value - val["bits_per_value"])

    def start_snr_at_target(self) -> float:
        """:meth:`snr_at_target` of the PCA start (validated once; the model is left as it was)."""
        if self._start_snr is None:
            current = copy.deepcopy(self.model.state_dict())
            self.model.load_state_dict(self.start_state)
            self._start_snr = self.snr_at_target(self.validate())
            self.model.load_state_dict(current)
        return self._start_snr

    def far_below_start(self, val: dict) -> bool:
        """Whether target-mode training, past ``EARLY_STOP_FRACTION`` of its steps (and before
        the last), stands ``EARLY_STOP_MARGIN_DB`` below its start: the rest of the steps
        would most likely go to a model the start check then drops (unit-normalised 128-value
        embeddings: 68 s of training for 25 dB against the start's 46). The start check
        still judges the model kept (the best validated one)."""
        steps = self.options.steps
        if self.options.target_bits_per_value is None or not EARLY_STOP_FRACTION * steps <= self.step < steps:
            return False
        return self.snr_at_target(val) < self.start_snr_at_target() - EARLY_STOP_MARGIN_DB

    def run(self) -> TrainingSummary:
        """Train until ``steps`` or early stopping; keep the best validated model."""
        bar = progress_bar(self.options.progress, total=self.options.steps, initial=self.step, desc="train", unit="step")
        going = self.step < self.options.steps and self.stale < self.options.patience
        while going:
            going = self.advance()
            bar.update(1)
            if self.postfix:
                bar.set_postfix(self.postfix, refresh=False)
        bar.close()
        if self.best_loss < math.inf:
            self.model.load_state_dict(self.best_state)
        validation, start_check = self.validate(), {}
        if self.options.target_bits_per_value is not None:
            start_check = self.keep_the_start_if_far_better(validation)
            if start_check["kept_start"]:
                validation = self.validate()
        return TrainingSummary(
            steps_run=self.step,
            best_step=self.best_step,
            lmbda=self.lmbda,
            train_vectors=len(self.train_x),
            validation_vectors=self.validation_vectors,
            validation=validation,
            start_check=start_check,
        )

    def keep_the_start_if_far_better(self, validation: dict | None = None) -> dict:
        """Go back to the PCA start when training ended far below it (target mode).

        Each model's validation SNR is brought to the target rate at 6.02 dB per bit per
        value; the start is kept when it is ``START_MARGIN_DB`` better. A safety net: on wide
        vectors (384 values of rank 48 plus a noise floor, 2 bits/value asked) steering λ
        to the target took the codec from 37.6 dB at the start to 16.5 dB after 1,500 steps
        (20.6 dB coded where PCA + uniform quantisation + zstd gets 30.9 dB at 1.08 bits).
        ``validation``: the trained model's :meth:`validate`, when the caller has it."""
        trained = self.snr_at_target(validation if validation is not None else self.validate())
        start = self.start_snr_at_target()
        kept = start > trained + START_MARGIN_DB
        if kept:
            self.model.load_state_dict(self.start_state)
            stopped = f", stopped at step {self.step}" if self.stopped_below_start else ""
            warnings.warn(
                f"training ended at an SNR of {trained:.1f} dB on the validation split (brought to "
                f"{self.options.target_bits_per_value:g} bits/value), well below the {start:.1f} dB of its PCA start{stopped}: "
                "the codec keeps the start's transforms" + self._beyond_training_note(),
                UserWarning,
                stacklevel=3,
            )
        return {
            "start_snr_db_at_target": start, "trained_snr_db_at_target": trained, "kept_start": kept,
            "stopped_below_start": self.stopped_below_start,
        }

    def _beyond_training_note(self) -> str:
        """Why training fell behind, when the validation split lies beyond the training
        split's range: the held-out tail of a trending series (S&P 500 closes, 0.5 bits/value
        asked: -100 dB; with ``normalise="series"`` the test years code at 0.53 bits/value
        and 36.0 dB, where uniform quantisation + zstd needs 1.07)."""
        val = self.val_x[: self.validation_vectors]
        if not len(val):
            return ""
        low, high = self.train_x.amin(0), self.train_x.amax(0)
        beyond = float(((val < low) | (val > high)).double().mean())
        if beyond < BEYOND_TRAINING_SHARE:
            return ""
        trend = beyond >= SERIES_ADVICE_SHARE
        said = (
            f"; {beyond:.0%} of the validation split's values lie beyond the training split's range "
            + ("(the held-out tail of a trending series?)" if trend else "(a livelier or shifted held-out tail?)")
        )
        if self.options.normalise == "series" or not trend:  # not the normalisation the codec has
            return said
        return said + (
            ": normalise='series' (--normalise series) scales each stream by its own statistics and often codes "
            "such data far better (compare the two with evaluate)"
        )

    def refit_density(self, rows: int = 8192, lr: float = 0.05) -> None:
        """Maximum-likelihood fit of the density to the quantized training latents (in place,
        transforms frozen). :func:`train` keeps it only if the codec frozen from it codes the
        validation split shorter.

        The density lives in latent units, which grow as the quantizer step shrinks, so the
        training step size moves it too little at high rate. Measured on the BasicMotions test
        split (e8 block, T=4) with static box-smoothed tables: 5.492 → 5.246 bits/value at
        35.6 dB; with scale classes and pooled tables the fitted counts already carry most
        of that gain. At most ``REFIT_LATENT_VALUES`` latent values (a few hundred rows per
        channel fit its 12 parameters): 8,192 rows of 256 latents took 227 s of a 295 s run.
        """
        n = self.config.vectors_per_block
        rows = max(n, min(rows, REFIT_LATENT_VALUES // self.config.latent_dim))
        count = max(n, min(len(self.train_x), rows) // n * n)
        index = torch.randperm(len(self.train_x), generator=self.generator)[:count]
        with torch.no_grad():
            self.model.eval()
            y_hat = self.model.quantize(self.model.analysis(self.train_x[index].to(self.device)))
        optimizer = torch.optim.Adam(self.model.density.parameters(), lr=lr)
        for _ in range(min(300, max(50, self.options.steps // 5))):
            loss = self.model.bits(y_hat) / y_hat.numel()  # the exact box-pmf code length
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def refit_synthesis(self, rows: int = REFIT_ROWS) -> bool:
        """Least-squares fit of a linear synthesis transform to the quantized training
        latents (the rate does not depend on it), kept only if the validation error falls.
        After :func:`calibrate_rate` moved the step, the decoder trained for the old one is
        off by the new quantization error. Fitted on up to ``rows`` training vectors, in
        lattice blocks spread evenly over the training set. Returns whether it was kept
        (MLP synthesis: no fit)."""
        synthesis = self.model.synthesis
        if synthesis.mlp is not None:
            return False
        self.model.eval()
        n = self.config.vectors_per_block
        blocks = len(self.train_x) // n
        take = min(blocks, max(1, rows // n))
        starts = torch.linspace(0, blocks - 1, take).round().long() * n if blocks else torch.zeros(0, dtype=torch.long)
        x = self.train_x[(starts[:, None] + torch.arange(n)).reshape(-1)].to(self.device)
        y_hat = self.model.quantize(self.model.analysis(x)).double()
        design = torch.cat([y_hat, torch.ones(len(y_hat), 1, dtype=y_hat.dtype, device=y_hat.device)], 1)
        solution = torch.linalg.lstsq(design.cpu(), x.double().cpu(), driver="gelsd").solution
        before = self.validate()["mse"]
        old = (synthesis.linear.weight.clone(), synthesis.linear.bias.clone())
        synthesis.linear.weight.copy_(solution[:-1].T.to(old[0]))
        synthesis.linear.bias.copy_(solution[-1].to(old[1]))
        if self.validate()["mse"] < before:
            return True
        synthesis.linear.weight.copy_(old[0])
        synthesis.linear.bias.copy_(old[1])
        return False

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str) -> None:
        """Write model, best model, optimiser and RNG state (safetensors, no pickle)."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in self.best_state.items()})
        opt = self.optimizer.state_dict()
        for pid, state in opt["state"].items():
            for key, value in state.items():
                tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "step": self.step,
            "lmbda": self.lmbda,
            "best_loss": self.best_loss if self.best_loss < math.inf else None,
            "best_step": self.best_step,
            "stale": self.stale,
            "rate_ema": self.rate_ema,
            "config": self.config.to_dict(),
        }
        write_bytes(path, save_tensors(tensors, metadata={"trainer": json.dumps(meta)}))  # whole or not at all

    def load_checkpoint(self, path: str) -> None:
        data = read_bytes(path)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])  # safetensors: length, JSON header
        meta = json.loads(header["__metadata__"]["trainer"])
        if meta["config"] != self.config.to_dict():
            raise ValueError(f"checkpoint {path} was written for another configuration: {meta['config']}")
        tensors = load_tensors(data)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.best_state = {k[5:]: v.to(self.device) for k, v in tensors.items() if k.startswith("best.")}
        opt = self.optimizer.state_dict()
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value if name == "step" else value.to(self.device)
        opt["state"] = state
        self.optimizer.load_state_dict(opt)
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        self.step = meta["step"]
        self.lmbda = meta["lmbda"]
        self.best_loss = math.inf if meta["best_loss"] is None else meta["best_loss"]
        self.best_step = meta["best_step"]
        self.stale = meta["stale"]
        self.rate_ema = meta["rate_ema"]


#: Principal components with less than this fraction of the largest variance are not given
#: a latent channel (they sit ~100 dB below the signal).
RANK_TOLERANCE = 1e-10


def principal_variances(series: list[np.ndarray], window: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Variances of the principal components of the input vectors normalised by ``mean``
    and ``std`` (:func:`column_statistics`), largest first."""
    x = vectors_of(series, window, mean, std)
    if len(x) < 2:
        return np.ones(x.shape[1])
    centred = x - x.mean(0)
    if len(x) < x.shape[1]:  # fewer vectors than values: their singular values (10 x 2,000: 13.7 s -> 10 ms)
        variances = np.zeros(x.shape[1])
        variances[: len(x)] = np.linalg.svd(centred, compute_uv=False) ** 2 / (len(x) - 1)
        return variances
    return np.linalg.eigvalsh(centred.T @ centred / (len(x) - 1))[::-1].clip(min=0)


def numerical_rank(variances: np.ndarray) -> int:
    """How many principal components the input vectors really have (at least 1).

    Data of low rank (repeated or derived columns, embeddings of low intrinsic dimension)
    would otherwise get latent channels that carry nothing; Adam moves their weights
    whatever the gradient, they pick up signal, and the rate control breaks (rank-8 data in
    64 columns at 2 bits/value: 27 bits/value)."""
    if variances.max() <= 0:
        return 1
    return max(1, int((variances > RANK_TOLERANCE * variances.max()).sum()))


def directions_learnable(series: list[np.ndarray], window: int, validation_fraction: float, seed: int) -> int:
    """How many principal directions the training split spans: one fewer than its (sliding)
    input vectors. Latent channels beyond them see no training variance, get narrow tables,
    and new data escapes them: 150-value GunPoint vectors, 42 for training, took a 49-channel
    latent and coded the test split at 2.69 bits/value (calibrated 2.01; 40 channels: 1.97).
    Warns when there are fewer training vectors than values per vector."""
    train_part, _ = split_series(series, validation_fraction, seed, window)
    vectors = sum(max(1, len(s) - window + 1) for s in train_part if len(s))  # a short series: one padded vector
    size = window * series[0].shape[1]
    if 0 < vectors <= size:
        warnings.warn(
            f"only {vectors} training vectors of {size} values: the codec learns at most {max(1, vectors - 1)} "
            "directions of them, and new data off those directions codes poorly. Train on more records "
            "(series stored as one vector per record: long format with key= and order_by= codes them in time)",
            UserWarning,
            stacklevel=3,
        )
    return max(1, vectors - 1)


def build_config(
    record_dim: int,
    *,
    lattice: str,
    mode: str,
    window: int,
    latent_dim: int | None,
    transform: str,
    **extra,
) -> CodecConfig:
    """Architecture sized to the data: latent size from the input; ``transform="auto"`` is
    linear. Measured on real data, an MLP (a linear PCA path plus a hidden layer) coded worse
    at equal rate: ACSF1 appliance power, 146k records, 1 bit/value asked, lattice-coded test
    split: MLP 0.875 bits/value at 13.9 dB, linear 1.238 at 22.8 dB; 16k MiniLM sentence
    embeddings: 13.95 vs 14.58 dB at 2.01 bits/value; it also encodes at half the speed."""
    input_dim = window * record_dim
    if transform == "auto":
        transform = "linear"
    if extra.get("proxy", "auto") == "auto":
        # Measured (i.i.d. Gaussian, z1 block, 1 bit/value): an MLP trained through the
        # straight-through estimator drifts to 3.2 dB from R(D); with Voronoi noise 1.38 dB.
        # Linear transforms do equally well either way (E8: 1.060 vs 1.066 dB).
        extra["proxy"] = "noise" if transform == "mlp" else "ste"
    latent = latent_dim or default_latent_dim(input_dim, lattice, mode)
    return CodecConfig(
        record_dim=record_dim,
        latent_dim=latent,
        lattice=lattice,
        mode=mode,
        window=window,
        transform=transform,
        **extra,
    )


DEFAULT_TARGET_BITS = 2.0
#: Fewest training vectors in either mode (block mode needs a lattice block's worth as well).
MIN_TRAINING_VECTORS = 8
#: Most bits one latent value may carry: a logistic density spread over ``MAX_SYMBOLS``
#: symbols between its 1e-7 tail quantiles has an entropy of about 12.9 bits, and the
#: symbols beyond a table escape at several times their cost (Daphnet asked for 14
#: bits/value: 21 paid, 74 dB; 10 asked: 9.4 paid, 62 dB).
MAX_BITS_PER_LATENT = 12.0
BASE_LEARNING_RATE = 2e-3
CONSTANT_DATA_LMBDA = 1e-3  # λ for data without any variation (see train)


def reachable_target(target_bits_per_value: float, variances: np.ndarray, input_dim: int, spanned: int | None = None) -> float:
    """``target_bits_per_value``, capped (with a warning) where the largest principal
    component would need more than ``MAX_BITS_PER_LATENT`` bits per latent value.

    One lattice step serves every latent channel, so at high rate component i costs about
    ``log2(σ_i / step) + const`` bits: the largest reaches the cap first. Data of low rank
    puts all its bits on a few channels (rank 8 in 64 columns at 2 bits/value: 16 bits per
    latent); full-rank data with equal variances reaches the cap at 12 bits/value (~72 dB).
    ``spanned``: the directions the training vectors span, where they limit the channels
    (24 Coffee spectra of 286 values: 23 channels, the cap 0.78 bits/value, and new spectra
    decode at 7.6 dB whatever is asked: their energy off those directions is lost).
    """
    spread = 0.5 * np.log2(variances.max() / np.maximum(variances, 1e-300))
    cap = float(np.clip(MAX_BITS_PER_LATENT - spread, 0, None).sum()) / input_dim
    if target_bits_per_value <= cap:
        return target_bits_per_value
    if spanned is not None and len(variances) >= spanned:
        why = (
            f"the codec has {len(variances)} latent channels for {input_dim} values per vector, one per direction "
            f"its training vectors span, and a channel takes at most {MAX_BITS_PER_LATENT:g} bits per latent value. "
            "New vectors' energy off those directions is lost, whatever the rate: train on more vectors "
            "(or in long format, with key= and order_by=)"
        )
    else:
        why = (
            f"there the largest of the data's {len(variances)} principal components (in {input_dim} values per vector) "
            f"already takes {MAX_BITS_PER_LATENT:g} bits per latent value (~{6.02 * MAX_BITS_PER_LATENT:.0f} dB "
            "on it), the most a coding table resolves; for more, compress losslessly, or, where a level or trend "
            "dominates the data (prices, counters), use normalise='series' (--normalise series): each stream is then "
            "coded around its own mean and scale (S&P 500 closes: no cap at 2 bits/value that way)"
        )
    warnings.warn(f"target of {target_bits_per_value:g} bits/value capped at {cap:.3g}: {why}", stacklevel=3)
    return cap


def default_learning_rate(target_bits_per_value: float | None) -> float:
    """Adam step: ``BASE_LEARNING_RATE`` up to 3 bits/value, halved per extra bit, floor 1e-4.

    The synthesis weights scale with the quantizer step, so a fixed step size is a relative
    perturbation that grows with the rate. Measured on BasicMotions (e8 block, T=4, 6.5
    bits/value): lr 2e-3 leaves the codec at 27.7 dB, lr 1e-4 reaches 38.5 dB at the same rate.
    """
    if target_bits_per_value is None:
        return BASE_LEARNING_RATE
    return max(1e-4, BASE_LEARNING_RATE * min(1.0, 2.0 ** -(target_bits_per_value - 3.0)))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch CPU threads (``None``: unchanged)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: ``train(lattice="auto")`` (the default) trains these and keeps the better one on the
#: validation split: E8 gains where the latent channels carry bits (BasicMotions: 1-11 %
#: fewer bits than Z at equal SNR), Z where most carry a fraction of a bit each (2 x 4
#: grey-image patches at 1 bit/value: 22.2 dB against E8's 21.2, fastText 10-value word
#: vectors 7.1 against 6.2).
LATTICE_CHOICES = ("e8", "z1")
#: ... when the validation split holds this many values (fewer: too noisy to choose on; E8):
#: on 3,888 and 5,040 validation values (image-segment features, daily stock prices) Z
#: looked 0.4 and 0.9 dB better and coded the test split 0.7 and 0.2 dB worse.
LATTICE_CHOICE_VALUES = 10_000
#: The second lattice is kept when its validation SNR, moved to the first one's rate
#: (``SLOPES_DB_PER_BIT``), is at least this much higher.
LATTICE_CHOICE_MARGIN_DB = 0.25


def _check_number(name: str, value) -> None:
    """A numeric argument that is None or a number ("2" was a TypeError of '<' between int and str)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise ValueError(f"{name} must be a number, got {value!r}")


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
        f"{rows:,} records, evenly spread (max_training_values={budget:,}; --max-training-values 0 or "
        "max_training_values=None trains on all of it, at about 4 GB of memory per 1e7 values)",
        UserWarning,
        stacklevel=3,
    )
    return chosen, {"values": kept, "of": total, "pieces": len(chosen), "piece_records": rows}


def train(
    data,
    *,
    lattice: str = "auto",
    mode: str = "block",
    window: int | str = 1,
    lmbda: float | None = None,
    target_bits_per_value: float | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "auto",
    latent_dim: int | None = None,
    transform: str = "auto",
    hidden: int = 100,
    components: int = 4,
    proxy: str = "auto",
    learning_rate: float | None = None,
    validation_fraction: float = 0.15,
    patience: int = 8,
    checkpoint: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    columns: list[str] | None = None,
    refit_density: bool = True,
    calibrate: bool = True,
    threads: int | None = 1,
    normalise: str = "column",
    max_training_values: int | None = MAX_TRAINING_VALUES,
):
    """Train a codec on ``data``: one ``[N, d]`` array (a series in order) or a list of series.

    Give either ``lmbda`` (loss = bits/value + λ·MSE in z-score units) or
    ``target_bits_per_value`` (λ is found for you); with neither, the target is
    ``DEFAULT_TARGET_BITS``. ``window="auto"`` picks the records per input vector from the
    data (:mod:`ltc_beam.codec.window_choice`; the choice is in the manifest's training
    summary). ``threads``: torch CPU threads while training (``None``: torch's default,
    one per core). ``progress``: bars on stderr; ``None`` (default) when it is a terminal only,
    so logs get none; ``True`` a line a minute in a log (:mod:`ltc_beam.progress`).
    ``normalise="series"``: each series (each chunk of a long one) is brought to unit scale
    by its own mean and std, which the stream carries (about 4 bytes per value column and
    series: :mod:`ltc_beam.codec.scaling`), so panels of series of very different levels and
    spreads code every series at an SNR of its own; ``"column"``
    (default): one mean and std per column, learnt here. Returns a frozen
    :class:`~ltc_beam.codec.codec.Codec`.

    Architecture: ``latent_dim`` (default: sized to the input and lattice), ``transform``
    (``"auto"`` = ``"linear"``, or ``"mlp"`` with ``hidden`` units), ``components`` (logistic
    mixture components of the latent density). Optimisation: ``steps`` (at most; training
    stops after ``patience`` validations every 100 steps without improvement), ``batch_size``,
    ``learning_rate`` (default: 2e-3 up to 3 bits/value, halved per extra bit), ``proxy``
    (quantisation in training: ``"ste"``, ``"noise"``, or ``"auto"``: noise for an MLP),
    ``validation_fraction`` (held out: whole series where there are three or more, see :func:`split_series`), ``seed``, ``device``,
    ``checkpoint``/``resume``. Finishing: ``refit_density`` (maximum-likelihood refit of the
    density on the training latents) and ``calibrate`` (the quantiser scale moved until the
    target rate is what the validation split codes to).

    ``max_training_values``: data of more values trains on evenly spread pieces of that many
    in all (:func:`training_sample`; None: all of it), with a warning.

    One thread by default: the model's operations are small, so a second thread gains
    13-20 % on an idle 2-core machine, and loses 5x when another job holds a core
    (BasicMotions, 1,500 steps: 11.8 s on 2 threads vs 13.4 s on 1 alone; 65 s vs 14 s with
    a second training beside it).
    """
    mode, window = (v.strip().lower() if isinstance(v, str) else v for v in (mode, window))  # "Vector", "Auto"
    _check_number("lmbda", lmbda)
    _check_number("target_bits_per_value", target_bits_per_value)
    if isinstance(lattice, str) and lattice.strip().lower() == "auto":
        options = {k: v for k, v in locals().items() if k not in ("data", "lattice")}
        return _better_lattice(data, options)
    lattice = lattices.get(lattice).name  # "E8" was kept as given: a codec of another id than e8's
    # the trainer seeds torch's generator (initial weights, noise): the caller's stream is
    # put back afterwards (it was left seeded with 0: every run drew the same numbers)
    with torch_threads(threads), torch.random.fork_rng(devices=[]), float32_default():
        from ltc_beam.codec.codec import Codec, frame_columns

        if lmbda is not None and target_bits_per_value is not None:
            raise ValueError("give lmbda or target_bits_per_value, not both")
        if lmbda is None and target_bits_per_value is None:
            target_bits_per_value = DEFAULT_TARGET_BITS
        if lmbda is not None and not 0 < lmbda < math.inf:
            raise ValueError(f"lmbda must be a finite number above 0, got {lmbda}")
        if target_bits_per_value is not None and not 0 < target_bits_per_value < math.inf:
            raise ValueError(f"target_bits_per_value must be a finite number above 0, got {target_bits_per_value}")
        if not 0 < validation_fraction < 1:  # 0 held out one record anyway and reported it as the validation split
            raise ValueError(f"validation_fraction must lie between 0 and 1 (exclusive), got {validation_fraction}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        if isinstance(columns, str):  # "a,b,c", as LtcEncode and the CLI take them ("yx" was two columns y and x)
            columns = [c for c in columns.split(",") if c]
        if columns is None:
            data = named_series_as_frame(data)
        first = data[0] if isinstance(data, (list, tuple)) and len(data) else data
        if frame_columns(first) is not None:  # frames: columns taken by name (in every frame), as encode takes them
            if columns is not None and not len(columns):
                raise ValueError("columns= names no column: leave it out to take every column of the frame")
            given = columns is not None
            columns = [str(c) for c in (frame_columns(first) if columns is None else columns)]
            data = _frame_columns_chosen(data, columns, given)
        raw = as_series(data, columns)  # what the frozen codec codes (tables, calibration, validation)
        if columns is not None and len(columns) != raw[0].shape[1]:  # the codec then refused its own training data
            raise InputError(f"columns= names {len(columns)} columns; the data has {raw[0].shape[1]} values per record")
        if max_training_values is not None and (not _whole(max_training_values) or max_training_values < 1):
            raise ValueError(f"max_training_values must be an integer >= 1 or None, got {max_training_values!r}")
        raw, sample = training_sample(raw, max_training_values)
        if normalise == "series":  # pieces as compress chunks them, each scaled as the codec scales it
            from ltc_beam.arrow import default_chunk_records

            series, stated = scaled_pieces(raw, default_chunk_records(raw[0].shape[1]))
            warn_if_statistics_cost(stated, raw)
        else:
            series = distinct_series(raw)
        mean, std = column_statistics(series)
        warn_if_float32_limits(mean, std, columns)
        warn_if_series_scales_differ(series, std, columns)
        warn_if_columns_hold_no_values(series, columns)
        warn_if_flag_columns(series, columns)
        window_choice, asked = None, window
        if window == "auto":
            from ltc_beam.codec.window_choice import choose_window

            window, estimates, scores = choose_window(
                series, stats=(mean, std), bits_per_value=target_bits_per_value, lmbda=lmbda, train_fraction=1 - validation_fraction
            )
            window_choice = {"window": window, "gaussian_bits_per_value": estimates, "penalised_bits_per_value": scores}
        if not _whole(window) or window < 1:
            raise ValueError(f"window must be 'auto' or an integer >= 1, got {window!r}")
        if not _whole(steps) or steps < 1:  # 2.5 was taken
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        window, steps = int(window), int(steps)
        if asked == 1 and mode == "block":  # not where window="auto" chose 1
            warn_if_records_follow_each_other(series)
        variances = principal_variances(series, window, mean, std)
        learnable = directions_learnable(series, window, validation_fraction, seed)
        rank = min(numerical_rank(variances), learnable)
        config = build_config(
            series[0].shape[1],
            lattice=lattice,
            mode=mode,
            window=window,
            latent_dim=latent_dim or default_latent_dim(rank, lattice, mode, most=learnable),
            transform=transform,
            hidden=hidden,
            components=components,
            proxy=proxy,
        )
        n = lattices.get(lattice).dim
        if mode == "vector" and config.input_dim < n:
            warnings.warn(
                f"vector mode codes each vector of {config.input_dim} values as a {n}-dimensional {lattice} point "
                f"(latent padded to {config.latent_dim}): efficiency suffers (3 i.i.d. values, 2 "
                "bits/value asked: 2.00 paid at 8.1 dB in vector mode, 1.99 at 10.9 dB in block mode). Use mode='block', a longer window, "
                "or a smaller lattice, unless you need the record layout.",
                stacklevel=2,
            )
        if variances.max() <= 0:
            # nothing varies: every column decodes exactly as a constant; a coarse step keeps
            # the (input-free) latents on the lattice origin instead of a rate search to nowhere
            target_bits_per_value, lmbda = None, CONSTANT_DATA_LMBDA
        if target_bits_per_value is not None:
            target_bits_per_value = reachable_target(
                target_bits_per_value, variances[: min(config.latent_dim, rank)], config.input_dim, learnable
            )
        if learning_rate is None:
            learning_rate = default_learning_rate(target_bits_per_value)
        options = TrainingOptions(
            lmbda=lmbda,
            target_bits_per_value=target_bits_per_value,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            device=device,
            validation_fraction=validation_fraction,
            patience=patience,
            checkpoint=checkpoint,
            progress=progress,
            normalise=normalise,
        )
        trainer = Trainer(config, series, options)
        fit, held = split_series(raw, validation_fraction, seed, window)  # the trainer's split, of the data as given

        def freeze(model: LtcModel, training: dict | None = None) -> Codec:
            return Codec.from_model(
                model, training=training, columns=columns, fit_series=fit, validation_series=held, normalise=normalise
            )

        if resume and checkpoint and exists(checkpoint):
            trainer.load_checkpoint(checkpoint)
        summary = trainer.run().to_dict()
        if window_choice is not None:
            summary["window_choice"] = window_choice
        if sample is not None:
            summary["training_sample"] = sample
        # after the steps: codecs frozen (tables fitted to the training symbols) and coded; an
        # off-scale warning there would be about the training data itself (a small split
        # escapes some tables), with advice to retrain: the small-split warnings say it right
        finish = progress_bar(progress, desc="finish", bar_format="{desc} [{elapsed}]")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffScaleWarning)
            coded = None  # the kept model's validation bits, where the start check took them
            if held and options.target_bits_per_value is not None and not summary["start_check"]["kept_start"]:
                finish.set_description_str("finish: the trained model against its PCA start, both coded")
                check = keep_the_start_if_coded_better(trainer, freeze, held)
                summary["start_check"].update(check)
                coded = (check["coded"]["start"][0] if check["kept_start"] else check["coded"]["trained"])["bits_per_value"]
            if refit_density and held:
                finish.set_description_str("finish: density refit, kept if the codec codes the validation split shorter")
                summary["density_refit"] = refit_density_if_shorter(trainer, freeze, held, coded)
            if calibrate and options.target_bits_per_value is not None:
                data = calibration_series(raw, CALIBRATION_VALUES * (SERIES_CALIBRATION_FACTOR if normalise == "series" else 1))
                finish.set_description_str(f"finish: rate calibration to {options.target_bits_per_value:g} bits/value")

                def measure(model: LtcModel) -> float:
                    bits = coded_bits_per_value(freeze(copy.deepcopy(model)), data)
                    finish.set_description_str(f"finish: rate calibration to {options.target_bits_per_value:g} bits/value: coded {bits:.3f}")
                    return bits

                summary["rate_calibration"] = calibrate_rate(trainer, options.target_bits_per_value, measure, normalise == "series")
            else:
                summary["synthesis_refit"] = trainer.refit_synthesis()
            summary["validation"] = trainer.validate()
            finish.set_description_str("finish: final codec: tables, then the validation split coded")
            codec = freeze(trainer.model, summary)
            if held:
                record_coded_validation(codec, held)
                warn_if_validation_costs_more(codec)
        finish.set_description_str("finish: done")
        finish.close()
        return warn_if_tables_capped(codec)


def _better_lattice(data, options: dict) -> "Codec":
    """``train`` with each of ``LATTICE_CHOICES`` (the second one only where the rate is
    calibrated and the validation split is large enough to judge), the one whose coded
    validation split has the better SNR at equal rate kept; the manifest's training summary
    says what each did (``lattice_choice``). The kept run's warnings are the ones shown."""
    first, said = _train_quietly(data, LATTICE_CHOICES[0], options)
    training = first.manifest["training"]
    held = training.get("validation") or {}
    values = training.get("validation_vectors", 0) * first.config.input_dim
    chosen = first
    # the target as training capped it (low-rank data), else as asked
    target = (training.get("rate_calibration") or {}).get("target_bits_per_value") or options["target_bits_per_value"] or DEFAULT_TARGET_BITS
    judged = options["lmbda"] is None and options["calibrate"] and held.get("snr_db") is not None and values >= LATTICE_CHOICE_VALUES
    missed = f"validation rate over {MISSED_TARGET:.0%} from the target of {target:g} bits/value"
    if not judged:  # the manifest said nothing of the choice then
        why = (f"a validation split of {values:,} values (fewer than {LATTICE_CHOICE_VALUES:,}) is too few to choose on"
               if values < LATTICE_CHOICE_VALUES else "the rate is not calibrated (lmbda given, or calibrate=False)")
        choice = {"not_compared": why}
    elif abs(held["bits_per_value"] - target) > MISSED_TARGET * target:
        # no fair comparison at equal rate would follow: Z's training (half the time) is spared
        # (a glucose monitor's 2 bits/value asked: E8 coded its validation split at 2.48)
        choice = {"validation": _rates({LATTICE_CHOICES[0]: held}), "not_compared": f"{LATTICE_CHOICES[0]}'s {missed}"}
    else:
        if options["checkpoint"]:  # each lattice's run checkpoints on its own
            options = {**options, "checkpoint": f"{options['checkpoint']}.{LATTICE_CHOICES[1]}"}
        chose = training.get("window_choice")  # the lattice changes nothing of it: not worked out again
        second, second_said = _train_quietly(data, LATTICE_CHOICES[1], {**options, "window": chose["window"]} if chose else options)
        if chose:  # as the first run said it (window=1 given would hint at windows: auto chose 1)
            second.manifest["training"]["window_choice"] = chose
            second_said = [w for w in second_said if not issubclass(w.category, WindowHint)]
        other = second.manifest["training"].get("validation") or {}
        gain = _gain_at_equal_rate(held, other, target)
        if gain is not None and gain >= LATTICE_CHOICE_MARGIN_DB:
            chosen, said = second, second_said
        choice = {"validation": _rates(dict(zip(LATTICE_CHOICES, (held, other))))}
        choice.update({"gain_db_at_equal_rate": gain} if gain is not None else {"not_compared": f"{LATTICE_CHOICES[1]}'s {missed}"})
    chosen.manifest["training"]["lattice_choice"] = {**choice, "chosen": chosen.config.lattice}
    chosen.manifest["codec_id"] = chosen.id = chosen.content_hash()
    for caught in said:  # at the caller of train
        warnings.warn(caught.message, caught.category, stacklevel=3)
    return chosen


def _rates(validation: dict) -> dict:
    """Each lattice's coded validation rate and SNR, for ``lattice_choice``."""
    return {name: {"bits_per_value": v.get("bits_per_value"), "snr_db": v.get("snr_db")} for name, v in validation.items()}


def _train_quietly(data, lattice: str, options: dict) -> tuple["Codec", list]:
    """``train`` with ``lattice``, its warnings recorded instead of shown."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        codec = train(data, lattice=lattice, **options)
    return codec, said


#: dB per bit/value at which a codec at a higher rate is moved down to the other's rate
#: (measured slopes around 0.5-1 bit/value: 8.6-15.4), and at which one at a lower rate is
#: moved up (6.02, the high-rate slope): the second lattice must win under either.
SLOPES_DB_PER_BIT = (15.0, 6.02)


def _gain_at_equal_rate(first: dict, second: dict, target: float) -> float | None:
    """:func:`_snr_gain`; None where either codec missed the target by over
    ``MISSED_TARGET`` or has no finite SNR (no fair comparison)."""
    if second.get("snr_db") is None or any(abs(v["bits_per_value"] - target) > MISSED_TARGET * target for v in (first, second)):
        return None
    return _snr_gain(first, second)


def _snr_gain(first: dict, second: dict) -> float:
    """The second codec's SNR over the first's at the first's rate, on the slope least
    favourable to the second (``SLOPES_DB_PER_BIT``)."""
    more = second["bits_per_value"] - first["bits_per_value"]
    return second["snr_db"] - first["snr_db"] - (SLOPES_DB_PER_BIT[0] if more > 0 else SLOPES_DB_PER_BIT[1]) * more


def keep_the_start_if_coded_better(trainer: Trainer, freeze, held: list[np.ndarray]) -> dict:
    """Go back to the PCA start where it codes the validation split ``held`` better than the
    trained model at equal rate: each frozen (tables fitted to the training symbols, as the
    codec will have them) and its exact code length taken, with the model's SNR on the same
    split; the start also at a second quantizer scale, one secant step towards the trained
    rate, its SNR at that rate read off the line through its two points.

    :meth:`Trainer.keep_the_start_if_far_better` judges on the model's own rate estimate,
    where the start's quick density fit costs it 1-4 dB (BasicMotions, E8 block T=4, 2-5
    bits/value: +1.2 to +4.5 dB for training there, within 0.15 dB of the start at equal
    rate coded on the test split), so it only catches collapses. At high SNR training drifts below its start
    (Daphnet, 3-5 bits/value asked: the start coded the test split 0.5-0.7 dB better at
    equal rate; seismometer counts in windows of 64 at 2 bits/value: 2.13 bits/value at 39.3 dB
    against 2.19 at 38.1)."""
    model, config = trainer.model, trainer.config

    def coded() -> dict:
        snr = trainer.validate()["snr_db"]
        return {"bits_per_value": validation_bits(freeze(copy.deepcopy(model)), held), "snr_db": snr}

    trained = coded()
    state = copy.deepcopy(model.state_dict())
    model.load_state_dict(trainer.start_state)
    start = [coded()]
    octaves = (trained["bits_per_value"] - start[0]["bits_per_value"]) * config.input_dim / config.latent_dim
    scale_latents(model, float(np.clip(octaves, -MAX_CALIBRATION_OCTAVES, MAX_CALIBRATION_OCTAVES)))
    start.append(coded())
    (b0, s0), (b1, s1) = ((p["bits_per_value"], p["snr_db"]) for p in start)
    if abs(b1 - b0) > 1e-6:
        gain = s0 + (s1 - s0) * (trained["bits_per_value"] - b0) / (b1 - b0) - trained["snr_db"]
    else:  # the rate did not answer the scale
        gain = _snr_gain(trained, start[0])
    model.load_state_dict(trainer.start_state if gain > 0 else state)
    return {"coded": {"trained": trained, "start": start, "start_gain_db_at_equal_rate": gain}, "kept_start": gain > 0}


def record_coded_validation(codec: Codec, series: list[np.ndarray]) -> None:
    """Replace the manifest's ``training.validation`` (the model's estimate: the learned
    density on the validation vectors) by what the frozen codec does with the validation
    series (evenly spread pieces beyond about 2**20 values, as for the rate calibration), chunked
    and framed as ``compress`` would (``ltc_beam.evaluation.evaluate``): bits per value of
    the bitstreams, of their fixed frames and of the tables' code length alone (per-stream
    costs weigh on a small split: ItalyPowerDemand's 240 values in 4 streams, 7.9 bits/value
    of which 3.7 frames, 1.8 code length), SNR of the decoded records. The estimate stays, as
    ``model_estimate``; the two part where the tables or windows code differently (a
    JapaneseVowels codec estimated 0.98 bits at 15.7 dB and coded 1.92 at 10.3 before
    packed series were windowed apart). The codec id is recomputed."""
    from ltc_beam.evaluation import evaluate

    coded = evaluate(codec, calibration_series(series), voronoi=False, warn_spread=False)  # at most about 2**20 values
    training = codec.manifest["training"]
    training["validation"] = {
        **{k: coded[k] for k in ("bits_per_value", "frame_bits_per_value", "model_bits_per_value", "nmse")},
        "snr_db": coded["snr_db"] if math.isfinite(coded["snr_db"]) else None,  # exact: no finite dB
        "streams": coded["streams"], "model_estimate": training.get("validation"),
    }
    codec.manifest["codec_id"] = codec.id = codec.content_hash()
    if coded["snr_db"] < 0:  # pd_speech's 750 voice features, 180 records: -7.5 dB, saved without a word
        warnings.warn(
            f"the codec decodes its validation split at {coded['snr_db']:.1f} dB, worse than each column's mean "
            f"would (0 dB): what it learned from {training.get('train_vectors')} training vectors of "
            f"{codec.config.input_dim} values does not carry to records it did not see. Train on more records, or "
            "check that the held-out ones (whole series, or the tail of each) are like the rest",
            UserWarning,
            stacklevel=2,
        )


#: The validation split coding more than this factor of the calibrated rate is warned about
#: (BasicMotions' held-out recordings: 0.34-0.88 of it; i.i.d. Gaussian 0.98-1.02; Daphnet's
#: calmer first half held out from its own tail: 1.10-1.63, and its test half costs more).
LIVELIER_VALIDATION = 1.3


def warn_if_validation_costs_more(codec: Codec) -> None:
    """Warn when the validation split (less its frames) codes at over ``LIVELIER_VALIDATION``
    times the rate the calibration reached on the training records: the asked rate is then
    not what records like the held-out ones (the tail of each series, or whole series) cost
    (a 9-axis IMU asked for 0.5 bits/value: validation 0.77; its test split, the last fifth of
    the series, 0.65)."""
    training = codec.manifest["training"]
    calibrated = (training.get("rate_calibration") or {}).get("bits_per_value")
    held = training.get("validation") or {}
    if not calibrated or "bits_per_value" not in held:
        return
    coded = held["bits_per_value"] - held.get("frame_bits_per_value", 0.0)
    if coded > LIVELIER_VALIDATION * calibrated:
        warnings.warn(
            f"the codec codes its validation split at {coded:.3g} bits/value ({coded / calibrated - 1:+.0%}), where the "
            f"rate calibration reached {calibrated:.3g} on the training records: the held-out records (the tail of each "
            "series, or whole series) are livelier or shifted, and new records like them will cost about as much. "
            "Train on records like those to be compressed, or ask for a lower rate",
            UserWarning,
            stacklevel=3,
        )


def refit_density_if_shorter(trainer: Trainer, freeze, held: list[np.ndarray], before: float | None = None) -> dict:
    """:meth:`Trainer.refit_density`, kept only if the codec frozen from it codes the
    validation split ``held`` shorter (judged on the tables finally chosen, not on the box
    pmf the refit optimises); otherwise the density is restored. ``before``: the model's
    :func:`validation_bits` as it stands, where known."""
    state = copy.deepcopy(trainer.model.density.state_dict())
    if before is None:
        before = validation_bits(freeze(copy.deepcopy(trainer.model)), held)
    trainer.refit_density()
    after = validation_bits(freeze(copy.deepcopy(trainer.model)), held)
    kept = after < before
    if not kept:
        trainer.model.density.load_state_dict(state)
    return {"validation_bits_before": before, "validation_bits_after": after, "kept": kept}


#: ``train`` moves the quantizer scale until the frozen codec codes its data within this
#: fraction of ``target_bits_per_value`` (or for ``CALIBRATION_TRIES`` tries).
RATE_TOLERANCE = 0.03
CALIBRATION_TRIES = 6
MISSED_TARGET = 0.1  # a calibrated rate further than this fraction from the target is warned about
MAX_CALIBRATION_OCTAVES = 2.0  # the scale stays within 2**±this of the trained one
CALIBRATION_VALUES = 1 << 20  # values of the training data coded per try (evenly spread pieces)
#: ... times this for series-scaled codecs: each series is scaled by its own statistics, and a
#: part of one by narrower ones (50 random-walk devices, 2.4M values, asked 1 bit/value:
#: calibrated to 1.02 on 43 % prefixes, the whole series then coded at 0.78).
SERIES_CALIBRATION_FACTOR = 4


@torch.no_grad()
def scale_latents(model: LtcModel, octaves: float) -> None:
    """Multiply the latents by ``2**octaves`` (in place): the analysis output and the
    density grow by it, the synthesis input shrinks by it, so only the quantizer's step
    relative to the latents changes: each active latent channel gains ``octaves`` bits."""
    factor = 2.0**octaves
    analysis, synthesis = model.analysis, model.synthesis
    for layer in [analysis.linear] + ([analysis.mlp[-1]] if analysis.mlp is not None else []):
        layer.weight.mul_(factor)
        layer.bias.mul_(factor)
    for layer in [synthesis.linear] + ([synthesis.mlp[0]] if synthesis.mlp is not None else []):
        layer.weight.div_(factor)
    model.density.means.mul_(factor)
    model.density.log_scales.add_(math.log(factor))


def calibration_series(series: list[np.ndarray], values: int = CALIBRATION_VALUES) -> list[np.ndarray]:
    """``series``, or where they hold over ``values`` values, evenly spread pieces of them
    (:func:`spread_pieces`): short series whole. Until session 23 a prefix of each (the same
    fraction), which cut 100,000 series of 5-20 records to 1-3 records each; windows of 8 cost
    those far more per value, and a codec asked for 2 bits/value coded the whole data at 1.31."""
    if sum(s.size for s in series) <= values:
        return series
    return spread_pieces([s for s in series if len(s)], values)[0]


def coded_bits_per_value(codec: Codec, series: list[np.ndarray]) -> float:
    """Bits per value of the bitstreams ``codec`` writes for ``series`` as ``compress`` chunks
    them, less each bitstream's fixed frame (magic, codec id, shape, checksum: the data
    size's cost, not the codec's; exact values, series lengths and the payload count)."""
    from ltc_beam.bitstream import unpack
    from ltc_beam.evaluation import archive_chunks

    bits = values = 0
    for x, segments in archive_chunks(codec, series):
        blob = codec.encode(x, segments)
        bits += 8 * (len(blob) - unpack(blob).fixed_bytes)
        values += x.size
    return bits / values


def calibrate_rate(trainer: Trainer, target: float, measure, series_scaled: bool = False) -> dict:
    """Scale the trained model's latents (:func:`scale_latents`, in place) until
    ``measure(model)`` (the coded bits per value) is within ``RATE_TOLERANCE`` of ``target``.

    Training steers λ on its rate estimate (the learned density on noisy or rounded
    training batches); the frozen codec's tables code differently (20-25 % fewer bits on
    BasicMotions), so the last step is taken on the real code length: secant steps on
    log2(scale), safeguarded by bisection once the target is bracketed, each try with its
    decoder refit (:meth:`Trainer.refit_synthesis`: the sample-coding fallback matches the
    decoder's error, so the rate depends on it too). The best try is kept. Returns the tries
    ``[(octaves, bits per value)]`` and the chosen one.
    """
    model = trainer.model
    trainer.refit_synthesis()
    tries = [(0.0, measure(model))]
    states = [copy.deepcopy(model.state_dict())]
    slope = model.config.latent_dim / model.config.input_dim  # bits/value per octave if every channel is active
    for _ in range(CALIBRATION_TRIES):
        u, r = tries[-1]
        if min(abs(r - target) for _, r in tries) <= RATE_TOLERANCE * target:
            break
        if len(tries) > 1:
            (u0, r0), (u1, r1) = tries[-2], tries[-1]
            if abs(r1 - r0) > 1e-9:
                slope = max(1e-3, (r1 - r0) / (u1 - u0))
        step = u + (target - r) / slope
        below = [t for t in tries if t[1] < target]
        above = [t for t in tries if t[1] >= target]
        if below and above:  # bracketed: stay inside the bracket
            low, high = max(below)[0], min(above)[0]
            if not min(low, high) < step < max(low, high):
                step = 0.5 * (low + high)
        step = float(np.clip(step, -MAX_CALIBRATION_OCTAVES, MAX_CALIBRATION_OCTAVES))
        if any(abs(step - t[0]) < 1e-6 for t in tries):
            break
        scale_latents(model, step - u)  # the model stands at the last try's scale
        trainer.refit_synthesis()
        tries.append((step, measure(model)))
        states.append(copy.deepcopy(model.state_dict()))
    best = min(range(len(tries)), key=lambda i: abs(tries[i][1] - target))
    model.load_state_dict(states[best])
    if abs(tries[best][1] - target) > MISSED_TARGET * target:
        warnings.warn(
            f"rate calibration stopped at {tries[best][1]:.3g} bits/value for a target of {target:g}: the "
            f"quantizer scale moves at most {MAX_CALIBRATION_OCTAVES:g} octaves from the trained one "
            f"(tries: {', '.join(f'{r:.3g}' for _, r in tries)}). Data whose rate barely answers the step "
            "(piecewise-constant or integer-valued data whose streams the sample-coding fallback takes, "
            "a few rare spikes or events over a flat or quiet level" + ("; short series, whose own statistics take much of it" if series_scaled else "")
            + ") stops short; train with lmbda= (--lmbda) to set the trade-off directly",
            stacklevel=3,
        )
    return {
        "target_bits_per_value": target, "octaves": tries[best][0], "bits_per_value": tries[best][1],
        "tries": [list(t) for t in tries],  # JSON's shape: the manifest reads back equal
    }


def validation_bits(codec: Codec, series: list[np.ndarray]) -> float:
    """Bits per value ``codec`` codes ``series`` in (its tables' exact code length)."""
    return codec.series_code_length(series) / sum(s.size for s in series)


def warn_if_tables_capped(codec):
    """Warn when some coding table hit its symbol cap (``MAX_SYMBOLS``, fewer for codecs of
    many tables: :func:`~ltc_beam.codec.tables.symbol_cap`): its latent needs more resolution
    than a table holds, and the symbols beyond it escape (bypass-coded, a few times their bits)."""
    classes = 1 if codec.classes is None else CLASS_COUNT
    cap = symbol_cap(table_count(codec.lattice, codec.config.mode, codec.config.latent_dim, classes))
    if codec.tables.num_symbols >= cap:
        bits = math.log2(cap) - 1
        warnings.warn(
            f"some coding tables hit the {cap}-symbol cap: the codec spends more than about "
            f"{bits:.0f} bits on some latent channels and pays escapes for the symbols beyond the tables. "
            "Ask for fewer bits per value, or check that the data is not of low rank (fewer "
            "latent channels then carry all the bits) or of a wide dynamic range (loud stretches, such as a "
            "seismic event, far above a quiet background that sets the step).",
            stacklevel=3,
        )
    return codec
