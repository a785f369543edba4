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

import ijson
import pyarrow as pa
import pyarrow.parquet as pq

from soclake.errors import RejectedItem
from soclake.formats import IMAGE_EXTENSIONS, OTHER_IMAGE_EXTENSIONS
from soclake.lake import sandbox
from soclake.lake.sqlfiles import sql_string

IMAGE_EXTS = set(IMAGE_EXTENSIONS)


@dataclass
class Found:
    """One entry of a source folder: a relative path ('/'-separated; bytes that are not UTF-8
    shown as \\xNN escapes) and, when it must not be read, why (reason, detail)."""
    rel: str
    reject: tuple[str, str] | None = None


def printable_name(name: str) -> str:
    """A file-system name as text: bytes that are not UTF-8 become \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.* hands undecodable bytes over as surrogate escapes
        return False
    return True


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _kind_of_file(rel: str) -> tuple[str, str] | None:
    ext = os.path.splitext(rel)[1].lower()
    if ext in IMAGE_EXTS:
        return None
    if ext in OTHER_IMAGE_EXTENSIONS:
        return ("unsupported_format", f"{rel}: {ext} images are not decoded (soclake reads "
                f"{', '.join(sorted(IMAGE_EXTS))}); convert it to PNG or JPEG")
    return ("not_an_image", f"{rel} is not an image file (extension {ext or 'none'!r}); "
            "remove it from the source")


def walk(root: str, follow_links: bool = False, skip: frozenset[str] = frozenset()) -> Iterator[Found]:
    """Every entry under root, sorted (a folder's files, then its sub-folders), skipping hidden
    names and the relative paths in `skip` (sidecar files such as metadata). Files without an
    image extension, names that are not UTF-8 and links that leave the source are Found with
    a reject and are never opened; folder links are followed only with follow_links."""
    real_root = os.path.realpath(root)
    seen = {real_root}
    stack: list[tuple[str, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            yield Found(prefix.rstrip("/") or ".", ("unreadable", f"cannot list {printable_name(folder)}: {e.strerror}"))
            continue
        subdirs = []
        for entry in entries:
            rel = prefix + entry.name
            if entry.name.startswith(".") or rel in skip:
                continue
            if not _is_utf8(entry.name):
                yield Found(printable_name(rel), ("unsafe_path", f"the name {printable_name(rel)!r} is not valid UTF-8 "
                                                  "(a table cannot hold it); rename it"))
                continue
            found = _classify(entry, rel, real_root, follow_links, seen)
            if isinstance(found, Found):
                yield found
            elif found is not None:
                subdirs.append(found)
        stack.extend(reversed(subdirs))


def _classify(entry: os.DirEntry, rel: str, real_root: str, follow_links: bool, seen: set[str]
              ) -> Found | tuple[str, str] | None:
    """A Found for a file (or a refused entry), (path, prefix) for a folder to descend into."""
    try:
        is_dir = entry.is_dir(follow_symlinks=True)
    except OSError:
        is_dir = False
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            return Found(rel, ("unreadable", f"{rel} is a symbolic link to nothing; remove it"))
        if not follow_links:
            if not _inside(target, real_root):
                return Found(rel, ("unsafe_path", f"{rel} is a symbolic link that leaves the source folder; "
                                   "it was not opened (pass --follow-links to read such links)"))
            if is_dir:
                return Found(rel, ("linked_folder", f"{rel} is a symbolic link to a folder, which ingest does "
                                   "not follow (its files may be listed twice); pass --follow-links"))
        if is_dir:
            if target in seen:
                return Found(rel, ("linked_folder", f"{rel} links to a folder already walked (a loop); remove it"))
            seen.add(target)
    if is_dir:
        return (entry.path, rel + "/")
    return Found(rel, _kind_of_file(rel))


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
        con = sandbox.connect()
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
    con = sandbox.connect()
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
