"""Beam YAML: the provider file and the ready compress / decompress pipelines run end to end
(``python -m apache_beam.yaml.main`` on FnApiRunner), records counted in and out."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

import ltc_beam
from ltc_beam import arrow, testing
from tests.beam_fixtures import small, telemetry, vec_codec  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
RUNNER = "--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def run_yaml(pipeline: str, variables: dict) -> None:
    cmd = [
        sys.executable,
        "-m",
        "apache_beam.yaml.main",
        f"--yaml_pipeline_file={ROOT / 'transforms' / pipeline}",
        RUNNER,
        f"--jinja_variables={json.dumps(variables)}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def test_provider_names_the_public_transforms():
    spec = yaml.safe_load((ROOT / "transforms" / "ltc_provider.yaml").read_text())
    names = spec[0]["transforms"]
    assert {"LtcEncode", "LtcDecode", "ReadParquetTables", "WriteParquetTables"} <= set(names)
    import importlib

    for target in names.values():
        module, attr = target.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attr))


def test_yaml_compress_then_decompress(small, vec_codec, tmp_path):
    _, codec_path = vec_codec
    src = tmp_path / "in"
    testing.write_dataset(small, str(src), files=2, row_group_size=700)
    comp, dec = tmp_path / "c", tmp_path / "d"
    run_yaml(
        "compress.yaml",
        {"input": str(src), "output": str(comp / "part"), "codec": codec_path, "column": "values", "key": "device", "order_by": "ts"},
    )
    files = sorted(glob.glob(str(comp / "*.parquet")))
    assert files
    assert sum(sum(pq.read_table(f).column(arrow.COUNT).to_pylist()) for f in files) == small.num_rows
    os.rename(codec_path, codec_path + ".away")  # decode from the embedded codec only
    try:
        run_yaml("decompress.yaml", {"input": str(comp), "output": str(dec / "part")})
    finally:
        os.rename(codec_path + ".away", codec_path)
    decoded = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(dec / "*.parquet")))])
    assert decoded.num_rows == small.num_rows
    restored = ltc_beam.read_parquet(str(comp)).cast(small.schema)
    got = decoded.cast(small.schema).sort_by([("device", "ascending"), ("ts", "ascending")])
    assert got.drop(["values"]).equals(restored.drop(["values"]))
