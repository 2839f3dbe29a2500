"""Shared by the benchmark scripts: write a JSON report, interpolate a curve."""

from __future__ import annotations

import json
import os

import numpy as np


def write_report(path: str, report: dict) -> None:
    """Write ``report`` as indented JSON to ``path`` (parent folders created) and say so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"wrote {path}")


def interpolate(points: list[dict], x_key: str, y_key: str, x: float) -> float | None:
    """``y`` at ``x`` by linear interpolation along ``points`` (None outside their range)."""
    xs, ys = zip(*sorted((p[x_key], p[y_key]) for p in points))
    if not xs[0] <= x <= xs[-1]:
        return None
    return float(np.interp(x, xs, ys))
