"""ltc-beam compress / decompress / demo from the command line (FnApiRunner)."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import ltc_beam
from ltc_beam import arrow, testing
from ltc_beam.cli import main
from tests.beam_fixtures import block_codec, small, telemetry, vec_codec  # noqa: F401


def _summary(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


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
    assert s["metrics"]["records_encoded"] == small.num_rows  # Beam metrics of the in-memory run
    rc = main(["decompress", str(comp), "--output", str(dec), "--json", "--direct_num_workers=1"])  # a Beam option passes through
    assert rc == 0
    d = _summary(capsys)
    assert d["records_in"] == d["records_out"] == small.num_rows
    decoded = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(dec / "*.parquet"))])
    assert decoded.num_rows == small.num_rows


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


def test_npy_archive_decodes_in_array_order(block_codec, tmp_path, capsys):
    _, codec = block_codec
    x = testing.telemetry_table(150_000, keys=3, specials=0).column("values").combine_chunks().flatten()
    x = np.array(x).reshape(-1, 8)
    x[7, 2] = np.nan  # restored bit-exactly, at its own row
    path = tmp_path / "x.npy"
    np.save(path, x)
    # 150k rows: three input batches of the array, spread over two output shards
    rc = main(["compress", str(path), "--codec", codec, "--output", str(tmp_path / "c"), "--verify", "--json",
               "--num-shards", "2"])
    assert rc == 0
    s = _summary(capsys)
    assert s["verify_records_equal"] and s["verify_nonfinite_exact"] and s["snr_db"] > 10
    decoded = ltc_beam.read_parquet(str(tmp_path / "c"))
    assert decoded.column("row").to_pylist() == list(range(len(x)))
    y = np.asarray(decoded.column("values").combine_chunks().flatten()).reshape(-1, 8)
    assert np.isnan(y[7, 2]) and np.isfinite(np.delete(y.ravel(), 7 * 8 + 2)).all()
    assert np.mean((np.nan_to_num(x) - np.nan_to_num(y)) ** 2) < 0.2 * np.nanvar(x)


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
               "--key", "device", "--order-by", "ts", "--dead-letter", str(dead), "--json"])
    assert rc == 0
    s = _summary(capsys)
    assert s["records_out"] == 399 and s["dead_letters"] == 1
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
