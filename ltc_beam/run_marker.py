"""The note a ``compress`` or ``decompress`` run keeps in its output folder: ``_ltc_run.json``.

A run writes it (state ``running``) before its first output file and rewrites it (state
``complete``, with every file's size and the records written) once the records out are
counted and match the records in. It tells

- the run what it may replace: its own earlier output (the folder holds the note) but not
  Parquet files it did not write (Beam's own ``part-SSSSS-of-NNNNN.parquet`` names are the
  ones ltc-beam writes: a decompress into a folder of raw data replaced them with lossy
  copies, and a second archive written there deleted the first), and
- every reader of the folder whether the run finished: a compress killed with 1 of its 8
  files written left a folder that decompressed to 51,800 of 400,000 records with exit 0.
  Reading a folder whose note says ``running``, or whose listed files are missing or
  changed size, is refused.

The name starts with ``_``, which directory readers (ltc-beam's, pyarrow's, Spark's) leave
out. Folders without the note (earlier releases, files copied elsewhere) read as before.
"""

from __future__ import annotations

import json

from ltc_beam.errors import InputError
from ltc_beam.storage import exists, is_remote, read_bytes, write_bytes

NOTE = "_ltc_run.json"
RUNNING, COMPLETE = "running", "complete"


def note_path(folder: str) -> str:
    """Where the note of output folder ``folder`` lies."""
    return (folder if is_remote(folder) else folder.removeprefix("file://")).rstrip("/") + "/" + NOTE


def write_note(folder: str, command: str, state: str, files: list[tuple[str, int]] = (), records: int | None = None) -> None:
    """Write the note: ``files`` as ``(path, size)``, kept by name within the folder."""
    note = {"ltc_beam_run": 1, "command": command, "state": state}
    if state == COMPLETE:
        note.update(records=records, files={path.rsplit("/", 1)[-1]: size for path, size in files})
    write_bytes(note_path(folder), (json.dumps(note, indent=1, sort_keys=True) + "\n").encode())


def read_note(folder: str) -> dict | None:
    """The folder's note, or None where it has none."""
    path = note_path(folder)
    if not exists(path):
        return None
    try:
        note = json.loads(read_bytes(path))
    except ValueError:
        raise InputError(f"{path} is not a readable ltc-beam run note: remove it if the folder is complete") from None
    if not isinstance(note, dict) or note.get("ltc_beam_run") != 1:
        raise InputError(f"{path} is not an ltc-beam run note this release reads")
    return note


def check_finished(folder: str, found: list[tuple[str, int]], whole: bool = True) -> None:
    """Refuse folder ``folder`` (its Parquet files ``found`` as ``(path, size)``) where its
    note says the run that wrote it did not finish, or a file it wrote changed; read
    ``whole`` (not some files of it, by name or glob), also where a file it wrote is gone or
    it holds Parquet files the run did not write."""
    note = read_note(folder)
    if note is None:
        return
    command = note.get("command", "a run")
    if note.get("state") != COMPLETE:
        raise InputError(
            f"{folder!r} is the output of an ltc-beam {command} that did not finish ({NOTE} says "
            f"{note.get('state')!r}): its files hold only part of the records; run the {command} again"
        )
    top = folder.removeprefix("file://").rstrip("/") + "/"
    below = {path.removeprefix("file://")[len(top):]: size for path, size in found if path.removeprefix("file://").startswith(top)}
    listed = note.get("files", {})
    stray = sorted(name for name in below if name not in listed)
    if stray and whole:  # a run writes its files in the folder itself, all listed: these came from elsewhere
        raise InputError(
            f"{folder!r} holds {len(stray)} Parquet file(s) that the ltc-beam {command} which wrote it did not write "
            f"({', '.join(map(repr, stray[:3]))}{', …' if len(stray) > 3 else ''}; {NOTE} lists {len(listed)}): they would "
            "be read with its output as one data set; move them out, or name the files to read"
        )
    for name, size in sorted(listed.items()):
        if name not in below:
            if whole:
                raise InputError(f"{folder!r}: file {name!r}, written by ltc-beam {command}, is missing ({NOTE} lists it)")
        elif below[name] != size:
            raise InputError(
                f"{folder!r}: file {name!r} has {below[name]} bytes where ltc-beam {command} wrote {size} ({NOTE})"
            )
