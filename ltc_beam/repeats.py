"""Records that repeat the record before them, bit for bit.

Telemetry often holds them: a sensor read faster than it updates, a logger's sample and
hold, forward-filled gaps (BasicMotions: 10.9 % of its records repeat the one before). A
stream may leave them out of its payload and state their places in a *repeats block*
(bitstream version 5, flags bit 4; ``schemas/BITSTREAM.md``): the decoder copies the
record before each, so a repeated record decodes exactly as the record it repeats (the
same error) and costs only its place in the block.

Block layout: ``method u8`` then, for method 0, ``count varint | gap varint[count]`` raw,
for method 1 the same bytes as one zstandard frame stating its content size (whichever is
shorter). ``gap_k = position_k - position_(k-1)`` with ``position_0 = 0``: the positions
(record indices, each at least 1) strictly increase.
"""

from __future__ import annotations

import numpy as np
import zstandard

from .errors import FormatError
from .varints import read_varints, varints
from .zstd_frames import decompress_exactly, stated_size

RAW, ZSTD = 0, 1
ZSTD_LEVEL = 19  # blocks hold a byte or two per repeat: the slowest level takes microseconds (BasicMotions' test split: 274 bytes, 286 at level 3)


def repeated(x: np.ndarray) -> np.ndarray:
    """Positions (int64, increasing) of the records of ``x`` ``[N, d]`` whose float32 bit
    patterns equal the record's before them (NaN payloads included; -0.0 is not 0.0)."""
    if x.ndim != 2 or len(x) < 2 or not x.shape[1]:
        return np.zeros(0, np.int64)
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return np.flatnonzero((bits[1:] == bits[:-1]).all(axis=1)) + 1


def distinct(x: np.ndarray) -> np.ndarray:
    """``x`` without the records that repeat the record before them."""
    return np.delete(x, repeated(x), axis=0)


def sources(records: int, positions: np.ndarray) -> np.ndarray:
    """For each of ``records`` records, the index among the kept records of the one it
    decodes as (itself, or the last kept record before it)."""
    kept = np.ones(records, bool)
    kept[positions] = False
    return np.cumsum(kept) - 1


def kept_segments(segments: tuple[int, ...] | None, positions: np.ndarray) -> tuple[int, ...] | None:
    """Series lengths counted in kept records (series left without any dropped)."""
    if segments is None:
        return None
    ends = np.cumsum(segments)
    dropped = np.bincount(np.searchsorted(ends, positions, side="right"), minlength=len(segments))
    return tuple(int(n) for n in np.asarray(segments) - dropped[: len(segments)] if n)


def to_bytes(positions: np.ndarray) -> bytes:
    """The repeats block of ``positions`` (at least one, each at least 1, increasing)."""
    gaps = np.diff(np.asarray(positions, np.int64), prepend=0)
    raw = varints(np.concatenate([[len(gaps)], gaps]))
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw)
    return bytes([ZSTD]) + packed if len(packed) < len(raw) else bytes([RAW]) + raw


def from_bytes(block: bytes, records: int, where: str) -> np.ndarray:
    """The positions a repeats block states for a stream of ``records`` records; FormatError
    where they are not 1 to ``records`` - 1 increasing places, or the block is damaged."""
    if not block or block[0] not in (RAW, ZSTD):
        raise FormatError(f"{where}: unknown method {block[0] if block else None}")
    raw = block[1:]
    if block[0] == ZSTD:
        size = stated_size(raw, where)
        if size > 10 * records + 10:  # a count and a gap per record at most, each below 2**63
            raise FormatError(f"{where}: states {size} bytes, impossible for {records} records")
        raw = decompress_exactly(raw, size, where)
    values = read_varints(raw, where)
    count, gaps = int(values[0]), values[1:]
    if not 1 <= count < records or len(gaps) != count:
        raise FormatError(f"{where}: {len(gaps)} gaps for {count} repeated records in a stream of {records}")
    if gaps.min() < 1 or gaps.max() >= records or (positions := np.cumsum(gaps))[-1] >= records:
        raise FormatError(f"{where}: repeated records are not increasing places 1 to {records - 1}")
    return positions
