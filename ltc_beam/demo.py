"""``ltc-beam demo``: real IMU telemetry through the embedded Beam pipeline, end to end.

1. data: ``data/basic_motions/{train,test}.parquet`` (committed, provenance in its README);
2. codecs: the committed ones in ``data/basic_motions/codecs/`` (E8 lattice, vector mode, windows of 4
   records, three rates), or trained on the train split (``--retrain``, or when a committed
   codec is missing or unreadable);
3. the main codec compresses the *test* split through ``CompressParquet`` on FnApiRunner
   (key ``recording``, order ``step``), and ``DecompressParquet`` decodes it; records are
   counted in and out;
4. prints a table — bits per value, SNR, ratio vs float32 and vs zstd lossless — and
   writes ``rd.png`` (SNR vs bits per value, LTC vs uniform quantisation + zstd) and
   ``summary.json`` in the output directory.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from ltc_beam.evaluation import quantise_zstd, snr_db
from ltc_beam.parquet import embedded_codec_bytes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "basic_motions"
CODECS = DATA / "codecs"
# Vector mode: at the same bits as block mode here (1.58 vs 1.59 bits/value at 15.3-15.5 dB),
# its codec is 25 KB against block mode's 59 KB (2 bits/value), and each Parquet file embeds one.
SETTINGS = dict(lattice="e8", mode="vector", window=4)
RATES = (1.0, 2.0, 3.0)
MAIN_RATE = 2.0
OPTS = dict(column="values", key="recording", order_by="step")


def codec_name(rate: float) -> str:
    return f"ltc-{SETTINGS['lattice']}-w{SETTINGS['window']}-{rate:g}bpv.ltc"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _values(table: pa.Table) -> np.ndarray:
    col = table.column("values").combine_chunks()
    return np.asarray(col.flatten(), dtype=np.float32).reshape(table.num_rows, -1)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("recording", "ascending"), ("step", "ascending")])


def load_or_train(rate: float, *, retrain: bool, steps: int, codec_dir: Path, train_path: Path):
    """The committed codec for ``rate`` or, failing that, a freshly trained one."""
    from ltc_beam.codec.codec import Codec
    from ltc_beam.errors import LtcError

    committed = CODECS / codec_name(rate)
    if not retrain and committed.exists():
        try:
            return Codec.load(str(committed)), str(committed)
        except (LtcError, ValueError) as exc:
            _say(f"committed codec {committed.name} is unreadable by this build ({exc}); retraining")
    from ltc_beam.codec.training import train
    from ltc_beam.data import load

    data = load(str(train_path), **OPTS)
    _say(f"training {codec_name(rate)} on {data.records} records ({steps} steps) ...")
    start = time.time()
    codec = train(
        data.series,
        target_bits_per_value=rate,
        steps=steps,
        progress=False,
        seed=0,
        device="cpu",
        columns=data.columns,
        **SETTINGS,
    )
    codec_dir.mkdir(parents=True, exist_ok=True)
    path = codec_dir / codec_name(rate)
    codec.save(str(path))
    _say(f"  trained in {time.time() - start:.0f} s -> {path}")
    return codec, str(path)


def run_demo(
    out: str = "out/demo",
    retrain: bool = False,
    steps: int = 1000,
    runner: str = "FnApiRunner",
    beam_args=(),
    codec_dir: str | None = None,
) -> int:
    from ltc_beam import arrow
    from ltc_beam.beam.io import CompressParquet, DecompressParquet
    from ltc_beam.beam.runners import run

    train_path, test_path = DATA / "train.parquet", DATA / "test.parquet"
    if not test_path.exists():
        _say(f"demo data not found at {DATA} (run the demo from a clone of the repository)")
        return 2
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()

    target_dir = Path(codec_dir) if codec_dir else out_dir / "codecs"
    codecs = {r: load_or_train(r, retrain=retrain, steps=steps, codec_dir=target_dir, train_path=train_path) for r in RATES}
    main_codec, main_path = codecs[MAIN_RATE]
    test = pq.read_table(test_path)
    x = _values(_sorted(test))
    values = x.size

    # ---- the Beam job: compress and decompress the test split on the embedded runner
    comp, dec = out_dir / "compressed", out_dir / "decoded"
    for d in (comp, dec):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.glob("*.parquet"):
            f.unlink()
    _say(f"compressing {test.num_rows} records with Beam ({runner}) ...")
    t0 = time.time()
    run(lambda p: p | CompressParquet(str(test_path), str(comp), main_path, num_shards=1, **OPTS), runner, list(beam_args))
    t1 = time.time()
    run(lambda p: p | DecompressParquet(str(comp), str(dec), num_shards=1), runner, list(beam_args))
    t2 = time.time()
    compressed = pa.concat_tables([pq.read_table(f) for f in sorted(comp.glob("*.parquet"))])
    decoded = pa.concat_tables([pq.read_table(f) for f in sorted(dec.glob("*.parquet"))])
    records_out = sum(compressed.column(arrow.COUNT).to_pylist())
    if records_out != test.num_rows or decoded.num_rows != test.num_rows:
        _say(f"record count mismatch: in {test.num_rows}, compressed {records_out}, decoded {decoded.num_rows}")
        return 1
    got = _sorted(decoded)
    if not got.drop(["values"]).equals(_sorted(test).drop(["values"])):
        _say("pass-through columns differ after decoding")
        return 1
    y = _values(got)
    payload = sum(len(b) for b in compressed.column(arrow.PAYLOAD).to_pylist())
    file_bytes = sum(f.stat().st_size for f in comp.glob("*.parquet"))
    embedded = sum(embedded_codec_bytes(str(f)) for f in comp.glob("*.parquet"))
    main = {"bits_per_value": payload * 8 / values, "snr_db": snr_db(x, y)}

    # ---- baselines
    raw = x.tobytes()
    zstd_bits = len(zstandard.ZstdCompressor(level=19).compress(raw)) * 8 / values
    shuffled = np.frombuffer(raw, np.uint8).reshape(-1, 4).T.tobytes()  # byte planes, as float codecs do
    zstd_shuffle_bits = len(zstandard.ZstdCompressor(level=19).compress(shuffled)) * 8 / values

    # ---- the other rates, in process (the same chunks and bytes the pipeline would make)
    rd = []
    for rate, (codec, _) in codecs.items():
        if rate == MAIN_RATE:
            rd.append((rate, main["bits_per_value"], main["snr_db"]))
            continue
        enc = arrow.encode_table(test, codec, **OPTS)
        bits = sum(len(b) for b in enc.column(arrow.PAYLOAD).to_pylist()) * 8 / values
        rd.append((rate, bits, snr_db(x, _values(_sorted(arrow.decode_table(enc))))))
    sq = [quantise_zstd(x, s) for s in (1.2, 0.8, 0.5, 0.3, 0.2, 0.12, 0.08)]

    rows = [("float32 (raw)", 32.0, math.inf), ("zstd-19 lossless", zstd_bits, math.inf), ("zstd-19 lossless, byte-shuffled", zstd_shuffle_bits, math.inf)]
    for rate, bits, snr in rd:
        label = f"LTC e8 window 4 @{rate:g}" + (" (Beam job)" if rate == MAIN_RATE else "")
        rows.append((label, bits, snr))
    near = min(sq, key=lambda bs: abs(bs[1] - main["snr_db"]))
    rows.append(("uniform quantiser + zstd-19 (near the Beam job's SNR)", near[0], near[1]))

    lines = [
        f"BasicMotions test split: {test.num_rows} records x 6 values, {test.num_rows // 100} recordings (real IMU telemetry)",
        f"Beam job on {runner}: compress {t1 - t0:.1f} s, decompress {t2 - t1:.1f} s; records in {test.num_rows}, "
        f"compressed {records_out}, decoded {decoded.num_rows}; other columns identical",
        "",
        f"{'method':<56} {'bits/value':>10} {'SNR dB':>8} {'x float32':>10} {'x zstd':>8}",
    ]
    for label, bits, snr in rows:
        snr_s = "lossless" if math.isinf(snr) else f"{snr:.2f}"
        lines.append(f"{label:<56} {bits:>10.3f} {snr_s:>8} {32 / bits:>10.1f} {zstd_bits / bits:>8.1f}")
    lines += [
        "",
        f"bits/value = entropy-coded payload incl. bitstream headers; the whole Parquet file "
        f"(pass-through columns, metadata, embedded codec) is {file_bytes} bytes = "
        f"{file_bytes * 8 / values:.2f} bits/value for this small split; the embedded codec takes "
        f"{embedded} of them, paid once per file.",
    ]
    table = "\n".join(lines)
    print(table)

    summary = {
        "records": test.num_rows,
        "values": values,
        "runner": runner,
        "beam_compress_seconds": round(t1 - t0, 2),
        "beam_decompress_seconds": round(t2 - t1, 2),
        "codec_id": main_codec.id,
        "ltc": [{"target": r, "bits_per_value": b, "snr_db": s} for r, b, s in rd],
        "zstd19_bits_per_value": zstd_bits,
        "zstd19_shuffled_bits_per_value": zstd_shuffle_bits,
        "quantiser_zstd": [{"bits_per_value": b, "snr_db": s} for b, s in sq],
        "file_bytes": file_bytes,
        "embedded_codec_bytes": embedded,
        "total_seconds": round(time.time() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "table.txt").write_text(table + "\n")
    _plot(out_dir / "rd.png", rd, sq, zstd_bits)
    _say(f"wrote {out_dir / 'table.txt'}, {out_dir / 'summary.json'}, {out_dir / 'rd.png'} ({time.time() - started:.0f} s)")
    return 0


def _plot(path: Path, rd, sq, zstd_bits: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _say("matplotlib is not installed: no RD plot (pip install 'ltc-beam[demo]')")
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot([b for b, _ in sq], [s for _, s in sq], "s--", color="tab:gray", label="uniform quantiser + zstd-19")
    ax.plot([b for _, b, _ in rd], [s for _, _, s in rd], "o-", color="tab:blue", label="LTC (E8, window 4)")
    ax.axvline(zstd_bits, color="tab:red", ls=":", label=f"zstd-19 lossless ({zstd_bits:.1f} bits/value)")
    ax.set_xlabel("bits per value")
    ax.set_ylabel("SNR (dB)")
    ax.set_xlim(0, max(6.0, max(b for b, _ in sq) + 0.5))
    ax.set_title("BasicMotions test split (real IMU telemetry)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
