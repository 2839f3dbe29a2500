"""Exceptions raised by ltc-beam. Everything the library raises on bad input derives from LtcError."""


class LtcError(Exception):
    """Base class of every ltc-beam error."""


class FormatError(LtcError, ValueError):
    """Bytes are corrupt, truncated, or not an ltc-beam bitstream or codec artifact."""


class CodecMismatchError(LtcError):
    """A bitstream or file needs a codec other than the one supplied."""

    def __init__(self, needed: str, supplied: str):
        super().__init__(f"bitstream needs codec {needed}, but codec {supplied} was supplied")
        self.needed = needed
        self.supplied = supplied


class InputError(LtcError, ValueError):
    """Input data has the wrong shape, type or content for the operation."""


#: How to fix null values in a value column (train, evaluate and encode say it alike).
NULL_HINT = "NaN is coded exactly: fill nulls with NaN (pyarrow.compute.fill_null)"


def not_floating(column: str, found: str) -> InputError:
    """The error for a value column that is not floating point; ``found`` says what it is
    (``"has type int64"``, ``"holds int32 values"``)."""
    return InputError(f"column {column!r} {found}: LTC codes floating-point data (cast it to float32)")


class OffScaleWarning(UserWarning):
    """Much of the data lies outside the range the codec was trained on: it still decodes
    (such values travel exactly or escape), but costs many more bits than it should."""
