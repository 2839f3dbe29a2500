"""Per-series scaling: each series' own mean and standard deviation, carried in the stream.

A codec trained with ``normalise="series"`` brings every series (every segment of a stream)
to unit scale with its own statistics before the codec's column normalisation, so a panel
of series whose levels and spreads differ by orders of magnitude (M1 yearly: 2 to 2e7) codes
each series at an SNR of its own, instead of spending the bits on the largest ones. The
statistics travel at the start of the payload (about 4 bytes per column and segment:
:class:`SeriesScales`), and the encoder scales with the values the decoder reads, so both
agree bit for bit. A segment's column with no spread (a stuck sensor, a one-record segment) has std 0
and decodes to its mean exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ltc_beam.codec.config import OUTLIER_FRACTION, OUTLIER_SPREADS
from ltc_beam.bitstream import read_varint, unzigzag, varint, zigzag
from ltc_beam.errors import FormatError

#: A segment's mean is stated to within half this fraction of its std.
MEAN_STEPS = 16
NORMALISATIONS = ("column", "series")


def outlier_mask(x: np.ndarray, least: int = 0, fraction: float = OUTLIER_FRACTION) -> np.ndarray:
    """Values beyond ``OUTLIER_SPREADS`` robust standard deviations of their column's median,
    in columns where at most ``fraction`` of the finite values (or ``least`` values)
    are that far. With ``least``, where most values equal the median (a stuck sensor), the
    few others are the outliers: one 1e12 glitch among 119 equal values would otherwise set
    the scale, as the plain std the column statistics fall back on there."""
    out = np.zeros(x.shape, bool)
    for j in range(x.shape[1]):
        col = x[:, j]
        ok = np.isfinite(col)
        if not ok.any():
            continue
        values = col[ok]
        median = np.median(values)
        spread = 1.4826 * np.median(np.abs(values - median))
        if spread == 0 and least:
            far = values != median
        else:
            spread = spread or values.std()
            far = np.abs(values - median) > OUTLIER_SPREADS * spread if spread > 0 else np.zeros(values.shape, bool)
        if far.mean() <= fraction or far.sum() <= least:
            out[np.flatnonzero(ok)[far], j] = True
    return out


def robust_statistics(x: np.ndarray, least: int = 0, fraction: float = OUTLIER_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of ``x`` ``[N, d]`` over its finite values,
    rare absurd outliers (:func:`outlier_mask`) left out; 0 and 0 for a column with no
    finite value."""
    masked = np.where(np.isfinite(x) & ~outlier_mask(x, least, fraction), x, np.nan)
    counts = np.isfinite(masked).sum(axis=0)
    filled = np.where(np.isfinite(masked), masked, 0.0)
    mean = filled.sum(axis=0) / np.maximum(counts, 1)
    centred = np.where(np.isfinite(masked), masked - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=0) / np.maximum(counts, 1))
    return mean, std


def _bfloat16(std: np.ndarray) -> np.ndarray:
    """float32 stds rounded to the nearest bfloat16 (the upper 16 bits of a float32, 8 bits
    of precision: 0.4 % at most), as those upper bits (uint16)."""
    bits = np.asarray(std, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # to nearest, ties to even
    return np.minimum(rounded, 0x7F7F).astype(np.uint16)  # never past float32's largest finite


def _from_bfloat16(code: np.ndarray) -> np.ndarray:
    return (np.asarray(code, np.uint32) << 16).view(np.float32).astype(np.float64)


@dataclass(frozen=True, eq=False)
class SeriesScales:
    """The mean and std ``[segments, d]`` of each segment of a stream (float64, as the
    stream states them), and the segments' lengths (records).

    Stream layout, per segment and column, in order: the std as bfloat16 (u16, little-endian);
    then, where it is 0, the mean as float32, else the mean as a multiple ``k`` of a
    ``MEAN_STEPS``-th of that std (zigzag LEB128 varint): 4 bytes or so where float32 pairs
    take 8 (M1's yearly series are about 30 values long)."""

    mean: np.ndarray
    std: np.ndarray
    lengths: tuple[int, ...]

    @classmethod
    def of(cls, x: np.ndarray, lengths: tuple[int, ...]) -> "SeriesScales":
        """The statistics of each segment of ``x`` (:func:`robust_statistics`), rounded as
        the stream states them. One absurd glitch counts as rare in a short series too (a
        1e12 among 120 unit values would otherwise make the series' std). A mean more than
        2**50 of its steps from 0 (no float32 series varies that little) is stated exactly
        with a std of 0."""
        bounds = np.cumsum((0,) + tuple(lengths))
        values = np.asarray(x, np.float64)
        mean = np.where(np.isfinite(values[bounds[:-1]]), values[bounds[:-1]], 0.0)  # one-record series: theirs
        std = np.zeros(mean.shape)
        for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
            if b - a > 1:
                mean[i], std[i] = robust_statistics(values[a:b], least=1)
                flat = (std[i] == 0) & np.isfinite(values[a:b]).any(axis=0)
                if flat.any():  # no spread: its middle value itself (a sum or mean loses a zero's sign)
                    part = np.sort(np.where(np.isfinite(values[a:b]), values[a:b], np.inf)[:, flat], axis=0)
                    middle = (np.isfinite(part).sum(axis=0) - 1) // 2
                    mean[i, flat] = part[middle, np.arange(part.shape[1])]
        with np.errstate(over="ignore"):
            std = std.astype(np.float32)
        std = _from_bfloat16(_bfloat16(np.where(np.isfinite(std), std, 0.0)))
        step = std / MEAN_STEPS
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(step > 0, np.round(mean / np.where(step > 0, step, 1.0)), 0.0)
        far = np.abs(k) >= 2.0**50  # below it, k · step / step rounds back to k exactly
        std = np.where(far, 0.0, std)
        mean = np.where(std > 0, k * step, mean.astype(np.float32))
        return cls(mean, std, tuple(lengths))

    @cached_property
    def _per_record(self) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(self.mean, self.lengths, axis=0), np.repeat(self.std, self.lengths, axis=0)

    def per_record(self) -> tuple[np.ndarray, np.ndarray]:
        """Each record's series mean and std ``[N, d]`` (made once)."""
        return self._per_record

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Records in data units → unit scale (float64): ``(x - mean) / std``, and ``x - mean``
        where the std is 0 (0 for the values equal to the mean; the codec sends others exactly)."""
        mean, std = self.per_record()
        return (np.asarray(x, np.float64) - mean) / np.where(std > 0, std, 1.0)

    def fixed(self) -> np.ndarray:
        """Where each record's series has no spread in that column ``[N, d]``: those records
        decode to the mean, so their other values must travel exactly."""
        return self.per_record()[1] == 0

    def restore(self, unit: np.ndarray) -> np.ndarray:
        """Unit scale → data units (float64); the mean itself where the std is 0."""
        mean, std = self.per_record()
        return np.where(std > 0, unit * std + mean, mean)  # the mean itself: a -0.0 stays -0.0

    def to_bytes(self) -> bytes:
        codes = _bfloat16(self.std.astype(np.float32))
        out = bytearray()
        for code, mean, std in zip(codes.reshape(-1), self.mean.reshape(-1), self.std.reshape(-1)):
            out += struct.pack("<H", int(code))
            out += struct.pack("<f", mean) if code == 0 else varint(zigzag(int(round(mean / (std / MEAN_STEPS)))))
        return bytes(out)

    @classmethod
    def read(cls, payload: bytes, lengths: tuple[int, ...], columns: int) -> tuple["SeriesScales", bytes]:
        """The statistics at the start of ``payload`` and the payload after them."""
        count = len(lengths) * columns
        mean, std = np.zeros(count), np.zeros(count)
        at = 0
        for i in range(count):
            if at + 2 > len(payload):
                raise FormatError("bitstream is damaged: its series statistics are cut short")
            (code,) = struct.unpack_from("<H", payload, at)
            at += 2
            if code & 0x8000:
                raise FormatError("bitstream is damaged: a series statistic states a negative std")
            std[i] = _from_bfloat16(np.uint16(code))
            if code == 0:
                if at + 4 > len(payload):
                    raise FormatError("bitstream is damaged: its series statistics are cut short")
                (mean[i],) = struct.unpack_from("<f", payload, at)
                at += 4
            else:
                z, at = read_varint(memoryview(payload), at, len(payload), "series statistic")
                mean[i] = unzigzag(z) * (std[i] / MEAN_STEPS)
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()):
            raise FormatError("bitstream is damaged: its series statistics are not finite, or a std is negative")
        shape = (len(lengths), columns)
        return cls(mean.reshape(shape), std.reshape(shape), tuple(lengths)), payload[at:]


def scaled_pieces(series: list[np.ndarray], rows: int) -> tuple[list[np.ndarray], int]:
    """Each series brought to unit scale as a codec scales what ``compress`` makes of it: in
    pieces of ``rows`` records (its chunks) and the rest, each with its own statistics (of
    its float32 values); and the bytes those statistics take in the streams."""
    out, stated = [], 0
    for s in series:
        x32 = np.asarray(s).astype(np.float32)
        if not len(x32):
            out.append(np.asarray(s, np.float64))
            continue
        scales = SeriesScales.of(x32, (rows,) * (len(x32) // rows) + ((len(x32) % rows,) if len(x32) % rows else ()))
        out.append(scales.normalise(x32))
        stated += len(scales.to_bytes())
    return out, stated
