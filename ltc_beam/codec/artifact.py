"""Codec artifacts (``*.ltc``): one safetensors file, manifest JSON in its header, stored as
one zstd frame (with its checksum).

Coding tables are dense integer arrays, mostly padding (every table is as wide as the
widest): zstd shrinks artifacts 12-30x (measured: a BasicMotions codec 866 KB -> 46 KB, a
384-value embedding codec 65 MB -> 2.2 MB). Readers take plain safetensors too (artifacts
written before compression; a safetensors file never starts with zstd's magic number).

Frequencies keep 5 significant bits (:data:`ltc_beam.entropy.SIGNIFICANT_BITS`), so the
tables are stored as row differences of a log code of each frequency, in two byte planes,
plus the few frequencies with more bits (each row's largest) by position (arrays
``tables.freqs_log_delta``, ``tables.freqs_wide_at``, ``tables.freqs_wide`` instead of
``tables.freqs``; codec format version 2). The header holds the manifest alone, so equal
codecs give equal bytes. Exact, and zstd
codes it about 2x shorter than the uint32 array (BasicMotions 3-bit codec: 38 -> 21 KB).
Tables that were never rounded store shorter whole (``tables.freqs``), and are; artifacts
of format version 1 store them whole and still load.

No pickle anywhere: loading parses JSON and raw little-endian arrays, never runs code.
The codec id in the manifest is a content hash of the manifest and the arrays (not of the
stored bytes); loading recomputes it, so a damaged or edited artifact is refused.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import zstandard
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from ltc_beam.codec.codec import (
    FORMAT, READABLE_FORMAT_VERSIONS, SERIES_SCALED_FORMAT_VERSION, SPLIT_CLASSES_FORMAT_VERSION, Codec, content_hash,
)
from ltc_beam.codec.config import OUTLIER_Z, CodecConfig
from ltc_beam.codec.model import LtcModel, float32_default
from ltc_beam.codec.scaling import NORMALISATIONS
from ltc_beam.entropy import SymbolTables, from_log_codes, log_codes
from ltc_beam.errors import FormatError
from ltc_beam.storage import is_folder, is_remote, read_bytes, write_bytes
from ltc_beam.zstd_frames import decompress_exactly, stated_size


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 19  # about 0.1 s for a 4 MB artifact, 1 s for 65 MB
MAX_ARTIFACT_BYTES = 1 << 30  # a decompressed artifact beyond this is refused (not an ltc-beam codec)


FREQS = "tables.freqs"
LOG_ARRAYS = ("tables.freqs_log_delta", "tables.freqs_wide_at", "tables.freqs_wide")
MAX_LOG_CODE = 16 * 19 + 31  # the code of the largest frequency below 2**24


def log_delta_freqs(freqs: np.ndarray) -> dict[str, np.ndarray]:
    """The tables as row differences of :func:`~ltc_beam.entropy.log_codes` (zigzag, low and high byte
    planes), plus the flat positions and values of the frequencies with more than 5
    significant bits (each row's largest; every one of a row kept exact)."""
    f = freqs.astype(np.int64)
    code = log_codes(f)
    wide = np.flatnonzero(from_log_codes(code).reshape(-1) != f.reshape(-1))
    step = np.diff(code, axis=1, prepend=0)
    zigzag = np.where(step >= 0, 2 * step, -2 * step - 1)
    planes = np.stack([zigzag & 255, zigzag >> 8]).astype(np.uint8)
    return dict(zip(LOG_ARRAYS, (planes, wide.astype(np.int64), f.reshape(-1)[wide].astype(np.uint32))))


def freqs_from_log_delta(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`log_delta_freqs`; raises FormatError on inconsistent arrays."""
    planes, at, wide = (arrays[name] for name in LOG_ARRAYS)
    where = "codec artifact is damaged: its stored frequency tables"
    if planes.dtype != np.uint8 or planes.ndim != 3 or planes.shape[0] != 2:
        raise FormatError(f"{where} have the wrong shape or type")
    if at.dtype != np.int64 or wide.dtype != np.uint32 or at.ndim != 1 or at.shape != wide.shape:
        raise FormatError(f"{where} list their wide frequencies wrongly")
    zigzag = planes[0].astype(np.int64) | (planes[1].astype(np.int64) << 8)
    code = np.cumsum((zigzag >> 1) ^ -(zigzag & 1), axis=1)
    if code.size and (int(code.min()) < 1 or int(code.max()) > MAX_LOG_CODE):
        raise FormatError(f"{where} are out of range")
    freqs = from_log_codes(code).astype(np.uint32)
    if at.size and (int(at[0]) < 0 or int(at[-1]) >= freqs.size or (np.diff(at) <= 0).any()):
        raise FormatError(f"{where}: wide frequencies out of order or outside the tables")
    freqs.reshape(-1)[at] = wide
    return freqs


def _zstd_bytes(arrays) -> int:
    """Rough compressed size (fast zstd level) of arrays stored one after another."""
    return len(zstandard.ZstdCompressor(level=3).compress(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)))


def codec_to_bytes(codec: Codec, compressed: bool = True) -> bytes:
    """The artifact's bytes: safetensors (``compressed=False``), or that in one zstd frame
    (the bytes it was loaded from, where they are of its content)."""
    if compressed and codec.loaded_from is not None and codec.loaded_from[0] == codec.id:
        return codec.loaded_from[1]
    arrays = codec.tensors()
    metadata = {"manifest": json.dumps(codec.manifest, sort_keys=True)}
    if codec.manifest["format_version"] >= 2:  # a version-1 codec stays readable by version-1 builds
        stored = log_delta_freqs(arrays[FREQS])
        shorter = _zstd_bytes(stored.values()) < _zstd_bytes([arrays[FREQS]])  # not so for tables never rounded
        if shorter and np.array_equal(freqs_from_log_delta(stored), arrays[FREQS]):  # read back before trusting it
            del arrays[FREQS]
            arrays.update(stored)
    raw = save_arrays(arrays, metadata=metadata)
    if not compressed:
        return raw
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(raw)


def _safetensors(data: bytes) -> bytes:
    """The safetensors bytes of an artifact, compressed or not. A zstd frame must state its
    size (at most ``MAX_ARTIFACT_BYTES``; zstd would allocate whatever a damaged header
    says) and hold exactly that, with nothing after it."""
    data = bytes(data)
    if not data[:4] == ZSTD_MAGIC:
        return data
    where = "damaged codec artifact"
    size = stated_size(data, where)
    if size > MAX_ARTIFACT_BYTES:
        raise FormatError(f"{where}: its zstd frame states {size} bytes (at most {MAX_ARTIFACT_BYTES})")
    return decompress_exactly(data, size, where)


def codec_from_bytes(data: bytes, device: str = "cpu") -> Codec:
    """Parse an artifact (compressed or plain safetensors); raises FormatError when it is not
    a valid, intact ltc-beam codec."""
    if bytes(data[:4]) == b"PAR1":  # an archive names and embeds its codec, but is none
        raise FormatError(
            "this is a Parquet file, not a codec artifact: an archive decodes with ltc_beam.read_parquet(path) or "
            "ltc-beam decompress, with the codec it embeds"
        )
    stored = bytes(data) if bytes(data[:4]) == ZSTD_MAGIC else None
    data = _safetensors(data)
    try:
        arrays = load_arrays(bytes(data))
        header_len = int.from_bytes(bytes(data[:8]), "little")
        metadata = json.loads(bytes(data[8 : 8 + header_len]))["__metadata__"]
        manifest = json.loads(metadata["manifest"])
        if LOG_ARRAYS[0] in arrays:
            if FREQS in arrays:
                raise FormatError("codec artifact is damaged: it stores its frequency tables twice")
            arrays[FREQS] = freqs_from_log_delta(arrays)
            for name in LOG_ARRAYS:
                del arrays[name]
    except FormatError:
        raise
    except (SafetensorError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise FormatError(f"not an ltc-beam codec artifact: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise FormatError(f"not an ltc-beam codec artifact (format {manifest.get('format')!r})")
    if manifest.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise FormatError(
            f"codec format version {manifest.get('format_version')} is not supported (this build reads versions up to {max(READABLE_FORMAT_VERSIONS)})"
        )
    actual = content_hash(manifest, arrays)
    if actual != manifest.get("codec_id"):
        raise FormatError(f"codec artifact is damaged: content hash {actual} != recorded id {manifest.get('codec_id')}")
    try:
        config = CodecConfig.from_dict(manifest["config"])
        norm = manifest["normalisation"]
        _check_normalisation(manifest, config.record_dim)
        if norm.get("per", "column") not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {norm['per']!r}")
        series = norm.get("per") == "series"
        if (manifest["format_version"] == SERIES_SCALED_FORMAT_VERSION and not series) or (
            series and manifest["format_version"] not in (SERIES_SCALED_FORMAT_VERSION, SPLIT_CLASSES_FORMAT_VERSION)
        ):
            raise ValueError(f"format version {manifest['format_version']} does not go with normalisation {norm.get('per', 'column')!r}")
        with torch.random.fork_rng(devices=[]), float32_default():  # the caller's random stream and default dtype kept
            model = LtcModel(config, np.asarray(norm["mean"]), np.asarray(norm["std"]))
        state = {k[6:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("model.")}
        model.load_state_dict(state)
        tables = SymbolTables.from_arrays({k[7:]: v for k, v in arrays.items() if k.startswith("tables.")})
        codec = Codec(model, tables, arrays["tables.base"], manifest, device=device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise FormatError(f"codec artifact is inconsistent: {exc}") from exc
    codec.loaded_from = None if stored is None else (codec.id, stored)
    return codec


def _check_normalisation(manifest: dict, record_dim: int) -> None:
    """Raise ValueError where the manifest's per-column entries do not fit ``record_dim``
    columns, or a statistic no trained codec stores (a std of 0 or NaN wrote streams its own
    decode refused; a short constant list failed encode with an IndexError)."""
    norm = manifest["normalisation"]
    mean, std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
    if mean.shape != (record_dim,) or std.shape != (record_dim,):
        raise ValueError(f"normalisation holds {mean.size} means and {std.size} stds for {record_dim} columns")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ValueError("normalisation holds a mean or std that is not finite, or a std that is not above 0")
    for name, entries in (("constant", norm.get("constant")), ("columns", manifest.get("columns"))):
        if entries is not None and len(entries) != record_dim:
            raise ValueError(f"{name} lists {len(entries)} entries for {record_dim} columns")
    if not manifest.get("outlier_z", OUTLIER_Z) > 0:
        raise ValueError(f"outlier_z {manifest['outlier_z']!r} is not above 0")


def write_codec(codec: Codec, uri: str) -> None:
    if is_remote(uri) and is_folder(uri):  # a local directory is refused on opening
        raise IsADirectoryError(f"{uri} is a folder: give a file name to write")
    write_bytes(uri, codec_to_bytes(codec))


def read_codec(uri: str, device: str = "cpu") -> Codec:
    return codec_from_bytes(read_bytes(uri), device=device)
