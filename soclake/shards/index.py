"""Shard indexes (index.json): the committed shards of one run with sample counts, sizes and
sha256, so readers never list a bucket. Building, writing, locating, loading and checking one;
readers refuse a version they do not know. Shard URLs are relative to the index's own folder,
so an index is read the same way from a lake, a copy of its folder, HTTP or object storage.
"""
from __future__ import annotations

import json
import posixpath
from typing import Iterable

import fsspec

from soclake import documents, paths, storage
from soclake.errors import SoclakeError

VERSION = 1
MAX_INDEX_BYTES = 1 << 30
"""An index.json larger than this is refused unread (a million shards take about 150 MB)."""
MAX_SHARD_SAMPLES = 10_000_000
"""More samples than this in one shard is a damaged or hostile index (jobs write 100s-1000s)."""
MAX_SHARD_BYTES = 1 << 40
"""Version 1: {"version", "job", "fingerprint", "stage", "shards": [{"url", "samples", "bytes", "sha256"}]},
urls relative to the folder of the index."""


def build(job: str, fingerprint: str, stage: str, shards: Iterable[dict], index_uri: str) -> dict:
    """The index of committed shards (manifest rows: shard_uri relative to the lake root,
    samples, bytes, sha256) as it is written at `index_uri` (also relative to the lake root)."""
    folder = posixpath.dirname(index_uri)
    return {"version": VERSION, "job": job, "fingerprint": fingerprint, "stage": stage,
            "shards": [{"url": posixpath.relpath(r["shard_uri"], folder), "samples": r["samples"], "bytes": r["bytes"],
                        "sha256": r["sha256"]} for r in shards]}


def encode(index: dict) -> bytes:
    return json.dumps(index, indent=1).encode()


def write(fs: fsspec.AbstractFileSystem, path: str, index: dict) -> bool:
    """Write the index unless the same bytes are there already (a no-op rerun writes nothing,
    so it works on a read-only lake). Returns whether it wrote."""
    data = encode(index)
    if fs.exists(path) and fs.cat_file(path) == data:
        return False
    storage.write_bytes(fs, path, data)
    return True


def locate(source: str, job: str | None = None) -> str:
    """The URL of the index a reader means: SOURCE is an index.json URL, a lake root with a job
    name, or a folder holding an index.json (a standalone shard set, a copied run folder)."""
    source = source.rstrip("/")
    if source.endswith(".json"):
        return source
    if job:
        return f"{source}/{paths.job_index_uri(job)}"
    return f"{source}/index.json"


def load(source: str, job: str | None = None, storage_options: dict | None = None) -> tuple[str, dict]:
    """(base URL that shard urls are relative to, checked index) of a shard set."""
    url = locate(source, job)
    try:
        index = documents.parse_json(storage.fetch(url, storage_options, MAX_INDEX_BYTES), f"shard index {url}",
                                     walk=False)  # check() looks at every value a reader uses
    except (OSError, ValueError) as e:
        fix = ("streaming from a lake root needs the job name" if not job and not source.endswith(".json")
               else "run the job (`soclake run`) to write it")
        raise SoclakeError(f"cannot read shard index {url}: {e}; {fix}") from None
    check(index, url)
    return url.rsplit("/", 1)[0], index


def _count(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def entry_problem(entry: dict) -> str | None:
    """Why one shard entry cannot be trusted, or None: readers size their reads and epochs by it."""
    if not _count(entry.get("samples"), MAX_SHARD_SAMPLES):
        return f"has samples = {str(entry.get('samples'))[:40]}, not an integer in [0, {MAX_SHARD_SAMPLES:,}]"
    if not _count(entry.get("bytes"), MAX_SHARD_BYTES):
        return f"has bytes = {str(entry.get('bytes'))[:40]}, not a byte count"
    sha = entry.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        return "has no sha256 (64 hex digits)"
    return None


def check(index: object, source: str) -> None:
    """A readable index of a known version whose shard URLs stay inside its folder: an index
    naming '../x', '/etc/x' or another host must not make a reader fetch from elsewhere."""
    if not isinstance(index, dict):
        raise SoclakeError(f"shard index {source} is not a JSON object; rerun the job to rewrite it")
    version = index.get("version")
    if version != VERSION:
        known = "written by an older soclake" if version is None else f"version {version!r}, this soclake reads {VERSION}"
        raise SoclakeError(f"shard index {source} is not one this soclake reads ({known}); rerun the job "
                           "(`soclake run`, which rewrites only the index) or upgrade soclake")
    if not (isinstance(index.get("job"), str) and isinstance(index.get("shards"), list)
            and all(isinstance(s, dict) for s in index["shards"])):
        raise SoclakeError(f"shard index {source} is malformed (it needs job and shards with url and samples); "
                           "rerun the job to rewrite it")
    for url in (s.get("url") for s in index["shards"]):
        if not isinstance(url, str) or not url or url.startswith(("/", "\\")) or "://" in url or "\\" in url \
                or ".." in url.split("/") or "\x00" in url:
            raise SoclakeError(f"shard index {source} lists {str(url)[:200]!r}, which is not a path inside its "
                               "folder; the index is damaged or hostile: rerun the job to rewrite it")
    for n, s in enumerate(index["shards"]):
        problem = entry_problem(s)
        if problem:
            raise SoclakeError(f"shard index {source} is malformed: shard entry {n} ({str(s.get('url'))[:100]!r}) "
                               f"{problem}; the index is damaged or hostile: rerun the job to rewrite it")
