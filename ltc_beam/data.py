"""Loading records for training and evaluation: Parquet (file, directory or glob) or ``.npy``.

Values come from one vector column (list / fixed-size list of floats) or several float
columns. With ``key``, records are grouped into series (one per key value); with
``order_by``, each series is sorted by that column. Window mode relies on that order.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltc_beam.arrow import float_values, is_coded_type, is_list, item_type, unordered_records
from ltc_beam.errors import NULL_HINT, InputError, not_numeric
from ltc_beam.parquet import input_partitions, list_files, matched_files, read_table
from ltc_beam.storage import file_size, open_for_read


@dataclass
class Dataset:
    """Records as series: ``series[i]`` is ``[records, len(columns)]`` float64, in order."""

    series: list[np.ndarray]
    columns: list[str]
    keys: list | None = None
    order_hint: str | None = None  # without order_by: a column that looks like the time order
    integers: list[np.dtype | None] | None = None  # per column: its integer type (decoded to the nearest integer it holds)

    @property
    def records(self) -> int:
        return sum(len(s) for s in self.series)


def common_schema(files: list[str], schemas: list[pa.Schema]) -> pa.Schema:
    """The schema every file's records fit (``schemas``: the ``files``' own): the first
    file's where all agree (metadata aside), else the schemas unified with numeric widening
    (float32 and float64 columns of one name read as float64), the first file's metadata
    kept. Raises InputError naming two files whose columns differ or whose schemas do not
    unify (a missing column would otherwise read as nulls)."""
    first = schemas[0]
    if all(s.remove_metadata().equals(first.remove_metadata()) for s in schemas[1:]):
        return first
    for name, schema in zip(files[1:], schemas[1:]):
        missing, extra = set(first.names) - set(schema.names), set(schema.names) - set(first.names)
        if missing or extra:
            said = [f"lacks {sorted(missing)}" if missing else "", f"adds {sorted(extra)}" if extra else ""]
            raise InputError(f"{name!r} {' and '.join(filter(None, said))} against {files[0]!r}: the files of one input need the same columns")
    try:
        unified = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        other = next(f for f, s in zip(files, schemas) if not s.remove_metadata().equals(first.remove_metadata()))
        raise InputError(f"{files[0]!r} and {other!r} have schemas that do not combine: {exc}") from None
    return unified.with_metadata(first.metadata)


def input_bytes(path: str) -> int:
    """Size of INPUT on disk: the ``.npy`` file, or every Parquet file it names."""
    return file_size(path) if path.endswith(".npy") else sum(size for _, size in matched_files(path))


def input_column_names(path: str) -> set[str]:
    """The column names of a Parquet input's first file (none where it has none)."""
    from ltc_beam.parquet import list_files, open_parquet

    files = list_files(path)
    if not files:
        return set()
    with open_parquet(files[0]) as file:
        return set(file.schema_arrow.names)


def load_npy(path: str) -> np.ndarray:
    """A ``.npy`` INPUT (local path or URI) as a 2-D array of floats or integers: rows are
    records, in order (a 1-D array is one value per record)."""
    with open_for_read(path) as handle:
        array = np.load(handle, allow_pickle=False)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.dtype.kind not in "fiu":  # integers decode to the nearest integer
        raise InputError(f"{path}: expected a 2-D array of numbers, got shape {array.shape} dtype {array.dtype}")
    return array.astype(array.dtype.newbyteorder("="), copy=False)  # big-endian (">f4") as native: Arrow takes no other


def vector_columns(
    table: pa.Table, column: str | None, columns: list[str] | None, exclude: set[str], default: tuple[str, ...] = ()
) -> list[str]:
    """Which columns hold the values: the one given, the ones given, the ``default`` ones (a
    codec's columns) where the table has them all, or found by type."""
    if column and columns:
        raise InputError("give column= or columns=, not both")
    if column:
        return [column]
    if columns:
        if len(set(columns)) != len(columns):
            raise InputError(f"columns {list(columns)} name a column twice")
        return list(columns)
    if default and all(name in table.column_names and name not in exclude for name in default):
        return list(default)
    lists = [f.name for f in table.schema if _is_float_list(f.type) and f.name not in exclude]
    if len(lists) == 1:
        return lists
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type) and f.name not in exclude]
    if lists or not floats:
        ints = [f.name for f in table.schema if pa.types.is_integer(f.type) and f.name not in exclude]
        cast = ""
        if ints and not floats:
            cast = f"; integer columns {ints} are coded only where named (decoded to the nearest integer)"
        raise InputError(
            f"cannot tell which columns hold the vectors (list columns: {lists}, float columns: {floats}); "
            f"name them with column= or columns={cast}"
        )
    others = [f.name for f in table.schema if (pa.types.is_integer(f.type) or pa.types.is_decimal(f.type)) and f.name not in exclude]
    if others:
        warnings.warn(
            f"the float columns {floats} are coded; the number columns {others} are not (compress passes them "
            "through exactly): name the columns to code with columns= (integers decode to the nearest integer)",
            UserWarning,
            stacklevel=4,
        )
    return floats


def _is_float_list(t: pa.DataType) -> bool:
    return is_list(t) and pa.types.is_floating(t.value_type)


def values_of(table: pa.Table, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """``[rows, d]`` float64 values and their names; errors name the column and row."""
    for name in names:
        if name not in table.column_names:
            raise InputError(f"column {name!r} not found; columns are {table.column_names}")
    if len(names) == 1 and is_list(t := table.schema.field(names[0]).type):
        if not is_coded_type(t.value_type):
            raise not_numeric(names[0], f"holds {t.value_type} values")
        return _list_values(table, names[0])
    parts = []
    for name in names:
        col = table.column(name)
        if not is_coded_type(col.type):
            raise not_numeric(name, f"has type {col.type}")
        parts.append(float_values(col.combine_chunks(), np.float64))  # nulls: NaN (missing), as compress codes them
    return (np.stack(parts, axis=1) if parts else np.zeros((table.num_rows, 0))), names


def _list_values(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    col = table.column(name).combine_chunks()
    if col.null_count:
        row = pc.index(pc.is_null(col), True).as_py()
        raise InputError(f"column {name!r} has a null vector at row {row}; {NULL_HINT}")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise InputError(f"column {name!r} is ragged: row {row} has {lengths[row]} values, row 0 has {lengths[0]}")
    flat = pc.list_flatten(col)
    d = int(lengths[0]) if len(lengths) else 0
    values = float_values(flat, np.float64).reshape(len(col), d)
    meta = table.schema.metadata or {}
    names = meta.get(f"columns_of_{name}".encode(), b"").decode().split(",")
    if len(names) != d or not all(names):
        names = [f"{name}[{i}]" for i in range(d)]
    return values, names


def refuse_column_names(path: str, **names) -> None:
    """A ``.npy`` array has no named columns (its rows are records, in order): naming any
    (``column=``, ``key=`` ...) is an error, not silently ignored."""
    named = [f"{option}=" for option, value in names.items() if value]
    if named:
        raise InputError(f"{path}: a .npy array has no named columns; drop {' and '.join(named)} (rows are records in order)")


def load(
    path: str,
    *,
    column: str | None = None,
    columns: list[str] | None = None,
    key: str | None = None,
    order_by: str | None = None,
    default_columns: tuple[str, ...] = (),
) -> Dataset:
    """Read INPUT into series of records (see module docstring); without ``column`` and
    ``columns``, the ``default_columns`` (a codec's) where the input has them all."""
    if path.endswith(".npy"):
        refuse_column_names(path, column=column, columns=columns, key=key, order_by=order_by)
        array = load_npy(path)
        integers = [array.dtype if array.dtype.kind in "iu" else None] * array.shape[1]
        return Dataset([array.astype(np.float64)], [f"v{i}" for i in range(array.shape[1])], integers=integers)
    files = list_files(path)
    partitions = input_partitions(path, files)
    tables = [partitions.add(read_table(f), f) for f in files]
    common_schema(files, [t.schema for t in tables])
    # float32 and float64 files of one dataset read as float64, as compress keeps them
    table = pa.concat_tables(tables, promote_options="permissive")
    for name in (key, order_by):
        if name and name not in table.column_names:
            raise InputError(f"column {name!r} not found; columns are {table.column_names}")
    names = vector_columns(table, column, columns, {key, order_by} - {None}, tuple(default_columns))
    values, value_names = values_of(table, names)
    kinds = [item_type(table.schema.field(name).type) for name in names]
    kinds = kinds * len(value_names) if len(names) < len(value_names) else kinds  # a list column's values
    integers = [np.dtype(kind.to_pandas_dtype()) if pa.types.is_integer(kind) else None for kind in kinds]
    hint = None if order_by else order_hint(table, key, set(names), values)
    order = np.arange(table.num_rows)
    stamps = None
    if order_by:
        column = table.column(order_by)
        warn_if_unordered(unordered_records(table, order_by), order_by)
        warn_if_text_order(column, order_by)
        stamps = column.to_numpy(zero_copy_only=False)
        order = np.argsort(stamps, kind="stable")
    if not key:
        if stamps is not None:
            warn_if_tied(int((stamps[order][1:] == stamps[order][:-1]).sum()), order_by)
        return Dataset([values[order]], value_names, order_hint=hint, integers=integers)
    # NaN keys are one series, as compress groups them (each NaN was a series of its own: 300 of one record)
    keys = [math.nan if k != k else k for k in table.column(key).to_pylist()]
    index: dict = {}
    codes = np.array([index.setdefault(keys[i], len(index)) for i in order], dtype=np.int64)
    by_key = np.argsort(codes, kind="stable")
    grouped = order[by_key]  # by key (first appearance), then order
    if stamps is not None:
        series_of_row = codes[by_key]
        tied = (stamps[grouped][1:] == stamps[grouped][:-1]) & (series_of_row[1:] == series_of_row[:-1])
        warn_if_tied(int(tied.sum()), order_by)
    bounds = np.cumsum(np.bincount(codes, minlength=len(index)))[:-1]
    series = [values[rows] for rows in np.split(grouped, bounds)]
    return Dataset(series, value_names, list(index), order_hint=hint, integers=integers)


#: Text whose order as text is its order in time: zero-padded ISO 8601 dates and times.
_ISO_TIME = re.compile(r"\d{4}-\d{2}(-\d{2}([ T]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?")
#: Text of one width that starts with the year and holds digits, separators and period
#: letters only ("1970 Q1", "2000/01/31", "2000W07", "20000131") sorts as time too; not
#: "2000 Jan", "12311999".
_YEAR_FIRST = re.compile(
    r"(1[5-9]|2\d)\d\d([-/._: ]?[QWHMqwhm]?\d+)*"
    r"|(1[5-9]|2\d)\d\d(0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])\d{0,6})?"
)


def warn_if_text_order(column, order_by: str, stacklevel: int = 3) -> None:
    """Warn when the order column holds text that does not sort as time: records are ordered
    by the text ("Apr 1 2001" before "Jan 1 2000"), and windows read that order as the
    signal's (vega's stock prices with such dates: 15.3 dB instead of 25.0 at about the
    same rate, with no warning)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type)):
        return
    texts = [t.strip() for t in column.drop_null().slice(0, 1000).to_pylist()]
    odd = next((t for t in texts if not _ISO_TIME.fullmatch(t)), None)
    if odd is not None and len({len(t) for t in texts}) == 1 and all(_YEAR_FIRST.fullmatch(t) for t in texts):
        return
    if odd is not None:
        warnings.warn(
            f"the order column {order_by!r} holds text ({odd!r}), and records are ordered as text sorts, "
            "which is not the order in time unless it is ISO 8601 (2000-01-31): parse it to timestamps or "
            "numbers first (pyarrow.compute.strptime, pandas.to_datetime)",
            UserWarning,
            stacklevel=stacklevel,
        )


def warn_if_unordered(missing: int, order_by: str, stacklevel: int = 3) -> None:
    """Warn about ``missing`` records with no ``order_by`` value."""
    if missing:
        warnings.warn(
            f"{missing} records have no {order_by!r} value (null or NaN): they go last in their series, "
            "where windows read them as the signal's end",
            UserWarning,
            stacklevel=stacklevel,
        )


def warn_if_tied(tied: int, order_by: str, stacklevel: int = 3) -> None:
    """Warn when ``tied`` records of their series share their ``order_by`` value with the
    record before: their order among themselves is the input's, which windows then read as
    the signal's (ArrowHead with every timestamp twice: 2.12 → 3.69 bits/value at a lower SNR)."""
    if tied:
        warnings.warn(
            f"{tied} records share their series' {order_by!r} value with the record before: "
            f"their order among themselves is the input's; a finer order column (or a key that "
            "separates the devices) codes them as the signal ran",
            UserWarning,
            stacklevel=stacklevel,
        )


#: ``order_hint`` names a column only where consecutive records (in file order) correlate
#: at least this much (either sign) on average over the value columns: windows gain nothing on records
#: that are not (row ids of embeddings or shuffled tables also increase down the file).
HINT_MIN_CORRELATION = 0.5


def order_hint(table: pa.Table, key: str | None, exclude: set[str], values: np.ndarray) -> str | None:
    """The first column that looks like a time order: a timestamp / date / time column, or
    an integer column that increases strictly down the file (within each key, with ``key``),
    where the records ``values`` (file order), taken in that column's order, are correlated
    from one to the next."""
    if table.num_rows < 3:
        return None
    codes = None
    if key:
        codes = pc.dictionary_encode(table.column(key).combine_chunks()).indices.fill_null(-1).to_numpy(zero_copy_only=False)
    for field in table.schema:
        if field.name in exclude or field.name == key:
            continue
        column = table.column(field.name)
        if pa.types.is_temporal(field.type):
            order = np.argsort(pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), kind="stable")
        elif pa.types.is_integer(field.type) and column.null_count == 0:
            v = column.to_numpy().astype(np.int64)
            rows, same = _neighbours(len(v), codes)
            steps = np.diff(v[rows])[same]
            if not (steps.size and (steps > 0).all()):
                continue
            order = np.arange(len(v))
        else:
            continue
        if lag_correlation(values[order], None if codes is None else codes[order]) >= HINT_MIN_CORRELATION:
            return field.name
    return None


def _neighbours(n: int, codes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows in file order within each key (``codes``; None: one series) and, for each row
    but the last, whether the next row belongs to the same key."""
    if codes is None:
        return np.arange(n), np.ones(max(n - 1, 0), bool)
    rows = np.argsort(codes, kind="stable")
    return rows, codes[rows][1:] == codes[rows][:-1]


def lag_correlation(values: np.ndarray, codes: np.ndarray | None) -> float:
    """Mean over columns of the size of the correlation of each record with the next (of
    the same key): anti-correlated neighbours (lag-1 correlation −0.5 on ElectricDevices,
    where a window gains 2 dB) tell of an order as well."""
    if len(values) < 3:
        return 0.0
    rows, same = _neighbours(len(values), codes)
    v = np.asarray(values, dtype=np.float64)[rows]
    a, b = v[:-1][same], v[1:][same]
    ok = np.isfinite(a) & np.isfinite(b)
    found = []
    for c in range(v.shape[1]):
        x, y = a[ok[:, c], c], b[ok[:, c], c]
        if x.size > 2 and x.std() > 0 and y.std() > 0:
            found.append(abs(float(np.corrcoef(x, y)[0, 1])))
    return float(np.mean(found)) if found else 0.0
