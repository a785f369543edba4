"""Blending modes (Cut-Paste-Learn): how a patch's pixels and alpha meet the canvas.

Each mode maps a straight-alpha RGBA patch (uint8) to its effective premultiplied colour and
8-bit alpha, plus an offset when the patch grows (motion blur). The effective alpha is what
is composited and what annotations threshold, so masks always agree with the pixels.
`poisson` is applied by the compositor (it needs the canvas) and falls back to `none`
where it cannot run (no background, or the patch touches the canvas border).
"""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

Patch = tuple[np.ndarray, np.ndarray, int]  # premultiplied rgb float32 (h,w,3), alpha uint8 (h,w), pad

BLENDS: dict[str, Callable[[np.ndarray, np.random.Generator, dict], Patch]] = {}


def blend(name: str):
    def register(fn):
        BLENDS[name] = fn
        return fn
    return register


def _premultiply(rgb: np.ndarray, a8: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) * (a8.astype(np.float32) * np.float32(1 / 255))[..., None]


@blend("none")
def hard(patch: np.ndarray, rng, params: dict) -> Patch:
    a8 = patch[..., 3]
    return _premultiply(patch[..., :3], a8), a8, 0


@blend("poisson")
def poisson_alpha(patch: np.ndarray, rng, params: dict) -> Patch:
    """Alpha used around a seamless clone: the binary mask, so the cloned region is exact."""
    a8 = np.where(patch[..., 3] >= 128, 255, 0).astype(np.uint8)
    return _premultiply(patch[..., :3], a8), a8, 0


@blend("gaussian")
def gaussian(patch: np.ndarray, rng, params: dict) -> Patch:
    """Feather the edge inward (alpha x blurred alpha): no halo, colour stays defined."""
    sigma = params["feather"]
    a = patch[..., 3].astype(np.float32) * np.float32(1 / 255)
    if sigma > 0:
        a = a * cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    a8 = np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
    return _premultiply(patch[..., :3], a8), a8, 0


@blend("motion")
def motion(patch: np.ndarray, rng, params: dict) -> Patch:
    """Linear motion blur of the premultiplied patch at a random angle; the patch grows."""
    n = params["motion"] | 1
    pad = n // 2 + 1
    kernel = np.zeros((n, n), np.float32)
    c = n // 2
    ang = rng.uniform(0, math.pi)
    for t in np.linspace(-c, c, 2 * n):
        kernel[int(round(c + t * math.sin(ang))), int(round(c + t * math.cos(ang)))] = 1
    kernel /= kernel.sum()
    padded = np.pad(patch, ((pad, pad), (pad, pad), (0, 0)))
    a = padded[..., 3].astype(np.float32)
    prem = np.dstack([_premultiply(padded[..., :3], padded[..., 3]), a])
    out = cv2.filter2D(prem, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    a8 = np.clip(out[..., 3] + 0.5, 0, 255).astype(np.uint8)
    # keep colour consistent with the quantised alpha
    rgb = out[..., :3] * (a8.astype(np.float32) / np.maximum(out[..., 3], 1e-6))[..., None]
    return rgb, a8, pad
