"""CUDA checks, prepared to run as one script on any GPU host (CI has none).

1. Every lattice: ``quantize`` on CUDA equals the CPU result (float64 identical; float32
   never farther than 1e-3 in squared distance, as float32 rounding may pick another
   equidistant point).
2. Codecs (vector, block, window): the integer symbols written on CUDA equal those
   written on the CPU, and a stream written on one device decodes on the other.
   Also counts, per precision of analysis/lattice decoding, the points whose frame
   coordinates differ between devices.
3. Encode/decode MB/s of float32 input on CUDA; training on CUDA vs CPU; lattice speed.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback

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


def frames(codec: "ltc_beam.Codec", x: np.ndarray, device: str, analysis: torch.dtype, quant: torch.dtype) -> np.ndarray:
    """Integer frame points of ``x`` with the analysis transform and the lattice decoder
    run on ``device`` in the given precisions (the codec's own path is float32/float32)."""
    z, _ = codec._split(x)
    vectors = torch.as_tensor(codec._vectors(z), dtype=analysis, device=device)
    model = copy.deepcopy(codec.model).to(device=device, dtype=analysis)
    with torch.no_grad():
        y = model.analysis(vectors)
        if codec.config.mode == "block":
            y = y.T
        return codec.lattice.quantize_frame(y.reshape(-1, codec.lattice.dim).to(quant)).cpu().numpy()


PRECISIONS = {"f32/f32": (torch.float32, torch.float32), "f64/f32": (torch.float64, torch.float32), "f64/f64": (torch.float64, torch.float64)}


def check_codecs(values: int) -> list[dict]:
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((8, 8))
    train = np.cumsum(rng.standard_normal((20_000, 8)), 0) @ mix * 0.05
    x = (np.cumsum(rng.standard_normal((values // 8, 8)), 0) @ mix * 0.05).astype(np.float32)
    rows = []
    for lattice, mode, window, transform in [("e8", "vector", 1, "linear"), ("leech", "block", 1, "linear"), ("e8", "vector", 4, "linear"), ("e8", "vector", 1, "mlp")]:
        row: dict = {"codec": f"{lattice}-{mode}-T{window}-{transform}"}
        try:
            codec = ltc_beam.train(train, lattice=lattice, mode=mode, window=window, transform=transform, steps=300, progress=False, device="cpu")
            cpu_blob = codec.to("cpu").encode(x)
            codec.to("cuda").encode(x[:1000])  # warm-up
            torch.cuda.synchronize()
            start = time.perf_counter()
            gpu_blob = codec.encode(x)
            torch.cuda.synchronize()
            t_enc = time.perf_counter() - start
            start = time.perf_counter()
            decoded_gpu = codec.decode(cpu_blob)
            t_dec = time.perf_counter() - start
            decoded_cpu = codec.to("cpu").decode(gpu_blob)
            row.update({
                "symbols_identical": cpu_blob == gpu_blob,
                "cross_device_decode_close": bool(np.allclose(decoded_gpu, decoded_cpu, rtol=1e-5, atol=1e-5)),
                "cuda_encode_mb_s": x.nbytes / t_enc / 1e6,
                "cuda_decode_mb_s": x.nbytes / t_dec / 1e6,
            })
            for name, (analysis, quant) in PRECISIONS.items():
                cpu = frames(codec, x, "cpu", analysis, quant)
                gpu = frames(codec, x, "cuda", analysis, quant)
                row[f"points_differing_{name}"] = int((cpu != gpu).any(-1).sum())
                row["points"] = len(cpu)
            row["ok"] = row["symbols_identical"] and row["cross_device_decode_close"]
        except Exception:  # report and go on: one device run must say everything it can
            row.update({"ok": False, "error": traceback.format_exc(limit=6)})
            print(row["error"], file=sys.stderr)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def check_training(steps: int) -> dict:
    """Training runs on CUDA and gives a codec of the same quality as on the CPU."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((50_000, 16)) @ rng.standard_normal((16, 16))
    row: dict = {}
    try:
        for device in ("cpu", "cuda"):
            start = time.perf_counter()
            codec = ltc_beam.train(data, lattice="e8", steps=steps, progress=False, device=device, seed=0)
            row[f"{device}_train_s"] = time.perf_counter() - start
            row[f"{device}_bits_per_value"] = codec.code_length_bits(data[:20_000].astype(np.float32)) / data[:20_000].size
        row["ok"] = abs(row["cuda_bits_per_value"] / row["cpu_bits_per_value"] - 1) < 0.05
    except Exception:
        row.update({"ok": False, "error": traceback.format_exc(limit=6)})
        print(row["error"], file=sys.stderr)
    print(json.dumps(row), flush=True)
    return row


def lattice_speed(points: int) -> list[dict]:
    rows = []
    for name in ["e8", "bw16", "leech"]:
        lat = lattices.get(name)
        y = torch.randn(points, lat.dim, device="cuda")
        lat.quantize(y[:1000])
        torch.cuda.synchronize()
        start = time.perf_counter()
        lat.quantize(y)
        torch.cuda.synchronize()
        rows.append({"lattice": name, "cuda_float32_vectors_per_s": points / (time.perf_counter() - start)})
    print(json.dumps(rows), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--values", type=int, default=1 << 21)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--speed-points", type=int, default=1 << 20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    report["lattices"] = check_lattices(args.points)
    print(json.dumps(report["lattices"]), flush=True)
    report["codecs"] = check_codecs(args.values)
    report["training"] = check_training(args.train_steps)
    report["lattice_speed"] = lattice_speed(args.speed_points)
    write_report(args.out, report)
    return 0 if all(r["ok"] for r in report["lattices"] + report["codecs"] + [report["training"]]) else 1


if __name__ == "__main__":
    sys.exit(main())
