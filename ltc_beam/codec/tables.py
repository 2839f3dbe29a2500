"""Integer coding tables from a trained latent density, one per (channel, coordinate, phase).

Built once at export in float64 on the CPU; the codec artifact stores the integers, so
encoder and decoder never recompute them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ltc_beam.codec.density import LogisticMixtureDensity
from ltc_beam.entropy import width_groups
from ltc_beam.lattices import Lattice

TAIL_MASS = 1e-7  # density mass left outside each table's range, per side (coded by escape)
MAX_SYMBOLS = 1 << 15
#: Most entries of one codec's tables, which are stored as wide as the widest: past it the
#: widest tables are cut to ``symbol_cap`` symbols about their middle, and the symbols
#: beyond escape (records of 1,000 values with one low-rank direction: 17,000 tables of
#: 32,769 symbols, 2 GB each as integers, and the training ran out of memory).
MAX_TABLE_ENTRIES = 1 << 26
#: Fitted tables smooth their training counts with a kernel of Silverman's rule-of-thumb
#: bandwidth: this · min(std, IQR / 1.34) · n^(-1/5) (:func:`kernel_smoothed`) ...
BANDWIDTH_FACTOR = 0.9
#: ... unless it is below this (frame units): a histogram that is a spike at 0 (low rate) stays as it is.
LEAST_BANDWIDTH = 0.1


def symbol_cap(tables: int) -> int:
    """Most symbols per table for a codec of ``tables`` tables (``MAX_SYMBOLS`` for a few
    thousand tables; at least 256: 8 bits a latent value)."""
    return int(min(MAX_SYMBOLS, max(256, MAX_TABLE_ENTRIES // max(tables, 1))))


def table_count(lattice: Lattice, mode: str, latent_dim: int, classes: int = 1) -> int:
    """Tables :func:`box_tables` makes (before identical ones are shared)."""
    per_class = sum(len(chans) * len(lattice.phases[i]) for i, chans in enumerate(coordinate_channels(mode, latent_dim, lattice.dim)))
    return classes * per_class


def coordinate_channels(mode: str, latent_dim: int, n: int) -> list[np.ndarray]:
    """For each lattice coordinate i, the latent channels that coordinate ever carries."""
    if mode == "block":
        return [np.arange(latent_dim)] * n
    return [np.arange(i, latent_dim, n) for i in range(n)]


@torch.no_grad()
def box_tables(
    density: LogisticMixtureDensity, lattice: Lattice, mode: str, scales: np.ndarray = np.ones(1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, TableLayout]:
    """Box pmfs ``[T, K]`` (float64), their first symbols ``low[T]``, ``base[class, channel,
    coordinate]`` and the tables' :class:`TableLayout` (for :func:`blend_counts`).

    Table ``base[k, c, i] + phase`` codes the symbol of coordinate i of a point whose latent
    channel is c, given the phase of that coordinate (-1: the pair never occurs), under
    the density scaled by ``scales[k]`` (one class, scale 1, by default). Rows sum to
    less than 1 by the tail mass left to the escape symbol.

    Tables of one *group* (class, channel, frame unit) code the same frame coordinate
    distribution: in block mode the n coordinates of a point are n consecutive rows of one
    channel, and the lattices here are symmetric under permutations of coordinates of equal
    frame unit, so those coordinates share one marginal; each table is that marginal on
    the coset of its phase (frame value ``pivot · symbol + remainder``).
    """
    density = copy.deepcopy(density).to("cpu", torch.float64)
    channels = density.channels
    n = lattice.dim
    lo_q = density.quantile(TAIL_MASS).numpy()
    hi_q = density.quantile(1 - TAIL_MASS).numpy()
    pivots = lattice.coding_pivots
    base = np.full((len(scales), channels, n), -1, dtype=np.int64)
    rows: list[tuple[float, int, int, float, int, int]] = []  # (scale, channel, coordinate, phase value, low, count)
    for k, scale in enumerate(scales):
        for i, chans in enumerate(coordinate_channels(mode, channels, n)):
            w = pivots[i]
            for c in chans:
                base[k, c, i] = len(rows)
                for phi in lattice.phases[i]:
                    low = int(np.floor((scale * lo_q[c] - phi) / w))
                    high = int(np.ceil((scale * hi_q[c] - phi) / w))
                    rows.append((float(scale), int(c), i, float(phi), low, high - low + 1))
    cap = symbol_cap(len(rows))
    rows = [r if r[5] <= cap else r[:4] + (r[4] + (r[5] - cap) // 2, cap) for r in rows]  # cut about the middle
    unit = lattice.frame_unit
    frame_pivots = np.rint(pivots / unit).astype(np.int64)
    groups: dict[tuple, int] = {}
    layout = TableLayout(
        group=np.array([groups.setdefault((r[0], r[1], float(unit[r[2]])), len(groups)) for r in rows], dtype=np.int64),
        pivot=np.array([frame_pivots[r[2]] for r in rows], dtype=np.int64),
        remainder=np.array([round(r[3] / unit[r[2]]) for r in rows], dtype=np.int64),
        count=np.array([r[5] for r in rows], dtype=np.int64),
        smooth=np.ones(len(rows), bool),
        period=lattice.frame_period,
    )
    pmf = _box_pmfs(density, rows, pivots)
    low = np.array([r[4] for r in rows], dtype=np.int64)
    return pmf, low, base, layout


def _box_pmfs(density: LogisticMixtureDensity, rows: list[tuple], pivots: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """``[T, K]`` box pmfs of ``rows`` (scale, channel, coordinate, phase, low, count), the
    rows evaluated together in batches of about ``batch`` symbols: a torch call per table
    cost milliseconds each on a busy machine (thousands of tables per codec)."""
    pmf = np.zeros((len(rows), max(r[5] for r in rows)))
    start = 0
    while start < len(rows):
        stop, size = start, 0
        while stop < len(rows) and (stop == start or size + rows[stop][5] <= batch):
            size += rows[stop][5]
            stop += 1
        part = rows[start:stop]
        counts = np.array([r[5] for r in part])
        table = np.repeat(np.arange(len(part)), counts)
        symbol = np.arange(size) - np.repeat(np.cumsum(counts) - counts, counts)
        scale, channel, coord, phase, low = (np.array([r[k] for r in part])[table] for k in range(5))
        # the density of scale·Y at y is the density of Y at y / scale (box widths scale too)
        centres = (phase + pivots[coord] * (low + symbol)) / scale
        prob = density.channel_box_probability(
            torch.as_tensor(channel), torch.as_tensor(centres, dtype=torch.float64), torch.as_tensor(pivots[coord] / scale)
        )
        pmf[start + table, symbol] = prob.clamp_min(0).numpy()
        start = stop
    return pmf


def blend_counts(
    pmf: np.ndarray, low: np.ndarray, symbols: np.ndarray, tables: np.ndarray, prior_weights: Sequence[float], layout: TableLayout
) -> Iterator[np.ndarray]:
    """Empirical conditional pmfs: symbol counts of the training data, smoothed by the box pmf.

    ``(counts + w · box) / (n + w)`` per table, for each ``w`` of ``prior_weights`` in turn
    (the counts are taken once); the box pmf is the prior worth ``w`` observations. A table's
    counts are read from its group's histogram of frame values (every coordinate and phase
    of the group contributes), kernel-smoothed (:func:`kernel_smoothed`), restricted to the
    table's coset: up to n × phases more observations per table in block mode. Measured on
    i.i.d. Gaussian (Λ24, block mode, 1 bit/value), with per-table counts: the box pmf codes
    0.021 bit/value more than these tables, which sit within 0.01 bit of the Voronoi entropy.
    """
    counts = layout.pooled_counts(low, symbols, tables, pmf.shape[1])
    seen = counts.sum(axis=1)
    groups = width_groups(layout.count, pmf.shape[1])
    for weight in prior_weights:
        # within each table's in-range symbols only: past them counts and box pmf are 0, and
        # tables as wide as the widest are mostly that (a 28-column codec: 1,393 tables of
        # 19,838 symbols, 291 in range in the median)
        blended = np.zeros_like(pmf)
        for rows, width in groups:
            blended[rows, :width] = (counts[rows, :width] + weight * pmf[rows, :width]) / (seen[rows] + weight)[:, None]
        yield blended


@dataclass(frozen=True)
class TableLayout:
    """Per table: its group, and how its symbols map to frame values of that group."""

    group: np.ndarray  # [T] tables of one group code the same frame-value distribution
    pivot: np.ndarray  # [T] frame value = pivot · symbol + remainder
    remainder: np.ndarray  # [T]
    count: np.ndarray  # [T] in-range symbols of each table
    smooth: np.ndarray  # [T] bool: the table's group histogram is a density's, smoothed (the lattice tables)
    period: int = 1  # the lattice's frame period (:attr:`~ltc_beam.lattices.base.Lattice.frame_period`)

    def append(self, count: int) -> "TableLayout":
        """The layout with one more table in a group of its own (pivot 1, remainder 0)."""
        return TableLayout(
            np.append(self.group, self.group.max() + 1), np.append(self.pivot, 1), np.append(self.remainder, 0), np.append(self.count, count),
            np.append(self.smooth, False), self.period,
        )

    def pooled_counts(self, low: np.ndarray, symbols: np.ndarray, tables: np.ndarray, width: int) -> np.ndarray:
        """``[T, width]`` counts: each table's symbols as seen in its group's histogram, that
        histogram kernel-smoothed where the layout says (:func:`kernel_smoothed`).

        Histograms and lookups cover each group's and each table's own range only (tables are
        as wide as the widest, mostly padding: a 384-channel codec has 7,000 tables of 2,000
        entries, of which 24 on average are in range)."""
        first = self.pivot * low + self.remainder  # frame value of each table's symbol 0
        last = first + self.pivot * (self.count - 1)
        groups = int(self.group.max()) + 1
        origin = np.full(groups, np.iinfo(np.int64).max)
        np.minimum.at(origin, self.group, first)
        top = np.full(groups, np.iinfo(np.int64).min)
        np.maximum.at(top, self.group, last)
        span = top - origin + 1
        start = np.concatenate([[0], np.cumsum(span)[:-1]])  # each group's histogram in one flat array
        g = self.group[tables]
        at = self.pivot[tables] * symbols + self.remainder[tables] - origin[g]
        ok = (at >= 0) & (at < span[g])
        histogram = np.bincount(start[g[ok]] + at[ok], minlength=int(span.sum())).astype(np.float64)
        histogram = kernel_smoothed(histogram, start, span, np.unique(self.group[self.smooth]), self.period)
        count = np.minimum(self.count, width)
        table = np.repeat(np.arange(len(count)), count)
        j = np.arange(table.size) - np.repeat(np.cumsum(count) - count, count)
        where = first[table] + self.pivot[table] * j - origin[self.group[table]]
        inside = (where >= 0) & (where < span[self.group[table]])
        out = np.zeros((len(count), width))
        out[table[inside], j[inside]] = histogram[start[self.group[table[inside]]] + where[inside]]
        return out


def kernel_smoothed(histogram: np.ndarray, start: np.ndarray, span: np.ndarray, groups: np.ndarray, period: int = 1) -> np.ndarray:
    """``histogram`` (the groups' histograms of frame values, one after another from
    ``start``, ``span`` long) with those of ``groups`` each smoothed by a Gaussian kernel of
    Silverman's bandwidth for its own counts: a kernel density estimate of the group's
    marginal, sampled at its frame values. The raw counts are noisy where a table spreads a
    few hundred symbols over dozens of values, and more so for lattices of a finer frame
    grid (E8's half-integers hold half the counts per value of Z's). Values of each remainder
    modulo the lattice's ``period`` keep their own total: their share follows the lattice's
    cosets, not the density (E8 in vector mode, a channel whose partner channels are quiet:
    even frame values 3x as frequent as odd ones; smoothed across them, fresh data took 1.1 %
    more bits), so each remainder's counts are scaled to one before the convolution, which
    shares the shape, and back after it. Same trained models, test splits at equal SNR:
    BasicMotions e8 block T=4 −1.2 / −2.7 / −5.0 / −3.3 % at 1 / 2 / 3.5 / 4.5 bits/value,
    z1 block −3.7 % (3.5), leech block −2.6 % (2), e8 vector T=8 −2.7 % (3.5); Daphnet −0.6 to
    −0.9 %."""
    out = histogram.copy()
    for g in groups:
        part = histogram[start[g] : start[g] + span[g]]
        n = part.sum()
        if n < 2:
            continue
        x = np.arange(part.size)
        mean = (part * x).sum() / n
        sd = np.sqrt((part * (x - mean) ** 2).sum() / n)
        quartiles = x[np.minimum(np.searchsorted(np.cumsum(part) / n, [0.25, 0.75]), part.size - 1)]
        width = BANDWIDTH_FACTOR * min(sd, (quartiles[1] - quartiles[0]) / 1.34) * n**-0.2
        if width < LEAST_BANDWIDTH:
            continue
        reach = int(np.ceil(4 * width))
        kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / width) ** 2)
        remainder = x % period
        mass = np.bincount(remainder, weights=part, minlength=period)
        shapes = part / np.where(mass > 0, mass, 1.0)[remainder]  # each remainder's values sum to 1
        smooth = convolved(np.pad(shapes, reach), kernel)
        scale = mass / np.maximum(np.bincount(remainder, weights=smooth, minlength=period), np.finfo(float).tiny)
        out[start[g] : start[g] + span[g]] = smooth * scale[remainder]  # each remainder back to its own mass
    return out


#: Products (signal length x kernel length) beyond which :func:`convolved` goes by FFT.
DIRECT_CONVOLUTION_WORK = 1 << 22


def convolved(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``np.convolve(signal, kernel, mode="valid")`` of a non-negative ``signal`` and
    ``kernel``; by FFT where the direct sum would take long (clipped at 0: its rounding leaves
    about 1e-16 of the peak where the sum is 0). Wide tables of fine steps spread a group's
    histogram over a million frame values and a kernel over thousands: 585 s of a 12-minute
    ``train`` (a cycling ride's 7 channels, asked 4 bits/value) went to 328 direct sums."""
    if signal.size * kernel.size <= DIRECT_CONVOLUTION_WORK:
        return np.convolve(signal, kernel, mode="valid")
    size = signal.size + kernel.size - 1
    full = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(kernel, size), size)
    return np.maximum(full[kernel.size - 1 : signal.size], 0.0)


def share_identical_runs(
    freqs: np.ndarray, low: np.ndarray, base: np.ndarray, runs: np.ndarray, keep: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """Store each distinct run of tables once: ``(freqs, low, base, keep)`` remapped.

    ``base[..., i] + phase`` (phase < ``runs[i]``) indexes the tables of lattice coordinate
    i; ``keep`` is one more table to retain (the class-symbol table). Runs with identical
    rows (and first symbols) code identically, so they can share storage: in block mode the
    coordinates of equal pivot of one channel share a marginal, and their tables repeat.
    Decoding is unchanged; only the artifact shrinks.
    """
    order: dict[bytes, int] = {}
    rows: list[int] = []
    new_base = np.full_like(base, -1)
    for idx in zip(*np.nonzero(base >= 0)):
        start, count = int(base[idx]), int(runs[idx[-1]])
        run = range(start, start + count)
        key = freqs[start : start + count].tobytes() + low[start : start + count].tobytes()
        if key not in order:
            order[key] = len(rows)
            rows.extend(run)
        new_base[idx] = order[key]
    new_keep = None
    if keep is not None:
        new_keep = len(rows)
        rows.append(keep)
    index = np.asarray(rows, dtype=np.int64)
    return freqs[index], low[index], new_base, new_keep
