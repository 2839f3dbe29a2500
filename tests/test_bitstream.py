"""Tests of ltc_beam.bitstream: layout vs schemas/BITSTREAM.md, round trips, specials, fuzz."""

from __future__ import annotations

import ast
import operator
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard

from ltc_beam import bitstream as bs
from ltc_beam.bitstream import (
    Frame,
    SpecialValues,
    merge_specials,
    pack,
    split_specials,
    unpack,
)
from ltc_beam.entropy import SymbolDecoder, SymbolEncoder, SymbolTables
from ltc_beam.errors import CodecMismatchError, FormatError, LtcError

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "BITSTREAM.md"
CID = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


# ---------------------------------------------------------------- the schema file
def parse_table(heading: str) -> list[dict[str, str]]:
    text = SCHEMA.read_text()
    marker = f"## {heading}\n"
    assert marker in text, f"section {heading!r} missing from {SCHEMA}"
    lines = text.split(marker, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("`", "") for c in line.strip().strip("|").split("|")])
    header, sep, body = rows[0], rows[1], rows[2:]
    assert all(set(c) <= set("-: ") for c in sep)
    return [dict(zip(header, row)) for row in body]


_OPS = {ast.Add: operator.add, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def evaluate(expr: str, env: dict[str, int]) -> int:
    """Evaluate a layout expression (integers, names, + * // and parentheses only)."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise AssertionError(f"unsupported syntax in layout expression {expr!r}")

    return ev(ast.parse(expr, mode="eval"))


@pytest.mark.parametrize("heading,layout", [
    ("Container layout", bs.LAYOUT), ("Specials block", bs.SPECIALS_LAYOUT), ("Specials list", bs.SPECIALS_LIST_LAYOUT),
    ("Bounds block (version 7, flags bit 6)", bs.BOUNDS_LAYOUT),
])
def test_schema_tables_match_code(heading, layout):
    rows = parse_table(heading)
    assert [r["Field"] for r in rows] == [f.name for f in layout]
    for row, field in zip(rows, layout):
        assert (row["Offset"], row["Size"], row["Type"]) == (field.offset, field.size, field.type), field.name


@pytest.mark.parametrize("layout,variables", [
    (bs.LAYOUT, ("shape_size", "repeats_length_size", "repeats_length", "segment_count_size", "segment_lengths_size", "specials_length_size", "specials_length", "bounds_length_size", "bounds_length", "payload_length")),
    (bs.SPECIALS_LAYOUT, ("numel", "M")),
    (bs.BOUNDS_LAYOUT, ("d", "B")),
    (bs.SPECIALS_LIST_LAYOUT, ("pattern_count_size", "count_size", "gaps_size", "indices_size", "pattern_count")),
])
def test_layout_fields_are_contiguous(layout, variables):
    rng = np.random.default_rng(0)
    for _ in range(50):
        env = {v: int(rng.integers(0, 1000)) for v in variables}
        assert evaluate(layout[0].offset, env) == 0
        for a, b in zip(layout, layout[1:]):
            assert evaluate(a.offset, env) + evaluate(a.size, env) == evaluate(b.offset, env), (a, b)


def test_fixed_header_struct_matches_layout():
    sizes = {"u8": 1, "u32": 4}
    fmt_codes = {"bytes[3]": "3s", "u8": "B", "bytes[16]": "16s"}
    fixed = bs.LAYOUT[:4]
    assert bs.FIXED_HEADER.format == "<" + "".join(fmt_codes[f.type] for f in fixed)
    assert bs.FIXED_HEADER.size == int(bs.LAYOUT[4].offset) == 21
    assert bs.LAYOUT[4].name == "ndim" and bs.LAYOUT[4].size == "1" and bs.MAX_NDIM < 128
    for f in bs.LAYOUT:
        if f.type in sizes:
            assert f.size == str(sizes[f.type]), f
    assert bs.MAGIC == b"LTC" and bs.FORMAT_VERSION == 1 and bs.FORMAT_VERSION in bs.SUPPORTED_VERSIONS
    assert bs.CODEC_ID_LENGTH == 32 and bs.CODEC_ID_BYTES == 16
    assert bs.LAYOUT[-1].name == "checksum" and bs.LAYOUT[-1].size == "4"
    text = SCHEMA.read_text()
    assert "`LTC`" in text and "little-endian" in text and "CRC-32" in text and "LEB128" in text


# An independent LEB128 implementation, so the tests do not just echo the module.
def leb128(value: int) -> bytes:
    out = []
    while True:
        out.append(value & 0x7F)
        value >>= 7
        if not value:
            break
    return bytes([b | 0x80 for b in out[:-1]] + out[-1:])


def read_leb128(blob: bytes, offset: int) -> tuple[int, int]:
    """(value, size in bytes) of the varint at ``offset``."""
    value = shift = size = 0
    while True:
        byte = blob[offset + size]
        value |= (byte & 0x7F) << shift
        shift += 7
        size += 1
        if byte < 0x80:
            return value, size


def build(shape, payload=b"", specials_block=None, *, flags=None, codec=CID, version=1,
          raw_shape=None, raw_specials_length=None) -> bytes:
    """Assemble a stream by hand from the schema (raw_* override the encoded varints)."""
    if flags is None:
        flags = 1 if specials_block is not None else 0
    body = b"LTC" + bytes([version, flags]) + bytes.fromhex(codec) + leb128(len(shape))
    body += raw_shape if raw_shape is not None else b"".join(leb128(s) for s in shape)
    if specials_block is not None:
        body += raw_specials_length if raw_specials_length is not None else leb128(len(specials_block))
        body += specials_block
    body += payload
    return body + struct.pack("<I", zlib.crc32(body))


def sample_blobs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(13, 5)).astype(np.float32)
    x[2, 3], x[7, 0], x[12, 4] = np.nan, np.inf, -np.inf
    _, sp = split_specials(x)
    return [
        pack(CID, x.shape, rng.bytes(40), sp),
        pack(CID, (), b""),
        pack(OTHER, (0,), b""),
        pack(CID, (3, 1, 4, 1, 5), rng.bytes(1000)),
        pack(CID, (1,) * bs.MAX_NDIM, b"\x01\x02\x03\x04"),
        pack(CID, (9,), b"", SpecialValues(np.arange(9), np.full(9, 0x7FC00000, np.uint32))),
        pack(CID, x.shape, rng.bytes(30), sp, segments=(4, 9)),
        pack(CID, (300, 2), rng.bytes(7), segments=(1, 200, 99)),
        pack(CID, (300, 2), rng.bytes(7), segments=(20,) * 10 + (50,) * 2),  # runs: a balanced panel's lengths
        pack(CID, x.shape, rng.bytes(30), SpecialValues(sp.positions[:2], sp.bits[:2]), segments=(4, 6), repeated=np.array([1, 5, 12])),
        pack(CID, (900, 3), rng.bytes(20), repeated=np.arange(1, 800, 3)),
        pack(CID, (2000,), b"", SpecialValues(np.arange(3, 2000, 50), np.array([0x7FC00000, 0xFF800000, 0x7F800000] * 14, np.uint32)[:40])),
        pack(CID, (5000,), b"", SpecialValues(np.arange(0, 5000, 7), np.full(715, 0x7FC04C54, np.uint32))),
        pack(CID, x.shape, rng.bytes(30), sp, segments=(4, 9), bounds=(np.array([-1, -np.inf, 0, -2, -np.inf]), np.array([1, 2.5, np.inf, 7, np.inf]))),
        pack(CID, (300, 2), rng.bytes(9), sample_coded=True, bounds=(np.zeros(2), np.full(2, np.inf))),
        pack(CID, (900, 40), rng.bytes(9), repeated=np.arange(1, 800, 3), bounds=(np.zeros(40), np.full(40, 255.0))),  # zstd body
    ]


@pytest.mark.parametrize("blob", sample_blobs(), ids=lambda b: f"{len(b)}B")
def test_real_streams_follow_the_schema_tables(blob):
    """Read every field at the offset the schema gives and compare with unpack()."""
    rows = {r["Field"]: r for r in parse_table("Container layout")}
    frame = unpack(blob)
    flags = blob[evaluate(rows["flags"]["Offset"], {})]
    ndim, ndim_size = read_leb128(blob, evaluate(rows["ndim"]["Offset"], {}))
    assert ndim_size == evaluate(rows["ndim"]["Size"], {})
    off = evaluate(rows["shape"]["Offset"], {})
    shape = []
    for _ in range(ndim):
        value, size = read_leb128(blob, off)
        shape.append(value)
        off += size
    env = {"shape_size": off - evaluate(rows["shape"]["Offset"], {})}
    env["repeats_length"] = env["repeats_length_size"] = 0
    if flags & 16:
        env["repeats_length"], env["repeats_length_size"] = read_leb128(blob, off)
        off += env["repeats_length_size"] + env["repeats_length"]
        block = blob[off - env["repeats_length"] : off]
        raw = block[1:] if block[0] == 0 else zstandard.ZstdDecompressor().decompress(block[1:])
        values, at = [], 0
        while at < len(raw):
            value, size = read_leb128(raw, at)
            values.append(value)
            at += size
        assert values[0] == len(values) - 1 and tuple(np.cumsum(values[1:]).tolist()) == frame.repeated
    else:
        assert frame.repeated == ()
    env["segment_count_size"] = env["segment_lengths_size"] = 0
    if flags & 4:
        count, env["segment_count_size"] = read_leb128(blob, off)
        off += env["segment_count_size"]
        lengths = []
        for _ in range(count):
            value, size = read_leb128(blob, off)
            off += size
            env["segment_lengths_size"] += size
            times = 1
            if flags & 32:  # runs: a length, then how many segments in a row have it
                times, size = read_leb128(blob, off)
                off += size
                env["segment_lengths_size"] += size
            lengths += [value] * times
        assert tuple(lengths) == frame.segments and blob[3] == (7 if flags & 64 else 6 if flags & 32 else 5 if flags & 16 else 3)
    else:
        assert frame.segments is None
    if flags & 1:
        env["specials_length"], env["specials_length_size"] = read_leb128(blob, off)
        off += env["specials_length_size"] + env["specials_length"]
    else:
        env["specials_length"] = env["specials_length_size"] = 0
    if flags & 64:
        env["bounds_length"], env["bounds_length_size"] = read_leb128(blob, off)
    else:
        env["bounds_length"] = env["bounds_length_size"] = 0
    env["payload_length"] = 0
    env["payload_length"] = len(blob) - 4 - evaluate(rows["payload"]["Offset"], env)
    assert env["payload_length"] >= 0

    def field(name):
        off, size = evaluate(rows[name]["Offset"], env), evaluate(rows[name]["Size"], env)
        return blob[off : off + size]

    assert field("magic") == b"LTC"
    assert field("version")[0] == (7 if flags & 64 else 6 if flags & 32 else 5 if flags & 16 else 3 if flags & 4 else 2 if flags & 2 else 1)
    assert field("codec_id") == bytes.fromhex(frame.codec_id)
    assert tuple(shape) == frame.shape
    assert field("payload") == frame.payload
    end = evaluate(rows["checksum"]["Offset"], env)
    assert struct.unpack("<I", field("checksum"))[0] == zlib.crc32(blob[:end])
    assert len(blob) == end + 4 == (
        26 + env["shape_size"] + env["repeats_length_size"] + env["repeats_length"] + env["segment_count_size"] + env["segment_lengths_size"]
        + env["specials_length_size"] + env["specials_length"] + env["bounds_length_size"] + env["bounds_length"] + env["payload_length"]
    )
    if flags & 64:
        assert_bounds_follow_the_schema(field("bounds"), frame)
    else:
        assert frame.bounds is None
    assert bool(flags & 1) == (len(frame.specials) > 0) == (env["specials_length"] > 0)
    if env["specials_length"] and field("specials")[0] != 0x28:  # a list: its method byte, not zstd's magic
        assert_list_follows_the_schema(field("specials"), frame.specials)
    elif env["specials_length"]:
        raw = zstandard.ZstdDecompressor().decompress(field("specials"))
        srows = {r["Field"]: r for r in parse_table("Specials block")}
        senv = {"numel": frame.coded_records * frame.shape[1] if frame.repeated else frame.numel, "M": len(frame.specials)}
        moff, msize = evaluate(srows["mask"]["Offset"], senv), evaluate(srows["mask"]["Size"], senv)
        boff, bsize = evaluate(srows["bits"]["Offset"], senv), evaluate(srows["bits"]["Size"], senv)
        assert len(raw) == boff + bsize
        mask = np.unpackbits(np.frombuffer(raw[moff : moff + msize], np.uint8), bitorder="little")
        np.testing.assert_array_equal(np.flatnonzero(mask), frame.specials.positions)
        np.testing.assert_array_equal(np.frombuffer(raw[boff:], "<u4"), frame.specials.bits)


def assert_bounds_follow_the_schema(block: bytes, frame: bs.Frame) -> None:
    """Read a bounds block at the offsets of the "Bounds block" table."""
    assert block[0] in (0, 1)
    body = block[1:] if block[0] == 0 else zstandard.ZstdDecompressor().decompress(block[1:])
    rows = {r["Field"]: r for r in parse_table("Bounds block (version 7, flags bit 6)")}
    lower, upper = frame.bounds
    stated = np.stack([np.isfinite(lower), np.isfinite(upper)], axis=1).reshape(-1)
    env = {"d": frame.shape[1], "B": int(stated.sum())}
    at, size = evaluate(rows["bitmap"]["Offset"], env), evaluate(rows["bitmap"]["Size"], env)
    bits = np.unpackbits(np.frombuffer(body[at : at + size], np.uint8), bitorder="little")
    np.testing.assert_array_equal(bits, np.pad(stated, (0, 8 * size - stated.size)))
    at, size = evaluate(rows["values"]["Offset"], env), evaluate(rows["values"]["Size"], env)
    assert len(body) == at + size
    np.testing.assert_array_equal(np.frombuffer(body[at:], "<f4"), np.stack([lower, upper], axis=1).reshape(-1)[stated])


def assert_list_follows_the_schema(block: bytes, specials: SpecialValues) -> None:
    """Read a specials list at the offsets of the "Specials list" table."""
    assert block[0] in (1, 2)
    raw = block[1:] if block[0] == 1 else zstandard.ZstdDecompressor().decompress(block[1:])
    rows = {r["Field"]: r for r in parse_table("Specials list")}

    def varints_at(at: int, n: int) -> tuple[list[int], int]:
        values = []
        for _ in range(n):
            value, size = read_leb128(raw, at)
            values.append(value)
            at += size
        return values, at

    (k,), k_end = varints_at(0, 1)
    (m,), m_end = varints_at(k_end, 1)
    gaps, g_end = varints_at(m_end, m)
    indices, i_end = varints_at(g_end, m if 1 < k < m else 0)
    env = {"pattern_count_size": k_end, "count_size": m_end - k_end, "gaps_size": g_end - m_end, "indices_size": i_end - g_end,
           "pattern_count": k}
    assert evaluate(rows["gaps"]["Offset"], env) == m_end and evaluate(rows["indices"]["Offset"], env) == g_end
    start = evaluate(rows["patterns"]["Offset"], env)
    assert start == i_end and start + evaluate(rows["patterns"]["Size"], env) == len(raw)
    patterns = np.frombuffer(raw[start:], "<u4")
    np.testing.assert_array_equal(np.cumsum(np.array(gaps) + 1) - 1, specials.positions)
    bits = patterns[indices] if indices else patterns if k == m else np.repeat(patterns, m)
    np.testing.assert_array_equal(bits, specials.bits)


NULL_BITS = struct.pack("<I", 0x7FC04C54)


def test_specials_take_the_shorter_of_mask_and_list():
    """A mask's zstandard frame took 28 bytes for one null among 21,024 values: a list takes
    about a byte or two a scattered special (one pattern stored once), and runs of them
    compress as runs of zero gaps; dense specials at random keep the mask. Both decode alike,
    and so does a mask at zstd's level 3, as writers before the list wrote it."""
    rng = np.random.default_rng(8)
    n = 21_024

    def block_of(positions, bits) -> bytes:
        blob = pack(CID, (n,), b"", SpecialValues(positions, bits))
        assert unpack(blob).specials == SpecialValues(positions, bits)
        length, size = read_leb128(blob, 25)  # after the magic, version, flags, id, ndim and a 3-byte shape
        return blob[25 + size : 25 + size + length]

    one = block_of(np.array([20_000]), np.array([0x7FC04C54], np.uint32))
    assert one[0] == 1 and len(one) <= 10  # method, K, M, a 3-byte gap, the pattern
    scattered = np.sort(rng.choice(n, 105, replace=False))
    listed = block_of(scattered, np.full(105, 0x7FC04C54, np.uint32))
    mask = np.zeros(n, bool)
    mask[scattered] = True
    as_mask = zstandard.ZstdCompressor(level=19).compress(np.packbits(mask, bitorder="little").tobytes() + NULL_BITS * 105)
    assert listed[0] in (1, 2) and len(listed) < 0.85 * len(as_mask)
    mixed = block_of(scattered, rng.choice(np.array([0x7FC00000, 0x7F800000, 0xFF800000], np.uint32), 105))
    assert mixed[0] in (1, 2)
    glitches = block_of(scattered, rng.integers(0, 2**32, 105, dtype=np.uint64).astype(np.uint32))  # each its own
    assert glitches[0] in (1, 2)
    runs = np.concatenate([np.arange(1000, 6000), np.arange(9000, 15000)])
    assert len(block_of(runs, np.full(runs.size, 0x7FC00000, np.uint32))) < 50  # two missing stretches: zeros to zstd
    dense = np.flatnonzero(rng.random(n) < 0.4)
    assert block_of(dense, np.full(dense.size, 0x7FC00000, np.uint32))[0] == 0x28  # 40 % at random: the mask
    legacy = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(
        np.packbits(mask, bitorder="little").tobytes() + NULL_BITS * 105)
    blob = build((n,), b"", legacy)
    assert unpack(blob).specials == SpecialValues(scattered, np.full(105, 0x7FC04C54, np.uint32))


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("shape", [
    (), (0,), (7,), (3, 0, 2), (2, 3, 4), (1,) * 32, (2**40, 2**20), (127, 128, 2**14 - 1, 2**14),
    (2**63 - 1,), (0, 2**63 - 1, 2**63 - 1),
])
def test_pack_unpack_roundtrip(shape):
    payload = bytes(range(256)) * 3
    blob = pack(CID, shape, payload)
    frame = unpack(blob, CID)
    assert frame == Frame(CID, tuple(shape), payload, SpecialValues.empty())
    assert frame.numel == int(np.prod(shape, dtype=object)) if shape else frame.numel == 1
    assert unpack(bytearray(blob)) == frame and unpack(memoryview(blob)) == frame
    assert pack(CID, shape, payload) == blob  # deterministic
    assert blob == build(shape, payload)  # the schema, assembled by hand


def test_compact_header():
    """The framing of a short telemetry stream costs at most 30 bytes (it was 84)."""
    payload = bytes(range(110))
    for n in (1, 100, 127, 128, 2**14, 2**21 - 1):
        blob = pack(CID, (n, 6), payload)
        assert len(blob) - len(payload) <= 30, n
    assert len(pack(CID, (2**21 - 1, 6), payload)) - len(payload) == 30
    assert len(pack(CID, (100, 6), payload)) - len(payload) == 21 + 1 + 1 + 1 + 4
    assert len(pack(CID, (), b"")) == 26  # the smallest stream
    blob = pack(CID, (100, 6), payload)
    assert blob[:3] == b"LTC" and blob[3] == 1 and blob[4] == 0
    assert blob[5:21] == bytes.fromhex(CID) and blob[21:24] == bytes([2, 100, 6])
    assert blob[24:-4] == payload


@pytest.mark.parametrize("value,encoded", [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (2**14 - 1, b"\xff\x7f"), (2**14, b"\x80\x80\x01"), (2**21 - 1, b"\xff\xff\x7f"),
    (2**63 - 1, b"\xff" * 8 + b"\x7f"),
])
def test_varint_encoding(value, encoded):
    assert leb128(value) == encoded
    blob = pack(CID, (value,), b"")
    assert blob[22 : 22 + len(encoded)] == encoded and len(blob) == 26 + len(encoded)
    assert unpack(blob).shape == (value,)


def test_special_values_roundtrip_exact_bits():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 9)).astype(np.float32)
    u = x.view(np.uint32)
    patterns = {
        (0, 0): 0x7FC00000,  # quiet NaN
        (1, 1): 0xFFC00000,  # negative quiet NaN
        (2, 2): 0x7F800001,  # signalling NaN, payload 1
        (3, 3): 0x7FBFFFFF,  # signalling NaN, full payload
        (4, 4): 0xFFD2A5F0,  # negative NaN with payload
        (5, 5): 0x7F800000,  # +Inf
        (6, 6): 0xFF800000,  # -Inf
        (39, 8): 0x7FC0BEEF,  # last element
    }
    for (i, j), p in patterns.items():
        u[i, j] = p
    x[10, 0] = -0.0
    x[11, 0] = 1e30
    finite, sp = split_specials(x)
    assert finite.dtype == np.float32 and finite.shape == x.shape and np.isfinite(finite).all()
    assert len(sp) == len(patterns)
    assert finite.view(np.uint32)[10, 0] == 0x80000000  # -0.0 is finite: it stays on the lossy path
    assert finite[11, 0] == np.float32(1e30)
    blob = pack(CID, x.shape, b"\x07" * 12, sp)
    frame = unpack(blob, CID)
    assert frame.specials == sp
    restored = merge_specials(finite, frame.specials)
    np.testing.assert_array_equal(restored.view(np.uint32), x.view(np.uint32))
    # decoded finite values stay as decoded; specials overwrite exactly their positions
    lossy = finite + np.float32(0.25)
    out = merge_specials(lossy, frame.specials)
    mask = ~np.isfinite(x)
    np.testing.assert_array_equal(out.view(np.uint32)[mask], x.view(np.uint32)[mask])
    np.testing.assert_array_equal(out[~mask], lossy[~mask])


def test_all_special_and_no_special_arrays():
    x = np.full((1000,), np.nan, np.float32)
    x[::3] = np.inf
    finite, sp = split_specials(x)
    assert len(sp) == 1000 and not finite.any()
    blob = pack(CID, x.shape, b"", sp)
    assert len(blob) < 200  # the bitmap + patterns compress well
    out = merge_specials(finite, unpack(blob).specials)
    np.testing.assert_array_equal(out.view(np.uint32), x.view(np.uint32))
    finite, sp = split_specials(np.arange(5, dtype=np.float64))
    assert len(sp) == 0 and finite.dtype == np.float32
    assert merge_specials(finite, None).dtype == np.float32
    assert pack(CID, (5,), b"", sp) == pack(CID, (5,), b"", None)


def test_special_values_validation():
    with pytest.raises(ValueError):
        SpecialValues(np.array([3, 3]), np.array([0x7F800000, 0x7F800000]))
    assert len(SpecialValues(np.array([1]), np.array([0x3F800000]))) == 1  # finite outliers may be kept exactly
    with pytest.raises(ValueError):
        SpecialValues(np.array([-1]), np.array([0x7F800000]))
    sp = SpecialValues(np.array([5]), np.array([0x7F800000]))
    with pytest.raises(ValueError):
        pack(CID, (5,), b"", sp)
    with pytest.raises(FormatError):
        merge_specials(np.zeros(5, np.float32), sp)


def test_pack_argument_validation():
    for bad in ["0123", CID.upper(), CID[:-1] + "g", 12345, CID + "0"]:
        with pytest.raises(ValueError):
            pack(bad, (1,), b"")
    with pytest.raises(ValueError):
        pack(CID, (-1,), b"")
    with pytest.raises(ValueError):
        pack(CID, (1,) * 33, b"")
    with pytest.raises(ValueError):
        pack(CID, (2**32, 2**32), b"")
    with pytest.raises(ValueError, match="not below 2\\*\\*63"):
        pack(CID, (0, 2**63), b"")  # numel 0, but the dimension does not fit a varint
    with pytest.raises(ValueError):
        unpack(pack(CID, (1,), b""), expected_codec_id="nope")
    with pytest.raises(TypeError):
        unpack("LTCB")


# ---------------------------------------------------------------- error behaviour
def refresh_crc(blob: bytes | bytearray) -> bytes:
    body = bytes(blob[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


def test_codec_mismatch_names_both_ids():
    blob = pack(CID, (4,), b"abcd")
    with pytest.raises(CodecMismatchError) as info:
        unpack(blob, OTHER)
    assert CID in str(info.value) and OTHER in str(info.value)
    assert info.value.needed == CID and info.value.supplied == OTHER
    assert isinstance(info.value, LtcError)


def test_error_messages():
    blob = pack(CID, (4, 2), b"abcd")  # 21 fixed + 3 varints + 4 payload + 4 checksum
    assert len(blob) == 32
    cases = {
        b"PK\x03\x04": "magic",
        b"": "magic",
        b"LT": r"magic b'LTC' at offset 0, found b'LT' \(2 bytes in total\)",
        b"LTCB\x01\x00": "version 66 at offset 3",  # the 84-byte layout's magic
        blob[:3]: "format version needs 1 byte at offset 3",
        blob[:3] + b"\x09" + blob[4:]: "supports versions: 1",
        blob[:20]: "fixed header needs 21 bytes at offset 0, only 16 remain before the 4-byte checksum",
        blob[:25]: "varint ndim at offset 21 needs at least 1 bytes, only 0 remain",
        blob[:27]: r"varint shape\[1\] at offset 23 needs at least 1 bytes, only 0 remain",
        blob[:-1]: "checksum mismatch",
        blob + b"\0": "checksum mismatch",
    }
    for bad, pattern in cases.items():
        with pytest.raises(FormatError, match=pattern):
            unpack(bad)
    flipped = bytearray(blob)
    flipped[25] ^= 4  # inside the payload (offsets 24..27)
    with pytest.raises(FormatError, match=r"checksum mismatch: stored CRC-32 0x[0-9a-f]{8} at offset 28, "
                       r"computed 0x[0-9a-f]{8} over bytes \[0, 28\)"):
        unpack(bytes(flipped))


def test_structural_errors_behind_a_valid_checksum():
    """Inconsistencies that a correct CRC does not excuse."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    x[1, 1] = np.nan
    _, sp = split_specials(x)
    good = pack(CID, x.shape, b"\x01\x00\x00\x00", sp)
    block = good[25 : 25 + good[24]]  # specials_length is one byte at offset 22 + 2
    assert good == build(x.shape, b"\x01\x00\x00\x00", block)

    def variant(offset, data):
        v = bytearray(good)
        v[offset : offset + len(data)] = data
        return refresh_crc(v)

    with pytest.raises(FormatError, match="unknown flag bits 0x80 in flags at offset 4"):
        unpack(variant(4, b"\x81"))
    with pytest.raises(FormatError, match="ndim 33 at offset 21 exceeds the maximum of 32"):
        unpack(variant(21, b"\x21"))
    with pytest.raises(FormatError, match="exceeds the maximum"):
        unpack(build((), raw_shape=b"", flags=0)[:21] + leb128(2**60) + b"\0" * 8)
    # varints: overlong, too large, too long, truncated before the checksum
    with pytest.raises(FormatError, match=r"varint shape\[0\] at offset 22 is not canonical"):
        unpack(build((6, 4), raw_shape=b"\x86\x00\x04"))
    with pytest.raises(FormatError, match=r"varint ndim at offset 21 is not canonical"):
        unpack(build((), raw_shape=b"")[:21] + b"\x80\x00" + b"\0" * 4)
    with pytest.raises(FormatError, match=r"varint shape\[1\] at offset 23 is 9223372036854775808, not below 2\*\*63"):
        unpack(build((6, 0), raw_shape=b"\x06" + b"\x80" * 9 + b"\x01"))
    with pytest.raises(FormatError, match=r"shape\[0\] at offset 22 is longer than 10 bytes"):
        unpack(build((1,), raw_shape=b"\xff" * 11 + b"\x01"))
    with pytest.raises(FormatError, match=r"varint shape\[0\] at offset 22 needs at least 4 bytes, only 3 remain"):
        unpack(build((1,), raw_shape=b"\xff\xff\xff"))
    with pytest.raises(FormatError, match=r"shape \(4294967296, 4294967296\) at offset 22 has more than 2\*\*63 - 1"):
        unpack(build((2**32, 2**32)))
    # specials_length: present exactly when flags bit 0 is set, never 0, checked before use
    with pytest.raises(FormatError, match="specials are present but specials_length at offset 24 is 0"):
        unpack(build((6, 4), b"", b""))
    with pytest.raises(FormatError, match="the specials block needs 4611686018427387904 bytes at offset 33"):
        unpack(build((6, 4), b"", block, raw_specials_length=leb128(2**62)))  # never allocated
    with pytest.raises(FormatError, match=f"the specials block needs {len(block) + 1} bytes at offset 25, "
                       f"only {len(block)} remain before the 4-byte checksum"):
        unpack(build((6, 4), b"", block, raw_specials_length=leb128(len(block) + 1)))
    with pytest.raises(FormatError, match="specials_length"):
        unpack(build((6, 4), b"", b"", raw_specials_length=b"\x80"))  # truncated varint
    # flags bit 0 set on a stream without specials: the payload's first byte is read as specials_length
    no_specials = bytearray(pack(CID, (3,), b"\x00"))
    no_specials[4] = 1
    with pytest.raises(FormatError, match="specials are present"):
        unpack(refresh_crc(no_specials))
    # every 16-byte id is a valid id: a damaged one reads as corruption, an intact other id as a mismatch
    with pytest.raises(FormatError, match="checksum mismatch"):
        unpack(bytes(good[:5]) + b"\xff" * 16 + bytes(good[21:]), CID)
    assert unpack(variant(5, b"\xff" * 16)).codec_id == "ff" * 16

    def with_specials_block(raw: bytes, shape=(6, 4), content_size=True) -> bytes:
        block = zstandard.ZstdCompressor(write_content_size=content_size).compress(raw)
        return build(shape, b"", block)

    mask = np.zeros(3, np.uint8)
    mask[0] = 0b1
    nan = struct.pack("<I", 0x7FC00000)
    assert unpack(with_specials_block(mask.tobytes() + nan)).specials.positions.tolist() == [0]
    bad_blocks = {
        "impossible": mask.tobytes() + nan + b"\0",  # size not mask + 4*M
        "marks 2 values": bytes([0b11, 0, 0]) + nan,  # mask/bits disagree
        "beyond": bytes([1, 0, 0x80]) + nan + nan,  # padding bit set (numel 24 -> exactly 3 bytes: use shape 23)
    }
    finite = unpack(with_specials_block(mask.tobytes() + struct.pack("<I", 0x3F800000)))
    assert finite.specials.bits.tolist() == [0x3F800000]  # a finite outlier kept exactly
    for pattern, raw in bad_blocks.items():
        shape = (23,) if pattern == "beyond" else (6, 4)
        with pytest.raises(FormatError, match=pattern):
            unpack(with_specials_block(raw, shape))
    with pytest.raises(FormatError, match="content size"):
        unpack(with_specials_block(mask.tobytes() + nan, content_size=False))
    junk = bytearray(with_specials_block(mask.tobytes() + nan))
    junk[25:29] = b"\0\0\0\0"  # the zstd frame's magic number (block starts at 22 + 2 + 1)
    with pytest.raises(FormatError, match="specials block at offset 25"):
        unpack(refresh_crc(junk))
    # a list: method byte, then K, M, gaps (indices) and the patterns, every byte used
    listed = unpack(build((6, 4), b"", b"\x01" + bytes([1, 2, 0, 3]) + nan)).specials
    assert listed.positions.tolist() == [0, 4] and listed.bits.tolist() == [0x7FC00000] * 2
    packed = b"\x02" + zstandard.ZstdCompressor(write_content_size=True).compress(bytes([2, 3, 0, 0, 20, 1, 0, 1]) + nan + nan)
    assert unpack(build((6, 4), b"", packed)).specials.positions.tolist() == [0, 1, 22]
    bad_lists = {
        "unknown layout 3": b"\x03" + bytes([1, 1, 0]) + nan,
        "truncated count of patterns": b"\x01\x81",
        "0 patterns do not fit": b"\x01" + bytes([0, 1, 0]) + nan,
        "3 patterns do not fit a block of 8 bytes": b"\x01" + bytes([3, 1, 0, 0]) + nan,
        "1 gaps and indices for 1 specials of 2 patterns": b"\x01" + bytes([2, 1, 0]) + nan + nan,
        "2 gaps and indices for 1 specials": b"\x01" + bytes([1, 1, 0, 5]) + nan,
        "position 30 lies outside 24 values": b"\x01" + bytes([1, 1, 30]) + nan,
        "pattern index 2 is not below the 2 patterns": b"\x01" + bytes([2, 3, 0, 0, 0, 0, 1, 2]) + nan + nan,
        "states 600 bytes, impossible for 24 values": b"\x02" + zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * 600),
        "followed by extra bytes": packed + b"\0",
        "not canonical": b"\x01" + bytes([1, 1, 0x80, 0]) + nan,
    }
    for pattern, block in bad_lists.items():
        with pytest.raises(FormatError, match=pattern):
            unpack(build((6, 4), b"", block))


def test_parsed_headers_are_canonical():
    """Random headers behind valid checksums: only FormatError, and whatever parses re-packs to
    the very same bytes (varints are canonical, so one frame has exactly one encoding)."""
    rng = np.random.default_rng(7)
    pool = [0, 1, 2, 3, 0x7F, 0x80, 0x81, 0xFF]
    parsed = 0
    for i in range(5000):
        head = b"LTC\x01" + bytes([i % 2]) + rng.bytes(16)
        tail = bytes(int(rng.choice(pool)) if rng.random() < 0.7 else int(rng.integers(0, 256))
                     for _ in range(int(rng.integers(0, 24))))
        blob = refresh_crc(head + tail + b"\0" * 4)
        try:
            frame = unpack(blob)
        except FormatError:
            continue
        parsed += 1
        if not len(frame.specials):
            assert pack(frame.codec_id, frame.shape, frame.payload, sample_coded=frame.sample_coded) == blob
    assert parsed > 500


def test_unknown_version_lists_supported_versions():
    blob = bytearray(pack(CID, (1,), b""))
    blob[3] = 8
    with pytest.raises(FormatError) as info:
        unpack(refresh_crc(blob))
    assert "version 8" in str(info.value) and str(info.value).endswith("supports versions: 1, 2, 3, 4, 5, 6, 7")


def test_streams_that_skip_records_are_version_4_and_flag_bit_3():
    sp = SpecialValues(np.array([2, 3]), np.array([0x7FC00000] * 2, np.uint32))  # record 1 of (3, 2): all NaN
    blob = pack(CID, (3, 2), b"abcd", sp, skipped=True)
    assert blob[3] == 4 and blob[4] == bs.FLAG_SKIPPED | bs.FLAG_SPECIALS
    frame = unpack(blob)
    assert frame.skipped and frame.segments is None and frame.payload == b"abcd"
    both = unpack(pack(CID, (7, 2), b"", SpecialValues(np.array([0, 1]), np.array([0x7FC00000] * 2, np.uint32)), segments=(3, 4), skipped=True))
    assert both.skipped and both.segments == (3, 4)
    assert not unpack(pack(CID, (3, 2), b"abcd", sp)).skipped
    with pytest.raises(ValueError):
        pack(CID, (3, 2), b"", sp, sample_coded=True, skipped=True)
    no_bit = bytearray(blob)
    no_bit[4] = bs.FLAG_SPECIALS
    with pytest.raises(FormatError, match="without flags bit 3"):
        unpack(refresh_crc(no_bit))


def refused_when_damaged(blob: bytes, cases: list[tuple[int, int, str]]) -> None:
    """Each ``(offset, byte, message)``: ``blob`` with that byte there and a fresh checksum is
    a format error saying ``message``."""
    for at, value, what in cases:
        damaged = bytearray(blob)
        damaged[at] = value
        with pytest.raises(FormatError, match=what):
            unpack(refresh_crc(damaged))


def test_segmented_streams_are_version_3_and_flag_bit_2():
    sp = SpecialValues(np.array([4]), np.array([0x7FC00000], np.uint32))
    blob = pack(CID, (7, 2), b"abcd", sp, segments=(3, 4))
    assert blob[3] == 3 and blob[4] == bs.FLAG_SEGMENTS | bs.FLAG_SPECIALS
    frame = unpack(blob)
    assert frame.segments == (3, 4) and frame.payload == b"abcd" and frame.specials == sp
    assert unpack(pack(CID, (7, 2), b"abcd")).segments is None
    for bad in [(7,), (3, 3), (0, 7), (2, 2, 3, 0)]:
        with pytest.raises(ValueError):
            pack(CID, (7, 2), b"", segments=bad)
    with pytest.raises(ValueError):
        pack(CID, (7, 2), b"", segments=(3, 4), sample_coded=True)
    with pytest.raises(ValueError):
        pack(CID, (7, 2, 1), b"", segments=(3, 4))
    # a damaged count or length, with a fresh checksum, is a format error naming it
    count_at = 22 + 2  # after ndim (offset 21) and the shape varints 7 and 2
    refused_when_damaged(pack(CID, (7, 2), b"abcd", segments=(3, 4)), [(count_at, 1, "segment_count"), (count_at + 1, 0, "segment lengths")])
    no_bit = bytearray(blob)
    no_bit[4] = bs.FLAG_SPECIALS
    with pytest.raises(FormatError, match="without flags bit 2"):
        unpack(refresh_crc(no_bit))


def test_segments_of_equal_lengths_are_stated_as_runs_where_shorter():
    """A balanced panel's series are all of one length: one varint each cost 2,234 population
    series of 31 years 0.26 bits/value. Runs (version 6, flags bit 5) state them where
    shorter; other streams keep version 3, and damaged runs are refused."""
    panel = (31,) * 2234
    blob = pack(CID, (sum(panel), 3), b"abcd", segments=panel)
    assert blob[3] == 6 and blob[4] == bs.FLAG_SEGMENTS | bs.FLAG_SEGMENT_RUNS
    assert unpack(blob).segments == panel and len(blob) < len(pack(CID, (sum(panel), 3), b"abcd")) + 5
    assert bs.segment_runs((2, 2, 5, 2)) == [(2, 2), (5, 1), (2, 1)]
    mixed = pack(CID, (7, 2), b"abcd", segments=(3, 4))  # two lengths: one varint each is shorter
    assert mixed[3] == 3 and not mixed[4] & bs.FLAG_SEGMENT_RUNS
    with_repeats = unpack(pack(CID, (21, 2), b"", segments=(4,) * 5, repeated=np.array([3])))
    assert with_repeats.segments == (4,) * 5 and with_repeats.repeated == (3,)
    blob = pack(CID, (20, 3), b"abcd", segments=(5,) * 4)  # count 1, then the run (5, 4)
    count_at = 22 + 2  # after ndim (offset 21) and the shape varints 20 and 3
    refused_when_damaged(blob, [(count_at + 2, 0, "repeats its length 0 times"), (count_at + 2, 30, "30 times, for 20 records"),
                                (count_at + 1, 4, "do not sum"), (count_at, 0, "segment_count 0")])
    no_segments = bytearray(blob)
    no_segments[4] = bs.FLAG_SEGMENT_RUNS
    with pytest.raises(FormatError, match="without segments"):
        unpack(refresh_crc(no_segments))


def test_streams_with_bounds_are_version_7_and_flag_bit_6():
    """Per-column bounds travel exactly (float32, -inf/+inf where a side has none), with any
    other flag; streams without keep their version; damaged blocks are refused."""
    lower, upper = np.array([0.0, -np.inf, -3.5]), np.array([255.0, 1e-3, np.inf])
    upper[1] = np.float32(upper[1])
    sp = SpecialValues(np.array([4]), np.array([0x7FC00000], np.uint32))
    blob = pack(CID, (7, 3), b"abcd", sp, segments=(3, 4), bounds=(lower, upper))
    assert blob[3] == 7 and blob[4] == bs.FLAG_BOUNDS | bs.FLAG_SEGMENTS | bs.FLAG_SPECIALS
    frame = unpack(blob)
    assert frame.payload == b"abcd" and frame.segments == (3, 4) and frame.specials == sp
    np.testing.assert_array_equal(frame.bounds[0], lower)
    np.testing.assert_array_equal(frame.bounds[1], upper)
    plain = pack(CID, (7, 3), b"abcd", sp, segments=(3, 4))
    assert plain[3] == 3 and unpack(plain).bounds is None
    assert bs.with_bounds(plain, (lower, upper)) == blob
    repeated = unpack(bs.with_repeats(pack(CID, (6, 3), b"ab", sample_coded=True, bounds=(lower, upper)), 8, np.array([2, 5])))
    assert repeated.sample_coded and repeated.repeated == (2, 5) and repeated.bounds[0][0] == 0
    for bad in [(np.full(3, -np.inf), np.full(3, np.inf)), (np.zeros(2), np.ones(2)), (np.full(3, 0.1), np.ones(3))]:
        with pytest.raises(ValueError):  # none stated, a column short, not float32
            pack(CID, (7, 3), b"", bounds=bad)
    with pytest.raises(ValueError, match="already"):
        bs.with_bounds(blob, (lower, upper))
    at = len(blob) - 4 - 4 - 18  # the block: method, a 1-byte bitmap, four float32s; then the payload
    assert blob[at - 1] == 18 and blob[at] == 0 and blob[at + 1] == 0b011011
    refused_when_damaged(blob, [
        (at, 2, "unknown method 2"), (at + 1, 0b111011, "bytes of values for 5 bounds"), (at + 1, 0b1011011, "bits beyond"),
        (at + 1, 0, "states no bound"), (at + 5, 0x7F, "least value lies above"), (at + 13, 0x7F, "not finite"),
    ])
    flat = bytearray(pack(CID, (7,), b"abcd"))
    flat[3], flat[4] = 7, bs.FLAG_BOUNDS
    flat[-4:-4] = b"\x02\x00\x01"
    with pytest.raises(FormatError, match="only 2-D streams state bounds"):
        unpack(refresh_crc(flat[:-4]))
    no_bit = bytearray(plain)
    no_bit[3] = 7
    with pytest.raises(FormatError, match="without flags bit 6"):
        unpack(refresh_crc(no_bit))


def test_sample_coded_streams_are_version_2_and_flag_bit_1():
    plain = pack(CID, (3, 2), b"abc")
    coded = pack(CID, (3, 2), b"abc", sample_coded=True)
    assert plain[3] == 1 and plain[4] == 0  # every other stream stays version 1
    assert coded[3] == 2 and coded[4] == bs.FLAG_SAMPLE_CODED and coded[5:] != plain[5:]
    frame = unpack(coded)
    assert frame.sample_coded and frame.payload == b"abc" and not unpack(plain).sample_coded
    with_specials = pack(CID, (3, 2), b"abc", SpecialValues(np.array([4]), np.array([0x7FC00000], np.uint32)), sample_coded=True)
    assert unpack(with_specials).sample_coded and with_specials[4] == bs.FLAG_SAMPLE_CODED | bs.FLAG_SPECIALS
    v1_with_bit_1 = bytearray(plain)
    v1_with_bit_1[4] = bs.FLAG_SAMPLE_CODED
    with pytest.raises(FormatError, match="unknown flag bits 0x02"):
        unpack(refresh_crc(v1_with_bit_1))
    v2_without_bit_1 = bytearray(coded)
    v2_without_bit_1[4] = 0
    with pytest.raises(FormatError, match="without flags bit 1"):
        unpack(refresh_crc(v2_without_bit_1))
    v2_unknown = bytearray(coded)
    v2_unknown[4] |= 0x04
    with pytest.raises(FormatError, match="unknown flag bits 0x04"):
        unpack(refresh_crc(v2_unknown))
    with pytest.raises(ValueError):  # record-layout payloads are version-1 streams only
        bs.record_payload(pack(CID, (1, 2), b"abc", sample_coded=True), 2)


# ---------------------------------------------------------------- fuzz
def _reference_stream():
    """A real codec-like stream: integer symbols entropy-coded, specials, framed."""
    rng = np.random.default_rng(4)
    K, T = 32, 5
    x = np.arange(K)
    pmf = np.exp(-0.5 * ((x[None, :] - 16) / rng.uniform(1, 6, (T, 1))) ** 2)
    pmf /= pmf.sum(axis=1, keepdims=True)
    tables = SymbolTables.from_probabilities(pmf, -16)
    steps = []
    tab = rng.integers(0, T, 300)
    for _ in range(3):
        vals = np.round(rng.normal(0, 4, tab.size)).astype(np.int64)
        vals[::97] = 2**45
        steps.append((vals, tab))
        tab = (np.abs(vals) + 1) % T
    enc = SymbolEncoder(tables)
    for v, t in steps:
        enc.encode(v, t)
    arr = rng.normal(size=(300, 3)).astype(np.float32)
    arr[5, 1], arr[100, 2] = np.nan, -np.inf
    _, sp = split_specials(arr)
    blob = pack(CID, arr.shape, enc.finish(), sp)
    return blob, tables, steps


def _decode_all(blob, tables, steps):
    frame = unpack(blob, CID)
    dec = SymbolDecoder(frame.payload, tables)
    tab = steps[0][1]
    outs = []
    for _ in steps:
        out = dec.decode(tab)
        outs.append(out)
        tab = (np.abs(out) + 1) % tables.num_tables
    dec.finish()
    return frame, outs


def _mutations(blob: bytes, rng: np.random.Generator, count: int):
    n = len(blob)
    for i in range(count):
        kind = i % 6
        if kind in (0, 1):  # 1 to 3 flipped bits: CRC-32 detects these with certainty
            b = bytearray(blob)
            for bit in rng.choice(8 * n, int(rng.integers(1, 4)), replace=False):
                b[bit // 8] ^= 1 << (bit % 8)
            yield "flip", bytes(b)
        elif kind == 2:
            yield "truncate", blob[: int(rng.integers(0, n))]
        elif kind == 3:
            yield "append", blob + rng.bytes(int(rng.integers(1, 64)))
        elif kind == 4:
            yield "random", rng.bytes(int(rng.integers(0, 2 * n)))
        else:  # random bytes behind a valid magic and version, to reach the deeper checks
            flags = bytes([int(rng.integers(0, 2))])
            yield "random-header", b"LTC\x01" + flags + rng.bytes(int(rng.integers(0, n)))


def test_fuzz_container_and_payload():
    """>= 10,000 damaged streams: only FormatError/CodecMismatchError, < 1 s each, never
    silently different output."""
    blob, tables, steps = _reference_stream()
    frame, outs = _decode_all(blob, tables, steps)
    for (v, _), o in zip(steps, outs):
        np.testing.assert_array_equal(o, v)
    rng = np.random.default_rng(5)
    counts: dict[str, int] = {}
    slowest = 0.0
    for kind, bad in _mutations(blob, rng, 12_000):
        assert bad != blob
        t0 = time.perf_counter()
        try:
            got, got_outs = _decode_all(bad, tables, steps)
        except (FormatError, CodecMismatchError) as exc:
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
        else:  # a damaged stream must never decode, let alone to something else
            raise AssertionError(f"{kind} mutation decoded without error")
        slowest = max(slowest, time.perf_counter() - t0)
    assert sum(counts.values()) == 12_000
    assert slowest < 1.0, slowest


def test_fuzz_behind_valid_checksums():
    """Damage with the CRC recomputed (as a buggy writer would produce): the parser and the
    entropy decoder still raise only FormatError/CodecMismatchError, and never hang."""
    blob, tables, steps = _reference_stream()
    rng = np.random.default_rng(6)
    outcomes: dict[str, int] = {}
    for i in range(3000):
        b = bytearray(blob)
        if i % 2:
            pos = int(rng.integers(0, len(b) - 4))
            b[pos] = int(rng.integers(0, 256))
        else:
            pos = int(rng.integers(4, 40))  # flags, codec id, varints, specials block
            b[pos : pos + 8] = rng.bytes(8)
        bad = refresh_crc(b)
        t0 = time.perf_counter()
        try:
            _decode_all(bad, tables, steps)
            key = "decoded"
        except (FormatError, CodecMismatchError) as exc:
            key = type(exc).__name__
        assert time.perf_counter() - t0 < 1.0
        outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes.get("FormatError", 0) > 1000
