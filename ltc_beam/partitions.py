"""Hive partitions of an input directory (``device=a/day=2024-01-01/part-0.parquet``) as columns.

Writers such as Spark, Hive and ``pyarrow.dataset.write_dataset(partitioning_flavor="hive")``
keep the partition values in the directory names, not in the files: read file by file,
they were lost (a key column ``--key device`` was "not found", and without one the devices'
records merged). Each input file gets one column per partition name, as
``pyarrow.dataset.dataset(path, partitioning="hive")`` reads them: values that are all
int32 integers as int32, others as strings, ``__HIVE_DEFAULT_PARTITION__`` as null, URI
escapes decoded; except that a name the integer would not write back (``site=007``,
``n=+5``, ``n=-0``) keeps its column as text (pyarrow reads 7: the folder's name is lost).
Files compressed by ltc-beam get none while compressed (their schema is stored with them);
decoded, they get those their schema lacks (an archive compressed folder by folder into
``day=…`` folders decodes with ``day``, as the raw tree read).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

import pyarrow as pa

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_SEGMENT = re.compile(r"([^=/\\]+)=([^/\\]*)")
_INTEGER = re.compile(r"0|-?[1-9]\d*")  # as str(int) writes it: no leading zeros, no "+", no "-0"
_INT32 = (-(1 << 31), 1 << 31)


@dataclass(frozen=True)
class Partitions:
    """The partition columns' types; each file's values are read from its path below ``base``."""

    base: str = ""
    types: dict[str, pa.DataType] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.types)

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """A file's ``schema`` with the partition fields it lacks appended."""
        if not self or _compressed(schema):
            return schema
        for name, kind in self.types.items():
            if name not in schema.names:
                schema = schema.append(pa.field(name, kind))
        return schema

    def add(self, table: pa.Table, path: str) -> pa.Table:
        """``table`` (rows of file ``path``) with the partition columns it lacks appended."""
        if not self or _compressed(table.schema):
            return table
        values = path_values(self.base, path)
        for name, kind in self.types.items():
            if name not in table.column_names:
                value = values.get(name)
                scalar = pa.scalar(None if value is None else (int(value) if pa.types.is_integer(kind) else value), kind)
                table = table.append_column(pa.field(name, kind), pa.repeat(scalar, table.num_rows))
        return table


def _compressed(schema: pa.Schema) -> bool:
    from ltc_beam.arrow import META

    return META in (schema.metadata or {})


def path_values(base: str, path: str) -> dict[str, str | None]:
    """The ``name=value`` directories between ``base`` and file ``path`` (text; None for the default partition)."""
    if not path.startswith(base):
        return {}
    found = {}
    for folder in re.split(r"[/\\]", path[len(base) :].strip("/\\"))[:-1]:
        match = _SEGMENT.fullmatch(folder)
        if match:
            text = urllib.parse.unquote(match.group(2))
            found[urllib.parse.unquote(match.group(1))] = None if text == HIVE_NULL else text
    return found


def discover(base: str, files: list[str]) -> Partitions:
    """The partitions of ``files`` below ``base`` (the input directory), typed as pyarrow reads them."""
    base = base.rstrip("/\\")
    values = [path_values(base, path) for path in files]
    names = list(dict.fromkeys(name for found in values for name in found))
    return Partitions(base, {name: _type_of([found.get(name) for found in values]) for name in names})


def _type_of(texts: list[str | None]) -> pa.DataType:
    """int32 where every value is an int32 integer written as ``str`` writes it (pyarrow's
    inference, less zero-padded names), else string."""
    present = [t for t in texts if t is not None]
    if present and all(_INTEGER.fullmatch(t) and _INT32[0] <= int(t) < _INT32[1] for t in present):
        return pa.int32()
    return pa.string()


def base_of(path: str) -> str:
    """The directory partitions are read below: ``path`` itself, or a glob's fixed part."""
    wild = min((path.index(ch) for ch in "*?[" if ch in path), default=None)
    if wild is None:
        return path
    return re.split(r"[^/\\]*$", path[:wild])[0]
