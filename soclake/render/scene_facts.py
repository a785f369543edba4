"""What a viewer can check in a composed image beyond its annotations, measured on the final
pixels: the basic colours of every visible object, the unlabelled objects (distractors,
decoys) that show, and which visible objects touch or cover which. The compose stage writes
them to KEY.json ("colours" per instance, "scene"); relight measures the colours again on its
relit pixels. The language stage reads them; nothing here makes words.
"""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from soclake import colour_names, imaging
from soclake.render import annotate

CONTACT_MAX_PX = 8
"""Pairs of visible masks closer than this (pixel centre to centre) are recorded with their gap."""
_SQUARE = np.ones((2 * CONTACT_MAX_PX + 1, 2 * CONTACT_MAX_PX + 1), np.uint8)
COLOUR_RULE = "xkcd-basic-terms-1"
"""Version of the colour classifier (soclake.colour_names) the recorded colours come from."""


class PasteTracker:
    """Which paste is on top at every pixel (all roles; z + 1, 0 = none), the earlier pastes
    each paste covers, the clipped box of each, and which pastes are unlabelled."""

    def __init__(self, width: int, height: int, pastes: int):
        self.top = np.zeros((height, width), np.uint8 if pastes < 255 else np.int32)
        self.covers: set[tuple[int, int]] = set()
        self.boxes: dict[int, tuple[int, int, int, int]] = {}
        self.unlabelled: list[tuple[int, str]] = []

    def record(self, dst, alpha8: np.ndarray | None, z: int, role: str) -> None:
        """One paste as drawn, in paste order: its canvas slices (None if it missed the canvas)
        and the 8-bit alpha composited there (for poisson, the region the clone drew)."""
        if dst is None:
            return
        inside = alpha8 >= imaging.MASK_THRESHOLD
        region = self.top[dst]  # a view: assignments update the map
        if region.dtype == np.uint8:  # the pastes under it: a masked histogram, without gathering them
            below = np.flatnonzero(cv2.calcHist([region], [0], inside.view(np.uint8), [256], [0, 256]).ravel())
        else:
            below = np.flatnonzero(np.bincount(region[inside]))
        self.covers.update((z, int(v) - 1) for v in below if v)
        region[inside] = z + 1
        self.boxes[z] = (dst[1].start, dst[0].start, dst[1].stop, dst[0].stop)
        if role != "object":
            self.unlabelled.append((z, role))


def _lookup(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    if values.dtype == np.uint8 and len(table) == 256 and table.max() < 256:
        return cv2.LUT(values, table.astype(np.uint8))
    return table[values]


def _visible_map(pan: np.ndarray, instances: list[dict], tracker: PasteTracker) -> tuple[np.ndarray, list[int]]:
    """Map of object index + 1 (instances first, then unlabelled pastes) and the z of each."""
    n_inst, unl = len(instances), tracker.unlabelled
    total = n_inst + len(unl)
    dtype = np.uint8 if total < 255 else np.int32
    pan_table = np.zeros(max(int(pan.max()) + 1, 256 if pan.dtype == np.uint8 else 1), np.int32)
    for k, inst in enumerate(instances):
        pan_table[inst["panoptic_id"]] = k + 1
    vis = _lookup(pan, pan_table).astype(dtype, copy=False)
    if unl:
        size = max(int(tracker.top.max()), max(z for z, _ in unl) + 1) + 1  # every unlabelled paste, shown or not
        top_table = np.zeros(max(size, 256 if tracker.top.dtype == np.uint8 else 0), np.int32)
        for u, (z, _) in enumerate(unl):
            top_table[z + 1] = n_inst + u + 1
        others = _lookup(tracker.top, top_table).astype(dtype, copy=False)
        vis = np.where(vis > 0, vis, others)  # the panoptic map has the last word on labelled pixels
    return vis, [inst["z"] for inst in instances] + [z for z, _ in unl]


def _contacts(vis: np.ndarray, boxes: list[tuple[int, int, int, int]], kept: list[bool]) -> dict[tuple[int, int], float]:
    """(k, l) object indices, k < l, whose visible masks come within CONTACT_MAX_PX -> gap.

    Two masks can only come that close inside the overlap of their boxes grown by the range,
    so each pair is measured there alone (exact Euclidean distance transform)."""
    H, W = vis.shape
    r = CONTACT_MAX_PX
    grown = np.array([(x0 - r, y0 - r, x1 + r, y1 + r) for x0, y0, x1, y1 in boxes], np.int64).reshape(-1, 4)
    out: dict[tuple[int, int], float] = {}
    for k in range(len(boxes)):
        if not kept[k]:
            continue
        for l in range(k + 1, len(boxes)):
            if not kept[l]:
                continue
            x0, y0 = max(grown[k, 0], grown[l, 0], 0), max(grown[k, 1], grown[l, 1], 0)
            x1, y1 = min(grown[k, 2], grown[l, 2], W), min(grown[k, 3], grown[l, 3], H)
            if x0 >= x1 or y0 >= y1:
                continue
            sub = vis[y0:y1, x0:x1]
            mine = (sub == k + 1).view(np.uint8)
            # l's pixels within r (in both axes) of k's: a thin strip where the masks meet
            close = (cv2.dilate(mine, _SQUARE) > 0) & (sub == l + 1)
            if not close.any():
                continue
            ys, xs = np.nonzero(close)
            strip = (slice(max(ys.min() - r, 0), ys.max() + r + 1), slice(max(xs.min() - r, 0), xs.max() + r + 1))
            dist = cv2.distanceTransform(1 - mine[strip], cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            gap = float(dist[close[strip]].min())
            if gap <= r:
                out[(k, l)] = round(gap, 3)
    return out


def measure(rgb: np.ndarray, pan: np.ndarray, instances: list[dict], tracker: PasteTracker,
            min_area: int) -> dict:
    """Set each instance's "colours" ({basic term: visible pixels}) from the final RGB and
    return the sample's "scene": unlabelled objects with at least min_area visible pixels
    (z, role, bbox, area, RLE, colours), contacts [z, z, gap] and covers [upper z, lower z]."""
    vis, zs = _visible_map(pan, instances, tracker)
    H, W = vis.shape
    boxes = [tracker.boxes.get(z, (0, 0, W, H)) for z in zs]
    counts = colour_names.counts_in_boxes(rgb, vis, boxes)
    areas = counts.sum(axis=1)
    for inst, row in zip(instances, counts):
        inst["colours"] = colour_names.counts_dict(row)
    n_inst = len(instances)
    kept = [True] * n_inst + [bool(a >= min_area) for a in areas[n_inst:]]
    unlabelled = []
    for u, (z, role) in enumerate(tracker.unlabelled):
        if kept[n_inst + u]:
            rle = annotate.instance_rle(vis, n_inst + u + 1, tracker.boxes[z])
            unlabelled.append({"z": z, "role": role, "bbox": rle["bbox"], "area": rle["area"],
                               "segmentation": {"size": rle["size"], "counts": rle["counts"]},
                               "colours": colour_names.counts_dict(counts[n_inst + u])})
    contacts = _contacts(vis, boxes, kept)
    kept_z = {z for z, k in zip(zs, kept) if k}
    return {"colour_rule": COLOUR_RULE, "contact_max_px": CONTACT_MAX_PX, "unlabelled": unlabelled,
            "contacts": sorted([zs[a], zs[b], g] for (a, b), g in contacts.items()),
            "covers": sorted([u, v] for u, v in tracker.covers if u in kept_z and v in kept_z)}


def recolour(info: dict, rgb: np.ndarray, segments: np.ndarray) -> None:
    """Measure the colours of a sample's instances and unlabelled objects again on new pixels
    (a relit composite) with the same masks: `segments` is its panoptic id map (H, W)."""
    instances = info["instances"]
    table = np.zeros(int(segments.max()) + 1, np.int32)
    for k, inst in enumerate(instances):
        if inst["panoptic_id"] < len(table):
            table[inst["panoptic_id"]] = k + 1
    vis = table[segments]
    unlabelled = (info.get("scene") or {}).get("unlabelled", [])
    for u, obj in enumerate(unlabelled):
        m = mask_utils.decode({"size": obj["segmentation"]["size"], "counts": obj["segmentation"]["counts"].encode()})
        vis[(m > 0) & (vis == 0)] = len(instances) + u + 1
    counts = colour_names.counts_by_label(rgb, vis, len(instances) + len(unlabelled))[1:]
    for obj, row in zip(list(instances) + list(unlabelled), counts):
        obj["colours"] = colour_names.counts_dict(row)
    if "scene" in info:
        info["scene"]["colour_rule"] = COLOUR_RULE
