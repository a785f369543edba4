"""Poisson (seamless-clone) blending, and the region where it really draws the object.

OpenCV's seamlessClone clears the mask's outer 1-px frame, rewrites the bounding box of what
is left, and follows the object's gradients only inside that mask eroded three times by a
3x3 square; the rest of the box follows the destination's gradients, i.e. it shows the
background (shifted in colour). `written_region` is that eroded mask: the only pixels a
poisson paste may claim as its object (docs/visibility.md). Pure over arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ERODE_KERNEL = np.ones((3, 3), np.uint8)
ERODE_ITERATIONS = 3
"""OpenCV's cloning erodes the mask this many times (seamless_cloning_impl.cpp, computeDerivatives)."""


@dataclass
class Clone:
    box: tuple[slice, slice]  # the rows and columns of the patch seamlessClone rewrote
    rgb: np.ndarray           # (box h, box w, 3) uint8: what it wrote there
    written: np.ndarray       # (patch h, patch w) uint8, 255 where it drew the object's gradients


def clone_mask(a8: np.ndarray) -> np.ndarray:
    """The binary mask as seamlessClone uses it: alpha >= 128, outer 1-px frame cleared."""
    mask = np.where(a8 >= 128, 255, 0).astype(np.uint8)
    mask[0, :] = mask[-1, :] = 0
    mask[:, 0] = mask[:, -1] = 0
    return mask


def written_region(a8: np.ndarray) -> np.ndarray:
    """Where seamlessClone draws the object (uint8 255/0, the patch's shape)."""
    return cv2.erode(clone_mask(a8), ERODE_KERNEL, iterations=ERODE_ITERATIONS,
                     borderType=cv2.BORDER_CONSTANT, borderValue=0)


def clone(under: np.ndarray, straight: np.ndarray, a8: np.ndarray) -> Clone | None:
    """Seamless-clone a patch (straight rgb uint8 and its alpha) onto `under`, the 8-bit
    canvas rectangle it covers (same shape). None when the clone would draw nothing of the
    object (a mask thinner than the erosion; OpenCV also fails on such masks)."""
    written = written_region(a8)
    if not written.any():
        return None
    mask = clone_mask(a8)
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    # seamlessClone centres the mask's bounding box at `center`: put it back where it was
    centre = (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)
    # it also writes into the mask it is given: hand it a copy
    out = cv2.seamlessClone(straight, np.ascontiguousarray(under), mask.copy(), centre, cv2.NORMAL_CLONE)
    box = (slice(y0, y1), slice(x0, x1))
    return Clone(box, out[box], written)
