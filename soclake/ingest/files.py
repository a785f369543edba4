"""Helpers for layouts: deterministic folder walks, file reads with hashes, and staging of
large JSON metadata into Parquet so lookups stay streaming (memory independent of pool size).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterator

import duckdb
import ijson
import pyarrow as pa
import pyarrow.parquet as pq

from soclake.errors import RejectedItem

IMAGE_EXTS = {".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"}


def walk(root: str, exts: set[str] = IMAGE_EXTS) -> Iterator[str]:
    """Relative paths (with '/') of files under root with the given extensions, sorted,
    skipping hidden files and folders; symlinked folders are not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in exts:
                continue
            yield name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")


def read_file(path: str) -> tuple[bytes, str]:
    """File bytes and their sha256; an unreadable file is a RejectedItem."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise RejectedItem("unreadable", f"cannot read {path}: {e.strerror}") from None
    return data, hashlib.sha256(data).hexdigest()


MAX_TEXT = 65536


@dataclass
class StagedJson:
    """A JSON object {key: entry} converted to a Parquet file (key + validated columns)."""
    path: str | None
    rejects: list[tuple[str, str, str]]  # (uri, reason, detail)

    def lookup(self, keys: list[str], columns: list[str]) -> dict[str, dict]:
        if self.path is None or not keys:
            return {}
        con = duckdb.connect()
        con.register("_keys", pa.table({"key": keys}))
        cols = ", ".join(f"s.{c}" for c in columns)
        rows = con.execute(f"SELECT s.key, {cols} FROM read_parquet(?) s "
                           "WHERE s.key IN (SELECT key FROM _keys)", [self.path]).fetchall()
        con.close()
        return {r[0]: dict(zip(columns, r[1:])) for r in rows}


def stage_json(path: str, label: str, schema: pa.Schema,
               validate: Callable[[str, object], dict], chunk: int = 50_000) -> StagedJson:
    """Stream a top-level JSON object with ijson, validating each entry; bad entries become
    rejects, a malformed file becomes one reject and no entries (partial files are not trusted).
    Later duplicates of a key win."""
    fd, out = tempfile.mkstemp(prefix=f"soclake-{label}-", suffix=".parquet")
    os.close(fd)
    rejects: list[tuple[str, str, str]] = []
    name = os.path.basename(path)
    writer = pq.ParquetWriter(out, schema)
    seq = 0
    try:
        with open(path, "rb") as f:
            rows: list[dict] = []
            for key, value in ijson.kvitems(f, "", use_float=True):
                seq += 1
                try:
                    rows.append({"key": key, "seq": seq, **validate(key, value)})
                except RejectedItem as r:
                    rejects.append((f"{name}#{str(key)[:200]}", r.reason, r.detail))
                if len(rows) >= chunk:
                    writer.write_table(pa.Table.from_pylist(rows, schema))
                    rows = []
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema))
        writer.close()
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as e:
        writer.close()
        os.unlink(out)
        return StagedJson(None, [(name, "malformed_json", f"{label} file {path} is not a valid JSON "
                                  f"object ({type(e).__name__}: {str(e)[:200]}); fix or omit it")])
    deduped = out + ".dedup.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * EXCLUDE (seq) FROM read_parquet(?) QUALIFY row_number() OVER "
                f"(PARTITION BY key ORDER BY seq DESC) = 1 ORDER BY key) TO '{deduped}' (FORMAT parquet)", [out])
    con.close()
    os.unlink(out)
    return StagedJson(deduped, rejects)


def text_field(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise RejectedItem("bad_metadata", f"{where}: '{key}' must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise RejectedItem("bad_metadata", f"{where}: '{key}' is {len(value)} characters (limit {MAX_TEXT})")
    return value
