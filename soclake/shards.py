"""WebDataset shards: deterministic POSIX tars (fixed mtimes and owners, so reruns are byte
identical), written atomically, committed by a manifest part written after everything else.

A shard's files are named by (job, fingerprint, shard): rerunning an interrupted shard
overwrites its own files, so nothing is ever duplicated.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from typing import Callable, Iterable

import pyarrow as pa

from soclake import storage
from soclake.lake import Lake
from soclake.schemas import to_table


def tar_bytes(samples: Iterable[tuple[str, dict[str, bytes]]]) -> bytes:
    """A tar of samples (key, {extension: bytes}); members KEY.EXT in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            if "." in key or "/" in key:
                raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def member_problem(m: tarfile.TarInfo) -> str | None:
    """Why a tar member is not a sample member, or None. Only regular files named KEY.EXT at
    the top level count: links, devices, folders, paths with '/' or '\\' ('../evil', '/abs')
    and hidden names are never read, followed or written anywhere."""
    if not m.isreg():
        kind = ("a symlink" if m.issym() else "a hard link" if m.islnk() else "a device or FIFO"
                if m.isdev() else "a folder" if m.isdir() else "not a regular file")
        return kind
    name = m.name
    if "/" in name or "\\" in name or "\x00" in name:
        return "a path, not a plain file name"
    if name.startswith(".") or "." not in name:
        return "not named KEY.EXT"
    return None


Skip = Callable[[str, str], None]
"""Handler of skipped members: called with (member name, why)."""


def read_samples(data: bytes, on_skip: Skip | None = None) -> list[tuple[str, dict[str, bytes]]]:
    """Samples of a shard's bytes: (key, {extension: bytes}) in order. Members that are not
    plain top-level files (see member_problem) are skipped and reported to `on_skip`."""
    samples: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar:
            problem = member_problem(m)
            if problem:
                if on_skip:
                    on_skip(m.name, problem)
                continue
            key, _, ext = m.name.partition(".")
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][ext] = tar.extractfile(m).read()
    return samples


def part_name(job: str, fingerprint: str, shard: int) -> str:
    return f"{job}-{fingerprint}-{shard:06d}"


def commit_shard(lake: Lake, job: str, fingerprint: str, stage: str, shard: int, shard_uri: str, data: bytes,
                 tables: dict[str, pa.Table], inputs: list[str], code_version: str, params: str,
                 samples: int | None = None) -> dict:
    """Write the shard, then its table parts, then its manifest part (the commit point)."""
    storage.write_bytes(lake.fs, lake.path(shard_uri), data)
    part = part_name(job, fingerprint, shard)
    for table, rows in tables.items():
        lake.append(table, rows, part)
    entry = {"job": job, "fingerprint": fingerprint, "stage": stage, "shard": shard, "shard_uri": shard_uri,
             "samples": samples if samples is not None else tables["images"].num_rows, "bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest(), "inputs": inputs, "code_version": code_version,
             "params": params}
    lake.append("manifest", to_table("manifest", [entry]), part)
    return entry


def committed_shards(lake: Lake, fingerprint: str, stage: str = "compose") -> set[int]:
    rows = lake.con.execute("SELECT shard FROM manifest WHERE fingerprint = ? AND stage = ?",
                            [fingerprint, stage]).fetchall()
    return {r[0] for r in rows}
