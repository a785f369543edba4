"""Filesystem access for a lake root through fsspec: paths, atomic writes, range reads.

A write becomes visible only when complete: local files are written under a hidden temporary
name and renamed; object stores (s3://, memory://) publish an object only when its PUT ends.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import socket
import uuid
from typing import IO, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from soclake import faults


def resolve(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Split a URI or local path into (filesystem, path); local paths become absolute."""
    fs, path = fsspec.core.url_to_fs(str(uri))
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(os.path.expanduser(path))
    return fs, path.rstrip("/") or "/"


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(*parts: str) -> str:
    return posixpath.join(*parts)


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{12}$")


def abandoned_temp(name: str) -> bool:
    """Whether `name` is the temporary file of a write whose process is gone (on this host;
    another host's temporaries are never judged abandoned here)."""
    m = TEMP_NAME.match(name)
    if not m or m["host"] != _HOST:
        return False
    try:
        os.kill(int(m["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def abandoned_temps(fs: fsspec.AbstractFileSystem, folder: str, final_prefix: str = "") -> list[str]:
    """Abandoned temporary files directly in `folder` (whose final name starts with the prefix)."""
    if not is_local(fs) or not os.path.isdir(folder):
        return []  # object stores publish whole objects: no temporaries
    return sorted(join(folder, n) for n in os.listdir(folder)
                  if n.startswith("." + final_prefix) and abandoned_temp(n))


@contextlib.contextmanager
def atomic_open(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[IO[bytes]]:
    """Open `path` for binary writing so that readers see either nothing or the whole file."""
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if not is_local(fs):
        with fs.open(path, "wb") as f:
            yield f
        return
    # the name says which process writes it, so a sweep can tell an abandoned one (abandoned_temp)
    tmp = posixpath.join(posixpath.dirname(path),
                         f".{posixpath.basename(path)}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
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
