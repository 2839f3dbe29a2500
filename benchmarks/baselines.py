"""Classical codecs for the rate–distortion comparison (``benchmarks/compare.py``).

Every baseline compresses the *same unit* as LTC: the whole test split as one stream, given
here as the list of its series (each ``[records, channels]`` float32, z-scored with the
TRAIN statistics). Each returns points ``{"codec", "layout", "param", "bytes",
"reconstruction"}``; the caller measures bits per value and SNR the same way for all.

Each classical codec gets the layouts that suit it and the best one is kept per point by
the caller (the lower envelope):

- SZ3 (``pysz``): absolute error bound sweep; layouts ``[time, channels]`` (all series
  concatenated), ``[channels, time]``, ``[series, time, channels]``; predictors: SZ3's
  default (interpolation + Lorenzo) and Lorenzo/regression.
- ZFP (``zfpy``): accuracy (tolerance) sweep; the same three layouts.
- Uniform scalar quantisation + zstd (level 19): step sweep; integers time-major,
  channel-major, and channel-major after a first difference along time within each
  series (DPCM: what a telemetry engineer would try first); each as the smallest integer
  type, plain and byte-shuffled (byte planes grouped, as Blosc does).
- FAISS scalar quantisers (4, 6 and 8 bits per value, trained on the train split) and
  product quantisers (``M`` sub-vectors of 8 bits on records and on windows of records).
  FAISS codes are raw fixed-size codes; their bytes are ``vectors × code_size``.
- zstd (level 19) lossless on the original float32 values.
"""

from __future__ import annotations

import itertools

import numpy as np
import zstandard

ZSTD_LEVEL = 19


def _concat(series: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(series).astype(np.float32))


def _layouts(series: list[np.ndarray]):
    """(name, array, inverse) for the array layouts SZ3 and ZFP are given."""
    whole = _concat(series)
    d = whole.shape[1]
    out = [
        ("time x channels", whole, lambda a: a.reshape(-1, d)),
        ("channels x time", np.ascontiguousarray(whole.T), lambda a: np.ascontiguousarray(a.T)),
    ]
    lengths = {len(s) for s in series}
    if len(series) > 1 and len(lengths) == 1:
        cube = np.ascontiguousarray(np.stack(series).astype(np.float32))
        out.append(("series x time x channels", cube, lambda a: a.reshape(-1, d)))
    return out


# ---------------------------------------------------------------------------- SZ3
def sz3_points(series: list[np.ndarray], bounds) -> list[dict]:
    from pysz import sz, szAlgorithm, szConfig, szErrorBoundMode

    points = []
    algos = [("interp+lorenzo", szAlgorithm.INTERP_LORENZO), ("lorenzo+regression", szAlgorithm.LORENZO_REG)]
    for name, array, inverse in _layouts(series):
        for algo_name, algo in algos:
            for bound in bounds:
                config = szConfig()
                config.errorBoundMode = szErrorBoundMode.ABS
                config.absErrorBound = float(bound)
                config.cmprAlgo = algo
                blob, _ = sz.compress(array, config)
                rec = sz.decompress(blob, np.float32, array.shape)[0]
                points.append({
                    "codec": "sz3",
                    "layout": f"{name}, {algo_name}",
                    "param": {"abs_error_bound": float(bound)},
                    "bytes": int(blob.nbytes),
                    "reconstruction": inverse(rec),
                })
    return points


# ---------------------------------------------------------------------------- ZFP
def zfp_points(series: list[np.ndarray], tolerances) -> list[dict]:
    import zfpy

    points = []
    for name, array, inverse in _layouts(series):
        for tol in tolerances:
            blob = zfpy.compress_numpy(array, tolerance=float(tol))
            rec = zfpy.decompress_numpy(blob)
            points.append({
                "codec": "zfp",
                "layout": name,
                "param": {"tolerance": float(tol)},
                "bytes": len(blob),
                "reconstruction": inverse(rec),
            })
    return points


# ---------------------------------------------------------------------------- uniform + zstd
def _int_bytes(q: np.ndarray, shuffle: bool = False) -> bytes:
    """Smallest signed integer type that holds ``q``; ``shuffle`` groups byte planes (as Blosc does)."""
    peak = int(np.abs(q).max()) if q.size else 0
    dtype = np.int8 if peak < 2**7 else np.int16 if peak < 2**15 else np.int32
    arr = np.ascontiguousarray(q.astype(dtype))
    if shuffle and arr.itemsize > 1:
        return np.ascontiguousarray(arr.reshape(-1).view(np.uint8).reshape(-1, arr.itemsize).T).tobytes()
    return arr.tobytes()


def uniform_zstd_points(series: list[np.ndarray], steps) -> list[dict]:
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    points = []
    for step in steps:
        qs = [np.round(s / step).astype(np.int64) for s in series]
        whole = np.concatenate(qs)
        rec = (whole * step).astype(np.float32)
        deltas = np.concatenate([np.diff(q, axis=0, prepend=np.zeros((1, q.shape[1]), np.int64)) for q in qs])
        layouts = [
            ("time x channels", whole),
            ("channels x time", whole.T),
            ("channels x time, delta", deltas.T),
        ]
        for (name, ints), shuffle in itertools.product(layouts, (False, True)):
            blob = cctx.compress(_int_bytes(ints, shuffle))
            points.append({
                "codec": "uniform+zstd",
                "layout": name + (", byte-shuffled" if shuffle else ""),
                "param": {"step": float(step)},
                "bytes": len(blob),
                "reconstruction": rec,
            })
    return points


# ---------------------------------------------------------------------------- FAISS
def _windows(series: list[np.ndarray], window: int) -> np.ndarray:
    """Windows of ``window`` records per series (tail padded by repeating the last record)."""
    out = []
    for s in series:
        count = -(-len(s) // window)
        padded = np.concatenate([s, np.repeat(s[-1:], count * window - len(s), axis=0)])
        out.append(padded.reshape(count, -1))
    return np.ascontiguousarray(np.concatenate(out).astype(np.float32))


def _unwindow(vectors: np.ndarray, series: list[np.ndarray], window: int) -> np.ndarray:
    d = series[0].shape[1]
    parts, start = [], 0
    for s in series:
        count = -(-len(s) // window)
        parts.append(vectors[start : start + count].reshape(-1, d)[: len(s)])
        start += count
    return np.concatenate(parts)


def faiss_points(train: list[np.ndarray], series: list[np.ndarray], *, windows=(1, 8), seed: int = 0) -> list[dict]:
    import faiss

    faiss.omp_set_num_threads(1)
    points = []
    x_train = _concat(train)
    x_test = _concat(series)
    d = x_test.shape[1]
    for bits, qtype in ((4, faiss.ScalarQuantizer.QT_4bit), (6, faiss.ScalarQuantizer.QT_6bit), (8, faiss.ScalarQuantizer.QT_8bit)):
        index = faiss.IndexScalarQuantizer(d, qtype)
        index.train(x_train)
        codes = index.sa_encode(x_test)
        points.append({
            "codec": "faiss-sq",
            "layout": "records",
            "param": {"bits": bits},
            "bytes": int(codes.size),
            "reconstruction": index.sa_decode(codes),
        })
    for window in windows:
        tr = _windows(train, window)
        te = _windows(series, window)
        dim = tr.shape[1]
        subs = [m for m in sorted({1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48}) if dim % m == 0 and m <= dim]
        for m in subs:
            nbits = 8
            if len(tr) < 2**nbits:  # k-means needs at least one training point per centroid
                continue
            index = faiss.IndexPQ(dim, m, nbits)
            index.pq.cp.seed = seed
            index.pq.cp.min_points_per_centroid = 1  # below FAISS's 39 it printed a warning per training
            index.train(tr)
            codes = index.sa_encode(te)
            rec = _unwindow(index.sa_decode(codes), series, window)
            points.append({
                "codec": "faiss-pq",
                "layout": f"window {window}" if window > 1 else "records",
                "param": {"M": m, "nbits": nbits, "window": window},
                "bytes": int(codes.size),
                "reconstruction": rec,
            })
    return points


# ---------------------------------------------------------------------------- lossless
def zstd_lossless_points(raw_series: list[np.ndarray]) -> list[dict]:
    """zstd on the original float32 values (all series concatenated, time-major)."""
    whole = _concat(raw_series)
    blob = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(whole.tobytes())
    return [{"codec": "zstd-lossless", "layout": "time x channels, float32", "param": {"level": ZSTD_LEVEL},
             "bytes": len(blob), "reconstruction": None}]
