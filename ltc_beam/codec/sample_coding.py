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
or as differences down the records, whichever is shorter) as one zstandard frame, and
keeps that payload only if the whole stream gets shorter and no column's decoded error
grows. The decoder reads which one it got from the bitstream's flags
(``schemas/BITSTREAM.md``).
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from ltc_beam.errors import FormatError

MIN_RECORDS = 64
#: Measured on a smooth membrane-potential recording (12,000 values, int8 differences):
#: 2.04 bits/value at level 6, 1.88 at 15 (2.4 ms), 1.87 at 19 (4.6 ms); ACSF1: 19 is 3 %
#: shorter than 6.
ZSTD_LEVEL = 15
#: Step search: ``sqrt(12 * target) * GRID ** k`` for k from ``-GRID_BELOW`` to ``GRID_ABOVE`` (x 63).
GRID, GRID_ABOVE, GRID_BELOW = 1.03, 140, 80
PROBE_MARGIN = 1.35
ORDERS = (0, 1)  # 0: the integers as they are; 1: differences down the records
#: Order codes of payloads whose grid is shifted by stored per-column offsets (order = code - 2).
OFFSET_ORDERS = (2, 3)
#: Bytes per integer; 1 from session 13 (readers before it refuse such payloads): int16
#: for differences that fit int8 cost that membrane recording 2.74 bits/value, int8 2.04.
WIDTHS = (1, 2, 4, 8)
_HEADER = struct.Struct("<BB")


def column_steps(z: np.ndarray, keep: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Per column, about the largest step (to within ``GRID``) whose rounding error (mean
    square over ``keep``) is at most ``target``: a bisection over ``sqrt(12 * target) *
    GRID ** k``, k from ``-GRID_BELOW`` to ``GRID_ABOVE`` (a column of mostly exact zeros
    meets its target at steps far above the rule's: Covid3Month, 82 % zeros, 3.4x). None
    when some column cannot meet its target even at the smallest step (a target of 0 on
    varying values, or data far coarser than the rule expects)."""
    values, zero, start = _rule(z, keep, target)
    if (~zero & (start == 0)).any():
        return None
    count = np.maximum(keep.sum(axis=0), 1)

    def meets(columns: np.ndarray, k: np.ndarray) -> np.ndarray:
        trial = start[columns] * GRID ** k.astype(np.float64)
        v = values[:, columns]
        return ((np.round(v / trial) * trial - v) ** 2).sum(axis=0) / count[columns] <= target[columns]

    varying = np.flatnonzero(~zero)
    good = np.full(varying.size, -GRID_BELOW)
    if not meets(varying, good).all():
        return None
    bad = np.full(varying.size, GRID_ABOVE + 1)
    while (open_ := np.flatnonzero(bad - good > 1)).size:
        mid = (good[open_] + bad[open_]) // 2
        ok = meets(varying[open_], mid)
        good[open_[ok]], bad[open_[~ok]] = mid[ok], mid[~ok]
    steps = np.ones(z.shape[1])
    steps[varying] = start[varying] * GRID ** good.astype(np.float64)
    return steps


def integer_columns(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """1.0 for each column of ``x`` (data units) whose values in ``keep`` are all integers
    (below 2**24 in size, where float32 holds every integer), else 0.0: a step of 1 codes such
    a column exactly, but for its zeros under some codecs: the grid point of data 0 decodes
    as ``z * std + mean`` in float64, which for about 1 in 11 (mean, std) pairs no z makes
    exactly 0 (a residue near 1e-16 of the mean's size)."""
    values = np.where(keep, x, 0.0)
    integral = (values == np.round(values)).all(axis=0) & (np.abs(values) < 2**24).all(axis=0) & keep.any(axis=0)
    return integral.astype(np.float64)


def hopeless(z: np.ndarray, keep: np.ndarray, target: np.ndarray, budget: int, floor: np.ndarray | None = None) -> bool:
    """Whether sample coding has no chance against a ``budget``-byte LTC payload: the
    differences quantised with the rule's steps (``sqrt(12 * target)``, widened by
    ``1 / sqrt(share of values off the grid's 0)``, at least ``floor``) take over
    ``PROBE_MARGIN`` x ``budget`` bytes at zstd level 1. Cheap, and it spares the step
    search and the real trial on the data LTC codes well."""
    if not np.isfinite(target).all():
        return True  # an unbounded error budget leaves no finite step to store
    values, zero, start = _rule(z, keep, target)
    if floor is not None:
        start = np.maximum(start, floor)
    if (~zero & (start == 0)).any():
        return True
    # values exactly on the grid's 0 cost no error: the rest may take a coarser step
    off_grid = np.maximum((values != 0).sum(axis=0), 1) / np.maximum(keep.sum(axis=0), 1)
    # all of z, as the payload codes it (positions outside keep hold their neighbours' values)
    q = np.round(np.where(zero, 0.0, z) / np.where(zero, 1.0, start / np.sqrt(np.minimum(off_grid, 1.0)))).astype(np.int64)
    _, raw = packed_ints(_differences(q))
    return len(zstandard.ZstdCompressor(level=1).compress(raw)) > PROBE_MARGIN * budget


def _rule(z: np.ndarray, keep: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values to quantise (positions left out: 0, quantised exactly), the columns that
    are all 0, and each column's step by the fine-quantisation rule (error = step^2 / 12)."""
    values = np.where(keep, z, 0.0)
    return values, (values == 0).all(axis=0), np.sqrt(12 * np.maximum(target, 0.0))


def encode_samples(z: np.ndarray, steps: np.ndarray, offsets: np.ndarray) -> tuple[bytes, np.ndarray]:
    """z-scores ``[N, d]`` quantised with ``steps`` on the grid through ``offsets`` (per
    column; the z-score of the value 0, so that exact zeros of sparse telemetry cost no
    error) → (payload in the shorter integer order, the z-scores :func:`decode_samples`
    gives back from it)."""
    q = np.round((z - offsets) / steps).astype(np.int64)
    data = {OFFSET_ORDERS[0]: packed_ints(q), OFFSET_ORDERS[1]: packed_ints(_differences(q))}
    head = steps.astype("<f8").tobytes() + offsets.astype("<f8").tobytes()
    best = None
    for order, (width, raw) in sorted(data.items()):
        frame = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
        payload = _HEADER.pack(order, width) + head + frame
        if best is None or len(payload) < len(best):
            best = payload
    return best, q * steps + offsets


def _differences(q: np.ndarray) -> np.ndarray:
    return np.diff(q, axis=0, prepend=np.zeros((1, q.shape[1]), np.int64))


def packed_ints(ints: np.ndarray, widths: tuple[int, ...] = WIDTHS) -> tuple[int, bytes]:
    """Integers → (bytes per integer, little-endian bytes, C order) in the narrowest of
    ``widths`` that holds them."""
    peak = int(np.abs(ints).max()) if ints.size else 0
    width = next(w for w in widths if peak < 2 ** (8 * w - 1))
    return width, ints.astype(f"<i{width}").tobytes()


def decode_samples(payload: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Payload → z-scores ``[N, d]`` (float64); FormatError when it does not parse."""
    records, d = shape
    if len(payload) < _HEADER.size:
        raise FormatError(f"sample-coded payload of {len(payload)} bytes is shorter than its header")
    order, width = _HEADER.unpack_from(payload, 0)
    if order not in ORDERS + OFFSET_ORDERS or width not in WIDTHS:
        raise FormatError(f"sample-coded payload: unknown integer order {order} or width {width}")
    head = _HEADER.size + (16 if order in OFFSET_ORDERS else 8) * d
    if len(payload) < head:
        raise FormatError(f"sample-coded payload of {len(payload)} bytes is shorter than its {head}-byte header")
    steps = np.frombuffer(payload, "<f8", count=d, offset=_HEADER.size)
    if not (np.isfinite(steps).all() and (steps > 0).all()):
        raise FormatError("sample-coded payload: quantisation steps must be finite and positive")
    offsets = np.zeros(d)
    if order in OFFSET_ORDERS:
        offsets = np.frombuffer(payload, "<f8", count=d, offset=_HEADER.size + 8 * d)
        if not np.isfinite(offsets).all():
            raise FormatError("sample-coded payload: grid offsets must be finite")
    size = records * d * width
    frame = payload[head:]
    try:  # the frame states its size: check it before anything is allocated
        stated = zstandard.get_frame_parameters(frame).content_size
        if stated != size:
            raise FormatError(f"sample-coded payload states {stated} bytes of integers, {size} expected")
        raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(size, 1))
    except zstandard.ZstdError as exc:
        raise FormatError(f"sample-coded payload: {exc}") from None
    if len(raw) != size:
        raise FormatError(f"sample-coded payload holds {len(raw)} bytes of integers, {size} expected")
    ints = np.frombuffer(raw, f"<i{width}").astype(np.int64).reshape(records, d)
    if order % 2:
        ints = np.cumsum(ints, axis=0)
    return ints * steps + offsets
