"""Exceptions raised by ltc-beam. Everything the library raises on bad data or bytes derives
from LtcError (InputError and FormatError are ValueErrors too); a bad argument (an unknown
lattice, steps=0) is a ValueError or TypeError, a missing file the operating system's error."""

import contextlib
import re
import sys
import warnings


class LtcError(Exception):
    """Base class of every ltc-beam error."""


class FormatError(LtcError, ValueError):
    """Bytes are corrupt, truncated, or not an ltc-beam bitstream or codec artifact."""


class CodecMismatchError(LtcError):
    """A bitstream or file needs a codec other than the one supplied."""

    def __init__(self, needed: str, supplied: str | None = None):
        # one argument: a whole message (Beam re-raises a step's error as type(error)(message))
        super().__init__(needed if supplied is None else f"bitstream needs codec {needed}, but codec {supplied} was supplied")
        self.needed = needed if supplied is not None else None
        self.supplied = supplied


class InputError(LtcError, ValueError):
    """Input data has the wrong shape, type or content for the operation."""


class RunnerError(LtcError):
    """A Beam runner could not start (for example one that downloads a binary, offline)."""


def column_label(columns, index: int) -> str:
    """Column ``index`` in a message: its name quoted, where there are names, else the index."""
    return repr(columns[index]) if columns and index < len(columns) else str(index)


#: How to fix a null vector in a list column (train, evaluate and encode say it alike; null
#: scalars are coded, as null). ``pyarrow.compute.fill_null(col, nan)`` fails on a list column.
NULL_HINT = "NaN is coded exactly: give such a record a vector of NaN instead, or leave it out"


def names_said(names, most: int = 6) -> str:
    """``names`` as a list for a message, the middle of a long one left out (64 columns of a
    list column would fill a screen)."""
    names = list(names)
    if len(names) <= most:
        return repr(names)
    return f"[{', '.join(map(repr, names[: most - 2]))}, … {names[-1]!r}] ({len(names)} columns)"


def not_numeric(column: str, found: str) -> InputError:
    """The error for a value column that holds neither floats nor integers; ``found`` says
    what it holds (``"has type decimal128(5, 2)"``, ``"holds string values"``)."""
    return InputError(f"column {column!r} {found}: LTC codes floats and integers (cast it to float32 where it holds numbers)")


#: Values are coded as float32: finite values beyond its range would come back infinite.
BEYOND_FLOAT32 = "value beyond float32's range (±3.4e38): LTC codes float32, where it would decode as ±inf"


def is_dataframe(x) -> bool:
    """Whether ``x`` is a pandas DataFrame, of a subclass too (told without importing pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(x, pandas.DataFrame)


def named_series_as_frame(x):
    """A named pandas Series as a one-column DataFrame (so a codec trained on ``df["temp"]``
    keeps the column name ``temp``, not ``v0``); anything else as it is."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(x, pandas.Series) and x.name is not None:
        return x.to_frame(name=str(x.name))
    return x


def numeric_array(x, dtype=None) -> "np.ndarray":
    """``x`` (an array, rows as lists, a pandas DataFrame, a torch tensor) as a numpy array,
    with numpy's refusals (ragged rows) as :class:`InputError`; text, bools and complex
    numbers are refused too, whatever ``dtype`` asks (numpy would parse "1.5", take True as
    1 and drop an imaginary part). A DataFrame's
    missing values (the ``pd.NA`` of nullable columns) are NaN, which is coded exactly; a
    frame of numpy float columns keeps their widest type (float32 through float64 would
    quiet a signalling NaN's bits); object columns are taken where they hold numbers. A
    numpy masked array's masked entries are NaN too."""
    import numpy as np

    try:
        if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor (one that requires grad, a bfloat16 one)
            x = x.detach().cpu()
            x = (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()
        if is_dataframe(x):
            return _frame_array(x, dtype)
        if isinstance(x, np.ma.MaskedArray):  # masked entries are missing (their data, often a sentinel, was coded)
            x = (x if x.dtype.kind == "f" else x.astype(np.float64)).filled(np.nan)
        arr = np.asarray(x)
        found = _not_numbers(arr, x)
        if found:
            raise InputError(f"expected numbers as [records, values], got {found} (dtype {arr.dtype})")
        if dtype is None and arr.dtype == object:  # numbers and None (missing: NaN), as train takes them
            dtype = np.float64
        return arr if dtype is None else arr.astype(dtype)
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InputError(f"expected numbers as [records, values]: {exc}") from None


#: pandas ``infer_dtype`` kinds that hold numbers (None for missing values included).
NUMBER_KINDS = ("floating", "integer", "mixed-integer-float", "decimal", "empty")


def _not_numbers(arr, given) -> str | None:
    """What ``arr`` (``np.asarray(given)``) holds besides numbers: text, bools, complex
    numbers, or objects that are not numbers (None: numbers only). Rows given as lists may
    mix bools into floats, which numpy turns into 1.0 without a word."""
    import numpy as np

    kind = arr.dtype.kind
    if kind in "USbc":
        return {"b": "bools", "c": "complex numbers"}.get(kind, "text")
    if kind == "O":
        inferred = _inferred(arr.ravel())
        return None if inferred in NUMBER_KINDS else f"values pandas reads as {inferred}"
    if isinstance(given, (list, tuple)) and kind in "fiu" and any(
        isinstance(v, (bool, np.bool_)) for row in given for v in (row if isinstance(row, (list, tuple)) else (row,))
    ):
        return "bools"
    return None


def _inferred(values) -> str:
    """What pandas reads object ``values`` as (``"floating"``, ``"string"``, …)."""
    from pandas.api.types import infer_dtype

    return infer_dtype(values, skipna=True)


def _frame_array(frame, dtype) -> "np.ndarray":
    """:func:`numeric_array` of a pandas DataFrame."""
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype, is_object_dtype

    def numbers(column) -> bool:
        kind = column.dtype
        if is_object_dtype(kind):
            return _inferred(column) in NUMBER_KINDS
        return is_numeric_dtype(kind) and not is_bool_dtype(kind) and not is_complex_dtype(kind)

    holds = {name: numbers(column) for name, column in frame.items()}
    text = [str(name) for name, numeric in holds.items() if not numeric]
    if text:
        numeric = [name for name, numeric in holds.items() if numeric]
        raise InputError(
            f"columns {names_said(text)} hold neither floats nor integers: select the columns to code "
            f"(frame[{numeric!r}], or train(…, columns={numeric!r}); times, labels and keys pass through "
            "write_parquet and LtcEncode uncoded), or cast them to float32 where they hold numbers"
        )
    types = [t for t in frame.dtypes if isinstance(t, np.dtype) and t.kind == "f"]
    floats = np.result_type(*types) if types and len(types) == len(frame.dtypes) else np.float64
    return frame.to_numpy(dtype=dtype or floats, na_value=np.nan)


def beyond_float32(values) -> "np.ndarray":
    """Mask of finite values too large for float32 (only wider float types can hold them)."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= 4:
        return np.zeros(arr.shape, bool)
    with np.errstate(invalid="ignore", over="ignore"):  # those float32 rounds to ±inf (3.4028235e38 rounds to its largest)
        return np.isfinite(arr) & np.isinf(arr.astype(np.float32))


class WindowHint(UserWarning):
    """``train`` codes records one at a time where they follow one another closely: windows
    of consecutive records (``window="auto"``) often code such series in far fewer bits."""


class OffScaleWarning(UserWarning):
    """Much of the data lies outside the range the codec was trained on: it still decodes
    (such values travel exactly or escape), but costs many more bits than it should."""


#: A name in quotes ('c1'), not an apostrophe (the codec's).
_QUOTED = r"(?<!\w)'[^']*'(?!\w)"


@contextlib.contextmanager
def grouped_warnings():
    """Warnings raised inside, shown when it ends (or fails), once per kind: the first of
    each category and text (numbers and quoted names aside), with how many more there were
    and the other names they quote ('c7'). Each encoded chunk warned on its own: 37
    near-identical lines for one 150k-record compress."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        groups: dict[tuple, list] = {}
        for w in caught:
            kind = re.sub(rf"({_QUOTED})|\d+(,\d{{3}})*(\.\d+)?(e[-+]?\d+)?", lambda m: "'…'" if m.group(1) else "#", str(w.message))
            groups.setdefault((w.category, kind), []).append(w)
        modules = {getattr(m, "__file__", None): name for name, m in list(sys.modules.items())}
        for (category, _), said in groups.items():
            first = said[0]  # its module named, so that module-scoped filters (-W …:ltc_beam.evaluation) still apply
            named = set(re.findall(_QUOTED, str(first.message)))
            others = sorted({n for w in said[1:] for n in re.findall(_QUOTED, str(w.message))} - named)
            also = f"; also about {', '.join(others[:8])}{' …' if len(others) > 8 else ''}" if others else ""
            more = f" ({len(said) - 1} more like this{also})" if len(said) > 1 else ""
            warnings.warn_explicit(f"{first.message}{more}", category, first.filename, first.lineno, module=modules.get(first.filename))
