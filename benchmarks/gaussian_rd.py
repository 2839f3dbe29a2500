"""Rate–distortion of block-mode LTC on i.i.d. N(0, 1) against R(D) = 2^(-2R).

For each lattice and target rate: train a codec (block mode, scalar records), then on a
held-out array of ``--test-values`` values measure the actual bytes of one bitstream, the
exact model code length, the paper's Monte-Carlo Voronoi estimate, and MSE. Writes JSON
and a PNG (distortion in dB vs rate, with the Shannon bound).

    python benchmarks/gaussian_rd.py --out benchmarks/results/gaussian_rd.json
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
import torch

import ltc_beam
from report import write_report


def gap_db(mse: float, rate: float) -> float:
    """Distance to the Gaussian R(D) bound at this rate: 10·log10(D / 2^(-2R))."""
    return 10 * math.log10(mse / 2 ** (-2 * rate))


def measure(lattice: str, target: float, args: argparse.Namespace, test: np.ndarray) -> dict:
    rng = np.random.default_rng(args.seed)
    train = rng.standard_normal((args.train_values, 1))
    start = time.perf_counter()
    codec = ltc_beam.train(
        train,
        lattice=lattice,
        mode="block",
        target_bits_per_value=target,
        steps=args.steps,
        batch_size=args.batch_size,
        transform=args.transform,
        learning_rate=args.learning_rate,
        patience=args.patience,
        seed=args.seed,
        progress=not args.quiet,
    )
    train_seconds = time.perf_counter() - start
    blob = codec.encode(test)
    decoded = codec.decode(blob)
    values = test.size
    rate = 8 * len(blob) / values
    model_rate = codec.code_length_bits(test) / values
    mse = float(np.mean((decoded.astype(np.float64) - test) ** 2))
    voronoi = codec.voronoi_bits_estimate(test, max_points=args.voronoi_points, samples=args.voronoi_samples)
    # The same points under the stored tables, for a like-for-like difference.
    subset = test[: _rows_used(codec, args.voronoi_points)]
    model_subset = codec.code_length_bits(subset) / subset.size
    return {
        "lattice": lattice,
        "target_bits_per_value": target,
        "bits_per_value": rate,
        "model_bits_per_value": model_rate,
        "mse": mse,
        "gap_db": gap_db(mse, rate),
        "model_gap_db": gap_db(mse, model_rate),
        "voronoi_bits_per_value": voronoi,
        "model_minus_voronoi_bits": model_subset - voronoi,
        "train_seconds": train_seconds,
        "steps_run": codec.manifest["training"]["steps_run"],
        "codec_id": codec.id,
    }


def _rows_used(codec: ltc_beam.Codec, max_points: int) -> int:
    n = codec.lattice.dim
    return max(n, (max_points // codec.config.latent_dim) // n * n)


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    rates = np.linspace(0.3, 2.7, 50)
    ax.plot(rates, -6.0206 * rates, "k--", label="R(D) (Shannon bound)")
    for lattice in dict.fromkeys(r["lattice"] for r in results):
        pts = sorted((r["bits_per_value"], 10 * math.log10(r["mse"])) for r in results if r["lattice"] == lattice)
        ax.plot(*zip(*pts), "o-", label=f"LTC {lattice} (actual bytes)")
    ax.set_xlabel("bits per value")
    ax.set_ylabel("MSE (dB)")
    ax.set_title("i.i.d. N(0,1), block mode")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/gaussian_rd.json")
    parser.add_argument("--lattices", default="z1,e8,leech")
    parser.add_argument("--rates", default="1.0,1.5,2.0")
    parser.add_argument("--train-values", dest="train_values", type=int, default=200_000)
    parser.add_argument("--test-values", dest="test_values", type=int, default=1_000_008)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=2400)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--transform", default="auto")
    parser.add_argument("--voronoi-points", dest="voronoi_points", type=int, default=4096)
    parser.add_argument("--voronoi-samples", dest="voronoi_samples", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = np.random.default_rng(12345).standard_normal((args.test_values, 1))
    results = []
    for lattice in args.lattices.split(","):
        for target in (float(r) for r in args.rates.split(",")):
            r = measure(lattice, target, args, test)
            results.append(r)
            print(
                f"{lattice:>6} target {target:.2f}: {r['bits_per_value']:.4f} bit/value (model {r['model_bits_per_value']:.4f}), "
                f"gap {r['gap_db']:.3f} dB, model-voronoi {r['model_minus_voronoi_bits']:+.4f} bit, {r['train_seconds']:.0f}s",
                flush=True,
            )
    report = {
        "benchmark": "gaussian_rd",
        "settings": vars(args),
        "machine": {"cpu_threads": args.threads, "platform": platform.platform(), "torch": torch.__version__},
        "results": results,
    }
    write_report(args.out, report)
    plot(results, os.path.splitext(args.out)[0] + ".png")


if __name__ == "__main__":
    main()
