"""WebDataset shards: deterministic POSIX tars (fixed mtimes and owners, so reruns are byte
identical), written atomically, committed by a manifest part written after everything else.

A shard's files are named by (job, fingerprint, shard): rerunning an interrupted shard
overwrites its own files, so nothing is ever duplicated. Runners claim a shard before
rendering it (an flock on a local lake, released by the kernel when the process dies), so two
runners of one job, or overlapping splits, never render the same shard at the same time.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import posixpath
import re
import tarfile
from typing import Callable, Iterable, Iterator

import pyarrow as pa

from soclake import faults, storage
from soclake.lake import Lake
from soclake.schemas import table_names, to_table


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


def is_committed(lake: Lake, job: str, fingerprint: str, shard: int) -> bool:
    """Whether the shard's manifest part exists (read from storage, not a cached view)."""
    return lake.fs.exists(storage.join(lake.table_dir("manifest"), f"part-{part_name(job, fingerprint, shard)}.parquet"))


def claim_path(lake: Lake, shard_uri: str) -> str:
    folder, _, name = shard_uri.rpartition("/shards/")
    return lake.path(folder, "claims", name.replace(".tar", ".lock"))


@contextlib.contextmanager
def claim(lake: Lake, job: str, fingerprint: str, shard: int, shard_uri: str, wait: bool = False) -> Iterator[str]:
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
    path = claim_path(lake, shard_uri)
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


def uncommitted_files(lake: Lake, job: str, fingerprint: str, shards_folder: str) -> dict[int, list[str]]:
    """Shard files and table parts of shards whose manifest part (the commit) is missing: what a
    runner killed between its first write and its commit leaves. Never read (readers go through
    the manifest), and overwritten by the shard's next render."""
    names = re.compile(r"^(?:part-" + re.escape(f"{job}-{fingerprint}-") + r"|shard-)(\d{6})\.(?:parquet|tar)$")
    files: list[tuple[int, str]] = []
    committed: set[int] = set()
    for folder in [lake.path(shards_folder)] + [lake.table_dir(t) for t in table_names()]:
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


def abandoned_temps(lake: Lake, job: str, fingerprint: str, shards_folder: str) -> list[str]:
    """Temporary files of this job whose writing process is gone."""
    folder = shards_folder.rsplit("/", 1)[0]
    found = [p for f in (shards_folder, folder, f"jobs/{job}") for p in storage.abandoned_temps(lake.fs, lake.path(f))]
    for t in table_names():
        found += storage.abandoned_temps(lake.fs, lake.table_dir(t), f"part-{job}-{fingerprint}-")
    return found


def sweep(lake: Lake, job: str, fingerprint: str, shards_folder: str, force: bool = False,
          only: set[int] | None = None) -> int:
    """Delete what killed runners of this job left: abandoned temporaries, and the files of
    uncommitted shards that no live runner holds. Returns how many files went. An object store
    has no claims to tell a dead runner's files from a live one's, so there uncommitted files
    are left alone (never read, and overwritten by the shard's next render) unless `force`
    (`soclake verify --repair`, run when no runner is active). `only`: just these shards'
    files (a run sweeps its own split's)."""
    removed = 0
    for path in abandoned_temps(lake, job, fingerprint, shards_folder):
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm(path)
            removed += 1
    if not storage.is_local(lake.fs) and not force:
        return removed
    for shard, paths in sorted(uncommitted_files(lake, job, fingerprint, shards_folder).items()):
        if only is not None and shard not in only:
            continue
        with claim(lake, job, fingerprint, shard, f"{shards_folder}/shard-{shard:06d}.tar") as state:
            if state != "claimed":
                continue  # a live runner is writing it, or committed it since we listed
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    lake.fs.rm(path)
                    removed += 1
    if removed:
        lake.refresh()
    return removed


def committed_shards(lake: Lake, fingerprint: str, stage: str = "compose") -> set[int]:
    rows = lake.con.execute("SELECT shard FROM manifest WHERE fingerprint = ? AND stage = ?",
                            [fingerprint, stage]).fetchall()
    return {r[0] for r in rows}
