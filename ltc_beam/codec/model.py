"""The trainable LTC model: normalisation, transforms, lattice quantizer and exact rate."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ltc_beam import lattices
from ltc_beam.codec.config import CodecConfig
from ltc_beam.codec.density import LogisticMixtureDensity
from ltc_beam.codec.transforms import Transform


@contextlib.contextmanager
def float32_default():
    """Run the block with torch's default dtype float32 (the model's), whatever the caller
    set: under ``torch.set_default_dtype(torch.float64)`` training and loading failed ("mat1
    and mat2 must have the same dtype")."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


#: Monte-Carlo averages over fewer effective samples than this are not trusted.
MIN_EFFECTIVE_SAMPLES = 8.0


@dataclass
class ForwardResult:
    """Outputs of one forward pass over a batch of normalised input vectors."""

    x_hat: torch.Tensor  # reconstruction, normalised units
    y_hat: torch.Tensor  # lattice points (or their proxy) in latent space
    bits: torch.Tensor  # total code length of the batch (exact box pmf)
    mse: torch.Tensor  # mean squared error per value, normalised units


class LtcModel(nn.Module):
    """Analysis transform → lattice → synthesis transform, with a factorised latent density.

    Works on *normalised input vectors* ``[B, window * record_dim]``. In block mode ``B``
    must be a multiple of the lattice dimension: rows ``j*n … j*n+n-1`` form one block.
    """

    def __init__(self, config: CodecConfig, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.config = config
        self.lattice = lattices.get(config.lattice)
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
        self.register_buffer("std", torch.as_tensor(np.asarray(std, dtype=np.float32)))
        hidden = config.hidden if config.transform == "mlp" else 0
        self.analysis = Transform(config.input_dim, config.latent_dim, hidden)
        self.synthesis = Transform(config.latent_dim, config.input_dim, hidden)
        self.density = LogisticMixtureDensity(config.latent_dim, config.components)
        self.register_buffer("pivots", torch.as_tensor(self.lattice.coding_pivots, dtype=torch.float32))

    # -------------------------------------------------------------- normalisation
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Records ``[..., record_dim]`` in data units → z-scores."""
        return (x - self.mean) / self.std

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    # -------------------------------------------------------------- lattice
    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """Exact nearest lattice points of latents ``y[B, latent_dim]``."""
        axis = 0 if self.config.mode == "block" else -1
        return self.lattice.quantize_blocks(y, axis=axis)

    def widths(self, rows: int) -> torch.Tensor:
        """Box width (coding-basis pivot) at every latent position, broadcastable to ``[rows, C]``."""
        n = self.lattice.dim
        if self.config.mode == "block":
            return self.pivots.repeat(rows // n).unsqueeze(1)
        return self.pivots.repeat(self.config.latent_dim // n)

    def bits(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Exact code length (bits) of lattice points ``y_hat`` under the box pmf."""
        p = self.density.box_probability(y_hat, self.widths(y_hat.shape[0]).to(y_hat.dtype))
        return -(torch.log(p.clamp_min(1e-30))).sum() / math.log(2)

    def _voronoi_noise(self, y: torch.Tensor) -> torch.Tensor:
        axis = 0 if self.config.mode == "block" else -1
        moved = torch.movedim(y, axis, -1)
        count = moved.numel() // self.lattice.dim
        u = self.lattice.sample_voronoi(count).to(y.dtype).to(y.device)
        return torch.movedim(u.reshape(moved.shape), -1, axis)

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, proxy: str | None = None) -> ForwardResult:
        y = self.analysis(x)
        proxy = proxy or self.config.proxy
        if self.training and proxy == "noise":
            y_hat = y + self._voronoi_noise(y)
        else:
            y_hat = y + (self.quantize(y.detach()) - y).detach()  # straight-through
        x_hat = self.synthesis(y_hat)
        return ForwardResult(x_hat=x_hat, y_hat=y_hat, bits=self.bits(y_hat), mse=((x - x_hat) ** 2).mean())

    @torch.no_grad()
    def voronoi_bits_estimate(self, y_hat: torch.Tensor, samples: int = 2048) -> tuple[torch.Tensor, int]:
        """The paper's Monte-Carlo rate: −log2 ∫_{V(ŷ)} p(z) dz, averaged over ``samples`` points.

        A diagnostic only (it cannot drive a decoder). Returns the total bits for ``y_hat``
        and how many lattice points' averages rest on fewer than
        :data:`MIN_EFFECTIVE_SAMPLES` effective samples: where a latent density is much
        narrower than the cell (an unused channel), uniform samples of the cell miss its
        mass and the estimate runs to hundreds of bits.
        """
        axis = 0 if self.config.mode == "block" else -1
        n = self.lattice.dim
        pts = torch.movedim(y_hat, axis, -1)
        shape = pts.shape
        groups = pts.reshape(-1, n).double()  # each row one lattice point
        u = self.lattice.sample_voronoi(samples).to(groups.device)  # [S, n]
        total = torch.zeros((), dtype=torch.float64)
        weak = 0
        for start in range(0, groups.shape[0], max(1, 65536 // samples)):
            g = groups[start : start + max(1, 65536 // samples)]
            z = g.unsqueeze(1) + u  # [g, S, n]
            # Back to latent layout to evaluate the per-channel densities.
            dens = self._density_at(z, shape, start, axis)
            total = total - torch.log2(dens.mean(1).clamp_min(1e-300)).sum()
            rel = dens / dens.amax(1, keepdim=True).clamp_min(1e-300)
            ess = rel.sum(1) ** 2 / (rel**2).sum(1).clamp_min(1e-300)
            weak += int((ess < MIN_EFFECTIVE_SAMPLES).sum())
        return total, weak

    def _density_at(self, z: torch.Tensor, shape: torch.Size, start: int, axis: int) -> torch.Tensor:
        """Product density of points ``z[g, S, n]`` whose rows start at group ``start``."""
        n = self.lattice.dim
        g, s, _ = z.shape
        index = torch.arange(start, start + g, device=z.device)
        if axis == -1:  # vector mode: group j of a row covers channels j*n … j*n+n-1
            per_row = shape[-1] // n
            channels = (index % per_row).unsqueeze(1) * n + torch.arange(n, device=z.device)
        else:  # block mode: rows of pts are channels, one group per block
            per_channel = shape[-1] // n
            channels = (index // per_channel).unsqueeze(1).expand(g, n)
        w, mu, sc = self.density._params(torch.float64, self.config.latent_dim)
        w, mu, sc = w[channels], mu[channels], sc[channels]  # [g, n, K]
        t = (z.unsqueeze(-1) - mu.unsqueeze(1)) / sc.unsqueeze(1)  # [g, S, n, K]
        pdf = (w.unsqueeze(1) * torch.sigmoid(t) * torch.sigmoid(-t) / sc.unsqueeze(1)).sum(-1)
        return pdf.prod(-1)
