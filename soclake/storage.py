"""Filesystem access for a lake root through fsspec: paths, atomic writes, range reads.

A write becomes visible only when complete: local files are written under a hidden temporary
name and renamed; on object stores (s3://, gs://, memory://) there is no rename: a write is
spooled locally and sent as one whole-object PUT (a multipart upload completes or is aborted
as a whole), so a failed write publishes nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import posixpath
import re
import socket
import tempfile
import urllib.request
import uuid
from typing import IO, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from soclake import faults
from soclake.errors import SoclakeError


def resolve(uri: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Split a URI or local path into (filesystem, path); local paths become absolute.
    `storage_options` go to the filesystem (e.g. s3fs's client_kwargs={"endpoint_url": ...})."""
    try:
        fs, path = fsspec.core.url_to_fs(str(uri), **(storage_options or {}))
    except ImportError as e:
        raise SoclakeError(f"lake {uri}: {e} (pip install 'soclake[s3]' for s3://, 'soclake[gcs]' for gs://)") from None
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(os.path.expanduser(path))
    return fs, path.rstrip("/") or "/"


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def is_in_memory(fs: fsspec.AbstractFileSystem) -> bool:
    """memory://: seen by this process only."""
    return fs.protocol in ("memory", ("memory",))


def join(*parts: str) -> str:
    return posixpath.join(*parts)


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{12}$")


def abandoned_temp(path: str) -> bool:
    """Whether `path` is the temporary file of a write whose process is gone: written from this
    host (another host's temporaries are never judged here), by a pid that no longer exists,
    and not locked (a writer holds an flock on its temporary, which also covers containers that
    share a host name but not a pid namespace)."""
    m = TEMP_NAME.match(posixpath.basename(path))
    if not m or m["host"] != _HOST:
        return False
    try:
        os.kill(int(m["pid"]), 0)
        return False  # alive
    except PermissionError:  # alive, another user's
        return False
    except ProcessLookupError:
        pass
    try:
        with open(path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except (BlockingIOError, FileNotFoundError):
        return False


def abandoned_temps(fs: fsspec.AbstractFileSystem, folder: str, final_prefix: str = "") -> list[str]:
    """Abandoned temporary files directly in `folder` (whose final name starts with the prefix)."""
    if not is_local(fs) or not os.path.isdir(folder):
        return []  # object stores publish whole objects: no temporaries
    return sorted(join(folder, n) for n in os.listdir(folder)
                  if n.startswith("." + final_prefix) and abandoned_temp(join(folder, n)))


@contextlib.contextmanager
def atomic_open(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[IO[bytes]]:
    """Open `path` for binary writing so that readers see either nothing or the whole file."""
    if not is_local(fs):
        # not fs.open(path, "wb"): leaving its block on an exception would still commit the
        # part written so far
        with tempfile.NamedTemporaryFile(prefix="soclake-put-") as tmp:
            yield tmp
            tmp.flush()
            fs.put_file(tmp.name, path)
        return
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    # the name says which process writes it, so a sweep can tell an abandoned one (abandoned_temp)
    tmp = posixpath.join(posixpath.dirname(path),
                         f".{posixpath.basename(path)}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # held while writing: see abandoned_temp
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    if not is_local(fs):
        fs.pipe_file(path, data)  # one whole-object PUT
        return
    view, half = memoryview(data), len(data) // 2
    with atomic_open(fs, path) as f:
        f.write(view[:half])
        faults.point("write")  # the reliability tests die here, with half a file written
        f.write(view[half:])


def read_range(fs: fsspec.AbstractFileSystem, path: str, offset: int, length: int) -> bytes:
    """Read `length` bytes at `offset`: one ranged read, local or remote."""
    if is_local(fs):
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)
    return fs.cat_file(path, start=offset, end=offset + length)


def tree_size(fs: fsspec.AbstractFileSystem, path: str) -> int:
    if not fs.exists(path):
        return 0
    return sum(fs.du(path, total=False).values()) if not is_local(fs) else _local_du(path)


def _local_du(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


def fetch(url: str, storage_options: dict | None = None) -> bytes:
    """Whole-object read of a local path, http(s) URL or any fsspec URL (s3:// needs s3fs;
    credentials and endpoint from the usual environment or `storage_options`)."""
    if url.startswith(("http://", "https://")):
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    with fsspec.open(url, "rb", **(storage_options or {})) as f:
        return f.read()
