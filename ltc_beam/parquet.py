"""Reading and writing compressed Parquet without Beam.

``read_parquet(path)`` opens a file, a directory or a glob (local, or any Beam FileSystems
URI such as gs://), decodes every file with the codec embedded in it (or ``codec=``) and
returns one table of the original schema. ``write_parquet`` compresses a table in process.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import glob as globlib
import io
import os
import warnings
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ltc_beam import arrow
from ltc_beam.errors import CodecMismatchError, InputError
from ltc_beam.partitions import Partitions, base_of, discover
from ltc_beam.run_marker import check_finished
from ltc_beam.storage import is_remote, literal_pattern, open_for_read, open_for_write


def hidden_path(relative: str) -> bool:
    """Whether a path (relative to the input directory) has a hidden or underscore name
    anywhere on it (``_SUCCESS``, ``_temporary/``, ``.crc`` side files of Spark and Hadoop):
    no reader takes what lies there as data."""
    return any(part.startswith((".", "_")) for part in relative.replace("\\", "/").split("/"))


def _skipped(relative: str) -> bool:
    """Whether a file (relative to the input directory) is one no reader takes as data: on a
    :func:`hidden_path`, or a ``.crc`` / ``.tmp`` file."""
    return hidden_path(relative) or relative.endswith((".crc", ".tmp"))


def matched_files(path: str) -> list[tuple[str, int]]:
    """``(file, size in bytes)`` of every file named by ``path``, sorted by name: a file, a
    glob (``**`` spans directories), or a directory: every ``*.parquet`` file under it,
    subdirectories included (hidden and underscore names left out). The one listing that the Beam reads,
    ``read_parquet`` and the CLI's record counts all use."""
    if is_remote(path):
        found = _remote_files(path)
    else:
        path = path.removeprefix("file://")
        folder = os.path.isdir(path)
        if folder:
            names = _folder_parquet_files(path)
        elif os.path.isfile(path):  # a name holding *?[ (run[1].parquet) that exists is that file
            names = [path]
        elif any(ch in path for ch in "*?["):
            names = sorted({f for f in globlib.glob(path, recursive=True) if os.path.isfile(f)})  # d/**/**/x: once each
        else:
            names = []
        found = [(f, os.path.getsize(f)) for f in names]
        check_runs(found, path if folder else None)
    if not found:
        raise InputError(f"no Parquet files found at {path!r}")
    return sorted(found)


def check_runs(found: list[tuple[str, int]], folder: str | None) -> None:
    """Check the run notes (:func:`~ltc_beam.run_marker.check_finished`) of the folders
    holding the files ``found``: ``folder`` and each below it that holds files, read whole;
    for files named one by one or by a glob (``folder`` None), each file's folder, read in
    part (a glob into the folder of a killed compress read 21,900 of 160,000 records, exit 0)."""
    held: dict[str, list[tuple[str, int]]] = {}
    for f, size in found:
        held.setdefault(f.rpartition("/")[0].rstrip("/"), []).append((f, size))
    top = None if folder is None else folder.rstrip("/")
    if top is not None:
        check_finished(folder, found)
    for parent, files in held.items():
        if parent != top:
            check_finished(parent or ".", files, whole=top is not None)


def is_parquet_name(name: str) -> bool:
    """Whether a file name says Parquet (``.parquet`` or ``.parq``, in any case)."""
    return name.lower().endswith((".parquet", ".parq"))


def _folder_parquet_files(path: str) -> list[str]:
    """The Parquet files under local directory ``path`` (symbolic links to folders followed,
    each folder once), warning about the data-looking files left out (no Parquet name)."""
    names, others, seen = [], [], set()
    for root, folders, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree
            folders[:] = []
            continue
        seen.add(real)
        for name in files:
            full = os.path.join(root, name)
            if not _skipped(os.path.relpath(full, path)):
                (names if is_parquet_name(name) else others).append(full)
    _warn_left_out(path, sorted(others))
    return names


def _warn_left_out(folder: str, others: list[str]) -> None:
    """Warn about the files among ``others`` (under ``folder``, without a Parquet name) that
    hold Parquet all the same (Hive's ``000000_0``): a folder's reader leaves them out."""
    left_out = [f for f in others if _starts_as_parquet(f)]
    if left_out:
        shown = ", ".join(repr(f) for f in left_out[:3]) + (", …" if len(left_out) > 3 else "")
        warnings.warn(
            f"{len(left_out)} Parquet file(s) under {folder!r} are left out, as their names do not end in .parquet: "
            f"{shown}; name them (or a glob matching them) to read them",
            UserWarning,
            stacklevel=3,
        )


def _starts_as_parquet(path: str) -> bool:
    try:
        with open_for_read(path) as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def _remote_files(path: str) -> list[tuple[str, int]]:
    """:func:`matched_files` through Beam FileSystems (object stores have no directories: a
    folder is a prefix ending in ``/``; ``gs://bucket/dir`` without it, where no object has
    that name, is one too). A name holding ``*?[`` is taken as it is where objects start with
    it (``run[1]/``), else as a glob, which matches as Python's recursive glob does locally:
    ``DIR/**/*.parquet`` takes the files in DIR too (Beam's ``**/`` needs a folder between),
    and wildcards match no hidden (``.name``) file or folder the pattern does not spell out."""
    from apache_beam.io.filesystems import FileSystems

    def matched(patterns: list[str]) -> list[tuple[str, int]]:
        return sorted({m.path: m.size_in_bytes for r in FileSystems.match(patterns) for m in r.metadata_list}.items())

    if any(ch in path for ch in "*?[") and not matched([literal_pattern(path) + "**"]):
        found = _unhidden(path, matched(_without_empty_folders(path)))
        check_runs(found, None)
        return found
    found = [] if path.endswith("/") else matched([literal_pattern(path)])
    if found:
        check_runs(found, None)
        return found
    folder = path.rstrip("/") + "/"  # gs://bucket/dir: no object of that name, a folder of them
    under = [(f, size) for f, size in matched([literal_pattern(folder) + "**"]) if not _skipped(f[len(folder):])]
    found = [(f, size) for f, size in under if is_parquet_name(f)]
    _warn_left_out(folder, [f for f, _ in under if not is_parquet_name(f)])
    check_runs(found, folder)
    return found


def _unhidden(pattern: str, found: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The files of glob ``pattern`` that Python's glob matches too: no hidden file or folder
    (``.name``) below the pattern's fixed folder unless the pattern spells it (``.x``, ``.*``)."""
    first = min(i for i, ch in enumerate(pattern) if ch in "*?[")
    fixed = pattern[: pattern.rfind("/", 0, first) + 1]  # the folder before the first wildcard
    hidden = [p for p in pattern[len(fixed):].split("/") if p.startswith(".")]

    def asked(part: str) -> bool:
        return not part.startswith(".") or any(fnmatch.fnmatchcase(part, p) for p in hidden)

    return [(f, size) for f, size in found if all(map(asked, f[len(fixed):].split("/")))]


def _without_empty_folders(pattern: str) -> list[str]:
    """``pattern`` and each version of it with a ``**/`` folder step left out."""
    patterns = {pattern}
    for _ in range(pattern.count("**/")):
        patterns |= {p[:i] + p[i + 3 :] for p in patterns for i in range(len(p)) if p.startswith("**/", i) and (i == 0 or p[i - 1] == "/")}
    return sorted(patterns)


def list_files(path: str) -> list[str]:
    """The files of :func:`matched_files`."""
    return [f for f, _ in matched_files(path)]


def input_partitions(path: str, files: list[str]) -> Partitions:
    """The Hive partitions (``name=value`` directories) of ``files`` below input ``path``."""
    return discover(base_of(path.removeprefix("file://")), files)


@contextlib.contextmanager
def naming_the_file(path: str):
    """pyarrow's "not Parquet" errors (damaged footer or pages, another format) as
    :class:`InputError` that names the file: in a directory of many files, pyarrow's own
    message may not. Errors of the file system or store (a missing file, a reset connection,
    a refused permission: subclasses of OSError) stay what they are."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    except OSError as exc:
        if type(exc) is not OSError:  # pyarrow's own: a bare OSError ("Couldn't deserialize thrift")
            raise
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None


def read_table(path: str) -> pa.Table:
    """One Parquet file as an Arrow table (schema metadata kept), by local path or URI.

    Read through :func:`open_parquet`, not ``pq.read_table``: its dataset scanner, given the
    in-memory copy of a remote file, left threads that aborted the process at exit
    ("terminate called without an active exception", exit 134) in about half of the runs
    (pyarrow 25; apache/arrow#34314)."""
    with open_parquet(path) as file, naming_the_file(path):
        table = file.read()
        return table.replace_schema_metadata(file.schema_arrow.metadata)  # read() leaves out what only ARROW:schema holds


@contextlib.contextmanager
def open_parquet(path: str) -> Iterator[pq.ParquetFile]:
    """One Parquet file (local path or URI) to read from, closed on leaving. A remote file is
    read through a seekable stream, as Beam's own Parquet source does: only the parts read
    are fetched (the footer alone for rows and schema), and a worker does not hold a whole
    file in memory. (The CLI counted the records of remote inputs by downloading every byte,
    and held a descriptor open per file: past 1,024 files, "Too many open files".) A local
    file is opened by pyarrow itself: read through a Python file object, its pages may be
    released by pyarrow's threads during the interpreter's teardown, which aborts a script
    that read it last (exit 134 in 6 of 20 runs on a busy machine; :func:`ltc_beam.cli.run`)."""
    with contextlib.ExitStack() as stack:
        with naming_the_file(path):
            source = stack.enter_context(open_for_read(path)) if is_remote(path) else path.removeprefix("file://")
            file = stack.enter_context(pq.ParquetFile(source, page_checksum_verification=True))
        yield file


def _leaf_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """Parquet leaf columns of an Arrow schema as ``(path, physical type)`` (nested lists:
    ``name.list.element``). A table of no batches: ``empty_table`` builds arrays, and has no
    builder for extension types nor dictionaries of dates."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_batches([], schema=schema), buf)
    parquet_schema = pq.ParquetFile(io.BytesIO(buf.getvalue())).schema
    return [(parquet_schema.column(i).path, parquet_schema.column(i).physical_type) for i in range(len(parquet_schema))]


def parquet_options(schema: pa.Schema, compression: str) -> dict:
    """Writer options. Every column gets ``compression`` except entropy-coded payloads, stored
    as they are (compressing them would only cost time). Integer and time columns are
    delta-coded: telemetry's timestamps and counters mostly differ row to row, so a
    dictionary is tried and dropped (measured: the pass-through columns of 500k compressed
    telemetry records, 6.85 MB in 0.094 s with dictionaries, 4.38 MB in 0.046 s delta-coded).
    Float columns get no dictionary either (float data seldom repeats: 500k records of 8
    float32 values, 0.21 vs 0.13 s, 20.5 vs 19.2 MB); other columns (strings, keys) keep it.
    Payloads get no statistics (below). Every page carries a CRC-32, which readers that
    check it (ltc-beam's do) hold against its bytes: payloads have their own, but one
    flipped bit in a pass-through column changed the order values of 2,901 decoded records
    without an error (4 bytes a page)."""
    leaves = _leaf_columns(schema.remove_metadata())
    delta = [p for p, kind in leaves if kind in ("INT32", "INT64") and not _is_dictionary(schema, p)]
    options = {
        "write_page_checksum": True,  # a flipped bit in a key or order column read back as another value (below)
        "compression": compression,
        "use_dictionary": [p for p, kind in leaves if p != arrow.PAYLOAD and kind not in ("FLOAT", "DOUBLE") and p not in delta],
        "column_encoding": {p: "DELTA_BINARY_PACKED" for p in delta},
    }
    if arrow.PAYLOAD in schema.names:
        options["compression"] = {**{p: compression for p, _ in leaves}, arrow.PAYLOAD: "none"}
        # no min/max statistics of payloads: they copied the smallest and largest bitstream
        # into the page header and the footer (the demo's 4 chunks: 21.1 KB -> 16.2 KB)
        options["write_statistics"] = [p for p, _ in leaves if p != arrow.PAYLOAD]
    return options


ARROW_SCHEMA_KEY = b"ARROW:schema"  # where Arrow readers find the serialized Arrow schema of a Parquet file


def write_table(table: pa.Table, where, compression: str = "zstd") -> None:
    """Write ``table`` as one Parquet file (path or binary file object) with
    :func:`parquet_options`, its schema metadata stored once.

    pyarrow keeps schema metadata twice: as footer key-value pairs, and again inside
    ``ARROW:schema`` (the serialized Arrow schema, base64), where Arrow readers take both
    types and metadata from. For a compressed table most of that metadata is the embedded
    codec (measured: 63 of 76 KB for a 1-bit codec and 4,000 records), so ``ltc.codec`` goes
    only into ``ARROW:schema``; the small ``ltc*`` entries stay readable as plain footer
    keys too. Readers of any Arrow implementation see the same schema and metadata. The
    codec stays base64 text in there, base64 again with the whole schema (1.78 times the
    artifact): metadata values are flatbuffer strings, which must be UTF-8, and arrow-rs
    readers (DataFusion) refuse a whole file whose ``ARROW:schema`` holds raw bytes."""
    metadata = table.schema.metadata or {}
    footer = {k: v for k, v in metadata.items() if k != arrow.META_CODEC}
    if len(footer) == len(metadata):
        pq.write_table(table, where, **parquet_options(table.schema, compression))
        return
    footer[ARROW_SCHEMA_KEY] = base64.b64encode(table.schema.serialize().to_pybytes())
    with pq.ParquetWriter(where, table.schema, store_schema=False, **parquet_options(table.schema, compression)) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata(footer)


def embedded_codec_bytes(path: str) -> int:
    """Bytes of Parquet file ``path`` that hold its embedded codec (0 without one)."""
    with open_parquet(path) as file:
        return codec_copy_bytes(file.schema_arrow)


def codec_copy_bytes(schema: pa.Schema) -> int:
    """Bytes a Parquet file of Arrow ``schema`` spends on its embedded codec (0 without one)."""
    metadata = schema.metadata or {}
    if arrow.META_CODEC not in metadata:
        return 0
    rest = schema.with_metadata({k: v for k, v in metadata.items() if k != arrow.META_CODEC})
    return len(base64.b64encode(schema.serialize().to_pybytes())) - len(base64.b64encode(rest.serialize().to_pybytes()))


def _is_dictionary(schema: pa.Schema, path: str) -> bool:
    """Whether the top-level field holding Parquet column ``path`` is dictionary-typed anywhere
    (the longest field name the path starts with: names may hold dots)."""
    name = max((n for n in schema.names if path == n or path.startswith(n + ".")), key=len)
    return "dictionary<" in str(schema.field(name).type)


def read_parquet(path: str | os.PathLike, codec=None, *, sort: bool = True, device: str = "cpu") -> pa.Table:
    """Decode compressed Parquet (file, directory or glob) to a table of the original schema.

    ``codec``: a :class:`~ltc_beam.Codec` or codec URI; by default each file's embedded
    codec. With ``sort`` (default) records are put back in series order when the files
    name a key and/or an order column; otherwise they come in file and row order. Hive
    partition folders below ``path`` (``day=…``) become columns the decoded schema lacks.
    """
    tables, info = [], None
    path = os.fspath(path)
    if isinstance(codec, (str, os.PathLike)):  # loaded once, not once per file
        codec = arrow.load_codec(os.fspath(codec), device=device)
    names = list_files(path)
    partitions = input_partitions(path, names)
    for name in names:
        table = read_table(name)
        info = arrow.table_info(table.schema, name)
        try:
            tables.append(partitions.add(arrow.decode_table(table, codec, device=device), name))
        except CodecMismatchError as exc:  # in a folder of many files, name the one
            named = CodecMismatchError(f"{name}: {exc}")
            named.needed, named.supplied = exc.needed, exc.supplied
            raise named from None
    if not tables:
        raise InputError(f"no Parquet files found at {path!r}")
    out = arrow.concat(tables)
    return arrow.sort_decoded(out, info.key, info.order_by) if sort else out


def write_parquet(table: pa.Table, path: str | os.PathLike, codec, *, compression: str = "zstd", **options) -> pa.Table:
    """Compress ``table`` in process (see :func:`ltc_beam.arrow.encode_table`) and write one file."""
    encoded = arrow.encode_table(table, codec, **options)
    with open_for_write(os.fspath(path)) as handle:
        write_table(encoded, handle, compression)
    return encoded
