"""Rate–distortion comparison of LTC against the codecs users would pick instead.

    python benchmarks/compare.py --train TRAIN.parquet --test TEST.parquet \
        [--column values | --columns a,b,c] [--key K --order-by T] [--out JSON] [--png PNG]
    python benchmarks/compare.py --gaussian [--out JSON]

What is measured (the same for every codec):

- **Unit**: the whole test split is one stream (all test series concatenated in key order,
  each in time order). Every codec compresses exactly those values; its *actual bytes*
  (headers included; LTC's ~28-byte container once, with the series lengths when its
  windows do not divide them, as ``compress`` writes packed series) divided by the number
  of values is its bits per value. Classical codecs are given the best of several layouts of the same
  values (see ``benchmarks/baselines.py``); the normalisation (train mean/std per column)
  is side information known to every codec, like the LTC codec artifact itself.
- **Error**: on the test split, z-scored with the TRAIN statistics;
  ``nmse = mean over columns of MSE / variance`` (variance of the test column),
  ``snr_db = 10·log10(1 / nmse)``.
- **Curves**: for each codec family the lower envelope (Pareto front) of its points;
  bits per value at SNR 10, 20 and 30 dB by linear interpolation in (SNR dB, bits).
  ``null`` where a family's points do not bracket the SNR (no extrapolation).
- **LTC**: the best of several configurations (lattice e8 / leech, vector / block mode,
  window T), each trained on the TRAIN split (the trainer holds out part of it for
  validation and early stopping) at a sweep of target rates; the sweep is extended until
  it brackets 10 and 30 dB. **NTC** uses lattice ``z1`` with the very same
  configurations (transform, mode, window, latent size, steps). Both code streams as
  ``encode`` does (a stream may be sample-coded where that is shorter); each point also
  holds the same codec's figures without that fallback (``lattice_only``), reported as
  their own rows.

Acceptance (issue 6) is evaluated per real dataset and written to the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import baselines  # noqa: E402

import ltc_beam  # noqa: E402
from ltc_beam import data as ltc_data  # noqa: E402
from ltc_beam.codec.training import default_learning_rate  # noqa: E402

TARGET_SNRS = (10.0, 20.0, 30.0)
CLASSICAL = ("sz3", "zfp", "uniform+zstd", "faiss-sq", "faiss-pq", "zstd-lossless")
# (lattice, mode, window) candidates; NTC runs the same with lattice z1.
DEFAULT_CONFIGS = ("e8:block:4", "leech:block:4", "e8:vector:8")
GAUSSIAN_CONFIGS = ("e8:block:1", "leech:block:1")
DEFAULT_RATES = (1.0, 3.0, 5.0)


# ============================================================================ data
def load_split(path: str, args) -> tuple[list[np.ndarray], list[str]]:
    columns = args.columns.split(",") if args.columns else None
    ds = ltc_data.load(path, column=args.column if not columns else None, columns=columns,
                       key=args.key, order_by=args.order_by)
    return [s.astype(np.float64) for s in ds.series], ds.columns


def gaussian_splits(dim: int, train_records: int, test_records: int, seed: int):
    """i.i.d. N(0, 1) records: one training series and one test series."""
    rng = np.random.default_rng(seed)
    train = rng.standard_normal((train_records, dim)).astype(np.float32).astype(np.float64)
    test = rng.standard_normal((test_records, dim)).astype(np.float32).astype(np.float64)
    return [train], [test], [f"g{i}" for i in range(dim)]


# ============================================================================ metrics
class Scorer:
    """Bits per value and SNR of reconstructions of the test split (z-scored, train stats)."""

    def __init__(self, train: list[np.ndarray], test: list[np.ndarray]):
        stacked = np.concatenate(train)
        self.mean = stacked.mean(0)
        std = stacked.std(0)
        self.std = np.where(std > 0, std, 1.0)
        self.test_raw = np.concatenate(test)
        self.lengths = [len(s) for s in test if len(s)]  # the series of the one stream (LTC windows each apart)
        self.test_z = [((s - self.mean) / self.std).astype(np.float32) for s in test]
        self.z = np.concatenate(self.test_z).astype(np.float64)
        var = self.z.var(0)
        self.var = np.where(var > 0, var, 1.0)
        self.values = self.z.size

    def score(self, nbytes: int, z_hat: np.ndarray | None) -> dict:
        if z_hat is None:  # lossless
            nmse = 0.0
        else:
            mse_col = ((self.z - np.asarray(z_hat, dtype=np.float64)) ** 2).mean(0)
            nmse = float(np.mean(mse_col / self.var))
        return {
            "bytes": int(nbytes),
            "bits_per_value": 8.0 * nbytes / self.values,
            "nmse": nmse,
            "snr_db": 10 * math.log10(1 / nmse) if nmse > 0 else math.inf,
        }

    def z_of_raw(self, x_hat: np.ndarray) -> np.ndarray:
        return (np.asarray(x_hat, dtype=np.float64) - self.mean) / self.std


# ============================================================================ curves
def pareto(points: list[dict]) -> list[dict]:
    """Points not dominated (fewer or equal bits and higher SNR), sorted by bits."""
    finite = sorted((p for p in points if math.isfinite(p["snr_db"])), key=lambda p: (p["bits_per_value"], -p["snr_db"]))
    front, best = [], -math.inf
    for p in finite:
        if p["snr_db"] > best:
            front.append(p)
            best = p["snr_db"]
    return front


def bits_at(points: list[dict], snr: float) -> float | None:
    """Bits per value at ``snr`` dB on the family's front (linear in SNR dB; no extrapolation).

    A lossless point (SNR = inf) reaches every SNR at its rate.
    """
    front = pareto(points)
    lossless = [p["bits_per_value"] for p in points if not math.isfinite(p["snr_db"])]
    best = min(lossless) if lossless else None
    candidates = [b for b in [best] if b is not None]
    for lo, hi in zip(front, front[1:]):
        if lo["snr_db"] <= snr <= hi["snr_db"]:
            t = (snr - lo["snr_db"]) / (hi["snr_db"] - lo["snr_db"])
            candidates.append(lo["bits_per_value"] + t * (hi["bits_per_value"] - lo["bits_per_value"]))
    candidates += [p["bits_per_value"] for p in front if p["snr_db"] >= snr]  # reaches it (upper bound)
    return min(candidates) if candidates else None


# ============================================================================ LTC
def parse_config(text: str) -> dict:
    lattice, mode, window = text.split(":")[:3]
    return {"lattice": lattice, "mode": mode, "window": int(window)}


def config_list(text: str | None, default) -> list[str]:
    if text is None:
        return list(default)
    return [c for c in text.split(",") if c and c != "none"]


def train_and_score(scorer: Scorer, train, cfg: dict, target: float, args) -> dict:
    start = time.perf_counter()
    codec = ltc_beam.train(
        train,
        lattice=cfg["lattice"],
        mode=cfg["mode"],
        window=cfg["window"],
        target_bits_per_value=target,
        steps=args.steps,
        transform=args.transform,
        latent_dim=cfg.get("latent_dim"),
        learning_rate=args.learning_rate or default_learning_rate(target),
        progress=False,
        seed=args.seed,
        normalise=args.normalise,
    )
    seconds = time.perf_counter() - start
    point = score_codec(scorer, codec)
    training = codec.manifest.get("training", {})
    point.update({
        "param": {"target_bits_per_value": target, **cfg, "transform": codec.config.transform,
                  "latent_dim": codec.config.latent_dim, "steps_run": training.get("steps_run"),
                  "validation": training.get("validation")},
        "model_bits_per_value": codec.code_length_bits(scorer.test_raw, scorer.lengths) / scorer.values,
        "train_seconds": round(seconds, 1),
    })
    return point, codec


def score_codec(scorer: Scorer, codec) -> dict:
    """The codec's point, and under ``lattice_only`` the same codec's without the
    sample-coding fallback (every stream lattice-coded)."""
    points = []
    for fallback in (True, False):
        codec.sample_fallback = fallback
        blob = codec.encode(scorer.test_raw, scorer.lengths)
        points.append(scorer.score(len(blob), scorer.z_of_raw(codec.decode(blob))))
    codec.sample_fallback = True
    return {**points[0], "lattice_only": {k: points[1][k] for k in ("bytes", "bits_per_value", "nmse", "snr_db")}}


def sweep(scorer: Scorer, train, cfg: dict, rates, args, log) -> list[dict]:
    """Train at ``rates``; extend the sweep until it brackets the lowest and highest target SNR."""
    lo_snr, hi_snr = min(TARGET_SNRS) - 1.0, max(TARGET_SNRS) + 1.0
    points: list[dict] = []

    def run(rate: float) -> None:
        p, codec = train_and_score(scorer, train, cfg, round(rate, 3), args)
        points.append(p)
        note = "; scale classes" if codec.classes is not None else ""
        log(f"  {cfg['lattice']:>6} {cfg['mode']:<6} T={cfg['window']:<2} target {rate:5.2f}: "
            f"{p['bits_per_value']:.3f} bits/value, {p['snr_db']:6.2f} dB ({p['train_seconds']} s){note}")

    for r in rates:
        run(r)
    for _ in range(args.max_extra):
        pts = sorted(points, key=lambda p: p["param"]["target_bits_per_value"])
        if min(p["snr_db"] for p in pts) > lo_snr:
            run(max(0.1, pts[0]["param"]["target_bits_per_value"] * 0.5))
        elif max(p["snr_db"] for p in pts) < hi_snr:
            top = pts[-1]
            slope = 5.0  # dB per bit, the value at moderate rate
            if len(pts) > 1:
                a, b = pts[-2], pts[-1]
                if b["bits_per_value"] > a["bits_per_value"] + 0.05:
                    slope = min(6.02, max(2.0, (b["snr_db"] - a["snr_db"]) / (b["bits_per_value"] - a["bits_per_value"])))
            step = min(3.0, max(0.5, (hi_snr - top["snr_db"]) / slope))
            run(top["param"]["target_bits_per_value"] + step)
        else:
            gap = widest_gap(points)
            if gap is None:
                break
            run(gap)
    return points


def widest_gap(points: list[dict], max_gap_db: float = 6.0) -> float | None:
    """Target rate halfway between the two sweep points around a target SNR, when they lie
    more than ``max_gap_db`` apart (linear interpolation over a wide gap overstates bits)."""
    pts = sorted(points, key=lambda p: p["snr_db"])
    worst, rate = max_gap_db, None
    for a, b in zip(pts, pts[1:]):
        if any(a["snr_db"] <= s <= b["snr_db"] for s in TARGET_SNRS) and b["snr_db"] - a["snr_db"] > worst:
            worst = b["snr_db"] - a["snr_db"]
            rate = (a["param"]["target_bits_per_value"] + b["param"]["target_bits_per_value"]) / 2
    return rate


# ============================================================================ summary
def families(points: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in points:
        out.setdefault(p["codec"], []).append(p)
    return out


def summarise(points: list[dict]) -> dict:
    fam = families(points)
    table = {name: {f"{s:g}": bits_at(pts, s) for s in TARGET_SNRS} for name, pts in fam.items()}
    ltc_names = [n for n in fam if n.startswith("ltc-")]
    ntc_names = [n for n in fam if n.startswith("ntc-")]

    def best_of(names):
        return {f"{s:g}": _min([table[n][f"{s:g}"] for n in names]) for s in TARGET_SNRS}

    table["ltc (best)"] = best_of(ltc_names)
    table["ntc-z (best)"] = best_of(ntc_names)
    for name, names in (("ltc lattice only (best)", ltc_names), ("ntc-z lattice only (best)", ntc_names)):
        alone = [[p["lattice_only"] for p in fam[n] if "lattice_only" in p] for n in names]
        table[name] = {f"{s:g}": _min([bits_at(pts, s) for pts in alone if pts]) for s in TARGET_SNRS}
    table["classical (best)"] = best_of([n for n in fam if n in CLASSICAL])
    best_classical_name = {}
    for s in TARGET_SNRS:
        key = f"{s:g}"
        ranked = sorted((table[n][key], n) for n in fam if n in CLASSICAL and table[n][key] is not None)
        best_classical_name[key] = ranked[0][1] if ranked else None
    acceptance = {}
    for s in TARGET_SNRS:
        key = f"{s:g}"
        ltc, cls, ntc = table["ltc (best)"][key], table["classical (best)"][key], table["ntc-z (best)"][key]
        saving = None if ltc is None or cls is None else 1 - ltc / cls
        acceptance[key] = {
            "ltc": ltc, "best_classical": cls, "best_classical_codec": best_classical_name[key], "ntc_z": ntc,
            "saving_vs_classical": saving,
            "meets_20pct": saving is not None and saving >= 0.20,
            "beats_ntc": ltc is not None and ntc is not None and ltc < ntc,
            "lattice_only": {"ltc": table["ltc lattice only (best)"][key], "ntc_z": table["ntc-z lattice only (best)"][key]},
        }
    return {"bits_per_value_at_snr": table, "acceptance": acceptance}


def _min(values):
    vals = [v for v in values if v is not None]
    return min(vals) if vals else None


# ============================================================================ plot
def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fam = families(result["points"])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    styles = {"sz3": "C0", "zfp": "C1", "uniform+zstd": "C2", "faiss-sq": "C4", "faiss-pq": "C5"}
    for name, pts in sorted(fam.items()):
        if name == "zstd-lossless":
            ax.axvline(pts[0]["bits_per_value"], color="grey", ls=":", label=f"zstd lossless ({pts[0]['bits_per_value']:.1f})")
            continue
        front = pareto(pts)
        if not front:
            continue
        xs, ys = [p["bits_per_value"] for p in front], [p["snr_db"] for p in front]
        if name.startswith("ltc-"):
            ax.plot(xs, ys, "-o", lw=2, ms=4, label=name)
        elif name.startswith("ntc-"):
            ax.plot(xs, ys, "--x", lw=1.2, ms=4, label=name)
        else:
            ax.plot(xs, ys, "-s", color=styles.get(name), ms=3, alpha=0.8, label=name)
    if result.get("gaussian"):
        r = np.linspace(0, 6, 50)
        ax.plot(r, 20 * np.log10(2) * r, "k-", lw=0.8, label="R(D), Gaussian")
    for s in TARGET_SNRS:
        ax.axhline(s, color="k", lw=0.4, alpha=0.4)
    ax.set_xlim(0, 8)
    ax.set_ylim(0, 40)
    ax.set_xlabel("bits per value (actual bytes, whole test split as one stream)")
    ax.set_ylabel("SNR on test split (dB, 10·log10 1/nmse)")
    ax.set_title(result["dataset"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def git_commit() -> str | None:
    """The repository commit the codec code came from (``+dirty`` with local changes)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ltc_beam"], cwd=root, capture_output=True, text=True)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


REPORT_ROWS = (
    ("ltc (best)", "LTC (best config)"),
    ("ntc-z (best)", "NTC-z (same transforms)"),
    ("ltc lattice only (best)", "LTC without the sample-coding fallback"),
    ("ntc-z lattice only (best)", "NTC-z without the sample-coding fallback"),
    ("sz3", "SZ3"),
    ("zfp", "ZFP"),
    ("uniform+zstd", "uniform + zstd"),
    ("faiss-sq", "FAISS SQ 4/6/8-bit"),
    ("faiss-pq", "FAISS PQ"),
    ("zstd-lossless", "zstd lossless"),
    ("classical (best)", "best classical"),
)


def markdown(result: dict) -> str:
    """The results table of one JSON, as Markdown."""
    table = result["bits_per_value_at_snr"]
    keys = [f"{s:g}" for s in TARGET_SNRS]

    def cell(v):
        return "–" if v is None else f"{v:.3f}"

    lines = [f"**{result['dataset']}** ({result['test_values']} test values; codec commit "
             f"{result.get('ltc_beam_commit')}): bits per value at SNR",
             "", "| codec | " + " | ".join(f"{k} dB" for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for key, label in REPORT_ROWS:
        if key in table:
            lines.append(f"| {label} | " + " | ".join(cell(table[key][k]) for k in keys) + " |")
    acc = result["acceptance"]
    lines.append("| LTC bits vs best classical | " + " | ".join(
        "–" if acc[k]["saving_vs_classical"] is None else f"{-100 * acc[k]['saving_vs_classical']:+.1f} %" for k in keys) + " |")
    lines.append("| best classical codec | " + " | ".join(str(acc[k]["best_classical_codec"]) for k in keys) + " |")
    best = {k: min(((table[n][k], n) for n in table if n.startswith("ltc-") and table[n][k] is not None), default=(None, None))[1]
            for k in keys}
    lines.append("| best LTC config | " + " | ".join(str(best[k])[4:] if best[k] else "–" for k in keys) + " |")
    return "\n".join(lines)


# ============================================================================ main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train")
    parser.add_argument("--test")
    parser.add_argument("--column", default=None)
    parser.add_argument("--columns", default=None, help="comma-separated float columns")
    parser.add_argument("--key", default=None)
    parser.add_argument("--order-by", dest="order_by", default=None)
    parser.add_argument("--gaussian", action="store_true", help="i.i.d. N(0,1) records instead of Parquet")
    parser.add_argument("--gaussian-dim", type=int, default=8)
    parser.add_argument("--name", default=None, help="dataset name in the JSON and plot")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/compare_<name>.json)")
    parser.add_argument("--png", default=None, help="PNG path (default: JSON path with .png)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated LATTICE:MODE:WINDOW LTC candidates (NTC runs each with z1)")
    parser.add_argument("--rates", default=None, help="comma-separated initial target bits/value of each sweep")
    parser.add_argument("--max-extra", dest="max_extra", type=int, default=4,
                        help="extra sweep points to bracket 10-30 dB and fill gaps over 6 dB around them")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=None,
                        help="fixed Adam step size (default: default_learning_rate(target))")
    parser.add_argument("--transform", default="auto", choices=["auto", "linear", "mlp"])
    parser.add_argument("--no-ntc", dest="ntc", action="store_false")
    parser.add_argument("--normalise", default="column", choices=["column", "series"],
                        help="LTC and NTC codecs' normalisation (series: each test series scaled by its own statistics)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscription on 2 cores)")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="print Markdown tables of finished runs and exit")
    args = parser.parse_args(argv)
    if args.report:
        for path in args.report:
            with open(path) as handle:
                print(markdown(json.load(handle)) + "\n")
        return {}
    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.gaussian:
        train, test, columns = gaussian_splits(args.gaussian_dim, 20_000, 4_000, args.seed)
        name = args.name or "gaussian"
        configs = config_list(args.configs, GAUSSIAN_CONFIGS)
    else:
        if not (args.train and args.test):
            parser.error("give --train and --test (or --gaussian)")
        train, columns = load_split(args.train, args)
        test, _ = load_split(args.test, args)
        name = args.name or os.path.basename(args.train).replace(".parquet", "").replace("_train", "")
        configs = config_list(args.configs, DEFAULT_CONFIGS)
    rates = [float(r) for r in args.rates.split(",")] if args.rates else list(DEFAULT_RATES)
    out = args.out or os.path.join("benchmarks", "results", f"compare_{name}.json")
    png = args.png or os.path.splitext(out)[0] + ".png"
    scorer = Scorer(train, test)
    log(f"{name}: train {sum(len(s) for s in train)} records in {len(train)} series, "
        f"test {sum(len(s) for s in test)} records in {len(test)} series, {len(columns)} columns; "
        f"{scorer.values} test values")
    started = time.perf_counter()
    commit = git_commit()  # at the start: others may commit while a long run goes on

    # ---------------------------------------------------------------- classical
    points: list[dict] = []
    zs = scorer.test_z
    train_z = [((s - scorer.mean) / scorer.std).astype(np.float32) for s in train]
    grid = np.geomspace(2.0, 2.0**-9, 31)  # absolute error / step in z-score units
    raw_points = (
        baselines.sz3_points(zs, grid)
        + baselines.zfp_points(zs, grid)
        + baselines.uniform_zstd_points(zs, grid)
        + baselines.faiss_points(train_z, zs, seed=args.seed)
        + baselines.zstd_lossless_points([s.astype(np.float32) for s in test])
    )
    for p in raw_points:
        rec = p.pop("reconstruction")
        q = scorer.score(p["bytes"], rec)
        points.append({**p, **q})
    log(f"classical baselines: {len(points)} points in {time.perf_counter() - started:.0f} s")

    # ---------------------------------------------------------------- LTC and NTC
    ntc_done = set()
    for text in configs:
        cfg = parse_config(text)
        label = f"{cfg['lattice']} {cfg['mode']} T={cfg['window']}"
        tag = f"{cfg['lattice']}-{cfg['mode']}-T{cfg['window']}"
        found = sweep(scorer, train, cfg, rates, args, log)
        points += [{"codec": f"ltc-{tag}", "layout": label, **p} for p in found]
        # NTC: the same transform, window and latent size with lattice z1. With z1, block and
        # vector mode are the same codec, so one NTC sweep per window serves every lattice.
        if args.ntc and cfg["window"] not in ntc_done:
            ntc_done.add(cfg["window"])
            ntc = {**cfg, "lattice": "z1", "mode": "block"}
            found = sweep(scorer, train, ntc, rates, args, log)
            points += [{"codec": f"ntc-z1-T{cfg['window']}", "layout": f"z1 T={cfg['window']}", **p} for p in found]

    result = {
        "benchmark": "compare",
        "dataset": name,
        "gaussian": bool(args.gaussian),
        "train": args.train, "test": args.test,
        "columns": columns,
        "unit": "whole test split as one stream (series concatenated in key order, each in time order)",
        "metric": "nmse = mean over columns of MSE / test variance, z-scored with train statistics; "
                  "snr_db = 10 log10(1 / nmse); bits_per_value = 8 * actual bytes / test values",
        "test_values": scorer.values,
        "settings": {k: v for k, v in vars(args).items() if k not in ("train", "test")},
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": args.threads},
        "ltc_beam_commit": commit,
        **summarise(points),
        "points": points,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, default=float)
    plot(result, png)
    print_table(result, log)
    log(f"wrote {out} and {png} ({result['seconds']:.0f} s)")
    return result


def print_table(result: dict, log) -> None:
    table = result["bits_per_value_at_snr"]
    log(f"\n{result['dataset']}: bits per value at SNR")
    log(f"{'codec':34s}" + "".join(f"{s:>9g} dB" for s in TARGET_SNRS))
    for name in sorted(table):
        row = table[name]
        log(f"{name:34s}" + "".join(f"{row[f'{s:g}']:12.3f}" if row[f"{s:g}"] is not None else f"{'-':>12s}" for s in TARGET_SNRS))
    for key, acc in result["acceptance"].items():
        saving = acc["saving_vs_classical"]
        log(f"  {key} dB: ltc {acc['ltc']} vs best classical {acc['best_classical']} ({acc['best_classical_codec']}), "
            f"saving {'-' if saving is None else f'{100 * saving:.1f} %'}; "
            f"ntc-z {acc['ntc_z']}; >=20 %: {acc['meets_20pct']}, beats ntc: {acc['beats_ntc']}")


if __name__ == "__main__":
    main()
