"""Which training defaults to pick: block vs vector mode, window 4 vs 1, on held-out data.

    python benchmarks/defaults.py --out benchmarks/results/defaults.json [--steps 1500]

Each configuration is trained (``ltc_beam.train``, E8, everything else default) at two
target rates on a train split and evaluated with ``ltc_beam.evaluation.evaluate`` (the
bytes ``ltc-beam compress`` would write) on a test split. ``snr_at_common_rate`` is each
configuration's SNR interpolated at one rate inside every configuration's range, so the
configurations of a dataset compare at equal bits per value.

Data: BasicMotions and Daphnet (``data/``; train / test files, series by key, time order),
and synthetic sets: AR(1) telemetry with 1 and 3 channels (rho 0.95), i.i.d. N(0, 1) with
8 values, correlated 64-value "embeddings" (train: first 80 %, test: the rest).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report import interpolate, write_report  # noqa: E402

import ltc_beam  # noqa: E402
from ltc_beam import data as ltc_data  # noqa: E402
from ltc_beam.evaluation import evaluate  # noqa: E402

REAL = {
    "basic_motions": ("data/basic_motions/train.parquet", "data/basic_motions/test.parquet", "recording"),
    "daphnet": ("data/daphnet/daphnet_s06r02e0_train.parquet", "data/daphnet/daphnet_s06r02e0_test.parquet", "segment"),
}
REAL_CONFIGS = (("vector", 1), ("block", 1), ("vector", 4), ("block", 4))
SYNTHETIC_CONFIGS = (("vector", 1), ("block", 1))
TARGETS = (1.5, 3.0)


def ar1(records: int, channels: int, rng: np.random.Generator, rho: float = 0.95) -> np.ndarray:
    x = np.zeros((records, channels))
    noise = rng.standard_normal((records, channels))
    for t in range(1, records):
        x[t] = rho * x[t - 1] + noise[t]
    return x


def synthetic(seed: int) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    sets = {
        "ar1_1ch": ar1(20_000, 1, rng),
        "ar1_3ch": ar1(20_000, 3, rng),
        "gauss_8": rng.standard_normal((20_000, 8)),
        "embeddings_64": rng.standard_normal((20_000, 64)) @ rng.standard_normal((64, 64)),
    }
    return {name: ([x[:16_000]], [x[16_000:]]) for name, x in sets.items()}


def load_real(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    train, test, key = REAL[name]
    return tuple(ltc_data.load(path, column="values", key=key, order_by="step").series for path in (train, test))


def run_dataset(train, test, configs, steps: int, seed: int) -> dict:
    points = []
    for mode, window in configs:
        for target in TARGETS:
            start = time.perf_counter()
            codec = ltc_beam.train(train, lattice="e8", mode=mode, window=window, target_bits_per_value=target,
                                   steps=steps, seed=seed, progress=False, device="cpu")
            result = evaluate(codec, test, voronoi=False)
            points.append({"mode": mode, "window": window, "target_bits_per_value": target,
                           "bits_per_value": result["bits_per_value"], "snr_db": result["snr_db"],
                           "seconds": round(time.perf_counter() - start, 1)})
            print(f"    {mode:<6} T={window} target {target}: {result['bits_per_value']:.3f} bits/value, "
                  f"{result['snr_db']:.2f} dB", flush=True)
    by_config = {}
    for p in points:
        by_config.setdefault(f"{p['mode']}-T{p['window']}", []).append(p)
    lo = max(min(p["bits_per_value"] for p in pts) for pts in by_config.values())
    hi = min(max(p["bits_per_value"] for p in pts) for pts in by_config.values())
    common = (lo + hi) / 2 if lo <= hi else None
    snr = {name: interpolate(pts, "bits_per_value", "snr_db", common) if common is not None else None
           for name, pts in by_config.items()}
    return {"points": points, "common_rate": common, "snr_at_common_rate": snr}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/defaults.json")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {"benchmark": "defaults", "lattice": "e8", "targets": TARGETS, "steps": args.steps, "datasets": {}}
    jobs = [(name, lambda name=name: load_real(name), REAL_CONFIGS) for name in REAL]
    jobs += [(name, lambda split=split: split, SYNTHETIC_CONFIGS) for name, split in synthetic(args.seed).items()]
    for name, load, configs in jobs:
        print(name, flush=True)
        train, test = load()
        report["datasets"][name] = run_dataset(train, test, configs, args.steps, args.seed)
        print(f"  SNR at {report['datasets'][name]['common_rate']} bits/value: "
              f"{report['datasets'][name]['snr_at_common_rate']}", flush=True)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
