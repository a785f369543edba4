"""Helpers for layouts: deterministic folder walks, safe file reads with hashes, staging of
large JSON metadata into Parquet so lookups stay streaming (memory independent of pool size),
and a reader that marks bytes that are not UTF-8 so one bad entry rejects only itself.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterator

import duckdb
import ijson
import pyarrow as pa
import pyarrow.parquet as pq

from soclake.errors import RejectedItem
from soclake.lake.sqlfiles import sql_string

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


MAX_FILE_BYTES = 1 << 30
"""Source files above this size are rejected unread (a 1 GiB image is a mistake or an attack)."""


def read_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes, str]:
    """File bytes and their sha256. Only regular files are read: a FIFO, device or folder
    (e.g. a symlink to /dev/zero) is a RejectedItem, never a hang; so is an unreadable file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not block
    except OSError as e:
        raise RejectedItem("unreadable", f"cannot read {path[:300]}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RejectedItem("unreadable", f"{path[:300]} is not a regular file (a device, FIFO or folder); "
                               "remove it from the source")
        if st.st_size > max_bytes:
            raise RejectedItem("too_large", f"{path[:300]} is {st.st_size} bytes (limit {max_bytes}); "
                               "shrink or remove it")
        data = f.read(max_bytes + 1)
    return data, hashlib.sha256(data).hexdigest()


NOT_UTF8 = "\U0010fffe"
"""Stands in for bytes that are not UTF-8 (a noncharacter that valid text never holds)."""


def _mark_not_utf8(err: UnicodeDecodeError) -> tuple[str, int]:
    return NOT_UTF8, err.end


codecs.register_error("soclake-mark", _mark_not_utf8)


class Utf8Marked:
    """A binary file object whose bytes that are not UTF-8 read as NOT_UTF8, so a JSON
    parser accepts the file and validators reject only the entries holding such bytes."""

    def __init__(self, f, chunk: int = 1 << 20):
        self.f, self.chunk = f, chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")("soclake-mark")
        self.out, self.eof = b"", False

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.out) < n):
            data = self.f.read(self.chunk)
            self.eof = not data
            self.out += self.decoder.decode(data, final=self.eof).encode("utf-8")
        n = len(self.out) if n < 0 else n
        got, self.out = self.out[:n], self.out[n:]
        return got


def has_bad_text(value: object) -> bool:
    """True when a parsed JSON value holds bytes that were not UTF-8 (see Utf8Marked)."""
    if isinstance(value, str):
        return NOT_UTF8 in value
    if isinstance(value, dict):
        return any(has_bad_text(k) or has_bad_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_bad_text(v) for v in value)
    return False


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
            for key, value in ijson.kvitems(Utf8Marked(f), "", use_float=True):
                seq += 1
                try:
                    if has_bad_text(key) or has_bad_text(value):
                        raise RejectedItem(f"bad_{label}", f"{label} entry {_printable(key)!r} holds bytes that "
                                           "are not UTF-8; save the file as UTF-8")
                    rows.append({"key": key, "seq": seq, **validate(key, value)})
                except RejectedItem as r:
                    rejects.append((f"{name}#{_printable(key)}", r.reason, r.detail))
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
    # COPY takes no parameter for its target: the temp path is quoted as a SQL string literal
    con.execute("COPY (SELECT * EXCLUDE (seq) FROM read_parquet(?) QUALIFY row_number() OVER "
                f"(PARTITION BY key ORDER BY seq DESC) = 1 ORDER BY key) TO {sql_string(deduped)} (FORMAT parquet)",
                [out])
    con.close()
    os.unlink(out)
    return StagedJson(deduped, rejects)


def _printable(key: object) -> str:
    return str(key)[:200].replace(NOT_UTF8, "\ufffd")


def text_field(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise RejectedItem("bad_metadata", f"{where}: '{key}' must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise RejectedItem("bad_metadata", f"{where}: '{key}' is {len(value)} characters (limit {MAX_TEXT})")
    return value
