"""Container framing of ltc-beam bitstreams (byte layout: ``schemas/BITSTREAM.md``).

Data flow: (codec id, array shape, entropy-coded payload, NaN/±Inf side channel) -> bytes,
and back.  This module knows nothing about lattices or entropy models: the payload is
opaque bytes produced by the codec (``ltc_beam.entropy``).

Layout (version 1, little-endian everywhere)::

    magic "LTCB" | version u16 | flags u16 | codec id 32 x ASCII hex | ndim u64 |
    shape u64[ndim] | specials_length u64 | specials | payload_length u64 | payload |
    checksum u32 (CRC-32 of every byte before it)

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
import zstandard

from .errors import CodecMismatchError, FormatError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "FLAG_SPECIALS",
    "CODEC_ID_LENGTH",
    "MAX_NDIM",
    "FIXED_HEADER",
    "LAYOUT",
    "SPECIALS_LAYOUT",
    "SpecialValues",
    "Frame",
    "pack",
    "unpack",
    "split_specials",
    "merge_specials",
]

MAGIC = b"LTCB"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
#: flags bit 0: a specials block is present.  Every other bit must be zero in version 1.
FLAG_SPECIALS = 0x0001
KNOWN_FLAGS = FLAG_SPECIALS
CODEC_ID_LENGTH = 32
MAX_NDIM = 32
MAX_NUMEL = 2**63 - 1
ZSTD_LEVEL = 3

#: magic, version, flags, codec id, ndim: the fixed 48-byte prefix.
FIXED_HEADER = struct.Struct("<4sHH32sQ")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_CODEC_ID_RE = re.compile(r"[0-9a-f]{32}")


class Field(NamedTuple):
    """One row of a layout table: offset and size are expressions in the named variables."""

    name: str
    offset: str
    size: str
    type: str


#: The container layout, in order; mirrored (and checked by tests) in schemas/BITSTREAM.md.
#: Variables: ndim, specials_length, payload_length.
LAYOUT: tuple[Field, ...] = (
    Field("magic", "0", "4", "bytes[4]"),
    Field("version", "4", "2", "u16"),
    Field("flags", "6", "2", "u16"),
    Field("codec_id", "8", "32", "ascii[32]"),
    Field("ndim", "40", "8", "u64"),
    Field("shape", "48", "8*ndim", "u64[ndim]"),
    Field("specials_length", "48 + 8*ndim", "8", "u64"),
    Field("specials", "56 + 8*ndim", "specials_length", "bytes[specials_length]"),
    Field("payload_length", "56 + 8*ndim + specials_length", "8", "u64"),
    Field("payload", "64 + 8*ndim + specials_length", "payload_length", "bytes[payload_length]"),
    Field("checksum", "64 + 8*ndim + specials_length + payload_length", "4", "u32"),
)

#: The specials block after zstandard decompression.  Variables: numel (product of shape),
#: M (number of special values = number of set mask bits).
SPECIALS_LAYOUT: tuple[Field, ...] = (
    Field("mask", "0", "(numel + 7) // 8", "u8[(numel + 7) // 8]"),
    Field("bits", "(numel + 7) // 8", "4*M", "u32[M]"),
)


@dataclass(frozen=True, eq=False)
class SpecialValues:
    """NaN/±Inf of an array: flat C-order ``positions`` (int64, strictly increasing) and
    their exact float32 bit patterns ``bits`` (uint32)."""

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
        if ((bits & 0x7F800000) != 0x7F800000).any():
            raise ValueError("special values must be NaN or ±Inf bit patterns (exponent all ones)")
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

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


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


def _encode_specials(specials: SpecialValues, numel: int) -> bytes:
    mask = np.zeros(numel, dtype=bool)
    mask[specials.positions] = True
    raw = np.packbits(mask, bitorder="little").tobytes() + specials.bits.astype("<u4").tobytes()
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw)


def _decode_specials(block: memoryview, numel: int, offset: int) -> SpecialValues:
    where = f"specials block at offset {offset}"
    data = bytes(block)
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where} is not a zstandard frame: {exc}") from None
    mask_bytes = (numel + 7) // 8
    if size < 0:
        raise FormatError(f"{where}: zstandard frame does not state its content size")
    if size < mask_bytes + 4 or (size - mask_bytes) % 4 or (size - mask_bytes) // 4 > numel:
        raise FormatError(
            f"{where}: decompressed size {size} is impossible for {numel} values "
            f"(expected {mask_bytes} + 4*M bytes with 1 <= M <= {numel})"
        )
    try:
        dobj = zstandard.ZstdDecompressor().decompressobj()
        raw = dobj.decompress(data)
        complete = dobj.eof and not dobj.unused_data
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where} is corrupt: {exc}") from None
    if not complete or len(raw) != size:
        raise FormatError(f"{where}: zstandard frame is truncated or followed by extra bytes")
    m = (size - mask_bytes) // 4
    mask = np.frombuffer(raw, dtype=np.uint8, count=mask_bytes)
    bits_set = np.unpackbits(mask, bitorder="little")
    if bits_set[numel:].any():
        raise FormatError(f"{where}: mask has bits set beyond the {numel} values")
    pos = np.flatnonzero(bits_set[:numel])
    if pos.size != m:
        raise FormatError(f"{where}: mask marks {pos.size} values but {m} bit patterns are stored")
    bits = np.frombuffer(raw, dtype="<u4", offset=mask_bytes, count=m).astype(np.uint32)
    if ((bits & 0x7F800000) != 0x7F800000).any():
        raise FormatError(f"{where}: a stored bit pattern is not NaN or ±Inf")
    return SpecialValues(pos, bits)


# ---------------------------------------------------------------- framing
def _check_codec_id(codec_id: Any, what: str) -> str:
    if not isinstance(codec_id, str) or not _CODEC_ID_RE.fullmatch(codec_id):
        raise ValueError(f"{what} must be {CODEC_ID_LENGTH} lowercase hex characters, got {codec_id!r}")
    return codec_id


def pack(
    codec_id: str,
    shape: tuple[int, ...],
    payload: bytes | bytearray | memoryview,
    specials: SpecialValues | None = None,
) -> bytes:
    """Frame an entropy-coded payload (see module docstring and schemas/BITSTREAM.md)."""
    _check_codec_id(codec_id, "codec_id")
    shape = tuple(int(s) for s in shape)
    if len(shape) > MAX_NDIM:
        raise ValueError(f"at most {MAX_NDIM} dimensions are supported, got {len(shape)}")
    numel = 1
    for s in shape:
        if s < 0:
            raise ValueError(f"negative dimension in shape {shape}")
        numel *= s
    if numel > MAX_NUMEL:
        raise ValueError(f"shape {shape} has more than 2**63 - 1 values")
    payload = bytes(payload)
    if specials is not None and len(specials):
        if int(specials.positions[-1]) >= numel:
            raise ValueError(f"special-value position {int(specials.positions[-1])} outside shape {shape}")
        block = _encode_specials(specials, numel)
        flags = FLAG_SPECIALS
    else:
        block = b""
        flags = 0
    parts = [
        FIXED_HEADER.pack(MAGIC, FORMAT_VERSION, flags, codec_id.encode("ascii"), len(shape)),
        struct.pack(f"<{len(shape)}Q", *shape),
        _U64.pack(len(block)),
        block,
        _U64.pack(len(payload)),
        payload,
    ]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def _need(buf: memoryview, offset: int, size: int, what: str) -> None:
    remaining = buf.nbytes - offset
    if size > remaining:
        raise FormatError(
            f"truncated bitstream: {what} needs {size} bytes at offset {offset}, "
            f"only {max(remaining, 0)} remain (total {buf.nbytes} bytes)"
        )


def unpack(blob: bytes | bytearray | memoryview, expected_codec_id: str | None = None) -> Frame:
    """Parse and verify a bitstream.

    Raises ``FormatError`` for anything that is not an intact version-1 ltc-beam bitstream
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
    if n < 4 or buf[:4] != MAGIC:
        raise FormatError(
            f"not an ltc-beam bitstream: expected magic {MAGIC!r} at offset 0, "
            f"found {bytes(buf[:4])!r}" + (f" ({n} bytes in total)" if n < 4 else "")
        )
    _need(buf, 4, 2, "the format version")
    (version,) = struct.unpack_from("<H", buf, 4)
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(
            f"unsupported bitstream format version {version} at offset 4; this release of ltc-beam "
            f"supports versions: {', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    _need(buf, 0, FIXED_HEADER.size, "the fixed header")
    _, _, flags, raw_id, ndim = FIXED_HEADER.unpack_from(buf, 0)
    if flags & ~KNOWN_FLAGS:
        raise FormatError(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:04x} in flags at offset 6")
    if ndim > MAX_NDIM:
        raise FormatError(f"ndim {ndim} at offset 40 exceeds the maximum of {MAX_NDIM}")
    off = FIXED_HEADER.size
    _need(buf, off, 8 * ndim, f"the shape ({ndim} x u64)")
    shape = struct.unpack_from(f"<{ndim}Q", buf, off)
    off += 8 * ndim
    _need(buf, off, 8, "specials_length")
    (specials_length,) = _U64.unpack_from(buf, off)
    off += 8
    _need(buf, off, specials_length, "the specials block")
    specials_off = off
    off += specials_length
    _need(buf, off, 8, "payload_length")
    (payload_length,) = _U64.unpack_from(buf, off)
    off += 8
    _need(buf, off, payload_length, "the payload")
    payload_off = off
    off += payload_length
    _need(buf, off, 4, "the checksum")
    if n != off + 4:
        raise FormatError(
            f"{n - off - 4} unexpected bytes after the checksum at offset {off} "
            f"(the stream should end at offset {off + 4})"
        )
    (stored,) = _U32.unpack_from(buf, off)
    computed = zlib.crc32(buf[:off])
    if stored != computed:
        raise FormatError(
            f"checksum mismatch: stored CRC-32 0x{stored:08x} at offset {off}, computed "
            f"0x{computed:08x} over bytes [0, {off}): the bitstream is corrupt"
        )
    try:
        codec_id = bytes(raw_id).decode("ascii")
    except UnicodeDecodeError:
        codec_id = ""
    if not _CODEC_ID_RE.fullmatch(codec_id):
        raise FormatError(
            f"codec id at offset 8 is not {CODEC_ID_LENGTH} lowercase hex characters: {bytes(raw_id)!r}"
        )
    numel = 1
    for s in shape:
        numel *= s
    if numel > MAX_NUMEL:
        raise FormatError(f"shape {shape} at offset 48 has more than 2**63 - 1 values")
    has_specials = bool(flags & FLAG_SPECIALS)
    if has_specials != (specials_length > 0):
        raise FormatError(
            f"flags at offset 6 say specials are {'present' if has_specials else 'absent'} "
            f"but specials_length at offset {specials_off - 8} is {specials_length}"
        )
    if expected_codec_id is not None and codec_id != expected_codec_id:
        raise CodecMismatchError(codec_id, expected_codec_id)
    if has_specials:
        specials = _decode_specials(buf[specials_off : specials_off + specials_length], numel, specials_off)
    else:
        specials = SpecialValues.empty()
    payload = bytes(buf[payload_off : payload_off + payload_length])
    return Frame(codec_id=codec_id, shape=tuple(int(s) for s in shape), payload=payload, specials=specials)
