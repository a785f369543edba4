"""The planner: turns a job spec and the pool into the plan table, one row per image,
before any pixel is rendered. DuckDB decides eligibility and counts; seeded numpy
Generators decide every draw, so the same spec and pool always give the same plan.
With [variations], each base row is followed by its one-factor variants (plan/variations.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from soclake.errors import SoclakeError
from soclake.lake import Lake
from soclake.lake.schemas import to_table
from soclake.parallel import ordered_map
from soclake.plan import layouts, pool, sampling, variations
from soclake.shards.tar import sample_key
from soclake.spec import variations as numbering
from soclake.spec.model import JobSpec


@dataclass
class PlanSummary:
    images: int
    objects: int
    categories: int
    short_images: int  # images where the layout placed fewer objects than drawn
    variants: int = 0          # [variations]: variant rows among the images
    variants_skipped: int = 0  # variants that could not be made (see variations.derive)
    size_ap: list[float | None] | None = None  # [sampling] size_feedback: AP_b read (small, medium, large)
    size_mix: list[float] | None = None        # [sampling] size_feedback: the size mix planned with
    replanned: int = 0  # images re-planned with their next seed after the layout's retry budget ran out (soc)
    filters: list[dict] | None = None  # [pool] filter = "auto": per source, the filter it got and its eligible segments


def make_plan(lake: Lake, spec: JobSpec, fingerprint: str, workers: int = 1) -> tuple[pa.Table, PlanSummary]:
    """The plan table of a job. Layouts run in chunks of images, over `workers` processes for
    large jobs; every image draws from its own seed, so the plan is the same for any count."""
    job, samp, lay, render = spec["job"], spec["sampling"], spec["layout"], spec["render"]
    counts = pool.open_eligible(lake, spec)
    filters = pool.auto_filters(lake) if spec["pool"]["filter"] == pool.AUTO_FILTER else None
    ctx = pool.category_context(lake, spec, counts)
    size_ap, size_mix = None, None
    if samp["size_feedback"]:
        size_ap = pool.size_ap(lake, spec)[0]
        size_mix = sampling.hardness_size_mix(lay["size_mix"], size_ap, samp)
        # the layouts (objects, distractors, decoys) read the mix from the spec they are given
        spec = replace(spec, values={**spec.values, "layout": {**lay, "size_mix": size_mix.tolist()}})
    rng = np.random.default_rng(np.random.SeedSequence([job["seed"], 0]))
    n_images = job["images"]
    templates = None
    if lay["kind"] == "replay":
        templates = layouts.replay_templates(spec.path(lay["annotations"]), lay["width"], lay["height"])
        k = np.array([len(templates[i % len(templates)]) for i in range(n_images)], np.int64)
    else:
        k = sampling.objects_per_image(rng, n_images, samp)
    names = dict(lake.read_con.execute("SELECT category_id, name FROM categories").fetchall())
    cat_index = {names[c]: i for i, c in enumerate(counts.category_id)}
    draws = sampling.draw(rng, counts, k, samp, cat_index, ctx)
    n_cat = counts.n[draws.cat]
    segs = pool.resolve(lake, counts.category_id[draws.cat], draws.rank, (draws.rank + 1) % n_cat).to_pydict()
    segs["category_id"] = counts.category_id[draws.cat].tolist()
    distractors = pool.distractor_pool(lake, spec).to_pydict() if samp["distractors"][1] else None
    backgrounds = pool.background_pool(lake, spec).to_pydict() if render["background"] == "pool" else None
    if samp["distractors"][1] and not distractors["segment_id"]:
        raise SoclakeError("[sampling] distractors > 0 but the pool has no distractor segments "
                           "(ingest some with `soclake ingest folders SOURCE --distractors DIR`)")
    if backgrounds is not None and not backgrounds["background_id"]:
        raise SoclakeError("[render] background = \"pool\" but the lake has no backgrounds; "
                           "ingest some with `soclake ingest backgrounds DIR`")
    candidates = variations.count_candidates(lake, counts, draws.cat, spec)
    bounds = np.searchsorted(draws.image, np.arange(n_images + 1))
    chunks = [(lo, min(lo + CHUNK, n_images)) for lo in range(0, n_images, CHUNK)]
    tasks = (_chunk_task(spec, fingerprint, lo, hi, bounds, segs, distractors, backgrounds, templates, candidates)
             for lo, hi in chunks)
    rows, short, skipped, replanned = [], 0, 0, 0
    for chunk_rows, chunk_short, chunk_skipped, chunk_replanned in ordered_map(plan_chunk, tasks,
                                                                               workers if len(chunks) > 1 else 1):
        rows += chunk_rows
        short += chunk_short
        skipped += chunk_skipped
        replanned += chunk_replanned
    table = to_table("plan", rows)
    n_objects = sum(sum(o["role"] == "object" for o in r["objects"]) for r in rows)
    return table, PlanSummary(len(rows), n_objects, len(set(segs["category_id"])), short,
                              sum(r.get("factor") is not None for r in rows), skipped,
                              None if size_ap is None else [None if np.isnan(a) else float(a) for a in size_ap],
                              None if size_mix is None else size_mix.tolist(), replanned, filters)


def sampling_weights(lake: Lake, spec: JobSpec, fingerprint: str) -> pa.Table:
    """The sampling_weights rows of a job: per eligible category, what the strategy knew and
    the share it aims for, beside the uniform-segment and temperature shares."""
    samp = spec["sampling"]
    counts = pool.open_eligible(lake, spec)
    ctx = pool.category_context(lake, spec, counts)
    w = sampling.category_weights(counts, samp, ctx)
    n = counts.n.astype(np.float64)
    nt = n ** samp["temperature"]
    used = sampling.ap_used(ctx, samp) if samp["strategy"] == "hardness" else None
    rows = [{"job": spec.name, "fingerprint": fingerprint, "category_id": int(c), "eligible": int(counts.n[i]),
             "frequency": str(ctx.frequency[i]), "share": float(w[i] / w.sum()), "weight": float(w[i]),
             "feedback_ap": None if ctx.ap is None or np.isnan(ctx.ap[i]) else float(ctx.ap[i]),
             "ap_used": None if used is None else float(used[i]),
             "uniform_share": float(n[i] / n.sum()), "temperature_share": float(nt[i] / nt.sum())}
            for i, c in enumerate(counts.category_id)]
    return to_table("sampling_weights", rows)


CHUNK = 2000  # images per planning task
REPLANS = 100  # next seeds an image may try when its layout runs out of retries


def _chunk_task(spec, fingerprint, lo, hi, bounds, segs, distractors, backgrounds, templates, candidates) -> dict:
    a, b = int(bounds[lo]), int(bounds[hi])
    chunk_segs = {k: v[a:b] for k, v in segs.items()}
    return {"spec": spec, "fingerprint": fingerprint, "lo": lo, "hi": hi, "offsets": (bounds[lo:hi + 1] - a).tolist(),
            "segs": chunk_segs, "distractors": distractors, "backgrounds": backgrounds, "templates": templates,
            "candidates": {c: candidates[c] for c in set(chunk_segs["category_id"]) if c in candidates}}


def plan_chunk(task: dict) -> tuple[list[dict], int, int, int]:
    """Plan base images [lo, hi) and their variants: a pure function of the task (each image
    has its own seed). Returns the rows, short images, variants that could not be made and
    images re-planned with their next seed."""
    spec, lay = task["spec"], task["spec"]["layout"]
    templates, off = task["templates"], task["offsets"]
    rows, short, skipped, replanned = [], 0, 0, 0
    for j, i in enumerate(range(task["lo"], task["hi"])):
        ctx = {"width": lay["width"], "height": lay["height"],
               "template": templates[i % len(templates)] if templates else None}
        for attempt in range(REPLANS + 1):
            # the first seed is the image's; each exhausted layout moves on to the next one
            img_rng = np.random.default_rng(np.random.SeedSequence([spec["job"]["seed"], 1, i] + [attempt] * (attempt > 0)))
            try:
                row = _plan_image(img_rng, numbering.image_id(spec, i, 0), numbering.shard_of(spec, i),
                                  range(off[j], off[j + 1]), task["segs"], task["distractors"], task["backgrounds"],
                                  spec, ctx)
                break
            except layouts.LayoutExhausted as e:
                if attempt == REPLANS:
                    raise SoclakeError(f"image {i}: {e}, also with the next {REPLANS} seeds; plan fewer "
                                       "objects per image ([sampling] objects)") from None
        replanned += attempt > 0
        short += row.pop("_short")
        group, group_skipped = variations.derive(row, i, spec, task["candidates"])
        skipped += group_skipped
        rows += [{"job": spec.name, "fingerprint": task["fingerprint"], **r, "key": sample_key(r["image_id"])}
                 for r in group]
    return rows, short, skipped, replanned


def _plan_image(rng, image_id: int, shard: int, slots: range, segs: dict, distractors: dict | None,
                backgrounds: dict | None, spec: JobSpec, ctx: dict) -> dict:
    samp, lay = spec["sampling"], spec["layout"]
    items = [dict(segment_id=segs["segment_id"][s], fallback_id=segs["fallback_id"][s],
                  category_id=segs["category_id"][s], role="object",
                  aspect=segs["width"][s] / segs["height"][s], fraction=segs["alpha_fraction"][s]) for s in slots]
    if distractors:
        n_d = int(rng.integers(samp["distractors"][0], samp["distractors"][1] + 1))
        for d in rng.integers(0, len(distractors["segment_id"]), n_d):
            items.append(dict(segment_id=distractors["segment_id"][d], fallback_id=distractors["segment_id"][d],
                              category_id=0, role="distractor", aspect=distractors["width"][d] / distractors["height"][d],
                              fraction=distractors["alpha_fraction"][d]))
        if lay["kind"] != "replay":
            items = [items[j] for j in rng.permutation(len(items))]  # distractors anywhere in z
    objs = layouts.Objects(np.array([it["aspect"] for it in items]), np.array([it["fraction"] for it in items]))
    placement = layouts.LAYOUTS[lay["kind"]](rng, objs, lay, ctx)
    pastes = []
    for it, box, ok in zip(items, placement.boxes, placement.placed):
        if ok:
            pastes.append(_paste(rng, it, box, spec))
    background_id, crop = None, None
    if backgrounds:
        b = int(rng.integers(len(backgrounds["background_id"])))
        background_id = backgrounds["background_id"][b]
        crop = cover_crop(rng, backgrounds["width"][b], backgrounds["height"][b], ctx["width"], ctx["height"])
        pastes = _decoys(rng, items, backgrounds, spec, ctx) + pastes
    _number(pastes)
    short = int(sum(1 for it, ok in zip(items, placement.placed) if it["role"] == "object" and not ok) > 0)
    return {"image_id": image_id, "key": sample_key(image_id), "shard": shard,
            "seed": int(rng.integers(0, 2 ** 62)), "width": ctx["width"], "height": ctx["height"],
            "background_id": background_id, "background_crop": crop, "objects": pastes, "_short": short}


def _paste(rng, it: dict, box, spec: JobSpec) -> dict:
    lay, render = spec["layout"], spec["render"]
    return {"segment_id": it["segment_id"], "fallback_id": it["fallback_id"], "category_id": it["category_id"],
            "role": it["role"], "x": int(box[0]), "y": int(box[1]), "w": int(box[2]), "h": int(box[3]),
            "flip": bool(lay["flip"] and rng.random() < 0.5),
            "angle": float(rng.uniform(-lay["rotate"], lay["rotate"])) if lay["rotate"] else 0.0,
            "blend": render["blend"][int(rng.integers(len(render["blend"])))],
            "source_box": None, "source_background_id": None}


def _number(pastes: list[dict]) -> None:
    """Keys that stay with each paste in every variant of the image: its render seed (its
    position here) and, for labelled objects, its panoptic id (1, 2, ... bottom to top)."""
    label = 0
    for i, p in enumerate(pastes):
        label += p["role"] == "object"
        p["panoptic_id"] = label if p["role"] == "object" else 0
        p["seed"] = i


def cover_crop(rng, bw: int, bh: int, W: int, H: int) -> list[int]:
    """A random crop of a bw x bh background with the canvas's aspect (resized to W x H)."""
    scale = max(W / bw, H / bh)
    cw, ch = min(bw, int(round(W / scale))), min(bh, int(round(H / scale)))
    return [int(rng.integers(0, bw - cw + 1)), int(rng.integers(0, bh - ch + 1)), cw, ch]


def _decoys(rng, items: list[dict], backgrounds: dict, spec: JobSpec, ctx: dict) -> list[dict]:
    """Background-textured cut-outs shaped like the image's segments, pasted under everything."""
    lo, hi = spec["sampling"]["decoys"]
    n = int(rng.integers(lo, hi + 1))
    shapes = [it for it in items if it["role"] == "object"]
    out = []
    W, H = ctx["width"], ctx["height"]
    for _ in range(n if shapes else 0):
        donor = shapes[int(rng.integers(len(shapes)))]
        area = layouts.sample_mask_areas(rng, 1, spec["layout"], W, H)[0] / max(donor["fraction"], 0.05)
        w = max(2, min(W, int(np.sqrt(area * donor["aspect"]))))
        h = max(2, min(H, int(w / donor["aspect"])))
        b = int(rng.integers(len(backgrounds["background_id"])))
        bw, bh = backgrounds["width"][b], backgrounds["height"][b]
        scale = max(W / bw, H / bh)
        sw, sh = max(1, min(bw, int(w / scale))), max(1, min(bh, int(h / scale)))
        paste = _paste(rng, {**donor, "role": "decoy", "category_id": 0}, (rng.integers(0, W - w + 1),
                       rng.integers(0, H - h + 1), w, h), spec)
        paste.update(source_background_id=backgrounds["background_id"][b],
                     source_box=[int(rng.integers(0, bw - sw + 1)), int(rng.integers(0, bh - sh + 1)), sw, sh])
        out.append(paste)
    return out
