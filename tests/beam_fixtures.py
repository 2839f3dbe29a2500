"""Session fixtures for the Arrow / Beam / CLI tests: synthetic telemetry and real codecs.

Import the fixtures you use into a test module (``from tests.beam_fixtures import ...``).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

import ltc_beam
from ltc_beam import testing

COMMON = dict(target_bits_per_value=2.0, steps=200, progress=False, seed=0)


@pytest.fixture(scope="session")
def telemetry() -> pa.Table:
    """100k records, 100 devices, 8 values each, with extra columns and NaN/±Inf vectors."""
    return testing.telemetry_table(100_000, keys=100, dim=8, seed=0, specials=50)


@pytest.fixture(scope="session")
def telemetry_dir(telemetry, tmp_path_factory) -> str:
    """The 100k table as 4 Parquet files of several row groups."""
    path = str(tmp_path_factory.mktemp("telemetry"))
    testing.write_dataset(telemetry, path, files=4, row_group_size=8192)
    return path


@pytest.fixture(scope="session")
def small() -> pa.Table:
    """3,000 records, 30 devices (quick in-memory tests)."""
    return testing.telemetry_table(3000, keys=30, dim=8, seed=0, specials=12)


def _save(codec, tmp_path_factory, name) -> str:
    path = os.path.join(str(tmp_path_factory.mktemp("codecs")), name)
    codec.save(path)
    return path


@pytest.fixture(scope="session")
def vec_codec(telemetry, tmp_path_factory):
    """(codec, path): vector mode, E8, window 1, trained on the first 20k records."""
    codec = ltc_beam.train(testing.series_of(telemetry.slice(0, 20_000)), lattice="e8", mode="vector", **COMMON)
    return codec, _save(codec, tmp_path_factory, "vector.ltc")


@pytest.fixture(scope="session")
def window_codec(telemetry, tmp_path_factory):
    """(codec, path): vector mode, D4, window 4 (needs series order)."""
    codec = ltc_beam.train(
        testing.series_of(telemetry.slice(0, 20_000)), lattice="d4", mode="vector", window=4, **COMMON
    )
    return codec, _save(codec, tmp_path_factory, "window.ltc")


@pytest.fixture(scope="session")
def block_codec(telemetry, tmp_path_factory):
    """(codec, path): block mode, E8 across 8 consecutive records."""
    codec = ltc_beam.train(testing.series_of(telemetry.slice(0, 20_000)), lattice="e8", mode="block", **COMMON)
    return codec, _save(codec, tmp_path_factory, "block.ltc")


def values_of(table: pa.Table, column: str = "values") -> np.ndarray:
    col = table.column(column).combine_chunks()
    d = col.type.list_size if pa.types.is_fixed_size_list(col.type) else len(col[0])
    return np.asarray(col.flatten()).reshape(-1, d)


def sort_by_series(table: pa.Table) -> pa.Table:
    return table.sort_by([("device", "ascending"), ("ts", "ascending")])
