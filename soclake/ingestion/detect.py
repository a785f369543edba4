"""Which ingest layout a source looks like, from a quick look at its files (never a full walk):
used for the hint printed when an ingest accepted nothing.
"""
from __future__ import annotations

import io
import os
import re
from collections import Counter

from PIL import Image

from soclake.formats import ALLOWED, IMAGE_EXTENSIONS, sniff

ARCHIVE = re.compile(r"\.7z(\.0*1)?$", re.IGNORECASE)
LOOK_AT = 2000  # files looked at, at most


def _image_depths(root: str) -> tuple[Counter, str | None]:
    """How deep image files sit below root (1 = root/x.png), over the first LOOK_AT files,
    and one of them."""
    depths: Counter = Counter()
    example = None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        depth = 0 if dirpath == root else os.path.relpath(dirpath, root).count(os.sep) + 1
        for name in filenames:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                depths[depth + 1] += 1
                example = example or os.path.join(dirpath, name)
        if sum(depths.values()) >= LOOK_AT:
            break
    return depths, example


def _has_alpha(path: str) -> bool:
    """Whether an image file declares transparency, from its header (only the format the header
    names is parsed: an EPS named .png never reaches Pillow's EPS plugin)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
        fmt = sniff(head)
        if fmt not in ALLOWED or fmt == "JXL":
            return False
        with Image.open(io.BytesIO(head), formats=[fmt]) as im:  # header only
            return im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except Exception:  # unreadable or damaged: no guess
        return False


def _is_coco_json(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return b'"annotations"' in head or b'"images"' in head


def guess_layout(source: str) -> tuple[str, str, str] | None:
    """(layout, what it looks like, the source argument to give) or None when unsure."""
    if os.path.isfile(source):
        name = source.lower()
        if name.endswith(".parquet"):
            return "parquet", "a Parquet file", source
        if ARCHIVE.search(name):
            return "soc", "a SOC 7z release", source
        if name.endswith(".json") and _is_coco_json(source):
            return "coco", "a COCO/LVIS instances JSON", source
        return None
    if not os.path.isdir(source):
        return None
    if os.path.isdir(os.path.join(source, "images")) and os.path.isdir(os.path.join(source, "masks")):
        return "sod", "images/ and masks/ folders", source
    top = sorted(os.listdir(source))
    archives = [n for n in top if ARCHIVE.search(n)]
    if archives:
        return "soc", "a SOC 7z release", os.path.join(source, archives[0])
    if any(n.endswith(".parquet") for n in top) or os.path.isdir(os.path.join(source, "data")) and any(
            n.endswith(".parquet") for n in os.listdir(os.path.join(source, "data"))):
        return "parquet", "Parquet files", source
    jsons = [n for n in top if n.endswith(".json") and _is_coco_json(os.path.join(source, n))]
    if jsons and os.path.isdir(os.path.join(source, "images")):
        return "coco", "a COCO instances JSON with images/", os.path.join(source, jsons[0])
    depths, example = _image_depths(source)
    if not depths:
        return None
    depth = depths.most_common(1)[0][0]
    if depth == 3:
        return "soc", "category/subcategory/ID.png files", source
    if depth == 2:
        if example and not _has_alpha(example):
            return "backgrounds", "a folder of images without transparency", source
        return "folders", "category/file.png cut-outs", source
    if depth == 1 and example and not _has_alpha(example):
        return "backgrounds", "a folder of images without transparency", source
    return None


def nothing_accepted(layout: str, source: str, rejected: int, reasons: Counter) -> str:
    """The warning for an ingest that accepted nothing, naming the layout the source looks like."""
    why = ", ".join(f"{k}: {v}" for k, v in reasons.most_common(3)) or "nothing found"
    text = f"nothing was accepted from {source!r} as layout {layout!r} ({rejected} rejected: {why})"
    guess = guess_layout(source)
    if guess and guess[0] != layout:
        return f"{text}; it looks like {guess[1]}: try `soclake ingest {guess[0]} {guess[2]}`"
    return (f"{text}; see the rejects table for each file's reason, and `soclake ingest --help` for the "
            "layouts")
