"""Layout `coco`: a COCO or LVIS v1 instances JSON plus its images; every non-crowd instance
becomes a segment (RGBA crop of the photo, alpha from the mask decoded by pycocotools).

LVIS images carry a coco_url instead of a file_name: the file is the url's basename, looked up as
IMAGES/<train2017|val2017>/NAME and then IMAGES/NAME. LVIS category fields (synonyms, frequency,
synset, id) go to the categories table, per-image neg / not-exhaustive category ids to the
segments. The JSON is streamed with ijson into staged Parquet and grouped per image in DuckDB,
so memory does not grow with the number of annotations. Crowd annotations are skipped.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from typing import Iterator
from urllib.parse import urlparse

import ijson
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pycocotools import mask as mask_utils

from soclake import imaging
from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.engine import Cutout, IngestOptions, Task, check_category, check_relpath
from soclake.ingestion.files import Utf8Marked, has_bad_text, read_file
from soclake.lake import sandbox

KIND = "segments"

ANN_SCHEMA = pa.schema([("ann_id", pa.int64()), ("image_id", pa.int64()), ("category_id", pa.int64()),
                        ("segmentation", pa.string()), ("bbox", pa.list_(pa.float64()))])


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RejectedItem("bad_annotation", f"{what} is not a finite number: {value!r}")
    return float(value)


def _id(value, what: str) -> int:
    """An id that fits the staged int64 columns (a huge id must not crash the whole file)."""
    v = _number(value, what)
    if not v.is_integer() or abs(v) >= 2 ** 63:
        raise RejectedItem("bad_annotation", f"{what} is not a 64-bit integer: {value!r}")
    return int(value)


def _check_annotation(ann: object) -> dict | None:
    """A validated annotation row, None for crowd annotations, RejectedItem for bad ones."""
    if not isinstance(ann, dict):
        raise RejectedItem("bad_annotation", "annotation is not an object")
    for key in ("id", "image_id", "category_id", "segmentation"):
        if key not in ann:
            raise RejectedItem("bad_annotation", f"annotation lacks '{key}'")
    if ann.get("iscrowd", 0):
        return None
    bbox = ann.get("bbox", [0, 0, 1, 1])
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise RejectedItem("bad_annotation", f"bbox must be [x, y, w, h], got {bbox!r}")
    bbox = [_number(v, "bbox value") for v in bbox]
    if bbox[2] < 0 or bbox[3] < 0:
        raise RejectedItem("bad_annotation", f"bbox has a negative size: {bbox}")
    if bbox[2] == 0 or bbox[3] == 0:
        raise RejectedItem("bad_annotation", f"bbox has zero size: {bbox}; drop the annotation or fix its box")
    seg = ann["segmentation"]
    if not (isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg)) and \
            not (isinstance(seg, dict) and "counts" in seg and "size" in seg):
        raise RejectedItem("bad_annotation", "segmentation must be polygons (lists of >= 3 points) or an RLE")
    if isinstance(seg, list):
        for poly in seg:
            for v in poly:
                _number(v, "polygon coordinate")
    return {"ann_id": _id(ann["id"], "id"), "image_id": _id(ann["image_id"], "image_id"),
            "category_id": _id(ann["category_id"], "category_id"),
            "segmentation": json.dumps(seg), "bbox": bbox}


# A complete JSON string, a bare non-finite number, an unclosed string, or a token cut at the end.
_NONFINITE_SCAN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|(-?Infinity|NaN)|"|[-A-Za-z]+\Z', re.DOTALL)


class _NonFiniteAsStrings:
    """A JSON byte stream with the bare NaN, Infinity and -Infinity that Python's json module
    writes (and yajl refuses) turned into strings, so ijson parses the file and `_number`
    rejects the bad values item by item instead of the whole file failing."""

    def __init__(self, f, chunk: int = 1 << 20):
        self.f, self.chunk = f, chunk
        self.carry, self.out, self.eof = b"", b"", False

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.out) < n):
            data = self.f.read(self.chunk)
            self.eof = not data
            self.out += self._convert(self.carry + data)
        n = len(self.out) if n < 0 else n
        got, self.out = self.out[:n], self.out[n:]
        return got

    def _convert(self, buf: bytes) -> bytes:
        parts, pos, self.carry = [], 0, b""
        for m in _NONFINITE_SCAN.finditer(buf):
            if m.group(1):
                parts += [buf[pos:m.start()], b'"', m.group(1), b'"']
                pos = m.end()
            elif not self.eof and (m.group() == b'"' or not m.group().startswith(b'"')):
                # a string not closed in this chunk, or a word cut at its end: finish with the next
                self.carry, buf = buf[m.start():], buf[:m.start()]
                break
        parts.append(buf[pos:])
        return b"".join(parts)


def _image_name(img: dict) -> str:
    """The file of an image entry: its file_name, or (LVIS) the split folder and basename of its
    coco_url, e.g. val2017/000000397133.jpg."""
    if "file_name" in img or "coco_url" not in img:
        return check_relpath(img["file_name"], "file_name")
    url = img["coco_url"]
    if not isinstance(url, str):
        raise TypeError("coco_url")
    parts = [p for p in urlparse(url).path.split("/") if p]
    if not parts:
        raise RejectedItem("unsafe_path", f"coco_url {url[:120]!r} names no file")
    return check_relpath("/".join(parts[-2:]), "coco_url file")


LVIS_IMAGE_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def _image_lists(img: dict) -> dict:
    """LVIS per-image category id lists, checked to be lists of integers."""
    out = {}
    for key in LVIS_IMAGE_LISTS:
        if key in img:
            ids = img[key]
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                    and abs(i) < 2 ** 31 for i in ids):
                raise TypeError(key)
            out[key] = ids
    return out


def _category_info(cat: dict, cat_id: int) -> dict:
    """LVIS fields of a category entry (synonyms, frequency r/c/f, synset; the id is an LVIS id
    only in a file that has them)."""
    info: dict = {}
    syn = cat.get("synonyms")
    if isinstance(syn, list):
        info["synonyms"] = [x for x in syn if isinstance(x, str) and len(x) <= 256][:64]
    if cat.get("frequency") in ("r", "c", "f"):
        info["frequency"] = cat["frequency"]
    if isinstance(cat.get("synset"), str) and len(cat["synset"]) <= 256:
        info["synset"] = cat["synset"]
    if "frequency" in info or "synset" in info:
        info["lvis_id"] = cat_id
    return info


def _stage(path: str, tmp: str, quote_nonfinite: bool = False, extras: dict | None = None
           ) -> tuple[dict, dict, list[tuple[str, str, str]]]:
    """Stream images, categories and annotations; annotations go to Parquet at `tmp`. With
    `extras` ({}), also fills extras["images"] (image id -> LVIS id lists) and
    extras["categories"] (category id -> LVIS fields)."""
    name = os.path.basename(path)
    rejects: list[tuple[str, str, str]] = []
    images, categories = {}, {}

    def reader(f):
        return _NonFiniteAsStrings(Utf8Marked(f)) if quote_nonfinite else Utf8Marked(f)

    writer = None
    try:
        with open(path, "rb") as f:
            for img in ijson.items(reader(f), "images.item", use_float=True):
                try:
                    if has_bad_text(img):
                        raise ValueError("not UTF-8")
                    image_id = int(img["id"])
                    entry = (_image_name(img), int(img.get("width", 0)), int(img.get("height", 0)))
                    lists = _image_lists(img)
                    _define(images, image_id, entry, f"{name}#image={image_id}", "image", rejects)
                    if extras is not None and lists:
                        extras.setdefault("images", {})[image_id] = lists
                except (KeyError, TypeError, ValueError, OverflowError):
                    rejects.append((f"{name}#image", "bad_image_entry", f"image entry {_show(img)} lacks an integer "
                                    "id, a file_name (or LVIS coco_url) or integer sizes, has id lists that are "
                                    "not integers, or is not UTF-8"))
                except RejectedItem as r:
                    rejects.append((f"{name}#image={img.get('id')}", r.reason, r.detail))
        with open(path, "rb") as f:
            for cat in ijson.items(reader(f), "categories.item", use_float=True):
                try:
                    if not isinstance(cat["name"], str) or has_bad_text(cat):
                        raise TypeError("name")
                    cat_id = int(cat["id"])
                    _define(categories, cat_id, cat["name"], f"{name}#category={cat_id}", "category", rejects)
                    if extras is not None and (info := _category_info(cat, cat_id)):
                        extras.setdefault("categories", {})[cat_id] = info
                except (KeyError, TypeError, ValueError, OverflowError):
                    rejects.append((f"{name}#category", "bad_category", f"category {_show(cat)} lacks an integer id "
                                    "or a UTF-8 string name"))
        writer = pq.ParquetWriter(tmp, ANN_SCHEMA)
        seen: set[int] = set()
        rows: list[dict] = []
        with open(path, "rb") as f:
            for ann in ijson.items(reader(f), "annotations.item", use_float=True):
                uri = f"{name}#ann={_show(ann.get('id'), 40) if isinstance(ann, dict) else '?'}"
                try:
                    if has_bad_text(ann):
                        raise RejectedItem("bad_annotation", "the annotation holds bytes that are not UTF-8")
                    row = _check_annotation(ann)
                except RejectedItem as r:
                    rejects.append((uri, r.reason, r.detail))
                    continue
                if row is None:
                    continue
                if row["ann_id"] in seen:
                    rejects.append((uri, "duplicate_id", "annotation id appears twice; ids must be unique"))
                    continue
                if images.get(row["image_id"]) is None or categories.get(row["category_id"]) is None:
                    rejects.append((uri, "dangling_reference", f"image_id {row['image_id']} or category_id "
                                    f"{row['category_id']} is not defined in the file, or defined more than once"))
                    continue
                seen.add(row["ann_id"])
                rows.append(row)
                if len(rows) >= 50_000:
                    writer.write_table(pa.Table.from_pylist(rows, ANN_SCHEMA))
                    rows = []
        writer.write_table(pa.Table.from_pylist(rows, ANN_SCHEMA))
        writer.close()
    except (ijson.JSONError, UnicodeDecodeError, OSError) as e:
        raise SoclakeError(f"COCO file {path} is not valid JSON ({type(e).__name__}: {str(e)[:200]}); "
                           "fix the file and ingest again") from None
    finally:
        # close now, not whenever the garbage collector frees a failed attempt: its footer would
        # land in the middle of the file the retry (quote_nonfinite) writes at the same path
        if writer is not None and getattr(writer, "is_open", False):
            writer.close()
    return images, categories, rejects


def _define(table: dict, key: int, value, uri: str, what: str, rejects: list) -> None:
    """Record an image or category; an id defined twice is ambiguous: every entry with it is
    rejected, and it stays in `table` as None so that its annotations are rejected too."""
    detail = f"{what} id {key} is defined more than once; ids must be unique"
    if key in table:
        if table[key] is not None:
            rejects.append((uri, "duplicate_id", detail))
        rejects.append((uri, "duplicate_id", detail))
        table[key] = None
        return
    table[key] = value


def _show(value: object, limit: int = 120) -> str:
    return str(value)[:limit]


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    if not os.path.isfile(source):
        raise SoclakeError(f"coco source {source!r} must be an instances JSON file")
    images_dir = options.layout.get("images") or os.path.join(os.path.dirname(os.path.abspath(source)), "images")
    if not os.path.isdir(images_dir):
        raise SoclakeError(f"images folder {images_dir!r} does not exist; pass --images DIR")
    fd, tmp = tempfile.mkstemp(prefix="soclake-coco-", suffix=".parquet")
    os.close(fd)
    extras: dict = {}
    try:
        try:
            images, categories, rejects = _stage(source, tmp, extras=extras)
        except SoclakeError as plain:
            try:  # files written by Python's json may hold bare NaN / Infinity: reject those items only
                extras.clear()
                images, categories, rejects = _stage(source, tmp, quote_nonfinite=True, extras=extras)
            except SoclakeError:
                raise plain from None
        cat_info, image_lists = extras.get("categories", {}), extras.get("images", {})
        for uri, reason, detail in rejects:
            yield Task(uri=uri, reject=(reason, detail))
        con = sandbox.connect()
        grouped = con.execute("SELECT image_id, list(struct_pack(ann_id, category_id, segmentation, bbox) "
                              "ORDER BY ann_id) FROM read_parquet(?) GROUP BY image_id ORDER BY image_id", [tmp])
        while batch := grouped.fetchmany(256):
            for image_id, anns in batch:
                file_name, width, height = images[image_id]
                for a in anns:
                    cid = a.pop("category_id")
                    a["category"], a["category_info"] = categories[cid], cat_info.get(cid)
                yield Task(uri=file_name, path=_image_path(images_dir, file_name),
                           fields=image_lists.get(image_id, {}),
                           extra={"width": width, "height": height, "anns": anns, "images_dir": images_dir,
                                  "follow_links": bool(options.layout.get("follow_links"))})
        con.close()
    finally:
        os.unlink(tmp)


def _is_count(v: object) -> bool:
    return (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
            and 0 <= v < 2 ** 32 and float(v).is_integer())


def _rle_string_runs(s: str) -> list[int] | None:
    """Run lengths of a compressed COCO RLE string (as pycocotools' rleFrString reads it), or
    None when the string is malformed (pycocotools would read past its end or wrap around)."""
    runs: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                return None
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << 5 * k
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        if len(runs) > 2:
            x += runs[-2]
        if not 0 <= x < 2 ** 32:
            return None
        runs.append(x)
    return runs


def _checked_rle(segmentation: dict, height: int, width: int) -> dict:
    """The RLE as pycocotools wants it, after checking that its runs cover exactly its size:
    pycocotools leaves the rest of the mask uninitialised (garbage pixels) when they fall short."""
    size, counts = segmentation["size"], segmentation["counts"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_count(v) for v in size)):
        raise RejectedItem("bad_annotation", f"RLE size must be [height, width], got {str(size)[:60]}")
    h, w = int(size[0]), int(size[1])
    if (h, w) != (height, width):
        raise RejectedItem("size_mismatch", f"RLE size {[h, w]} differs from the image ({height}x{width})")
    if isinstance(counts, list):
        runs = [int(c) for c in counts] if all(_is_count(c) for c in counts) else None
    elif isinstance(counts, str):
        runs = _rle_string_runs(counts)
    else:
        runs = None
    if runs is None or sum(runs) != h * w:
        raise RejectedItem("bad_annotation", f"RLE counts are malformed or do not add up to its {h}x{w} "
                           "pixels; re-encode the mask with pycocotools")
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)
    return {"size": [h, w], "counts": counts.encode()}


def _check_polygons(polygons: list, height: int, width: int) -> None:
    """Polygon coordinates must lie within one image size of the image: pycocotools rasterises
    every edge point by point (memory grows with the coordinates) and overflows on huge ones."""
    margin = max(height, width)
    for poly in polygons:
        xs, ys = np.asarray(poly[0::2], np.float64), np.asarray(poly[1::2], np.float64)
        if len(poly) % 2 or xs.min() < -margin or ys.min() < -margin or xs.max() > width + margin \
                or ys.max() > height + margin:
            raise RejectedItem("bad_annotation", f"polygon has an odd number of coordinates or points far outside "
                               f"the {width}x{height} image; fix its coordinates")


def _check_bbox(bbox: list[float], height: int, width: int) -> None:
    x, y, w, h = bbox
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise RejectedItem("bad_annotation", f"bbox {bbox} lies outside the {width}x{height} image; fix it")


def instance_mask(segmentation: object, height: int, width: int) -> np.ndarray:
    """Binary HxW uint8 mask of a COCO polygon list or RLE (compressed or not)."""
    if isinstance(segmentation, list):
        _check_polygons(segmentation, height, width)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        rle = _checked_rle(segmentation, height, width)
    return mask_utils.decode(rle)


def _image_path(images_dir: str, file_name: str) -> str:
    """IMAGES/FILE, or for an LVIS split/NAME that is not there, IMAGES/NAME (IMAGES is the split folder)."""
    path = os.path.join(images_dir, file_name)
    if "/" in file_name and not os.path.lexists(path):
        flat = os.path.join(images_dir, file_name.rsplit("/", 1)[1])
        if os.path.lexists(flat):
            return flat
    return path


def _check_inside(path: str, images_dir: str, uri: str) -> None:
    """An image (or a link on its path) that resolves outside the images folder is never opened."""
    root = os.path.realpath(images_dir)
    if not os.path.realpath(path).startswith(root.rstrip(os.sep) + os.sep):
        raise RejectedItem("unsafe_path", f"{uri} resolves outside the images folder (a symbolic link); it was "
                           "not opened (pass --follow-links to read such links)")


def load(task: Task, options: IngestOptions) -> Iterator[Cutout | RejectedItem]:
    if not task.extra["follow_links"]:
        _check_inside(task.path, task.extra["images_dir"], task.uri)
    data, sha = read_file(task.path)
    rgb = imaging.decode_rgb(data, options.max_pixels)
    orientation = imaging.source_orientation(data)
    h, w = rgb.shape[:2]
    if (task.extra["width"], task.extra["height"]) not in ((w, h), (0, 0)):
        raise RejectedItem("size_mismatch", f"{task.uri} is {w}x{h} but the JSON says "
                           f"{task.extra['width']}x{task.extra['height']}")
    for ann in task.extra["anns"]:
        uri = f"{task.uri}#ann={ann['ann_id']}"
        try:
            category = check_category(ann["category"], uri)
            _check_bbox(ann["bbox"], h, w)
            mask = instance_mask(json.loads(ann["segmentation"]), h, w)
            box = imaging.alpha_box(mask)
            if box is None:
                raise RejectedItem("empty_mask", "the instance mask has no pixels")
        except RejectedItem as r:
            r.uri = uri
            yield r
            continue
        except Exception as e:  # odd input pycocotools refuses: reject this instance, not the image
            r = RejectedItem("bad_annotation", f"cannot decode the segmentation ({type(e).__name__}: {e})")
            r.uri = uri
            yield r
            continue
        x0, y0, x1, y1 = box
        rgba = np.dstack([rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1] * np.uint8(255)])
        yield Cutout(uri, rgba, (x0, y0), (w, h), sha, category,
                     {"is_instance": True, "exif_orientation": orientation, "category_info": ann["category_info"],
                      **task.fields})
