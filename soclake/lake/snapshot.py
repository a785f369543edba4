"""The pool snapshot: identity of the pool a compose job reads, a function of content only.

Each row of segments, backgrounds and categories is hashed (sql/queries/pool_digest_*.sql,
without pack locations or ingest-run ids) and the hashes are summed, so neither part-file
names nor how rows were split into parts or ordered count. Parts are immutable, so each
part's sums are cached by name in LAKE/cache/pool_snapshot.json, best effort.
"""
from __future__ import annotations

import hashlib
import json
import posixpath

from soclake import paths, storage
from soclake.lake.lake import Lake
from soclake.lake.sqlfiles import query

POOL_TABLES = ("segments", "backgrounds", "categories")
CACHE = paths.POOL_SNAPSHOT_CACHE
CACHE_FORMAT = 1


def pool_snapshot(lake: Lake) -> str:
    """16 hex chars: the same rows give the same snapshot in any lake; any other row changes it."""
    cache = _read_cache(lake)
    h = hashlib.sha256()
    fresh = False
    for table in POOL_TABLES:
        n = lower = upper = 0
        for path in lake.table_parts(table):
            key = f"{table}/{posixpath.basename(path)}"
            if key not in cache:
                row = lake.read_con.execute(query(f"pool_digest_{table}"), {"part": lake.uri_of(path)}).fetchall()[0]
                cache[key] = [int(row[0]), row[1], row[2]]
                fresh = True
            n, lower, upper = n + cache[key][0], lower + int(cache[key][1]), upper + int(cache[key][2])
        h.update(f"{table} {n} {lower} {upper}\n".encode())
    if fresh:
        _write_cache(lake, cache)
    return h.hexdigest()[:16]


def _read_cache(lake: Lake) -> dict:
    try:
        doc = json.loads(lake.fs.cat_file(lake.path(CACHE)))
    except (OSError, ValueError):  # none yet, or unreadable: recompute
        return {}
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or not isinstance(doc.get("parts"), dict):
        return {}
    return {k: v for k, v in doc["parts"].items()
            if isinstance(v, list) and len(v) == 3 and isinstance(v[0], int) and all(isinstance(x, str) for x in v[1:])}


def _write_cache(lake: Lake, parts: dict) -> None:
    data = json.dumps({"format": CACHE_FORMAT, "parts": parts}, sort_keys=True).encode()
    try:
        with storage.atomic_open(lake.fs, lake.path(CACHE)) as f:
            f.write(data)
    except OSError:  # a read-only lake: the snapshot is right, only not cached
        pass
