"""The configuration that defines a codec's architecture (stored in its manifest)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ltc_beam import lattices

MODES = ("vector", "block")
#: |z-score| beyond which a value travels exactly in the bitstream side channel (about 50
#: bits each; through the lattice a glitch would escape in every latent coordinate of its
#: vector) and is left out of training. At most 1/10,000 of any distribution lies that far
#: (Chebyshev). Stored in each codec's manifest (``outlier_z``; older codecs carry 1e6).
OUTLIER_Z = 100.0
#: Normalisation and training leave out values beyond this many robust standard deviations
#: (1.4826 x MAD) of a column's median, when such values are rare (at most
#: ``OUTLIER_FRACTION`` of the column: glitches and sentinels, not a heavy tail). The real
#: telemetry here reaches 43 (BasicMotions) and 58 (Daphnet) such deviations.
OUTLIER_SPREADS = 100.0
OUTLIER_FRACTION = 0.005
TRANSFORMS = ("linear", "mlp")
PROXIES = ("ste", "noise")


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of a lattice transform codec.

    ``record_dim`` values per record; ``window`` consecutive records of a series form one
    input vector of ``window * record_dim`` values. In ``vector`` mode the lattice runs over
    groups of ``lattice.dim`` latent channels of one vector; in ``block`` mode it runs over
    one latent channel across ``lattice.dim`` consecutive vectors.
    """

    record_dim: int
    latent_dim: int
    lattice: str = "e8"
    mode: str = "vector"
    window: int = 1
    transform: str = "linear"
    hidden: int = 100
    components: int = 4
    proxy: str = "ste"

    def __post_init__(self) -> None:
        lat = lattices.get(self.lattice)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.proxy not in PROXIES:
            raise ValueError(f"proxy must be one of {PROXIES}, got {self.proxy!r}")
        if self.record_dim < 1 or self.window < 1 or self.latent_dim < 1:
            raise ValueError("record_dim, window and latent_dim must be >= 1")
        if self.mode == "vector" and self.latent_dim % lat.dim:
            raise ValueError(
                f"vector mode needs latent_dim ({self.latent_dim}) to be a multiple of "
                f"{self.lattice} dimension {lat.dim}"
            )

    @property
    def input_dim(self) -> int:
        return self.window * self.record_dim

    @property
    def per_record(self) -> bool:
        """Whether each record is coded on its own (vector mode, window 1): the record layout
        needs it, and exactly-sent values leave a 0 in the lossy part, not a neighbour's value."""
        return self.mode == "vector" and self.window == 1

    @property
    def vectors_per_block(self) -> int:
        """How many consecutive input vectors are coded together (lattice dim in block mode)."""
        return lattices.get(self.lattice).dim if self.mode == "block" else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CodecConfig":
        return cls(**data)


def default_latent_dim(input_dim: int, lattice: str, mode: str, most: int | None = None) -> int:
    """Latent size sized to the data: the input size, padded to the lattice in vector mode,
    or rounded down to it (at least one lattice point) where padding would pass ``most``
    (the directions the training data spans)."""
    if mode == "block":
        return input_dim
    n = lattices.get(lattice).dim
    padded = -(-input_dim // n) * n
    return padded if most is None or padded <= most else max(n, most // n * n)
