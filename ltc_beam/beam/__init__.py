"""Apache Beam integration: ``LtcEncode`` / ``LtcDecode`` PTransforms, the RunInference
``LtcModelHandler``, Parquet table I/O and runner helpers. See ``docs/deployment.md``."""

from ltc_beam.beam.handler import LtcModelHandler
from ltc_beam.beam.io import CompressParquet, DecompressParquet, EncodeToParquet, ReadParquetTables, WriteParquetTables
from ltc_beam.beam.transforms import LtcDecode, LtcEncode, LtcEncodeShards

__all__ = [
    "LtcEncode",
    "LtcEncodeShards",
    "LtcDecode",
    "LtcModelHandler",
    "ReadParquetTables",
    "WriteParquetTables",
    "EncodeToParquet",
    "CompressParquet",
    "DecompressParquet",
]
