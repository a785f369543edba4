"""Committing shards: a shard's tar, then its table parts, then its manifest part (the commit
point), all written atomically; claims that keep two runners off one shard; sweeps of what
killed runners left.

A shard's files are named by (job, fingerprint, shard): rerunning an interrupted shard
overwrites its own files, so nothing is ever duplicated. Runners claim a shard before
rendering it (an flock on a local lake, released by the kernel when the process dies), so two
runners of one job, or overlapping splits, never render the same shard at the same time.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import posixpath
import re
from typing import Iterator

import pyarrow as pa

from soclake import faults, paths, storage
from soclake.lake import Lake
from soclake.lake.schemas import table_names, to_table
from soclake.paths import part_name
from soclake.shards import index as shard_index


def commit_shard(lake: Lake, job: str, fingerprint: str, stage: str, shard: int, data: bytes,
                 tables: dict[str, pa.Table], inputs: list[str], code_version: str, params: str,
                 samples: int | None = None) -> dict:
    """Write the shard, then its table parts, then its manifest part (the commit point)."""
    shard_uri = paths.shard_uri(job, fingerprint, shard)
    storage.write_bytes(lake.fs, lake.path(shard_uri), data)
    faults.point("tar-written")
    part = part_name(job, fingerprint, shard)
    for table, rows in tables.items():
        lake.append(table, rows, part)
    faults.point("parts-written")
    entry = {"job": job, "fingerprint": fingerprint, "stage": stage, "shard": shard, "shard_uri": shard_uri,
             "samples": samples if samples is not None else tables["images"].num_rows, "bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest(), "inputs": inputs, "code_version": code_version,
             "params": params}
    lake.append("manifest", to_table("manifest", [entry]), part)
    faults.point("committed")
    return entry


def write_indexes(lake: Lake, job: str, fingerprint: str, stage: str) -> dict:
    """Write the run's index.json and the job's index.json (its newest run) from the manifest."""
    rows = lake.read("SELECT shard_uri, samples, bytes, sha256 FROM manifest WHERE fingerprint = $fp "
                      "AND stage = $stage ORDER BY shard", {"fp": fingerprint, "stage": stage}).to_pylist()
    index = None
    for uri in (paths.run_index_uri(job, fingerprint), paths.job_index_uri(job)):
        index = shard_index.build(job, fingerprint, stage, rows, uri)
        shard_index.write(lake.fs, lake.path(uri), index)
    return index


def is_committed(lake: Lake, job: str, fingerprint: str, shard: int) -> bool:
    """Whether the shard's manifest part exists (read from storage, not a cached view)."""
    return lake.fs.exists(storage.join(lake.table_dir("manifest"), f"part-{part_name(job, fingerprint, shard)}.parquet"))


@contextlib.contextmanager
def claim(lake: Lake, job: str, fingerprint: str, shard: int, wait: bool = False) -> Iterator[str]:
    """Claim a shard for rendering. Yields "claimed" (render it), "busy" (another live runner
    holds it) or "committed" (done already). On a local lake the claim is an flock, which the
    kernel drops when its process dies, so a killed runner never leaves a shard locked. Object
    stores have no locks: there every runner gets "claimed" unless the shard is committed; a
    duplicate render writes the same bytes to the same names, so it costs time, never
    correctness (give each machine its own --split to avoid it). With `wait`, a held claim is
    waited for instead of answered "busy"."""
    if not storage.is_local(lake.fs):
        yield "committed" if is_committed(lake, job, fingerprint, shard) else "claimed"
        return
    path = lake.path(paths.claim_uri(job, fingerprint, shard))
    lake.fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield "busy"
            return
        try:
            yield "committed" if is_committed(lake, job, fingerprint, shard) else "claimed"
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def uncommitted_files(lake: Lake, job: str, fingerprint: str) -> dict[int, list[str]]:
    """Shard files and table parts of shards whose manifest part (the commit) is missing: what a
    runner killed between its first write and its commit leaves. Never read (readers go through
    the manifest), and overwritten by the shard's next render."""
    names = re.compile(r"^(?:part-" + re.escape(f"{job}-{fingerprint}-") + r"|shard-)(\d{6})\.(?:parquet|tar)$")
    files: list[tuple[int, str]] = []
    committed: set[int] = set()
    for folder in [lake.path(paths.shards_folder(job, fingerprint))] + [lake.table_dir(t) for t in table_names()]:
        if not lake.fs.exists(folder):
            continue
        for path in lake.fs.ls(folder, detail=False):
            m = names.match(posixpath.basename(path))
            if m and folder == lake.table_dir("manifest"):
                committed.add(int(m.group(1)))
            elif m:
                files.append((int(m.group(1)), path))
    found: dict[int, list[str]] = {}
    for shard, path in files:
        if shard not in committed:
            found.setdefault(shard, []).append(path)
    return found


def abandoned_temps(lake: Lake, job: str, fingerprint: str) -> list[str]:
    """Temporary files of this job whose writing process is gone."""
    folders = (paths.shards_folder(job, fingerprint), paths.job_folder(job, fingerprint),
               paths.job_root(job))
    found = [p for f in folders for p in storage.abandoned_temps(lake.fs, lake.path(f))]
    for t in table_names():
        found += storage.abandoned_temps(lake.fs, lake.table_dir(t), f"part-{job}-{fingerprint}-")
    return found


def sweep(lake: Lake, job: str, fingerprint: str, force: bool = False,
          only: set[int] | None = None) -> int:
    """Delete what killed runners of this job left: abandoned temporaries, and the files of
    uncommitted shards that no live runner holds. Returns how many files went. An object store
    has no claims to tell a dead runner's files from a live one's, so there uncommitted files
    are left alone (never read, and overwritten by the shard's next render) unless `force`
    (`soclake verify --repair`, run when no runner is active). `only`: just these shards'
    files (a run sweeps its own split's)."""
    removed = 0
    for path in abandoned_temps(lake, job, fingerprint):
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm(path)
            removed += 1
    if not storage.is_local(lake.fs) and not force:
        return removed
    for shard, files in sorted(uncommitted_files(lake, job, fingerprint).items()):
        if only is not None and shard not in only:
            continue
        with claim(lake, job, fingerprint, shard) as state:
            if state != "claimed":
                continue  # a live runner is writing it, or committed it since we listed
            for path in files:
                with contextlib.suppress(FileNotFoundError):
                    lake.fs.rm(path)
                    removed += 1
    if removed:
        lake.refresh()
    return removed
