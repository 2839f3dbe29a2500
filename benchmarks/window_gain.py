"""Window mode on real telemetry: bits per value at equal SNR for T = 1 vs T > 1, and
train vs test split (generalisation), with default training settings.

For each window length and target rate a codec is trained on the train split with the
library defaults; both splits are then encoded (one bitstream per series, actual bytes)
and the curves compared at equal SNR by linear interpolation of bits against SNR (dB).

    python benchmarks/window_gain.py --out benchmarks/results/window_gain.json
"""

from __future__ import annotations

import argparse
import json
import os

import torch

import ltc_beam
from ltc_beam.data import load
from ltc_beam.evaluation import evaluate
from report import interpolate, write_report

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "basic_motions")


def bits_at(curve: list[dict], snr: float) -> float | None:
    """Bits per value at ``snr`` dB (linear interpolation; None outside the curve)."""
    return interpolate(curve, "snr_db", "bits_per_value", snr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default=os.path.join(DATA, "train.parquet"))
    parser.add_argument("--test", default=os.path.join(DATA, "test.parquet"))
    parser.add_argument("--key", default="recording")
    parser.add_argument("--order-by", dest="order_by", default="step")
    parser.add_argument("--column")
    parser.add_argument("--windows", default="1,8")
    parser.add_argument("--rates", default="0.75,1.5,3.0")
    parser.add_argument("--out", default="benchmarks/results/window_gain.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    opts = dict(column=args.column, key=args.key, order_by=args.order_by)
    train, test = load(args.train, **opts), load(args.test, **opts)
    curves: dict[str, dict[str, list]] = {}
    for window in (int(w) for w in args.windows.split(",")):
        curves[str(window)] = {"train": [], "test": []}
        for rate in (float(r) for r in args.rates.split(",")):
            codec = ltc_beam.train(train.series, lattice="e8", mode="vector", window=window, target_bits_per_value=rate, progress=False)
            for split, data in (("train", train), ("test", test)):
                point = evaluate(codec, data.series, voronoi=False)
                point["target_bits_per_value"] = rate
                curves[str(window)][split].append(point)
                print(f"T={window} target {rate}: {split} {point['bits_per_value']:.3f} bit/value at {point['snr_db']:.2f} dB", flush=True)
    comparisons = []
    base = curves["1"]["test"] if "1" in curves else None
    for window, splits in curves.items():
        for p in splits["train"]:
            test_bits = bits_at(splits["test"], p["snr_db"])
            row = {"window": int(window), "snr_db": p["snr_db"], "train_bits": p["bits_per_value"], "test_bits": test_bits}
            if test_bits is not None:
                row["test_over_train"] = test_bits / p["bits_per_value"]
            comparisons.append(row)
        if base is not None and window != "1":
            for p in splits["test"]:
                ref = bits_at(base, p["snr_db"])
                if ref is not None:
                    comparisons.append({"window": int(window), "snr_db": p["snr_db"], "test_bits": p["bits_per_value"],
                                        "window1_test_bits": ref, "saving_vs_window1": 1 - p["bits_per_value"] / ref})
    for row in comparisons:
        print(json.dumps(row))
    write_report(args.out, {"benchmark": "window_gain", "settings": vars(args), "curves": curves, "comparisons": comparisons})


if __name__ == "__main__":
    main()
