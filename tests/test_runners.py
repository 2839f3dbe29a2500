"""Acceptance: a 100k-record, 4-file Parquet dataset through compress and decompress on
FnApiRunner (in memory and multi_processing with 2 workers), PortableRunner against a local
job service (LOOPBACK) and DaskRunner on a 2-worker LocalCluster.

Each run counts records in and out, checks pass-through columns, per-key order, NaN/±Inf,
the vector MSE against the in-process codec, and that the bitstreams are byte-identical to
the in-process encoder's (chunking is deterministic on every runner)."""

from __future__ import annotations

import glob

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ltc_beam
from ltc_beam import arrow
from ltc_beam.beam import CompressParquet, DecompressParquet
from ltc_beam.beam.runners import counters, run
from tests.beam_fixtures import sort_by_series, telemetry, telemetry_dir, values_of, vec_codec  # noqa: F401

OPTS = dict(column="values", key="device", order_by="ts")

RUNNERS = {
    "fnapi-in-memory": ("FnApiRunner", []),
    "fnapi-multiprocessing-2": ("FnApiRunner", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
    "portable-loopback": ("PortableRunner", []),
    "dask-2-workers": ("DaskRunner", ["--dask_workers", "2"]),
}


@pytest.fixture(scope="module")
def reference(telemetry, vec_codec):
    codec, _ = vec_codec
    encoded = arrow.encode_table(telemetry, codec, **OPTS)
    ref = sort_by_series(telemetry)
    x = values_of(ref)
    want = codec.reconstruct(x)
    finite = np.isfinite(x).all(axis=1)
    return {
        "payloads": sorted(encoded.column(arrow.PAYLOAD).to_pylist()),
        "sorted": ref,
        "mse": float(np.mean((want[finite] - x[finite]) ** 2)),
        "finite": finite,
    }


@pytest.mark.parametrize("name", list(RUNNERS))
def test_round_trip_on_runner(name, telemetry, telemetry_dir, vec_codec, reference, tmp_path):
    runner, args = RUNNERS[name]
    _, codec_path = vec_codec
    comp, decomp = str(tmp_path / "compressed") + "/", str(tmp_path / "decoded") + "/"
    compress = CompressParquet(telemetry_dir, comp, codec_path, num_shards=4, **OPTS)  # 4 files for 2 workers
    result, _ = run(lambda p: p | compress, runner, args)
    run(lambda p: p | DecompressParquet(comp, decomp), runner, args)

    compressed = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(comp + "*.parquet"))])
    assert sum(compressed.column(arrow.COUNT).to_pylist()) == telemetry.num_rows  # records in = out (compressed)
    assert sorted(compressed.column(arrow.PAYLOAD).to_pylist()) == reference["payloads"]  # same bytes as in process
    decoded_files = sorted(glob.glob(decomp + "*.parquet"))
    assert len(decoded_files) == len(glob.glob(comp + "*.parquet"))  # one decoded file per compressed file
    decoded = pa.concat_tables([pq.read_table(f) for f in decoded_files])
    assert decoded.num_rows == telemetry.num_rows  # records in = out (decoded)
    source_schema = pq.read_schema(glob.glob(telemetry_dir + "/*.parquet")[0])
    assert decoded.schema.equals(source_schema, check_metadata=True)  # original schema restored
    decoded = decoded.cast(telemetry.schema)  # (Parquet names list items "element")

    ref = reference["sorted"]
    got = sort_by_series(decoded)
    assert got.drop(["values"]).equals(ref.drop(["values"]))  # pass-through identical
    x, y = values_of(ref), values_of(got)
    finite = reference["finite"]
    assert np.array_equal(np.isnan(x), np.isnan(y)) and np.array_equal(x[np.isinf(x)], y[np.isinf(x)])
    mse = float(np.mean((y[finite] - x[finite]) ** 2))
    assert mse == pytest.approx(reference["mse"], rel=1e-6)

    # per-key order: read_parquet restores series order from the stored key/order columns
    restored = ltc_beam.read_parquet(comp).cast(telemetry.schema)
    assert restored.drop(["values"]).equals(ref.drop(["values"]))

    c = counters(result)
    if c:  # DaskRunner and the portable LOOPBACK job report no metrics
        assert c["records_in"] == c["records_encoded"] == telemetry.num_rows


def test_a_runner_that_cannot_fetch_its_binary_is_one_library_error(monkeypatch):
    """Offline, PrismRunner (and Beam's bare default) failed with a 112-line chained traceback."""
    import apache_beam as beam

    def offline(self, *args, **kwargs):
        raise RuntimeError("Unable to fetch remote prism binary at https://example.invalid/prism.zip: <urlopen error>")

    monkeypatch.setattr(beam.Pipeline, "run", offline)
    with pytest.raises(ltc_beam.errors.RunnerError, match="runner PrismRunner could not start: Unable to fetch .* FnApiRunner"):
        run(lambda p: p | beam.Create([1]), "PrismRunner")
    monkeypatch.setattr(beam.Pipeline, "run", lambda self: (_ for _ in ()).throw(RuntimeError("a worker failed")))
    with pytest.raises(RuntimeError, match="a worker failed"):  # other runtime errors pass unchanged
        run(lambda p: p | beam.Create([1]), "FnApiRunner")


def _touch(x, folder):
    (folder / str(x)).touch()
    return x


def test_every_branch_runs_on_dask(tmp_path):
    """Beam 2.77's DaskRunner computes only the step applied last: compress with a
    dead-letter output wrote the dead letters alone (no Parquet file) and reported success."""
    import apache_beam as beam

    from ltc_beam.beam.runners import leaves

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    def build(p):
        numbers = p | beam.Create([1, 2, 3])
        numbers | "A" >> beam.Map(_touch, tmp_path / "a")
        numbers | "B" >> beam.Map(lambda x: x * 10) | "TouchB" >> beam.Map(_touch, tmp_path / "b")
        assert len(leaves(p)) == 2

    run(build, "DaskRunner", ["--dask_workers", "1"])
    assert sorted(f.name for f in (tmp_path / "a").iterdir()) == ["1", "2", "3"]
    assert sorted(f.name for f in (tmp_path / "b").iterdir()) == ["10", "20", "30"]
