"""The Codec: a trained LTC model frozen with its integer coding tables.

``encode(x[N, d]) -> bytes`` and ``decode(bytes) -> x_hat[N, d]``. Records are one series in
order (window mode needs that order). Non-finite values and absurd outliers travel exactly
in the bitstream's lossless side channel; everything else goes through the lattice.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ltc_beam import __version__, repeats
from ltc_beam.bitstream import Frame, SpecialValues, merge_specials, pack, unpack, with_bounds, with_repeats
from ltc_beam.codec import clamping, rd_quantization, sample_coding
from ltc_beam.codec.adaptive import CLASS_COUNT, ScaleClasses, class_scales
from ltc_beam.codec.config import OUTLIER_Z, CodecConfig
from ltc_beam.codec.layout import filled, from_windows, pad_rows, pad_runs, places, series_windows
from ltc_beam.codec.model import LtcModel
from ltc_beam.codec.scaling import SeriesScales
from ltc_beam.codec.symbols import SymbolMapper
from ltc_beam.codec.tables import blend_counts, box_tables, share_identical_runs
from ltc_beam.entropy import SymbolDecoder, SymbolEncoder, SymbolTables
from ltc_beam.errors import BEYOND_FLOAT32, FormatError, InputError, OffScaleWarning, beyond_float32, column_label, is_dataframe, numeric_array

FORMAT = "ltc-beam-codec"
#: Version written. 2: the artifact may store rounded tables as log-code differences
#: (:mod:`ltc_beam.codec.artifact`), which a version-1 reader cannot read; 1 is still read.
FORMAT_VERSION = 2
#: Version written for series-scaled codecs only (``normalisation.per == "series"``), whose
#: streams a version-2 reader would decode wrongly instead of refusing.
SERIES_SCALED_FORMAT_VERSION = 3
#: Version written for codecs whose scale-class segments cut block-mode lattice points
#: (:attr:`ScaleClasses.splits_points`; series-scaled or not), whose streams earlier readers
#: would decode wrongly instead of refusing.
SPLIT_CLASSES_FORMAT_VERSION = 4
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4)
# How many observations the box pmf is worth per table when tables are fitted to training
# symbols; the weight (or the box pmf alone) is chosen on the validation split.
TABLE_PRIOR_WEIGHTS = (16.0, 64.0, 256.0, 1024.0)
MIDDLE_PRIOR_WEIGHT = TABLE_PRIOR_WEIGHTS[len(TABLE_PRIOR_WEIGHTS) // 2]  # without a validation split: static tables, this weight
# Scale classes are not tried when their tables would exceed this many entries (memory and
# artifact size; e.g. Λ24 on a wide latent at high rate).
MAX_CLASS_TABLE_ENTRIES = 1 << 24
#: Most series the tables are fitted to and chosen on (evenly spread through them): each is
#: a stream of its own, and 42,000 series of 5-20 records took 200 s per codec frozen.
MAX_FITTED_SERIES = 4096
#: dB of SNR a bit per value buys at high rate: rate–distortion quantisation is kept where it
#: saves more bits than the SNR it loses is worth at this rate (:meth:`Codec._choose_rd_quantization`)
RD_EXCHANGE_DB = 6.02
#: Above this fraction of values off the codec's range (outliers sent exactly, latent
#: symbols escaping the tables), ``encode`` warns: the data is not like the training data.
OFF_SCALE_FRACTION = 0.01
#: The sample-coding fallback may trade error between columns at an equal mean relative to
#: their variances, each column's error staying within this factor (3 dB) of what LTC gives
#: it or, where larger, of the stream's mean relative error times its variance (the stream's
#: SNR), that one taken at most this factor squared (6 dB) above LTC's: 8x LTC's at most.
MAX_COLUMN_ERROR_GROWTH = 2.0
#: ... and tries one error relative to the columns' variances in the stream (besides one in
#: z-scores) where the largest is this many times the smallest: closer, the two trials'
#: bits differ by under about 0.015 bit/value, and each trial costs encode time.
RELATIVE_TRIAL_SPREAD = 1.5
OFF_SCALE_MIN_VALUES = 1000  # smaller inputs are not judged (one record proves nothing)
OFF_SCALE_SPREAD = 2.0  # a column spreading beyond this factor of its training std (either way) is off scale
OFF_SCALE_SHIFT = 3.0  # ... or a column whose mean lies further than this many training std from its training mean
#: Values one bitstream may hold (8 GiB of float32): ``encode`` refuses more (``compress``
#: and ``LtcEncode`` write chunks of thousands of records), so ``decode`` reads a stream
#: stating more as damaged instead of trying to allocate it.
MAX_STREAM_VALUES = 1 << 31
#: Input values per pass of the transform and lattice where many series are quantised together.
TRANSFORM_VALUES = 1 << 20


def spread_out(series: list, most: int) -> list:
    """``series``, or ``most`` of them evenly spread through it."""
    if len(series) <= most:
        return series
    return [series[i] for i in np.linspace(0, len(series) - 1, most).round().astype(int)]


@dataclass
class Quantized:
    """Lattice points of one array, in the coding layout."""

    frame: np.ndarray  # [P, n] int64 frame coordinates of the lattice points
    rows: int  # input vectors after padding to whole blocks


def frame_columns(x) -> list[str] | None:
    """The column names of a pandas DataFrame (None for anything else: a pyarrow Table's
    ``columns`` are its data)."""
    if is_dataframe(x):
        return [str(c) for c in x.columns]
    return None


def column_name(codec: "Codec", index: int) -> str:
    """Column ``index`` of the codec's records as its training named it (quoted), else the index."""
    return column_label(codec.manifest.get("columns"), index)


class Codec:
    """A frozen lattice transform codec (see :func:`ltc_beam.train` and :meth:`load`)."""

    def __init__(
        self,
        model: LtcModel,
        tables: SymbolTables,
        table_base: np.ndarray,
        manifest: dict,
        device: str | torch.device = "cpu",
    ):
        self.model = model.eval().to(device)
        self.config: CodecConfig = model.config
        self.lattice = model.lattice
        self.tables = tables
        self.manifest = manifest
        classes = manifest["tables"].get("classes")
        self.classes = None if classes is None else ScaleClasses.from_dict(
            classes, self.config.mode, self.lattice.dim, self.config.latent_dim
        )
        self.table_base = check_base(table_base, self.classes, tables, self.config.latent_dim, self.lattice.dim)
        if (self.classes is not None and self.classes.splits_points) != (manifest.get("format_version") == SPLIT_CLASSES_FORMAT_VERSION):
            raise ValueError(f"format version {manifest.get('format_version')} does not go with scale-class segments of "
                             f"{None if self.classes is None else self.classes.rows} rows in {self.config.mode} mode")
        self.device = torch.device(device)
        self._float64: dict[str, torch.nn.Module] = {}  # the CPU transforms in float64 (see _transform)
        self.mapper = SymbolMapper(self.lattice)
        self._unit = torch.as_tensor(self.lattice.frame_unit, dtype=torch.float32)
        self.id = manifest["codec_id"]
        #: Let ``encode`` sample-code a stream when that is shorter at no more error per
        #: column (:mod:`ltc_beam.codec.sample_coding`); the decoder needs no setting.
        self.sample_fallback = True
        #: Let ``encode`` move a lattice point to a cheaper one where that saves more bits than
        #: its extra error is worth (:mod:`ltc_beam.codec.rd_quantization`); the decoder needs
        #: no setting. On where freezing found it coding the validation split better.
        self.rd_quantization = bool(manifest.get("encoder", {}).get("rd_quantization", False))
        #: Let ``encode`` leave out the records that repeat the record before them, bit for bit
        #: (:mod:`ltc_beam.repeats`), where naming them is shorter; the decoder needs no setting.
        self.leave_out_repeats = True
        #: ``(id, bytes)`` of the compressed artifact the codec was loaded from: what saving or
        #: embedding it again gives while its id (a content hash) is that one, without
        #: compressing it again (seconds for wide tables: 4.8 s of a 10 s ``evaluate``).
        self.loaded_from: tuple[str, bytes] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(
        cls,
        model: LtcModel,
        *,
        training: dict | None = None,
        columns: list[str] | None = None,
        fit_series: list[np.ndarray] | None = None,
        validation_series: list[np.ndarray] | None = None,
        normalise: str = "column",
    ) -> "Codec":
        """Freeze a trained model: build its integer tables and its manifest.
        ``normalise="series"``: each series is scaled by its own statistics before the
        model's column normalisation (:mod:`ltc_beam.codec.scaling`).

        With ``fit_series`` (training records, one array per series) the tables are the
        empirical conditional pmfs of those records' symbols, smoothed by the box pmf of
        the learned density; the prior weight (or the plain box pmf) is the one that codes
        ``validation_series`` shortest. Without ``fit_series``: the box pmf.
        """
        model = model.eval().cpu()
        pmf, low, base, layout = box_tables(model.density, model.lattice, model.config.mode)
        tables = SymbolTables.from_probabilities(pmf, low)
        manifest = {
            "format": FORMAT,
            "format_version": SERIES_SCALED_FORMAT_VERSION if normalise == "series" else FORMAT_VERSION,
            "library_version": __version__,
            "config": model.config.to_dict(),
            "columns": list(columns) if columns else [f"v{i}" for i in range(model.config.record_dim)],
            "normalisation": {
                "mean": model.mean.tolist(), "std": model.std.tolist(),
                "constant": constant_columns((fit_series or []) + (validation_series or []), model.config.record_dim),
                **({"per": "series"} if normalise == "series" else {}),
            },
            "outlier_z": OUTLIER_Z,
            "tables": {"count": tables.num_tables, "symbols": tables.num_symbols, "precision": tables.precision},
            "training": training or {},
        }
        codec = cls(model, tables, base[0], {**manifest, "codec_id": "0" * 32})
        if fit_series:
            codec._fit_tables(pmf, low, layout, fit_series, validation_series)
        codec._share_tables()
        if validation_series:
            codec._choose_rd_quantization(spread_out(validation_series, MAX_FITTED_SERIES))
        codec.manifest["codec_id"] = codec.id = codec.content_hash()
        return codec

    def _choose_rd_quantization(self, series: list[np.ndarray]) -> None:
        """Turn rate–distortion quantisation on where it codes ``series`` (one stream, each
        series windowed on its own, lattice-coded) better than the nearest points: fewer bits
        per value once each dB of SNR it loses is counted as ``1 / RD_EXCHANGE_DB`` bit (the
        high-rate exchange). Measured: Daphnet at 10 dB −8.5 % at equal SNR, i.i.d. Gaussian at
        11 dB +1.4 %. The choice and both measurements go in the manifest (``encoder``)."""
        from ltc_beam.evaluation import snr_db  # the SNR every command reports (evaluation imports this module)

        arrays = [self._check(s) for s in series if len(s)]
        if not arrays:
            return
        x = np.concatenate(arrays)
        fallback, measured = self.sample_fallback, {}
        self.sample_fallback = False
        try:
            for rd in (False, True):
                self.rd_quantization = rd
                blob, out = self._encode(x, reconstruct=True, segments=[len(a) for a in arrays])
                measured[rd] = (8.0 * len(blob) / x.size, snr_db(x, out))
        finally:
            self.sample_fallback = fallback
        (bits, snr), (rd_bits, rd_snr) = measured[False], measured[True]
        lost = snr - rd_snr if math.isfinite(snr) and math.isfinite(rd_snr) else 0.0
        self.rd_quantization = rd_bits + lost / RD_EXCHANGE_DB < bits
        self.manifest["encoder"] = {
            "rd_quantization": self.rd_quantization,
            "validation": {"nearest": {"bits_per_value": bits, "snr_db": snr}, "rd": {"bits_per_value": rd_bits, "snr_db": rd_snr}},
        }

    def _share_tables(self) -> None:
        """Keep one copy of every repeated run of tables (:func:`share_identical_runs`)."""
        runs = np.array([len(p) for p in self.lattice.phases], dtype=np.int64)
        keep = None if self.classes is None else self.classes.table
        freqs, low, base, keep = share_identical_runs(self.tables.freqs, self.tables.low, self.table_base, runs, keep)
        self.tables = SymbolTables(freqs, low, self.tables.precision)
        self.table_base = base
        if self.classes is not None:
            self.classes = replace(self.classes, table=keep)
            self.manifest["tables"]["classes"] = self.classes.to_dict()
        self.manifest["tables"].update({"count": self.tables.num_tables, "symbols": self.tables.num_symbols})

    def _fit_tables(self, pmf, low, layout, fit_series, validation_series) -> None:
        """Choose the tables that code ``validation_series`` shortest among: the box pmf, the
        box pmf blended with the training symbols' counts (``TABLE_PRIOR_WEIGHTS``), and the
        same two kinds with scale classes of the segment size :meth:`_segment_size` picks
        (:mod:`ltc_beam.codec.adaptive`; unless their tables would exceed
        ``MAX_CLASS_TABLE_ENTRIES``). Without a validation
        split: static tables with the middle prior weight."""
        fit = self._points_of(spread_out(fit_series, MAX_FITTED_SERIES))
        val = self._points_of(spread_out(validation_series or [], MAX_FITTED_SERIES))
        static, static_box = (self.table_base, None), self.tables  # the static box tables were built in from_model
        configurations = [((pmf, low, layout), static)]
        if val and pmf.size * 2 * CLASS_COUNT <= MAX_CLASS_TABLE_ENTRIES:  # class tables run up to twice as wide
            configurations += self._segment_size(self._scale_class_tables(fit), fit, val)
        best = None  # (validation bits, tables, base, classes, prior weight, fitted symbols): only the best is
        # held (all of them took 4 GB for records of 250 values, and the kernel's OOM killer at 1,000)
        for (box_pmf, box_low, box_layout), (base, classes) in configurations:
            box = static_box if classes is None else SymbolTables.from_probabilities(box_pmf, box_low)
            self.tables, self.table_base, self.classes = box, base, classes  # classes are chosen under the tables
            symbols, indices = self._coded(fit)
            static_val = self._coded(val) if classes is None else None
            blended = blend_counts(box_pmf, box_low, symbols, indices, TABLE_PRIOR_WEIGHTS, box_layout)
            for weight in (None, *TABLE_PRIOR_WEIGHTS):
                pmf_w = next(blended) if weight is not None else None  # one blended pmf at a time
                if not val and not (classes is None and weight == MIDDLE_PRIOR_WEIGHT):
                    continue
                self.tables = box if weight is None else SymbolTables.from_probabilities(pmf_w, box_low)
                bits = self.tables.bits(*(static_val if classes is None else self._coded(val))) if val else 0.0
                if best is None or bits < best[0]:
                    best = (bits, self.tables, base, classes, weight, 0 if weight is None else symbols.size)
                del pmf_w
        _, self.tables, self.table_base, self.classes, weight, fitted = best
        self.manifest["tables"].update(
            {"count": self.tables.num_tables, "symbols": self.tables.num_symbols, "fitted_symbols": int(fitted), "prior_weight": weight}
        )
        self.manifest["tables"].pop("classes", None)
        if self.classes is not None:
            self.manifest["tables"]["classes"] = self.classes.to_dict()
            if self.classes.splits_points:
                self.manifest["format_version"] = SPLIT_CLASSES_FORMAT_VERSION

    def _segment_size(self, configurations: list[tuple], fit: list[Quantized], val: list[Quantized]) -> list[tuple]:
        """Of the scale-class ``configurations`` (one per segment size), the one whose tables,
        fitted to the ``fit`` points with the middle prior weight, code ``fit`` and ``val``
        together shortest. The validation split alone is small: it picked 3-row segments for
        BasicMotions' e8 vector T=8 codec at 3.5 bits/value where the test split codes 2.4 %
        shorter with 1-row ones; the training split shares the fitted tables' bias at every
        size."""
        if len(configurations) < 2:
            return configurations
        (pmf, low, layout), _ = configurations[0]  # one box pmf for every size (:meth:`_scale_class_tables`)
        box, bits = SymbolTables.from_probabilities(pmf, low), []
        for _, (base, classes) in configurations:
            self.tables, self.table_base, self.classes = box, base, classes
            symbols, indices = self._coded(fit)
            self.tables = SymbolTables.from_probabilities(next(blend_counts(pmf, low, symbols, indices, (MIDDLE_PRIOR_WEIGHT,), layout)), low)
            bits.append(self.tables.bits(*self._coded(fit + val)))
        return [configurations[int(np.argmin(bits))]]

    def _scale_class_tables(self, fit: list[Quantized]) -> list[tuple]:
        """Box pmfs of the scaled densities plus a uniform class-symbol table, with the classes
        of each segment size (:meth:`ScaleClasses.fit`)."""
        points = [q.frame * self.lattice.frame_unit for q in fit]
        channels = [self._channels(q.rows) for q in fit]
        pmf, low, base, layout = box_tables(self.model.density, self.lattice, self.config.mode, class_scales())
        width = max(pmf.shape[1], CLASS_COUNT)
        pmf = np.pad(pmf, ((0, 1), (0, width - pmf.shape[1])))
        pmf[-1, :CLASS_COUNT] = 1.0 / CLASS_COUNT
        low = np.append(low, 0)
        layout = layout.append(CLASS_COUNT)
        sizes = ScaleClasses.fit(
            np.concatenate(points) if points else np.zeros((0, self.lattice.dim)),
            np.concatenate(channels) if channels else np.zeros((0, self.lattice.dim), np.int64),
            self.config.mode, self.lattice.dim, self.config.latent_dim, table=len(low) - 1,
        )
        return [((pmf, low, layout), (base, classes)) for classes in sizes]

    @torch.no_grad()
    def _points_of(self, series: list[np.ndarray], leave_out: bool = False) -> list[Quantized]:
        """The lattice points of each series that has records, each as a stream of its own,
        from a pass of the transform and the lattice over groups of series of about
        ``TRANSFORM_VALUES`` input values (a pass per series took most of the time of fitting
        tables to 4,096 short series; one over all held 15x their latents at once). The same
        points as each series alone, save where a group holds a latent so far out that the
        lattice search runs in float64 (:meth:`~ltc_beam.lattices.base.Lattice.quantize_frame`).
        ``leave_out``: records whose every value is special left out, as ``encode`` does
        (:meth:`_lossy`). Records that repeat the record before them are left out (as
        ``encode`` leaves them out where naming them is shorter)."""
        arrays = [self._check(s) for s in series if len(s)]
        if self.series_scaled or len(arrays) < 2:  # each series scaled by its own statistics
            return [self._stream_points(a, leave_out) for a in arrays]
        arrays = [self._without_repeats(a) for a in arrays]
        lengths = np.array([len(a) for a in arrays])
        z, specials = self._split(np.concatenate(arrays).astype(np.float32, copy=False), lengths=lengths)
        if leave_out:
            gone = self._gone_records(specials, len(z))
            series_gone = np.add.reduceat(gone, np.cumsum(lengths) - lengths) == lengths  # such a series is coded whole
            kept = ~gone | np.repeat(series_gone, lengths)
            z, lengths = z[kept], np.add.reduceat(kept, np.cumsum(lengths) - lengths)
        windows = series_windows(z, lengths, self.config.window)
        vectors, rows = pad_runs(windows, -(-lengths // self.config.window), self.config.vectors_per_block)
        bounds = np.cumsum(rows)
        group = (bounds - rows) * self.config.input_dim // TRANSFORM_VALUES  # consecutive series
        n = self.lattice.dim
        out = []
        for g in np.unique(group):
            members = np.flatnonzero(group == g)
            first, last = int(bounds[members[0]] - rows[members[0]]), int(bounds[members[-1]])
            y = self._transform("analysis", torch.as_tensor(vectors[first:last], dtype=torch.float32, device=self.device))
            ends = bounds[members] - first
            if self.config.mode == "block":  # each series' points run across its own rows, channel by channel
                y = torch.cat([y[a:b].T.reshape(-1, n) for a, b in zip(ends - rows[members], ends)])
            frame = self.lattice.quantize_frame(y.reshape(-1, n)).cpu().numpy()
            points = rows[members] * self.config.latent_dim // n
            out += [Quantized(frame=f, rows=int(r)) for f, r in zip(np.split(frame, np.cumsum(points)[:-1]), rows[members])]
        return out

    def _stream_points(self, arr: np.ndarray, leave_out: bool = False) -> Quantized:
        """The lattice points of checked records ``arr`` (one series), as :meth:`_points_of`."""
        arr = self._without_repeats(arr)
        z, specials = self._split(arr.astype(np.float32, copy=False), self._stream_scales(arr, None))
        if not leave_out:
            return self._quantize(z, nearest=True)
        lossy, inner, _, _ = self._lossy(z, specials, None, (len(arr),))
        return self._quantize(lossy, inner, nearest=True)

    def _without_repeats(self, arr: np.ndarray) -> np.ndarray:
        """``arr`` less the records that repeat the record before them, where ``encode`` may leave them out."""
        return self._repeats_left_out(arr, None)[0]

    def _repeats_left_out(self, arr: np.ndarray, segments) -> tuple[np.ndarray, tuple[int, ...] | None, np.ndarray]:
        """``(the other records, their segments, the indices of the repeats)`` of checked
        records ``arr``: without the records that repeat the record before them where
        ``encode`` may leave them out (:mod:`ltc_beam.repeats`), else ``arr`` as it is."""
        repeated = repeats.repeated(arr) if self.leave_out_repeats and not self.series_scaled else np.zeros(0, np.int64)
        if not repeated.size:
            return arr, segments, repeated
        kept_segments = None if segments is None else repeats.kept_segments(self._series_lengths(len(arr), segments), repeated)
        return np.delete(arr, repeated, axis=0), kept_segments, repeated

    def series_code_length(self, series: list[np.ndarray]) -> float:
        """The sum of :meth:`code_length_bits` of each series (each a stream of its own) with
        nearest-point quantisation (``rd_quantization`` off: what training compares models
        on), worked out for all at once (:meth:`_points_of`, :meth:`_coded`; the same up to
        float rounding)."""
        return float(self.tables.bits(*self._coded(self._points_of(series, leave_out=True))))

    def _coded(self, quantized: list[Quantized]) -> tuple[np.ndarray, np.ndarray]:
        """Every symbol the encoder would write for the streams ``quantized`` (each stream's
        class symbols, then its points' symbols) and its table (flattened), worked out for all
        streams at once (:meth:`_symbols` of one stream at a time took 8 of the 80 s of
        training on 100,000 short series)."""
        if not quantized:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        frame = np.concatenate([q.frame for q in quantized])
        rows = np.array([q.rows for q in quantized], dtype=np.int64)
        symbols, phases = self.mapper.split(frame)
        channels = self._channels(rows)
        coordinates = np.arange(self.lattice.dim)
        if self.classes is None:
            return symbols.reshape(-1), (self.table_base[0, channels, coordinates] + phases).reshape(-1)
        counts, points = self.classes.segments(rows), rows * self.config.latent_dim // self.lattice.dim
        segment = self.classes.symbol_segments(rows) + (np.cumsum(counts) - counts)[places(points)[0]][:, None]
        classes, tables = self._classes(frame, symbols, phases, channels, segment, int(counts.sum()))
        size = counts + points * self.lattice.dim
        start = np.cumsum(size) - size
        owner, index = places(counts)
        at_class = start[owner] + index
        owner, index = places(points * self.lattice.dim)
        at_point = (start + counts)[owner] + index
        out = np.empty((2, int(size.sum())), np.int64)
        out[0, at_class], out[1, at_class] = classes, self.classes.table
        out[0, at_point], out[1, at_point] = symbols.reshape(-1), tables.reshape(-1)
        return out[0], out[1]

    def remember_series_columns(self, key: str | None, order_by: str | None) -> None:
        """Record the series key and order column of the data the codec was trained on
        (``ltc-beam train`` does; ``evaluate`` and ``compress`` take them where a windowed
        codec is given no order); the id, a content hash, follows."""
        if order_by is None:
            return
        self.manifest["series_columns"] = {"key": key, "order_by": order_by}
        self.manifest["codec_id"] = self.id = self.content_hash()

    def tensors(self) -> dict[str, np.ndarray]:
        """Everything numeric the codec needs, as plain arrays (weights, tables)."""
        out = {f"model.{k}": v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        out.update({f"tables.{k}": np.ascontiguousarray(v) for k, v in self.tables.to_arrays().items()})
        out["tables.base"] = self.table_base if self.classes is not None else self.table_base[0]
        return out

    def content_hash(self) -> str:
        """Codec id: see :func:`content_hash`."""
        return content_hash(self.manifest, self.tensors())

    def to(self, device: str | torch.device) -> "Codec":
        """Run the transforms on ``device`` (``"auto"``: CUDA when present)."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def _transform(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """The model's ``analysis`` or ``synthesis`` transform of float32 ``x``, float32 out.

        On the CPU it runs in float64 and is rounded to float32 once: torch's float32 matrix
        products sum in an order that depends on its thread count, so the same stream
        decoded 5,411 of 24,000 values up to 4.8e-6 apart at 1 and at 4 threads, and
        16,384-record streams were coded to other bytes (a latent near a cell boundary
        fell to a neighbouring point). In float64 the orders agree to ~1e-16, far below
        float32's spacing, so every thread count (a Beam worker's one, a laptop's many)
        codes the same bytes and decodes the same values, save a sum within ~1e-16 of a
        float32 rounding boundary. GPUs keep float32 (their bytes may differ anyway:
        docs/deployment.md)."""
        transform = getattr(self.model, name)
        if self.device.type != "cpu":
            return transform(x)
        if name not in self._float64:
            self._float64[name] = copy.deepcopy(transform).double()
        return self._float64[name](x.double()).float()

    # ------------------------------------------------------------------ I/O
    def save(self, uri: str | os.PathLike) -> None:
        from ltc_beam.codec.artifact import write_codec

        write_codec(self, os.fspath(uri))

    @classmethod
    def load(cls, uri: str | os.PathLike | bytes, device: str = "cpu") -> "Codec":
        """A codec from its artifact: a path or URI, or the artifact's bytes."""
        from ltc_beam.codec.artifact import codec_from_bytes, read_codec

        if isinstance(uri, (bytes, bytearray, memoryview)):  # an artifact's bytes (os.fspath said "not 'str'")
            return codec_from_bytes(uri, device=device)
        return read_codec(os.fspath(uri), device=device)

    # ------------------------------------------------------------------ core path
    def _check(self, x) -> np.ndarray:
        names = frame_columns(x)
        trained = [str(c) for c in self.manifest.get("columns") or []]
        if names is not None and (twice := sorted({c for c in trained if names.count(c) > 1})):  # said "got (2000, 5)"
            raise InputError(f"the frame holds the codec's columns {twice} more than once: keep one of each")
        if names is not None and names != trained and trained and set(trained) <= set(names):
            x, names = x[list(self.manifest["columns"])], trained  # a DataFrame's columns taken by name
        if names is not None:  # warn where a DataFrame's columns are not the codec's
            from ltc_beam.arrow import check_column_names, generic_names

            missing = [c for c in trained if c not in names]
            if missing and len(names) != len(trained) and not generic_names(trained + names):
                raise InputError(f"the codec's columns {missing} are not in the frame (its columns: {names})")
            check_column_names(names, self)
        if isinstance(x, (list, tuple)) and x and all(np.ndim(s) == 2 for s in x):
            raise InputError(
                "encode takes one [records, values] array: for several series, concatenate them and give their "
                "lengths as segments=[…] (each series is then windowed on its own)"
            )
        arr = numeric_array(x)
        if arr.dtype.kind not in "fiu":
            raise InputError(f"expected a numeric array, got dtype {arr.dtype}")
        if arr.ndim == 1 and self.config.record_dim == 1:  # a signal (a pandas Series): one value per record
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.config.record_dim:
            raise InputError(
                f"expected an array of shape [records, {self.config.record_dim}], got {arr.shape}"
            )
        if arr.size > MAX_STREAM_VALUES:
            raise InputError(f"{arr.size} values exceed the {MAX_STREAM_VALUES} one bitstream holds: encode the array in parts")
        wide = np.flatnonzero(beyond_float32(arr))
        if wide.size:
            row, col = divmod(int(wide[0]), arr.shape[1])
            where = f"column {column_label(self.manifest.get('columns'), col)}"
            raise InputError(f"record {row}, {where} ({float(arr.flat[wide[0]])!r}; {wide.size} such values): {BEYOND_FLOAT32}")
        return arr

    @property
    def series_scaled(self) -> bool:
        """Whether each series (each segment of a stream) is scaled by its own statistics
        (``train(normalise="series")``, :mod:`ltc_beam.codec.scaling`)."""
        return self.manifest["normalisation"].get("per", "column") == "series"

    def exactly_coded(self, x, segments=None) -> np.ndarray:
        """Mask of the values of ``x`` ``[N, record_dim]`` that travel exactly, beside the
        lossy code: NaN/±Inf, values beyond the outlier threshold, a constant column's
        values other than its constant, and (series-scaled) the values of a series' column
        without spread other than its mean. Their decoded values are their float32 values."""
        arr = self._check(x)
        return self._exact(arr.astype(np.float32, copy=False), self._stream_scales(arr, segments))[1]

    def series_scales(self, x, segments=None) -> SeriesScales | None:
        """The statistics a series-scaled codec states for each series of ``x`` (None for
        other codecs, and for no records)."""
        return self._stream_scales(self._check(x), segments)

    def _stream_scales(self, arr: np.ndarray, segments) -> SeriesScales | None:
        """:meth:`series_scales` of checked records."""
        return self._scales(arr.astype(np.float32, copy=False), self._series_lengths(len(arr), segments))

    def _series_lengths(self, records: int, segments) -> tuple[int, ...]:
        """Lengths of the series a stream scales one by one; InputError where ``segments``
        do not fit the records (:meth:`_segments`)."""
        self._segments(records, segments)
        return (records,) if segments is None else tuple(int(n) for n in segments)

    def _scales(self, x32: np.ndarray, lengths: tuple[int, ...]) -> SeriesScales | None:
        """Each series' statistics, for a series-scaled codec (else None)."""
        return SeriesScales.of(x32, lengths) if self.series_scaled and len(x32) else None

    def _exact(self, x32: np.ndarray, scales: SeriesScales | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(z-scores, exactly_coded mask)`` of float32 records (each series first brought to
        unit scale by ``scales``)."""
        mean = np.asarray(self.manifest["normalisation"]["mean"])
        with np.errstate(over="ignore", invalid="ignore"):
            unit = x32 if scales is None else scales.normalise(x32)
            z = self._z_scores(unit)
        exact = ~np.isfinite(z) | (np.abs(z) > self.manifest.get("outlier_z", OUTLIER_Z))
        if scales is not None:  # a series' column without spread decodes to its mean
            exact |= scales.fixed() & (unit != 0)
        constant = self._constant()
        if constant.any():  # a constant column's other values travel exactly
            exact[:, constant] |= unit[:, constant] != mean[constant].astype(np.float32)
        return z, exact

    def _split(self, x: np.ndarray, scales: SeriesScales | None = None, lengths=None) -> tuple[np.ndarray, SpecialValues]:
        """Lossy part in z-scores (specials and outliers filled: :func:`~ltc_beam.codec.layout.filled`,
        within each series of ``lengths`` records where given) and the exact side channel."""
        x32 = x.astype(np.float32, copy=False)
        z, exact = self._exact(x32, scales)
        pos = np.flatnonzero(exact.reshape(-1))
        specials = SpecialValues(pos, np.ascontiguousarray(x32).reshape(-1).view(np.uint32)[pos].copy())
        if self.config.per_record:
            return np.where(exact, 0.0, z), specials
        return filled(z, exact, lengths), specials

    def _segments(self, records: int, segments) -> tuple[int, ...] | None:
        """``segments`` (series lengths of the records, in order) as the stream states them:
        None where they change nothing (no windows, one series, every series but the last
        a whole number of windows). Raises InputError when they do not fit the records."""
        if segments is None:
            return None
        given = list(segments)
        if not all(isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, (bool, np.bool_)) and float(n).is_integer() for n in given):
            raise InputError(f"segments must be whole numbers of records, got [{', '.join(map(str, given[:8]))}]")
        lengths = tuple(int(n) for n in given)
        if any(n < 1 for n in lengths) or sum(lengths) != records:
            raise InputError(f"segments must be positive series lengths summing to the {records} records, got {len(lengths)} summing to {sum(lengths)}")
        window = self.config.window
        if len(lengths) < 2 or not self.series_scaled and (window == 1 or all(n % window == 0 for n in lengths[:-1])):
            return None
        return lengths

    def _vectors(self, z: np.ndarray, segments: tuple[int, ...] | None) -> np.ndarray:
        """Input vectors of z-scored records: windows of the series (of each segment on its
        own), padded to whole lattice blocks."""
        windows = series_windows(z, (len(z),) if segments is None else segments, self.config.window)
        return pad_rows(windows, self.config.vectors_per_block)

    @torch.no_grad()
    def _quantize(self, z: np.ndarray, segments: tuple[int, ...] | None = None, nearest: bool = False) -> Quantized:
        """The lattice points of normalised records ``z``: the encoder's (:meth:`_rd_points`,
        while ``rd_quantization``), or with ``nearest`` the nearest points (what training and
        table fitting measure)."""
        vectors = self._vectors(z, segments)
        y = self._transform("analysis", torch.as_tensor(vectors, dtype=torch.float32, device=self.device))
        n = self.lattice.dim
        if self.config.mode == "block":
            y = y.T  # [channels, rows]: each lattice point runs across n consecutive rows
        y = y.reshape(-1, n)
        q = Quantized(frame=self.lattice.quantize_frame(y).cpu().numpy(), rows=len(vectors))
        return q if nearest or not self.rd_quantization else self._rd_points(q, y)

    def _rd_points(self, q: Quantized, y: torch.Tensor) -> Quantized:
        """``q`` with each point replaced where a cheaper one costs less in error plus rate
        (:mod:`ltc_beam.codec.rd_quantization`)."""
        moving = np.flatnonzero(q.frame.any(axis=1))  # the origin is the cheapest point there is
        channels = self._channels(q.rows)
        if self.classes is None:
            scale = 0
        else:  # each point's own energy class, not its segment's: a point codes alike in any stream
            own = np.repeat(np.arange(moving.size)[:, None], self.lattice.dim, axis=1)
            scale = self.classes.nearest(q.frame[moving] * self.lattice.frame_unit, channels[moving], own, moving.size)[:, None]
        base = self.table_base[scale, channels[moving], np.arange(self.lattice.dim)]  # each coordinate's table, less its phase

        def bits(frame: np.ndarray) -> np.ndarray:  # each point's code length
            symbols, phases = self.mapper.split(frame)
            return self.tables.symbol_bits(symbols.reshape(-1), (base + phases).reshape(-1)).reshape(symbols.shape).sum(axis=1)

        columns = self._column_energies()
        weights, unit = columns[channels], np.asarray(self.lattice.frame_unit, np.float64)
        lam = rd_quantization.multiplier(self.lattice, columns)
        y = y[torch.as_tensor(moving, device=y.device)]
        nearest = q.frame[moving]
        candidates = [np.zeros_like(nearest)] + [self.lattice.quantize_frame(y * s).cpu().numpy() for s in rd_quantization.SHRINK]
        frame = q.frame.copy()
        frame[moving] = rd_quantization.cheapest_points(y.double().cpu().numpy(), nearest, candidates, unit, weights[moving], bits, lam)
        return Quantized(frame=frame, rows=q.rows)

    def _column_energies(self) -> np.ndarray:
        """Each latent coordinate's squared error as normalised records' (the energy of its
        synthesis column)."""
        return (self.model.synthesis.linear.weight.detach().double().cpu().numpy() ** 2).sum(axis=0)

    def _channels(self, rows) -> np.ndarray:
        """Latent channel of every coordinate of every point, ``[P, n]``, of a stream of
        ``rows`` latent rows (or of streams of ``rows[i]`` rows each, one after another)."""
        n, c = self.lattice.dim, self.config.latent_dim
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        owner, index = places(rows * c // n)  # each point's stream and place in it
        if self.config.mode == "block":  # a channel's points, then the next channel's
            return np.repeat((index // (rows // n)[owner])[:, None], n, axis=1)
        return np.arange(c).reshape(-1, n)[index % (c // n)]  # each row's points, channel groups in turn

    def _latents(self, frame: np.ndarray, rows: int) -> torch.Tensor:
        """Frame points → latent lattice points ``[rows, latent_dim]`` (model layout), always
        C-contiguous: matrix kernels may round differently for other memory layouts, and
        ``decode`` must equal ``reconstruct`` bit for bit (``decode_each`` of several streams
        runs one product over all of them, so it matches only up to float rounding)."""
        y = torch.as_tensor(np.ascontiguousarray(frame), dtype=torch.float32) * self._unit
        if self.config.mode == "block":
            return y.reshape(self.config.latent_dim, rows).T.contiguous()
        return y.reshape(rows, self.config.latent_dim)

    @torch.no_grad()
    def _reconstruct(
        self, frame: np.ndarray, rows: int, records: int, segments: tuple[int, ...] | None = None,
        scales: SeriesScales | None = None, kept: np.ndarray | None = None,
    ) -> np.ndarray:
        """Frame points → records in data units (float32)."""
        vectors = self._transform("synthesis", self._latents(frame, rows).to(self.device)).double().cpu().numpy()
        return self._records(vectors, records, segments, scales, kept)

    def _records(
        self, vectors: np.ndarray, records: int, segments: tuple[int, ...] | None,
        scales: SeriesScales | None = None, kept: np.ndarray | None = None,
    ) -> np.ndarray:
        """Synthesised window vectors → ``records`` records in data units (float32); with
        ``kept``, the vectors hold those records only (``segments`` are theirs), the others
        (every value special) are 0 until the specials overwrite them."""
        d, window = self.config.record_dim, self.config.window
        coded = records if kept is None else int(kept.sum())
        if segments is None:
            z = from_windows(vectors, coded, d)
        else:
            counts = [-(-n // window) for n in segments]
            starts = np.cumsum([0] + counts)
            z = np.concatenate([from_windows(vectors[a:b], n, d) for a, b, n in zip(starts, starts[1:], segments)])
        if kept is not None:
            full = np.zeros((records, d))
            full[kept] = z
            z = full
        return self._data_units(z, scales)

    def _kept_records(self, specials: SpecialValues, records: int) -> np.ndarray | None:
        """The records with a value on the lossy path, where some have none (every value
        special: a NaN row of a sensor merged onto a shared clock) and others do; else None."""
        gone = self._gone_records(specials, records)
        return ~gone if gone.any() and not gone.all() else None

    def _gone_records(self, specials: SpecialValues, records: int) -> np.ndarray:
        """The records whose every value is special."""
        return np.bincount(specials.positions // self.config.record_dim, minlength=records) == self.config.record_dim

    def _lossy(self, z: np.ndarray, specials: SpecialValues, segments: tuple[int, ...] | None, lengths: tuple[int, ...]):
        """``(records to code, their segments as the windows see them, kept mask or None, the
        segments the stream states)``: the records whose every value is special are left out
        (their values travel in the specials block: a price panel 37 % NaN coded its fillers
        at 2.2 bits each). Series whose windows aligned stop aligning once records are left
        out, so a windowed codec then states the series' ``lengths``."""
        kept = self._kept_records(specials, len(z))
        if kept is None:
            return z, segments, None, segments
        if segments is None and len(lengths) > 1 and self.config.window > 1:
            segments = lengths
        return z[kept], self._kept_segments(kept, segments), kept, segments

    def _kept_segments(self, kept: np.ndarray, segments: tuple[int, ...] | None) -> tuple[int, ...] | None:
        """The stream's segments counted in kept records (empty ones dropped), as :meth:`_segments` states them."""
        if segments is None:
            return None
        bounds = np.cumsum((0,) + tuple(segments))
        lengths = [int(kept[a:b].sum()) for a, b in zip(bounds, bounds[1:])]
        return self._segments(int(kept.sum()), [n for n in lengths if n])

    def _data_units(self, z: np.ndarray, scales: SeriesScales | None = None) -> np.ndarray:
        """z-scores → records in data units (float32); constant columns exactly their value
        (and, series-scaled, each series' columns with no spread exactly their mean)."""
        mean = np.asarray(self.manifest["normalisation"]["mean"])
        std = np.asarray(self.manifest["normalisation"]["std"])
        unit = z * std + mean
        constant = self._constant()
        if scales is None:
            out = _finite_float32(unit)
            out[:, constant] = mean[constant].astype(np.float32)
            return out
        unit[:, constant] = mean[constant].astype(np.float32)
        return _finite_float32(scales.restore(unit))

    def _z_scores(self, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.manifest["normalisation"]["mean"])
        std = np.asarray(self.manifest["normalisation"]["std"])
        return (x.astype(np.float64) - mean) / std

    def _constant(self) -> np.ndarray:
        """Columns that were constant in training (decoded exactly: the value, or the side channel)."""
        flags = self.manifest["normalisation"].get("constant")
        return np.asarray(flags, bool) if flags else np.zeros(self.config.record_dim, bool)

    def _symbols(self, q: Quantized, per_record: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Symbols ``[P, n]``, their table indices ``[P, n]`` and the segments' class symbols
        (empty without scale classes); ``per_record`` (vector mode, window 1): each record a
        segment, as in a stream of its own."""
        symbols, phases = self.mapper.split(q.frame)
        channels = self._channels(q.rows)
        coordinates = np.arange(self.lattice.dim)
        if self.classes is None:
            return symbols, self.table_base[0, channels, coordinates] + phases, np.zeros(0, np.int64)
        if per_record:
            segment, count = np.repeat(np.arange(q.rows), self.config.latent_dim).reshape(-1, self.lattice.dim), q.rows
        else:
            segment, count = self.classes.symbol_segments(q.rows), self.classes.segments(q.rows)
        classes, tables = self._classes(q.frame, symbols, phases, channels, segment, count)
        return symbols, tables, classes

    def _classes(
        self, frame: np.ndarray, symbols: np.ndarray, phases: np.ndarray, channels: np.ndarray, segment: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The class of each of ``count`` segments (:meth:`ScaleClasses.choose`, weighing bits
        under the current tables; ``segment[P, n]`` each symbol's) and the table of every
        symbol ``[P, n]``."""
        coordinates = np.arange(self.lattice.dim)
        class_bits = self.tables.symbol_bits(np.arange(CLASS_COUNT), np.full(CLASS_COUNT, self.classes.table))

        def tables_of(classes: np.ndarray) -> np.ndarray:
            return self.table_base[classes[segment], channels, coordinates] + phases

        def bits_under(classes: np.ndarray) -> np.ndarray:
            bits = self.tables.symbol_bits(symbols.reshape(-1), tables_of(classes).reshape(-1))
            return np.bincount(segment.reshape(-1), weights=bits, minlength=count) + class_bits[classes]

        classes = self.classes.choose(frame * self.lattice.frame_unit, channels, segment, count, bits_under)
        return classes, tables_of(classes)

    # ------------------------------------------------------------------ public API
    def encode(self, x, segments=None) -> bytes:
        """Compress records ``x[N, record_dim]`` (one series in order, or with ``segments``
        several: their lengths, in order, each windowed on its own) to a bitstream."""
        return self._encode(self._check(x), reconstruct=False, segments=segments)[0]

    def _encode(self, arr: np.ndarray, reconstruct: bool, segments=None) -> tuple[bytes, np.ndarray | None]:
        """The bitstream of ``arr`` and, with ``reconstruct``, what decoding it gives. Where
        records repeat the record before them bit for bit, the stream that leaves them out
        (:mod:`ltc_beam.repeats`) is kept where it is shorter than the one of every record
        (on flat stretches a sample-coded stream codes repeats for next to nothing: ACSF1-like
        steps took 420 bytes without them, 242 with them); codecs scaling each series by its
        own statistics code every record."""
        whole = self._encode_kept(arr, reconstruct, segments)
        kept, kept_segments, repeated = self._repeats_left_out(arr, segments)
        if not repeated.size:
            return whole
        with warnings.catch_warnings():  # the whole stream's encode said it
            warnings.simplefilter("ignore", OffScaleWarning)
            blob, out = self._encode_kept(kept, reconstruct, kept_segments)
        framed = with_repeats(blob, len(arr), repeated)
        if len(framed) >= len(whole[0]):
            return whole
        return framed, None if out is None else out[repeats.sources(len(arr), repeated)]

    def _encode_kept(self, arr: np.ndarray, reconstruct: bool, segments=None) -> tuple[bytes, np.ndarray | None]:
        """:meth:`_encode` of records kept as they are: the stream is LTC-coded, or
        sample-coded where that is shorter at no more squared error on any column
        (``sample_fallback``); from 16 records it states the column bounds that pay for
        their bytes (:mod:`ltc_beam.codec.clamping`)."""
        lengths = self._series_lengths(len(arr), segments)
        segments = self._segments(len(arr), segments)
        x32 = arr.astype(np.float32, copy=False)
        scales = self._scales(x32, lengths)
        z, specials = self._split(x32, scales)
        if not len(arr):
            empty = np.zeros((0, self.config.record_dim), np.float32)
            return pack(self.id, arr.shape, SymbolEncoder(self.tables).finish(), specials), empty
        lossy, inner, kept, segments = self._lossy(z, specials, segments, lengths)
        q = self._quantize(lossy, inner)
        symbols, tables, classes = self._symbols(q)
        payload, escapes = self._entropy_code(symbols, tables, classes)
        if scales is not None:
            payload = scales.to_bytes() + payload
        blob = pack(self.id, arr.shape, payload, specials, segments=segments, skipped=kept is not None)
        try_samples = self.sample_fallback and scales is None and len(arr) >= sample_coding.MIN_RECORDS
        bounded = len(arr) >= clamping.MIN_RECORDS
        if not (reconstruct or try_samples or bounded):
            self._warn_if_off_scale(arr, specials, escapes, symbols.size, scales, stacklevel=5)  # the caller of encode
            return blob, None
        out = self._reconstruct(q.frame, q.rows, len(arr), inner, scales, kept)
        if try_samples:
            lattice_blob = blob
            blob, out = self._sample_coded(z, specials, blob, out, len(payload))
            if blob is not lattice_blob:  # the lattice symbols that escaped cost nothing: pv power's 2 sample-coded streams were told to retrain
                escapes = 0
        self._warn_if_off_scale(arr, specials, escapes, symbols.size, scales, stacklevel=5)
        if bounded:
            z_scores = self._z_scores if scales is None else lambda a: self._z_scores(scales.normalise(a))
            exchange = rd_quantization.multiplier(self.lattice, self._column_energies())
            if (bounds := clamping.chosen_bounds(x32, out, _lossy(arr.shape, specials), z_scores, exchange)) is not None:
                blob, out = with_bounds(blob, bounds), clamping.clamped(out, bounds)
        return blob, merge_specials(out, specials)

    def _sample_coded(self, z: np.ndarray, specials: SpecialValues, blob: bytes, out: np.ndarray, budget: int) -> tuple[bytes, np.ndarray]:
        """The sample-coded stream and its reconstruction where that is shorter than the LTC
        ``blob`` (payload ``budget`` bytes) at no more mean error relative to the variances of
        the columns that vary in it (no lower SNR), none above ``MAX_COLUMN_ERROR_GROWTH`` times
        its LTC error or the stream's (that taken at most 4x its LTC error), and no more error
        on the others; else ``blob, out``."""
        keep = _lossy(z.shape, specials)
        target = self._column_errors(z, out, keep)
        offsets = self._grid_offsets()
        z = filled(z, ~keep)  # exactly-sent positions repeat their column's neighbour (not 0: a jump)
        on_grid = z - offsets
        # columns of integers or decimals: a step of their grid (in data units) or coarser, where it is exact
        floor = sample_coding.grid_quanta(self._data_units(z), keep) / np.asarray(self.manifest["normalisation"]["std"])
        if sample_coding.hopeless(on_grid, keep, target, budget, floor):
            return blob, out
        steps = sample_coding.column_steps(on_grid, keep, target)
        if steps is None:
            return blob, out
        held = sample_coding.held_columns(on_grid, keep)[0]  # coded exactly at their own value's step
        # the one step no float32 may hold is a grid's: at its nearest float32 where the integers stay
        floor = sample_coding.float32_where_same(np.where(held, 0.0, floor), on_grid, keep)
        steps = sample_coding.onto_grid(steps, floor)
        trials = [steps]
        if (floor > 0).any() and not np.array_equal(exact := np.where(floor > 0, floor, steps), steps):
            # the grid itself: its integers may repeat patterns a coarser step breaks (Wiimote
            # readings, 1/26 to 3 decimals: 4.01 bits/value exact, 4.14 at 45.5 dB on a coarser step)
            trials.append(exact)
        # one error for every column that varies, at LTC's SNR (its mean error relative to the
        # columns' variances in this stream, the SNR ltc-beam reports): in z-scores, and where
        # the variances differ enough to matter also relative to them (every column at that
        # SNR). LTC's errors differ between columns, and at an equal mean equal ones cost
        # fewer bits (weather at 4 bits/value: 4.21 at 40.0 dB with LTC's errors column by
        # column, 3.83 at 39.9 with equal z errors; pvlib's soiling inputs, whose test split's
        # variances are 0.19-1.9x the training's: 2.32 bits/value at 22.7 dB, 1.90 at 22.8
        # equal to their variance, uniform + zstd 1.77). Kept at no lower SNR; a constant
        # column at no more than its own error, and none above ``MAX_COLUMN_ERROR_GROWTH``
        # times its LTC error or the stream's.
        varying = ~held
        spread = sample_coding.column_variances(z, keep)
        relative = target[varying] / spread[varying]  # LTC's, whose mean the SNR is
        shares = [np.ones_like(spread)]
        if varying.any() and spread[varying].max() > RELATIVE_TRIAL_SPREAD * spread[varying].min():
            shares.append(spread)
        # the stream's error at a column's variance, up to 4x its LTC error: a column all but
        # constant in this stream (an idle sensor's noise) weighs most in the mean, and the
        # others' errors grew 30-60x at an equal mean
        stream = relative.mean() * spread if varying.any() else target
        bound = MAX_COLUMN_ERROR_GROWTH * np.maximum(target, np.minimum(stream, MAX_COLUMN_ERROR_GROWTH**2 * target))
        for share in shares:
            level = relative.sum() / (share[varying] / spread[varying]).sum() if varying.any() else 0.0
            equal = np.where(varying, level * share, target)
            # each column at that error, and one step factor for all at that mean error
            # (sample_coding.shared_steps: 40 LFW faces 4,478 -> 3,351 bytes at the same SNR)
            tries = [sample_coding.column_steps(on_grid, keep, equal), sample_coding.shared_steps(on_grid, keep, equal, 1 / spread)]
            if varying.any() and (equal[varying] > (cap := MAX_COLUMN_ERROR_GROWTH * target[varying])).any():
                # where that error is above twice some column's LTC error, also each column at
                # one error as far as twice its own allows (MNIST at 2 bits/value: 1.19 -> 1.10)
                capped = target.copy()
                capped[varying] = sample_coding.capped_targets(share[varying], spread[varying], cap, relative.sum())
                tries.append(sample_coding.column_steps(on_grid, keep, capped))
            trials.extend(sample_coding.onto_grid(steps, floor) for steps in tries if steps is not None)
        fitting = []
        for trial in trials:
            candidate, z_hat = sample_coding.encode_samples(z, trial, offsets)
            decoded = self._data_units(z_hat)
            errors = self._column_errors(z, decoded, keep)
            if (
                (errors[~varying] <= target[~varying]).all()
                and (errors[varying] / spread[varying]).sum() <= relative.sum()
                and (errors <= bound).all()
            ):
                fitting.append((candidate, decoded))
        # shortest (by the candidates' quick sizes) first: the first that beats the lattice
        # stream is kept, so a large stream mostly takes one slow compression
        for candidate, decoded in sorted(fitting, key=lambda pair: pair[0].size):
            alternative = pack(self.id, z.shape, candidate.payload(), specials, sample_coded=True)
            if len(alternative) < len(blob):
                return alternative, decoded
        return blob, out

    def _grid_offsets(self) -> np.ndarray:
        """Per column, the z-score of the value 0: the sample-coding grid holds data 0."""
        offsets = self._z_scores(np.zeros((1, self.config.record_dim), np.float32))[0]
        return np.where(np.isfinite(offsets), offsets, 0.0)

    def _column_errors(self, z: np.ndarray, decoded: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Mean squared error per column, in z-scores, of ``decoded`` (data units) over ``keep``."""
        sq = np.where(keep, (self._z_scores(decoded) - z) ** 2, 0.0)
        return sq.sum(axis=0) / np.maximum(keep.sum(axis=0), 1)

    def _entropy_code(self, symbols: np.ndarray, tables: np.ndarray, classes: np.ndarray) -> tuple[bytes, int]:
        """Payload of one stream: class symbols first, then one step per lattice coordinate
        (schemas/BITSTREAM.md); and how many symbols escaped their tables."""
        encoder = SymbolEncoder(self.tables)
        if classes.size:
            encoder.encode(classes, np.full(classes.size, self.classes.table))
        for i in range(self.lattice.dim):
            encoder.encode(symbols[:, i], tables[:, i])
        return encoder.finish(), encoder.num_escapes

    def encode_each(self, x) -> list[bytes]:
        """One bitstream per record (the record layout), each decoding on its own, with the
        transform and lattice run once over all records: 2-3x faster than
        ``[encode(x[i : i + 1]) for i …]``, and the same streams except, rarely, where a
        latent lies within float rounding of a cell boundary (a batched matrix product and a
        one-row one differ in the last bit: about 1 record in 10,000). Codecs whose records
        are not coded independently in one pass (block mode, windows) encode record by record
        (scale classes did too: 2,100-2,600 records/s)."""
        arr = self._check(x)
        if self.series_scaled:
            raise InputError(
                "this codec scales each series by its own statistics (trained with normalise='series'), "
                "which one-record streams cannot carry: encode whole series (the chunk layout)"
            )
        if not self.config.per_record or not len(arr):
            if len(arr) > 1 and self.config.vectors_per_block * self.config.window > 1:
                warnings.warn(
                    f"each record is a stream of its own, padded to the {self.config.vectors_per_block * self.config.window} "
                    f"records this codec ({self.config.mode} mode, window {self.config.window}) codes together: many times "
                    "the rate of encode() (the bundled 2-bit BasicMotions codec: 46 bits/value); one stream per record suits "
                    "vector-mode codecs of window 1",
                    UserWarning,
                    stacklevel=2,
                )
            return [self.encode(arr[i : i + 1]) for i in range(len(arr))]
        z, specials = self._split(arr)
        symbols, tables, classes = self._symbols(self._quantize(z), per_record=True)
        points = self.config.latent_dim // self.lattice.dim  # lattice points per record
        d = self.config.record_dim
        owner = specials.positions // d
        bounds = np.searchsorted(owner, np.arange(len(arr) + 1))
        out, escapes = [], 0
        for r in range(len(arr)):
            rows = slice(r * points, (r + 1) * points)
            payload, escaped = self._entropy_code(symbols[rows], tables[rows], classes[r : r + 1])
            at = slice(bounds[r], bounds[r + 1])
            out.append(pack(self.id, (1, d), payload, SpecialValues(specials.positions[at] - r * d, specials.bits[at])))
            escapes += escaped
        self._warn_if_off_scale(arr, specials, escapes, symbols.size, streams=len(arr))
        return out

    def _warn_if_off_scale(
        self, x: np.ndarray, specials: SpecialValues, escapes: int, symbols: int, scales: SeriesScales | None = None,
        stacklevel: int = 3, streams: int = 1,
    ) -> None:
        """Warn when many of ``x``'s values (the records of ``streams`` bitstreams) are sent
        exactly or escape the tables, naming the likeliest cause."""
        if x.size < OFF_SCALE_MIN_VALUES:
            return
        limit = OFF_SCALE_FRACTION * x.size
        if len(specials.positions) <= limit and escapes <= OFF_SCALE_FRACTION * symbols:
            return  # outliers are a subset of the specials: no need to count them
        outliers = len(specials.positions) - int((~np.isfinite(x)).sum())
        if outliers <= limit and escapes <= OFF_SCALE_FRACTION * symbols:
            return
        std = np.asarray(self.manifest["normalisation"]["std"])
        with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            unit = x.astype(np.float64) if scales is None else scales.normalise(x)
            finite = np.where(np.isfinite(unit), unit, np.nan)
            spread = np.nanstd(finite, axis=0) / std
            shift = (np.nanmean(finite, axis=0) - np.asarray(self.manifest["normalisation"]["mean"])) / std
        off = np.abs(np.log(np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)))
        worst = int(np.argmax(off))
        said = []
        if outliers > limit:
            said.append(f"{outliers} of {x.size} values lie beyond {self.manifest.get('outlier_z', OUTLIER_Z):g} training std (sent exactly, 32 bits each)")
        if escapes > OFF_SCALE_FRACTION * symbols:
            said.append(f"{escapes} of {symbols} latent symbols escape the tables (coded apart, at extra cost)")
        scale = spread[worst]
        shift = np.where(np.isfinite(shift), shift, 0.0)
        moved = int(np.argmax(np.abs(shift)))
        constant = self._constant()
        # one stream's records, not the whole input (compress and evaluate code many: one
        # artefact-laden series of 26 read as if all the data were off)
        where = "of this bitstream" if streams == 1 else "of these bitstreams (one each)"
        these, are, have = (f"the {len(x):,} records {where}", "are", "have") if len(x) > 1 else ("this record", "is", "has")
        varied = np.flatnonzero(constant & (spread > 0))  # its values all travel exactly
        if len(varied):
            column = varied[0]
            why = (f"column {column_name(self, column)} was constant in the training data "
                   f"({self.manifest['normalisation']['mean'][column]:.7g}) and varies in this data")
            advice = "Retrain the codec on data where it varies, or leave it out of the coded columns."
        elif np.isfinite(scale) and not 1 / OFF_SCALE_SPREAD <= scale <= OFF_SCALE_SPREAD:
            why = f"{these} {are} off the codec's training range: column {column_name(self, worst)} spreads {scale:.3g}x its training std"
            advice = "Retrain the codec on data like this (units, scale)."
        elif abs(shift[moved]) > OFF_SCALE_SHIFT:
            why = f"{these} {are} off the codec's training range: column {column_name(self, moved)} lies {shift[moved]:+.3g} training std from its training mean"
            advice = "Retrain the codec on data like this (units, offsets)."
        else:
            seen = spread[np.isfinite(spread) & ~constant]
            spreads = "" if not seen.size else (
                f" (its values spread {seen[0]:.3g}x the training std)" if seen.size == 1
                else f" (its columns spread {seen.min():.3g}-{seen.max():.3g}x their training std)"
            )
            why = f"{these} {have} heavier tails than the training data{spreads}"
            advice = "Retrain the codec on more data like this."
        warnings.warn(f"{why}: {' and '.join(said)}. {advice}", OffScaleWarning, stacklevel=stacklevel)

    def decode(self, blob: bytes) -> np.ndarray:
        """Bitstream → float32 records ``[N, record_dim]``; raises FormatError / CodecMismatchError."""
        return self.decode_each([blob])[0]

    @torch.no_grad()
    def decode_each(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        """``[decode(b) for b in blobs]``, with the synthesis transform run once over all the
        streams' lattice points (one matrix product instead of one per stream): the record
        layout's one-record streams decode several times faster. Outputs equal ``decode``'s
        up to float rounding of the batched product."""
        out: list[np.ndarray | None] = [None] * len(blobs)
        pending = []  # (index, latents, records, segments, specials, scales, kept, bounds)
        repeated = {}  # index: the frame, where it leaves out repeated records
        for index, blob in enumerate(blobs):
            frame = unpack(blob, expected_codec_id=self.id)
            decoded = self._decode_points(frame)
            if frame.repeated:
                repeated[index] = frame
            if isinstance(decoded, np.ndarray):
                out[index] = decoded
            else:
                pending.append((index, *decoded))
        if pending:
            vectors = self._transform("synthesis", torch.cat([p[1] for p in pending]).to(self.device)).double().cpu().numpy()
            start = 0
            for index, latents, records, segments, specials, scales, kept, bounds in pending:
                part = vectors[start : start + len(latents)]
                start += len(latents)
                out[index] = merge_specials(clamping.clamped(self._records(part, records, segments, scales, kept), bounds), specials)
        for index, frame in repeated.items():
            out[index] = out[index][repeats.sources(frame.shape[0], np.asarray(frame.repeated))]
        return out

    def _decode_points(self, frame: Frame):
        """An unpacked stream's records (its kept ones, where it leaves out repeats) when no
        transform is needed (sample-coded or empty), else ``(latents, records, segments,
        specials, scales, kept, bounds)`` for :meth:`decode_each` to finish."""
        if len(frame.shape) != 2 or frame.shape[1] != self.config.record_dim:
            raise FormatError(f"bitstream shape {frame.shape} does not fit records of {self.config.record_dim} values")
        if frame.numel > MAX_STREAM_VALUES:
            raise FormatError(f"bitstream states {frame.numel} values, more than any ltc-beam stream holds ({MAX_STREAM_VALUES}): it is damaged")
        records = frame.coded_records
        if frame.repeated and self.series_scaled:
            raise FormatError("bitstream is damaged: a series-scaled codec's stream leaves out repeated records")
        if frame.sample_coded:
            if self.series_scaled:
                raise FormatError("bitstream is damaged: a sample-coded stream of a series-scaled codec")
            z = sample_coding.decode_samples(frame.payload, (records, frame.shape[1]), self._grid_offsets())
            return merge_specials(clamping.clamped(self._data_units(z), frame.bounds), frame.specials)
        payload, scales = frame.payload, None
        if self.series_scaled and records:
            scales, payload = SeriesScales.read(payload, self._series_lengths(records, frame.segments), self.config.record_dim)
        decoder = SymbolDecoder(payload, self.tables)
        if records == 0:
            if frame.skipped:
                raise FormatError("bitstream is damaged: it leaves out records, but holds none")
            decoder.finish()
            return merge_specials(np.zeros((0, self.config.record_dim), np.float32), frame.specials)
        segments = self._segments(records, frame.segments)  # unpack checked their sum
        kept = None
        if frame.skipped:
            kept = self._kept_records(frame.specials, records)
            if kept is None:
                raise FormatError("bitstream is damaged: it leaves out the records whose every value is special, but none (or all) are")
            segments = self._kept_segments(kept, frame.segments)  # as stated: they may align in full counts
        rows = self._rows(records if kept is None else int(kept.sum()), segments)
        n = self.lattice.dim
        channels = self._channels(rows)
        symbol_class = np.zeros(channels.shape, np.int64)
        if self.classes is not None:
            classes = decoder.decode(np.full(self.classes.segments(rows), self.classes.table))
            if classes.size and (classes.min() < 0 or classes.max() >= CLASS_COUNT):
                raise FormatError("bitstream is damaged: scale class out of range")
            symbol_class = classes[self.classes.symbol_segments(rows)]
        builder = self.mapper.start(len(channels))
        for i in range(n):
            tables = self.table_base[symbol_class[:, i], channels[:, i], i] + builder.phases()
            builder.push(decoder.decode(tables))
        decoder.finish()
        return self._latents(builder.frame, rows), records, segments, frame.specials, scales, kept, frame.bounds

    def _rows(self, records: int, segments: tuple[int, ...] | None = None) -> int:
        window = self.config.window
        windows = -(-records // window) if segments is None else sum(-(-n // window) for n in segments)
        n = self.config.vectors_per_block
        return -(-windows // n) * n

    def reconstruct(self, x, segments=None) -> np.ndarray:
        """What ``decode(encode(x, segments))`` returns, as the encoder computes it (nothing decoded)."""
        return self._encode(self._check(x), reconstruct=True, segments=segments)[1]

    def code_length_bits(self, x, segments=None) -> float:
        """Exact code length of ``x``'s lattice symbols under the stored integer tables (no side
        channel, no frame). ``encode`` may write the sample-coded stream instead where that is
        shorter (``sample_fallback``): ``8 * len(encode(x))`` is what a stream takes (a
        geophone codec: 5.11 bits/value here, 3.34 in its stream). Records that repeat the
        record before them are not counted (streams leave them out where that is shorter)."""
        arr, segments, _ = self._repeats_left_out(self._check(x), segments)
        if not len(arr):
            return 0.0
        z, specials = self._split(arr.astype(np.float32, copy=False), self._stream_scales(arr, segments))
        lossy, inner, _, _ = self._lossy(z, specials, self._segments(len(arr), segments), self._series_lengths(len(arr), segments))
        return float(self.tables.bits(*self._coded([self._quantize(lossy, inner)])))

    def voronoi_bits_estimate(self, x, max_points: int = 2048, samples: int = 2048) -> float:
        """The paper's Monte-Carlo rate estimate, in bits per input value (a diagnostic).

        Evaluated on the first rows of ``x`` (about ``max_points`` lattice points). NaN when
        the estimate did not converge (over 1 % of the points rest on too few effective
        samples: latent channels whose density is far narrower than the lattice cell).
        """
        arr = self._check(x)
        n = self.lattice.dim
        per_row = self.config.latent_dim if self.config.mode == "block" else self.config.latent_dim // n
        rows = max(n, (max_points // max(1, per_row)) // n * n)
        windows = min(len(arr), rows * self.config.window)
        if not windows:
            return 0.0
        x32 = arr[:windows].astype(np.float32, copy=False)
        z, _ = self._split(x32, self._scales(x32, (windows,)))
        q = self._quantize(z, nearest=True)
        y_hat = self._latents(q.frame, q.rows).double()
        model = copy.deepcopy(self.model).cpu().double()
        bits, weak = model.voronoi_bits_estimate(y_hat, samples=samples)
        if weak > 0.01 * (y_hat.numel() // n):
            return math.nan
        return float(bits) / (q.rows * self.config.input_dim)

    def __repr__(self) -> str:
        c = self.config
        return f"Codec(id={self.id}, lattice={c.lattice}, mode={c.mode}, window={c.window}, record_dim={c.record_dim})"


def constant_columns(series: list[np.ndarray], record_dim: int) -> list[bool]:
    """Per column: all its finite values in ``series`` are one value, or there is none (an
    all-NaN column decodes as its mean, 0, and any finite value it holds later travels in the
    exact side channel: coded lossily, with no training variance behind it, 1000.0 came back
    as 901.7)."""
    if not series:
        return [False] * record_dim
    x = np.concatenate(series)
    flags = []
    for column in x.T:
        finite = column[np.isfinite(column)]
        flags.append(not finite.size or bool(np.all(finite == finite[0])))
    return flags


def check_base(base: np.ndarray, classes: ScaleClasses | None, tables: SymbolTables, latent_dim: int, n: int) -> np.ndarray:
    """Table bases as ``[classes, channels, coordinates]``; raises ValueError when they do not
    fit the tables (a damaged or foreign artifact)."""
    base = np.asarray(base)
    shape = (latent_dim, n) if classes is None else (CLASS_COUNT, latent_dim, n)
    if base.shape != shape or base.dtype.kind not in "iu":
        raise ValueError(f"table bases have shape {base.shape} ({base.dtype}), expected {shape} integers")
    if base.size and (base.min() < -1 or base.max() >= tables.num_tables):
        raise ValueError("table bases point outside the tables")
    if classes is not None and not 0 <= classes.table < tables.num_tables:
        raise ValueError("scale-class table index outside the tables")
    return base.astype(np.int64).reshape((-1, latent_dim, n))


def content_hash(manifest: dict, tensors: dict[str, np.ndarray]) -> str:
    """sha256 over the manifest (without id and metrics) and every named tensor; 32 hex chars."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in manifest.items() if k not in ("codec_id", "metrics")}, sort_keys=True).encode())
    for name, array in sorted(tensors.items()):
        h.update(name.encode())
        h.update(str(array.dtype).encode() + str(array.shape).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:32]


def _finite_float32(x: np.ndarray) -> np.ndarray:
    """``x`` as float32, values beyond its range at its largest: a column whose values come
    near float32's limit (3.4e38) decoded some of them as ±inf, silently."""
    top = np.finfo(np.float32).max
    return np.clip(x, -top, top).astype(np.float32)


def _lossy(shape: tuple[int, int], specials: SpecialValues) -> np.ndarray:
    """``[N, d]`` mask of the values that take the lossy path (not sent exactly)."""
    keep = np.ones(shape[0] * shape[1], bool)
    keep[specials.positions] = False
    return keep.reshape(shape)
