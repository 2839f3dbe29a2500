"""The contracts in schemas/ against the code: Arrow layouts, table metadata, codec manifest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pytest
import zstandard

import ltc_beam
from ltc_beam import arrow
from ltc_beam.codec.artifact import codec_from_bytes
from tests.beam_fixtures import block_codec, small, telemetry, vec_codec, window_codec  # noqa: F401

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def load(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


@pytest.mark.parametrize("layout", ["chunk", "record"])
@pytest.mark.parametrize("embed", [True, False])
def test_layout_files_match_compressed_schema(small, vec_codec, layout, embed):
    codec, _ = vec_codec
    spec = load(f"arrow_{layout}_layout.json")
    assert spec["layout"] == layout and spec["version"] == arrow.LAYOUT_VERSIONS[layout]
    schema = arrow.compressed_schema(small.schema, codec, layout=layout, column="values", key="device", order_by="ts", embed_codec=embed)
    tail = spec["columns"]
    fields = list(schema)[-len(tail):]
    for want, field in zip(tail, fields):
        assert field.name == want["name"]
        assert str(field.type) == want["type"]
        assert field.nullable == want["nullable"]
    passthrough = list(schema)[: -len(tail)]
    originals = [f for f in small.schema if f.name != "values"]
    assert [f.name for f in passthrough] == [f.name for f in originals]
    for f, o in zip(passthrough, originals):
        if spec["pass_through"]["rule"] == "list":
            assert f.type == pa.list_(pa.field("item", o.type, o.nullable))
        else:
            assert f.type == o.type
    keys = {k.decode() for k in schema.metadata}
    required = {k for k, v in spec["metadata"].items() if v["required"]}
    assert required <= keys <= set(spec["metadata"])
    assert ("ltc.codec" in keys) == embed
    # every metadata entry is what the file says it is
    jsonschema.validate(json.loads(schema.metadata[b"ltc"]), load("table_metadata.schema.json"))
    jsonschema.validate(json.loads(schema.metadata[b"ltc.manifest"]), load("codec_manifest.schema.json"))
    assert arrow.schema_from_bytes(schema.metadata[b"ltc.schema"]).equals(small.schema, check_metadata=True)
    if embed:
        raw = zstandard.ZstdDecompressor().decompress(base64.b64decode(schema.metadata[b"ltc.codec"]))
        assert codec_from_bytes(raw).id == codec.id


def test_table_metadata_schema_rejects_bad_entries():
    schema = load("table_metadata.schema.json")
    good = {"format": "ltc-beam-table", "version": 1, "layout": "chunk", "codec_id": "0" * 32, "record_dim": 3, "column": "v"}
    jsonschema.validate(good, schema)
    for bad in (dict(good, layout="rows"), dict(good, version=4), {k: v for k, v in good.items() if k != "column"}, dict(good, extra=1)):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_codec_manifests_validate(vec_codec, window_codec, block_codec, codecs):
    schema = load("codec_manifest.schema.json")
    for codec, _ in (vec_codec, window_codec, block_codec):
        jsonschema.validate(codec.manifest, schema)
    classes = codecs["classes_block"].manifest
    assert "classes" in classes["tables"]
    jsonschema.validate(classes, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(vec_codec[0].manifest, codec_id="XYZ"), schema)
    with pytest.raises(jsonschema.ValidationError):
        broken = {**classes["tables"]["classes"], "segment_rows": 0}
        jsonschema.validate(dict(classes, tables={**classes["tables"], "classes": broken}), schema)


def test_format_4_manifests_validate(codecs, monkeypatch):
    """A codec whose block-mode class segments cut lattice points (codec format version 4)
    validates; version 3 is for series-scaled codecs only."""
    from ltc_beam.codec import adaptive
    from ltc_beam.codec.codec import Codec
    from tests.conftest import switching_series

    monkeypatch.setattr(adaptive, "segment_sizes", lambda mode, n, latent: [1])
    manifest = Codec.from_model(codecs["classes_block"].model, fit_series=switching_series(1200, 6, seed=5, period=4),
                                validation_series=switching_series(600, 6, seed=6, period=4)).manifest
    assert manifest["format_version"] == 4 and manifest["tables"]["classes"]["segment_rows"] == 1
    schema = load("codec_manifest.schema.json")
    jsonschema.validate(manifest, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(manifest, format_version=3), schema)


def test_bitstream_doc_is_present():
    assert (SCHEMAS / "BITSTREAM.md").exists()


def test_series_scaled_manifests_validate():
    from tests.test_scaling import panel

    schema = load("codec_manifest.schema.json")
    manifest = ltc_beam.train(panel(6, seed=9), steps=10, progress=False, normalise="series").manifest
    assert manifest["normalisation"]["per"] == "series" and manifest["format_version"] == 3
    jsonschema.validate(manifest, schema)
    for broken in (dict(manifest, normalisation={**manifest["normalisation"], "per": "row"}), dict(manifest, format_version=2)):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
