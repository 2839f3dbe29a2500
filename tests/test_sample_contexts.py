"""Sample-coding integers ANS-coded with activity-classed geometric tables (ltc_beam.codec.sample_contexts)."""

from __future__ import annotations

import numpy as np
import pytest

from ltc_beam.codec import sample_coding
from ltc_beam.codec import sample_contexts
from ltc_beam.codec.sample_contexts import (
    ACTIVITY_BITS,
    CLASSES_BELOW,
    HISTOGRAM,
    LIMIT,
    MAX_WIDTH,
    MAX_RECENT_COLUMNS,
    RECENT_FLAG,
    RECENT_VALUES,
    column_classes,
    decode_contexted,
    encode_contexted,
    lane_length,
    recent_classes,
)
from ltc_beam.bitstream import read_varint, varint, zigzag
from ltc_beam.errors import FormatError


def _coded(ints: np.ndarray, recent: bool = False) -> bytes | None:
    """:func:`encode_contexted`'s payload alone."""
    out = encode_contexted(ints, recent)
    return None if out is None else out[0]


def _bursty(records: int, d: int, seed: int = 0) -> np.ndarray:
    """Channels that rest and get busy together (a walking subject's accelerometers)."""
    rng = np.random.default_rng(seed)
    level = np.repeat(np.exp(1.5 * rng.standard_normal(-(-records // 200))), 200)[:records]
    return np.round(rng.laplace(size=(records, d)) * level[:, None] * 3).astype(np.int64)


@pytest.mark.parametrize(
    "ints",
    [
        _bursty(3000, 4),
        _bursty(500, 1, seed=1),
        np.zeros((0, 3), np.int64),
        np.array([[7, -3, 2**40]]),
        np.concatenate([_bursty(990, 2, seed=2), np.random.default_rng(3).integers(-(10**9), 10**9, (10, 2))]),  # escapes
        np.full((50, 3), 5),
        100 + _bursty(400, 2, seed=4),  # off 0: a centre
        np.stack([np.random.default_rng(5).choice([-4000, 0, 4000], 900), _bursty(900, 1, seed=5)[:, 0] * 700], axis=1),
    ],
    ids=["bursty", "one-column", "empty", "one-record", "escapes", "constant", "centred", "stored-past-the-width"],
)
def test_contexted_round_trip(ints):
    data = _coded(ints)
    assert np.array_equal(decode_contexted(data, *ints.shape), ints)


def test_beyond_the_limit_is_refused():
    inside = np.array([[LIMIT, -LIMIT], [LIMIT - 1, 0], [-LIMIT, LIMIT]])
    assert np.array_equal(decode_contexted(_coded(inside), 3, 2), inside)
    assert _coded(np.array([[LIMIT + 1, 0]])) is None
    assert _coded(np.array([[0, -LIMIT - 1]])) is None


def test_classes_are_octaves_of_the_activity_around_each_record():
    columns = 2
    mean = columns << ACTIVITY_BITS
    activity = np.full(100, mean)
    activity[50:] *= 4  # two octaves up from record 50 on (its window reaches back 3 records)
    classes = column_classes(activity, columns)
    assert set(classes[:47]) == {CLASSES_BELOW} and set(classes[50:]) == {CLASSES_BELOW + 2}
    assert set(column_classes(np.zeros(10, np.int64), columns)) == {0}  # at rest: the lowest class


def test_activity_classes_beat_per_column_tables_on_bursty_channels():
    """Busy and quiet stretches coded with their own scales: well below per-column tables,
    and sample coding picks them."""
    ints = np.cumsum(_bursty(4000, 6, seed=5), axis=0)
    contexted = sample_coding.payload_of(ints, np.ones(6), sample_coding.IMPLIED + sample_coding.TABLED + sample_coding.PREDICTED + sample_coding.CONTEXTS)
    tabled = sample_coding.payload_of(ints, np.ones(6), sample_coding.IMPLIED + sample_coding.TABLED + sample_coding.DIFFERENCES)
    assert len(contexted) < 0.93 * len(tabled)
    np.testing.assert_array_equal(sample_coding.decode_samples(contexted, ints.shape, np.zeros(6)), ints)
    chosen = sample_coding.SampleCandidate(ints, np.ones(6)).payload()
    assert chosen[0] & sample_coding.CONTEXTS and len(chosen) <= len(contexted)


def test_damaged_contexted_data_is_a_format_error():
    ints = _bursty(600, 3, seed=6)
    good = _coded(ints)
    start = read_varint(memoryview(good), 0, len(good), "width")[1]  # column 0: centre 0, one class
    assert good[start] == 0 and good[start + 1] == 1
    second = start + 1 + 1 + 2  # column 1's centre varint (one byte), then its class count
    damaged = {
        "empty": b"",
        "width too large": bytes([0x80, 0x10]) + good[start:],  # 2048
        "first column with two classes": good[: start + 1] + bytes([2]) + good[start + 2 :],
        "class count off": good[: second + 1] + bytes([good[second + 1] + 1]) + good[second + 2 :],
        "header cut": good[: start + 6],
        "centre beyond the limit": good[:start] + varint(zigzag(LIMIT + 1)) + good[start + 1 :],
        "words cut": good[:-3],
    }
    for what, data in damaged.items():
        with pytest.raises(FormatError):
            decode_contexted(data, *ints.shape)
    assert MAX_WIDTH // 2 == 2048


def _with_two_levels(records: int, seed: int) -> np.ndarray:
    """Two bursty columns and, between them, a status-like one of two far-apart levels,
    which no two-sided geometric table about its median fits."""
    rng = np.random.default_rng(seed)
    ints = _bursty(records, 3, seed=seed)
    ints[:, 1] = rng.choice([-40, 40], records) + rng.integers(-1, 2, records)
    return ints


def _markers(data: bytes, d: int) -> list[int]:
    """Each column's class count byte (or HISTOGRAM) of a contexted payload."""
    offset, markers = read_varint(memoryview(data), 0, len(data), "width")[1], []
    for _ in range(d):
        offset = read_varint(memoryview(data), offset, len(data), "centre")[1]
        markers.append(data[offset])
        offset += 1 + (0 if data[offset] == HISTOGRAM else 2 * data[offset])
    return markers


def test_a_column_the_geometric_shape_fits_badly_takes_a_stored_table(monkeypatch):
    """A column of two levels is coded with a stored table of its own, the bursty ones with
    their classes; the payload decodes exactly and is shorter than with classes throughout."""
    ints = _with_two_levels(3000, seed=7)
    mixed = _coded(ints)
    assert np.array_equal(decode_contexted(mixed, *ints.shape), ints)
    markers = _markers(mixed, 3)
    assert markers[1] == HISTOGRAM and markers[0] == 1 and 1 < markers[2] < HISTOGRAM
    monkeypatch.setattr(sample_contexts, "_shapes", lambda ints, thetas, *tables: thetas)
    assert len(mixed) < 0.9 * len(_coded(ints))


def test_bursty_columns_after_the_first_keep_their_classes():
    """(The first has no classes: its mixture of scales may fit a stored table better.)"""
    ints = _bursty(3000, 4, seed=8)
    assert HISTOGRAM not in _markers(_coded(ints), 4)[1:]


def test_damaged_stored_tables_are_a_format_error():
    ints = _with_two_levels(800, seed=9)
    good = _coded(ints)
    assert _markers(good, 3)[1] == HISTOGRAM
    start = read_varint(memoryview(good), 0, len(good), "width")[1]
    second = start + 1 + 1 + 2  # column 1's centre varint (one byte), then its marker
    third = second + 2  # column 2's centre, marker, classes: then the stored tables
    tables = third + 2 + 2 * good[third + 1]
    damaged = {
        "no tables": good[:tables],
        "tables neither plain nor packed": good[:tables] + bytes([7]) + good[tables + 1 :],
        "marker on a column with classes": good[: third + 1] + bytes([HISTOGRAM]) + good[third + 2 :],
        "first column stored, tables missing": good[: start + 1] + bytes([HISTOGRAM]) + good[start + 4 : tables],
    }
    for what, data in damaged.items():
        with pytest.raises(FormatError):
            decode_contexted(data, *ints.shape)


def test_stored_tables_that_cannot_fit_are_refused_before_they_are_unpacked():
    """Many columns marked as stored, then one small frame of wide tables: refused from the
    header alone (it unpacked 246 MB of tables for a 142 KB payload of 60,000 columns)."""
    import zstandard

    from ltc_beam.codec.sample_tables import PACKED, table_bytes

    d = 2000  # 2000 tables of at most MAX_ENTRIES // 2000 - 1 = 1047 entries each
    frame = zstandard.ZstdCompressor(level=19).compress(table_bytes(0, np.ones(4097, np.int64)) * d)
    payload = varint(0) + (varint(zigzag(0)) + bytes([HISTOGRAM])) * d + bytes([PACKED]) + varint(len(frame)) + frame
    with pytest.raises(FormatError, match="bytes for 2000 columns"):
        decode_contexted(payload, 1, d)


def test_a_stored_table_one_wider_than_the_limit_allows_leaves_the_classes():
    """At exactly the entry limit with classes alone, a column whose own table would widen
    every table by one keeps its classes (the stream was not coded this way at all)."""
    ints = np.zeros((64, 512), np.int64)
    ints[:, -1] = np.tile([-2048, 0, 0, 2047], 16)
    data = _coded(ints)
    assert data is not None and HISTOGRAM not in _markers(data, 512)
    assert np.array_equal(decode_contexted(data, *ints.shape), ints)



def _markers_recent(data: bytes, d: int) -> list[int]:
    """Each column's class count byte (with ``RECENT_FLAG``, or HISTOGRAM) of a payload written with ``recent``."""
    offset, markers = read_varint(memoryview(data), 0, len(data), "width")[1], []
    for _ in range(d):
        offset = read_varint(memoryview(data), offset, len(data), "centre")[1]
        marker = data[offset]
        markers.append(marker)
        offset += 1
        if marker != HISTOGRAM and marker & RECENT_FLAG:
            offset = read_varint(memoryview(data), offset + 2, len(data), "scale")[1]
        offset += 0 if marker == HISTOGRAM else 2 * (marker & ~RECENT_FLAG)
    return markers


def _independent(records: int, d: int, seed: int) -> np.ndarray:
    """Channels that each rest and get busy on their own (rain, dust, a pump)."""
    rng = np.random.default_rng(seed)
    level = np.repeat(np.exp(1.5 * rng.standard_normal((-(-records // 150), d))), 150, axis=0)[:records]
    return np.round(rng.laplace(size=(records, d)) * level * 3).astype(np.int64)


@pytest.mark.parametrize(
    "ints",
    [
        _bursty(3000, 4),
        _independent(3000, 6, seed=1),  # more columns than MAX_RECENT_COLUMNS
        _bursty(5000, 1, seed=1),
        _independent(17, 2, seed=2),  # one lane
        np.array([[3], [-2]]),
        np.zeros((0, 2), np.int64),
        np.concatenate([_independent(990, 2, seed=2), np.random.default_rng(3).integers(-(10**9), 10**9, (10, 2))]),  # escapes
        100 + _independent(70_000, 2, seed=4),  # lanes of 18 records, the last shorter
        _with_two_levels(3000, seed=7),  # a stored table among them
    ],
    ids=["bursty", "independent", "one-column", "one-lane", "two-records", "empty", "escapes", "long", "stored"],
)
def test_recent_round_trip(ints):
    data, recent = encode_contexted(ints, recent=True)
    assert np.array_equal(decode_contexted(data, *ints.shape, recent=True), ints)
    flagged = [m != HISTOGRAM and bool(m & RECENT_FLAG) for m in _markers_recent(data, ints.shape[1])]
    assert recent == any(flagged) and sum(flagged) <= MAX_RECENT_COLUMNS
    if not recent:  # then the payload is the one without (readers before session 28 read it)
        assert data == _coded(ints)


def test_recent_classes_are_octaves_of_the_records_before_in_the_lane():
    records = 64
    lane = lane_length(records)
    assert lane == 16
    own = np.full(records, 1 << ACTIVITY_BITS)  # every record at the column's mean activity
    own[20:] *= 4
    index = np.arange(records)
    none = (np.zeros(records, np.int64), np.zeros(records, np.int64))  # the first column: none before it
    classes = recent_classes(own, index, index % lane, *sample_contexts.across_parts(none))
    assert set(classes[index % lane == 0]) == {CLASSES_BELOW}  # a lane's first record: the mean's class
    assert set(classes[1:20]) == {CLASSES_BELOW} and set(classes[22:32]) == {CLASSES_BELOW + 2}
    assert classes[21] == CLASSES_BELOW + 1  # (1 + 4) / 2: the octave of 2.5
    step = index[3::lane]  # the decoder's step 3 finds the same classes
    theirs, start = sample_contexts.across_parts(none)
    assert np.array_equal(recent_classes(own, step, 3, theirs[step], start[step]), classes[step])
    # after a column: the mean with its mean activity; at a lane's start, column_classes'
    activity = np.full(records, 16 << ACTIVITY_BITS)  # 16x the mean around every record
    across = sample_contexts.window_activity(activity, 1)
    later = recent_classes(np.full(records, 1 << ACTIVITY_BITS), index, index % lane, *sample_contexts.across_parts(across))
    assert set(later[index % lane == 0]) == set(column_classes(activity, 1)) == {CLASSES_BELOW + 4}
    assert set(later[index % lane > 0]) == {CLASSES_BELOW + 3}  # (1 + 16) / 2: the octave of 8.5


def test_columns_alone_are_coded_with_their_own_recent_classes():
    """A column alone had no classes (nothing before it), and columns of their own rhythm
    only those of the columns before: their own records before each give them, below the
    payload without (by 4.6 % here), and sample coding picks it."""
    ints = np.cumsum(_independent(4000, 3, seed=10), axis=0)
    order = sample_coding.IMPLIED + sample_coding.TABLED + sample_coding.PREDICTED + sample_coding.CONTEXTS
    recent = sample_coding.payload_of(ints, np.ones(3), order + sample_coding.RECENT)
    assert recent[0] & sample_coding.RECENT
    assert len(recent) < 0.97 * len(sample_coding.payload_of(ints, np.ones(3), order))
    np.testing.assert_array_equal(sample_coding.decode_samples(recent, ints.shape, np.zeros(3)), ints)
    chosen = sample_coding.SampleCandidate(ints, np.ones(3)).payload()
    assert chosen[0] & sample_coding.RECENT and len(chosen) <= len(recent)  # (its steps in 4 bytes)
    alone = np.cumsum(_bursty(6000, 1, seed=10), axis=0)
    tabled = sample_coding.payload_of(alone, np.ones(1), sample_coding.IMPLIED + sample_coding.TABLED + sample_coding.DIFFERENCES)
    assert len(sample_coding.payload_of(alone, np.ones(1), order + sample_coding.RECENT)) < 0.96 * len(tabled)


def test_recent_classes_are_left_out_where_they_do_not_pay():
    """Noise of one scale throughout: the classes' mask, scale and parameters would cost more
    than they save, so no column takes them and the payload is the one without."""
    rng = np.random.default_rng(11)
    ints = np.round(rng.laplace(size=(3000, 2)) * 6).astype(np.int64)
    data, recent = encode_contexted(ints, recent=True)
    assert not recent and data == _coded(ints)
    order = sample_coding.IMPLIED + sample_coding.TABLED + sample_coding.PREDICTED + sample_coding.CONTEXTS
    assert not sample_coding.payload_of(ints, np.ones(2), order + sample_coding.RECENT)[0] & sample_coding.RECENT


def test_damaged_recent_data_is_a_format_error():
    ints = _independent(3000, 2, seed=12)
    good, recent = encode_contexted(ints, recent=True)
    start = read_varint(memoryview(good), 0, len(good), "width")[1]
    marker = good[start + 1]  # column 0: centre 0 (one byte), its class count byte, mask, scale
    assert recent and marker & RECENT_FLAG
    count = marker & ~RECENT_FLAG
    mask = int.from_bytes(good[start + 2 : start + 4], "little")
    assert mask.bit_count() == count > 1
    scale, after = read_varint(memoryview(good), start + 4, len(good), "scale")
    damaged = {
        "mask of more classes": good[: start + 2] + (mask | 1 << 11 | 1 << 0).to_bytes(2, "little") + good[start + 4 :],
        "mask beyond the classes": good[: start + 2] + (mask | 1 << 15).to_bytes(2, "little") + good[start + 4 :],
        "mask of fewer classes": good[: start + 1] + bytes([marker - 1]) + (mask & (mask - 1)).to_bytes(2, "little") + good[start + 4 :],
        "scale off": good[: start + 4] + varint(scale + 1) + good[after:],
        "scale beyond the cap": good[: start + 4] + varint(3000 << 20 | 1) + good[after:],
        "header cut": good[: start + 3],
    }
    for what, data in damaged.items():
        with pytest.raises(FormatError):
            decode_contexted(data, *ints.shape, recent=True)
    with pytest.raises(FormatError, match="too many"):
        decode_contexted(good, RECENT_VALUES, 2, recent=True)
    with pytest.raises(FormatError):  # read as a payload without recent classes
        decode_contexted(good, *ints.shape)
