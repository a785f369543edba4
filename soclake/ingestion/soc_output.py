"""Layout `soc-output`: a dataset SOC produced (SOC_FACTS 1.9, 3.5), imported as a job of shards
like a compose job (streamable, exportable, auditable): the merged panoptic JSON, the panoptic
PNGs, the RGBA composites or relit JPEGs, and optional referring-expression JSONL.

What the pixels allow is fixed and listed (area and bbox measured on the panoptic map, SOC's
.jpg/.png name mismatch, sizes, hidden segments, colours no segment names); bad entries are
skipped and listed, never fatal. The report is jobs/JOB/FP/import.jsonl. Not a segment source:
the ingest command hands it to `ingest_job` instead of the engine.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import ijson
import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from soclake import imaging, paths, storage, vocab
from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.files import read_file
from soclake.lake import Lake, catalog
from soclake.lake.schemas import to_table
from soclake.shards.commit import commit_shard, write_indexes
from soclake.shards.tar import sample_key, tar_bytes
from soclake.spec.identity import code_version
from soclake.vocab import canonical_category

KIND = "job"
STAGE = "compose"  # an imported job is a root job with images and annotations, as a compose job
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_PANOPTIC_ID = 999  # ann_id = image_id * 1000 + panoptic id: larger (colour) ids are renumbered


@dataclass
class ImportSummary:
    job: str
    fingerprint: str = ""
    images: int = 0
    instances: int = 0
    expressions: int = 0
    shards: int = 0
    fixed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    report: str = ""

    def describe(self) -> str:
        def counts(items: list[dict]) -> str:
            c: dict[str, int] = {}
            for i in items:
                c[i["what"]] = c.get(i["what"], 0) + 1
            return ", ".join(f"{k}: {n}" for k, n in sorted(c.items()))
        lines = [f"imported job {self.job} [{self.fingerprint}]: {self.images} images, {self.instances} instances, "
                 f"{self.expressions} expressions in {self.shards} shard(s)"]
        if self.fixed:
            lines.append(f"fixed {len(self.fixed)}: {counts(self.fixed)}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}: {counts(self.skipped)}")
        if self.fixed or self.skipped:
            lines.append(f"every fix and skip: {self.report}")
        return "\n".join(lines)


@dataclass
class Source:
    """The files of a SOC output folder."""
    root: str
    annotations: str
    images: str
    masks: str
    refexp: list[str]


def locate(root: str, annotations: str | None = None, images: str | None = None, masks: str | None = None,
           refexp: list[str] | None = None) -> Source:
    """SOC's defaults under ROOT: annotations/panoptic_train.json, train/, panoptic_train/, and the
    grounding JSONL in refexp/ (SOC's job_<k>.jsonl) if present."""
    if not os.path.isdir(root):
        raise SoclakeError(f"SOC output folder {root!r} does not exist; pass the folder holding train/, "
                           "panoptic_train/ and annotations/")
    src = Source(root, annotations or os.path.join(root, "annotations", "panoptic_train.json"),
                 images or os.path.join(root, "train"), masks or os.path.join(root, "panoptic_train"),
                 refexp if refexp is not None else sorted(glob.glob(os.path.join(root, "refexp", "*.jsonl"))))
    for what, path, flag in (("merged panoptic JSON", src.annotations, "--annotations"),
                             ("images folder", src.images, "--images"), ("panoptic PNG folder", src.masks, "--masks")):
        if not (os.path.isfile(path) if what.endswith("JSON") else os.path.isdir(path)):
            raise SoclakeError(f"{root}: the {what} {path} is missing; give it with {flag}")
    for path in src.refexp:
        if not os.path.isfile(path):
            raise SoclakeError(f"refexp file {path} does not exist")
    return src


# ---------------------------------------------------------------------------- reading the JSON
def _items(path: str, prefix: str) -> Iterator:
    with open(path, "rb") as f:
        yield from ijson.items(f, prefix, use_float=True)


def read_categories(path: str) -> dict[int, str]:
    """SOC category id -> canonical name."""
    try:
        cats = {}
        for c in _items(path, "categories.item"):
            if isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str) \
                    and canonical_category(c["name"]):
                cats[c["id"]] = canonical_category(c["name"])
    except (ijson.JSONError, UnicodeDecodeError) as e:
        raise SoclakeError(f"{path} is not valid JSON ({e}); it must be SOC's merged panoptic JSON") from None
    if not cats:
        raise SoclakeError(f"{path} has no usable 'categories' ([{{\"id\": 0, \"name\": ...}}, ...])")
    return cats


def read_images(path: str) -> dict[int, dict]:
    return {im["id"]: im for im in _items(path, "images.item") if isinstance(im, dict) and isinstance(im.get("id"), int)}


def read_grounding(paths_: list[str], skipped: list[dict]) -> dict[str, list[dict]]:
    """SOC grounding records per file name (chunks of one image are joined)."""
    out: dict[str, list[dict]] = {}
    for path in paths_:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    regions = rec["grounding"]["regions"]
                    assert isinstance(rec["filename"], str) and isinstance(regions, list)
                except (ValueError, KeyError, TypeError, AssertionError):
                    skipped.append({"what": "bad_refexp_line", "item": f"{path}:{n}",
                                    "detail": "not a SOC grounding record {filename, grounding: {caption, regions}}"})
                    continue
                out.setdefault(os.path.splitext(rec["filename"])[0], []).extend(regions)
    return out


# ---------------------------------------------------------------------------- one image
def _find_image(src: Source, entry: dict, image: dict | None, image_id: int, fixed: list[dict]) -> str:
    """The composite's path: the name the JSON gives, else the same stem with another suffix
    (SOC's merged JSON says <i>.jpg for <i>.png composites), recorded as a fix."""
    named = (image or {}).get("file_name") or entry.get("file_name") or f"{image_id}.png"
    if not isinstance(named, str) or os.path.basename(named) != named or named in ("", ".", ".."):
        raise RejectedItem("bad_file_name", f"image {image_id}: file name {str(named)[:100]!r} is not a plain name")
    if os.path.isfile(os.path.join(src.images, named)):
        return os.path.join(src.images, named)
    stem = os.path.splitext(named)[0]
    for suffix in IMAGE_SUFFIXES:
        path = os.path.join(src.images, stem + suffix)
        if os.path.isfile(path):
            fixed.append({"what": "file_name", "item": f"image {image_id}",
                          "detail": f"{named} is not in {src.images}; {stem + suffix} is, and was used"})
            return path
    raise RejectedItem("missing_image", f"image {image_id}: neither {named} nor {stem}.* is in {src.images}")


def _decode(path: str) -> tuple[bytes, str, np.ndarray]:
    data, _ = read_file(path)
    im = imaging.open_image(data)
    if im.format not in FORMATS:
        raise RejectedItem("unsupported_format", f"{path} is {im.format}; SOC writes PNG and JPEG")
    ext = FORMATS[im.format]
    try:
        im.load()
    except Exception as e:  # a truncated file: this image is skipped, never the import
        raise RejectedItem("corrupt", f"{path} does not decode ({type(e).__name__}: {e})") from None
    rgba = imaging.has_alpha(im)
    arr = np.asarray(im.convert("RGBA" if rgba else "RGB"))
    return data, ("rgba.png" if rgba and ext == "png" else ext), arr


def _panoptic(path: str) -> np.ndarray:
    data, _ = read_file(path)
    im = imaging.open_image(data)
    try:
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    except Exception as e:  # a damaged PNG: the image is skipped
        raise RejectedItem("corrupt", f"{path} does not decode ({type(e).__name__}: {e})") from None
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _checked_segments(entry: dict, categories: dict[int, str], image_id: int) -> list[dict]:
    infos = entry.get("segments_info")
    if not isinstance(infos, list):
        raise RejectedItem("bad_annotation", f"image {image_id}: segments_info is not a list")
    seen = set()
    for s in infos:
        if not isinstance(s, dict) or not isinstance(s.get("id"), int) or isinstance(s.get("id"), bool) or s["id"] <= 0:
            raise RejectedItem("bad_annotation", f"image {image_id}: a segment without a positive integer id")
        if s["id"] in seen:
            raise RejectedItem("bad_annotation", f"image {image_id}: segment id {s['id']} appears twice")
        seen.add(s["id"])
        if s.get("category_id") not in categories:
            raise RejectedItem("bad_annotation", f"image {image_id}: segment {s['id']} has category_id "
                               f"{s.get('category_id')!r}, which the categories list does not define")
    return infos


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def import_image(src: Source, entry: dict, image: dict | None, categories: dict[int, str], lake_ids: dict[str, int],
                 regions: list[dict], provenance: dict, fixed: list[dict], skipped: list[dict]) -> dict:
    """The sample of one image: members, KEY.json, its images / annotations / refexps rows."""
    image_id = entry.get("image_id")
    if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id < 0:
        raise RejectedItem("bad_image_id", f"annotation entry with image_id {str(image_id)[:40]!r}: not an integer >= 0")
    infos = _checked_segments(entry, categories, image_id)
    key = sample_key(image_id)
    mask_name = entry.get("file_name") if isinstance(entry.get("file_name"), str) else f"{image_id}.png"
    mask_path = os.path.join(src.masks, os.path.basename(mask_name))
    if not os.path.isfile(mask_path):
        raise RejectedItem("missing_mask", f"image {image_id}: {mask_name} is not in {src.masks}")
    ids = _panoptic(mask_path)
    image_path = _find_image(src, entry, image, image_id, fixed)
    data, ext, pixels = _decode(image_path)
    H, W = ids.shape
    if pixels.shape[:2] != (H, W):
        raise RejectedItem("size_mismatch", f"image {image_id}: {os.path.basename(image_path)} is "
                           f"{pixels.shape[1]}x{pixels.shape[0]}, its panoptic PNG {W}x{H}")
    if image and (image.get("width"), image.get("height")) != (W, H):
        fixed.append({"what": "size", "item": f"image {image_id}",
                      "detail": f"the JSON says {image.get('width')}x{image.get('height')}, the files are {W}x{H}"})
    where = f"image {image_id}"
    renumber = any(s["id"] > MAX_PANOPTIC_ID for s in infos)
    pan = np.zeros((H, W), np.int32)
    instances, by_box = [], {}
    scratch = np.zeros((H, W), np.uint8, order="F")
    known = np.isin(ids, [s["id"] for s in infos])
    stray = int(((ids > 0) & ~known).sum())
    if stray:
        fixed.append({"what": "unknown_colour", "item": where,
                      "detail": f"{stray} pixels carry a colour no segment names: set to void"})
    for layer, s in enumerate(infos):
        m = ids == s["id"]
        area = int(m.sum())
        if area == 0:
            fixed.append({"what": "hidden_segment", "item": f"{where} segment {s['id']}",
                          "detail": "no pixel of it in the panoptic map: left out"})
            continue
        pid = len(instances) + 1 if renumber else s["id"]
        pan[m] = pid
        scratch[:] = m
        rle = mask_utils.encode(scratch)
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        if s.get("area") != area:
            fixed.append({"what": "area", "item": f"{where} segment {s['id']}",
                          "detail": f"area {s.get('area')!r} -> {area} (pixels in the panoptic map)"})
        if [float(v) for v in s.get("bbox") or []] != bbox:
            fixed.append({"what": "bbox", "item": f"{where} segment {s['id']}",
                          "detail": f"bbox {s.get('bbox')!r} -> {[int(v) for v in bbox]} (from the panoptic map)"})
        name = categories[s["category_id"]]
        features = s.get("features")
        attrs = {"subcategory": _text(s.get("sub_category")), "description": _text(s.get("description")),
                 "short_phrase": _text(s.get("short_phrase")),
                 "features": [f for f in features if isinstance(f, str)] if isinstance(features, list) else [],
                 "soc_id": s["id"]}
        ann_id = image_id * 1000 + pid
        instances.append({"panoptic_id": pid, "ann_id": ann_id, "category_id": lake_ids[name], "category": name,
                          "segment_id": "", "bbox": bbox, "area": area, "iscrowd": 0,
                          "segmentation": {"size": [H, W], "counts": rle["counts"].decode("ascii")},
                          "visible_fraction": None, "layer": layer, "blend": "unknown",
                          "replaced_segment_id": None, "attributes": attrs})
        if isinstance(s.get("bbox"), list):
            by_box.setdefault(tuple(float(v) for v in s["bbox"]), []).append(ann_id)
    expressions = _expressions(regions, by_box, where, skipped)
    members = {ext: data, "pan.png": _encode_pan(pan)}
    info = {"key": key, "image_id": image_id, "width": W, "height": H, "file_name": f"{key}.{ext}",
            "background_id": None, "instances": instances, "dropped": 0, "failed_reads": [], **provenance,
            "seed": None, "source": {"layout": "soc-output", "image": os.path.relpath(image_path, src.root),
                                     "mask": os.path.relpath(mask_path, src.root)}}
    members["json"] = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    if regions:
        doc = {"generator": "soc", "expressions": expressions}
        members["refexp.json"] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return {"key": key, "image_id": image_id, "members": members, "info": info, "expressions": expressions}


def _expressions(regions: list[dict], by_box: dict, where: str, skipped: list[dict]) -> list[dict]:
    """SOC's regions as expressions: targets are the segments whose SOC bbox each box names
    (SOC copies boxes from segments_info); the kind is not in SOC's output."""
    out = []
    for r in regions:
        phrase, boxes = r.get("phrase") if isinstance(r, dict) else None, r.get("bboxes") if isinstance(r, dict) else None
        if not isinstance(phrase, str) or not phrase.strip() or not isinstance(boxes, list) or not boxes:
            skipped.append({"what": "bad_region", "item": where, "detail": f"region {str(r)[:120]!r}: no phrase or boxes"})
            continue
        targets = []
        for b in boxes:
            match = by_box.get(tuple(float(v) for v in b)) if isinstance(b, list) else None
            if not match or len(match) != 1:
                targets = None
                break
            targets.append(match[0])
        if targets is None:
            skipped.append({"what": "unmatched_region", "item": where,
                            "detail": f"{phrase[:80]!r}: a box names no single segment of the image"})
            continue
        out.append({"text": phrase.strip(), "scope": "single" if len(set(targets)) == 1 else "multi",
                    "kind": "unknown", "targets": sorted(set(targets))})
    return out


def _encode_pan(pan: np.ndarray) -> bytes:
    bgr = np.dstack([(pan >> 16) & 255, (pan >> 8) & 255, pan & 255]).astype(np.uint8)
    return cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


# ---------------------------------------------------------------------------- the job
def _fingerprint(src: Source, name: str, shard_size: int) -> str:
    """Content only: the JSON documents, and the bytes of every image and panoptic PNG they name."""
    h = hashlib.sha256()
    for path in [src.annotations] + src.refexp:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    for folder in (src.images, src.masks):
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if os.path.isfile(path):
                h.update(entry.encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    with open(__file__, "rb") as f:  # this importer decides the shards too (code_version covers the renderer)
        h.update(f.read())
    h.update(json.dumps({"name": name, "shard_size": shard_size, "code": code_version()}).encode())
    return h.hexdigest()[:16]


def _lake_categories(lake: Lake, names: set[str], source: str) -> dict[str, int]:
    """Lake ids of the categories (new ones are added, append-only, under the writer lock)."""
    with lake.writer_lock(wait=True):
        lake.refresh()
        known = {r[0]: r[1] for r in lake.con.execute("SELECT name, category_id FROM categories").fetchall()}
        nxt = max(known.values(), default=0) + 1
        new = []
        lvis = {canonical_category(n): i for i, n in enumerate(vocab.lvis_names(), start=1)}
        for n in sorted(names - set(known)):
            known[n] = nxt
            new.append({"category_id": nxt, "name": n, "synonyms": [], "first_source": source,
                        "coco_id": vocab.coco_ids().get(n), "lvis_id": lvis.get(n)})
            nxt += 1
        lake.append("categories", to_table("categories", new))
    return known


def ingest_job(lake: Lake, root: str, name: str, annotations: str | None = None, images: str | None = None,
               masks: str | None = None, refexp: list[str] | None = None, shard_size: int = 100,
               progress: bool | None = None) -> ImportSummary:
    """Import a SOC output folder as job `name` (fingerprinted by content; rerunning commits
    only the shards not committed yet)."""
    if shard_size < 1:
        raise SoclakeError(f"--shard-size must be at least 1, got {shard_size}")
    src = locate(root, annotations, images, masks, refexp)
    summary = ImportSummary(name)
    categories = read_categories(src.annotations)
    try:
        images_by_id = read_images(src.annotations)
        entries = list(_items(src.annotations, "annotations.item"))
    except (ijson.JSONError, UnicodeDecodeError) as e:
        raise SoclakeError(f"{src.annotations} is not valid JSON ({e}); it must be SOC's merged panoptic JSON") from None
    entries = sorted((e for e in entries if isinstance(e, dict)),
                     key=lambda e: e["image_id"] if isinstance(e.get("image_id"), int) else -1)
    fp = _fingerprint(src, name, shard_size)
    summary.fingerprint = fp
    grounding = read_grounding(src.refexp, summary.skipped)
    lake_ids = _lake_categories(lake, set(categories.values()), f"soc-output:{name}")
    provenance = {"job": name, "fingerprint": fp, "code_version": code_version()}
    done = catalog.committed_shards(lake, fp, STAGE)
    batches = [entries[i:i + shard_size] for i in range(0, len(entries), shard_size)]
    catalog.write_marker(lake, name, fp, {"job": name, "fingerprint": fp, "stage": STAGE, "batches": len(batches),
                                          "code_version": code_version(),
                                          "source": {"layout": "soc-output", "root": os.path.abspath(root),
                                                     "annotations": src.annotations, "refexp": src.refexp}})
    bar = tqdm(total=len(entries), desc=f"import {name}", unit="image", file=sys.stderr,
               disable=None if progress is None else not progress)
    shard = 0  # shards are numbered over the batches that hold an image, so they stay contiguous
    for batch in batches:
        samples, image_rows, ann_rows, rx_rows = [], [], [], []
        for entry in batch:
            bar.update(1)
            item = f"image {entry.get('image_id')!r}"
            try:
                stem = os.path.splitext(os.path.basename(str(entry.get("file_name") or "")))[0]
                out = import_image(src, entry, images_by_id.get(entry.get("image_id")), categories, lake_ids,
                                   grounding.get(stem, []), provenance, summary.fixed, summary.skipped)
            except RejectedItem as r:
                summary.skipped.append({"what": r.reason, "item": item, "detail": r.detail})
                continue
            except Exception as e:  # any other bad entry: skipped and listed, the import goes on
                summary.skipped.append({"what": "error", "item": item, "detail": f"{type(e).__name__}: {e}"[:300]})
                continue
            samples.append((out["key"], out["members"]))
            image_rows.append(_image_row(out, name, fp, shard))
            ann_rows += [_annotation_row(a, name, fp, out["image_id"]) for a in out["info"]["instances"]]
            rx_rows += [{"job": name, "fingerprint": fp, "image_id": out["image_id"], "key": out["key"], "generator": "soc",
                         **{k: e[k] for k in ("text", "scope", "kind", "targets")}} for e in out["expressions"]]
            summary.images += 1
            summary.instances += len(out["info"]["instances"])
            summary.expressions += len(out["expressions"])
        if samples and shard not in done:
            commit_shard(lake, name, fp, STAGE, shard, tar_bytes(samples),
                         {"images": to_table("images", image_rows), "annotations": to_table("annotations", ann_rows),
                          "refexps": to_table("refexps", rx_rows)},
                         [f"soc-output:{fp}"], code_version(), json.dumps({"layout": "soc-output", "shard_size": shard_size}))
        summary.shards += bool(samples)
        shard += bool(samples)
    bar.close()
    lake.refresh()
    write_indexes(lake, name, fp, STAGE)
    summary.report = lake.path(paths.import_report_uri(name, fp))
    storage.write_bytes(lake.fs, summary.report, "".join(
        json.dumps({"kind": kind, **i}, sort_keys=True) + "\n"
        for kind, items in (("fixed", summary.fixed), ("skipped", summary.skipped)) for i in items).encode())
    if not summary.images:
        raise SoclakeError(f"no image of {root} could be imported ({len(summary.skipped)} skipped; see {summary.report})")
    return summary


def _image_row(out: dict, job: str, fp: str, shard: int) -> dict:
    info = out["info"]
    return {"job": job, "fingerprint": fp, "image_id": out["image_id"], "key": out["key"], "shard": shard,
            "shard_uri": paths.shard_uri(job, fp, shard), "file_name": info["file_name"], "width": info["width"],
            "height": info["height"], "background_id": None, "instances": len(info["instances"]),
            "planned": len(info["instances"]), "dropped": 0, "replaced": 0}


def _annotation_row(a: dict, job: str, fp: str, image_id: int) -> dict:
    attrs = a["attributes"]
    return {"job": job, "fingerprint": fp, "image_id": image_id, "rle_counts": a["segmentation"]["counts"],
            **{k: a[k] for k in ("ann_id", "panoptic_id", "segment_id", "category_id", "bbox", "area", "iscrowd",
                                 "layer", "blend", "replaced_segment_id")},
            "visible_fraction": float("nan"),  # unknown: SOC's output does not say how much of a segment is hidden
            **{k: attrs[k] for k in ("subcategory", "description", "short_phrase", "features")}}
