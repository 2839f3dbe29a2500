"""LtcEncode / LtcDecode on FnApiRunner (in memory): tables and rows, metrics, dead letters."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

import ltc_beam
from ltc_beam import arrow
from ltc_beam.bitstream import unpack
from ltc_beam.beam import LtcDecode, LtcEncode, WriteParquetTables
from ltc_beam.beam.runners import counters
from ltc_beam.errors import InputError
from tests.beam_fixtures import block_codec, small, sort_by_series, telemetry, values_of, vec_codec, window_codec  # noqa: F401

_SINKS: dict[str, list] = {}


def _append(x, name):
    _SINKS[name].append(x)


def collect(pcoll, name: str):
    """Gather a PCollection in this process (FnApiRunner in memory runs DoFns here)."""
    _SINKS[name] = []
    return pcoll | f"Collect{name}" >> beam.Map(_append, name)


def run(build):
    p = beam.Pipeline(runner=FnApiRunner())
    build(p)
    result = p.run()
    result.wait_until_finish()
    return result


def batches(table: pa.Table, size: int = 500) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def test_tables_in_tables_out_match_in_process(small, block_codec):
    codec, path = block_codec
    opts = dict(column="values", key="device", order_by="ts", chunk_size=128)

    def build(p):
        enc = p | beam.Create(batches(small)) | LtcEncode(path, **opts)
        collect(enc, "enc")
        collect(enc | LtcDecode(), "dec")

    result = run(build)
    encoded = pa.concat_tables(_SINKS["enc"])
    reference = arrow.encode_table(small, codec, **opts)
    # deterministic chunks: the very same bitstreams as the in-process encoder
    assert sorted(encoded.column(arrow.PAYLOAD).to_pylist()) == sorted(reference.column(arrow.PAYLOAD).to_pylist())
    decoded = sort_by_series(pa.concat_tables(_SINKS["dec"]))
    assert decoded.num_rows == small.num_rows
    assert decoded.drop(["values"]).equals(sort_by_series(small).drop(["values"]))
    ref = sort_by_series(arrow.decode_table(reference))
    assert np.array_equal(values_of(decoded), values_of(ref), equal_nan=True)
    # per chunk, each device's records come out in time order
    for table in _SINKS["dec"]:
        for dev in set(table.column("device").to_pylist()):
            ts = table.filter(pa.compute.equal(table.column("device"), dev)).column("ts").to_numpy()
            assert (np.diff(ts.astype(np.int64)) > 0).all()
    c = counters(result)
    assert c["records_in"] == c["records_encoded"] == c["records_decoded"] == small.num_rows
    assert c["values_encoded"] == small.num_rows * 8 and c["bytes_in"] == small.num_rows * 8 * 4
    assert c["bytes_out"] == sum(len(b) for b in encoded.column(arrow.PAYLOAD).to_pylist())


def test_dict_and_row_records(small, vec_codec):
    codec, path = vec_codec
    records = small.to_pylist()
    rows = [beam.Row(**r) for r in records[:300]]

    def build(p):
        enc = p | "Dicts" >> beam.Create(records) | "EncDicts" >> LtcEncode(path, column="values", key="device", order_by="ts", schema=small.schema)
        collect(enc | "DecDicts" >> LtcDecode(output="rows"), "dicts")
        enc_rows = p | "Rows" >> beam.Create(rows) | "EncRows" >> LtcEncode(path, column="values", key="device", order_by="ts", output="rows")
        collect(enc_rows, "rows_enc")

    run(build)
    out = _SINKS["dicts"]
    assert len(out) == len(records)
    got = sorted(out, key=lambda r: (r["device"], r["ts"]))
    want = sorted(records, key=lambda r: (r["device"], r["ts"]))
    assert [(r["device"], r["ts"], r["seq"], r["temperature"]) for r in got] == [
        (r["device"], r["ts"], r["seq"], r["temperature"]) for r in want
    ]
    assert sum(r[arrow.COUNT] for r in _SINKS["rows_enc"]) == 300


def test_dict_records_with_a_float_column_for_a_one_value_codec(small, tmp_path):
    """column= naming a plain float column works for tables; dict records failed with
    "vector is a float, not a list of floats"."""
    table = small.select(["device", "ts", "temperature"])
    table = table.set_column(2, "temperature", table.column("temperature").fill_null(float("nan")))
    codec = ltc_beam.train(table.column("temperature").to_numpy()[:, None], steps=20)
    path = str(tmp_path / "t.ltc")
    codec.save(path)
    opts = dict(column="temperature", key="device", order_by="ts")

    def build(p):
        enc = p | beam.Create(table.to_pylist()) | LtcEncode(path, schema=table.schema, **opts)
        collect(enc | LtcDecode(output="rows"), "float_dicts")

    run(build)
    with pytest.raises(Exception, match=r"holds values of different types \(floats and lists"):  # no schema: a series of both kinds
        mixed = [{"device": "a", "ts": i, "temperature": [0.5] if i % 2 else 0.5} for i in range(10)]
        run(lambda p: p | "Mixed" >> beam.Create(mixed) | "EncodeMixed" >> LtcEncode(path, **opts))

    def against_schema(p):  # with a schema, a record of the wrong kind is dead-lettered on its own
        wrong = table.to_pylist()[:50] + [{"device": "a", "ts": 10**9, "temperature": [0.5]}]
        out = p | "Wrong" >> beam.Create(wrong) | "EncodeWrong" >> LtcEncode(path, schema=table.schema, dead_letter=True, **opts)
        collect(out["dead_letter"], "float_dead")

    run(against_schema)
    assert [d["record"]["ts"] for d in _SINKS["float_dead"]] == [10**9]
    got = sorted(_SINKS["float_dicts"], key=lambda r: (r["device"], r["ts"]))
    want = sort_by_series(arrow.decode_table(arrow.encode_table(table, codec, **opts))).to_pylist()
    assert [(r["device"], r["ts"]) for r in got] == [(r["device"], r["ts"]) for r in want]
    assert np.allclose([r["temperature"] for r in got], [r["temperature"] for r in want], equal_nan=True, atol=1e-6)


def test_a_model_shared_across_processes_encodes_as_in_process(small, vec_codec):
    """share_across_processes hands run_inference a proxy that forwards method calls only:
    LtcEncode read the codec's attributes through it and failed ('AutoProxy' has no 'config')."""
    codec, path = vec_codec
    opts = dict(column="values", key="device", order_by="ts")

    def build(p):
        enc = p | beam.Create([small]) | LtcEncode(path, share_across_processes=True, model_copies=2, **opts)
        collect(enc, "shared_enc")
        collect(enc | LtcDecode(share_across_processes=True), "shared_dec")

    run(build)
    payloads = sorted(b for t in _SINKS["shared_enc"] for b in t.column(arrow.PAYLOAD).to_pylist())
    assert payloads == sorted(arrow.encode_table(small, codec, **opts).column(arrow.PAYLOAD).to_pylist())
    assert sum(t.num_rows for t in _SINKS["shared_dec"]) == small.num_rows


def _bad_batch(table: pa.Table) -> pa.Table:
    vals = table.column("values").to_pylist()
    vals[3] = vals[3][:5]  # wrong length (ragged list)
    vals[7] = None  # null vector
    vals[9] = vals[9][:7] + [None]  # null inside: coded (decodes as null)
    return table.set_column(table.schema.get_field_index("values"), "values", pa.array(vals, pa.list_(pa.float32())))


def test_dead_letters_name_column_and_row(small, vec_codec):
    _, path = vec_codec
    good, bad = small.slice(0, 1000), _bad_batch(small.slice(1000, 500))
    good = good.cast(bad.schema)

    def build(p):
        out = p | beam.Create([good, bad]) | LtcEncode(path, column="values", key="device", order_by="ts", dead_letter=True)
        collect(out["encoded"], "ok")
        collect(out["dead_letter"], "dead")

    never = pa.array([2**63 - 1] * good.num_rows, pa.timestamp("us"))  # beyond what Python's datetime holds
    good, bad = good.append_column("valid_until", never), bad.append_column("valid_until", never.slice(0, bad.num_rows))
    nested = pa.array([[2**63 - 1]] * good.num_rows, pa.list_(pa.timestamp("us")))  # in a list: no cast to text
    good, bad = good.append_column("windows", nested), bad.append_column("windows", nested.slice(0, bad.num_rows))
    result = run(build)
    dead = sorted(_SINKS["dead"], key=lambda d: d["row"])
    assert [d["row"] for d in dead] == [3, 7]
    assert dead[0]["record"]["valid_until"] == never.cast(pa.string())[0].as_py()  # the job failed on it
    assert "9223372036854775807" in dead[0]["record"]["windows"]
    assert all(d["column"] == "values" for d in dead)
    assert "column 'values', row 3" in dead[0]["error"] and "5 values" in dead[0]["error"]
    assert "null" in dead[1]["error"]
    assert dead[0]["record"]["seq"] == bad.column("seq")[3].as_py() and dead[0]["key"] == bad.column("device")[3].as_py()
    encoded = sum(sum(t.column(arrow.COUNT).to_pylist()) for t in _SINKS["ok"])
    assert encoded + len(dead) == 1500
    c = counters(result)
    assert c["records_dead_letter"] == 2 and c["records_encoded"] == 1498


def test_bad_record_fails_the_job_without_dead_letter(small, vec_codec):
    """Saying what to do, for tables and dict records alike (a dict's null vector said only "vector is null")."""
    _, path = vec_codec
    bad = _bad_batch(small.slice(0, 100))
    with pytest.raises(Exception, match=r"column 'values', row 3.*dead-letter output.*dead_letter_path=FILE"):
        run(lambda p: p | beam.Create([bad]) | LtcEncode(path, column="values", key="device", order_by="ts"))
    records = [{"dev": "a", "id": i, "v": None if i == 2 else [0.5] * 8} for i in range(5)]
    with pytest.raises(Exception, match=r"record \(dev='a', id=2\): vector is null; NaN is coded exactly.*dead-letter output"):
        run(lambda p: p | beam.Create(records) | LtcEncode(path, column="v", key="dev", order_by="id"))


def test_dead_letter_settings_that_would_lose_records_or_mislead_are_refused(small, vec_codec, tmp_path):
    """late='dead_letter' without the output dropped late records (180 of 192 came back);
    the composites' dead_letter=True was a TypeError; encoded rows into WriteParquetTables
    an AttributeError in the shuffle."""
    from ltc_beam.beam import CompressParquet, EncodeToParquet

    _, path = vec_codec
    with pytest.raises(InputError, match="late='dead_letter' sends late records to the dead-letter output"):
        LtcEncode(path, column="values", key="device", order_by="ts", late="dead_letter")
    for composite in (lambda: CompressParquet("in", "out/", path, dead_letter=True), lambda: EncodeToParquet("out/", path, dead_letter=True)):
        with pytest.raises(InputError, match="give dead_letter_path=FILE"):
            composite()
    rows = LtcEncode(path, column="values", key="device", order_by="ts", output="rows")
    with pytest.raises(Exception, match="WriteParquetTables writes pa.Table batches, got dict"):
        run(lambda p: p | beam.Create([small.slice(0, 50)]) | rows | WriteParquetTables(str(tmp_path / "o") + "/", num_shards=1))


def test_a_second_run_to_the_same_folder_replaces_the_first(small, vec_codec, tmp_path):
    """The writers left an earlier run's shards that this run did not rewrite (4 shards,
    then 1 row: 92 old rows read with the new one; CompressParquet twice: twice the
    records decoded); now they are removed once every file is written."""
    from ltc_beam.beam import CompressParquet, DecompressParquet

    out = str(tmp_path / "tables") + "/"
    for tables in ([pa.table({"run": ["a"] * 10, "i": list(range(k * 10, k * 10 + 10))}) for k in range(12)], [pa.table({"run": ["b"], "i": [0]})]):
        run(lambda p: p | beam.Create(tables) | WriteParquetTables(out, num_shards=4))
    assert pq.read_table(out).column("run").to_pylist() == ["b"]
    _, codec = vec_codec
    for rows, shards in ((1200, 4), (100, 2)):
        pq.write_table(small.slice(0, rows), tmp_path / "raw.parquet")
        run(lambda p: p | CompressParquet(str(tmp_path / "raw.parquet"), str(tmp_path / "c") + "/", codec, num_shards=shards,
                                          column="values", key="device", order_by="ts"))
        assert ltc_beam.read_parquet(str(tmp_path / "c")).num_rows == rows
        run(lambda p: p | DecompressParquet(str(tmp_path / "c"), str(tmp_path / "d") + "/"))
        assert pq.read_table(tmp_path / "d").num_rows == rows


def test_bad_dict_records(vec_codec):
    _, path = vec_codec
    records = [
        {"dev": "a", "id": 1, "v": [0.5] * 8},
        {"dev": "a", "id": 2, "v": ["x"] * 8},
        {"dev": "b", "id": 3, "v": [0.5] * 3},
        {"dev": "b", "id": 4, "v": None},
        {"dev": "b", "id": 5, "v": [0.1] * 8},
        {"dev": "b", "id": 6, "v": [0.5] * 7 + [1e300]},  # beyond float32: it failed the job
        {"dev": "b", "id": 7, "v": [0.5] * 7 + [10**400]},  # a Python int beyond float64 too
    ]

    def build(p):
        out = p | beam.Create(records) | LtcEncode(path, column="v", key="dev", order_by="id", dead_letter=True)
        collect(out["dead_letter"], "dict_dead")
        collect(out["encoded"], "dict_ok")

    run(build)
    dead = sorted(_SINKS["dict_dead"], key=lambda d: d["record"]["id"])
    assert [d["record"]["id"] for d in dead] == [2, 3, 4, 6, 7]
    assert "column 'v', record (dev='a', id=2)" in dead[0]["error"] and "str" in dead[0]["error"]  # the order value too
    assert all("beyond float32's range" in d["error"] and "id=" in d["error"] for d in dead[3:])
    assert sum(sum(t.column(arrow.COUNT).to_pylist()) for t in _SINKS["dict_ok"]) == 2


def test_records_or_batches_that_form_no_table_name_the_field(vec_codec):
    """"do not form a table (Expected bytes, got a 'int' object)" and "input batch does not
    fit the given schema: Integer value … not in range" named no field."""
    _, path = vec_codec
    records = [{"dev": "a", "id": i, "tags": [("k", 1), ("j", None)], "v": [0.5] * 8} for i in range(10)]
    with pytest.raises(Exception, match=r"do not form a table \(field 'tags': "):
        run(lambda p: p | beam.Create(records) | LtcEncode(path, column="v", key="dev", order_by="id"))
    table = pa.table({"v": pa.array([[0.5] * 8] * 10, pa.list_(pa.float32())), "n": pa.array([2**63 + 5] * 10, pa.uint64())})
    schema = pa.schema([("v", pa.list_(pa.float32())), ("n", pa.int64())])
    with pytest.raises(Exception, match=r"does not fit the given schema \(column 'n': uint64 → int64\)"):
        run(lambda p: p | beam.Create([table]) | LtcEncode(path, column="v", schema=schema))


def test_dict_records_that_do_not_fit_the_given_schema_are_dead_letters(vec_codec):
    """With ``schema=`` a record whose key, order or pass-through value does not convert
    failed the whole job, and an order value of 3.5 for an int64 field was truncated to 3
    (the record then sorted beside record 3); an int beyond int64 failed it without one."""
    _, path = vec_codec
    schema = pa.schema([("dev", pa.string()), ("id", pa.int64()), ("site", pa.string()), ("v", pa.list_(pa.float32()))])
    good = [{"dev": "a", "id": i, "site": "s", "v": [0.5] * 8} for i in range(20)]
    bad = [{**good[3], "id": 3.5}, {**good[4], "id": "x"}, {**good[5], "site": 7}, {**good[6], "dev": 5}]
    huge = [{"dev": "b", "id": i, "n": 1 << (70 if i == 2 else 3), "v": [0.5] * 8} for i in range(5)]

    def build(p):
        for name, records, given in (("schema", good + bad, schema), ("inferred", huge, None)):
            out = (p | f"{name}Create" >> beam.Create(records)
                   | f"{name}Encode" >> LtcEncode(path, column="v", key="dev", order_by="id", dead_letter=True, schema=given))
            collect(out["dead_letter"], f"fit_{name}_dead")
            collect(out["encoded"], f"fit_{name}_ok")

    run(build)
    dead = sorted(_SINKS["fit_schema_dead"], key=lambda d: d["column"])
    assert [d["column"] for d in dead] == ["dev", "id", "id", "site"]
    assert "3.5 is not an integer" in " ".join(d["error"] for d in dead)
    assert sum(sum(t.column(arrow.COUNT).to_pylist()) for t in _SINKS["fit_schema_ok"]) == 20
    assert [(d["column"], d["record"]["id"]) for d in _SINKS["fit_inferred_dead"]] == [("n", 2)]
    assert sum(sum(t.column(arrow.COUNT).to_pylist()) for t in _SINKS["fit_inferred_ok"]) == 4


@pytest.mark.parametrize("key", ["values", "nested", "listed"])
def test_a_key_records_cannot_be_grouped_by_is_refused_by_name(vec_codec, key):
    """A vector column, a struct or a list as key failed with pyarrow's "dictionary_encode has no kernel"."""
    _, path = vec_codec
    table = pa.table({"values": [[0.5] * 8] * 20, "nested": [{"s": "a"}] * 20, "listed": [[1]] * 20, "ts": list(range(20))})
    with pytest.raises(Exception, match=f"column '{key}' (is a vector column|has type)"):
        run(lambda p: p | beam.Create([table]) | LtcEncode(path, column="values", key=key, order_by="ts"))
    with pytest.raises(InputError, match=f"order column '{key}' has type|column '{key}' is a vector column"):  # a traceback from the sort
        arrow.encode_table(table, vec_codec[0], column="values", order_by=key)


def test_input_columns_of_reserved_names_are_refused_before_the_shuffle(vec_codec):
    _, path = vec_codec
    table = pa.table({"values": [[0.5] * 8] * 20, "ts": list(range(20)), "ltc_count": list(range(20))})
    with pytest.raises(Exception, match=r"'ltc_count' is reserved for compressed data.*LtcEncode/Prepare"):
        run(lambda p: p | beam.Create([table]) | LtcEncode(path, column="values", order_by="ts"))

    def build(p):
        records = [{"ts": i, "values": [0.5] * 8, **({"ltc_payload": b"x"} if i == 3 else {})} for i in range(20)]
        out = p | beam.Create(records) | LtcEncode(path, column="values", order_by="ts", dead_letter=True)
        collect(out["dead_letter"], "reserved_dead")

    run(build)
    assert [(d["column"], d["record"]["ts"]) for d in _SINKS["reserved_dead"]] == [("ltc_payload", 3)]


def test_records_sharing_an_order_value_keep_their_input_order_across_read_batches(vec_codec, tmp_path):
    """Tied records of a series were put in the order of their batches' content digests, so
    ties spanning two read batches came back permuted (flights, 67 records at a 65,536-row
    batch boundary: ~0 dB when paired with the input in order), and --verify misjudged them."""
    from ltc_beam.beam import ReadParquetTables

    rng = np.random.default_rng(2)
    n = 1200
    table = pa.table({"device": np.repeat(["a", "b"], n // 2), "ts": np.tile(np.arange(n // 2) // 7, 2), "rid": np.arange(n),
                      "values": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 8).astype(np.float32)), 8)})
    pq.write_table(table, tmp_path / "in.parquet")
    _, path = vec_codec

    cast = table.schema.set(table.schema.get_field_index("rid"), pa.field("rid", pa.int32()))  # batches cast to it

    def build(p):
        tables = p | ReadParquetTables(str(tmp_path / "in.parquet"), batch_rows=100)
        for name, schema in (("out", None), ("cast", cast)):
            (tables | f"Encode{name}" >> LtcEncode(path, column="values", key="device", order_by="ts", schema=schema)
                    | f"Write{name}" >> WriteParquetTables(str(tmp_path / name / "part"), num_shards=1))

    run(build)
    for name, schema in (("out", table.schema), ("cast", cast)):
        out = ltc_beam.read_parquet(tmp_path / name)
        assert out.schema.equals(schema) and out.schema.metadata == table.schema.metadata  # no position left behind
        assert out.column("rid").to_pylist() == list(range(n))  # sorted by device and ts, ties in input order


def test_dict_records_of_integers_and_an_all_none_field_round_trip(vec_codec, tmp_path):
    """A series whose vectors are all Python ints, and a pass-through field None throughout
    one series (typed null there, string elsewhere), write and decode as one table."""
    _, path = vec_codec
    records = [{"dev": "a", "id": i, "note": "ok", "v": [0.25 * i] * 3 + [None if i % 50 == 0 else 0.5] + [0.25 * i] * 4} for i in range(300)]
    records += [{"dev": "b", "id": i, "note": None, "v": [i % 3] * 8} for i in range(300)]

    def build(p):
        tables = p | beam.Create(records) | LtcEncode(path, column="v", key="dev", order_by="id", chunk_size=128)
        tables | WriteParquetTables(str(tmp_path / "part"), num_shards=1)

    run(build)
    out = ltc_beam.read_parquet(tmp_path)  # a pathlib.Path
    assert out.num_rows == 600 and out.schema.field("note").type == pa.string()
    b = out.filter(pa.compute.equal(out.column("dev"), "b"))
    assert b.column("note").null_count == 300
    a = out.filter(pa.compute.equal(out.column("dev"), "a")).sort_by("id")
    nulls = pa.compute.is_null(pa.compute.list_flatten(a.column("v"))).to_numpy(zero_copy_only=False).reshape(300, 8)
    assert np.array_equal(np.flatnonzero(nulls[:, 3]), np.arange(0, 300, 50)) and nulls.sum() == 6  # None values: null again
    x = np.asarray(b.column("v").to_pylist())
    assert np.abs(x - np.repeat(np.arange(300) % 3, 8).reshape(300, 8)).mean() < 0.5  # values 0, 1, 2: coded, not lost


def test_dict_records_of_an_integer_vector_type_keep_it_and_their_nulls(vec_codec, tmp_path):
    """schema= with list<int16> vectors: a None inside a vector became the null NaN, which
    an int16 cannot hold ("the records of one series do not form a table")."""
    _, path = vec_codec
    schema = pa.schema([("dev", pa.string()), ("id", pa.int64()), ("v", pa.list_(pa.int16()))])
    records = [{"dev": "a", "id": i, "v": [i % 5 - 2] * 3 + [None if i == 7 else 1] + [i % 3] * 4} for i in range(300)]

    def build(p):
        tables = p | beam.Create(records) | LtcEncode(path, column="v", key="dev", order_by="id", schema=schema)
        tables | WriteParquetTables(str(tmp_path / "part"), num_shards=1)

    run(build)
    out = ltc_beam.read_parquet(tmp_path).sort_by("id")
    assert out.schema.field("v").type == pa.list_(pa.int16()) and out.column("v")[7].as_py()[3] is None
    assert pa.compute.sum(pa.compute.is_null(pa.compute.list_flatten(out.column("v")))).as_py() == 1


def test_coded_values_the_schemas_types_cannot_hold_are_dead_letters(vec_codec):
    """schema= coded types: an int16 vector's 40000 or 1.5 and an int8 column's 300 failed
    the whole job ("the records of one series do not form a table"); a float16 vector's 1e5
    came back as inf without a word, and its numpy float32 values failed the job."""
    _, path = vec_codec
    names = [f"c{j}" for j in range(8)]
    cases = {
        "int16": (pa.list_(pa.int16()), {4: 40000, 9: 1.5, 11: float("nan")}, "v"),
        "float16": (pa.list_(pa.float16()), {6: 1e5, 8: -65520.0, 10: 65519.0}, "v"),
        "int8": (pa.int8(), {5: 300}, None),
    }

    def build(p):
        for name, (kind, bad, column) in cases.items():
            fields = [("v", kind)] if column else [(c, kind) for c in names]
            schema = pa.schema([("dev", pa.string()), ("id", pa.int64()), *fields])
            records = []
            for i in range(20):
                values = [i % 3] * 8
                values[2] = bad.get(i, values[2])
                if name == "float16":  # numpy float32: pyarrow converts none to float16 (the job failed)
                    values = np.asarray(values, np.float32) if i % 2 else [np.float32(v) for v in values]
                records.append({"dev": "a", "id": i, **({"v": values} if column else dict(zip(names, values)))})
            out = p | f"{name}Create" >> beam.Create(records) | f"{name}Encode" >> LtcEncode(
                path, column=column, columns=None if column else names, key="dev", order_by="id", dead_letter=True, schema=schema)
            collect(out["dead_letter"], f"types_{name}_dead")
            collect(out["encoded"], f"types_{name}_ok")

    run(build)
    for name, (kind, bad, _) in cases.items():
        dead = sorted(_SINKS[f"types_{name}_dead"], key=lambda d: d["record"]["id"])
        beyond = [i for i, v in bad.items() if name != "float16" or abs(v) >= 65520]  # 65519 rounds to 65504
        assert [d["record"]["id"] for d in dead] == sorted(beyond), name
        assert all(("beyond" in d["error"] or "not an integer" in d["error"]) for d in dead)
        assert sum(sum(t.column(arrow.COUNT).to_pylist()) for t in _SINKS[f"types_{name}_ok"]) == 20 - len(beyond)


def test_optional_fields_and_extra_columns_are_kept_with_nulls(vec_codec, tmp_path):
    """Fields only some records (or batches) carry: the series table took the first record's
    fields (dropping the rest silently), and series tails with different columns failed the
    job in PackTails with a raw pyarrow error."""
    _, path = vec_codec
    records = []
    for k in range(6):
        for i in range(40):
            r = {"dev": f"d{k}", "ts": i, "v": [0.01 * i] * 8}
            if i % 3:
                r["status"] = f"s{i}"
            if (k, i) == (2, 5):
                r["firmware"] = "v2"
            records.append(r)
    batches = [pa.table({"dev": [f"t{k}"] * 5, "ts": list(range(5)), "v": [[1.0] * 8] * 5, **({"extra": ["x"] * 5} if k % 2 else {})})
               for k in range(20)]

    def build(p):
        encoded = (p | "Records" >> beam.Create(records) | "EncodeRecords" >> LtcEncode(path, column="v", key="dev", order_by="ts"),
                   p | "Batches" >> beam.Create(batches) | "EncodeBatches" >> LtcEncode(path, column="v", key="dev", order_by="ts"))
        for i, tables in enumerate(encoded):
            tables | f"Write{i}" >> WriteParquetTables(str(tmp_path / f"out{i}" / "part"), num_shards=1)

    run(build)
    out = ltc_beam.read_parquet(tmp_path / "out0").to_pylist()
    assert sum(r["status"] is not None for r in out) == sum("status" in r for r in records) == 6 * 26
    assert [(r["dev"], r["ts"]) for r in out if r["firmware"] is not None] == [("d2", 5)]
    out = ltc_beam.read_parquet(tmp_path / "out1")
    assert out.num_rows == 100 and out.column("extra").null_count == 50


def test_a_series_of_float32_and_float64_batches_keeps_its_float64_values(vec_codec):
    """The parts of one series were cast to the first part's schema: a float64 pass-through
    column after a float32 batch came back as float32, its values rounded."""
    _, path = vec_codec
    rng = np.random.default_rng(0)

    def batch(rows, width):
        return pa.table({"i": np.arange(*rows), "k": ["a"] * (rows[1] - rows[0]),
                         "p": pa.array(1000 / 3 + rng.standard_normal(rows[1] - rows[0]), width),
                         "values": pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(8 * (rows[1] - rows[0])), width), 8)})

    tables = [batch((0, 300), pa.float32()), batch((300, 600), pa.float64())]

    def build(p):
        out = p | beam.Create(tables) | LtcEncode(path, column="values", key="k", order_by="i") | LtcDecode()
        collect(out, "mixed")

    run(build)
    decoded = pa.concat_tables(_SINKS["mixed"], promote_options="permissive").sort_by("i")
    assert decoded.schema.field("p").type == pa.float64() and decoded.num_rows == 600
    assert np.array_equal(decoded.column("p").to_numpy()[300:], tables[1].column("p").to_numpy())


def test_construction_errors(small, vec_codec, block_codec):
    _, path = vec_codec
    with pytest.raises(InputError, match="record layout"):
        beam.Pipeline(runner=FnApiRunner()) | beam.Create([small]) | LtcEncode(block_codec[1], column="values", layout="record")
    with pytest.raises(InputError, match="late"):
        LtcEncode(path, late="drop")
    with pytest.raises(InputError, match="'nope' not found"):
        LtcEncode(path, column="nope").output_schema(small.schema)
    with pytest.raises(InputError, match="not both"):  # failed inside RunInference, once the job ran
        LtcEncode(path, column="values", columns=["a", "b"])
    for setting in ({"unit_rows": 0}, {"pack_shards": 0}):
        with pytest.raises(InputError, match=f"{next(iter(setting))} must be at least 1"):
            LtcEncode(path, column="values", **setting)


def test_decompress_parquet_file_per_file(small, vec_codec, tmp_path):
    """One decoded file per compressed file (either layout, an empty file included) and
    ``num_shards`` regrouping: the same records either way."""
    from ltc_beam.beam import DecompressParquet
    from ltc_beam.parquet import write_parquet

    codec, _ = vec_codec
    comp = tmp_path / "c"
    write_parquet(small.slice(0, 1000), str(comp / "a.parquet"), codec, column="values", key="device", order_by="ts", chunk_size=256)
    write_parquet(small.slice(1000), str(comp / "b.parquet"), codec, column="values", layout="record")
    write_parquet(small.slice(0, 0), str(comp / "c.parquet"), codec, column="values")
    dec, regrouped = tmp_path / "d", tmp_path / "r"
    result = run(lambda p: p | DecompressParquet(str(comp), str(dec) + "/"))
    assert counters(result)["records_decoded"] == small.num_rows
    names = [f"part-{i:05d}-of-00003.parquet" for i in range(3)]
    assert sorted(p.name for p in dec.iterdir()) == names
    assert [pq.ParquetFile(dec / n).metadata.num_rows for n in names] == [1000, small.num_rows - 1000, 0]
    for n in names:
        assert pq.read_schema(dec / n).equals(small.schema, check_metadata=False)
    run(lambda p: p | DecompressParquet(str(comp), str(regrouped) + "/", num_shards=2))
    a = pa.concat_tables([pq.read_table(dec / n) for n in names])
    assert len(list(regrouped.iterdir())) == 2  # decoded tables are split across the shards, not kept whole
    b = pa.concat_tables([pq.read_table(f) for f in sorted(regrouped.iterdir())])
    a, b = sort_by_series(a), sort_by_series(b)
    assert b.num_rows == small.num_rows and a.drop(["values"]).equals(b.drop(["values"]))
    assert np.array_equal(values_of(a), values_of(b), equal_nan=True)
    one_file = tmp_path / "one"  # one compressed file decodes as one table: it went whole to one shard
    run(lambda p: p | DecompressParquet(str(comp / "b.parquet"), str(one_file) + "/", num_shards=3))
    assert sorted(pq.ParquetFile(f).metadata.num_rows for f in one_file.iterdir()) == [666, 667, 667]


def test_decompress_parquet_commits_its_files_only_when_every_file_decoded(small, vec_codec, tmp_path):
    """A damaged third file failed the job after the first two decoded files were written
    under their final names, looking like a complete result."""
    from ltc_beam.beam import DecompressParquet
    from ltc_beam.parquet import write_parquet

    codec, _ = vec_codec
    comp, out = tmp_path / "c", tmp_path / "d"
    for i in range(3):
        write_parquet(small.slice(1000 * i, 1000), str(comp / f"{i}.parquet"), codec, column="values")
    table = pq.read_table(comp / "2.parquet")
    payload = [bytes(b[:-4]) + bytes(x ^ 0x5A for x in b[-4:]) for b in table.column(arrow.PAYLOAD).to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index(arrow.PAYLOAD), arrow.PAYLOAD, pa.array(payload, pa.binary())),
                   comp / "2.parquet")
    with pytest.raises(Exception, match="2.parquet: column 'ltc_payload'"):
        run(lambda p: p | DecompressParquet(str(comp), str(out) + "/"))
    assert not list(out.glob("part-*"))  # at most hidden .part-….pending files: no reader takes them
    (comp / "2.parquet").unlink()
    run(lambda p: p | DecompressParquet(str(comp), str(out) + "/"))
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in out.glob("part-*")) == 2000


def test_window_codec_packs_uneven_series_apart_as_in_process(small, window_codec):
    """Series of uneven lengths through LtcEncode with a windowed codec: the packed tails'
    streams state their series (version 3), exactly the in-process bitstreams; all decode."""
    codec, path = window_codec
    uneven = small.filter(pa.array(np.arange(small.num_rows) % 7 != 0))
    opts = dict(column="values", key="device", order_by="ts", chunk_size=128)

    def build(p):
        enc = p | beam.Create(batches(uneven)) | LtcEncode(path, **opts)
        collect(enc, "enc")
        collect(enc | LtcDecode(), "dec")

    run(build)
    encoded = pa.concat_tables(_SINKS["enc"])
    reference = arrow.encode_table(uneven, codec, **opts)
    payloads = encoded.column(arrow.PAYLOAD).to_pylist()
    assert sorted(payloads) == sorted(reference.column(arrow.PAYLOAD).to_pylist())
    assert any(unpack(b).segments for b in payloads)
    assert sum(len(t) for t in _SINKS["dec"]) == uneven.num_rows


def test_records_ordered_without_a_key_form_one_series_across_batches(small, block_codec):
    """``order_by`` without ``key``: every record is one series in that order, as train and
    evaluate read it, from table batches in any order and from dict records alike (each
    batch was a series of its own: a time series split over files came back out of order,
    its windows cut at each file)."""
    codec, path = block_codec
    series = small.drop_columns(["device", "ts"]).append_column("ts", pa.array(np.arange(small.num_rows) * 10))
    opts = dict(column="values", order_by="ts", chunk_size=512)
    reference = arrow.encode_table(series, codec, **opts)
    records = series.to_pylist()
    np.random.default_rng(0).shuffle(records)

    def build(p):
        collect(p | "Tables" >> beam.Create(batches(series, 700)[::-1]) | "EncodeTables" >> LtcEncode(path, **opts), "tables")
        collect(p | "Records" >> beam.Create(records) | "EncodeRecords" >> LtcEncode(path, **opts), "records")

    run(build)
    for name in ("tables", "records"):
        encoded = pa.concat_tables(_SINKS[name])
        assert sorted(encoded.column(arrow.PAYLOAD).to_pylist()) == sorted(reference.column(arrow.PAYLOAD).to_pylist())
        assert sorted(encoded.column("ts").to_pylist()) == reference.column("ts").to_pylist()  # chunks of consecutive records


def test_compress_parquet_shards_series_by_key_in_one_shuffle(small, block_codec, tmp_path):
    """``CompressParquet``: each series lands whole in file ``shard_of(key) mod N``, each file's
    tails packed together: the bitstreams of an in-process plan with N packing groups."""
    from ltc_beam.beam import CompressParquet

    codec, path = block_codec
    opts = dict(column="values", key="device", order_by="ts", chunk_size=96)
    src = tmp_path / "src"
    src.mkdir()
    for i, part in enumerate(batches(small, 700)):
        pq.write_table(part, src / f"in-{i}.parquet")
    out = tmp_path / "c"
    result = run(lambda p: p | CompressParquet(str(src), str(out) + "/", path, num_shards=3, **opts))
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"part-{i:05d}-of-00003.parquet" for i in range(3)]
    for i, f in enumerate(files):
        devices = {d for chunk in pq.read_table(f).column("device").to_pylist() for d in chunk}
        assert devices and all(arrow.shard_of(arrow.canonical(d), 3) == i for d in devices)
    encoded = pa.concat_tables([pq.read_table(f) for f in files])
    rows = arrow.chunk_rows(codec, 96)
    plan = arrow.plan_chunks(batches(small, 700), key="device", order_by="ts", rows=rows, pack_shards=3)
    assert sorted(encoded.column(arrow.PAYLOAD).to_pylist()) == sorted(codec.encode(arrow.vectors(c, arrow.VectorSpec("values", None, 8))) for c in plan)
    assert counters(result)["records_encoded"] == sum(encoded.column(arrow.COUNT).to_pylist()) == small.num_rows


def test_auto_shards_follow_the_input_size():
    from ltc_beam.beam.io import MIN_AUTO_SHARDS, MIN_SHARD_INPUT_BYTES, SHARD_INPUT_BYTES, auto_shards

    assert auto_shards(0) == auto_shards(MIN_SHARD_INPUT_BYTES) == 1  # small inputs: one file, one codec copy
    assert auto_shards(2 * MIN_SHARD_INPUT_BYTES + 1) == 3
    assert auto_shards(MIN_AUTO_SHARDS * MIN_SHARD_INPUT_BYTES) == auto_shards(SHARD_INPUT_BYTES) == MIN_AUTO_SHARDS
    assert auto_shards(10 * SHARD_INPUT_BYTES + 1) == 11


def test_auto_shards_keep_a_large_embedded_codec_a_small_share(vec_codec, monkeypatch):
    """Every file embeds the codec: a small one leaves the file count alone, a large one
    (megabytes, as for wide embeddings) gets files large enough to outweigh it."""
    from ltc_beam.beam import io
    from ltc_beam.beam.io import EMBEDDED_CODEC_SHARE, MAX_SHARD_INPUT_BYTES, SHARD_INPUT_BYTES, auto_shards, embedded_input_bytes

    codec = vec_codec[0]
    sizes = [1 << 20, 64 << 20, 10 * SHARD_INPUT_BYTES + 1]
    assert [auto_shards(n, codec) for n in sizes] == [auto_shards(n) for n in sizes]
    monkeypatch.setattr(io.arrow, "embedded_codec", lambda c: b"x" * (3 << 20))
    bits = codec.manifest["training"]["rate_calibration"]["bits_per_value"]
    need = embedded_input_bytes(codec)
    assert need == int((3 << 20) * 4 / 3 / EMBEDDED_CODEC_SHARE * 32 / bits) > SHARD_INPUT_BYTES
    size = 20 * SHARD_INPUT_BYTES
    files = auto_shards(size, codec)
    assert files < auto_shards(size) and size / files >= min(need, MAX_SHARD_INPUT_BYTES) * 0.99
    assert auto_shards(100 * MAX_SHARD_INPUT_BYTES, codec) == 100  # a shard's input stays bounded


def test_shard_encoder_has_table_output_only(vec_codec):
    from ltc_beam.beam import LtcEncodeShards

    with pytest.raises(InputError, match="output='rows'"):
        LtcEncodeShards(vec_codec[1], num_shards=2, column="values", output="rows")


def test_shard_encoder_sends_a_batch_as_one_part_per_file(small, vec_codec):
    """A batch left ``_Prepare`` as one Arrow message per series: (2,000 devices, 128 batches)
    made 256k messages, and compress took 7 GB and 105 s for 8M records (now 4.7 GB, 61 s)."""
    from ltc_beam.beam.transforms import BUNDLE, PART, _Prepare

    prepare = _Prepare(record_dim=8, column="values", columns=None, default_columns=(), key="device",
                       order_by="ts", schema=None, dead_letter=False, shards=4, bundles=3)
    prepare.setup()
    parts = [item for tag, item in prepare.process(small) if tag == PART]
    assert len(small.column("device").unique()) == 30 and len(parts) <= 3
    assert all(kb.startswith(BUNDLE) for kb, _ in parts)
    assert sum(arrow.from_ipc(ipc).num_rows for _, ipc in parts) == small.num_rows


def test_tables_cross_stages_as_their_own_rows(small):
    """``pa.Table`` elements use ``ArrowTableCoder``: a slice encodes (and is size-estimated
    as) its own rows, where pickling it would carry the parent's whole buffers."""
    import pickle

    from ltc_beam.beam.coders import ArrowTableCoder

    coder = beam.coders.registry.get_coder(pa.Table)
    assert isinstance(coder, ArrowTableCoder)
    part = small.slice(100, 10)
    encoded = coder.encode(part)
    assert coder.decode(encoded).equals(part)
    assert len(encoded) * 20 < len(pickle.dumps(part))
    assert coder.get_impl().estimate_size(part) == part.nbytes < small.nbytes / 100
    units = beam.coders.registry.get_coder(beam.typehints.Tuple[int, beam.typehints.List[beam.typehints.List[pa.Table]]])
    assert units.decode(units.encode((3, [[part, part]])))[1][0][1].equals(part)


def _coders(pipeline) -> dict[str, str]:
    """Step name → repr of its output's coder."""
    found = {}

    class Visit(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            for pc in node.outputs.values():
                found[node.full_label] = repr(beam.coders.registry.get_coder(pc.element_type))

    pipeline.visit(Visit())
    return found


def test_table_pcollections_use_the_arrow_coder(small, block_codec, tmp_path):
    """Every PCollection of ``CompressParquet``, ``LtcEncode`` and ``LtcDecode`` that
    carries tables is typed to use ``ArrowTableCoder`` (not the pickling fallback)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from ltc_beam.beam import CompressParquet, ReadParquetTables
    from ltc_beam.beam.coders import ArrowTableCoder

    pq.write_table(small, tmp_path / "in.parquet")
    pipeline = beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions([]))
    opts = dict(column="values", key="device", order_by="ts")
    _ = pipeline | CompressParquet(str(tmp_path), str(tmp_path / "c") + "/", block_codec[1], num_shards=2, **opts)
    _ = (
        pipeline
        | "Read" >> ReadParquetTables(str(tmp_path / "in.parquet"))
        | LtcEncode(block_codec[1], **opts)
        | LtcDecode()
    )
    coders = _coders(pipeline)
    steps = [
        "CompressParquet/Read/ReadRowGroups",
        "CompressParquet/Encode/LtcEncode/FormShards",
        "CompressParquet/Encode/LtcEncode/Encode/BeamML_RunInference",
        "CompressParquet/Encode/LtcEncode/Account",
        "LtcEncode/SelectUnits",
        "LtcEncode/PackTails",
        "LtcEncode/Encode/BeamML_RunInference",
        "LtcEncode/EncodeTails/BeamML_RunInference",
        "LtcEncode/Account",
        "LtcDecode/AsUnits",
        "LtcDecode/Decode/BeamML_RunInference",
        "LtcDecode/Account",
    ]
    for step in steps:
        assert ArrowTableCoder.__name__ in coders[step], (step, coders[step])
