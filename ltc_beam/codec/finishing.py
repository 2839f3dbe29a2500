"""Finishing a trained model into a codec, each step judged on what the frozen codec
(tables fitted to the training symbols) really codes: the PCA start kept where it codes
the validation split better, the density refit kept where it codes it shorter, the
quantizer scale calibrated until the training records code at the asked rate, and the
validation split's coded figures recorded, with warnings where they part from the asked
rate (:func:`~ltc_beam.codec.training.train` runs them in that order)."""

from __future__ import annotations

import copy
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

from ltc_beam.codec.adaptive import CLASS_COUNT
from ltc_beam.codec.model import LtcModel
from ltc_beam.codec.tables import symbol_cap, table_count
from ltc_beam.codec.training_data import spread_pieces

if TYPE_CHECKING:
    from ltc_beam.codec.codec import Codec
    from ltc_beam.codec.training import Trainer


#: dB per bit/value at which a codec at a higher rate is moved down to the other's rate
#: (measured slopes around 0.5-1 bit/value: 8.6-15.4), and at which one at a lower rate is
#: moved up (6.02, the high-rate slope): the second lattice must win under either.
SLOPES_DB_PER_BIT = (15.0, 6.02)


def snr_gain(first: dict, second: dict) -> float:
    """The second codec's SNR over the first's at the first's rate, on the slope least
    favourable to the second (``SLOPES_DB_PER_BIT``)."""
    more = second["bits_per_value"] - first["bits_per_value"]
    return second["snr_db"] - first["snr_db"] - (SLOPES_DB_PER_BIT[0] if more > 0 else SLOPES_DB_PER_BIT[1]) * more


def start_gain(trained: dict, start: list[dict]) -> float:
    """The start's SNR over the trained model's at the trained rate, from the start's two
    points (``bits_per_value``, ``snr_db``): on the line through them where they bracket that
    rate or its slope is one a codec's curve has (``SLOPES_DB_PER_BIT``), else from the nearer
    on the slope least favourable to the start (:func:`snr_gain`; a line through points 0.007
    bits/value and 0.7 dB apart, 100 dB per bit, carried 0.15 bits/value on, claimed +13.4 dB
    for a start that coded stock prices in 9 % more bits)."""
    (b0, s0), (b1, s1) = ((p["bits_per_value"], p["snr_db"]) for p in start)
    rate = trained["bits_per_value"]
    if abs(b1 - b0) > 1e-6:
        slope = (s1 - s0) / (b1 - b0)
        if min(b0, b1) <= rate <= max(b0, b1) or SLOPES_DB_PER_BIT[1] <= slope <= SLOPES_DB_PER_BIT[0]:
            return s0 + slope * (rate - b0) - trained["snr_db"]
    return snr_gain(trained, min(start, key=lambda p: abs(p["bits_per_value"] - rate)))


def keep_the_start_if_coded_better(trainer: Trainer, freeze, held: list[np.ndarray]) -> dict:
    """Go back to the PCA start where it codes the validation split ``held`` better than the
    trained model at equal rate: each frozen (tables fitted to the training symbols, as the
    codec will have them) and its exact code length taken, with the model's SNR on the same
    split; the start also at a second quantizer scale, one secant step towards the trained
    rate, its SNR at that rate read off the line through its two points (:func:`start_gain`).

    :meth:`~ltc_beam.codec.training.Trainer.keep_the_start_if_far_better` judges on the model's own rate estimate,
    where the start's quick density fit costs it 1-4 dB (BasicMotions, E8 block T=4, 2-5
    bits/value: +1.2 to +4.5 dB for training there, within 0.15 dB of the start at equal
    rate coded on the test split), so it only catches collapses. At high SNR training drifts below its start
    (Daphnet, 3-5 bits/value asked: the start coded the test split 0.5-0.7 dB better at
    equal rate; seismometer counts in windows of 64 at 2 bits/value: 2.13 bits/value at 39.3 dB
    against 2.19 at 38.1)."""
    model, config = trainer.model, trainer.config

    def coded() -> dict:
        snr = trainer.validate()["snr_db"]
        return {"bits_per_value": validation_bits(freeze(copy.deepcopy(model)), held), "snr_db": snr}

    trained = coded()
    state = copy.deepcopy(model.state_dict())
    model.load_state_dict(trainer.start_state)
    start = [coded()]
    octaves = (trained["bits_per_value"] - start[0]["bits_per_value"]) * config.input_dim / config.latent_dim
    scale_latents(model, float(np.clip(octaves, -MAX_CALIBRATION_OCTAVES, MAX_CALIBRATION_OCTAVES)))
    start.append(coded())
    gain = start_gain(trained, start)
    model.load_state_dict(trainer.start_state if gain > 0 else state)
    return {"coded": {"trained": trained, "start": start, "start_gain_db_at_equal_rate": gain}, "kept_start": gain > 0}


def record_coded_validation(codec: Codec, series: list[np.ndarray]) -> None:
    """Replace the manifest's ``training.validation`` (the model's estimate: the learned
    density on the validation vectors) by what the frozen codec does with the validation
    series (evenly spread pieces beyond about 2**20 values, as for the rate calibration), chunked
    and framed as ``compress`` would (``ltc_beam.evaluation.evaluate``): bits per value of
    the bitstreams, of their fixed frames and of the tables' code length alone (per-stream
    costs weigh on a small split: ItalyPowerDemand's 240 values in 4 streams, 7.9 bits/value
    of which 3.7 frames, 1.8 code length), SNR of the decoded records. The estimate stays, as
    ``model_estimate``; the two part where the tables or windows code differently (a
    JapaneseVowels codec estimated 0.98 bits at 15.7 dB and coded 1.92 at 10.3 before
    packed series were windowed apart). The codec id is recomputed."""
    from ltc_beam.evaluation import evaluate

    coded = evaluate(codec, calibration_series(series), voronoi=False, warn_spread=False)  # at most about 2**20 values
    training = codec.manifest["training"]
    training["validation"] = {
        **{k: coded[k] for k in ("bits_per_value", "frame_bits_per_value", "model_bits_per_value", "nmse")},
        "snr_db": coded["snr_db"] if math.isfinite(coded["snr_db"]) else None,  # exact: no finite dB
        "streams": coded["streams"], "model_estimate": training.get("validation"),
    }
    codec.manifest["codec_id"] = codec.id = codec.content_hash()
    if coded["snr_db"] < 0 and coded["snr_vs_training_db"] is not None and coded["snr_vs_training_db"] >= 0:
        warnings.warn(
            f"the codec decodes its validation split at {coded['snr_db']:.1f} dB, each column's error weighed by its "
            f"variance there, and at {coded['snr_vs_training_db']:.1f} dB weighed by the training variance: the held-out "
            "records (whole series, or the tail of each) are far quieter than the training data in some column "
            f"({coded['spread_vs_training']:.2g}x its training std), and small errors weigh heavily on them. The SNR of "
            "other data follows its spread: evaluate the codec on data like that to be compressed",
            UserWarning,
            stacklevel=2,
        )
    elif coded["snr_db"] < 0:  # pd_speech's 750 voice features, 180 records: -7.5 dB, saved without a word
        warnings.warn(
            f"the codec decodes its validation split at {coded['snr_db']:.1f} dB, worse than each column's mean "
            f"would (0 dB): what it learned from {training.get('train_vectors')} training vectors of "
            f"{codec.config.input_dim} values does not carry to records it did not see. Train on more records, or "
            "check that the held-out ones (whole series, or the tail of each) are like the rest",
            UserWarning,
            stacklevel=2,
        )


#: The validation split coding more than this factor of the calibrated rate is warned about
#: (BasicMotions' held-out recordings: 0.34-0.88 of it; i.i.d. Gaussian 0.98-1.02; Daphnet's
#: calmer first half held out from its own tail: 1.10-1.63, and its test half costs more).
LIVELIER_VALIDATION = 1.3


def calibrated_rate(codec: Codec) -> tuple[float | None, float | None]:
    """``(bits per value the rate calibration reached, its target)``, None where it did not run."""
    calibration = codec.manifest.get("training", {}).get("rate_calibration") or {}
    return calibration.get("bits_per_value"), calibration.get("target_bits_per_value")


def warn_if_validation_costs_more(codec: Codec) -> None:
    """Warn when the validation split (less its frames) codes at over ``LIVELIER_VALIDATION``
    times the rate the calibration reached on the training records: the asked rate is then
    not what records like the held-out ones (the tail of each series, or whole series) cost
    (a 9-axis IMU asked for 0.5 bits/value: validation 0.77; its test split, the last fifth of
    the series, 0.65)."""
    calibrated, asked = calibrated_rate(codec)
    held = codec.manifest["training"].get("validation") or {}
    if not calibrated or "bits_per_value" not in held:
        return
    coded = held["bits_per_value"] - held.get("frame_bits_per_value", 0.0)
    # where the calibration stopped above its target, a lower target would not lower the rate
    # (it said so just before: "rate calibration stopped at 1.23 bits/value for a target of 0.5")
    stopped_above = asked is not None and calibrated > (1 + RATE_TOLERANCE) * asked
    if coded > LIVELIER_VALIDATION * calibrated:
        warnings.warn(
            f"the codec codes its validation split at {coded:.3g} bits/value ({coded / calibrated - 1:+.0%}), where the "
            f"rate calibration reached {calibrated:.3g} on the training records: the held-out records (the tail of each "
            "series, or whole series) are livelier or shifted, and new records like them will cost about as much. "
            "Train on records like those to be compressed" + ("" if stopped_above else ", or ask for a lower rate"),
            UserWarning,
            stacklevel=3,
        )


def refit_density_if_shorter(trainer: Trainer, freeze, held: list[np.ndarray], before: float | None = None) -> dict:
    """:meth:`~ltc_beam.codec.training.Trainer.refit_density`, kept only if the codec frozen from it codes the
    validation split ``held`` shorter (judged on the tables finally chosen, not on the box
    pmf the refit optimises); otherwise the density is restored. ``before``: the model's
    :func:`validation_bits` as it stands, where known."""
    state = copy.deepcopy(trainer.model.density.state_dict())
    if before is None:
        before = validation_bits(freeze(copy.deepcopy(trainer.model)), held)
    trainer.refit_density()
    after = validation_bits(freeze(copy.deepcopy(trainer.model)), held)
    kept = after < before
    if not kept:
        trainer.model.density.load_state_dict(state)
    return {"validation_bits_before": before, "validation_bits_after": after, "kept": kept}


#: ``train`` moves the quantizer scale until the frozen codec codes its data within this
#: fraction of ``target_bits_per_value`` (or for ``CALIBRATION_TRIES`` tries).
RATE_TOLERANCE = 0.03
CALIBRATION_TRIES = 6
MISSED_TARGET = 0.1  # a calibrated rate further than this fraction from the target is warned about
MAX_CALIBRATION_OCTAVES = 2.0  # the scale stays within 2**±this of the trained one ...
#: ... or goes this far up (finer) where a try at that bound still fell short of the target by
#: over ``MISSED_TARGET``: data whose rate barely answers the step (ACSF1's piecewise-constant
#: appliance power, sample-coded: 0.245, 0.479, 0.521 bits/value over 2 octaves; asked for
#: 0.5 / 2 / 4, its test series coded at 0.276 / 0.533 / 1.074 bits/value, now 0.479 / 2.008 / 4.218)
WIDE_CALIBRATION_OCTAVES = 6.0
CALIBRATION_VALUES = 1 << 20  # values of the training data coded per try (evenly spread pieces)
#: ... times this for series-scaled codecs: each series is scaled by its own statistics, and a
#: part of one by narrower ones (50 random-walk devices, 2.4M values, asked 1 bit/value:
#: calibrated to 1.02 on 43 % prefixes, the whole series then coded at 0.78).
SERIES_CALIBRATION_FACTOR = 4
#: The calibration's warning names short series as a cause where this share of the coded
#: records or more only fill each series' last window (fertility rates, 43-year series in
#: windows of 16: 10 %, stopped at 0.70 bits/value for 0.5).
SHORT_SERIES_PADDING = 0.05


@torch.no_grad()
def scale_latents(model: LtcModel, octaves: float) -> None:
    """Multiply the latents by ``2**octaves`` (in place): the analysis output and the
    density grow by it, the synthesis input shrinks by it, so only the quantizer's step
    relative to the latents changes: each active latent channel gains ``octaves`` bits."""
    factor = 2.0**octaves
    analysis, synthesis = model.analysis, model.synthesis
    for layer in [analysis.linear] + ([analysis.mlp[-1]] if analysis.mlp is not None else []):
        layer.weight.mul_(factor)
        layer.bias.mul_(factor)
    for layer in [synthesis.linear] + ([synthesis.mlp[0]] if synthesis.mlp is not None else []):
        layer.weight.div_(factor)
    model.density.means.mul_(factor)
    model.density.log_scales.add_(math.log(factor))


def calibration_series(series: list[np.ndarray], values: int = CALIBRATION_VALUES) -> list[np.ndarray]:
    """``series``, or where they hold over ``values`` values, evenly spread pieces of them
    (:func:`~ltc_beam.codec.training_data.spread_pieces`): short series whole. Until session 23 a prefix of each (the same
    fraction), which cut 100,000 series of 5-20 records to 1-3 records each; windows of 8 cost
    those far more per value, and a codec asked for 2 bits/value coded the whole data at 1.31."""
    if sum(s.size for s in series) <= values:
        return series
    return spread_pieces([s for s in series if len(s)], values)[0]


def coded_bits_per_value(codec: Codec, series: list[np.ndarray]) -> float:
    """Bits per value of the bitstreams ``codec`` writes for ``series`` as ``compress`` chunks
    them, less each bitstream's fixed frame (magic, codec id, shape, checksum: the data
    size's cost, not the codec's; exact values, series lengths and the payload count)."""
    from ltc_beam.bitstream import unpack
    from ltc_beam.evaluation import archive_chunks

    bits = values = 0
    for x, segments in archive_chunks(codec, series):
        blob = codec.encode(x, segments)
        bits += 8 * (len(blob) - unpack(blob).fixed_bytes)
        values += x.size
    return bits / values


def calibration_limit(tries: list[tuple[float, float]], target: float) -> tuple[float, float]:
    """Octaves the calibration may move the scale down and up, given its ``tries`` ``[(octaves,
    bits per value)]``: ``MAX_CALIBRATION_OCTAVES``, or up (finer, towards a higher rate)
    ``WIDE_CALIBRATION_OCTAVES`` once a try at that bound fell short of ``target`` by over
    ``MISSED_TARGET``. Never further down: a rate that stays
    above the target there is mostly fixed costs (fertility rates of 219 countries, 43-year
    series in windows of 16, asked 0.5 bits/value: 6 octaves down took their test years from
    1.42 bits/value at 13.0 dB to 1.27 at 6.3, where uniform quantisation + zstd takes 0.84)."""
    short = any(u >= MAX_CALIBRATION_OCTAVES - 1e-9 and r < (1 - MISSED_TARGET) * target for u, r in tries)
    return -MAX_CALIBRATION_OCTAVES, WIDE_CALIBRATION_OCTAVES if short else MAX_CALIBRATION_OCTAVES


def calibrate_rate(trainer: Trainer, target: float, measure, statistics: float = 0.0, padded: float = 0.0) -> dict:
    """Scale the trained model's latents (:func:`scale_latents`, in place) until
    ``measure(model)`` (the coded bits per value) is within ``RATE_TOLERANCE`` of ``target``.

    Training steers λ on its rate estimate (the learned density on noisy or rounded
    training batches); the frozen codec's tables code differently (20-25 % fewer bits on
    BasicMotions), so the last step is taken on the real code length: secant steps on
    log2(scale), safeguarded by bisection once the target is bracketed, each try with its
    decoder refit (:meth:`~ltc_beam.codec.training.Trainer.refit_synthesis`: the sample-coding fallback matches the
    decoder's error, so the rate depends on it too). The best try is kept. Returns the tries
    ``[(octaves, bits per value)]`` and the chosen one. ``statistics``: the bits per value a
    series-scaled codec's series statistics take (the warning on a missed target names them);
    ``padded``: the share of coded records that only fill each series' last window.
    """
    model = trainer.model
    trainer.refit_synthesis()
    tries = [(0.0, measure(model))]
    states = [copy.deepcopy(model.state_dict())]
    slope = model.config.latent_dim / model.config.input_dim  # bits/value per octave if every channel is active
    for _ in range(CALIBRATION_TRIES):
        u, r = tries[-1]
        if min(abs(r - target) for _, r in tries) <= RATE_TOLERANCE * target:
            break
        if len(tries) > 1:
            (u0, r0), (u1, r1) = tries[-2], tries[-1]
            if abs(r1 - r0) > 1e-9:
                slope = max(1e-3, (r1 - r0) / (u1 - u0))
        step = u + (target - r) / slope
        below = [t for t in tries if t[1] < target]
        above = [t for t in tries if t[1] >= target]
        if below and above:  # bracketed: stay inside the bracket
            low, high = max(below)[0], min(above)[0]
            if not min(low, high) < step < max(low, high):
                step = 0.5 * (low + high)
        step = float(np.clip(step, *calibration_limit(tries, target)))
        if any(abs(step - t[0]) < 1e-6 for t in tries):
            break
        scale_latents(model, step - u)  # the model stands at the last try's scale
        trainer.refit_synthesis()
        tries.append((step, measure(model)))
        states.append(copy.deepcopy(model.state_dict()))
    best = min(range(len(tries)), key=lambda i: abs(tries[i][1] - target))
    model.load_state_dict(states[best])
    if abs(tries[best][1] - target) > MISSED_TARGET * target:
        down, up = calibration_limit(tries, target)
        warnings.warn(
            f"rate calibration stopped at {tries[best][1]:.3g} bits/value for a target of {target:g}: the "
            f"quantizer scale moves at most {up if tries[best][1] < target else -down:g} octaves from the trained one "
            f"(tries: {', '.join(f'{r:.3g}' for _, r in tries)}). Data whose rate barely answers the step "
            "(piecewise-constant or integer-valued data whose streams the sample-coding fallback takes, "
            "a few rare spikes or events over a flat or quiet level"
            + (f"; short series, whose own statistics take about {statistics:.2g} bits/value of it" if statistics else "")
            + (f"; series short for windows of {trainer.config.window} records, {padded:.0%} of the coded records filling "
               "each one's last window, which cost bits at any step: train with a shorter window=" if padded else "")
            + ") stops short; "
            # no trade-off goes below the statistics (Gapminder, 12-year series, asked 0.5 bits/value:
            # stopped at 2.76, and lmbda=0.01 then gave 2.80)
            + ("no lmbda= takes a series-scaled codec below its statistics: train with normalise='column' for a lower rate"
               if statistics > MISSED_TARGET * target and tries[best][1] > target
               else "train with lmbda= to set the trade-off directly"),
            stacklevel=4,  # train -> calibrate_on_training_records -> here: at the caller of train
        )
    return {
        "target_bits_per_value": target, "octaves": tries[best][0], "bits_per_value": tries[best][1],
        "tries": [list(t) for t in tries],  # JSON's shape: the manifest reads back equal
    }


def validation_bits(codec: Codec, series: list[np.ndarray]) -> float:
    """Bits per value ``codec`` codes ``series`` in (its tables' exact code length)."""
    return codec.series_code_length(series) / sum(s.size for s in series)


def warn_if_tables_capped(codec):
    """Warn when some coding table hit its symbol cap (``MAX_SYMBOLS``, fewer for codecs of
    many tables: :func:`~ltc_beam.codec.tables.symbol_cap`): its latent needs more resolution
    than a table holds, and the symbols beyond it escape (bypass-coded, a few times their bits)."""
    classes = 1 if codec.classes is None else CLASS_COUNT
    cap = symbol_cap(table_count(codec.lattice, codec.config.mode, codec.config.latent_dim, classes))
    if codec.tables.num_symbols >= cap:
        bits = math.log2(cap) - 1
        reached, asked = calibrated_rate(codec)
        # where the rate stopped well below the one asked, fewer bits per value are no remedy
        # (MNIST asked for 4 bits/value: 1.97, and this said "Ask for fewer bits per value")
        short = reached is not None and asked is not None and reached < (1 - RATE_TOLERANCE) * asked
        warnings.warn(
            f"some coding tables hit the {cap}-symbol cap: the codec spends more than about "
            f"{bits:.0f} bits on some latent channels and pays escapes for the symbols beyond the tables. "
            + (f"Its rate stopped at {reached:.3g} bits/value of the {asked:.3g} asked, so a few channels take most of "
               "the bits: check" if short else "Ask for fewer bits per value, or check")
            + " that the data is not of low rank (fewer "
            "latent channels then carry all the bits) or of a wide dynamic range (loud stretches, such as a "
            "seismic event, far above a quiet background that sets the step).",
            stacklevel=3,
        )
    return codec


def calibrate_on_training_records(
    trainer: Trainer, target: float, series: list[np.ndarray], freeze, series_scaled: bool, shown, statistics: float = 0.0
) -> dict:
    """:func:`calibrate_rate` on the training records ``series`` (evenly spread pieces of
    ``CALIBRATION_VALUES`` values, ``SERIES_CALIBRATION_FACTOR`` times that for a
    series-scaled codec), each try coded by the codec ``freeze(model)`` makes; ``shown`` (a
    progress bar) says each try's rate; ``statistics``: the bits per value a series-scaled
    codec's series statistics take on them (as ``train``'s warning on them says)."""
    from ltc_beam.codec.window_choice import padding_share  # (it imports training, which imports this module)

    data = calibration_series(series, CALIBRATION_VALUES * (SERIES_CALIBRATION_FACTOR if series_scaled else 1))
    shown.set_description_str(f"finish: rate calibration to {target:g} bits/value")
    window = trainer.config.window
    padded = padding_share(series, window) if window > 1 else 0.0

    def measure(model: LtcModel) -> float:
        bits = coded_bits_per_value(freeze(copy.deepcopy(model)), data)
        shown.set_description_str(f"finish: rate calibration to {target:g} bits/value: coded {bits:.3f}")
        return bits

    return calibrate_rate(trainer, target, measure, statistics, padded if padded >= SHORT_SERIES_PADDING else 0.0)
