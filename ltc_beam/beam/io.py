"""Parquet in and out of Beam pipelines as ``pa.Table`` batches, and the ready-made
``CompressParquet`` / ``DecompressParquet`` composites used by the CLI and Beam YAML.

``WriteParquetTables`` needs no schema up front (each table carries its own, with the
``ltc`` metadata): tables are spread over ``num_shards`` by content digest, grouped with
``GroupByKey`` (so a file holds many chunks in few row groups), and each shard is written
once, atomically, under a deterministic name — a retried bundle rewrites the same file.
``CompressParquet`` needs no such regrouping: ``LtcEncodeShards`` already groups series by
output file in its one shuffle, and each shard is written where it was encoded.
"""

from __future__ import annotations

import io
import json
import os
import re

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow, GlobalWindows

from ltc_beam import arrow
from ltc_beam.beam.handler import NAMESPACE, Decoders, one_torch_thread, resolve_device
from ltc_beam.beam.transforms import LtcEncodeShards
from ltc_beam.errors import InputError, LtcError
from ltc_beam.parquet import input_partitions, matched_files, naming_the_file, open_parquet, parquet_options, write_table
from ltc_beam.partitions import Partitions
from ltc_beam.storage import exists, folder_files, is_folder, is_remote, open_for_write, pending_name, remove, rename, write_bytes


class _ReadRowGroups(beam.DoFn):
    """``(file number, file)`` → tables of up to ``batch_rows`` rows (schema metadata kept,
    plus ``arrow.META_POSITION``), its Hive partition values as columns (:mod:`ltc_beam.partitions`)."""

    def __init__(self, columns, batch_rows: int = 65536, partitions: Partitions | None = None):
        self.columns = columns
        self.batch_rows = batch_rows
        self.partitions = partitions or Partitions()

    def setup(self):
        self.tables = Metrics.counter(NAMESPACE, "batches_read")

    def process(self, element: tuple[int, str]):
        number, path = element
        stored = None if self.columns is None else [c for c in self.columns if c not in self.partitions.types]
        with open_parquet(path) as reader:
            first_row = 0
            for batch, table in enumerate(_batches(reader, path, self.batch_rows, stored)):
                self.tables.inc()
                table = self.partitions.add(table, path)
                table = table if self.columns is None else table.select(self.columns)
                if self.columns is None:  # a pandas file's RangeIndex as a column: it travels with its rows
                    table = arrow.range_index_as_column(table, first_row, reader.metadata.num_rows)
                first_row += table.num_rows
                # the batch's place in the input: records sharing an order value keep their input order
                yield table.replace_schema_metadata({**(table.schema.metadata or {}), arrow.META_POSITION: b"%012d.%012d" % (number, batch)})


def _batches(reader: pq.ParquetFile, path: str, batch_rows: int, columns=None):
    """File ``path`` as tables of up to ``batch_rows`` rows, with the file's schema metadata
    (a damaged page is an error naming the file)."""
    schema = reader.schema_arrow
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    batches = reader.iter_batches(batch_size=batch_rows, columns=columns)
    while True:
        with naming_the_file(path):
            batch = next(batches, None)
        if batch is None:
            return
        yield pa.Table.from_batches([batch], schema=schema)


class ReadParquetTables(beam.PTransform):
    """Parquet file(s) → ``pa.Table`` batches of up to ``batch_rows`` rows, schema metadata kept,
    plus each batch's place in the input (``ltc.position``: ``LtcEncode`` keeps records that
    share an order value in input order by it, and writes it nowhere). Without ``columns``, a
    pandas file's RangeIndex (kept in its metadata only) comes as a column of each row's
    label, ``__index_level_0__`` (:func:`ltc_beam.arrow.range_index_as_column`).

    Files are listed when the pipeline is built (:func:`ltc_beam.parquet.matched_files`:
    a directory's subdirectories too; Hive partition directories become columns,
    :mod:`ltc_beam.partitions`) and read by a
    ParDo over ``Create(files)``: unlike source-based reads this runs on every runner,
    DaskRunner included (its 2.77 translation has no ``Read``).
    """

    def __init__(self, path: str, columns: list[str] | None = None, batch_rows: int = 65536):
        super().__init__()
        self.path = path
        self.columns = columns
        self.batch_rows = batch_rows
        self._matched = None

    def matched(self) -> list[tuple[str, int]]:
        """``(path, size)`` of the input files (:func:`ltc_beam.parquet.matched_files`, listed once)."""
        if self._matched is None:
            self._matched = matched_files(self.path)
        return self._matched

    def files(self) -> list[str]:
        return [f for f, _ in self.matched()]

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(list(enumerate(self.files())))
            | "ReadRowGroups" >> beam.ParDo(
                _ReadRowGroups(self.columns, self.batch_rows, input_partitions(self.path, self.files()))
            ).with_output_types(pa.Table)
        )


class _ShardKey(beam.DoFn):
    """A table → ``(shard, (digest, IPC bytes))`` for each of up to ``num_shards`` row slices,
    slice i to shard (hash of the slices' digests + i) mod ``num_shards``: every shard gets
    rows once a table has as many (whole tables by their hash left a 1M-record file, decoded
    as one table, in one of 3 shards), and a retried table goes to the same shards."""

    def __init__(self, num_shards: int, by_window: bool = False):
        self.num_shards = num_shards
        self.by_window = by_window

    def process(self, table, window=beam.DoFn.WindowParam):
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if not isinstance(table, pa.Table):  # LtcEncode(output="rows"): an AttributeError deep in the shuffle
            raise InputError(
                f"WriteParquetTables writes pa.Table batches, got {type(table).__name__}: give LtcEncode / LtcDecode "
                "output='table' (the default) before it"
            )
        if not table.num_rows:
            return
        slices = min(self.num_shards, table.num_rows)
        bounds = [table.num_rows * i // slices for i in range(slices + 1)]
        datas = [arrow.to_ipc(table.slice(bounds[i], bounds[i + 1] - bounds[i])) for i in range(slices)]
        digests = [arrow.digest(data) for data in datas]
        first = int.from_bytes(arrow.digest(b"".join(digests))[:8], "little")  # each slice serialised once
        for i, (d, data) in enumerate(zip(digests, datas)):
            shard = (first + i) % self.num_shards
            # merging windows (sessions) merge per key: keyed by shard alone, the sessions of
            # different series in one shard would merge into one window
            key = (shard, window.start.micros, window.end.micros) if self.by_window else shard
            yield (key, (d, data))


def _stamp(t) -> str:
    """A window bound in a file name: UTC to the second, with microseconds where it has them
    (windows of 0.25 s all read T000000 and overwrote each other's files)."""
    moment = t.to_utc_datetime()
    return f"{moment:%Y%m%dT%H%M%S}" + (f".{moment.microsecond:06d}" if moment.microsecond else "")


class _WriteShard(beam.DoFn):
    """``(shard, table)``, or ``(shard, [(digest, IPC bytes)])`` from a shuffle, → the shard's file."""

    def __init__(self, prefix: str, num_shards: int, suffix: str = ".parquet", compression: str = "zstd"):
        self.prefix = prefix
        self.num_shards = num_shards
        self.suffix = suffix
        self.compression = compression

    def setup(self):
        self.files = Metrics.counter(NAMESPACE, "files_written")
        self.bytes = Metrics.counter(NAMESPACE, "file_bytes_written")

    def process(self, element, window=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        shard, content = element
        shard = shard[0] if isinstance(shard, tuple) else shard  # (shard, window) for merging windows
        if isinstance(content, pa.Table):
            table = content
        else:
            content = sorted(content, key=lambda dt: dt[0])
            if not content:  # an empty pane
                return
            table = arrow.concat([arrow.from_ipc(t) for _, t in content])
        tag = ""
        if not isinstance(window, GlobalWindow):
            tag = f"-{_stamp(window.start)}-{_stamp(window.end)}"
            if pane is not None and pane.index:
                tag += f"-pane{pane.index}"
        name = f"{self.prefix}{tag}-{shard:05d}-of-{self.num_shards:05d}{self.suffix}"
        buf = io.BytesIO()
        write_table(table, buf, self.compression)
        data = buf.getvalue()
        write_bytes(name, data)
        self.files.inc()
        self.bytes.inc(len(data))
        yield name


def _earlier_outputs(prefix: str, suffix: str, written: list[str]) -> list[str]:
    """Files ``PREFIX-SSSSS-of-NNNNN SUFFIX`` beside ``prefix`` (no window in the name) that
    are not ``written``: an earlier batch run's output to the same place."""
    folder, base = prefix.rsplit("/", 1)
    pattern = re.compile(re.escape(base) + r"-\d{5}-of-\d{5}" + re.escape(suffix))
    kept = set(written)
    return [f for f, _ in folder_files(folder + "/") if pattern.fullmatch(f.rsplit("/", 1)[-1]) and f not in kept]


def _replacing_earlier_runs(written: list[str], prefix: str, suffix: str):
    """``written`` (every file of the run), once the earlier runs' other files are removed:
    they were read with these as one data set (4 shards, then 1 row in one: 92 old rows
    read with the new one)."""
    remove(_earlier_outputs(prefix, suffix, written))
    yield from sorted(written)


def replace_earlier_runs(files, prefix: str, suffix: str = ".parquet"):
    """``files`` (names written in the global window of a bounded input) → the same names,
    once all are written and the earlier runs' files of ``prefix`` are removed; windowed or
    unbounded writes (streaming: one file set per pane, kept) as they are."""
    if not (files.is_bounded and isinstance(files.windowing.windowfn, GlobalWindows)):
        return files
    return files | "AllWritten" >> beam.combiners.ToList() | "ReplaceEarlierRuns" >> beam.FlatMap(
        _replacing_earlier_runs, prefix, suffix
    )


class WriteParquetTables(beam.PTransform):
    """``pa.Table`` elements → Parquet files ``PREFIX[-window]-SSSSS-of-NNNNN.parquet``.

    Returns the PCollection of written file names. Works on windowed (streaming)
    PCollections too: one file set per window pane. In the global window (batch), an
    earlier run's files of the same prefix that this run did not rewrite are removed once
    every file is written: shards that get no rows write no file, and the old files read
    with the new ones as one data set.
    """

    def __init__(self, path: str, num_shards: int = 4, *, suffix: str = ".parquet", compression: str = "zstd"):
        super().__init__()
        if num_shards < 1:
            raise ValueError("num_shards must be >= 1")
        self.path = path
        self.num_shards = num_shards
        self.suffix = suffix
        self.compression = compression

    def expand(self, pcoll):
        prefix = output_prefix(self.path)
        written = (
            pcoll
            | "ShardKey" >> beam.ParDo(_ShardKey(self.num_shards, by_window=pcoll.windowing.windowfn.is_merging()))
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(_WriteShard(prefix, self.num_shards, self.suffix, self.compression))
        )
        return replace_earlier_runs(written, prefix, self.suffix)


def output_prefix(path: str) -> str:
    """Output path → file name prefix: a folder (ending in ``/``, or an existing directory,
    or on an object store a prefix that holds objects) gets ``part``."""
    if is_remote(path):
        return path.rstrip("/") + "/part" if is_folder(path) else path
    prefix = os.path.abspath(path.removeprefix("file://"))
    if os.path.isdir(prefix) or path.endswith("/"):
        prefix = os.path.join(prefix, "part")
    return prefix


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


#: Parquet input per output file when ``CompressParquet`` picks the number of files.
SHARD_INPUT_BYTES = 128 << 20
#: Up to ``MIN_AUTO_SHARDS`` files (spread over workers) while each gets at least this much input.
MIN_SHARD_INPUT_BYTES = 16 << 20
MIN_AUTO_SHARDS = 4
#: A file's embedded codec should weigh at most this share of the file's expected payload ...
EMBEDDED_CODEC_SHARE = 0.1
#: ... as far as files of at most this much input allow (a shard's input is held by one worker).
MAX_SHARD_INPUT_BYTES = 512 << 20
#: Expected bits per value of a codec whose manifest states none.
ASSUMED_BITS_PER_VALUE = 2.0


def embedded_input_bytes(codec) -> int:
    """Input bytes per file for which the payload (at the codec's calibrated rate, input taken
    as 32 bits per value) outweighs the embedded codec copy 1 / ``EMBEDDED_CODEC_SHARE`` times."""
    training = codec.manifest.get("training") or {}
    bits = (training.get("rate_calibration") or training.get("validation") or {}).get("bits_per_value")
    bits = float(bits) if bits else ASSUMED_BITS_PER_VALUE
    copy = len(arrow.embedded_codec(codec)) * 4 / 3  # once more base64 inside ARROW:schema
    return int(copy / EMBEDDED_CODEC_SHARE * 32 / bits)


def auto_shards(input_bytes: int, codec=None) -> int:
    """Output files for ``input_bytes`` of input: one per ``SHARD_INPUT_BYTES`` (a shard's
    input is held by one worker while it is encoded), and ``MIN_AUTO_SHARDS`` for workers to
    share, fewer for inputs under ``MIN_AUTO_SHARDS × MIN_SHARD_INPUT_BYTES``. With ``codec``
    (whose copy every file embeds), files are made large enough for it to weigh at most
    ``EMBEDDED_CODEC_SHARE`` of their payload, up to ``MAX_SHARD_INPUT_BYTES`` of input each:
    a 384-value embedding codec is megabytes."""
    size = max(1, int(input_bytes))
    least, most = MIN_SHARD_INPUT_BYTES, SHARD_INPUT_BYTES
    if codec is not None:
        need = min(MAX_SHARD_INPUT_BYTES, embedded_input_bytes(codec))
        least, most = max(least, need), max(most, need)
    spread = min(MIN_AUTO_SHARDS, -(-size // least))
    return max(spread, -(-size // most))


def _refuse_dead_letter_flag(encode: dict, name: str) -> None:
    """``dead_letter=`` is LtcEncode's; the file writers take the file (it was a TypeError,
    "got multiple values for keyword argument 'dead_letter'")."""
    if "dead_letter" in encode:
        raise InputError(f"{name} writes dead letters to a file: give dead_letter_path=FILE (JSON lines), not dead_letter=")


class EncodeToParquet(beam.PTransform):
    """Bounded ``pa.Table`` batches → compressed Parquet files ``PREFIX-SSSSS-of-NNNNN.parquet``.

    ``LtcEncodeShards`` then one writer per shard, with no further shuffle. Returns ``{"files":
    written file names}`` plus ``"dead_letter"`` with ``dead_letter_path`` (JSON lines
    written there).
    """

    def __init__(self, output: str, codec_uri: str, *, num_shards: int = MIN_AUTO_SHARDS, dead_letter_path=None, **encode):
        super().__init__()
        _refuse_dead_letter_flag(encode, type(self).__name__)
        self.output = output
        self.codec_uri = codec_uri
        self.num_shards = num_shards
        self.dead_letter_path = dead_letter_path
        self.encode = encode

    def expand(self, tables):
        result = tables | "LtcEncode" >> LtcEncodeShards(
            self.codec_uri, num_shards=self.num_shards, dead_letter=self.dead_letter_path is not None, **self.encode
        )
        encoded = result["encoded"] if isinstance(result, dict) else result
        prefix = output_prefix(self.output)
        files = replace_earlier_runs(encoded | "WriteShards" >> beam.ParDo(_WriteShard(prefix, self.num_shards)), prefix)
        out = {"files": files}
        if isinstance(result, dict):
            out["dead_letter"] = result["dead_letter"]
            _ = (
                result["dead_letter"]
                | "DeadLetterJson" >> beam.Map(lambda d: json.dumps(_jsonable(d), sort_keys=True))
                | "WriteDeadLetters" >> beam.io.WriteToText(self.dead_letter_path, shard_name_template="")
            )
        return out


class CompressParquet(beam.PTransform):
    """Read Parquet (file, directory or glob), compress it, write compressed Parquet.

    ``num_shards`` output files (default: :func:`auto_shards` of the input's size); series
    are spread over them by key, each file's tails packed together (``EncodeToParquet``).
    Returns ``{"files": written file names, "dead_letter": dead letters}`` (the latter only
    with ``dead_letter_path``: JSON lines written there).
    """

    def __init__(self, input: str, output: str, codec_uri: str, *, num_shards: int | None = None, dead_letter_path=None, **encode):
        super().__init__()
        _refuse_dead_letter_flag(encode, type(self).__name__)
        self.input = input
        self.output = output
        self.codec_uri = codec_uri
        self.num_shards = num_shards
        self.dead_letter_path = dead_letter_path
        self.encode = encode

    def expand(self, pbegin):
        read = ReadParquetTables(self.input)
        shards = self.num_shards or auto_shards(
            sum(size for _, size in read.matched()),
            arrow.load_codec(self.codec_uri) if self.encode.get("embed_codec", True) else None,
        )
        return (
            pbegin
            | "Read" >> read
            | "Encode" >> EncodeToParquet(
                self.output, self.codec_uri, num_shards=shards, dead_letter_path=self.dead_letter_path, **self.encode
            )
        )


#: Records decoded (and held in memory) at a time per file by ``DecompressParquet``.
DECODE_BATCH_RECORDS = 1 << 18


def _decoded_batches(path: str, decoders: Decoders, partitions: Partitions):
    """Compressed file ``path`` → decoded tables of about ``DECODE_BATCH_RECORDS`` records, with
    the Hive partition columns of its folders that the decoded schema lacks (an archive
    compressed folder by folder into ``day=…`` folders keeps ``day`` as the raw tree did)."""
    from ltc_beam.beam import transforms

    with open_parquet(path) as reader:
        info = arrow.table_info(reader.schema_arrow, path)
        rows = max(1, DECODE_BATCH_RECORDS // ((info.chunk_size or 1) if info.layout == "chunk" else 1))
        for table in _batches(reader, path, rows) if reader.metadata.num_rows else [reader.schema_arrow.empty_table()]:
            try:
                decoded = decoders.decode(table)
            except LtcError as exc:  # which of many files (Beam re-raises type(error)(message))
                raise type(exc)(f"{path}: {exc}") from exc
            if transforms.progress_callback is not None:
                transforms.progress_callback(decoded.num_rows)
            yield partitions.add(decoded, path)


class _DecodeFiles(beam.DoFn):
    """``(i, compressed file)`` → its decoded tables (:func:`_decoded_batches`)."""

    def __init__(self, codec_uri: str | None, device: str, partitions: Partitions):
        self.codec_uri = codec_uri
        self.device = device
        self.partitions = partitions

    def setup(self):
        one_torch_thread()
        self.decoders = Decoders(self.codec_uri, resolve_device(self.device))
        self.records = Metrics.counter(NAMESPACE, "records_decoded")

    def process(self, element):
        _, path = element
        for decoded in _decoded_batches(path, self.decoders, self.partitions):
            self.records.inc(decoded.num_rows)
            yield decoded


class _DecodeFile(_DecodeFiles):
    """``(i, compressed file)`` → decoded file ``PREFIX-IIIII-of-NNNNN.parquet``, batch by
    batch, written under its :func:`~ltc_beam.storage.pending_name` until every file is
    decoded (:func:`_commit`): a failed job leaves no file that looks complete (2 of 3
    decoded files did). Nothing crosses a shuffle but the names (the decoded data is the
    bulk of a decompress job); a retried file is rewritten whole under the same name.
    Yields ``(pending name, name)``.
    """

    def __init__(self, prefix: str, count: int, codec_uri: str | None, device: str, partitions: Partitions, compression: str = "zstd"):
        super().__init__(codec_uri, device, partitions)
        self.prefix = prefix
        self.count = count
        self.compression = compression

    def setup(self):
        super().setup()
        self.files = Metrics.counter(NAMESPACE, "files_written")

    def process(self, element):
        name = f"{self.prefix}-{element[0]:05d}-of-{self.count:05d}.parquet"
        with open_for_write(pending_name(name)) as handle:
            writer = None
            for decoded in super().process(element):
                if writer is None:
                    writer = pq.ParquetWriter(handle, decoded.schema, **parquet_options(decoded.schema, self.compression))
                writer.write_table(decoded)
            writer.close()
        self.files.inc()
        yield pending_name(name), name


def _commit(written: list[tuple[str, str]], prefix: str):
    """Every decoded file under its name, once all are written (a retry skips those done),
    and the earlier runs' other files of ``prefix`` removed (:func:`_replacing_earlier_runs`)."""
    for pending, name in sorted(written):
        if exists(pending) or not exists(name):
            rename(pending, name)
    yield from _replacing_earlier_runs([name for _, name in written], prefix, ".parquet")


class DecompressParquet(beam.PTransform):
    """Read compressed Parquet, decode it, write Parquet of the original schema.

    By default every input file becomes one decoded file ``OUTPUT-IIIII-of-NNNNN.parquet``
    (I: the input's place in the sorted file list), read, decoded and written by one worker
    with no shuffle of the data; the files get their names once all are written (only the
    names are gathered), so a failed job leaves none that looks complete. ``num_shards=N``
    instead regroups the decoded records into N files with ``WriteParquetTables`` (one
    shuffle of the decoded data). Hive partition folders of the input (``day=…``) become
    columns where the decoded schema lacks them, as they were columns of the raw tree.
    """

    def __init__(self, input: str, output: str, codec_uri: str | None = None, *, num_shards: int | None = None, device="auto"):
        super().__init__()
        self.input = input
        self.output = output
        self.codec_uri = codec_uri
        self.num_shards = num_shards
        self.device = device

    def expand(self, pbegin):
        files = ReadParquetTables(self.input).files()
        partitions = input_partitions(self.input, files)
        listed = pbegin | "Files" >> beam.Create(list(enumerate(files)))
        if self.num_shards is None:
            prefix = output_prefix(self.output)
            return (
                listed
                | "DecodeFiles" >> beam.ParDo(_DecodeFile(prefix, len(files), self.codec_uri, self.device, partitions))
                | "AllDecoded" >> beam.combiners.ToList()
                | "Commit" >> beam.FlatMap(_commit, prefix)
            )
        return (
            listed
            | "Decode" >> beam.ParDo(_DecodeFiles(self.codec_uri, self.device, partitions)).with_output_types(pa.Table)
            | "Write" >> WriteParquetTables(self.output, self.num_shards)
        )
