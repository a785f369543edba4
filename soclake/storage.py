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
import shutil
import socket
import stat
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
LOCAL = LocalFileSystem()
"""The local filesystem, for writers of plain output folders (exports, reports, show)."""


def temp_name(path: str) -> str:
    """A unique hidden name beside `path` that says which process writes it, so a sweep can
    tell an abandoned one (abandoned_temp)."""
    return posixpath.join(posixpath.dirname(path),
                          f".{posixpath.basename(path)}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def abandoned_temp(path: str) -> bool:
    """Whether `path` is the temporary file (or folder) of a write whose process is gone:
    written from this host (another host's temporaries are never judged here), by a pid that no
    longer exists, and not locked (a writer holds an flock on its temporary, which also covers
    containers that share a host name but not a pid namespace)."""
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
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # gone, or a link: not ours
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def abandoned_temps(fs: fsspec.AbstractFileSystem, folder: str, final_prefix: str = "") -> list[str]:
    """Abandoned temporary files directly in `folder` (whose final name starts with the prefix)."""
    if not is_local(fs) or not os.path.isdir(folder):
        return []  # object stores publish whole objects: no temporaries
    return sorted(join(folder, n) for n in os.listdir(folder)
                  if n.startswith("." + final_prefix) and abandoned_temp(join(folder, n)))


def remove_abandoned(folder: str) -> int:
    """Remove what killed writers left directly in a local `folder` (temporary files and
    temporary folders); returns how many."""
    found = abandoned_temps(LOCAL, folder)
    for path in found:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return len(found)


def check_destination(path: str) -> None:
    """A file soclake is about to write must be absent or a regular file: it never writes
    through a symbolic link, nor over a folder, FIFO or device."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise SoclakeError(f"{path} is a symbolic link; soclake never writes through a link: remove it or "
                           "write elsewhere")
    if not stat.S_ISREG(st.st_mode):
        raise SoclakeError(f"{path} exists and is not a regular file; remove it or write elsewhere")


def make_folder(path: str) -> str:
    """Create a local output folder (and its parents); an existing link or non-folder at
    `path` is an error naming it, so files are never written into a folder a link points to."""
    if os.path.islink(path):
        raise SoclakeError(f"{path} is a symbolic link; soclake writes its output only into real folders: "
                           "remove the link or write elsewhere")
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise SoclakeError(f"{path} exists and is not a folder; remove it or write elsewhere") from None
    return path


@contextlib.contextmanager
def atomic_open(fs: fsspec.AbstractFileSystem, path: str, sync: bool = True) -> Iterator[IO[bytes]]:
    """Open `path` for binary writing so that readers see either nothing or the whole file.

    Every writer of the project uses it. Locally: a new temporary beside the destination
    (O_CREAT|O_EXCL|O_NOFOLLOW: never an existing file or a link), fsync, rename over the
    destination; a destination that is a link or not a regular file is an error naming it.
    `sync=False` leaves the fsync to the caller, who writes many files and then calls os.sync()
    once (an export's thousands of images: 2.6 ms per fsync here)."""
    if not is_local(fs):
        # not fs.open(path, "wb"): leaving its block on an exception would still commit the
        # part written so far
        with tempfile.NamedTemporaryFile(prefix="soclake-put-") as tmp:
            yield tmp
            tmp.flush()
            fs.put_file(tmp.name, path)
        return
    path = os.path.abspath(path)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    check_destination(path)
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # held while writing: see abandoned_temp
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        check_destination(path)  # a link planted meanwhile is named, not replaced (rename never follows it)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def temp_folder(parent: str, what: str) -> Iterator[str]:
    """A private scratch folder inside `parent` (a local output folder) for one process,
    removed on exit; one left by a killed process is found by remove_abandoned(parent)."""
    path = temp_name(posixpath.join(parent, what))
    os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while in use: see abandoned_temp
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


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


def fetch(url: str, storage_options: dict | None = None, max_bytes: int | None = None) -> bytes:
    """Whole-object read of a local path, http(s) URL or any fsspec URL (s3:// needs s3fs;
    credentials and endpoint from the usual environment or `storage_options`). With
    `max_bytes`, at most max_bytes + 1 bytes are ever read: a longer object is a ValueError
    (a host that sends more than the index says is not believed, nor waited for)."""
    limit = -1 if max_bytes is None else max_bytes + 1
    if url.startswith(("http://", "https://")):
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read(limit) if limit >= 0 else r.read()
    else:
        with fsspec.open(url, "rb", **(storage_options or {})) as f:
            data = f.read(limit)
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{url} is longer than the {max_bytes:,} bytes expected")
    return data
