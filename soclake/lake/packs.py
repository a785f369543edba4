"""Segment and background packs: POSIX tar files whose members are located by byte offset.

A pack is written whole (atomically) and never modified; the table rows that point into it
are written after it, so a row never references a pack that is not complete.
"""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

from soclake import storage
from soclake.lake import Lake


@dataclass(frozen=True)
class Member:
    name: str
    offset: int
    length: int


def write_pack(lake: Lake, relpath: str, members: list[tuple[str, bytes]]) -> list[Member]:
    """Write `members` (name, bytes) as one tar at `relpath` under the lake; return locations."""
    located = []
    with storage.atomic_open(lake.fs, lake.path(relpath)) as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                # after addfile, tar.offset is past the data and its padding to 512 bytes
                data_start = tar.offset - (-(-len(data) // tarfile.BLOCKSIZE)) * tarfile.BLOCKSIZE
                located.append(Member(name, data_start, len(data)))
    return located


def read_member(lake: Lake, relpath: str, offset: int, length: int) -> bytes:
    """One ranged read of a pack member."""
    return lake.read_range(relpath, offset, length)
