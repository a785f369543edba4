"""Where things live under a lake root, as paths relative to it: one function per convention,
used by every reader and writer. A job J with fingerprint FP lives in jobs/J/FP/: job.json (its
marker, written when it is planned or started), shards/shard-NNNNNN.tar, claims/, index.json;
jobs/J/index.json is the index of its newest run. Pure string functions, no I/O (the training
loader uses them without the lake package)."""
from __future__ import annotations

import posixpath
import re

JOBS = "jobs"
POOL_SNAPSHOT_CACHE = "cache/pool_snapshot.json"
"""Per-part digests of the pool tables (soclake.lake.snapshot); a cache, safe to delete."""
QUARANTINE = "quarantine"
SHARD_FILE = re.compile(r"^shard-(\d{6})\.tar$")
MARKER = re.compile(r"^" + JOBS + r"/([^/]+)/([^/]+)/job\.json$")


def job_root(job: str) -> str:
    """jobs/J: every run (fingerprint) of a job, and the job's index."""
    return f"{JOBS}/{job}"


def job_folder(job: str, fingerprint: str) -> str:
    return f"{job_root(job)}/{fingerprint}"


def shards_folder(job: str, fingerprint: str) -> str:
    return f"{job_folder(job, fingerprint)}/shards"


def shard_uri(job: str, fingerprint: str, shard: int) -> str:
    """A shard's path relative to the lake root (what the manifest records)."""
    return f"{shards_folder(job, fingerprint)}/shard-{shard:06d}.tar"


def claim_uri(job: str, fingerprint: str, shard: int) -> str:
    return f"{job_folder(job, fingerprint)}/claims/shard-{shard:06d}.lock"


def marker_uri(job: str, fingerprint: str) -> str:
    """jobs/J/FP/job.json: written once a job is planned (compose) or started (stages)."""
    return f"{job_folder(job, fingerprint)}/job.json"


def parse_marker(uri: str) -> tuple[str, str] | None:
    """(job, fingerprint) of a job.json path relative to the lake root, else None."""
    m = MARKER.match(uri)
    return (m.group(1), m.group(2)) if m else None


def run_index_uri(job: str, fingerprint: str) -> str:
    """The shard index of one run of a job."""
    return f"{job_folder(job, fingerprint)}/index.json"


def job_index_uri(job: str) -> str:
    """The shard index of a job's newest run: what `Stream(lake, job)` reads."""
    return f"{job_root(job)}/index.json"


def import_report_uri(job: str, fingerprint: str) -> str:
    """What an import (ingest soc-output) fixed and skipped, one JSON line each."""
    return f"{job_folder(job, fingerprint)}/import.jsonl"


def part_name(job: str, fingerprint: str, shard: int) -> str:
    """The name of a shard's table parts: part-<this>.parquet in every table it writes."""
    return f"{job}-{fingerprint}-{shard:06d}"


SHARD_PART = re.compile(r"^part-(.+)-([0-9a-f]{16})-(\d{6})\.parquet$")


RUN_PART = re.compile(r"^part-(.+)-([0-9a-f]{16})\.parquet$")


def parse_run_part_name(uri: str) -> tuple[str, str] | None:
    """(job, fingerprint) of a run's plan or sampling_weights part file, else None."""
    m = RUN_PART.match(posixpath.basename(uri))
    return (m.group(1), m.group(2)) if m else None


def parse_part_name(uri: str) -> tuple[str, str, int] | None:
    """(job, fingerprint, shard) of a shard's table part file, else None (ingest and plan parts)."""
    m = SHARD_PART.match(posixpath.basename(uri))
    return (m.group(1), m.group(2), int(m.group(3))) if m else None


def quarantine_uri(relpath: str) -> str:
    """Where `soclake verify --repair` moves a damaged or orphaned file of the lake (never read)."""
    return f"{QUARANTINE}/{relpath}"


def shard_number(uri: str) -> int | None:
    m = SHARD_FILE.match(posixpath.basename(uri))
    return int(m.group(1)) if m else None
