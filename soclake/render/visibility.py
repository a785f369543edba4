"""The visibility test: an instance is kept only if the final image shows it, i.e. if the
object's own signal dominates inside its mask (docs/visibility.md). Pure over arrays; the
compositor supplies, per labelled paste, what lay under it and the object's own colours.

On a transparent canvas images are compared as premultiplied RGBA (colour x alpha, alpha),
so an object is judged against transparency the way it is against a background.
"""
from __future__ import annotations

import cv2
import numpy as np

from soclake import imaging

DETAIL_WINDOW = 5
"""Side of the square window over which local detail is compared (pixels)."""


def shown(final: np.ndarray, under: np.ndarray, own: np.ndarray, own_alpha: np.ndarray, contrast: float,
          detail: float) -> np.ndarray:
    """Per pixel: does the final image show the object there? (h, w) bool.

    final: the finished image; under: the canvas before the object was pasted, both uint8
    RGB (an opaque canvas) or premultiplied RGBA (a transparent one); own: the object's own
    straight RGB as its blend mode made it, and own_alpha its alpha. A pixel shows the
    object by colour (by_colour) or by detail (by_detail)."""
    return by_colour(final, under, own, contrast) | by_detail(final, under, own, own_alpha, detail)


def by_colour(final: np.ndarray, under: np.ndarray, own: np.ndarray, contrast: float,
              within: np.ndarray | None = None) -> np.ndarray:
    """The pixel is nearer the object's colour (opaque) than what lay under, and the two
    differ by at least `contrast` levels (Euclidean over RGB, or RGBA). With `within` (a
    bool mask), pixels outside it are False."""
    opaque = _opaque(own, final)
    if within is not None and final.shape[2] == 4 and contrast <= 255:
        shown = _by_colour_rgba(final, under, opaque, contrast, within)
        if shown is not None:
            return shown
    shown = (_sq_dist(opaque, under) >= contrast ** 2) & (_sq_dist(final, opaque) < _sq_dist(final, under))
    return shown if within is None else shown & within


def _by_colour_rgba(final: np.ndarray, under: np.ndarray, opaque: np.ndarray, contrast: float,
                    within: np.ndarray) -> np.ndarray | None:
    """by_colour within a mask on RGBA, the common case (None where most pixels are soft: the
    dense form is then faster). Where the final pixel is the object's colour (compared as one
    32-bit word) it is nearer the object than the under unless the two are equal, so only their
    distance counts, and over transparency (any colour is at least 255 levels from nothing) not
    even that; the few others (soft edges) are measured in exact integers."""
    word = [x.view(np.uint32)[..., 0] for x in (final, opaque, under)]
    same = within & (word[0] == word[1])
    rest = imaging.nonzero(within & ~same)
    if rest[0].size * 4 >= within.size:
        return None
    over_colour = same & (word[2] != 0)
    shown = same & ~over_colour
    x, y, w, h = cv2.boundingRect(over_colour.view(np.uint8))
    if w:
        at = (slice(y, y + h), slice(x, x + w))
        to_under = _sq_dist(opaque[at], under[at])
        shown[at] |= over_colour[at] & (to_under >= contrast ** 2) & (to_under > 0)
    if rest[0].size:
        f, o, u = (v[rest].astype(np.int32) for v in (final, opaque, under))
        # the threshold in float32, as the float32 distances of the dense form meet it
        shown[rest] = ((((o - u) ** 2).sum(axis=1) >= np.float32(contrast ** 2))
                       & (((f - o) ** 2).sum(axis=1) < ((f - u) ** 2).sum(axis=1)))
    return shown


def by_detail(final: np.ndarray, under: np.ndarray, own: np.ndarray, own_alpha: np.ndarray, detail: float) -> np.ndarray:
    """Inside the object (3x3 neighbourhood with alpha >= 128), over the DETAIL_WINDOW around
    the pixel, the final image's luma gradients (central differences) are nearer the
    object's than both the under's and no detail at all, and the object's own have an RMS
    length of at least `detail` levels. Detail is what a Poisson clone keeps when it shifts
    colours; a flat object has none, so it shows only by colour."""
    _, solid = cv2.threshold(own_alpha, 127, 1, cv2.THRESH_BINARY)
    inside = cv2.erode(solid, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if not inside.any():
        return inside.astype(bool)
    (cx, cy), (ux, uy), (ox, oy) = (_gradient(x) for x in (final, under, _opaque(own, final)))
    weight = inside.astype(np.float32)
    n, to_own, to_under, own_detail = (_window_sum(v * weight) for v in (
        weight, (cx - ox) ** 2 + (cy - oy) ** 2, (cx - ux) ** 2 + (cy - uy) ** 2, ox ** 2 + oy ** 2))
    return (inside > 0) & (own_detail >= detail ** 2 * n) & (to_own < np.minimum(to_under, own_detail))


def shown_fraction(final: np.ndarray, under: np.ndarray, own: np.ndarray, own_alpha: np.ndarray, mask: np.ndarray,
                   contrast: float, detail: float) -> float:
    """Share of the instance's mask pixels that show the object (0 for an empty mask). The
    detail test runs only around the pixels that colour leaves undecided (the same answer:
    a pixel's detail depends on the 3 px around it)."""
    n = int(np.count_nonzero(mask))
    if n == 0:
        return 0.0
    box = _box(mask, mask.shape)
    colour = by_colour(final[box], under[box], own[box], contrast, mask[box])
    rest = np.zeros_like(mask)
    rest[box] = mask[box] & ~colour
    shown_n = int(np.count_nonzero(colour))
    if shown_n < n:
        box = _box(rest, mask.shape)
        shown_n += int(np.count_nonzero(by_detail(final[box], under[box], own[box], own_alpha[box], detail) & rest[box]))
    return shown_n / n


def _box(mask: np.ndarray, shape: tuple) -> tuple[slice, slice]:
    """Bounding box of `mask`, grown by the reach of the detail test and cut to `shape`."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    pad = DETAIL_WINDOW // 2 + 1
    return (slice(max(int(ys[0]) - pad, 0), min(int(ys[-1]) + pad + 1, shape[0])),
            slice(max(int(xs[0]) - pad, 0), min(int(xs[-1]) + pad + 1, shape[1])))


def _opaque(own: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The object's colour at full opacity, in the channels of `like` (RGB or RGBA)."""
    return own if like.shape[2] == 3 else cv2.cvtColor(own, cv2.COLOR_RGB2RGBA)  # alpha 255


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance per pixel of two (h, w, c) uint8 images, float32."""
    d = cv2.absdiff(a, b)
    return cv2.transform(cv2.multiply(d, d, dtype=cv2.CV_32F), np.ones((1, a.shape[2]), np.float32))


def _gradient(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences along x and y of the luma (ITU-R 601 weights of R, G, B)."""
    lum = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY if img.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    return (cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE),
            cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE))


def _window_sum(a: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(a, -1, (DETAIL_WINDOW, DETAIL_WINDOW), normalize=False, borderType=cv2.BORDER_CONSTANT)
