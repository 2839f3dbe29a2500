"""Arrays of canonical unsigned LEB128 varints (7 bits a byte, low bits first, each below
2**63), as the repeats and specials blocks of a bitstream store their positions."""

from __future__ import annotations

import numpy as np

from .errors import FormatError


def varints(values: np.ndarray) -> bytes:
    """Canonical LEB128 of non-negative int64 ``values``, one after another."""
    values = np.asarray(values, np.uint64)
    sizes = 1 + sum((values >= np.uint64(1 << (7 * k))).astype(np.int64) for k in range(1, 9))
    owner = np.repeat(np.arange(len(values)), sizes)
    place = np.arange(owner.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    groups = (values[owner] >> (7 * place).astype(np.uint64)) & np.uint64(0x7F)
    more = place < sizes[owner] - 1
    return (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8).tobytes()


def read_varints(raw: bytes, where: str) -> np.ndarray:
    """The canonical LEB128 varints (each below 2**63) that make up ``raw``; FormatError else."""
    b = np.frombuffer(raw, np.uint8)
    if not b.size or b[-1] >= 0x80:
        raise FormatError(f"{where}: truncated varint")
    ends = np.flatnonzero(b < 0x80)
    sizes = np.diff(ends, prepend=-1)
    if sizes.max() > 9 or ((sizes > 1) & (b[ends] == 0)).any():
        raise FormatError(f"{where}: a varint is not canonical or not below 2**63")
    owner = np.repeat(np.arange(len(ends)), sizes)
    place = np.arange(b.size) - np.repeat(ends - sizes + 1, sizes)
    values = np.zeros(len(ends), np.uint64)
    np.add.at(values, owner, (b & 0x7F).astype(np.uint64) << (7 * place).astype(np.uint64))
    return values.astype(np.int64)
