"""Codec artifacts (``*.ltc``): one safetensors file, manifest JSON in its header, stored as
one zstd frame (with its checksum).

Coding tables are dense integer arrays, mostly padding (every table is as wide as the
widest): zstd shrinks artifacts 12-30x (measured: a BasicMotions codec 866 KB -> 46 KB, a
384-value embedding codec 65 MB -> 2.2 MB). Readers take plain safetensors too (artifacts
written before compression; a safetensors file never starts with zstd's magic number).

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

from ltc_beam.bitstream import decompress_exactly, stated_size
from ltc_beam.codec.codec import FORMAT, FORMAT_VERSION, Codec, content_hash
from ltc_beam.codec.config import CodecConfig
from ltc_beam.codec.model import LtcModel
from ltc_beam.entropy import SymbolTables
from ltc_beam.errors import FormatError
from ltc_beam.storage import read_bytes, write_bytes


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 19  # about 0.1 s for a 4 MB artifact, 1 s for 65 MB
MAX_ARTIFACT_BYTES = 1 << 30  # a decompressed artifact beyond this is refused (not an ltc-beam codec)


def codec_to_bytes(codec: Codec, compressed: bool = True) -> bytes:
    """The artifact's bytes: safetensors (``compressed=False``), or that in one zstd frame."""
    raw = save_arrays(codec.tensors(), metadata={"manifest": json.dumps(codec.manifest, sort_keys=True)})
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
    data = _safetensors(data)
    try:
        arrays = load_arrays(bytes(data))
        header_len = int.from_bytes(bytes(data[:8]), "little")
        manifest = json.loads(json.loads(bytes(data[8 : 8 + header_len]))["__metadata__"]["manifest"])
    except (SafetensorError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise FormatError(f"not an ltc-beam codec artifact: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise FormatError(f"not an ltc-beam codec artifact (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FormatError(
            f"codec format version {manifest.get('format_version')} is not supported (this build reads {FORMAT_VERSION})"
        )
    actual = content_hash(manifest, arrays)
    if actual != manifest.get("codec_id"):
        raise FormatError(f"codec artifact is damaged: content hash {actual} != recorded id {manifest.get('codec_id')}")
    try:
        config = CodecConfig.from_dict(manifest["config"])
        norm = manifest["normalisation"]
        model = LtcModel(config, np.asarray(norm["mean"]), np.asarray(norm["std"]))
        state = {k[6:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("model.")}
        model.load_state_dict(state)
        tables = SymbolTables.from_arrays({k[7:]: v for k, v in arrays.items() if k.startswith("tables.")})
        return Codec(model, tables, arrays["tables.base"], manifest, device=device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise FormatError(f"codec artifact is inconsistent: {exc}") from exc


def write_codec(codec: Codec, uri: str) -> None:
    write_bytes(uri, codec_to_bytes(codec))


def read_codec(uri: str, device: str = "cpu") -> Codec:
    return codec_from_bytes(read_bytes(uri), device=device)
