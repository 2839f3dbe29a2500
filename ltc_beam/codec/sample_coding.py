"""Sample coding: the per-stream fallback for data that a lattice transform codes badly.

Piecewise-constant telemetry (power meters, status values: long flat stretches, sharp
edges) is a case where quantising the samples and handing the integers to zstd beats any
transform: a flat stretch is one integer repeated, which zstd's matches code almost for
free, while a linear transform spreads every edge over all coefficients of its window.
Measured with ``ltc-beam evaluate`` on ACSF1 (appliance power, UCR archive): 1.16
bits/value at 30.5 dB with LTC alone, 0.55 at 31.3 dB with this fallback.

The encoder always codes a stream with LTC first. For streams of at least
``MIN_RECORDS`` records a cheap probe (:func:`hopeless`) first rules out data LTC codes
well; otherwise it quantises the z-scored samples of each column with the largest uniform
step whose squared error on that column is at most LTC's, codes the integers (as they are,
or as differences down the records) as one zstandard frame (record by record or column by
column) or with per-column tables and ANS (:mod:`ltc_beam.codec.sample_tables`: noise-like
integers, which zstd codes well above their entropy; there also as each column's differences
of its own order, :mod:`ltc_beam.codec.sample_prediction`), whichever is shortest, and keeps that
payload only if the whole stream gets
shorter at no lower SNR (mean error relative to each column's variance in the stream; each
within ``MAX_COLUMN_ERROR_GROWTH`` of its own or, up to 4x its own, of the stream's, in
``ltc_beam.codec.codec``);
besides the steps that meet each column's own error it tries one error for every column at
LTC's mean, in z-scores and relative to the columns' variances, each also as one step factor
for all columns (:func:`shared_steps`), and the grid of columns written with few decimals. The decoder reads which one it got from the bitstream's flags
(``schemas/BITSTREAM.md``).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

import numpy as np
import zstandard

from ltc_beam.codec.sample_contexts import decode_contexted, encode_contexted
from ltc_beam.codec.sample_prediction import MAX_ORDER, predictor_orders, residuals, restored
from ltc_beam.codec.sample_tables import column_entropies, decode_tabled, encode_tabled, least_bytes
from ltc_beam.errors import FormatError
from ltc_beam.zstd_frames import decompress_exactly, stated_size

#: Shortest stream tried (64 until session 14: a 36-record, 23-column stream of trending
#: employment figures cost 8.43 bits/value with LTC, 3.84 with uniform quantisation + zstd).
MIN_RECORDS = 16
#: Measured on a smooth membrane-potential recording (12,000 values, int8 differences):
#: 2.04 bits/value at level 6, 1.88 at 15 (2.4 ms), 1.87 at 19 (4.6 ms); ACSF1: 19 is 3 %
#: shorter than 6.
ZSTD_LEVEL = 15
#: Step search: from ``sqrt(12 * target) * GRID ** -GRID_BELOW`` to ``... * GRID ** GRID_ABOVE`` (x 63).
GRID, GRID_ABOVE, GRID_BELOW = 1.03, 140, 80
#: Significant bits of the steps :func:`column_steps` picks (0.4-0.8 % apart; the payload
#: packs them to about a byte each, :data:`PACKED_STEPS`). Until session 36 the steps were
#: ``sqrt(12 * target) * GRID ** k``, 3 % apart, stored in 4 bytes each.
STEP_BITS = 8
#: Steps below this many times a column's grid of values are taken down to the grid
#: (:func:`onto_grid`; 4 and 8, rounding down to a whole number of grids, changed more
#: streams for no better balance over 74 codecs of 15 real datasets).
GRID_MULTIPLES = 2
PROBE_MARGIN = 1.35
#: The same for the differences' order-0 entropy, which tables come near (1.35 let the
#: default windowed codec's streams of an AR(1) signal, entropy 1.25x LTC's payload, through
#: to trials they never won: 22.6 -> 4.8 MB/s encoding).
ENTROPY_MARGIN = 1.1
#: The integers as they are at zstd level 1 (records in no order, such as feature vectors,
#: whose differences down the records vary more than the values) must come this close to
#: the lattice payload: i.i.d. Gaussian at 2 bits/value came to 1.33x it, and trials that
#: all lost took encoding from 22.8 to 3.0 MB/s at 1.35; 40 LFW faces came to 1.18x (the
#: trials lost there too, on 4 bytes of step per column for 625 columns).
ORDERLESS_PROBE_MARGIN = 1.0
#: ... judged first on the records that hold about this many values (beyond, the whole array),
#: within this factor of their share (a prefix's size is a few per cent off its share: 8 kinds
#: of record in random order, 3 %; i.i.d. Gaussian's integers, at 1.33x, stay out).
ORDERLESS_PROBE_VALUES, PREFIX_SLACK = 1 << 16, 1.2
ORDERS = (0, 1)  # 0: the integers as they are; 1: differences down the records
#: Order codes of payloads whose grid is shifted by stored per-column offsets (order = code - 2).
OFFSET_ORDERS = (2, 3)
#: Order codes written from session 14 (bit ``IMPLIED`` set): the grid offsets are the codec's
#: (not stored: 8 bytes per column, 0.2 bits/value on a 300-record, 6-column stream); bit
#: ``DIFFERENCES``: differences down the records with the first record apart (in it as a
#: difference, a series' level forced int16 on every integer: 2.20 instead of 1.90
#: bits/value on hourly temperatures); bit ``BY_COLUMN``: column by column (poll averages:
#: 3.67 instead of 3.97); bit ``FLOAT32_STEPS``: the steps are float32 (4 bytes a column).
#: From session 24, bit ``TABLED`` (with ``BY_COLUMN`` clear): the integers ANS-coded with
#: per-column tables (:mod:`ltc_beam.codec.sample_tables`) instead of one zstandard frame.
#: From session 25, bit ``PREDICTED`` (with ``TABLED``; ``DIFFERENCES`` and ``BY_COLUMN``
#: clear): each column coded as the differences of its own order
#: (:mod:`ltc_beam.codec.sample_prediction`), the orders stored; with bit ``CONTEXTS`` too,
#: those differences coded with geometric tables that follow the activity of the columns
#: before (:mod:`ltc_beam.codec.sample_contexts`; from session 26 a column may take a stored
#: table of its own there) instead of per-column tables. From session 28, bit ``RECENT`` (with
#: ``CONTEXTS``): a record's class also follows its own column's records before it.
DIFFERENCES, BY_COLUMN, IMPLIED, FLOAT32_STEPS, TABLED, PREDICTED, CONTEXTS, RECENT = 1, 2, 4, 8, 16, 32, 64, 128
IMPLIED_ORDERS = tuple(range(4, 8)) + tuple(range(12, 16)) + (20, 21, 28, 29, 52, 60, 116, 124, 244, 252)
#: Most integers (all columns) tried with :data:`CONTEXTS` (0.2 s to encode 2**21 of them,
#: four times per-column tables).
CONTEXT_VALUES = 1 << 20
#: Bytes per integer; 1 from session 13 (readers before it refuse such payloads): int16
#: for differences that fit int8 cost that membrane recording 2.74 bits/value, int8 2.04.
WIDTHS = (1, 2, 4, 8)
#: Width byte bit, from session 36 (readers before it refuse such payloads): the steps are
#: stored packed, a ``u32`` byte count and then one zstandard frame of their bytes in planes
#: (byte 0 of every step, then byte 1, ...), where that is shorter. :func:`column_steps`
#: picks steps of 8 significant bits, whose low bytes are 0: 625 pixel steps of 40 LFW faces
#: took 2,500 bytes as float32, where the integers took 3,900.
PACKED_STEPS = 0x80
_HEADER = struct.Struct("<BB")
_STEP_BYTES = struct.Struct("<I")


def column_steps(z: np.ndarray, keep: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Per column, the largest step of ``STEP_BITS`` significant bits whose rounding error
    (mean square over ``keep``) is at most ``target``: a bisection over those numbers from
    ``sqrt(12 * target) * GRID ** -GRID_BELOW`` to ``... * GRID ** GRID_ABOVE`` (a column of
    mostly exact zeros meets its target at steps far above the rule's: Covid3Month, 82 %
    zeros, 3.4x); a column of one value takes that value's size (:func:`_rule`). None when
    some column cannot meet its target even at the smallest step (a target of 0 on varying
    values, or data far coarser than the rule expects)."""
    values, held, start = _rule(z, keep, target)
    if (~held & (start == 0)).any():
        return None
    count = np.maximum(keep.sum(axis=0), 1)

    def meets(columns: np.ndarray, code: np.ndarray) -> np.ndarray:
        trial = short_step(code)
        v = values[:, columns]
        return ((np.round(v / trial) * trial - v) ** 2).sum(axis=0) / count[columns] <= target[columns]

    varying = np.flatnonzero(~held)
    good = short_code(start[varying] * GRID**-GRID_BELOW, up=True)
    if not meets(varying, good).all():
        return None
    bad = short_code(start[varying] * GRID**GRID_ABOVE) + 1
    while (open_ := np.flatnonzero(bad - good > 1)).size:
        mid = (good[open_] + bad[open_]) // 2
        ok = meets(varying[open_], mid)
        good[open_[ok]], bad[open_[~ok]] = mid[ok], mid[~ok]
    steps = start.copy()
    steps[varying] = short_step(good)
    return steps


def capped_targets(share: np.ndarray, spread: np.ndarray, cap: np.ndarray, total: float) -> np.ndarray:
    """Per column the error ``min(level * share, cap)``, the level such that the errors
    relative to ``spread`` sum to ``total`` (each at its cap where even they sum to less):
    one error for every column, as far as each column's cap allows. MNIST's pixels through a
    codec at 2 bits/value: at one error relative to each column's variance, 12 columns rose
    past their bound, and the stream kept the lattice errors' trial, 1.19 bits/value; capped
    at twice their lattice errors 1.10 (at their whole bound, up to 8x, 0.93)."""
    weight = share / spread
    order = np.argsort(cap / share, kind="stable")
    knee = (cap / share)[order]
    capped = np.concatenate([[0.0], np.cumsum((cap / spread)[order])])  # k columns at their cap
    rest = np.concatenate([np.cumsum(weight[order][::-1])[::-1], [0.0]])  # the others' weight
    with np.errstate(divide="ignore", invalid="ignore"):
        level = (total - capped) / rest
    below = np.concatenate([[0.0], knee])  # the level must lie between the last knee passed and the next
    fits = (level[:-1] >= below[:-1]) & (level[:-1] <= knee)
    if not fits.any():
        return cap.copy()
    return np.minimum(level[:-1][np.argmax(fits)] * share, cap)


def shared_steps(z: np.ndarray, keep: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Per column a step in proportion to the rule's for ``target`` (each of ``STEP_BITS``
    significant bits), one factor for all columns that vary: the largest (of ``STEP_BITS``
    bits too) whose rounding errors, weighted by ``weights``, sum to at most the targets'
    weighted sum; the others as :func:`column_steps` takes them. Where a column's error
    strays from the rule's ``step**2 / 12`` (coarse steps on peaked or bounded values), the
    steps that meet each column's error differ, and one factor codes shorter at the same
    weighted sum: 40 LFW faces at 13.5 dB, steps 0.63-1.03x the rule's, 3,712 bytes at
    zstd level 19 against 3,302 at one factor. None as for :func:`column_steps`."""
    values, held, start = _rule(z, keep, target)
    if (~held & (start == 0)).any():
        return None
    varying = np.flatnonzero(~held)
    v, rule, weight = values[:, varying], start[varying], weights[varying]
    count = np.maximum(keep[:, varying].sum(axis=0), 1)
    budget = float((weight * target[varying]).sum())

    def steps_at(code: int) -> np.ndarray:
        return short_step(short_code(short_step(np.int64(code)) * rule))

    def meets(code: int) -> bool:
        trial = steps_at(code)
        return float((weight * ((np.round(v / trial) * trial - v) ** 2).sum(axis=0) / count).sum()) <= budget

    good, bad = int(short_code(GRID**-GRID_BELOW, up=True)), int(short_code(GRID**GRID_ABOVE)) + 1
    if not meets(good):
        return None
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if meets(mid) else (good, mid)
    steps = start.copy()
    steps[varying] = steps_at(good)
    return steps


def short_code(x: np.ndarray, up: bool = False) -> np.ndarray:
    """The code of the largest number of ``STEP_BITS`` significant bits at most ``x`` (> 0;
    with ``up``, the least at least ``x``): increasing with the number it stands for
    (:func:`short_step`)."""
    fraction, exponent = np.frexp(x)
    significand = np.floor(np.ldexp(fraction, STEP_BITS)).astype(np.int64)
    code = exponent.astype(np.int64) * (1 << (STEP_BITS - 1)) + significand - (1 << (STEP_BITS - 1))
    return code + (up & (short_step(code) < x))


def short_step(code: np.ndarray) -> np.ndarray:
    """The number of ``STEP_BITS`` significant bits that ``code`` stands for (:func:`short_code`)."""
    half = 1 << (STEP_BITS - 1)
    return np.ldexp((half + code % half).astype(np.float64), code // half - STEP_BITS)


def float32_below(steps: np.ndarray) -> np.ndarray:
    """Each step rounded down to a float32 (a finer step, stored in 4 bytes)."""
    narrow = steps.astype(np.float32)
    narrow = np.where(narrow.astype(np.float64) > steps, np.nextafter(narrow, np.float32(0)), narrow)
    return np.where(narrow > 0, narrow.astype(np.float64), steps)  # below float32's range: as it was


def onto_grid(steps: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``steps`` as a trial codes with them: each rounded down to a float32
    (:func:`float32_below`), at least its column's grid ``floor`` (0 where a column has
    none), and below ``GRID_MULTIPLES`` grids the grid itself: such a step gathers one or
    two grid values into each integer, unevenly, so the rate hardly falls below the grid's
    while the error grows from none. pvlib soiling inputs at 3 bits/value asked: 2.52
    bits/value at 31.9 dB with PM2.5 at 1.9x its grid, 2.83 at 34.8 dB with it exact (at 6
    dB per bit, 0.16 bits/value fewer for that SNR)."""
    steps = np.maximum(float32_below(steps), floor)
    return np.where((floor > 0) & (steps < GRID_MULTIPLES * floor), floor, steps)


def float32_where_same(steps: np.ndarray, z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``steps`` with each one that float32 does not hold (a column's grid, such as 0.1 / std)
    replaced by its nearest float32 where that quantises the column's values in ``keep`` to
    the same integers: the payload then stores every step in 4 bytes instead of 8 (48 of the
    373 bytes of 41 quarterly records of 12 macro figures), each value moving by a float32
    rounding of itself at most."""
    near = steps.astype(np.float32).astype(np.float64)
    loose = np.flatnonzero((near != steps) & (near > 0) & np.isfinite(near))
    if not loose.size:
        return steps
    part = np.where(keep[:, loose], z[:, loose], 0.0)
    same = (np.round(part / steps[loose]) == np.round(part / near[loose])).all(axis=0)
    out = steps.copy()
    out[loose[same]] = near[loose[same]]
    return out


#: Grids tried for each column's values, coarsest first: integers, then decimals.
QUANTA = tuple(10.0**-k for k in range(7))
#: Rows a grid is first tried on (columns off it there are off it): all seven grids on all of
#: 2**21 float values took a quarter of a matched E8 codec's encode time.
GRID_PROBE_ROWS = 4096


def grid_quanta(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """For each column of ``x`` (data units), the coarsest of ``QUANTA`` whose multiples
    hold all its values in ``keep`` (to float32 precision, and below 2**24 quanta in size,
    where float32 still holds every multiple), else 0.0: a step of that quantum codes the
    column exactly (bar float32 rounding), so sample coding never takes a finer one. Values
    written with a few decimals are common: Wiimote readings of 3 decimals cost 4.14
    bits/value at 45.5 dB with LTC, 4.01 exactly on the 0.001 grid. Zeros may come back as
    a residue near 1e-16 of the column's mean: the grid point of data 0 decodes as
    ``z * std + mean`` in float64, which no z makes exactly 0 for about 1 in 11 (mean, std)."""
    values = np.where(keep, x, 0.0).astype(np.float64)  # float32 overflowed dividing values near its limit
    size = np.abs(values).max(axis=0) if len(values) else np.zeros(x.shape[1])
    tolerance = size * 2.0**-23  # float32 rounding of the largest value
    quanta = np.zeros(x.shape[1])
    open_ = keep.any(axis=0)
    for quantum in QUANTA:
        columns = np.flatnonzero(open_ & (size < quantum * 2**24) & (quantum > 16 * tolerance))
        for rows in (slice(0, GRID_PROBE_ROWS), slice(None)):  # the first rows rule out most columns cheaply
            part = values[rows, columns]
            columns = columns[(np.abs(part - np.round(part / quantum) * quantum) <= tolerance[columns]).all(axis=0)]
        quanta[columns] = quantum
        open_[columns] = False
    return quanta


def hopeless(z: np.ndarray, keep: np.ndarray, target: np.ndarray, budget: int, floor: np.ndarray | None = None) -> bool:
    """Whether sample coding has no chance against a ``budget``-byte LTC payload: the
    differences quantised with the rule's steps (``sqrt(12 * target)``, widened by
    ``1 / sqrt(share of values off the grid's 0)``, at least ``floor``) take over
    ``PROBE_MARGIN`` x ``budget`` bytes at zstd level 1 and ``ENTROPY_MARGIN`` x ``budget``
    in their columns' order-0 entropy, each column's first or second differences whichever
    is less (what :data:`TABLED` payloads come near), and the integers themselves take over
    ``ORDERLESS_PROBE_MARGIN`` x ``budget`` at level 1, with the rule's steps and at one error
    for every column relative to its variance in the stream. Cheap, and
    it spares the step search and the real trial on the data LTC codes well."""
    if not np.isfinite(target).all():
        return True  # an unbounded error budget leaves no finite step to store
    values, held, start = _rule(z, keep, target)
    if floor is not None:
        start = np.maximum(start, floor)
    if (~held & (start == 0)).any():
        return True
    # values exactly on the grid's 0 cost no error: the rest may take a coarser step
    off_grid = np.maximum((values != 0).sum(axis=0), 1) / np.maximum(keep.sum(axis=0), 1)
    widen = 1.0 / np.sqrt(np.minimum(off_grid, 1.0))
    q = _probe_integers(z, held, start * widen)
    differences = np.diff(q, axis=0)
    if _level_one_bytes(differences) <= PROBE_MARGIN * budget:
        return False
    # the integers themselves too (records in no order, such as feature vectors, whose
    # differences down the records vary more than the values), also at one error for every
    # column relative to its variance, the trial that codes such records shortest (40 LFW
    # faces: 0.77x the lattice payload, 1.18x at the lattice's own column errors)
    def equal(part: slice) -> np.ndarray:
        spread = column_variances(z[part], keep[part])
        steps = np.sqrt(12 * (target / spread)[~held].mean() * spread)
        return np.maximum(steps, 0.0 if floor is None else floor) * widen

    tries = [lambda part: start * widen] + ([equal] if (~held).any() else [])
    if any(_orderless_near(z, held, steps, budget) for steps in tries):
        return False
    bits = np.minimum(column_entropies(differences), column_entropies(np.diff(differences, axis=0)))
    return float(bits.sum()) / 8 > ENTROPY_MARGIN * budget


def _probe_integers(z: np.ndarray, held: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """All of ``z`` (positions outside keep hold their neighbours' values, as the payload codes
    them) quantised with ``steps``, the columns of one value to 0."""
    return np.round(np.where(held, 0.0, z) / np.where(held, 1.0, steps)).astype(np.int64)


def _orderless_near(z: np.ndarray, held: np.ndarray, steps: Callable[[slice], np.ndarray], budget: int) -> bool:
    """Whether ``z`` quantised with ``steps(records)`` takes at most ``ORDERLESS_PROBE_MARGIN``
    x ``budget`` bytes at zstd level 1, judged first on a prefix (the whole array at level 1
    took 10-20 % of a stream's encode time)."""
    rows = max(1, ORDERLESS_PROBE_VALUES // max(z.shape[1], 1))
    if rows < len(z):
        prefix = slice(0, rows)
        if _level_one_bytes(_probe_integers(z[prefix], held, steps(prefix))) > PREFIX_SLACK * ORDERLESS_PROBE_MARGIN * budget * rows / len(z):
            return False
    whole = slice(None)
    return _level_one_bytes(_probe_integers(z, held, steps(whole))) <= ORDERLESS_PROBE_MARGIN * budget


def _level_one_bytes(ints: np.ndarray) -> int:
    """Bytes of ``ints`` packed (:func:`packed_ints`) and compressed at zstd level 1."""
    return len(zstandard.ZstdCompressor(level=1).compress(packed_ints(ints)[1]))


def _rule(z: np.ndarray, keep: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values to quantise (positions left out: 0, quantised exactly), the columns that
    hold one value throughout, and each column's step: for those, that value's size (a step
    that codes them exactly, at no cost: a unit column of 1.0s, which LTC decodes exactly,
    asked for a step of 0 and kept every stream from sample coding), else by the
    fine-quantisation rule (error = step^2 / 12)."""
    values = np.where(keep, z, 0.0)
    held, low = held_columns(z, keep)
    size = np.where(np.isfinite(low) & (low != 0), np.abs(low), 1.0)
    return values, held, np.where(held, size, np.sqrt(12 * np.maximum(target, 0.0)))


def column_variances(z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each column's variance over ``keep`` (1.0 where it has none: constant or empty)."""
    count = np.maximum(keep.sum(axis=0), 1)
    mean = np.where(keep, z, 0.0).sum(axis=0) / count
    variance = np.where(keep, (z - mean) ** 2, 0.0).sum(axis=0) / count
    return np.where(variance > 0, variance, 1.0)


def held_columns(z: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which columns hold one value over ``keep`` (or none), and each column's least value there."""
    low = np.where(keep, z, np.inf).min(axis=0, initial=np.inf)
    return ~(low < np.where(keep, z, -np.inf).max(axis=0, initial=-np.inf)), low


def encode_samples(z: np.ndarray, steps: np.ndarray, offsets: np.ndarray) -> tuple["SampleCandidate", np.ndarray]:
    """z-scores ``[N, d]`` quantised with ``steps`` on the grid through ``offsets`` (per
    column; the codec's z-score of the value 0, so that exact zeros of sparse telemetry cost
    no error; not stored) → (its payloads sized up cheaply, the z-scores
    :func:`decode_samples` gives back from them)."""
    q = np.round((z - offsets) / steps).astype(np.int64)
    return SampleCandidate(q, steps), q * steps + offsets


#: zstd level at which the orders are ranked before the chosen one is compressed at
#: ``ZSTD_LEVEL`` (all four at level 15 made sample coding 1.4-3x slower to encode).
RANKING_LEVEL = 3
#: Integers (all columns) up to which a candidate's zstd payload is compressed at
#: ``ZSTD_LEVEL`` when it is sized up (a few ms); beyond, candidates are ranked by their
#: size at ``RANKING_LEVEL`` and compressed at ``ZSTD_LEVEL`` in that order only until one
#: beats the lattice stream (one such compression of 2**21 values takes a second; estimates
#: of it from the first records were 3-10 % off).
EXACT_VALUES = 1 << 16


class SampleCandidate:
    """One quantisation's payloads: the :data:`TABLED` ones that may be shorter, and the zstd order ranked at
    ``RANKING_LEVEL``, compressed at ``ZSTD_LEVEL`` up front where small. ``size`` ranks
    candidates; :meth:`payload` is the shortest."""

    def __init__(self, q: np.ndarray, steps: np.ndarray):
        self.q, self.steps = q, steps
        narrow = bool((steps.astype(np.float32).astype(np.float64) == steps).all())
        base = IMPLIED + (FLOAT32_STEPS if narrow else 0)
        ranked = {base + k: len(payload_of(q, steps, base + k, RANKING_LEVEL)) for k in range(4)}
        self.order = min(ranked, key=ranked.get)
        # tables only where they may be shorter (16 records of 1,000 columns: 0.3 s to lose)
        head = _HEADER.size + len(step_block(steps, base)[1])
        predictors = predictor_orders(q)
        tries = [(0, q, head), (DIFFERENCES, np.diff(q, axis=0), head)]
        if predictors.max(initial=0) > 1 or np.unique(predictors).size > 1:  # not one of the two above
            tries.append((PREDICTED, residuals(q, predictors)[1], head + q.shape[1]))
        hopeful = [k for k, ints, size in tries if size + least_bytes(ints) < ranked[self.order]]
        if q.size <= CONTEXT_VALUES:  # (may come below the order-0 entropy)
            hopeful.append(PREDICTED + CONTEXTS + RECENT)
        tabled = [payload for k in hopeful if (payload := payload_of(q, steps, base + TABLED + k, predictors=predictors)) is not None]
        self.tabled = min(tabled, key=len, default=None)
        self.zstd = payload_of(q, steps, self.order) if q.size <= EXACT_VALUES else None
        zstd_size = ranked[self.order] if self.zstd is None else len(self.zstd)
        self.size = zstd_size if self.tabled is None else min(zstd_size, len(self.tabled))

    def payload(self) -> bytes:
        zstd = self.zstd if self.zstd is not None else payload_of(self.q, self.steps, self.order)
        return zstd if self.tabled is None or len(zstd) < len(self.tabled) else self.tabled


def payload_of(q: np.ndarray, steps: np.ndarray, order: int, level: int = ZSTD_LEVEL, predictors: np.ndarray | None = None) -> bytes | None:
    """The payload of grid integers ``q`` ``[N, d]`` in one of the ``IMPLIED_ORDERS`` (None for a
    :data:`TABLED` order whose tables cannot hold them); a :data:`PREDICTED` one with the
    columns' ``predictors`` (by default :func:`predictor_orders`)."""
    ints, first = q, b""
    if order & DIFFERENCES:
        width, row = packed_ints(q[:1])
        ints, first = np.diff(q, axis=0), bytes([width]) + row
    elif order & PREDICTED:
        predictors = predictor_orders(q) if predictors is None else predictors
        rows, ints = residuals(q, predictors)
        width, packed = packed_ints(rows)
        first = predictors.astype(np.uint8).tobytes() + (bytes([width]) + packed if len(rows) else b"")
    packed, head = step_block(steps, order)
    if order & TABLED:
        if not order & CONTEXTS:
            data = encode_tabled(ints)
        elif (coded := encode_contexted(ints, bool(order & RECENT))) is not None:
            data, recent = coded
            order = order | RECENT if recent else order & ~RECENT  # (readers before it read this one)
        else:
            data = None
        return None if data is None else _HEADER.pack(order, 1 | packed) + head + first + data
    width, raw = packed_ints(ints.T if order & BY_COLUMN else ints)
    return _HEADER.pack(order, width | packed) + head + first + zstandard.ZstdCompressor(level=level).compress(raw)


def step_block(steps: np.ndarray, order: int) -> tuple[int, bytes]:
    """The steps as a payload stores them: ``(PACKED_STEPS, packed bytes)`` where packing is
    shorter, else ``(0, their float32 or float64 bytes)`` (:data:`FLOAT32_STEPS` in ``order``)."""
    return _stored_steps(steps.astype("<f4" if order & FLOAT32_STEPS else "<f8").tobytes(), steps.size)


@functools.lru_cache(maxsize=16)
def _stored_steps(raw: bytes, d: int) -> tuple[int, bytes]:
    """:func:`step_block` of the steps' bytes ``raw`` (``d`` of them), once per candidate: each
    of its payload orders stores the same steps."""
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(np.frombuffer(raw, np.uint8).reshape(d, -1).T.tobytes())
    if _STEP_BYTES.size + len(packed) < len(raw):
        return PACKED_STEPS, _STEP_BYTES.pack(len(packed)) + packed
    return 0, raw


def packed_ints(ints: np.ndarray, widths: tuple[int, ...] = WIDTHS) -> tuple[int, bytes]:
    """Integers → (bytes per integer, little-endian bytes, C order) in the narrowest of
    ``widths`` that holds them."""
    peak = int(np.abs(ints).max()) if ints.size else 0
    width = next(w for w in widths if peak < 2 ** (8 * w - 1))
    return width, ints.astype(f"<i{width}").tobytes()


def payload_steps(payload: bytes, d: int) -> tuple[int, int, np.ndarray, int]:
    """A payload's ``(order, width, steps, header bytes read)``; FormatError when they do not parse."""
    if len(payload) < _HEADER.size:
        raise FormatError(f"sample-coded payload of {len(payload)} bytes is shorter than its header")
    order, width = _HEADER.unpack_from(payload, 0)
    packed = order in IMPLIED_ORDERS and bool(width & PACKED_STEPS)
    if packed:
        width &= ~PACKED_STEPS
    if order not in ORDERS + OFFSET_ORDERS + IMPLIED_ORDERS or width not in WIDTHS or (order & TABLED and width != 1):
        raise FormatError(f"sample-coded payload: unknown integer order {order} or width {width}")
    step_bytes = 4 if order in IMPLIED_ORDERS and order & FLOAT32_STEPS else 8
    if packed:
        steps, head = _packed_steps(payload, d, step_bytes)
    else:
        head = _header_ends(payload, _HEADER.size + step_bytes * d)
        steps = np.frombuffer(payload, f"<f{step_bytes}", count=d, offset=_HEADER.size).astype(np.float64)
    if not (np.isfinite(steps).all() and (steps > 0).all()):
        raise FormatError("sample-coded payload: quantisation steps must be finite and positive")
    return order, width, steps, head


def _packed_steps(payload: bytes, d: int, step_bytes: int) -> tuple[np.ndarray, int]:
    """The ``d`` steps of a :data:`PACKED_STEPS` block after the header, and the offset after it."""
    start = _header_ends(payload, _HEADER.size + _STEP_BYTES.size)
    end = _header_ends(payload, start + _STEP_BYTES.unpack_from(payload, _HEADER.size)[0])
    frame, size, where = bytes(payload[start:end]), step_bytes * d, "sample-coded payload's packed steps"
    if stated_size(frame, where) != size:
        raise FormatError(f"{where} state {stated_size(frame, where)} bytes, {size} expected")
    planes = np.frombuffer(decompress_exactly(frame, size, where), np.uint8).reshape(step_bytes, d)
    return np.ascontiguousarray(planes.T).view(f"<f{step_bytes}").reshape(d).astype(np.float64), end


def decode_samples(payload: bytes, shape: tuple[int, int], offsets: np.ndarray) -> np.ndarray:
    """Payload → z-scores ``[N, d]`` (float64), ``offsets`` the codec's grid offsets (those of
    the ``IMPLIED_ORDERS``); FormatError when it does not parse."""
    records, d = shape
    order, width, steps, head = payload_steps(payload, d)
    if order in OFFSET_ORDERS:
        start, head = head, _header_ends(payload, head + 8 * d)
        offsets = np.frombuffer(payload, "<f8", count=d, offset=start)
        if not np.isfinite(offsets).all():
            raise FormatError("sample-coded payload: grid offsets must be finite")
    elif order in ORDERS:
        offsets = np.zeros(d)
    first = predictors = None
    if order in IMPLIED_ORDERS and order & PREDICTED:
        head = _header_ends(payload, head + d)
        predictors = np.frombuffer(payload, np.uint8, count=d, offset=head - d).astype(np.int64)
        if (predictors > MAX_ORDER).any():
            raise FormatError(f"sample-coded payload: a column's order is above {MAX_ORDER}")
    if order in IMPLIED_ORDERS and order & (DIFFERENCES | PREDICTED):
        rows = 1 if order & DIFFERENCES else int(predictors.max(initial=0))
        if records < rows:
            raise FormatError(f"sample-coded payload: {rows} first records apart in a stream of {records}")
        first, head = _first_records(payload, head, rows, d)
        records -= rows
    if order & CONTEXTS:
        ints = decode_contexted(payload[head:], records, d, bool(order & RECENT))
    elif order & TABLED:
        ints = decode_tabled(payload[head:], records, d)
    else:
        ints = _integers(payload[head:], records * d, width)
    if order in IMPLIED_ORDERS:
        ints = ints.reshape(d, records).T if order & BY_COLUMN else ints.reshape(records, d)
        if predictors is not None:
            ints = restored(first, ints, predictors)
        elif first is not None:
            ints = np.cumsum(np.concatenate([first, ints]), axis=0)
    else:
        ints = ints.reshape(records, d)
        if order % 2:
            ints = np.cumsum(ints, axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        z = ints * steps + offsets
    if not np.isfinite(z).all():  # an encoder's integers times its steps stay finite
        raise FormatError("sample-coded payload: integers times steps pass float64's range: it is damaged")
    return z


def _first_records(payload: bytes, head: int, rows: int, d: int) -> tuple[np.ndarray, int]:
    """The ``rows`` first records' integers ``[rows, d]`` at ``head`` (a width byte, then
    them; nothing for 0 rows) and the offset after them; FormatError when they are missing
    or of an unknown width."""
    if not rows:
        return np.zeros((0, d), np.int64), head
    if len(payload) < head + 1 or payload[head] not in WIDTHS:
        raise FormatError("sample-coded payload: its first records are missing or of an unknown width")
    end = _header_ends(payload, head + 1 + rows * d * payload[head])
    return np.frombuffer(payload, f"<i{payload[head]}", count=rows * d, offset=head + 1).astype(np.int64).reshape(rows, d), end


def _header_ends(payload: bytes, end: int) -> int:
    """``end``, where the payload holds a header that long; else FormatError."""
    if len(payload) < end:
        raise FormatError(f"sample-coded payload of {len(payload)} bytes is shorter than its {end}-byte header")
    return end


def _integers(frame: bytes, count: int, width: int) -> np.ndarray:
    """One zstandard frame → ``count`` little-endian integers of ``width`` bytes (int64)."""
    size = count * width
    try:  # the frame states its size: check it before anything is allocated
        stated = zstandard.get_frame_parameters(frame).content_size
        if stated != size:
            raise FormatError(f"sample-coded payload states {stated} bytes of integers, {size} expected")
        raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(size, 1))
    except zstandard.ZstdError as exc:
        raise FormatError(f"sample-coded payload: {exc}") from None
    if len(raw) != size:
        raise FormatError(f"sample-coded payload holds {len(raw)} bytes of integers, {size} expected")
    return np.frombuffer(raw, f"<i{width}").astype(np.int64)
