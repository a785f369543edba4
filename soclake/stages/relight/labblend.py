"""SOC's area-ranked Lab blending of a relit image back onto the original (SOC_FACTS 2.4).

Per visible segment, in CIE Lab: lightness L = w * L_relit + (1 - w) * L_original, chroma (a*, b*)
from the original, so objects keep their identity and colour. The weight is SOC's
w = lo + (hi - lo) * sigmoid(-k (r - 0.5)), r = area rank / (N - 1) with the smallest segment at
r = 0 (a single segment too), ties in SOC's order; (lo, hi, k) = (0.3, 0.9, 10) as SOC. Pixels
outside every segment take the relit image as it is. Usable on its own, for images relit elsewhere.
"""
from __future__ import annotations

import cv2
import numpy as np


def to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), alpha=255)


def segment_weights(areas: np.ndarray, alpha_range: tuple[float, float] = (0.3, 0.9),
                    steepness: float = 10.0, ids: np.ndarray | None = None) -> np.ndarray:
    """Relit-lightness weight per segment from its area rank (0 = smallest). Ties keep SOC's
    order: its segments are the panoptic colours in numpy's unique order (R, then G, then B),
    sorted stably by area; `ids` are the segments' panoptic ids (default: in the given order)."""
    areas = np.asarray(areas, dtype=np.float64)
    lo, hi = alpha_range
    if len(areas) == 0:
        return np.zeros(0)
    ids = np.arange(len(areas)) if ids is None else np.asarray(ids, np.int64)
    colour_order = np.lexsort(((ids >> 16) & 255, (ids >> 8) & 255, ids & 255))
    by_area = colour_order[np.argsort(areas[colour_order], kind="stable")]
    rank = np.empty(len(areas))
    rank[by_area] = np.arange(len(areas))
    r = rank / (len(areas) - 1) if len(areas) > 1 else np.zeros(1)
    return lo + (hi - lo) / (1 + np.exp(steepness * (r - 0.5)))


def segment_areas(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, pixel counts) of the non-zero ids of a segment map."""
    counts = np.bincount(segments.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    return ids, counts[ids]


def area_ranked_lab_blend(original: np.ndarray, relit: np.ndarray, segments: np.ndarray,
                          alpha_range: tuple[float, float] = (0.3, 0.9), steepness: float = 10.0) -> np.ndarray:
    """Blend `relit` (H, W, 3 uint8) back onto `original` through the segment id map
    `segments` (H, W, 0 = no segment). Returns uint8 RGB."""
    ids, areas = segment_areas(segments)
    if len(ids) == 0:
        return relit.copy()
    weights = np.zeros(int(ids.max()) + 1, np.float32)
    weights[ids] = segment_weights(areas, alpha_range, steepness, ids)
    inside = np.flatnonzero(segments.ravel())  # only segment pixels go through Lab
    w = weights[segments.ravel()[inside]]
    lab_o = to_lab(original.reshape(-1, 3)[inside][:, None]).reshape(-1, 3)
    lab_r = to_lab(relit.reshape(-1, 3)[inside][:, None]).reshape(-1, 3)
    lab_o[:, 0] = w * lab_r[:, 0] + (1 - w) * lab_o[:, 0]  # chroma stays the original's
    out = relit.copy()  # outside every segment: the relit pixels, untouched
    out.reshape(-1, 3)[inside] = from_lab(lab_o[:, None]).reshape(-1, 3)
    return out
