"""Encode and decode speed (MB/s of float32 input) of LTC codecs, with zstd and SZ3 alongside.

Trains small codecs (z8 and e8 in vector mode, e8 and Λ24 in block mode, and e8 in block
mode with ``window="auto"``, as ``train`` makes it for series) on a correlated 8-channel
signal, then times encode and decode of ``--values`` values with 1 and 2 torch threads, and
with 2 threads also with nearest points where the codec chose rate–distortion quantisation
(and the windowed codec without the sample-coding fallback). zstd (level 3, lossless) and SZ3 (pysz, absolute error bound giving a similar
error) run on the same array in the same process.

    python benchmarks/codec_speed.py --out benchmarks/results/codec_speed.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time

import numpy as np
import torch
import zstandard

import ltc_beam
from report import write_report

CODECS = [("z8", "vector", 1), ("e8", "vector", 1), ("e8", "block", 1), ("leech", "block", 1), ("e8", "block", "auto")]


def signal(records: int, channels: int, seed: int) -> np.ndarray:
    """AR(1) sources mixed into correlated channels (telemetry-like), float32."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1).standard_normal((channels, channels))
    noise = rng.standard_normal((records, channels))
    state = np.zeros((records, channels))
    for t in range(1, records):
        state[t] = 0.95 * state[t - 1] + noise[t]
    return (state @ mix.T).astype(np.float32)


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def sz3_abs(x: np.ndarray, bound: float):
    from pysz import sz, szConfig, szErrorBoundMode

    config = szConfig()
    config.errorBoundMode = szErrorBoundMode.ABS
    config.absErrorBound = bound
    return (lambda: sz.compress(x, config)[0]), (lambda blob: sz.decompress(blob, np.float32, x.shape)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/codec_speed.json")
    parser.add_argument("--values", type=int, default=1 << 21, help="float32 values per timed array (>= 1e6)")
    parser.add_argument("--target-bits", dest="target_bits", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transforms", default="linear,mlp", help="transforms to time (the MLP is the paper's, width 100)")
    args = parser.parse_args()
    channels = 8
    x = signal(args.values // channels, channels, seed=2)
    train = signal(40_000, channels, seed=3)
    mb = x.nbytes / 1e6
    rows = []
    for (lattice, mode, window), transform in itertools.product(CODECS, args.transforms.split(",")):
        torch.set_num_threads(2)
        codec = ltc_beam.train(
            train, lattice=lattice, mode=mode, window=window, target_bits_per_value=args.target_bits, steps=args.steps,
            transform=transform, progress=False,
        )
        chosen = codec.rd_quantization  # the codec's own choice (rate–distortion quantisation or not)
        settings = [(1, True, chosen), (2, True, chosen)] + ([(2, True, False)] if chosen else []) + ([(2, False, chosen)] if window != 1 else [])
        for threads, fallback, rd in settings:
            torch.set_num_threads(threads)
            codec.sample_fallback, codec.rd_quantization = fallback, rd
            t_enc, blob = best_time(lambda: codec.encode(x), args.repeats)
            t_dec, out = best_time(lambda: codec.decode(blob), args.repeats)
            mse = float(np.mean((out - x) ** 2))
            row = {
                "codec": f"ltc-{lattice}-{mode}" + (f"-w{codec.config.window}" if window != 1 else ""),
                "transform": codec.config.transform,
                "threads": threads,
                "sample_fallback": fallback,
                "rd_quantization": rd,
                "encode_mb_s": mb / t_enc,
                "decode_mb_s": mb / t_dec,
                "bits_per_value": 8 * len(blob) / x.size,
                "mse": mse,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    reference_mse = next(r["mse"] for r in rows if r["codec"] == "ltc-e8-vector")  # first e8 vector codec
    cctx, dctx = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    t_enc, blob = best_time(lambda: cctx.compress(x.tobytes()), args.repeats)
    t_dec, _ = best_time(lambda: dctx.decompress(blob), args.repeats)
    rows.append({"codec": "zstd-3", "threads": 1, "encode_mb_s": mb / t_enc, "decode_mb_s": mb / t_dec,
                 "bits_per_value": 8 * len(blob) / x.size, "mse": 0.0})
    bound = float(np.sqrt(3 * reference_mse))  # uniform error in [-b, b] has MSE b^2 / 3
    compress, decompress = sz3_abs(x, bound)
    t_enc, blob = best_time(compress, args.repeats)
    t_dec, out = best_time(lambda: decompress(blob), args.repeats)
    rows.append({"codec": "sz3-abs", "threads": 1, "encode_mb_s": mb / t_enc, "decode_mb_s": mb / t_dec,
                 "bits_per_value": 8 * blob.nbytes / x.size, "mse": float(np.mean((out - x) ** 2)), "abs_bound": bound})
    for row in rows[-2:]:
        print(json.dumps(row), flush=True)
    write_report(args.out, {"benchmark": "codec_speed", "settings": vars(args), "values": int(x.size),
                            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
                            "results": rows})


if __name__ == "__main__":
    main()
