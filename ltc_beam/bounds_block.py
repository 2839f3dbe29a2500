"""The bounds block of a bitstream: per column, a least and a greatest value that the decoder
clamps its lossy values to (``schemas/BITSTREAM.md``, "Bounds block"; the encoder's choice:
:mod:`ltc_beam.codec.clamping`).

Layout: a method byte (``0`` the body as it is, ``1`` one zstandard frame of it), then the
body: a bitmap of ``2 * d`` bits (bit ``2c`` column ``c`` has a least value, bit ``2c + 1`` a
greatest; little-endian bit order, padded with 0 bits to whole bytes), then each stated bound
as a ``float32``, in bit order. A column without a bound there is unbounded on that side.
"""

from __future__ import annotations

import numpy as np
import zstandard

from .errors import FormatError
from .zstd_frames import decompress_exactly, stated_size

RAW, ZSTD = 0, 1
ZSTD_LEVEL = 19  # blocks are small: at most a bitmap and 8 bytes per column


def to_bytes(lower: np.ndarray, upper: np.ndarray) -> bytes:
    """The block of per-column bounds ``lower`` and ``upper`` (float32-exact; -inf and +inf
    where a column has none on that side), in the shorter method."""
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    stated = np.stack([np.isfinite(lower), np.isfinite(upper)], axis=1).reshape(-1)
    if not stated.any():
        raise ValueError("a bounds block states at least one bound")
    values = np.stack([lower, upper], axis=1).reshape(-1)[stated]
    if not np.array_equal(values.astype(np.float32), values):
        raise ValueError("bounds must be float32 values")
    body = np.packbits(stated, bitorder="little").tobytes() + values.astype("<f4").tobytes()
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(body)
    return bytes([ZSTD]) + packed if len(packed) < len(body) else bytes([RAW]) + body


def from_bytes(block: bytes, d: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) float32 bounds of the ``d`` columns (-inf / +inf where none) of a bounds
    block; FormatError where it is damaged or does not fit ``d`` columns."""
    if not block or block[0] not in (RAW, ZSTD):
        raise FormatError(f"{where}: unknown method {block[0] if block else 'missing'} (0 raw or 1 zstandard)")
    mask_bytes = (2 * d + 7) // 8
    most = mask_bytes + 8 * d
    body = block[1:]
    if block[0] == ZSTD:
        size = stated_size(body, where)
        if size > most:
            raise FormatError(f"{where}: states {size} bytes, more than {most} for {d} columns")
        body = decompress_exactly(body, size, where)
    if len(body) < mask_bytes:
        raise FormatError(f"{where}: {len(body)} bytes hold no bitmap of {2 * d} bits")
    bits = np.unpackbits(np.frombuffer(body, np.uint8, count=mask_bytes), bitorder="little")
    stated = bits[: 2 * d].astype(bool)
    if bits[2 * d :].any() or not stated.any():
        raise FormatError(f"{where}: its bitmap states no bound, or bits beyond {d} columns")
    if len(body) != mask_bytes + 4 * int(stated.sum()):
        raise FormatError(f"{where}: {len(body) - mask_bytes} bytes of values for {int(stated.sum())} bounds")
    values = np.full(2 * d, np.inf, np.float32)
    values[::2] = -np.inf
    values[stated] = np.frombuffer(body, "<f4", offset=mask_bytes)
    lower, upper = values[::2].copy(), values[1::2].copy()
    if not np.isfinite(values[stated]).all() or (lower > upper).any():
        raise FormatError(f"{where}: a bound is not finite, or a least value lies above its greatest")
    return lower, upper
