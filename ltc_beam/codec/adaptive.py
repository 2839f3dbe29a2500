"""Forward-adaptive scale classes: the entropy model follows the stream's local energy.

Telemetry is not stationary (a sensor at rest, then moving), and one static table per
(channel, coordinate, phase) codes quiet and busy stretches with the same pmf. The encoder
cuts the lattice points into *segments* of ``rows`` consecutive latent rows and gives each
segment a class ``k``: class ``k`` has its own tables (the density scaled by ``2 ** ((k -
REFERENCE_CLASS) / 2)``, fitted to the training symbols of that class). The encoder starts
from the class whose scale matches the segment's energy relative to the training average of
every channel, and keeps whichever of it and the ``NEIGHBOURS`` classes on either side codes
the segment's points and its class symbol in the fewest bits (at low rate most coordinates
are zero, and their energy says little about the best table: Daphnet at 10 dB, 1 % fewer
bits than the energy rule alone). The class of every segment is coded first, with one table
of its own, so the decoder knows each point's tables before it needs them. The choice is the
encoder's alone (the decoder reads it), so it may change without breaking old streams.

Segments hold at least ``SEGMENT_VALUES[i]`` latent values in whole latent rows (in block
mode also one lattice point's rows); the codec keeps the size whose tables code its training
and validation splits shortest (:meth:`ltc_beam.codec.codec.Codec._segment_size`). In block
mode a lattice point runs down ``n`` rows of one channel, and a segment boundary may cut it:
each coordinate then takes the class of its own row's segment (the decoder knows every
class before the points). Until session 32 block-mode segments were whole points (8 rows
for ``e8``, 24 for ``leech``). Where the amplitude changes within a point's rows, cutting
them pays: ``e8`` block, window 1, amplitude switching every 4 records, about 12 % fewer
bits at equal SNR. BasicMotions' training split codes shortest with whole points (its test
split would take about 1 % fewer bits with 2-row segments, ``e8`` block T=4 at 2 and 3.5
bits/value). Codecs whose segments cut points are codec format version 4, which earlier
readers refuse. Side
information: at most ``log2(CLASS_COUNT)`` bits per segment (< 0.05 bit per latent value,
less once entropy-coded with the class table fitted to the training classes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ltc_beam.codec.layout import places

CLASS_COUNT = 9
REFERENCE_CLASS = 6  # scale 1; classes span scales 1/8 … 2 in steps of √2
NEIGHBOURS = 2  # classes tried on either side of the energy rule's (1: up to 7 % more bits where the tables were fitted with 2; 3 or more: as 2)
SEGMENT_VALUES = (1, 64, 128)  # least latent values per segment, the sizes a codec chooses from (1: one row)


def class_scales() -> np.ndarray:
    """Scale factor of the density for each class."""
    return 2.0 ** ((np.arange(CLASS_COUNT) - REFERENCE_CLASS) / 2.0)


def segment_sizes(mode: str, lattice_dim: int, latent_dim: int) -> list[int]:
    """Rows per segment a codec chooses from: each of ``SEGMENT_VALUES`` in whole latent rows
    and, in block mode, one lattice point's ``lattice_dim`` rows; distinct, in order."""
    rows = [-(-values // latent_dim) for values in SEGMENT_VALUES] + ([lattice_dim] if mode == "block" else [])
    return sorted(set(rows))


@dataclass(frozen=True)
class ScaleClasses:
    """How a codec assigns segments to classes (all of it stored in the codec manifest)."""

    mode: str
    lattice_dim: int
    latent_dim: int
    rows: int  # latent rows per segment
    reference: np.ndarray  # [latent_dim] mean squared latent coordinate per channel (training)
    table: int  # index of the class-symbol table

    def to_dict(self) -> dict:
        return {"segment_rows": self.rows, "reference": [float(r) for r in self.reference], "table": self.table,
                "count": CLASS_COUNT, "reference_class": REFERENCE_CLASS}

    @classmethod
    def from_dict(cls, d: dict, mode: str, lattice_dim: int, latent_dim: int) -> "ScaleClasses":
        reference = np.asarray(d["reference"], dtype=np.float64)
        if (d.get("count"), d.get("reference_class")) != (CLASS_COUNT, REFERENCE_CLASS):
            raise ValueError(f"scale classes {d.get('count')}/{d.get('reference_class')} are not supported")
        if reference.shape != (latent_dim,) or int(d["segment_rows"]) < 1:
            raise ValueError("scale classes do not fit the codec's latent size")
        return cls(mode, lattice_dim, latent_dim, int(d["segment_rows"]), reference, int(d["table"]))

    @classmethod
    def fit(cls, latents: np.ndarray, channels: np.ndarray, mode: str, lattice_dim: int, latent_dim: int, table: int) -> list["ScaleClasses"]:
        """Reference energies from the training lattice points ``latents[P, n]`` of ``channels[P, n]``;
        one ``ScaleClasses`` for each segment size of :func:`segment_sizes`."""
        sq = np.bincount(channels.reshape(-1), weights=latents.reshape(-1) ** 2, minlength=latent_dim)
        count = np.bincount(channels.reshape(-1), minlength=latent_dim)
        reference = np.where(count > 0, sq / np.maximum(count, 1), 1.0)
        reference = np.where(reference > 0, reference, 1.0)
        return [cls(mode, lattice_dim, latent_dim, r, reference, table) for r in segment_sizes(mode, lattice_dim, latent_dim)]

    @property
    def splits_points(self) -> bool:
        """Whether a segment boundary may cut a lattice point (block mode, segments that are
        not whole points): codec format version 4."""
        return self.mode == "block" and self.rows % self.lattice_dim != 0

    def segments(self, rows: int) -> int:
        return -(-rows // self.rows)

    def symbol_segments(self, rows) -> np.ndarray:
        """Segment of every coordinate ``[P, n]`` of the lattice points of an array of
        ``rows`` latent rows (coding layout), or of arrays of ``rows[i]`` rows each, one
        after another (each counted from 0): its latent row's."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        n = self.lattice_dim
        if self.mode == "block":
            per_channel = rows // n  # point c * per_channel + j covers rows j*n … j*n+n-1
            owner, index = places(per_channel * self.latent_dim)
            return (((index % per_channel[owner]) * n)[:, None] + np.arange(n)) // self.rows
        per_row = self.latent_dim // n
        return np.repeat((places(rows * per_row)[1] // per_row // self.rows)[:, None], n, axis=1)

    def nearest(self, latents: np.ndarray, channels: np.ndarray, segment: np.ndarray, segments: int) -> np.ndarray:
        """Class of each segment of the coordinates of lattice points ``latents[P, n]``
        (``segment[P, n]``) by energy: the scale nearest (in log) to the segment's RMS
        relative to the training reference."""
        energy = latents**2 / self.reference[channels]
        total = np.bincount(segment.reshape(-1), weights=energy.reshape(-1), minlength=segments)
        count = np.bincount(segment.reshape(-1), minlength=segments)
        mean = total / np.maximum(count, 1)
        with np.errstate(divide="ignore"):
            k = np.rint(np.log2(mean)) + REFERENCE_CLASS
        return np.clip(np.where(mean > 0, k, 0), 0, CLASS_COUNT - 1).astype(np.int64)

    def choose(
        self, latents: np.ndarray, channels: np.ndarray, segment: np.ndarray, segments: int,
        bits_under: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Class of each segment: of :meth:`nearest`'s and the ``NEIGHBOURS`` on either side,
        the one of fewest bits, ``bits_under(classes)`` giving each segment's bits (points and
        class symbol) under the classes ``classes[segments]``; ties go to the energy rule's."""
        centre = best = self.nearest(latents, channels, segment, segments)
        fewest = bits_under(best)
        for step in range(1, NEIGHBOURS + 1):
            for k in (centre - step, centre + step):
                k = np.clip(k, 0, CLASS_COUNT - 1)
                bits = bits_under(k)
                better = bits < fewest
                best, fewest = np.where(better, k, best), np.where(better, bits, fewest)
        return best
