"""Command line: ``ltc-beam train | evaluate | …`` (see ``ltc-beam --help``)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import json
import logging
import math
import os
import re
import select
import signal
import sys
import threading
import warnings
from typing import NoReturn

from ltc_beam.errors import InputError, LtcError, WindowHint, names_said
from ltc_beam.storage import exists, is_folder, open_for_read


def show_progress(args: argparse.Namespace) -> bool:
    """Progress unless ``--quiet`` or ``--json``: a bar on a terminal, a line a minute in a
    log (:mod:`ltc_beam.progress`; a train printed nothing there for minutes)."""
    return not args.quiet and not getattr(args, "json", False)


def count(text: str) -> int:
    """argparse type: an integer of 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer of 0 or more, got {text}")
    return value


def positive(kind):
    """argparse type: a finite number of ``kind`` (int or float) above zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
        return value

    return parse


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Options that say where the vectors are and how records form series."""
    parser.add_argument("input", help="Parquet file, directory or glob, or a .npy array")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--column", help="vector column (list or fixed-size list of floats or integers), or one value column")
    group.add_argument("--columns", type=lambda s: [c for c in s.split(",") if c], help="value columns a,b,c (floats, or integers to code)")
    parser.add_argument("--key", help="series key column (records of one key form one series)")
    parser.add_argument("--order-by", dest="order_by", help="order column within each series")


def load_input(args: argparse.Namespace, default_columns: tuple[str, ...] = ()):
    from ltc_beam.data import load

    return load(
        args.input, column=args.column, columns=args.columns, key=args.key, order_by=args.order_by,
        default_columns=default_columns,
    )


def trained_order(args: argparse.Namespace, codec, command: str) -> None:
    """A windowed codec needs its records in series order: where neither ``--order-by`` nor
    a ``.npy`` input gives it, take the key and order columns it was trained with
    (``ltc-beam train`` records them) where the input holds them, and say so."""
    from ltc_beam.arrow import window_needs_order
    from ltc_beam.data import input_column_names

    trained = codec.manifest.get("series_columns") or {}
    if args.order_by is not None or args.input.endswith(".npy") or not window_needs_order(codec) or not trained.get("order_by"):
        return
    key = args.key if args.key is not None else trained.get("key")
    names = input_column_names(args.input)
    lacking = [c for c in (key, trained["order_by"]) if c is not None and c not in names]
    if lacking:  # the window check would ask for --order-by alone, where the data may not be the codec's at all
        values = codec.manifest.get("columns") or []
        other = not (args.column or args.columns) and values and not set(values) & set(names)
        raise InputError(
            f"this codec codes windows of {codec.config.window} consecutive records and was trained with"
            f"{f' --key {key}' if key is not None else ''} --order-by {trained['order_by']}, which this input lacks "
            f"(its columns: {names_said(sorted(names))}): give --order-by (and --key) for its series order"
            + (f"; nor does it hold the codec's value columns ({names_said(values)}): is this the codec for this data?" if other else "")
        )
    args.key, args.order_by = key, trained["order_by"]
    given = f" --key {key}" if key is not None else ""
    print(f"ltc-beam {command}: note: --order-by {args.order_by}{given}, as the codec was trained", file=sys.stderr)


def window_option(text: str):
    """argparse type of ``--window``: a positive integer or ``auto``."""
    return "auto" if text == "auto" else positive(int)(text)


def default_window(args: argparse.Namespace):
    """``--window``, else ``auto`` in block mode for series known to be in time order
    (``--order-by``, or the rows of a ``.npy`` array) and 1 otherwise (rows of unknown
    order; vector mode, whose record layout needs window 1)."""
    if args.window is not None:
        return args.window
    ordered = args.order_by or args.input.endswith(".npy")
    return "auto" if ordered and args.mode == "block" else 1


#: How Parquet and ``.npy`` files start: data that a codec or checkpoint must not overwrite.
DATA_MAGIC = (b"PAR1", b"\x93NUMPY")


def refuse_data_file(option: str, path: str | None) -> None:
    """Refuse to write a codec or checkpoint over a Parquet or ``.npy`` file (the training
    data given as ``--output`` was replaced by the codec, exit 0)."""
    if path is None or not exists(path) or is_folder(path):
        return
    with open_for_read(path) as handle:
        start = handle.read(6)
    if start.startswith(DATA_MAGIC):
        raise InputError(f"{option} {path!r} is a data file (Parquet or .npy), which writing would replace: name another file")


def cmd_train(args: argparse.Namespace) -> int:
    from ltc_beam.codec.training_data import records_follow_each_other

    if is_folder(args.out):
        raise InputError(f"--out {args.out} is a folder: give the codec file to write (e.g. {args.out.rstrip('/')}/codec.ltc)")
    for option, path in (("--output", args.out), ("--checkpoint", args.checkpoint)):
        refuse_data_file(option, path)
    data = load_input(args)
    print(f"training on {data.records} records x {len(data.columns)} values in {len(data.series)} series", file=sys.stderr)
    if data.order_hint and args.window is None and args.mode == "block":
        print(
            f"ltc-beam train: note: column {data.order_hint!r} looks like the time order; with --order-by "
            f"{data.order_hint} the codec can code windows of consecutive records (telemetry often needs far fewer bits)",
            file=sys.stderr,
        )
    elif default_window(args) == 1 and args.mode == "block" and (correlation := records_follow_each_other(data.series)):
        if args.order_by or args.input.endswith(".npy"):  # in time order already: --window 1 was asked for
            advice = "--window auto (the default with --order-by) lets the codec code windows of them"
        else:
            advice = ("if that is their time order, an order column (a row number will do) given as --order-by lets "
                      "the codec code windows of them")
        print(
            f"ltc-beam train: note: consecutive records correlate (lag-1 correlation {correlation:.2f}); {advice} "
            "(telemetry often needs far fewer bits)",
            file=sys.stderr,
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=WindowHint)  # the notes say it for the command line
        codec = _train(args, data)
    codec.remember_series_columns(args.key, args.order_by)
    codec.save(args.out)
    summary = {"codec": args.out, "codec_id": codec.id, **codec.manifest["training"]}
    note_if_the_start_was_kept(summary)
    print(json.dumps(summary, indent=2))
    return 0


def note_if_the_start_was_kept(summary: dict) -> None:
    """Say so where the PCA start coded the validation split better than the trained
    transforms and the codec kept it (the JSON alone said it: 13 of 24 codecs on six
    datasets no session had used, after all their steps). Where training fell far below its
    start, a warning has said it already."""
    check = summary.get("start_check") or {}
    gain = (check.get("coded") or {}).get("start_gain_db_at_equal_rate")
    if not check.get("kept_start") or gain is None:
        return
    print(
        f"ltc-beam train: note: the PCA start coded the validation split {gain:.2f} dB better at equal rate than the "
        f"transforms after {summary.get('steps_run')} steps, so the codec keeps the start: on data like this, fewer "
        "--steps give a codec as good, sooner (the start is always tried)",
        file=sys.stderr,
    )


def _train(args: argparse.Namespace, data):
    """``train`` with the command's options."""
    from ltc_beam.codec.training import train

    return train(
        data.series,
        lattice=args.lattice,
        mode=args.mode,
        window=default_window(args),
        lmbda=args.lmbda,
        target_bits_per_value=args.target_bits_per_value,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        latent_dim=args.latent_dim,
        transform=args.transform,
        proxy=args.proxy,
        learning_rate=args.learning_rate,
        checkpoint=args.checkpoint,
        resume=args.resume,
        progress=show_progress(args),
        columns=data.columns,
        threads=args.threads,
        calibrate=not args.no_calibrate,
        normalise=args.normalise,
        **({} if args.max_training_values is None else {"max_training_values": args.max_training_values or None}),
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ltc_beam.codec.codec import Codec
    from ltc_beam.arrow import check_column_names, column_count_error, in_codec_order, window_needs_order, window_order_message
    from ltc_beam.beam.io import auto_shards
    from ltc_beam.data import input_bytes
    from ltc_beam.evaluation import evaluate

    codec = Codec.load(args.codec)
    codec.sample_fallback = args.sample_fallback
    codec.rd_quantization &= args.rd_quantization  # --nearest-points, else as the codec chose
    codec.leave_out_repeats = args.leave_out_repeats
    trained_order(args, codec, "evaluate")
    if window_needs_order(codec) and args.order_by is None and not args.input.endswith(".npy"):
        raise InputError(window_order_message(codec))  # as compress: file order is no series order
    args.columns = in_codec_order(args.columns, codec)
    data = load_input(args, tuple(codec.manifest.get("columns", ())))  # as compress: the codec's columns by default
    if data.records and len(data.columns) != codec.config.record_dim:
        raise column_count_error(data.columns, codec.config.record_dim, codec.manifest.get("columns"))
    check_column_names(data.columns, codec)
    result = evaluate(
        codec,
        data.series,
        voronoi=not args.no_voronoi,
        chunk_size=args.chunk_size,
        keys=data.keys,
        baseline=args.baseline,
        pack_shards=args.num_shards or auto_shards(input_bytes(args.input), codec),
        layout=args.layout,
        integers=data.integers,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ltc_beam.pipeline_cli import add_commands, add_encoder_options

    parser = argparse.ArgumentParser(prog="ltc-beam", description="Lattice transform coding for Beam pipelines")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a codec on INPUT")
    add_input_options(p)
    p.add_argument("--output", "--out", dest="out", required=True, help="codec artifact to write (*.ltc)")
    p.add_argument(
        "--lattice", default="auto",
        help="z<n>, a2, d4, d4*, e8, bw16, leech, or auto (default): e8 and z1 trained, the better on the validation split kept",
    )
    p.add_argument(
        "--mode", choices=["vector", "block"], default="block",
        help="block (default): each latent channel across n consecutive vectors is one lattice point; "
        "vector: the lattice runs over one vector's latent (needed for --layout record)",
    )
    p.add_argument(
        "--window", type=window_option, default=None,
        help="records per input vector (T), or auto: chosen from the data's correlation in time and its "
        "size (1, 2, 4 ... 64); default auto in block mode with --order-by or a .npy input, else 1",
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--lmbda", type=positive(float), help="rate-distortion trade-off λ (loss = bits + λ·MSE)")
    rate.add_argument(
        "--target-bits-per-value", dest="target_bits_per_value", type=positive(float),
        help="find λ for this rate (the default, at 2 bits/value, when --lmbda is not given)",
    )
    p.add_argument(
        "--normalise", choices=["column", "series"], default="column",
        help="column (default): one mean and std per column, learnt in training; series: each series "
        "(--key; each chunk of a long one) scaled by its own, carried in the stream (about 4 bytes per "
        "column and series): for panels of series of very different levels or spreads",
    )
    p.add_argument(
        "--no-calibrate", dest="no_calibrate", action="store_true",
        help="skip the final rate calibration (the quantizer scale moved until the target rate is coded)",
    )
    p.add_argument("--steps", type=positive(int), default=3000, help="training steps (default 3000; fewer stop early where validation stalls)")
    p.add_argument("--batch-size", dest="batch_size", type=positive(int), default=256, help="training vectors per step (default 256)")
    p.add_argument(
        "--learning-rate", dest="learning_rate", type=positive(float),
        help="Adam step (default: 2e-3 up to 3 bits/value, halved per extra bit)",
    )
    p.add_argument("--latent-dim", dest="latent_dim", type=positive(int), help="latent values per input vector (default: sized to the input and lattice)")
    p.add_argument(
        "--transform", choices=["auto", "linear", "mlp"], default="auto",
        help="analysis/synthesis transform (auto: linear, which coded better than an MLP at equal rate on real data)",
    )
    p.add_argument(
        "--proxy", choices=["auto", "ste", "noise"], default="auto",
        help="quantization proxy in training (auto: Voronoi noise for an MLP, straight-through for linear)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of initialisation and batches (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--checkpoint", help="checkpoint file, written during training")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument(
        "--threads", type=positive(int), default=1,
        help="torch CPU threads (default 1: a second thread gains ~15%% on an idle machine, loses 5x on a busy one)",
    )
    p.add_argument(
        "--max-training-values", dest="max_training_values", type=count,
        help="train on evenly spread pieces of the data holding about this many values (default: train()'s, "
        "4194304; 0: all of it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display (a bar on a terminal, a line a minute in a log)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="rate and distortion of a codec on INPUT")
    add_input_options(p)
    p.add_argument("--codec", required=True, help="codec artifact (*.ltc): local path or any Beam FileSystems URI")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-voronoi", dest="no_voronoi", action="store_true", help="skip the Monte-Carlo rate estimate")
    add_encoder_options(p, like_compress=True)
    p.add_argument(
        "--baseline", action="store_true",
        help="also report uniform quantisation + zstd-19 at the same SNR on the same data (uniform_zstd_bits_per_value)",
    )
    p.add_argument(
        "--chunk-size", dest="chunk_size", type=positive(int), default=None,
        help="records per bitstream, as for compress (default 4096, or 16384 values' worth for records of "
        "fewer than 4 values; rounded up to whole lattice blocks of windows): short series are packed together",
    )
    p.add_argument(
        "--num-shards", dest="num_shards", type=positive(int), default=None,
        help="pack short series as compress --num-shards N would (default: as compress picks for INPUT)",
    )
    p.add_argument(
        "--layout", choices=("chunk", "record"), default="chunk",
        help="code the records as compress --layout would: in chunks (default), or one bitstream per record",
    )
    p.set_defaults(func=cmd_evaluate)

    add_commands(sub)  # compress, decompress, demo (Beam pipelines)
    return parser


def _no_apitools_notice(record: logging.LogRecord) -> bool:
    return "apitools not found" not in record.getMessage()


def _no_traceback_of_ours(record: logging.LogRecord) -> bool:
    """Beam logs a worker's exception with its traceback before re-raising it; an ltc-beam
    error (bad input, bad codec) is then printed once, as a plain message, by ``main``, and
    so is a SIGTERM, by :func:`run`."""
    return not (record.exc_info and isinstance(record.exc_info[1], (LtcError, SystemExit)))


#: Beam loggers that log a failing step's exception before the pipeline re-raises it.
BEAM_ERROR_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.worker.sdk_worker")


#: Library arguments that are command-line options of the same name, in a message as
#: ``order_by=``, ``mode='block'`` or ``window=4``: the command line says ``--order-by``,
#: ``--mode block``, ``--window 4``.
_API_ARGUMENT = re.compile(
    r"\b(column|columns|key|order_by|codec|mode|layout|lattice|window|normalise|lmbda|chunk_size|max_training_values)="
    r"(?:'([\w-]+)'|(\d[\d,.]*\d|\d))?(?=[\s,.:;)]|$)"
)
#: Library settings the command line spells otherwise.
_API_SPELLED = {"max_training_values=None": "--max-training-values 0"}


def in_cli_terms(message: str) -> str:
    """A library message as the command line says it: ``order_by=`` becomes ``--order-by``,
    ``mode='block'`` ``--mode block``, ``window=4`` ``--window 4``."""
    for api, cli in _API_SPELLED.items():
        message = message.replace(api, cli)
    return _API_ARGUMENT.sub(
        lambda m: "--" + m.group(1).replace("_", "-") + "".join(f" {v}" for v in m.groups()[1:] if v), message
    )


def main(argv: list[str] | None = None) -> int:
    from ltc_beam.pipeline_cli import PIPELINE_COMMANDS

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # pipeline commands pass unknown options to Beam
    if extra and args.command not in PIPELINE_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Beam's import of its GCP I/O logs this on every run without the gcp extra
    logging.getLogger().addFilter(_no_apitools_notice)
    for name in BEAM_ERROR_LOGGERS:
        logging.getLogger(name).addFilter(_no_traceback_of_ours)
    plain = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *_: (
        f"ltc-beam {args.command}: {category.__name__}: {in_cli_terms(str(message))}\n"
    )
    try:
        return args.func(args, extra) if args.command in PIPELINE_COMMANDS else args.func(args)
    except (LtcError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"ltc-beam {args.command}: error: {in_cli_terms(str(exc))}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:  # Beam re-raises a step's OSError as RuntimeError("OSError: …")
        if getattr(exc, "errno", None) != errno.ENOSPC and os.strerror(errno.ENOSPC) not in str(exc):
            raise
        print(f"ltc-beam {args.command}: error: {exc}", file=sys.stderr)  # the disk is full: no traceback to read
        return 1
    finally:
        warnings.formatwarning = plain


def run(argv: list[str] | None = None) -> NoReturn:
    """The ``ltc-beam`` command: :func:`main`, then exit as Python does (non-daemon threads
    waited for, exit handlers such as Beam's job-server shutdown run, output flushed) but
    without the interpreter's final teardown. pyarrow's threads may still be releasing the
    pages of a Parquet file read through a Python stream (an object-store input) then, and a
    release that needs the GIL during teardown aborts the process after the work is done
    ("terminate called without an active exception", exit 134; apache/arrow#34314): half
    of the runs of a command whose last step read such a file, on a busy machine."""
    with contextlib.suppress(ValueError):  # not the main thread: the runner's handlers stay
        signal.signal(signal.SIGTERM, _terminated)
    try:
        code = main(argv)
    except BaseException as exc:
        if TERMINATED:  # raised where the command stood (inside a Beam step: wrapped): no traceback to read
            print("ltc-beam: terminated (SIGTERM); an unfinished compress or decompress leaves no output files", file=sys.stderr)
            code = 128 + signal.SIGTERM
        elif isinstance(exc, (SystemExit, KeyboardInterrupt)):  # --help, usage errors; Ctrl-C: as Python exits
            raise
        elif isinstance(exc, BrokenPipeError) and _reader_gone(sys.stdout):  # unbuffered output (PYTHONUNBUFFERED=1) to `| head`
            code = 120
        else:
            sys.excepthook(*sys.exc_info())
            code = 1
    threading._shutdown()  # what Python's exit runs first: executors stopped, non-daemon threads joined
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: started with the descriptor closed (`>&-`)
                stream.flush()
        except (OSError, ValueError):  # a reader gone (`| head`): Python's exit says 120 then
            code = code or 120
    os._exit(code)


#: Set once SIGTERM arrived.
TERMINATED: list[int] = []


def _terminated(signum: int, frame) -> NoReturn:
    """SIGTERM (what ``timeout``, Kubernetes, systemd and Slurm send) ends the command as
    Ctrl-C does, through the clean-up of a failed run (its output files removed), with the
    shell's status for it (143); it killed the process where it stood, leaving the files it
    had written, which looked like a whole archive."""
    TERMINATED.append(signum)
    raise SystemExit(128 + signum)


def _reader_gone(stream) -> bool:
    """Whether ``stream`` is a pipe whose reader has closed it."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))  # Linux: ERR; BSD, macOS: HUP
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


if __name__ == "__main__":
    run()
