"""Layout `sod`: salient-object pairs SOURCE/images/NAME.{png,jpg,jxl,...} + SOURCE/masks/NAME.
{png,jxl,...} with soft 0-255 alpha (as rendered by Blender pipelines, which write lossless
JPEG XL). The category comes from --category or from the source folder's name. Each file's
EXIF orientation is applied before the pair is matched.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from soclake import imaging
from soclake.errors import RejectedItem, SoclakeError
from soclake.ingestion.engine import Cutout, IngestOptions, Task, check_category
from soclake.ingestion.files import read_file, walk

KIND = "segments"


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    images, masks = os.path.join(source, "images"), os.path.join(source, "masks")
    if not (os.path.isdir(images) and os.path.isdir(masks)):
        raise SoclakeError(f"sod source {source!r} must hold images/ and masks/ folders")
    category = options.layout.get("category") or os.path.basename(os.path.normpath(source))
    follow = bool(options.layout.get("follow_links"))
    mask_by_stem: dict[str, str] = {}
    for found in walk(masks, follow_links=follow):
        if found.reject:
            yield Task(uri=f"masks/{found.rel}", reject=found.reject)
            continue
        stem = os.path.splitext(found.rel)[0]
        if stem in mask_by_stem:
            yield Task(uri=f"masks/{found.rel}", reject=("duplicate_mask", f"masks/{mask_by_stem[stem]} and "
                                                         f"masks/{found.rel} both name image {stem}; keep one"))
            continue
        mask_by_stem[stem] = found.rel
    for found in walk(images, follow_links=follow):
        rel = found.rel
        if found.reject:
            yield Task(uri=f"images/{rel}", reject=found.reject)
            continue
        stem = os.path.splitext(rel)[0]
        mask = mask_by_stem.pop(stem, None)
        if mask is None:
            yield Task(uri=f"images/{rel}", reject=("missing_mask", f"no masks/{stem}.* (png, jxl, ...) for "
                                                    f"images/{rel}"))
            continue
        yield Task(uri=f"images/{rel}", path=os.path.join(images, rel), category=category,
                   extra={"mask": os.path.join(masks, mask)})
    for stem, rel in mask_by_stem.items():
        yield Task(uri=f"masks/{rel}", reject=("missing_image", f"masks/{rel} has no image of the same name"))


def load(task: Task, options: IngestOptions) -> Iterator[Cutout]:
    category = check_category(task.category, task.uri)
    data, sha = read_file(task.path)
    mask_data, _ = read_file(task.extra["mask"])
    rgb = imaging.decode_rgb(data, options.max_pixels)
    alpha = imaging.decode_gray(mask_data, options.max_pixels)
    if alpha.shape != rgb.shape[:2]:
        raise RejectedItem("size_mismatch", f"mask is {alpha.shape[1]}x{alpha.shape[0]} but the image is "
                           f"{rgb.shape[1]}x{rgb.shape[0]} (both after their EXIF orientation); masks must "
                           "match their images")
    rgba = np.dstack([rgb, alpha])
    yield Cutout(task.uri, rgba, (0, 0), (rgb.shape[1], rgb.shape[0]), sha, category,
                 {"exif_orientation": imaging.source_orientation(data)})
