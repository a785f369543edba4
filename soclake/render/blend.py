"""Blending modes (Cut-Paste-Learn): how a patch's pixels and alpha meet the canvas.

A mode maps a premultiplied float patch (h, w, 4: rgb * a / 255 and a, in 0..255) to its
effective premultiplied colour, its 8-bit alpha and a padding (motion blur grows the patch).
The 8-bit alpha is what is composited and what annotations threshold, so masks always agree
with the pixels. `poisson` colours are computed by the compositor (render/poisson.py: they
need the canvas); where it cannot run (no background, or the patch is not wholly on the
canvas) the compositor uses `none` instead, and records that mode.
"""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

from soclake.registry import Registry

Patch = tuple[np.ndarray, np.ndarray, int]  # premultiplied rgb float32 (h,w,3), alpha uint8 (h,w), pad

BlendMode = Callable[[np.ndarray, np.random.Generator, dict], Patch]
BLENDS = Registry("blend mode")
blend = BLENDS.register


def quantize(alpha: np.ndarray) -> np.ndarray:
    """Float alpha in 0..255 to uint8, rounded and saturated."""
    return cv2.convertScaleAbs(alpha)


@blend("none")
def hard(prem: np.ndarray, rng, params: dict) -> Patch:
    return cv2.cvtColor(prem, cv2.COLOR_RGBA2RGB), quantize(prem[..., 3]), 0  # the colour, contiguous


@blend("poisson")
def poisson_alpha(prem: np.ndarray, rng, params: dict) -> Patch:
    """The binary mask (alpha >= 128); the compositor replaces the colour by a seamless clone
    and claims only the part of the mask the clone draws the object into."""
    a8 = np.where(prem[..., 3] >= 127.5, 255, 0).astype(np.uint8)
    return prem[..., :3], a8, 0


@blend("gaussian")
def gaussian(prem: np.ndarray, rng, params: dict) -> Patch:
    """Feather the edge inward (alpha x blurred alpha): no halo, colour stays defined."""
    sigma = params["feather"]
    if sigma <= 0:
        return hard(prem, rng, params)
    blurred = cv2.GaussianBlur(prem[..., 3] * np.float32(1 / 255), (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return prem[..., :3] * blurred[..., None], quantize(prem[..., 3] * blurred), 0


@blend("motion")
def motion(prem: np.ndarray, rng, params: dict) -> Patch:
    """Linear motion blur of the premultiplied patch at a random angle; the patch grows."""
    n = params["motion"] | 1
    pad = n // 2 + 1
    kernel = np.zeros((n, n), np.float32)
    c = n // 2
    ang = rng.uniform(0, math.pi)
    for t in np.linspace(-c, c, 2 * n):
        kernel[int(round(c + t * math.sin(ang))), int(round(c + t * math.cos(ang)))] = 1
    kernel /= kernel.sum()
    out = cv2.filter2D(cv2.copyMakeBorder(prem, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0), -1, kernel,
                       borderType=cv2.BORDER_CONSTANT)
    return out[..., :3], quantize(out[..., 3]), pad
