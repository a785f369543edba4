"""SOC's segment releases as published: (multi-volume) 7z archives, `NAME.7z` or `NAME.7z.001`,
`.002`, ... holding category/subcategory/ID.png (optionally under one top folder). Members are
decompressed by py7zr in archive order and streamed to the ingest workers one at a time through a
bounded queue: nothing is extracted to disk and memory holds a few members, not the archive.
"""
from __future__ import annotations

import io
import os
import queue
import re
import threading
import zlib
from dataclasses import dataclass
from typing import Iterator

import py7zr
from py7zr.io import Py7zIO, WriterFactory

from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.files import MAX_FILE_BYTES

_VOLUME = re.compile(r"^(?P<base>.+\.7z)\.(?P<num>\d+)$", re.IGNORECASE)
QUEUE_MEMBERS = 8  # members decompressed ahead of the workers, at most


def is_archive(path: str) -> bool:
    return bool(_VOLUME.match(os.path.basename(path))) or path.lower().endswith(".7z")


def is_first_volume(name: str) -> bool:
    """NAME.7z or NAME.7z.001: what a user passes (and what a folder scan starts from)."""
    m = _VOLUME.match(os.path.basename(name))
    return int(m.group("num")) == 1 if m else name.lower().endswith(".7z")


def volumes(path: str) -> list[str]:
    """The files of the archive `path` names: itself for NAME.7z, else NAME.7z.001 ... NAME.7z.N,
    checked to be complete (numbered from 1 without gaps)."""
    m = _VOLUME.match(os.path.basename(path))
    if not m:
        return [path]
    folder = os.path.dirname(path) or "."
    base = m.group("base")
    found = {}
    for name in os.listdir(folder):
        v = _VOLUME.match(name)
        if v and v.group("base") == base:
            found[int(v.group("num"))] = os.path.join(folder, name)
    if 1 not in found:
        raise SoclakeError(f"{path}: the first volume {base}.001 is missing; pass the first volume of the set")
    missing = [i for i in range(1, max(found) + 1) if i not in found]
    if missing:
        raise SoclakeError(f"{path}: volume(s) {', '.join(f'{base}.{i:03d}' for i in missing[:5])} of "
                           f"{max(found)} are missing; download the whole set")
    return [found[i] for i in sorted(found)]


class VolumeReader(io.RawIOBase):
    """A read-only, seekable file over the concatenated volumes of a split archive."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.sizes = [os.path.getsize(p) for p in paths]
        self.starts = [sum(self.sizes[:i]) for i in range(len(paths))]
        self.total = sum(self.sizes)
        self.pos = 0
        self.files = [open(p, "rb") for p in paths]
        self.name = paths[0]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.total}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buf) -> int:
        view, done = memoryview(buf), 0
        while done < len(view) and self.pos < self.total:
            i = max(k for k, s in enumerate(self.starts) if s <= self.pos)
            f = self.files[i]
            f.seek(self.pos - self.starts[i])
            n = f.readinto(view[done:done + min(len(view) - done, self.starts[i] + self.sizes[i] - self.pos)])
            if not n:
                break
            done += n
            self.pos += n
        return done

    def close(self) -> None:
        for f in self.files:
            f.close()
        super().close()


def open_archive(path: str) -> py7zr.SevenZipFile:
    try:
        archive = py7zr.SevenZipFile(VolumeReader(volumes(path)), "r")
    except (py7zr.Bad7zFile, EOFError, OSError, ValueError, KeyError) as e:
        raise SoclakeError(f"{path} is not a readable 7z archive ({type(e).__name__}: {e}); check that every "
                           "volume downloaded completely") from None
    if archive.needs_password():
        archive.close()
        raise SoclakeError(f"{path} is encrypted; soclake reads archives without a password")
    return archive


@dataclass
class Member:
    name: str
    seq: int | None          # position in the extraction stream; None when it is not extracted
    reject: tuple[str, str] | None = None


def _unsafe(name: str) -> str | None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return f"archive member {name[:200]!r} is absolute or leaves its folder; it was not extracted"
    return None


def members(archive: py7zr.SevenZipFile) -> tuple[list[Member], list[int | None]]:
    """Regular members in the order py7zr extracts them (files without data first when the
    archive has several folders), each with its stream position; and their CRCs in that order."""
    files = [f for f in archive.files if not f.is_directory]
    streams = archive.header.main_streams
    several = streams is None or streams.unpackinfo.numfolders > 1
    order = [f for f in files if f.emptystream] + [f for f in files if not f.emptystream] if several else files
    out, crcs = [], []
    for f in order:
        why = _unsafe(f.filename)
        if why or f.is_symlink or f.is_socket or getattr(f, "is_junction", False):
            kind = "a symbolic link" if f.is_symlink else "not a regular file"
            out.append(Member(f.filename, None, ("unsafe_path", why or f"archive member {f.filename!r} is {kind}; "
                                                 "it was not extracted")))
            continue
        out.append(Member(f.filename, len(crcs)))
        crcs.append(f.crc32)
    return out, crcs


class _Stopped(Exception):
    """The reader went away: the extraction thread ends."""


class _MemberWriter(Py7zIO):
    def __init__(self, stream: "MemberStream", seq: int, name: str):
        self.stream, self.seq, self.name = stream, seq, name
        self.parts: list[bytes] = []
        self.size_ = 0
        self.keep = seq >= stream.want_from  # members before the next wanted one are not buffered

    def write(self, s) -> int:
        self.size_ += len(s)
        if self.keep and self.size_ <= self.stream.max_bytes:
            self.parts.append(bytes(s))
        return len(s)

    def read(self, size=None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.size_

    def close(self) -> None:
        if not self.keep:
            return
        if self.size_ > self.stream.max_bytes:
            result: bytes | RejectedItem = RejectedItem("too_large", f"archive member {self.name} is {self.size_} "
                                                        f"bytes (limit {self.stream.max_bytes})")
        else:
            result = b"".join(self.parts)
            expected = self.stream.crcs[self.seq] if self.seq < len(self.stream.crcs) else None
            if expected is not None and zlib.crc32(result) != expected:
                result = RejectedItem("corrupt_archive", f"archive member {self.name} fails its CRC check; "
                                      "download the volumes again")
        self.parts = []
        self.stream.put(("member", self.seq, self.name, result))


class _Factory(WriterFactory):
    def __init__(self, stream: "MemberStream"):
        self.stream, self.seq = stream, 0

    def create(self, filename: str) -> Py7zIO:
        writer = _MemberWriter(self.stream, self.seq, filename)
        self.seq += 1
        return writer


class MemberStream:
    """Decompresses an archive in a background thread; `get(member)` returns the member's bytes
    (or a RejectedItem) in stream order, discarding the members nobody asked for."""

    def __init__(self, path: str, crcs: list[int | None], targets: set[str] | None,
                 max_bytes: int = MAX_FILE_BYTES):
        self.path, self.crcs, self.targets, self.max_bytes = path, crcs, targets, max_bytes
        self.q: queue.Queue = queue.Queue(maxsize=QUEUE_MEMBERS)
        self.stop = threading.Event()
        self.want_from = 0
        self.pending = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"7z {os.path.basename(path)}")
        self.thread.start()

    def _run(self) -> None:
        try:
            with open_archive(self.path) as archive:
                if self.targets is None:
                    archive.extractall(factory=_Factory(self))
                else:
                    archive.extract(targets=self.targets, factory=_Factory(self))
            self.put(("end", None, None, None))
        except _Stopped:
            pass
        except Exception as e:  # a damaged volume: every member not read yet is rejected with this
            try:
                self.put(("error", None, None, f"{type(e).__name__}: {e}"))
            except _Stopped:
                pass

    def put(self, item: tuple) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self, member: Member) -> bytes | RejectedItem:
        self.want_from = member.seq
        while True:
            if self.pending is None:
                self.pending = self.q.get()
            kind, seq, name, result = self.pending
            if kind == "error":
                return RejectedItem("corrupt_archive", f"{self.path}: decompression failed at or before member "
                                    f"{member.name} ({result[:300]}); check the volumes and ingest again")
            if kind == "end" or seq > member.seq:
                return RejectedItem("corrupt_archive", f"member {member.name} did not come out of {self.path} "
                                    "where its header put it; the archive is damaged")
            self.pending = None
            if seq < member.seq:
                continue
            if name != member.name:
                return RejectedItem("corrupt_archive", f"{self.path}: expected member {member.name}, the stream "
                                    f"gave {name}; the archive is damaged or holds duplicate names")
            return result

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def scan_members(path: str) -> tuple[list[Member], list[int | None], set[str] | None]:
    """The members of the archive at `path`, their CRCs in stream order, and the names to extract
    (None: all of them)."""
    with open_archive(path) as archive:
        found, crcs = members(archive)
    refused = any(m.seq is None for m in found)
    return found, crcs, ({m.name for m in found if m.seq is not None} if refused else None)


def stream_members(path: str, wanted: Iterator[tuple[Member | None, object]], crcs: list[int | None],
                   targets: set[str] | None) -> Iterator[tuple[object, bytes | RejectedItem | None]]:
    """(item, bytes or RejectedItem) for each (member, item) of `wanted`, in stream order; items
    without a member pass through with None."""
    stream = None
    try:
        for member, item in wanted:
            if member is None:
                yield item, None
                continue
            stream = stream or MemberStream(path, crcs, targets)
            yield item, stream.get(member)
    finally:
        if stream is not None:
            stream.close()
