"""Whole zstandard frames that state their content size, read without trusting it: the
blocks of bitstreams and codec artifacts."""

from __future__ import annotations

import zstandard

from .errors import FormatError


def stated_size(data: bytes, where: str) -> int:
    """The content size a zstandard frame states (checked before anything is allocated:
    zstandard allocates whatever a damaged header says); FormatError when it states none."""
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where} is not a zstandard frame: {exc}") from None
    if size < 0:
        raise FormatError(f"{where}: zstandard frame does not state its content size")
    return size


def decompress_exactly(data: bytes, size: int, where: str) -> bytes:
    """One whole zstandard frame of ``size`` bytes, nothing after it; else FormatError."""
    try:
        reader = zstandard.ZstdDecompressor().decompressobj()
        raw = reader.decompress(data)
        complete = reader.eof and not reader.unused_data
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where} is corrupt: {exc}") from None
    if not complete or len(raw) != size:
        raise FormatError(f"{where}: zstandard frame is truncated or followed by extra bytes")
    return raw
