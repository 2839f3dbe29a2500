"""The specials block of a bitstream: where the values sent exactly sit (flat C-order
positions) and their float32 bit patterns, in whichever of two layouts is shorter
(``schemas/BITSTREAM.md``, "Specials block").

- **mask**: one zstandard frame of a bitmap over the stream's values, then the patterns
  (``u32`` each). Shorter for dense specials at random (40 % of the values).
- **list** (a method byte, ``1`` raw or ``2`` one zstandard frame): the count of distinct
  patterns, the count of specials, the gaps between positions, each special's pattern index
  where needed, then the distinct patterns. Shorter for few, scattered or clustered
  specials: one null among 21,024 values took a 28-byte mask (zstd level 3, as written
  before the list) and takes a 9-byte list; 105 nulls scattered among them 292 bytes and
  166 (a varint gap of about 1.5 bytes each, and the one pattern); runs of them are runs
  of zero gaps, which zstd takes.

A mask's frame starts with zstandard's magic number (first byte ``0x28``), so the first byte
tells the layouts apart; readers before the list layout refuse it as a damaged frame.
"""

from __future__ import annotations

import numpy as np
import zstandard

from .errors import FormatError
from .varints import read_varints, varints
from .zstd_frames import decompress_exactly, stated_size

LIST_RAW, LIST_ZSTD = 1, 2
MASK_FIRST_BYTE = 0x28  # zstandard's magic number, little-endian 0xFD2FB528
#: zstd level: 19 where the block is small (a 21,024-value mask: 231 bytes instead of 290, in
#: 1.5 ms), 3 past SLOW_LEVEL_BYTES (a 2**20-value mask took 86 ms at level 19, 1 ms at 3)
FAST_LEVEL, SMALL_LEVEL, SLOW_LEVEL_BYTES = 3, 19, 1 << 16


def _zstd(raw: bytes) -> bytes:
    level = SMALL_LEVEL if len(raw) <= SLOW_LEVEL_BYTES else FAST_LEVEL
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(raw)


def to_bytes(positions: np.ndarray, bits: np.ndarray, numel: int) -> bytes:
    """The shorter block of the specials at ``positions`` (increasing, below ``numel``) with
    float32 bit patterns ``bits``."""
    mask = np.zeros(numel, dtype=bool)
    mask[positions] = True
    masked = _zstd(np.packbits(mask, bitorder="little").tobytes() + bits.astype("<u4").tobytes())
    listed = _list(np.asarray(positions, np.int64), np.asarray(bits, np.uint32))
    packed = _zstd(listed)
    best = min((masked, b""), (listed, bytes([LIST_RAW])), (packed, bytes([LIST_ZSTD])), key=lambda c: len(c[0]) + len(c[1]))
    return best[1] + best[0]


def _list(positions: np.ndarray, bits: np.ndarray) -> bytes:
    """``K | M | gap[M] | index[M] (only where 1 < K < M) | patterns u32[K]``; gap 0 is the
    first position, each next one the values skipped since the one before."""
    patterns, index = np.unique(bits, return_inverse=True)
    if len(patterns) == len(bits):
        patterns, index = bits, np.arange(len(bits))  # every one its own: in position order, no index
    gaps = np.diff(positions, prepend=-1) - 1
    indexed = 1 < len(patterns) < len(bits)
    head = varints(np.concatenate([[len(patterns), len(bits)], gaps, index if indexed else []]).astype(np.int64))
    return head + patterns.astype("<u4").tobytes()


def from_bytes(block: bytes, numel: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions, bits) of a specials block for a stream of ``numel`` values; FormatError
    where the block is damaged or does not fit them."""
    if not block:
        raise FormatError(f"{where} is empty")
    if block[0] == MASK_FIRST_BYTE:
        return _from_mask(block, numel, where)
    if block[0] not in (LIST_RAW, LIST_ZSTD):
        raise FormatError(f"{where}: unknown layout {block[0]} (a zstandard frame, or a list: method 1 or 2)")
    raw = block[1:]
    if block[0] == LIST_ZSTD:
        size = stated_size(raw, where)
        if size > 22 * numel + 18:  # K, M, a gap and an index (9 bytes at most each) and a pattern per value
            raise FormatError(f"{where}: states {size} bytes, impossible for {numel} values")
        raw = decompress_exactly(raw, size, where)
    return _from_list(raw, numel, where)


def _from_list(raw: bytes, numel: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    first = next((i for i, b in enumerate(raw[:10]) if b < 0x80), None)
    if first is None:
        raise FormatError(f"{where}: truncated count of patterns")
    count = int(read_varints(raw[: first + 1], where)[0])
    if not 1 <= count <= numel or len(raw) - first - 1 < 4 * count:
        raise FormatError(f"{where}: {count} patterns do not fit a block of {len(raw)} bytes for {numel} values")
    values = read_varints(raw[first + 1 : len(raw) - 4 * count], where)
    specials = int(values[0])
    indexed = 1 < count < specials
    if not count <= specials <= numel or len(values) != 1 + specials * (1 + indexed):
        raise FormatError(f"{where}: {len(values) - 1} gaps and indices for {specials} specials of {count} patterns")
    gaps = values[1 : 1 + specials]
    positions = np.cumsum(gaps + 1) - 1
    if int(gaps.max()) >= numel or int(positions[-1]) >= numel:
        raise FormatError(f"{where}: a special value at position {int(positions[-1])} lies outside {numel} values")
    patterns = np.frombuffer(raw, "<u4", count=count, offset=len(raw) - 4 * count).astype(np.uint32)
    if not indexed:
        return positions, patterns if count == specials else np.repeat(patterns, specials)
    index = values[1 + specials :]
    if int(index.max()) >= count:
        raise FormatError(f"{where}: a pattern index {int(index.max())} is not below the {count} patterns")
    return positions, patterns[index]


def _from_mask(block: bytes, numel: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    size = stated_size(block, where)
    mask_bytes = (numel + 7) // 8
    if size < mask_bytes + 4 or (size - mask_bytes) % 4 or (size - mask_bytes) // 4 > numel:
        raise FormatError(
            f"{where}: decompressed size {size} is impossible for {numel} values "
            f"(expected {mask_bytes} + 4*M bytes with 1 <= M <= {numel})"
        )
    raw = decompress_exactly(block, size, where)
    m = (size - mask_bytes) // 4
    bits_set = np.unpackbits(np.frombuffer(raw, dtype=np.uint8, count=mask_bytes), bitorder="little")
    if bits_set[numel:].any():
        raise FormatError(f"{where}: mask has bits set beyond the {numel} values")
    positions = np.flatnonzero(bits_set[:numel])
    if positions.size != m:
        raise FormatError(f"{where}: mask marks {positions.size} values but {m} bit patterns are stored")
    return positions, np.frombuffer(raw, dtype="<u4", offset=mask_bytes, count=m).astype(np.uint32)
