"""Reading and writing compressed Parquet without Beam.

``read_parquet(path)`` opens a file, a directory or a glob (local, or any Beam FileSystems
URI such as gs://), decodes every file with the codec embedded in it (or ``codec=``) and
returns one table of the original schema. ``write_parquet`` compresses a table in process.
"""

from __future__ import annotations

import glob as globlib
import io
import os

import pyarrow as pa
import pyarrow.parquet as pq

from ltc_beam import arrow
from ltc_beam.errors import InputError


def _remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def list_files(path: str) -> list[str]:
    """The Parquet files named by a file, directory or glob, sorted."""
    if _remote(path):
        from apache_beam.io.filesystems import FileSystems

        pattern = path.rstrip("/") + "/*" if not any(ch in path for ch in "*?[") and path.endswith("/") else path
        files = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
        return sorted(files)
    path = path.removeprefix("file://")
    if os.path.isdir(path):
        files = [
            os.path.join(root, name)
            for root, _, names in os.walk(path)
            for name in names
            if not name.startswith((".", "_")) and not name.endswith((".crc", ".tmp"))
        ]
    elif any(ch in path for ch in "*?["):
        files = [f for f in globlib.glob(path, recursive=True) if os.path.isfile(f)]
    else:
        files = [path] if os.path.exists(path) else []
    if not files:
        raise InputError(f"no Parquet files found at {path!r}")
    return sorted(files)


def read_table(path: str) -> pa.Table:
    """One Parquet file as an Arrow table (schema metadata kept), by local path or URI."""
    if _remote(path):
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(path) as handle:
            return pq.read_table(io.BytesIO(handle.read()))
    return pq.read_table(path.removeprefix("file://"))


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """Parquet leaf column paths of an Arrow schema (nested lists: ``name.list.element``)."""
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    parquet_schema = pq.ParquetFile(io.BytesIO(buf.getvalue())).schema
    return [parquet_schema.column(i).path for i in range(len(parquet_schema))]


def parquet_options(schema: pa.Schema, compression: str) -> dict:
    """Writer options: entropy-coded payloads are stored as they are (no compression, no
    dictionary: both would only cost time); every other column gets ``compression``."""
    if arrow.PAYLOAD not in schema.names:
        return {"compression": compression}
    others = [p for p in _leaf_paths(schema.remove_metadata()) if p != arrow.PAYLOAD]
    return {
        "compression": {**{p: compression for p in others}, arrow.PAYLOAD: "none"},
        "use_dictionary": others,
    }


def read_parquet(path: str, codec=None, *, sort: bool = True, device: str = "cpu") -> pa.Table:
    """Decode compressed Parquet (file, directory or glob) to a table of the original schema.

    ``codec``: a :class:`~ltc_beam.Codec` or codec URI; by default each file's embedded
    codec. With ``sort`` (default) records are put back in series order when the files
    name a key and/or an order column; otherwise they come in file and row order.
    """
    tables, info = [], None
    for name in list_files(path):
        table = read_table(name)
        info = arrow.table_info(table.schema)
        tables.append(arrow.decode_table(table, codec, device=device))
    if not tables:
        raise InputError(f"no Parquet files found at {path!r}")
    schema = tables[0].schema
    out = pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in tables])
    return arrow.sort_decoded(out, info.key, info.order_by) if sort else out


def write_parquet(table: pa.Table, path: str, codec, *, compression: str = "zstd", **options) -> pa.Table:
    """Compress ``table`` in process (see :func:`ltc_beam.arrow.encode_table`) and write one file."""
    encoded = arrow.encode_table(table, codec, **options)
    writer_options = parquet_options(encoded.schema, compression)
    if _remote(path):
        from apache_beam.io.filesystems import FileSystems

        buf = io.BytesIO()
        pq.write_table(encoded, buf, **writer_options)
        with FileSystems.create(path) as handle:
            handle.write(buf.getvalue())
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        pq.write_table(encoded, path, **writer_options)
    return encoded
