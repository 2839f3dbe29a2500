"""Records that repeat the record before them: found bit for bit, left out of the stream
where naming them is shorter, decoded as copies (:mod:`ltc_beam.repeats`)."""

from __future__ import annotations

import numpy as np
import pytest


import ltc_beam
from ltc_beam import repeats
from ltc_beam.bitstream import unpack
from ltc_beam.errors import FormatError
from tests.conftest import correlated_series


def with_repeats(records: int, share: float, seed: int) -> np.ndarray:
    """:func:`correlated_series` in which about ``share`` of the records repeat the one before
    (a sensor read faster than it updates)."""
    x = correlated_series(records, 6, seed).astype(np.float32)
    rng = np.random.default_rng(seed)
    for i in np.flatnonzero(rng.random(records) < share):
        if i:
            x[i] = x[i - 1]
    return x


def test_repeats_are_bit_for_bit_equal_records():
    x = np.arange(18, dtype=np.float32).reshape(6, 3)
    x[2] = x[1]
    x[3] = x[2]
    x[4, :] = [np.nan, 0.0, 1.0]
    x[5, :] = [np.nan, -0.0, 1.0]  # -0.0 is not 0.0
    np.testing.assert_array_equal(repeats.repeated(x), [2, 3])
    x[5, 1] = 0.0
    np.testing.assert_array_equal(repeats.repeated(x), [2, 3, 5])  # the same NaN bits repeat
    np.testing.assert_array_equal(repeats.sources(6, np.array([2, 3, 5])), [0, 1, 1, 1, 2, 2])
    assert repeats.distinct(x).shape == (3, 3)
    assert repeats.kept_segments((2, 2, 2), np.array([2, 3, 5])) == (2, 1)  # the second series is gone


@pytest.mark.parametrize("positions", [[1], [1, 2, 3, 900], list(range(1, 5000, 7))])
def test_the_block_round_trips_and_takes_the_shorter_method(positions):
    block = repeats.to_bytes(np.array(positions))
    np.testing.assert_array_equal(repeats.from_bytes(block, 5000, "block"), positions)
    assert block[0] == (repeats.ZSTD if len(positions) > 100 else repeats.RAW)


@pytest.mark.parametrize("block,why", [
    (b"", "unknown method"),
    (b"\x02\x01\x01", "unknown method"),
    (b"\x00\x00", "0 repeated"),  # no repeats
    (b"\x00\x02\x01", "1 gaps for 2"),  # fewer gaps than the count
    (b"\x00\x01\x00", "not increasing"),  # a gap of 0
    (b"\x00\x02\x05\x05", "not increasing"),  # past the last record
    (b"\x00\x01\x81\x00", "not canonical"),
    (b"\x00\x01\x81", "truncated"),
    (b"\x01\x00\x01\x02", "zstandard"),
])
def test_damaged_blocks_are_format_errors(block, why):
    with pytest.raises(FormatError, match=why):
        repeats.from_bytes(block, 10, "block")


def test_a_version_5_stream_is_sample_coded_or_segmented_not_both():
    from ltc_beam.bitstream import FLAG_SAMPLE_CODED, FLAG_SEGMENTS, pack
    from tests.test_bitstream import CID, refresh_crc

    blob = bytearray(pack(CID, (30, 2), b"", segments=(10, 17), repeated=np.array([4, 9, 20])))
    assert blob[3] == 5 and unpack(bytes(blob)).segments == (10, 17)
    blob[4] |= FLAG_SAMPLE_CODED
    with pytest.raises(FormatError, match="sample-coded stream codes every record"):
        unpack(refresh_crc(blob))
    assert blob[4] & FLAG_SEGMENTS


@pytest.mark.parametrize("name", ["vector", "block_window", "classes_block"])
def test_a_stream_leaves_out_repeated_records_and_decodes_them_as_copies(codecs, name):
    codec = codecs[name]
    x = with_repeats(1200, 0.2, seed=5)
    x[300, 2] = np.nan
    x[301] = x[300]  # a repeat with a special value
    lengths = (500, 1, 699)
    blob = codec.encode(x, lengths)
    frame = unpack(blob)
    assert blob[3] == 5 and frame.repeated == tuple(repeats.repeated(x).tolist()) and len(frame.repeated) > 200
    out = codec.decode(blob)
    np.testing.assert_array_equal(out, codec.reconstruct(x, lengths))
    np.testing.assert_array_equal(out, codec.decode_each([blob, blob])[1])
    np.testing.assert_array_equal(out[list(frame.repeated)], out[np.array(frame.repeated) - 1])
    assert np.isnan(out[300, 2]) and np.isnan(out[301, 2])
    # the kept records code as a stream of their own would
    left = np.array(frame.repeated)
    kept = np.setdiff1d(np.arange(len(x)), left)
    np.testing.assert_array_equal(out[kept], codec.decode(codec.encode(x[kept], repeats.kept_segments(lengths, left))))
    codec.leave_out_repeats = False
    try:
        every = codec.encode(x, lengths)
    finally:
        codec.leave_out_repeats = True
    assert unpack(every).repeated == () and len(blob) < len(every)
    assert codec.code_length_bits(x, lengths) < 8 * len(every)


def flat_stretches(records: int, seed: int) -> np.ndarray:
    """Six columns each holding levels for 20-300 records (power-meter-like): most records
    repeat the one before."""
    rng = np.random.default_rng(seed)
    out = np.empty((records, 6), np.float32)
    for c in range(6):
        t = 0
        while t < records:
            run = int(rng.integers(20, 300))
            out[t : t + run, c] = rng.normal(0, 3)
            t += run
    return out


def test_the_shorter_of_the_streams_with_and_without_repeats_is_kept(codecs):
    """On flat stretches a sample-coded stream codes the repeats for next to nothing: there
    the stream of every record is kept; on a sensor's duplicated samples, the other."""
    codec = codecs["block"]
    for x, leaves_out in ((flat_stretches(3000, seed=3), False), (with_repeats(1000, 0.2, seed=6), True)):
        blob = codec.encode(x)
        assert bool(unpack(blob).repeated) == leaves_out
        np.testing.assert_array_equal(codec.decode(blob), codec.reconstruct(x))
        codec.leave_out_repeats = False
        try:
            every = codec.encode(x)
        finally:
            codec.leave_out_repeats = True
        assert len(blob) == len(every) if not leaves_out else len(blob) < len(every)


def test_training_sees_each_series_without_its_repeats():
    """The model learns from the records encode codes; the tables count their points alone.
    (The finishing steps judged on the validation split are off: its records, held out
    evenly through the series, are not the same ones in the doubled data.)"""
    x = correlated_series(900, 3, seed=4)
    doubled = np.repeat(x, 2, axis=0)  # every record twice
    common = dict(lattice="e8", mode="vector", target_bits_per_value=2.0, steps=30, progress=False, seed=0, calibrate=False,
                  refit_density=False)
    once, twice = ltc_beam.train(x, **common), ltc_beam.train(doubled, **common)
    model = [k for k in once.tensors() if k.startswith("model.")]
    assert len(model) > 5 and all(np.array_equal(once.tensors()[k], twice.tensors()[k]) for k in model)
    assert [q.rows for q in twice._points_of([doubled[:700], doubled[700:1400]])] == [350, 350]
    assert twice.series_code_length([doubled]) == pytest.approx(twice.series_code_length([x]), rel=1e-12)
