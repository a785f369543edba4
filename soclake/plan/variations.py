"""One-factor variation sets (SPEC-style, the [variations] spec section): from each base plan
row, variants that change one factor of one object (size, position, existence, count) and
keep everything else. Pure functions of (base row, base index, spec, candidate segments),
plus the numbering of groups into image ids and shards. Rendering is not done here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from soclake.plan import layouts, pool
from soclake.spec.variations import image_id, parse_position, variants


# ---------------------------------------------------------------------------- candidates
def count_candidates(lake, counts, cats: np.ndarray, spec) -> dict[int, list[tuple]]:
    """Per category the job draws from: a seeded handful of its eligible segments, from which
    count variants take their added instances: category_id -> [(segment_id, fallback_id, w, h)]."""
    if "count" not in spec["variations"]["factors"]:
        return {}
    m = 2 * max(spec["variations"]["count"]) + 4
    rng = np.random.default_rng(np.random.SeedSequence([spec["job"]["seed"], 3]))
    cat_index, ranks = [], []
    for c in np.unique(cats):
        n = int(counts.n[c])
        r = rng.choice(n, size=min(n, m), replace=False)
        cat_index += [c] * len(r)
        ranks += r.tolist()
    cat_index, ranks = np.array(cat_index, np.int64), np.array(ranks, np.int64)
    rows = pool.resolve(lake, counts.category_id[cat_index], ranks, (ranks + 1) % counts.n[cat_index]).to_pydict()
    out: dict[int, list[tuple]] = {}
    for c, sid, fid, w, h in zip(counts.category_id[cat_index].tolist(), rows["segment_id"], rows["fallback_id"],
                                 rows["width"], rows["height"]):
        out.setdefault(c, []).append((sid, fid, w, h))
    return out


# ---------------------------------------------------------------------------- variants
@dataclass
class Context:
    width: int
    height: int
    layout: dict
    rng: np.random.Generator
    candidates: dict[int, list[tuple]]


Variant = tuple[list[dict], list[int]]  # the variant's objects, panoptic ids of added instances
FactorFn = Callable[[list[dict], int, str, Context], "Variant | None"]


def pick_target(objects: list[dict], how: str, rng: np.random.Generator) -> int | None:
    """Index of the labelled object the variants change: the largest planned box (first on
    ties) or a random one; None when the base has no labelled object."""
    labelled = [i for i, o in enumerate(objects) if o["role"] == "object"]
    if not labelled:
        return None
    if how == "random":
        return labelled[int(rng.integers(len(labelled)))]
    return max(labelled, key=lambda i: (objects[i]["w"] * objects[i]["h"], -i))


def _fit(w: float, h: float, ctx: Context) -> tuple[int, int]:
    s = min(1.0, ctx.width / w, ctx.height / h)
    return max(1, int(round(w * s))), max(1, int(round(h * s)))


def _at(o: dict, cx: float, cy: float, w: int, h: int, ctx: Context) -> dict:
    """o with a w x h box centred at (cx, cy), shifted as little as needed to lie inside the canvas."""
    x = min(max(int(round(cx - w / 2)), 0), ctx.width - w)
    y = min(max(int(round(cy - h / 2)), 0), ctx.height - h)
    return {**o, "x": x, "y": y, "w": w, "h": h}


def _centre(o: dict) -> tuple[float, float]:
    return o["x"] + o["w"] / 2, o["y"] + o["h"] / 2


def _size(objects: list[dict], t: int, value: str, ctx: Context) -> Variant:
    o, f = objects[t], float(value)
    w, h = _fit(o["w"] * f, o["h"] * f, ctx)
    return objects[:t] + [_at(o, *_centre(o), w, h, ctx)] + objects[t + 1:], []


def _position(objects: list[dict], t: int, value: str, ctx: Context) -> Variant:
    o = objects[t]
    kind, a, b = parse_position(value)
    cx, cy = _centre(o)
    if kind == "named":
        cx = cx if a is None else a * ctx.width
        cy = cy if b is None else b * ctx.height
    else:
        cx, cy = cx + a * ctx.width, cy + b * ctx.height
    return objects[:t] + [_at(o, cx, cy, o["w"], o["h"], ctx)] + objects[t + 1:], []


def _existence(objects: list[dict], t: int, value: str, ctx: Context) -> Variant:
    return objects[:t] + objects[t + 1:], []


def _count(objects: list[dict], t: int, value: str, ctx: Context) -> Variant | None:
    """k more instances of the target's category on top of everything, each where every object
    keeps min_visible of its box (or what it had, if less), at the target's size or, where that
    does not fit, smaller (SHRINK); None if they do not fit at all."""
    o, k = objects[t], int(value)
    picks = _pick_segments(ctx.candidates.get(o["category_id"], []), k, {p["segment_id"] for p in objects}, o, ctx.rng)
    occ, floor = _occupancy(objects, k, ctx)
    pid = max(p["panoptic_id"] for p in objects) + 1
    seed = max(p["seed"] for p in objects) + 1
    added = []
    for j, (sid, fid, aspect) in enumerate(picks):
        box = _free_spot(occ, floor, o["w"] * o["h"], aspect, ctx)
        if box is None:
            return None
        floor = np.append(floor, ctx.layout["min_visible"] * occ.total[occ.n - 1])
        added.append({**o, "segment_id": sid, "fallback_id": fid, "x": box[0], "y": box[1], "w": box[2], "h": box[3],
                      "panoptic_id": pid + j, "seed": seed + j})
    return objects + added, [a["panoptic_id"] for a in added]


def _pick_segments(candidates: list[tuple], k: int, in_image: set[str], target: dict,
                   rng: np.random.Generator) -> list[tuple[str, str, float]]:
    """k (segment_id, fallback_id, aspect): segments of the category not in the image first,
    then ones that are, repeating if the category has fewer than k; the target's own segment
    when there is no candidate."""
    order = [candidates[int(i)] for i in rng.permutation(len(candidates))]
    ranked = [c for c in order if c[0] not in in_image] + [c for c in order if c[0] in in_image]
    if not ranked:
        ranked = [(target["segment_id"], target["fallback_id"], target["w"], target["h"])]
    return [(sid, fid, w / h) for sid, fid, w, h in (ranked[j % len(ranked)] for j in range(k))]


def _occupancy(objects: list[dict], extra: int, ctx: Context) -> tuple[layouts.Occupancy, np.ndarray]:
    """The base's boxes (decoys aside: they lie under everything) and the shown cells each must keep."""
    occ = layouts.Occupancy(ctx.width, ctx.height, len(objects) + extra)
    for p in objects:
        if p["role"] != "decoy":
            box = (p["x"], p["y"], p["w"], p["h"])
            _, shown, size = occ.fits(box, 0.0)
            occ.add(box, shown, size)
    n = occ.n
    return occ, np.minimum(ctx.layout["min_visible"] * occ.total[:n], occ.shown[:n])


def _free_spot(occ: layouts.Occupancy, floor: np.ndarray, area: float, aspect: float,
               ctx: Context) -> tuple[int, int, int, int] | None:
    """A box of the given area and aspect (or, where none fits, 3/4 or 1/2 of its side) that
    keeps every box below at least its floor; added to occ."""
    for scale in SHRINK:
        w, h = _fit(scale * math.sqrt(area * aspect), scale * math.sqrt(area / aspect), ctx)
        for _ in range(ctx.layout["tries"]):
            box = (int(ctx.rng.integers(0, ctx.width - w + 1)), int(ctx.rng.integers(0, ctx.height - h + 1)), w, h)
            ok, shown, size = occ.fits(box, ctx.layout["min_visible"], floor)
            if ok:
                occ.add(box, shown, size)
                return box
    return None


SHRINK = (1.0, 0.75, 0.5)  # sides tried for an added instance, relative to the target's


FACTOR_FNS: dict[str, FactorFn] = {"size": _size, "position": _position, "existence": _existence, "count": _count}


def derive(row: dict, base: int, spec, candidates: dict[int, list[tuple]]) -> tuple[list[dict], int]:
    """The base row (with its group columns) and its variant rows; also how many variants
    could not be made (a base without labelled objects, added instances that do not fit, a
    variant that would equal its base: a target already spanning the canvas or already there)."""
    todo = variants(spec)
    if not todo:
        return [row], 0
    seed = spec["job"]["seed"]
    objects = row["objects"]
    t = pick_target(objects, spec["variations"]["target"], np.random.default_rng(np.random.SeedSequence([seed, 2, base])))
    head = {**row, "base_id": row["image_id"], "factor": None, "factor_value": None,
            "target_id": None if t is None else objects[t]["panoptic_id"], "added_ids": []}
    if t is None:
        return [head], len(todo)
    rows, skipped = [head], 0
    for v, (factor, value) in enumerate(todo, 1):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2, base, v]))
        out = FACTOR_FNS[factor](objects, t, value, Context(row["width"], row["height"], spec["layout"], rng, candidates))
        if out is None or out[0] == objects:  # no room, or no change (a target spanning the canvas cannot grow)
            skipped += 1
            continue
        rows.append({**head, "image_id": image_id(spec, base, v), "objects": out[0], "factor": factor,
                     "factor_value": value, "added_ids": out[1]})
    return rows, skipped
