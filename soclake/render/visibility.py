"""The visibility test: an instance is kept only if the final image shows it, i.e. if the
object's own signal dominates inside its mask (docs/visibility.md). Pure over arrays; the
compositor supplies, per labelled paste, what lay under it and the object's own colours.

All images are premultiplied RGBA uint8 (colour x alpha, alpha), so a transparent canvas
and an opaque background are compared the same way.
"""
from __future__ import annotations

import cv2
import numpy as np

DETAIL_WINDOW = 5
"""Side of the square window over which local detail is compared (pixels)."""


def shown(final: np.ndarray, under: np.ndarray, own: np.ndarray, contrast: float, detail: float) -> np.ndarray:
    """Per pixel: does the final image show the object there? (h, w) bool.

    final: the finished image; under: the canvas before the object was pasted; own: the
    object's own colours as its blend mode made them (straight rgb, and its alpha).

    By colour: the pixel is nearer the object's (opaque) colour than what lay under, and the
    two differ by at least `contrast` levels (Euclidean over RGBA).
    By detail, inside the object (3x3 neighbourhood with alpha >= 128): over the
    DETAIL_WINDOW around the pixel, the final image's pixel-to-pixel differences are nearer
    the object's than the under's, and the object's own have an RMS of at least `detail`
    levels. Detail is what a Poisson clone keeps when it shifts colours; a flat object has
    none, so it shows only by colour."""
    c, u, o = (a.astype(np.float32) for a in (final, under, own))
    o[..., 3] = 255
    by_colour = (_norm(o - u) >= contrast) & (_norm(c - o) < _norm(c - u))
    inside = cv2.erode(np.where(own[..., 3] >= 128, 1, 0).astype(np.uint8), np.ones((3, 3), np.uint8),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    gc, gu, go = _differences(c), _differences(u), _differences(o)
    n, to_own, to_under, own_detail = (_window_sum(v * inside) for v in (
        np.ones_like(inside), _sq(gc - go), _sq(gc - gu), _sq(go)))
    by_detail = (inside > 0) & (own_detail >= detail ** 2 * n) & (to_own < to_under)
    return by_colour | by_detail


def shown_fraction(final: np.ndarray, under: np.ndarray, own: np.ndarray, mask: np.ndarray, contrast: float,
                   detail: float) -> float:
    """Share of the instance's mask pixels that show the object (0 for an empty mask)."""
    n = int(np.count_nonzero(mask))
    if n == 0:
        return 0.0
    return int(np.count_nonzero(shown(final, under, own, contrast, detail) & mask)) / n


def _sq(a: np.ndarray) -> np.ndarray:
    return np.einsum("...c,...c->...", a, a)


def _norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(_sq(a))


def _differences(img: np.ndarray) -> np.ndarray:
    """Central differences along x and y of every channel, (h, w, 2c)."""
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
    return np.concatenate([gx, gy], axis=2)


def _window_sum(a: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(a, -1, (DETAIL_WINDOW, DETAIL_WINDOW), normalize=False, borderType=cv2.BORDER_CONSTANT)
