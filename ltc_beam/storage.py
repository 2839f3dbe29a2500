"""Reading and writing whole files by URI: local paths directly, others through Beam FileSystems."""

from __future__ import annotations

import os


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def read_bytes(uri: str) -> bytes:
    if not _is_remote(uri):
        with open(uri.removeprefix("file://"), "rb") as handle:
            return handle.read()
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(uri) as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes) -> None:
    if not _is_remote(uri):
        path = uri.removeprefix("file://")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(uri) as handle:
        handle.write(data)
