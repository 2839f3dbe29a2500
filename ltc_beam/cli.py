"""Command line: ``ltc-beam train | evaluate | …`` (see ``ltc-beam --help``)."""

from __future__ import annotations

import argparse
import json
import sys

from ltc_beam.errors import LtcError


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Options that say where the vectors are and how records form series."""
    parser.add_argument("input", help="Parquet file, directory or glob, or a .npy array")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--column", help="vector column (list or fixed-size list of floats)")
    group.add_argument("--columns", type=lambda s: [c for c in s.split(",") if c], help="float columns a,b,c")
    parser.add_argument("--key", help="series key column (records of one key form one series)")
    parser.add_argument("--order-by", dest="order_by", help="order column within each series")


def load_input(args: argparse.Namespace):
    from ltc_beam.data import load

    return load(args.input, column=args.column, columns=args.columns, key=args.key, order_by=args.order_by)


#: Default window of ``train`` for time-ordered series (``--order-by``): measured on the
#: BasicMotions and Daphnet test splits, T=4 gains 1.3-1.5 dB at equal rate over T=1.
ORDERED_WINDOW = 4


def default_window(args: argparse.Namespace) -> int:
    """``--window``, else 4 for time-ordered series (``--order-by``) and 1 otherwise."""
    if args.window is not None:
        return args.window
    return ORDERED_WINDOW if args.order_by else 1


def cmd_train(args: argparse.Namespace) -> int:
    from ltc_beam.codec.training import train

    data = load_input(args)
    print(f"training on {data.records} records x {len(data.columns)} values in {len(data.series)} series", file=sys.stderr)
    codec = train(
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
        progress=not args.quiet,
        columns=data.columns,
    )
    codec.save(args.out)
    summary = {"codec": args.out, "codec_id": codec.id, **codec.manifest["training"]}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ltc_beam.codec.codec import Codec
    from ltc_beam.evaluation import evaluate

    codec = Codec.load(args.codec)
    data = load_input(args)
    result = evaluate(codec, data.series, voronoi=not args.no_voronoi, chunk_size=args.chunk_size, keys=data.keys)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltc-beam", description="Lattice transform coding for Beam pipelines")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a codec on INPUT")
    add_input_options(p)
    p.add_argument("--out", required=True, help="codec artifact to write (*.ltc)")
    p.add_argument("--lattice", default="e8", help="z<n>, a2, d4, d4*, e8, bw16, leech (default e8)")
    p.add_argument(
        "--mode", choices=["vector", "block"], default="block",
        help="block (default): each latent channel across n consecutive vectors is one lattice point; "
        "vector: the lattice runs over one vector's latent (needed for --layout record)",
    )
    p.add_argument(
        "--window", type=int, default=None,
        help=f"records per input vector (T); default {ORDERED_WINDOW} with --order-by (time-ordered series), else 1",
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--lmbda", type=float, help="rate-distortion trade-off λ (loss = bits + λ·MSE)")
    rate.add_argument("--target-bits-per-value", dest="target_bits_per_value", type=float, help="find λ for this rate")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=256)
    p.add_argument(
        "--learning-rate", dest="learning_rate", type=float,
        help="Adam step (default: 2e-3 up to 3 bits/value, halved per extra bit)",
    )
    p.add_argument("--latent-dim", dest="latent_dim", type=int)
    p.add_argument("--transform", choices=["auto", "linear", "mlp"], default="auto")
    p.add_argument(
        "--proxy", choices=["auto", "ste", "noise"], default="auto",
        help="quantization proxy in training (auto: Voronoi noise for an MLP, straight-through for linear)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--checkpoint", help="checkpoint file, written during training")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="rate and distortion of a codec on INPUT")
    add_input_options(p)
    p.add_argument("--codec", required=True)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-voronoi", dest="no_voronoi", action="store_true", help="skip the Monte-Carlo rate estimate")
    p.add_argument(
        "--chunk-size", dest="chunk_size", type=int, default=4096,
        help="records per bitstream, as for compress (default 4096): short series are packed together",
    )
    p.set_defaults(func=cmd_evaluate)

    from ltc_beam.pipeline_cli import add_commands

    add_commands(sub)  # compress, decompress, demo (Beam pipelines)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ltc_beam.pipeline_cli import PIPELINE_COMMANDS

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # pipeline commands pass unknown options to Beam
    if extra and args.command not in PIPELINE_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) if args.command in PIPELINE_COMMANDS else args.func(args)
    except (LtcError, ValueError, FileNotFoundError) as exc:
        print(f"ltc-beam {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
