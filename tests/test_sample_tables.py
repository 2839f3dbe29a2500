"""Sample-coding integers ANS-coded with per-column tables (ltc_beam.codec.sample_tables)."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from ltc_beam.bitstream import read_varint, varint
from ltc_beam.codec import sample_coding
from ltc_beam.codec.sample_tables import MAX_WIDTH, PACKED, PLAIN, decode_tabled, encode_tabled, entropy_bytes, least_bytes
from ltc_beam.errors import FormatError


@pytest.mark.parametrize(
    "ints",
    [
        np.random.default_rng(0).integers(-3, 4, (1000, 3)),
        np.round(np.random.default_rng(1).standard_normal((20_000, 2)) * 40).astype(np.int64),
        np.zeros((0, 2), np.int64),
        np.array([[5, -(2**40)]]),
        np.random.default_rng(2).integers(-(10**6), 10**6, (3000, 2)),  # far wider than a table: escapes
        np.concatenate([np.zeros((990, 1), np.int64), np.random.default_rng(3).integers(-500, 500, (10, 1))]),
        np.array([[2**62 - 1, -(2**62) + 1], [-(2**62) + 1, 2**62 - 1]]),
    ],
    ids=["small", "gaussian", "empty", "one-record", "wide", "rare-outliers", "extremes"],
)
def test_tables_round_trip(ints):
    data = encode_tabled(ints)
    assert np.array_equal(decode_tabled(data, *ints.shape), ints)
    assert least_bytes(ints) <= len(data)  # the bound that spares hopeless tables


def test_tables_come_near_the_entropy_where_zstd_does_not():
    """Gaussian integers (sd 3): order-0 entropy 3.63 bits each; tables within 1 %, zstd at
    level 15 well above it."""
    ints = np.round(np.random.default_rng(4).standard_normal((100_000, 4)) * 3).astype(np.int64)
    entropy = entropy_bytes(ints)
    assert entropy == pytest.approx(ints.size * 3.63 / 8, rel=0.01)
    tabled = len(encode_tabled(ints))
    zstd = len(zstandard.ZstdCompressor(level=sample_coding.ZSTD_LEVEL).compress(ints.astype(np.int8).tobytes()))
    assert entropy < tabled < 1.01 * entropy < 0.92 * zstd


def test_rare_outliers_are_escapes_not_table_entries():
    """A column of small integers with a few far values: the table keeps to the small
    ones (a byte per entry would cost more than the escapes)."""
    rng = np.random.default_rng(5)
    ints = rng.integers(-2, 3, (50_000, 1))
    ints[rng.choice(50_000, 20, replace=False), 0] = rng.integers(1000, 3000, 20)
    assert len(encode_tabled(ints)) < 50_000 * np.log2(5) / 8 + 200  # no 3,000-entry table (a byte an entry)
    assert np.array_equal(decode_tabled(encode_tabled(ints), *ints.shape), ints)


def test_integers_beyond_a_table_range_are_left_to_zstd():
    assert encode_tabled(np.array([[2**62], [0]])) is None
    assert encode_tabled(np.array([[-(2**63)], [0]])) is None


def test_damaged_tables_are_format_errors():
    rng = np.random.default_rng(6)
    plain = encode_tabled(rng.integers(-5, 6, (500, 2)))
    assert plain[0] == PLAIN and plain[2] + 1 < MAX_WIDTH  # kind, low varint of one byte, width - 1
    damaged = {
        "an unknown kind of tables": bytes([7]) + plain[1:],
        "cut in the tables": plain[:6],
        "a table wider than allowed": plain[:2] + bytes([0xFF, 0x7F]) + plain[3:],
        "a code above the largest": plain[:3] + bytes([255]) + plain[4:],
        "words cut": plain[:-2],
        "words added": plain + b"\x01\x00\x00\x00",
        "a non-canonical varint": plain[:1] + bytes([0x80, 0x00]) + plain[2:],
    }
    for what, data in damaged.items():
        with pytest.raises(FormatError):
            decode_tabled(data, 500, 2)
    ints = rng.integers(-40, 41, (300, 40))  # forty alike tables: packed
    packed = encode_tabled(ints)
    assert packed[0] == PACKED and np.array_equal(decode_tabled(packed, *ints.shape), ints)
    size, start = read_varint(memoryview(packed), 1, len(packed), "length")
    rest = packed[start + size :]  # the ANS words
    small, big = zstandard.compress(b"\x00\x00\x00"), zstandard.compress(bytes(40 * 5000))
    for what, data in {
        "frame cut": packed[: start + size - 3],
        "frame longer than the payload": packed[:1] + varint(len(packed)) + packed[start:],
        "a frame of other tables": packed[:1] + varint(len(small)) + small + rest,
        "a frame stating too much": packed[:1] + varint(len(big)) + big + rest,
    }.items():
        with pytest.raises(FormatError, match="table"):
            decode_tabled(data, *ints.shape)


def test_a_wide_column_costs_the_narrow_ones_next_to_nothing():
    """Every column's table is padded to the widest; at 2**16 the padding took 3.9 % more
    for eight columns of 5 integers beside one of 4,000."""
    rng = np.random.default_rng(8)
    narrow, wide = rng.integers(-2, 3, (20_000, 8)), rng.integers(0, 4000, (20_000, 1))
    together = len(encode_tabled(np.concatenate([narrow, wide], axis=1)))
    assert together < 1.002 * (len(encode_tabled(narrow)) + len(encode_tabled(wide)))


def test_entropy_of_integers_spread_beyond_int64_differences():
    assert entropy_bytes(np.array([[-(2**63)], [2**63 - 1]])) == 0.25  # two values, one bit each


def test_tabled_payloads_state_width_one():
    steps = np.array([0.5, 0.25])
    payload = sample_coding.payload_of(np.array([[1, 2], [3, 4]]), steps, sample_coding.IMPLIED + sample_coding.FLOAT32_STEPS + sample_coding.TABLED)
    assert sample_coding.payload_steps(payload, 2)[1] == 1
    with pytest.raises(FormatError):
        sample_coding.payload_steps(payload[:1] + bytes([2]) + payload[2:], 2)


def test_a_narrow_column_codes_its_rare_far_integers_in_its_table_when_padded_past_them():
    """Rare integers left to the escape by a narrow column's trimmed table, within the width
    it is padded to: they would be coded in range at a frequency of 1 (24 bits each); its
    table now reaches them (a Daphnet split at 37.6 dB: 23,140 -> 23,007 bytes)."""
    from ltc_beam.codec.sample_tables import column_table, widened

    rng = np.random.default_rng(9)
    narrow = rng.integers(-2, 3, (20_000, 1))
    narrow[rng.choice(20_000, 20, replace=False), 0] = 150 + rng.integers(0, 3, 20)
    values, counts = np.unique(narrow[:, 0], return_counts=True)
    low, code = column_table(values, counts)
    assert (low, code.size - 1) == (-2, 5)  # the far ones left to the escape ...
    assert widened(values, counts, low, code, 400).size - 1 == int(narrow.max()) + 3  # ... until padded past them
    assert widened(values, counts, low, code, 100) is code
    wide = rng.integers(0, 400, (20_000, 1))
    together = np.concatenate([narrow, wide], axis=1)
    assert np.array_equal(decode_tabled(encode_tabled(together), *together.shape), together)
    assert decode_tabled(encode_tabled(np.zeros((3, 0), np.int64)), 3, 0).shape == (3, 0)


def test_frequencies_of_many_tables_are_each_tables_own():
    """One call for a stack of tables gives each row what it gives alone (sums 2**24, at
    least 1 each, zeros counted as ones), as the contexted coder builds them."""
    from ltc_beam.codec.sample_tables import PRECISION, frequencies

    rng = np.random.default_rng(7)
    weights = rng.integers(0, 1 << 32, (6, 9))
    weights[1] = 0
    weights[2] = (rng.random(9) < 0.3) * 5
    stacked = frequencies(weights)
    assert (stacked.sum(axis=1) == 1 << PRECISION).all() and stacked.min() >= 1
    assert all(np.array_equal(stacked[i], frequencies(weights[i])) for i in range(6))
    assert len(set(frequencies(weights[1]).tolist())) <= 2  # all ones, the leftover spread evenly


def test_leftover_counts_go_to_the_largest_remainders_first_of_ties():
    """The decoder rebuilds every table, so the rule is part of the format: after one count
    each and the proportional shares (rounded down), the leftover counts go one each to the
    largest remainders, ties to the first. Checked against the rule written out plainly, on
    rows with many ties (small integer weights) and without."""
    from ltc_beam.codec.sample_tables import PRECISION, frequencies

    rng = np.random.default_rng(11)
    for weights in (rng.integers(0, 4, (40, 37)), rng.integers(0, 1 << 30, (40, 300)), np.full((2, 5), 3)):
        for row, got in zip(weights, frequencies(weights)):
            n, total = row.size, int(row.sum())
            shares = [divmod(int(w) * ((1 << PRECISION) - n), total) for w in row]
            expected = [1 + share for share, _ in shares]
            leftover = (1 << PRECISION) - sum(expected)
            for i in sorted(range(n), key=lambda i: (-shares[i][1], i))[:leftover]:
                expected[i] += 1
            assert got.tolist() == expected
