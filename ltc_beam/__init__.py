"""ltc-beam: lossy compression of float vectors and telemetry with Lattice Transform Coding."""

__version__ = "0.1.0"

from ltc_beam.codec.codec import Codec  # noqa: E402
from ltc_beam.codec.training import train  # noqa: E402
from ltc_beam.parquet import read_parquet  # noqa: E402

__all__ = ["Codec", "train", "read_parquet", "__version__"]
