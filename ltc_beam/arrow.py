"""Arrow tables of compressed records, and the deterministic chunking behind them.

Data flow: an Arrow table of records (vector column(s) + pass-through columns) → chunks of
records (one series in order, or packed short series) → one LTC bitstream per chunk (or per
record) → an Arrow table in one of two layouts (``schemas/arrow_chunk_layout.json``,
``schemas/arrow_record_layout.json``), and back with :func:`decode_table`.

*chunk* layout
    one row per chunk: every pass-through column becomes ``list<original type>`` (the
    chunk's records in order), then ``ltc_count`` int32, ``ltc_codec`` string and
    ``ltc_payload`` binary (one bitstream holding the chunk's vectors).
*record* layout (vector mode, window 1)
    one row per record: pass-through columns unchanged, then ``ltc_payload`` binary.

The schema's key-value metadata (``schemas/table_metadata.schema.json``) carries a small
``ltc`` JSON entry (layout, vector columns, key, order), the original Arrow schema
(``ltc.schema``), the codec manifest (``ltc.manifest``) and, optionally, the codec itself
(``ltc.codec``, zstd-compressed then base64), so a file decodes with no other file
(:func:`ltc_beam.parquet.write_table` stores it once per Parquet file).

Chunking is a pure function of the data (not of arrival order or runner), shared by the
Beam transforms and :func:`encode_table`:

1. records are grouped into *series*: by ``key`` when given; without a key, all records
   are one series where ``order_by`` is given (``ONE_SERIES``), else every input batch is
   its own (its rows keep their order);
2. a series is ordered by ``order_by`` (stable; batches of one series are first put in
   input order where they carry it, ``ltc.position`` metadata: the file and batch of
   ``ReadParquetTables``, else in the order of their content digests, so ties resolve the
   same way everywhere);
3. it is cut into full chunks of ``chunk_rows`` records; the remainder (the *tail*, the
   whole series when it is short) goes to one of ``pack_shards`` packing groups (by a
   hash of its series key);
4. in each packing group, tails are ordered by series key bytes and concatenated, then cut
   into chunks again, so thousands of short series do not each pay a bitstream header.
   (In window mode a window may then straddle two short series: that costs a little
   accuracy at the seam, never correctness.)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import os
import re
import struct
import threading
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltc_beam.bitstream import record_payload, record_stream
from ltc_beam.errors import BEYOND_FLOAT32, CodecMismatchError, FormatError, InputError, beyond_float32, is_dataframe, names_said, not_numeric

TABLE_FORMAT = "ltc-beam-table"
#: Table format version written per layout: 2 when record-layout payloads became compact
#: (``bitstream.record_payload``; version 1 record tables, full bitstreams per row, are still
#: read); the chunk layout is unchanged at 1, so older readers keep reading it.
LAYOUT_VERSIONS = {"chunk": 1, "record": 2}
#: ... and 3, either layout (the record layout's payloads compact), where a coded column holds
#: integers: readers before it decoded them as floats, which an integer column refused
#: ("Float value -72.763016 was truncated converting to int16").
INTEGER_TABLE_VERSION = 3
READABLE_TABLE_VERSIONS = (1, 2, 3)
LAYOUTS = ("chunk", "record")

PAYLOAD = "ltc_payload"
COUNT = "ltc_count"
CODEC = "ltc_codec"
RESERVED = (PAYLOAD, COUNT, CODEC)
#: Record-layout rows decoded together (their synthesis transform in one product; see
#: ``Codec.decode_each``). Decoded values then match ``Codec.decode`` of each row up to float
#: rounding of the batched product (about 1e-7 relative), not bit for bit.
DECODE_BATCH_STREAMS = 4096

#: A null float value travels as the float32 NaN of these bits (exactly, as every NaN does)
#: and decodes as null again: pandas writes NaN as null, which was refused. A NaN of exactly
#: these bits in the input also decodes as null.
NULL_BITS = 0x7FC04C54
_NULL_FLOAT32 = np.array([NULL_BITS], np.uint32).view(np.float32)[0]
NULL_NAN = float(_NULL_FLOAT32)  # the same bits again once narrowed to float32
_NULL_WIDENED = np.array([NULL_NAN]).view(np.uint64)[0]  # NULL_NAN's float64 bits

META = b"ltc"
META_SCHEMA = b"ltc.schema"
META_MANIFEST = b"ltc.manifest"
META_CODEC = b"ltc.codec"
#: CRC-32 of the entries above but the codec (which has its own id check), written from
#: session 22: a flipped bit in the footer's ``ltc.schema`` had silently changed a column's
#: type (a timestamp's unit and zone, float32 values read as float16), and in ``ltc`` lost
#: the key (series interleaved). Files without it read as before.
META_CHECK = b"ltc.crc32"
_CHECKED = (META, META_SCHEMA, META_MANIFEST)
#: An input batch's place in the input (``ReadParquetTables``: file and batch numbers), by
#: which the batches of a series are put in order before their records are sorted, so that
#: records sharing an order value keep their input order across batches; never written out.
META_POSITION = b"ltc.position"
#: Beam schema options turn into Arrow metadata under this prefix (YAML sinks write them).
BEAM_OPTION_PREFIX = b"beam:schema_option:"

DEFAULT_CHUNK_SIZE = 4096
MIN_CHUNK_VALUES = 16384  # values per chunk at least, by default (records of fewer than 4 values)
#: Tails (short series) are packed in this many groups, by a hash of their series key.
DEFAULT_PACK_SHARDS = 4


# ====================================================================== vector columns
@dataclass(frozen=True)
class VectorSpec:
    """Where a record's vector lives: one list column, or ``record_dim`` scalar columns."""

    column: str | None
    columns: tuple[str, ...] | None
    record_dim: int

    @property
    def names(self) -> tuple[str, ...]:
        return (self.column,) if self.column is not None else tuple(self.columns)

    def to_json(self) -> dict:
        return {"column": self.column} if self.column is not None else {"columns": list(self.columns)}


def in_codec_order(names: list[str] | None, codec) -> list[str] | None:
    """``names`` in the codec's order when they are exactly its columns in another order: each
    column is then coded as the one of its name, as ``codec.encode(DataFrame)`` does (they were
    coded by position: -3.2 dB for 21 stations' ridership from the CLI, with a warning, and
    1.5 dB instead of 17.6 from ``write_parquet``/``LtcEncode``, without one)."""
    trained = list(codec.manifest.get("columns") or [])
    if names is None or generic_names(trained + list(names)) or len(set(names)) < len(names):
        return names  # no names known (v0, v1 …: by position, as documented), or a name twice
    return trained if sorted(names) == sorted(trained) else names


def generic_names(names) -> bool:
    """Whether ``names`` hold a generic one (``v0``…, ``0``… of a DataFrame's default index,
    ``values[0]``…): no names were known there."""
    return any(re.fullmatch(r"v?\d+|.*\[\d+\]", str(c)) for c in names)


def check_column_names(names, codec) -> None:
    """Warn when ``names`` (the columns being coded, in order) are not the columns the codec
    was trained on: another order codes each value as the column in its position. Generic
    names (``v0``…, ``0``… of a DataFrame's default index, ``values[0]``…: no names were
    known) are not compared."""
    trained = list(codec.manifest.get("columns") or [])
    names = list(names)
    if len(trained) != len(names) or trained == names:
        return
    if generic_names(trained + names):
        return
    if sorted(trained) == sorted(names):
        problem = f"columns {names} are the codec's columns {trained} in another order"
    else:
        problem = f"the codec was trained on columns {trained}, not {names}"
    warnings.warn(f"{problem}: each value is coded as the trained column in its position", UserWarning, stacklevel=2)


def is_coded_type(t: pa.DataType) -> bool:
    """Whether values of type ``t`` can be coded: floats, and integers (decoded to the
    nearest integer their type holds)."""
    return pa.types.is_floating(t) or pa.types.is_integer(t)


def item_type(t: pa.DataType) -> pa.DataType:
    """A list type's item type; any other type itself (what a vector column's values are)."""
    return t.value_type if is_list(t) else t


def is_list(t: pa.DataType) -> bool:
    """Whether ``t`` is a list, large list or fixed-size list type."""
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def check_present(schema: pa.Schema, *names: str | None) -> None:
    """Raise InputError naming the first of ``names`` (None: not asked for) not in ``schema``."""
    for name in names:
        if name is not None and name not in schema.names:
            raise InputError(f"column {name!r} not found (columns: {schema.names})")


#: Arrow types that ``take`` (reordering rows) has no kernel for.
_UNTAKEABLE = (pa.types.is_string_view, pa.types.is_binary_view, pa.types.is_list_view, pa.types.is_large_list_view, pa.types.is_run_end_encoded)


def check_key_and_order(schema: pa.Schema, spec: VectorSpec, key: str | None, order_by: str | None) -> None:
    """Raise InputError where the key or order column is missing, is a vector column, or (the
    key) is of a type records cannot be grouped by; or where the input holds a column of a
    name the compressed table reserves."""
    reserved = [name for name in RESERVED if name in schema.names]
    if reserved:
        raise InputError(f"column {reserved[0]!r} is reserved for compressed data: rename it (or is this input compressed already?)")
    twice = [name for name in dict.fromkeys(schema.names) if schema.names.count(name) > 1]
    if twice:
        raise InputError(f"column {twice[0]!r} appears {schema.names.count(twice[0])} times: columns need names of their own")
    check_present(schema, key, order_by)
    for name in (key, order_by):
        if name is not None and name in spec.names:
            raise InputError(f"column {name!r} is a vector column; key and order_by must be other columns")
    if key is not None or order_by is not None:  # records are then reordered, which Arrow cannot do to these
        for f in schema:
            if any(kind(f.type) for kind in _UNTAKEABLE):
                raise InputError(f"column {f.name!r} has type {f.type}, whose rows Arrow cannot reorder by key or order: cast it to its plain type (string, binary, list)")
    for role, name in (("key", key), ("order", order_by)):  # what records are grouped and sorted by
        kind = schema.field(name).type if name is not None else None
        kind = kind.value_type if kind is not None and pa.types.is_dictionary(kind) else kind
        if kind is not None and (pa.types.is_nested(kind) or pa.types.is_floating(kind) and kind.bit_width == 16):
            raise InputError(f"{role} column {name!r} has type {kind}: {'a' if role == 'key' else 'an'} {role} must be a number, text, bytes, a boolean or a time")


def column_count_error(columns, record_dim: int, codec_columns) -> InputError:
    """The error for value ``columns`` that are not the codec's ``record_dim`` values per record."""
    theirs = f" (its columns: {names_said(codec_columns)})" if codec_columns else ""
    return InputError(
        f"columns {names_said(columns)} are {len(columns)} values per record, the codec expects {record_dim}{theirs}; "
        "name them with column= or columns="
    )


def resolve_spec(schema: pa.Schema, record_dim: int, *, column=None, columns=None, default_columns=()) -> VectorSpec:
    """Check the named vector column(s) against ``schema``; raise InputError naming the column."""
    if column is not None and columns is not None:
        raise InputError("give column= or columns=, not both")
    if isinstance(columns, str):
        columns = [c for c in columns.split(",") if c]
    names = set(schema.names)
    if column is None and columns is None:
        scalars = [c for c in default_columns if c in names]
        if default_columns and len(scalars) == len(default_columns):
            columns = list(default_columns)
        else:
            lists = [f.name for f in schema if is_list(f.type) and pa.types.is_floating(f.type.value_type)]
            if len(lists) != 1:
                raise InputError(
                    f"cannot tell which column holds the vectors (codec columns {list(default_columns)}, "
                    f"float list columns {lists}): name it with column= or columns="
                )
            column = lists[0]
    for name in [column] if column is not None else columns:
        if name in RESERVED:
            raise InputError(f"column {name!r} is reserved for compressed data")
        if name not in names:
            raise InputError(f"column {name!r} not found (columns: {schema.names})")
    if column is not None:
        t = schema.field(column).type
        if is_coded_type(t) and record_dim == 1:
            return VectorSpec(None, (column,), 1)
        if not is_list(t) and record_dim == 1 and pa.types.is_decimal(t):  # numbers, not floats
            raise not_numeric(column, f"has type {t}")
        if not is_list(t):
            raise InputError(f"column {column!r} has type {t}: expected a list of floats with {record_dim} values per row")
        if not is_coded_type(t.value_type):
            raise not_numeric(column, f"holds {t.value_type} values")
        if pa.types.is_fixed_size_list(t) and t.list_size != record_dim:
            raise InputError(f"column {column!r} holds {t.list_size} values per row, the codec expects {record_dim}")
        return VectorSpec(column, None, record_dim)
    columns = tuple(columns)
    if len(columns) != record_dim:
        raise column_count_error(columns, record_dim, default_columns)
    if len(set(columns)) != len(columns):
        raise InputError(f"columns {list(columns)} name a column twice")
    for name in columns:
        t = schema.field(name).type
        if not is_coded_type(t):
            raise not_numeric(name, f"has type {t}")
    return VectorSpec(None, columns, record_dim)


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Per-row lengths (0 for null rows) and the values array of a (fixed size / large) list array."""
    if pa.types.is_fixed_size_list(arr.type):
        n = len(arr)
        size = arr.type.list_size
        lengths = np.full(n, size, np.int64)
        # the raw child slice (flatten() would skip null rows and shift the row numbers)
        return lengths, arr.values.slice(arr.offset * size, n * size)
    offsets = np.asarray(arr.offsets)
    lengths = np.diff(offsets).astype(np.int64)
    values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return lengths, values


def float_values(arr: pa.Array, dtype=np.float32) -> np.ndarray:
    """A float or integer Arrow array as numpy ``dtype``, its nulls the NaN of ``NULL_BITS``
    (integers beyond the float's exact range rounded: a safe cast refused 16,777,217)."""
    target = pa.float64() if np.dtype(dtype) == np.float64 else pa.float32()
    out = np.asarray(arr.cast(target, safe=not pa.types.is_integer(arr.type)).to_numpy(zero_copy_only=False), dtype)
    nan = np.flatnonzero(np.isnan(out)) if pa.types.is_float64(arr.type) else ()
    if len(nan):  # a NaN that narrows to the null's bits (2**29 float64 NaNs do) but is not the null's own
        # widened bits (Beam's records carry nulls so) stays a NaN: it decoded as null
        wide = (out if out.dtype == np.float64 else np.asarray(arr.to_numpy(zero_copy_only=False), np.float64))[nan]
        collides = nan[(wide.astype(np.float32).view(np.uint32) == NULL_BITS) & (wide.view(np.uint64) != _NULL_WIDENED)]
        if collides.size:
            out = out.copy()
            out[collides] = np.nan
    if arr.null_count:
        out = out.copy()
        out[~np.asarray(arr.is_valid())] = _NULL_FLOAT32  # widened where dtype is float64
    return out


def null_mask(x: np.ndarray) -> np.ndarray | None:
    """Where decoded float32 values are the null NaN (None when nowhere)."""
    mask = np.ascontiguousarray(x, np.float32).view(np.uint32) == NULL_BITS
    return mask if mask.any() else None


def nearest_integers(x: np.ndarray, kind: np.dtype) -> np.ndarray:
    """Decoded values as the nearest integers integer type ``kind`` holds (float64; a
    non-finite value, the null NaN, as 0)."""
    info = np.iinfo(kind)
    high = float(info.max) if float(info.max) <= info.max else np.nextafter(float(info.max), 0)  # 2**63 - 1 → 2**63
    return np.clip(np.round(np.where(np.isfinite(x), x, 0).astype(np.float64)), info.min, high)


def decoded_array(x: np.ndarray, to: pa.DataType) -> pa.Array:
    """Decoded float32 values ``[n]`` (the null NaN: null) as an array of type ``to``.
    Finite values beyond float16's range stay finite, at its largest (65,504): a float16
    column near that limit decoded 2-3 % of its values as +inf, silently. An integer
    column's values are the nearest integers its type holds."""
    mask = null_mask(x)
    if pa.types.is_integer(to):
        kind = np.dtype(to.to_pandas_dtype())
        return pa.array(nearest_integers(x, kind).astype(kind), to, mask=mask)
    if pa.types.is_float16(to):
        top = np.finfo(np.float16).max
        x = np.where(np.isfinite(x), np.clip(x, -top, top), x)
    return pa.array(x, pa.float32(), mask=mask).cast(to)


def find_bad_rows(table: pa.Table, spec: VectorSpec) -> dict[int, tuple[str, str]]:
    """Rows whose vector cannot be coded: ``{row: (column, problem)}`` (first problem per row)."""
    bad: dict[int, tuple[str, str]] = {}
    n = table.num_rows
    if spec.column is not None:
        arr = table.column(spec.column).combine_chunks() if n else pa.array([], table.schema.field(spec.column).type)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        valid = np.ones(n, bool) if arr.null_count == 0 else np.asarray(arr.is_valid())
        for r in np.flatnonzero(~valid):
            bad.setdefault(int(r), (spec.column, "vector is null"))
        lengths, values = _list_parts(arr)
        wrong = valid & (lengths != spec.record_dim)
        for r in np.flatnonzero(wrong):
            bad.setdefault(int(r), (spec.column, f"vector has {lengths[r]} values, the codec expects {spec.record_dim}"))
        owner = np.repeat(np.arange(n), lengths)
        for r in np.unique(owner[_beyond_float32(values)]):
            bad.setdefault(int(r), (spec.column, f"vector holds a {BEYOND_FLOAT32}"))
    else:
        for name in spec.columns:
            col = table.column(name)
            for r in np.flatnonzero(_beyond_float32(col)):
                bad.setdefault(int(r), (name, BEYOND_FLOAT32))
    return dict(sorted(bad.items()))


def _beyond_float32(values) -> np.ndarray:
    """``beyond_float32`` of an Arrow array (nulls count as in range)."""
    if not pa.types.is_floating(values.type) or values.type.bit_width <= 32:
        return np.zeros(len(values), bool)
    return beyond_float32(np.asarray(values.fill_null(0).to_numpy(zero_copy_only=False)))


def vectors(table: pa.Table, spec: VectorSpec, *, where: str = "", dtype=np.float32) -> np.ndarray:
    """The ``[rows, record_dim]`` vectors of ``table`` (float32, what codecs take, or
    ``dtype=np.float64`` to compare with the values as stored); InputError names column and row."""
    bad = find_bad_rows(table, spec)
    if bad:
        row, (col, problem) = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise InputError(f"column {col!r}, row {row}{where}: {problem}{more}")
    n = table.num_rows
    if spec.column is not None:
        arr = table.column(spec.column).combine_chunks()
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not n:
            return np.zeros((0, spec.record_dim), dtype)
        _, values = _list_parts(arr)
        return float_values(values, dtype).reshape(n, spec.record_dim)
    cols = [float_values(table.column(c).combine_chunks(), dtype) for c in spec.columns]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype)


def vector_array(x: np.ndarray, field: pa.Field) -> pa.Array:
    """Decoded vectors as an array of the original list type."""
    t = field.type
    flat = x.reshape(-1)
    values = decoded_array(flat, t.value_type)
    if pa.types.is_fixed_size_list(t):
        return pa.FixedSizeListArray.from_arrays(values, type=t)
    offsets = np.arange(0, x.size + 1, x.shape[1] if x.ndim == 2 else 1, dtype=np.int64)
    cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
    offsets = pa.array(offsets, pa.int64() if pa.types.is_large_list(t) else pa.int32())
    return cls.from_arrays(offsets, values, type=t)


# ====================================================================== schemas & metadata
def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def schema_to_bytes(schema: pa.Schema) -> bytes:
    return _b64(schema.serialize().to_pybytes())


def schema_from_bytes(data: bytes) -> pa.Schema:
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data)))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a format error
        raise FormatError(f"stored original schema ({META_SCHEMA.decode()}) is unreadable: {exc}") from exc


def codec_to_metadata(codec) -> bytes:
    """The embedded codec: the (zstd-compressed) artifact, base64."""
    from ltc_beam.codec.artifact import codec_to_bytes

    return _b64(codec_to_bytes(codec))


def codec_from_metadata(data: bytes, device: str = "cpu"):
    from ltc_beam.codec.artifact import codec_from_bytes

    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise FormatError(f"embedded codec ({META_CODEC.decode()}) is unreadable: {exc}") from exc
    try:
        return codec_from_bytes(raw, device=device)
    except FormatError as exc:
        raise FormatError(f"embedded codec ({META_CODEC.decode()}) is unreadable: {exc}") from exc


@dataclass(frozen=True)
class TableInfo:
    """The ``ltc`` metadata entry of a compressed table."""

    layout: str
    codec_id: str
    spec: VectorSpec
    key: str | None = None
    order_by: str | None = None
    chunk_size: int | None = None
    version: int | None = None  # None: the version this build writes for the layout

    @property
    def format_version(self) -> int:
        return self.version or LAYOUT_VERSIONS[self.layout]

    def to_json(self) -> bytes:
        out = {
            "format": TABLE_FORMAT,
            "version": self.format_version,
            "layout": self.layout,
            "codec_id": self.codec_id,
            "record_dim": self.spec.record_dim,
            **self.spec.to_json(),
        }
        for name in ("key", "order_by", "chunk_size"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "TableInfo":
        try:
            d = json.loads(data)
            if d.get("format") != TABLE_FORMAT:
                raise FormatError(f"metadata entry 'ltc' is not {TABLE_FORMAT} (format {d.get('format')!r})")
            if d.get("version") not in READABLE_TABLE_VERSIONS:
                raise FormatError(
                    f"compressed table format version {d.get('version')} is not supported "
                    f"(this build reads {', '.join(map(str, READABLE_TABLE_VERSIONS))})"
                )
            if d["layout"] not in LAYOUTS:
                raise FormatError(f"unknown layout {d['layout']!r}")
            cols = d.get("columns")
            spec = VectorSpec(d.get("column"), tuple(cols) if cols is not None else None, int(d["record_dim"]))
            return cls(d["layout"], d["codec_id"], spec, d.get("key"), d.get("order_by"), d.get("chunk_size"), d["version"])
        except FormatError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"metadata entry 'ltc' is malformed: {exc}") from exc


def _beam_option_value(raw: bytes) -> bytes | None:
    """Value of a Beam schema option (a serialized schema_pb2.Option holding a string)."""
    try:
        from apache_beam.portability.api import schema_pb2

        opt = schema_pb2.Option()
        opt.ParseFromString(raw)
        return opt.value.atomic_value.string.encode()
    except Exception:  # noqa: BLE001
        return None


def metadata_check(meta: dict[bytes, bytes]) -> bytes:
    """The ``META_CHECK`` value of ``meta``'s checked entries (each length-prefixed)."""
    crc = 0
    for key in _CHECKED:
        value = meta.get(key, b"")
        crc = zlib.crc32(struct.pack("<Q", len(value)) + value, crc)
    return b"%08x" % crc


def ltc_metadata(schema: pa.Schema) -> dict[bytes, bytes]:
    """The ``ltc*`` entries of a schema's metadata (also found as Beam schema options);
    ``FormatError`` where they do not match their checksum (``META_CHECK``)."""
    names = (*_CHECKED, META_CODEC, META_CHECK)
    meta = schema.metadata or {}
    out = {k: v for k, v in meta.items() if k in names}
    for k, v in meta.items():
        if k.startswith(BEAM_OPTION_PREFIX):
            name = k[len(BEAM_OPTION_PREFIX) :]
            if name in names and name not in out:
                value = _beam_option_value(v)
                if value is not None:
                    out[name] = value
    if META_CHECK in out and out[META_CHECK] != metadata_check(out):
        raise FormatError(
            "the table's ltc metadata (its original schema, key and order columns, codec manifest) is damaged: "
            f"its checksum ({META_CHECK.decode()}) does not match"
        )
    return out


def is_compressed(schema: pa.Schema) -> bool:
    return META in ltc_metadata(schema) or PAYLOAD in schema.names


def compressed_schema(
    schema: pa.Schema,
    codec,
    *,
    layout: str = "chunk",
    column=None,
    columns=None,
    key: str | None = None,
    order_by: str | None = None,
    chunk_size: int | None = None,
    embed_codec: bool = True,
) -> pa.Schema:
    """The schema of the compressed table for input ``schema`` (with all ``ltc`` metadata)."""
    spec = resolve_spec(
        schema, codec.config.record_dim, column=column, columns=in_codec_order(columns, codec),
        default_columns=codec.manifest.get("columns", ()),
    )
    check_layout(codec, layout)
    check_key_and_order(schema, spec, key, order_by)
    fields = []
    for f in schema:
        if f.name in spec.names:
            continue
        if f.name in RESERVED:
            raise InputError(f"input column {f.name!r} uses a name reserved for compressed data")
        if layout == "chunk":
            fields.append(pa.field(f.name, pa.list_(pa.field("item", f.type, f.nullable, f.metadata)), True))
        else:
            fields.append(f)
    if layout == "chunk":
        fields += [pa.field(COUNT, pa.int32(), False), pa.field(CODEC, pa.string(), False)]
    fields.append(pa.field(PAYLOAD, pa.binary(), False))
    if layout == "chunk" and chunk_size is None:
        chunk_size = default_chunk_size(codec)
    integers = any(pa.types.is_integer(item_type(schema.field(name).type)) for name in spec.names)
    info = TableInfo(layout, codec.id, spec, key, order_by, chunk_size if layout == "chunk" else None,
                     INTEGER_TABLE_VERSION if integers else None)
    meta = {
        META: info.to_json(),
        META_SCHEMA: schema_to_bytes(schema),
        META_MANIFEST: json.dumps(codec.manifest, separators=(",", ":"), sort_keys=True).encode(),
    }
    meta[META_CHECK] = metadata_check(meta)
    if embed_codec:
        meta[META_CODEC] = embedded_codec(codec)
    return pa.schema(fields, metadata=meta)


_EMBED_CACHE: dict[str, bytes] = {}


def embedded_codec(codec) -> bytes:
    """The codec as stored in Parquet metadata (``ltc.codec``), made once per codec id."""
    if codec.id not in _EMBED_CACHE:
        _EMBED_CACHE[codec.id] = codec_to_metadata(codec)
    return _EMBED_CACHE[codec.id]


def check_layout(codec, layout: str) -> None:
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    cfg = codec.config
    if layout == "record" and codec.series_scaled:
        raise InputError("the record layout cannot carry the statistics of a codec trained with normalise='series'; use layout='chunk'")
    if layout == "record" and not cfg.per_record:
        raise InputError(
            f"the record layout needs a vector-mode codec with window 1 (this codec: mode {cfg.mode}, "
            f"window {cfg.window}); use layout='chunk'"
        )


def default_chunk_size(codec) -> int:
    """``DEFAULT_CHUNK_SIZE`` records, or ``MIN_CHUNK_VALUES`` values' worth for records of
    fewer values: a bitstream's ~34 bytes of framing and coder state cost 0.07 bit/value
    in chunks of 4,096 one-value records, 0.017 in chunks of 16,384."""
    return default_chunk_records(codec.config.record_dim)


def default_chunk_records(record_dim: int) -> int:
    """:func:`default_chunk_size` for records of ``record_dim`` values."""
    return max(DEFAULT_CHUNK_SIZE, -(-MIN_CHUNK_VALUES // record_dim))


def chunk_rows(codec, chunk_size: int | None) -> int:
    """Records per chunk: ``chunk_size`` (None: :func:`default_chunk_size`) rounded up to
    whole windows × lattice blocks."""
    if chunk_size is None:
        chunk_size = default_chunk_size(codec)
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    unit = codec.config.window * codec.config.vectors_per_block
    return -(-chunk_size // unit) * unit


# ====================================================================== deterministic chunking
def canonical(value) -> bytes:
    """Stable bytes of a Python value (series keys and record digests; not ``hash()``)."""
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"?1" if value else b"?0"
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, float):
        return b"f" + struct.pack("<d", value)
    if isinstance(value, str):
        return b"s" + struct.pack("<I", len(value.encode())) + value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"b" + struct.pack("<I", len(value)) + bytes(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return b"t" + value.isoformat().encode()
    if isinstance(value, np.ndarray):
        return b"a" + str(value.dtype).encode() + str(value.shape).encode() + value.tobytes()
    if isinstance(value, np.generic):
        return canonical(value.item())
    if isinstance(value, (list, tuple)):
        return b"[" + b"".join(canonical(v) for v in value) + b"]"
    if isinstance(value, dict):
        return b"{" + b"".join(canonical(k) + canonical(v) for k, v in value.items()) + b"}"
    if hasattr(value, "_asdict"):
        return canonical(dict(value._asdict()))
    return b"r" + repr(value).encode()


def to_ipc(table: pa.Table) -> bytes:
    """Arrow IPC stream bytes of a table (schema metadata included): the cheap way to move
    a table through a shuffle (several times faster than pickling it)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def table_digest(table: pa.Table) -> bytes:
    """Content digest of a table (its IPC stream bytes, metadata excluded)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table)
    return digest(sink.getvalue().to_pybytes())


#: The series of every record given ``order_by`` without ``key``: one series in that order,
#: as ``train`` and ``evaluate`` read such data (each input file was a series of its own:
#: a time series split over files came back out of order, its windows cut at each file).
ONE_SERIES = b"="


def unkeyed_series(batch: pa.Table, order_by: str | None) -> bytes:
    """The series key of a batch without ``key``: ``ONE_SERIES`` with ``order_by``, else the
    batch's own (its content digest)."""
    return ONE_SERIES if order_by is not None else b"#" + table_digest(batch)


def shard_of(key_bytes: bytes, shards: int) -> int:
    return int.from_bytes(digest(key_bytes)[:8], "little") % max(1, shards)


def split_by_key(table: pa.Table, key: str) -> list[tuple[object, bytes, pa.Table]]:
    """``[(key value, key bytes, rows of that key in input order)]``, ordered by key bytes.

    One stable reordering of the batch by key, then zero-copy slices of it.
    """
    if table.num_rows == 0:
        return []
    codes, values, labels = key_codes(table, key)
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(codes)]])
    grouped = table if _is_identity(order) else table.take(pa.array(order))
    out = []
    for start, end in zip(starts, ends):
        code = codes[start]
        out.append((values[code], labels[code], grouped.slice(int(start), int(end - start))))
    out.sort(key=lambda item: item[1])
    return out


def key_codes(table: pa.Table, key: str) -> tuple[np.ndarray, list, list[bytes]]:
    """Each row's code of its ``key`` value (0: null), and for each code the value and its
    :func:`canonical` bytes (the series key bytes)."""
    column = table.column(key).combine_chunks()
    if isinstance(column, pa.ExtensionArray):  # (a UUID key) grouped by its stored bytes
        column = column.storage
    encoded = pc.dictionary_encode(column)
    values = [None] + encoded.dictionary.to_pylist()
    return np.asarray(encoded.indices.fill_null(-1)).astype(np.int64) + 1, values, [canonical(v) for v in values]


def files_of_rows(table: pa.Table, key: str, files: int) -> np.ndarray:
    """Each row's output file: :func:`shard_of` its ``key`` value's bytes, worked out once per value."""
    codes, _, labels = key_codes(table, key)
    return np.array([shard_of(label, files) for label in labels])[codes]


def sorted_series(table: pa.Table, key: str, order_by: str | None) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    """``table`` sorted by series (their key bytes), each series by ``order_by`` (ties, or
    without it all, in input order); each row's series rank, each series' first row, length
    and key bytes."""
    codes, _, labels = key_codes(table, key)
    by_label = sorted(range(len(labels)), key=labels.__getitem__)
    rank = np.empty(len(labels), np.int64)
    rank[by_label] = np.arange(len(labels))
    series = rank[codes]
    ranks = pa.table({"series": series})  # apart from the input: any name may be one of its columns
    if order_by:
        ranks = ranks.append_column("order", table.column(order_by))
    order = sort_indices(ranks, ranks.column_names)
    series = series[np.asarray(order)]
    starts = np.flatnonzero(np.diff(series, prepend=-1))
    lengths = np.diff(np.append(starts, len(series)))
    return table.take(order), series, starts, lengths, [labels[by_label[r]] for r in series[starts]]


def chunks_of_series(table: pa.Table, key: str, order_by: str | None, rows: int) -> tuple[list[pa.Table], int]:
    """``table``'s rows as :func:`split_by_key`, :func:`order_series` (one part per series),
    :func:`cut` and :func:`pack_tails` would chunk them (the same chunks, in the same order),
    and the records tied in order (:func:`tied_records`), with one sort of the whole table
    instead of a table per series (500,000 records of 31,250 series: compress 26.3 → 22.4 s,
    the same bytes)."""
    table, series, starts, lengths, _ = sorted_series(table, key, order_by)
    tied = 0
    if order_by is not None and len(series) > 1:  # equal neighbours within a series
        tied = int((_equal_neighbours(table.column(order_by)) & (series[1:] == series[:-1])).sum())
    chunks, tail_rows = [], []
    for start, length in zip(starts.tolist(), lengths.tolist()):
        full = length // rows
        chunks += [table.slice(start + i * rows, rows) for i in range(full)]
        tail_rows.append(np.arange(start + full * rows, start + length))
    tails = table.take(pa.array(np.concatenate(tail_rows))) if tail_rows else table.slice(0, 0)
    packed, rest = cut(tails, rows)
    return chunks + packed + ([rest] if rest is not None else []), tied


def order_series(parts: list[pa.Table], order_by: str | None) -> pa.Table:
    """Batches of one series → one table in a deterministic order (see module docstring),
    without their ``META_POSITION``."""
    return without_position(_ordered(parts, order_by))


def _ordered(parts: list[pa.Table], order_by: str | None) -> pa.Table:
    """:func:`order_series`, positions kept.

    Fast path: with ``order_by`` and no repeated order values (nor two missing ones), the
    sort alone fixes the order, so the batches' content digests are computed only when
    there are ties.
    """
    parts = [p for p in parts if p.num_rows]
    if not parts:
        raise ValueError("no rows")
    if order_by is not None:
        table = concat(parts)
        if table.num_rows > 1:
            idx = sort_indices(table, [order_by])
            ordered = table if _is_identity(idx) else table.take(idx)
            if len(parts) == 1 or not (_equal_neighbours(ordered.column(order_by)).any() or unordered_records(ordered, order_by) > 1):
                return ordered
        else:
            return table
    if len(parts) > 1:
        ranks = [(position(p), table_digest(p)) for p in parts]
        parts = [parts[i] for i in sorted(range(len(parts)), key=ranks.__getitem__)]
    table = concat(parts)
    if order_by is not None and table.num_rows > 1:
        idx = sort_indices(table, [order_by])
        if not _is_identity(idx):
            table = table.take(idx)
    return table


def position(table: pa.Table) -> bytes:
    """The ``META_POSITION`` of a batch (b"" where it has none)."""
    return (table.schema.metadata or {}).get(META_POSITION, b"")


def without_position(table: pa.Table) -> pa.Table:
    """``table`` less its ``META_POSITION`` (the input's, not the data's)."""
    meta = table.schema.metadata or {}
    if META_POSITION not in meta:
        return table
    return table.replace_schema_metadata({k: v for k, v in meta.items() if k != META_POSITION} or None)


def concat(parts: list[pa.Table]) -> pa.Table:
    """Tables as one; where their schemas differ, each cast to the schemas' permissive union
    (a pass-through field None throughout one series' records is typed null there, a string
    elsewhere; float32 and float64 batches of one series give float64: cast to the first
    one's float32, the float64 values lost their precision), a field some tables lack null
    in those (an optional field of JSON-style records)."""
    if len(parts) == 1:
        return parts[0]
    schema = parts[0].schema
    original = (schema.metadata or {}).get(META_SCHEMA)
    if all(p.schema == schema and (p.schema.metadata or {}).get(META_SCHEMA) == original for p in parts):
        return pa.concat_tables(parts)
    errors = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError, ValueError)
    try:
        union = _unified([p.schema for p in parts])
        return pa.concat_tables([_with_fields(p, union).cast(union) for p in parts])
    except errors:  # no union (a dictionary key beside a string one): the union of their values,
        # a field the first table holds as a dictionary encoded again (a cast back to its type
        # failed for numbers and times, and overflowed int8 indices)
        _refuse_type_clash(parts)
        plain = [p.cast(pa.schema([f.with_type(_values_type(f.type)) for f in p.schema], metadata=p.schema.metadata)) for p in parts]
        union = _unified([p.schema for p in plain])
        try:
            joined = pa.concat_tables([_with_fields(p, union).cast(union) for p in plain])
        except errors as exc:
            raise InputError(f"tables of one series or output do not share a schema ({exc}): give them one schema") from exc
        for name in [f.name for f in schema if pa.types.is_dictionary(f.type)]:
            at = joined.schema.get_field_index(name)
            encoded = pc.dictionary_encode(joined.column(at))
            joined = joined.set_column(at, joined.schema.field(at).with_type(encoded.type), encoded)
        return joined


def _values_type(kind: pa.DataType) -> pa.DataType:
    """A dictionary type's value type, also as a list's items (a chunk table's pass-through
    column); any other type itself."""
    if pa.types.is_dictionary(kind):
        return kind.value_type
    if is_list(kind) and pa.types.is_dictionary(kind.value_type):
        item = kind.value_field.with_type(kind.value_type.value_type)
        if pa.types.is_fixed_size_list(kind):
            return pa.list_(item, kind.list_size)
        return pa.large_list(item) if pa.types.is_large_list(kind) else pa.list_(item)
    return kind


def _refuse_type_clash(parts: list[pa.Table]) -> None:
    """Raise where a field's types cannot be one type without changing values (a dictionary
    counts as its values; null, number widths and list kinds unify): a cast to the first
    table's type read records' "007" as 7, and a key "1" as 1 (two series as one)."""
    kinds: dict[str, dict[pa.DataType, None]] = {}
    for part in parts:
        for field in part.schema:
            kinds.setdefault(field.name, {})[_values_type(field.type)] = None
    for name, seen in kinds.items():
        try:
            pa.unify_schemas([pa.schema([(name, kind)]) for kind in seen], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            first, other = list(seen)[:2]
            raise InputError(
                f"field {name!r} holds {first} in some records and {other} in others, which one table cannot "
                "hold without changing values: give the records one schema (LtcEncode: schema=)"
            ) from None


def _with_fields(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns in ``schema``'s order, those it lacks all null: in a compressed
    table of the chunk layout a list of ``ltc_count`` nulls per row (one per record)."""
    have = set(table.column_names)
    chunked = META in (table.schema.metadata or {}) and table_info(table.schema).layout == "chunk"

    def nulls(field: pa.Field) -> pa.Array:
        if not chunked:
            return pa.nulls(table.num_rows, field.type)
        offsets = np.concatenate([[0], np.cumsum(table.column(COUNT).to_numpy())]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.nulls(int(offsets[-1]), field.type.value_type))

    return pa.table([table.column(f.name) if f.name in have else nulls(f) for f in schema], names=schema.names)


def _unified(schemas: list[pa.Schema]) -> pa.Schema:
    """The permissive union of ``schemas`` (the first one's metadata), its stored original
    schema (compressed tables) the union of theirs."""
    union = pa.unify_schemas(schemas, promote_options="permissive")
    meta = dict(schemas[0].metadata or {})
    if META_SCHEMA in meta:
        originals = [schema_from_bytes(s.metadata[META_SCHEMA]) for s in schemas]
        meta[META_SCHEMA] = schema_to_bytes(pa.unify_schemas(originals, promote_options="permissive"))
        if META_CHECK in meta:
            meta[META_CHECK] = metadata_check(meta)
    return union.with_metadata(meta)


def tied_records(table: pa.Table, order_by: str | None) -> int:
    """Records of an ordered series whose ``order_by`` value equals the one before: their
    order among themselves is the input's, not the signal's."""
    return 0 if order_by is None else int(_equal_neighbours(table.column(order_by)).sum())


def unordered_records(table: pa.Table, order_by: str | None) -> int:
    """Records with no ``order_by`` value (null, or NaN): they go last in their series."""
    if order_by is None:
        return 0
    column = table.column(order_by)
    nans = int(pc.sum(pc.is_nan(column)).as_py() or 0) if pa.types.is_floating(column.type) else 0
    return column.null_count + nans


def _equal_neighbours(col) -> np.ndarray:
    """Whether each value of a sorted column equals the next (a missing value equals none:
    :func:`unordered_records` counts those; compress called 14 nulls ties, and no more)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(col) < 2:
        return np.zeros(0, bool)
    equal = pc.fill_null(pc.equal(col.slice(0, len(col) - 1), col.slice(1)), False)
    return np.asarray(equal.to_numpy(zero_copy_only=False), bool)


def _is_identity(idx) -> bool:
    a = np.asarray(idx)
    return bool(np.all(a == np.arange(len(a))))


def cut(table: pa.Table, rows: int) -> tuple[list[pa.Table], pa.Table | None]:
    """Full chunks of ``rows`` records and the remainder (None when there is none)."""
    full = table.num_rows // rows
    chunks = [table.slice(i * rows, rows) for i in range(full)]
    rest = table.slice(full * rows) if table.num_rows % rows else None
    return chunks, rest


def pack_tails(tails: list[tuple[bytes, pa.Table]], rows: int) -> list[pa.Table]:
    """Short series (tails) ordered by key bytes (then content), concatenated, cut into chunks."""
    tails = [(k, t) for k, t in tails if t.num_rows]
    if not tails:
        return []
    if len({k for k, _ in tails}) == len(tails):
        tails.sort(key=lambda kt: kt[0])  # distinct keys: no content digests needed
    else:
        tails.sort(key=lambda kt: (kt[0], table_digest(kt[1])))
    chunks, rest = cut(concat([t for _, t in tails]), rows)
    return chunks + ([rest] if rest is not None else [])


def plan_chunks(
    batches: list[pa.Table],
    *,
    key: str | None,
    order_by: str | None,
    rows: int,
    pack_shards: int = DEFAULT_PACK_SHARDS,
) -> list[pa.Table]:
    """In-process chunking identical to the Beam transforms' (the same batches → the same
    chunks; batches that carry no ``META_POSITION`` order their ties by content, as in Beam)."""
    filled = [b for b in batches if b.num_rows]
    if key is not None and len(filled) == 1:  # one sort of the whole batch, not a table per series
        return _plan_one_batch(without_position(filled[0]), key, order_by, rows, pack_shards)
    groups: dict[bytes, list[pa.Table]] = {}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if key is None:
            groups.setdefault(unkeyed_series(batch, order_by), []).append(batch)
        else:
            for _, kb, part in split_by_key(batch, key):
                groups.setdefault(kb, []).append(part)
    full, tails = [], {}
    for kb in sorted(groups):
        series = order_series(groups[kb], order_by)
        chunks, rest = cut(series, rows)
        full += chunks
        if rest is not None:
            tails.setdefault(shard_of(kb, pack_shards), []).append((kb, rest))
    for shard in sorted(tails):
        full += pack_tails(tails[shard], rows)
    return full


def _plan_one_batch(table: pa.Table, key: str, order_by: str | None, rows: int, pack_shards: int) -> list[pa.Table]:
    """:func:`plan_chunks` of one batch (whose series order their ties as the input does):
    100,000 short series took 9 s as a table per series."""
    table, _, starts, lengths, labels = sorted_series(table, key, order_by)
    full, tails = [], {}
    for start, length, label in zip(starts.tolist(), lengths.tolist(), labels):
        whole = length // rows
        full += [table.slice(start + i * rows, rows) for i in range(whole)]
        if length % rows:
            tails.setdefault(shard_of(label, pack_shards), []).append(np.arange(start + whole * rows, start + length))
    for shard in sorted(tails):
        chunks, rest = cut(table.take(pa.array(np.concatenate(tails[shard]))), rows)
        full += chunks + ([rest] if rest is not None else [])
    return full


# ====================================================================== encode / decode
def series_lengths(chunk: pa.Table, key: str | None) -> tuple[int, ...] | None:
    """Lengths of the runs of equal ``key`` values down ``chunk`` (the series a chunk of
    packed tails holds, in order), or None for one run or no key. Nulls are one key."""
    if key is None or chunk.num_rows < 2:
        return None
    column = chunk.column(key).combine_chunks()
    try:
        codes = column.dictionary_encode().indices.fill_null(-1).to_numpy(zero_copy_only=False)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        codes = np.unique([canonical(v) for v in column.to_pylist()], return_inverse=True)[1]
    starts = np.flatnonzero(np.diff(codes)) + 1
    if not starts.size:
        return None
    return tuple(int(n) for n in np.diff(np.concatenate([[0], starts, [chunk.num_rows]])))


def encode_chunks(chunks: list[pa.Table], codec, schema: pa.Schema) -> pa.Table:
    """Encode chunks (tables of the input schema) into one table of the compressed ``schema``."""
    info = TableInfo.from_json(schema.metadata[META])
    spec = info.spec
    if info.layout == "record":
        parts = []
        for chunk in chunks:
            x = vectors(chunk, spec)
            payloads = [record_payload(blob, spec.record_dim) for blob in codec.encode_each(x)]
            cols = [chunk.column(f.name) for f in schema if f.name != PAYLOAD]
            parts.append(pa.Table.from_arrays([*cols, pa.array(payloads, pa.binary())], schema=schema))
        return pa.concat_tables(parts) if parts else schema.empty_table()
    arrays: dict[str, list] = {f.name: [] for f in schema}
    for chunk in chunks:
        x = vectors(chunk, spec)
        for f in schema:
            if f.name not in RESERVED:
                arrays[f.name].append(chunk.column(f.name).combine_chunks())
        arrays[COUNT].append(chunk.num_rows)
        arrays[CODEC].append(codec.id)
        needs_segments = codec.config.window > 1 or codec.series_scaled  # windows or statistics per series
        segments = series_lengths(chunk, info.key) if needs_segments else None
        arrays[PAYLOAD].append(codec.encode(x, segments))
    cols = []
    for f in schema:
        if f.name in RESERVED:
            cols.append(pa.array(arrays[f.name], f.type))
        else:
            values = arrays[f.name]
            flat = pa.concat_arrays(values) if values else pa.array([], f.type.value_type)
            lengths = [len(v) for v in values]
            offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32), pa.int32())
            cols.append(pa.ListArray.from_arrays(offsets, flat, type=f.type))
    return pa.Table.from_arrays(cols, schema=schema)


PANDAS = b"pandas"
PANDAS_INDEX = "__index_level_0__"  # the field name pandas gives an unnamed index it stores


def range_index_as_column(table: pa.Table, first_row: int = 0, file_rows: int | None = None) -> pa.Table:
    """``table`` with the pandas RangeIndex its metadata states (``df.to_parquet`` keeps a
    default index there only) as a column ``PANDAS_INDEX`` of its rows' labels; ``first_row``:
    the table's first row in its file of ``file_rows`` rows (default: the table is the file).
    Decoded records come back in series order, not the file's, and ``to_pandas()`` labelled
    them 0, 1, … afresh: each row with another's label. A range of another length than the
    file (a partitioned frame's files, a filtered table) is left as it is, as pyarrow
    itself then ignores it."""
    meta = table.schema.metadata or {}
    try:
        pandas = json.loads(meta[PANDAS])
        (entry,) = pandas["index_columns"]
        labels = range(entry["start"], entry["stop"], entry["step"]) if entry.get("kind") == "range" else None
    except (KeyError, TypeError, ValueError, AttributeError):  # no pandas metadata, or not one RangeIndex
        return table
    if labels is None or len(labels) != (table.num_rows if file_rows is None else file_rows) or PANDAS_INDEX in table.column_names:
        return table
    pandas["index_columns"] = [PANDAS_INDEX]
    index = {"name": entry.get("name"), "field_name": PANDAS_INDEX, "pandas_type": "int64", "numpy_type": "int64", "metadata": None}
    pandas["columns"] = [*pandas.get("columns", []), index]
    rows = np.asarray(labels[first_row : first_row + table.num_rows], np.int64)
    return table.append_column(PANDAS_INDEX, pa.array(rows)).replace_schema_metadata({**meta, PANDAS: json.dumps(pandas).encode()})


def with_range_index_of(schema: pa.Schema, source: pa.Schema) -> pa.Schema:
    """``schema`` (given for the input) plus the RangeIndex column that
    :func:`range_index_as_column` gave ``source``, with the pandas metadata that names it."""
    pandas = (source.metadata or {}).get(PANDAS)
    if not pandas or PANDAS_INDEX not in source.names or PANDAS_INDEX in schema.names:
        return schema
    return schema.append(source.field(PANDAS_INDEX)).with_metadata({**(schema.metadata or {}), PANDAS: pandas})


def _input_table(data) -> pa.Table:
    """A pandas DataFrame (or a RecordBatch) as a table; InputError for anything else."""
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if is_dataframe(data):
        try:  # the index as a column: it travels with its rows where key and order sort them
            return pa.Table.from_pandas(data, preserve_index=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"the DataFrame does not convert to an Arrow table: {exc}") from None
    raise InputError(f"expected a pyarrow Table or a pandas DataFrame, got {type(data).__name__}")


def encode_table(
    table: pa.Table,
    codec,
    *,
    layout: str = "chunk",
    column=None,
    columns=None,
    key: str | None = None,
    order_by: str | None = None,
    chunk_size: int | None = None,
    embed_codec: bool = True,
    batches: list[pa.Table] | None = None,
    pack_shards: int = DEFAULT_PACK_SHARDS,
) -> pa.Table:
    """Compress ``table`` (a pyarrow Table, or a pandas DataFrame: its index travels as a
    column with its rows) in process (no Beam) into the given layout; ``codec``: a
    :class:`~ltc_beam.Codec` or its URI.

    ``batches`` (optional) gives the input split as the Beam pipeline saw it (for example
    Parquet row groups); chunking then matches the pipeline's exactly, which matters only
    without a key or without ``order_by``.
    """
    if isinstance(codec, (str, os.PathLike)):
        codec = load_codec(os.fspath(codec))
    if not isinstance(table, pa.Table):  # a DataFrame's column labels become str names (0 → "0")
        table = _input_table(table)
        column, key, order_by = (None if name is None else str(name) for name in (column, key, order_by))
        columns = columns if columns is None or isinstance(columns, str) else [str(c) for c in columns]
    if batches is None:  # (batches may come from several files: left as they are)
        table = range_index_as_column(table)
    schema = compressed_schema(
        table.schema,
        codec,
        layout=layout,
        column=column,
        columns=columns,
        key=key,
        order_by=order_by,
        chunk_size=chunk_size,
        embed_codec=embed_codec,
    )
    info = TableInfo.from_json(schema.metadata[META])
    vectors(table, info.spec)  # raises naming column and row
    if window_needs_order(codec) and order_by is None:
        raise InputError(window_order_message(codec))
    rows = chunk_rows(codec, chunk_size)
    chunks = plan_chunks(
        batches if batches is not None else [table], key=key, order_by=order_by, rows=rows, pack_shards=pack_shards
    )
    return encode_chunks(chunks, codec, schema)


def window_needs_order(codec) -> bool:
    return codec.config.window > 1


def window_order_message(codec) -> str:
    return (
        f"this codec codes windows of {codec.config.window} consecutive records: give order_by= "
        "(and key= when the data holds several series) so that records are in series order"
    )


# ---------------------------------------------------------------------- codec resolution
_CODECS: OrderedDict[str, object] = OrderedDict()
_CODECS_LOCK = threading.Lock()


def _remember(codec) -> None:
    with _CODECS_LOCK:
        _CODECS[codec.id] = codec
        _CODECS.move_to_end(codec.id)
        while len(_CODECS) > 8:
            _CODECS.popitem(last=False)


_BY_URI: OrderedDict[tuple, tuple] = OrderedDict()  # (uri, device) -> (file version, codec), most recent last
#: Codec files :func:`load_codec` keeps parsed (each file's latest version only: every
#: version of a codec retrained to one path stayed, ~2.7 MB each, 1.6 GB after 600 saves).
URI_CACHE_SIZE = 16


def load_codec(uri: str, device: str = "cpu"):
    """``Codec.load`` with a per-process cache: one parse per URI, device and version of the
    file (a codec retrained to the same path or object is read again)."""
    from ltc_beam.codec.codec import Codec
    from ltc_beam.storage import file_version

    key, version = (uri, device), file_version(uri)
    with _CODECS_LOCK:
        cached = _BY_URI.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    codec = Codec.load(uri, device=device)
    with _CODECS_LOCK:
        _BY_URI[key] = (version, codec)
        _BY_URI.move_to_end(key)
        while len(_BY_URI) > URI_CACHE_SIZE:
            _BY_URI.popitem(last=False)
    return codec


def codec_for(schema: pa.Schema, codec=None, device: str = "cpu"):
    """The codec a compressed schema needs: ``codec`` (a Codec or URI), else the embedded one."""
    meta = ltc_metadata(schema)
    if META not in meta:
        raise FormatError("table has no 'ltc' metadata: it was not written by ltc-beam (or its metadata was dropped)")
    info = TableInfo.from_json(meta[META])
    if codec is not None:
        if isinstance(codec, (str, os.PathLike)):
            codec = load_codec(os.fspath(codec), device=device)
        if codec.id != info.codec_id:
            raise CodecMismatchError(info.codec_id, codec.id)
        return codec
    with _CODECS_LOCK:
        cached = _CODECS.get(info.codec_id)
    if cached is not None:
        return cached
    if META_CODEC not in meta:
        raise FormatError(
            f"table needs codec {info.codec_id}, which is not embedded in it (or its reader left the codec out: "
            "Beam's ReadFromParquetBatched does, ltc_beam.beam.ReadParquetTables keeps it): pass codec= (a Codec or its URI)"
        )
    codec = codec_from_metadata(meta[META_CODEC], device=device)
    if codec.id != info.codec_id:
        raise FormatError(f"embedded codec {codec.id} is not the codec the table names ({info.codec_id})")
    _remember(codec)
    return codec


def original_schema(schema: pa.Schema) -> pa.Schema:
    meta = ltc_metadata(schema)
    if META_SCHEMA not in meta:
        raise FormatError("table has no 'ltc.schema' metadata entry: cannot restore the original schema")
    return schema_from_bytes(meta[META_SCHEMA])


def decode_table(table: pa.Table, codec=None, *, device: str = "cpu") -> pa.Table:
    """Decode a compressed table (either layout) to a table of the original schema.

    ``codec``: a :class:`~ltc_beam.Codec` or a codec URI; by default the codec embedded in
    the table's metadata. Rows come out in table order (chunk rows expand to their records).
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    meta = ltc_metadata(table.schema)
    if META not in meta:
        raise FormatError("table has no 'ltc' metadata: it was not written by ltc-beam (or its metadata was dropped)")
    info = TableInfo.from_json(meta[META])
    target = original_schema(table.schema)
    codec = codec_for(table.schema, codec, device=device)
    spec = info.spec
    for name in (PAYLOAD,) + ((COUNT,) if info.layout == "chunk" else ()):
        if name not in table.column_names:
            raise FormatError(f"compressed table lacks column {name!r}")
    if CODEC in table.column_names:  # rows of files from other codecs (pyarrow.dataset reads of a directory)
        other = pc.not_equal(table.column(CODEC), codec.id)
        if pc.any(other).as_py():
            row = pc.index(other, True).as_py()
            raise CodecMismatchError(f"{CODEC} of row {row} names codec {table.column(CODEC)[row].as_py()}, but codec {codec.id} decodes this table")
    payloads = table.column(PAYLOAD).to_pylist()
    compact = info.layout == "record" and info.format_version >= 2
    blobs = []
    batch_rows = DECODE_BATCH_STREAMS if info.layout == "record" else 1  # a chunk is a batch already
    for start in range(0, len(payloads), batch_rows):
        batch = []
        for row, blob in enumerate(payloads[start : start + batch_rows], start):
            if blob is None:
                raise FormatError(f"column {PAYLOAD!r}, row {row}: payload is null")
            try:
                batch.append(record_stream(blob, info.codec_id, spec.record_dim) if compact else blob)
            except FormatError as exc:
                raise FormatError(f"column {PAYLOAD!r}, row {row}: {exc}") from exc
        try:
            blobs += codec.decode_each(batch)
        except FormatError:  # name the row: decode one by one
            for row, blob in enumerate(batch, start):
                try:
                    codec.decode(blob)
                except FormatError as exc:
                    # record payloads carry no codec id of their own: it is the table's, checked by the checksum
                    other = " (or, read together with other files, written with another codec)" if compact else ""
                    raise FormatError(f"column {PAYLOAD!r}, row {row}{other}: {exc}") from exc
            raise  # every row decodes alone: raise the batch's error as it is
    x = np.concatenate(blobs) if blobs else np.zeros((0, spec.record_dim), np.float32)
    if info.layout == "chunk":
        counts = np.asarray(table.column(COUNT).to_numpy(zero_copy_only=False), np.int64)
        got = np.array([len(b) for b in blobs], np.int64)
        if not np.array_equal(counts, got):
            row = int(np.flatnonzero(counts != got)[0])
            raise FormatError(f"row {row}: {COUNT} says {counts[row]} records, the payload holds {got[row]}")
    n = len(x)
    cols = []
    for f in target:
        if f.name in spec.names:
            if spec.column is not None:
                cols.append(vector_array(x, f))
            else:
                column = np.ascontiguousarray(x[:, spec.names.index(f.name)])
                cols.append(decoded_array(column, f.type))
            continue
        if f.name not in table.column_names:
            raise FormatError(f"compressed table lacks pass-through column {f.name!r}")
        col = table.column(f.name)
        if info.layout == "chunk":
            col = col.combine_chunks()
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            lengths = np.asarray(pc.list_value_length(col).fill_null(0))
            if not np.array_equal(lengths, counts):
                row = int(np.flatnonzero(lengths != counts)[0])
                raise FormatError(f"column {f.name!r}, row {row}: {lengths[row]} values for {counts[row]} records")
            col = pc.list_flatten(col)
        if len(col) != n:
            raise FormatError(f"column {f.name!r} has {len(col)} values for {n} records")
        cols.append(as_type(col, f.type))
    return pa.Table.from_arrays(cols, schema=target)


def as_type(col: pa.Array | pa.ChunkedArray, to: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """A pass-through column as its input type again. Parquet keeps the dictionary of string
    columns only: a dictionary of integers or dates reads back as its values, which Arrow
    casts to no dictionary (a written file read back failed)."""
    if col.type == to:
        return col
    if pa.types.is_dictionary(to) and not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col.cast(to.value_type))
    return col.cast(to) if col.type != to else col


def sort_decoded(table: pa.Table, key: str | None, order_by: str | None) -> pa.Table:
    """Put decoded records back in series order (by key, then order_by), stably."""
    names = [c for c in (key, order_by) if c is not None and c in table.column_names]
    if not names or table.num_rows < 2:
        return table
    return table.take(sort_indices(table, names))


def sort_indices(table: pa.Table, names: list[str]) -> pa.Array:
    """Stable ascending sort order of ``table`` by columns ``names`` (nulls last); a
    dictionary-typed column sorts by its values (Arrow cannot sort dictionaries)."""
    columns = {}
    for name in names:
        col = table.column(name)
        columns[name] = col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
    return pc.sort_indices(pa.table(columns), sort_keys=[(c, "ascending", "at_end") for c in names])


def table_info(schema: pa.Schema, source: str | None = None) -> TableInfo:
    """The ``ltc`` metadata of a compressed table's ``schema`` (``source``: the file, for errors)."""
    meta = ltc_metadata(schema)
    if META not in meta:
        raise FormatError(f"{source + ': ' if source else ''}table has no 'ltc' metadata: it was not written by ltc-beam")
    return TableInfo.from_json(meta[META])


def bits_per_value(table: pa.Table) -> float:
    """Payload bits per coded value of a compressed table (bitstream headers included)."""
    info = table_info(table.schema)
    payload = sum(len(b) for b in table.column(PAYLOAD).to_pylist())
    records = int(pc.sum(table.column(COUNT)).as_py() or 0) if info.layout == "chunk" else table.num_rows
    values = records * info.spec.record_dim
    return payload * 8 / values if values else math.nan
