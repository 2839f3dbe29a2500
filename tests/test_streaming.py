"""Streaming: LtcEncode on an unbounded, windowed PCollection (TestStream on the
BundleBasedDirectRunner with --streaming): chunks per window and key, Parquet written with a
triggering frequency, late records kept in their window (or dead-lettered on request)."""

from __future__ import annotations

import glob
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.testing import test_stream
from apache_beam.transforms import window
from apache_beam.transforms.trigger import AccumulationMode, AfterWatermark, AfterCount
from apache_beam.utils.timestamp import Duration

from ltc_beam import arrow
from ltc_beam.beam import LtcEncode, WriteParquetTables
from tests.beam_fixtures import telemetry, vec_codec  # noqa: F401

WINDOW = 10  # seconds
SCHEMA = pa.schema([("device", pa.string()), ("t", pa.int64()), ("late", pa.bool_()), ("values", pa.list_(pa.float32()))])
_SEEN: list = []
_DEAD: list = []


def _dead(d):
    _DEAD.append(d)


def _remember(table, win=beam.DoFn.WindowParam):
    _SEEN.append((win.start.micros // 1_000_000, win.end.micros // 1_000_000, table))
    return table


def _records(n_per_device: int, start: int, devices=("a", "b", "c"), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for d in devices:
        for i in range(n_per_device):
            t = start + i * (WINDOW * 3 // n_per_device)
            out.append({"device": d, "t": t, "late": False, "values": rng.normal(size=8).astype(np.float32).tolist()})
    return out


def _stream(on_time, late):
    """On-time records over windows [0,10), [10,20), [20,30); late ones for [0,10) after the
    watermark has passed 25 s."""
    stream = test_stream.TestStream()
    mark = -1
    for t in sorted({r["t"] for r in on_time}):
        stream = stream.add_elements([window.TimestampedValue(r, r["t"]) for r in on_time if r["t"] == t])
        if t - 1 > mark:
            mark = t - 1
            stream = stream.advance_watermark_to(mark)
    stream = stream.advance_watermark_to(max(mark + 1, 25))
    stream = stream.add_elements([window.TimestampedValue(r, r["t"]) for r in late])
    return stream.advance_watermark_to_infinity()


def _pipeline():
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return beam.Pipeline(runner=BundleBasedDirectRunner(), options=options)


@pytest.mark.parametrize("late_policy", ["keep", "dead_letter"])
def test_windowed_stream_every_record_once(vec_codec, tmp_path, late_policy):
    _, path = vec_codec
    on_time = _records(30, 0)  # 90 records over three windows
    # 12 late records, all for window [0,10)
    late = [dict(r, t=r["t"] % 10, late=True) for r in _records(4, 0, seed=1)]
    encode = LtcEncode(path, column="values", key="device", order_by="t", schema=SCHEMA, chunk_size=8,
                       late=late_policy, dead_letter=True)
    prefix = str(tmp_path / "stream" / "part")
    _SEEN.clear()
    p = _pipeline()
    out = (
        p
        | _stream(on_time, late)
        | beam.WindowInto(
            window.FixedWindows(WINDOW),
            trigger=AfterWatermark(late=AfterCount(1)),
            accumulation_mode=AccumulationMode.DISCARDING,
            allowed_lateness=Duration(seconds=60),
        )
        | encode
    )
    tagged = out["encoded"] | beam.Map(_remember)
    # Beam's sink with a triggering frequency: it re-windows with zero allowed lateness, so
    # it takes the on-time panes only; ltc-beam's WriteParquetTables keeps every pane.
    _ = tagged | beam.io.WriteToParquetBatched(
        prefix, schema=encode.output_schema(SCHEMA), file_name_suffix=".parquet", triggering_frequency=5
    )
    _ = tagged | WriteParquetTables(str(tmp_path / "panes" / "part"), num_shards=1)
    _DEAD.clear()
    dead = _DEAD
    _ = out["dead_letter"] | beam.Map(_dead)
    p.run().wait_until_finish()

    # every emitted record decodes exactly once, inside the window its chunk was formed in
    seen = []
    for start, end, table in _SEEN:
        dec = arrow.decode_table(table)
        ts = dec.column("t").to_pylist()
        assert all(start <= t < end for t in ts)
        seen += list(zip(dec.column("device").to_pylist(), ts, dec.column("late").to_pylist()))
    windows = {(s, e) for s, e, _ in _SEEN}
    assert {(0, 10), (10, 20), (20, 30)} <= windows
    late_seen = [x for x in seen if x[2]]
    kept = [(r["device"], r["t"]) for r in on_time]
    if late_policy == "keep":
        assert len(seen) == len(on_time) + len(late) and len(late_seen) == len(late)
        assert sorted((d, t) for d, t, _ in seen) == sorted(kept + [(r["device"], r["t"]) for r in late])
        assert dead == []
    else:
        assert len(seen) == len(on_time) and not late_seen
        assert len(dead) == len(late) and all("late" in d["error"] and d["record"]["late"] for d in dead)

    # WriteToParquetBatched(triggering_frequency=5): per-window files with every on-time record
    files = glob.glob(os.path.join(str(tmp_path / "stream"), "*.parquet"))
    assert len(files) >= 3
    written = [arrow.decode_table(pq.read_table(f)) for f in files]
    on_time_written = sum(int((~np.asarray(t.column("late"))).sum()) for t in written)
    assert on_time_written == len(on_time)
    # WriteParquetTables: one file per window pane, every kept record (late panes included)
    panes = glob.glob(os.path.join(str(tmp_path / "panes"), "*.parquet"))
    assert len(panes) >= 3
    assert sum(sum(pq.read_table(f).column(arrow.COUNT).to_pylist()) for f in panes) == len(seen)
