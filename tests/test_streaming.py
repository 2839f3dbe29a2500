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
from apache_beam.transforms.trigger import AccumulationMode, AfterCount, AfterProcessingTime, AfterWatermark
from apache_beam.utils.timestamp import Duration

from ltc_beam import arrow
from ltc_beam.beam import LtcEncode, WriteParquetTables
from ltc_beam.errors import InputError
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


def test_early_firings_with_empty_panes_code_every_record_once(vec_codec, tmp_path, caplog):
    """Early firings: Beam fires the on-time pane even when it is empty, and LtcEncode
    ("no rows") and WriteParquetTables (concat of nothing) failed the job on it. The dead
    letters found after the grouping (its continuation trigger) made Beam warn "All input
    pcollections must have the same window" at their Flatten."""
    _, path = vec_codec
    on_time = _records(30, 0)
    stream = test_stream.TestStream()
    for t in sorted({r["t"] for r in on_time}):
        stream = stream.add_elements([window.TimestampedValue(r, r["t"]) for r in on_time if r["t"] == t])
        if t % 10 == 9:  # (advanced after every element, the DirectRunner drops records in plain Beam too)
            stream = stream.advance_processing_time(Duration(seconds=6))
        stream = stream.advance_watermark_to(t)
    _SEEN.clear()
    p = _pipeline()
    out = (
        p
        | stream.advance_watermark_to_infinity()
        | beam.WindowInto(
            window.FixedWindows(WINDOW),
            trigger=AfterWatermark(early=AfterProcessingTime(5)),
            accumulation_mode=AccumulationMode.DISCARDING,
        )
        | LtcEncode(path, column="values", key="device", order_by="t", schema=SCHEMA, chunk_size=8, dead_letter=True)
    )
    tagged = out["encoded"] | beam.Map(_remember)
    _ = tagged | WriteParquetTables(str(tmp_path / "part"), num_shards=2)
    _DEAD.clear()
    _ = out["dead_letter"] | beam.Map(_dead)
    p.run().wait_until_finish()
    assert "must have the same window" not in caplog.text and _DEAD == []
    decoded = [arrow.decode_table(table) for _, _, table in _SEEN]
    seen = sorted(pair for t in decoded for pair in zip(t.column("device").to_pylist(), t.column("t").to_pylist()))
    assert seen == sorted((r["device"], r["t"]) for r in on_time)
    files = glob.glob(str(tmp_path / "*.parquet"))
    assert sum(arrow.decode_table(pq.read_table(f)).num_rows for f in files) == len(on_time)


def test_accumulating_panes_are_refused(vec_codec):
    """Accumulating panes were coded again in every later pane, and re-accumulated by the
    groupings after the first: a window of 995 records came back as 1,110, 2,065 and 1,780.
    Overlapping sliding windows code records twice; gapped ones lost half without a word."""
    _, path = vec_codec
    p = beam.Pipeline(runner="FnApiRunner")
    windowed = p | beam.Create(_records(3, 0)) | beam.WindowInto(
        window.FixedWindows(WINDOW), trigger=AfterWatermark(early=AfterCount(1)), accumulation_mode=AccumulationMode.ACCUMULATING
    )
    with pytest.raises(InputError, match="DISCARDING"):
        _ = windowed | LtcEncode(path, column="values", key="device", order_by="t", schema=SCHEMA)
    sliding = p | "Sliding" >> beam.Create(_records(3, 0)) | "Slide" >> beam.WindowInto(window.SlidingWindows(60, 30))
    with pytest.raises(InputError, match="sliding windows of 60 s every 30 s hold each record up to 2 times"):
        _ = sliding | "Encode" >> LtcEncode(path, column="values", key="device", order_by="t", schema=SCHEMA)  # coded twice
    gapped = p | "Gapped" >> beam.Create(_records(3, 0)) | "Gaps" >> beam.WindowInto(window.SlidingWindows(30, 60))
    with pytest.raises(InputError, match="sliding windows of 30 s every 60 s leave the records between them in no window"):
        _ = gapped | "EncodeGapped" >> LtcEncode(path, column="values", key="device", order_by="t", schema=SCHEMA)  # half lost


def test_session_and_sub_second_windows_keep_their_records_apart(vec_codec, tmp_path):
    """Sessions merge per key: tails packed across devices (and files grouped by shard)
    merged the sessions of different devices into one window. Windows of 0.25 s were all
    named T000000 and overwrote each other's files."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    _, path = vec_codec
    rng = np.random.default_rng(2)
    records = [
        {"device": f"d{k}", "t": 3 * k + i, "late": False, "values": rng.normal(size=8).astype(np.float32).tolist()}
        for k in range(8) for i in range(6)  # device k active over [3k, 3k + 6): overlapping sessions
    ]
    _SEEN.clear()
    p = beam.Pipeline(runner=FnApiRunner())
    timed = p | beam.Create(records) | beam.Map(lambda r: window.TimestampedValue(r, r["t"]))
    sessions = timed | "Sessions" >> beam.WindowInto(window.Sessions(2)) | "EncodeSessions" >> LtcEncode(
        path, column="values", key="device", order_by="t", schema=SCHEMA, chunk_size=4
    )
    _ = sessions | beam.Map(_remember)
    _ = sessions | "WriteSessions" >> WriteParquetTables(str(tmp_path / "s" / "part"), num_shards=1)
    quarter = timed | "Quarter" >> beam.Map(lambda r: window.TimestampedValue(r, r["t"] / 100)) | "Fixed" >> beam.WindowInto(
        window.FixedWindows(0.25)
    )
    _ = quarter | "EncodeQuarters" >> LtcEncode(path, column="values", key="device", order_by="t", schema=SCHEMA) | (
        "WriteQuarters" >> WriteParquetTables(str(tmp_path / "q" / "part"), num_shards=1)
    )
    p.run().wait_until_finish()
    for start, end, table in _SEEN:
        devices = set(arrow.decode_table(table).column("device").to_pylist())
        assert len(devices) == 1 and (start, end) == (3 * int(next(iter(devices))[1:]), 3 * int(next(iter(devices))[1:]) + 7)
    assert sum(arrow.decode_table(t).num_rows for _, _, t in _SEEN) == len(records)
    for folder, files in (("s", 8), ("q", 2)):  # one file per device session; t/100 in [0, 0.5): two quarters
        names = glob.glob(str(tmp_path / folder / "*.parquet"))
        assert len(names) == files, names
        assert sum(arrow.decode_table(pq.read_table(f)).num_rows for f in names) == len(records)
