"""Vectorised nearest-point primitives in a lattice's integer frame (torch, any device).

Points are float tensors ``[..., n]`` holding integer frame coordinates. ``weights`` are
per-coordinate squared scales (the frame may stretch coordinates); distances are
``sum(weights * (u - x)**2)``. Ties are broken deterministically: ``torch.round`` rounds
half to even and every ``argmin`` takes the first minimum.
"""

from __future__ import annotations

import torch


def nearest_scaled_dn(
    u: torch.Tensor, step: float, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest point of ``step * D_n`` (integer vectors with even sum, scaled) and its cost."""
    v = u / step
    z = torch.round(v)
    r = v - z
    odd = torch.remainder(z.sum(-1), 2) != 0
    if bool(odd.any()):
        # Re-round the coordinate whose move to the other neighbour costs least.
        direction = torch.where(r >= 0, 1.0, -1.0).to(u.dtype)
        extra = (1.0 - 2.0 * r.abs())
        if weights is not None:
            extra = extra * weights
        worst = torch.argmin(extra, dim=-1, keepdim=True)
        bump = torch.zeros_like(z).scatter_(-1, worst, torch.gather(direction, -1, worst))
        z = torch.where(odd.unsqueeze(-1), z + bump, z)
    x = z * step
    d = (u - x) ** 2
    if weights is not None:
        d = d * weights
    return x, d.sum(-1)


def nearest_in_cosets(
    u: torch.Tensor,
    representatives: torch.Tensor,
    step: float,
    weights: torch.Tensor | None = None,
    chunk: int = 1 << 22,
) -> torch.Tensor:
    """Nearest point of the union of cosets ``representatives[k] + step * D_n``.

    Evaluates every coset (exhaustive, so exact); work is split so that no intermediate
    exceeds ``chunk`` elements.
    """
    shape = u.shape
    flat = u.reshape(-1, shape[-1])
    reps = representatives.to(device=u.device, dtype=u.dtype)
    k, n = reps.shape
    rows = max(1, chunk // (k * n))
    out = torch.empty_like(flat)
    for start in range(0, flat.shape[0], rows):
        part = flat[start : start + rows]
        shifted = part.unsqueeze(1) - reps  # [b, k, n]
        x, cost = nearest_scaled_dn(shifted, step, weights)
        best = torch.argmin(cost, dim=1)
        pick = torch.arange(part.shape[0], device=u.device)
        out[start : start + rows] = x[pick, best] + reps[best]
    return out.reshape(shape)
