"""Layout `soc`: DATASET/category/subcategory/ID.png as released by SOC (FC-10M, GC-10M).

Metadata JSON is keyed "category_subcategory" (description, short_phrase, features); the
optional quality JSON is keyed by the relative path with booleans IsInstance, Integrity,
QualityAndRegularity. Both are streamed and staged, never loaded whole.
"""
from __future__ import annotations

import glob
import os
from itertools import islice
from typing import Iterator

import pyarrow as pa

from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.engine import IngestOptions, Task, load_rgba_file
from soclake.ingestion.files import StagedJson, stage_json, text_field, walk

KIND = "segments"

META_SCHEMA = pa.schema([("key", pa.string()), ("seq", pa.int64()), ("description", pa.string()),
                         ("short_phrase", pa.string()), ("features", pa.list_(pa.string()))])
QUALITY_SCHEMA = pa.schema([("key", pa.string()), ("seq", pa.int64()), ("is_instance", pa.bool_()),
                            ("integrity", pa.bool_()), ("quality_regularity", pa.bool_())])
QUALITY_KEYS = {"IsInstance": "is_instance", "Integrity": "integrity",
                "QualityAndRegularity": "quality_regularity"}


def _validate_meta(key: str, entry: object) -> dict:
    where = f"metadata entry {str(key)[:80]!r}"
    if not isinstance(entry, dict):
        raise RejectedItem("bad_metadata", f"{where} is not an object")
    feats = entry.get("features", [])
    if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
        raise RejectedItem("bad_metadata", f"{where}: 'features' must be a list of strings")
    return {"description": text_field(entry, "description", where),
            "short_phrase": text_field(entry, "short_phrase", where),
            "features": [f[:256] for f in feats[:64]]}


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
    found = sorted(glob.glob(os.path.join(root, "*metadata*.json")))
    return found[0] if len(found) == 1 else None


def find_quality(root: str, given: str | None) -> str | None:
    if given:
        if not os.path.isfile(given):
            raise SoclakeError(f"quality file {given!r} does not exist")
        return given
    default = os.path.join(root, "segment_quality.json")
    return default if os.path.isfile(default) else None


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    if not os.path.isdir(source):
        raise SoclakeError(f"soc source {source!r} is not a folder; pass the pool root that holds "
                           "category/subcategory/ID.png")
    opts = options.layout
    meta_path = find_metadata(source, opts.get("metadata"))
    quality_path = find_quality(source, opts.get("quality"))
    meta = stage_json(meta_path, "metadata", META_SCHEMA, _validate_meta) if meta_path else StagedJson(None, [])
    quality = (stage_json(quality_path, "quality", QUALITY_SCHEMA, _validate_quality)
               if quality_path else StagedJson(None, []))
    try:
        for uri, reason, detail in meta.rejects + quality.rejects:
            yield Task(uri=uri, reject=(reason, detail))
        files = walk(source)
        while batch := list(islice(files, 2048)):
            yield from _tasks(source, batch, meta, quality)
    finally:
        for staged in (meta, quality):
            if staged.path and os.path.exists(staged.path):
                os.unlink(staged.path)


def _tasks(root: str, batch: list[str], meta: StagedJson, quality: StagedJson) -> Iterator[Task]:
    parts = {rel: rel.split("/") for rel in batch}
    meta_rows = meta.lookup(sorted({f"{p[0]}_{p[1]}" for p in parts.values() if len(p) == 3}),
                            ["description", "short_phrase", "features"])
    flags = quality.lookup(batch, list(QUALITY_KEYS.values()))
    for rel, p in parts.items():
        if len(p) != 3:
            yield Task(uri=rel, reject=("wrong_layout", f"{rel} is not at category/subcategory/ID.png; "
                                        "move it into a subcategory folder"))
            continue
        fields = {"subcategory": p[1], **meta_rows.get(f"{p[0]}_{p[1]}", {}), **flags.get(rel, {})}
        yield Task(uri=rel, path=os.path.join(root, rel), category=p[0], fields=fields)


load = load_rgba_file
