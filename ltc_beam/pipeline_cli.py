"""``ltc-beam compress`` and ``ltc-beam decompress``: Beam pipelines from the command line.

The embedded default runner is FnApiRunner; ``--runner DaskRunner`` without
``--dask_client_address`` starts a local Dask cluster, ``--runner PortableRunner`` without
``--job_endpoint`` a local job service; any other option (``--project``, ``--region``,
``--flink_master``, ``--direct_num_workers`` ...) passes through to Beam's PipelineOptions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
import warnings
from collections import Counter
from typing import NoReturn

import numpy as np
import pyarrow as pa

from ltc_beam import arrow
from ltc_beam.cli import positive, show_progress, trained_order
from ltc_beam.data import common_schema, load_npy, refuse_column_names, warn_if_text_order, warn_if_tied, warn_if_unordered
from ltc_beam.errors import InputError, grouped_warnings
from ltc_beam.parquet import (
    codec_copy_bytes, input_partitions, is_parquet_name, list_files, matched_files, naming_the_file, open_parquet, read_table,
    hidden_path,
)
from ltc_beam.partitions import Partitions
from ltc_beam.progress import progress_bar
from ltc_beam.run_marker import COMPLETE, NOTE, RUNNING, read_note, write_note
from ltc_beam.storage import exists, file_size, folder_files, is_folder, is_remote, open_for_read, open_for_write, remove, rename

PIPELINE_COMMANDS = ("compress", "decompress", "demo")


# ---------------------------------------------------------------------- arguments
#: The encoder's switches (flag, Codec attribute it turns off, what compress says of it).
ENCODER_OPTIONS = (
    ("--no-sample-fallback", "sample_fallback", "lattice-coded streams only (no version-2 stream: readable by releases before the fallback)"),
    ("--nearest-points", "rd_quantization", "code the nearest lattice points (no rate-distortion choice: more bits at low rate, encoding 2-3x as fast)"),
    ("--keep-repeats", "leave_out_repeats", "code every record, also those that repeat the record before them bit for bit (no version-5 stream: "
     "readable by releases before it)"),
)


def add_encoder_options(p: argparse.ArgumentParser, like_compress: bool = False) -> None:
    """The encoder's switches (``ENCODER_OPTIONS``); ``like_compress``: for another command,
    said to do as compress's."""
    for flag, dest, text in ENCODER_OPTIONS:
        p.add_argument(flag, dest=dest, action="store_false", help=f"as compress {flag}: {text}" if like_compress else text)


def add_commands(sub) -> None:
    p = sub.add_parser(
        "compress",
        help="compress INPUT (Parquet file, directory or glob, or .npy) to ltc-beam Parquet with a Beam pipeline",
        epilog="Unknown --options are passed to Beam's PipelineOptions.",
    )
    p.add_argument("input", help="Parquet file, directory or glob, or a .npy array")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--column", help="vector column (list or fixed-size list of floats or integers), or one value column")
    group.add_argument("--columns", help="value columns a,b,c forming the vector (floats, or integers to code)")
    p.add_argument("--key", help="series key column (records of one key form one series)")
    p.add_argument("--order-by", dest="order_by", help="order column within each series")
    p.add_argument("--codec", required=True, help="codec artifact (*.ltc): local path or any Beam FileSystems URI")
    p.add_argument("--output", required=True, help="output directory (files part-SSSSS-of-NNNNN.parquet)")
    p.add_argument("--layout", choices=["chunk", "record"], default="chunk")
    p.add_argument(
        "--chunk-size", dest="chunk_size", type=positive(int), default=None,
        help="records per chunk (default 4096, or 16384 values' worth for records of fewer than 4 values), rounded "
        "up to whole lattice blocks of windows (window T x 8 records for e8 in block mode); small chunks pay "
        "padding to whole blocks (OSULeaf, T=32: 3.15 bits/value at 512 records, 1.97 by default)",
    )
    p.add_argument(
        "--num-shards", dest="num_shards", type=positive(int),
        help="output files (default: one per 128 MiB of input, at least 4 (fewer under 64 MiB, one under 16 MiB; up to 512 MiB per file for a codec of megabytes, which every file embeds); a file's input is held by one worker)",
    )
    p.add_argument("--no-embed-codec", dest="embed_codec", action="store_false", help="do not embed the codec in each file")
    add_encoder_options(p)
    p.add_argument("--dead-letter", dest="dead_letter", help="write bad records here (JSON lines) and go on")
    p.add_argument("--verify", action="store_true", help="decode the output and report SNR and exactness of the other columns")
    add_run_options(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser(
        "decompress",
        help="decode ltc-beam Parquet back to the original schema with a Beam pipeline",
        epilog="Unknown --options are passed to Beam's PipelineOptions.",
    )
    p.add_argument("input", help="compressed Parquet file, directory or glob")
    p.add_argument(
        "--output", required=True,
        help="output directory (files part-IIIII-of-NNNNN.parquet), or a .npy file for an archive compressed from .npy",
    )
    p.add_argument("--codec", help="codec artifact; by default the codec embedded in each file")
    p.add_argument(
        "--num-shards",
        dest="num_shards",
        type=positive(int),
        help="regroup the records into N files (default: one decoded file per input file, no shuffle)",
    )
    add_run_options(p)
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("demo", help="train/load a codec for real IMU telemetry, compress and decompress it with Beam, print a table")
    p.add_argument("--out", default="out/demo", help="working directory (default out/demo)")
    p.add_argument("--retrain", action="store_true", help="train the codecs instead of loading the committed ones")
    p.add_argument("--steps", type=positive(int), default=1000, help="training steps when (re)training")
    p.add_argument("--runner", default="FnApiRunner", help=RUNNER_HELP)
    p.add_argument("--codec-dir", dest="codec_dir", help="where retrained codecs go (default OUT/codecs)")
    p.set_defaults(func=cmd_demo)


RUNNER_HELP = "Beam runner: FnApiRunner (default), DaskRunner, PortableRunner, DataflowRunner, FlinkRunner ..."


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that runs a Beam pipeline: runner, device, output form."""
    p.add_argument("--runner", default="FnApiRunner", help=RUNNER_HELP)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress display (a bar on a terminal, a line a minute in a log)")


# ---------------------------------------------------------------------- helpers
#: Row index column of a ``.npy`` input: the archive's ``order_by``, so that decoding
#: restores the array's order (output shards hold chunks in no particular order).
NPY_ROW = "row"


NPY_BATCH = 65536  # records per table a .npy input enters the pipeline in


def _npy_table(path: str) -> pa.Table:
    array = load_npy(path)
    flat = pa.array(np.ascontiguousarray(array, dtype=array.dtype).reshape(-1))
    return pa.table({
        NPY_ROW: pa.array(np.arange(len(array), dtype=np.int64)),
        "values": pa.FixedSizeListArray.from_arrays(flat, array.shape[1]),
    })


def npy_batches(table: pa.Table) -> list[pa.Table]:
    """``table`` in batches of ``NPY_BATCH`` records, each a copy: a slice pickles its whole
    parent table, so ``Create`` of slices took time quadratic in the array (1e6 records:
    82 s to compress, 7 s as copies)."""
    return [arrow.from_ipc(arrow.to_ipc(table.slice(i, NPY_BATCH))) for i in range(0, table.num_rows, NPY_BATCH)]


class _Progress:
    """A progress bar (:mod:`ltc_beam.progress`) fed by the pipeline's Account steps when they run in this process."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = progress_bar(True, total=total, desc=desc, unit="rec") if enabled else None

    def __enter__(self):
        from ltc_beam.beam import transforms

        if self.bar is not None:
            transforms.progress_callback = self.bar.update
        return self

    def __exit__(self, *exc):
        from ltc_beam.beam import transforms

        transforms.progress_callback = None
        if self.bar is not None:
            self.bar.close()


#: What a run writes in an output directory (``part[-window]-SSSSS-of-NNNNN.parquet``): the
#: only files a run counts there ...
OUTPUT_PATTERN = re.compile(r"part(-.+)?-\d{5}-of-\d{5}\.parquet")
#: ... and removes, with those a failed decompress left pending (``.NAME.pending``) and the
#: temp files of a killed one (``NAME.<12 hex>.tmp``, :func:`ltc_beam.storage.open_for_write`).
LEFTOVER_PATTERN = re.compile(r"(\.)?part(-.+)?-\d{5}-of-\d{5}\.parquet(?(1)\.pending)(\.[0-9a-f]{12}\.tmp)?")


def _output_folder(path: str) -> str:
    """``--output`` as a folder: an object store's ``gs://bucket/out`` is the prefix ``out/``
    (its files were written as ``out-00000-of-…``, beside the folder); ``file://`` URIs are
    local paths."""
    return path + "/" if is_remote(path) and not path.endswith("/") else path.removeprefix("file://")


def _name(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _output_files(path: str) -> list[tuple[str, int]]:
    """``(file, size)`` of the files this run wrote to output folder ``path``."""
    return [(f, size) for f, size in folder_files(path) if OUTPUT_PATTERN.fullmatch(_name(f))]


def _remove_outputs(path: str) -> None:
    """Remove the files a run writes (or left pending) in output folder ``path``, and its note."""
    remove([f for f, _ in folder_files(path) if LEFTOVER_PATTERN.fullmatch(_name(f)) or _name(f) == NOTE])


#: An earlier run's complete output (its files and note), kept aside under hidden names
#: (``.NAME.kept``, which no reader takes) while a new run writes the folder: put back where
#: the new run fails, removed once it completes. Removed before the run, a complete archive
#: was lost to a re-run that then failed on a bad record.
KEPT_PATTERN = re.compile(r"\.(part(-.+)?-\d{5}-of-\d{5}\.parquet|" + re.escape(NOTE) + r")\.kept")


def _kept_name(uri: str) -> str:
    head, _, name = uri.rpartition("/")
    return f"{head}/.{name}.kept" if head else f".{name}.kept"


def _kept_back(uri: str) -> str:
    """The name a kept file (:func:`_kept_name`) had."""
    head, _, name = uri.rpartition("/")
    name = name[1:].removesuffix(".kept")
    return f"{head}/{name}" if head else name


def _keep_earlier_output(files: list[str], note: dict | None) -> None:
    """Move a complete earlier run's ``files`` and note aside (:data:`KEPT_PATTERN`); nothing
    where files are kept already (a run since then did not finish) or the earlier run did
    not finish (its files are not a whole output)."""
    if note is None or note.get("state") != COMPLETE or any(KEPT_PATTERN.fullmatch(_name(f)) for f in files):
        return
    for f in files:
        if OUTPUT_PATTERN.fullmatch(_name(f)) or _name(f) == NOTE:
            rename(f, _kept_name(f))


def _discard_run(path: str) -> None:
    """Remove this run's files from output folder ``path`` and put back the earlier output
    it kept aside."""
    _remove_outputs(path)
    for f, _ in folder_files(path):
        if KEPT_PATTERN.fullmatch(_name(f)):
            rename(f, _kept_back(f))


def _finish_run(path: str, command: str, files: list[tuple[str, int]], records: int) -> None:
    """Note the run in ``path`` complete and remove the earlier output it kept aside."""
    write_note(path, command, COMPLETE, files, records)
    remove([f for f, _ in folder_files(path) if KEPT_PATTERN.fullmatch(_name(f))])


def _prepare_output(path: str, source: str, inputs: list[str], command: str) -> None:
    """Create the output folder and remove a previous run's files from it (where its
    :mod:`~ltc_beam.run_marker` note says a run wrote them), then note this run as running.
    Refuse an output folder that holds Parquet files no run wrote (another tool's, or Beam's
    own of the same names: they would be deleted, or mixed with these), that holds any input
    file (they would be deleted or overwritten), or that lies in the input directory
    ``source`` (the next command on it read the output as input: "lacks ['x0', …] and adds
    ['ltc_codec', …]", or lossy copies trained on)."""
    if not is_remote(path) and os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"--output {path!r} is a file: name a directory for the output files")
    held = [f for f in inputs if _below(f, path) is not None]
    if held:
        raise InputError(f"--output {path!r} holds input file {held[0]!r}: choose an output directory apart from the input")
    folder = _input_folder(source)
    below = None if folder is None else _below(path, folder)
    if below is not None and not (below and hidden_path(below)):  # _out/, .out/: never read as input
        raise InputError(
            f"--output {path!r} lies in the input directory {folder!r}, where the next command on it would read the "
            "output as input: choose an output directory apart from the input"
        )
    listed = [f for f, _ in folder_files(path)]
    existing = [_name(f) for f in listed]
    ours = NOTE in existing
    note = read_note(path) if ours else None
    if note is not None and note.get("command", command) != command:
        what = {"compress": "an archive", "decompress": "decoded files"}.get(note.get("command"), "its files")
        raise InputError(
            f"--output {path!r} holds the output of an ltc-beam {note.get('command')} ({what}, noted in {NOTE}), which "
            f"this {command} would replace: choose a new or empty output directory, or remove that one first"
        )
    foreign = [n for n in existing if is_parquet_name(n) and not (ours and LEFTOVER_PATTERN.fullmatch(n))]
    if foreign:
        raise InputError(
            f"--output {path!r} already holds {len(foreign)} Parquet file(s) that no ltc-beam run wrote there "
            f"({', '.join(map(repr, foreign[:3]))}{', …' if len(foreign) > 3 else ''}): a run replaces only its own "
            f"earlier output (noted in {NOTE}); choose a new or empty output directory, or remove them"
        )
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
    _keep_earlier_output(listed, note)
    _remove_outputs(path)
    write_note(path, command, RUNNING)


def _input_folder(source: str) -> str | None:
    """The folder input ``source`` reads: itself, or a glob's folder before its first
    wildcard (``arch/*.parquet``: ``arch``); None for a file."""
    if is_folder(source):
        return source
    if exists(source) or not any(ch in source for ch in "*?["):
        return None
    head = source[: min(source.index(ch) for ch in "*?[" if ch in source)]
    return head[: head.rfind("/") + 1] or "."


def _below(name: str, folder: str) -> str | None:
    """File or folder ``name``'s path below ``folder`` ("" for the folder itself), or None
    where it lies elsewhere (local paths resolved)."""
    if is_remote(folder) or is_remote(name):
        top, name = folder.rstrip("/") + "/", name.rstrip("/") + "/"
        return name[len(top):].rstrip("/") if name.startswith(top) else None
    top, name = (os.path.realpath(p.removeprefix("file://")) for p in (folder, name))
    if os.path.commonpath([top, name]) != top:
        return None
    below = os.path.relpath(name, top)
    return "" if below == "." else below


def _check_dead_letter_path(path: str, files: list[str], output: str) -> None:
    """Refuse a ``--dead-letter`` path whose writing would destroy data. Beam's text sink
    takes the path as a pattern and, when it finishes, replaces whatever matches it: an input
    file came back empty, the output folder or any other folder was deleted whole, and
    ``dl*`` deleted every file it matched. Only a new file or an earlier dead-letter file
    (JSON lines naming an ``error``) may be written."""
    def refuse(why: str) -> NoReturn:
        raise InputError(f"--dead-letter {path!r} {why}: name a new file for the bad records")

    if set(path.removeprefix("file://")) & set("*?[]"):
        refuse("holds a wildcard character (*?[]), which the writer would expand")
    if is_folder(path) or path.endswith(("/", os.sep)):
        refuse("is a directory")
    for name in files:
        if _below(path, name) == "":
            refuse(f"is {'the codec' if name == files[-1] else 'an input file'}")
    if _below(path, output) is not None:
        refuse(f"lies in the output directory {output!r}")
    if exists(path) and not _is_dead_letter_file(path):
        refuse("exists and is not an earlier dead-letter file (JSON lines naming an error)")


def _is_dead_letter_file(path: str) -> bool:
    """Whether the file at ``path`` is empty or starts with a dead-letter JSON line."""
    with open_for_read(path) as handle:
        first = handle.readline(1 << 20)
    if not first:
        return True
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "error" in record


def _lines(path: str) -> int:
    """Non-empty lines of the text file at ``path`` (0 where it was not written)."""
    if not exists(path):
        return 0
    with open_for_read(path) as handle:
        return sum(1 for line in handle if line.strip())


@contextlib.contextmanager
def _outputs_removed_on_failure(path: str):
    """A failed job leaves no output files of its own (those already written, one decoded
    file per input file, looked like a complete result: 2 of 3 files after a damaged third)
    and puts back the earlier output it kept aside."""
    try:
        yield
    except BaseException:
        try:
            _discard_run(path)
        except Exception as exc:  # the job's own error stays the one reported
            warnings.warn(f"the failed run's files in {path} could not be removed: {exc}", UserWarning, stacklevel=3)
        raise


def _check_columns(schema: pa.Schema, codec, encode: dict) -> None:
    """Fail before the pipeline starts (not inside a worker, under a Beam traceback) when
    the vector, key or order column or the layout does not fit the input."""

    compressed = arrow.compressed_schema(
        schema, codec, layout=encode["layout"], column=encode["column"], columns=encode["columns"],
        key=encode["key"], order_by=encode["order_by"], embed_codec=False,
    )
    spec = arrow.table_info(compressed).spec
    if spec.columns is not None:
        arrow.check_column_names(spec.columns, codec)


def _vectors(table: pa.Table, names, dtype=np.float32) -> np.ndarray:

    spec = arrow.resolve_spec(table.schema, len(names) if len(names) > 1 else _dim(table, names[0]), column=names[0] if len(names) == 1 else None, columns=names if len(names) > 1 else None)
    return arrow.vectors(table, spec, dtype=dtype)


def _dim(table: pa.Table, name: str) -> int:
    t = table.schema.field(name).type
    if pa.types.is_fixed_size_list(t):
        return t.list_size
    if arrow.is_coded_type(t):
        return 1
    col = table.column(name)
    return len(col[0].as_py()) if len(col) else 0


# ---------------------------------------------------------------------- compress
def compress(args: argparse.Namespace, beam_args: list[str]) -> dict:
    from ltc_beam.beam.io import CompressParquet, EncodeToParquet, auto_shards
    from ltc_beam.beam.runners import counters, run

    args.output = _output_folder(args.output)
    codec = arrow.load_codec(args.codec)
    trained_order(args, codec, "compress")
    columns = [c for c in args.columns.split(",") if c] if args.columns else None
    encode = dict(
        column=args.column,
        columns=columns,
        key=args.key,
        order_by=args.order_by,
        layout=args.layout,
        chunk_size=args.chunk_size,
        embed_codec=args.embed_codec,
        sample_fallback=args.sample_fallback,
        rd_quantization=None if args.rd_quantization else False,  # --nearest-points, else as the codec chose
        leave_out_repeats=args.leave_out_repeats,
        device=args.device,
    )
    if args.input.endswith(".npy"):
        refuse_column_names(args.input, **{k: encode[k] for k in ("column", "columns", "key", "order_by")})
        table = _npy_table(args.input)
        files, records, bytes_in = [args.input], table.num_rows, file_size(args.input)
        partitions = Partitions()
        encode["column"], encode["order_by"] = "values", NPY_ROW

        def build(p):
            import apache_beam as beam

            tables = p | "Read" >> beam.Create(npy_batches(table))
            tables | "Compress" >> EncodeToParquet(
                args.output, args.codec, num_shards=shards, dead_letter_path=args.dead_letter, **encode
            )
    else:
        matched = matched_files(args.input)  # listed once here (the pipeline lists them again)
        files = [f for f, _ in matched]
        partitions = input_partitions(args.input, files)
        records, schemas = 0, []
        for f in files:  # each file's footer read once
            with open_parquet(f) as footer:
                records += footer.metadata.num_rows
                schemas.append(partitions.schema(footer.schema_arrow))
                if f == files[0] and args.order_by in schemas[0].names and footer.num_row_groups:
                    with naming_the_file(f):  # the order judged on the first row group (or partition)
                        first = partitions.add(footer.read_row_group(0), f)
                    warn_if_text_order(first.column(args.order_by), args.order_by, stacklevel=2)
        bytes_in = sum(size for _, size in matched)
        schema = common_schema(files, schemas)
        if schema is not schemas[0]:
            encode["schema"] = schema  # files of float32 and float64 values: all decode as float64
        _check_columns(schema, codec, encode)

        def build(p):
            p | "Compress" >> CompressParquet(
                args.input, args.output, args.codec, num_shards=shards,
                dead_letter_path=args.dead_letter, **encode
            )

    if records == 0:
        raise InputError(f"{args.input!r} holds no records: nothing to compress")
    one_series = encode["key"] is None and encode["order_by"] is not None  # (a .npy array's rows too)
    shards = args.num_shards or (1 if one_series else auto_shards(bytes_in, codec if args.embed_codec else None))
    if args.dead_letter:
        _check_dead_letter_path(args.dead_letter, files + [args.codec], args.output)
    _prepare_output(args.output, args.input, files, "compress")
    start = time.time()
    with _outputs_removed_on_failure(args.output), _Progress(records, "compress", show_progress(args)), grouped_warnings():
        result, _ = run(build, args.runner, beam_args)
    seconds = time.time() - start
    outputs = _output_files(args.output)
    out_files = [f for f, _ in outputs]
    if len(out_files) < shards:
        if one_series:
            series = "with --order-by alone (or a .npy array) every record is one series, and series"
        else:
            series = "series" if encode["key"] else "series (without --key or --order-by: input batches)"
        warnings.warn(
            f"{len(out_files)} of the {shards} output files hold data (their names keep their shard numbers): {series} "
            f"go to files by a hash of their key, whole, and a file receives whole chunks of up to "
            f"{arrow.chunk_rows(codec, args.chunk_size)} records, so few series or few chunks fill fewer files",
            UserWarning,
            stacklevel=2,
        )
    payload, count, codec_copies = 0, 0, 0
    for name in out_files:
        with open_parquet(name) as footer:
            t = footer.read(columns=[arrow.PAYLOAD] + ([arrow.COUNT] if args.layout == "chunk" else []))
            codec_copies += codec_copy_bytes(footer.schema_arrow)
        payload += sum(len(b) for b in t.column(arrow.PAYLOAD).to_pylist())
        count += sum(t.column(arrow.COUNT).to_pylist()) if args.layout == "chunk" else t.num_rows
    dim = codec.config.record_dim
    values = count * dim
    bytes_out = sum(size for _, size in outputs)
    summary = {
        "runner": args.runner,
        "records_in": records,
        "records_out": count,
        "dead_letters": _lines(args.dead_letter) if args.dead_letter else 0,
        "values": values,
        "input_bytes": bytes_in,
        "output_bytes": bytes_out,
        "embedded_codec_bytes": codec_copies,
        "payload_bytes": payload,
        "bits_per_value": payload * 8 / values if values else math.nan,
        # the payloads' ratio alone read 15.3 where the files were half the input's bytes (codec copies, other columns)
        "payload_ratio_vs_float32": (values * 32) / (payload * 8) if payload else math.nan,
        "input_to_output_bytes": bytes_in / bytes_out if bytes_out else math.nan,
        "seconds": round(seconds, 3),
        "records_per_second": round(count / seconds, 1) if seconds else math.nan,
        "output_files": len(out_files),
        "codec_id": codec.id,
        "metrics": counters(result),
    }
    if args.order_by:
        from ltc_beam.beam.transforms import TIED_COUNTER, UNORDERED_COUNTER

        warn_if_unordered(summary["metrics"].get(UNORDERED_COUNTER, 0), args.order_by, stacklevel=2)
        warn_if_tied(summary["metrics"].get(TIED_COUNTER, 0), args.order_by, stacklevel=2)
    if codec_copies and codec_copies > payload:  # the codec copies outweigh the data
        larger = f"the output ({bytes_out} bytes) is larger than the input ({bytes_in}): " if bytes_out > bytes_in else ""
        warnings.warn(
            f"{larger}each of the {len(out_files)} output file(s) embeds the codec ({codec_copies} bytes in all, "
            f"against {payload} bytes of compressed data). Keep the codec file and pass --no-embed-codec "
            "(decompress --codec CODEC), or compress more records per file (fewer --num-shards)",
            UserWarning,
            stacklevel=2,
        )
    if summary["records_out"] + summary["dead_letters"] == records:  # else cmd_compress discards the run
        _finish_run(args.output, "compress", outputs, count)
        if args.verify:  # files read as a reader would: of a finished run
            summary.update(_verify(args, files, out_files, codec, partitions))
    return summary


def _verify(args, files: list[str], out_files: list[str], codec, partitions: Partitions) -> dict:
    """Decode the written files in process and compare with the input."""
    from ltc_beam.evaluation import series_snr, snr_db
    from ltc_beam.parquet import read_parquet

    decoded = pa.concat_tables([read_parquet(f, codec, sort=False) for f in out_files])
    if args.input.endswith(".npy"):
        source = _npy_table(args.input)
    else:
        source = pa.concat_tables([partitions.add(read_table(f), f) for f in files], promote_options="permissive")
    records_in = source.num_rows
    with open_parquet(out_files[0]) as footer:
        info = arrow.table_info(footer.schema_arrow)
    names = list(info.spec.names)
    keys = [c for c in (info.key, info.order_by) if c]
    left_out = {}
    if args.dead_letter and source.num_rows > decoded.num_rows:  # the dead letters' records left out
        source = _written(source, decoded, names)
        left_out = {"verify_dead_letters_left_out": records_in - source.num_rows}
    same_rows = source.num_rows == decoded.num_rows
    paired = _paired(source, decoded, keys, names) if same_rows else None
    if paired is None:
        reason = "records in != records out" if not same_rows else (
            "no key, order or unique pass-through columns tell which decoded record is which input record "
            "(ltc-beam evaluate INPUT --codec CODEC reports the SNR of the same coding)"
        )
        return {"verify_records_equal": same_rows, **left_out, "verify_unpaired": reason}
    source, decoded = paired
    others = [c for c in source.column_names if c not in names]
    differing = [c for c in others if not _identical(decoded.column(c), source.column(c).cast(decoded.schema.field(c).type))]
    x, y = _vectors(source, names), _vectors(decoded, names)
    specials = ~np.isfinite(x)
    stored, back = _vectors(source, names, np.float64), _vectors(decoded, names, np.float64)  # float64 columns: as stored
    coded_exactly = codec.exactly_coded(x)
    by_series = {}
    if info.key:  # each series' own SNR too, as evaluate gives it (a panel read 22.7 dB, its median series 14.9)
        by_series = series_snr(stored, back, coded_exactly, arrow.key_codes(source, info.key)[0])
    return {
        "verify_records_equal": same_rows,
        **left_out,
        "verify_other_columns_identical": not differing,
        **({"verify_columns_differing": differing} if differing else {}),
        "verify_nonfinite_exact": bool(np.array_equal(x[specials].view(np.uint32), y[specials].view(np.uint32))),
        "snr_db": snr_db(stored, back, coded_exactly),
        **by_series,
        "max_abs_error": float(np.max(np.abs(np.where(specials, 0, stored) - np.where(specials, 0, back)))) if x.size else math.nan,
    }


def _written(source: pa.Table, decoded: pa.Table, names: list[str]) -> pa.Table:
    """The records of ``source`` that ``decoded`` holds, told apart by their columns other
    than the vector ones (nulls included; as many of each as ``decoded`` has), in input order."""
    others = [c for c in source.column_names if c not in names]

    def signatures(table: pa.Table):  # repr: NaN equals NaN, lists and structs hash
        return map(repr, zip(*(table.column(c).to_pylist() for c in others)))

    left = Counter(signatures(decoded))
    kept = []
    for row, signature in enumerate(signatures(source)):
        if left[signature] > 0:
            left[signature] -= 1
            kept.append(row)
    return source.take(pa.array(kept, pa.int64()))


def _identical(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Whether two columns hold the same values, NaN equal to NaN (Arrow's ``equals`` says a
    float column with a NaN differs from itself; in lists too, where --verify then reported
    a column that came back bit for bit as changed)."""
    if a.equals(b):
        return True
    if a.type != b.type or len(a) != len(b) or not a.is_null().equals(b.is_null()):
        return False
    if pa.types.is_floating(a.type):
        x, y = (np.asarray(c.fill_null(0).combine_chunks().to_numpy(zero_copy_only=False), dtype=np.float64) for c in (a, b))
        return bool(np.array_equal(x, y, equal_nan=True))
    if "float" in str(a.type) or "double" in str(a.type):  # floats nested inside (halffloat, float, double)
        step = 1 << 16
        return all(_same(a.slice(i, step).to_pylist(), b.slice(i, step).to_pylist()) for i in range(0, len(a), step))
    return False


def _same(x, y) -> bool:
    """Python values equal, NaN equal to NaN at any depth."""
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (x != x and y != y)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    return x == y


def _paired(source: pa.Table, decoded: pa.Table, keys: list[str], names: list[str]):
    """``(source, decoded)`` with rows in one order: sorted by the key and order columns, ties
    (or, with neither, everything) broken by the pass-through columns Arrow can sort, records
    they do not tell apart in input order on both sides (``compress`` keeps it); None when,
    without key and order, those columns do not tell every record apart."""

    sortable = [f.name for f in source.schema if f.name not in names and f.name not in keys and _sortable(f.type)]
    by = keys + sortable
    if not by or (not keys and source.group_by(by).aggregate([]).num_rows != source.num_rows):
        return None
    return source.take(arrow.sort_indices(source, by)), decoded.take(arrow.sort_indices(decoded, by))


def _sortable(t: pa.DataType) -> bool:
    """Whether Arrow sorts and groups by a column of type ``t`` (numbers, times, strings)."""
    t = t.value_type if pa.types.is_dictionary(t) else t
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_temporal, pa.types.is_string,
             pa.types.is_large_string, pa.types.is_boolean, pa.types.is_decimal)
    return any(kind(t) for kind in kinds) and not pa.types.is_float16(t)  # no float16 sort kernel


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, default=str))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if key == "metrics":
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:>{width}}: {value}")


def cmd_compress(args: argparse.Namespace, beam_args: list[str] | None = None) -> int:
    summary = compress(args, beam_args or [])
    _print_summary(summary, args.json)
    if summary["records_out"] + summary["dead_letters"] != summary["records_in"]:
        print("ltc-beam compress: error: records out do not match records in: the output files are removed", file=sys.stderr)
        _discard_run(args.output)
        return 1
    if not args.verify:
        return 0
    found = [] if summary.get("verify_nonfinite_exact", True) else ["non-finite values (NaN, inf) did not come back bit for bit"]
    if "verify_columns_differing" in summary:
        found.append(f"pass-through columns {summary['verify_columns_differing']} did not come back as they were")
    if summary["verify_records_equal"] and not found:
        return 0
    print(f"ltc-beam compress: error: --verify: {summary.get('verify_unpaired') or '; '.join(found)}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------- decompress
def cmd_decompress(args: argparse.Namespace, beam_args: list[str] | None = None) -> int:
    from ltc_beam.beam.io import DecompressParquet
    from ltc_beam.beam.runners import run

    files = list_files(args.input)
    records = 0
    for f in files:
        with open_parquet(f) as footer:
            arrow.table_info(footer.schema_arrow, f)
            t = footer.read(columns=[arrow.COUNT]) if arrow.COUNT in footer.schema_arrow.names else None
            records += sum(t.column(arrow.COUNT).to_pylist()) if t is not None else footer.metadata.num_rows
    if records == 0:
        raise InputError(f"{args.input!r} holds no records: nothing to decompress")
    if args.output.endswith(".npy"):
        if exists(args.output):  # perhaps the array this archive was compressed from: its lossy copy would replace it
            raise InputError(f"--output {args.output!r} exists: decompress never replaces an array; remove it or choose a new name")
        return _decompress_to_npy(args, records)
    args.output = _output_folder(args.output)
    _prepare_output(args.output, args.input, files, "decompress")
    start = time.time()
    with _outputs_removed_on_failure(args.output), _Progress(records, "decompress", show_progress(args)):
        run(
            lambda p: p | DecompressParquet(args.input, args.output, args.codec, num_shards=args.num_shards, device=args.device),
            args.runner,
            beam_args or [],
        )
    seconds = time.time() - start
    out_files = _output_files(args.output)
    out = 0
    for f, _ in out_files:
        with open_parquet(f) as footer:
            out += footer.metadata.num_rows
    summary = {
        "runner": args.runner,
        "records_in": records,
        "records_out": out,
        "output_files": len(out_files),
        "output_bytes": sum(size for _, size in out_files),
        "seconds": round(seconds, 3),
        "records_per_second": round(out / seconds, 1) if seconds else math.nan,
    }
    _print_summary(summary, args.json)
    if out != records:
        print("ltc-beam decompress: error: records out do not match records in: the output files are removed", file=sys.stderr)
        _discard_run(args.output)
        return 1
    _finish_run(args.output, "decompress", out_files, out)
    return 0


def _decompress_to_npy(args: argparse.Namespace, records: int) -> int:
    """An archive compressed from a ``.npy`` array → that array's shape and dtype, in process
    (the array is held in memory, as the input was)."""
    from ltc_beam.beam.handler import resolve_device
    from ltc_beam.parquet import read_parquet

    start = time.time()
    table = read_parquet(args.input, args.codec, device=resolve_device(args.device))  # in row order (the archive's order_by)
    if table.column_names != [NPY_ROW, "values"]:
        raise InputError(
            f"{args.input!r} was not compressed from a .npy array (its columns are {table.column_names}): "
            "decompress it to a directory of Parquet files"
        )
    values = table.column("values").combine_chunks()
    array = values.values.to_numpy(zero_copy_only=False).reshape(len(values), values.type.list_size)
    with open_for_write(args.output) as handle:
        np.save(handle, array, allow_pickle=False)
    seconds = time.time() - start
    summary = {
        "records_in": records, "records_out": len(array), "output_files": 1, "output_bytes": file_size(args.output),
        "seconds": round(seconds, 3), "records_per_second": round(len(array) / seconds, 1) if seconds else math.nan,
    }
    _print_summary(summary, args.json)
    return 0 if len(array) == records else 1


def cmd_demo(args: argparse.Namespace, beam_args: list[str] | None = None) -> int:
    from ltc_beam.demo import run_demo

    return run_demo(
        out=args.out, retrain=args.retrain, steps=args.steps, runner=args.runner, beam_args=beam_args or [], codec_dir=args.codec_dir
    )
