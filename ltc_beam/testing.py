"""Synthetic telemetry for tests and benchmarks: many devices, a timestamp, extra columns,
and a few NaN / ±Inf vectors — the shape of data LtcEncode is built for."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def telemetry_table(records: int = 100_000, *, keys: int = 100, dim: int = 8, seed: int = 0, specials: int = 50) -> pa.Table:
    """Rows interleaved across ``keys`` devices in time order.

    Columns: ``device`` string (series key), ``ts`` timestamp[ms, UTC] (order within a
    device), ``seq`` int64, ``temperature`` float64 with nulls, ``values``
    fixed_size_list<float32, dim> (smooth correlated channels plus noise); ``specials``
    vectors hold NaN or ±Inf. Tables with the same ``seed`` share their channel structure
    (mixing, scales), whatever their size, so a codec trained on one fits the others.
    """
    structure = np.random.default_rng(seed)  # channel mixing and scales: shared by all sizes
    mix = structure.normal(size=(3, dim))
    scale = np.exp(structure.normal(size=dim))
    offset = structure.normal(size=dim) * 3
    rng = np.random.default_rng([seed, records, keys])
    steps = -(-records // keys)
    latent = np.zeros((keys, steps, 3))
    eps = rng.normal(size=(keys, steps, 3))
    for t in range(1, steps):
        latent[:, t] = 0.95 * latent[:, t - 1] + 0.3 * eps[:, t]
    x = (latent @ mix + 0.1 * rng.normal(size=(keys, steps, dim))) * scale + offset
    # time-major interleaving: row r is device r % keys at step r // keys
    x = x.transpose(1, 0, 2).reshape(-1, dim)[:records].astype(np.float32)
    row = np.arange(records)
    device = np.array([f"dev-{k:03d}" for k in range(keys)])[row % keys]
    ts = (np.datetime64("2024-01-01T00:00:00", "ms") + (row // keys) * np.timedelta64(1000, "ms") + (row % keys)).astype(
        "datetime64[ms]"
    )
    temperature = 20 + rng.normal(size=records)
    temp_mask = rng.random(records) < 0.1
    if specials:
        picks = rng.choice(records, size=min(specials, records), replace=False)
        for i, r in enumerate(picks):
            if i % 3 == 0:
                x[r] = np.nan
            elif i % 3 == 1:
                x[r, i % dim] = np.nan
            else:
                x[r, i % dim] = np.inf if i % 2 else -np.inf
    values = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), dim)
    return pa.table(
        {
            "device": pa.array(device, pa.string()),
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "seq": pa.array(row, pa.int64()),
            "temperature": pa.array(temperature, pa.float64(), mask=temp_mask),
            "values": values,
        }
    )


def write_dataset(table: pa.Table, directory: str, *, files: int = 4, row_group_size: int = 8192) -> list[str]:
    """Split ``table`` into ``files`` contiguous Parquet files (several row groups each)."""
    os.makedirs(directory, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    paths = []
    for i in range(files):
        path = os.path.join(directory, f"part-{i}.parquet")
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), path, row_group_size=row_group_size)
        paths.append(path)
    return paths


def series_of(table: pa.Table, key: str = "device", column: str = "values") -> list[np.ndarray]:
    """Per-key ``[N, dim]`` arrays in row order (for training test codecs)."""
    keys = np.asarray(table.column(key).to_pylist(), dtype=object)
    dim = table.schema.field(column).type.list_size
    x = np.asarray(table.column(column).combine_chunks().values).reshape(-1, dim)
    return [x[keys == k] for k in dict.fromkeys(keys)]
