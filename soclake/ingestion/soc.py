"""Layout `soc`: DATASET/category/subcategory/ID.png as released by SOC (FC-10M, GC-10M), as a
folder or as SOC's published (multi-volume) 7z archives, read without extracting them.

Metadata JSON is keyed "category_subcategory" (description, short_phrase, features: each a
string or a list of strings); the optional quality JSON is keyed by the relative path or by SOC's
universal index "Synthetic_<category>_<subcategory>_<id>", with booleans IsInstance, Integrity,
QualityAndRegularity. Both are streamed and staged, never loaded whole.
"""
from __future__ import annotations

import glob
import os
from itertools import islice
from typing import Iterator

import pyarrow as pa

from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion import soc_archive
from soclake.ingestion.engine import IngestOptions, Task, load_rgba_file
from soclake.ingestion.files import IMAGE_EXTS, MAX_TEXT, StagedJson, stage_json, walk

KIND = "segments"

META_SCHEMA = pa.schema([("key", pa.string()), ("seq", pa.int64()), ("description", pa.string()),
                         ("short_phrase", pa.string()), ("features", pa.list_(pa.string())),
                         ("descriptions", pa.list_(pa.string())), ("short_phrases", pa.list_(pa.string()))])
META_COLUMNS = ["description", "short_phrase", "features", "descriptions", "short_phrases"]
QUALITY_SCHEMA = pa.schema([("key", pa.string()), ("seq", pa.int64()), ("is_instance", pa.bool_()),
                            ("integrity", pa.bool_()), ("quality_regularity", pa.bool_())])
QUALITY_KEYS = {"IsInstance": "is_instance", "Integrity": "integrity",
                "QualityAndRegularity": "quality_regularity"}
SOC_DATASET_NAME = "Synthetic"
"""The dataset name in SOC's universal index (its generation script names the pool so)."""
MAX_LIST = 64


def universal_index(category: str, subcategory: str, file_name: str) -> str:
    """SOC's quality-file key of a segment: Synthetic_<category>_<subcategory>_<id>, where id is
    the file stem after its last underscore (the whole stem when it has none)."""
    stem = file_name[:-4] if file_name.endswith(".png") else os.path.splitext(file_name)[0]
    return f"{SOC_DATASET_NAME}_{category}_{subcategory}_{stem.rsplit('_', 1)[-1]}"


def _texts(entry: dict, key: str, where: str, required: bool) -> list[str]:
    """A metadata field that SOC's releases give as a string or as a list of strings."""
    value = entry.get(key)
    if value is None and not required:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RejectedItem("bad_metadata", f"{where}: '{key}' must be a string or a list of strings, "
                           f"got {type(value).__name__}")
    for v in values:
        if len(v) > MAX_TEXT:
            raise RejectedItem("bad_metadata", f"{where}: '{key}' is {len(v)} characters (limit {MAX_TEXT})")
    return values


def _validate_meta(key: str, entry: object) -> dict:
    where = f"metadata entry {str(key)[:80]!r}"
    if not isinstance(entry, dict):
        raise RejectedItem("bad_metadata", f"{where} is not an object")
    descriptions = _texts(entry, "description", where, required=True)
    phrases = _texts(entry, "short_phrase", where, required=True)
    feats = _texts(entry, "features", where, required=False)
    return {"description": next((d for d in descriptions if d.strip()), None),
            "short_phrase": next((p for p in phrases if p.strip()), None),
            "features": [f[:256] for f in feats[:MAX_LIST]],
            "descriptions": descriptions[:MAX_LIST], "short_phrases": phrases[:MAX_LIST]}


def _validate_quality(key: str, entry: object) -> dict:
    where = f"quality entry {str(key)[:80]!r}"
    if not isinstance(entry, dict):
        raise RejectedItem("bad_quality", f"{where} is not an object")
    out = {}
    for src, col in QUALITY_KEYS.items():
        value = entry.get(src)
        if not isinstance(value, bool):
            raise RejectedItem("bad_quality", f"{where}: '{src}' must be true or false, got {value!r}")
        out[col] = value
    return out


def find_metadata(root: str, given: str | None) -> str | None:
    if given:
        if not os.path.isfile(given):
            raise SoclakeError(f"metadata file {given!r} does not exist")
        return given
    found = sorted(glob.glob(os.path.join(glob.escape(root), "*metadata*.json")))
    if len(found) > 1:
        raise SoclakeError(f"{root} holds {len(found)} metadata files ({', '.join(os.path.basename(f) for f in found[:4])}); "
                           "pass the right one with --metadata")
    return found[0] if found else None


def find_quality(root: str, given: str | None) -> str | None:
    if given:
        if not os.path.isfile(given):
            raise SoclakeError(f"quality file {given!r} does not exist")
        return given
    default = os.path.join(root, "segment_quality.json")
    return default if os.path.isfile(default) else None


def _archives(folder: str) -> list[str]:
    """First volumes (NAME.7z.001) and single archives (NAME.7z) at the top of a folder."""
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    return [os.path.join(folder, n) for n in names if soc_archive.is_first_volume(n)]


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    archive = os.path.isfile(source) and soc_archive.is_archive(source)
    if not os.path.isdir(source) and not archive:
        raise SoclakeError(f"soc source {source!r} is neither a folder holding category/subcategory/ID.png nor a "
                           "SOC 7z release (NAME.7z or NAME.7z.001)")
    root = os.path.dirname(os.path.abspath(source)) if archive else source
    opts = options.layout
    meta_path = find_metadata(root, opts.get("metadata"))
    quality_path = find_quality(root, opts.get("quality"))
    archives = [source] if archive else _archives(source)
    for a in archives:
        soc_archive.volumes(a)  # a missing volume is an error before anything is read
    meta = stage_json(meta_path, "metadata", META_SCHEMA, _validate_meta) if meta_path else StagedJson(None, [])
    quality = (stage_json(quality_path, "quality", QUALITY_SCHEMA, _validate_quality)
               if quality_path else StagedJson(None, []))
    try:
        for uri, reason, detail in meta.rejects + quality.rejects:
            yield Task(uri=uri, reject=(reason, detail))
        for a in archives:
            yield from _archive_tasks(a, meta, quality)
        if not archive:
            sidecars = {os.path.relpath(p, source) for p in (meta_path, quality_path) if p}
            sidecars |= {n for n in os.listdir(source) if n.lower().endswith(".json")}  # metadata of the pool
            sidecars |= {os.path.basename(v) for a in archives for v in soc_archive.volumes(a)}
            files = walk(source, follow_links=bool(opts.get("follow_links")), skip=frozenset(sidecars))
            while batch := list(islice(files, 2048)):
                yield from _tasks(source, batch, meta, quality)
    finally:
        for staged in (meta, quality):
            if staged.path and os.path.exists(staged.path):
                os.unlink(staged.path)


def _pool_parts(rel: str) -> list[str] | None:
    """category, subcategory, file of a pool path (one leading dataset folder allowed in archives)."""
    parts = rel.split("/")
    return parts if len(parts) == 3 else None


def _task_batch(items: list[tuple[str, list[str] | None, dict]], meta: StagedJson, quality: StagedJson,
                ) -> Iterator[tuple[str, list[str] | None, dict, dict]]:
    """(uri, parts, extra, fields) with metadata and quality flags looked up for a batch."""
    keyed = [(uri, p) for uri, p, _ in items if p]
    meta_rows = meta.lookup(sorted({f"{p[0]}_{p[1]}" for _, p in keyed}), META_COLUMNS)
    keys = sorted({k for uri, p in keyed for k in (uri, "/".join(p), universal_index(*p))})
    flags = quality.lookup(keys, list(QUALITY_KEYS.values()))
    for uri, p, extra in items:
        if not p:
            yield uri, None, extra, {}
            continue
        flag = flags.get(uri) or flags.get("/".join(p)) or flags.get(universal_index(*p)) or {}
        yield uri, p, extra, {"subcategory": p[1], **meta_rows.get(f"{p[0]}_{p[1]}", {}), **flag}


def _tasks(root: str, batch: list, meta: StagedJson, quality: StagedJson) -> Iterator[Task]:
    items = []
    for found in batch:
        if found.reject:
            yield Task(uri=found.rel, reject=found.reject)
        else:
            items.append((found.rel, _pool_parts(found.rel), {}))
    for uri, p, _, fields in _task_batch(items, meta, quality):
        if p is None:
            yield Task(uri=uri, reject=("wrong_layout", f"{uri} is not at category/subcategory/ID.png; "
                                        "move it into a subcategory folder"))
            continue
        yield Task(uri=uri, path=os.path.join(root, uri), category=p[0], fields=fields)


def _archive_tasks(path: str, meta: StagedJson, quality: StagedJson) -> Iterator[Task]:
    found, _, _ = soc_archive.scan_members(path)
    top = {m.name.split("/")[0] for m in found}
    strip = len(top) == 1 and all(m.name.count("/") == 3 for m in found)  # NAME/category/sub/ID.png
    label = os.path.basename(path)
    rows = iter(found)
    while batch := list(islice(rows, 2048)):
        items = []
        for m in batch:
            if m.reject:
                yield Task(uri=m.name, reject=m.reject, extra={"archive": path})
                continue
            rel = m.name.split("/", 1)[1] if strip else m.name
            ext = os.path.splitext(rel)[1].lower()
            if ext not in IMAGE_EXTS:
                yield Task(uri=m.name, reject=("not_an_image", f"{label}: member {m.name} is not an image file "
                                               f"(extension {ext or 'none'!r})"), extra={"archive": path})
                continue
            items.append((m.name, _pool_parts(rel), {"archive": path, "member": m}))
        for uri, p, extra, fields in _task_batch(items, meta, quality):
            if p is None:
                yield Task(uri=uri, reject=("wrong_layout", f"{label}: member {uri} is not at "
                                            "category/subcategory/ID.png"), extra={"archive": path})
                continue
            yield Task(uri=uri, category=p[0], fields=fields, extra=extra)


def attach(tasks: Iterator[Task], source: str, options: IngestOptions) -> Iterator[Task]:
    """Give archive members their bytes, streamed from each archive in order (the tasks of one
    archive arrive together, in its stream order)."""
    ahead: list[Task] = []

    def peek() -> Task | None:
        if not ahead:
            ahead.extend(islice(tasks, 1))
        return ahead[0] if ahead else None

    def same(archive: str) -> Iterator[tuple]:
        while (t := peek()) is not None and t.extra.get("archive") == archive:
            ahead.pop(0)
            yield (None if t.reject else t.extra.pop("member")), t

    while (t := peek()) is not None:
        archive = t.extra.get("archive")
        if archive is None:
            yield ahead.pop(0)
            continue
        _, crcs, targets = soc_archive.scan_members(archive)
        for task, result in soc_archive.stream_members(archive, same(archive), crcs, targets):
            task.extra.pop("archive", None)
            if isinstance(result, RejectedItem):
                task.reject = (result.reason, result.detail)
            elif result is not None:
                task.extra["data"] = result
            yield task


load = load_rgba_file
