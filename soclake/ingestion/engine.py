"""The ingest engine shared by every layout: scan, skip what the lake already has, process
in worker processes, and commit in flushes (pack first, then table parts).

A layout module supplies `KIND` ("segments" or "backgrounds"), `scan(source, options)`
yielding Tasks (main process), and `load(task, options)` yielding Cutouts (worker). Optional:
`attach(tasks, source, options)`, run on the tasks left after skipping what the lake holds,
adds bytes that only stream in order (7z members, Parquet row groups); `source_exists(source)`.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from soclake import imaging, storage, vocab
from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.detect import nothing_accepted
from soclake.ingestion.files import read_file
from soclake.ingestion.layouts import LAYOUTS
from soclake.lake import Lake, sandbox
from soclake.lake.packs import write_pack
from soclake.lake.schemas import to_table
from soclake.vocab import canonical_category


@dataclass
class IngestOptions:
    max_pixels: int = imaging.MAX_PIXELS
    max_side: int = 1024
    min_side: int = 32
    layout: dict = field(default_factory=dict)  # layout-specific options (metadata, quality, ...)


@dataclass
class Task:
    """One source item for a worker: a file (or an image with its annotations)."""
    uri: str                       # item id within the source; the rejects/segments key
    path: str = ""                 # absolute path of the file to read
    category: str | None = None
    fields: dict = field(default_factory=dict)   # copied into every row (subcategory, flags, ...)
    extra: dict = field(default_factory=dict)    # layout loader data (mask path, annotations)
    reject: tuple[str, str] | None = None        # (reason, detail): found bad while scanning
    items: list[str] | None = None               # uris of the rows it yields, when known before loading
                                                 # (Parquet rows): the lake is checked for each


@dataclass
class Cutout:
    """Pixels of one segment as a layout loaded them (before cropping)."""
    uri: str
    rgba: np.ndarray
    offset: tuple[int, int]
    source_size: tuple[int, int]
    sha256: str
    category: str | None = None
    fields: dict = field(default_factory=dict)


@dataclass
class IngestSummary:
    layout: str
    source: str
    run: str
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    new_categories: int = 0
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    warning: str | None = None     # set when nothing at all was accepted (with a layout hint)

    def describe(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in self.reasons.most_common()) or "none"
        rate = self.accepted / self.seconds if self.seconds else 0.0
        return (f"{self.layout} source {self.source!r}: {self.accepted} accepted, {self.rejected} "
                f"rejected ({why}), {self.skipped} already in the lake, {self.new_categories} new "
                f"categories, {self.seconds:.1f}s ({rate:.1f}/s)")


# ---------------------------------------------------------------------------- names
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_PATH_CHARS, MAX_PART_BYTES = 4096, 255


def check_category(name: Any, uri: str) -> str:
    if not isinstance(name, str) or not canonical_category(name):
        raise RejectedItem("bad_category", f"{uri}: category name {name!r} is empty")
    # category names are data, never paths or SQL text: quotes, slashes and unicode are fine
    if _CONTROL.search(name) or len(name) > 256:
        raise RejectedItem("bad_category", f"{uri}: category name {name[:60]!r} has control characters "
                           "or is over 256 characters; rename it")
    return name.strip()  # canonicalised when ids are assigned; the spelling is kept as a synonym


def check_relpath(name: Any, what: str) -> str:
    """A file name from metadata must stay inside its folder: no absolute path, `..` or NUL."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name or name.startswith("/") \
            or ".." in name.split("/") or re.match(r"^[A-Za-z]:", name):
        raise RejectedItem("unsafe_path", f"{what} {str(name)[:80]!r} is empty, absolute or leaves its "
                           "folder (`..`); use a plain relative file name")
    if len(name) > MAX_PATH_CHARS or any(len(p.encode("utf-8", "replace")) > MAX_PART_BYTES for p in name.split("/")):
        raise RejectedItem("unsafe_path", f"{what} {name[:80]!r}... is {len(name)} characters, longer than a "
                           f"file system allows ({MAX_PART_BYTES} bytes per name); shorten it")
    return name


def check_source_name(name: str) -> str:
    if not name or _BAD_NAME.search(name) or name in (".", "..") or len(name) > 128:
        raise SoclakeError(f"source name {name!r} is not usable as a folder name; pass --source-name "
                           "with letters, digits, '-' or '_'")
    return name


# ---------------------------------------------------------------------------- worker side
def process(layout: str, options: IngestOptions, task: Task) -> list[tuple]:
    """Worker: turn one task into ("segment"|"background", row, members) or ("reject", row)."""
    if task.reject:
        return [("reject", _reject_row(uri, *task.reject)) for uri in task.items or [task.uri]]
    mod = LAYOUTS.get(layout)
    out: list[tuple] = []
    try:
        for item in mod.load(task, options):
            if isinstance(item, RejectedItem):
                out.append(("reject", _reject_row(item.uri, item.reason, item.detail)))
                continue
            try:
                out.append(mod.build(item, options) if hasattr(mod, "build") else build_segment(item, options))
            except RejectedItem as r:
                out.append(("reject", _reject_row(item.uri, r.reason, r.detail)))
    except RejectedItem as r:
        out += _rejects_of_rest(task, out, r.reason, r.detail)
    except Exception as e:  # never let one item crash the job
        out += _rejects_of_rest(task, out, "error", f"{type(e).__name__}: {e}")
    return out


def _rejects_of_rest(task: Task, out: list[tuple], reason: str, detail: str) -> list[tuple]:
    """Reject rows for the task's items that have no outcome yet (the task itself if it has none)."""
    if not task.items:
        return [("reject", _reject_row(task.uri, reason, detail))]
    done = {o[1]["source_uri"] for o in out}
    return [("reject", _reject_row(uri, reason, detail)) for uri in task.items if uri not in done]


def task_bytes(task: Task) -> tuple[bytes, str]:
    """The bytes of a task's file and their sha256: streamed in by `attach` (archives) or read
    from its path."""
    data = task.extra.pop("data", None)
    if data is None:
        return read_file(task.path)
    return data, hashlib.sha256(data).hexdigest()


def load_rgba_file(task: Task, options: IngestOptions) -> Iterator[Cutout]:
    """The loader of layouts whose items are whole RGBA cut-out files (soc, folders)."""
    category = check_category(task.category, task.uri)
    data, sha = task_bytes(task)
    rgba = imaging.decode_rgba(data, options.max_pixels)
    fields = {**task.fields, "exif_orientation": imaging.source_orientation(data)}
    yield Cutout(task.uri, rgba, (0, 0), (rgba.shape[1], rgba.shape[0]), sha, category, fields)


def _reject_row(uri: str, reason: str, detail: str) -> dict:
    return {"source_uri": uri, "reason": reason, "detail": detail}


def build_segment(cut: Cutout, options: IngestOptions) -> tuple:
    crop, (dx, dy) = imaging.canonical_crop(cut.rgba)
    sides = imaging.level_sides(max(crop.shape[:2]), options.max_side, options.min_side)
    levels = imaging.pyramid(crop, sides)
    small = next((lv for lv in reversed(levels) if max(lv.shape[:2]) >= 64), levels[0])
    seg_id = imaging.content_id(crop)
    row = {
        "segment_id": seg_id, "source_uri": cut.uri, "category": cut.category,
        "is_distractor": False,
        **cut.fields,
        "width": crop.shape[1], "height": crop.shape[0],
        "source_width": cut.source_size[0], "source_height": cut.source_size[1],
        "crop_x": cut.offset[0] + dx, "crop_y": cut.offset[1] + dy,
        **imaging.mask_stats(crop[..., 3]),
        "dominant_color": imaging.dominant_color(small),
        "codec": "webp", "sha256": cut.sha256,
        "levels": [{"side": s, "width": lv.shape[1], "height": lv.shape[0]} for s, lv in zip(sides, levels)],
    }
    members = [(f"{seg_id}.{s}.webp", imaging.encode_level(lv)) for s, lv in zip(sides, levels)]
    return ("segment", row, members)


# ---------------------------------------------------------------------------- main side
class Sink:
    """Buffers processed items and commits them: pack, then categories, rows and rejects."""

    def __init__(self, lake: Lake, kind: str, source: str, layout: str, run: str, summary: IngestSummary,
                 flush_rows: int, flush_bytes: int):
        self.lake, self.kind, self.source, self.layout, self.run = lake, kind, source, layout, run
        self.summary, self.flush_rows, self.flush_bytes = summary, flush_rows, flush_bytes
        self.id_col = "segment_id" if kind == "segments" else "background_id"
        self.items: dict[str, tuple[dict, list]] = {}
        self.rejects: list[dict] = []
        self.bytes = 0
        self.seq = 0
        self.categories = {r["name"]: r["category_id"] for r in
                           lake.query("SELECT name, category_id FROM categories").to_pylist()}
        self.next_category_id = max(self.categories.values(), default=0) + 1

    def add(self, outcome: tuple) -> None:
        if outcome[0] == "reject":
            self._reject(outcome[1])
            return
        _, row, members = outcome
        key = row[self.id_col]
        if key in self.items:
            self._reject(_reject_row(row["source_uri"], "duplicate",
                                     f"same pixels as {self.items[key][0]['source_uri']} ({key})"))
            return
        self.items[key] = (row, members)
        self.bytes += sum(len(b) for _, b in members)
        if len(self.items) >= self.flush_rows or self.bytes >= self.flush_bytes:
            self.flush()

    def _reject(self, row: dict) -> None:
        self.rejects.append({**row, "source": self.source, "layout": self.layout,
                             "stage": row.get("stage", "ingest"), "ingest_run": self.run})
        self.summary.rejected += 1
        self.summary.reasons[row["reason"]] += 1

    def _drop_known_duplicates(self) -> None:
        if not self.items:
            return
        con = self.lake.con
        con.register("_batch_ids", pa.table({"id": list(self.items)}))
        known = con.execute(f"SELECT {self.id_col}, source, source_uri FROM {self.kind} "
                            f"WHERE {self.id_col} IN (SELECT id FROM _batch_ids)").fetchall()
        con.unregister("_batch_ids")
        for key, src, uri in known:
            row, _ = self.items.pop(key)
            self._reject(_reject_row(row["source_uri"], "duplicate", f"same pixels as {src}:{uri} ({key})"))

    def flush(self) -> None:
        self._drop_known_duplicates()
        rows = []
        if self.items:
            self.seq += 1
            pack = f"packs/{self.kind}/{self.source}/{self.run}-{self.seq:05d}.tar"
            members = [m for _, ms in self.items.values() for m in ms]
            located = iter(write_pack(self.lake, pack, members))
            for row, ms in self.items.values():
                placed = [next(located) for _ in ms]
                self._place(row, pack, placed)
                rows.append(row)
        new_categories = self._assign_categories(rows) if self.kind == "segments" else []
        part = f"{self.run}-{self.seq:05d}"
        self.lake.append("categories", to_table("categories", new_categories), part)
        self.lake.append(self.kind, to_table(self.kind, rows), part)
        self.lake.append("rejects", to_table("rejects", self.rejects), f"{part}-{len(self.rejects)}")
        self.summary.accepted += len(rows)
        self.summary.new_categories += len(new_categories)
        self.items, self.rejects, self.bytes = {}, [], 0

    def _place(self, row: dict, pack: str, placed: list) -> None:
        row.update(source=self.source, layout=self.layout, ingest_run=self.run)
        if self.kind == "segments":
            for level, m in zip(row["levels"], placed):
                level.update(pack=pack, offset=m.offset, length=m.length)
        else:
            row.update(pack=pack, offset=placed[0].offset, length=placed[0].length)

    def _assign_categories(self, rows: list[dict]) -> list[dict]:
        new = []
        for row in rows:
            raw = row["category"]
            info = row.pop("category_info", None) or {}
            name = canonical_category(raw)
            if name not in self.categories:
                self.categories[name] = self.next_category_id
                self.next_category_id += 1
                synonyms = [raw] if raw != name else []
                synonyms += [s for s in info.get("synonyms", []) if s not in synonyms and s != name]
                new.append({"category_id": self.categories[name], "name": name, "synonyms": synonyms,
                            "first_source": self.source, "coco_id": vocab.coco_ids().get(name),
                            "lvis_id": info.get("lvis_id", _lvis_ids().get(name)),
                            "frequency": info.get("frequency"), "synset": info.get("synset")})
            row["category"], row["category_id"] = name, self.categories[name]
        return new


@lru_cache(maxsize=1)
def _lvis_ids() -> dict[str, int]:
    """Canonical LVIS v1 name -> LVIS id, from the vocabulary soclake ships."""
    return {canonical_category(n): i for i, n in enumerate(vocab.lvis_names(), start=1)}


def _skip_known(lake: Lake, kind: str, source: str, tasks: Iterable[Task], summary: IngestSummary,
                retry_rejects: bool, layout: str, batch: int = 512) -> Iterator[Task]:
    """Drop tasks whose item the lake already holds (incremental ingest), batch by batch. Items
    rejected by another layout are tried again (the source was first ingested with the wrong one)."""
    parts = {t: [lake.uri_of(p) for p in lake.table_parts(t)] for t in (kind, "rejects")}
    if not parts[kind] and not parts["rejects"]:
        yield from tasks
        return
    known_sql, params = [], {"source": source}
    if parts[kind]:
        # whole files (a COCO image "x.jpg" of rows "x.jpg#ann=3"), and rows known one by one (Parquet)
        known_sql.append("SELECT split_part(source_uri, '#', 1) AS uri FROM read_parquet($items) WHERE source = $source "
                         "UNION ALL SELECT source_uri FROM read_parquet($items) WHERE source = $source")
        params["items"] = parts[kind]
    if parts["rejects"] and not retry_rejects:
        # full uris (metadata entries "file.json#key") and item parts (COCO images "x.jpg#ann=3")
        known_sql.append("SELECT source_uri AS uri FROM read_parquet($rejects) WHERE source = $source AND layout = $layout "
                         "UNION ALL SELECT split_part(source_uri, '#', 1) FROM read_parquet($rejects) "
                         "WHERE source = $source AND layout = $layout")
        params["rejects"], params["layout"] = parts["rejects"], layout
    if not known_sql:  # only rejects so far, and they are to be retried
        yield from tasks
        return
    con = sandbox.connect()
    if not storage.is_local(lake.fs):
        con.register_filesystem(lake.fs)
    buf: list[Task] = []

    def drain() -> Iterator[Task]:
        con.register("_uris", pa.table({"uri": [u for t in buf for u in (t.items or [t.uri])]}))
        sql = f"SELECT uri FROM _uris WHERE uri IN ({' UNION ALL '.join(known_sql)})"
        known = {r[0] for r in con.execute(sql, params).fetchall()}
        for t in buf:
            if t.items:
                left = [u for u in t.items if u not in known]
                summary.skipped += len(t.items) - len(left)
                if left:
                    t.items = left
                    yield t
            elif t.uri in known:
                summary.skipped += 1
            else:
                yield t
        buf.clear()

    for t in tasks:
        buf.append(t)
        if len(buf) >= batch:
            yield from drain()
    if buf:
        yield from drain()
    con.close()


def run(lake: Lake, layout: str, source: str, source_name: str | None = None, workers: int | None = None,
        max_pixels: int = imaging.MAX_PIXELS, max_side: int = 1024, min_side: int = 32,
        flush_rows: int = 20_000, flush_bytes: int = 512 << 20, retry_rejects: bool = False,
        progress: bool | None = None, **layout_options: Any) -> IngestSummary:
    """Ingest `source` (a path) in `layout` into `lake`. Rejected items never stop the run."""
    mod = LAYOUTS.get(layout)
    if not getattr(mod, "source_exists", os.path.exists)(source):
        raise SoclakeError(f"source {source!r} does not exist; check the path")
    source_name = check_source_name(source_name or default_source_name(source))
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    options = IngestOptions(max_pixels, max_side, min_side, dict(layout_options))
    summary = IngestSummary(layout, source_name, run_id)
    t0 = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    with lake.writer_lock():
        sink = Sink(lake, mod.KIND, source_name, layout, run_id, summary, flush_rows, flush_bytes)
        tasks = _skip_known(lake, mod.KIND, source_name, mod.scan(source, options), summary, retry_rejects,
                            layout)
        if hasattr(mod, "attach"):
            tasks = mod.attach(tasks, source, options)
        work = partial(process, layout, options)
        bar = tqdm(desc=f"ingest {layout}", unit="item", disable=None if progress is None else not progress,
                   file=sys.stderr)
        if workers <= 1:
            outcomes = map(work, tasks)
            _consume(outcomes, sink, bar)
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                _consume(pool.imap(work, tasks, chunksize=2), sink, bar)
        sink.flush()
        bar.close()
    summary.seconds = time.perf_counter() - t0
    if summary.accepted == 0 and not _source_rows(lake, mod.KIND, source_name):
        summary.warning = nothing_accepted(layout, source, summary.rejected, summary.reasons)
    return summary


def _source_rows(lake: Lake, kind: str, source: str) -> int:
    lake.refresh()
    return lake.con.execute(f"SELECT count(*) FROM {kind} WHERE source = ?", [source]).fetchall()[0][0]


def _consume(outcomes: Iterable[list[tuple]], sink: Sink, bar: tqdm) -> None:
    for outs in outcomes:
        for o in outs:
            sink.add(o)
        bar.update(1)


def default_source_name(source: str) -> str:
    base = os.path.basename(os.path.normpath(source))
    base = os.path.splitext(base)[0] if os.path.isfile(source) else base
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip(".-") or "source"
