"""Progress display: a tqdm bar on a terminal, a plain line a minute in a log.

tqdm redraws its bar with carriage returns, which fill a log (stderr redirected to a file, a
CI or Dataflow launcher's console) with one long line; so a bar asked for where stderr is no
terminal is written as whole lines instead, at most one per ``LOG_INTERVAL_S`` besides its
first and last (and one per stage where a caller names stages).
"""

from __future__ import annotations

import io
import sys

import tqdm.auto
import tqdm.autonotebook
import tqdm.std

#: Seconds between two lines of a bar written to a log.
LOG_INTERVAL_S = 60.0


class _Lines(io.TextIOBase):
    """A text stream taking tqdm's redraws and writing each new state as one line."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(shown: bool | None, **kwargs) -> tqdm.std.tqdm:
    """A tqdm bar on stderr (``kwargs`` as tqdm's). ``shown``: ``None`` a bar on a terminal
    only; ``False`` none; ``True`` a bar on a terminal (or in a notebook) and lines in a log."""
    if not shown:
        return tqdm.auto.tqdm(disable=None if shown is None else True, file=sys.stderr, **kwargs)
    if sys.stderr.isatty() or tqdm.autonotebook.tqdm is not tqdm.std.tqdm:  # a terminal or a notebook
        return tqdm.auto.tqdm(file=sys.stderr, **kwargs)
    return tqdm.std.tqdm(file=_Lines(sys.stderr), mininterval=LOG_INTERVAL_S, ascii=True, **kwargs)
