"""Exact annotations from final pixels: the owner map (topmost labelled object whose alpha
is >= 128 at each pixel), its panoptic ids, and per-instance COCO RLE, tight bbox and area.
"""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def owner_dtype(n_objects: int) -> type:
    return np.uint8 if n_objects < 256 else np.int32


def panoptic_ids(owner: np.ndarray, n_objects: int, min_area: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renumber owner labels (1..n, 0 = void) to consecutive panoptic ids, voiding objects
    with fewer than min_area visible pixels. Returns (pan map, id per object, visible area)."""
    if owner.dtype == np.uint8:
        area = cv2.calcHist([owner], [0], None, [256], [0, 256]).ravel().astype(np.int64)[1:n_objects + 1]
    else:
        area = np.bincount(owner.ravel(), minlength=n_objects + 1)[1:]
    keep = area >= min_area
    ids = np.zeros(n_objects + 1, owner.dtype)
    ids[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    if keep.all():
        return owner, ids[1:], area  # labels are already 1..n in paste order
    if owner.dtype == np.uint8:
        lut = np.zeros(256, np.uint8)
        lut[:n_objects + 1] = ids
        return cv2.LUT(owner, lut), ids[1:], area
    return ids[owner], ids[1:], area


def encode_pan_bgr(pan: np.ndarray) -> np.ndarray:
    """COCO panoptic colour (id = R + 256 G + 256^2 B), in OpenCV's BGR channel order."""
    if pan.dtype == np.uint8:
        zeros = np.zeros_like(pan)
        return cv2.merge([zeros, zeros, pan])
    return np.dstack([(pan >> 16) & 255, (pan >> 8) & 255, pan & 255]).astype(np.uint8)


def instance_rle(pan: np.ndarray, pid: int, box: tuple[int, int, int, int], scratch: np.ndarray) -> dict:
    """COCO RLE, tight bbox and area of pan == pid, looking only inside the object's box.

    `scratch` is a zeroed Fortran-ordered uint8 canvas reused across instances."""
    x0, y0, x1, y1 = box
    scratch[y0:y1, x0:x1] = pan[y0:y1, x0:x1] == pid
    rle = mask_utils.encode(scratch)
    scratch[y0:y1, x0:x1] = 0
    return {"counts": rle["counts"].decode("ascii"), "size": [int(v) for v in rle["size"]],
            "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": int(mask_utils.area(rle))}
