"""``LtcEncode`` and ``LtcDecode``: the PTransforms.

Encoding graph (every arrow keeps records; none relies on ``BatchElements``)::

    input (pa.Table / RecordBatch batches, or dict / beam.Row records)
      → Prepare      validate vectors (bad rows: error naming column and row, or dead letter);
                     split batches by series key (no key: one series with order_by, else the batch's content digest)
      → GroupByKey   one group per series (per window in streaming)
      → FormChunks   order the series, cut full chunks; the tail goes to packing
      → GroupByKey   tails by pack shard (hash of the series key)
      → PackTails    short series concatenated in key order, cut into chunks
      → RunInference(LtcModelHandler.with_no_batching())   one compressed table per unit
                     (full chunks and packed tails each in their own stage)
      → Account      Beam metrics (records, bytes in/out, chunks); tables or rows out

Chunking is a function of the data only (``ltc_beam.arrow`` module docstring), so every
runner and every retry produce the same chunks and byte-identical payloads.
"""

from __future__ import annotations

import logging
import math
from typing import Any, List, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.ml.inference.base import RunInference
from apache_beam.metrics import Metrics
from apache_beam.transforms.trigger import AccumulationMode
from apache_beam.transforms.window import SlidingWindows
from apache_beam.utils.windowed_value import PaneInfoTiming

from ltc_beam import arrow
from ltc_beam.beam.coders import ArrowTableCoder  # noqa: F401 - registers the pa.Table coder
from ltc_beam.beam.handler import NAMESPACE, LtcModelHandler, _EncodeSettings
from ltc_beam.errors import BEYOND_FLOAT32, NULL_HINT, InputError, beyond_float32

log = logging.getLogger(__name__)

# Steps emit (tag, value) pairs that later steps select, instead of multi-output ParDos:
# Beam 2.77's DaskRunner mixes tagged outputs into the main output.
DEAD = "dead_letter"
TAIL = "tail"
#: Key prefix of a part that bundles the rows of many series headed for one file (shard).
BUNDLE = b"\x00bundle:"
PART = "part"
UNIT = "unit"
LATE_POLICIES = ("keep", "dead_letter")
OUTPUTS = ("table", "rows")
#: Element types of the two outputs (tables cross stages with ``ArrowTableCoder``).
_OUTPUT_TYPES = {"table": pa.Table, "rows": Any}

#: Optional in-process progress callback ``fn(records)``; set by the CLI for in-memory runs.
progress_callback = None


def _as_table(element) -> pa.Table | None:
    if isinstance(element, pa.Table):
        return element
    if isinstance(element, pa.RecordBatch):
        return pa.Table.from_batches([element])
    return None


def _as_dict(element) -> dict:
    if isinstance(element, dict):
        return element
    if hasattr(element, "_asdict"):
        return dict(element._asdict())
    if hasattr(element, "as_dict"):
        return dict(element.as_dict())
    raise InputError(f"LtcEncode takes pa.Table batches or dict / beam.Row records, got {type(element).__name__}")


def _remedy(problem: str) -> str:
    """What to do about a bad record, said after the problem where it fails the job."""
    hint = f"; {NULL_HINT}" if "null" in problem else ""
    return (
        f"{hint}; or set bad records aside with a dead-letter output (LtcEncode(dead_letter=True), "
        "EncodeToParquet / CompressParquet(dead_letter_path=FILE), ltc-beam compress --dead-letter FILE)"
    )


def _dead_letter(error: str, column, row, key, record) -> dict:
    return {"error": error, "column": column, "row": row, "key": key, "record": record}


def _value(column: pa.ChunkedArray, row: int):
    """``column[row]`` as a Python value; one Python cannot hold (a timestamp beyond year
    9999, as an INT64_MAX "never" is, also inside a list or struct) as Arrow's text of it:
    it failed the whole job."""
    one = column.slice(row, 1).combine_chunks()
    try:
        return one[0].as_py()
    except (OverflowError, ValueError, pa.ArrowException):
        try:
            return one.cast(pa.string())[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # no cast to text (lists, structs)
            return one.to_string(indent=0, window=1 << 20)


def _records(table: pa.Table) -> list[dict]:
    """``table``'s rows as dicts (dead letters), by :func:`_value` only where Python cannot
    hold some value."""
    try:
        return table.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        return [{name: _value(column, row) for name, column in zip(table.column_names, table.columns)} for row in range(table.num_rows)]


def _check_value_list(value, d: int, kind: pa.DataType | None = None) -> str | None:
    if value is None:
        return "vector is null"
    if isinstance(value, (str, bytes)):
        return f"vector is a {type(value).__name__}, not a list of floats"
    try:
        items = list(value)
    except TypeError:
        return f"vector is a {type(value).__name__}, not a list of floats"
    if len(items) != d:
        return f"vector has {len(items)} values, the codec expects {d}"
    for v in items:
        problem = _check_scalar(v, "vector contains", kind)
        if problem:
            return problem
    return None


def _check_scalar(v, prefix: str = "value is", kind: pa.DataType | None = None) -> str | None:
    """What keeps ``v`` from being a coded value (None: nothing), of the schema's (item) type
    ``kind`` where ``schema=`` names one."""
    if v is None:  # coded as arrow.NULL_NAN, decoded as null
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return f"{prefix} a {type(v).__name__}, not a float" if prefix == "value is" else (
            f"{prefix} a {type(v).__name__} value, not a float"
        )
    try:
        far = bool(beyond_float32(np.float64(v)))
    except OverflowError:  # an int beyond float64's range
        far = True
    if far:
        return BEYOND_FLOAT32 if prefix == "value is" else f"vector holds a {BEYOND_FLOAT32}"
    return None if kind is None else _outside_type(v, kind)


def _outside_type(v, kind: pa.DataType) -> str | None:
    """What keeps a number from the schema's type ``kind`` (None: nothing). Building the
    series table would make a float16's overflow ±inf without a word, and fail the whole job
    on an integer type's overflow or fraction: the record is refused (or dead-lettered) instead."""
    if pa.types.is_float16(kind) and math.isfinite(v) and abs(float(v)) >= FLOAT16_OVERFLOW:
        return f"{v!r} is beyond float16's range (±65504), where the schema's {kind} would hold it as ±inf"
    if pa.types.is_integer(kind):
        if isinstance(v, (float, np.floating)) and not float(v).is_integer():  # NaN and ±inf too
            return f"{v!r} is not an integer (the schema says {kind})"
        limits = np.iinfo(kind.to_pandas_dtype())
        if not limits.min <= int(v) <= limits.max:
            return f"{v!r} is beyond {kind}'s range ({limits.min} to {limits.max})"
    return None


FLOAT16_OVERFLOW = 65520.0  # the least magnitude float16 rounds to ±inf (65504 is its largest)


INT64_RANGE = (-(1 << 63), 1 << 63)  # what pyarrow makes of Python ints


def _field_problem(record: dict, types: dict[str, pa.DataType] | None, vectors: set) -> tuple[str, str] | None:
    """A field other than the vector columns that the series table cannot hold: a reserved
    name; without a schema (``types``: its fields' types), an integer beyond int64's range;
    with one, a value that does not convert to its field's type, a float with a fraction for
    an integer field included (pyarrow would truncate it: the record then sorts with
    another's order value). Fields the schema does not name are left out, unchecked."""
    for name, value in record.items():
        if name in vectors:
            continue
        if name in arrow.RESERVED:
            return name, "the name is reserved for compressed data: rename the field"
        if types is None:
            if isinstance(value, int) and not INT64_RANGE[0] <= value < INT64_RANGE[1]:
                return name, "integer beyond int64's range"
            continue
        kind = types.get(name)
        if kind is None or value is None or _plainly_fits(value, kind):
            continue
        if pa.types.is_integer(kind) and isinstance(value, (float, np.floating)) and not float(value).is_integer():
            return name, f"{value!r} is not an integer (the schema says {kind})"
        try:
            pa.scalar(value, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError) as exc:
            return name, f"{value!r} does not convert to the schema's {kind} ({exc})"
    return None


def _plainly_fits(value, kind: pa.DataType) -> bool:
    """The common cases, checked without pyarrow (a scalar per field took 60 % more time per record)."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return isinstance(value, str)
    if pa.types.is_floating(kind) and kind.bit_width == 64:
        return isinstance(value, (float, int)) and not isinstance(value, bool)
    if pa.types.is_integer(kind) and kind.bit_width == 64 and pa.types.is_signed_integer(kind):
        return isinstance(value, int) and not isinstance(value, bool) and INT64_RANGE[0] <= value < INT64_RANGE[1]
    return False


def _as_floats(value, half: bool = False):
    """A record's vector (or value) with its integers as floats and its Nones the null NaN
    (``arrow.NULL_NAN``, decoded as null): a series whose records hold only integers (or
    only None) would otherwise form an integer (or null-typed) column. ``half``: for a
    float16 field, numpy floats of every width too (pyarrow converts no float32 to float16:
    a float32 array failed the whole job)."""
    if value is None or isinstance(value, (int, np.integer)) or half and isinstance(value, np.floating):
        return arrow.NULL_NAN if value is None else float(value)
    if isinstance(value, np.ndarray) and (value.dtype.kind in "iu" or half):
        return value.astype(np.float64)
    loose = (int, np.integer, np.floating) if half else (int, np.integer)
    if isinstance(value, (list, tuple, np.ndarray)) and any(v is None or isinstance(v, loose) for v in value):
        return [arrow.NULL_NAN if v is None else float(v) for v in value]
    return value


def _select(tag: str):
    return beam.FlatMap(lambda item, tag=tag: [item[1]] if item[0] == tag else [])


class _Prepare(beam.DoFn):
    """Validate and key the input: ``(series key bytes, part)``; bad records to ``dead_letter``."""

    def __init__(self, *, record_dim, column, columns, default_columns, key, order_by, schema, dead_letter, shards, bundles=None):
        self.shards = shards
        self.bundles = bundles  # LtcEncodeShards' file count: a batch's rows go out one part per file
        self.record_dim = record_dim
        self.column = column
        self.columns = columns
        self.default_columns = tuple(default_columns)
        self.key = key
        self.order_by = order_by
        self.schema = schema
        self._types = None if schema is None else {f.name: f.type for f in schema}
        # columns schema= makes integers (or integer vectors): kept as they are, None as null
        # (a None inside a list<int16> vector became a NaN no int16 holds)
        self._items = {f.name: arrow.item_type(f.type) for f in schema or ()}  # what schema= makes each field's values
        self._integers = frozenset(name for name, kind in self._items.items() if pa.types.is_integer(kind))
        self._halves = frozenset(name for name, kind in self._items.items() if pa.types.is_float16(kind))
        self.dead_letter = dead_letter
        self._specs: dict[bytes, arrow.VectorSpec] = {}

    def setup(self):
        self.records_in = Metrics.counter(NAMESPACE, "records_in")
        self.dead = Metrics.counter(NAMESPACE, "records_dead_letter")

    def _spec(self, schema: pa.Schema) -> arrow.VectorSpec:
        ident = schema.remove_metadata().serialize().to_pybytes()
        spec = self._specs.get(ident)
        if spec is None:
            spec = arrow.resolve_spec(
                schema, self.record_dim, column=self.column, columns=self.columns, default_columns=self.default_columns
            )
            arrow.check_key_and_order(schema, spec, self.key, self.order_by)
            self._specs[ident] = spec
        return spec

    def process(self, element):
        table = _as_table(element)
        if table is not None:
            yield from self._table(table)
        else:
            yield from self._record(_as_dict(element))

    def _where(self, table: pa.Table, row: int) -> str:
        parts = []
        for name in (self.key, self.order_by):
            if name is not None:
                parts.append(f"{name}={_value(table.column(name), row)!r}")
        return f" of the input batch ({', '.join(parts)})" if parts else " of the input batch"

    def _table(self, table: pa.Table):
        if self.schema is not None and table.schema.remove_metadata() != self.schema.remove_metadata():
            table = _conform(table, self.schema)
        spec = self._spec(table.schema)
        self.records_in.inc(table.num_rows)
        bad = arrow.find_bad_rows(table, spec)
        if bad:
            row, (col, problem) = next(iter(bad.items()))
            if not self.dead_letter:
                more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
                raise InputError(f"column {col!r}, row {row}{self._where(table, row)}: {problem}{more}{_remedy(problem)}")
            for (row, (col, problem)), record in zip(bad.items(), _records(table.take(list(bad)))):
                key = record[self.key] if self.key else None
                msg = f"column {col!r}, row {row}{self._where(table, row)}: {problem}"
                yield (DEAD, _dead_letter(msg, col, row, key, record))
            self.dead.inc(len(bad))
            keep = np.ones(table.num_rows, bool)
            keep[list(bad)] = False
            table = table.filter(pa.array(keep))
        if table.num_rows == 0:
            return
        # tables cross the shuffle as Arrow IPC bytes (much cheaper than pickling them)
        if self.key is None:
            yield (PART, (arrow.unkeyed_series(table, self.order_by), arrow.to_ipc(table)))
        elif self.bundles:  # one message per output file, not per series: a part per series and batch
            # (2,000 devices, 128 batches) took 7 GB for 8M records; the rows of each file are
            # picked by their keys' codes, not gathered from a table per series
            files = arrow.files_of_rows(table, self.key, self.bundles)
            for shard in np.unique(files).tolist():
                rows = table if len(files) and (files == shard).all() else table.filter(pa.array(files == shard))
                yield (PART, (BUNDLE + str(shard).encode(), arrow.to_ipc(rows)))
        else:
            for _, kb, part in arrow.split_by_key(table, self.key):
                yield (PART, (kb, arrow.to_ipc(part)))

    def _record(self, record: dict):
        self.records_in.inc()
        key = record.get(self.key) if self.key else None
        problem = None
        if self.column is not None or (self.columns is None and not self._has_default_columns(record)):
            col = self.column
            if col is None:
                problem = (None, "name the vector column with column= or columns=")
            elif col not in record:
                problem = (col, "column missing from record")
            else:  # a one-value codec's column may hold plain floats, as in tables (as the schema says, if given)
                value = record[col]
                if self.schema is not None and col in self.schema.names:
                    scalar = not arrow.is_list(self.schema.field(col).type)
                else:
                    scalar = self.record_dim == 1 and not isinstance(value, (list, tuple, np.ndarray))
                kind = self._items.get(col)
                msg = _check_scalar(value, kind=kind) if scalar else _check_value_list(value, self.record_dim, kind)
                problem = (col, msg) if msg else None
        else:
            cols = list(self.columns or self.default_columns)
            if len(cols) != self.record_dim:
                problem = (None, f"{len(cols)} vector columns, the codec expects {self.record_dim}")
            for col in cols:
                if problem:
                    break
                if col not in record:
                    problem = (col, "column missing from record")
                else:
                    msg = _check_scalar(record[col], kind=self._items.get(col))
                    problem = (col, msg) if msg else None
        for name in (self.key, self.order_by):
            if not problem and name is not None and name not in record:
                problem = (name, "column missing from record")
        if not problem:
            vectors = {self.column} if self.column is not None else set(self.columns or self.default_columns)
            problem = _field_problem(record, self._types, vectors)
        if problem:
            col, msg = problem
            named = [f"{name}={record.get(name)!r}" for name in (self.key, self.order_by) if name is not None and name in record]
            where = f" ({', '.join(named)})" if named else ""
            text = f"column {col!r}, record{where}: {msg}"
            if not self.dead_letter:
                raise InputError(text + _remedy(msg))
            self.dead.inc()
            yield (DEAD, _dead_letter(text, col, None, key, record))
            return
        names = [self.column] if self.column is not None and self.column in record else list(self.columns or self.default_columns)
        record = {**record, **{c: _as_floats(record[c], c in self._halves) for c in names if c not in self._integers}}
        data = arrow.canonical(record)
        if self.key:
            kb = arrow.canonical(key)
        else:  # without order, records spread over ``shards`` series
            kb = arrow.ONE_SERIES if self.order_by is not None else b"%" + str(arrow.shard_of(data, self.shards)).encode()
        yield (PART, (kb, (arrow.digest(data), record)))

    def _has_default_columns(self, record: dict) -> bool:
        return bool(self.default_columns) and all(c in record for c in self.default_columns)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` cast to ``schema``, its place in the input (``arrow.META_POSITION``) kept, and
    the column of its pandas RangeIndex where the reader made one (with the pandas metadata
    that names it)."""
    place = arrow.position(table)
    schema = arrow.with_range_index_of(schema, table.schema)
    meta = {**(schema.metadata or {}), **({arrow.META_POSITION: place} if place else {})}
    try:
        return table.select(schema.names).cast(schema).replace_schema_metadata(meta or None)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"input batch does not fit the given schema{_misfit(table, schema)}: {exc}") from exc


def _misfit(table: pa.Table, schema: pa.Schema) -> str:
    """Which column of ``table`` does not cast to ``schema`` (" (column 'c': int64 → uint64)"), or ""."""
    for field in schema:
        if field.name not in table.column_names:
            return f" (it lacks column {field.name!r})"
        column = table.column(field.name)
        try:
            column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return f" (column {field.name!r}: {column.type} → {field.type})"
    return ""


def _records_table(records: list[dict], schema: pa.Schema | None) -> pa.Table:
    """Dict records as a table: ``schema``'s, or every field any record has (in order of
    first appearance; null where a record lacks it: pyarrow takes the first record's fields)."""
    if schema is None:
        names = dict.fromkeys(name for record in records for name in record)
        records = [record if len(record) == len(names) else {n: record.get(n) for n in names} for record in records]
    try:
        return pa.Table.from_pylist(records, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise InputError(
            f"the records of one series do not form a table ({_unconverted(records, schema)}{exc}): a field holds values of different types "
            "(floats and lists, numbers and text, …) or out of its type's range. Give schema= to have each "
            "record checked (and dead-lettered) on its own"
        ) from exc


def _unconverted(records: list[dict], schema: pa.Schema | None) -> str:
    """"field 'f': " for the first field whose values form no Arrow array, or ""."""
    names = schema.names if schema is not None else dict.fromkeys(name for record in records for name in record)
    for name in names:
        try:
            pa.array([record.get(name) for record in records], None if schema is None else schema.field(name).type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return f"field {name!r}: "
    return ""


def _units(chunks: list[pa.Table], unit_rows: int) -> list[list[pa.Table]]:
    units, current, rows = [], [], 0
    for chunk in chunks:
        if current and rows + chunk.num_rows > unit_rows:
            units.append(current)
            current, rows = [], 0
        current.append(chunk)
        rows += chunk.num_rows
    if current:
        units.append(current)
    return units


def _series(values, schema: pa.Schema | None, order_by: str | None) -> pa.Table:
    """The grouped parts of one series (Arrow IPC bytes and / or ``(digest, record)``) as one
    table in its deterministic order."""
    parts, records = [], []
    for v in values:
        if isinstance(v, bytes):
            parts.append(arrow.from_ipc(v))
        elif isinstance(v, pa.Table):  # a series' rows of a file's bundled parts
            parts.append(v)
        else:
            records.append(v)
    if records:
        records.sort(key=lambda dr: dr[0])
        parts.append(_records_table([r for _, r in records], schema))
    return arrow.order_series(parts, order_by)


#: Counter of records sharing their series' order value with the record before.
TIED_COUNTER = "records_tied_in_order"
#: Counter of records with no order value (null or NaN).
UNORDERED_COUNTER = "records_without_order_value"


def check_windowing(pcoll) -> bool:
    """Refuse accumulating panes and sliding windows that overlap or leave gaps; say whether
    the windows merge (sessions).

    Each pane is coded once: accumulating panes would code every record again in each later
    pane, and the groupings after the first re-accumulate (a window of 995 records came back
    as 1,110, 2,065 and 1,780 records in three panes). Merging windows merge per key, so
    tails are then packed per series: packed across series (by pack shard), the sessions of
    different devices merged into one window."""
    windowing = pcoll.windowing
    if windowing.accumulation_mode == AccumulationMode.ACCUMULATING:
        raise InputError(
            "LtcEncode codes each pane once: window with accumulation_mode=AccumulationMode.DISCARDING "
            "(accumulating panes would be coded, and grouped, again in every later pane)"
        )
    fn = windowing.windowfn
    if isinstance(fn, SlidingWindows) and fn.period.micros != fn.size.micros:
        size, period = fn.size.micros, fn.period.micros
        if period < size:  # 1,461 records came out as 2,922
            why = f"hold each record up to {-(-size // period)} times, and LtcEncode would code it once per window"
        else:  # 200 records: 100 came out, no error
            why = "leave the records between them in no window, and they would be lost"
        raise InputError(
            f"sliding windows of {size / 1e6:g} s every {period / 1e6:g} s {why}: window with FixedWindows (or Sessions) before compressing"
        )
    return fn.is_merging()


class _FormChunks(beam.DoFn):
    """One series (per window) → full chunks (units) and its tail (to packing)."""

    def __init__(self, *, order_by, rows, unit_rows, pack_shards, schema, late, key):
        self.order_by = order_by
        self.rows = rows
        self.unit_rows = unit_rows
        self.pack_shards = pack_shards
        self.schema = schema
        self.late = late
        self.key = key

    def setup(self):
        self.late_records = Metrics.counter(NAMESPACE, "records_late")
        self.late_dead = Metrics.counter(NAMESPACE, "records_late_dead_letter")
        self.dead = Metrics.counter(NAMESPACE, "records_dead_letter")  # all dead letters, late ones too
        self.tied = Metrics.counter(NAMESPACE, TIED_COUNTER)
        self.unordered = Metrics.counter(NAMESPACE, UNORDERED_COUNTER)

    def process(self, element, pane=beam.DoFn.PaneInfoParam):
        kb, values = element
        values = list(values)
        if not values:  # an empty pane (Beam fires the on-time pane after early firings)
            return
        series = _series(values, self.schema, self.order_by)
        self.tied.inc(arrow.tied_records(series, self.order_by))
        self.unordered.inc(arrow.unordered_records(series, self.order_by))
        if pane is not None and pane.timing == PaneInfoTiming.LATE:
            self.late_records.inc(series.num_rows)
            if self.late == "dead_letter":
                self.late_dead.inc(series.num_rows)
                self.dead.inc(series.num_rows)
                for row, record in enumerate(_records(series)):
                    key = record.get(self.key) if self.key else None
                    msg = f"record arrived after its window closed (late pane {pane.index}); late='dead_letter'"
                    yield (DEAD, _dead_letter(msg, None, row, key, record))
                return
        chunks, rest = arrow.cut(series, self.rows)
        for unit in _units(chunks, self.unit_rows):
            yield (UNIT, unit)  # encoded in this same (fused) stage: no serialisation
        if rest is not None:  # pack_shards None: each series' tail apart (merging windows)
            shard = kb if self.pack_shards is None else arrow.shard_of(kb, self.pack_shards)
            yield (TAIL, (shard, (kb, arrow.to_ipc(rest))))


class _FormShard(beam.DoFn):
    """``(shard, [(series key, part)])`` → ``(shard, units)``: every series of the shard
    ordered and cut, in key order, then the shard's tails packed; chunks grouped in units."""

    def __init__(self, *, order_by, rows, unit_rows, schema, key=None):
        self.order_by = order_by
        self.rows = rows
        self.unit_rows = unit_rows
        self.schema = schema
        self.key = key

    def setup(self):
        self.tied = Metrics.counter(NAMESPACE, TIED_COUNTER)
        self.unordered = Metrics.counter(NAMESPACE, UNORDERED_COUNTER)

    def process(self, element):
        shard, items = element
        groups: dict[bytes, list] = {}
        bundles = []
        for kb, part in items:
            if kb.startswith(BUNDLE):
                bundles.append(part)
            else:
                groups.setdefault(kb, []).append(part)
        if bundles:  # in a deterministic order (a shuffle's is not: input order, else digests), then split by series
            tables = [arrow.from_ipc(b) for b in bundles]
            ranks = [(arrow.position(t), arrow.digest(b)) for b, t in zip(bundles, tables)]
            table = arrow.without_position(arrow.concat([tables[i] for i in sorted(range(len(tables)), key=ranks.__getitem__)]))
            if not groups:  # tables only: the shard's series ordered and cut in one sort
                chunks, tied = arrow.chunks_of_series(table, self.key, self.order_by, self.rows)
                self.tied.inc(tied)
                self.unordered.inc(arrow.unordered_records(table, self.order_by))
                yield (shard, _units(chunks, self.unit_rows))
                return
            for _, kb, rows in arrow.split_by_key(table, self.key):
                groups.setdefault(kb, []).append(rows)
        chunks, tails = [], []
        for kb in sorted(groups):
            series = _series(groups.pop(kb), self.schema, self.order_by)
            self.tied.inc(arrow.tied_records(series, self.order_by))
            self.unordered.inc(arrow.unordered_records(series, self.order_by))
            full, rest = arrow.cut(series, self.rows)
            chunks += full
            if rest is not None:
                tails.append((kb, rest))
        if tails:
            chunks += arrow.pack_tails(tails, self.rows)
        yield (shard, _units(chunks, self.unit_rows))


class _PackTails(beam.DoFn):
    def __init__(self, *, rows, unit_rows):
        self.rows = rows
        self.unit_rows = unit_rows

    def process(self, element):
        _, tails = element
        tails = list(tails)
        if not tails:
            return
        yield from _units(arrow.pack_tails([(kb, arrow.from_ipc(t)) for kb, t in tails], self.rows), self.unit_rows)


class _Account(beam.DoFn):
    """Beam metrics of the compressed output; tables or rows out."""

    def __init__(self, output: str, record_dim: int):
        self.output = output
        self.record_dim = record_dim

    def setup(self):
        self.records = Metrics.counter(NAMESPACE, "records_encoded")
        self.values = Metrics.counter(NAMESPACE, "values_encoded")
        self.bytes_in = Metrics.counter(NAMESPACE, "bytes_in")
        self.bytes_out = Metrics.counter(NAMESPACE, "bytes_out")
        self.chunks = Metrics.counter(NAMESPACE, "payloads")
        self.bpv = Metrics.distribution(NAMESPACE, "payload_millibits_per_value")

    def process(self, element):
        table = element[1] if isinstance(element, tuple) else element  # (shard, table)
        info = arrow.table_info(table.schema)
        if info.layout == "chunk":
            records = int(pc.sum(table.column(arrow.COUNT)).as_py() or 0)
        else:
            records = table.num_rows
        payload = int(pc.sum(pc.binary_length(table.column(arrow.PAYLOAD))).as_py() or 0)
        values = records * self.record_dim
        self.records.inc(records)
        self.values.inc(values)
        self.bytes_in.inc(values * 4)
        self.bytes_out.inc(payload)
        self.chunks.inc(table.num_rows)
        if values:
            self.bpv.update(int(round(1000 * payload * 8 / values)))
        if progress_callback is not None:
            progress_callback(records)
        if self.output == "table":
            yield element
        else:
            yield from table.to_pylist()


class LtcEncode(beam.PTransform):
    """Compress records with an LTC codec into the chunk or record layout.

    Input: ``pa.Table`` / ``RecordBatch`` batches (fast path), or ``dict`` / ``beam.Row``
    records. Output: compressed ``pa.Table`` elements (``output="table"``; see
    :meth:`output_schema` for a sink's schema) or one ``dict`` per compressed row
    (``output="rows"``). With ``dead_letter=True`` the result is a dict
    ``{"encoded": ..., "dead_letter": ...}``; dead letters are dicts with ``error`` (names
    the column and row), ``column``, ``row``, ``key`` and ``record``. Without it, the first
    bad record fails the pipeline with that message.

    ``key``: records of one key value form a series; ``order_by`` orders each series (a
    codec of windows of records needs it). With ``order_by`` alone, every record (of one
    window, when streaming) is one series; with neither, each input table is a series of its
    own, and dict records spread over ``pack_shards`` series.

    ``schema``: the Arrow schema of ``dict`` / ``Row`` records. Each record's fields are
    checked against it (a value that does not convert, or a float with a fraction for an
    integer field, makes the record bad); fields it does not name are left out. Without it,
    each series' types are inferred from its records, and a field only some records carry
    is null in the others.

    ``sample_fallback=False`` keeps every stream lattice-coded (no sample-coding fallback,
    :mod:`ltc_beam.codec.sample_coding`; no version-2 stream). ``rd_quantization=False``
    codes the nearest lattice points (no rate–distortion choice,
    :mod:`ltc_beam.codec.rd_quantization`: more bits at low rate, encoding 2-3x as fast),
    ``True`` makes the choice whatever the codec chose when it was frozen; ``None``
    (default): as the codec chose. ``leave_out_repeats=False`` codes every record, also those
    that repeat the record before them (:mod:`ltc_beam.repeats`; no version-5 stream, so
    releases before it read the output).

    ``unit_rows``: most records one ``RunInference`` call codes (whole chunks; default
    65,536). ``pack_shards``: groups the short series' tails are packed in (default 4).

    Streaming: the grouping follows the input's windowing, so chunks form per window (and
    key) and flush when the window's trigger fires. Late records that the window still
    admits (its ``allowed_lateness``) arrive in a late pane: ``late="keep"`` (default)
    encodes them as extra chunks of their own window, ``late="dead_letter"`` routes them
    to the dead-letter output. Records later than ``allowed_lateness`` are dropped by
    Beam's windowing before they reach LtcEncode's grouping: set the input window's
    ``allowed_lateness`` to cover the lateness you expect (``records_in`` vs
    ``records_encoded`` + ``records_dead_letter`` metrics show any shortfall; late records
    sent to the dead-letter output count in ``records_dead_letter`` too, and in
    ``records_late_dead_letter``).
    """

    def __init__(
        self,
        codec_uri: str,
        *,
        column: str | None = None,
        columns=None,
        key: str | None = None,
        order_by: str | None = None,
        layout: str = "chunk",
        chunk_size: int | None = None,
        device: str = "auto",
        embed_codec: bool = True,
        sample_fallback: bool = True,
        rd_quantization: bool | None = None,
        leave_out_repeats: bool = True,
        dead_letter: bool = False,
        late: str = "keep",
        schema: pa.Schema | None = None,
        output: str = "table",
        unit_rows: int = 65536,
        pack_shards: int = arrow.DEFAULT_PACK_SHARDS,
        model_copies: int | None = None,
        share_across_processes: bool = False,
    ):
        super().__init__()
        if isinstance(columns, str):
            columns = [c for c in columns.split(",") if c]
        if late not in LATE_POLICIES:
            raise InputError(f"late must be one of {LATE_POLICIES}, got {late!r}")
        if late == "dead_letter" and not dead_letter:  # late records went to an output no one had made: lost
            raise InputError(
                "late='dead_letter' sends late records to the dead-letter output: make it (dead_letter=True; "
                "dead_letter_path=FILE for EncodeToParquet / CompressParquet), or keep them (late='keep')"
            )
        if output not in OUTPUTS:
            raise InputError(f"output must be one of {OUTPUTS}, got {output!r}")
        if column is not None and columns is not None:
            raise InputError("give column= (one vector column) or columns= (scalar columns), not both")
        for name, value in (("unit_rows", unit_rows), ("pack_shards", pack_shards)):
            if int(value) < 1:
                raise InputError(f"{name} must be at least 1, got {value!r}")
        self.codec_uri = codec_uri
        self.column = column
        self.columns = list(columns) if columns is not None else None
        self.key = key
        self.order_by = order_by
        self.layout = layout
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.device = device
        self.embed_codec = embed_codec
        self.sample_fallback = sample_fallback
        self.rd_quantization = rd_quantization
        self.leave_out_repeats = leave_out_repeats
        self.dead_letter = dead_letter
        self.late = late
        self.schema = schema
        self.output = output
        self.unit_rows = int(unit_rows)
        self.pack_shards = int(pack_shards)
        self.model_copies = model_copies
        self.share_across_processes = share_across_processes

    def _codec(self):
        return arrow.load_codec(self.codec_uri)

    def _settings(self) -> _EncodeSettings:
        return _EncodeSettings(
            layout=self.layout,
            column=self.column,
            columns=self.columns,
            key=self.key,
            order_by=self.order_by,
            chunk_size=self.chunk_size,
            embed_codec=self.embed_codec,
            schema=self.schema,
            sample_fallback=self.sample_fallback,
            rd_quantization=self.rd_quantization,
            leave_out_repeats=self.leave_out_repeats,
        )

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """The compressed schema (with metadata) for input ``input_schema``: give it to the sink."""
        return self._settings().compressed_schema(input_schema, self._codec())

    def _checked_codec(self):
        codec = self._codec()
        arrow.check_layout(codec, self.layout)
        if arrow.window_needs_order(codec) and self.order_by is None:
            raise InputError(arrow.window_order_message(codec))
        if self.schema is not None:
            self.output_schema(self.schema)  # fail at construction on a bad column choice
        return codec

    def _prepare(self, pcoll, codec, bundles: int | None = None):
        return pcoll | "Prepare" >> beam.ParDo(
            _Prepare(
                record_dim=codec.config.record_dim,
                column=self.column,
                columns=self.columns,
                default_columns=codec.manifest.get("columns", ()),
                key=self.key,
                order_by=self.order_by,
                schema=self.schema,
                dead_letter=self.dead_letter,
                shards=self.pack_shards,
                bundles=bundles,
            )
        )

    def _inference(self):
        handler = LtcModelHandler(
            self.codec_uri,
            task="encode",
            device=self.device,
            settings=self._settings(),
            model_copies=self.model_copies,
            share_across_processes=self.share_across_processes,
        )
        return RunInference(handler.with_no_batching())

    def _result(self, encoded, *dead_sources):
        """``encoded``, or with dead letters both outputs: the dead letters of every stage, in
        the input's windowing (those found after the grouping had its continuation trigger,
        and Beam warned "All input pcollections must have the same window" on every run)."""
        if not self.dead_letter:
            return encoded
        windowing = dead_sources[0].windowing
        parts = []
        for i, src in enumerate(dead_sources):
            part = src | f"SelectDead{i}" >> _select(DEAD)
            if part.windowing != windowing:
                part = part | f"InputWindowsDead{i}" >> beam.WindowInto(
                    windowing.windowfn, trigger=windowing.triggerfn, accumulation_mode=windowing.accumulation_mode,
                    timestamp_combiner=windowing.timestamp_combiner, allowed_lateness=windowing.allowed_lateness,
                )
            parts.append(part)
        return {"encoded": encoded, "dead_letter": tuple(parts) | "DeadLetters" >> beam.Flatten()}

    def expand(self, pcoll):
        codec = self._checked_codec()
        rows = arrow.chunk_rows(codec, self.chunk_size)
        merging = check_windowing(pcoll)
        prepared = self._prepare(pcoll, codec)
        formed = (
            prepared
            | "SelectParts" >> _select(PART)
            | "GroupSeries" >> beam.GroupByKey()
            | "FormChunks"
            >> beam.ParDo(
                _FormChunks(
                    order_by=self.order_by,
                    rows=rows,
                    unit_rows=self.unit_rows,
                    pack_shards=None if merging else self.pack_shards,
                    schema=self.schema,
                    late=self.late,
                    key=self.key,
                )
            )
        )
        packed = (
            formed
            | "SelectTails" >> _select(TAIL)
            | "GroupTails" >> beam.GroupByKey()
            | "PackTails" >> beam.ParDo(_PackTails(rows=rows, unit_rows=self.unit_rows)).with_output_types(List[pa.Table])
        )
        # Each branch encodes where its chunks were formed: flattening the (raw) units first
        # would move all the input through the runner's data plane once more.
        encoded = (
            formed
            | "SelectUnits" >> _select(UNIT).with_output_types(List[pa.Table])
            | "Encode" >> self._inference().with_output_types(pa.Table),
            packed | "EncodeTails" >> self._inference().with_output_types(pa.Table),
        ) | "Encoded" >> beam.Flatten() | "Account" >> beam.ParDo(_Account(self.output, codec.config.record_dim)).with_output_types(
            _OUTPUT_TYPES[self.output]
        )
        return self._result(encoded, prepared, formed)


def _file_of(kv: tuple, shards: int) -> tuple[int, Any]:
    """``(output file, (series key or bundle key, part))``."""
    kb = kv[0]
    return (int(kb[len(BUNDLE):]) if kb.startswith(BUNDLE) else arrow.shard_of(kb, shards), kv)


class LtcEncodeShards(LtcEncode):
    """``LtcEncode`` for a bounded input headed for ``num_shards`` files: ``(shard, table)`` out.

    Series go to shard ``hash(series key) mod num_shards`` in the one shuffle; each shard's
    series are ordered and cut in key order, its tails packed together, and the whole shard
    encoded by one ``RunInference`` call into one compressed table. One shuffle of the input
    instead of three (series, tails, output files); a shard's input is held by one worker,
    so size ``num_shards`` to the data (``CompressParquet`` does). Batch only: records of a
    series must all be in one window.
    """

    def __init__(self, codec_uri: str, *, num_shards: int, **options):
        if options.get("output", "table") != "table":
            raise InputError("LtcEncodeShards emits (shard, table) pairs: output='rows' is not available")
        super().__init__(codec_uri, **options)
        if num_shards < 1:
            raise ValueError("num_shards must be >= 1")
        self.num_shards = int(num_shards)

    def expand(self, pcoll):
        codec = self._checked_codec()
        prepared = self._prepare(pcoll, codec, bundles=self.num_shards)
        encoded = (
            prepared
            | "SelectParts" >> _select(PART)
            | "ShardOf" >> beam.Map(_file_of, self.num_shards)
            | "GroupShards" >> beam.GroupByKey()
            | "FormShards"
            >> beam.ParDo(
                _FormShard(
                    order_by=self.order_by,
                    rows=arrow.chunk_rows(codec, self.chunk_size),
                    unit_rows=self.unit_rows,
                    schema=self.schema,
                    key=self.key,
                )
            ).with_output_types(Tuple[int, List[List[pa.Table]]])
            | "Encode" >> self._inference().with_output_types(Tuple[int, pa.Table])
            | "Account" >> beam.ParDo(_Account("table", codec.config.record_dim)).with_output_types(Tuple[int, pa.Table])
        )
        return self._result(encoded, prepared)


class _AccountDecode(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def setup(self):
        self.records = Metrics.counter(NAMESPACE, "records_decoded")

    def process(self, table: pa.Table):
        self.records.inc(table.num_rows)
        if progress_callback is not None:
            progress_callback(table.num_rows)
        if self.output == "table":
            yield table
        else:
            yield from table.to_pylist()


class _ToTable(beam.DoFn):
    """Compressed rows (dicts) → a one-row table of the compressed ``schema``; tables pass."""

    def __init__(self, schema: pa.Schema | None):
        self.schema = schema

    def process(self, element):
        table = _as_table(element)
        if table is None:
            if self.schema is None:
                raise InputError("LtcDecode needs schema= (the compressed schema) to decode dict / Row elements")
            table = pa.Table.from_pylist([_as_dict(element)], schema=self.schema)
        yield [table]


class LtcDecode(beam.PTransform):
    """Decode compressed tables (either layout) back to tables (or rows) of the original schema.

    ``codec_uri``: the codec to use; by default each table's embedded codec. Elements are
    compressed ``pa.Table`` batches (from :class:`~ltc_beam.beam.io.ReadParquetTables`; Beam's
    ``ReadFromParquetBatched`` leaves a file's embedded codec out, so name the codec with it)
    or rows with ``schema=`` (the compressed schema). Records of one chunk come out in order.
    """

    def __init__(
        self,
        codec_uri: str | None = None,
        *,
        device: str = "auto",
        output: str = "table",
        schema: pa.Schema | None = None,
        model_copies: int | None = None,
        share_across_processes: bool = False,
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise InputError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.codec_uri = codec_uri
        self.device = device
        self.output = output
        self.schema = schema
        self.model_copies = model_copies
        self.share_across_processes = share_across_processes

    def expand(self, pcoll):
        handler = LtcModelHandler(
            self.codec_uri,
            task="decode",
            device=self.device,
            model_copies=self.model_copies,
            share_across_processes=self.share_across_processes,
        )
        return (
            pcoll
            | "AsUnits" >> beam.ParDo(_ToTable(self.schema)).with_output_types(List[pa.Table])
            | "Decode" >> RunInference(handler.with_no_batching()).with_output_types(pa.Table)
            | "Account" >> beam.ParDo(_AccountDecode(self.output)).with_output_types(_OUTPUT_TYPES[self.output])
        )


__all__ = ["LtcEncode", "LtcEncodeShards", "LtcDecode"]
