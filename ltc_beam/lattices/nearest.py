"""Vectorised nearest-point primitives in a lattice's integer frame (torch, any device).

Points are float tensors ``[..., n]`` holding integer frame coordinates. ``weights`` are
per-coordinate squared scales (the frame may stretch coordinates); distances are
``sum(weights * (u - x)**2)``. Ties are broken deterministically: ``torch.round`` rounds
half to even, every ``argmin`` takes the first minimum, and a later coset replaces an
earlier one only when strictly closer.
"""

from __future__ import annotations

import torch

FEW_COSETS = 64  # up to this many cosets are decoded one after the other (no big temporaries)


def nearest_scaled_dn(
    u: torch.Tensor, step: float, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest point of ``step * D_n`` (integer vectors with even sum, scaled) and its cost.

    Round every coordinate; when the sum is odd, move the coordinate that costs least to
    its other neighbour (Conway & Sloane). The cost is in units of ``step**2``.
    """
    v = u if step == 1 else u / step
    z = torch.round(v)
    r = v - z
    extra = 1.0 - 2.0 * r.abs()
    if weights is not None:
        extra = extra * weights
    worst = torch.argmin(extra, dim=-1, keepdim=True)
    odd = torch.remainder(z.sum(-1, keepdim=True), 2.0)
    move = torch.arange(u.shape[-1], device=u.device) == worst
    z = z + move * odd * torch.where(r >= 0, 1.0, -1.0).to(u.dtype)
    d = (v - z) ** 2
    if weights is not None:
        d = d * weights
    return z * step, d.sum(-1)


def nearest_in_cosets(
    u: torch.Tensor,
    representatives: torch.Tensor,
    step: float,
    weights: torch.Tensor | None = None,
    chunk: int = 1 << 22,
) -> torch.Tensor:
    """Nearest point of the union of cosets ``representatives[k] + step * D_n`` (exhaustive)."""
    reps = representatives.to(device=u.device, dtype=u.dtype)
    if reps.shape[0] <= FEW_COSETS:
        return _few_cosets(u, reps, step, weights)
    return _many_cosets(u, reps, step, weights, chunk)


def _few_cosets(u, reps, step, weights) -> torch.Tensor:
    best, best_cost = None, None
    for rep in reps:
        x, cost = nearest_scaled_dn(u - rep, step, weights)
        x = x + rep
        if best is None:
            best, best_cost = x, cost
            continue
        closer = cost < best_cost
        best = torch.where(closer.unsqueeze(-1), x, best)
        best_cost = torch.minimum(cost, best_cost)
    return best


def _many_cosets(u, reps, step, weights, chunk) -> torch.Tensor:
    shape = u.shape
    flat = u.reshape(-1, shape[-1])
    k, n = reps.shape
    rows = max(1, chunk // (k * n))
    out = torch.empty_like(flat)
    for start in range(0, flat.shape[0], rows):
        part = flat[start : start + rows]
        x, cost = nearest_scaled_dn(part.unsqueeze(1) - reps, step, weights)  # [b, k, n]
        best = torch.argmin(cost, dim=1)
        pick = torch.arange(part.shape[0], device=u.device)
        out[start : start + rows] = x[pick, best] + reps[best]
    return out.reshape(shape)


def nearest_code_union(u: torch.Tensor, codewords: torch.Tensor) -> torch.Tensor:
    """Nearest point of ``∪_c (c + 2·D_n)`` for binary codewords ``c`` (rows of 0/1).

    Soft-decision decoding in one pass: per coordinate and bit, the nearest point of
    ``bit + 2Z`` with its cost, parity and the extra cost of the other-parity neighbour;
    a codeword's cost is a sum (one matrix product), its parity another, and an odd
    parity is repaired at the coordinate that costs least. Exact; ties go to the first
    codeword and the first coordinate.
    """
    shape = u.shape
    flat = u.reshape(-1, shape[-1])
    code = codewords.to(device=u.device, dtype=u.dtype)  # [K, n]
    t0, t1 = flat / 2, (flat - 1) / 2
    z0, z1 = torch.round(t0), torch.round(t1)
    r0, r1 = t0 - z0, t1 - z1
    d0, d1 = r0 * r0, r1 * r1
    p0, p1 = torch.remainder(z0, 2.0), torch.remainder(z1, 2.0)
    f0, f1 = 1.0 - 2.0 * r0.abs(), 1.0 - 2.0 * r1.abs()
    cost = d0.sum(-1, keepdim=True) + (d1 - d0) @ code.T  # [B, K]
    parity = torch.remainder(p0.sum(-1, keepdim=True) + (p1 - p0) @ code.T, 2.0)
    flips = f0.unsqueeze(1) + code * (f1 - f0).unsqueeze(1)  # [B, K, n]
    flip_cost, flip_at = flips.min(-1)
    best = torch.argmin(cost + parity * flip_cost, dim=-1)  # [B]
    bits = code[best]  # [B, n]
    z = torch.where(bits > 0, z1, z0)
    r = torch.where(bits > 0, r1, r0)
    pick = torch.arange(len(flat), device=u.device)
    odd = parity[pick, best].unsqueeze(-1)
    at = flip_at[pick, best].unsqueeze(-1)
    move = torch.arange(shape[-1], device=u.device) == at
    z = z + move * odd * torch.where(r >= 0, 1.0, -1.0).to(u.dtype)
    return (bits + 2 * z).reshape(shape)
