"""``ltc_beam.evaluation``: figures counted on the bytes an archive would hold."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ltc_beam import arrow
from ltc_beam.evaluation import archive_chunks, evaluate
from tests.conftest import correlated_series


def _series(count: int, length: int, dim: int = 6) -> list[np.ndarray]:
    return [correlated_series(length, dim, seed=10 + i) for i in range(count)]


@pytest.mark.parametrize("name", ["vector", "block", "window"])
def test_evaluate_counts_the_payload_bytes_of_the_chunk_layout(codecs, name):
    codec = codecs[name]
    series = _series(30, 57)  # many short series: packed into few bitstreams
    keys = [f"device-{i:03d}" for i in range(len(series))]  # the key column decides the packing
    result = evaluate(codec, series, voronoi=False, keys=keys)
    d = series[0].shape[1]
    table = pa.table({
        "k": np.repeat(keys, [len(s) for s in series]),
        "t": np.concatenate([np.arange(len(s)) for s in series]),
        "values": pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate(series).astype(np.float32).ravel()), d),
    })
    encoded = arrow.encode_table(table, codec, column="values", key="k", order_by="t")
    payload = pc.sum(pc.binary_length(encoded.column(arrow.PAYLOAD))).as_py()
    assert result["streams"] == encoded.num_rows < len(series)
    assert result["bits_per_value"] == pytest.approx(8 * payload / (table.num_rows * d), rel=1e-12)


def test_archive_chunks_keep_every_record_once(codecs):
    series = _series(5, 3000) + _series(7, 40)
    chunks = archive_chunks(codecs["block"], series, chunk_size=1024)
    assert sum(len(c) for c in chunks) == sum(len(s) for s in series)
    assert max(len(c) for c in chunks) <= 1024
    expected = np.sort(np.concatenate(series), axis=0)
    assert np.array_equal(np.sort(np.concatenate(chunks), axis=0), expected)


def test_evaluate_error_matches_decoding(codecs):
    codec = codecs["vector"]
    series = _series(2, 500)
    result = evaluate(codec, series, voronoi=False)
    x = np.concatenate(series)  # float64: the error is charged against the values as given
    x_hat = codec.decode(codec.encode(x))
    mse = ((x - x_hat) ** 2).mean(0)
    assert result["nmse"] == pytest.approx(float(np.mean(mse / x.var(0))), rel=1e-6)


def test_unconverged_voronoi_estimate_is_reported_as_a_note(codecs):
    result = evaluate(codecs["vector"], _series(1, 800))  # 6 values in an 8-dim latent
    assert result["estimated_bits_voronoi_per_value"] is None
    assert "not converged" in result["voronoi_note"]
    assert np.isfinite(result["bits_per_value"])
