"""Per-column polynomial prediction of sample-coding integers (ltc_beam.codec.sample_prediction)."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from ltc_beam.codec import sample_coding
from ltc_beam.codec.sample_prediction import MAX_ORDER, predictor_orders, residuals, restored
from ltc_beam.errors import FormatError


def _mixed(n: int, seed: int = 0) -> np.ndarray:
    """Columns of noise, a random walk and an integrated random walk (a smooth signal)."""
    steps = np.random.default_rng(seed).integers(-3, 4, (n, 3))
    return np.stack([steps[:, 0], np.cumsum(steps[:, 1]), np.cumsum(np.cumsum(steps[:, 2]))], axis=1)


def test_each_column_takes_the_order_of_its_signal():
    assert predictor_orders(_mixed(2000)).tolist() == [0, 1, 2]
    assert predictor_orders(_mixed(2)).tolist() == [0, 0, 0]  # too short to tell


@pytest.mark.parametrize(
    "n, orders",
    [(n, orders) for n in (0, 1, 2, 3, 50) for orders in ([0, 0, 0], [1, 1, 1], [2, 2, 2], [2, 0, 1], [0, 1, 2]) if n >= max(orders)],
)
def test_residuals_round_trip(n, orders):
    q = _mixed(n, seed=n)
    orders = np.array(orders)
    first, differences = residuals(q, orders)
    assert first.shape == (orders.max(), 3) and differences.shape == (n - orders.max(), 3)
    assert np.array_equal(restored(first, differences, orders), q)


def test_predicted_payload_round_trips_and_beats_first_differences():
    q = _mixed(3000, seed=1)
    steps = np.array([0.5, 0.25, 0.125])
    base = sample_coding.IMPLIED + sample_coding.TABLED
    predicted = sample_coding.payload_of(q, steps, base + sample_coding.PREDICTED)
    assert predicted[0] == 52 and predicted[1] == 1
    offsets = np.array([0.0, 1.0, -2.0])
    np.testing.assert_array_equal(sample_coding.decode_samples(predicted, q.shape, offsets), q * steps + offsets)
    differences = sample_coding.payload_of(q, steps, base + sample_coding.DIFFERENCES)
    assert len(predicted) < 0.9 * len(differences)
    candidate = sample_coding.SampleCandidate(q, steps)
    assert candidate.payload()[0] & sample_coding.PREDICTED and len(candidate.payload()) <= len(predicted)


def test_damaged_predicted_payload_is_a_format_error():
    q = _mixed(100, seed=2)
    steps = np.ones(3)
    good = sample_coding.payload_of(q, steps, sample_coding.IMPLIED + sample_coding.TABLED + sample_coding.PREDICTED)
    head = 2 + 8 * 3  # order, width, float64 steps; then the orders, the first records' width
    assert good[head : head + 3] == bytes([0, 1, 2]) and good[head + 3] == 1
    damaged = {
        "order above the highest": good[:head] + bytes([0, 1, MAX_ORDER + 1]) + good[head + 3 :],
        "orders cut": good[: head + 2],
        "first records cut": good[: head + 3 + 1 + 5],
        "first records' width unknown": good[: head + 3] + bytes([3]) + good[head + 4 :],
    }
    for what, payload in damaged.items():
        with pytest.raises(FormatError):
            sample_coding.decode_samples(payload, q.shape, np.zeros(3))
    with pytest.raises(FormatError):  # a stream shorter than its orders
        sample_coding.decode_samples(good, (1, 3), np.zeros(3))


def test_probe_counts_second_differences():
    """A smooth signal whose first differences look hopeless next to the lattice payload
    while its second differences do not: the probe lets it through to a trial."""
    from ltc_beam.codec.sample_tables import entropy_bytes

    q = _mixed(4000, seed=3)[:, 2:]
    target = np.array([1 / 12])  # the rule's step: 1
    z, keep = q.astype(np.float64), np.ones(q.shape, bool)
    first, second = entropy_bytes(np.diff(q, axis=0)), entropy_bytes(np.diff(q, 2, axis=0))
    zstd = len(zstandard.ZstdCompressor(level=1).compress(sample_coding.packed_ints(np.diff(q, axis=0))[1]))
    budget = min(int(zstd / sample_coding.PROBE_MARGIN), int(first / sample_coding.ENTROPY_MARGIN)) - 10
    assert first > sample_coding.ENTROPY_MARGIN * budget  # hopeless by first differences alone ...
    assert second < sample_coding.ENTROPY_MARGIN * budget  # ... not by second ones
    assert not sample_coding.hopeless(z, keep, target, budget)
    assert sample_coding.hopeless(z, keep, target, int(second / sample_coding.ENTROPY_MARGIN) - 10)
