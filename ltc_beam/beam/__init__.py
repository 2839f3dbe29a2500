"""Apache Beam integration: ``LtcEncode`` / ``LtcDecode`` PTransforms, the RunInference
``LtcModelHandler``, Parquet table I/O and runner helpers. See ``docs/deployment.md``."""

from ltc_beam.beam.handler import LtcModelHandler
from ltc_beam.beam.io import CompressParquet, DecompressParquet, ReadParquetTables, WriteParquetTables
from ltc_beam.beam.transforms import LtcDecode, LtcEncode

__all__ = [
    "LtcEncode",
    "LtcDecode",
    "LtcModelHandler",
    "ReadParquetTables",
    "WriteParquetTables",
    "CompressParquet",
    "DecompressParquet",
]
