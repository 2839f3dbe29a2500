"""Lattice quantizer benchmark: speed, measured NSM, minimal vectors, agreement with the oracle.

Per lattice (z1, z8, z24, a2, d4, d4*, e8, bw16, leech):

* vectors/s of ``quantize`` on CPU at batch ``--batch`` (default 100k) of N(0, 1) vectors,
  float32 and float64, with 1 and 2 torch threads (fastest and median of ``--repeats``);
* for bw16 and leech (and e8): vectors/s of the exhaustive :class:`ReferenceDecoder`
  (float64, smaller batch) and the speed-up of ``quantize`` (float64, full batch) at the
  same thread count (1 and 2), measured in the same run;
* the normalised second moment measured by Monte Carlo over the Voronoi cell
  (``--nsm-samples``, default 10^6), its standard error and relative error to the
  textbook value, and the high-rate gap to the sphere bound in dB;
* the minimal vectors, found by enumeration over the triangular frame basis (not typed
  in), their norm, count, and whether ``quantize`` fixes each of them;
* ``max(|y - Q(y)|² - |y - Q_ref(y)|²)`` over ``--check-points`` hard points (Gaussian at
  several scales, Voronoi-boundary midpoints and perturbations, ties, lattice points);
  the Leech lattice uses ``--leech-check-points`` (its reference does ~100 vectors/s).

The machine's load average is recorded before and after: other processes on the same
cores distort the timings, 2-thread ones above all — OpenMP threads spin while they wait
for a descheduled partner, so on a busy 2-core host ``OMP_WAIT_POLICY=PASSIVE`` gives the
more representative 2-thread figures (the value in effect is recorded). The CPU time per
vector (all threads) is recorded next to the wall-clock rates. Steps other than the speed
measurements run with one thread.

    python benchmarks/lattices.py --out benchmarks/results/lattices.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ltc_beam.lattices import get
from ltc_beam.lattices.probes import hard_points, minimal_vectors
from ltc_beam.lattices.reference import ReferenceDecoder

NAMES = ["z1", "z8", "z24", "a2", "d4", "d4*", "e8", "bw16", "leech"]
REFERENCE_SPEED = {"e8": 20_000, "bw16": 20_000, "leech": 500}  # reference batch per lattice
SPHERE_BOUND = 1 / (2 * math.pi * math.e)  # G of a ball as n -> infinity: 0.058550


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def speed(lattice, batch: int, threads: int, dtype: torch.dtype, repeats: int) -> dict:
    torch.set_num_threads(threads)
    y = torch.randn(batch, lattice.dim, generator=torch.Generator().manual_seed(0), dtype=dtype)
    lattice.quantize(y[: min(batch, 4096)])  # warm-up
    wall, cpu = timed(lambda: lattice.quantize(y), repeats)
    return {"best": batch / min(wall), "median": batch / statistics.median(wall),
            "cpu_us_per_vector": 1e6 * min(cpu) / batch}


def reference_speed(lattice, batch: int, fast: dict, repeats: int) -> dict:
    """Reference decoder vectors/s (float64) and the speed-up of ``quantize`` (float64, batch
    ``--batch``) at the same thread count, for 1 and 2 threads."""
    oracle = ReferenceDecoder(lattice)
    y = torch.randn(batch, lattice.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = {"batch": batch, "cosets": int(oracle.representatives.shape[0])}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        oracle.quantize(y[:16])
        per_s = batch / min(timed(lambda: oracle.quantize(y), max(1, repeats - 1))[0])
        out[f"{threads}t"] = {"vectors_per_s": per_s, "speedup": fast[f"float64_{threads}t"]["best"] / per_s}
    return out


def nsm(lattice, samples: int, chunk: int = 100_000) -> dict:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(2)
    total, total_sq, count = 0.0, 0.0, 0
    while count < samples:
        u = lattice.sample_voronoi(min(chunk, samples - count), generator=generator)
        g = (u**2).sum(-1) / lattice.dim
        total += g.sum().item()
        total_sq += (g**2).sum().item()
        count += len(g)
    mean = total / count
    stderr = math.sqrt(max(total_sq / count - mean**2, 0.0) / count)
    return {"samples": count, "measured": mean, "stderr": stderr, "textbook": lattice.nsm,
            "relative_error": mean / lattice.nsm - 1, "gap_db": 10 * math.log10(mean / SPHERE_BOUND)}


def minimal(lattice) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    vectors = torch.tensor(minimal_vectors(lattice))
    seconds = time.perf_counter() - start
    fixed = bool(torch.equal(lattice.quantize(vectors), vectors))
    return {"count": len(vectors), "norm": float((vectors[0] ** 2).sum()), "quantize_fixes_all": fixed,
            "enumeration_s": seconds}


def agreement(lattice, points: int) -> dict:
    torch.set_num_threads(1)
    y = hard_points(lattice, points, seed=7)
    fast = lattice.quantize(y)
    ref = ReferenceDecoder(lattice).quantize(y)
    excess = ((y - fast) ** 2).sum(-1) - ((y - ref) ** 2).sum(-1)
    same = (fast == ref).all(-1).double().mean().item()  # the rest are ties broken differently
    return {"points": points, "max_excess": excess.max().item(), "identical_fraction": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/lattices.json", help="JSON output path")
    parser.add_argument("--lattices", default=",".join(NAMES), help="comma-separated names")
    parser.add_argument("--batch", type=int, default=100_000, help="vectors per timed quantize call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per configuration")
    parser.add_argument("--nsm-samples", type=int, default=1_000_000, help="Monte-Carlo samples per lattice (0: skip)")
    parser.add_argument("--check-points", type=int, default=20_000, help="hard points compared with the oracle (0: skip)")
    parser.add_argument("--leech-check-points", type=int, default=1_000, help="the same for the Leech lattice (0: skip)")
    args = parser.parse_args()
    names = [n.strip() for n in args.lattices.split(",") if n.strip()]

    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "load_average_start": os.getloadavg(),
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "settings": vars(args),
        "lattices": {},
    }
    steps = [(name, step) for name in names for step in ("speed", "reference", "nsm", "minimal", "agreement")]
    for name, step in tqdm(steps, desc="lattices", unit="step"):
        lattice = get(name)
        entry = result["lattices"].setdefault(name, {"dim": lattice.dim})
        if step == "speed":
            entry["vectors_per_s"] = {
                f"{dtype}_{threads}t": speed(lattice, args.batch, threads, getattr(torch, dtype), args.repeats)
                for dtype in ("float32", "float64") for threads in (1, 2)
            }
        elif step == "reference" and name in REFERENCE_SPEED:
            entry["reference"] = reference_speed(lattice, REFERENCE_SPEED[name], entry["vectors_per_s"], args.repeats)
        elif step == "nsm" and args.nsm_samples:
            entry["nsm"] = nsm(lattice, args.nsm_samples)
        elif step == "minimal":
            entry["minimal_vectors"] = minimal(lattice)
        elif step == "agreement":
            points = args.leech_check_points if name == "leech" else args.check_points
            if points:
                entry["agreement"] = agreement(lattice, points)
    result["machine"]["load_average_end"] = os.getloadavg()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    header = (f"{'lattice':8} {'f32 1t':>9} {'f32 2t':>9} {'f64 1t':>9} {'f64 2t':>9} {'ref 2t':>8} {'speedup':>8} "
              f"{'NSM':>9} {'rel.err':>8} {'gap dB':>7} {'min.vec':>8} {'max excess':>11}")
    print(header)
    print("-" * len(header))
    for name, e in result["lattices"].items():
        v = e["vectors_per_s"]
        ref = e.get("reference")
        row = [f"{name:8}"]
        row += [f"{v[k]['best'] / 1e3:8.0f}k" for k in ("float32_1t", "float32_2t", "float64_1t", "float64_2t")]
        if ref:
            row += [f"{ref['2t']['vectors_per_s']:8.0f}", f"{ref['2t']['speedup']:7.0f}x"]
        else:
            row += [f"{'':8}", f"{'':8}"]
        if "nsm" in e:
            g = e["nsm"]
            row += [f"{g['measured']:9.6f}", f"{100 * g['relative_error']:+7.3f}%", f"{g['gap_db']:7.3f}"]
        else:
            row += [f"{'':9}", f"{'':8}", f"{'':7}"]
        row += [f"{e['minimal_vectors']['count']:8d}"]
        row += [f"{e['agreement']['max_excess']:11.2e}" if "agreement" in e else f"{'':11}"]
        print(" ".join(row))
    print(f"(vectors/s: fastest of {args.repeats} calls at batch {args.batch}; reference and speed-up in float64 "
          f"with 2 threads, 1-thread figures in the JSON; load average "
          f"{result['machine']['load_average_start'][0]:.2f} -> {result['machine']['load_average_end'][0]:.2f}; "
          f"written to {out})")


if __name__ == "__main__":
    main()
