"""ANS coding of sample-coding integers with one frequency table per column, stored in the payload.

Where the quantised samples (or their differences) are noise-like rather than runs, zstd's
literal coding is far from their entropy: on an AR(1) telemetry signal at 20 dB, differences
that hold 1.84 bits/value of order-0 entropy took 2.14 bits/value at zstd level 15 (and a
second of encoding per 2**21 values), and 1.85 with these tables. Sample coding keeps
whichever of this and zstd is shorter (:mod:`ltc_beam.codec.sample_coding`).

Layout (``schemas/BITSTREAM.md``, "Sample-coded payload"): the tables, for each column the
zigzag LEB128 varint of its table's lowest integer, the varint of its width (in-range
integers) minus one, and one :func:`~ltc_beam.entropy.log_codes` byte per in-range integer
and one for the escape, either as they are (first byte ``PLAIN``) or as one zstandard
frame (``PACKED``, then the varint of the frame's length), whichever is shorter; then the ANS words of :class:`~ltc_beam.entropy.SymbolEncoder`, one step per
column (all its integers in record order). The weights the bytes stand for are scaled to
frequencies summing to ``2**PRECISION`` with integer arithmetic alone (:func:`frequencies`), so encoder and
decoder build the same tables on every machine.
"""

from __future__ import annotations

import numpy as np
import zstandard

from ltc_beam.bitstream import read_varint, unzigzag, varint, zigzag
from ltc_beam.entropy import SymbolDecoder, SymbolEncoder, SymbolTables, from_log_codes, log_codes
from ltc_beam.errors import FormatError
from ltc_beam.zstd_frames import decompress_exactly, stated_size

#: Scale of the stored weights (a column's counts over 2**16, one byte each)...
WEIGHT_BITS = 16
#: ... and precision of the tables they make (frequencies summing to 2**24): the entries a
#: narrow column is padded with to the widest cost it next to nothing (at 2**16, one column
#: of 4,000 integers beside eight of 5 cost those 3.9 % more).
PRECISION = 24
#: Widest table; integers beyond it are escapes (a byte per in-range integer is stored).
MAX_WIDTH = 4096
#: Shares of a column's integers left to the escape at either end when that is cheaper.
TRIMS = (0.0, 1e-4, 1e-3, 1e-2)
#: Rough bits per escape beyond its table's escape symbol (head and mantissa: distances of tens).
ESCAPE_BITS = 12
#: Rough bits per table entry once the tables are packed (Daphnet at 37.6 dB: 1,226 bytes in
#: 848 at zstd level 19).
ENTRY_BITS = 6
#: First byte of the tables: as they are, or one zstandard frame (a varint of its length first).
PLAIN, PACKED = 0, 1
TABLES_ZSTD_LEVEL = 19
#: Largest byte a weight of at most 2**WEIGHT_BITS takes.
MAX_CODE = int(log_codes(np.array([1 << WEIGHT_BITS]))[0])
_VALUES = from_log_codes(np.arange(MAX_CODE + 1))


def encode_tabled(ints: np.ndarray) -> bytes | None:
    """Integers ``[M, d]`` → tables and ANS words; None where a table's range cannot be
    stored (integers beyond ±2**62)."""
    if ints.size and not -(1 << 62) < int(ints.min()) <= int(ints.max()) < 1 << 62:  # (abs wraps at int64's least)
        return None
    distinct = [np.unique(column, return_counts=True) for column in ints.T]
    lows, codes = [], []
    for values, counts in distinct:
        low, code = column_table(values, counts)
        lows.append(low)
        codes.append(code)
    width = max((code.size - 1 for code in codes), default=1)
    codes = [widened(values, counts, low, code, width) for (values, counts), low, code in zip(distinct, lows, codes)]
    encoder = SymbolEncoder(stored_tables(lows, codes))
    for j, column in enumerate(ints.T):
        encoder.encode(column, np.full(column.size, j))
    return tables_block(lows, codes) + encoder.finish()


def decode_tabled(data: bytes, records: int, d: int) -> np.ndarray:
    """Inverse of :func:`encode_tabled` for ``records`` x ``d`` integers; FormatError when it does not parse."""
    buf = memoryview(data)
    lows, codes, offset = read_tables_block(buf, 0, d)
    decoder = SymbolDecoder(buf[offset:], stored_tables(lows, codes))
    ints = np.stack([decoder.decode(np.full(records, j)) for j in range(d)], axis=1) if d else np.zeros((records, 0), np.int64)
    decoder.finish()
    return ints


def tables_block(lows: list[int], codes: list[np.ndarray]) -> bytes:
    """Tables as stored: ``PLAIN`` and their :func:`table_bytes`, or ``PACKED``, the varint
    of a zstandard frame's length and that frame of them, whichever is shorter."""
    head = b"".join(table_bytes(low, code) for low, code in zip(lows, codes))
    packed = zstandard.ZstdCompressor(level=TABLES_ZSTD_LEVEL).compress(head)
    if len(packed) + len(varint(len(packed))) < len(head):
        return bytes([PACKED]) + varint(len(packed)) + packed
    return bytes([PLAIN]) + head


def read_tables_block(buf: memoryview, offset: int, d: int, widest: int = MAX_WIDTH) -> tuple[list[int], list[np.ndarray], int]:
    """Inverse of :func:`tables_block` for ``d`` tables at ``offset``, none of over
    ``widest`` integers: (lows, codes, the offset after them); FormatError when they do not
    parse (or a packed frame states more bytes than such tables take)."""
    if offset >= len(buf) or buf[offset] not in (PLAIN, PACKED):
        raise FormatError("sample-coded payload: its tables are neither plain nor packed")
    if buf[offset] == PLAIN:
        return _read_tables(buf, offset + 1, d, widest)
    size, start = _read_varint(buf, offset + 1, "tables' frame length")
    end = start + size
    if end > len(buf):
        raise FormatError(f"sample-coded payload: a tables' frame of {size} bytes does not fit")
    frame = bytes(buf[start:end])
    stated = stated_size(frame, "sample-coded payload's tables")
    if stated > d * (widest + 21):
        raise FormatError(f"sample-coded payload: tables of {stated} bytes for {d} columns")
    tables = memoryview(decompress_exactly(frame, stated, "sample-coded payload's tables"))
    lows, codes, used = _read_tables(tables, 0, d, widest)
    if used != len(tables):
        raise FormatError("sample-coded payload: bytes left after its tables")
    return lows, codes, end


def _read_tables(buf: memoryview, offset: int, d: int, widest: int) -> tuple[list[int], list[np.ndarray], int]:
    """``d`` columns' tables from ``offset``: (lows, codes, the offset after them)."""
    lows, codes = [], []
    for _ in range(d):
        low, code, offset = _read_table(buf, offset, widest)
        lows.append(low)
        codes.append(code)
    return lows, codes, offset


def table_bytes(low: int, code: np.ndarray) -> bytes:
    """One column's stored table: the zigzag varint of ``low``, the varint of its width minus
    one, and its bytes (in-range integers, then the escape)."""
    return varint(zigzag(low)) + varint(code.size - 2) + code.astype(np.uint8).tobytes()


def _read_table(buf: memoryview, offset: int, widest: int) -> tuple[int, np.ndarray, int]:
    """Inverse of :func:`table_bytes` at ``offset``: (low, bytes, the offset after it);
    FormatError when it does not fit, is wider than ``widest`` or holds a byte above ``MAX_CODE``."""
    low, offset = _read_varint(buf, offset, "table low")
    width, offset = _read_varint(buf, offset, "table width")
    width += 1
    if width > widest or offset + width + 1 > len(buf):
        raise FormatError(f"sample-coded payload: a table of {width} integers does not fit (at most {widest})")
    code = np.frombuffer(buf, np.uint8, count=width + 1, offset=offset).astype(np.int64)
    if int(code.max()) > MAX_CODE:
        raise FormatError(f"sample-coded payload: table byte {int(code.max())} above {MAX_CODE}")
    return unzigzag(low), code, offset + width + 1


def entropy_bytes(ints: np.ndarray) -> float:
    """The order-0 entropy of each column of integers ``[M, d]``, summed, in bytes (tables not counted)."""
    return float(column_entropies(ints).sum()) / 8


def column_entropies(ints: np.ndarray) -> np.ndarray:
    """The order-0 entropy of each column of integers ``[M, d]``, in bits (``d`` floats)."""
    d = ints.shape[1]
    if not ints.size:
        return np.zeros(d)
    low = ints.min(axis=0)
    span = max(int(high) - int(least) for high, least in zip(ints.max(axis=0), low)) + 1  # (int64 would wrap)
    if span * d <= 4 * ints.size:  # all columns' counts in one pass
        counts = np.bincount(((ints - low) + span * np.arange(d)).ravel(), minlength=span * d)
        columns = np.repeat(np.arange(d), span)
    else:  # column by column (np.unique of (column, value) pairs took 10x as long)
        counts = [np.unique(column, return_counts=True)[1] for column in ints.T]
        columns = np.repeat(np.arange(d), [c.size for c in counts])
        counts = np.concatenate(counts)
    seen = counts > 0
    bits = counts[seen] * np.log2(counts[seen] / ints.shape[0])
    return -np.bincount(columns[seen], weights=bits, minlength=d)


def least_bytes(ints: np.ndarray) -> float:
    """About the least :func:`encode_tabled` can take: the columns' order-0 entropy and four
    bytes of table per column (packed tables of many alike columns can take less). Cheap:
    many columns of few records need not be coded to lose."""
    return entropy_bytes(ints) + 4 * ints.shape[1]


def column_table(values: np.ndarray, counts: np.ndarray) -> tuple[int, np.ndarray]:
    """A column's table, from its distinct ``values`` and their ``counts``: its lowest integer
    and the bytes of its in-range weights and escape, the range chosen among ``TRIMS`` by
    estimated bits (table bytes, coded integers, escapes)."""
    if not values.size:
        return 0, np.zeros(2, np.int64)
    total = int(counts.sum())
    cumulative = np.cumsum(counts)
    middle = int(values[np.searchsorted(cumulative, total / 2)])  # the median
    best = None
    for trim in TRIMS:
        first = int(np.searchsorted(cumulative, trim * total, side="right"))
        last = int(np.searchsorted(cumulative, (1 - trim) * total, side="left"))
        last = min(max(last, first), values.size - 1)
        low = max(int(values[first]), middle - MAX_WIDTH // 2)
        high = min(int(values[last]), low + MAX_WIDTH - 1)
        inside = (values >= low) & (values <= high)
        escapes = total - int(counts[inside].sum())
        p = counts[inside] / total
        bits = ENTRY_BITS * (high - low + 2) - float((counts[inside] * np.log2(p)).sum())
        if escapes:
            bits += escapes * (ESCAPE_BITS - np.log2(escapes / total))
        if best is None or bits < best[0]:
            best = bits, low, high
    return best[1], _codes(values, counts, best[1], best[2])


def _codes(values: np.ndarray, counts: np.ndarray, low: int, high: int) -> np.ndarray:
    """The bytes of the weights of the integers ``low`` … ``high`` and of the escape (the rest),
    from a column's distinct ``values`` and their ``counts``."""
    inside = (values >= low) & (values <= high)
    weights = np.zeros(high - low + 2, np.int64)
    weights[values[inside] - low] = counts[inside]
    weights[-1] = counts.sum() - counts[inside].sum()
    return _nearest_codes(weights * (1 << WEIGHT_BITS) // max(int(counts.sum()), 1) + (weights > 0))


def widened(values: np.ndarray, counts: np.ndarray, low: int, code: np.ndarray, width: int) -> np.ndarray:
    """A column's table bytes widened to its largest integer below ``low + width`` (the
    widest column's width): every table is padded to that width, and an integer there would
    be coded in range at a frequency of 1 (24 bits), not as an escape."""
    below = values[values < low + width]
    if not below.size or int(below[-1]) < low + code.size - 1:
        return code
    return _codes(values, counts, low, int(below[-1]))


def _nearest_codes(weights: np.ndarray) -> np.ndarray:
    """Each weight's nearest (by ratio) of the :func:`~ltc_beam.entropy.log_codes` values; 0 stays 0."""
    above = np.minimum(np.searchsorted(_VALUES, weights), MAX_CODE)
    below = np.maximum(above - 1, 0)
    closer_below = weights * weights < _VALUES[below] * _VALUES[above]  # geometric midpoint
    return np.where(weights == 0, 0, np.where(closer_below & (below > 0), below, above))


def stored_tables(lows: list[int], codes: list[np.ndarray]) -> SymbolTables:
    """SymbolTables of every column's weights, padded (weight 0) to the widest; FormatError on bad bounds."""
    width = max((code.size - 1 for code in codes), default=1)
    weights = np.stack([table_weights(code, width) for code in codes]) if codes else np.zeros((1, width + 1), np.int64)
    return SymbolTables(frequencies(weights), np.array(lows or [0], np.int64), PRECISION)


def table_weights(code: np.ndarray, width: int) -> np.ndarray:
    """The weights a table's bytes stand for, padded with zeros to ``width`` in-range
    integers (``width + 1`` weights, the escape's last)."""
    weights = np.zeros(width + 1, np.int64)
    weights[: code.size - 1] = _VALUES[code[:-1]]
    weights[-1] = _VALUES[code[-1]]
    return weights


def frequencies(weights: np.ndarray) -> np.ndarray:
    """Integer weights (each row of the last axis one table) → frequencies of at least 1
    summing to ``2**PRECISION`` per row: one count each, the rest shared in proportion
    (rounded down), the leftover one each to the largest remainders (first of ties); a row
    of zeros counts as ones. Integer arithmetic only."""
    rows = np.atleast_2d(weights)
    n = rows.shape[-1]
    total = rows.sum(axis=-1, keepdims=True)
    rows = np.where(total == 0, 1, rows)
    total = np.where(total == 0, n, total)
    share, remainder = np.divmod(rows * ((1 << PRECISION) - n), total)
    freqs = 1 + share
    leftover = (1 << PRECISION) - freqs.sum(axis=-1, keepdims=True)  # 0 … n - 1
    # the ``leftover`` largest remainders, ties to the first: those above the leftover-th
    # largest, and as many of those equal to it as are still due (a stable argsort of every
    # row did the same 2-3x slower)
    threshold = np.take_along_axis(np.sort(remainder, axis=-1), n - np.clip(leftover, 1, n), axis=-1)
    above, tied = remainder > threshold, remainder == threshold
    due = leftover - above.sum(axis=-1, keepdims=True)
    freqs += (leftover > 0) & (above | (tied & (np.cumsum(tied, axis=-1) <= due)))
    return freqs.reshape(weights.shape)


def _read_varint(buf: memoryview, offset: int, what: str) -> tuple[int, int]:
    return read_varint(buf, offset, len(buf), f"sample-coded payload: {what}")
