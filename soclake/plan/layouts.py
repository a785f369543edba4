"""Layouts: where each object goes. A registry of pure functions of (rng, objects, params,
canvas) returning boxes in canvas pixels and which objects were placed.

Boxes are pre-rotation (x, y, w, h), bottom to top. Free-placement layouts keep each box at
least `min_visible` visible under the boxes above it, estimated on a coarse occupancy grid
(boxes over-estimate occlusion, so the exact visibility measured at render is higher).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from soclake.errors import SoclakeError
from soclake.registry import Registry


@dataclass
class Objects:
    aspect: np.ndarray          # width / height of each segment's crop
    alpha_fraction: np.ndarray  # mask pixels / crop pixels


@dataclass
class Placement:
    boxes: np.ndarray   # int32 (n, 4): x, y, w, h
    placed: np.ndarray  # bool (n,)
    visible: np.ndarray  # float (n,): planned visible fraction (box estimate)
    frames: np.ndarray | None = None  # soc: the layout's boxes (x0, y0, x1, y1, canvas fractions) fitted into


class LayoutExhausted(Exception):
    """A layout used up its retry budget; the planner re-plans the image with its next seed."""


Layout = Callable[[np.random.Generator, Objects, dict, dict], Placement]
LAYOUTS = Registry("layout")
layout = LAYOUTS.register


class Occupancy:
    """Top-most box per grid cell, to estimate how visible each box stays."""

    def __init__(self, width: int, height: int, capacity: int, cells: int = 128):
        self.cell = max(1.0, max(width, height) / cells)
        # cell value = index of the top box + 1, 0 = empty (so bincount needs no masking)
        self.top = np.zeros((math.ceil(height / self.cell), math.ceil(width / self.cell)), np.int32)
        self.total = np.zeros(capacity)
        self.shown = np.zeros(capacity)
        self.rects = np.zeros((4, capacity), np.int64)  # grid rows y0, y1 and columns x0, x1 of each box
        self.cells_of = np.zeros(capacity, np.int64)     # grid cells of each box's rectangle
        self.n = 0

    def _slice(self, box) -> tuple[slice, slice]:
        x, y, w, h = box
        c = self.cell
        gy, gx = self.top.shape
        return (slice(min(max(int(round(y / c)), 0), gy), min(max(int(round((y + h) / c)), 0), gy)),
                slice(min(max(int(round(x / c)), 0), gx), min(max(int(round((x + w) / c)), 0), gx)))

    def fits(self, box, min_visible: float, floor: np.ndarray | None = None) -> tuple[bool, np.ndarray, int]:
        """Whether a box on top keeps every box below at least min_visible visible (or, with
        `floor`, at least floor[i] cells shown); also the shown counts and cells it would take."""
        region = self.top[self._slice(box)]
        total_self = max(box[2] * box[3] / self.cell ** 2, 1e-9)
        if region.size < min_visible * total_self:
            return False, self.shown, region.size
        covered = np.bincount(region.ravel(), minlength=self.n + 1)[1:self.n + 1]
        shown = self.shown[:self.n] - covered
        need = min_visible * self.total[:self.n] if floor is None else floor
        return bool((shown >= need).all()), shown, region.size

    def cells(self, xs: np.ndarray, ys: np.ndarray, ws: np.ndarray, hs: np.ndarray) -> tuple[np.ndarray, ...]:
        """`_slice` of many boxes at once: grid rows y0, y1 and columns x0, x1 of each."""
        c = self.cell
        gy, gx = self.top.shape
        x0, x1 = (np.clip(np.rint(v / c), 0, gx).astype(np.int64) for v in (xs, xs + ws))
        y0, y1 = (np.clip(np.rint(v / c), 0, gy).astype(np.int64) for v in (ys, ys + hs))
        return y0, y1, x0, x1

    def first_fit(self, cells: np.ndarray, min_visible: float) -> tuple[int, np.ndarray] | None:
        """The first candidate i (grid rows and columns cells[:, i], as from `cells`) for which
        `fits` holds, with the shown counts it would leave; None if none does. The first
        candidate is checked on the grid (it fits most often); a bound rules out most of the
        rest without the grid: a candidate covers at least its overlap with a box's rectangle
        less the rectangle's cells no longer shown."""
        n = self.n
        if n == 0:
            return (0, self.shown[:0]) if cells.shape[1] else None
        shown, need = self.shown[:n], min_visible * self.total[:n]
        y0, y1, x0, x1 = cells.tolist()

        def fit(i: int) -> np.ndarray | None:
            covered = np.bincount(self.top[y0[i]:y1[i], x0[i]:x1[i]].ravel(), minlength=n + 1)[1:n + 1]
            left = shown - covered
            return left if (left >= need).all() else None

        if not y0 or (left := fit(0)) is not None:
            return (0, left) if y0 else None
        if (shown < need).any():  # no candidate can fit
            return None
        ry0, ry1, rx0, rx1 = self.rects[:, :n]
        cy0, cy1, cx0, cx1 = cells[:, 1:, None]
        overlap = (np.maximum(np.minimum(cy1, ry1) - np.maximum(cy0, ry0), 0) *
                   np.maximum(np.minimum(cx1, rx1) - np.maximum(cx0, rx0), 0))
        # may fit: shown - max(overlap - hidden, 0) >= need for every box below, with hidden =
        # cells_of - shown (exact: integers and one float of the same range)
        for i in (np.flatnonzero((overlap <= self.cells_of[:n] - need).all(axis=1)) + 1).tolist():
            if (left := fit(i)) is not None:
                return i, left
        return None

    def add(self, box, shown: np.ndarray, size: int, cells: tuple[int, int, int, int] | None = None) -> int:
        """Put a box on top (`cells`: its grid rows and columns, when known, as `cells` gives)."""
        idx = self.n
        rows, cols = self._slice(box) if cells is None else (slice(cells[0], cells[1]), slice(cells[2], cells[3]))
        self.top[rows, cols] = idx + 1
        self.rects[:, idx] = rows.start, rows.stop, cols.start, cols.stop
        self.cells_of[idx] = (rows.stop - rows.start) * (cols.stop - cols.start)
        self.shown[:idx] = shown
        self.shown[idx] = size
        self.total[idx] = max(box[2] * box[3] / self.cell ** 2, 1e-9)
        self.n += 1
        return idx

    def visible(self) -> np.ndarray:
        return np.minimum(self.shown[:self.n] / np.maximum(self.total[:self.n], 1e-9), 1.0)


def _free_placement(rng, sizes: np.ndarray, params: dict, ctx: dict) -> Placement:
    """Place boxes of the given (w, h) bottom to top at random positions meeting visibility.
    Each round draws `tries` candidate positions for every box at once; a box takes the
    first that fits (candidates too far off the canvas to show min_visible of themselves
    are dropped before any look at the grid)."""
    W, H = ctx["width"], ctx["height"]
    tries, min_visible = params["tries"], params["min_visible"]
    n = len(sizes)
    w, h = sizes[:, :1].astype(np.int64), sizes[:, 1:].astype(np.int64)
    lo_x, lo_y = (-(w // 2), -(h // 2)) if params["truncate"] else (np.zeros_like(w), np.zeros_like(h))
    hi_x, hi_y = (W - w // 2 + 1, H - h // 2 + 1) if params["truncate"] else (W - w + 1, H - h + 1)
    best = None
    for _ in range(max(1, tries // 5)):
        occ = Occupancy(W, H, n)
        xs, ys = rng.integers(lo_x, hi_x, (n, tries)), rng.integers(lo_y, hi_y, (n, tries))
        cells = np.stack(occ.cells(xs, ys, w, h))
        area = (cells[1] - cells[0]) * (cells[3] - cells[2])
        seen = area >= min_visible * np.maximum(w * h / occ.cell ** 2, 1e-9)
        boxes = np.zeros((n, 4), np.int32)
        placed = np.zeros(n, bool)
        order = []
        for i in range(n):
            keep = np.flatnonzero(seen[i])
            hit = occ.first_fit(cells[:, i, keep], min_visible)
            if hit is not None:
                j = keep[hit[0]]
                box = (int(xs[i, j]), int(ys[i, j]), int(w[i, 0]), int(h[i, 0]))
                occ.add(box, hit[1], int(area[i, j]), tuple(cells[:, i, j].tolist()))
                boxes[i], placed[i] = box, True
                order.append(i)
        visible = np.zeros(n)
        visible[order] = occ.visible()
        score = (placed.sum(), visible[placed].mean() if placed.any() else 0.0)
        if best is None or score > best[0]:
            best = (score, Placement(boxes, placed, visible))
        if placed.all() and score[1] >= params["min_mean_visible"]:
            break
    return best[1]


def _fit(w: float, h: float, W: int, H: int, truncate: bool, min_visible: float = 0.0) -> tuple[int, int]:
    """A box size that can be placed: inside the canvas, or, when truncation is allowed, large
    enough to cross it only if it can still show min_visible of itself."""
    if (w > W or h > H) and (not truncate or min(1, W / w) * min(1, H / h) < min_visible):
        f = min(W / w, H / h)
        w, h = w * f, h * f
    return max(1, int(round(w))), max(1, int(round(h)))


def coco_area_edges(params: dict, W: int, H: int) -> np.ndarray:
    """Mask-area bucket edges: COCO's 32^2 and 96^2 thresholds scaled from 640x480 to W x H."""
    s2 = W * H / (640 * 480)
    top = max(params["max_area_fraction"] * W * H, params["min_area"] + 1)
    return np.clip(np.array([params["min_area"], 32 ** 2 * s2, 96 ** 2 * s2, top]), params["min_area"], top)


def sample_mask_areas(rng, n: int, params: dict, W: int, H: int) -> np.ndarray:
    edges = coco_area_edges(params, W, H)
    mix = np.asarray(params["size_mix"], float)
    bucket = np.minimum(np.searchsorted(np.cumsum(mix / mix.sum()), rng.random(n), side="right"), 2)
    lo, hi = edges[bucket], np.maximum(edges[bucket + 1], edges[bucket] + 1)
    return np.exp(rng.uniform(np.log(lo), np.log(hi)))


@layout("coco_sizes")
def coco_sizes(rng, objs: Objects, params: dict, ctx: dict) -> Placement:
    """SOC's mix: small / medium / large by mask area, log-uniform within each bucket."""
    W, H = ctx["width"], ctx["height"]
    area = sample_mask_areas(rng, len(objs.aspect), params, W, H)
    box_area = area / np.maximum(objs.alpha_fraction, 0.05)
    w = np.sqrt(box_area * objs.aspect)
    sizes = np.array([_fit(wi, ba / wi, W, H, params["truncate"], params["min_visible"])
                      for wi, ba in zip(w, box_area)]).reshape(-1, 2)
    return _free_placement(rng, sizes, params, ctx)


@layout("random_centers")
def random_centers(rng, objs: Objects, params: dict, ctx: dict) -> Placement:
    """The reference pipeline's layout: longest side a uniform fraction of the canvas."""
    W, H = ctx["width"], ctx["height"]
    lo, hi = params["scale"]
    longest = rng.uniform(lo, hi, len(objs.aspect)) * min(W, H)
    sizes = np.array([_fit(L if a >= 1 else L * a, L / a if a >= 1 else L, W, H, params["truncate"],
                           params["min_visible"]) for L, a in zip(longest, objs.aspect)]).reshape(-1, 2)
    return _free_placement(rng, sizes, params, ctx)


@layout("grid")
def grid(rng, objs: Objects, params: dict, ctx: dict) -> Placement:
    """One object per random grid cell, 60-90% of the cell, jittered; no overlaps."""
    W, H = ctx["width"], ctx["height"]
    cols, rows = params["grid"]
    cw, ch = W / cols, H / rows
    cells = rng.permutation(cols * rows)
    n = len(objs.aspect)
    boxes = np.zeros((n, 4), np.int32)
    placed = np.zeros(n, bool)
    for i in range(min(n, len(cells))):
        f = rng.uniform(0.6, 0.9)
        a = objs.aspect[i]
        w, h = (cw * f, cw * f / a) if a >= cw / ch else (ch * f * a, ch * f)
        w, h = max(1, int(w)), max(1, int(h))
        cx, cy = cells[i] % cols, cells[i] // cols
        x = int(cx * cw + rng.integers(0, max(1, int(cw - w)) + 1))
        y = int(cy * ch + rng.integers(0, max(1, int(ch - h)) + 1))
        boxes[i] = (min(x, W - w), min(y, H - h), w, h)
        placed[i] = True
    return Placement(boxes, placed, placed.astype(float))


@layout("replay")
def replay(rng, objs: Objects, params: dict, ctx: dict) -> Placement:
    """Boxes replayed from a COCO file (ctx["template"]): each object fitted inside its box."""
    n = len(objs.aspect)
    boxes = np.zeros((n, 4), np.int32)
    for i, (x, y, bw, bh) in enumerate(ctx["template"][:n]):
        a = objs.aspect[i]
        w, h = (bw, bw / a) if a >= bw / max(bh, 1e-9) else (bh * a, bh)
        w, h = max(1, int(round(w))), max(1, int(round(h)))
        boxes[i] = (int(round(x + (bw - w) / 2)), int(round(y + (bh - h) / 2)), w, h)
    placed = np.arange(n) < len(ctx["template"])
    return Placement(boxes, placed, placed.astype(float))


def replay_templates(path: str, width: int, height: int) -> list[list[tuple[float, float, float, float]]]:
    """Per image of a COCO instances file: its non-crowd boxes scaled to the canvas."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        images = {im["id"]: (float(im["width"]), float(im["height"])) for im in doc["images"]}
        images = {i: wh for i, wh in images.items() if all(math.isfinite(v) and v > 0 for v in wh)}
        boxes: dict[int, list] = {i: [] for i in sorted(images)}
        for a in doc["annotations"]:
            if not a.get("iscrowd", 0) and a["image_id"] in images:
                x, y, w, h = (float(v) for v in a["bbox"])
                if w > 0 and h > 0 and all(map(math.isfinite, (x, y, w, h))):
                    iw, ih = images[a["image_id"]]
                    box = _clip_box(x * width / iw, y * height / ih, w * width / iw, h * height / ih, width, height)
                    if box:
                        boxes[a["image_id"]].append(box)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SoclakeError(f"[layout] annotations {path}: cannot read COCO boxes ({type(e).__name__}: {e})") from None
    templates = [b for b in boxes.values() if b]
    if not templates:
        raise SoclakeError(f"[layout] annotations {path} has no usable boxes")
    return templates


def _clip_box(x: float, y: float, w: float, h: float, W: int, H: int) -> tuple[float, float, float, float] | None:
    """A box cut to the canvas (None when nothing of it is on the canvas or it is under a pixel):
    a template box far outside the image must not become a huge paste."""
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(W)), min(y + h, float(H))
    return (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 1 and y1 - y0 >= 1 else None


# ---------------------------------------------------------------------------- SOC's layout
# SOC_FACTS 1.5-1.6: box areas as fractions of the canvas area (SOC's pixel bounds at 640x480),
# large boxes first, and its retry budget. They define the layout kind, so they are not spec keys.
SOC_AREAS = {"large": (9216 / 307200, 0.5), "mid": (1024 / 307200, 9216 / 307200),
             "small": (512 / 307200, 1024 / 307200)}
SOC_ASPECT = (0.5, 2.0)
SOC_SHARES = (0.24, 0.34)        # large = round(0.24 n), mid = round(0.34 n), small = the rest
SOC_MIN_VISIBLE, SOC_MIN_MEAN_VISIBLE = 0.5, 0.8
SOC_TRIES = 100                  # candidates per box before the layout restarts
SOC_RESTARTS_PER_OBJECT = 100    # restarts per object (100 n) before the budget is exhausted


def soc_buckets(n: int) -> tuple[int, int, int]:
    """(large, mid, small) box counts for n objects: Python's round (ties to even), as SOC."""
    large, mid = int(round(SOC_SHARES[0] * n)), int(round(SOC_SHARES[1] * n))
    return large, mid, n - large - mid


def union_area(rects: np.ndarray) -> float:
    """Exact area of a union of axis-aligned rectangles (x0, y0, x1, y1), by coordinate compression."""
    if len(rects) == 0:
        return 0.0
    xs, ys = np.unique(rects[:, [0, 2]]), np.unique(rects[:, [1, 3]])
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    inside = ((rects[:, 0, None, None] <= cx[None, None, :]) & (cx[None, None, :] < rects[:, 2, None, None])
              & (rects[:, 1, None, None] <= cy[None, :, None]) & (cy[None, :, None] < rects[:, 3, None, None]))
    covered = inside.any(axis=0)
    return float((np.diff(ys)[:, None] * np.diff(xs)[None, :])[covered].sum())


def soc_visible_ratios(frames: np.ndarray) -> np.ndarray:
    """SOC's box visibility: 1 - area(box ∩ union of the boxes after it) / area(box)."""
    out = np.ones(len(frames))
    for i in range(len(frames) - 1):
        b = frames[i]
        later = frames[i + 1:].copy()
        later[:, [0, 1]] = np.maximum(later[:, [0, 1]], b[[0, 1]])
        later[:, [2, 3]] = np.minimum(later[:, [2, 3]], b[[2, 3]])
        later = later[(later[:, 2] > later[:, 0]) & (later[:, 3] > later[:, 1])]
        out[i] = 1 - union_area(later) / ((b[2] - b[0]) * (b[3] - b[1]))
    return out


def _soc_frames(rng, n: int) -> np.ndarray:
    """SOC's boxes for n objects (large, mid, small), every one kept at least SOC_MIN_VISIBLE
    visible and the mean at least SOC_MIN_MEAN_VISIBLE; LayoutExhausted after 100 n restarts."""
    large, mid, small = soc_buckets(n)
    kinds = ["large"] * large + ["mid"] * mid + ["small"] * small
    for _ in range(max(1, int(round(SOC_RESTARTS_PER_OBJECT * n)))):
        frames = np.zeros((0, 4))
        for kind in kinds:
            lo, hi = SOC_AREAS[kind]
            for _ in range(SOC_TRIES):
                area, aspect = rng.uniform(lo, hi), rng.uniform(*SOC_ASPECT)
                w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
                if w > 1 or h > 1:
                    continue
                x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
                candidate = np.vstack([frames, [x, y, x + w, y + h]])
                ratios = soc_visible_ratios(candidate)
                if ratios.min() >= SOC_MIN_VISIBLE and ratios.mean() >= SOC_MIN_MEAN_VISIBLE:
                    frames = candidate
                    break
            else:
                break  # this box failed: the whole layout restarts
        if len(frames) == n:
            return frames
    raise LayoutExhausted(f"soc layout: no layout of {n} boxes after {SOC_RESTARTS_PER_OBJECT * n:g} restarts")


def soc_fit(frame: tuple[int, int, int, int], aspect: float) -> tuple[int, int, int, int]:
    """SOC's "fit" of a segment (width / height = aspect) in a pixel box: as large as fits,
    aspect kept, centred (Python's round, ties to even)."""
    x0, y0, x1, y1 = frame
    bw, bh = max(1, round(x1 - x0)), max(1, round(y1 - y0))
    if bw / bh > aspect:
        new_w, new_h = round(bh * aspect), bh
    else:
        new_w, new_h = bw, round(bw / aspect)
    new_w, new_h = max(1, new_w), max(1, new_h)
    return round(x0 + (bw - new_w) / 2), round(y0 + (bh - new_h) / 2), new_w, new_h


@layout("soc")
def soc(rng, objs: Objects, params: dict, ctx: dict) -> Placement:
    """SOC's fine-grained box layout: boxes by area bucket, large to small, pasted in that order
    (small on top); object i (in sampling order) is fitted into box i."""
    W, H = ctx["width"], ctx["height"]
    n = len(objs.aspect)
    frames = _soc_frames(rng, n)
    pixels = [(int(x0 * W), int(y0 * H), int(min(x1 * W, W)), int(min(y1 * H, H))) for x0, y0, x1, y1 in frames]
    boxes = np.array([soc_fit(f, float(a)) for f, a in zip(pixels, objs.aspect)], np.int32).reshape(-1, 4)
    return Placement(boxes, np.ones(n, bool), soc_visible_ratios(frames), frames)
