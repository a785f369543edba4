"""SOC's own dataset layout (SOC_FACTS 1.9, 3.5), written from a job's samples, so SOC's relight and
referring-expression scripts can read a soclake job:

    train/<i>.png (RGBA composite) or train/<i>.jpg (relit scene)   panoptic_train/<i>.png
    annotations/separate_annotations/<i>.json   annotations/panoptic_train.json (merged)
    annotations/categories.json, categories_to_idx.json, idx_to_categories.json
    refexp/job_0.jsonl (a refexp job: SOC's grounding records)

with SOC's fields but true areas, boxes and file names, and isthing. Pure writing: export.py
hands it the samples and a file writer.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from soclake import storage
from soclake.shards.tar import composite_member

Writer = Callable[[str, str, io.BytesIO], None]
SCOPES = (("single", "single_object"), ("multi", "multi_object"))
KINDS = ("attribute", "spatial", "reasoning")
CHUNK_RANGE = (150, 255)  # SOC's caption length threshold, drawn per image (inclusive)
ANNOTATIONS = "annotations"


def category_index(categories: list[dict]) -> list[dict]:
    """SOC's unified category list: every category ({name, supercategory}) sorted by name in
    Python string order; a category's SOC id is its index."""
    return sorted({c["name"]: c for c in categories}.values(), key=lambda c: c["name"])


def train_image(key: str, ext: str, data: bytes) -> tuple[str, bytes]:
    """SOC's name and bytes of a composite: RGBA PNG as <i>.png, JPEG as <i>.jpg, other lossless
    images converted to PNG."""
    if ext == "jpg":
        return "jpg", data
    if ext in ("png", "rgba.png"):
        return "png", data
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "PNG")
    return "png", buf.getvalue()


def segments_info(info: dict, soc_ids: dict[str, int]) -> list[dict]:
    """SOC's segments_info entries (its key order) of a sample, with the true bbox and area."""
    out = []
    for inst in info["instances"]:
        attrs = inst.get("attributes") or {}
        out.append({"id": int(inst["panoptic_id"]), "category_id": soc_ids[inst["category"]], "iscrowd": 0,
                    "bbox": [int(round(v)) for v in inst["bbox"]], "category": inst["category"],
                    "sub_category": attrs.get("subcategory"), "description": attrs.get("description"),
                    "features": attrs.get("features") or [], "short_phrase": attrs.get("short_phrase"),
                    "area": int(inst["area"])})
    return out


def clean(text: str) -> str:
    """SOC's text cleaning: trailing '?', '.' and spaces removed."""
    return text.rstrip("?. ")


def grounding_records(file_name: str, info: dict, doc: dict, rng: np.random.Generator) -> list[dict]:
    """SOC's grounding records of one image: regions in SOC's order (single attribute, spatial,
    reasoning, then multi), XYWH boxes per target, captions chunked at a threshold drawn from
    [150, 255]; spans are [start, end] with the end inclusive. No-target expressions are left out
    (SOC has none)."""
    boxes = {i["ann_id"]: [int(round(v)) for v in i["bbox"]] for i in info["instances"]}
    exprs = [e for e in doc.get("expressions", []) if e.get("targets") and e.get("scope") in ("single", "multi")]
    order = {(scope, kind): n for n, (scope, kind) in enumerate((s, k) for s, _ in SCOPES for k in KINDS)}
    exprs = sorted(exprs, key=lambda e: order.get((e["scope"], e["kind"]), len(order)))  # stable: model order kept
    regions = [{"phrase": clean(e["text"]), "bboxes": [boxes[t] for t in e["targets"] if t in boxes]}
               for e in exprs if clean(e["text"])]
    if not regions:
        return []
    threshold = int(rng.integers(CHUNK_RANGE[0], CHUNK_RANGE[1] + 1))
    chunks: list[list[dict]] = [[]]
    for r in regions:
        caption = ". ".join(x["phrase"] for x in chunks[-1] + [r]) + ". "
        if chunks[-1] and len(caption) > threshold:
            chunks.append([])
        chunks[-1].append(r)
    records = []
    for chunk in chunks:
        start, out = 0, []
        for r in chunk:
            out.append({**r, "tokens_positive": [[start, start + len(r["phrase"]) - 1]]})
            start += len(r["phrase"]) + 2
        records.append({"filename": file_name, "height": info["height"], "width": info["width"],
                        "grounding": {"caption": ". ".join(r["phrase"] for r in chunk) + ". ", "regions": out}})
    return records


class _JsonArray:
    """A JSON array written item by item to a temporary file (spliced into a document later)."""

    def __init__(self, folder: str, name: str):
        self.path = os.path.join(folder, name)
        self.f = open(self.path, "w", encoding="utf-8")
        self.n = 0

    def add(self, item: dict) -> None:
        self.f.write(("," if self.n else "") + json.dumps(item, ensure_ascii=False))
        self.n += 1

    def close(self) -> None:
        self.f.close()


def write_soc(out: str, samples: Iterable[tuple[str, dict[str, bytes]]], categories: list[dict],
              write: Writer, seed: int = 0, grounding: bool = False) -> tuple[list[str], int]:
    """Write SOC's layout under `out` from (key, members) samples (members: composite, pan.png,
    json, and refexp.json when `grounding`) and the lake's categories ({name, supercategory}).
    Returns the files written and the number of segments."""
    cats = category_index(categories)
    names = [c["name"] for c in cats]
    soc_ids = {n: i for i, n in enumerate(names)}
    folders = {k: os.path.join(out, *k.split("/")) for k in ("train", "panoptic_train", f"{ANNOTATIONS}/separate_annotations")}
    for folder in folders.values():
        storage.make_folder(folder)
    n_segments = 0
    with storage.temp_folder(out, "soc-export") as tmp:  # private scratch inside the output folder
        images, anns = _JsonArray(tmp, "images"), _JsonArray(tmp, "annotations")
        refexp = open(os.path.join(tmp, "job_0.jsonl"), "w", encoding="utf-8") if grounding else None
        for key, members in samples:
            info = json.loads(members["json"])
            image_id = int(info["image_id"])
            comp = composite_member(members)
            ext, data = train_image(key, comp, members[comp])
            file_name = f"{image_id}.{ext}"
            write(folders["train"], file_name, io.BytesIO(data))
            write(folders["panoptic_train"], f"{image_id}.png", io.BytesIO(members["pan.png"]))
            entry = {"segments_info": segments_info(info, soc_ids), "file_name": f"{image_id}.png", "image_id": image_id}
            write(folders[f"{ANNOTATIONS}/separate_annotations"], f"{image_id}.json",
                  io.BytesIO(json.dumps(entry, indent=4, ensure_ascii=False).encode()))
            images.add({"file_name": file_name, "height": info["height"], "width": info["width"], "id": image_id})
            anns.add(entry)
            n_segments += len(entry["segments_info"])
            if refexp is not None and "refexp.json" in members:
                rng = np.random.default_rng(np.random.SeedSequence([seed, image_id]))
                for record in grounding_records(file_name, info, json.loads(members["refexp.json"]), rng):
                    refexp.write(json.dumps(record, ensure_ascii=False) + "\n")
        images.close()
        anns.close()
        files = [f + "/" for f in folders.values()] + _write_categories(out, names, write) + [_merge(out, tmp, cats, write)]
        if refexp is not None:
            refexp.close()
            storage.make_folder(os.path.join(out, "refexp"))
            with open(refexp.name, "rb") as f:
                write(os.path.join(out, "refexp"), "job_0.jsonl", f)
            files.append(os.path.join(out, "refexp", "job_0.jsonl"))
    return files, n_segments


def _write_categories(out: str, names: list[str], write: Writer) -> list[str]:
    folder = os.path.join(out, ANNOTATIONS)
    docs = {"categories.json": names, "categories_to_idx.json": {n: i for i, n in enumerate(names)},
            "idx_to_categories.json": {str(i): n for i, n in enumerate(names)}}
    for name, doc in docs.items():
        write(folder, name, io.BytesIO(json.dumps(doc, indent=4, ensure_ascii=False).encode()))
    return [os.path.join(folder, n) for n in docs]


def _merge(out: str, tmp: str, categories: list[dict], write: Writer) -> str:
    """annotations/panoptic_train.json: images, annotations (as the separate files) and every
    category, with isthing and supercategory."""
    path = os.path.join(tmp, "merged.json")
    cats = [{"id": i, "name": c["name"], "isthing": 1, "supercategory": c["supercategory"]}
            for i, c in enumerate(categories)]
    with open(path, "w", encoding="utf-8") as f:
        for part, name in (("images", "images"), ("annotations", "annotations")):
            f.write(("{" if part == "images" else ",") + f'"{part}":[')
            with open(os.path.join(tmp, name), encoding="utf-8") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            f.write("]")
        f.write(',"categories":' + json.dumps(cats, ensure_ascii=False) + "}\n")
    with open(path, "rb") as f:
        write(os.path.join(out, ANNOTATIONS), "panoptic_train.json", f)
    return os.path.join(out, ANNOTATIONS, "panoptic_train.json")


