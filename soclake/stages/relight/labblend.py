"""SOC's area-ranked Lab blending of a relit image back onto the original.

Per segment, in CIE Lab: lightness L = a * L_relit + (1 - a) * L_original, chroma (a*, b*)
from the original, so objects keep their identity and colour. The weight a comes from a
sigmoid over the segment's normalised area rank: the smallest segment gets the high end of
`alpha_range` (it keeps the most relighting), the largest the low end. Pixels outside every
segment take the relit image as it is. Usable on its own, for images relit elsewhere.
"""
from __future__ import annotations

import cv2
import numpy as np


def to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), alpha=255)


def segment_weights(areas: np.ndarray, alpha_range: tuple[float, float] = (0.3, 0.9),
                    steepness: float = 8.0) -> np.ndarray:
    """Relit-lightness weight per segment from its area rank (ties share a rank)."""
    areas = np.asarray(areas, dtype=np.float64)
    lo, hi = alpha_range
    if len(areas) == 0:
        return np.zeros(0)
    if len(areas) == 1:
        r = np.array([0.5])
    else:
        order = np.argsort(np.argsort(areas, kind="stable"), kind="stable")
        r = order / (len(areas) - 1)  # 0 = smallest
    s = 1 / (1 + np.exp(-steepness * (r - 0.5)))
    return hi - (hi - lo) * s


def segment_areas(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, pixel counts) of the non-zero ids of a segment map."""
    counts = np.bincount(segments.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    return ids, counts[ids]


def area_ranked_lab_blend(original: np.ndarray, relit: np.ndarray, segments: np.ndarray,
                          alpha_range: tuple[float, float] = (0.3, 0.9), steepness: float = 8.0) -> np.ndarray:
    """Blend `relit` (H, W, 3 uint8) back onto `original` through the segment id map
    `segments` (H, W, 0 = no segment). Returns uint8 RGB."""
    ids, areas = segment_areas(segments)
    if len(ids) == 0:
        return relit.copy()
    weights = np.zeros(int(ids.max()) + 1, np.float32)
    weights[ids] = segment_weights(areas, alpha_range, steepness)
    inside = np.flatnonzero(segments.ravel())  # only segment pixels go through Lab
    w = weights[segments.ravel()[inside]]
    lab_o = to_lab(original.reshape(-1, 3)[inside][:, None]).reshape(-1, 3)
    lab_r = to_lab(relit.reshape(-1, 3)[inside][:, None]).reshape(-1, 3)
    lab_o[:, 0] = w * lab_r[:, 0] + (1 - w) * lab_o[:, 0]  # chroma stays the original's
    out = relit.copy()  # outside every segment: the relit pixels, untouched
    out.reshape(-1, 3)[inside] = from_lab(lab_o[:, None]).reshape(-1, 3)
    return out
