"""``memtest://``: a Beam FileSystem over a local folder that behaves like an object store
(no directories, only prefixes; objects appear whole on close), for the remote paths of the
CLI and the Python API. Beam finds FileSystem subclasses by their scheme, so importing this
module registers it; point :attr:`FolderObjectStore.root` at a folder first."""

from __future__ import annotations

import io
import os
import shutil

from apache_beam.io.filesystem import FileMetadata, FileSystem


class _CountedReader(io.FileIO):
    """A file that adds the bytes read from it to :attr:`FolderObjectStore.bytes_read`."""

    def read(self, size=-1):
        data = super().read(size)
        FolderObjectStore.bytes_read += len(data)
        return data

    def readinto(self, buffer):
        count = super().readinto(buffer)
        FolderObjectStore.bytes_read += count or 0
        return count


class FolderObjectStore(FileSystem):
    root = ""
    bytes_read = 0  # fetched by readers: what a store's reads would download

    @classmethod
    def scheme(cls):
        return "memtest"

    @classmethod
    def local(cls, url: str) -> str:
        return os.path.join(cls.root, url[len("memtest://"):])

    def has_dirs(self):
        return False

    def join(self, base, *paths):
        return "/".join([base.rstrip("/"), *paths])

    def split(self, path):
        return tuple(path.rsplit("/", 1))

    def _list(self, prefix):
        for folder, _, names in os.walk(self.root):
            for name in names:
                url = "memtest://" + os.path.relpath(os.path.join(folder, name), self.root)
                if url.startswith(prefix):
                    local = os.path.join(folder, name)
                    yield FileMetadata(url, os.path.getsize(local), os.path.getmtime(local))

    def exists(self, path):
        return os.path.isfile(self.local(path))

    def size(self, path):
        return os.path.getsize(self.local(path))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def checksum(self, path):
        return str(self.size(path))

    def last_updated(self, path):
        return os.path.getmtime(self.local(path))

    def open(self, path, mime_type=None, compression_type=None):
        return _CountedReader(self.local(path), "rb")

    def create(self, path, mime_type=None, compression_type=None):
        os.makedirs(os.path.dirname(self.local(path)), exist_ok=True)
        return open(self.local(path), "wb")

    def mkdirs(self, path):
        pass  # object stores have no directories

    def copy(self, source_file_names, destination_file_names):
        for source, target in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(self.local(target)), exist_ok=True)
            shutil.copyfile(self.local(source), self.local(target))

    def rename(self, source_file_names, destination_file_names):
        for source, target in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(self.local(target)), exist_ok=True)
            os.replace(self.local(source), self.local(target))

    def delete(self, paths):
        for path in paths:
            os.remove(self.local(path))

    def report_lineage(self, path, lineage, level=None):
        return None
