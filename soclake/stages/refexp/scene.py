"""Scene graph of one composed image: objects with category, attributes, position and size
rank, and pairwise spatial relations computed from their boxes."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Obj:
    ann_id: int
    category: str
    colour: str | None
    phrase: str | None          # short_phrase from the pool ("red wooden ball")
    bbox: tuple[float, float, float, float]  # x, y, w, h (visible mask)
    area: int
    horizontal: str             # left / middle / right third of the image
    vertical: str               # top / middle / bottom third
    size_rank: int              # 0 = largest visible area in the image
    layer: int = 0              # paste order, higher = on top

    @cached_property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2


@dataclass
class SceneGraph:
    width: int
    height: int
    objects: list[Obj] = field(default_factory=list)

    def by_id(self) -> dict[int, Obj]:
        return self._by_id

    @cached_property
    def _by_id(self) -> dict[int, Obj]:
        return {o.ann_id: o for o in self.objects}

    @cached_property
    def index(self) -> dict[int, int]:
        return {o.ann_id: i for i, o in enumerate(self.objects)}

    @cached_property
    def relations(self) -> dict[str, np.ndarray]:
        """rel -> (n, n) bool matrix, [i, j] = objects[i] rel objects[j]; same rules as below."""
        b = np.array([o.bbox for o in self.objects], np.float64).reshape(-1, 4)
        x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        cx, cy = x0 + b[:, 2] / 2, y0 + b[:, 3] / 2
        left = (x1[:, None] <= cx[None, :]) & (cx[:, None] < x0[None, :])
        up = (y1[:, None] <= cy[None, :]) & (cy[:, None] < y0[None, :])
        gap_x = np.maximum(x0[:, None] - x1[None, :], x0[None, :] - x1[:, None])
        gap_y = np.maximum(y0[:, None] - y1[None, :], y0[None, :] - y1[:, None])
        overlap = (gap_x < 0) & (gap_y < 0)
        layer = np.array([o.layer for o in self.objects])
        near = ~overlap & (np.maximum(gap_x, gap_y) < NEAR * np.hypot(self.width, self.height))
        np.fill_diagonal(near, False)
        return {"left_of": left, "right_of": left.T, "above": up, "below": up.T,
                "on_top_of": overlap & (layer[:, None] > layer[None, :]), "near": near}

    @cached_property
    def memo(self) -> dict:
        """Selector -> referent set, filled by programs.execute (a graph is never mutated)."""
        return {}


def third(value: float, extent: float, names: tuple[str, str, str]) -> str:
    return names[min(2, int(3 * value / max(extent, 1e-9)))]


def from_sample(info: dict) -> SceneGraph:
    """The scene graph of a sample's JSON document (the compose stage's KEY.json)."""
    W, H = info["width"], info["height"]
    insts = info["instances"]
    order = sorted(range(len(insts)), key=lambda i: (-insts[i]["area"], insts[i]["ann_id"]))
    rank = {i: r for r, i in enumerate(order)}
    objs = []
    for i, inst in enumerate(insts):
        x, y, w, h = inst["bbox"]
        attrs = inst.get("attributes") or {}
        objs.append(Obj(inst["ann_id"], inst["category"], attrs.get("dominant_color"), attrs.get("short_phrase"),
                        (x, y, w, h), inst["area"], third(x + w / 2, W, ("left", "middle", "right")),
                        third(y + h / 2, H, ("top", "middle", "bottom")), rank[i], inst.get("layer", i)))
    return SceneGraph(W, H, objs)


# ---------------------------------------------------------------------------- relations
def left_of(a: Obj, b: Obj) -> bool:
    """a lies entirely to the left of b's centre and its centre left of b's left edge."""
    return a.bbox[0] + a.bbox[2] <= b.centre[0] and a.centre[0] < b.bbox[0]


def right_of(a: Obj, b: Obj) -> bool:
    return left_of(b, a)


def above(a: Obj, b: Obj) -> bool:
    return a.bbox[1] + a.bbox[3] <= b.centre[1] and a.centre[1] < b.bbox[1]


def below(a: Obj, b: Obj) -> bool:
    return above(b, a)


NEAR = 0.05  # boxes closer than 5% of the image diagonal (and not overlapping) are near


def boxes_gap(a: Obj, b: Obj) -> tuple[float, float]:
    ax0, ay0, aw, ah = a.bbox
    bx0, by0, bw, bh = b.bbox
    return max(ax0 - (bx0 + bw), bx0 - (ax0 + aw)), max(ay0 - (by0 + bh), by0 - (ay0 + ah))


def on_top_of(a: Obj, b: Obj) -> bool:
    """a's box overlaps b's and a was pasted above b."""
    gx, gy = boxes_gap(a, b)
    return gx < 0 and gy < 0 and a.layer > b.layer


def near(a: Obj, b: Obj, diagonal: float) -> bool:
    gx, gy = boxes_gap(a, b)
    return not (gx < 0 and gy < 0) and max(gx, gy) < NEAR * diagonal


RELATIONS = {"left_of": left_of, "right_of": right_of, "above": above, "below": below, "on_top_of": on_top_of,
             "near": near}
