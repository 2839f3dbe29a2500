"""ltc_beam.arrow / read_parquet: layouts, metadata, decoding without Beam, errors."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import ltc_beam
from ltc_beam import arrow, bitstream, testing
from ltc_beam.errors import BEYOND_FLOAT32, CodecMismatchError, FormatError, InputError, OffScaleWarning
from tests.beam_fixtures import block_codec, small, sort_by_series, telemetry, values_of, vec_codec, window_codec  # noqa: F401
from tests.conftest import unbounded


@pytest.fixture(autouse=True)
def _fresh_caches():
    arrow._CODECS.clear()
    arrow._BY_URI.clear()
    yield


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float32 rounding of the synthesis transform (batch size changes GEMM order)."""
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("layout", ["chunk", "record"])
def test_round_trip_restores_schema_and_pass_through(small, vec_codec, layout):
    codec, _ = vec_codec
    enc = arrow.encode_table(small, codec, column="values", key="device", order_by="ts", layout=layout, chunk_size=256)
    if layout == "chunk":
        assert enc.schema.field("device").type == pa.list_(pa.string())
        assert enc.num_rows < small.num_rows
        assert sum(enc.column(arrow.COUNT).to_pylist()) == small.num_rows
        assert set(enc.column(arrow.CODEC).to_pylist()) == {codec.id}
    else:
        assert enc.num_rows == small.num_rows
        assert enc.schema.field("device").type == pa.string()
    dec = arrow.sort_decoded(arrow.decode_table(enc), "device", "ts")
    ref = sort_by_series(small)
    assert dec.schema.equals(small.schema, check_metadata=True)
    assert dec.drop(["values"]).equals(ref.drop(["values"]))  # pass-through identical (nulls included)
    x, y = values_of(ref), values_of(dec)
    want = codec.reconstruct(x)  # what the in-process codec gives
    assert same_values(y, want)
    finite = np.isfinite(x).all(axis=1)
    mse, want_mse = np.mean((y[finite] - x[finite]) ** 2), np.mean((want[finite] - x[finite]) ** 2)
    assert abs(mse - want_mse) <= 1e-6 * want_mse
    special = ~np.isfinite(x)
    assert special.any() and same_bits(y[special], x[special])  # NaN / ±Inf exact


def test_window_and_block_codecs_match_in_process_chunks(small, window_codec, block_codec):
    for codec, _ in (window_codec, block_codec):
        enc = arrow.encode_table(small, codec, column="values", key="device", order_by="ts", chunk_size=64)
        chunks = arrow.plan_chunks([small], key="device", order_by="ts", rows=arrow.chunk_rows(codec, 64))
        want = np.concatenate([codec.reconstruct(values_of(c), arrow.series_lengths(c, "device")) for c in chunks])
        got = values_of(arrow.decode_table(enc))
        assert same_values(got, want)


def test_packed_short_series_are_windowed_apart(window_codec):
    """Series shorter than a chunk share bitstreams; a windowed codec windows each on its own
    (version-3 streams name their lengths), never across two series: in vector mode each
    series then decodes exactly as it would alone (before clamping to the bounds each
    stream may state: those of the series it holds)."""
    codec, _ = window_codec
    lengths = [5, 11, 2, 17, 9, 6, 23, 3, 13, 7]
    parts = [testing.telemetry_table(n, keys=1, dim=8, seed=i, specials=0) for i, n in enumerate(lengths)]
    table = pa.concat_tables([p.set_column(0, "device", pa.array([f"dev{i:02d}"] * p.num_rows)) for i, p in enumerate(parts)])
    codec.sample_fallback = False
    try:
        enc = arrow.encode_table(table, codec, column="values", key="device", order_by="ts")
        alone = [codec.decode(unbounded(codec.encode(values_of(p)))) for p in parts]
    finally:
        codec.sample_fallback = True
    frames = [bitstream.unpack(b) for b in enc.column(arrow.PAYLOAD).to_pylist()]
    # tails are packed in a few groups (by key hash); each stream states its series' lengths
    stated = sorted(n for f in frames for n in (f.segments or (f.shape[0],)))
    assert stated == sorted(lengths) and sum(f.segments is not None for f in frames) >= 2
    blobs = pa.array([unbounded(b) for b in enc.column(arrow.PAYLOAD).to_pylist()], enc.schema.field(arrow.PAYLOAD).type)
    enc = enc.set_column(enc.schema.get_field_index(arrow.PAYLOAD), enc.schema.field(arrow.PAYLOAD), blobs)
    dec = arrow.decode_table(enc).sort_by([("device", "ascending"), ("ts", "ascending")])
    assert dec.num_rows == table.num_rows
    assert codec.config.mode == "vector" and codec.classes is None  # windows coded independently
    np.testing.assert_allclose(values_of(dec), np.concatenate(alone), rtol=1e-5, atol=1e-5)
    assert arrow.series_lengths(table.slice(0, 5), "device") is None
    assert arrow.series_lengths(table, None) is None


def test_parquet_file_opens_with_plain_pyarrow_and_decodes_without_codec_file(small, vec_codec, tmp_path):
    codec, _ = vec_codec
    codec_path = tmp_path / "c.ltc"
    codec.save(str(codec_path))
    out = tmp_path / "x.parquet"
    ltc_beam.parquet.write_parquet(small, str(out), codec, column="values", key="device", order_by="ts")
    plain = pq.read_table(out)  # plain pyarrow: payload column, lists, metadata
    assert plain.schema.field(arrow.PAYLOAD).type == pa.binary()
    assert b"ltc" in plain.schema.metadata and b"ltc.codec" in plain.schema.metadata
    os.remove(codec_path)  # the embedded codec is all that is needed
    dec = ltc_beam.read_parquet(str(out))
    assert dec.schema.equals(small.schema, check_metadata=True)
    assert dec.num_rows == small.num_rows


def test_embedded_codec_is_compact(small, vec_codec):
    codec, _ = vec_codec
    schema = arrow.compressed_schema(small.schema, codec, column="values", key="device", order_by="ts")
    from ltc_beam.codec.artifact import codec_to_bytes

    raw = len(codec_to_bytes(codec, compressed=False))
    embedded = len(schema.metadata[b"ltc.codec"])
    assert embedded < 0.75 * raw * 4 / 3  # zstd before base64 saves at least a quarter
    other = sum(len(v) for k, v in schema.metadata.items() if k != b"ltc.codec")
    assert other < 8000


def test_a_file_stores_its_embedded_codec_once(small, vec_codec, tmp_path):
    """The codec travels once per file, inside ARROW:schema, yet plain pyarrow sees it."""
    codec, _ = vec_codec
    sizes = {}
    for embed in (True, False):
        path = tmp_path / f"embed-{embed}.parquet"
        enc = ltc_beam.parquet.write_parquet(small, str(path), codec, column="values", key="device", embed_codec=embed)
        sizes[embed] = os.path.getsize(path)
        assert pq.read_table(path).schema.metadata == enc.schema.metadata
        assert all(v.decode("utf-8") for v in enc.schema.metadata.values())  # arrow-rs refuses other bytes there
    footer = pq.read_metadata(tmp_path / "embed-True.parquet").metadata
    assert b"ltc.codec" not in footer and b"ltc.manifest" in footer
    embedded = len(arrow.compressed_schema(small.schema, codec, column="values", key="device").metadata[b"ltc.codec"])
    assert embedded < sizes[True] - sizes[False] < 1.4 * embedded  # one copy (base64 once more)
    counted = ltc_beam.parquet.embedded_codec_bytes(str(tmp_path / "embed-True.parquet"))
    assert counted == pytest.approx(sizes[True] - sizes[False], abs=200)
    assert ltc_beam.parquet.embedded_codec_bytes(str(tmp_path / "embed-False.parquet")) == 0


def test_payloads_carry_no_statistics(small, vec_codec, tmp_path):
    """Parquet's min/max statistics copied the smallest and largest bitstream into the page
    header and the footer: 4.7 of the 21.1 KB of the demo's test split without its codec."""
    codec, _ = vec_codec
    for layout in ("chunk", "record"):
        path = tmp_path / f"{layout}.parquet"
        ltc_beam.parquet.write_parquet(small, str(path), codec, column="values", key="device", layout=layout, embed_codec=False)
        row_group = pq.read_metadata(path).row_group(0)
        kept = {row_group.column(i).path_in_schema: row_group.column(i).statistics for i in range(row_group.num_columns)}
        assert kept[arrow.PAYLOAD] is None and kept["device" if layout == "record" else "device.list.element"] is not None
        assert ltc_beam.read_parquet(str(path), codec).num_rows == small.num_rows


def test_a_dictionary_key_decodes_in_series_order(small, vec_codec, tmp_path):
    codec, _ = vec_codec
    table = small.set_column(small.schema.get_field_index("device"), "device", small.column("device").dictionary_encode())
    ltc_beam.parquet.write_parquet(table, str(tmp_path / "d.parquet"), codec, column="values", key="device", order_by="ts")
    back = ltc_beam.read_parquet(str(tmp_path / "d.parquet"))
    assert back.schema.equals(table.schema)
    want = arrow.sort_decoded(small, "device", "ts")
    assert back.column("device").cast(pa.string()).equals(want.column("device"))
    assert back.column("ts").equals(want.column("ts"))


def test_any_column_names_round_trip_and_a_name_twice_is_refused(small, vec_codec, tmp_path):
    """A dotted name read as a nested path failed the writer ("Column dot does not exist");
    a column named " series", the chunker's own helper column once, took over the grouping
    by key (chunks mixed devices); a name twice failed inside the job."""
    codec, _ = vec_codec
    odd = {"dot.ted": pa.array(np.arange(small.num_rows)), " series": pa.array(np.arange(small.num_rows) % 5)}
    table = small
    for name, column in odd.items():
        table = table.append_column(name, column)
    opts = dict(column="values", key="device", order_by="ts", chunk_size=64)
    ltc_beam.parquet.write_parquet(table, str(tmp_path / "d.parquet"), codec, **opts)
    encoded = pq.read_table(tmp_path / "d.parquet")
    assert encoded.column(arrow.PAYLOAD).equals(arrow.encode_table(small, codec, **opts).column(arrow.PAYLOAD))
    chunks, _ = arrow.chunks_of_series(table, "device", "ts", 64)  # the Beam path's one sort
    assert [c.column("seq") for c in chunks] == [c.column("seq") for c in arrow.chunks_of_series(small, "device", "ts", 64)[0]]
    back = ltc_beam.read_parquet(str(tmp_path / "d.parquet"))
    want = arrow.sort_decoded(table, "device", "ts")
    assert back.drop_columns(["values"]).equals(want.drop_columns(["values"]))
    twice = pa.Table.from_arrays([small.column("values"), small.column("seq"), small.column("seq")], names=["values", "seq", "seq"])
    with pytest.raises(InputError, match="'seq' appears 2 times"):
        arrow.encode_table(twice, codec, column="values")


def test_view_columns_are_refused_by_name_where_records_are_reordered_and_uuid_keys_group(small, vec_codec):
    """Arrow has no take kernel for string_view (nor dictionary_encode for a UUID): a raw
    ArrowNotImplementedError from inside the chunking, no column named."""
    import uuid

    codec, _ = vec_codec
    viewed = small.append_column("note", pa.array(["x"] * small.num_rows, pa.string_view()))
    with pytest.raises(InputError, match="column 'note' has type string_view"):
        arrow.encode_table(viewed, codec, column="values", key="device", order_by="ts")
    assert arrow.decode_table(arrow.encode_table(viewed, codec, column="values")).column("note").equals(viewed.column("note"))
    ids = [uuid.UUID(int=int(d[4:])).bytes for d in small.column("device").to_pylist()]
    keyed = small.append_column("id", pa.ExtensionArray.from_storage(pa.uuid(), pa.array(ids, pa.binary(16))))
    back = arrow.decode_table(arrow.encode_table(keyed, codec, column="values", key="id", order_by="ts"))
    assert sorted(back.column("seq").to_pylist()) == sorted(small.column("seq").to_pylist())


def test_without_embedded_codec_needs_codec_and_checks_it(small, vec_codec, window_codec, tmp_path):
    codec, path = vec_codec
    enc = arrow.encode_table(small, codec, column="values", key="device", order_by="ts", embed_codec=False)
    assert b"ltc.codec" not in enc.schema.metadata
    with pytest.raises(FormatError, match="not embedded"):
        arrow.decode_table(enc)
    assert arrow.decode_table(enc, path).num_rows == small.num_rows  # codec by URI
    from pathlib import Path  # by pathlib.Path too (an AttributeError: 'PosixPath' object has no attribute 'id')
    assert arrow.decode_table(enc, Path(path)).num_rows == small.num_rows
    assert arrow.encode_table(small, Path(path), column="values", key="device", order_by="ts", embed_codec=False).equals(enc)
    with pytest.raises(CodecMismatchError):
        arrow.decode_table(enc, window_codec[0])
    pq.write_table(enc, tmp_path / "part-1.parquet")
    with pytest.raises(CodecMismatchError, match="part-1.parquet: .*needs codec"):  # in a folder: which file
        ltc_beam.read_parquet(tmp_path, window_codec[0])


def test_a_dataframe_is_written_and_read_back_with_its_index(vec_codec, tmp_path):
    """write_parquet(DataFrame) raised AttributeError ('DataFrame' object has no attribute 'schema')."""
    import pandas as pd

    codec, _ = vec_codec
    names = [f"c{j}" for j in range(8)]
    frame = pd.DataFrame(np.random.default_rng(3).normal(size=(300, 8)), columns=names, index=pd.date_range("2024", periods=300, freq="min"))
    ltc_beam.parquet.write_parquet(frame, tmp_path / "f.parquet", codec, columns=names)
    back = ltc_beam.read_parquet(tmp_path / "f.parquet").to_pandas()
    assert back.index.equals(frame.index) and list(back.columns) == names
    assert np.allclose(back.to_numpy(), codec.reconstruct(frame.to_numpy()), atol=1e-6)  # vector mode: record by record
    keyed = frame.reset_index(drop=True).set_axis(pd.RangeIndex(1000, 1300))  # an index pyarrow keeps as metadata only
    keyed["dev"], keyed["t"] = np.where(np.arange(300) % 2, "p", "q"), np.arange(300)
    ltc_beam.parquet.write_parquet(keyed, tmp_path / "k.parquet", codec, columns=names, key="dev", order_by="t")
    back = ltc_beam.read_parquet(tmp_path / "k.parquet").to_pandas()  # rows sorted by key and order: the index with them
    assert (back.index.to_numpy() == back["t"].to_numpy() + 1000).all()
    with pytest.raises(InputError, match="expected a pyarrow Table or a pandas DataFrame"):
        arrow.encode_table(frame.to_numpy(), codec, columns=names)
    numbered = frame.set_axis(range(8), axis=1)  # labels 0..7 name Arrow columns "0".."7"
    assert arrow.encode_table(numbered, codec, columns=list(range(8))).column(arrow.COUNT).to_pylist() == [300]


def test_scalar_columns_layout(vec_codec):
    codec, _ = vec_codec
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)).astype(np.float64)
    table = pa.table({f"c{i}": x[:, i] for i in range(8)} | {"tag": pa.array(["a"] * 500)})
    cols = [f"c{i}" for i in range(8)]
    with warnings.catch_warnings():  # i.i.d. values through a codec of telemetry: sample-coded, or said to be off its scale
        warnings.simplefilter("ignore", OffScaleWarning)
        enc = arrow.encode_table(table, codec, columns=cols)
    dec = arrow.decode_table(enc)
    assert dec.schema.equals(table.schema)
    assert dec.column("tag").equals(table.column("tag"))


def test_corrupt_payload_names_row(small, vec_codec):
    codec, _ = vec_codec
    enc = arrow.encode_table(small, codec, column="values", key="device", order_by="ts", chunk_size=256)
    payloads = enc.column(arrow.PAYLOAD).to_pylist()
    bad = bytearray(payloads[2])
    bad[len(bad) // 2] ^= 0xFF
    payloads[2] = bytes(bad)
    broken = enc.set_column(enc.schema.get_field_index(arrow.PAYLOAD), enc.schema.field(arrow.PAYLOAD), pa.array(payloads, pa.binary()))
    with pytest.raises(FormatError, match="row 2"):
        arrow.decode_table(broken)
    with pytest.raises(FormatError, match="ltc"):
        arrow.decode_table(small)  # not compressed at all


BAD_CASES = {
    "wrong vector length": (pa.list_(pa.float32()), [[1.0] * 8, [1.0] * 7], "row 1", "7 values"),
    "null vector": (pa.list_(pa.float32()), [[1.0] * 8, None], "row 1", "null"),
    "ragged lists": (pa.list_(pa.float64()), [[1.0] * 8, [1.0] * 9, [1.0] * 8], "row 1", "9 values"),
    "float64 beyond float32": (pa.list_(pa.float64()), [[1.0] * 8, [1.0] * 7 + [-1e300], [3e38] * 8], "row 1", "float32's range"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_vectors_name_column_and_row(vec_codec, case):
    codec, _ = vec_codec
    typ, rows, row, what = BAD_CASES[case]
    table = pa.table({"k": pa.array(range(len(rows))), "vec": pa.array(rows, typ)})
    with pytest.raises(InputError, match=f"column 'vec', {row}.*{what}"):
        arrow.encode_table(table, codec, column="vec")


def test_values_that_are_not_numbers_are_refused_and_integers_decode_to_integers(vec_codec):
    codec, _ = vec_codec
    flags = pa.table({"vec": pa.array([[True] * 8], pa.list_(pa.bool_()))})
    with pytest.raises(InputError, match="column 'vec' holds bool values: LTC codes floats and integers"):
        arrow.encode_table(flags, codec, column="vec")
    level = np.asarray(codec.manifest["normalisation"]["mean"])
    counts = np.round(level + np.arange(40)[:, None] % 7).astype(np.int64)
    for kind in (pa.int64(), pa.int16()):  # integer vectors were refused: "cast it to float32"
        ints = pa.table({"vec": pa.array(counts.tolist(), pa.list_(kind))})
        back = arrow.decode_table(arrow.encode_table(ints, codec, column="vec"), codec).column("vec")
        assert back.type == pa.list_(kind)
        decoded = np.asarray(back.to_pylist(), np.float64)
        assert np.abs(decoded - counts).max() < 4 * counts.std()  # the nearest integers of lossy values
    strings = pa.table({f"c{i}": pa.array(["x"]) for i in range(8)})
    with pytest.raises(InputError, match="column 'c0'.*string"):
        arrow.encode_table(strings, codec, columns=[f"c{i}" for i in range(8)])
    wide = pa.table({f"c{i}": pa.array([1.0, None, 1e300 if i == 5 else 2.0]) for i in range(8)})
    assert arrow.find_bad_rows(wide, arrow.VectorSpec(None, [f"c{i}" for i in range(8)], 8)) == {2: ("c5", BEYOND_FLOAT32)}
    fixed = pa.table({"vec": pa.array([[1.0] * 6], pa.list_(pa.float32(), 6))})
    with pytest.raises(InputError, match="column 'vec' holds 6 values"):
        arrow.encode_table(fixed, codec, column="vec")


def test_training_input_refuses_what_encoding_refuses(vec_codec, tmp_path):
    """train/evaluate load records under the same type rule, with the same message, as encoding."""
    from ltc_beam import data

    codec, _ = vec_codec
    table = pa.table({"vec": pa.array([[True] * 8] * 3, pa.list_(pa.bool_())), "a": [1.5] * 3, "b": [True, False, True]})
    path = tmp_path / "ints.parquet"
    pq.write_table(table, path)
    with pytest.raises(InputError) as loading:
        data.load(str(path), column="vec")
    with pytest.raises(InputError) as encoding:
        arrow.encode_table(table, codec, column="vec")
    assert str(loading.value) == str(encoding.value) == (
        "column 'vec' holds bool values: LTC codes floats and integers (cast it to float32 where it holds numbers)"
    )
    with pytest.raises(InputError, match="column 'b' has type bool: LTC codes floats and integers"):
        data.load(str(path), columns=["a", "b"])
    np.save(tmp_path / "flags.npy", np.eye(6, 2, dtype=bool))  # compress refuses it too
    with pytest.raises(InputError, match="expected a 2-D array of numbers.*bool"):
        data.load(str(tmp_path / "flags.npy"))
    np.save(tmp_path / "ints.npy", np.arange(12).reshape(6, 2))  # integers are coded
    assert data.load(str(tmp_path / "ints.npy")).series[0].tolist() == np.arange(12.0).reshape(6, 2).tolist()


def test_layout_and_order_rules(small, window_codec, block_codec):
    with pytest.raises(InputError, match="order_by"):
        arrow.encode_table(small, window_codec[0], column="values", key="device")
    with pytest.raises(InputError, match="record layout"):
        arrow.encode_table(small, block_codec[0], column="values", layout="record")


def test_chunking_is_independent_of_batching(small, block_codec):
    codec, _ = block_codec
    rows = arrow.chunk_rows(codec, 200)
    devices = sorted(set(small.column("device").to_pylist()))
    names = {d: None if i % 7 == 0 else f"n{len(devices) - i}" for i, d in enumerate(devices)}  # another key order
    named = small.append_column("name", pa.array([names[d] for d in small.column("device").to_pylist()]))
    for table, key, shards in ((small, "device", 4), (named, "name", 3)):  # one batch: one sort of it all
        whole = arrow.plan_chunks([table], key=key, order_by="ts", rows=rows, pack_shards=shards)
        batches = [table.slice(i, 700) for i in range(0, table.num_rows, 700)]
        shuffled = arrow.plan_chunks(batches[::-1], key=key, order_by="ts", rows=rows, pack_shards=shards)
        assert [c.num_rows for c in whole] == [c.num_rows for c in shuffled]
        for a, b in zip(whole, shuffled):
            assert a.drop(["values"]).equals(b.drop(["values"]))
            assert same_bits(values_of(a), values_of(b))  # NaN-safe
        # short series are packed: far fewer chunks than devices
        assert len(whole) < 30 and sum(c.num_rows for c in whole) == table.num_rows


def test_written_parquet_compresses_pass_through_columns(small, vec_codec, tmp_path):
    codec, _ = vec_codec
    ours = tmp_path / "ours.parquet"
    enc = ltc_beam.parquet.write_parquet(small, str(ours), codec, column="values", key="device", order_by="ts")
    plain = tmp_path / "plain.parquet"
    pq.write_table(enc, plain, compression="zstd")
    assert os.path.getsize(ours) < 0.9 * os.path.getsize(plain)  # nested lists compressed, times delta-coded
    meta = pq.ParquetFile(ours).metadata.row_group(0)
    codecs = {meta.column(i).path_in_schema: meta.column(i).compression for i in range(meta.num_columns)}
    assert codecs[arrow.PAYLOAD] == "UNCOMPRESSED" and codecs["device.list.element"] == "ZSTD"
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["ts.list.element"] and "DELTA_BINARY_PACKED" in encodings["seq.list.element"]
    assert pq.read_table(ours).equals(enc)


def test_parquet_options_round_trip_every_column_kind(tmp_path):
    """Delta coding goes to integer and time leaves only; dictionary-typed columns keep theirs."""
    import datetime

    from ltc_beam.parquet import parquet_options

    t = pa.table({
        "i": pa.array([5, -2, 7], pa.int32()),
        "ts": pa.array([datetime.datetime(2020, 1, 1, s) for s in range(3)], pa.timestamp("ms", tz="UTC")),
        "day": pa.array([datetime.date(2020, 1, d) for d in (1, 2, 3)]),
        "dec": pa.array([1, 2, 3], pa.decimal128(5, 2)),
        "ints": pa.array([[1, 2], [3], []], pa.list_(pa.int64())),
        "cat": pa.array(["x", "y", "x"]).dictionary_encode(),
        "st": pa.array([{"x": 1, "y": "a"}] * 3),
        "f": [1.5, None, 3.0],
        "b": [True, False, None],
    })
    options = parquet_options(t.schema, "zstd")
    assert set(options["column_encoding"]) == {"i", "ts", "day", "ints.list.element", "st.x"}
    pq.write_table(t, tmp_path / "t.parquet", **options)
    back = pq.read_table(tmp_path / "t.parquet")
    assert back.drop(["ints"]).equals(t.drop(["ints"])) and back.column("ints").to_pylist() == t.column("ints").to_pylist()


@pytest.mark.parametrize("layout", ["chunk", "record"])
def test_dictionaries_of_numbers_and_extension_types_pass_through_parquet(vec_codec, tmp_path, layout):
    """Parquet keeps only a string column's dictionary: a dictionary of integers or dates
    read back as its values, which Arrow casts to no dictionary (a written file that no
    reader decoded); extension types (UUIDs) and date dictionaries failed the writer."""
    import uuid

    codec, _ = vec_codec
    n = 40
    passing = {
        "status": pa.array([200, 404] * (n // 2), pa.int64()).dictionary_encode(),
        "day": pa.DictionaryArray.from_arrays(pa.array([0, 1] * (n // 2), pa.int8()), pa.array([19000, 19001], pa.date32())),
        "id": pa.ExtensionArray.from_storage(pa.uuid(), pa.array([uuid.UUID(int=i).bytes for i in range(n)], pa.binary(16))),
        "row": pa.array(range(n)),
    }
    table = pa.table({"values": pa.array(list(np.ones((n, 8), np.float32)), pa.list_(pa.float32(), 8)), **passing})
    ltc_beam.write_parquet(table, str(tmp_path / "t.parquet"), codec, column="values", layout=layout)  # at the top, as read_parquet
    back = ltc_beam.read_parquet(str(tmp_path / "t.parquet")).sort_by("row")
    for name, column in passing.items():
        assert back.schema.field(name).type == column.type and back.column(name).to_pylist() == column.to_pylist()


def test_record_payloads_are_compact_and_version_1_tables_still_decode(small, vec_codec):
    codec, _ = vec_codec
    part = small.slice(0, 300)
    enc = arrow.encode_table(part, codec, column="values", layout="record")
    x = arrow.vectors(part, arrow.VectorSpec("values", None, 8))
    for i, payload in enumerate(enc.column(arrow.PAYLOAD).to_pylist()[:50]):
        assert len(codec.encode(x[i : i + 1])) - len(payload) == 23  # magic, version, codec id, shape
    decoded = arrow.decode_table(enc)
    spec = arrow.VectorSpec("values", None, 8)
    np.testing.assert_allclose(arrow.vectors(decoded, spec), codec.decode(codec.encode(x)), rtol=1e-5, atol=1e-6)
    # the same table as version 1 wrote it: whole bitstreams, metadata version 1
    meta = dict(enc.schema.metadata)
    info = json.loads(meta[arrow.META])
    meta[arrow.META] = json.dumps({**info, "version": 1}).encode()
    del meta[arrow.META_CHECK]  # written from session 22 only
    whole = [bitstream.record_stream(p, codec.id, 8) for p in enc.column(arrow.PAYLOAD).to_pylist()]
    old = enc.set_column(enc.schema.get_field_index(arrow.PAYLOAD), arrow.PAYLOAD, pa.array(whole, pa.binary()))
    np.testing.assert_array_equal(arrow.vectors(arrow.decode_table(old.replace_schema_metadata(meta)), spec), arrow.vectors(decoded, spec))
    # the checksum still covers a compact payload
    damaged = bytearray(enc.column(arrow.PAYLOAD)[7].as_py())
    damaged[1] ^= 0x10
    bad = enc.set_column(enc.schema.get_field_index(arrow.PAYLOAD), arrow.PAYLOAD,
                         pa.array([*enc.column(arrow.PAYLOAD).to_pylist()[:7], bytes(damaged), *enc.column(arrow.PAYLOAD).to_pylist()[8:]], pa.binary()))
    with pytest.raises(FormatError, match="row 7"):
        arrow.decode_table(bad)


def test_codec_cache_reads_a_rewritten_codec_file_again(vec_codec, block_codec, tmp_path):
    path = str(tmp_path / "codec.ltc")
    vec_codec[0].save(path)
    assert arrow.load_codec(path).id == vec_codec[0].id
    assert arrow.load_codec(path) is arrow.load_codec(path)  # parsed once
    block_codec[0].save(path)  # retrained to the same path
    os.utime(path, ns=(1, 1))  # even with an mtime that went backwards
    assert arrow.load_codec(path).id == block_codec[0].id
    # only each file's latest version stays parsed, and only so many files (every version
    # stayed: 1.6 GB after a codec was saved to one path 600 times)
    for i in range(arrow.URI_CACHE_SIZE + 4):
        os.utime(path, ns=(i + 2, i + 2))
        arrow.load_codec(path)
        vec_codec[0].save(str(tmp_path / f"c{i}.ltc"))
        arrow.load_codec(str(tmp_path / f"c{i}.ltc"))
    assert len(arrow._BY_URI) == arrow.URI_CACHE_SIZE and sum(key[0] == path for key in arrow._BY_URI) <= 1


def test_records_of_few_values_get_longer_chunks_by_default():
    """Chunks hold at least MIN_CHUNK_VALUES values by default: one-value records are cut
    every 16,384 records, not 4,096 (each bitstream costs ~34 bytes of framing)."""
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.standard_normal(20_000)).astype(np.float32)[:, None]
    codec = ltc_beam.train(x, lattice="z1", steps=20, progress=False)
    assert arrow.default_chunk_size(codec) == arrow.MIN_CHUNK_VALUES
    table = pa.table({"t": np.arange(len(x)), "v": x[:, 0]})
    by_default = arrow.encode_table(table, codec, columns=["v"], order_by="t")
    short = arrow.encode_table(table, codec, columns=["v"], order_by="t", chunk_size=arrow.DEFAULT_CHUNK_SIZE)
    assert by_default.num_rows == 2 and short.num_rows == 5
    assert arrow.table_info(by_default.schema).chunk_size == arrow.MIN_CHUNK_VALUES
    payload = {n: sum(map(len, t.column(arrow.PAYLOAD).to_pylist())) for n, t in (("long", by_default), ("short", short))}
    assert payload["long"] < payload["short"]


def test_null_values_come_back_as_null(vec_codec):
    """pandas writes NaN as null, which was refused: a null value (a float column's, or one
    inside a vector) travels as the NaN of ``arrow.NULL_BITS`` and decodes as null; other
    NaN stay NaN. A null vector is still refused."""
    codec, _ = vec_codec
    rng = np.random.default_rng(0)
    norm = codec.manifest["normalisation"]
    x = np.asarray(norm["mean"]) + np.asarray(norm["std"]) * rng.standard_normal((300, 8))
    columns = {f"c{i}": pa.array(np.where(rng.random(300) < 0.1, np.nan, x[:, i]), pa.float64(), mask=rng.random(300) < 0.1) for i in range(8)}
    table = pa.table({"t": np.arange(300), **columns})
    decoded = arrow.decode_table(arrow.encode_table(table, codec, columns=list(columns), order_by="t"))
    for name, col in columns.items():
        got = decoded.column(name).combine_chunks()
        assert got.type == pa.float64() and pc.is_null(got).equals(pc.is_null(col))
        assert pc.is_nan(got.fill_null(0.0)).equals(pc.is_nan(col.fill_null(0.0)))  # NaN stay NaN
    vectors = pa.table({"v": pa.array([[1.0] * 7 + [None], [None] * 8, [2.0] * 8] * 50, pa.list_(pa.float32()))})
    got = arrow.decode_table(arrow.encode_table(vectors, codec, column="v")).column("v").combine_chunks()
    assert pc.is_null(pc.list_flatten(got)).equals(pc.is_null(pc.list_flatten(vectors.column("v").combine_chunks())))
    collide = np.array([0x7FF8098A80000123], np.uint64).view(np.float64)  # a NaN that narrows to the null's bits
    assert collide.astype(np.float32).view(np.uint32)[0] == arrow.NULL_BITS
    c0 = np.array(columns["c0"].fill_null(0.0))
    c0[[5, 6]] = collide[0]
    got = arrow.decode_table(arrow.encode_table(table.set_column(1, "c0", pa.array(c0)), codec, columns=list(columns), order_by="t"))
    assert got.column("c0").null_count == 0 and np.isnan(got.column("c0").to_numpy()[[5, 6]]).all()  # was null
    from ltc_beam.data import values_of

    values, _ = values_of(table, list(columns))  # train and evaluate read nulls as missing values
    assert np.isnan(values[pc.is_null(table.column("c0")).to_numpy(zero_copy_only=False), 0]).all()


def test_damaged_ltc_metadata_is_a_format_error(small, vec_codec):
    """The footer's ltc entries are not under the page or payload checksums: one flipped bit
    had lost the key (series interleaved) or changed a column's type, silently."""
    codec, _ = vec_codec
    table = arrow.encode_table(small, codec, column="values", key="device", order_by="ts")
    assert arrow.decode_table(table).num_rows == small.num_rows
    for entry, old, new in [(arrow.META, b'"device"', b'"devicf"'), (arrow.META_MANIFEST, b"e8", b"e9")]:
        meta = dict(table.schema.metadata)
        assert old in meta[entry]
        meta[entry] = meta[entry].replace(old, new, 1)
        with pytest.raises(FormatError, match="ltc metadata .* is damaged"):
            arrow.decode_table(table.replace_schema_metadata(meta))
    meta = dict(table.schema.metadata)
    del meta[arrow.META_CHECK]  # files written before the check: read as before
    assert arrow.decode_table(table.replace_schema_metadata(meta)).to_pandas().equals(arrow.decode_table(table).to_pandas())


def test_a_one_value_column_of_numbers_that_are_not_floats_says_to_cast_it():
    """A decimal column for a one-value codec: "expected a list of floats" in compress, where evaluate said to cast it."""
    with pytest.raises(InputError, match="codes floats and integers"):
        arrow.resolve_spec(pa.schema([("x", pa.decimal128(6, 3))]), 1, column="x")
    assert arrow.resolve_spec(pa.schema([("x", pa.int32())]), 1, column="x").columns == ("x",)


def test_chunk_rows_of_another_codec_in_one_table_are_a_codec_mismatch(small, vec_codec, block_codec):
    """Files of two codecs read as one table (pyarrow.dataset of a directory): each chunk row
    names its codec, so the row of the other codec is named as such, not as damage."""
    ours = arrow.encode_table(small, vec_codec[0], column="values", key="device", order_by="ts")
    theirs = arrow.encode_table(small, block_codec[0], column="values", key="device", order_by="ts")
    mixed = pa.concat_tables([ours, theirs.cast(ours.schema)])
    with pytest.raises(CodecMismatchError, match=f"row {ours.num_rows} names codec {block_codec[0].id}"):
        arrow.decode_table(mixed)


@pytest.mark.parametrize("order_by", ["ts", None])
def test_one_sort_of_a_shard_chunks_as_series_by_series(order_by):
    """``chunks_of_series`` (a shard of tables in one sort) gives the chunks that splitting
    by key, ordering and cutting each series and packing the tails give, and the same count
    of tied records: keys with nulls and a dictionary type, order values with ties and nulls."""
    rng = np.random.default_rng(6)
    n = 3000
    keys = pa.array([None if i % 97 == 0 else f"k{rng.integers(0, 40)}" for i in range(n)]).dictionary_encode()
    ts = pa.array([None if i % 89 == 0 else int(v) for i, v in enumerate(rng.integers(0, 300, n))])
    table = pa.table({"dev": keys, "ts": ts, "v": rng.normal(size=n)})
    rows = 64
    chunks, tied = arrow.chunks_of_series(table, "dev", order_by, rows)
    expected, tails, ties = [], [], 0
    for _, kb, part in arrow.split_by_key(table, "dev"):
        series = arrow.order_series([part], order_by)
        ties += arrow.tied_records(series, order_by)
        full, rest = arrow.cut(series, rows)
        expected += full
        if rest is not None:
            tails.append((kb, rest))
    expected += arrow.pack_tails(tails, rows)
    assert tied == ties and (tied > 0) == (order_by is not None)
    assert [c.num_rows for c in chunks] == [c.num_rows for c in expected]
    assert all(a.equals(b) for a, b in zip(chunks, expected))


def test_each_row_goes_to_its_series_file():
    """``files_of_rows`` works out each key's file once: the file ``shard_of`` gives its key bytes."""
    keys = pa.array(["a", None, "b", "a", "c", None, "b"]).dictionary_encode()
    table = pa.table({"dev": keys, "v": np.arange(7.0)})
    files = arrow.files_of_rows(table, "dev", 5)
    assert files.tolist() == [arrow.shard_of(arrow.canonical(k), 5) for k in keys.to_pylist()]


def test_the_codecs_columns_named_in_another_order_are_coded_by_name(tmp_path):
    """write_parquet / LtcEncode coded ``columns=`` naming the codec's columns in another
    order by position, without a word (1.5 dB instead of 17.6 where scales differ)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 3))) * np.array([1.0, 10.0, 100.0])
    table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    codec = ltc_beam.train(pd.DataFrame(x, columns=list("abc")), steps=20, progress=False, calibrate=False)
    codec.save(tmp_path / "abc.ltc")
    written = []
    for order, given in ((["a", "b", "c"], codec), (["c", "a", "b"], codec), (["b", "c", "a"], str(tmp_path / "abc.ltc"))):
        ltc_beam.parquet.write_parquet(table, tmp_path / "x.parquet", given, columns=order)  # a URI too (it failed)
        written.append(pq.read_table(tmp_path / "x.parquet"))
    assert written[0].equals(written[1]) and written[0].equals(written[2])
    plain = ltc_beam.train(x, steps=20, progress=False, calibrate=False)  # columns v0, v1, v2: no names known
    assert arrow.in_codec_order(["v1", "v0", "v2"], plain) == ["v1", "v0", "v2"]  # by position, as documented
    assert arrow.in_codec_order(["b", "a", "a"], codec) == ["b", "a", "a"]


def test_finite_values_near_the_float_limits_decode_finite(tmp_path):
    """A float16 column near its limit (65,504) decoded 2-3 % of its values as +inf, silently
    (the float32 decode cast down); values near float32's limit did the same in Codec.decode;
    and compress --verify then failed with "math domain error"."""
    from ltc_beam.evaluation import _decibels

    rng = np.random.default_rng(8)
    half = np.clip(60000 + 5000 * np.sin(np.arange(1000) / 7) + 1500 * rng.standard_normal(1000), -65504, 65504).astype(np.float16)
    other = rng.standard_normal(1000).astype(np.float16)
    half[:2] = [np.inf, -np.inf]  # stay infinite: they travel exactly
    table = pa.table({"h": half, "g": other})
    x = np.stack([half, other], 1).astype(np.float32)
    codec = ltc_beam.train(x[2:], columns=["h", "g"], steps=30, lattice="e8", target_bits_per_value=1, progress=False)
    decoded = arrow.decode_table(arrow.encode_table(table, codec, columns=["h", "g"]), codec).column("h").to_numpy()
    assert decoded.dtype == np.float16 and decoded[0] == np.inf and decoded[1] == -np.inf
    assert np.isfinite(decoded[2:]).all()
    assert codec.decode(codec.encode(x))[2:, 0].max() > 65504  # the float32 decode lies beyond float16's range
    big = np.stack([3.0e38 + 3e37 * np.sin(np.arange(1000) / 7), rng.standard_normal(1000)], 1).astype(np.float32)
    big_codec = ltc_beam.train(big, steps=30, lattice="e8", target_bits_per_value=1, progress=False)
    assert np.isfinite(big_codec.decode(big_codec.encode(big))).all()
    assert (_decibels(0.0), _decibels(np.inf), _decibels(0.1)) == (np.inf, -np.inf, 10.0)


def test_tables_whose_fields_clash_in_type_are_refused_not_cast():
    """Packed series of dict records whose field types differ were cast to the first one's:
    a status "007" came back as 7, and keys "1" and 1 as one series."""
    ints = pa.table({"dev": [1, 1], "status": [7, 7]})
    texts = pa.table({"dev": ["1", "1"], "status": ["007", "007"]})
    with pytest.raises(InputError, match="field 'dev' holds int64 in some records and string in others"):
        arrow.concat([ints, texts])
    coded = pa.table({"dev": pa.array(["a", "b"]).dictionary_encode(), "status": [1, 2]})
    plain = pa.table({"dev": ["c"], "status": [3.5]})
    missing = pa.table({"dev": pa.nulls(1), "status": pa.nulls(1)})
    joined = arrow.concat([coded, plain, missing])  # a dictionary beside its values, a null field, int beside float
    assert joined.column("dev").to_pylist() == ["a", "b", "c", None] and joined.column("status").to_pylist() == [1, 2, 3.5, None]
    assert pa.types.is_dictionary(joined.schema.field("dev").type)
    numbers = pa.table({"v": pa.array([1, 2]).dictionary_encode()})  # a cast back to the dictionary failed
    assert arrow.concat([numbers, pa.table({"v": [3.5]})]).column("v").to_pylist() == [1.0, 2.0, 3.5]
    small = pa.table({"v": pa.array(["a"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string()))})
    many = pa.table({"v": [f"k{i}" for i in range(200)]})  # beyond int8 indices
    assert arrow.concat([small, many]).num_rows == 201


def test_integers_beyond_the_floats_exact_range_are_coded():
    """A named int32 column of values past 2**24 (meter readings, counters) failed in
    compress with pyarrow's "Integer value 16777217 not in range" where train took it."""
    walk = 30_000_000 + np.cumsum(np.random.default_rng(1).normal(0, 50, 2000))
    table = pa.table({"meter": walk.astype(np.int32), "t": np.arange(2000)})
    codec = ltc_beam.train(walk[:, None], columns=["meter"], steps=20, progress=False, calibrate=False)
    back = arrow.decode_table(arrow.encode_table(table, codec, columns=["meter"]), codec).column("meter")
    assert back.type == pa.int32() and np.abs(back.to_numpy() - walk).max() < 10 * walk.std()
