"""Exports of a job's committed shards: COCO instances, COCO panoptic and ODVG (grounding).

Everything is read from the SQL views of sql/40_exports.sql. Large arrays are written by
DuckDB (COPY ... FORMAT json) and spliced into the document, and files are streamed out of
the shards, so memory stays bounded however many images a job has.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass, field

import numpy as np

from soclake import __version__, faults, storage
from soclake.errors import SoclakeError
from soclake.lake import Lake, catalog
from soclake.lake.sqlfiles import sql_string
from soclake.shards.tar import member_problem

FORMATS = ("coco", "panoptic", "odvg")
SPLITS = ("train", "val", "test", "all")


@dataclass
class ExportSummary:
    job: str
    fingerprint: str
    format: str
    split: str
    images: int
    annotations: int
    files: list[str] = field(default_factory=list)
    missing_shards: list[int] = field(default_factory=list)

    def describe(self) -> str:
        warn = (f"\nWARNING: shards {self.missing_shards} of this job are not committed; exported what is"
                if self.missing_shards else "")
        return (f"exported job {self.job} [{self.fingerprint}] as {self.format} ({self.split}): {self.images} images, "
                f"{self.annotations} annotations -> {', '.join(self.files)}{warn}")


def _select_images(lake: Lake, fp: str, split: str, val: float, test: float, stratify: bool) -> int:
    if split not in SPLITS:
        raise SoclakeError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    lake.con.execute(
        "CREATE OR REPLACE TEMP TABLE _export_images AS SELECT image_id, key FROM "
        "image_splits(val_fraction := $val, test_fraction := $test, stratify := $stratify) "
        "WHERE fingerprint = $fp AND ($split = 'all' OR split = $split)",
        {"val": val, "test": test, "stratify": stratify, "fp": fp, "split": split})
    return lake.con.execute("SELECT count(*) FROM _export_images").fetchall()[0][0]


def _copy_json_array(lake: Lake, query: str, params: dict, path: str) -> None:
    lake.con.execute(f"COPY ({query}) TO {sql_string(path)} (FORMAT json, ARRAY true)", params)


def _splice(out, path: str) -> None:
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)


def _category_list(lake: Lake, panoptic: bool) -> list[dict]:
    cats = lake.query("SELECT id, name, supercategory FROM coco_categories ORDER BY id").to_pylist()
    if panoptic:
        for c in cats:
            c.update(isthing=1, color=_color(c["id"]))
    return cats


def _color(i: int) -> list[int]:
    rng = np.random.default_rng(i)
    return [int(v) for v in rng.integers(40, 256, 3)]


def _write_document(lake: Lake, path: str, head: dict, arrays: list[tuple[str, str]], params: dict) -> None:
    """{head..., name: <DuckDB query as a JSON array>, ...} without holding the arrays in memory.
    DuckDB writes the arrays into a private scratch folder inside the output folder (never the
    system temp folder), removed on exit; a killed export's is removed by the next one."""
    with storage.temp_folder(os.path.dirname(path), "export") as tmp, \
            storage.atomic_open(storage.LOCAL, path) as out:
        out.write(json.dumps(head)[:-1].encode())
        for name, query in arrays:
            part = os.path.join(tmp, f"{name}.json")
            _copy_json_array(lake, query, params, part)
            out.write(f', "{name}": '.encode())
            _splice(out, part)
            faults.point("export")  # the tests kill an export here
        out.write(b"}\n")


def _info(job: str, fp: str, split: str) -> dict:
    return {"description": f"soclake job {job} [{fp}] split {split}", "version": __version__}


def _exported_annotations(lake: Lake, fp: str) -> int:
    return lake.con.execute("SELECT count(*) FROM coco_annotations WHERE fingerprint = ? AND image_id IN "
                            "(SELECT image_id FROM _export_images)", [fp]).fetchall()[0][0]


def export_coco(lake: Lake, fp: str, job: str, split: str, out: str) -> tuple[list[str], int]:
    path = os.path.join(out, "annotations.json")
    head = {"info": _info(job, fp, split), "licenses": [], "categories": _category_list(lake, False)}
    _write_document(lake, path, head, [
        ("images", "SELECT id, file_name, width, height, shard_uri, key FROM coco_images "
                   "WHERE fingerprint = $fp AND id IN (SELECT image_id FROM _export_images) ORDER BY id"),
        ("annotations", "SELECT id, image_id, category_id, segmentation, area, bbox, iscrowd FROM coco_annotations "
                        "WHERE fingerprint = $fp AND image_id IN (SELECT image_id FROM _export_images) ORDER BY id"),
    ], {"fp": fp})
    return [path], _exported_annotations(lake, fp)


def export_panoptic(lake: Lake, fp: str, job: str, split: str, out: str) -> tuple[list[str], int]:
    path = os.path.join(out, "panoptic.json")
    head = {"info": _info(job, fp, split), "licenses": [], "categories": _category_list(lake, True)}
    _write_document(lake, path, head, [
        ("images", "SELECT id, file_name, width, height FROM coco_images WHERE fingerprint = $fp "
                   "AND id IN (SELECT image_id FROM _export_images) ORDER BY id"),
        ("annotations", "SELECT image_id, file_name, coalesce(segments_info, []) AS segments_info "
                        "FROM panoptic_annotations WHERE fingerprint = $fp "
                        "AND image_id IN (SELECT image_id FROM _export_images) ORDER BY image_id"),
    ], {"fp": fp})
    n = extract_members(lake, fp, {"pan.png": os.path.join(out, "panoptic")}, rename=lambda key, ext: f"{key}.png")
    return [path, os.path.join(out, "panoptic") + f"/ ({n} PNGs)"], _exported_annotations(lake, fp)


def grounding_caption(names: list[str]) -> tuple[str, dict[str, list[int]]]:
    """Caption "a. b. c." of the distinct names, and each name's [start, end) span in it."""
    spans, parts, pos = {}, [], 0
    for name in sorted(set(names)):
        spans[name] = [pos, pos + len(name)]
        parts.append(name)
        pos += len(name) + 2
    return ". ".join(parts) + ("." if parts else ""), spans


def export_odvg(lake: Lake, fp: str, job: str, split: str, out: str) -> tuple[list[str], int]:
    path = os.path.join(out, "odvg.jsonl")
    reader = lake.con.sql("SELECT file_name, width, height, instances FROM odvg WHERE fingerprint = $fp AND image_id "
                          "IN (SELECT image_id FROM _export_images) ORDER BY image_id", params={"fp": fp}).to_arrow_reader()
    n = 0
    with storage.atomic_open(storage.LOCAL, path) as f:
        for batch in reader:
            for row in batch.to_pylist():
                insts = row["instances"] or []
                caption, spans = grounding_caption([i["category"] for i in insts])
                boxes = [[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (i["bbox"] for i in insts)]
                record = {"filename": row["file_name"], "height": row["height"], "width": row["width"],
                          "detection": {"instances": [{"bbox": box, "label": i["category_id"], "category": i["category"]}
                                                      for box, i in zip(boxes, insts)]},
                          "grounding": {"caption": caption,
                                        "regions": [{"bbox": box, "phrase": i["category"],
                                                     "tokens_positive": [spans[i["category"]]]}
                                                    for box, i in zip(boxes, insts)]}}
                f.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
                n += len(insts)
    label_map = os.path.join(out, "label_map.json")
    names = {str(c["id"]): c["name"] for c in _category_list(lake, False)}
    storage.write_bytes(storage.LOCAL, label_map, json.dumps(names, ensure_ascii=False).encode())
    return [path, label_map], n


EXPORTERS = {"coco": export_coco, "panoptic": export_panoptic, "odvg": export_odvg}
MAX_CAPTION = 255


def chunk_expressions(expressions: list[dict], limit: int = MAX_CAPTION) -> list[tuple[str, list[tuple[dict, list[int]]]]]:
    """Pack expressions into captions "a. b. c." of at most `limit` characters; each with the
    [start, end) span of every expression in its caption."""
    chunks, caption, spans = [], "", []
    for e in expressions:
        text = e["text"]
        sep = ". " if caption else ""
        if caption and len(caption) + len(sep) + len(text) + 1 > limit:
            chunks.append((caption + ".", spans))
            caption, spans, sep = "", [], ""
        start = len(caption) + len(sep)
        caption += sep + text
        spans.append((e, [start, start + len(text)]))
    if caption:
        chunks.append((caption + ".", spans))
    return chunks


def export_odvg_refexp(lake: Lake, job: str, fp: str, out: str) -> tuple[list[str], int]:
    """ODVG grounding records from a refexp job's shards: expressions chunked into captions,
    one region per target box with the expression's exact span."""
    shards = [r[0] for r in lake.con.execute("SELECT shard_uri FROM manifest WHERE fingerprint = ? AND stage = 'refexp' "
                                             "ORDER BY shard", [fp]).fetchall()]
    path, n = os.path.join(out, "odvg.jsonl"), 0
    storage.make_folder(out)
    storage.remove_abandoned(out)
    with storage.atomic_open(storage.LOCAL, path) as f:
        for shard in shards:
            with lake.fs.open(lake.path(shard), "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                sample: dict = {}
                for m in tar:
                    if member_problem(m):
                        _skipped(shard, m)
                        continue
                    key, _, ext = m.name.partition(".")
                    if sample.get("key") != key:
                        n += _write_refexp_records(f, sample)
                        sample = {"key": key}
                    sample[ext] = tar.extractfile(m).read()
                n += _write_refexp_records(f, sample)
    return [path], n


def _write_refexp_records(f, sample: dict) -> int:
    if "json" not in sample or "refexp.json" not in sample:
        return 0
    info, doc = json.loads(sample["json"]), json.loads(sample["refexp.json"])
    boxes = {i["ann_id"]: i["bbox"] for i in info["instances"]}
    grounded = [e for e in doc.get("expressions", []) if e["targets"]]
    n = 0
    for caption, spans in chunk_expressions(grounded):
        regions = [{"bbox": [boxes[t][0], boxes[t][1], boxes[t][0] + boxes[t][2], boxes[t][1] + boxes[t][3]],
                    "phrase": e["text"], "tokens_positive": [span]} for e, span in spans for t in e["targets"]]
        f.write((json.dumps({"filename": info["file_name"], "height": info["height"], "width": info["width"],
                             "grounding": {"caption": caption, "regions": regions}}, ensure_ascii=False) + "\n").encode())
        n += len(spans)
    return n


def extract_members(lake: Lake, fp: str, targets: dict[str, str], rename=lambda key, ext: f"{key}.{ext}") -> int:
    """Stream the committed shards of `fp` and write members of the selected images whose
    extension is in `targets` (ext -> folder; "*" = the composite). Returns files written."""
    keys = {r[0] for r in lake.con.execute("SELECT key FROM _export_images").fetchall()}
    shards = [r[0] for r in lake.con.execute(
        "SELECT DISTINCT i.shard_uri FROM committed_images i JOIN _export_images e USING (image_id) "
        "WHERE i.fingerprint = ? ORDER BY 1", [fp]).fetchall()]
    for folder in targets.values():
        storage.make_folder(folder)
        storage.remove_abandoned(folder)
    n = 0
    for shard in shards:
        with lake.fs.open(lake.path(shard), "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for m in tar:
                if member_problem(m):
                    _skipped(shard, m)
                    continue
                key, _, ext = m.name.partition(".")
                if key not in keys:
                    continue
                composite = ext.split(".")[-1] in ("jpg", "png", "webp") and not ext.startswith(("pan.", "fg."))
                folder = targets.get(ext) or (targets.get("*") if composite else None)
                if folder is None:
                    continue
                name = rename(key, ext) if ext in targets else f"{key}.{ext}"
                _write_inside(folder, name, tar.extractfile(m))
                n += 1
    os.sync()  # one flush for every file written above, instead of an fsync each
    return n


def _skipped(shard: str, m: tarfile.TarInfo) -> None:
    print(f"warning: {shard}: skipped member {m.name[:200]!r} ({member_problem(m)})", file=sys.stderr)


def _write_inside(folder: str, name: str, data) -> None:
    """Write a file named `name` directly in `folder` (storage.atomic_open: never through a link)."""
    if os.path.basename(name) != name or name in ("", ".", ".."):
        raise SoclakeError(f"refusing to write {name!r} outside {folder}")
    with storage.atomic_open(storage.LOCAL, os.path.join(folder, name), sync=False) as f:
        shutil.copyfileobj(data, f)
        faults.point("export")


def export(lake: Lake, job: str, fmt: str, out: str, split: str = "all", images: bool = False,
           fingerprint: str | None = None, val_fraction: float = 0.05, test_fraction: float = 0.05,
           stratify: bool = False) -> ExportSummary:
    if fmt not in EXPORTERS:
        raise SoclakeError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    newest = catalog.current(lake, job, fingerprint)
    if newest.stage == "refexp":
        if fmt != "odvg":
            raise SoclakeError(f"job {job!r} is a refexp job: export it as odvg, or export its input job as {fmt}")
        files, n_expr = export_odvg_refexp(lake, job, newest.fingerprint, out)
        return ExportSummary(job, newest.fingerprint, fmt, "all", 0, n_expr, files)
    run = catalog.current(lake, job, fingerprint, stage="compose")
    fp, missing = run.fingerprint, catalog.missing_shards(lake, run)
    if missing:
        print(f"warning: job {job} [{fp}]: shards {missing} are not committed; exporting the committed ones",
              file=sys.stderr)
    n_images = _select_images(lake, fp, split, val_fraction, test_fraction, stratify)
    storage.make_folder(out)
    storage.remove_abandoned(out)  # what a killed export left
    files, n_ann = EXPORTERS[fmt](lake, fp, job, split, out)
    if images:
        extract_members(lake, fp, {"*": os.path.join(out, "images")})
        files.append(os.path.join(out, "images") + "/")
    return ExportSummary(job, fp, fmt, split, n_images, n_ann, files, missing)


def stats(lake: Lake, job: str, fingerprint: str | None = None, val_fraction: float = 0.05,
          test_fraction: float = 0.05, stratify: bool = False):
    """(category_stats rows, split sizes) of a job's committed images."""
    run = catalog.current(lake, job, fingerprint, stage="compose")
    fp, missing = run.fingerprint, catalog.missing_shards(lake, run)
    cats = lake.query("SELECT category_id, category, instances, images, segments_used, small, medium, large, "
                      "lvis_frequency, mean_visible_fraction FROM category_stats WHERE fingerprint = $fp", {"fp": fp})
    splits = lake.query("SELECT split, count(*) AS images FROM image_splits(val_fraction := $v, test_fraction := $t, "
                        "stratify := $s) WHERE fingerprint = $fp GROUP BY split ORDER BY split",
                        {"fp": fp, "v": val_fraction, "t": test_fraction, "s": stratify})
    return fp, missing, cats, splits
