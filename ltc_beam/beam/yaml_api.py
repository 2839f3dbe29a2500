"""Beam YAML entry points (``transforms/ltc_provider.yaml`` maps names to these).

Plain keyword parameters with simple types, so Beam YAML can derive each transform's
config schema. Empty strings mean "not set" (handy with Jinja templating).
"""

from __future__ import annotations

from typing import Optional

from ltc_beam.beam import io as _io
from ltc_beam.beam import transforms as _t


def _opt(value):
    return value if value not in ("", None) else None


def ReadParquetTables(path: str):
    """Read Parquet (file, directory or glob) as one ``pa.Table`` per row group."""
    return _io.ReadParquetTables(path)


def WriteParquetTables(path: str, num_shards: int = 4):
    """Write ``pa.Table`` elements as Parquet files ``PATH-SSSSS-of-NNNNN.parquet``."""
    return _io.WriteParquetTables(path, int(num_shards))


def LtcEncode(
    codec: str,
    column: Optional[str] = None,
    columns: Optional[str] = None,
    key: Optional[str] = None,
    order_by: Optional[str] = None,
    layout: str = "chunk",
    chunk_size: int = 0,
    embed_codec: bool = True,
    device: str = "auto",
    sample_fallback: bool = True,
    rd_quantization: Optional[bool] = None,
    leave_out_repeats: bool = True,
):
    """Compress record batches with the LTC codec at URI ``codec`` (see ltc_beam.beam.LtcEncode);
    ``chunk_size`` 0 takes the default, like the empty strings of the optional names."""
    return _t.LtcEncode(
        codec,
        column=_opt(column),
        columns=_opt(columns),
        key=_opt(key),
        order_by=_opt(order_by),
        layout=layout,
        chunk_size=int(chunk_size) or None,
        embed_codec=bool(embed_codec),
        device=device,
        sample_fallback=bool(sample_fallback),
        rd_quantization=None if rd_quantization is None else bool(rd_quantization),
        leave_out_repeats=bool(leave_out_repeats),
    )


def LtcDecode(codec: Optional[str] = None, device: str = "auto"):
    """Decode compressed batches (embedded codec unless ``codec`` is given)."""
    return _t.LtcDecode(_opt(codec), device=device)
