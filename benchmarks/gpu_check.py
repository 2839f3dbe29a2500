"""CUDA checks, prepared to run as one script on any GPU host (CI has none).

1. Every lattice: ``quantize`` on CUDA equals the CPU result (float64 identical; float32
   never farther than 1e-3 in squared distance, as float32 rounding may pick another
   equidistant point).
2. Codecs (vector, block, window): the integer symbols written on CUDA equal those
   written on the CPU, and a stream written on one device decodes on the other.
3. Encode/decode MB/s of float32 input on CUDA vs CPU.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import ltc_beam
from ltc_beam import lattices
from report import write_report

LATTICES = ["z1", "z8", "a2", "d4", "d4*", "e8", "bw16", "leech"]


def check_lattices(points: int) -> list[dict]:
    rows = []
    for name in LATTICES:
        lat = lattices.get(name)
        y = torch.randn(points, lat.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5
        row = {"lattice": name}
        cpu64, gpu64 = lat.quantize(y), lat.quantize(y.cuda()).cpu()
        row["float64_identical"] = bool(torch.equal(cpu64, gpu64))
        y32 = y.float()
        cpu32, gpu32 = lat.quantize(y32), lat.quantize(y32.cuda()).cpu()
        excess = (((y32 - gpu32) ** 2).sum(-1) - ((y32 - cpu32) ** 2).sum(-1)).max().item()
        row["float32_max_excess"] = excess
        row["ok"] = row["float64_identical"] and excess <= 1e-3
        rows.append(row)
    return rows


def check_codecs(values: int) -> list[dict]:
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((8, 8))
    train = np.cumsum(rng.standard_normal((20_000, 8)), 0) @ mix * 0.05
    x = (np.cumsum(rng.standard_normal((values // 8, 8)), 0) @ mix * 0.05).astype(np.float32)
    rows = []
    for lattice, mode, window in [("e8", "vector", 1), ("leech", "block", 1), ("e8", "vector", 4)]:
        codec = ltc_beam.train(train, lattice=lattice, mode=mode, window=window, steps=300, progress=False, device="cpu")
        cpu_blob = codec.to("cpu").encode(x)
        start = time.perf_counter()
        gpu_blob = codec.to("cuda").encode(x)
        torch.cuda.synchronize()
        t_enc = time.perf_counter() - start
        start = time.perf_counter()
        decoded_gpu = codec.decode(cpu_blob)
        t_dec = time.perf_counter() - start
        decoded_cpu = codec.to("cpu").decode(gpu_blob)
        rows.append({
            "codec": f"{lattice}-{mode}-T{window}",
            "symbols_identical": cpu_blob == gpu_blob,
            "cross_device_decode_close": bool(np.allclose(decoded_gpu, decoded_cpu, rtol=1e-5, atol=1e-5)),
            "cuda_encode_mb_s": x.nbytes / t_enc / 1e6,
            "cuda_decode_mb_s": x.nbytes / t_dec / 1e6,
        })
        rows[-1]["ok"] = rows[-1]["symbols_identical"] and rows[-1]["cross_device_decode_close"]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--values", type=int, default=1 << 21)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    report = {"device": torch.cuda.get_device_name(0), "lattices": check_lattices(args.points), "codecs": check_codecs(args.values)}
    print(json.dumps(report, indent=2))
    write_report(args.out, report)
    return 0 if all(r["ok"] for r in report["lattices"] + report["codecs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
