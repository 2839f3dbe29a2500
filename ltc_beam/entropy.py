"""Exact entropy coding of integer symbols with stored integer CDF tables.

Data flow: integer symbols (lattice coordinates ``k``) -> bytes, and back.  The probability
model is a set of *integer* frequency tables (``SymbolTables``), computed once (float64, CPU)
and stored in the codec artifact; the entropy coder is ``constriction``'s ANS coder.
Encoder and decoder therefore agree bit for bit on every machine: nothing on the coding path
depends on floating-point arithmetic.

Table layout
    ``freqs[t]`` holds ``K + 1`` positive integer frequencies summing to ``2**precision``:
    index ``i < K`` stands for the integer value ``low[t] + i``, index ``K`` is the ESCAPE
    symbol.  A value outside ``[low[t], low[t] + K)`` is coded as ESCAPE followed by an
    escape payload (below), so every int64 is encodable.

Escape payload (fixed by the format, independent of the tables)
    ``d`` = distance outside the range (``v - (low + K)`` above, ``low - 1 - v`` below),
    ``m = d + 1`` in ``[1, 2**64)``, ``n = bit_length(m) - 1`` in ``[0, 63]``.
    1. head symbol ``side * 64 + n`` (side 0 = below, 1 = above) with the fixed 128-symbol
       table ``ESCAPE_HEAD_FREQS`` (precision 24; ~1 bit for n = 0, ~13 bits for n >= 12);
    2. the ``n`` low bits of ``m`` (the leading 1 is implicit) as ``ceil(n / 16)`` uniform
       chunks, least significant first, 16 bits each except a final chunk of ``n % 16`` bits.
    Lengths are bounded by construction (n <= 63); a decoded value that does not fit int64
    raises ``FormatError``.

Stream order (what makes the decoder able to follow the encoder)
    The stream is a sequence of *steps* (one ``encode`` call each).  Within a step the
    symbols are grouped by table index in increasing table order, each group in position
    order; then, if the step has escapes, all escape heads (position order) in one call and
    all mantissa chunks in one call.  The decoder derives the same order from the table
    indices alone, and learns a step's table indices only after decoding earlier steps.

Why ANS (stack) rather than the range coder (queue)
    Decoding is the slow side (constriction's categorical decoder binary-searches the CDF),
    and ANS decodes 10-18 % faster than constriction's range decoder on these tables
    (measured here, constriction 0.5, K = 64..4096: ANS 12-23 M symbols/s, range coder
    11-20 M/s; encoding is 60-110 M/s with either).  ANS also gives an exact end check: after
    the last symbol the decoder must be back in its initial state, whereas the range decoder
    can only say "maybe exhausted".  The price is that ANS is a stack: the encoder keeps the
    symbols of every step (4 bytes per symbol) and pushes them in reverse at ``finish()``, so
    the decoder pops them in the original order.  The encoder has all steps up front anyway.
    Overhead of either over the model code length is < 0.005 % plus ~32-64 bits per stream.

Why precision 24 (the default)
    constriction's Python models are fixed at 24-bit precision (u32 words, u64 state).  At 24
    bits the stored tables are used *without rescaling*, the rarest symbol costs at most 24
    bits, and the floor of one count per symbol costs at most ~(K+1)/2**24 * 1.44 bit per
    symbol (3.5e-4 bit for K = 4096).  Tables of lower precision are accepted and scaled by
    ``2**(24 - precision)``, which is exact.

How the integer tables reach constriction exactly
    ``constriction.stream.model.Categorical(p, perfect=False)`` quantises a float pmf with
    ``left_cdf[i] = floor(cumsum(p)[i-1] * (2**24 - n) / sum(p)) + i``.  Feeding it
    ``p = freqs * 2**(24 - precision) - 1`` (exact small integers in float64) makes the scale
    factor exactly 1 and reproduces ``cumsum(freqs)`` exactly.  ``tests/test_entropy.py``
    verifies this against the library by probing every CDF boundary with an ANS decoder, and
    ``self_check()`` (run once per process before the first encode or decode) probes a few
    tables and compares a reference message with its golden payload, so an incompatible
    constriction release is refused instead of writing or misreading streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import constriction

from .errors import FormatError

__all__ = [
    "CODER_PRECISION",
    "DEFAULT_PRECISION",
    "DEFAULT_ESCAPE_MASS",
    "ESCAPE_HEAD_FREQS",
    "SymbolTables",
    "SymbolEncoder",
    "SymbolDecoder",
    "bits",
    "self_check",
]

_stack = constriction.stream.stack
_model = constriction.stream.model

#: Fixed-point precision of constriction's Python entropy models (not configurable there).
CODER_PRECISION = 24
#: Default precision of stored tables (see module docstring).
DEFAULT_PRECISION = 24
#: Default floor of the ESCAPE probability.
DEFAULT_ESCAPE_MASS = 2.0**-16
#: Smallest table precision accepted.
MIN_PRECISION = 8
#: Significant bits kept per quantised frequency (see ``SymbolTables.from_probabilities``).
SIGNIFICANT_BITS = 5
#: ``SymbolTables.from_probabilities`` quantises at most this many table entries at a time.
TABLE_CHUNK_ENTRIES = 1 << 22
#: Largest in-range alphabet accepted (constriction needs K + 1 < 2**24 - 1).
MAX_SYMBOLS = 1 << 20
#: Bound on |low| so that ``low - 1`` and ``low + K`` never overflow int64.
MAX_ABS_LOW = 1 << 62

_CHUNK_BITS = 16
_INT64_MAX = np.uint64(2**63 - 1)
_HALF = np.uint64(2**63)


def _escape_head_freqs() -> np.ndarray:
    """The fixed table of escape heads ``side * 64 + n`` (part of the bitstream format).

    Per side (total 2**23): ``f[n] = 2**max(22 - n, 10)`` for ``n >= 1`` and ``f[0]``
    takes the rest (``2**22 - 51200``).  Integer arithmetic only.
    """
    half = [1 << max(22 - n, 10) if n >= 1 else 0 for n in range(64)]
    half[0] = (1 << 23) - sum(half[1:])
    out = np.array(half + half, dtype=np.uint32)
    assert int(out.sum(dtype=np.int64)) == 1 << CODER_PRECISION
    out.setflags(write=False)
    return out


#: Frequencies (precision 24) of the 128 escape-head symbols ``side * 64 + n``.
ESCAPE_HEAD_FREQS = _escape_head_freqs()
_ESCAPE_HEAD_NLOG2 = CODER_PRECISION - np.log2(ESCAPE_HEAD_FREQS.astype(np.float64))


def _exact_categorical(freqs24: np.ndarray) -> Any:
    """constriction model whose integer CDF is exactly ``cumsum(freqs24)`` (sum 2**24)."""
    weights = freqs24.astype(np.float64) - 1.0
    return _model.Categorical(weights, perfect=False)


_ESCAPE_HEAD_MODEL = _exact_categorical(ESCAPE_HEAD_FREQS)
_UNIFORM_FAMILY = _model.Uniform()


# A fixed message and the payload constriction must produce for it.  Together with the CDF
# probes in ``self_check`` this pins the payload format: a constriction release that
# quantised tables or wrote words differently would make old archives undecodable, so it is
# refused before anything is encoded or decoded.
_GOLDEN_FREQS = ((1, 200, 40, 15), (100, 100, 55, 1))
_GOLDEN_LOW = (-1, 5)
_GOLDEN_VALUES = (0, 1, -1, 5, 6, 7, 2, -9, 12345678901, -(2**63))
_GOLDEN_TABLES = (0, 0, 0, 1, 1, 1, 0, 1, 0, 1)
_GOLDEN_PAYLOAD = bytes.fromhex(
    "00341cdcdffffffcffffffffff84ff065dfa9314aee7f41074000001000500000034dce0fe86ffff5f56f355"
    "7e63c22970050000"
)
_self_checked = False


def _probe(model: Any, quantile: int) -> int:
    """Symbol an ANS decoder yields when its state's low 24 bits equal ``quantile``."""
    return int(_stack.AnsCoder(np.array([quantile, 1], dtype=np.uint32)).decode(model))


def self_check() -> None:
    """Verify that the installed constriction reproduces integer tables and payloads exactly.

    Runs once per process, on the first ``SymbolEncoder``/``SymbolDecoder``; raises
    ``RuntimeError`` naming the constriction version if it does not.
    """
    global _self_checked
    if _self_checked:
        return
    import importlib.metadata

    try:
        version = importlib.metadata.version("constriction")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    tables = [np.array(f, dtype=np.int64) << 16 for f in _GOLDEN_FREQS] + [
        ESCAPE_HEAD_FREQS.astype(np.int64)
    ]
    for f24 in tables:
        model = _exact_categorical(f24)
        cdf = np.concatenate([[0], np.cumsum(f24)])
        for s in range(f24.size):
            if _probe(model, int(cdf[s])) != s or _probe(model, int(cdf[s + 1] - 1)) != s:
                raise RuntimeError(
                    f"constriction {version} does not reproduce integer CDF tables exactly; "
                    "ltc-beam's bitstreams need a compatible constriction (0.4 or 0.5)"
                )
    _self_checked = True  # set before the golden round trip, which uses the coder classes
    st = SymbolTables(np.array(_GOLDEN_FREQS, dtype=np.uint32), np.array(_GOLDEN_LOW), precision=8)
    vals, tabs = np.array(_GOLDEN_VALUES, dtype=np.int64), np.array(_GOLDEN_TABLES)
    enc = SymbolEncoder(st)
    enc.encode(vals, tabs)
    enc.encode(vals[::-1], tabs)
    if enc.finish() != _GOLDEN_PAYLOAD:
        _self_checked = False
        raise RuntimeError(
            f"constriction {version} writes a different payload for the reference message; "
            "ltc-beam's bitstreams need a compatible constriction (0.4 or 0.5)"
        )


def _bit_length_u64(m: np.ndarray) -> np.ndarray:
    """Exact ``bit_length`` of positive uint64 values (vectorised binary search)."""
    m = m.copy()
    n = np.zeros(m.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = m >= (np.uint64(1) << np.uint64(shift))
        n += big * shift
        m = np.where(big, m >> np.uint64(shift), m)
    return n + (m > 0)


def _as_int64(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and arr.size:
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > 2**63 - 1:
        raise ValueError(f"{name} has values above the int64 range")
    return arr.astype(np.int64, copy=False)


def _largest_first(frac: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """0/1 per entry: 1 on the ``rest[t]`` largest entries of each row ``frac[t]`` (ties to
    the lower index), as a stable descending sort would pick them, without sorting indices."""
    T, n = frac.shape
    rows = np.flatnonzero(rest > 0)
    picked = np.zeros((T, n), np.int64)
    if not len(rows):
        return picked
    f, r = frac[rows], rest[rows]
    threshold = np.sort(f, axis=1)[np.arange(len(rows)), n - r][:, None]
    above = f > threshold
    tied = f == threshold
    room = r - above.sum(axis=1)
    picked[rows] = above | (tied & (np.cumsum(tied, axis=1) <= room[:, None]))
    return picked


def _support_groups(w: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """:func:`width_groups` of the rows of ``w`` by their support (the columns up to their
    last nonzero entry)."""
    T, K = w.shape
    nonzero = w != 0
    return width_groups(np.where(nonzero.any(axis=1), K - np.argmax(nonzero[:, ::-1], axis=1), 1), K)


def width_groups(support: np.ndarray, most: int) -> list[tuple[np.ndarray, int]]:
    """``(rows, width)`` groups covering every row: each row's entries that matter (its first
    ``support`` ones) lie in the group's first ``width`` columns, widths rounded up to powers
    of two (so few groups) and at most ``most``."""
    width = np.minimum(most, 1 << np.ceil(np.log2(np.maximum(support, 1))).astype(np.int64))
    return [(np.flatnonzero(width == value), int(value)) for value in np.unique(width)]


def _quantised(block: np.ndarray, total: int, n: int) -> np.ndarray | None:
    """Integer counts of weight rows ``block`` (the last column: ESCAPE) in a table of ``n``
    symbols summing to ``total``, the ``n - block columns`` symbols left out holding weight 0:
    one count each, the rest shared in proportion to the weights, rounded down, and the
    leftovers one each to the largest fractional parts (ties to the lower index). None
    when leftovers would reach the symbols left out (never for a block holding every
    nonzero weight: the leftovers number less than the positive fractional parts)."""
    free = total - n
    ideal = block / block.sum(axis=1, keepdims=True) * free
    base = np.floor(ideal)
    frac = np.subtract(ideal, base, out=ideal)
    counts = base.astype(np.int64)
    counts += 1
    deficit = total - counts.sum(axis=1) - (n - block.shape[1])
    if (deficit < 0).any():  # impossible in exact arithmetic; guard against rounding
        raise ValueError("internal error: quantised table overflows 2**precision")
    if (deficit > (frac > 0).sum(axis=1)).any():
        if block.shape[1] < n:
            return None
        per_all, deficit = np.divmod(deficit, n)
        counts += per_all[:, None]
    counts += _largest_first(frac, deficit)
    return counts


def bit_lengths(counts: np.ndarray) -> np.ndarray:
    """``bit_length`` of non-negative integers below 2**53 (exact through float64's exponent)."""
    return np.frexp(np.asarray(counts, dtype=np.float64))[1]


def log_codes(freqs: np.ndarray) -> np.ndarray:
    """Monotone codes of frequencies rounded to 5 significant bits: ``f`` below 32 is its own
    code, above ``16 * e + (f >> e)`` with ``e = bit_length(f) - 5`` (frequencies below 2**16
    take codes below 224: one byte)."""
    f = np.asarray(freqs).astype(np.int64)
    e = np.maximum(bit_lengths(f) - 5, 0)
    return 16 * e + (f >> e)


def from_log_codes(code: np.ndarray) -> np.ndarray:
    """The frequency of each of :func:`log_codes`' codes (exact for frequencies of up to 5 significant bits)."""
    code = np.asarray(code).astype(np.int64)
    e = np.maximum(code // 16 - 1, 0)
    return (code - 16 * e) << e


def _coarsened(counts: np.ndarray, total: int, bits: int) -> np.ndarray:
    """``counts`` (rows summing to ``total``) rounded half up to ``bits`` significant bits,
    each row's largest rounded count (first of ties) changed so the row sums to ``total``
    again. A row whose largest count would move by more than a quarter of itself (the other
    counts' rounding adding up: wide, flat rows) is kept as it was."""
    if not isinstance(bits, (int, np.integer)) or bits < 1:
        raise ValueError(f"significant_bits must be an integer >= 1, got {bits!r}")
    rounded = counts.astype(np.int64)
    big = rounded >= 1 << bits  # the others already have at most ``bits`` bits
    v = rounded[big]
    shift = bit_lengths(v) - bits
    rounded[big] = ((v + ((1 << shift) >> 1)) >> shift) << shift
    rows = np.arange(len(rounded))
    top = np.argmax(rounded, axis=1)
    change = total - rounded.sum(axis=1)
    largest = rounded[rows, top]
    rounded[rows, top] += change
    fits = (np.abs(change) <= largest >> 2) & (rounded[rows, top] >= 1) & (rounded[rows, top] < total)
    rounded[~fits] = counts[~fits]
    return rounded


def _seal(array: np.ndarray) -> np.ndarray:
    """``array`` (made here, held by no one else) made read-only: :class:`SymbolTables` then
    keeps it without a copy."""
    array.setflags(write=False)
    return array


def _sealed(array: np.ndarray) -> bool:
    """Whether ``array`` is read-only and owns its memory (no writable view of it can exist)."""
    return not array.flags.writeable and array.base is None


@dataclass(frozen=True, eq=False)
class SymbolTables:
    """Stored integer frequency tables: ``T`` tables of ``K`` in-range symbols plus ESCAPE.

    freqs:     uint32 [T, K + 1], every entry >= 1, each row sums to ``2**precision``.
    low:       int64 [T], the integer value of in-range index 0 of each table.
    precision: bits of fixed-point precision, ``MIN_PRECISION <= precision <= 24``.

    Construction validates everything and raises ``FormatError`` (a ``ValueError``) on
    inconsistent tables, so tables read back from a damaged artifact fail loudly.
    """

    freqs: np.ndarray
    low: np.ndarray
    precision: int = DEFAULT_PRECISION
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        """Pickled (and deep-copied) without the coder models it caches: constriction's do
        not pickle, so a codec that had coded once could not be (``beam.Map(codec.encode)``)."""
        return {**self.__dict__, "_cache": {}}

    def __post_init__(self) -> None:
        try:
            precision = int(self.precision)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"symbol tables: precision must be an integer: {exc}") from None
        if not MIN_PRECISION <= precision <= CODER_PRECISION:
            raise FormatError(
                f"symbol tables: precision {precision} outside [{MIN_PRECISION}, {CODER_PRECISION}]"
            )
        freqs = np.asarray(self.freqs)
        low = np.asarray(self.low)
        if freqs.ndim != 2 or freqs.shape[0] < 1 or freqs.shape[1] < 2:
            raise FormatError(f"symbol tables: freqs must have shape [T >= 1, K + 1 >= 2], got {freqs.shape}")
        if freqs.dtype.kind not in "iu" or low.dtype.kind not in "iu":
            raise FormatError(f"symbol tables: integer arrays required (freqs {freqs.dtype}, low {low.dtype})")
        T, n = freqs.shape
        if n - 1 > MAX_SYMBOLS:
            raise FormatError(f"symbol tables: K = {n - 1} exceeds the maximum {MAX_SYMBOLS}")
        if low.shape != (T,):
            raise FormatError(f"symbol tables: low must have shape ({T},), got {low.shape}")
        if freqs.min() < 1 or int(freqs.max()) >= 1 << precision:
            raise FormatError("symbol tables: every frequency must be in [1, 2**precision)")
        sums = freqs.sum(axis=1, dtype=np.int64)
        bad = np.flatnonzero(sums != (1 << precision))
        if bad.size:
            raise FormatError(
                f"symbol tables: row {int(bad[0])} sums to {int(sums[bad[0]])}, expected 2**{precision}"
            )
        if int(low.min()) < -MAX_ABS_LOW or int(low.max()) > MAX_ABS_LOW:
            raise FormatError("symbol tables: every low must be in [-2**62, 2**62]")
        freqs = np.ascontiguousarray(freqs, dtype=np.uint32)
        low = np.ascontiguousarray(low, dtype=np.int64)
        # the caller's arrays are copied, so that changing them cannot change the tables; not
        # read-only arrays that own their memory, as this module makes them (a copy of each
        # joined table took 10 s of the 115 s a 28-column codec trained in: 1,393 x 19,838)
        if freqs is self.freqs and not _sealed(freqs):
            freqs = freqs.copy()
        if low is self.low and not _sealed(low):
            low = low.copy()
        freqs.setflags(write=False)
        low.setflags(write=False)
        object.__setattr__(self, "freqs", freqs)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "precision", precision)

    # ------------------------------------------------------------------ shape
    @property
    def num_tables(self) -> int:
        return int(self.freqs.shape[0])

    @property
    def num_symbols(self) -> int:
        """K, the number of in-range symbols per table (the ESCAPE index)."""
        return int(self.freqs.shape[1] - 1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymbolTables):
            return NotImplemented
        return (
            self.precision == other.precision
            and np.array_equal(self.freqs, other.freqs)
            and np.array_equal(self.low, other.low)
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------ construction
    @classmethod
    def from_probabilities(
        cls,
        pmf: np.ndarray,
        low: np.ndarray | int,
        precision: int = DEFAULT_PRECISION,
        escape_mass: float = DEFAULT_ESCAPE_MASS,
        significant_bits: int | None = SIGNIFICANT_BITS,
    ) -> "SymbolTables":
        """Quantise float64 pmfs ``[T, K]`` (values ``low[t] + i``) to integer tables.

        A row may sum to less than 1: the missing mass is the probability of falling outside
        the range, and the ESCAPE weight is ``max(escape_mass, 1 - row_sum)``.  Rows summing
        to more than ``1 + 1e-9`` are rejected.  Every symbol first gets one count; the
        remaining ``2**precision - (K + 1)`` counts are shared in proportion to the weights,
        rounded down, and the leftover counts go one each to the largest fractional parts
        (ties to the lower index).  Deterministic float64 arithmetic on the CPU; the
        resulting integers are what gets stored, so decoding never depends on it.

        Then (unless ``significant_bits`` is None) every count is rounded to that many
        significant bits and each row's largest count takes up the difference
        (:func:`_coarsened`): with 5 bits a symbol's probability moves by at most 1/32 of
        itself, a row's largest by at most 1/4 (rows where it would move more stay exact);
        on average about 1e-4 bit per coded symbol (BasicMotions and Daphnet test bits the
        same within 0.1 %), and the artifact stores such tables compactly
        (:mod:`ltc_beam.codec.artifact`: BasicMotions codecs at 1/3/5 bits per value
        56/204/431 -> 38/80/117 KB).
        """
        w = np.asarray(pmf, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] < 1 or w.shape[0] < 1:
            raise ValueError(f"pmf must have shape [T, K] with T, K >= 1, got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("pmf must be finite and non-negative")
        if not (0.0 < escape_mass < 1.0):
            raise ValueError(f"escape_mass must be in (0, 1), got {escape_mass}")
        precision = int(precision)
        if not MIN_PRECISION <= precision <= CODER_PRECISION:
            raise ValueError(f"precision must be in [{MIN_PRECISION}, {CODER_PRECISION}], got {precision}")
        T, K = w.shape
        n = K + 1
        total = 1 << precision
        if n > total // 2:
            raise ValueError(f"K + 1 = {n} symbols do not fit precision {precision} (need <= 2**{precision - 1})")
        row = w.sum(axis=1)
        if (row > 1.0 + 1e-9).any():
            raise ValueError(f"pmf rows must sum to <= 1, max row sum is {row.max()!r}")
        low_arr = np.broadcast_to(np.asarray(low, dtype=np.int64), (T,))
        step = max(1, TABLE_CHUNK_ENTRIES // n)
        if T > step:  # rows are quantised each on its own: in slices, the float64 temporaries stay small
            # (whole, they took 2 GB for 1,750 tables of 10,977 symbols, and the OOM killer at 1,000 columns)
            parts = [cls.from_probabilities(w[i : i + step], low_arr[i : i + step], precision, escape_mass, significant_bits)
                     for i in range(0, T, step)]
            return cls(_seal(np.concatenate([part.freqs for part in parts])), low_arr.copy(), precision)
        esc = np.maximum(escape_mass, 1.0 - row)
        counts = np.ones((T, n), np.uint32)  # a symbol past a row's support keeps its one count
        for rows, width in _support_groups(w):
            block = np.concatenate([w[rows, :width], esc[rows, None]], axis=1)
            got = _quantised(block, total, n)
            if got is None:  # leftover counts reach past the support: the whole-row rule
                got = _quantised(np.concatenate([w[rows], esc[rows, None]], axis=1), total, n)
                counts[rows] = got
            else:
                counts[rows, :width] = got[:, :width]
                counts[rows, K] = got[:, width]
        if significant_bits is not None:
            counts = _coarsened(counts, total, significant_bits)
        return cls(counts, low_arr.copy(), precision)

    # ------------------------------------------------------------ (de)serialise
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain numpy arrays (no pickle) for npz/safetensors: ``freqs``, ``low``, ``precision``."""
        return {
            prefix + "freqs": np.array(self.freqs, dtype=np.uint32),
            prefix + "low": np.array(self.low, dtype=np.int64),
            prefix + "precision": np.array([self.precision], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> "SymbolTables":
        """Inverse of ``to_arrays``; a missing or malformed entry raises ``FormatError``."""
        try:
            freqs = np.asarray(arrays[prefix + "freqs"])
            low = np.asarray(arrays[prefix + "low"])
            prec = np.asarray(arrays[prefix + "precision"]).reshape(-1)
        except KeyError as exc:
            raise FormatError(f"symbol tables: missing array {exc.args[0]!r}") from None
        if prec.shape != (1,) or prec.dtype.kind not in "iu":
            raise FormatError(f"symbol tables: precision must be one integer, got {prec!r}")
        return cls(freqs, low, int(prec[0]))

    # ------------------------------------------------------------ coding helpers
    def _model(self, t: int) -> Any:
        models = self._cache.setdefault("models", {})
        m = models.get(t)
        if m is None:
            f24 = self.freqs[t].astype(np.int64) << (CODER_PRECISION - self.precision)
            m = _exact_categorical(f24)
            models[t] = m
        return m

    def _check_tables(self, tables: Any, size: int) -> np.ndarray:
        idx = np.asarray(tables)
        if idx.ndim == 0:
            idx = np.full(size, int(idx), dtype=np.int64)
        if idx.shape != (size,):
            raise ValueError(f"table indices must have shape ({size},), got {idx.shape}")
        if idx.dtype.kind not in "iu" and idx.size:
            raise TypeError(f"table indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.num_tables):
            raise ValueError(f"table index out of range [0, {self.num_tables})")
        return idx

    def _symbols(self, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """In-range index or K (ESCAPE) for each value; int64 arithmetic never overflows."""
        off = values.view(np.uint64) - self.low[idx].view(np.uint64)  # wrapping difference
        K = self.num_symbols
        return np.where(off < np.uint64(K), off, np.uint64(K)).astype(np.int64)

    def _escape_parts(self, values: np.ndarray, idx: np.ndarray):
        """(head symbol, n, mantissa) of escaped values."""
        low = self.low[idx]
        hi = low + self.num_symbols
        above = values >= hi
        d = np.where(
            above,
            values.view(np.uint64) - hi.view(np.uint64),
            (low - 1).view(np.uint64) - values.view(np.uint64),
        )
        m = d + np.uint64(1)
        n = _bit_length_u64(m) - 1
        mant = m - (np.uint64(1) << n.astype(np.uint64))
        head = above.astype(np.int64) * 64 + n
        return head, n, mant

    def bits(self, values: Any, tables: Any) -> float:
        """Exact code length in bits of ``values`` under these integer tables.

        ``sum(precision - log2 freq)`` over the symbols, plus for each escape the head symbol's
        cost under ``ESCAPE_HEAD_FREQS`` and its ``n`` mantissa bits.  The coder's actual
        output is this plus a small overhead (see ``SymbolEncoder``).
        """
        return float(self.symbol_bits(values, tables).sum())

    def symbol_bits(self, values: Any, tables: Any) -> np.ndarray:
        """The code length in bits of each of ``values`` under its table (:meth:`bits`, term by term)."""
        vals = _as_int64(values, "values")
        idx = self._check_tables(tables, vals.size)
        if vals.size == 0:
            return np.zeros(0)
        sym = self._symbols(vals, idx)
        out = self.precision - np.log2(self.freqs[idx, sym].astype(np.float64))
        esc = np.flatnonzero(sym == self.num_symbols)
        if esc.size:
            head, n, _ = self._escape_parts(vals[esc], idx[esc])
            out[esc] += _ESCAPE_HEAD_NLOG2[head] + n
        return out


def bits(values: Any, tables: Any, symbol_tables: SymbolTables) -> float:
    """Module-level alias of ``SymbolTables.bits``."""
    return symbol_tables.bits(values, tables)


def _group(idx: np.ndarray, num_tables: int):
    """Deterministic grouping of positions by table.

    Returns ``(order, used, counts)``: ``order`` is the stable permutation that sorts the
    positions by table index (``None`` when only one table is used), ``used`` the tables in
    increasing order and ``counts`` their symbol counts.
    """
    counts = np.bincount(idx, minlength=num_tables)
    used = np.flatnonzero(counts)
    if used.size <= 1:
        return None, used, counts[used]
    if num_tables <= 1 << 8:
        key = idx.astype(np.uint8)
    elif num_tables <= 1 << 16:
        key = idx.astype(np.uint16)
    else:
        key = idx
    return np.argsort(key, kind="stable"), used, counts[used]


def _chunk_layout(n: np.ndarray):
    """Mantissa chunks of escapes with ``n`` bits: (owner escape, chunk index, width)."""
    nchunks = (n + _CHUNK_BITS - 1) // _CHUNK_BITS
    total = int(nchunks.sum())
    owner = np.repeat(np.arange(n.size), nchunks)
    j = np.arange(total) - np.repeat(np.cumsum(nchunks) - nchunks, nchunks)
    width = np.minimum(_CHUNK_BITS, n[owner] - _CHUNK_BITS * j)
    return owner, j.astype(np.uint64), width


class SymbolEncoder:
    """Entropy-encodes integer symbols step by step with ``SymbolTables``.

    ``encode(values, tables)`` once per decoding step, in decoding order; ``finish()`` returns
    the payload (constriction ANS words, uint32 little-endian; empty when nothing was
    encoded).  ANS is a stack, so the encoder keeps each step's symbols (4 bytes per symbol)
    and pushes everything in reverse at ``finish()``; the decoder then pops them in the
    original order.
    """

    def __init__(self, symbol_tables: SymbolTables):
        self_check()
        self.tables = symbol_tables
        self._calls: list[tuple] = []
        self._finished = False
        self.num_symbols = 0
        self.num_escapes = 0

    def encode(self, values: Any, tables: Any) -> None:
        if self._finished:
            raise RuntimeError("SymbolEncoder.finish() was already called")
        st = self.tables
        vals = _as_int64(values, "values")
        idx = st._check_tables(tables, vals.size)
        S = vals.size
        if S == 0:
            return
        K = st.num_symbols
        order, used, counts = _group(idx, st.num_tables)
        if order is None:
            vs = vals
            low_s = st.low[used[0]]
        else:
            vs = vals[order]
            low_s = np.repeat(st.low[used], counts)
        off = vs.view(np.uint64) - np.asarray(low_s).view(np.uint64)  # wrapping difference
        sym_s = np.minimum(off, np.uint64(K)).astype(np.int32)  # K = ESCAPE
        a = 0
        for t, c in zip(used.tolist(), counts.tolist()):
            self._calls.append((sym_s[a : a + c], st._model(t)))
            a += c
        esc_s = np.flatnonzero(sym_s == K)
        if esc_s.size:
            pos = esc_s if order is None else np.sort(order[esc_s])
            head, n, mant = st._escape_parts(vals[pos], idx[pos])
            self._calls.append((head.astype(np.int32), _ESCAPE_HEAD_MODEL))
            owner, j, width = _chunk_layout(n)
            if width.size:
                chunk = (mant[owner] >> (j * np.uint64(_CHUNK_BITS))) & (
                    (np.uint64(1) << width.astype(np.uint64)) - np.uint64(1)
                )
                sizes = (np.int64(1) << width).astype(np.int32)
                self._calls.append((chunk.astype(np.int32), _UNIFORM_FAMILY, sizes))
            self.num_escapes += int(esc_s.size)
        self.num_symbols += S

    def finish(self) -> bytes:
        """Run the entropy coder and return the payload bytes (call once)."""
        if self._finished:
            raise RuntimeError("SymbolEncoder.finish() was already called")
        self._finished = True
        coder = _stack.AnsCoder()
        for call in reversed(self._calls):
            coder.encode_reverse(*call)
        self._calls = []
        return np.asarray(coder.get_compressed(), dtype="<u4").tobytes()


class SymbolDecoder:
    """Mirror of ``SymbolEncoder``: ``decode(tables)`` once per step, then ``finish()``.

    Any failure of the underlying decoder on corrupt data is raised as ``FormatError``.
    Decoding never loops on the data: each call decodes exactly ``len(tables)`` symbols plus
    bounded escape payloads (at most 4 chunks each).
    """

    def __init__(self, payload: bytes | bytearray | memoryview, symbol_tables: SymbolTables):
        self_check()
        self.tables = symbol_tables
        buf = memoryview(payload).cast("B")
        if buf.nbytes % 4:
            raise FormatError(
                f"entropy-coded payload has {buf.nbytes} bytes, not a multiple of 4 (32-bit words)"
            )
        words = np.frombuffer(buf, dtype="<u4").astype(np.uint32)
        if words.size and words[-1] == 0:
            raise FormatError("entropy-coded payload is corrupt: it ends in a zero word")
        try:
            self._dec = _stack.AnsCoder(words)
        except Exception as exc:
            raise FormatError(f"entropy-coded payload is corrupt: {exc}") from None
        self.num_symbols = 0

    def _call(self, *args: Any) -> np.ndarray:
        try:
            return self._dec.decode(*args)
        except BaseException as exc:  # constriction may raise AssertionError or a pyo3 panic
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)):
                raise
            raise FormatError(f"entropy-coded payload is corrupt: {type(exc).__name__}: {exc}") from None

    def decode(self, tables: Any) -> np.ndarray:
        st = self.tables
        idx = np.asarray(tables)
        if idx.ndim != 1:
            raise ValueError(f"table indices must be one-dimensional, got shape {idx.shape}")
        idx = st._check_tables(idx, idx.size)
        S = idx.size
        if S == 0:
            return np.zeros(0, dtype=np.int64)
        K = st.num_symbols
        order, used, counts = _group(idx, st.num_tables)
        if order is None:
            sym_s = self._call(st._model(int(used[0])), S)
            low_s = st.low[used[0]]
        else:
            sym_s = np.empty(S, dtype=np.int32)
            a = 0
            for t, c in zip(used.tolist(), counts.tolist()):
                sym_s[a : a + c] = self._call(st._model(t), c)
                a += c
            low_s = np.repeat(st.low[used], counts)
        out_s = low_s + sym_s.astype(np.int64)
        esc_s = np.flatnonzero(sym_s == K)
        if esc_s.size:
            if order is None:
                by_pos = esc_s
            else:
                by_pos = esc_s[np.argsort(order[esc_s], kind="stable")]
            out_s[by_pos] = self._decode_escapes(st.low[idx[np.sort(order[esc_s]) if order is not None else esc_s]], K)
        self.num_symbols += S
        if order is None:
            return out_s
        out = np.empty(S, dtype=np.int64)
        out[order] = out_s
        return out

    def _decode_escapes(self, low: np.ndarray, K: int) -> np.ndarray:
        head = self._call(_ESCAPE_HEAD_MODEL, low.size).astype(np.int64)
        above = head >= 64
        n = head & 63
        m = np.uint64(1) << n.astype(np.uint64)
        owner, j, width = _chunk_layout(n)
        if width.size:
            sizes = (np.int64(1) << width).astype(np.int32)
            chunk = self._call(_UNIFORM_FAMILY, sizes).astype(np.uint64)
            mant = np.zeros(n.size, dtype=np.uint64)
            np.bitwise_or.at(mant, owner, chunk << (j * np.uint64(_CHUNK_BITS)))
            m |= mant
        d = m - np.uint64(1)
        hi = low + K
        room_above = _INT64_MAX - hi.view(np.uint64)  # INT64_MAX - hi, exact in uint64
        room_below = (low - 1).view(np.uint64) + _HALF  # (low - 1) - INT64_MIN, exact
        ok = np.where(above, d <= room_above, d <= room_below)
        if not ok.all():
            raise FormatError("entropy-coded payload is corrupt: an escaped value overflows int64")
        up = (hi.view(np.uint64) + d).view(np.int64)
        down = ((low - 1).view(np.uint64) - d).view(np.int64)
        return np.where(above, up, down)

    def finish(self) -> None:
        """Check that the payload was consumed exactly.

        After the last symbol the ANS decoder must be back in its initial state; surplus or
        corrupt data almost always leaves it elsewhere (``FormatError``).  This is a
        plausibility check, not an integrity guarantee: that is the container checksum's job.
        """
        if not self._dec.is_empty():
            raise FormatError("entropy-coded payload has data left after the last symbol")
