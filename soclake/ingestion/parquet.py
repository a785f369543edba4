"""Layout `parquet`: datasets as the Hugging Face Hub serves them, one Parquet file, a folder or a
glob of them, with an image column (the HF `Image` feature: a struct of `bytes` and `path`, or plain
binary) and metadata columns. RGBA images become segments; with --mask-column, RGB image + mask
pairs become segments as in `sod`. Files are read row group by row group, only the needed columns
(bounded memory: one row group, ~100 rows in HF's files; a 10 GB file is never loaded whole); each
row is one item, `FILE#row=N`.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from soclake import imaging
from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.engine import Cutout, IngestOptions, Task, check_category
from soclake.ingestion.files import MAX_FILE_BYTES, MAX_TEXT, walk
from soclake.lake.schemas import table_schema

KIND = "segments"
TASK_ROWS = 16
"""Rows per worker task (and per read batch)."""
MAPPABLE = ("subcategory", "description", "short_phrase", "features", "is_instance", "integrity",
            "quality_regularity")
"""Segment columns that --map may fill from a Parquet column."""
SOC_FLAG_COLUMNS = {"IsInstance": "is_instance", "Integrity": "integrity", "QualityAndRegularity": "quality_regularity"}
SIDECARS = (".md", ".txt", ".json", ".yaml", ".yml", ".csv", ".py")
"""Files a dataset repository holds beside its Parquet files (cards, licences, configs): not data."""


def source_exists(source: str) -> bool:
    return os.path.exists(source) or bool(glob.glob(source, recursive=True))


@dataclass
class Plan:
    """What to read from a file: its columns and how each becomes a field."""
    image: str
    mask: str | None
    category: str | None
    fixed_category: str | None
    mapping: dict[str, str] = field(default_factory=dict)   # parquet column -> segment field
    class_names: list[str] | None = None                     # HF ClassLabel names of the category column

    @property
    def columns(self) -> list[str]:
        return [c for c in [self.image, self.mask, self.category, *self.mapping] if c]


def _files(source: str) -> tuple[str, list[str], list[Task]]:
    """(root the uris are relative to, Parquet files, rejects for other files)."""
    if os.path.isfile(source):
        return os.path.dirname(os.path.abspath(source)), [os.path.abspath(source)], []
    if os.path.isdir(source):
        files, rejects = [], []
        for found in walk(source):
            if found.reject and found.reject[0] in ("unsafe_path", "linked_folder", "unreadable"):
                rejects.append(Task(uri=found.rel, reject=found.reject))
            elif found.rel.endswith(".parquet"):
                files.append(os.path.join(os.path.abspath(source), found.rel))
            elif not found.rel.lower().endswith(SIDECARS):
                rejects.append(Task(uri=found.rel, reject=("not_parquet", f"{found.rel} is not a Parquet file; "
                                                           "the parquet layout reads *.parquet")))
        return os.path.abspath(source), files, rejects
    files = sorted(os.path.abspath(p) for p in glob.glob(source, recursive=True) if os.path.isfile(p))
    magic = next(i for i, ch in enumerate(source) if ch in "*?[")
    root = os.path.abspath(os.path.dirname(source[:magic]) or ".")
    return root, files, []


def _class_names(schema: pa.Schema, column: str) -> list[str] | None:
    """ClassLabel names of `column` from the Hugging Face metadata of a Parquet schema."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        features = doc.get("info", {}).get("features") or doc.get("features") or {}
        feat = features.get(column) or {}
        names = feat.get("names")
    except (ValueError, AttributeError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def _is_image_type(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or (
        pa.types.is_struct(t) and t.get_field_index("bytes") >= 0)


def make_plan(path: str, schema: pa.Schema, opts: dict) -> Plan:
    """Check the options against one file's schema; a SoclakeError names the file and the fix."""
    names = schema.names
    have = ", ".join(names[:40])
    image = opts.get("image_column") or "image"
    if image not in names:
        raise SoclakeError(f"{path}: no image column {image!r} (columns: {have}); pass --image-column")
    if not _is_image_type(schema.field(image).type):
        raise SoclakeError(f"{path}: column {image!r} is {schema.field(image).type}, not an image (an HF Image "
                           "struct of bytes and path, or binary); pass the right --image-column")
    mask = opts.get("mask_column")
    if mask and (mask not in names or not _is_image_type(schema.field(mask).type)):
        raise SoclakeError(f"{path}: --mask-column {mask!r} is not an image column of the file (columns: {have})")
    category = opts.get("category_column") or ("category" if "category" in names and not opts.get("category")
                                               else None)
    if category and category not in names:
        raise SoclakeError(f"{path}: no category column {category!r} (columns: {have}); pass --category-column "
                           "or a fixed --category")
    if not category and not opts.get("category"):
        raise SoclakeError(f"{path}: which column holds the category? pass --category-column (columns: {have}) "
                           "or --category NAME for every row")
    class_names = None
    if category:
        t = schema.field(category).type
        if pa.types.is_integer(t):
            class_names = _class_names(schema, category)
            if class_names is None:
                raise SoclakeError(f"{path}: category column {category!r} holds integers without Hugging Face "
                                   "ClassLabel names; pass a column of names")
    mapping = {c: f for c, f in SOC_FLAG_COLUMNS.items() if c in names}
    mapping.update({c: c for c in MAPPABLE if c in names})
    for pair in opts.get("map") or []:
        column, sep, target = pair.partition("=")
        if not sep or target not in MAPPABLE:
            raise SoclakeError(f"--map {pair!r}: write COLUMN=FIELD with FIELD one of {', '.join(MAPPABLE)}")
        if column not in names:
            raise SoclakeError(f"{path}: --map names column {column!r}, which the file lacks (columns: {have})")
        mapping = {c: f for c, f in mapping.items() if f != target}
        mapping[column] = target
    segment_fields = set(table_schema("segments").names)
    assert all(f in segment_fields for f in mapping.values())
    return Plan(image, mask, category, opts.get("category"), mapping, class_names)


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    root, files, rejects = _files(source)
    if not files:
        raise SoclakeError(f"parquet source {source!r} holds no *.parquet file; pass a file, a folder or a glob")
    yield from rejects
    for path in files:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            yield Task(uri=rel, reject=("corrupt", f"{rel} is not a readable Parquet file ({e}); download it again"))
            continue
        plan = make_plan(path, pf.schema_arrow, options.layout)
        offset = 0
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            for start in range(0, n, TASK_ROWS):
                rows = range(offset + start, offset + min(n, start + TASK_ROWS))
                yield Task(uri=f"{rel}#rows={rows.start}-{rows.stop - 1}", items=[f"{rel}#row={i}" for i in rows],
                           extra={"file": path, "rel": rel, "group": g, "group_start": offset, "plan": plan})
            offset += n


def _row_fields(plan: Plan, row: dict) -> dict:
    return {field_name: row.get(column) for column, field_name in plan.mapping.items()}


def _batches(path: str, group: int, columns: list[str]) -> Iterator[tuple[int, dict]]:
    """(row index within the group, row) of one row group, handed out TASK_ROWS rows at a time:
    memory holds one row group of the needed columns (pyarrow decodes whole row groups)."""
    pf = pq.ParquetFile(path)
    i = 0
    for batch in pf.iter_batches(batch_size=TASK_ROWS, row_groups=[group], columns=columns):
        for row in batch.to_pylist():
            yield i, row
            i += 1


def attach(tasks: Iterator[Task], source: str, options: IngestOptions) -> Iterator[Task]:
    """Give each task its rows' values, reading each row group once, in order."""
    key, rows = None, None
    for task in tasks:
        if task.reject or "file" not in task.extra:
            yield task
            continue
        extra = task.extra
        plan = extra.pop("plan")
        if key != (extra["file"], extra["group"]):
            key, rows = (extra["file"], extra["group"]), _batches(extra["file"], extra["group"], plan.columns)
        wanted = {int(u.rsplit("=", 1)[1]) - extra["group_start"]: u for u in task.items}
        got = []
        try:
            for i, row in rows:
                if i in wanted:
                    got.append(_row_item(plan, wanted[i], row))
                if i >= max(wanted):
                    break
        except (OSError, pa.ArrowException) as e:
            key = None
            task.reject = ("corrupt", f"{extra['rel']}: row group {extra['group']} cannot be read ({e})")
            yield task
            continue
        extra["rows"] = got
        yield task


def _row_item(plan: Plan, uri: str, row: dict) -> dict:
    """What a worker needs of one row: image (and mask) bytes, category, fields, or a reject."""
    try:
        image = _image_bytes(row[plan.image], plan.image)
        mask = _image_bytes(row[plan.mask], plan.mask) if plan.mask else None
        return {"uri": uri, "image": image, "mask": mask, "category": _category(plan, row),
                "fields": _fields(plan, row)}
    except RejectedItem as r:
        return {"uri": uri, "reject": (r.reason, r.detail)}


def _image_bytes(value: object, column: str) -> bytes:
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None:
            where = value.get("path")
            raise RejectedItem("missing_image", f"column {column!r} has no image bytes (only the path "
                               f"{str(where)[:200]!r}); export the dataset with embedded images "
                               "(datasets' push_to_hub / to_parquet embed them)")
        value = data
    if not isinstance(value, (bytes, bytearray)):
        raise RejectedItem("missing_image", f"column {column!r} is empty in this row")
    if len(value) > MAX_FILE_BYTES:
        raise RejectedItem("too_large", f"column {column!r} holds {len(value)} bytes (limit {MAX_FILE_BYTES})")
    return bytes(value)


def _category(plan: Plan, row: dict) -> object:
    if not plan.category:
        return plan.fixed_category
    value = row.get(plan.category)
    if plan.class_names is not None and isinstance(value, int):
        if not 0 <= value < len(plan.class_names):
            raise RejectedItem("bad_category", f"class index {value} is not one of the "
                               f"{len(plan.class_names)} ClassLabel names")
        return plan.class_names[value]
    return value


def _text_list(value: object, name: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RejectedItem("bad_metadata", f"{name} must be a string or a list of strings, got {type(value).__name__}")
    if any(len(v) > MAX_TEXT for v in values):
        raise RejectedItem("bad_metadata", f"{name} is over {MAX_TEXT} characters")
    return values


def _fields(plan: Plan, row: dict) -> dict:
    out = {}
    for column, name in plan.mapping.items():
        value = row.get(column)
        if value is None:
            continue
        if name in ("is_instance", "integrity", "quality_regularity"):
            if not isinstance(value, bool):
                raise RejectedItem("bad_quality", f"column {column!r} must be true or false, got {value!r}")
            out[name] = value
        elif name == "features":
            out[name] = [v[:256] for v in _text_list(value, column)[:64]]
        elif name in ("description", "short_phrase"):
            values = _text_list(value, column)
            out[name] = next((v for v in values if v.strip()), None)
            out[name + "s" if name == "short_phrase" else "descriptions"] = values[:64]
        else:
            out[name] = str(value)[:256]
    return out


def load(task: Task, options: IngestOptions) -> Iterator[Cutout | RejectedItem]:
    for item in task.extra["rows"]:
        uri = item["uri"]
        try:
            if "reject" in item:
                raise RejectedItem(*item["reject"])
            yield _cutout(item, options)
        except RejectedItem as r:
            r.uri = uri
            yield r


def _cutout(item: dict, options: IngestOptions) -> Cutout:
    category = check_category(item["category"], item["uri"])
    data = item["image"]
    sha = hashlib.sha256(data).hexdigest()
    if item["mask"] is None:
        rgba = imaging.decode_rgba(data, options.max_pixels)
    else:
        rgb = imaging.decode_rgb(data, options.max_pixels)
        alpha = imaging.decode_gray(item["mask"], options.max_pixels)
        if alpha.shape != rgb.shape[:2]:
            raise RejectedItem("size_mismatch", f"mask is {alpha.shape[1]}x{alpha.shape[0]} but the image is "
                               f"{rgb.shape[1]}x{rgb.shape[0]}; masks must match their images")
        rgba = np.dstack([rgb, alpha])
    fields = {**item["fields"], "exif_orientation": imaging.source_orientation(data)}
    return Cutout(item["uri"], rgba, (0, 0), (rgba.shape[1], rgba.shape[0]), sha, category, fields)
