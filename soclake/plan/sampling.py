"""Sampling strategies: which (category, rank) each object slot of each image gets.

A strategy maps eligible counts per category (and a Context: lake category ids, feedback AP,
LVIS frequency buckets, computed by the planner in SQL) to category weights; drawing is
shared and vectorised over the whole job with one seeded numpy Generator, so a plan is a
pure function of (counts, context, seed, spec) and never depends on worker count or SQL
thread scheduling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from soclake.errors import SoclakeError
from soclake.plan.types import CategoryCounts, Context
from soclake.registry import Registry
from soclake.vocab import canonical_category

Weights = Callable[[np.ndarray, dict, Context], np.ndarray]


def ap_used(ctx: Context, sampling: dict) -> np.ndarray:
    """The feedback AP with categories it does not cover set to [sampling] missing: the mean,
    min or max AP of the covered eligible categories, or a given number."""
    if ctx.ap is None:
        raise SoclakeError("strategy \"hardness\" needs [sampling] feedback")
    known = ~np.isnan(ctx.ap)
    if not known.any():
        raise SoclakeError(f"feedback {sampling.get('feedback')!r} covers none of the job's {len(ctx.ap)} eligible "
                           "categories; load feedback that names them, or widen [pool]")
    missing = sampling["missing"]
    fill = missing if isinstance(missing, (int, float)) else {"mean": np.mean, "min": np.min, "max": np.max}[missing](ctx.ap[known])
    return np.where(known, ctx.ap, fill)


def hardness(n: np.ndarray, p: dict, ctx: Context) -> np.ndarray:
    """weight_c = n_c^t * max(floor, 1 - AP_c)^gamma (t = temperature): hard categories (low AP)
    are drawn more, n_c^t keeps the pool's size in play, the floor keeps solved ones alive."""
    return n.astype(np.float64) ** p["temperature"] * np.maximum(p["floor"], 1.0 - ap_used(ctx, p)) ** p["gamma"]


SIZE_BUCKETS = ("small", "medium", "large")


def hardness_size_mix(size_mix: list[float], ap: np.ndarray, p: dict) -> np.ndarray:
    """[sampling] size_feedback: the layout's size mix reweighted by hardness, normalised:
    mix'_b = size_mix_b * max(floor, 1 - AP_b)^gamma / sum over buckets, with AP_b the mean
    ap_small / ap_medium / ap_large of the eligible categories the feedback gives it for."""
    mix = np.asarray(size_mix, np.float64)
    if np.isnan(ap).all():
        raise SoclakeError(f"[sampling] size_feedback: feedback {p['feedback']!r} has no ap_small / ap_medium / "
                           "ap_large for any of the job's eligible categories; load a file with those columns "
                           "(e.g. from soclake.outputs.feedback.from_cocoeval) or set size_feedback = false")
    lacking = [f"ap_{b}" for b, a, m in zip(SIZE_BUCKETS, ap, mix) if np.isnan(a) and m > 0]
    if lacking:
        raise SoclakeError(f"[sampling] size_feedback: feedback {p['feedback']!r} gives no {' / '.join(lacking)} "
                           "for any of the job's eligible categories; add those values, or set that bucket's "
                           "share in [layout] size_mix to 0")
    w = mix * np.maximum(p["floor"], 1.0 - np.nan_to_num(ap, nan=1.0)) ** p["gamma"]
    return w / w.sum()


STRATEGIES = Registry("sampling strategy", {
    "uniform_segments": lambda n, p, ctx: n.astype(np.float64),          # SOC: every segment equally likely
    "uniform_categories": lambda n, p, ctx: np.ones(len(n), np.float64),
    "temperature": lambda n, p, ctx: n.astype(np.float64) ** p["temperature"],
    "hardness": hardness,
})


def category_weights(counts: CategoryCounts, sampling: dict, ctx: Context | None = None) -> np.ndarray:
    """The strategy's weights times [sampling] bucket_weights of each category's LVIS bucket."""
    ctx = ctx or Context(counts.category_id)
    w = STRATEGIES[sampling["strategy"]](counts.n, sampling, ctx)
    buckets = {k[0]: v for k, v in sampling.get("bucket_weights", {}).items()}
    if buckets:
        if ctx.frequency is None:
            raise SoclakeError("[sampling] bucket_weights need the categories' LVIS frequency buckets")
        w = w * np.array([buckets.get(f[0], 1.0) for f in ctx.frequency])
    return w


def category_probabilities(counts: CategoryCounts, sampling: dict, ctx: Context | None = None) -> np.ndarray:
    w = category_weights(counts, sampling, ctx)
    return w / w.sum()


@dataclass
class Draws:
    """One entry per object slot, grouped by image in ascending order."""
    image: np.ndarray  # int64 image index
    cat: np.ndarray    # index into CategoryCounts arrays
    rank: np.ndarray   # rank of the segment within its category


def objects_per_image(rng: np.random.Generator, n_images: int, sampling: dict) -> np.ndarray:
    lo, hi = sampling["objects"]
    return rng.integers(lo, hi + 1, n_images)


def draw(rng: np.random.Generator, counts: CategoryCounts, k: np.ndarray, sampling: dict,
         category_index: dict[str, int], ctx: Context | None = None) -> Draws:
    """Draw categories and ranks for k[i] objects in image i."""
    if sampling["single_category"]:
        return _draw_single_category(rng, counts, k, sampling, ctx)
    p = category_probabilities(counts, sampling, ctx)
    image = np.repeat(np.arange(len(k), dtype=np.int64), k)
    cat = rng.choice(len(p), size=len(image), p=p)
    _place_quotas(rng, cat, sampling["quotas"], category_index)
    rank = (rng.random(len(cat)) * counts.n[cat]).astype(np.int64)
    _redraw_duplicates(rng, image, cat, rank, counts.n)
    return Draws(image, cat, rank)


def _place_quotas(rng: np.random.Generator, cat: np.ndarray, quotas: dict[str, int],
                  category_index: dict[str, int]) -> None:
    if not quotas:
        return
    names = sorted(quotas)
    idx = [category_index.get(canonical_category(name)) for name in names]
    for name, i in zip(names, idx):
        if i is None:
            raise SoclakeError(f"[sampling] quotas: category {name!r} has no eligible segment in this pool")
    total = sum(quotas.values())
    if total > len(cat):  # checked before anything of that size is allocated
        raise SoclakeError(f"[sampling] quotas ask for {total} instances but the job plans only {len(cat)} "
                           "objects; raise [job] images or [sampling] objects, or lower the quotas")
    wanted = np.repeat(np.array(idx, np.int64), [quotas[n] for n in names])
    slots = rng.permutation(len(cat))[:len(wanted)]
    cat[slots] = wanted


def _redraw_duplicates(rng, image, cat, rank, n, passes: int = 8) -> None:
    """Avoid pasting the same segment twice in one image when the category has others."""
    for _ in range(passes):
        key = np.stack([image, cat, rank], axis=1)
        _, first = np.unique(key, axis=0, return_index=True)
        dup = np.ones(len(key), bool)
        dup[first] = False
        dup &= n[cat] > 1
        if not dup.any():
            return
        rank[dup] = (rng.random(int(dup.sum())) * n[cat[dup]]).astype(np.int64)


def _draw_single_category(rng, counts: CategoryCounts, k: np.ndarray, sampling: dict, ctx: Context | None) -> Draws:
    lo = sampling["objects"][0]
    ok = counts.n >= lo
    if not ok.any():
        raise SoclakeError(f"single-category mode needs a category with at least {lo} eligible segments "
                           f"([sampling] objects min); the largest has {int(counts.n.max())}")
    p = category_probabilities(counts, sampling, ctx) * ok
    p /= p.sum()
    cats = rng.choice(len(p), size=len(k), p=p)
    images, cat_out, ranks = [], [], []
    for i, (c, want) in enumerate(zip(cats, k)):
        r = _distinct_subcategory_ranks(rng, counts.sub_counts[c], int(min(want, counts.n[c])))
        images.append(np.full(len(r), i, np.int64))
        cat_out.append(np.full(len(r), c, np.int64))
        ranks.append(r)
    return Draws(np.concatenate(images), np.concatenate(cat_out), np.concatenate(ranks))


def _distinct_subcategory_ranks(rng, sub_counts: np.ndarray, k: int) -> np.ndarray:
    """k distinct ranks, spread over as many distinct subcategories as possible."""
    starts = np.concatenate([[0], np.cumsum(sub_counts)[:-1]])
    remaining = sub_counts.copy()
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < k:
        avail = np.flatnonzero(remaining > 0)
        pick = rng.choice(avail, size=min(k - len(chosen), len(avail)), replace=False)
        for s in pick:
            while True:
                r = int(starts[s] + rng.integers(sub_counts[s]))
                if r not in taken:
                    break
            taken.add(r)
            chosen.append(r)
            remaining[s] -= 1
    return np.array(chosen, np.int64)
