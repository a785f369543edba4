"""The lake's table parts checked one by one, without DuckDB (which would stop at the first bad
one): each is a regular file, a readable Parquet file whose columns have the types of
schemas/, and (deep) its pages decode; parts with the same bytes are duplicates (their rows
would count twice). Also where a bad part is moved: quarantine/ inside the lake, never deleted.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from soclake import paths, storage
from soclake.lake.lake import Lake
from soclake.lake.schemas import table_names, table_schema


@dataclass(frozen=True)
class PartProblem:
    table: str
    path: str       # relative to the lake root
    problem: str
    duplicate_of: str | None = None


def schema_problem(table: str, found: pa.Schema) -> str | None:
    """Why a part's columns are not the table's (schemas/<table>.json): an unknown column, a
    column of another type, or a required column missing; None when they fit."""
    expected = table_schema(table)
    for f in found:
        if f.name not in expected.names:
            return f"column {f.name!r} is not in schemas/{table}.json"
        want = expected.field(f.name).type
        if not f.type.equals(want):
            return f"column {f.name!r} is {f.type}, schemas/{table}.json says {want}"
    missing = [f.name for f in expected if not f.nullable and f.name not in found.names]
    return f"required column(s) {', '.join(missing)} missing" if missing else None


def part_problem(lake: Lake, table: str, path: str, deep: bool) -> str | None:
    """What is wrong with one part file, or None."""
    if storage.is_local(lake.fs) and (os.path.islink(path) or not os.path.isfile(path)):
        return "a symbolic link, not a part file" if os.path.islink(path) else "not a regular file"
    try:
        with lake.fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            problem = schema_problem(table, pf.schema_arrow)
            if problem is None and deep:
                pf.read()  # every page of every row group
    except (OSError, ValueError, pa.ArrowException) as e:
        return f"not a readable Parquet file ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    return problem


def _keep_first(path: str) -> tuple:
    """Which of identical parts stays: a shard's own part name, then the shortest name."""
    name = posixpath.basename(path)
    return (paths.parse_part_name(name) is None, len(name), name)


def _digest(lake: Lake, path: str) -> str:
    h = hashlib.sha256()
    with lake.fs.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def duplicates(lake: Lake, table: str, parts: list[str]) -> list[PartProblem]:
    """Parts of `table` with the same bytes as another (same size first, then sha256): all but
    the first by name are problems."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for p in parts:
        by_size[lake.fs.size(p)].append(p)
    found = []
    for same in (g for g in by_size.values() if len(g) > 1):
        by_hash: dict[str, list[str]] = defaultdict(list)
        for p in same:
            by_hash[_digest(lake, p)].append(p)
        for group in (sorted(g, key=_keep_first) for g in by_hash.values() if len(g) > 1):
            found += [PartProblem(table, lake.relpath(p), f"the same bytes as {posixpath.basename(group[0])}: its rows "
                                  "would count twice", lake.relpath(group[0])) for p in group[1:]]
    return found


def check_parts(lake: Lake, deep: bool = False) -> list[PartProblem]:
    """Every damaged or duplicated part of every table."""
    problems = []
    for table in table_names():
        parts = lake.table_parts(table)
        bad = []
        for p in parts:
            problem = part_problem(lake, table, p, deep)
            if problem:
                bad.append(p)
                problems.append(PartProblem(table, lake.relpath(p), problem))
        problems += duplicates(lake, table, [p for p in parts if p not in bad])
    return problems


def quarantine(lake: Lake, relpath: str) -> str:
    """Move a file of the lake to quarantine/ (same relative path, a number added if taken);
    returns where it went. Nothing is deleted: the operator decides."""
    target, n = paths.quarantine_uri(relpath), 1
    while lake.fs.exists(lake.path(target)):
        target, n = f"{paths.quarantine_uri(relpath)}.{n}", n + 1
    lake.fs.makedirs(posixpath.dirname(lake.path(target)), exist_ok=True)
    lake.fs.mv(lake.path(relpath), lake.path(target))
    return target
