"""A real COCO-format dataset (instances JSON + images folder) as WebDataset shards in the
compose jobs' sample layout (KEY.jpg/png/webp with the original bytes, KEY.json with instances:
bbox, area, category, RLE), plus an index.json, so Stream and Mix read it beside synthetic jobs.

The JSON is parsed by the coco ingest layout's streaming reader. Bad entries are reported
(OUT/skipped.jsonl) and skipped, never fatal; nothing is written outside OUT.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Iterator

import ijson
import pyarrow as pa
from pycocotools import mask as mask_utils
from tqdm import tqdm

from soclake import storage
from soclake.errors import RejectedItem, SoclakeError
from soclake.formats import check_format
from soclake.imaging import open_image
from soclake.ingestion import coco as coco_reader
from soclake.ingestion.files import read_file
from soclake.lake import sandbox
from soclake.shards import index as shard_index
from soclake.shards.tar import sample_key, tar_bytes

FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass
class Summary:
    out: str
    name: str = ""
    categories: dict = field(default_factory=dict)
    images: int = 0
    instances: int = 0
    shards: int = 0
    skipped: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        lines = [f"{self.images} images, {self.instances} instances in {self.shards} shard(s); "
                 f"index: {self.out}/index.json"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} entr{'y' if len(self.skipped) == 1 else 'ies'} ("
                         + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
                         + f"); details: {self.out}/skipped.jsonl")
        return "\n".join(lines)


def _skip(summary: Summary, item: str, reason: str, detail: str) -> None:
    summary.skipped.append({"item": item, "reason": reason, "detail": detail})


def _stage(annotations: str, tmp: str) -> tuple[dict, dict, list]:
    try:
        return coco_reader._stage(annotations, tmp)
    except SoclakeError as plain:
        try:  # files written by Python's json may hold bare NaN / Infinity: skip those items only
            return coco_reader._stage(annotations, tmp, quote_nonfinite=True)
        except SoclakeError:
            raise plain from None


def _bad_images(annotations: str, images: dict, categories: dict) -> dict[int, str]:
    """Image ids with an annotation the reader refused (bad, duplicate id, unknown category):
    such an image would train with an object unlabelled, so it is skipped whole."""
    bad: dict[int, str] = {}
    seen: set = set()
    with open(annotations, "rb") as f:
        for ann in ijson.items(coco_reader._NonFiniteAsStrings(f), "annotations.item", use_float=True):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if not isinstance(image_id, int) or image_id not in images:
                continue
            try:
                row = coco_reader._check_annotation(ann)
            except RejectedItem as r:
                bad.setdefault(image_id, f"annotation {ann.get('id')!r}: {r.detail}")
                continue
            if row is None:
                continue
            if row["ann_id"] in seen:
                bad.setdefault(image_id, f"annotation id {row['ann_id']} appears twice")
            elif row["category_id"] not in categories:
                bad.setdefault(image_id, f"annotation {row['ann_id']}: category_id {row['category_id']} is not defined")
            seen.add(row["ann_id"])
    return bad


def _grouped(tmp: str, image_ids: list[int]) -> Iterator[tuple[int, list[dict]]]:
    """(image_id, annotations) for every image id in order, images without any included."""
    con = sandbox.connect()
    con.register("ids", pa.table({"image_id": pa.array(image_ids, pa.int64())}))
    cur = con.execute("SELECT i.image_id, list(struct_pack(a.ann_id, a.category_id, a.segmentation, a.bbox) "
                      "ORDER BY a.ann_id) FILTER (WHERE a.ann_id IS NOT NULL) FROM ids i LEFT JOIN read_parquet(?) a "
                      "ON a.image_id = i.image_id GROUP BY i.image_id ORDER BY i.image_id", [tmp])
    while batch := cur.fetchmany(256):
        for image_id, anns in batch:
            yield image_id, anns or []
    con.close()


def _image(images_dir: str, file_name: str, width: int, height: int) -> tuple[bytes, str, int, int]:
    """Original bytes, extension and size of an image after checking it stays inside the
    images folder, is JPEG, PNG or WebP by its header, decodes completely and has the size the
    JSON gives."""
    root = os.path.realpath(images_dir)
    path = os.path.realpath(os.path.join(root, file_name))
    if os.path.commonpath([root, path]) != root:
        raise RejectedItem("unsafe_path", f"{file_name} resolves outside the images folder (a symlink)")
    if not os.path.lexists(path):
        raise RejectedItem("missing_image", f"{file_name} is not in {images_dir}")
    data, _ = read_file(path)  # regular files only: a FIFO or device is a reject, never a hang
    fmt = check_format(data)  # from the header, before any decoder runs (an EPS named .jpg stops here)
    if fmt not in FORMATS:
        raise RejectedItem("unsupported_format", f"{file_name} is {fmt}; convert it to JPEG, PNG or WebP")
    try:
        im = open_image(data)  # only the header's own decoder, and the pixel limit
        size = im.size
        im.load()
    except RejectedItem as r:
        raise RejectedItem(r.reason, f"{file_name}: {r.detail}") from None
    except Exception as e:  # any decoder error: the image is skipped, never the conversion
        raise RejectedItem("unreadable", f"{file_name} does not decode ({type(e).__name__}: {e})") from None
    if (width, height) not in (size, (0, 0)):
        raise RejectedItem("size_mismatch", f"{file_name} is {size[0]}x{size[1]} but the JSON says {width}x{height}")
    return data, FORMATS[fmt], size[0], size[1]


def _instances(anns: list[dict], categories: dict, w: int, h: int, summary: Summary, where: str) -> list[dict]:
    """Instances in the compose layout: polygons and uncompressed RLEs become compressed RLEs,
    bbox and area are measured on that mask (the compose rule; the file's bbox is kept as
    source_bbox). An instance whose mask has no pixel is left out and reported."""
    out = []
    for a in anns:
        seg = json.loads(a["segmentation"])
        try:
            rle = (mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list)
                   else coco_reader._checked_rle(seg, h, w))
            area = int(mask_utils.area(rle))
        except RejectedItem:
            raise
        except Exception as e:  # odd input pycocotools refuses
            raise RejectedItem("bad_annotation", f"annotation {a['ann_id']}: cannot rasterise its segmentation "
                               f"({type(e).__name__}: {e})") from None
        if area == 0:
            _skip(summary, f"{where} ann={a['ann_id']}", "empty_mask", "the segmentation covers no pixel; "
                  "the instance is left out")
            continue
        counts = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
        out.append({"ann_id": a["ann_id"], "category_id": a["category_id"], "category": categories[a["category_id"]],
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": area, "iscrowd": 0,
                    "source_bbox": list(a["bbox"]), "segmentation": {"size": [h, w], "counts": counts}})
    return out


def _samples(annotations: str, images_dir: str, summary: Summary, progress: bool | None
             ) -> Iterator[tuple[str, dict[str, bytes], int]]:
    """(key, members, instances) of every convertible image, in image id order."""
    fd, tmp = tempfile.mkstemp(prefix="soclake-coco-", suffix=".parquet")
    os.close(fd)
    try:
        images, categories, rejects = _stage(annotations, tmp)
        summary.categories = categories
        for uri, reason, detail in rejects:
            _skip(summary, uri, reason, detail)
        bad = _bad_images(annotations, images, categories) if rejects else {}
        ids = sorted(i for i in images if i >= 0)
        for i in sorted(i for i in images if i < 0):
            _skip(summary, f"image={i}", "bad_image_entry", "image ids must be non-negative integers")
        bar = tqdm(total=len(ids), desc="shards-from-coco", unit="image", file=sys.stderr,
                   disable=None if progress is None else not progress)
        for image_id, anns in _grouped(tmp, ids):
            bar.update(1)
            file_name, width, height = images[image_id]
            try:
                if image_id in bad:
                    raise RejectedItem("bad_annotation", bad[image_id])
                data, ext, w, h = _image(images_dir, file_name, width, height)
                instances = _instances(anns, categories, w, h, summary, f"{file_name} (image={image_id})")
            except RejectedItem as r:
                _skip(summary, f"{file_name} (image={image_id})", r.reason, r.detail)
                continue
            key = sample_key(image_id)
            info = {"key": key, "image_id": image_id, "width": w, "height": h, "file_name": f"{key}.{ext}",
                    "source_file": file_name, "dataset": summary.name, "instances": instances}
            yield key, {ext: data, "json": json.dumps(info, sort_keys=True, separators=(",", ":")).encode()}, \
                len(instances)
        bar.close()
    finally:
        os.unlink(tmp)


def shards_from_coco(annotations: str, images_dir: str, out: str, shard_size: int = 1000, name: str | None = None,
                     progress: bool | None = None) -> Summary:
    """Convert a COCO instances dataset to OUT/shards/shard-NNNNNN.tar + OUT/index.json (written
    last: the commit) + OUT/skipped.jsonl. Deterministic: the same inputs give the same bytes."""
    if not os.path.isfile(annotations):
        raise SoclakeError(f"annotations file {annotations!r} does not exist; pass a COCO instances JSON")
    if not os.path.isdir(images_dir):
        raise SoclakeError(f"images folder {images_dir!r} does not exist; pass the folder the file_names are in")
    if shard_size < 1:
        raise SoclakeError(f"--shard-size must be at least 1, got {shard_size}")
    fs, root = storage.resolve(out)
    if storage.is_local(fs):  # shards are written only into a real folder, never through a link
        storage.make_folder(storage.join(root, "shards"))
    summary = Summary(out, name or os.path.basename(root) or "coco")
    shards, batch, batch_instances = [], [], 0

    def flush():
        nonlocal batch, batch_instances
        data = tar_bytes((k, m) for k, m in batch)
        url = f"shards/shard-{len(shards):06d}.tar"
        storage.write_bytes(fs, storage.join(root, url), data)
        shards.append({"shard_uri": url, "samples": len(batch), "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
        summary.instances += batch_instances
        batch, batch_instances = [], 0

    for key, members, n in _samples(annotations, images_dir, summary, progress):
        batch.append((key, members))
        batch_instances += n
        summary.images += 1
        if len(batch) == shard_size:
            flush()
    if batch:
        flush()
    summary.shards = len(shards)
    _remove_stale_shards(fs, root, len(shards))
    skipped = "".join(json.dumps(s, sort_keys=True) + "\n" for s in summary.skipped).encode()
    storage.write_bytes(fs, storage.join(root, "skipped.jsonl"), skipped)
    if not shards:
        raise SoclakeError(f"no image of {annotations} could be converted ({len(summary.skipped)} skipped; see "
                           f"{out}/skipped.jsonl); check IMAGES_DIR and the file_name entries")
    index = shard_index.build(summary.name, _fingerprint(annotations, shard_size, summary.name), "convert",
                              shards, "index.json")
    index.update(source={"layout": "coco", "annotations": os.path.basename(annotations)},
                 categories=[{"id": i, "name": n} for i, n in sorted(summary.categories.items())])
    storage.write_bytes(fs, storage.join(root, "index.json"), shard_index.encode(index))
    return summary


def _fingerprint(annotations: str, shard_size: int, name: str) -> str:
    h = hashlib.sha256()
    with open(annotations, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps({"shard_size": shard_size, "name": name}).encode())
    return h.hexdigest()[:16]


def _remove_stale_shards(fs, root: str, keep: int) -> None:
    """Shards of an earlier, larger conversion into the same folder (never listed by the new index)."""
    folder = storage.join(root, "shards")
    if not fs.exists(folder):
        return
    for path in fs.ls(folder, detail=False):
        name = os.path.basename(path)
        if name.startswith("shard-") and name.endswith(".tar") and name[6:-4].isdigit() and int(name[6:-4]) >= keep:
            fs.rm(path)
