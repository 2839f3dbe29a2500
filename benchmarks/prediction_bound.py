"""How far below the classical codecs can any codec go on the comparison data? A yardstick.

    python benchmarks/prediction_bound.py --out benchmarks/results/prediction_bound.json

For BasicMotions and Daphnet (the ``make bench-compare`` splits, z-scored with the train
statistics), at SNR 10 / 20 / 30 dB: scalar quantisation (step set for that SNR, per
column) of the residual of the best linear predictor from the previous ``p`` records of
every channel (least squares on the train split), coded with

- ``static``: the train split's histogram of quantised residuals (what a trained codec
  can know), and
- ``oracle``: the test split's own histogram (an entropy no static model of this kind
  beats: it knows the test distribution).

Open-loop residuals (at high rate closed-loop DPCM behaves alike). It is a yardstick, not
a proof: adaptive and non-linear models can go lower, and a lattice may save up to
0.25 bit/value of granular gain (Λ24: 0.08 bit/value from R(D) at high rate). The JSON also
gives the bits that "20 % below the best classical codec" (issue 6) asks for, from
``benchmarks/results/compare_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report import write_report  # noqa: E402

from ltc_beam import data as ltc_data  # noqa: E402

DATASETS = {
    "basic_motions": ("data/basic_motions/train.parquet", "data/basic_motions/test.parquet", "recording"),
    "daphnet": ("data/daphnet/daphnet_s06r02e0_train.parquet", "data/daphnet/daphnet_s06r02e0_test.parquet", "segment"),
}
SNRS = (10.0, 20.0, 30.0)
ORDERS = (0, 1, 2, 4, 8)


def lagged(series: list[np.ndarray], p: int) -> tuple[np.ndarray, np.ndarray]:
    """Regressors (previous ``p`` records of every channel, and 1) and targets."""
    xs, ys = [], []
    for s in series:
        for t in range(p, len(s)):
            xs.append(np.concatenate([s[t - p : t].ravel(), [1.0]]))
            ys.append(s[t])
    return np.array(xs), np.array(ys)


def residual_bits(train_res: np.ndarray, test_res: np.ndarray, step: np.ndarray) -> tuple[float, float]:
    """Mean bits per value of the quantised test residuals: (train histogram, test histogram)."""
    static = oracle = 0.0
    for c in range(train_res.shape[1]):
        qa = np.round(train_res[:, c] / step[c]).astype(np.int64)
        qb = np.round(test_res[:, c] / step[c]).astype(np.int64)
        _, counts = np.unique(qb, return_counts=True)
        pb = counts / counts.sum()
        oracle += float(-(pb * np.log2(pb)).sum())
        lo, hi = min(qa.min(), qb.min()), max(qa.max(), qb.max())
        hist = np.bincount(qa - lo, minlength=hi - lo + 1) + 0.5  # add-half smoothing for unseen symbols
        static += float(-np.log2(hist[qb - lo] / hist.sum()).mean())
    d = train_res.shape[1]
    return static / d, oracle / d


def bound(name: str) -> dict:
    train_path, test_path, key = DATASETS[name]
    train, test = (ltc_data.load(p, column="values", key=key, order_by="step").series for p in (train_path, test_path))
    stacked = np.concatenate(train)
    mean, std = stacked.mean(0), np.where(stacked.std(0) > 0, stacked.std(0), 1.0)
    train = [(s - mean) / std for s in train]
    test = [(s - mean) / std for s in test]
    var = np.concatenate(test).var(0)
    out = {}
    for snr in SNRS:
        step = np.sqrt(12 * 10 ** (-snr / 10) * var)  # uniform quantiser: MSE = step^2 / 12
        rows = {}
        for p in ORDERS:
            xa, ya = lagged(train, p)
            xb, yb = lagged(test, p)
            w = np.linalg.lstsq(xa, ya, rcond=None)[0]
            static, oracle = residual_bits(ya - xa @ w, yb - xb @ w, step)
            rows[f"p{p}"] = {"static": round(static, 4), "oracle": round(oracle, 4)}
        out[f"{snr:g}"] = rows
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/prediction_bound.json")
    args = parser.parse_args()
    report = {"benchmark": "prediction_bound", "orders": ORDERS, "datasets": {}}
    for name in DATASETS:
        entry = {"bits_per_value": bound(name)}
        compare = os.path.join("benchmarks", "results", f"compare_{name}.json")
        if os.path.exists(compare):
            with open(compare) as handle:
                table = json.load(handle)["bits_per_value_at_snr"]
            entry["best_classical"] = table["classical (best)"]
            entry["ltc_best"] = table["ltc (best)"]
            entry["target_20_percent_below_classical"] = {
                k: round(0.8 * v, 4) for k, v in table["classical (best)"].items() if v is not None
            }
        report["datasets"][name] = entry
        best = {s: min(r["oracle"] for r in rows.values()) for s, rows in entry["bits_per_value"].items()}
        print(name, "best oracle bits/value", best, "target", entry.get("target_20_percent_below_classical"))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
