"""Lattice library: exact nearest points, lattice membership, coding basis, products, NSM.

The oracle is :class:`ReferenceDecoder` (exhaustive search over the cosets of a·D_n found by
breadth-first search from the frame basis). Every lattice is checked on 20,000 points from
:func:`hard_points` — Gaussian at scales 0.05–30, exact midpoints between a lattice point
and a neighbour along a minimal vector (ties on the Voronoi boundary), the same perturbed by
1e-12..1e-6, midpoints of random lattice pairs, half-sums of two minimal vectors, and
lattice points. For the Leech lattice the reference (8,192 cosets, ~100 vectors/s) runs
on a separate 600-point draw of the same mix to keep this file fast; the Leech decoder's
other properties are checked on all 20,000 points, and ``benchmarks/lattices.py
--check-points`` compares larger sets.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltc_beam.errors import InputError
from ltc_beam.lattices import get
from ltc_beam.lattices import leech_decoder
from ltc_beam.lattices.probes import hard_points, minimal_vectors
from ltc_beam.lattices.reference import ReferenceDecoder

NAMES = ["z1", "z8", "z24", "a2", "d4", "d4*", "e8", "bw16", "leech"]
POINTS = 20_000
LEECH_REFERENCE_POINTS = 600
TEXTBOOK_NSM = {  # DESIGN.md §1
    "z": 0.083333, "a2": 0.080188, "d4": 0.076603, "d4*": 0.076603,
    "e8": 0.071682, "bw16": 0.068299, "leech": 0.065771,
}


@pytest.fixture(scope="module")
def points():
    cache: dict[str, torch.Tensor] = {}

    def draw(name: str) -> torch.Tensor:
        if name not in cache:
            cache[name] = hard_points(get(name), POINTS, seed=7)
        return cache[name]

    return draw


def sq_dist(y: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return ((y.double() - q.double()) ** 2).sum(-1)


@pytest.mark.parametrize("name", NAMES)
def test_never_farther_than_reference(name, points):
    lattice = get(name)
    y = points(name) if name != "leech" else hard_points(lattice, LEECH_REFERENCE_POINTS, seed=8)
    fast = lattice.quantize(y)
    ref = ReferenceDecoder(lattice).quantize(y)
    excess = sq_dist(y, fast) - sq_dist(y, ref)
    assert excess.max().item() <= 1e-9, f"{name}: worst excess {excess.max().item():.3e}"


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_lattice_points_with_exact_integer_coordinates(name, points):
    lattice = get(name)
    q = lattice.quantize(points(name))
    frame = q / torch.from_numpy(lattice.frame_unit)
    assert torch.allclose(frame, torch.round(frame), rtol=0, atol=1e-9)
    k = lattice.to_integer(q)  # raises for a non-lattice point
    assert k.dtype == torch.int64
    assert torch.equal(lattice.from_integer(k), q)
    assert torch.equal(lattice.quantize_frame(points(name)), torch.round(frame).long())


@pytest.mark.parametrize("name", NAMES)
def test_lattice_points_are_fixed_points(name):
    lattice = get(name)
    k = torch.from_numpy(np.random.default_rng(3).integers(-50, 51, size=(5_000, lattice.dim)))
    y = lattice.from_integer(k)
    assert torch.equal(lattice.quantize(y), y)
    assert torch.equal(lattice.to_integer(y), k)


@pytest.mark.parametrize("name", NAMES)
def test_ties_are_broken_independently_of_the_batch(name, points):
    lattice = get(name)
    y = points(name)[: 4_000 if name == "leech" else POINTS]
    whole = lattice.quantize(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    shuffled = torch.empty_like(whole)
    shuffled[order] = lattice.quantize(y[order])
    assert torch.equal(whole, shuffled)
    assert torch.equal(whole[:7], lattice.quantize(y[:7]))


def test_leech_decoder_paths_agree(monkeypatch):
    """Vectors settled by 2 candidates, by 16, or by all 256 cases get the same point."""
    lattice = get("leech")
    y = hard_points(lattice, 3_000, seed=9)
    normal = lattice.quantize(y)
    real = {name: getattr(leech_decoder, name) for name in ("_key_bound", "_decode_chunk", "_settle", "_resolve")}
    state = {"tier": 0, "refuse": set(), "sizes": set()}

    def in_tier(tier, fn):
        def wrapped(*args):
            state["tier"] = tier
            return fn(*args)

        return wrapped

    def key_bound(key, dtype):
        out = real["_key_bound"](key, dtype)
        return torch.full_like(out, -np.inf) if state["tier"] in state["refuse"] else out

    def resolve(cc, cases, *args):
        state["sizes"].add(cases.shape[0])
        return real["_resolve"](cc, cases, *args)

    monkeypatch.setattr(leech_decoder, "_key_bound", key_bound)
    monkeypatch.setattr(leech_decoder, "_decode_chunk", in_tier(1, real["_decode_chunk"]))
    monkeypatch.setattr(leech_decoder, "_settle", in_tier(2, real["_settle"]))
    monkeypatch.setattr(leech_decoder, "_resolve", resolve)
    for refuse, reached in (({1}, 2 + 14), ({1, 2}, 256)):
        state["refuse"], state["sizes"] = refuse, set()
        assert torch.equal(lattice.quantize(y), normal)
        assert reached in state["sizes"]


@pytest.mark.parametrize("name", NAMES)
def test_float32(name, points):
    lattice = get(name)
    y = points(name)[:5_000]
    y = y[y.abs().amax(-1) < 30].float().double()  # float32 inputs, compared in float64
    q32 = lattice.quantize(y.float())
    assert q32.dtype == torch.float32
    lattice.to_integer(q32)
    excess = sq_dist(y, q32) - sq_dist(y, lattice.quantize(y))
    assert (excess <= 1e-5 * (1 + (y**2).sum(-1))).all()


@pytest.mark.parametrize("name", NAMES)
def test_far_out_float32_latents_quantize_to_lattice_points(name):
    """Beyond 2**19 frame units float32 sums round: a parity decided on them gave points
    outside the lattice (an older codec's 1e5-std glitch), which decoders cannot rebuild."""
    lattice = get(name)
    generator = torch.Generator().manual_seed(3)
    y = (torch.randn(2_000, lattice.dim, generator=generator, dtype=torch.float64) * 3e7).float()
    frame = lattice.quantize_frame(y)
    unit = torch.from_numpy(lattice.frame_unit)
    lattice.to_integer(frame * unit)  # raises for a point outside the lattice
    assert torch.equal(frame, lattice.quantize_frame(y.double()))
    with pytest.raises(InputError, match="beyond"):
        lattice.quantize_frame(torch.full((1, lattice.dim), 1e20))


@pytest.mark.parametrize("name", NAMES)
def test_geometry_unit_volume_and_triangular_coding_basis(name):
    lattice = get(name)
    assert abs(abs(np.linalg.det(lattice.generator)) - 1.0) < 1e-9
    basis = lattice.coding_basis
    assert np.array_equal(basis, lattice.generator.T)
    assert np.all(np.triu(basis, 1) == 0)
    assert np.all(np.diag(basis) > 0)
    assert np.allclose(lattice.coding_pivots, np.diag(basis))
    assert abs(lattice.nsm - TEXTBOOK_NSM["z" if name.startswith("z") else name]) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_phases(name):
    lattice = get(name)
    k = torch.from_numpy(np.random.default_rng(5).integers(-20, 21, size=(4_000, lattice.dim)))
    y = lattice.from_integer(k)
    offsets = lattice.offsets(k)
    pivots = lattice.coding_pivots
    assert torch.allclose(y, offsets + torch.from_numpy(pivots) * k.double(), rtol=0, atol=1e-9)
    index = lattice.phase_index(k)
    for i, phases in enumerate(lattice.phases):
        assert phases[0] == 0.0 and np.all(np.diff(phases) > 0) and phases[-1] < pivots[i]
        got = index[:, i]
        assert got.min() >= 0 and got.max() < len(phases)
        assert len(torch.unique(got)) == len(phases)  # every phase occurs
        rest = (offsets[:, i] - torch.from_numpy(phases)[got]) / pivots[i]
        assert torch.allclose(rest, torch.round(rest), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_frame_period_is_the_least_multiple_of_the_axes_in_the_lattice(name):
    """m · e_j is a lattice point (the nearest point to itself) for m = frame_period and
    every axis j; for every smaller m some axis misses (E8: 2 in real units, 4 frame units)."""
    lattice = get(name)
    m, unit = lattice.frame_period, torch.from_numpy(lattice.frame_unit)

    def on_lattice(k: int) -> bool:
        axes = k * torch.eye(lattice.dim, dtype=torch.float64) * unit
        return torch.equal(lattice.quantize_frame(axes), k * torch.eye(lattice.dim, dtype=torch.int64))

    assert on_lattice(m) and not any(on_lattice(k) for k in range(1, m))
    assert m == {"z": 1, "d4": 2, "e8": 4, "leech": 8}.get(name[0] if name.startswith("z") else name, m)


def test_leech_and_e8_coding_pivots_match_the_design():
    """DESIGN.md §2: E8 diag (½,1,…,1,2); Λ24 pivots (1, 2×11, 4×11, 8)/√8, ≤ 8 phases."""
    assert np.allclose(get("e8").coding_pivots, [0.5, 1, 1, 1, 1, 1, 1, 2])
    leech = get("leech")
    frame = np.sort(np.rint(leech.coding_pivots * np.sqrt(8)).astype(int))
    assert np.array_equal(frame, [1] + [2] * 11 + [4] * 11 + [8])
    assert max(len(p) for p in leech.phases) <= 8


@pytest.mark.parametrize("name", ["z8", "e8", "leech"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_quantize_blocks(name, axis):
    lattice = get(name)
    n = lattice.dim
    y = torch.randn(5, 3 * n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if axis == 0:
        y = y.T.contiguous()  # [records, channels]: lattice across records
    q = lattice.quantize_blocks(y, axis=axis)
    assert q.shape == y.shape
    moved = torch.movedim(y, axis, -1)
    expect = lattice.quantize(moved.reshape(*moved.shape[:-1], 3, n)).reshape(moved.shape)
    assert torch.equal(q, torch.movedim(expect, -1, axis))
    with pytest.raises(ValueError):
        lattice.quantize_blocks(torch.zeros(2, n + 1), axis=-1)


@pytest.mark.parametrize("name", NAMES)
def test_shapes(name):
    lattice = get(name)
    n = lattice.dim
    assert lattice.quantize(torch.zeros(0, n)).shape == (0, n)
    assert lattice.quantize(torch.randn(2, 3, n)).shape == (2, 3, n)
    with pytest.raises(ValueError):
        lattice.quantize(torch.zeros(3, n + 1))


@pytest.mark.parametrize("name", NAMES)
def test_measured_nsm(name):
    lattice = get(name)
    generator = torch.Generator().manual_seed(11)
    u = torch.cat([lattice.sample_voronoi(20_000, generator=generator) for _ in range(10)])
    assert torch.equal(lattice.quantize(u), torch.zeros_like(u))  # inside the cell of 0
    nsm = (u**2).sum(-1).mean().item() / lattice.dim
    assert abs(nsm / lattice.nsm - 1) < 0.01, f"{name}: measured {nsm:.6f}, textbook {lattice.nsm}"


@pytest.mark.parametrize("name, count", [("a2", 6), ("d4", 24), ("d4*", 24), ("e8", 240), ("bw16", 4320)])
def test_minimal_vector_counts(name, count):
    lattice = get(name)
    vectors = minimal_vectors(lattice)
    assert len(vectors) == count
    y = torch.tensor(vectors)
    assert torch.equal(lattice.quantize(y), y)
    # Just inside the cell of 0 / of the vector itself on either side of the midpoint.
    assert torch.equal(lattice.quantize(0.499 * y), torch.zeros_like(y))
    assert torch.equal(lattice.quantize(0.501 * y), y)


def test_leech_minimal_vectors_via_decoder():
    """196,560 minimal vectors of norm 4 (enumerated); the decoder maps each to itself."""
    lattice = get("leech")
    vectors = torch.tensor(minimal_vectors(lattice))
    assert len(vectors) == 196_560
    assert torch.allclose((vectors**2).sum(-1), torch.tensor(4.0, dtype=torch.float64))
    assert torch.equal(lattice.quantize(vectors), vectors)
    assert torch.equal(lattice.quantize(0.499 * vectors[::7]), torch.zeros_like(vectors[::7]))


def test_leech_non_finite_rows_come_back_nan():
    lattice = get("leech")
    y = torch.randn(4, 24, dtype=torch.float64)
    y[1, 3], y[2, 0] = float("nan"), float("inf")
    q = lattice.quantize(y)
    assert torch.isnan(q[1:3]).all()
    assert torch.equal(q[[0, 3]], lattice.quantize(y[[0, 3]]))
