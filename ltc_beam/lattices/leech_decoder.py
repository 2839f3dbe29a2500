"""Fast exact nearest point of the Leech lattice (vectorised torch, any dtype and device).

Frame (√8 times unit volume): ``x = h·1 + 2c + 4z`` with half ``h`` in {0, 1}, ``c`` a Golay
codeword and ``z`` integer with ``Σz ≡ h (mod 2)``. Golay coordinates follow the MOG
(``4·column + row``): a codeword is a hexacode word ``(s_1..s_6)``, a common column
parity π, and per column one of the two 4-bit columns of score ``s_j`` and parity π —
they are complements, with opposite top bits ``t_j`` — subject to ``Σ t_j ≡ π``.

For a *case* (h, π, hexacode word) each column has four states (t_j, q_j), q_j being the
parity of its z's; its cost is the pattern's rounding cost plus, when q_j differs from the
nearest z's parity, the cheapest single re-rounding in that column. A case asks for
``Σ t_j ≡ π`` and ``Σ q_j ≡ h``: a min-plus problem over Z2×Z2. Start every column at its
best state; the remaining change G is in Z2×Z2, and since any three non-zero elements of
Z2×Z2 contain a zero-sum subsequence (Davenport constant 3) some optimal correction
changes at most two columns. So the exact case cost is ``Σ best + corr(G)`` with
``corr(G) = min(min_j Δ_j(G), min_{j≠k} Δ_j(g) + Δ_k(g'))``, ``{g, g', G}`` the three
non-zero elements.

Decoding all 256 cases exactly is still costly, so the decoder first computes for every
case the lower bound ``Σ best + [G ≠ 0]·min_j (second best − best)_j`` — shared over
column pairs as in a hexacode trellis — evaluates the two cases with the smallest bounds
exactly, and accepts the better one when it beats the third smallest bound *strictly*.
The bound never exceeds the exact cost in floating point (same summation order, all
corrections non-negative), so an accepted answer is optimal; the rare rest (near ties,
Voronoi boundaries) is decoded by evaluating all 256 cases. Either way the chosen case
is the one of lowest index among those of least exact cost, and within a case every
choice takes the first minimum: the answer is a deterministic function of the input,
independent of batch composition and of which path decoded it.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ltc_beam.lattices.codes import _GF4_MUL, hexacode

_OMEGA = 2  # ω in the GF(4) encoding of codes.py
_CANDIDATES = 2  # cases evaluated exactly on the fast path
_CHUNK = 2048  # vectors per chunk (the bound stage holds ~300 floats per vector per tensor)
_FALLBACK_CHUNK = 256


def _tables() -> dict[str, np.ndarray]:
    # Column pattern p = 8·b0 + 4·b1 + 2·b2 + b3, b_r the bit of row r (row 0 = top row).
    bits = np.array([[(p >> (3 - r)) & 1 for r in range(4)] for p in range(16)], dtype=np.int64)
    score = np.array([int(np.bitwise_xor.reduce(np.array([0, 1, 2, 3]) * b)) for b in bits])
    parity = bits.sum(1) % 2
    low = np.zeros((2, 4), dtype=np.int64)  # [π, s] -> the pattern with top bit 0
    for p in range(8):  # patterns 0..7 have b0 = 0
        low[parity[p], score[p]] = p
    # Hexacode words by (δ, x1, x2): column pairs (x1, x1+δ), (x2, x2+δ), (x3, x3+δ) with
    # x3 = x1 + x2 + δω (from f(x) = a x² + b x + c: δ = a + b, x1 = a, x2 = c).
    words = np.zeros((4, 4, 4, 6), dtype=np.int64)
    for d, x1, x2 in itertools.product(range(4), repeat=3):
        x3 = x1 ^ x2 ^ int(_GF4_MUL[d, _OMEGA])
        words[d, x1, x2] = [x1, x1 ^ d, x2, x2 ^ d, x3, x3 ^ d]
    if {tuple(w) for w in words.reshape(-1, 6)} != {tuple(w) for w in hexacode()}:
        raise AssertionError("hexacode parametrisation is wrong")
    pair = np.arange(4)[:, None] * 4 + (np.arange(4)[:, None] ^ np.arange(4)[None, :])  # [x, δ]
    cols = np.arange(6)
    case_columns = np.zeros((2, 2, 4, 4, 4, 6), dtype=np.int64)  # flat index into [2h, 2π, 6, 4s]
    for h, pi in itertools.product(range(2), repeat=2):
        case_columns[h, pi] = ((h * 2 + pi) * 6 + cols) * 4 + words
    # The three non-zero changes c = t + 2q: (single, pair roles) for G = 1, 2, 3 as indices c - 1.
    roles = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]], dtype=np.int64)
    return {
        "bits": bits,
        "low_index": (np.arange(6)[None, :, None] * 16 + low[:, None, :]).reshape(-1),  # [π, col, s]
        "high_index": (np.arange(6)[None, :, None] * 16 + 15 - low[:, None, :]).reshape(-1),
        "low_patterns": low,
        "all_cases": np.arange(256, dtype=np.int64)[:, None],
        "pair_first": pair.T.copy(),  # [δ, x] -> 4x + (x ^ δ)
        "pair_third": np.array(
            [[[4 * w[4] + w[5] for w in row] for row in block] for block in words]
        ),  # [δ, x1, x2]
        "target": np.array([[0, 1], [2, 3]], dtype=np.int64),  # [h, π] -> t + 2q with t = π, q = h
        "case_columns": case_columns.reshape(256, 6),
        "roles": roles,
        "words": words.reshape(64, 6),
    }


_NP = _tables()
_DEVICE_TABLES: dict[torch.device, dict[str, torch.Tensor]] = {}


def _on(device: torch.device) -> dict[str, torch.Tensor]:
    if device not in _DEVICE_TABLES:
        _DEVICE_TABLES[device] = {k: torch.as_tensor(v, device=device) for k, v in _NP.items()}
    return _DEVICE_TABLES[device]


def nearest_leech_frame(u: torch.Tensor) -> torch.Tensor:
    """Nearest Λ24 point to each row of ``u[..., 24]`` in the √8 frame (integer-valued floats)."""
    if not u.is_floating_point():
        raise TypeError("nearest_leech_frame expects a floating-point tensor")
    flat = u.reshape(-1, 24)
    out = torch.empty_like(flat)
    for start in range(0, flat.shape[0], _CHUNK):
        # Batch-last layout: every elementwise op runs over long contiguous rows.
        out[start : start + _CHUNK] = _decode_chunk(flat[start : start + _CHUNK].t().contiguous()).t()
    return out.reshape(u.shape)


# ---------------------------------------------------------------------------------- stages
# Every tensor below is batch-last: ``[..., n]``.
def _rounding(u: torch.Tensor):
    """Per offset o = h + 2b and coordinate: nearest z and residual r, ``[2h, 6col, 4row, 2b, n]``."""
    offsets = torch.tensor([[0.0, 2.0], [1.0, 3.0]], dtype=u.dtype, device=u.device)  # [h, b]
    v = (u.view(1, 6, 4, 1, -1) - offsets.view(2, 1, 1, 2, 1)) * 0.25
    z = torch.round(v)
    return z, v - z


def _column_cases(u: torch.Tensor, tab: dict[str, torch.Tensor]):
    """Per column case (h, π, column, score), each ``[2h, 2π, 6, 4s, n]``, in units of 16:

    the best state's cost, the cost of switching the top bit, the cheapest re-rounding in
    the best and in the other pattern, the best top bit t*, the best state's z parity q*,
    and whether switching the top bit changes the z parity.
    """
    n = u.shape[-1]
    z, r = _rounding(u)
    d = r * r
    f = 1.0 - 2.0 * r.abs()
    sign = 1.0 - 2.0 * torch.remainder(z, 2.0)  # (-1)^z

    def patterns(x, op):  # [2h, 6, 4r, 2b, n] -> [2h, 6 * 16, n] over p = 8b0 + 4b1 + 2b2 + b3
        top = op(x[:, :, 0, :, None], x[:, :, 1, None, :])
        bottom = op(x[:, :, 2, :, None], x[:, :, 3, None, :])
        return op(top.reshape(2, 6, 4, 1, n), bottom.reshape(2, 6, 1, 4, n)).reshape(2, 96, n)

    low = tab["low_index"]
    high = tab["high_index"]
    out = []
    for x, op in ((d, torch.add), (f, torch.minimum), (sign, torch.mul)):
        p = patterns(x, op)
        out.append((p.index_select(1, low).view(2, 2, 6, 4, n), p.index_select(1, high).view(2, 2, 6, 4, n)))
    (d0, d1), (f0, f1), (s0, s1) = out
    t1 = d1 < d0  # ties keep top bit 0
    best = torch.minimum(d0, d1)
    switch = (d1 - d0).abs()
    f_best = torch.where(t1, f1, f0)
    f_other = torch.where(t1, f0, f1)
    q_best = torch.where(t1, s1, s0) < 0
    change = (s0 * s1) < 0  # switching the top bit changes the z parity
    return best, switch, f_best, f_other, t1, q_best, change


def _case_bounds(cc, tab: dict[str, torch.Tensor]) -> torch.Tensor:
    """Lower bound of the exact cost of every case: ``[256, n]`` in case order (h, π, δ, x1, x2)."""
    best, switch, f_best, _, t1, q_best, _ = cc
    n = best.shape[-1]
    gap = torch.minimum(switch, f_best)  # second best state minus best, per column case
    code = t1.to(torch.uint8) + 2 * q_best.to(torch.uint8)  # best state (t, q) as t + 2q

    def trellis(x, op):  # [2h, 2π, 6, 4s, n] -> [2h, 2π, 4δ, 4x1, 4x2, n]
        x = x.reshape(2, 2, 3, 2, 4, n)
        blocks = op(x[:, :, :, 0, :, None], x[:, :, :, 1, None, :]).reshape(2, 2, 3, 16, n)
        first = blocks[:, :, 0][:, :, tab["pair_first"]]  # [2, 2, 4δ, 4x1, n]
        second = blocks[:, :, 1][:, :, tab["pair_first"]]  # [2, 2, 4δ, 4x2, n]
        third = blocks[:, :, 2][:, :, tab["pair_third"]]  # [2, 2, 4δ, 4x1, 4x2, n]
        return op(op(first[:, :, :, :, None], second[:, :, :, None, :]), third)

    total = trellis(best, torch.add)
    least_gap = trellis(gap, torch.minimum)
    state = trellis(code, torch.bitwise_xor)
    wrong = state != tab["target"].to(torch.uint8).view(2, 2, 1, 1, 1, 1)
    return torch.where(wrong, total + least_gap, total).view(256, n)


def _evaluate(cc, cases: torch.Tensor, tab: dict[str, torch.Tensor], config: bool = False):
    """Exact cost of ``cases[K, n]`` (and, with ``config``, each column's change of state)."""
    k, n = cases.shape
    index = tab["case_columns"][cases].permute(0, 2, 1).reshape(k * 6, n)
    best, switch, f_best, f_other, t1, q_best, change = (
        torch.gather(x.reshape(96, n), 0, index).view(k, 6, n) for x in cc
    )
    dtype = best.dtype
    h = torch.div(cases, 128, rounding_mode="floor")
    pi = torch.div(cases, 64, rounding_mode="floor") % 2
    base = ((best[:, 0] + best[:, 1]) + (best[:, 2] + best[:, 3])) + (best[:, 4] + best[:, 5])
    t_wrong = (t1.sum(1) + pi) % 2
    q_wrong = (q_best.sum(1) + h) % 2
    g = t_wrong + 2 * q_wrong  # change still needed, as t + 2q
    a = change.to(dtype)
    # Cost of moving a column from its best state by c = t + 2q, for c = 1, 2, 3.
    delta = torch.stack([switch + a * f_other, f_best, switch + (1.0 - a) * f_other], dim=1)
    roles = tab["roles"][(g - 1).clamp(min=0)].permute(0, 2, 1)  # [K, 3, n]: single, pair X, pair Y
    picked = torch.gather(delta, 1, roles.unsqueeze(2).expand(k, 3, 6, n))
    single_all, x, y = picked.unbind(1)
    single, j_single = single_all.min(1)
    inf = float("inf")
    mx, ix = x.min(1)
    my, iy = y.min(1)
    y_rest, ky = y.scatter(1, ix.unsqueeze(1), inf).min(1)
    x_rest, kx = x.scatter(1, iy.unsqueeze(1), inf).min(1)
    pair_a = mx + y_rest  # X at its argmin, Y elsewhere
    pair_b = x_rest + my  # Y at its argmin, X elsewhere
    pair = torch.minimum(pair_a, pair_b)
    corr = torch.where(g == 0, torch.zeros_like(base), torch.minimum(single, pair))
    cost = base + corr
    if not config:
        return cost
    # Column changes of the optimal configuration of each case (first minima throughout).
    use_single = (g != 0) & (single <= pair)
    use_a = (g != 0) & ~use_single & (pair_a <= pair_b)
    pair_used = (g != 0) & ~use_single
    zero = torch.zeros_like(g)
    changes = torch.zeros(k, 6, n, dtype=torch.int64, device=best.device)
    changes.scatter_(1, j_single.unsqueeze(1), torch.where(use_single, g, zero).unsqueeze(1))
    col_x = torch.where(use_a, ix, kx)
    col_y = torch.where(use_a, ky, iy)
    cx = torch.where(pair_used, roles[:, 1] + 1, zero)
    cy = torch.where(pair_used, roles[:, 2] + 1, zero)
    changes.scatter_add_(1, col_x.unsqueeze(1), cx.unsqueeze(1))
    changes.scatter_add_(1, col_y.unsqueeze(1), cy.unsqueeze(1))
    return cost, changes, t1, change


def _pick(cost: torch.Tensor, cases: torch.Tensor):
    """Least cost, then lowest case index, over the first axis: (cost, case) per vector."""
    least = cost.amin(0, keepdim=True)
    key = torch.where(cost == least, cases, torch.full_like(cases, 1 << 20))
    return least.squeeze(0), key.amin(0)


def _decode_chunk(u: torch.Tensor) -> torch.Tensor:
    """``u[24, n]`` -> nearest points ``[24, n]``."""
    n = u.shape[-1]
    tab = _on(u.device)
    cc = _column_cases(u, tab)
    bounds = _case_bounds(cc, tab)
    first = bounds.argmin(0, keepdim=True)
    bounds.scatter_(0, first, float("inf"))
    second = bounds.argmin(0, keepdim=True)
    bounds.scatter_(0, second, float("inf"))
    third = bounds.amin(0)
    candidates = torch.cat([first, second], 0)
    cost, case = _pick(_evaluate(cc, candidates, tab), candidates)
    unsure = torch.nonzero(~(cost < third)).squeeze(-1)
    if unsure.numel():
        for start in range(0, unsure.numel(), _FALLBACK_CHUNK):
            cols = unsure[start : start + _FALLBACK_CHUNK]
            sub = tuple(x[..., cols] for x in cc)
            all_cases = tab["all_cases"].expand(256, cols.numel())
            case[cols] = _pick(_evaluate(sub, all_cases, tab), all_cases)[1]
    return _build(u, cc, case, tab)


def _build(u: torch.Tensor, cc, case: torch.Tensor, tab: dict[str, torch.Tensor]) -> torch.Tensor:
    """The lattice point of the optimal configuration of ``case`` for each vector: ``[24, n]``."""
    n = u.shape[-1]
    _, changes, t1, change = _evaluate(cc, case.unsqueeze(0), tab, config=True)
    changes, t1, change = changes[0], t1[0], change[0]  # [6, n]
    h = torch.div(case, 128, rounding_mode="floor")
    pi = torch.div(case, 64, rounding_mode="floor") % 2
    scores = tab["words"][case % 64].t()  # [6, n]
    t_change = (changes & 1).bool()
    q_change = (changes >> 1).bool()
    top = t1 ^ t_change
    flip = q_change ^ (t_change & change)  # final z parity differs from the pattern's nearest z
    low = tab["low_patterns"][pi.unsqueeze(0), scores]  # [6, n]
    pattern = torch.where(top, 15 - low, low)
    bits = tab["bits"][pattern].permute(0, 2, 1)  # [6, 4row, n]
    offset = (h + 2 * bits).to(u.dtype)
    v = (u.view(6, 4, n) - offset) * 0.25
    z = torch.round(v)
    r = v - z
    f = 1.0 - 2.0 * r.abs()
    row = f.argmin(1, keepdim=True)  # cheapest re-rounding in each column
    step = torch.where(torch.gather(r, 1, row) >= 0, 1.0, -1.0).to(u.dtype)
    bump = torch.zeros_like(z).scatter_(1, row, step * flip.unsqueeze(1).to(u.dtype))
    return (offset + 4.0 * (z + bump)).reshape(24, n)
