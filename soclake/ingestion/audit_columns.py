"""Pixel-derived columns of a segment row that `soclake audit` reads in SQL: a perceptual hash of
the alpha-composited crop, the holes of its mask and its mean opacity. Computed once at ingest
(workers), so the audit never decodes a pixel. Pure functions of the crop.
"""
from __future__ import annotations

import cv2
import imagehash
import numpy as np
from PIL import Image

from soclake.imaging import MASK_THRESHOLD

HASH_BACKGROUND = 128
"""Grey level the crop is composited on before hashing (a cut-out has no background of its own)."""


def composited_square(rgba: np.ndarray, grey: int = HASH_BACKGROUND) -> Image.Image:
    """The crop alpha-composited on flat grey and centred in a square canvas. The square keeps
    the silhouette's aspect ratio: pHash resizes to 32x32, which would stretch every tight crop
    to fill the frame (a long stick and a ball would look alike)."""
    h, w = rgba.shape[:2]
    side = max(h, w)
    out = np.full((side, side, 3), grey, np.float32)
    a = rgba[..., 3:4].astype(np.float32) * np.float32(1 / 255)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0:y0 + h, x0:x0 + w] = rgba[..., :3] * a + grey * (1 - a)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


def perceptual_hash(rgba: np.ndarray) -> int:
    """64-bit pHash (imagehash.phash: 32x32 greyscale, DCT, 8x8 low frequencies against their
    median) of the composited square, as an unsigned int; bit 63 is the first coefficient.
    Re-encoding, mild rescaling and small colour shifts move it by a few bits; unrelated
    crops are mostly 16-40 bits apart (docs/audit.md)."""
    bits = imagehash.phash(composited_square(rgba)).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hole_stats(alpha: np.ndarray) -> tuple[int, float]:
    """(holes, hole fraction) of a mask: transparent regions (alpha < MASK_THRESHOLD, 4-connected)
    that the mask encloses, i.e. that do not reach the crop's border, and their pixels over the
    filled silhouette's (mask plus holes). The outside is flood-filled away from a one-pixel
    border, so only the holes' own bounding box is labelled."""
    background = np.pad((alpha < MASK_THRESHOLD).view(np.uint8), 1, constant_values=1)
    cv2.floodFill(background, None, (0, 0), 0, flags=4)
    hole_pixels = cv2.countNonZero(background)
    if not hole_pixels:
        return 0, 0.0
    x, y, w, h = cv2.boundingRect(background)
    holes = cv2.connectedComponents(background[y:y + h, x:x + w], connectivity=4)[0] - 1
    mask_pixels = int(np.count_nonzero(alpha >= MASK_THRESHOLD))
    return int(holes), hole_pixels / (mask_pixels + hole_pixels)


def columns(crop: np.ndarray, small: np.ndarray) -> dict:
    """The audit columns of a segment row: `crop` is the native tight crop (mask statistics),
    `small` a pyramid level of it (the hash is of a downscaled image anyway)."""
    alpha = crop[..., 3]
    holes, hole_fraction = hole_stats(alpha)
    visible = alpha[alpha > 0]
    return {"phash": perceptual_hash(small), "alpha_holes": holes, "alpha_hole_fraction": hole_fraction,
            "alpha_mean": float(visible.mean()) / 255 if visible.size else 0.0}
