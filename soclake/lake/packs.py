"""Segment and background packs: POSIX tar files whose members are located by byte offset.

A pack is written whole (atomically) and never modified; the table rows that point into it
are written after it, so a row never references a pack that is not complete. The checks of
`soclake verify` are here too: packs exist, hold their rows' byte ranges and decode there.
"""
from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass

from soclake import imaging, storage
from soclake.errors import RejectedItem
from soclake.lake import Lake, sqlfiles


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


# ---------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class PackProblem:
    pack: str      # relative to the lake root
    problem: str
    rows: int      # members the tables locate in it


SAMPLED = 8
"""Members decoded per pack by `soclake verify --deep` (all of them with --all)."""


def _sampled(members: list[dict], every: bool) -> list[dict]:
    if every or len(members) <= SAMPLED:
        return members
    step = (len(members) - 1) / (SAMPLED - 1)
    return [members[round(i * step)] for i in range(SAMPLED)]  # first, last and evenly between


def member_problem(data: bytes, m: dict) -> str | None:
    """Why a located member does not decode to the size its row records, or to the pixels its
    id hashes (a background, a segment's native level: any changed byte shows), or None."""
    try:
        arr = imaging.decode_level(data) if m["kind"] == "segment" else imaging.decode_rgb(data)
    except (OSError, ValueError, RejectedItem) as e:
        return f"{m['kind']} {m['id']} at offset {m['offset']} does not decode ({type(e).__name__})"
    if arr.shape[:2] != (m["height"], m["width"]):
        return (f"{m['kind']} {m['id']} at offset {m['offset']} decodes to {arr.shape[1]}x{arr.shape[0]}, "
                f"its row says {m['width']}x{m['height']}")
    if m.get("whole") and imaging.content_id(arr) != m["id"]:
        return f"{m['kind']} {m['id']} at offset {m['offset']} decodes to other pixels than its id hashes"
    return None


def check_packs(lake: Lake, deep: bool = False, every: bool = False) -> tuple[int, list[PackProblem]]:
    """(packs checked, problems): every pack a segments or backgrounds row points to exists and
    holds the recorded byte ranges; with `deep`, sampled members (all with `every`) decode at
    their offsets to their recorded size."""
    members: dict[str, list[dict]] = {}
    for m in lake.query(sqlfiles.query("checks/pack_members")).to_pylist():
        members.setdefault(m["pack"], []).append(m)
    problems = []
    for pack, located in members.items():
        path = lake.path(pack)
        if not lake.fs.isfile(path):
            problems.append(PackProblem(pack, "missing pack file", len(located)))
            continue
        size, end = lake.fs.size(path), max(m["offset"] + m["length"] for m in located)
        if size < end:
            problems.append(PackProblem(pack, f"{size} bytes, but its rows locate members up to byte {end}", len(located)))
            continue
        if deep:
            for m in _sampled(located, every):
                problem = member_problem(lake.read_range(pack, m["offset"], m["length"]), m)
                if problem:
                    problems.append(PackProblem(pack, problem, len(located)))
                    break
    return len(members), problems


def orphan_packs(lake: Lake) -> list[str]:
    """Pack files no row points to (an ingest killed between writing a pack and its rows)."""
    root = lake.path("packs")
    if not lake.fs.exists(root):
        return []
    used = set(lake.query(sqlfiles.query("checks/used_packs"))["pack"].to_pylist())
    on_disk = [lake.relpath(p) for p in lake.fs.find(root) if p.endswith(".tar")
               and not storage.TEMP_NAME.match(posixpath.basename(p))]
    return sorted(p for p in on_disk if p not in used)


def empty_categories(lake: Lake) -> list[dict]:
    """Categories no segment belongs to (an ingest killed between its categories and segments)."""
    return lake.query(sqlfiles.query("checks/empty_categories")).to_pylist()
