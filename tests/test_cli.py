"""ltc-beam compress / decompress / demo from the command line (FnApiRunner)."""

from __future__ import annotations

import copy
import glob
import json
import math
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ltc_beam
from ltc_beam import arrow, testing
from ltc_beam.bitstream import unpack
from ltc_beam.cli import main
from ltc_beam.codec.codec import Codec
from ltc_beam.errors import WindowHint
from tests.conftest import correlated_series
from tests.object_store import FolderObjectStore
from tests.beam_fixtures import block_codec, small, telemetry, vec_codec, window_codec  # noqa: F401


def _summary(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])



def test_decompress_with_the_wrong_codec_is_one_error_line(small, vec_codec, block_codec, tmp_path, capsys, monkeypatch):
    """A codec mismatch inside the Beam job reaches the user as the library's own error
    (Beam re-raises a step's error as ``type(error)(message)``), not a wrapped traceback."""
    pq.write_table(small, tmp_path / "in.parquet")
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "c"),
                 "--column", "values", "--quiet", "--json"]) == 0
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "d"), "--codec", block_codec[1], "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ltc-beam decompress: error: {tmp_path / 'c' / 'part-00000-of-00001.parquet'}: "
                   f"bitstream needs codec {vec_codec[0].id}, but codec {block_codec[0].id} "
                   "was supplied [while running 'DecompressParquet/DecodeFiles']"]

    calls = []

    def unreachable_after_the_start(uris):  # removing the failed run's files fails too
        calls.append(uris)
        if len(calls) > 1:
            raise OSError("the store is unreachable")

    monkeypatch.setattr("ltc_beam.pipeline_cli.remove", unreachable_after_the_start)
    with pytest.warns(UserWarning, match="could not be removed: the store is unreachable"):
        assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "d"), "--codec", block_codec[1], "--quiet"]) == 2
    assert "bitstream needs codec" in capsys.readouterr().err  # the job's own error, not the removal's


def test_compress_verify_then_decompress(small, vec_codec, tmp_path, capsys):
    _, codec = vec_codec
    src = tmp_path / "in"
    testing.write_dataset(small, str(src), files=2, row_group_size=600)
    comp, dec = tmp_path / "c", tmp_path / "d"
    rc = main(["compress", str(src), "--codec", codec, "--output", str(comp), "--column", "values", "--key", "device",
               "--order-by", "ts", "--verify", "--json", "--num-shards", "2"])
    assert rc == 0
    s = _summary(capsys)
    assert s["records_in"] == s["records_out"] == small.num_rows
    assert s["verify_records_equal"] and s["verify_other_columns_identical"] and s["verify_nonfinite_exact"]
    assert s["snr_db"] > 10 and 0 < s["bits_per_value"] < 6
    assert s["payload_ratio_vs_float32"] == pytest.approx(32 / s["bits_per_value"])
    assert s["input_to_output_bytes"] == pytest.approx(s["input_bytes"] / s["output_bytes"])
    assert s["metrics"]["records_encoded"] == small.num_rows  # Beam metrics of the in-memory run
    assert main(["evaluate", str(src), "--codec", codec, "--column", "values", "--key", "device", "--order-by", "ts",
                 "--json", "--no-voronoi"]) == 0
    evaluated = _summary(capsys)  # each series' own SNR: verify gave the overall figure alone
    assert (s["series"], s["series_snr_db_median"], s["series_snr_db_min"]) == (
        evaluated["series"], pytest.approx(evaluated["series_snr_db_median"], abs=1e-6), pytest.approx(evaluated["series_snr_db_min"], abs=1e-6))
    rc = main(["decompress", str(comp), "--output", str(dec), "--json", "--direct_num_workers=1"])  # a Beam option passes through
    assert rc == 0
    d = _summary(capsys)
    assert d["records_in"] == d["records_out"] == small.num_rows
    # by default one decoded file per compressed file, named by its place in the file list
    assert sorted(os.listdir(dec)) == ["_ltc_run.json", "part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    decoded = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(dec / "*.parquet"))])
    assert decoded.num_rows == small.num_rows
    for i, name in enumerate(sorted(f.name for f in comp.glob("part-*.parquet"))):  # each decoded file: its input's records
        records = sum(pq.read_table(comp / name).column(arrow.COUNT).to_pylist())
        assert pq.ParquetFile(dec / f"part-{i:05d}-of-00002.parquet").metadata.num_rows == records
    # --num-shards regroups the records into that many files (LtcDecode + a shuffle)
    regrouped = tmp_path / "d3"
    assert main(["decompress", str(comp), "--output", str(regrouped), "--json", "--num-shards", "3"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows
    again = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(regrouped / "*.parquet")))])
    key = [("device", "ascending"), ("ts", "ascending")]
    assert again.sort_by(key).drop(["values"]).equals(decoded.sort_by(key).drop(["values"]))
    x = np.asarray(decoded.sort_by(key).column("values").combine_chunks().flatten())
    assert np.array_equal(np.asarray(again.sort_by(key).column("values").combine_chunks().flatten()), x, equal_nan=True)


def test_compress_npy_record_layout(vec_codec, tmp_path, capsys):
    _, codec = vec_codec
    x = testing.telemetry_table(500, keys=5, specials=0).column("values").combine_chunks().flatten()
    path = tmp_path / "x.npy"
    np.save(path, np.asarray(x).reshape(-1, 8))
    rc = main(["compress", str(path), "--codec", codec, "--output", str(tmp_path / "c"), "--layout", "record", "--verify", "--json"])
    assert rc == 0
    s = _summary(capsys)
    assert s["records_out"] == 500 and s["verify_records_equal"]
    assert ltc_beam.read_parquet(str(tmp_path / "c")).num_rows == 500


def test_fewer_files_than_shards_are_said(small, vec_codec, tmp_path, capsys):
    """Two series cannot fill eight files: the summary says so (the names keep their numbers)."""
    import pyarrow.compute as pc

    _, codec = vec_codec
    two = small.filter(pc.is_in(small.column("device"), value_set=small.column("device").unique()[:2]))
    pq.write_table(two, tmp_path / "two.parquet")
    with pytest.warns(UserWarning, match="of the 8 output files hold data"):
        rc = main(["compress", str(tmp_path / "two.parquet"), "--codec", codec, "--output", str(tmp_path / "c"),
                   "--column", "values", "--key", "device", "--order-by", "ts", "--json", "--num-shards", "8"])
    assert rc == 0 and _summary(capsys)["output_files"] <= 2


def test_float32_and_float64_files_of_one_dataset(small, vec_codec, tmp_path, capsys):
    """A directory of float32 and float64 files reads as float64 everywhere (it crashed in
    train/evaluate/--verify and compress decoded all as float32)."""
    _, codec = vec_codec
    src = tmp_path / "in"
    src.mkdir()
    half = small.num_rows // 2
    pq.write_table(small.slice(0, half), src / "a.parquet")
    wide = small.slice(half)
    at = wide.schema.get_field_index("values")
    wide = wide.set_column(at, "values", wide.column("values").cast(pa.list_(pa.float64(), 8)))
    pq.write_table(wide, src / "b.parquet")
    opts = ["--column", "values", "--key", "device", "--order-by", "ts"]
    assert main(["evaluate", str(src), "--codec", codec, "--json", "--no-voronoi"] + opts) == 0
    assert _summary(capsys)["n_values"] == small.num_rows * 8
    assert main(["compress", str(src), "--codec", codec, "--output", str(tmp_path / "c"), "--verify", "--json"] + opts) == 0
    s = _summary(capsys)
    assert s["records_out"] == small.num_rows and s["verify_records_equal"] and s["verify_other_columns_identical"]
    assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "d"), "--json"]) == 0
    decoded = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(tmp_path / "d" / "*.parquet")))])
    assert decoded.num_rows == small.num_rows and decoded.schema.field("values").type.value_type == pa.float64()


def test_windowed_codecs_need_the_order_in_evaluate_as_in_compress(small, window_codec, tmp_path, capsys):
    """File order is no series order: a windowed codec evaluated without --order-by would
    report the cost of windows cut across shuffled records."""
    _, codec = window_codec
    pq.write_table(small, tmp_path / "in.parquet")
    for command in (["evaluate"], ["compress", "--output", str(tmp_path / "c")]):
        assert main([command[0], str(tmp_path / "in.parquet"), "--codec", codec, "--column", "values", *command[1:]]) == 2
        assert "codes windows of 4 consecutive records: give --order-by" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "in.parquet"), "--codec", codec, "--column", "values", "--key", "device",
                 "--order-by", "ts", "--json", "--no-voronoi"]) == 0


def test_windowed_codecs_take_the_order_they_were_trained_with(small, window_codec, tmp_path, capsys):
    """``ltc-beam train`` records its --key and --order-by; a windowed codec given no order
    takes them where the input holds them (it was refused: "give --order-by"), and says so."""
    codec, _ = window_codec
    codec = copy.deepcopy(codec)
    codec.remember_series_columns("device", "ts")
    path = str(tmp_path / "ordered.ltc")
    codec.save(path)
    assert Codec.load(path).manifest["series_columns"] == {"key": "device", "order_by": "ts"}
    pq.write_table(small, tmp_path / "in.parquet")
    given = ["--column", "values", "--key", "device", "--order-by", "ts"]
    assert main(["evaluate", str(tmp_path / "in.parquet"), "--codec", path, "--json", "--no-voronoi", *given]) == 0
    explicit = _summary(capsys)
    assert main(["evaluate", str(tmp_path / "in.parquet"), "--codec", path, "--json", "--no-voronoi", "--column", "values"]) == 0
    out = capsys.readouterr()
    assert "--order-by ts --key device, as the codec was trained" in out.err
    assert json.loads(out.out)["bits_per_value"] == explicit["bits_per_value"]
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", path, "--output", str(tmp_path / "c"), "--column", "values", "--verify", "--json"]) == 0
    assert _summary(capsys)["verify_records_equal"]
    pq.write_table(small.drop_columns(["ts"]), tmp_path / "no_ts.parquet")  # not there: refused as before
    assert main(["evaluate", str(tmp_path / "no_ts.parquet"), "--codec", path, "--column", "values"]) == 2
    said = capsys.readouterr().err
    assert "trained with --key device --order-by ts, which this input lacks" in said and "give --order-by" in said
    assert "is this the codec" not in said
    # another data set's file: its columns are none of the codec's (it asked for --order-by alone)
    pq.write_table(pa.table({"country": ["a", "b"], "year": [1, 2], "rate": [1.5, 2.5]}), tmp_path / "other.parquet")
    assert main(["evaluate", str(tmp_path / "other.parquet"), "--codec", path]) == 2
    assert "nor does it hold the codec's value columns" in capsys.readouterr().err


def test_train_records_its_key_and_order_column(small, tmp_path, capsys):
    pq.write_table(small, tmp_path / "in.parquet")
    out = str(tmp_path / "c.ltc")
    assert main(["train", str(tmp_path / "in.parquet"), "--out", out, "--column", "values", "--key", "device", "--order-by", "ts",
                 "--window", "4", "--lattice", "e8", "--steps", "10", "--no-calibrate", "--quiet"]) == 0
    capsys.readouterr()
    assert Codec.load(out).manifest["series_columns"] == {"key": "device", "order_by": "ts"}


def test_inputs_without_records_are_refused_with_a_message(vec_codec, tmp_path, capsys):
    _, codec = vec_codec
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"ts": pa.array([], pa.int64()), "values": pa.array([], pa.list_(pa.float32(), 8))}), path)
    assert main(["train", str(path), "--out", str(tmp_path / "c.ltc"), "--column", "values", "--quiet"]) != 0
    assert "holds no records" in capsys.readouterr().err
    assert main(["evaluate", str(path), "--codec", codec, "--column", "values"]) != 0
    assert "no records" in capsys.readouterr().err
    assert main(["compress", str(path), "--codec", codec, "--column", "values", "--output", str(tmp_path / "o")]) != 0
    assert "holds no records" in capsys.readouterr().err


def test_npy_batches_are_copies_that_pickle_small():
    """A slice pickles its whole parent table: Create of slices of a big array grew
    quadratically (1e6 records took 82 s to compress)."""
    import pickle

    from ltc_beam.pipeline_cli import NPY_BATCH, npy_batches

    table = pa.table({"row": np.arange(3 * NPY_BATCH + 5), "x": np.ones(3 * NPY_BATCH + 5)})
    batches = npy_batches(table)
    assert [b.num_rows for b in batches] == [NPY_BATCH] * 3 + [5]
    assert pa.concat_tables(batches).equals(table)
    assert all(len(pickle.dumps(b)) < 2 * b.nbytes + 4096 for b in batches)


def test_npy_archive_decodes_in_array_order(block_codec, tmp_path, capsys):
    _, codec = block_codec
    x = testing.telemetry_table(150_000, keys=3, specials=0).column("values").combine_chunks().flatten()
    x = np.array(x).reshape(-1, 8)
    x[7, 2] = np.nan  # restored bit-exactly, at its own row
    path = tmp_path / "x.npy"
    np.save(path, x)
    # 150k rows: three input batches of the array, one series in its order, so one file of the two asked
    with pytest.warns(UserWarning, match="1 of the 2 output files hold data.*every record is one series"):
        rc = main(["compress", str(path), "--codec", codec, "--output", str(tmp_path / "c"), "--verify", "--json",
                   "--num-shards", "2"])
    assert rc == 0
    s = _summary(capsys)
    assert s["verify_records_equal"] and s["verify_nonfinite_exact"] and s["snr_db"] > 10 and s["output_files"] == 1
    decoded = ltc_beam.read_parquet(str(tmp_path / "c"))
    assert decoded.column("row").to_pylist() == list(range(len(x)))
    y = np.asarray(decoded.column("values").combine_chunks().flatten()).reshape(-1, 8)
    assert np.isnan(y[7, 2]) and np.isfinite(np.delete(y.ravel(), 7 * 8 + 2)).all()
    assert np.mean((np.nan_to_num(x) - np.nan_to_num(y)) ** 2) < 0.2 * np.nanvar(x)
    # back to a .npy: the array's shape and dtype, in its order
    assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "back.npy"), "--quiet"]) == 0
    back = np.load(tmp_path / "back.npy")
    assert back.shape == x.shape and back.dtype == x.dtype and np.array_equal(back, y, equal_nan=True)
    # never over an existing array: it may be the one compressed (its lossy copy replaced it)
    assert main(["decompress", str(tmp_path / "c"), "--output", str(path), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err and np.array_equal(np.load(path), x, equal_nan=True)


def test_only_npy_archives_decompress_to_npy(small, vec_codec, tmp_path, capsys):
    _, codec = vec_codec
    pq.write_table(small.slice(0, 300), tmp_path / "t.parquet")
    assert main(["compress", str(tmp_path / "t.parquet"), "--codec", codec, "--output", str(tmp_path / "c"), "--column",
                 "values", "--key", "device", "--order-by", "ts", "--quiet"]) == 0
    assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "x.npy"), "--quiet"]) == 2
    assert "was not compressed from a .npy array" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()


def test_dead_letters_from_the_cli(small, vec_codec, tmp_path, capsys):
    _, codec = vec_codec
    table = small.slice(0, 400)
    vals = table.column("values").to_pylist()
    vals[5] = vals[5][:3]
    table = table.set_column(table.schema.get_field_index("values"), "values", pa.array(vals, pa.list_(pa.float32())))
    src = tmp_path / "bad.parquet"
    pq.write_table(table, src)
    dead = tmp_path / "dead.jsonl"
    rc = main(["compress", str(src), "--codec", codec, "--output", str(tmp_path / "c"), "--column", "values",
               "--key", "device", "--order-by", "ts", "--dead-letter", str(dead), "--json", "--verify"])
    assert rc == 0
    s = _summary(capsys)
    assert s["records_out"] == 399 and s["dead_letters"] == 1
    # --verify checks the written records, the dead letter's left out (it reported "records in != records out")
    assert s["verify_records_equal"] and s["verify_dead_letters_left_out"] == 1 and s["verify_other_columns_identical"]
    assert s["snr_db"] > 10
    rc = main(["compress", str(src), "--codec", codec, "--output", str(tmp_path / "k"), "--column", "values",
               "--key", "device", "--dead-letter", str(tmp_path / "k.jsonl"), "--json", "--verify"])  # no order column
    s = _summary(capsys)
    assert rc == 0 and s["verify_records_equal"] and s["verify_dead_letters_left_out"] == 1
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["row"] == 5 and "column 'values', row 5" in lines[0]["error"]
    # without a dead-letter path the job stops with an error naming column and row
    rc = main(["compress", str(src), "--codec", codec, "--output", str(tmp_path / "c2"), "--column", "values", "--json"])
    assert rc != 0
    assert "column 'values', row 5" in capsys.readouterr().err


def test_demo_prints_the_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("bits/value", "SNR dB", "x float32", "x zstd", "zstd-19 lossless", "(Beam job)"):
        assert needle in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 4000
    assert os.path.getsize(out / "rd.png") > 10_000


def test_bad_numbers_are_refused_before_any_work(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 3)))
    for option in (["--window", "0"], ["--target-bits-per-value", "-1"], ["--steps", "ten"], ["--lmbda", "inf"], ["--target-bits-per-value", "inf"]):
        try:
            main(["train", str(path), "--out", str(tmp_path / "c.ltc"), *option])
        except SystemExit as exit:
            assert exit.code == 2
        else:
            raise AssertionError(f"{option} was accepted")
        err = capsys.readouterr().err
        assert option[0] in err and ("above 0" in err or "not an integer" in err)


def test_verify_and_evaluate_report_one_snr_and_columns_are_checked(tmp_path, capsys):
    rng = np.random.default_rng(4)
    x = correlated_series(3000, 3, seed=4) * np.array([1e-6, 1.0, 1e6])
    x[:, 0] += 1e-6 * rng.standard_normal(3000)
    src = tmp_path / "abc.parquet"
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "n": np.arange(3000)}), src)  # n: pairs records
    codec = tmp_path / "abc.ltc"
    assert main(["train", str(src), "--out", str(codec), "--steps", "150", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(src), "--codec", str(codec), "--json", "--no-voronoi"]) == 0
    evaluated = _summary(capsys)["snr_db"]
    assert main(["compress", str(src), "--codec", str(codec), "--output", str(tmp_path / "c"), "--verify", "--json"]) == 0
    assert _summary(capsys)["snr_db"] == pytest.approx(evaluated, abs=1e-6)
    with warnings.catch_warnings(record=True) as caught:  # the codec's columns in another order: taken by name
        warnings.simplefilter("always")
        assert main(["evaluate", str(src), "--codec", str(codec), "--columns", "b,a,c", "--json", "--no-voronoi"]) == 0
        assert _summary(capsys)["snr_db"] == pytest.approx(evaluated, abs=1e-6)
        assert main(["compress", str(src), "--codec", str(codec), "--output", str(tmp_path / "e"), "--columns", "c,b,a",
                     "--verify", "--json", "--no-embed-codec"]) == 0
        assert _summary(capsys)["snr_db"] == pytest.approx(evaluated, abs=1e-6)
    assert not caught, [str(w.message) for w in caught]  # they were coded by position, with a warning, off scale (-3.2 dB on Chicago ridership)
    rc = main(["compress", str(src), "--codec", str(codec), "--output", str(tmp_path / "d"), "--key", "nope"])
    assert rc == 2 and "column 'nope' not found" in capsys.readouterr().err  # before the pipeline starts
    assert main(["train", str(src), "--out", str(tmp_path / "aa.ltc"), "--columns", "a,a", "--steps", "5", "--quiet"]) == 2
    assert "columns ['a', 'a'] name a column twice" in capsys.readouterr().err  # as compress says it


def test_default_window_is_auto_for_ordered_block_codecs_and_1_for_vector_mode(tmp_path, capsys):
    walk = np.cumsum(np.random.default_rng(0).standard_normal((6000, 4)), axis=0)
    np.save(tmp_path / "walk.npy", walk)
    for mode, expect in (("vector", 1), ("block", None)):
        out = tmp_path / f"{mode}.ltc"
        assert main(["train", str(tmp_path / "walk.npy"), "--out", str(out), "--mode", mode, "--steps", "30", "--quiet"]) == 0
        window = ltc_beam.Codec.load(str(out)).config.window
        assert window == expect if expect else window > 1  # a random walk: long windows pay
    capsys.readouterr()


def test_train_points_at_a_likely_order_column(tmp_path, capsys):
    from ltc_beam.data import order_hint

    rng = np.random.default_rng(0)
    n = 400
    walk = np.cumsum(rng.standard_normal(n)).astype(np.float32)  # records correlated in file order
    table = pa.table({
        "dev": np.repeat(["a", "b"], n // 2),
        "shuffled": rng.permutation(n),
        "step": np.tile(np.arange(n // 2), 2),  # increasing within each device only
        "value": walk,
    })
    values = walk[:, None]
    assert order_hint(table, None, {"value"}, values) is None
    assert order_hint(table, "dev", {"value"}, values) == "step"
    iid = rng.standard_normal((n, 1))  # a row id over records unrelated to their neighbours: no hint
    assert order_hint(table, "dev", {"value"}, iid) is None
    alternating = walk * np.tile([1, -1], n // 2)  # neighbours anti-correlated: windows still gain
    assert order_hint(table, "dev", {"value"}, alternating[:, None]) == "step"
    # rows out of time order, with a timestamp column: the hint judges them in its order
    perm = rng.permutation(n)
    shuffled = pa.table({"ts": pa.array(np.arange(n)[perm].astype("datetime64[s]")), "value": walk[perm]})
    assert order_hint(shuffled, None, {"value"}, walk[perm][:, None]) == "ts"
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    assert main(["train", str(path), "--out", str(tmp_path / "c.ltc"), "--key", "dev", "--steps", "20", "--quiet"]) == 0
    assert "column 'step' looks like the time order; with --order-by step" in capsys.readouterr().err
    main(["train", str(path), "--out", str(tmp_path / "c.ltc"), "--key", "dev", "--order-by", "step", "--steps", "20", "--quiet"])
    assert "looks like the time order" not in capsys.readouterr().err
    pq.write_table(table.select(["value"]), tmp_path / "plain.parquet")  # no order column at all: said too, in CLI terms
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert main(["train", str(tmp_path / "plain.parquet"), "--out", str(tmp_path / "c.ltc"), "--steps", "20", "--quiet"]) == 0
    assert "consecutive records correlate (lag-1 correlation" in capsys.readouterr().err
    assert not any(issubclass(w.category, WindowHint) for w in said)  # the Python hint (window='auto') is not the CLI's advice
    # in time order already (--order-by) with --window 1: it advised the --order-by it had
    main(["train", str(path), "--out", str(tmp_path / "c.ltc"), "--key", "dev", "--order-by", "step", "--window", "1",
          "--steps", "20", "--quiet"])
    err = capsys.readouterr().err
    assert "--window auto (the default with --order-by)" in err and "given as --order-by" not in err
    with warnings.catch_warnings(record=True) as said:  # and the CLI left the hint on for later train() calls
        warnings.simplefilter("default")
        ltc_beam.train(table.select(["value"]).to_pandas(), lattice="d4", steps=5, progress=False, calibrate=False)
    assert any(issubclass(w.category, WindowHint) for w in said)


def test_output_directory_never_loses_input_or_other_files(small, vec_codec, tmp_path, capsys):
    _, codec = vec_codec
    src = tmp_path / "in"
    testing.write_dataset(small, str(src), files=2, row_group_size=600)
    before = sorted(os.listdir(src))
    opts = ["--codec", codec, "--column", "values", "--key", "device", "--order-by", "ts", "--json", "--quiet"]
    for out in (src, tmp_path):  # the input directory itself, or one above it
        assert main(["compress", str(src), "--output", str(out), *opts]) != 0
        assert "holds input file" in capsys.readouterr().err
    # one inside it: accepted, and every later command on the input then failed
    assert main(["compress", str(src), "--output", str(src / "compressed"), *opts]) == 2
    assert "lies in the input directory" in capsys.readouterr().err
    assert sorted(os.listdir(src)) == before
    for hidden in ("_out", ".out"):  # never read as input: accepted
        assert main(["compress", str(src), "--output", str(src / hidden), *opts]) == 0
        assert main(["compress", str(src), "--output", str(src / hidden), *opts]) == 0  # and again
        assert _summary(capsys)["records_in"] == small.num_rows
        shutil.rmtree(src / hidden)
    assert main(["compress", str(src), "--output", str(src / "out.tmp"), *opts]) == 2  # its files would be read
    assert "lies in the input directory" in capsys.readouterr().err
    comp = tmp_path / "c"
    comp.mkdir()
    pq.write_table(small.slice(0, 5), comp / "mine.parquet")  # a file of the user's: refused, kept
    (comp / "notes.txt").write_text("kept")
    assert main(["compress", str(src), "--output", str(comp), *opts]) == 2
    assert "already holds 1 Parquet file(s) that no ltc-beam run wrote there ('mine.parquet')" in capsys.readouterr().err
    (comp / "mine.parquet").rename(tmp_path / "mine.parquet")
    assert main(["compress", str(src), "--output", str(comp), *opts]) == 0  # other files do not count
    assert _summary(capsys)["records_out"] == small.num_rows
    assert main(["compress", str(src), "--output", str(comp), "--verify", *opts]) == 0  # a rerun replaces its own files
    s = _summary(capsys)
    assert s["records_out"] == small.num_rows and s["verify_records_equal"]
    assert 0 < s["embedded_codec_bytes"] < s["output_bytes"]
    assert (comp / "notes.txt").read_text() == "kept"
    dec = tmp_path / "d"
    dec.mkdir()
    leftovers = [".part-00007-of-00009.parquet.pending", "part-00001-of-00002.parquet.0123456789ab.tmp",
                 ".part-00000-of-00002.parquet.pending.ba9876543210.tmp"]  # a failed or killed run's
    for name in leftovers + ["notes.parquet.tmp"]:
        (dec / name).write_bytes(b"x")
    assert main(["compress", str(src), "--output", str(tmp_path / "c2"), *opts]) == 0
    for archive in (tmp_path / "c2", tmp_path / "c2" / "part-*.parquet"):  # a glob's folder too
        assert main(["decompress", str(archive), "--output", str(tmp_path / "c2" / "decoded"), "--quiet"]) == 2
        assert "lies in the input directory" in capsys.readouterr().err
    assert main(["decompress", str(comp / "part-*.parquet"), "--output", str(dec), "--json", "--quiet"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows
    assert not any((dec / name).exists() for name in leftovers) and (dec / "notes.parquet.tmp").exists()


@pytest.mark.filterwarnings("ignore::ltc_beam.errors.OffScaleWarning")  # independent levels: the latents leave the tables
def test_no_sample_fallback_keeps_every_stream_lattice_coded(vec_codec, tmp_path, capsys):
    from ltc_beam.bitstream import unpack

    trained, codec = vec_codec
    rng = np.random.default_rng(1)
    norm = trained.manifest["normalisation"]
    levels = np.asarray(norm["mean"]) + np.asarray(norm["std"]) * rng.normal(0, 1, (40, 8))
    steps = np.repeat(levels, 100, axis=0).astype(np.float32)  # flat stretches on the training scale
    path = tmp_path / "flat.npy"
    np.save(path, steps)
    streams = {}
    for flag in ([], ["--no-sample-fallback"]):
        out = tmp_path / f"c{len(flag)}"
        assert main(["compress", str(path), "--codec", codec, "--output", str(out), "--json", "--quiet", *flag]) == 0
        bits = _summary(capsys)["bits_per_value"]
        payloads = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(out / "*.parquet"))]).column(arrow.PAYLOAD).to_pylist()
        streams[bool(flag)] = (bits, [unpack(p).sample_coded for p in payloads])  # chunk payloads are whole streams
    assert any(streams[False][1]) and not any(streams[True][1])
    assert streams[False][0] < streams[True][0]
    assert main(["evaluate", str(path), "--codec", codec, "--json", "--no-sample-fallback", "--no-voronoi"]) == 0
    assert _summary(capsys)["sample_coded_streams"] == 0


def test_nearest_points_turns_the_rate_distortion_choice_off(vec_codec, tmp_path, capsys):
    """``--nearest-points`` (compress, evaluate) codes the nearest lattice points where the
    codec chose rate–distortion quantisation: more bits and more SNR than the default, the
    same as the codec's own encoder with ``rd_quantization`` off."""
    trained = copy.deepcopy(vec_codec[0])
    trained.manifest["encoder"] = {"rd_quantization": True}  # as if freezing had chosen it
    trained.manifest["codec_id"] = trained.id = trained.content_hash()
    codec = str(tmp_path / "rd.ltc")
    trained.save(codec)
    norm = trained.manifest["normalisation"]
    x = (np.asarray(norm["mean"]) + np.asarray(norm["std"]) * np.random.default_rng(2).normal(0, 1, (3000, 8))).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    scored, compressed = {}, {}
    for flag in ([], ["--nearest-points"]):
        assert main(["evaluate", str(path), "--codec", codec, "--json", "--no-voronoi", "--no-sample-fallback", *flag]) == 0
        scored[bool(flag)] = _summary(capsys)
        out = tmp_path / f"c{len(flag)}"
        assert main(["compress", str(path), "--codec", codec, "--output", str(out), "--json", "--quiet", "--no-sample-fallback", *flag]) == 0
        compressed[bool(flag)] = _summary(capsys)["bits_per_value"]
    assert scored[True]["bits_per_value"] > scored[False]["bits_per_value"] and scored[True]["snr_db"] > scored[False]["snr_db"]
    assert compressed[True] > compressed[False]
    nearest = copy.copy(trained)  # the session's codec stays as it is
    nearest.sample_fallback, nearest.rd_quantization = False, False
    assert scored[True]["bits_per_value"] == pytest.approx(8 * len(nearest.encode(x)) / x.size, abs=0.01)


def test_keep_repeats_codes_every_record(vec_codec, tmp_path, capsys):
    """By default, records repeating the record before them are left out of the streams
    (version 5) where that is shorter; ``--keep-repeats`` (compress, evaluate) codes them all."""
    trained, codec = vec_codec
    norm = trained.manifest["normalisation"]
    x = (np.asarray(norm["mean"]) + np.asarray(norm["std"]) * np.random.default_rng(3).normal(0, 1, (3000, 8))).astype(np.float32)
    x[1::3] = x[0::3]  # every third record read twice
    path = tmp_path / "x.npy"
    np.save(path, x)
    compressed, scored = {}, {}
    for flag in ([], ["--keep-repeats"]):
        out = tmp_path / f"c{len(flag)}"
        assert main(["compress", str(path), "--codec", codec, "--output", str(out), "--json", "--quiet", *flag]) == 0
        bits = _summary(capsys)["bits_per_value"]
        payloads = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(out / "*.parquet"))]).column(arrow.PAYLOAD).to_pylist()
        compressed[bool(flag)] = (bits, {bool(unpack(p).repeated) for p in payloads})  # chunk payloads are whole streams
        assert main(["evaluate", str(path), "--codec", codec, "--json", "--no-voronoi", *flag]) == 0
        summary = _summary(capsys)
        scored[bool(flag)] = (summary["bits_per_value"], summary["repeated_records"])
    assert compressed[False][1] == {True} and compressed[True][1] == {False}
    assert scored[False][1] == 1000 and scored[True][1] == 0
    assert compressed[False][0] < 0.8 * compressed[True][0] and scored[False][0] < 0.8 * scored[True][0]


def test_errors_name_command_line_options(vec_codec, tmp_path, capsys):
    from ltc_beam.cli import in_cli_terms

    assert in_cli_terms("give order_by= or columns=, not key=abc") == "give --order-by or --columns, not key=abc"
    assert in_cli_terms("Use mode='block', or layout='chunk'") == "Use --mode block, or --layout chunk"
    assert in_cli_terms("normalise='series' or window=4, lmbda=; max_training_values=None") == (
        "--normalise series or --window 4, --lmbda; --max-training-values 0"
    )
    _, codec = vec_codec
    rows = [[0.5] * 8] * 4
    pq.write_table(pa.table({"a": rows, "b": rows}), tmp_path / "two.parquet")
    rc = main(["compress", str(tmp_path / "two.parquet"), "--codec", codec, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "name it with --column or --columns" in err, err


def test_verify_pairs_records_without_a_key(small, vec_codec, tmp_path, capsys):
    """Without --key/--order-by, compress --verify pairs records by their pass-through
    columns (chunks follow content, not input order), or says it cannot."""
    _, codec = vec_codec
    src = tmp_path / "in"
    src.mkdir()
    table = small.drop(["device", "ts"]).append_column("id", pa.array(range(small.num_rows)))
    for i in range(3):  # several files: the output order differs from the input order
        pq.write_table(table.slice(1000 * i, 1000), src / f"p{i}.parquet")
    assert main(["evaluate", str(src), "--codec", codec, "--json", "--no-voronoi"]) == 0
    evaluated = _summary(capsys)["snr_db"]
    assert main(["compress", str(src), "--codec", codec, "--output", str(tmp_path / "a"), "--verify", "--json"]) == 0
    summary = _summary(capsys)
    assert summary["snr_db"] == pytest.approx(evaluated, abs=1e-6) and summary["verify_other_columns_identical"]
    for i in range(3):
        pq.write_table(table.select(["values"]).slice(1000 * i, 1000), src / f"p{i}.parquet")
    assert main(["compress", str(src), "--codec", codec, "--output", str(tmp_path / "b"), "--verify", "--json"]) == 0
    summary = _summary(capsys)
    assert summary["verify_records_equal"] and "snr_db" not in summary and "tell which" in summary["verify_unpaired"]


@pytest.mark.parametrize("shards", [None, 3])
def test_evaluate_packs_short_series_as_compress_does(small, vec_codec, tmp_path, capsys, shards):
    """30 short series: evaluate's bits are compress's payload bits, whatever the file count."""
    _, codec = vec_codec
    pq.write_table(small, tmp_path / "in.parquet")
    opts = ["--key", "device", "--order-by", "ts"] + ([] if shards is None else ["--num-shards", str(shards)])
    assert main(["evaluate", str(tmp_path / "in.parquet"), "--codec", codec, "--json", "--no-voronoi", *opts]) == 0
    evaluated = _summary(capsys)
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", codec, "--output", str(tmp_path / "c"), "--json", *opts]) == 0
    compressed = _summary(capsys)
    assert compressed["output_files"] == evaluated["streams"] == (shards or 1)
    assert compressed["bits_per_value"] == pytest.approx(evaluated["bits_per_value"], rel=1e-12)


def test_train_reports_its_rate_calibration_unless_told_not_to(tmp_path, capsys):
    x = np.cumsum(np.random.default_rng(3).standard_normal((3000, 4)), axis=0)
    path = tmp_path / "walk.npy"
    np.save(path, x)
    common = ["train", str(path), "--steps", "60", "--window", "1", "--target-bits-per-value", "2", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "a.ltc")]) == 0
    report = json.loads(capsys.readouterr().out)["rate_calibration"]
    assert report["target_bits_per_value"] == 2.0 and report["tries"][0][0] == 0.0
    assert main([*common, "--out", str(tmp_path / "b.ltc"), "--no-calibrate"]) == 0
    assert "rate_calibration" not in json.loads(capsys.readouterr().out)


def test_records_sharing_their_order_value_are_warned_about(tmp_path):
    from ltc_beam.data import load

    n = 300
    table = pa.table({"dev": np.repeat(["a", "b"], n // 2), "t": np.tile(np.arange(n // 2), 2), "v": np.arange(n, dtype=np.float32)})
    pq.write_table(table, tmp_path / "ok.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(str(tmp_path / "ok.parquet"), columns=["v"], key="dev", order_by="t")  # ties across devices only
    with pytest.warns(UserWarning, match="150 records share their series' 't' value"):
        load(str(tmp_path / "ok.parquet"), columns=["v"], order_by="t")  # without the key they tie
    pq.write_table(table.set_column(1, "t", pa.array(np.tile(np.arange(n // 2) // 2, 2))), tmp_path / "dup.parquet")
    with pytest.warns(UserWarning, match="150 records share"):
        data = load(str(tmp_path / "dup.parquet"), columns=["v"], key="dev", order_by="t")
    assert [len(s) for s in data.series] == [150, 150]
    codec = str(tmp_path / "v.ltc")
    ltc_beam.train(data.series, steps=5, progress=False, columns=["v"]).save(codec)
    for name, key, tied in (("ok", ["--key", "dev"], 0), ("ok", [], 150), ("dup", ["--key", "dev"], 150)):  # compress says it too
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["compress", str(tmp_path / f"{name}.parquet"), "--codec", codec, "--output", str(tmp_path / f"c{name}{tied}{len(key)}"),
                         "--columns", "v", "--order-by", "t", *key, "--quiet", "--no-embed-codec"]) == 0
        said = [str(w.message) for w in caught if "share their series' 't' value" in str(w.message)]
        assert said == ([f"{tied} records share their series' 't' value with the record before: their order among themselves "
                         "is the input's; a finer order column (or a key that separates the devices) codes them as the signal ran"]
                        if tied else [])
    gaps = table.set_column(1, "t", pa.array(np.where(np.arange(n) % 20 == 0, None, np.tile(np.arange(n // 2), 2))))
    pq.write_table(gaps, tmp_path / "gaps.parquet")  # 15 nulls: compress called 14 of them ties, and no more
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["compress", str(tmp_path / "gaps.parquet"), "--codec", codec, "--output", str(tmp_path / "cgaps"),
                     "--columns", "v", "--order-by", "t", "--key", "dev", "--quiet", "--no-embed-codec"]) == 0
    said = [str(w.message) for w in caught if "'t' value" in str(w.message)]
    assert said == ["15 records have no 't' value (null or NaN): they go last in their series, where windows read them as the signal's end"]


def test_a_directory_as_output_is_refused_before_training_and_leaves_nothing(tmp_path, capsys):
    """An object-store folder (a prefix holding objects) was trained for, then failed to save."""
    FolderObjectStore.root = str(tmp_path)
    path = tmp_path / "x.npy"
    np.save(path, correlated_series(300, 3, seed=1))
    target = tmp_path / "codecs"
    target.mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "old.ltc").write_bytes(b"x")
    codec = ltc_beam.train(correlated_series(300, 3, seed=1), steps=5, progress=False)
    for folder in (str(target), "memtest://store", "memtest://store/"):
        assert main(["train", str(path), "--out", folder, "--steps", "5"]) == 2
        err = capsys.readouterr().err
        assert "is a folder" in err and "training on" not in err and "Traceback" not in err
        with pytest.raises(IsADirectoryError, match="is a (directory|folder)"):
            codec.save(folder)
    assert os.listdir(target) == [] and sorted(os.listdir(tmp_path)) == ["codecs", "store", "x.npy"]
    assert os.listdir(tmp_path / "store") == ["old.ltc"]
    pq.write_table(pa.table({"a": [1.0]}), tmp_path / "data.parquet")
    before = {p: p.read_bytes() for p in (path, tmp_path / "data.parquet")}
    for option in ("--out", "--checkpoint"):  # the training data (or other data) was replaced, exit 0
        for data in before:
            out = ["--out", str(tmp_path / "c.ltc")] if option == "--checkpoint" else []
            assert main(["train", str(path), option, str(data), *out, "--steps", "5"]) == 2
            assert "is a data file (Parquet or .npy)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before


def test_verify_compares_float64_columns_as_stored(tmp_path, capsys):
    """A float64 meter reading near 2.5e7 moving by a few units: the verify error is measured
    against the stored float64 values, not against their float32 rounding (spacing 2)."""
    rng = np.random.default_rng(7)
    meter = 2.5e7 + np.cumsum(rng.uniform(0, 3, 3000))
    src = tmp_path / "meter.parquet"
    pq.write_table(pa.table({"energy": meter, "rate": rng.standard_normal(3000), "n": np.arange(3000)}), src)
    codec = tmp_path / "m.ltc"
    assert main(["train", str(src), "--out", str(codec), "--columns", "energy,rate", "--steps", "30", "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "c"
    assert main(["compress", str(src), "--codec", str(codec), "--columns", "energy,rate", "--output", str(out), "--verify", "--json"]) == 0
    summary = _summary(capsys)
    back = pa.concat_tables([ltc_beam.read_parquet(f) for f in sorted(glob.glob(str(out / "*.parquet")))]).sort_by("n")
    error = np.abs(back.column("energy").to_numpy() - meter)
    assert summary["max_abs_error"] == pytest.approx(max(error.max(), np.abs(back.column("rate").to_numpy() - pq.read_table(src).column("rate").to_numpy()).max()))
    assert summary["max_abs_error"] >= error.max() > 0.5  # float32 alone is 1 off here, at most


def test_a_damaged_or_foreign_file_in_a_directory_is_named(small, vec_codec, tmp_path, capsys):
    """pyarrow's "magic bytes not found" named no file (compress, decompress), and train and
    evaluate called a damaged file "schemas that do not combine"."""
    _, codec = vec_codec
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(small, source / "a.parquet")
    (source / "b.parquet").write_bytes((source / "a.parquet").read_bytes()[:-64])
    for command in (["train", "--out", str(tmp_path / "c.ltc"), "--quiet"], ["evaluate", "--codec", codec, "--json"],
                    ["compress", "--codec", codec, "--output", str(tmp_path / "o"), "--quiet"]):
        assert main([command[0], str(source), *command[1:], "--column", "values"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{source / 'b.parquet'}: not a readable Parquet file" in err[0], (command, err)
    (source / "b.parquet").unlink()  # a.parquet: plain data, not compressed
    assert main(["decompress", str(source), "--output", str(tmp_path / "d"), "--quiet"]) == 2
    assert f"{source / 'a.parquet'}: table has no 'ltc' metadata" in capsys.readouterr().err
    with pytest.raises(ltc_beam.errors.FormatError, match="a.parquet: table has no 'ltc' metadata"):
        ltc_beam.read_parquet(str(source))


def test_damaged_pages_inside_a_file_are_named(small, vec_codec, tmp_path, capsys):
    """Damaged data pages (footer intact) escaped compress as a bare OSError traceback that
    named no file ("ZSTD decompression failed")."""
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(small, source / "a.parquet", compression="zstd")
    data = bytearray((source / "a.parquet").read_bytes())
    data[100 : len(data) // 2] = b"\xff" * (len(data) // 2 - 100)
    (source / "a.parquet").write_bytes(bytes(data))
    assert main(["compress", str(source), "--codec", vec_codec[1], "--output", str(tmp_path / "o"), "--column", "values", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{source / 'a.parquet'}: not a readable Parquet file" in err[0], err


def test_store_errors_while_reading_stay_what_they_are():
    """Pages of a remote file are read in ranges during the job: a reset connection or a
    refused permission was reported as "not a readable Parquet file"."""
    from ltc_beam.errors import InputError
    from ltc_beam.parquet import naming_the_file

    for error in (ConnectionResetError(104, "Connection reset by peer"), PermissionError(13, "denied"), TimeoutError()):
        with pytest.raises(type(error)), naming_the_file("gs://b/x.parquet"):
            raise error
    for error in (OSError("Couldn't deserialize thrift"), pa.ArrowInvalid("Parquet magic bytes not found")):
        with pytest.raises(InputError, match="gs://b/x.parquet: not a readable Parquet file"), naming_the_file("gs://b/x.parquet"):
            raise error


def test_a_file_pyarrow_cannot_read_back_is_named(small, vec_codec, tmp_path, capsys):
    """A null entry of a fixed-size list column is written but not read back by pyarrow 25
    ("Expected all lists to be of size=8"): compress said so without naming the file."""
    values = small.column("values").to_pylist()
    values[5] = None
    table = small.set_column(small.schema.get_field_index("values"), "values", pa.array(values, small.schema.field("values").type))
    pq.write_table(table, tmp_path / "bad.parquet")
    assert main(["compress", str(tmp_path / "bad.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "o"),
                 "--column", "values", "--key", "device", "--order-by", "ts", "--quiet"]) == 2
    assert f"{tmp_path / 'bad.parquet'}: not a readable Parquet file" in capsys.readouterr().err


def test_files_with_different_columns_are_refused_naming_the_file(small, vec_codec, tmp_path, capsys):
    """A file lacking the value column read as nulls: "column 'values' has a null at row ..." (train,
    evaluate), and compress failed only inside the pipeline."""
    _, codec = vec_codec
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(small, source / "a.parquet")
    pq.write_table(small.drop_columns(["values"]).append_column("other", small.column("values")), source / "b.parquet")
    for command in (["train", "--out", str(tmp_path / "c.ltc"), "--quiet"], ["evaluate", "--codec", codec, "--json"],
                    ["compress", "--codec", codec, "--output", str(tmp_path / "o"), "--quiet"]):
        assert main([command[0], str(source), *command[1:], "--column", "values"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "b.parquet' lacks ['values'] and adds ['other']" in err[0], (command, err)


def test_column_options_on_a_npy_input_are_refused(vec_codec, tmp_path, capsys):
    """A .npy array has no named columns: --columns was silently ignored (train, evaluate) or
    failed inside the pipeline (compress)."""
    _, codec = vec_codec
    path = tmp_path / "x.npy"
    np.save(path, correlated_series(500, 8, seed=1).astype(np.float32))
    for command, option in ((["train", "--out", str(tmp_path / "c.ltc"), "--quiet"], ["--columns", "a,b"]),
                            (["evaluate", "--codec", codec, "--json"], ["--order-by", "t"]),
                            (["compress", "--codec", codec, "--output", str(tmp_path / "o"), "--quiet"], ["--column", "a"])):
        assert main([command[0], str(path), *command[1:], *option]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"ltc-beam {command[0]}: error: {path}: a .npy array has no named columns; drop {option[0]} "
                       "(rows are records in order)"], err


def test_a_failed_decompress_names_the_file_and_leaves_no_outputs(small, vec_codec, tmp_path, capsys):
    """A damaged payload in the last of three files failed the job with an error naming no
    file, and left the first two decoded files, which looked like a complete result."""
    _, codec = vec_codec
    pq.write_table(small, tmp_path / "in.parquet")
    comp = tmp_path / "c"
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", codec, "--output", str(comp), "--column", "values",
                 "--key", "device", "--order-by", "ts", "--num-shards", "3", "--quiet", "--json"]) == 0
    capsys.readouterr()
    last = sorted(comp.glob("*.parquet"))[-1]
    table = pq.read_table(last)
    payload = [bytes(b[:-8]) + bytes(x ^ 0x5A for x in b[-8:]) for b in table.column(arrow.PAYLOAD).to_pylist()]
    table = table.set_column(table.schema.get_field_index(arrow.PAYLOAD), arrow.PAYLOAD, pa.array(payload, pa.binary()))
    pq.write_table(table, last)
    (comp / "_ltc_run.json").unlink()  # it would refuse the rewritten file by its size (tests/test_cli.py -k keep_a_note)
    out = tmp_path / "d"
    assert main(["decompress", str(comp), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{last}: column 'ltc_payload', row 0" in err[0], err
    assert list(out.iterdir()) == []


def test_a_damaged_footer_with_its_magic_intact_is_named(small, tmp_path):
    """pyarrow raises OSError ("Couldn't deserialize thrift"), not ArrowInvalid, for a footer
    damaged inside intact magic bytes: it escaped the file naming."""
    from ltc_beam.errors import InputError
    from ltc_beam.parquet import open_parquet, read_table

    path = tmp_path / "b.parquet"
    pq.write_table(small, path)
    data = bytearray(path.read_bytes())
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[start + 2 : start + 30] = bytes(x ^ 0xFF for x in data[start + 2 : start + 30])
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="b.parquet: not a readable Parquet file"), open_parquet(str(path)):
        pass
    with pytest.raises(InputError, match="b.parquet: not a readable Parquet file"):
        read_table(str(path))
    with pytest.raises(FileNotFoundError), open_parquet(str(tmp_path / "missing.parquet")):  # a missing file stays what it is
        pass


def test_a_panel_trained_with_normalise_series_keeps_every_series_scale(tmp_path, capsys):
    """Long-format telemetry: one value column, devices of very different scales."""
    from tests.test_scaling import own_snr, panel

    def table(series):
        return pa.table({
            "device": np.repeat([f"d{i}" for i in range(len(series))], [len(s) for s in series]),
            "t": np.concatenate([np.arange(len(s)) for s in series]),
            "value": np.concatenate([s[:, 0] for s in series]),
        })

    train_series, test_series = panel(30, seed=7), panel(8, seed=8)
    pq.write_table(table(train_series), tmp_path / "train.parquet")
    pq.write_table(table(test_series), tmp_path / "test.parquet")
    codec = str(tmp_path / "panel.ltc")
    keys = ["--column", "value", "--key", "device", "--order-by", "t"]
    assert main(["train", str(tmp_path / "train.parquet"), "--out", codec, *keys, "--normalise", "series", "--steps", "150", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "test.parquet"), "--codec", codec, *keys, "--json", "--no-voronoi"]) == 0
    report = _summary(capsys)
    assert report["series"] == 8 and report["series_snr_db_min"] > 8
    assert main(["compress", str(tmp_path / "test.parquet"), "--codec", codec, "--output", str(tmp_path / "c"), "--key", "device",
                 "--order-by", "t", "--verify", "--json", "--quiet"]) == 0
    compressed = _summary(capsys)
    assert compressed["verify_records_equal"] and compressed["bits_per_value"] == pytest.approx(report["bits_per_value"], rel=0.02)
    assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "d"), "--quiet"]) == 0
    back = pq.read_table(str(tmp_path / "d")).sort_by([("device", "ascending"), ("t", "ascending")])
    decoded = back.column("value").to_numpy()
    at = 0
    for s in test_series:  # device names sort as d0..d7
        assert own_snr(s[:, :1], decoded[at : at + len(s), None]) > 8
        at += len(s)
    assert main(["compress", str(tmp_path / "test.parquet"), "--codec", codec, "--output", str(tmp_path / "r"),
                 "--layout", "record", "--quiet"]) == 2
    assert "--normalise series" in capsys.readouterr().err


def test_the_command_line_parses_without_importing_torch():
    """``ltc-beam --help`` took 1.2 s, nearly all of it importing torch through the package."""
    import subprocess
    import sys

    code = "import sys, ltc_beam.cli as c; c.build_parser().parse_args(['train', 'x', '--out', 'y']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_evaluate_codes_the_codec_columns_by_default_as_compress_does(tmp_path, capsys):
    """A file with more float columns than the codec's: evaluate failed with a bare shape
    error where compress picks the codec's columns."""
    x = correlated_series(600, 3, seed=5)
    src = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "year": np.arange(600.0)}), src)
    codec = str(tmp_path / "ab.ltc")
    assert main(["train", str(src), "--out", codec, "--columns", "a,b", "--steps", "20", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(src), "--codec", codec, "--json", "--no-voronoi"]) == 0
    assert _summary(capsys)["n_values"] == 1200
    for command in (["evaluate", "--no-voronoi"], ["compress", "--output", str(tmp_path / "out")]):  # compress said less
        assert main([command[0], str(src), "--codec", codec, "--columns", "a,b,year", *command[1:]]) == 2
        said = "are 3 values per record, the codec expects 2 (its columns: ['a', 'b']); name them with --column or --columns"
        assert said in capsys.readouterr().err


def test_a_pandas_files_range_index_travels_with_its_rows(small, vec_codec, tmp_path):
    """``df.to_parquet`` keeps a RangeIndex in the metadata only: decoded rows, sorted by key
    and order (or grouped by batch without them), were labelled 0, 1, … afresh, every
    label on another row. It is a column of the compressed data now, in Python too."""
    frame = small.drop_columns(["values"]).to_pandas().set_axis(pd.RangeIndex(100, 100 + 2 * small.num_rows, 2))
    frame["values"] = list(arrow.vectors(small, arrow.VectorSpec("values", None, 8)))
    frame.to_parquet(tmp_path / "in.parquet", row_group_size=700)
    opts = ["--column", "values", "--key", "device", "--order-by", "ts"]
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "c"), "--quiet", *opts]) == 0
    assert main(["decompress", str(tmp_path / "c"), "--output", str(tmp_path / "d"), "--quiet"]) == 0
    for back in (pd.read_parquet(tmp_path / "d"), ltc_beam.read_parquet(str(tmp_path / "c")).to_pandas()):
        assert len(back) == len(frame) and (back["seq"] == frame.loc[back.index, "seq"]).all()
    table = pa.Table.from_pandas(frame)  # the same metadata, in process
    back = arrow.decode_table(arrow.encode_table(table, vec_codec[0], column="values", key="device", order_by="ts")).to_pandas()
    assert (back["seq"] == frame.loc[back.index, "seq"]).all()
    halves = table.filter(pa.array(np.arange(len(frame)) % 2 == 1))  # a range of other rows: no labels made up
    assert arrow.PANDAS_INDEX not in arrow.decode_table(arrow.encode_table(halves, vec_codec[0], column="values")).column_names
    wide = tmp_path / "wide"  # files of float32 and float64 columns: compress gives the encoder their common schema
    wide.mkdir()
    frame.iloc[:1500].to_parquet(wide / "a.parquet")
    frame.iloc[1500:].astype({"temperature": np.float32}).to_parquet(wide / "b.parquet")
    assert main(["compress", str(wide), "--codec", vec_codec[1], "--output", str(tmp_path / "w"), "--quiet", *opts]) == 0
    back = ltc_beam.read_parquet(str(tmp_path / "w")).to_pandas()
    assert len(back) == len(frame) and (back["seq"] == frame.loc[back.index, "seq"]).all()


def test_verify_counts_a_nan_in_a_pass_through_float_column_as_identical(small, vec_codec, tmp_path, capsys):
    """In lists too (a list<double> with a NaN read as changed), and float16 columns, which
    Arrow cannot sort, do not fail it (a traceback after the files were written)."""
    temp = np.linspace(10.0, 20.0, small.num_rows)
    temp[::7] = np.nan
    table = small.append_column("temp", pa.array(temp)).append_column("pair", pa.array([[1.0, math.nan]] * small.num_rows))
    pq.write_table(table.append_column("half", pa.array(temp.astype(np.float16))), tmp_path / "in.parquet")
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "c"),
                 "--column", "values", "--key", "device", "--order-by", "ts", "--verify", "--json", "--quiet"]) == 0
    assert _summary(capsys)["verify_other_columns_identical"]


def test_verify_fails_where_a_pass_through_column_came_back_changed(small, vec_codec, tmp_path, capsys, monkeypatch):
    """It reported the difference and exited 0 (README: 1 when --verify found a difference)."""
    import ltc_beam.parquet

    pq.write_table(small, tmp_path / "in.parquet")
    decode = ltc_beam.parquet.read_parquet  # --verify's decoding, made to change one column
    monkeypatch.setattr(ltc_beam.parquet, "read_parquet", lambda *a, **k: (t := decode(*a, **k)).set_column(
        t.schema.get_field_index("seq"), "seq", pa.array(np.zeros(t.num_rows, np.int64))))
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "c"),
                 "--column", "values", "--key", "device", "--order-by", "ts", "--verify", "--json", "--quiet"]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["verify_columns_differing"] == ["seq"] and "pass-through columns ['seq'] did not come back" in out.err


def test_an_output_larger_than_its_input_through_the_embedded_codec_is_warned_about(small, vec_codec, tmp_path):
    pq.write_table(small.slice(0, 100), tmp_path / "in.parquet")
    for options, warned in (([], True), (["--no-embed-codec"], False)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["compress", str(tmp_path / "in.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / f"c{warned}"),
                         "--column", "values", "--quiet", *options]) == 0
        said = [str(w.message) for w in caught if "larger than the input" in str(w.message)]
        assert bool(said) == warned and all("--no-embed-codec" in m for m in said)
    # an output smaller than its input, whose codec copies still outweigh the data: warned too
    pq.write_table(small, tmp_path / "big.parquet", compression="none")
    with pytest.warns(UserWarning, match=r"^each of the 1 output file\(s\) embeds the codec \(\d+ bytes in all, against \d+ bytes"):
        assert main(["compress", str(tmp_path / "big.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "big"),
                     "--column", "values", "--quiet"]) == 0


def test_records_without_an_order_value_are_warned_about(tmp_path):
    from ltc_beam.data import load

    stamps = pa.array([3, 1, None, 2, 5], pa.timestamp("ns"))
    pq.write_table(pa.table({"t": stamps, "f": [3.0, 1.0, np.nan, 2.0, 5.0], "v": np.arange(5.0)}), tmp_path / "gaps.parquet")
    for order_by in ("t", "f"):
        with pytest.warns(UserWarning, match=f"1 records have no '{order_by}' value"):
            data = load(str(tmp_path / "gaps.parquet"), columns=["v"], order_by=order_by)
        assert data.series[0][:, 0].tolist() == [1.0, 3.0, 0.0, 4.0, 2.0]  # last in the series


def test_nan_keys_are_one_series_as_null_keys_are(tmp_path):
    from ltc_beam.data import load

    for missing in (np.nan, None):
        keys = pa.array([1.5, missing, 2.5, missing, missing], pa.float64())
        assert keys.null_count == (missing is None) * 3
        pq.write_table(pa.table({"k": keys, "t": [5, 4, 3, 2, 1], "v": np.arange(5.0)}), tmp_path / "keys.parquet")
        data = load(str(tmp_path / "keys.parquet"), columns=["v"], key="k", order_by="t")
        assert [s[:, 0].tolist() for s in data.series] == [[4.0, 3.0, 1.0], [2.0], [0.0]]  # each NaN was a series of its own


def test_text_order_values_that_do_not_sort_as_time_are_warned_about(tmp_path):
    """Dates as text ("Jan 1 2000") sort as text, silently: windows then read that order."""
    from ltc_beam.data import load

    for texts, warned in ((["Jan 1 2000", "Feb 1 2000", "Mar 1 2000", "Apr 1 2000"], True),
                          (["2000-01-01", "2000-02-01", "2000-03-01T10:00:00Z", "2000-04-01 10:00"], False),
                          (["1970 Q1", "1970 Q2", "1970 Q3", "1970 Q4"], False),  # one width, the year first: sorts as time
                          (["01/31/2000", "02/01/2000", "02/02/2000", "03/01/2000"], True),
                          (["2000-1-5", "2000-1-10", "2000-2-1", "2000-2-20"], True),
                          (["2000 Jan", "2000 Feb", "2000 Mar", "2000 Apr"], True),
                          (["12311999", "01012000", "01022000", "02012000"], True)):
        pq.write_table(pa.table({"d": texts, "v": np.arange(4.0)}), tmp_path / "text.parquet")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load(str(tmp_path / "text.parquet"), columns=["v"], order_by="d")
        said = [str(w.message) for w in caught if "holds text" in str(w.message)]
        assert bool(said) == warned, texts
        assert not said or f"({texts[0]!r})" in said[0]
    pq.write_table(pa.table({"d": ["Jan 1 2000", "Feb 1 2000"] * 50, "v": np.arange(100.0)}), tmp_path / "text.parquet")
    codec = ltc_beam.train(np.random.default_rng(0).standard_normal((300, 1)), steps=5, progress=False, calibrate=False)
    codec.save(str(tmp_path / "c.ltc"))
    with pytest.warns(UserWarning, match=r"holds text \('Jan 1 2000'\)"):
        assert main(["compress", str(tmp_path / "text.parquet"), "--codec", str(tmp_path / "c.ltc"), "--output",
                     str(tmp_path / "out"), "--columns", "v", "--order-by", "d", "--quiet"]) == 0


def test_a_directory_is_read_with_its_subdirectories_everywhere(small, vec_codec, tmp_path, capsys):
    """Every command takes the same files from a directory: each ``*.parquet`` under it,
    subdirectories included, hidden and underscore names left out (the Beam read took the
    top level only: 300 of 400 records were lost from Python, the CLI failed late)."""
    _, codec = vec_codec
    src = tmp_path / "in"
    (src / "2024" / "01").mkdir(parents=True)
    (src / "_temporary").mkdir()
    half = small.num_rows // 2
    pq.write_table(small.slice(0, half), src / "top.parquet")
    pq.write_table(small.slice(half), src / "2024" / "01" / "jan.parquet")
    pq.write_table(small.slice(0, 5), src / "_temporary" / "attempt.parquet")  # a writer's leftovers: not input
    (src / "_SUCCESS").write_bytes(b"")
    (src / "README.txt").write_text("not Parquet")
    opts = ["--column", "values", "--key", "device", "--order-by", "ts"]
    assert main(["evaluate", str(src), "--codec", codec, "--json", "--no-voronoi"] + opts) == 0
    assert _summary(capsys)["n_values"] == small.num_rows * 8
    comp = tmp_path / "c"
    assert main(["compress", str(src), "--codec", codec, "--output", str(comp), "--verify", "--json", "--num-shards", "2"] + opts) == 0
    s = _summary(capsys)
    assert s["records_in"] == s["records_out"] == small.num_rows and s["verify_records_equal"]
    nested = tmp_path / "archive" / "day=1"  # compressed files moved under a subdirectory
    os.makedirs(nested)
    for f in glob.glob(str(comp / "*.parquet")):
        os.rename(f, nested / os.path.basename(f))
    assert ltc_beam.read_parquet(str(tmp_path / "archive")).num_rows == small.num_rows
    assert main(["decompress", str(tmp_path / "archive"), "--output", str(tmp_path / "d"), "--json"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows


def test_a_run_whose_records_do_not_add_up_leaves_no_output(small, vec_codec, tmp_path, capsys, monkeypatch):
    """The last check of ``compress`` (records out + dead letters = records in) fails the run
    and removes its files, as any failed run does."""
    from ltc_beam import pipeline_cli

    real = pipeline_cli.compress

    def losing_one(args, beam_args):
        summary = real(args, beam_args)
        return {**summary, "records_out": summary["records_out"] - 1}

    monkeypatch.setattr(pipeline_cli, "compress", losing_one)
    pq.write_table(small, tmp_path / "in.parquet")
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", vec_codec[1], "--output", str(tmp_path / "c"),
                 "--column", "values", "--quiet"]) == 1
    assert "records out do not match records in" in capsys.readouterr().err
    assert os.listdir(tmp_path / "c") == []


def test_number_columns_left_out_of_the_coded_ones_are_named(tmp_path):
    """Wine's two integer columns were left out of the values silently ("11 values")."""
    from ltc_beam.data import load

    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"a": rng.normal(size=50), "n": np.arange(50), "b": rng.normal(size=50), "t": np.arange(50)}),
                   tmp_path / "mixed.parquet")
    with pytest.warns(UserWarning, match=r"the number columns \['n'\] are not") as caught:
        data = load(str(tmp_path / "mixed.parquet"), order_by="t")
    assert data.columns == ["a", "b"] and len(caught) == 1


def test_hive_partition_directories_become_columns(small, vec_codec, tmp_path, capsys):
    """Partition values live in the directory names (device=…/day=…), not in the files: read
    file by file they were lost (--key device "not found"; without a key, devices merged)."""
    import pyarrow.dataset as ds

    _, codec = vec_codec
    table = small.append_column("day", pa.array(np.where(np.arange(small.num_rows) % 3 == 0, 20240101, 20240102)))
    ds.write_dataset(table, tmp_path / "in", format="parquet", partitioning=["device", "day"], partitioning_flavor="hive")
    expected = ds.dataset(tmp_path / "in", partitioning="hive").to_table()
    assert "device" not in pq.read_table(glob.glob(str(tmp_path / "in" / "**" / "*.parquet"), recursive=True)[0]).column_names
    opts = ["--column", "values", "--key", "device", "--order-by", "ts"]
    assert main(["evaluate", str(tmp_path / "in"), "--codec", codec, "--json", "--no-voronoi"] + opts) == 0
    assert _summary(capsys)["series"] == len(set(small.column("device").to_pylist()))
    assert main(["compress", str(tmp_path / "in"), "--codec", codec, "--output", str(tmp_path / "c"), "--verify", "--json"] + opts) == 0
    s = _summary(capsys)
    assert s["records_out"] == small.num_rows and s["verify_records_equal"] and s["verify_other_columns_identical"]
    decoded = ltc_beam.read_parquet(str(tmp_path / "c"))
    assert decoded.schema.field("device").type == pa.string() and decoded.schema.field("day").type == pa.int32()
    keys = [("device", "ascending"), ("ts", "ascending")]
    assert decoded.select(["device", "ts", "day"]).sort_by(keys).equals(expected.select(["device", "ts", "day"]).sort_by(keys))
    with warnings.catch_warnings():  # ordered by a partition column (its first file lacks it: an IndexError)
        warnings.simplefilter("ignore")
        assert main(["compress", str(tmp_path / "in"), "--codec", codec, "--output", str(tmp_path / "c2"), "--column", "values",
                     "--order-by", "day", "--quiet"]) == 0


def test_an_archive_compressed_folder_by_folder_keeps_its_partition_columns(small, vec_codec, tmp_path, capsys):
    """Days compressed one by one into arch/day=N decoded without ``day`` (the raw tree read
    with it): decoded files and ``read_parquet`` now get the partition columns they lack."""
    import pyarrow.dataset as ds

    _, codec = vec_codec
    table = small.append_column("day", pa.array(np.arange(small.num_rows) % 2 + 1, pa.int32()))
    ds.write_dataset(table, tmp_path / "raw", format="parquet", partitioning=["day"], partitioning_flavor="hive")
    for day in (1, 2):
        assert main(["compress", str(tmp_path / "raw" / f"day={day}"), "--codec", codec, "--output",
                     str(tmp_path / "arch" / f"day={day}"), "--column", "values", "--quiet"]) == 0
    keys = [("device", "ascending"), ("ts", "ascending")]
    expected = ds.dataset(tmp_path / "raw", partitioning="hive").to_table().select(["device", "ts", "day"]).sort_by(keys)
    assert ltc_beam.read_parquet(str(tmp_path / "arch")).select(["device", "ts", "day"]).sort_by(keys).equals(expected)
    for name, shards in (("d", []), ("d3", ["--num-shards", "3"])):
        assert main(["decompress", str(tmp_path / "arch"), "--output", str(tmp_path / name), "--quiet"] + shards) == 0
        decoded = pa.concat_tables(pq.read_table(f) for f in sorted(glob.glob(str(tmp_path / name / "*.parquet"))))
        assert decoded.select(["device", "ts", "day"]).sort_by(keys).equals(expected)


def test_hive_partition_values_are_typed_as_pyarrow_reads_them(tmp_path):
    from ltc_beam.partitions import base_of, discover

    files = [f"{tmp_path}/in/site=a%2Fb/n=7/big=5000000000/x.parquet", f"{tmp_path}/in/site=__HIVE_DEFAULT_PARTITION__/n=-2/big=1/y.parquet"]
    found = discover(f"{tmp_path}/in/", files)
    assert found.types == {"site": pa.string(), "n": pa.int32(), "big": pa.string()}  # beyond int32: text, as pyarrow reads it
    first, second = (found.add(pa.table({"v": [1.0, 2.0]}), f) for f in files)
    assert first.column("site").to_pylist() == ["a/b"] * 2 and first.column("big").to_pylist() == ["5000000000"] * 2
    assert second.column_names == ["v", "site", "n", "big"] and second.column("n").to_pylist() == [-2, -2]
    assert second.column("site").null_count == 2
    assert base_of(f"{tmp_path}/in/*/n=*/**/*.parquet") == f"{tmp_path}/in/" and not discover(files[0], files[:1])
    for padded in ("007", "+5", "-0"):  # pyarrow reads 7, 5, 0: the folder's name would not survive
        found = discover(f"{tmp_path}/in", [f"{tmp_path}/in/site={padded}/x.parquet", f"{tmp_path}/in/site=12/y.parquet"])
        assert found.types == {"site": pa.string()}
        assert found.add(pa.table({"v": [1.0]}), f"{tmp_path}/in/site={padded}/x.parquet").column("site").to_pylist() == [padded]
    assert discover(f"{tmp_path}/in", [f"{tmp_path}/in/site=0/x.parquet", f"{tmp_path}/in/site=-12/y.parquet"]).types == {"site": pa.int32()}


def test_evaluate_measures_the_record_layout_as_compress_writes_it(small, vec_codec, tmp_path, capsys):
    """evaluate knew the chunk layout only: a vector-mode codec read 2.17 bits/value there
    and paid 4.75 in the record layout (one bitstream per record)."""
    _, codec = vec_codec
    pq.write_table(small, tmp_path / "in.parquet")
    opts = ["--column", "values", "--key", "device", "--order-by", "ts", "--json"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["evaluate", str(tmp_path / "in.parquet"), "--codec", codec, "--no-voronoi", "--layout", "record"] + opts) == 0
    record = _summary(capsys)
    assert not [w for w in caught if "structure differs" in str(w.message)]  # each record's coder flush is not the data's
    assert main(["evaluate", str(tmp_path / "in.parquet"), "--codec", codec, "--no-voronoi"] + opts) == 0
    chunk = _summary(capsys)
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", codec, "--output", str(tmp_path / "c"), "--layout", "record",
                 "--verify"] + opts) == 0
    written = _summary(capsys)
    assert record["streams"] == small.num_rows and record["bits_per_value"] > chunk["bits_per_value"] + 0.5
    assert record["bits_per_value"] == pytest.approx(written["bits_per_value"])
    assert record["snr_db"] == pytest.approx(written["snr_db"], abs=0.01)


def test_an_object_store_folder_is_listed_with_or_without_its_slash(small, vec_codec, tmp_path):
    """gs://bucket/dir matched no object of that name, so nothing was found; a folder's
    files under every prefix are read, writers' leftovers left out, Hive values as columns."""
    from ltc_beam.parquet import input_partitions, list_files

    codec, _ = vec_codec
    FolderObjectStore.root = str(tmp_path)
    for part in ("day=1", "day=2", "_temporary"):
        os.makedirs(tmp_path / "bucket" / "in" / part)
        ltc_beam.parquet.write_parquet(small, tmp_path / "bucket" / "in" / part / "x.parquet", codec, column="values", key="device")
    wanted = ["memtest://bucket/in/day=1/x.parquet", "memtest://bucket/in/day=2/x.parquet"]
    assert list_files("memtest://bucket/in/") == list_files("memtest://bucket/in") == wanted
    assert input_partitions("memtest://bucket/in", wanted).types == {"day": pa.int32()}
    assert ltc_beam.read_parquet("memtest://bucket/in").num_rows == 2 * small.num_rows


def test_an_object_store_glob_matches_as_a_local_one(tmp_path):
    """Beam's ``DIR/**/*.parquet`` needs a folder between (the files in DIR itself were
    dropped silently), and its wildcards matched hidden files (``.x.parquet.crc``, a stale
    ``.copy.parquet``) that Python's glob leaves out locally."""
    from ltc_beam.parquet import list_files

    FolderObjectStore.root = str(tmp_path / "store")
    for base in (tmp_path / "store" / "b", tmp_path / "local" / "b"):
        os.makedirs(base / "in" / "sub")
        os.makedirs(base / "in" / ".hidden")
        for name in ("in/top.parquet", "in/sub/nested.parquet", "in/.copy.parquet", "in/.top.parquet.crc", "in/.hidden/x.parquet"):
            (base / name).write_bytes(b"x")
    for pattern in ("b/in/**/*.parquet", "b/in/*", "b/in/*.parquet", "b/in/**", "b/in/.hidden/*", "b/in/.*",
                    "b/in/**/.hidden/*", "b/in/**/**/*.parquet"):
        local = [os.path.relpath(f, tmp_path / "local") for f in list_files(str(tmp_path / "local" / pattern))]
        assert [f.removeprefix("memtest://") for f in list_files("memtest://" + pattern)] == local, pattern
    assert len(list_files("memtest://b/in/**/*.parquet")) == len(list_files(str(tmp_path / "local" / "b/in/**/**/*.parquet"))) == 2


def test_a_npy_input_on_an_object_store_reads_as_a_local_one(tmp_path, capsys):
    """train, evaluate and compress failed on a remote .npy ("No such file or directory":
    np.load and os.path.getsize on the URI)."""
    FolderObjectStore.root = str(tmp_path)
    np.save(tmp_path / "x.npy", correlated_series(1500, 4, seed=9).astype(np.float32))
    assert main(["train", "memtest://x.npy", "--out", "memtest://c.ltc", "--steps", "20", "--lattice", "e8", "--quiet"]) == 0
    said = []
    for source in ("memtest://x.npy", str(tmp_path / "x.npy")):
        assert main(["evaluate", source, "--codec", str(tmp_path / "c.ltc"), "--json", "--no-voronoi"]) == 0
        said.append({k: v for k, v in _summary(capsys).items() if k != "seconds"})
        assert main(["compress", source, "--codec", str(tmp_path / "c.ltc"), "--output", str(tmp_path / "o"), "--json"]) == 0
        said.append({k: v for k, v in _summary(capsys).items() if k not in ("seconds", "records_per_second", "metrics")})
    assert said[:2] == said[2:]


def test_a_codec_rewritten_to_the_same_object_is_read_again(vec_codec, block_codec, tmp_path):
    """The codec cache keyed a remote URI by its name alone: compress named the codec read
    first, and decoding with the new one failed with a codec mismatch."""
    FolderObjectStore.root = str(tmp_path)
    for codec, _ in (vec_codec, block_codec):
        codec.save("memtest://c.ltc")
        assert arrow.load_codec("memtest://c.ltc").id == codec.id


def test_an_object_store_output_folder_may_hold_glob_characters(small, vec_codec, tmp_path, capsys):
    """``run[1]`` was listed as a pattern: no files found, "records out do not match" and exit 1."""
    FolderObjectStore.root = str(tmp_path)
    pq.write_table(small, tmp_path / "in.parquet")
    assert main(["compress", "memtest://in.parquet", "--codec", vec_codec[1], "--output", "memtest://run[1]",
                 "--column", "values", "--json", "--quiet"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows
    assert sorted(os.listdir(tmp_path / "run[1]")) == ["_ltc_run.json", "part-00000-of-00001.parquet"]
    with warnings.catch_warnings():  # read back as named, not as a pattern ("no Parquet files found")
        warnings.simplefilter("error")
        assert main(["decompress", "memtest://run[1]", "--output", "memtest://back[1]/", "--json", "--quiet"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows


def test_output_folders_named_as_uris_hold_the_files(small, vec_codec, tmp_path, monkeypatch, capsys):
    """From Python, an existing object-store folder named without its ``/`` got its files
    beside it (``out-00000-of-…``); a ``file://`` --output was written beside its folder,
    counted 0 records out, exited 1 and made a ``./file:`` tree in the working directory."""
    from ltc_beam.beam.io import output_prefix

    FolderObjectStore.root = str(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README").write_bytes(b"x")
    assert output_prefix("memtest://out") == output_prefix("memtest://out/") == "memtest://out/part"
    assert output_prefix("memtest://new") == "memtest://new"  # no folder there: a prefix, as locally
    assert output_prefix(f"file://{tmp_path}/out") == str(tmp_path / "out" / "part")
    monkeypatch.chdir(tmp_path / "out")
    pq.write_table(small, tmp_path / "in.parquet")
    assert main(["compress", f"file://{tmp_path}/in.parquet", "--codec", vec_codec[1], "--output", f"file://{tmp_path}/c",
                 "--column", "values", "--json", "--quiet"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows
    assert sorted(os.listdir(tmp_path / "c")) == ["_ltc_run.json", "part-00000-of-00001.parquet"] and os.listdir(".") == ["README"]


def test_object_store_writes_and_reads_fail_as_local_ones(tmp_path, monkeypatch):
    """A failed write left its partial object under the final name (stores commit on close);
    a missing object surfaced as the store client's own error (Google Cloud Storage raises
    ``NotFound``, not an OSError), a traceback from the CLI."""
    from ltc_beam.storage import open_for_write, read_bytes

    FolderObjectStore.root = str(tmp_path)
    with pytest.raises(RuntimeError, match="half way"), open_for_write("memtest://x.bin") as handle:
        handle.write(b"half")
        raise RuntimeError("half way")
    assert os.listdir(tmp_path) == []

    class NotFound(Exception):
        pass

    def open_like_gcs(self, path, mime_type=None, compression_type=None):
        if not os.path.exists(self.local(path)):
            raise NotFound(path)
        return open(self.local(path), "rb")

    monkeypatch.setattr(FolderObjectStore, "open", open_like_gcs)
    with pytest.raises(FileNotFoundError, match="memtest://missing.ltc"):
        read_bytes("memtest://missing.ltc")
    with pytest.raises(FileNotFoundError):
        ltc_beam.Codec.load("memtest://missing.ltc")


def test_open_parquet_fetches_only_what_is_read_and_closes_the_file(tmp_path):
    """The CLI counted the records of remote input files by downloading every byte of each,
    and kept a descriptor open per local file (past 1,024 files: "Too many open files");
    workers held each remote input file whole in memory."""
    from ltc_beam.parquet import open_parquet

    FolderObjectStore.root = str(tmp_path)
    pq.write_table(pa.table({"x": np.random.default_rng(0).normal(size=200_000)}), tmp_path / "big.parquet")
    size = os.path.getsize(tmp_path / "big.parquet")
    FolderObjectStore.bytes_read = 0
    with open_parquet("memtest://big.parquet") as footer:
        assert (footer.metadata.num_rows, footer.schema_arrow.names) == (200_000, ["x"])
    assert 0 < FolderObjectStore.bytes_read < size // 20
    descriptors = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        with open_parquet(str(tmp_path / "big.parquet")) as footer:
            assert footer.metadata.num_rows == 200_000
    assert len(os.listdir("/proc/self/fd")) == descriptors


def test_compress_and_decompress_write_to_an_object_store_folder(small, vec_codec, tmp_path, capsys):
    """An object-store --output (as docs/deployment.md shows) failed after the job: the CLI
    listed and measured its output with local calls, and files were named ``out/-00000-…``.
    A rerun replaces the previous run's files there, as it does in a local directory."""
    FolderObjectStore.root = str(tmp_path)
    os.makedirs(tmp_path / "bucket" / "in")
    pq.write_table(small, tmp_path / "bucket" / "in" / "x.parquet")
    compress = ["compress", "memtest://bucket/in/", "--codec", vec_codec[1], "--column", "values", "--key", "device", "--json"]
    for shards in ("2", "1"):
        assert main(compress + ["--output", "memtest://bucket/out", "--num-shards", shards, "--verify"]) == 0
        summary = _summary(capsys)
        written = sorted(os.listdir(tmp_path / "bucket" / "out"))
        assert written.pop(0) == "_ltc_run.json"  # the run's note, written through the store too
        assert written == [f"part-{i:05d}-of-0000{shards}.parquet" for i in range(int(shards))]
        assert summary["output_bytes"] == sum(os.path.getsize(tmp_path / "bucket" / "out" / f) for f in written)
        assert (summary["records_out"], summary["verify_records_equal"]) == (small.num_rows, True)
    assert main(["decompress", "memtest://bucket/out/", "--output", "memtest://bucket/back", "--json"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows
    assert main(["decompress", str(tmp_path / "bucket" / "out"), "--output", str(tmp_path / "local"), "--json"]) == 0
    capsys.readouterr()
    written = [(tmp_path / place / "part-00000-of-00001.parquet").read_bytes() for place in ("bucket/back", "local")]
    assert written[0] == written[1]
    assert main(compress + ["--output", "memtest://bucket/"]) == 2  # holds the input
    assert "holds input file" in capsys.readouterr().err


def test_a_command_that_reads_an_object_store_file_last_exits_cleanly(vec_codec, tmp_path):
    """A command whose last step read a Parquet file through a Python stream (an object
    store) aborted after its work in up to half of the runs (exit 134, "terminate called
    without an active exception": pyarrow's threads releasing the file's pages during the
    interpreter's teardown). Here: an evaluate that reads the input, then refuses it."""
    import subprocess
    import sys

    pq.write_table(pa.table({name: np.arange(50.0) for name in "abc"}), tmp_path / "x.parquet")
    store = "import sys; from tests.object_store import FolderObjectStore; FolderObjectStore.root = sys.argv[1]; "
    evaluate = store + "from ltc_beam.cli import run; run(['evaluate', 'memtest://x.parquet', '--codec', sys.argv[2]])"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _ in range(8):
        done = subprocess.run([sys.executable, "-c", evaluate, str(tmp_path), vec_codec[1]], cwd=root, capture_output=True, text=True)
        assert (done.returncode, "the codec expects 8" in done.stderr) == (2, True), done.stderr[-500:]


def test_named_integer_columns_are_coded_and_decode_to_integers(tmp_path, capsys):
    """ADC counts and other integer telemetry were refused ("cast it to float32") in every
    command; named, they are coded, and decode to the nearest integer of their type."""
    walk = np.cumsum(np.random.default_rng(3).normal(0, 40, (3000, 3)), axis=0)
    table = pa.table({"t": np.arange(3000), "a": walk[:, 0].astype(np.int32), "b": walk[:, 1].astype(np.int16),
                      "c": walk[:, 2].astype(np.int64)})
    pq.write_table(table, tmp_path / "counts.parquet")
    codec = str(tmp_path / "counts.ltc")
    assert main(["train", str(tmp_path / "counts.parquet"), "--out", codec, "--order-by", "t", "--steps", "30", "--quiet"]) == 2
    assert "integer columns ['a', 'b', 'c'] are coded only where named" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "counts.parquet"), "--out", codec, "--columns", "a,b,c", "--order-by", "t",
                 "--steps", "30", "--target-bits-per-value", "4", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compress", str(tmp_path / "counts.parquet"), "--codec", codec, "--order-by", "t",
                 "--output", str(tmp_path / "c"), "--verify", "--json", "--no-embed-codec"]) == 0
    summary = _summary(capsys)
    assert summary["verify_records_equal"] and summary["snr_db"] > 15
    assert main(["evaluate", str(tmp_path / "counts.parquet"), "--codec", codec, "--order-by", "t", "--json", "--no-voronoi"]) == 0
    assert _summary(capsys)["snr_db"] == pytest.approx(summary["snr_db"], abs=1e-6)  # of the rounded values, as written
    compressed = pq.read_schema(glob.glob(str(tmp_path / "c" / "*.parquet"))[0])
    assert arrow.table_info(compressed).format_version == 3  # readers before it decoded floats into the integer column
    assert main(["decompress", str(tmp_path / "c"), "--codec", codec, "--output", str(tmp_path / "d"), "--quiet"]) == 0
    back = pq.read_table(glob.glob(str(tmp_path / "d" / "*.parquet"))[0]).sort_by("t")
    assert back.schema == table.schema
    for name in "abc":
        x = table.column(name).to_numpy().astype(np.float64)
        error = back.column(name).to_numpy() - x
        assert np.abs(error).max() > 0 and 10 * np.log10(x.var() / np.mean(error**2)) > 15
    np.save(tmp_path / "counts.npy", walk.astype(np.int16))
    assert main(["compress", str(tmp_path / "counts.npy"), "--codec", codec, "--output", str(tmp_path / "n"), "--quiet",
                 "--no-embed-codec"]) == 0
    assert main(["decompress", str(tmp_path / "n"), "--codec", codec, "--output", str(tmp_path / "n.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "n.npy").dtype == np.int16


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_reader_gone_before_the_output_is_flushed_exits_120_without_a_traceback(unbuffered):
    """``ltc-beam … | head``: the exit's flush raised BrokenPipeError out of run(), which
    then went through the interpreter's teardown after all (exit 120 with a traceback).
    Unbuffered (PYTHONUNBUFFERED=1, as in many container images) print() itself raised it:
    exit 1 with a traceback. A broken pipe of another kind is still an error."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for main, want in (("print('x' * 1000) or 0", 120), ("(_ for _ in ()).throw(BrokenPipeError('a socket'))", 1)):
        code = f"import ltc_beam.cli as c; c.main = lambda argv=None: {main}; c.run([])"
        with subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            if want == 120:
                proc.stdout.close()  # the reader is gone before anything is flushed
            stderr = proc.stderr.read().decode()
        assert (proc.returncode, "Traceback" in stderr) == (want, want == 1), stderr[-500:]


def test_dead_letter_paths_whose_writing_would_destroy_data_are_refused(small, vec_codec, tmp_path, capsys):
    """Beam's text sink replaces whatever the path matches: the input came back empty, the
    output folder or any folder was deleted whole, ``dl*`` deleted every match."""
    _, codec = vec_codec
    vals = small.column("values").to_pylist()
    vals[5] = vals[5][:3]
    src = tmp_path / "bad.parquet"
    pq.write_table(small.set_column(small.schema.get_field_index("values"), "values", pa.array(vals, pa.list_(pa.float32()))), src)
    other, folder = tmp_path / "other.parquet", tmp_path / "folder"
    pq.write_table(small.slice(0, 3), other)
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    out = tmp_path / "c"
    opts = ["--codec", codec, "--output", str(out), "--column", "values", "--key", "device", "--order-by", "ts", "--json", "--quiet"]
    sizes = {p: os.path.getsize(p) for p in (src, other, codec)}
    for path, why in ((src, "is an input file"), (codec, "is the codec"), (folder, "is a directory"), (tmp_path, "is a directory"),
                      (out, "lies in the output directory"), (out / "dl.json", "lies in the output directory"),
                      (tmp_path / "dl*", "wildcard"), (f"{tmp_path}/new/", "is a directory"), (other, "exists and is not an earlier dead-letter file")):
        assert main(["compress", str(src), "--dead-letter", str(path), *opts]) == 2, path
        assert why in capsys.readouterr().err
    assert {p: os.path.getsize(p) for p in sizes} == sizes and (folder / "keep.txt").read_text() == "kept"
    dead = tmp_path / "dead.jsonl"
    for _ in range(2):  # an earlier dead-letter file is replaced; the count is the file's
        assert main(["compress", str(src), "--dead-letter", str(dead), *opts]) == 0
        s = _summary(capsys)
        assert s["records_out"] == small.num_rows - 1 and s["dead_letters"] == 1 == len(dead.read_text().splitlines())


def test_output_folders_keep_a_note_that_readers_check(small, vec_codec, tmp_path, capsys):
    """A run replaces only what a run wrote; a folder whose run did not finish, or that lost
    or changed a file since, is refused by every reader (a killed compress left 1 of 8 files
    that decompressed to an eighth of the records, exit 0)."""
    from ltc_beam.run_marker import NOTE, RUNNING, write_note

    _, codec = vec_codec
    src = tmp_path / "in.parquet"
    pq.write_table(small, src)
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(small, raw / "part-00000-of-00001.parquet")  # Beam's own names, another tool's data
    raw_bytes = (raw / "part-00000-of-00001.parquet").read_bytes()
    opts = ["--codec", codec, "--column", "values", "--key", "device", "--order-by", "ts", "--json", "--quiet", "--num-shards", "2"]
    comp = tmp_path / "c"
    assert main(["compress", str(src), "--output", str(comp), *opts]) == 0
    note = json.loads((comp / NOTE).read_text())
    assert note["state"] == "complete" and note["records"] == small.num_rows and len(note["files"]) == 2
    assert sorted(note["files"]) == sorted(n for n in os.listdir(comp) if n.endswith(".parquet"))
    assert main(["decompress", str(comp), "--output", str(raw), "--quiet"]) == 2
    assert "no ltc-beam run wrote there" in capsys.readouterr().err
    assert (raw / "part-00000-of-00001.parquet").read_bytes() == raw_bytes
    assert main(["decompress", str(comp), "--output", str(tmp_path / "d"), "--quiet", "--json"]) == 0
    assert json.loads((tmp_path / "d" / NOTE).read_text())["records"] == small.num_rows
    assert len(ltc_beam.parquet.list_files(str(tmp_path / "d"))) == 2  # the note is no input
    assert pq.read_table(tmp_path / "d").num_rows == small.num_rows  # nor for pyarrow
    first = sorted(comp.glob("part-*.parquet"))[0]
    first.write_bytes(first.read_bytes() + b"x")
    assert main(["decompress", str(comp), "--output", str(tmp_path / "d"), "--quiet"]) == 2
    assert f"has {first.stat().st_size} bytes where ltc-beam compress wrote" in capsys.readouterr().err
    first.unlink()
    with pytest.raises(ltc_beam.errors.InputError, match="is missing"):
        ltc_beam.read_parquet(str(comp))
    write_note(str(comp), "compress", RUNNING)  # killed before it finished
    for command in (["decompress", str(comp), "--output", str(tmp_path / "d")], ["evaluate", str(comp), "--codec", codec]):
        assert main(command + ["--quiet"] * (command[0] == "decompress")) == 2
        assert "did not finish" in capsys.readouterr().err
    assert main(["compress", str(src), "--output", str(comp), *opts]) == 0  # its own output: replaced
    assert main(["decompress", str(comp), "--output", str(tmp_path / "d"), "--quiet", "--json"]) == 0
    assert _summary(capsys)["records_out"] == small.num_rows


def test_a_run_keeps_the_earlier_output_until_it_completes(small, vec_codec, tmp_path, capsys):
    """A re-run that fails puts the earlier complete archive back (it was removed before the
    run: a bad record in the new input left an empty folder), and no command replaces the
    other's output (a decompress into an archive's folder replaced the archive)."""
    from ltc_beam import pipeline_cli
    from ltc_beam.run_marker import NOTE

    _, codec = vec_codec
    src, bad = tmp_path / "in.parquet", tmp_path / "bad.parquet"
    pq.write_table(small, src)
    values = small.column("values").to_pylist()
    values[7] = values[7][:-1]  # a record one value short: the job fails
    pq.write_table(small.set_column(small.schema.get_field_index("values"), "values", pa.array(values)), bad)
    opts = ["--codec", codec, "--column", "values", "--key", "device", "--order-by", "ts", "--json", "--quiet"]
    comp = tmp_path / "c"
    assert main(["compress", str(src), "--output", str(comp), *opts, "--num-shards", "2"]) == 0
    before = {p.name: p.read_bytes() for p in comp.iterdir()}
    assert main(["compress", str(bad), "--output", str(comp), *opts]) == 2
    assert "vector has" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in comp.iterdir()} == before
    assert main(["decompress", str(comp), "--output", str(tmp_path / "d"), "--quiet"]) == 0
    assert main(["compress", str(src), "--output", str(tmp_path / "c2"), *opts]) == 0
    capsys.readouterr()
    for args in (["decompress", str(tmp_path / "c2"), "--output", str(comp), "--quiet"],  # a typo: the other archive
                 ["compress", str(src), "--output", str(tmp_path / "d"), *opts]):
        assert main(args) == 2
        assert "holds the output of an ltc-beam" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in comp.iterdir()} == before
    pipeline_cli._prepare_output(str(comp), str(src), [str(src)], "compress")  # a run killed once begun
    assert sorted(p.name for p in comp.iterdir()) == sorted(["." + name + ".kept" for name in before] + [NOTE])
    with pytest.raises(ltc_beam.errors.InputError, match="did not finish"):
        ltc_beam.read_parquet(str(comp))
    assert main(["compress", str(bad), "--output", str(comp), *opts]) == 2  # fails again: the kept archive stays
    assert {p.name: p.read_bytes() for p in comp.iterdir()} == before
    assert main(["compress", str(src), "--output", str(comp), *opts]) == 0
    assert sorted(p.name for p in comp.iterdir()) == [NOTE, "part-00000-of-00001.parquet"]
    assert ltc_beam.read_parquet(str(comp)).num_rows == small.num_rows


def test_a_noted_folder_refuses_files_its_run_did_not_write_and_globs_check_the_note(small, vec_codec, tmp_path, capsys):
    """A file copied into a complete archive (another codec's, a subfolder of an older
    archive) was decoded with it as one data set, exit 0; a glob into a killed run's folder
    read a fraction of the records, exit 0."""
    from ltc_beam.run_marker import RUNNING, write_note

    _, codec = vec_codec
    src = tmp_path / "in.parquet"
    pq.write_table(small, src)
    opts = ["--codec", codec, "--column", "values", "--key", "device", "--order-by", "ts", "--json", "--quiet"]
    comp = tmp_path / "c"
    assert main(["compress", str(src), "--output", str(comp), *opts, "--num-shards", "2"]) == 0
    first = sorted(comp.glob("part-*.parquet"))[0]
    for stray in (comp / "part-00007-of-00009.parquet", comp / "old" / "part-00000-of-00001.parquet"):
        stray.parent.mkdir(exist_ok=True)
        shutil.copy(first, stray)
        assert main(["decompress", str(comp), "--output", str(tmp_path / "d"), "--quiet"]) == 2
        assert f"holds 1 Parquet file(s) that the ltc-beam compress which wrote it did not write ('{stray.relative_to(comp)}'" in capsys.readouterr().err
        with pytest.raises(ltc_beam.errors.InputError, match="did not write"):
            ltc_beam.read_parquet(str(comp))
        assert ltc_beam.read_parquet(str(first)).num_rows < small.num_rows  # files named: read
        stray.unlink()
    assert ltc_beam.read_parquet(str(comp / "part-*.parquet")).num_rows == small.num_rows
    first.write_bytes(first.read_bytes() + b"x")
    with pytest.raises(ltc_beam.errors.InputError, match="bytes where ltc-beam compress wrote"):
        ltc_beam.read_parquet(str(comp / "part-*.parquet"))
    write_note(str(comp), "compress", RUNNING)  # killed with some files written
    assert main(["decompress", str(comp / "part-*.parquet"), "--output", str(tmp_path / "d"), "--quiet"]) == 2
    assert "did not finish" in capsys.readouterr().err


def test_a_folder_reads_every_parquet_name_and_warns_of_parquet_left_out(small, tmp_path):
    """Files named .PARQUET or .parq and folders behind symbolic links were left out of a
    folder without a word (4,000 of 20,000 records compressed); a name holding ``[`` was
    read as a glob (``run[1].parquet`` read ``run1.parquet``)."""
    from ltc_beam.parquet import list_files

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("a.parquet", "B.PARQUET", "c.parq", "sub/d.parquet", "000000_0"):
        pq.write_table(small.slice(0, 3), src / name)
    pq.write_table(small.slice(0, 3), tmp_path / "elsewhere" / "e.parquet")
    os.symlink(tmp_path / "elsewhere", src / "linked")
    os.symlink(src, src / "sub" / "loop")  # a link back up: each folder once
    (src / "README.txt").write_text("not Parquet: left out quietly")
    with pytest.warns(UserWarning, match=r"1 Parquet file\(s\) under .* left out.*000000_0"):
        found = [os.path.relpath(f, src) for f in list_files(str(src))]
    assert sorted(found) == ["B.PARQUET", "a.parquet", "c.parq", "linked/e.parquet", "sub/d.parquet"]
    for name in ("run[1].parquet", "run1.parquet"):
        pq.write_table(small.slice(0, 1 + len(name)), tmp_path / name)
    assert list_files(str(tmp_path / "run[1].parquet")) == [str(tmp_path / "run[1].parquet")]
    assert list_files(str(tmp_path / "run[0-9].parquet")) == [str(tmp_path / "run1.parquet")]  # no such file: a glob


def test_a_flipped_bit_in_a_pass_through_column_is_an_error(small, vec_codec, tmp_path, capsys):
    """Only the payloads carried a checksum: one flipped bit in an order column changed the
    order values of 2,901 decoded records, exit 0. Every page now carries a CRC-32."""
    _, codec = vec_codec
    pq.write_table(small, tmp_path / "in.parquet")
    comp = tmp_path / "c"
    assert main(["compress", str(tmp_path / "in.parquet"), "--codec", codec, "--output", str(comp), "--column", "values",
                 "--key", "device", "--order-by", "ts", "--quiet", "--json"]) == 0
    (path,) = comp.glob("part-*.parquet")
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    (seq,) = [row_group.column(i) for i in range(row_group.num_columns) if row_group.column(i).path_in_schema.startswith("seq")]
    data = bytearray(path.read_bytes())
    data[seq.data_page_offset + seq.total_compressed_size - 3] ^= 0x10  # in the page's values
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["decompress", str(comp), "--output", str(tmp_path / "d"), "--quiet"]) == 2
    assert "CRC checksum verification failed" in capsys.readouterr().err


def test_a_big_endian_npy_compresses_as_a_native_one(vec_codec, tmp_path, capsys):
    """train and evaluate took a ``>f4`` array; compress failed with a traceback
    ("Byte-swapped arrays not supported")."""
    _, codec = vec_codec
    x = testing.telemetry_table(400, keys=1, specials=0).column("values").combine_chunks().flatten()
    x = np.array(x).reshape(-1, 8)
    np.save(tmp_path / "native.npy", x)
    np.save(tmp_path / "big.npy", x.astype(">f4"))
    for name in ("native", "big"):
        assert main(["compress", str(tmp_path / f"{name}.npy"), "--codec", codec, "--output", str(tmp_path / name), "--verify",
                     "--json", "--quiet"]) == 0
        assert _summary(capsys)["verify_records_equal"]
        assert main(["decompress", str(tmp_path / name), "--output", str(tmp_path / f"{name}-back.npy"), "--quiet"]) == 0
    assert np.array_equal(np.load(tmp_path / "big-back.npy"), np.load(tmp_path / "native-back.npy"))


def test_sigterm_removes_the_runs_files_and_exits_143(tmp_path):
    """SIGTERM (``timeout``, Kubernetes, Slurm) killed compress where it stood: the files it
    had written (1 of 8) decompressed to an eighth of the records, exit 0. It now ends the
    run as Ctrl-C does: its files removed, one line said, the shell's status 143."""
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    table = pq.read_table(os.path.join(root, "data", "basic_motions", "test.parquet"))
    recording = np.asarray(table.column("recording"))
    pq.write_table(pa.concat_tables([table.set_column(0, "recording", pa.array(recording + 1000 * k)) for k in range(50)]),
                   tmp_path / "in.parquet")  # 200,000 records: several seconds to compress
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ltc_beam.cli", "compress", str(tmp_path / "in.parquet"), "--output", str(out), "--quiet",
               "--codec", os.path.join(root, "data", "basic_motions", "codecs", "ltc-e8-w4-2bpv.ltc"),
               "--key", "recording", "--order-by", "step", "--num-shards", "8"]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        while not (out / "_ltc_run.json").exists() and proc.poll() is None:  # the run has begun
            time.sleep(0.02)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stderr = proc.stderr.read().decode()
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "ltc-beam: terminated (SIGTERM); an unfinished compress or decompress leaves no output files"
    assert os.listdir(out) == []


def test_a_full_disk_is_one_error_line(monkeypatch, capsys):
    """Beam re-raised the writer's ENOSPC as RuntimeError("OSError: … No space left on
    device"), which reached the user as a traceback; other RuntimeErrors still do."""
    def full(args, beam_args):
        raise RuntimeError("OSError: [Errno 28] No space left on device [while running 'Compress/Write']")

    monkeypatch.setattr("ltc_beam.pipeline_cli.compress", full)
    assert main(["compress", "in.parquet", "--codec", "c.ltc", "--output", "out"]) == 1
    assert capsys.readouterr().err == (
        "ltc-beam compress: error: OSError: [Errno 28] No space left on device [while running 'Compress/Write']\n"
    )
    monkeypatch.setattr("ltc_beam.pipeline_cli.compress", lambda args, beam_args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["compress", "in.parquet", "--codec", "c.ltc", "--output", "out"])


def test_train_notes_where_the_codec_kept_its_pca_start(capsys):
    """13 of 24 codecs trained on six unseen datasets kept their PCA start after all their
    steps, and only the JSON said so: the command line now notes it (not where training
    fell far below the start: a warning says that)."""
    from ltc_beam.cli import note_if_the_start_was_kept

    coded = {"start_gain_db_at_equal_rate": 0.42}
    note_if_the_start_was_kept({"steps_run": 1500, "start_check": {"kept_start": True, "coded": coded}})
    assert "the PCA start coded the validation split 0.42 dB better" in capsys.readouterr().err
    for check in ({"kept_start": False, "coded": coded}, {"kept_start": True}, None):
        note_if_the_start_was_kept({"steps_run": 1500, "start_check": check})
        assert capsys.readouterr().err == ""
