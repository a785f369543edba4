"""Exact annotations from final pixels: the owner map (topmost labelled object whose alpha
is >= 128 at each pixel), its panoptic ids, and per-instance COCO RLE, tight bbox and area.
"""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def owner_dtype(max_label: int) -> type:
    return np.uint8 if max_label < 256 else np.int32


def panoptic_ids(owner: np.ndarray, labels: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible area of each object label (its panoptic id, stable across variants of an image)
    and the pan map with objects of fewer than min_area visible pixels voided. Returns (pan
    map, id per object: its label, or 0 if voided, visible area per object)."""
    top = int(labels.max()) if len(labels) else 0
    if owner.dtype == np.uint8:
        hist = cv2.calcHist([owner], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        hist = np.bincount(owner.ravel(), minlength=top + 1)
    area = hist[labels]
    keep = area >= min_area
    ids = np.where(keep, labels, 0).astype(owner.dtype)
    if keep.all():
        return owner, ids, area
    lut = np.arange(256 if owner.dtype == np.uint8 else top + 1).astype(owner.dtype)
    lut[labels[~keep]] = 0
    return (cv2.LUT(owner, lut) if owner.dtype == np.uint8 else lut[owner]), ids, area


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
