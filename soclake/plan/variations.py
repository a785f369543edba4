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

from soclake.errors import SoclakeError
from soclake.plan import layouts

FACTORS = ("size", "position", "existence", "count")
# named positions: the target's centre moves to the middle of that third (None: that axis stays)
POSITIONS = {"left": (1 / 6, None), "right": (5 / 6, None), "top": (None, 1 / 6), "bottom": (None, 5 / 6),
             "center": (0.5, 0.5)}


# ---------------------------------------------------------------------------- numbering
def variants(spec) -> list[tuple[str, str]]:
    """(factor, value) of every variant of a base, in image order after the base."""
    v = spec["variations"]
    out: list[tuple[str, str]] = []
    for factor in v["factors"]:
        if factor == "existence":
            out.append((factor, "removed"))
        else:
            out += [(factor, f"{x:g}" if factor == "size" else str(x)) for x in v[factor]]
    return out


def group_size(spec) -> int:
    """Images per base: the base and its variants (1 without variations)."""
    return 1 + len(variants(spec))


def image_id(spec, base: int, variant: int) -> int:
    """Image ids leave room for every variant, so a skipped variant never moves another."""
    return base * group_size(spec) + variant


def groups_per_shard(spec) -> int:
    return max(1, spec["job"]["shard_size"] // group_size(spec))


def shard_of(spec, base: int) -> int:
    """A base and its variants always share a shard (so a group is committed together)."""
    return base // groups_per_shard(spec)


def shard_count(spec) -> int:
    return -(-spec["job"]["images"] // groups_per_shard(spec))


# ---------------------------------------------------------------------------- spec checks
def parse_position(value: str) -> tuple[str, float | None, float | None]:
    """("named", fx, fy) for a named third, ("offset", dx, dy) for "DX,DY" in canvas fractions."""
    name = value.strip().lower()
    if name in POSITIONS:
        return ("named", *POSITIONS[name])
    parts = name.split(",")
    try:
        dx, dy = (float(p) for p in parts)
    except ValueError:
        raise ValueError(value) from None
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise ValueError(value)
    return "offset", dx, dy


def check(values: dict, where: str) -> None:
    """Validate the [variations] section of a resolved spec (called by jobspec)."""
    v = values["variations"]
    unknown = [f for f in v["factors"] if f not in FACTORS]
    if unknown or len(set(v["factors"])) != len(v["factors"]):
        raise SoclakeError(f"{where}: [variations] factors must be distinct values of {list(FACTORS)}, "
                           f"got {v['factors']}")
    for factor in ("size", "position", "count"):
        if factor in v["factors"] and not v[factor]:
            raise SoclakeError(f"{where}: [variations] factors lists {factor!r} but [variations] {factor} is empty")
    if any(not (0 < f <= 100) for f in v["size"]):
        raise SoclakeError(f"{where}: [variations] size factors must be in (0, 100], got {v['size']}")
    if any(k < 1 for k in v["count"]):
        raise SoclakeError(f"{where}: [variations] count values must be >= 1 (instances added), got {v['count']}")
    for p in v["position"]:
        try:
            parse_position(p)
        except ValueError:
            raise SoclakeError(f"{where}: [variations] position {p!r} is neither one of {', '.join(POSITIONS)} "
                               "nor an offset \"DX,DY\" in fractions of the canvas, e.g. \"0.25,-0.1\"") from None


# ---------------------------------------------------------------------------- candidates
def count_candidates(lake, counts, cats: np.ndarray, spec) -> dict[int, list[tuple]]:
    """Per category the job draws from: a seeded handful of its eligible segments, from which
    count variants take their added instances: category_id -> [(segment_id, fallback_id, w, h)]."""
    if "count" not in spec["variations"]["factors"]:
        return {}
    from soclake.plan import pool
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
