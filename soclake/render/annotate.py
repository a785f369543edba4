"""Exact annotations from final pixels: the owner map (topmost labelled object whose alpha
is >= 128 at each pixel), its panoptic ids, per-instance COCO RLE, tight bbox and area, and
the soft foreground mask reconciled with the panoptic map (docs/visibility.md).
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
    return void(owner, labels[~keep]), ids, area


def void(pan: np.ndarray, labels) -> np.ndarray:
    """The pan map with the pixels of `labels` set to void (0); `pan` itself if none."""
    labels = np.asarray(labels, np.int64)
    if not labels.size:
        return pan
    lut = np.arange(256 if pan.dtype == np.uint8 else max(int(pan.max()), int(labels.max())) + 1).astype(pan.dtype)
    lut[labels] = 0
    return cv2.LUT(pan, lut) if pan.dtype == np.uint8 else lut[pan]


def foreground(layers, pan: np.ndarray) -> np.ndarray:
    """fg.png: the share of each pixel's final colour that annotated instances contribute,
    as uint8, reconciled with the panoptic map: >= 128 exactly where `pan` names an instance
    (128 where the share is lower, 127 where a void pixel's share is higher).

    `layers`: (canvas slices, 8-bit alpha there, counts) per paste, bottom to top; `counts`
    is true for pastes that are annotated instances."""
    through = np.ones(pan.shape, np.float32)  # how much of the pixel the pastes above let through
    share = np.zeros(pan.shape, np.float32)
    for dst, a8, counts in reversed(layers):
        a = a8.astype(np.float32) * np.float32(1 / 255)
        t = through[dst]
        if counts:
            share[dst] += a * t
        t *= 1 - a
    fg = cv2.convertScaleAbs(share, alpha=255)
    labelled = pan != 0
    return np.where(labelled, np.maximum(fg, 128), np.minimum(fg, 127)).astype(np.uint8)


def encode_pan_rgb(pan: np.ndarray) -> np.ndarray:
    """COCO panoptic colour (id = R + 256 G + 256^2 B), RGB channel order."""
    if pan.dtype == np.uint8:
        zeros = np.zeros_like(pan)
        return cv2.merge([pan, zeros, zeros])
    return cv2.merge([(pan & 255).astype(np.uint8), ((pan >> 8) & 255).astype(np.uint8),
                      ((pan >> 16) & 255).astype(np.uint8)])


def instance_rle(pan: np.ndarray, pid: int, box: tuple[int, int, int, int]) -> dict:
    """COCO RLE, tight bbox and area of pan == pid, looking only inside the object's box
    (x0, y0, x1, y1): the runs are found there, and pycocotools compresses them."""
    H, W = pan.shape
    x0, y0, x1, y1 = box
    mask = pan[y0:y1, x0:x1] == pid
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    area = int(np.count_nonzero(mask))
    if not area:
        counts = [H * W]
        bbox = [0.0, 0.0, 0.0, 0.0]
    else:
        counts = rle_counts(mask, x0, y0, H, W)
        bbox = [float(x0 + cols[0]), float(y0 + rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    rle = mask_utils.frPyObjects({"counts": counts, "size": [H, W]}, H, W)
    return {"counts": rle["counts"].decode("ascii"), "size": [H, W], "bbox": bbox, "area": area}


def rle_counts(mask: np.ndarray, x0: int, y0: int, H: int, W: int) -> list[int]:
    """Uncompressed COCO run lengths (column-major, zeros first) of an H x W image that is 0
    except for `mask` at (x0, y0)."""
    h, w = mask.shape
    padded = np.zeros((w, h + 2), np.int8)  # each box column, with a 0 above and below it
    padded[:, 1:-1] = mask.T
    starts = np.flatnonzero(np.diff(padded.ravel()))  # a run starts at starts + 1 (padded coordinates)
    col, row = np.divmod(starts + 1, h + 2)
    edges = (x0 + col).astype(np.int64) * H + (y0 - 1 + row)
    if h == H:  # a run ending on a column's last row goes on at the next column's first: one run
        joined = np.flatnonzero(np.diff(edges) == 0)
        edges = np.delete(edges, np.concatenate([joined, joined + 1]))
    counts = np.diff(np.concatenate([[0], edges, [H * W]])).tolist()
    return counts[:-1] if counts[-1] == 0 else counts  # a mask reaching the last pixel ends on its run
