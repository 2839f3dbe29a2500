"""Container framing of ltc-beam bitstreams (byte layout: ``schemas/BITSTREAM.md``).

Data flow: (codec id, array shape, entropy-coded payload, NaN/±Inf side channel) -> bytes,
and back.  This module knows nothing about lattices or entropy models: the payload is
opaque bytes produced by the codec (``ltc_beam.entropy``).

Layout (version 1; version 2 is the same with flags bit 1 set: a sample-coded payload,
``ltc_beam.codec.sample_coding``; version 3 with flags bit 2 set: the records are several
series, each windowed on its own; version 4 with flags bit 3 set (bit 2 optional): the
records whose every value is special are left out of the payload; version 5 with flags bit 4
set (the others optional): the records that repeat the record before them are left out, a
repeats block (``ltc_beam.repeats``) states where, and everything after it describes the
records kept; version 6 with flags bit 5 set (and bit 2): the segment lengths are runs;
version 7 with flags bit 6 set (the others optional): a bounds block (``ltc_beam.bounds_block``)
states per column the least and greatest value the decoded values are clamped to;
little-endian, varints are canonical unsigned LEB128 below 2**63)::

    magic "LTC" | version u8 | flags u8 | codec id 16 raw bytes | ndim varint |
    shape varint[ndim] | [repeats length varint | repeats block] (only when flags bit 4) |
    [segment count varint | segment lengths varint[count]] (only
    when flags bit 2) | [specials_length varint | specials]  (only when flags bit 0) |
    [bounds_length varint | bounds block] (only when flags bit 6) |
    payload (runs to the checksum) | checksum u32 (CRC-32 of every byte before it)

The framing is compact because telemetry streams are often short (100 records x 6 values
at ~1.5 bit/value is ~110 bytes of payload): a 2-D stream with fewer than 2**21 records of
fewer than 128 values and no specials costs at most 30 bytes of framing (21-byte fixed
prefix, 1 + (1 to 3) + 1 varint bytes, 4-byte checksum: 28 below 128 records).  The payload length is implicit (everything
between the header and the last 4 bytes), so the checksum always sits in the last 4 bytes
and always covers ``[0, len - 4)`` whatever the header says: damage to a length cannot
move the checksum.  The magic is 3 bytes (like bzip2's ``BZh``): together with the version
byte ``0x01`` the first 4 bytes are ``LTC\x01``, which no text file starts with, and the
checksum, not the magic, is what rejects damaged or foreign data.

Why CRC-32 (``zlib.crc32``): it is in the standard library (no extra dependency, no version
drift), runs at GB/s (negligible next to a ~20 MB/s codec), and unlike a general hash it
*guarantees* detection of every burst error of up to 32 bits and of every 1-, 2- and 3-bit
error in messages of the sizes stored here; any other corruption passes with probability
2**-32.  It is an integrity check against damage, not an authentication code.

Special values: NaN and ±Inf cannot go through the lattice, so ``split_specials`` replaces
them with 0.0 for the lossy path and records their positions and exact float32 bit
patterns (NaN payloads and sign bits included); ``merge_specials`` writes them back.  -0.0,
subnormals and huge finite values are *finite*: they take the lossy path (the sign of a zero
may be lost; huge values are coded through escapes).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import bounds_block, repeats, specials_block
from .errors import CodecMismatchError, FormatError
from .zstd_frames import decompress_exactly, stated_size

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "FLAG_SPECIALS",
    "FLAG_SAMPLE_CODED",
    "FLAG_SEGMENTS",
    "FLAG_REPEATS",
    "FLAG_SEGMENT_RUNS",
    "FLAG_BOUNDS",
    "CODEC_ID_LENGTH",
    "CODEC_ID_BYTES",
    "MAX_NDIM",
    "FIXED_HEADER",
    "LAYOUT",
    "SPECIALS_LAYOUT",
    "SPECIALS_LIST_LAYOUT",
    "BOUNDS_LAYOUT",
    "SpecialValues",
    "Frame",
    "pack",
    "unpack",
    "with_bounds",
    "segment_runs",
    "split_specials",
    "merge_specials",
    "stated_size",
    "decompress_exactly",
]

MAGIC = b"LTC"
FORMAT_VERSION = 1
#: Version 2 is version 1 plus flags bit 1 (a sample-coded payload); writers use it only for
#: such streams, so every other stream stays readable by version-1 readers.
SAMPLE_CODED_VERSION = 2
#: Version 3 is version 1 plus flags bit 2 (segment lengths after the shape); writers use it
#: only for streams of several series whose windows the segments keep apart.
SEGMENTED_VERSION = 3
#: Version 4 is version 3 plus flags bit 3 (records whose every value is special are left out
#: of the payload; segments optional); writers use it only for streams that leave some out.
SKIPPING_VERSION = 4
#: Version 5 is version 4 plus flags bit 4 (the records that repeat the record before them are
#: left out; every other flag optional); writers use it only for streams that leave some out.
REPEATING_VERSION = 5
#: Version 6 is version 5 plus flags bit 5 (segment lengths as runs of equal lengths);
#: writers use it only where the runs are shorter: the series of a balanced panel, all of one
#: length, took a byte or two each (2,234 population series of 31 years: 0.26 bits/value).
SEGMENT_RUNS_VERSION = 6
#: Version 7 is version 6 plus flags bit 6 (a bounds block: per column, the least and the
#: greatest value the decoded values are clamped to; every other flag optional); writers use
#: it only where the bounds pay for their bytes: MNIST's pixels, sample-coded at 1.1
#: bits/value, decoded 92,005 of 784,000 values beyond their column's range (20.0 dB; 28.8
#: with the 505 bounds that pay, 405 bytes).
BOUNDS_VERSION = 7
SUPPORTED_VERSIONS = (1, 2, 3, 4, 5, 6, 7)
#: flags bit 0: a specials block (and its length) is present.
FLAG_SPECIALS = 0x01
#: flags bit 1 (version 2): the payload is sample-coded (``ltc_beam.codec.sample_coding``),
#: not entropy-coded lattice symbols.
FLAG_SAMPLE_CODED = 0x02
#: flags bit 2 (version 3): the records (shape[0] of a 2-D shape) are consecutive segments
#: (series) of the stated lengths; a windowed codec windows each on its own.
FLAG_SEGMENTS = 0x04
#: Flag bits each version defines; every other bit must be zero; the one a version is for
#: must be set.
#: flags bit 3 (version 4): the records whose every value is in the specials block are not
#: in the payload; the decoder finds them from the specials mask.
FLAG_SKIPPED = 0x08
#: flags bit 4 (version 5): a repeats block follows the shape; the records it names (each
#: bit for bit the record before it) are not in the rest of the stream, which describes the
#: records kept (segments, specials, payload), and decode as the record before them.
FLAG_REPEATS = 0x10
#: flags bit 5 (version 6, with bit 2): ``segment_count`` counts runs, and each run is a
#: varint pair, a length and how many segments in a row have it.
FLAG_SEGMENT_RUNS = 0x20
#: flags bit 6 (version 7): a bounds block (``ltc_beam.bounds_block``) follows the specials;
#: the decoded values of each column that it bounds (not the specials) are clamped to them.
FLAG_BOUNDS = 0x40
KNOWN_FLAGS = {
    1: FLAG_SPECIALS, 2: FLAG_SPECIALS | FLAG_SAMPLE_CODED, 3: FLAG_SPECIALS | FLAG_SEGMENTS,
    4: FLAG_SPECIALS | FLAG_SEGMENTS | FLAG_SKIPPED,
    5: FLAG_SPECIALS | FLAG_SAMPLE_CODED | FLAG_SEGMENTS | FLAG_SKIPPED | FLAG_REPEATS,
    6: FLAG_SPECIALS | FLAG_SAMPLE_CODED | FLAG_SEGMENTS | FLAG_SKIPPED | FLAG_REPEATS | FLAG_SEGMENT_RUNS,
    7: FLAG_SPECIALS | FLAG_SAMPLE_CODED | FLAG_SEGMENTS | FLAG_SKIPPED | FLAG_REPEATS | FLAG_SEGMENT_RUNS | FLAG_BOUNDS,
}
REQUIRED_FLAG = {2: FLAG_SAMPLE_CODED, 3: FLAG_SEGMENTS, 4: FLAG_SKIPPED, 5: FLAG_REPEATS, 6: FLAG_SEGMENT_RUNS, 7: FLAG_BOUNDS}
#: The codec id is 32 lowercase hex characters in the API and 16 raw bytes in the stream.
CODEC_ID_LENGTH = 32
CODEC_ID_BYTES = CODEC_ID_LENGTH // 2
MAX_NDIM = 32
MAX_NUMEL = 2**63 - 1
#: Every varint is below 2**63, which takes at most 9 LEB128 bytes; a reader gives up after
#: MAX_VARINT_BYTES (the 10th byte can only belong to a value of 2**63 or more).
VARINT_LIMIT = 2**63
MAX_VARINT_BYTES = 10
CHECKSUM_SIZE = 4

#: magic, version, flags, codec id: the fixed 21-byte prefix.
FIXED_HEADER = struct.Struct("<3sBB16s")
_U32 = struct.Struct("<I")
_CODEC_ID_RE = re.compile(r"[0-9a-f]{32}")


class Field(NamedTuple):
    """One row of a layout table: offset and size are expressions in the named variables."""

    name: str
    offset: str
    size: str
    type: str


#: The container layout, in order; mirrored (and checked by tests) in schemas/BITSTREAM.md.
#: Variables: shape_size (bytes of the ndim shape varints), repeats_length_size and
#: repeats_length (bytes of the repeats_length varint and of the repeats block, 0 when flags
#: bit 4 is clear), segment_count_size and segment_lengths_size (bytes of the segment count
#: varint and of the lengths varints, 0 when flags bit 2 is clear), specials_length_size
#: (bytes of the specials_length varint, 0 when flags bit 0 is clear), specials_length,
#: bounds_length_size and bounds_length (bytes of the bounds_length varint and of the bounds
#: block, 0 when flags bit 6 is clear), payload_length (implicit: whatever lies between the header and the checksum).
LAYOUT: tuple[Field, ...] = (
    Field("magic", "0", "3", "bytes[3]"),
    Field("version", "3", "1", "u8"),
    Field("flags", "4", "1", "u8"),
    Field("codec_id", "5", "16", "bytes[16]"),
    Field("ndim", "21", "1", "varint"),
    Field("shape", "22", "shape_size", "varint[ndim]"),
    Field("repeats_length", "22 + shape_size", "repeats_length_size", "varint"),
    Field("repeats", "22 + shape_size + repeats_length_size", "repeats_length", "bytes[repeats_length]"),
    Field("segment_count", "22 + shape_size + repeats_length_size + repeats_length", "segment_count_size", "varint"),
    Field("segment_lengths", "22 + shape_size + repeats_length_size + repeats_length + segment_count_size", "segment_lengths_size", "varint[segment_count], or with flags bit 5 varint[2 * segment_count]"),
    Field("specials_length", "22 + shape_size + repeats_length_size + repeats_length + segment_count_size + segment_lengths_size", "specials_length_size", "varint"),
    Field("specials", "22 + shape_size + repeats_length_size + repeats_length + segment_count_size + segment_lengths_size + specials_length_size", "specials_length", "bytes[specials_length]"),
    Field("bounds_length", "22 + shape_size + repeats_length_size + repeats_length + segment_count_size + segment_lengths_size + specials_length_size + specials_length", "bounds_length_size", "varint"),
    Field("bounds", "22 + shape_size + repeats_length_size + repeats_length + segment_count_size + segment_lengths_size + specials_length_size + specials_length + bounds_length_size", "bounds_length", "bytes[bounds_length]"),
    Field(
        "payload",
        "22 + shape_size + repeats_length_size + repeats_length + segment_count_size + segment_lengths_size + specials_length_size + specials_length + bounds_length_size + bounds_length",
        "payload_length",
        "bytes[payload_length]",
    ),
    Field(
        "checksum",
        "22 + shape_size + repeats_length_size + repeats_length + segment_count_size + segment_lengths_size + specials_length_size + specials_length + bounds_length_size + bounds_length + payload_length",
        "4",
        "u32",
    ),
)

#: The specials block as a mask, after zstandard decompression.  Variables: numel (product of
#: shape), M (number of special values = number of set mask bits).
SPECIALS_LAYOUT: tuple[Field, ...] = (
    Field("mask", "0", "(numel + 7) // 8", "u8[(numel + 7) // 8]"),
    Field("bits", "(numel + 7) // 8", "4*M", "u32[M]"),
)
#: The specials block as a list (:mod:`ltc_beam.specials_block`), after its method byte (and,
#: with method 2, zstandard decompression).  Variables: the bytes of each varint field.
SPECIALS_LIST_LAYOUT: tuple[Field, ...] = (
    Field("pattern_count", "0", "pattern_count_size", "varint"),
    Field("count", "pattern_count_size", "count_size", "varint"),
    Field("gaps", "pattern_count_size + count_size", "gaps_size", "varint[count]"),
    Field("indices", "pattern_count_size + count_size + gaps_size", "indices_size", "varint[count]"),
    Field("patterns", "pattern_count_size + count_size + gaps_size + indices_size", "4*pattern_count", "u32[pattern_count]"),
)


#: The bounds block's body (:mod:`ltc_beam.bounds_block`), after its method byte (and, with
#: method 1, zstandard decompression). Variables: d (shape[1]), B (the bounds stated).
BOUNDS_LAYOUT: tuple[Field, ...] = (
    Field("bitmap", "0", "(2*d + 7) // 8", "u8[(2*d + 7) // 8]"),
    Field("values", "(2*d + 7) // 8", "4*B", "f32[B]"),
)


@dataclass(frozen=True, eq=False)
class SpecialValues:
    """Values stored exactly, outside the lossy path: flat C-order ``positions`` (int64,
    strictly increasing) and their float32 bit patterns ``bits`` (uint32).

    ``split_specials`` marks NaN and ±Inf; a codec may add others (e.g. absurd outliers).
    """

    positions: np.ndarray
    bits: np.ndarray

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions)
        bits = np.asarray(self.bits)
        if pos.ndim != 1 or bits.shape != pos.shape:
            raise ValueError(
                f"positions and bits must be 1-D of equal length, got {pos.shape}, {bits.shape}"
            )
        if pos.size and (pos.dtype.kind not in "iu" or bits.dtype.kind not in "iu"):
            raise ValueError("positions and bits must be integer arrays")
        pos = np.array(pos, dtype=np.int64)
        if pos.size and (pos[0] < 0 or (np.diff(pos) <= 0).any()):
            raise ValueError("special-value positions must be non-negative and strictly increasing")
        if bits.size and (int(bits.min()) < 0 or int(bits.max()) > 0xFFFFFFFF):
            raise ValueError("special-value bit patterns must be uint32")
        bits = np.array(bits, dtype=np.uint32)
        pos.setflags(write=False)
        bits.setflags(write=False)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "bits", bits)

    @classmethod
    def empty(cls) -> "SpecialValues":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.uint32))

    def __len__(self) -> int:
        return int(self.positions.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecialValues):
            return NotImplemented
        return np.array_equal(self.positions, other.positions) and np.array_equal(self.bits, other.bits)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SpecialValues(count={len(self)})"


@dataclass(frozen=True)
class Frame:
    """A parsed, checksum-verified bitstream (``specials`` is empty when there are none)."""

    codec_id: str
    shape: tuple[int, ...]
    payload: bytes
    specials: SpecialValues
    sample_coded: bool = False
    segments: tuple[int, ...] | None = None  # series lengths (flags bit 2), summing to coded_records
    skipped: bool = False  # flags bit 3: records whose every value is special are not in the payload
    repeated: tuple[int, ...] = ()  # flags bit 4: records left out as repeats of the record before them
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # flags bit 6: per column, (least, greatest) decoded values

    @property
    def coded_records(self) -> int:
        """Records the segments, specials and payload describe: ``shape[0]`` less the repeats."""
        return self.shape[0] - len(self.repeated)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def fixed_bytes(self) -> int:
        """Bytes of this stream's fixed frame (magic, codec id, shape, checksum): what an
        empty payload would take, a cost of the stream count rather than of the data."""
        return len(pack(self.codec_id, self.shape, b"", sample_coded=self.sample_coded))


# ---------------------------------------------------------------- special values
def split_specials(x: Any) -> tuple[np.ndarray, SpecialValues]:
    """Split ``x`` (cast to float32) into a finite copy (NaN/±Inf set to 0.0) and the specials.

    Positions are flat C-order indices.  -0.0 is finite and stays in the copy.  Non-float32
    input is cast first, so a float64 beyond float32's range becomes ±Inf (and is kept
    exactly as that float32 pattern).
    """
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"expected a float array, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    finite = np.array(arr, dtype=np.float32, order="C", copy=True)
    flat = finite.reshape(-1)
    mask = ~np.isfinite(flat)
    if not mask.any():
        return finite, SpecialValues.empty()
    pos = np.flatnonzero(mask)
    bits = flat.view(np.uint32)[pos].copy()
    flat[pos] = 0.0
    return finite, SpecialValues(pos, bits)


def merge_specials(x: Any, specials: SpecialValues | None) -> np.ndarray:
    """Return a float32 copy of ``x`` with the special values' exact bit patterns restored."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if specials is None or len(specials) == 0:
        return out
    if int(specials.positions[-1]) >= out.size:
        raise FormatError(
            f"special value at position {int(specials.positions[-1])} is outside an array of {out.size} values"
        )
    out.reshape(-1).view(np.uint32)[specials.positions] = specials.bits
    return out


# ---------------------------------------------------------------- framing
def _check_codec_id(codec_id: Any, what: str) -> str:
    if not isinstance(codec_id, str) or not _CODEC_ID_RE.fullmatch(codec_id):
        raise ValueError(f"{what} must be {CODEC_ID_LENGTH} lowercase hex characters, got {codec_id!r}")
    return codec_id


def varint(value: int) -> bytes:
    """Canonical unsigned LEB128 of ``0 <= value < 2**63`` (7 bits a byte, low bits first)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def zigzag(value: int) -> int:
    """A signed integer as the unsigned one a varint holds: 0, -1, 1, -2 ... → 0, 1, 2, 3 ..."""
    return 2 * value if value >= 0 else -2 * value - 1


def unzigzag(value: int) -> int:
    """Inverse of :func:`zigzag`."""
    return (value >> 1) ^ -(value & 1)


def pack(
    codec_id: str,
    shape: tuple[int, ...],
    payload: bytes | bytearray | memoryview,
    specials: SpecialValues | None = None,
    *,
    sample_coded: bool = False,
    segments: tuple[int, ...] | None = None,
    skipped: bool = False,
    repeated: Any = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> bytes:
    """Frame a payload (see module docstring and schemas/BITSTREAM.md): entropy-coded lattice
    symbols (version 1), with ``sample_coded`` a sample-coded one (version 2, flags bit 1),
    or with ``segments`` (at least two series lengths, summing to the records of a 2-D
    shape) symbols of records windowed series by series (version 3, flags bit 2); with
    ``skipped``, the records whose every value is in ``specials`` are not in the payload
    (version 4, flags bit 3; segments optional); with ``repeated`` (increasing record
    indices, at least one), those records of a 2-D shape are left out as repeats of the
    record before them and segments, specials and payload describe the others (version 5,
    flags bit 4); with ``bounds`` (per column of a 2-D shape, the least and the greatest
    value, float32, -inf / +inf where a side has none), the decoder clamps the lossy values
    to them (version 7, flags bit 6)."""
    _check_codec_id(codec_id, "codec_id")
    shape = tuple(int(s) for s in shape)
    if len(shape) > MAX_NDIM:
        raise ValueError(f"at most {MAX_NDIM} dimensions are supported, got {len(shape)}")
    numel = 1
    for s in shape:
        if s < 0:
            raise ValueError(f"negative dimension in shape {shape}")
        if s >= VARINT_LIMIT:
            raise ValueError(f"dimension {s} in shape {shape} is not below 2**63")
        numel *= s
    if numel > MAX_NUMEL:
        raise ValueError(f"shape {shape} has more than 2**63 - 1 values")
    payload = bytes(payload)
    repeats_part: list[bytes] = []
    if repeated is not None:
        repeated = np.asarray(repeated, np.int64)
        if len(shape) != 2 or not repeated.size or repeated[0] < 1 or repeated[-1] >= shape[0] or (np.diff(repeated) < 1).any():
            raise ValueError(f"repeated records must be increasing indices 1 to records - 1 of a 2-D shape, got {repeated.size} for {shape}")
        block = repeats.to_bytes(repeated)
        repeats_part = [varint(len(block)), block]
        shape_coded = (shape[0] - repeated.size, shape[1])
        numel = shape_coded[0] * shape_coded[1]
    else:
        shape_coded = shape
    if specials is not None and len(specials):
        if int(specials.positions[-1]) >= numel:
            raise ValueError(f"special-value position {int(specials.positions[-1])} outside shape {shape}")
        block = specials_block.to_bytes(specials.positions, specials.bits, numel)
        flags, specials_part = FLAG_SPECIALS, [varint(len(block)), block]
    else:
        flags, specials_part = 0, []
    version = FORMAT_VERSION
    segments_part: list[bytes] = []
    if sample_coded and segments is not None:
        raise ValueError("a stream is sample-coded or segmented, not both")
    if sample_coded:
        flags |= FLAG_SAMPLE_CODED
        version = SAMPLE_CODED_VERSION
    if segments is not None:
        segments = tuple(int(n) for n in segments)
        if len(shape) != 2 or len(segments) < 2 or min(segments) < 1 or sum(segments) != shape_coded[0]:
            raise ValueError(f"segments must be >= 2 positive lengths summing to the coded records of a 2-D shape, got {len(segments)} for {shape}")
        flags |= FLAG_SEGMENTS
        version = SEGMENTED_VERSION
        segments_part = [varint(len(segments)), *(varint(n) for n in segments)]
        runs = segment_runs(segments)
        runs_part = [varint(len(runs)), *(varint(v) for run in runs for v in run)]
        if sum(map(len, runs_part)) < sum(map(len, segments_part)):
            flags |= FLAG_SEGMENT_RUNS
            segments_part = runs_part
    if skipped:
        if sample_coded:
            raise ValueError("a sample-coded stream codes every record: it skips none")
        flags |= FLAG_SKIPPED
        version = SKIPPING_VERSION
    if repeats_part:
        flags |= FLAG_REPEATS
        version = REPEATING_VERSION
    if flags & FLAG_SEGMENT_RUNS:
        version = SEGMENT_RUNS_VERSION
    bounds_part: list[bytes] = []
    if bounds is not None:
        if len(shape) != 2 or any(np.shape(b) != (shape[1],) for b in bounds):
            raise ValueError(f"bounds are two arrays of one value per column of a 2-D shape, got {[np.shape(b) for b in bounds]} for {shape}")
        block = bounds_block.to_bytes(*bounds)
        flags |= FLAG_BOUNDS
        version = BOUNDS_VERSION
        bounds_part = [varint(len(block)), block]
    parts = [
        FIXED_HEADER.pack(MAGIC, version, flags, bytes.fromhex(codec_id)),
        varint(len(shape)),
        *(varint(s) for s in shape),
        *repeats_part,
        *segments_part,
        *specials_part,
        *bounds_part,
        payload,
    ]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def segment_runs(segments: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(length, times)`` of each run of equal consecutive segment lengths."""
    runs: list[tuple[int, int]] = []
    for n in segments:
        if runs and runs[-1][0] == n:
            runs[-1] = (n, runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    return runs


def _record_shape(record_dim: int) -> bytes:
    return varint(2) + varint(1) + varint(record_dim)


def record_payload(stream: bytes, record_dim: int) -> bytes:
    """A one-record bitstream less what every row of a record-layout table shares: magic,
    version, codec id and shape (the table's metadata holds them). Kept: the flags byte,
    the specials block, the payload and the checksum, which still covers the whole
    stream. 28 bytes of framing per record become 5."""
    shape = _record_shape(record_dim)
    head = FIXED_HEADER.size
    if (
        len(stream) < head + len(shape)
        or stream[:3] != MAGIC
        or stream[3] != FORMAT_VERSION
        or stream[head : head + len(shape)] != shape
    ):
        raise ValueError(f"not a bitstream of one record of {record_dim} values")
    return stream[4:5] + stream[head + len(shape) :]


def record_stream(payload: bytes, codec_id: str, record_dim: int) -> bytes:
    """The bitstream :func:`record_payload` was cut from (its checksum then checks it)."""
    if not payload:
        raise FormatError("record payload is empty")
    _check_codec_id(codec_id, "codec_id")
    header = FIXED_HEADER.pack(MAGIC, FORMAT_VERSION, payload[0], bytes.fromhex(codec_id))
    return header + _record_shape(record_dim) + payload[1:]


def _need(buf: memoryview, offset: int, size: int, what: str, end: int) -> None:
    """Raise unless ``size`` bytes from ``offset`` lie before ``end`` (the checksum's offset)."""
    remaining = end - offset
    if size > remaining:
        raise FormatError(
            f"truncated bitstream: {what} needs {size} bytes at offset {offset}, only "
            f"{max(remaining, 0)} remain before the {CHECKSUM_SIZE}-byte checksum "
            f"(total {buf.nbytes} bytes)"
        )


def read_varint(buf: memoryview, offset: int, end: int, what: str) -> tuple[int, int]:
    """Read one canonical LEB128 varint below 2**63 at ``offset``; return (value, next offset).

    Reads at most MAX_VARINT_BYTES bytes, never past ``end``.
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if offset + i >= end:
            raise FormatError(
                f"truncated bitstream: varint {what} at offset {offset} needs at least {i + 1} "
                f"bytes, only {max(end - offset, 0)} remain before the {CHECKSUM_SIZE}-byte "
                f"checksum (total {buf.nbytes} bytes)"
            )
        byte = buf[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if byte == 0 and i > 0:
                raise FormatError(
                    f"varint {what} at offset {offset} is not canonical: "
                    f"{i + 1}-byte encoding ends in a zero byte (overlong)"
                )
            if value >= VARINT_LIMIT:
                raise FormatError(f"varint {what} at offset {offset} is {value}, not below 2**63")
            return value, offset + i + 1
    raise FormatError(
        f"varint {what} at offset {offset} is longer than {MAX_VARINT_BYTES} bytes "
        "(values must be below 2**63)"
    )


def unpack(blob: bytes | bytearray | memoryview, expected_codec_id: str | None = None) -> Frame:
    """Parse and verify a bitstream.

    Raises ``FormatError`` for anything that is not an intact ltc-beam bitstream (versions 1-7)
    (with what is wrong and at which offset), and ``CodecMismatchError`` when the intact
    stream names a codec other than ``expected_codec_id``.
    """
    if expected_codec_id is not None:
        _check_codec_id(expected_codec_id, "expected_codec_id")
    try:
        buf = memoryview(blob).cast("B")
    except TypeError:
        raise TypeError(f"expected a bytes-like object, got {type(blob).__name__}") from None
    n = buf.nbytes
    m = len(MAGIC)
    if n < m or buf[:m] != MAGIC:
        raise FormatError(
            f"not an ltc-beam bitstream: expected magic {MAGIC!r} at offset 0, "
            f"found {bytes(buf[:m])!r}" + (f" ({n} bytes in total)" if n < m else "")
        )
    if n < m + 1:
        raise FormatError(
            f"truncated bitstream: the format version needs 1 byte at offset {m}, "
            f"only 0 remain (total {n} bytes)"
        )
    version = buf[m]
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(
            f"unsupported bitstream format version {version} at offset {m}; this release of ltc-beam "
            f"supports versions: {', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    end = n - CHECKSUM_SIZE  # the checksum is always the last 4 bytes
    _need(buf, 0, FIXED_HEADER.size, "the fixed header", end)
    _, _, flags, raw_id = FIXED_HEADER.unpack_from(buf, 0)
    unknown = flags & ~KNOWN_FLAGS[version]
    if unknown:
        raise FormatError(f"unknown flag bits 0x{unknown:02x} in flags at offset {m + 1} (version {version})")
    if version in REQUIRED_FLAG and not flags & REQUIRED_FLAG[version]:
        bit = REQUIRED_FLAG[version].bit_length() - 1
        raise FormatError(f"version {version} stream without flags bit {bit} at offset {m + 1}: writers use version 1 for it")
    if flags & FLAG_SAMPLE_CODED and flags & (FLAG_SEGMENTS | FLAG_SKIPPED):  # version 5 defines all three
        raise FormatError(f"flags 0x{flags:02x} at offset {m + 1}: a sample-coded stream codes every record as one series")
    if flags & FLAG_SEGMENT_RUNS and not flags & FLAG_SEGMENTS:
        raise FormatError(f"flags 0x{flags:02x} at offset {m + 1}: segment runs (bit 5) without segments (bit 2)")
    off = FIXED_HEADER.size
    ndim_off = off
    ndim, off = read_varint(buf, off, end, "ndim")
    if ndim > MAX_NDIM:
        raise FormatError(f"ndim {ndim} at offset {ndim_off} exceeds the maximum of {MAX_NDIM}")
    shape_off = off
    shape = []
    for i in range(ndim):
        s, off = read_varint(buf, off, end, f"shape[{i}]")
        shape.append(s)
    repeated = np.zeros(0, np.int64)
    if flags & FLAG_REPEATS:
        repeats_off, repeats_length, off = _block_of_2d(buf, off, end, shape, "repeats", "repeat records")
    segments = None
    if flags & FLAG_SEGMENTS:
        count_off = off
        count, off = read_varint(buf, off, end, "segment_count")
        runs = bool(flags & FLAG_SEGMENT_RUNS)
        if ndim != 2 or count < 2 - runs or count > shape[0]:
            what = "runs of segments" if runs else "segments"
            raise FormatError(f"segment_count {count} at offset {count_off} does not fit shape {tuple(shape)} ({2 - runs} to shape[0] {what} of a 2-D shape)")
        lengths = []
        for i in range(count):
            n, off = read_varint(buf, off, end, f"segment_runs[{i}].length" if runs else f"segment_lengths[{i}]")
            if not runs:
                lengths.append(n)
                continue
            times, off = read_varint(buf, off, end, f"segment_runs[{i}].times")
            if times < 1 or len(lengths) + times > shape[0]:  # (before making the list: a damaged count is huge)
                raise FormatError(f"segment run {i} at offset {count_off} repeats its length {times} times, for {shape[0]} records")
            lengths.extend([n] * times)
        if len(lengths) < 2 or min(lengths) < 1 or sum(lengths) > shape[0] or not flags & FLAG_REPEATS and sum(lengths) != shape[0]:
            raise FormatError(f"segment lengths at offset {count_off} are not positive or do not sum to shape[0] = {shape[0]}")
        segments = tuple(lengths)
    has_specials = bool(flags & FLAG_SPECIALS)
    specials_off = specials_length = 0
    if has_specials:
        length_off = off
        specials_length, off = read_varint(buf, off, end, "specials_length")
        if specials_length == 0:
            raise FormatError(
                f"flags at offset {m + 1} say specials are present "
                f"but specials_length at offset {length_off} is 0"
            )
        _need(buf, off, specials_length, "the specials block", end)
        specials_off = off
        off += specials_length
    if flags & FLAG_BOUNDS:
        bounds_off, bounds_length, off = _block_of_2d(buf, off, end, shape, "bounds", "state bounds")
    payload_off = off
    (stored,) = _U32.unpack_from(buf, end)
    computed = zlib.crc32(buf[:end])
    if stored != computed:
        raise FormatError(
            f"checksum mismatch: stored CRC-32 0x{stored:08x} at offset {end}, computed "
            f"0x{computed:08x} over bytes [0, {end}): the bitstream is corrupt, truncated "
            "or has bytes appended"
        )
    codec_id = bytes(raw_id).hex()
    numel = 1
    for s in shape:
        numel *= s
    if numel > MAX_NUMEL:
        raise FormatError(f"shape {tuple(shape)} at offset {shape_off} has more than 2**63 - 1 values")
    if expected_codec_id is not None and codec_id != expected_codec_id:
        raise CodecMismatchError(codec_id, expected_codec_id)
    if flags & FLAG_REPEATS:
        where = f"repeats block at offset {repeats_off}"
        repeated = repeats.from_bytes(bytes(buf[repeats_off : repeats_off + repeats_length]), shape[0], where)
        numel = (shape[0] - repeated.size) * shape[1]
        if segments is not None and sum(segments) != shape[0] - repeated.size:
            raise FormatError(f"segment lengths do not sum to the {shape[0] - repeated.size} records the {where} leaves")
    if has_specials:
        where = f"specials block at offset {specials_off}"
        specials = SpecialValues(*specials_block.from_bytes(bytes(buf[specials_off : specials_off + specials_length]), numel, where))
    else:
        specials = SpecialValues.empty()
    bounds = None
    if flags & FLAG_BOUNDS:
        bounds = bounds_block.from_bytes(bytes(buf[bounds_off : bounds_off + bounds_length]), shape[1], f"bounds block at offset {bounds_off}")
    payload = bytes(buf[payload_off:end])
    return Frame(
        codec_id=codec_id, shape=tuple(shape), payload=payload, specials=specials,
        sample_coded=bool(flags & FLAG_SAMPLE_CODED), segments=segments, skipped=bool(flags & FLAG_SKIPPED),
        repeated=tuple(repeated.tolist()), bounds=bounds,
    )


def _block_of_2d(buf: memoryview, off: int, end: int, shape: list[int], name: str, what: str) -> tuple[int, int, int]:
    """(offset, length, next offset) of the length-prefixed ``name`` block at ``off``, which
    only 2-D streams hold (they ``what``)."""
    length_off = off
    length, off = read_varint(buf, off, end, f"{name}_length")
    if len(shape) != 2:
        raise FormatError(f"{name} block at offset {length_off} in a stream of shape {tuple(shape)}: only 2-D streams {what}")
    _need(buf, off, length, f"the {name} block", end)
    return off, length, off + length


def with_repeats(blob: bytes, records: int, repeated: np.ndarray) -> bytes:
    """The stream of ``records`` records whose ``repeated`` ones (increasing indices, each a
    repeat of the record before it) are left out of ``blob``, the stream of the others."""
    frame = unpack(blob)
    if len(frame.shape) != 2 or frame.shape[0] + len(repeated) != records or frame.repeated:
        raise ValueError(f"a stream of {frame.shape} does not hold the {records - len(repeated)} records kept of {records}")
    return _repacked(frame, shape=(records, frame.shape[1]), repeated=repeated)


def with_bounds(blob: bytes, bounds: tuple[np.ndarray, np.ndarray]) -> bytes:
    """``blob`` with per-column ``bounds`` (see :func:`pack`) that its decoded values are clamped to."""
    frame = unpack(blob)
    if frame.bounds is not None:
        raise ValueError("the stream states bounds already")
    return _repacked(frame, bounds=bounds)


def _repacked(frame: Frame, **changes: Any) -> bytes:
    """The stream of ``frame`` with some of :func:`pack`'s arguments changed."""
    fields = dict(
        shape=frame.shape, specials=frame.specials, sample_coded=frame.sample_coded, segments=frame.segments,
        skipped=frame.skipped, repeated=np.asarray(frame.repeated) if frame.repeated else None, bounds=frame.bounds,
    )
    fields.update(changes)
    return pack(frame.codec_id, payload=frame.payload, **fields)
