"""Training an LTC model on the exact code length (rate) plus λ·MSE.

Generalisation is part of training: a validation split is held out (whole series when
there are several), the best checkpoint by validation loss is kept, and training stops
early when validation stops improving. ``target_bits_per_value`` adapts λ by dual ascent
during the first part of training, then freezes it. The data's checks and splits are
:mod:`ltc_beam.codec.training_data`'s; the steps after training (the start check, the
density refit, the rate calibration, the coded validation) :mod:`ltc_beam.codec.finishing`'s.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ltc_beam import lattices
from ltc_beam.codec.config import OUTLIER_Z, CodecConfig, default_latent_dim
from ltc_beam.codec.finishing import (
    MISSED_TARGET, calibrate_on_training_records, keep_the_start_if_coded_better, record_coded_validation, refit_density_if_shorter,
    snr_gain, warn_if_tables_capped, warn_if_validation_costs_more,
)
from ltc_beam.codec.layout import filled, pad_rows, series_windows
from ltc_beam.codec.model import LtcModel, float32_default
from ltc_beam.codec.scaling import NORMALISATIONS, scaled_pieces
from ltc_beam.codec.training_data import (
    MAX_TRAINING_VALUES, as_series, column_statistics, distinct_series, frame_columns_chosen, split_series, training_sample,
    warn_if_columns_hold_no_values, warn_if_flag_columns, warn_if_float32_limits, warn_if_records_follow_each_other,
    warn_if_series_scales_differ, warn_if_statistics_cost, whole_number,
)
from ltc_beam.codec.transforms import init_from_pca, principal_axes
from ltc_beam.errors import InputError, OffScaleWarning, WindowHint, named_series_as_frame
from ltc_beam.progress import progress_bar
from ltc_beam.storage import exists, read_bytes, write_bytes

if TYPE_CHECKING:
    from ltc_beam.codec.codec import Codec

REFIT_LATENT_VALUES = 1 << 18  # latent values the final density refit optimises over


@dataclass
class TrainingOptions:
    """Everything that steers optimisation (not the architecture)."""

    lmbda: float | None = None
    target_bits_per_value: float | None = None
    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = "auto"
    validation_fraction: float = 0.15
    eval_every: int = 100
    patience: int = 8  # evaluations without improvement before stopping
    checkpoint: str | None = None
    progress: bool | None = None  # None: on a terminal only
    normalise: str = "column"  # how the series were scaled (what the warnings advise)


@dataclass
class TrainingSummary:
    steps_run: int = 0
    best_step: int = 0
    lmbda: float = 0.0
    train_vectors: int = 0
    validation_vectors: int = 0
    validation: dict = field(default_factory=dict)
    #: Target mode: validation SNR at the target rate of the PCA start and of the trained
    #: model, and whether the start was kept (:meth:`Trainer.keep_the_start_if_far_better`).
    start_check: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: Adapting λ stays within this factor of the high-resolution estimate it starts from
#: (±6.6 bits per latent channel: far beyond any target the estimate could miss).
MAX_LMBDA_FACTOR = 1e4
#: Below both, training warns that its validation figures are unreliable (vectors of long
#: windows hold many values: 39 windows of 32 records, 1,248 values, warned needlessly).
FEW_VALIDATION_VECTORS = 100
FEW_VALIDATION_VALUES = 1000


def vectors_of(
    series: list[np.ndarray], window: int, mean: np.ndarray, std: np.ndarray, sliding: bool = False, hold: bool = True
) -> np.ndarray:
    """Normalised input vectors of all series. Non-finite values, and values beyond
    ``OUTLIER_Z`` standard deviations, which the codec sends exactly, hold what the codec
    codes in their place: with ``hold`` (codecs that code records together) the column's
    neighbouring value (:func:`~ltc_beam.codec.layout.filled`), else the mean. Training
    put the mean there whatever the codec: a jump at each edge of every gap, which the
    transforms and density learnt and the codec never met (BasicMotions with 9.5 % of its
    values missing in bursts, E8 window 4: 1.925 → 1.891 bits/value at 15.7 → 15.8 dB;
    monthly stock prices, 37 % missing, 1 bit/value asked: 34.5 → 36.5 dB at 0.84).

    ``sliding`` takes every window offset (training); otherwise windows are aligned as the
    codec forms them (validation).
    """
    if not series:
        return np.zeros((0, window * len(mean)))
    lengths = [len(s) for s in series]
    with np.errstate(invalid="ignore", over="ignore"):
        z = (np.concatenate(series) - mean) / std
        exact = ~np.isfinite(z) | (np.abs(z) > OUTLIER_Z)
    z = np.where(exact, 0.0, z)
    if hold:
        z = filled(z, exact, lengths)
    return series_windows(z, lengths, window, sliding)


def parameter_groups(model: LtcModel, lr: float, step: float) -> list[dict]:
    """Adam groups whose step sizes follow each tensor's natural scale.

    The PCA start puts the quantizer step into the weights (analysis ~ 1/step, synthesis
    ~ step), and Adam moves every weight by about ``lr`` whatever its size. One step size
    for all is then a relative perturbation that grows with the rate: at 8 bits/value on
    Daphnet (step ~0.02) the synthesis weights jittered by ~1 % per update and the
    transforms alone could not reconstruct beyond ~39 dB. Tensors in latent units
    (the analysis output side, the synthesis input side) get ``lr / step`` and
    ``lr * step``; the rest (hidden MLP layers, data-unit biases, the density) ``lr``.
    """
    analysis, synthesis = model.analysis, model.synthesis
    latent_out = [analysis.linear.weight, analysis.linear.bias]
    latent_in = [synthesis.linear.weight]
    if analysis.mlp is not None:
        latent_out += list(analysis.mlp[-1].parameters())
        latent_in.append(synthesis.mlp[0].weight)
    special = {id(p) for p in latent_out + latent_in}
    rest = [p for p in model.parameters() if id(p) not in special]
    return [
        {"params": latent_out, "lr": lr / step},
        {"params": latent_in, "lr": lr * step},
        {"params": rest, "lr": lr},
    ]


def initial_step(variances: torch.Tensor, nsm: float, options: TrainingOptions, values_per_latent: float) -> float:
    """Quantizer step for the PCA start, from λ (high-rate optimum) or the target rate."""
    if options.target_bits_per_value is None:
        return math.sqrt(1.0 / (2.0 * options.lmbda * nsm * math.log(2)))
    sigma = variances.clamp_min(1e-12).sqrt().double()
    target = options.target_bits_per_value * values_per_latent * len(sigma)

    def rate(step: float) -> float:  # high-rate Gaussian estimate, zero for small components
        return float(torch.clamp(torch.log2(sigma * math.sqrt(2 * math.pi * math.e) / step), min=0).sum())

    lo, hi = 1e-6, 1e6
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if rate(mid) > target else (lo, mid)
    return math.sqrt(lo * hi)


#: How much better (dB, validation, at the target rate) the PCA start must be for training to
#: go back to it (:meth:`Trainer.keep_the_start_if_far_better`).
START_MARGIN_DB = 3.0

#: From this share of the steps on, target-mode training stops once it is ``EARLY_STOP_MARGIN_DB``
#: below its start (both at the target rate): the start check would most likely keep the start.
EARLY_STOP_FRACTION = 0.3

#: Share of validation values beyond the training split's range above which the warning
#: that training fell behind its start names that as the likely cause.
BEYOND_TRAINING_SHARE = 0.05
#: ... and above which it suggests ``normalise="series"``: a level that moved away, as a
#: trend's does. A seasonal tail lies a little beyond (hourly temperatures: 6 %), where series
#: normalisation cost 25 % more bits than the column's.
SERIES_ADVICE_SHARE = 0.5
EARLY_STOP_MARGIN_DB = 2 * START_MARGIN_DB

#: Training vectors the least-squares decoder refit uses (the fit has ``input_dim + 1``
#: unknowns per output; quantizing and solving for 200k vectors of a T=32 window took 9 s).
REFIT_ROWS = 1 << 16


class Trainer:
    """Holds the model, optimiser and data of one training run (checkpointable)."""

    def __init__(self, config: CodecConfig, series: list[np.ndarray], options: TrainingOptions):
        self.options = options
        self.config = config
        self.device = resolve_device(options.device)
        torch.manual_seed(options.seed)
        train_series, val_series = split_series(series, options.validation_fraction, options.seed, config.window)
        # the whole data's statistics: a column mostly missing from the training split (a
        # wide table's late starter, its tail held out) was normalised by a few values, and
        # evaluating the very file trained on warned that it spread 5.7x the training std
        mean, std = column_statistics(series)
        n = config.vectors_per_block
        hold = not config.per_record  # as the codec fills what it sends exactly
        train_x = vectors_of(train_series, config.window, mean, std, sliding=True, hold=hold)
        self.train_x = torch.as_tensor(train_x, dtype=torch.float32)
        val = vectors_of(val_series, config.window, mean, std, hold=hold) if val_series else np.zeros((0, config.input_dim))
        self.val_x = torch.as_tensor(pad_rows(val[:50_000], n), dtype=torch.float32)
        self.validation_vectors = len(val)  # before padding to whole blocks
        if len(self.train_x) < max(n, MIN_TRAINING_VECTORS):  # vector mode trained on one window of 20,000 values for minutes
            fewer = f": windows of {config.window} records make few vectors, give a smaller window" if config.window > 1 else ""
            raise InputError(f"need at least {max(n, MIN_TRAINING_VECTORS)} training vectors, got {len(self.train_x)}{fewer}")
        if len(val) < FEW_VALIDATION_VECTORS and len(val) * config.input_dim < FEW_VALIDATION_VALUES:
            warnings.warn(
                f"only {len(val)} validation vectors (and {len(self.train_x)} training vectors): the validation "
                "figures are noisy and the codec may code new data worse than they say; train on more records",
                UserWarning,
                stacklevel=2,
            )
        self.model = LtcModel(config, mean, std)
        lat = lattices.get(config.lattice)
        axes, variances = principal_axes(self.train_x, config.latent_dim)
        step = initial_step(variances, lat.nsm, options, config.input_dim / config.latent_dim)
        init_from_pca(self.model.analysis, self.model.synthesis, self.train_x.mean(0), axes, step)
        with torch.no_grad():
            self.model.density.fit_initial(self.model.analysis(self.train_x[:20_000]))
        self.start_state = copy.deepcopy(self.model.state_dict())
        self.lmbda = options.lmbda if options.lmbda is not None else 1.0 / (2 * lat.nsm * step**2 * math.log(2))
        # where the rate barely answers λ (latents that need many steps to grow), adapting λ
        # ran away (8e13 from 1.5e3 on ACSF1 asked for 4 bits/value), towards overflow
        self.lmbda_range = (self.lmbda / MAX_LMBDA_FACTOR, self.lmbda * MAX_LMBDA_FACTOR)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, options.learning_rate, step))
        self.generator = torch.Generator().manual_seed(options.seed)
        self.step = 0
        self.best_loss = math.inf
        self.best_step = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.stale = 0
        self.rate_ema: float | None = None
        self._recent: list[tuple[float, float]] = []
        self.postfix: dict = {}
        self._start_snr: float | None = None  # the start's validation SNR at the target rate, once measured
        self.stopped_below_start = False

    # ------------------------------------------------------------------ loop
    @property
    def adapting(self) -> bool:
        return self.options.target_bits_per_value is not None and self.step < int(0.6 * self.options.steps)

    def batch(self) -> torch.Tensor:
        n = self.config.vectors_per_block
        size = max(n, self.options.batch_size // n * n)
        index = torch.randint(len(self.train_x), (size,), generator=self.generator)
        return self.train_x[index].to(self.device)

    def train_step(self) -> tuple[float, float]:
        self.model.train()
        x = self.batch()
        out = self.model(x)
        rate = out.bits / x.numel()
        loss = rate + self.lmbda * out.mse
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.optimizer.step()
        self.step += 1
        r = float(rate.detach())
        if self.adapting:
            self.rate_ema = r if self.rate_ema is None else 0.95 * self.rate_ema + 0.05 * r
            gap = self.options.target_bits_per_value - self.rate_ema
            self.lmbda = float(np.clip(self.lmbda * math.exp(float(np.clip(0.05 * gap, -0.1, 0.1))), *self.lmbda_range))
        return r, float(out.mse.detach())

    @torch.no_grad()
    def validate(self) -> dict:
        """Exact (quantized) bits per value, MSE and loss on the validation vectors."""
        x = self.val_x if len(self.val_x) else self.train_x[: 8192 // 8 * 8]
        self.model.eval()
        bits, sq = 0.0, 0.0
        n = self.config.vectors_per_block
        chunk = 8192 // n * n or n
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].to(self.device)
            out = self.model(part)
            bits += float(out.bits)
            sq += float(out.mse) * part.numel()
        values = x.numel()
        result = {"bits_per_value": bits / values, "mse": sq / values}
        result["loss"] = result["bits_per_value"] + self.lmbda * result["mse"]
        result["snr_db"] = 10 * math.log10(1.0 / max(result["mse"], 1e-300))
        return result

    def advance(self) -> bool:
        """One optimisation step plus, every ``eval_every`` steps, validation, best-model
        bookkeeping and a checkpoint. Returns False when training should stop."""
        opts = self.options
        r, m = self.train_step()
        self._recent.append((r, m))
        if self.step % opts.eval_every and self.step != opts.steps:
            return self.step < opts.steps
        val = self.validate()
        rates, mses = zip(*self._recent)
        self._recent = []
        self.postfix = {
            "bits": f"{np.mean(rates):.3f}",
            "snr": f"{10 * math.log10(1 / max(np.mean(mses), 1e-300)):.2f}dB",
            "val_bits": f"{val['bits_per_value']:.3f}",
            "val_snr": f"{val['snr_db']:.2f}dB",
        }
        if self.adapting:
            self.best_loss = math.inf  # λ still moves: losses are not comparable yet
        elif val["loss"] < self.best_loss - 1e-6:
            self.best_loss, self.best_step, self.stale = val["loss"], self.step, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.stale += 1
        if opts.checkpoint:
            self.save_checkpoint(opts.checkpoint)
        if self.far_below_start(val):
            self.stopped_below_start = True
            return False
        return self.step < opts.steps and self.stale < opts.patience

    def snr_at_target(self, val: dict) -> float:
        """Validation SNR brought to the target rate at 6.02 dB per bit per value."""
        return val["snr_db"] + 6.02 * (self.options.target_bits_per_value - val["bits_per_value"])

    def start_snr_at_target(self) -> float:
        """:meth:`snr_at_target` of the PCA start (validated once; the model is left as it was)."""
        if self._start_snr is None:
            current = copy.deepcopy(self.model.state_dict())
            self.model.load_state_dict(self.start_state)
            self._start_snr = self.snr_at_target(self.validate())
            self.model.load_state_dict(current)
        return self._start_snr

    def far_below_start(self, val: dict) -> bool:
        """Whether target-mode training, past ``EARLY_STOP_FRACTION`` of its steps (and before
        the last), stands ``EARLY_STOP_MARGIN_DB`` below its start: the rest of the steps
        would most likely go to a model the start check then drops (unit-normalised 128-value
        embeddings: 68 s of training for 25 dB against the start's 46). The start check
        still judges the model kept (the best validated one)."""
        steps = self.options.steps
        if self.options.target_bits_per_value is None or not EARLY_STOP_FRACTION * steps <= self.step < steps:
            return False
        return self.snr_at_target(val) < self.start_snr_at_target() - EARLY_STOP_MARGIN_DB

    def run(self) -> TrainingSummary:
        """Train until ``steps`` or early stopping; keep the best validated model."""
        bar = progress_bar(self.options.progress, total=self.options.steps, initial=self.step, desc="train", unit="step")
        going = self.step < self.options.steps and self.stale < self.options.patience
        while going:
            going = self.advance()
            bar.update(1)
            if self.postfix:
                bar.set_postfix(self.postfix, refresh=False)
        bar.close()
        if self.best_loss < math.inf:
            self.model.load_state_dict(self.best_state)
        validation, start_check = self.validate(), {}
        if self.options.target_bits_per_value is not None:
            start_check = self.keep_the_start_if_far_better(validation)
            if start_check["kept_start"]:
                validation = self.validate()
        return TrainingSummary(
            steps_run=self.step,
            best_step=self.best_step,
            lmbda=self.lmbda,
            train_vectors=len(self.train_x),
            validation_vectors=self.validation_vectors,
            validation=validation,
            start_check=start_check,
        )

    def keep_the_start_if_far_better(self, validation: dict | None = None) -> dict:
        """Go back to the PCA start when training ended far below it (target mode).

        Each model's validation SNR is brought to the target rate at 6.02 dB per bit per
        value; the start is kept when it is ``START_MARGIN_DB`` better. A safety net: on wide
        vectors (384 values of rank 48 plus a noise floor, 2 bits/value asked) steering λ
        to the target took the codec from 37.6 dB at the start to 16.5 dB after 1,500 steps
        (20.6 dB coded where PCA + uniform quantisation + zstd gets 30.9 dB at 1.08 bits).
        ``validation``: the trained model's :meth:`validate`, when the caller has it."""
        trained = self.snr_at_target(validation if validation is not None else self.validate())
        start = self.start_snr_at_target()
        kept = start > trained + START_MARGIN_DB
        if kept:
            self.model.load_state_dict(self.start_state)
            stopped = f", stopped at step {self.step}" if self.stopped_below_start else ""
            warnings.warn(
                f"training ended at an SNR of {trained:.1f} dB on the validation split (brought to "
                f"{self.options.target_bits_per_value:g} bits/value), well below the {start:.1f} dB of its PCA start{stopped}: "
                "the codec keeps the start's transforms" + self._beyond_training_note(),
                UserWarning,
                stacklevel=3,
            )
        return {
            "start_snr_db_at_target": start, "trained_snr_db_at_target": trained, "kept_start": kept,
            "stopped_below_start": self.stopped_below_start,
        }

    def _beyond_training_note(self) -> str:
        """Why training fell behind, when the validation split lies beyond the training
        split's range: the held-out tail of a trending series (S&P 500 closes, 0.5 bits/value
        asked: -100 dB; with ``normalise="series"`` the test years code at 0.53 bits/value
        and 36.0 dB, where uniform quantisation + zstd needs 1.07)."""
        val = self.val_x[: self.validation_vectors]
        if not len(val):
            return ""
        low, high = self.train_x.amin(0), self.train_x.amax(0)
        beyond = float(((val < low) | (val > high)).double().mean())
        if beyond < BEYOND_TRAINING_SHARE:
            return ""
        trend = beyond >= SERIES_ADVICE_SHARE
        said = (
            f"; {beyond:.0%} of the validation split's values lie beyond the training split's range "
            + ("(the held-out tail of a trending series?)" if trend else "(a livelier or shifted held-out tail?)")
        )
        if self.options.normalise == "series" or not trend:  # not the normalisation the codec has
            return said
        return said + (
            ": normalise='series' scales each stream by its own statistics and often codes "
            "such data far better (compare the two with evaluate)"
        )

    def refit_density(self, rows: int = 8192, lr: float = 0.05) -> None:
        """Maximum-likelihood fit of the density to the quantized training latents (in place,
        transforms frozen). :func:`train` keeps it only if the codec frozen from it codes the
        validation split shorter.

        The density lives in latent units, which grow as the quantizer step shrinks, so the
        training step size moves it too little at high rate. Measured on the BasicMotions test
        split (e8 block, T=4) with static box-smoothed tables: 5.492 → 5.246 bits/value at
        35.6 dB; with scale classes and pooled tables the fitted counts already carry most
        of that gain. At most ``REFIT_LATENT_VALUES`` latent values (a few hundred rows per
        channel fit its 12 parameters): 8,192 rows of 256 latents took 227 s of a 295 s run.
        """
        n = self.config.vectors_per_block
        rows = max(n, min(rows, REFIT_LATENT_VALUES // self.config.latent_dim))
        count = max(n, min(len(self.train_x), rows) // n * n)
        index = torch.randperm(len(self.train_x), generator=self.generator)[:count]
        with torch.no_grad():
            self.model.eval()
            y_hat = self.model.quantize(self.model.analysis(self.train_x[index].to(self.device)))
        optimizer = torch.optim.Adam(self.model.density.parameters(), lr=lr)
        for _ in range(min(300, max(50, self.options.steps // 5))):
            loss = self.model.bits(y_hat) / y_hat.numel()  # the exact box-pmf code length
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def refit_synthesis(self, rows: int = REFIT_ROWS) -> bool:
        """Least-squares fit of a linear synthesis transform to the quantized training
        latents (the rate does not depend on it), kept only if the validation error falls.
        After :func:`~ltc_beam.codec.finishing.calibrate_rate` moved the step, the decoder trained for the old one is
        off by the new quantization error. Fitted on up to ``rows`` training vectors, in
        lattice blocks spread evenly over the training set. Returns whether it was kept
        (MLP synthesis: no fit)."""
        synthesis = self.model.synthesis
        if synthesis.mlp is not None:
            return False
        self.model.eval()
        n = self.config.vectors_per_block
        blocks = len(self.train_x) // n
        take = min(blocks, max(1, rows // n))
        starts = torch.linspace(0, blocks - 1, take).round().long() * n if blocks else torch.zeros(0, dtype=torch.long)
        x = self.train_x[(starts[:, None] + torch.arange(n)).reshape(-1)].to(self.device)
        y_hat = self.model.quantize(self.model.analysis(x)).double()
        design = torch.cat([y_hat, torch.ones(len(y_hat), 1, dtype=y_hat.dtype, device=y_hat.device)], 1)
        solution = torch.linalg.lstsq(design.cpu(), x.double().cpu(), driver="gelsd").solution
        before = self.validate()["mse"]
        old = (synthesis.linear.weight.clone(), synthesis.linear.bias.clone())
        synthesis.linear.weight.copy_(solution[:-1].T.to(old[0]))
        synthesis.linear.bias.copy_(solution[-1].to(old[1]))
        if self.validate()["mse"] < before:
            return True
        synthesis.linear.weight.copy_(old[0])
        synthesis.linear.bias.copy_(old[1])
        return False

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str) -> None:
        """Write model, best model, optimiser and RNG state (safetensors, no pickle)."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in self.best_state.items()})
        opt = self.optimizer.state_dict()
        for pid, state in opt["state"].items():
            for key, value in state.items():
                tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "step": self.step,
            "lmbda": self.lmbda,
            "best_loss": self.best_loss if self.best_loss < math.inf else None,
            "best_step": self.best_step,
            "stale": self.stale,
            "rate_ema": self.rate_ema,
            "config": self.config.to_dict(),
        }
        write_bytes(path, save_tensors(tensors, metadata={"trainer": json.dumps(meta)}))  # whole or not at all

    def load_checkpoint(self, path: str) -> None:
        data = read_bytes(path)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])  # safetensors: length, JSON header
        meta = json.loads(header["__metadata__"]["trainer"])
        if meta["config"] != self.config.to_dict():
            raise ValueError(f"checkpoint {path} was written for another configuration: {meta['config']}")
        tensors = load_tensors(data)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.best_state = {k[5:]: v.to(self.device) for k, v in tensors.items() if k.startswith("best.")}
        opt = self.optimizer.state_dict()
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value if name == "step" else value.to(self.device)
        opt["state"] = state
        self.optimizer.load_state_dict(opt)
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        self.step = meta["step"]
        self.lmbda = meta["lmbda"]
        self.best_loss = math.inf if meta["best_loss"] is None else meta["best_loss"]
        self.best_step = meta["best_step"]
        self.stale = meta["stale"]
        self.rate_ema = meta["rate_ema"]


#: Principal components with less than this fraction of the largest variance are not given
#: a latent channel (they sit ~100 dB below the signal).
RANK_TOLERANCE = 1e-10


def principal_variances(series: list[np.ndarray], window: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Variances of the principal components of the input vectors normalised by ``mean``
    and ``std`` (:func:`column_statistics`), largest first."""
    x = vectors_of(series, window, mean, std)
    if len(x) < 2:
        return np.ones(x.shape[1])
    centred = x - x.mean(0)
    if len(x) < x.shape[1]:  # fewer vectors than values: their singular values (10 x 2,000: 13.7 s -> 10 ms)
        variances = np.zeros(x.shape[1])
        variances[: len(x)] = np.linalg.svd(centred, compute_uv=False) ** 2 / (len(x) - 1)
        return variances
    return np.linalg.eigvalsh(centred.T @ centred / (len(x) - 1))[::-1].clip(min=0)


def numerical_rank(variances: np.ndarray) -> int:
    """How many principal components the input vectors really have (at least 1).

    Data of low rank (repeated or derived columns, embeddings of low intrinsic dimension)
    would otherwise get latent channels that carry nothing; Adam moves their weights
    whatever the gradient, they pick up signal, and the rate control breaks (rank-8 data in
    64 columns at 2 bits/value: 27 bits/value)."""
    if variances.max() <= 0:
        return 1
    return max(1, int((variances > RANK_TOLERANCE * variances.max()).sum()))


def directions_learnable(series: list[np.ndarray], window: int, validation_fraction: float, seed: int) -> int:
    """How many principal directions the training split spans: one fewer than its (sliding)
    input vectors. Latent channels beyond them see no training variance, get narrow tables,
    and new data escapes them: 150-value GunPoint vectors, 42 for training, took a 49-channel
    latent and coded the test split at 2.69 bits/value (calibrated 2.01; 40 channels: 1.97).
    Warns when there are fewer training vectors than values per vector."""
    train_part, _ = split_series(series, validation_fraction, seed, window)
    vectors = sum(max(1, len(s) - window + 1) for s in train_part if len(s))  # a short series: one padded vector
    size = window * series[0].shape[1]
    if 0 < vectors <= size:
        warnings.warn(
            f"only {vectors} training vectors of {size} values: the codec learns at most {max(1, vectors - 1)} "
            "directions of them, and new data off those directions codes poorly. Train on more records "
            "(series stored as one vector per record: long format with key= and order_by= codes them in time)",
            UserWarning,
            stacklevel=3,
        )
    return max(1, vectors - 1)


def build_config(
    record_dim: int,
    *,
    lattice: str,
    mode: str,
    window: int,
    latent_dim: int | None,
    transform: str,
    **extra,
) -> CodecConfig:
    """Architecture sized to the data: latent size from the input; ``transform="auto"`` is
    linear. Measured on real data, an MLP (a linear PCA path plus a hidden layer) coded worse
    at equal rate: ACSF1 appliance power, 146k records, 1 bit/value asked, lattice-coded test
    split: MLP 0.875 bits/value at 13.9 dB, linear 1.238 at 22.8 dB; 16k MiniLM sentence
    embeddings: 13.95 vs 14.58 dB at 2.01 bits/value; it also encodes at half the speed."""
    input_dim = window * record_dim
    if transform == "auto":
        transform = "linear"
    if extra.get("proxy", "auto") == "auto":
        # Measured (i.i.d. Gaussian, z1 block, 1 bit/value): an MLP trained through the
        # straight-through estimator drifts to 3.2 dB from R(D); with Voronoi noise 1.38 dB.
        # Linear transforms do equally well either way (E8: 1.060 vs 1.066 dB).
        extra["proxy"] = "noise" if transform == "mlp" else "ste"
    latent = latent_dim or default_latent_dim(input_dim, lattice, mode)
    return CodecConfig(
        record_dim=record_dim,
        latent_dim=latent,
        lattice=lattice,
        mode=mode,
        window=window,
        transform=transform,
        **extra,
    )


DEFAULT_TARGET_BITS = 2.0
#: Fewest training vectors in either mode (block mode needs a lattice block's worth as well).
MIN_TRAINING_VECTORS = 8
#: Most bits one latent value may carry: a logistic density spread over ``MAX_SYMBOLS``
#: symbols between its 1e-7 tail quantiles has an entropy of about 12.9 bits, and the
#: symbols beyond a table escape at several times their cost (Daphnet asked for 14
#: bits/value: 21 paid, 74 dB; 10 asked: 9.4 paid, 62 dB).
MAX_BITS_PER_LATENT = 12.0
BASE_LEARNING_RATE = 2e-3
CONSTANT_DATA_LMBDA = 1e-3  # λ for data without any variation (see train)


def reachable_target(target_bits_per_value: float, variances: np.ndarray, input_dim: int, spanned: int | None = None) -> float:
    """``target_bits_per_value``, capped (with a warning) where the largest principal
    component would need more than ``MAX_BITS_PER_LATENT`` bits per latent value.

    One lattice step serves every latent channel, so at high rate component i costs about
    ``log2(σ_i / step) + const`` bits: the largest reaches the cap first. Data of low rank
    puts all its bits on a few channels (rank 8 in 64 columns at 2 bits/value: 16 bits per
    latent); full-rank data with equal variances reaches the cap at 12 bits/value (~72 dB).
    ``spanned``: the directions the training vectors span, where they limit the channels
    (24 Coffee spectra of 286 values: 23 channels, the cap 0.78 bits/value, and new spectra
    decode at 7.6 dB whatever is asked: their energy off those directions is lost).
    """
    spread = 0.5 * np.log2(variances.max() / np.maximum(variances, 1e-300))
    cap = float(np.clip(MAX_BITS_PER_LATENT - spread, 0, None).sum()) / input_dim
    if target_bits_per_value <= cap:
        return target_bits_per_value
    if spanned is not None and len(variances) >= spanned:
        why = (
            f"the codec has {len(variances)} latent channels for {input_dim} values per vector, one per direction "
            f"its training vectors span, and a channel takes at most {MAX_BITS_PER_LATENT:g} bits per latent value. "
            "New vectors' energy off those directions is lost, whatever the rate: train on more vectors "
            "(or in long format, with key= and order_by=)"
        )
    else:
        why = (
            f"there the largest of the data's {len(variances)} principal components (in {input_dim} values per vector) "
            f"already takes {MAX_BITS_PER_LATENT:g} bits per latent value (~{6.02 * MAX_BITS_PER_LATENT:.0f} dB "
            "on it), the most a coding table resolves; for more, compress losslessly, or, where a level or trend "
            "dominates the data (prices, counters), use normalise='series': each stream is then "
            "coded around its own mean and scale (S&P 500 closes: no cap at 2 bits/value that way)"
        )
    warnings.warn(f"target of {target_bits_per_value:g} bits/value capped at {cap:.3g}: {why}", stacklevel=3)
    return cap


def default_learning_rate(target_bits_per_value: float | None) -> float:
    """Adam step: ``BASE_LEARNING_RATE`` up to 3 bits/value, halved per extra bit, floor 1e-4.

    The synthesis weights scale with the quantizer step, so a fixed step size is a relative
    perturbation that grows with the rate. Measured on BasicMotions (e8 block, T=4, 6.5
    bits/value): lr 2e-3 leaves the codec at 27.7 dB, lr 1e-4 reaches 38.5 dB at the same rate.
    """
    if target_bits_per_value is None:
        return BASE_LEARNING_RATE
    return max(1e-4, BASE_LEARNING_RATE * min(1.0, 2.0 ** -(target_bits_per_value - 3.0)))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch CPU threads (``None``: unchanged)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: ``train(lattice="auto")`` (the default) trains these and keeps the better one on the
#: validation split: E8 gains where the latent channels carry bits (BasicMotions: 1-11 %
#: fewer bits than Z at equal SNR), Z where most carry a fraction of a bit each (2 x 4
#: grey-image patches at 1 bit/value: 22.2 dB against E8's 21.2, fastText 10-value word
#: vectors 7.1 against 6.2).
LATTICE_CHOICES = ("e8", "z1")
#: ... when the validation split holds this many values (fewer: too noisy to choose on; E8):
#: on 3,888 and 5,040 validation values (image-segment features, daily stock prices) Z
#: looked 0.4 and 0.9 dB better and coded the test split 0.7 and 0.2 dB worse.
LATTICE_CHOICE_VALUES = 10_000
#: The second lattice is kept when its validation SNR, moved to the first one's rate
#: (``SLOPES_DB_PER_BIT``), is at least this much higher.
LATTICE_CHOICE_MARGIN_DB = 0.25


def _check_number(name: str, value) -> None:
    """A numeric argument that is None or a number ("2" was a TypeError of '<' between int and str)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise ValueError(f"{name} must be a number, got {value!r}")


def train(
    data,
    *,
    lattice: str = "auto",
    mode: str = "block",
    window: int | str = 1,
    lmbda: float | None = None,
    target_bits_per_value: float | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "auto",
    latent_dim: int | None = None,
    transform: str = "auto",
    hidden: int = 100,
    components: int = 4,
    proxy: str = "auto",
    learning_rate: float | None = None,
    validation_fraction: float = 0.15,
    patience: int = 8,
    checkpoint: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    columns: list[str] | None = None,
    refit_density: bool = True,
    calibrate: bool = True,
    threads: int | None = 1,
    normalise: str = "column",
    max_training_values: int | None = MAX_TRAINING_VALUES,
):
    """Train a codec on ``data``: one ``[N, d]`` array (a series in order) or a list of series.

    Give either ``lmbda`` (loss = bits/value + λ·MSE in z-score units) or
    ``target_bits_per_value`` (λ is found for you); with neither, the target is
    ``DEFAULT_TARGET_BITS``. ``window="auto"`` picks the records per input vector from the
    data (:mod:`ltc_beam.codec.window_choice`; the choice is in the manifest's training
    summary). ``threads``: torch CPU threads while training (``None``: torch's default,
    one per core). ``progress``: bars on stderr; ``None`` (default) when it is a terminal only,
    so logs get none; ``True`` a line a minute in a log (:mod:`ltc_beam.progress`).
    ``normalise="series"``: each series (each chunk of a long one) is brought to unit scale
    by its own mean and std, which the stream carries (about 4 bytes per value column and
    series: :mod:`ltc_beam.codec.scaling`), so panels of series of very different levels and
    spreads code every series at an SNR of its own; ``"column"``
    (default): one mean and std per column, learnt here. Returns a frozen
    :class:`~ltc_beam.codec.codec.Codec`.

    Architecture: ``latent_dim`` (default: sized to the input and lattice), ``transform``
    (``"auto"`` = ``"linear"``, or ``"mlp"`` with ``hidden`` units), ``components`` (logistic
    mixture components of the latent density). Optimisation: ``steps`` (at most; training
    stops after ``patience`` validations every 100 steps without improvement), ``batch_size``,
    ``learning_rate`` (default: 2e-3 up to 3 bits/value, halved per extra bit), ``proxy``
    (quantisation in training: ``"ste"``, ``"noise"``, or ``"auto"``: noise for an MLP),
    ``validation_fraction`` (held out: whole series where there are three or more, see :func:`~ltc_beam.codec.training_data.split_series`), ``seed``, ``device``,
    ``checkpoint``/``resume``. Finishing: ``refit_density`` (maximum-likelihood refit of the
    density on the training latents) and ``calibrate`` (the quantiser scale moved until the
    target rate is what the validation split codes to).

    ``max_training_values``: data of more values trains on evenly spread pieces of that many
    in all (:func:`training_sample`; None: all of it), with a warning.

    One thread by default: the model's operations are small, so a second thread gains
    13-20 % on an idle 2-core machine, and loses 5x when another job holds a core
    (BasicMotions, 1,500 steps: 11.8 s on 2 threads vs 13.4 s on 1 alone; 65 s vs 14 s with
    a second training beside it).
    """
    mode, window = (v.strip().lower() if isinstance(v, str) else v for v in (mode, window))  # "Vector", "Auto"
    _check_number("lmbda", lmbda)
    _check_number("target_bits_per_value", target_bits_per_value)
    if isinstance(lattice, str) and lattice.strip().lower() == "auto":
        options = {k: v for k, v in locals().items() if k not in ("data", "lattice")}
        return _better_lattice(data, options)
    lattice = lattices.get(lattice).name  # "E8" was kept as given: a codec of another id than e8's
    # the trainer seeds torch's generator (initial weights, noise): the caller's stream is
    # put back afterwards (it was left seeded with 0: every run drew the same numbers)
    with torch_threads(threads), torch.random.fork_rng(devices=[]), float32_default():
        from ltc_beam.codec.codec import Codec, frame_columns

        if lmbda is not None and target_bits_per_value is not None:
            raise ValueError("give lmbda or target_bits_per_value, not both")
        if lmbda is None and target_bits_per_value is None:
            target_bits_per_value = DEFAULT_TARGET_BITS
        if lmbda is not None and not 0 < lmbda < math.inf:
            raise ValueError(f"lmbda must be a finite number above 0, got {lmbda}")
        if target_bits_per_value is not None and not 0 < target_bits_per_value < math.inf:
            raise ValueError(f"target_bits_per_value must be a finite number above 0, got {target_bits_per_value}")
        if not 0 < validation_fraction < 1:  # 0 held out one record anyway and reported it as the validation split
            raise ValueError(f"validation_fraction must lie between 0 and 1 (exclusive), got {validation_fraction}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        if isinstance(columns, str):  # "a,b,c", as LtcEncode and the CLI take them ("yx" was two columns y and x)
            columns = [c for c in columns.split(",") if c]
        if columns is None:
            data = named_series_as_frame(data)
        first = data[0] if isinstance(data, (list, tuple)) and len(data) else data
        if frame_columns(first) is not None:  # frames: columns taken by name (in every frame), as encode takes them
            if columns is not None and not len(columns):
                raise ValueError("columns= names no column: leave it out to take every column of the frame")
            given = columns is not None
            columns = [str(c) for c in (frame_columns(first) if columns is None else columns)]
            data = frame_columns_chosen(data, columns, given)
        raw = as_series(data, columns)  # what the frozen codec codes (tables, calibration, validation)
        if columns is not None and len(columns) != raw[0].shape[1]:  # the codec then refused its own training data
            raise InputError(f"columns= names {len(columns)} columns; the data has {raw[0].shape[1]} values per record")
        if max_training_values is not None and (not whole_number(max_training_values) or max_training_values < 1):
            raise ValueError(f"max_training_values must be an integer >= 1 or None, got {max_training_values!r}")
        raw, sample = training_sample(raw, max_training_values)
        if normalise == "series":  # pieces as compress chunks them, each scaled as the codec scales it
            from ltc_beam.arrow import default_chunk_records

            series, stated = scaled_pieces(raw, default_chunk_records(raw[0].shape[1]))
            statistics = 8 * stated / max(sum(s.size for s in raw), 1)  # bits per value of the series' own statistics
            warn_if_statistics_cost(statistics, raw)
        else:
            series, statistics = distinct_series(raw), 0.0
        mean, std = column_statistics(series)
        warn_if_float32_limits(mean, std, columns)
        warn_if_series_scales_differ(series, std, columns)
        warn_if_columns_hold_no_values(series, columns)
        warn_if_flag_columns(series, columns)
        window_choice, asked = None, window
        if window == "auto":
            from ltc_beam.codec.window_choice import choose_window

            window, estimates, scores = choose_window(
                series, stats=(mean, std), bits_per_value=target_bits_per_value, lmbda=lmbda, train_fraction=1 - validation_fraction
            )
            window_choice = {"window": window, "gaussian_bits_per_value": estimates, "penalised_bits_per_value": scores}
        if not whole_number(window) or window < 1:
            raise ValueError(f"window must be 'auto' or an integer >= 1, got {window!r}")
        if not whole_number(steps) or steps < 1:  # 2.5 was taken
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        window, steps = int(window), int(steps)
        if asked == 1 and mode == "block":  # not where window="auto" chose 1
            warn_if_records_follow_each_other(series)
        variances = principal_variances(series, window, mean, std)
        learnable = directions_learnable(series, window, validation_fraction, seed)
        rank = min(numerical_rank(variances), learnable)
        config = build_config(
            series[0].shape[1],
            lattice=lattice,
            mode=mode,
            window=window,
            latent_dim=latent_dim or default_latent_dim(rank, lattice, mode, most=learnable),
            transform=transform,
            hidden=hidden,
            components=components,
            proxy=proxy,
        )
        n = lattices.get(lattice).dim
        if mode == "vector" and config.input_dim < n:
            warnings.warn(
                f"vector mode codes each vector of {config.input_dim} values as a {n}-dimensional {lattice} point "
                f"(latent padded to {config.latent_dim}): efficiency suffers (3 i.i.d. values, 2 "
                "bits/value asked: 2.00 paid at 8.1 dB in vector mode, 1.99 at 10.9 dB in block mode). Use mode='block', a longer window, "
                "or a smaller lattice, unless you need the record layout.",
                stacklevel=2,
            )
        if variances.max() <= 0:
            # nothing varies: every column decodes exactly as a constant; a coarse step keeps
            # the (input-free) latents on the lattice origin instead of a rate search to nowhere
            target_bits_per_value, lmbda = None, CONSTANT_DATA_LMBDA
        if target_bits_per_value is not None:
            target_bits_per_value = reachable_target(
                target_bits_per_value, variances[: min(config.latent_dim, rank)], config.input_dim, learnable
            )
        if learning_rate is None:
            learning_rate = default_learning_rate(target_bits_per_value)
        options = TrainingOptions(
            lmbda=lmbda,
            target_bits_per_value=target_bits_per_value,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            device=device,
            validation_fraction=validation_fraction,
            patience=patience,
            checkpoint=checkpoint,
            progress=progress,
            normalise=normalise,
        )
        trainer = Trainer(config, series, options)
        fit, held = split_series(raw, validation_fraction, seed, window)  # the trainer's split, of the data as given

        def freeze(model: LtcModel, training: dict | None = None) -> Codec:
            return Codec.from_model(
                model, training=training, columns=columns, fit_series=fit, validation_series=held, normalise=normalise
            )

        if resume and checkpoint and exists(checkpoint):
            trainer.load_checkpoint(checkpoint)
        summary = trainer.run().to_dict()
        if window_choice is not None:
            summary["window_choice"] = window_choice
        if sample is not None:
            summary["training_sample"] = sample
        # after the steps: codecs frozen (tables fitted to the training symbols) and coded; an
        # off-scale warning there would be about the training data itself (a small split
        # escapes some tables), with advice to retrain: the small-split warnings say it right
        finish = progress_bar(progress, desc="finish", bar_format="{desc} [{elapsed}]")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffScaleWarning)
            coded = None  # the kept model's validation bits, where the start check took them
            if held and options.target_bits_per_value is not None and not summary["start_check"]["kept_start"]:
                finish.set_description_str("finish: the trained model against its PCA start, both coded")
                check = keep_the_start_if_coded_better(trainer, freeze, held)
                summary["start_check"].update(check)
                coded = (check["coded"]["start"][0] if check["kept_start"] else check["coded"]["trained"])["bits_per_value"]
            if refit_density and held:
                finish.set_description_str("finish: density refit, kept if the codec codes the validation split shorter")
                summary["density_refit"] = refit_density_if_shorter(trainer, freeze, held, coded)
            if calibrate and options.target_bits_per_value is not None:
                summary["rate_calibration"] = calibrate_on_training_records(
                    trainer, options.target_bits_per_value, raw, freeze, normalise == "series", finish,
                    statistics=statistics,
                )
            else:
                summary["synthesis_refit"] = trainer.refit_synthesis()
            summary["validation"] = trainer.validate()
            finish.set_description_str("finish: final codec: tables, then the validation split coded")
            codec = freeze(trainer.model, summary)
            if held:
                record_coded_validation(codec, held)
                warn_if_validation_costs_more(codec)
        finish.set_description_str("finish: done")
        finish.close()
        return warn_if_tables_capped(codec)


def _better_lattice(data, options: dict) -> "Codec":
    """``train`` with each of ``LATTICE_CHOICES`` (the second one only where the rate is
    calibrated and the validation split is large enough to judge), the one whose coded
    validation split has the better SNR at equal rate kept; the manifest's training summary
    says what each did (``lattice_choice``). The kept run's warnings are the ones shown."""
    first, said = _train_quietly(data, LATTICE_CHOICES[0], options)
    training = first.manifest["training"]
    held = training.get("validation") or {}
    values = training.get("validation_vectors", 0) * first.config.input_dim
    chosen = first
    # the target as training capped it (low-rank data), else as asked
    target = (training.get("rate_calibration") or {}).get("target_bits_per_value") or options["target_bits_per_value"] or DEFAULT_TARGET_BITS
    judged = options["lmbda"] is None and options["calibrate"] and held.get("snr_db") is not None and values >= LATTICE_CHOICE_VALUES
    missed = f"validation rate over {MISSED_TARGET:.0%} from the target of {target:g} bits/value"
    if not judged:  # the manifest said nothing of the choice then
        why = (f"a validation split of {values:,} values (fewer than {LATTICE_CHOICE_VALUES:,}) is too few to choose on"
               if values < LATTICE_CHOICE_VALUES else "the rate is not calibrated (lmbda given, or calibrate=False)")
        choice = {"not_compared": why}
    elif abs(held["bits_per_value"] - target) > MISSED_TARGET * target:
        # no fair comparison at equal rate would follow: Z's training (half the time) is spared
        # (a glucose monitor's 2 bits/value asked: E8 coded its validation split at 2.48)
        choice = {"validation": _rates({LATTICE_CHOICES[0]: held}), "not_compared": f"{LATTICE_CHOICES[0]}'s {missed}"}
    else:
        if options["checkpoint"]:  # each lattice's run checkpoints on its own
            options = {**options, "checkpoint": f"{options['checkpoint']}.{LATTICE_CHOICES[1]}"}
        chose = training.get("window_choice")  # the lattice changes nothing of it: not worked out again
        second, second_said = _train_quietly(data, LATTICE_CHOICES[1], {**options, "window": chose["window"]} if chose else options)
        if chose:  # as the first run said it (window=1 given would hint at windows: auto chose 1)
            second.manifest["training"]["window_choice"] = chose
            second_said = [w for w in second_said if not issubclass(w.category, WindowHint)]
        other = second.manifest["training"].get("validation") or {}
        gain = _gain_at_equal_rate(held, other, target)
        if gain is not None and gain >= LATTICE_CHOICE_MARGIN_DB:
            chosen, said = second, second_said
        choice = {"validation": _rates(dict(zip(LATTICE_CHOICES, (held, other))))}
        choice.update({"gain_db_at_equal_rate": gain} if gain is not None else {"not_compared": f"{LATTICE_CHOICES[1]}'s {missed}"})
    chosen.manifest["training"]["lattice_choice"] = {**choice, "chosen": chosen.config.lattice}
    chosen.manifest["codec_id"] = chosen.id = chosen.content_hash()
    for caught in said:  # at the caller of train
        warnings.warn(caught.message, caught.category, stacklevel=3)
    return chosen


def _rates(validation: dict) -> dict:
    """Each lattice's coded validation rate and SNR, for ``lattice_choice``."""
    return {name: {"bits_per_value": v.get("bits_per_value"), "snr_db": v.get("snr_db")} for name, v in validation.items()}


def _train_quietly(data, lattice: str, options: dict) -> tuple["Codec", list]:
    """``train`` with ``lattice``, its warnings recorded instead of shown."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        codec = train(data, lattice=lattice, **options)
    return codec, said


def _gain_at_equal_rate(first: dict, second: dict, target: float) -> float | None:
    """:func:`~ltc_beam.codec.finishing.snr_gain`; None where either codec missed the target by over
    ``MISSED_TARGET`` or has no finite SNR (no fair comparison)."""
    if second.get("snr_db") is None or any(abs(v["bits_per_value"] - target) > MISSED_TARGET * target for v in (first, second)):
        return None
    return snr_gain(first, second)


