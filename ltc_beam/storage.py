"""Reading and writing files by URI: local paths directly, others through Beam FileSystems."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from typing import BinaryIO, Iterator


def is_remote(uri: str) -> bool:
    """Whether ``uri`` goes through Beam FileSystems (anything with a scheme but ``file://``)."""
    return "://" in uri and not uri.startswith("file://")


def read_bytes(uri: str) -> bytes:
    with open_for_read(uri) as handle:
        return handle.read()


@contextlib.contextmanager
def open_for_write(uri: str) -> Iterator[BinaryIO]:
    """A binary file to write at ``uri``. A local file appears under its name only once it is
    complete (written beside it, then renamed), so a retried or failed write never leaves a
    half file behind; other URIs go through Beam FileSystems, whose stores commit what was
    written on close, so a failed write's object is deleted again."""
    if not is_remote(uri):
        path = uri.removeprefix("file://")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory: give a file name to write")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"  # own name: a concurrent retry never shares it
        try:
            with open(tmp, "wb") as handle:
                yield handle
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return
    from apache_beam.io.filesystems import FileSystems

    handle = FileSystems.create(uri)
    try:
        yield handle
    except BaseException:
        with contextlib.suppress(Exception):  # the write's own error is the one to report
            handle.close()
        with contextlib.suppress(Exception):
            FileSystems.delete([uri])
        raise
    handle.close()


def exists(uri: str) -> bool:
    if not is_remote(uri):
        return os.path.exists(uri.removeprefix("file://"))
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(uri)


def rename(source: str, target: str) -> None:
    """Move ``source`` to ``target`` (replacing it), locally or through Beam FileSystems."""
    if not is_remote(source):
        os.replace(source.removeprefix("file://"), target.removeprefix("file://"))
        return
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(target):
        FileSystems.delete([target])
    FileSystems.rename([source], [target])


def pending_name(uri: str) -> str:
    """Where a file is written until its job commits: hidden beside ``uri``
    (``.NAME.pending``), so directory and ``part*`` readers skip it."""
    head, _, name = uri.rpartition("/")
    return f"{head}/.{name}.pending" if head else f".{name}.pending"


def write_bytes(uri: str, data: bytes) -> None:
    with open_for_write(uri) as handle:
        handle.write(data)


def open_for_read(uri: str) -> BinaryIO:
    """A seekable binary file to read at ``uri`` (readers that seek fetch only what they read).
    A missing object is a ``FileNotFoundError`` on every store (Google Cloud Storage's client
    raises its own ``NotFound``)."""
    if not is_remote(uri):
        return open(uri.removeprefix("file://"), "rb")
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.open(uri)
    except OSError:
        raise
    except Exception as exc:
        if not exists(uri):
            raise FileNotFoundError(errno.ENOENT, "no such file or object", uri) from exc
        raise


def literal_pattern(uri: str) -> str:
    """``uri`` as a Beam match pattern that matches itself (``*?[`` in names escaped as
    one-character sets; ``[`` as ``[\\[]``, since ``[[]`` makes Python's ``re`` warn)."""
    return "".join({"*": "[*]", "?": "[?]", "[": "[\\[]"}.get(ch, ch) for ch in uri)


def _remote_metadata(uri: str):
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([literal_pattern(uri)])[0].metadata_list
    if not found:
        raise FileNotFoundError(uri)
    return found[0]


def file_size(uri: str) -> int:
    if not is_remote(uri):
        return os.path.getsize(uri.removeprefix("file://"))
    return _remote_metadata(uri).size_in_bytes


def file_version(uri: str) -> tuple | None:
    """What changes when the file at ``uri`` is rewritten (its size and time); None when it
    cannot be read."""
    try:
        if not is_remote(uri):
            stat = os.stat(uri.removeprefix("file://"))
            return stat.st_mtime_ns, stat.st_size
        found = _remote_metadata(uri)
        return found.last_updated_in_seconds, found.size_in_bytes
    except Exception:  # noqa: BLE001 - whatever the store raises: the reader reports the missing file
        return None


def folder_files(folder: str) -> list[tuple[str, int]]:
    """``(file, size in bytes)`` of the files directly in ``folder`` (a local directory or an
    object store's prefix), sorted; none where it does not exist."""
    if not is_remote(folder):
        path = folder.removeprefix("file://")
        if not os.path.isdir(path):
            return []
        return sorted((entry.path, entry.stat().st_size) for entry in os.scandir(path) if entry.is_file())
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([literal_pattern(folder.rstrip("/") + "/") + "*"])[0].metadata_list
    return sorted((m.path, m.size_in_bytes) for m in found)


def is_folder(uri: str) -> bool:
    """Whether ``uri`` names a folder: a local directory, or on an object store a prefix that
    ends in ``/`` or holds objects under it."""
    if not is_remote(uri):
        return os.path.isdir(uri.removeprefix("file://"))
    return uri.endswith("/") or bool(folder_files(uri + "/"))


def remove(uris: list[str]) -> None:
    """Delete the files ``uris``, locally or through Beam FileSystems."""
    local = [u for u in uris if not is_remote(u)]
    for uri in local:
        os.remove(uri.removeprefix("file://"))
    remote = [u for u in uris if is_remote(u)]
    if remote:
        from apache_beam.io.filesystems import FileSystems

        FileSystems.delete(remote)
