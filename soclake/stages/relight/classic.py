"""The `classic` relight backend: physically plausible relighting without a model, on CPU.

A light direction (IC-Light's sources: none, left, right, top, bottom) and a colour
temperature per sample give a smooth shading field and a light colour; objects cast soft
contact shadows from their alpha away from the light; with a background, each object's
lightness statistics move toward the background's (harmonisation). The area-ranked Lab
blend is applied afterwards by the stage, so objects keep their chroma.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from soclake.stages.relight.labblend import from_lab, to_lab


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Approximate sRGB colour of black-body light (Tanner Helland's fit), luminance-normalised."""
    t = kelvin / 100
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip([r, g, b], 1, 255) / 255
    return (rgb / (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])).astype(np.float32)


@lru_cache(maxsize=16)
def shading_field(h: int, w: int, direction: str, strength: float) -> np.ndarray:
    """Smooth multiplicative light field around 1: a ramp from the light's side, or a soft
    vignette for ambient light. Cached: treat as read-only."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    ramp = {"left": 1 - u, "right": u, "top": 1 - v, "bottom": v}.get(direction)
    if ramp is None:
        vignette = 1 - ((u - 0.5) ** 2 + (v - 0.5) ** 2) * 2
        return 1 + strength * 0.5 * (vignette - vignette.mean())
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)  # smooth
    return 1 + strength * (ramp - 0.5) * 2


def contact_shadow(alpha: np.ndarray, direction: str, darkness: float) -> np.ndarray:
    """Multiplicative shadow map: the objects' alpha, blurred and pushed away from the light,
    darkening only what lies outside (under or beside) the casting object."""
    h, w = alpha.shape
    size = max(h, w)
    dx, dy = {"left": (1, 0.4), "right": (-1, 0.4), "top": (0, 1), "bottom": (0, -1)}.get(direction, (0, 0.6))
    shift = 0.02 * size
    m = np.float32([[1, 0, dx * shift], [0, 1, dy * shift]])
    small = cv2.resize(alpha, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.warpAffine(small, m / np.float32([1, 1, 4]), (small.shape[1], small.shape[0]))
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, size / 4 * 0.015))
    cast = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return 1 - darkness * np.clip(cast - alpha, 0, 1)


def harmonize(rgb: np.ndarray, segments: np.ndarray, amount: float) -> np.ndarray:
    """Move each segment's lightness mean and spread part of the way toward the background's
    (statistics of the background from a 1-in-16 pixel sample; only segment pixels convert)."""
    flat_seg = segments.ravel()
    background = np.flatnonzero(flat_seg == 0)[::16]
    inside = np.flatnonzero(flat_seg)
    if amount <= 0 or len(background) == 0 or len(inside) == 0:
        return rgb
    flat = rgb.reshape(-1, 3)
    L_b = to_lab(flat[background][:, None])[:, 0, 0]
    mu_b, sd_b = float(L_b.mean()), float(L_b.std()) + 1e-3
    lab = to_lab(flat[inside][:, None]).reshape(-1, 3)
    ids = flat_seg[inside]
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    for group in np.split(order, bounds):
        L = lab[group, 0]
        mu, sd = float(L.mean()), float(L.std()) + 1e-3
        lab[group, 0] = np.clip((L - mu) * (sd_b / sd) ** (0.5 * amount) + mu + amount * (mu_b - mu), 0, 100)
    out = rgb.copy()
    out.reshape(-1, 3)[inside] = from_lab(lab[:, None]).reshape(-1, 3)
    return out


def relight(rgb: np.ndarray, alpha: np.ndarray, segments: np.ndarray, has_background: bool,
            rng: np.random.Generator, params: dict) -> tuple[np.ndarray, dict]:
    """Relit RGB of a composite and the per-sample parameters drawn."""
    direction = params["directions"][int(rng.integers(len(params["directions"])))]
    kelvin = float(rng.uniform(*params["temperature"]))
    h, w = alpha.shape
    a = alpha.astype(np.float32) * np.float32(1 / 255)
    light = shading_field(h, w, direction, params["strength"]) * contact_shadow(a, direction, params["shadow"])
    out = rgb.astype(np.float32) * light[..., None] * kelvin_rgb(kelvin)[None, None, :]
    out = cv2.convertScaleAbs(out)
    if has_background:
        out = harmonize(out, segments, params["harmonize"])
    return out, {"direction": direction, "kelvin": round(kelvin, 1)}
