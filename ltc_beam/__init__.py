"""ltc-beam: lossy compression of float vectors and telemetry with Lattice Transform Coding."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Codec", "train", "read_parquet", "write_parquet", "__version__"]

#: Public names and the modules that define them, imported on first use, so that the
#: command line (``ltc-beam --help``) does not wait for torch.
_LAZY = {
    "Codec": "ltc_beam.codec.codec",
    "train": "ltc_beam.codec.training",
    "read_parquet": "ltc_beam.parquet",
    "write_parquet": "ltc_beam.parquet",
}

if TYPE_CHECKING:
    from ltc_beam.codec.codec import Codec
    from ltc_beam.codec.training import train
    from ltc_beam.parquet import read_parquet, write_parquet


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule (ltc_beam.parquet) not imported yet
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ltc_beam' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
