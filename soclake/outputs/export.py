"""Exports of a job's committed shards, for a job of any stage: COCO instances, COCO panoptic,
ODVG (grounding), captions (JSON Lines) and SOC's own folder layout (soc_export.py).

A stage job (relight, refexp) exports its own composites with the annotations of the compose job
it descends from. Everything is read from the SQL views of sql/40_exports.sql. Large arrays are
written by DuckDB (COPY ... FORMAT json) and spliced into the document, and files are streamed out
of the shards, so memory stays bounded however many images a job has.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from soclake import __version__, faults, storage
from soclake.errors import SoclakeError
from soclake.lake import Lake, catalog
from soclake.lake.sqlfiles import sql_string
from soclake.outputs import soc_export
from soclake.shards.tar import is_composite, member_problem

FORMATS = ("coco", "panoptic", "odvg", "captions", "soc")
SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Target:
    """What an export reads: the run asked for (any stage), whose shards hold the composites, and
    the compose run it descends from, whose tables hold the annotations."""
    job: str
    run: catalog.Run
    source: catalog.Run

    @property
    def fp(self) -> str:
        """The compose run's fingerprint: the annotations' key."""
        return self.source.fingerprint


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


def _select_images(lake: Lake, target: Target, split: str, val: float, test: float, stratify: bool) -> int:
    """The images exported, as the temp table _export_images (image_id, key, file_name, width,
    height, shard_uri of the run's shard): the run's committed images of the split."""
    if split not in SPLITS:
        raise SoclakeError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    lake.con.execute(
        "CREATE OR REPLACE TEMP TABLE _export_images AS SELECT r.image_id, r.key, r.file_name, r.width, r.height, "
        "r.shard_uri FROM run_images($run, $fp) r JOIN image_splits(val_fraction := $val, test_fraction := $test, "
        "stratify := $stratify) s ON s.fingerprint = $fp AND s.image_id = r.image_id "
        "WHERE $split = 'all' OR s.split = $split",
        {"val": val, "test": test, "stratify": stratify, "fp": target.fp, "run": target.run.fingerprint,
         "split": split})
    return lake.con.execute("SELECT count(*) FROM _export_images").fetchall()[0][0]


def _copy_json_array(lake: Lake, query: str, params: dict, path: str) -> None:
    used = {k: v for k, v in params.items() if f"${k}" in query}  # DuckDB refuses unused parameters
    lake.con.execute(f"COPY ({query}) TO {sql_string(path)} (FORMAT json, ARRAY true)", used)


def _splice(out, path: str) -> None:
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)


def _category_list(lake: Lake, panoptic: bool) -> list[dict]:
    cats = lake.query("SELECT id, name, supercategory, isthing FROM coco_categories ORDER BY id").to_pylist()
    if panoptic:
        for c in cats:
            c.update(color=_color(c["id"]))
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


ANNOTATION_COLUMNS = ("id, image_id, category_id, segmentation, area, bbox, iscrowd, category_name, sub_category, "
                      "description, features, short_phrase")


def export_coco(lake: Lake, target: Target, split: str, out: str) -> tuple[list[str], int]:
    path = os.path.join(out, "annotations.json")
    head = {"info": _info(target.job, target.run.fingerprint, split), "licenses": [],
            "categories": _category_list(lake, False)}
    _write_document(lake, path, head, [
        ("images", "SELECT image_id AS id, file_name, width, height, shard_uri, key FROM _export_images ORDER BY id"),
        ("annotations", f"SELECT {ANNOTATION_COLUMNS} FROM coco_annotations WHERE fingerprint = $fp "
                        "AND image_id IN (SELECT image_id FROM _export_images) ORDER BY id"),
    ], {"fp": target.fp})
    return [path], _exported_annotations(lake, target.fp)


def export_panoptic(lake: Lake, target: Target, split: str, out: str) -> tuple[list[str], int]:
    path = os.path.join(out, "panoptic.json")
    head = {"info": _info(target.job, target.run.fingerprint, split), "licenses": [],
            "categories": _category_list(lake, True)}
    _write_document(lake, path, head, [
        ("images", "SELECT image_id AS id, file_name, width, height FROM _export_images ORDER BY id"),
        ("annotations", "SELECT image_id, file_name, coalesce(segments_info, []) AS segments_info "
                        "FROM panoptic_annotations WHERE fingerprint = $fp "
                        "AND image_id IN (SELECT image_id FROM _export_images) ORDER BY image_id"),
    ], {"fp": target.fp})
    n = extract_members(lake, {"pan.png": os.path.join(out, "panoptic")}, rename=lambda key, ext: f"{key}.png")
    return [path, os.path.join(out, "panoptic") + f"/ ({n} PNGs)"], _exported_annotations(lake, target.fp)


def grounding_caption(names: list[str]) -> tuple[str, dict[str, list[int]]]:
    """Caption "a. b. c." of the distinct names, and each name's [start, end) span in it."""
    spans, parts, pos = {}, [], 0
    for name in sorted(set(names)):
        spans[name] = [pos, pos + len(name)]
        parts.append(name)
        pos += len(name) + 2
    return ". ".join(parts) + ("." if parts else ""), spans


def export_odvg(lake: Lake, target: Target, split: str, out: str) -> tuple[list[str], int]:
    """ODVG of a job: for a refexp job, its expressions as grounding records; otherwise detection
    instances and a grounding caption of the image's category names."""
    if target.run.stage == "refexp":
        return export_odvg_refexp(lake, target, out)
    path = os.path.join(out, "odvg.jsonl")
    reader = lake.con.sql("SELECT e.file_name, o.width, o.height, o.instances FROM odvg o JOIN _export_images e "
                          "USING (image_id) WHERE o.fingerprint = $fp ORDER BY o.image_id",
                          params={"fp": target.fp}).to_arrow_reader()
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
    return [path, _write_label_map(lake, out)], n


def _write_label_map(lake: Lake, out: str) -> str:
    label_map = os.path.join(out, "label_map.json")
    names = {str(c["id"]): c["name"] for c in _category_list(lake, False)}
    storage.write_bytes(storage.LOCAL, label_map, json.dumps(names, ensure_ascii=False).encode())
    return label_map


def _need_refexp(target: Target, fmt: str) -> None:
    if target.run.stage != "refexp":
        raise SoclakeError(f"{fmt} come from a refexp job, and {target.job!r} is a {target.run.stage} job; run a "
                           f"refexp job on it (a spec with [job] input = {target.job!r} and a [refexp] section) "
                           "and export that")


def export_captions(lake: Lake, target: Target, split: str, out: str) -> tuple[list[str], int]:
    """captions.jsonl: per image its dense caption, per-instance captions keyed by ann_id, and QA."""
    _need_refexp(target, "captions")
    path, n = os.path.join(out, "captions.jsonl"), 0
    with storage.atomic_open(storage.LOCAL, path) as f:
        for key, sample in samples_of(lake, ("json", "refexp.json")):
            info, doc = json.loads(sample["json"]), json.loads(sample["refexp.json"])
            record = {"image_id": info["image_id"], "file_name": sample["_file_name"], "caption": doc.get("caption"),
                      "instances": {str(c["ann_id"]): c["caption"] for c in doc.get("segment_captions", [])},
                      "qa": doc.get("qa", [])}
            if "variation_qa" in doc:
                record["variation_qa"] = doc["variation_qa"]
            f.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode())
            n += 1
    return [path], n


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


def export_odvg_refexp(lake: Lake, target: Target, out: str) -> tuple[list[str], int]:
    """ODVG grounding records from a refexp job's shards: expressions chunked into captions,
    one region per target box with the expression's exact span."""
    path, n = os.path.join(out, "odvg.jsonl"), 0
    with storage.atomic_open(storage.LOCAL, path) as f:
        for _, sample in samples_of(lake, ("json", "refexp.json")):
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
        f.write((json.dumps({"filename": sample["_file_name"], "height": info["height"], "width": info["width"],
                             "grounding": {"caption": caption, "regions": regions}}, ensure_ascii=False) + "\n").encode())
        n += len(spans)
    return n


def _export_shards(lake: Lake) -> tuple[dict[str, str], list[str]]:
    """key -> file_name of the images exported, and the shards (of the run) that hold them."""
    rows = lake.con.execute("SELECT key, file_name, shard_uri FROM _export_images ORDER BY shard_uri, key").fetchall()
    return {r[0]: r[1] for r in rows}, list(dict.fromkeys(r[2] for r in rows))


def samples_of(lake: Lake, wanted: tuple[str, ...] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream the exported images' samples out of the run's shards: (key, members) with only the
    `wanted` extensions (None: all), in shard order; members["_file_name"] is the composite's name.
    A sample lacking a wanted member is skipped."""
    names, shards = _export_shards(lake)
    for shard in shards:
        with lake.fs.open(lake.path(shard), "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            sample: dict = {}
            for m in tar:
                if member_problem(m):
                    _skipped(shard, m)
                    continue
                key, _, ext = m.name.partition(".")
                if sample.get("_key") != key:
                    yield from _complete(sample, wanted)
                    sample = {"_key": key}
                if key in names and (wanted is None or ext in wanted):
                    sample[ext] = tar.extractfile(m).read()
                    sample["_file_name"] = names[key]
            yield from _complete(sample, wanted)


def _complete(sample: dict, wanted: tuple[str, ...] | None) -> Iterator[tuple[str, dict[str, bytes]]]:
    if "_file_name" in sample and (wanted is None or all(w in sample for w in wanted)):
        yield sample["_key"], {k: v for k, v in sample.items() if k != "_key"}


def extract_members(lake: Lake, targets: dict[str, str], rename=lambda key, ext: f"{key}.{ext}") -> int:
    """Stream the exported images out of the run's shards and write members whose extension is in
    `targets` (ext -> folder; "*" = the composite, named as the export names it). Returns files
    written."""
    names, shards = _export_shards(lake)
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
                if key not in names:
                    continue
                folder = targets.get(ext) or (targets.get("*") if is_composite(ext) else None)
                if folder is None:
                    continue
                name = rename(key, ext) if ext in targets else names[key]
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


def resolve_target(lake: Lake, job: str, fingerprint: str | None = None) -> Target:
    """The run of `job` an export means (the given fingerprint or the newest with committed shards,
    of any stage) and its compose run."""
    run = catalog.current(lake, job, fingerprint)
    return Target(job, run, catalog.compose_run(lake, run))


def missing_shards(lake: Lake, target: Target) -> list[int]:
    """Planned shards of the compose run not committed, and for a stage run also the input shards
    it has not committed yet."""
    missing = set(catalog.missing_shards(lake, target.source))
    if target.run.stage != "compose":
        missing |= (catalog.committed_shards(lake, target.fp, "compose")
                    - catalog.committed_shards(lake, target.run.fingerprint, target.run.stage))
    return sorted(missing)


def export(lake: Lake, job: str, fmt: str, out: str, split: str = "all", images: bool = False,
           fingerprint: str | None = None, val_fraction: float = 0.05, test_fraction: float = 0.05,
           stratify: bool = False, seed: int = 0) -> ExportSummary:
    """Export a job of any stage as `fmt` into the folder `out`; `seed` draws the SOC grounding
    chunk lengths (--format soc of a refexp job)."""
    if fmt not in EXPORTERS:
        raise SoclakeError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    target = resolve_target(lake, job, fingerprint)
    if fmt == "captions":
        _need_refexp(target, "captions")
    missing = missing_shards(lake, target)
    if missing:
        print(f"warning: job {job} [{target.run.fingerprint}]: shards {missing} are not committed; exporting the "
              "committed ones", file=sys.stderr)
    n_images = _select_images(lake, target, split, val_fraction, test_fraction, stratify)
    storage.make_folder(out)
    storage.remove_abandoned(out)  # what a killed export left
    if fmt == "soc":
        files, n_ann = EXPORTERS[fmt](lake, target, split, out, seed)
    else:
        files, n_ann = EXPORTERS[fmt](lake, target, split, out)
    if images and fmt != "soc":  # the SOC layout holds its images itself
        extract_members(lake, {"*": os.path.join(out, "images")})
        files.append(os.path.join(out, "images") + "/")
    return ExportSummary(job, target.run.fingerprint, fmt, split, n_images, n_ann, files, missing)


def export_soc(lake: Lake, target: Target, split: str, out: str, seed: int) -> tuple[list[str], int]:
    """SOC's folder layout (soc_export.py); a refexp job adds SOC's grounding JSONL and soclake's ODVG."""
    refexp = target.run.stage == "refexp"
    files, n = soc_export.write_soc(out, samples_of(lake), _category_list(lake, False), _write_inside, seed, refexp)
    if refexp:
        files += export_odvg_refexp(lake, target, out)[0]
    return files, n


EXPORTERS = {"coco": export_coco, "panoptic": export_panoptic, "odvg": export_odvg, "captions": export_captions,
             "soc": export_soc}


def stats(lake: Lake, job: str, fingerprint: str | None = None, val_fraction: float = 0.05,
          test_fraction: float = 0.05, stratify: bool = False):
    """(category_stats rows, split sizes) of a job's committed images (a stage job: its compose job's)."""
    run = resolve_target(lake, job, fingerprint).source
    fp, missing = run.fingerprint, catalog.missing_shards(lake, run)
    cats = lake.query("SELECT category_id, category, instances, images, segments_used, small, medium, large, "
                      "lvis_frequency, mean_visible_fraction FROM category_stats WHERE fingerprint = $fp", {"fp": fp})
    splits = lake.query("SELECT split, count(*) AS images FROM image_splits(val_fraction := $v, test_fraction := $t, "
                        "stratify := $s) WHERE fingerprint = $fp GROUP BY split ORDER BY split",
                        {"fp": fp, "v": val_fraction, "t": test_fraction, "s": stratify})
    return fp, missing, cats, splits
