"""A2 vs Z2 in vector mode on a 2-D correlated non-Gaussian source (the "banana").

The source bends a Gaussian: ``u ~ N(0, I)``, ``x = R(30°) · (2·u1, 0.5·u2 + 0.5·u1²)``.
For each lattice and target rate a codec is trained (same transform and steps); on a
held-out set the actual bytes and MSE give a curve, and the two curves are compared at
equal MSE (bits interpolated linearly against MSE in dB).

    python benchmarks/banana.py --out benchmarks/results/banana.json
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

import ltc_beam
from report import interpolate, write_report


def banana(count: int, seed: int) -> np.ndarray:
    u = np.random.default_rng(seed).standard_normal((count, 2))
    x = np.stack([2.0 * u[:, 0], 0.5 * u[:, 1] + 0.5 * u[:, 0] ** 2], axis=1)
    angle = math.radians(30)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return x @ rot.T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/banana.json")
    parser.add_argument("--rates", default="1.0,2.0,3.0", help="target bits per value for A2")
    parser.add_argument("--z-rates", dest="z_rates", default="1.0,2.0,3.0,3.5",
                        help="for Z2 (one rate above A2's so that its curve spans A2's MSEs)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--transform", default="auto")
    parser.add_argument("--train", type=int, default=100_000)
    parser.add_argument("--test", type=int, default=500_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = banana(args.train, 0), banana(args.test, 1)
    curves = {}
    for lattice, rates in (("z2", args.z_rates), ("a2", args.rates)):
        curves[lattice] = []
        for rate in (float(r) for r in rates.split(",")):
            codec = ltc_beam.train(train, lattice=lattice, mode="vector", target_bits_per_value=rate,
                                   steps=args.steps, transform=args.transform, progress=False)
            blob = codec.encode(test)
            mse = float(np.mean((codec.decode(blob) - test) ** 2))
            point = {"target": rate, "bits_per_value": 8 * len(blob) / test.size, "mse": mse, "mse_db": 10 * math.log10(mse),
                     "transform": codec.config.transform}
            curves[lattice].append(point)
            print(lattice, json.dumps(point), flush=True)
    comparisons = []
    for p in curves["a2"]:
        z_bits = interpolate(curves["z2"], "mse_db", "bits_per_value", p["mse_db"])
        if z_bits is not None:
            comparisons.append({"mse_db": p["mse_db"], "a2_bits": p["bits_per_value"], "z2_bits": z_bits,
                                "a2_fewer_bits": p["bits_per_value"] < z_bits})
    for row in comparisons:
        print(json.dumps(row))
    write_report(args.out, {"benchmark": "banana", "settings": vars(args), "curves": curves, "comparisons": comparisons})


if __name__ == "__main__":
    main()
